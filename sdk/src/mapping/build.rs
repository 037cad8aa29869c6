//! Building spans: attempt spans (compact, see `record.rs`), root spans and
//! partial run spans (`SpanData`), and the small conversions they need
//! (timestamps, truncation, Python exception reprs). Pure functions of what
//! the mapping decided.

use flowtel_semconv::{attr, event, outcome};
use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::state::{NodeState, RunMeta};
use crate::record::{AttemptError, AttemptSpan};

/// Nanoseconds since the unix epoch, exact to the microsecond for the
/// timestamps PenguiFlow writes (the fraction is taken apart from the seconds
/// so that f64 rounding at 1.7e9 s does not eat it).
pub(crate) fn ts_ns(ts: f64) -> u128 {
    let secs = ts.trunc();
    let nanos = to_u128(((ts - secs) * 1e9).round());
    to_u128(secs) * 1_000_000_000 + nanos
}

pub(super) fn ms_to_ns(ms: f64) -> u128 {
    to_u128((ms * 1e6).round())
}

/// `x as u128`, through a u64 when it fits: a float to 128-bit conversion
/// is a call into a software routine, to 64 bits an instruction or two.
fn to_u128(x: f64) -> u128 {
    // 2^64
    if x < 18_446_744_073_709_551_616.0 {
        u128::from(x as u64)
    } else {
        x as u128
    }
}

pub(super) use crate::record::to_time;

/// Cut a string to at most `max` bytes on a char boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

/// Split a Python exception repr (`ValueError('boom')`, `TimeoutError()`)
/// into type and message.
pub(crate) fn parse_exception(repr: &str) -> (String, String) {
    if let Some(open) = repr.find('(') {
        let name = &repr[..open];
        if repr.ends_with(')')
            && !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == ':')
        {
            let inner = &repr[open + 1..repr.len() - 1];
            let msg = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                .unwrap_or(inner);
            return (name.to_string(), msg.to_string());
        }
    }
    ("Exception".to_string(), repr.to_string())
}

pub(super) fn kv(key: &'static str, value: impl Into<Value>) -> KeyValue {
    KeyValue::new(key, value)
}

/// The facts of one attempt's end, from its terminal event or from the run
/// ending while it was open.
pub(super) struct AttemptEnd<'a> {
    /// The terminal event type, or `incomplete`.
    pub(super) kind: &'a str,
    /// Allow-listed `extra` values (`flow.extra.<key>`).
    pub(super) extras: Vec<KeyValue>,
    pub(super) attempt: u32,
    pub(super) exception: Option<&'a str>,
    pub(super) depth_in: u64,
    pub(super) depth_out: u64,
    pub(super) start: u128,
    pub(super) end: u128,
    /// The span's id: from the terminal event, or from the start of an
    /// attempt exported while open.
    pub(super) id: SpanId,
}

fn new_span(
    (trace, id, parent): (TraceId, SpanId, SpanId),
    name: String,
    (start, end): (u128, u128),
    attributes: Vec<KeyValue>,
    events: SpanEvents,
    status: Status,
) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            trace,
            id,
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: parent,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: name.into(),
        start_time: to_time(start),
        end_time: to_time(end),
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status,
        instrumentation_scope: crate::record::scope().clone(),
    }
}

/// An attempt's outcome from its terminal event type, and for a failed
/// one (error type, exception type, message) from its exception repr.
fn outcome_of(
    kind: &str,
    exception: Option<&str>,
) -> (&'static str, Option<(String, String, String)>) {
    match kind {
        event::NODE_SUCCESS => (outcome::SUCCESS, None),
        event::NODE_ERROR => {
            let (ty, msg) = exception
                .map(parse_exception)
                .unwrap_or_else(|| ("Exception".into(), String::new()));
            (outcome::ERROR, Some((ty.clone(), ty, msg)))
        }
        event::NODE_TIMEOUT => {
            let (ty, msg) = exception
                .map(parse_exception)
                .unwrap_or_else(|| ("TimeoutError".into(), String::new()));
            (outcome::TIMEOUT, Some(("timeout".to_string(), ty, msg)))
        }
        event::NODE_TRACE_CANCELLED => (outcome::CANCELLED, None),
        event::NODE_DROPPED => {
            let (ty, msg) = exception
                .map(parse_exception)
                .unwrap_or_else(|| ("AttemptDropped".into(), String::new()));
            (outcome::DROPPED, Some((ty.clone(), ty, msg)))
        }
        _ => (outcome::INCOMPLETE, None),
    }
}

