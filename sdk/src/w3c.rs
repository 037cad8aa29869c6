//! W3C trace context (`traceparent`) in and out, through opentelemetry's
//! own `TraceContextPropagator`, so flowtel accepts and produces exactly
//! what every other OpenTelemetry SDK does.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;

const TRACEPARENT: &str = "traceparent";

/// One `traceparent` value, as the propagator's carrier.
struct One<'a>(&'a str);

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// The span a `traceparent` header names, if it is valid (W3C rules:
/// opentelemetry's propagator checks version, non-zero ids and flags; the
/// id lengths are checked here).
pub(crate) fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let value = value.trim();
    // The propagator takes shorter ids as if zero-padded; W3C does not.
    let mut parts = value.split('-').skip(1);
    if parts.next()?.len() != 32 || parts.next()?.len() != 16 {
        return None;
    }
    let cx = TraceContextPropagator::new().extract(&One(value));
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// The span context of a span of flowtel's (sampled, local).
pub(crate) fn span_context(trace: TraceId, span: SpanId) -> SpanContext {
    SpanContext::new(trace, span, TraceFlags::SAMPLED, false, TraceState::NONE)
}

/// A context whose current span is `sc`: the parent of spans started in it.
pub(crate) fn context_of(sc: SpanContext) -> Context {
    Context::new().with_remote_span_context(sc)
}

/// The `traceparent` header value naming a (sampled) span.
pub(crate) fn traceparent(trace: TraceId, span: SpanId) -> String {
    format!("00-{trace}-{span}-01")
}

/// The headers opentelemetry's propagator injects for `cx` (for tests
/// comparing [`traceparent`] with it).
#[cfg(test)]
fn injected(cx: &Context) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_valid_and_refuses_invalid_traceparents() {
        let sc = parse_traceparent(TP).unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled());
        assert!(sc.is_remote());
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn traceparent_out_is_what_the_propagator_injects() {
        let trace = TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736);
        let span = SpanId::from(0x00f0_67aa_0ba9_02b7);
        let cx = context_of(span_context(trace, span));
        assert_eq!(injected(&cx)["traceparent"], traceparent(trace, span));
        assert_eq!(traceparent(trace, span), TP);
        // And back in again.
        let sc = parse_traceparent(&traceparent(trace, span)).unwrap();
        assert_eq!((sc.trace_id(), sc.span_id()), (trace, span));
    }
}
