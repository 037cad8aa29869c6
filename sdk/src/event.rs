//! The FlowEvent model: every field of PenguiFlow's `FlowEvent`, a builder for
//! Rust callers, and validation.

use std::fmt;

use opentelemetry::trace::SpanId;
use serde_json::{Map, Value};

/// One runtime event of a flow, field for field PenguiFlow's `FlowEvent`.
///
/// Build one with [`FlowEvent::builder`], or parse PenguiFlow output with
/// [`FlowEvent::from_json`]. Unknown `event_type`s are kept as they are.
///
/// ```
/// use flowtel::FlowEvent;
/// let ev = FlowEvent::builder("node_success", 1_700_000_000.25)
///     .node("triage", "triage-1")
///     .trace_id("3e512c5b0a184257a25c215d19544e6a")
///     .latency_ms(12.5)
///     .build()
///     .unwrap();
/// assert_eq!(ev.attempt, 0);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FlowEvent {
    /// Kind of event (`node_start`, `node_error`, ...; see `flowtel_semconv::event`).
    pub event_type: String,
    /// Unix timestamp in seconds at which the event was recorded.
    pub ts: f64,
    /// Name of the node, if any.
    pub node_name: Option<String>,
    /// Identifier of the node instance, if any.
    pub node_id: Option<String>,
    /// Trace (run) identifier, if any: 32 lowercase hex characters in PenguiFlow.
    pub trace_id: Option<String>,
    /// Attempt number, 0-based.
    pub attempt: u32,
    /// Duration of the operation in milliseconds; terminal events carry it.
    pub latency_ms: Option<f64>,
    /// Depth of the node's inbound queue.
    pub queue_depth_in: u64,
    /// Depth of the node's outbound queue.
    pub queue_depth_out: u64,
    /// Number of outgoing edges of the node.
    pub outgoing_edges: u64,
    /// Configured maximum queue size.
    pub queue_maxsize: u64,
    /// Pending messages of the trace, if tracked.
    pub trace_pending: Option<u64>,
    /// In-flight invocations of the trace.
    pub trace_inflight: u64,
    /// Whether the trace was cancelled.
    pub trace_cancelled: bool,
    /// Free-form event data (`exception`, `sleep_s`, `flow_error`, ...).
    /// Never exported except for the keys documented in the semconv table
    /// and those allow-listed in the configuration.
    pub extra: Map<String, Value>,
    /// The span id of this event's attempt, chosen when the attempt started.
    /// Set by flowtel's attempt guard ([`Attempt`](crate::Attempt)), carried
    /// by its start and terminal events; absent in PenguiFlow events, whose
    /// attempt span ids are derived from the terminal event instead. When a
    /// start and its terminal event both carry one, the terminal's wins.
    pub span_id: Option<SpanId>,
}

/// Latest accepted timestamp: 95617584000 s is 5000-01-01T00:00:00Z. Later
/// values are almost always milliseconds passed as seconds.
const MAX_TS: f64 = 95_617_584_000.0;

/// Why a FlowEvent was rejected: the field and the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventError {
    field: String,
    problem: String,
}

impl EventError {
    pub(crate) fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The offending field (`latency_ms`, `event`, ...), or `line` for input
    /// that is not a JSON object at all.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.problem)
    }
}

impl std::error::Error for EventError {}

impl FlowEvent {
    /// Start building an event of `event_type` at unix time `ts` (seconds).
    pub fn builder(event_type: impl Into<String>, ts: f64) -> FlowEventBuilder {
        FlowEventBuilder {
            event: FlowEvent {
                event_type: event_type.into(),
                ts,
                node_name: None,
                node_id: None,
                trace_id: None,
                attempt: 0,
                latency_ms: None,
                queue_depth_in: 0,
                queue_depth_out: 0,
                outgoing_edges: 0,
                queue_maxsize: 0,
                trace_pending: None,
                trace_inflight: 0,
                trace_cancelled: false,
                extra: Map::new(),
                span_id: None,
            },
        }
    }

