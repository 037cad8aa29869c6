//! Every name flowtel puts on the wire: attribute keys, metric names, units,
//! event types, outcome values and span names.
//!
//! The SDK uses only these constants, so this crate is the single place to
//! look up what a span attribute or a metric means. The full table, with the
//! OpenTelemetry convention each name mirrors, is in `semconv/README.md`.
//!
//! ```
//! use flowtel_semconv::{metric, attr};
//! assert_eq!(metric::NODE_DURATION, "flow.node.duration");
//! assert_eq!(attr::NODE_NAME, "flow.node.name");
//! ```
#![doc = include_str!("../README.md")]

/// Attribute keys, on spans, span events and metric points.
pub mod attr {
    /// Name of the flow a run belongs to (root span; configured, not per-run).
    pub const FLOW_NAME: &str = "flow.name";
    /// The event's original `trace_id` when it is not 32 hex characters and so
    /// could not be used as the OTel trace id unchanged (root and node spans).
    pub const RUN_ID: &str = "flow.run.id";
    /// Whether the run was cancelled (`trace_cancel_start` seen) (root span).
    pub const RUN_CANCELLED: &str = "flow.run.cancelled";
    /// Number of node attempts seen in the run (root span).
    pub const RUN_ATTEMPTS: &str = "flow.run.attempts";
    /// Why the root span was ended: `last_event` (the run's events said it
    /// was over), `idle`, `explicit`, `shutdown` or `evicted`.
    pub const RUN_END_REASON: &str = "flow.run.end_reason";
    /// `true` on a partial run span: the part of a run one pipeline saw when
    /// it is not the run's root owner, or events that arrived after this
    /// pipeline had already exported the run's root.
    pub const RUN_PARTIAL: &str = "flow.run.partial";
    /// Node name (node spans, span events, metric points). Bounded on metrics
    /// by the cardinality limit.
    pub const NODE_NAME: &str = "flow.node.name";
    /// Node instance id (spans only: a per-instance UUID in PenguiFlow, never a
    /// metric attribute).
    pub const NODE_ID: &str = "flow.node.id";
    /// 0-based attempt number of a node invocation (node spans, retry events).
    pub const NODE_ATTEMPT: &str = "flow.node.attempt";
    /// Outcome of a node attempt; one of the [`outcome`](crate::outcome) values.
    pub const NODE_OUTCOME: &str = "flow.node.outcome";
    /// FlowEvent type (`node_start`, `node_error`, ...) on `flow.events`.
    pub const EVENT_TYPE: &str = "flow.event.type";
    /// Tenant, from the event's `extra.tenant`; only when enabled.
    pub const TENANT: &str = "flow.tenant";
    /// Delay before the next attempt, in seconds (retry span event).
    pub const RETRY_DELAY: &str = "flow.retry.delay";
    /// The deadline that was exceeded, unix seconds (deadline-skip span event).
    pub const DEADLINE: &str = "flow.deadline";
    /// Messages still pending in the trace when cancellation started.
    pub const TRACE_PENDING: &str = "flow.trace.pending";
    /// Direction of a queue: `in` or `out` (queue-depth gauge).
    pub const QUEUE_DIRECTION: &str = "flow.queue.direction";
    /// Queue depth at event time, inbound (node spans).
    pub const QUEUE_DEPTH_IN: &str = "flow.queue.depth_in";
    /// Queue depth at event time, outbound (node spans).
    pub const QUEUE_DEPTH_OUT: &str = "flow.queue.depth_out";
    /// Error class: the exception type for node errors, `timeout` for
    /// timeouts, the `flow_error.code` for terminal failures (OTel `error.type`).
    pub const ERROR_TYPE: &str = "error.type";
    /// Exception type (OTel `exception.type`, on the `exception` span event).
    pub const EXCEPTION_TYPE: &str = "exception.type";
    /// Exception message, truncated (OTel `exception.message`).
    pub const EXCEPTION_MESSAGE: &str = "exception.message";
    /// The `flow_error.message` of a terminal failure, truncated.
    pub const FLOW_ERROR_MESSAGE: &str = "flow.error.message";
    /// Prefix of span attributes copied from allow-listed `extra` keys
    /// (`flow.extra.region`); nothing from `extra` is exported otherwise.
    pub const EXTRA_PREFIX: &str = "flow.extra.";
    /// Which attribute overflowed the cardinality limit (self-metric).
    pub const OVERFLOW_ATTRIBUTE: &str = "flowtel.attribute";
    /// Why flowtel dropped something (self-metrics): see [`reason`](crate::reason).
    pub const DROP_REASON: &str = "flowtel.reason";
}

