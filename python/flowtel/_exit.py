"""Deliver what every pipeline holds when the process ends.

- ``atexit``: a normal interpreter exit (``sys.exit``, the end of the main
  module; gunicorn workers exit this way).
- ``multiprocessing`` ends its children with ``os._exit()``, which skips
  ``atexit``; its own finalizers do run. A child forked by multiprocessing
  registers one (through multiprocessing's after-fork hooks, which run once
  the child has cleared the finalizers it inherited), and so does a child
  started any other way that imports flowtel.

A process that calls ``os._exit()`` itself must call :func:`flowtel.flush`
first. multiprocessing is never imported here: flowtel hooks into it only
if the application uses it.
"""

from __future__ import annotations

import atexit
import os
import sys

from ._flowtel import shutdown_all


def _shutdown_all() -> None:
    try:
        shutdown_all()
    except Exception:  # noqa: BLE001 - never fail an exiting process
        pass


def _register_mp_finalizer(_anchor: object = None) -> None:
    # The lowest priority: after the child's own finalizers, once its
    # children are joined.
    sys.modules["multiprocessing.util"].Finalize(None, _shutdown_all, exitpriority=-1000)


class _Anchor:
    """A weak-referenceable owner for multiprocessing's after-fork registry."""


_anchor = _Anchor()
_hooked = False


def _hook_multiprocessing() -> None:
    """If the application uses multiprocessing, have every child it forks
    from now on register the exit finalizer (once per process; the registry
    is inherited by children)."""
    global _hooked
    mp_util = sys.modules.get("multiprocessing.util")
    if _hooked or mp_util is None:
        return
    mp_util.register_after_fork(_anchor, _register_mp_finalizer)
    _hooked = True


atexit.register(_shutdown_all)
_hook_multiprocessing()
# multiprocessing imported after flowtel: hook in just before a fork.
os.register_at_fork(before=_hook_multiprocessing)
_mp_process = sys.modules.get("multiprocessing.process")
if _mp_process is not None and _mp_process.parent_process() is not None:
    # A multiprocessing child (spawned, or forked before flowtel was imported).
    _register_mp_finalizer()
