//! What an attempt guard sends to the mapping thread: compact events
//! (shared names, plain numbers; nothing allocated on the caller's thread
//! for the common path) and the timestamps they carry, chosen so that the
//! attempt's span encloses everything that ran inside it.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::SpanId;

use crate::event::FlowEvent;
use crate::mapping::ts_ns;
use crate::run::Run;

/// Unix ns → seconds, as close as f64 allows.
pub(crate) fn secs(ns: u128) -> f64 {
    (ns / 1_000_000_000) as f64 + (ns % 1_000_000_000) as f64 / 1e9
}

/// The latest timestamp the mapping reads as no later than `ns` (f64
/// seconds are ~240 ns coarse today), so that the attempt's span starts no
/// later than anything that ran inside it.
pub(crate) fn ts_not_after(ns: u128) -> f64 {
    let mut ts = secs(ns);
    while ts > 0.0 && ts_ns(ts) > ns {
        ts = f64::from_bits(ts.to_bits() - 1);
    }
    ts
}

/// The earliest timestamp the mapping reads as no earlier than `ns`.
pub(crate) fn ts_not_before(ns: u128) -> f64 {
    let mut ts = secs(ns);
    while ts_ns(ts) < ns {
        ts = f64::from_bits(ts.to_bits() + 1);
    }
    ts
}

/// Queue a guard's event. Its events are valid by construction; a full
/// queue or a shut-down pipeline is counted, as for `record()`.
pub(crate) fn record(run: &Run, ev: GuardEvent) {
    let _ = run.inner.flowtel.record_guard(ev);
}

pub(crate) fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A node name: a `&'static str` (the usual case, node names are
/// constants) is kept as it is, anything else shared once, so that an
/// attempt allocates nothing on the caller's thread for its name.
#[derive(Clone, Debug)]
pub(crate) enum Name {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Name {
    pub(crate) fn new(name: impl Into<Cow<'static, str>>) -> Self {
        match name.into() {
            Cow::Borrowed(s) => Name::Static(s),
            Cow::Owned(s) => Name::Shared(Arc::from(s)),
        }
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Name::Static(s) => s,
            Name::Shared(s) => s,
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

/// An attempt guard's event as it travels to the mapping thread: shared
/// strings and plain numbers, so the caller's thread allocates nothing for
/// the common path; the mapping thread turns it into the equivalent
/// [`FlowEvent`].
pub(crate) struct GuardEvent {
    pub(crate) kind: &'static str,
    pub(crate) run: Arc<str>,
    pub(crate) node: Name,
    pub(crate) attempt: u32,
    pub(crate) ts: f64,
    pub(crate) latency_ms: Option<f64>,
    pub(crate) span_id: Option<SpanId>,
    /// `extra` entries (exception, traceparent, sleep_s, flow_error).
    pub(crate) extra: Vec<(&'static str, serde_json::Value)>,
}

impl GuardEvent {
    pub(crate) fn into_event(self) -> FlowEvent {
        let mut b = FlowEvent::builder(self.kind, self.ts)
            .trace_id(self.run.to_string())
            .attempt(self.attempt);
        b.event.node_name = Some(self.node.to_string());
        b.event.latency_ms = self.latency_ms;
        b.event.span_id = self.span_id;
        for (k, v) in self.extra {
            b.event.extra.insert(k.to_string(), v);
        }
        b.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_times_enclose_the_real_ones() {
        for ns in [
            1_795_305_121_123_456_789u128,
            1_795_305_121_000_000_000,
            1_795_305_121_999_999_999,
            1_700_000_000_000_000_001,
        ] {
            assert!(ts_ns(ts_not_after(ns)) <= ns, "{ns}");
            assert!(ns - ts_ns(ts_not_after(ns)) < 1_000, "{ns}");
            assert!(ts_ns(ts_not_before(ns)) >= ns, "{ns}");
            assert!(ts_ns(ts_not_before(ns)) - ns < 1_000, "{ns}");
        }
    }
}
