//! W3C trace context in and out of a run, as the real collector (rotel)
//! received it: an inbound `traceparent` becomes a link on the run's root
//! (from code and from a bridged event), and an attempt's outbound
//! `traceparent` puts the next service's span under that attempt.

use std::collections::HashMap;
use std::time::Duration;

use flowtel::{FlowEvent, Flowtel};
use flowtel_integration_tests::assertions::check_nested_tree;
use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::debuglog::Span;
use flowtel_integration_tests::unix_now;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;

fn pipeline(c: &Collector, service: &str) -> Flowtel {
    Flowtel::builder()
        .with_endpoint(c.grpc_endpoint())
        .with_service_name(service)
        .with_flow_name("checkout")
        .build()
        .unwrap()
}

fn arrived(c: &Collector, trace: &str, n: usize) -> Vec<Span> {
    let r = c.wait_for(Duration::from_secs(15), |r| r.trace(trace).len() >= n);
    let spans: Vec<Span> = r.trace(trace).into_iter().cloned().collect();
    assert_eq!(spans.len(), n, "{}", c.raw_log());
    spans
}

/// What a downstream service does with an incoming request's headers:
/// extract the context with the standard propagator and start its span in
/// it, exported by its own pipeline (its own `service.name`). Returns the
/// `traceparent` naming that span.
fn downstream_handles(headers: &HashMap<String, String>, service: &Flowtel) -> String {
    let cx = TraceContextPropagator::new().extract(headers);
    let mut span = service.tracer().start_with_context("GET /stock", &cx);
    let sc = span.span_context().clone();
    span.end();
    format!("00-{}-{}-01", sc.trace_id(), sc.span_id())
}

#[test]
fn outbound_traceparent_puts_the_next_service_under_the_attempt_and_back_in_as_a_link() {
    let c = Collector::start();
    let flow = pipeline(&c, "checkout-worker");
    let inventory = pipeline(&c, "inventory");

    let run = flow.new_run();
    let attempt = run.start_attempt("reserve", 0);
    let headers = HashMap::from([("traceparent".to_string(), attempt.traceparent())]);
    let downstream_tp = downstream_handles(&headers, &inventory);
    let attempt_id = attempt.span_id().to_string();
    attempt.success();
    run.end().unwrap();

    // The next run was triggered by the downstream span (e.g. a callback).
    let next = flow.new_run().with_traceparent(downstream_tp.clone());
    next.start_attempt("notify", 0).success();
    next.end().unwrap();
    inventory.shutdown(Duration::from_secs(15)).unwrap();
    flow.shutdown(Duration::from_secs(15)).unwrap();

    let spans = arrived(&c, run.trace_id(), 3);
    let refs: Vec<&Span> = spans.iter().collect();
    check_nested_tree(&refs).unwrap();
    let stock = refs.iter().find(|s| s.name == "GET /stock").unwrap();
    assert_eq!(stock.parent_id, attempt_id, "under the calling attempt");
    assert_eq!(
        stock.resource.get("service.name").map(String::as_str),
        Some("inventory")
    );

    let later = arrived(&c, next.trace_id(), 2);
    let root = later.iter().find(|s| s.parent_id.is_empty()).unwrap();
    assert_eq!(
        root.links,
        [(run.trace_id().to_string(), stock.span_id.clone())],
        "linked to the downstream span, in a trace of its own"
    );
    assert_eq!(
        downstream_tp,
        format!("00-{}-{}-01", run.trace_id(), stock.span_id)
    );
}

#[test]
fn inbound_traceparent_from_code_and_from_a_bridged_event_links_the_root() {
    let c = Collector::start();
    let flow = pipeline(&c, "checkout-worker");
    // The HTTP request that triggered the runs, as its own client sent it.
    let upstream_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let upstream_span = "00f067aa0ba902b7";
    let tp = format!("00-{upstream_trace}-{upstream_span}-01");

    let from_code = flow.new_run().with_traceparent(tp.clone());
    from_code.start_attempt("charge", 0).success();
    from_code.end().unwrap();

    let bridged = "5cf92f3577b34da6a3ce929d0e0e4737";
    let ev = FlowEvent::builder("node_success", unix_now())
        .node("charge", "charge-1")
        .trace_id(bridged)
        .latency_ms(3.0)
        .extra("traceparent", tp.as_str())
        .build()
        .unwrap();
    flow.record(ev).unwrap();
    flow.end_run(bridged).unwrap();
    flow.shutdown(Duration::from_secs(15)).unwrap();

    for trace in [from_code.trace_id(), bridged] {
        let spans = arrived(&c, trace, 2);
        let root = spans.iter().find(|s| s.parent_id.is_empty()).unwrap();
        assert_eq!(root.trace_id, trace, "the run keeps its own trace id");
        assert_eq!(
            root.links,
            [(upstream_trace.to_string(), upstream_span.to_string())]
        );
        let attempt = spans.iter().find(|s| !s.parent_id.is_empty()).unwrap();
        assert!(attempt.links.is_empty());
    }
    // Nothing joined the upstream trace itself.
    assert!(c.received().trace(upstream_trace).is_empty());
}
