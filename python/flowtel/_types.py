"""The shapes of flowtel's settings and stats, for type checkers and readers."""

from __future__ import annotations

from typing import TypedDict


class Settings(TypedDict, total=False):
    """Keyword settings of :class:`flowtel.Flowtel` and :func:`flowtel.middleware`.

    Each mirrors a setting of the Rust builder (``FlowtelBuilder::with_*``);
    one left out (or ``None``) comes from the ``OTEL_*`` variables, else the
    default. Durations are in seconds.
    """

    service_name: str
    """``service.name``; else ``OTEL_SERVICE_NAME``, else ``unknown_service``."""
    flow_name: str
    """Root span name and ``flow.name`` (default ``flow``)."""
    endpoint: str
    """OTLP endpoint: ``http://host:4317`` (gRPC) or ``http://host:4318`` (HTTP);
    else ``OTEL_EXPORTER_OTLP_ENDPOINT``; with none anywhere, telemetry is printed."""
    protocol: str
    """``"grpc"`` or ``"http/protobuf"``; else ``OTEL_EXPORTER_OTLP_PROTOCOL``, else gRPC."""
    headers: dict[str, str]
    """Added to every export request (API keys), besides ``OTEL_EXPORTER_OTLP_HEADERS``."""
    timeout: float
    """One export request's timeout; else ``OTEL_EXPORTER_OTLP_TIMEOUT``, else 10 s."""
    console: bool
    """Print spans and metrics to standard output instead of exporting."""
    traces_exporter: str
    """Where spans go: ``"otlp"``, ``"console"`` or ``"none"``; else ``OTEL_TRACES_EXPORTER``,
    else OTLP when an endpoint is configured, else the console."""
    metrics_exporters: list[str]
    """Where metrics go, any of ``"otlp"``, ``"console"``, ``"prometheus"`` (a scrape endpoint);
    ``[]`` or ``["none"]`` for nowhere; else ``OTEL_METRICS_EXPORTER``, else like spans."""
    prometheus_address: str
    """``HOST:PORT`` of the Prometheus endpoint (port 0: any free port, see
    :meth:`Flowtel.prometheus_address`); else ``OTEL_EXPORTER_PROMETHEUS_HOST`` / ``_PORT``,
    else ``localhost:9464`` (loopback only)."""
    prometheus_bearer_token: str
    """Require ``Authorization: Bearer <token>`` on the Prometheus endpoint (else 401);
    else ``FLOWTEL_PROMETHEUS_BEARER_TOKEN``; without one, keep the endpoint on loopback."""
    span_extra_keys: list[str]
    """``extra`` keys copied onto attempt spans as ``flow.extra.<key>`` (secret-looking keys refused)."""
    metric_extra_keys: list[str]
    """``extra`` keys allowed onto metric points (bounded by ``cardinality_limit``)."""
    tenant_metrics: bool
    """Add ``flow.tenant`` (from ``extra["tenant"]``) to metric points (off)."""
    partial_runs: bool
    """This process sees only part of its runs: export a partial run span, not the root (off)."""
    metric_interval: float
    """Metric export interval; else ``OTEL_METRIC_EXPORT_INTERVAL``, else 60 s."""
    run_end_nodes: list[str]
    """Nodes whose results go to the flow's caller (``.to()`` with no successor): their
    ``node_success`` ends the run, its root span exported at once, when PenguiFlow's
    ``trace_pending`` says nothing of the run is left. Failures, deadline skips and
    cancellations end runs without it (none)."""
    run_idle_timeout: float
    """A run's root span is exported after this long without events, none of its attempts open (30 s)."""
    max_attempt_age: float
    """An attempt open this long is given up, exported ``incomplete`` and counted (3600 s)."""
    queue_capacity: int
    """Events queued between the middleware and the mapping thread (16 384)."""
    max_buffered_spans: int
    """Spans kept while the collector is slow or down (24 576); beyond, dropped and counted."""
    max_open_runs: int
    """Runs tracked at once (10 000); the least recently active are ended early, counted."""
    state_budget: int
    """One budget over all mapping state (100 000 units)."""
    cardinality_limit: int
    """Distinct values per bounded metric attribute (1 000)."""
    max_series_per_metric: int
    """Attribute sets per metric (2 000); more are counted under ``otel.metric.overflow``."""
    max_attribute_len: int
    """Longest string attribute taken from event data, in bytes (256)."""
    ca_certificate: str | bytes
    """CA certificates (PEM) to trust for an ``https://`` endpoint; else ``OTEL_EXPORTER_OTLP_CERTIFICATE``."""
    exit_timeout: float
    """How long the exit hook waits for this pipeline to deliver what it holds (5 s; 0: do not wait)."""


class Stats(TypedDict):
    """What :func:`flowtel.stats` returns: counters since the pipeline started."""

    events_recorded: int
    """Events accepted (queued for mapping)."""
    events_processed: int
    """Events mapped to spans and metrics."""
    events_dropped: int
    """Events that did not become telemetry: queue full + invalid + after shutdown."""
    events_dropped_queue_full: int
    """Dropped because the queue to the mapping thread was full."""
    events_invalid: int
    """Rejected by validation; includes ``events_unmappable``."""
    events_unmappable: int
    """Values that could not be converted to a FlowEvent (wrong types, missing ``ts``, not JSON)."""
    events_after_shutdown: int
    """Recorded after shutdown."""
    events_duplicate: int
    """Duplicate terminal events (same attempt, same timestamp), ignored."""
    events_late: int
    """``node_start`` events that arrived after their attempt had ended."""
    spans_created: int
    """Spans produced by the mapping."""
    spans_exported: int
    """Spans the collector acknowledged."""
    spans_dropped: int
    """Spans dropped: span buffer full, or undelivered at the shutdown deadline."""
    export_failures: int
    """Failed export requests (their spans stay buffered and are retried)."""
    metric_points_exported: int
    """Metric data points the collector acknowledged."""
    root_events_dropped: int
    """Run events beyond the per-run limit."""
    cardinality_overflows: int
    """Metric attribute values or series recorded under the overflow set."""
    runs_shed: int
    """Runs ended early to stay within the state budget."""
    attempts_given_up: int
    """Open attempts given up (older than ``max_attempt_age``)."""
