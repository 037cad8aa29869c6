"""Deliver what every pipeline holds when the process ends.

- ``atexit``: a normal interpreter exit (``sys.exit``, end of the main
  module; gunicorn workers exit this way).
- ``multiprocessing`` children end with ``os._exit()``, which skips
  ``atexit``; its own finalizers do run, so a forked child registers one
  (and so does a spawned child that imports flowtel).

A process that calls ``os._exit()`` itself must call :func:`flowtel.flush`
first.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util as _mp_util

from ._flowtel import shutdown_all


def _shutdown_all() -> None:
    try:
        shutdown_all()
    except Exception:  # noqa: BLE001 - never fail an exiting process
        pass


def _register_mp_finalizer(_anchor: object = None) -> None:
    # The lowest priority: after the child's own finalizers, once its
    # children are joined.
    _mp_util.Finalize(None, _shutdown_all, exitpriority=-1000)


class _Anchor:
    """A weak-referenceable owner for multiprocessing's after-fork registry."""


_anchor = _Anchor()
atexit.register(_shutdown_all)
# Runs in every multiprocessing child forked after this import, after the
# child cleared the finalizers it inherited.
_mp_util.register_after_fork(_anchor, _register_mp_finalizer)
if multiprocessing.parent_process() is not None:
    _register_mp_finalizer()