/// Metric names. Durations are in seconds, counts in `{unit}` annotations.
pub mod metric {
    /// Counter of FlowEvents by `flow.event.type` and `flow.node.name`.
    pub const EVENTS: &str = "flow.events";
    /// Histogram of node attempt durations by node and outcome; each attempt
    /// is observed once (`node_failed` is not a second observation).
    pub const NODE_DURATION: &str = "flow.node.duration";
    /// Histogram of retry delays (`sleep_s` of `node_retry`) by node.
    pub const RETRY_DELAY: &str = "flow.node.retry.delay";
    /// Counter of terminal node failures (`node_failed`) by node and `error.type`.
    pub const NODE_FAILURES: &str = "flow.node.failures";
    /// UpDownCounter of node attempts started and not yet finished, by node.
    pub const NODE_ACTIVE: &str = "flow.node.active";
    /// Gauge of a node's queue depth by `flow.queue.direction` (`in`/`out`).
    pub const QUEUE_DEPTH: &str = "flow.node.queue.depth";
    /// Gauge of a node's total queued messages (in + out), seed 000's `queue_depth_total`.
    pub const QUEUE_BACKLOG: &str = "flow.node.queue.backlog";
    /// Gauge of the in-flight invocations of the trace the node last served.
    pub const TRACE_INFLIGHT: &str = "flow.trace.inflight";
    /// Gauge, by node, of how long the node's oldest open attempt (started,
    /// no terminal event yet) has been open, in seconds; 0 when none is.
    /// Seed 001's "why is this stuck?": a hung attempt makes no span until
    /// it ends, but this grows while it hangs.
    pub const NODE_OLDEST_OPEN_AGE: &str = "flow.node.oldest_open_attempt.age";
    /// Counter of FlowEvents flowtel could not process, by `flowtel.reason`.
    pub const SDK_EVENTS_DROPPED: &str = "flowtel.sdk.events.dropped";
    /// Counter of spans flowtel dropped before export, by `flowtel.reason`.
    pub const SDK_SPANS_DROPPED: &str = "flowtel.sdk.spans.dropped";
    /// Counter of spans handed to the exporter and acknowledged.
    pub const SDK_SPANS_EXPORTED: &str = "flowtel.sdk.spans.exported";
    /// Counter of failed span export attempts (each is retried while buffered).
    pub const SDK_EXPORT_FAILURES: &str = "flowtel.sdk.export.failures";
    /// Counter of metric attribute values replaced by the overflow value
    /// because the cardinality limit was reached, by `flowtel.attribute`.
    pub const SDK_CARDINALITY_OVERFLOW: &str = "flowtel.sdk.cardinality.overflow";
    /// Mapping state shed to stay within its budget, by reason
    /// (`state_budget`: runs ended early; `stale_attempt`: open attempts
    /// given up).
    pub const SDK_STATE_SHED: &str = "flowtel.sdk.state.shed";
    /// Counter of metric data points the collector refused, by
    /// `flowtel.reason` (`rejected`, `rejected_partial`).
    pub const SDK_METRIC_POINTS_DROPPED: &str = "flowtel.sdk.metric_points.dropped";
}

/// UCUM units of the metrics above.
pub mod unit {
    /// Seconds.
    pub const SECONDS: &str = "s";
    /// Count of events.
    pub const EVENTS: &str = "{event}";
    /// Count of failures.
    pub const FAILURES: &str = "{failure}";
    /// Count of attempts.
    pub const ATTEMPTS: &str = "{attempt}";
    /// Count of messages.
    pub const MESSAGES: &str = "{message}";
    /// Count of spans.
    pub const SPANS: &str = "{span}";
    /// Count of export requests.
    pub const REQUESTS: &str = "{request}";
    /// Count of attribute values.
    pub const VALUES: &str = "{value}";
    /// Count of metric data points.
    pub const DATA_POINTS: &str = "{data_point}";
}

/// FlowEvent types emitted by PenguiFlow 3.11. Other types pass through.
pub mod event {
    /// A node attempt started (`latency_ms` is 0.0).
    pub const NODE_START: &str = "node_start";
    /// A node attempt succeeded (terminal, carries `latency_ms`).
    pub const NODE_SUCCESS: &str = "node_success";
    /// A node attempt raised (terminal, carries `latency_ms`, `extra.exception`).
    pub const NODE_ERROR: &str = "node_error";
    /// A node attempt timed out (terminal, carries `latency_ms`).
    pub const NODE_TIMEOUT: &str = "node_timeout";
    /// A retry is scheduled: `attempt` is the next attempt, `extra.sleep_s` the delay.
    pub const NODE_RETRY: &str = "node_retry";
    /// The node gave up after its last attempt: `extra.flow_error`.
    pub const NODE_FAILED: &str = "node_failed";
    /// A node worker was cancelled (flow stopping; no trace).
    pub const NODE_CANCELLED: &str = "node_cancelled";
    /// A node's in-flight work was cancelled because its trace was cancelled.
    pub const NODE_TRACE_CANCELLED: &str = "node_trace_cancelled";
    /// A message was skipped because its deadline had passed (`extra.deadline_s`).
    pub const DEADLINE_SKIP: &str = "deadline_skip";
    /// Cancellation of a trace started (`extra.pending`).
    pub const TRACE_CANCEL_START: &str = "trace_cancel_start";
    /// Cancellation of a trace finished.
    pub const TRACE_CANCEL_FINISH: &str = "trace_cancel_finish";
    /// A message of a cancelled trace was dropped.
    pub const TRACE_CANCEL_DROP: &str = "trace_cancel_drop";
    /// flowtel's own, never emitted by PenguiFlow: an attempt guard was
    /// dropped without an outcome (a panic, or a task or future dropped
    /// mid-attempt, e.g. by a timeout). Terminal, carries `latency_ms`.
    pub const NODE_DROPPED: &str = "node_dropped";
}

