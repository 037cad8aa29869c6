"""The process-wide pipeline: the one :func:`middleware` and the module-level
functions share, built on first use."""

from __future__ import annotations

import os
import threading
import warnings
from typing import TYPE_CHECKING, Any

from ._flowtel import Flowtel, Middleware, after_fork_in_child, zero_stats

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._types import Settings, Stats

_lock = threading.Lock()
_pipeline: Flowtel | None = None
_settings: dict[str, Any] = {}


def _after_fork_in_child() -> None:
    # A thread of the parent may have held the lock at fork time.
    global _lock
    _lock = threading.Lock()
    # The middlewares' unconverted events are the parent's to record.
    after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def pipeline(**settings: Unpack[Settings]) -> Flowtel:
    """The process-wide pipeline, built by the first call from its settings
    (plus the ``OTEL_*`` variables; code wins).

    Every later call returns the same pipeline. Settings given to a later
    call that differ from the first call's are ignored, with a
    ``RuntimeWarning``: configure flowtel once, where the service starts,
    or build a :class:`Flowtel` of your own.
    """
    global _pipeline, _settings
    with _lock:
        if _pipeline is None:
            _pipeline = Flowtel(**settings)
            _settings = dict(settings)
        elif settings and settings != _settings:
            warnings.warn(
                "flowtel: the process-wide pipeline already exists; these settings are ignored "
                f"(first settings win: {_settings!r}). Use flowtel.Flowtel(...) for a pipeline "
                "with settings of its own.",
                RuntimeWarning,
                stacklevel=3,
            )
        return _pipeline


def middleware(**settings: Unpack[Settings]) -> Middleware:
    """The PenguiFlow middleware feeding the process-wide pipeline::

        flow = create(..., middlewares=[flowtel.middleware()])
        flow.add_middleware(flowtel.middleware())

    It never blocks the event loop and never raises into the flow; what it
    cannot record is counted in :func:`stats`. The first call's settings
    build the pipeline (see :func:`pipeline`).
    """
    return pipeline(**settings).middleware()


def record(payload: Any) -> bool:
    """Record a ``FlowEvent.to_payload()`` dict, its JSON text (``str`` or
    ``bytes``) or a PenguiFlow ``FlowEvent`` into the process-wide pipeline.

    Returns True when the event was queued; otherwise it was dropped and
    counted in :func:`stats` (invalid, unmappable, queue full, shut down).
    Never blocks.
    """
    p = _pipeline
    return (p if p is not None else pipeline()).record(payload)


def end_run(trace_id: str) -> bool:
    """End the run ``trace_id`` now: its root span is exported without
    waiting for ``run_idle_timeout``. True when queued."""
    p = _pipeline
    return p.end_run(trace_id) if p is not None else False


def flush(timeout: float = 5.0) -> None:
    """Export everything recorded so far and wait up to ``timeout`` seconds
    for the collector to acknowledge it. Open runs stay open.

    Raises :class:`FlushError` when that did not happen in time or the
    exporter failed (nothing buffered is discarded by a failed flush). The
    GIL is released while waiting. Does nothing before the first
    :func:`middleware` / :func:`record`.
    """
    p = _pipeline
    if p is not None:
        p.flush(timeout)


def shutdown(timeout: float = 5.0) -> None:
    """End every open run, export everything and stop the process-wide
    pipeline, within ``timeout`` seconds even when the collector is down
    (what could not be delivered is counted in :func:`stats`).

    Later events are dropped and counted (``events_after_shutdown``). Raises
    :class:`FlushError` if not everything was delivered. The exit hook does
    this by itself; call it to choose the moment or the timeout.
    """
    p = _pipeline
    if p is not None:
        p.shutdown(timeout)


def stats() -> Stats:
    """Counters of the process-wide pipeline: what it recorded, exported and
    dropped, by kind (all zero before its first use)."""
    p = _pipeline
    return p.stats() if p is not None else zero_stats()  # type: ignore[return-value]
