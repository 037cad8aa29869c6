"""OpenTelemetry traces and metrics for PenguiFlow, from flowtel's Rust core.

One line in a PenguiFlow service::

    import flowtel
    from penguiflow import create

    flow = create(..., middlewares=[flowtel.middleware(service_name="checkout")])

Every run becomes a trace keyed by its ``trace_id`` (one root span, one span
per node attempt, retries, timeouts, failures, cancellations and deadline
skips visible) and every node a set of bounded metrics that never carry a
trace id, exported over OTLP by the same Rust pipeline as flowtel's SDK and
command. Settings not given in code come from the standard ``OTEL_*``
variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ...); code wins.

- :func:`middleware` feeds the process-wide pipeline, shared by every flow and
  middleware of the process (the first settings win); :class:`Flowtel` is a
  pipeline of your own.
- :func:`record` takes a ``FlowEvent.to_payload()`` dict or its JSON, for
  runtimes other than PenguiFlow and for replays.
- :func:`flush`, :func:`shutdown`, :func:`stats`, :func:`end_run`.
- At interpreter exit (and at the end of a ``multiprocessing`` child), every
  pipeline delivers what it holds within its ``exit_timeout`` (5 s).
"""

from __future__ import annotations

from . import _exit  # noqa: F401  (installs the exit hooks)
from ._flowtel import Flowtel, FlowtelError, FlushError, Middleware, __version__
from ._global import end_run, flush, middleware, pipeline, record, shutdown, stats
from ._types import Settings, Stats

__all__ = [
    "Flowtel",
    "FlowtelError",
    "FlushError",
    "Middleware",
    "Settings",
    "Stats",
    "__version__",
    "end_run",
    "flush",
    "middleware",
    "pipeline",
    "record",
    "shutdown",
    "stats",
]