/// `extra` keys the mapping reads itself (besides `exception`, `sleep_s`,
/// `flow_error`, `deadline_s`, `pending` and `tenant`).
pub mod extra {
    /// A W3C `traceparent` (e.g. of the HTTP request that started the run):
    /// the run's root span gets a link to that span.
    pub const TRACEPARENT: &str = "traceparent";
}

/// Values of `flow.node.outcome`.
pub mod outcome {
    /// The attempt succeeded.
    pub const SUCCESS: &str = "success";
    /// The attempt raised an error.
    pub const ERROR: &str = "error";
    /// The attempt timed out.
    pub const TIMEOUT: &str = "timeout";
    /// The attempt was cancelled with its trace.
    pub const CANCELLED: &str = "cancelled";
    /// The attempt started but no terminal event was seen before its run ended.
    pub const INCOMPLETE: &str = "incomplete";
    /// The attempt's guard was dropped without an outcome (a panic, or a
    /// future dropped mid-attempt); `error.type` says which (`panic` or
    /// `AttemptDropped`).
    pub const DROPPED: &str = "dropped";
}

/// Values of `flowtel.reason` on the self-metrics.
pub mod reason {
    /// The event queue was full.
    pub const QUEUE_FULL: &str = "queue_full";
    /// The event failed validation.
    pub const INVALID: &str = "invalid";
    /// Recorded after shutdown.
    pub const SHUTDOWN: &str = "shutdown";
    /// The span buffer was full (collector down or slow).
    pub const BUFFER_FULL: &str = "buffer_full";
    /// A duplicate terminal event for an attempt already exported.
    pub const DUPLICATE: &str = "duplicate";
    /// Span events beyond the per-root limit.
    pub const EVENT_LIMIT: &str = "event_limit";
    /// Runs ended early because the mapping state budget or the open-run
    /// limit was reached (`flowtel.sdk.runs.shed`).
    pub const STATE_BUDGET: &str = "state_budget";
    /// Open attempts given up after `max_attempt_age` with no terminal event.
    pub const STALE_ATTEMPT: &str = "stale_attempt";
    /// A metric series beyond the per-metric series limit.
    pub const SERIES_LIMIT: &str = "series_limit";
    /// The collector refused the whole export request for good (a
    /// non-retryable answer such as HTTP 400 or gRPC `INVALID_ARGUMENT`).
    pub const REJECTED: &str = "rejected";
    /// The collector accepted the request but reported these items as
    /// rejected (OTLP partial success).
    pub const REJECTED_PARTIAL: &str = "rejected_partial";
}

/// Span event names and fixed span names.
pub mod span {
    /// Name of the exception span event (OTel convention).
    pub const EXCEPTION_EVENT: &str = "exception";
    /// Root span event: a retry was scheduled.
    pub const RETRY_EVENT: &str = "flow.node.retry";
    /// Root span event: a node failed terminally.
    pub const FAILED_EVENT: &str = "flow.node.failed";
    /// Root span event: a message skipped because of its deadline.
    pub const DEADLINE_SKIP_EVENT: &str = "flow.deadline_skip";
    /// Root span event prefix for control-plane events (`flow.trace_cancel_start`, ...).
    pub const EVENT_PREFIX: &str = "flow.";
    /// Root span name when no flow name is configured.
    pub const DEFAULT_FLOW_NAME: &str = "flow";
    /// Instrumentation scope name of everything flowtel emits.
    pub const SCOPE: &str = "flowtel";
}

/// The value a bounded metric attribute takes once the cardinality limit is
/// reached (mirrors the OTel SDK's `otel.metric.overflow` series).
pub const OVERFLOW_VALUE: &str = "_overflow";

/// The node name on metric points of events that carry only a node id
/// (node ids are per-instance and never become metric attributes).
pub const UNKNOWN_VALUE: &str = "_unknown";