/// One node attempt's span, a child of its run's root.
pub(super) fn attempt_span(
    max_attr_len: usize,
    meta: &RunMeta,
    node: &NodeState,
    a: AttemptEnd<'_>,
) -> AttemptSpan {
    let (outcome, error) = outcome_of(a.kind, a.exception);
    let error = error.map(|(error_type, exception_type, msg)| {
        Box::new(AttemptError {
            error_type,
            exception_type,
            message: truncate(&msg, max_attr_len),
        })
    });
    AttemptSpan {
        trace: meta.trace,
        id: a.id,
        parent: crate::ids::root_span_id(meta.trace),
        name: node.span_name.clone(),
        node_id: node.id.clone(),
        attempt: a.attempt,
        outcome,
        depth_in: a.depth_in,
        depth_out: a.depth_out,
        run_id: meta.run_id.clone(),
        tenant: meta.tenant.clone(),
        extras: a.extras,
        error,
        start_ns: a.start,
        end_ns: a.end.max(a.start),
    }
}

/// What a run span (root or partial) says about the run.
pub(super) struct RunSummary<'a> {
    pub(super) flow_name: &'a str,
    pub(super) meta: &'a RunMeta,
    pub(super) start: u128,
    pub(super) end: u128,
    pub(super) attempts: u64,
    pub(super) cancelled: bool,
    pub(super) failure: Option<&'a (String, String)>,
    /// The inbound context the run was started from, as a link.
    pub(super) link: Option<&'a SpanContext>,
    pub(super) end_reason: &'static str,
    pub(super) events: Vec<Event>,
    pub(super) dropped_events: u32,
    /// `None` for the root; `Some(id)` for a partial run span, a child of
    /// the root.
    pub(super) partial: Option<SpanId>,
}

/// The run's root span, or a partial run span under it.
pub(super) fn run_span(r: RunSummary<'_>) -> SpanData {
    let mut attributes = vec![
        kv(attr::FLOW_NAME, r.flow_name.to_string()),
        kv(attr::RUN_ATTEMPTS, r.attempts as i64),
        kv(attr::RUN_CANCELLED, r.cancelled),
        kv(attr::RUN_END_REASON, r.end_reason),
    ];
    if r.partial.is_some() {
        attributes.push(kv(attr::RUN_PARTIAL, true));
    }
    if let Some(id) = &r.meta.run_id {
        attributes.push(kv(attr::RUN_ID, id.clone()));
    }
    if let Some(t) = &r.meta.tenant {
        attributes.push(kv(attr::TENANT, t.clone()));
    }
    let status = match r.failure {
        Some((code, message)) => {
            attributes.push(kv(attr::ERROR_TYPE, code.clone()));
            Status::error(if message.is_empty() {
                code.clone()
            } else {
                format!("{code}: {message}")
            })
        }
        None => Status::Unset,
    };
    let mut events = SpanEvents::default();
    events.events = r.events;
    events.dropped_count = r.dropped_events;
    let trace = r.meta.trace;
    let root = crate::ids::root_span_id(trace);
    let ids = match r.partial {
        Some(id) => (trace, id, root),
        None => (trace, root, SpanId::INVALID),
    };
    let mut span = new_span(
        ids,
        r.flow_name.to_string(),
        (r.start.min(r.end), r.end),
        attributes,
        events,
        status,
    );
    if let Some(sc) = r.link {
        span.links.links.push(Link::with_context(sc.clone()));
    }
    span
}

#[cfg(test)]
mod tests {
    use super::to_u128;

    /// The shortcut through 64 bits converts as `as u128` does, on both
    /// sides of 2^64 and at the odd values (negative, NaN, infinite).
    #[test]
    fn float_to_u128_through_64_bits_is_the_plain_conversion() {
        let two64 = 18_446_744_073_709_551_616.0_f64;
        let mut xs = vec![
            0.0,
            -0.0,
            -1.0,
            0.4,
            0.5,
            1.7e9,
            1.795_305_121_002_5e18,
            two64,
            f64::from_bits(two64.to_bits() - 1),
            f64::from_bits(two64.to_bits() + 1),
            1e30,
            1e40,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        xs.extend((0..2000).map(|i| f64::from(i) * 1.234_567e16));
        for x in xs {
            assert_eq!(to_u128(x), x as u128, "{x}");
        }
    }
}