    /// Check the invariants every consumer relies on: a non-empty event type,
    /// a finite timestamp, and a finite non-negative latency.
    pub fn validate(&self) -> Result<(), EventError> {
        if self.event_type.is_empty() {
            return Err(EventError::new("event", "must not be empty"));
        }
        if !self.ts.is_finite() {
            return Err(EventError::new(
                "ts",
                format!("must be a finite number, got {}", self.ts),
            ));
        }
        if self.ts < 0.0 {
            return Err(EventError::new(
                "ts",
                format!("must not be negative, got {}", self.ts),
            ));
        }
        if self.ts > MAX_TS {
            return Err(EventError::new(
                "ts",
                format!(
                    "must be unix seconds before the year 5000, got {} (milliseconds?)",
                    self.ts
                ),
            ));
        }
        if self.span_id == Some(SpanId::INVALID) {
            return Err(EventError::new("span_id", "must not be all zeros"));
        }
        if let Some(l) = self.latency_ms {
            if !l.is_finite() || l < 0.0 {
                return Err(EventError::new(
                    "latency_ms",
                    format!("must be a finite non-negative number, got {l}"),
                ));
            }
        }
        Ok(())
    }

    /// Combined inbound and outbound queue depth (PenguiFlow's `queue_depth`).
    pub fn queue_depth(&self) -> u64 {
        self.queue_depth_in.saturating_add(self.queue_depth_out)
    }
}

/// Builder for [`FlowEvent`]; `build` validates.
#[derive(Clone, Debug)]
#[must_use]
pub struct FlowEventBuilder {
    pub(crate) event: FlowEvent,
}

impl FlowEventBuilder {
    /// Node name and node instance id.
    pub fn node(mut self, name: impl Into<String>, id: impl Into<String>) -> Self {
        self.event.node_name = Some(name.into());
        self.event.node_id = Some(id.into());
        self
    }

    /// Trace (run) id.
    pub fn trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.event.trace_id = Some(trace_id.into());
        self
    }

    /// 0-based attempt number.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.event.attempt = attempt;
        self
    }

    /// Duration in milliseconds.
    pub fn latency_ms(mut self, latency_ms: f64) -> Self {
        self.event.latency_ms = Some(latency_ms);
        self
    }

    /// Inbound and outbound queue depth.
    pub fn queue_depths(mut self, depth_in: u64, depth_out: u64) -> Self {
        self.event.queue_depth_in = depth_in;
        self.event.queue_depth_out = depth_out;
        self
    }

    /// Outgoing edges and configured maximum queue size.
    pub fn topology(mut self, outgoing_edges: u64, queue_maxsize: u64) -> Self {
        self.event.outgoing_edges = outgoing_edges;
        self.event.queue_maxsize = queue_maxsize;
        self
    }

    /// Trace-level counters: pending (if tracked), in-flight, cancelled.
    pub fn trace_state(mut self, pending: Option<u64>, inflight: u64, cancelled: bool) -> Self {
        self.event.trace_pending = pending;
        self.event.trace_inflight = inflight;
        self.event.trace_cancelled = cancelled;
        self
    }

    /// One `extra` entry (`exception`, `sleep_s`, `flow_error`, ...).
    pub fn extra(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.event.extra.insert(key.into(), value.into());
        self
    }

    /// The attempt's span id, chosen at its start (see [`FlowEvent::span_id`]).
    pub fn span_id(mut self, span_id: SpanId) -> Self {
        self.event.span_id = Some(span_id);
        self
    }

    /// Validate and return the event.
    pub fn build(self) -> Result<FlowEvent, EventError> {
        self.event.validate()?;
        Ok(self.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_rejects_bad_numbers_naming_the_field() {
        for (lat, ok) in [
            (f64::NAN, false),
            (f64::INFINITY, false),
            (-1.0, false),
            (0.0, true),
        ] {
            let r = FlowEvent::builder("node_success", 1.0)
                .latency_ms(lat)
                .build();
            assert_eq!(r.is_ok(), ok, "latency {lat}");
            if let Err(e) = r {
                assert_eq!(e.field(), "latency_ms");
            }
        }
        let e = FlowEvent::builder("x", f64::NAN).build().unwrap_err();
        assert_eq!(e.field(), "ts");
        let e = FlowEvent::builder("x", 1.7e12).build().unwrap_err();
        assert!(e.problem().contains("milliseconds?"), "{e}");
        assert!(FlowEvent::builder("x", 0.0).build().is_ok(), "1970");
        assert!(
            FlowEvent::builder("x", 32_503_680_000.0).build().is_ok(),
            "year 3000"
        );
        let e = FlowEvent::builder("", 1.0).build().unwrap_err();
        assert_eq!(e.field(), "event");
        assert!(e.to_string().contains("must not be empty"));
    }
}
