"""The native module: flowtel's Rust pipeline, as Python classes."""

from collections.abc import Generator
from typing import Any

from typing_extensions import Unpack

from ._types import Settings, Stats

__version__: str
SETTINGS: tuple[str, ...]
"""The names of every setting (the keys of :class:`flowtel.Settings`)."""

class FlowtelError(Exception):
    """Base class of the errors flowtel raises (never from a middleware)."""

class FlushError(FlowtelError):
    """A flush or shutdown did not complete: not within the timeout, the
    pipeline was already shut down, or the exporter failed. Nothing still
    buffered is discarded by a failed flush."""

class Flowtel:
    """A flowtel pipeline of your own: PenguiFlow FlowEvents in,
    OpenTelemetry spans and metrics out over OTLP.

    ``flowtel.middleware()`` uses the process-wide one; build a ``Flowtel``
    when a part of the process needs other settings (another collector,
    another service name)::

        audit = flowtel.Flowtel(service_name="audit", endpoint="http://collector:4317")
        flow = create(..., middlewares=[audit.middleware()])

    Settings are keyword arguments (see :class:`flowtel.Settings`); those
    not given come from the ``OTEL_*`` variables, then the defaults. Invalid
    settings raise ``ValueError`` or ``TypeError`` here, never later.

    Recording never blocks: events are queued for flowtel's mapping thread
    and exported from flowtel's own threads. After ``os.fork()`` the child's
    first event starts a pipeline of the child's own from the same settings.
    At interpreter exit, the pipeline delivers what it holds within its
    ``exit_timeout``.
    """

    def __init__(self, **settings: Unpack[Settings]) -> None: ...
    def middleware(self) -> Middleware:
        """The PenguiFlow middleware feeding this pipeline
        (``create(..., middlewares=[p.middleware()])``)."""

    def record(self, payload: Any) -> bool:
        """Record a ``FlowEvent.to_payload()`` dict, its JSON text (``str``
        or ``bytes``), or a PenguiFlow ``FlowEvent``.

        Returns True when the event was queued; otherwise it was dropped and
        counted in :meth:`stats` (invalid or unmappable, queue full, shut
        down). Never blocks and never raises for bad input.
        """

    def end_run(self, trace_id: str) -> bool:
        """End the run ``trace_id`` now: its root span is exported without
        waiting for ``run_idle_timeout``. True when queued."""

    def flush(self, timeout: float = 5.0) -> None:
        """Export everything recorded so far (spans of finished attempts and
        the current metric values) and wait up to ``timeout`` seconds for
        the collector to acknowledge. Open runs stay open. The GIL is
        released while waiting.

        Raises :class:`FlushError` when that did not happen in time or the
        exporter failed."""

    def shutdown(self, timeout: float = 5.0) -> None:
        """End every open run, export everything and stop, within
        ``timeout`` seconds even when the collector is unreachable (what
        could not be delivered is counted in ``spans_dropped``). Later
        events are counted in ``events_after_shutdown``. The GIL is released
        while waiting.

        Raises :class:`FlushError` if not everything was delivered, or if
        already shut down."""

    def stats(self) -> Stats:
        """Counters of what this pipeline recorded, exported and dropped."""

    def prometheus_address(self) -> str | None:
        """Where the Prometheus endpoint listens (``"127.0.0.1:9464"``; the
        port the system chose for port 0) when ``metrics_exporters``
        includes ``"prometheus"``, else ``None``. Scrape
        ``http://<address>/metrics``."""

class Middleware:
    """A PenguiFlow middleware: ``await middleware(event)`` records the
    event and completes at once.

    The call keeps a reference to the ``FlowEvent``; events are converted
    (their attributes read directly, no JSON) and queued 64 at a time on
    the calling thread, or 20 ms after the first of a batch (a timer on the
    running event loop), and before ``flush``, ``shutdown``, ``stats``,
    ``record`` and ``end_run``. Outside a running event loop, and for a
    payload dict, it converts at once. The awaitable it returns is already
    complete, so the flow never suspends on flowtel. It never raises into
    the flow: a value it cannot map is counted in
    ``stats()["events_unmappable"]``.
    """

    def __call__(self, event: Any) -> Done: ...

class Done:
    """The already-complete awaitable a :class:`Middleware` call returns
    (``__await__`` gives an exhausted iterator: ``await`` returns ``None``
    at once)."""

    def __await__(self) -> Generator[Any, None, None]: ...

def shutdown_all() -> None:
    """Shut every live pipeline down within its ``exit_timeout``, in
    parallel (the exit hooks call this)."""

def after_fork_in_child() -> None:
    """In a forked child: forget the middlewares' unconverted events (the
    parent records them). ``flowtel`` registers it with
    ``os.register_at_fork``."""

def zero_stats() -> Stats:
    """``stats()`` before any pipeline exists: every counter zero."""
