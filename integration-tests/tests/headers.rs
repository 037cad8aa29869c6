//! Auth headers from OTEL_EXPORTER_OTLP_HEADERS reach the collector, next to
//! those set in code, over HTTP and gRPC. rotel does not log request
//! headers, so this uses the fault receiver (which answers any number of
//! requests: a metrics request may well come first). Its own binary: it
//! sets an environment variable.

use std::time::Duration;

use flowtel::{FlowEvent, Flowtel, Protocol};
use flowtel_integration_tests::fault::{FaultReceiver, Request, Signal};

fn send_one(endpoint: String, protocol: Protocol) {
    let f = Flowtel::builder()
        .with_endpoint(endpoint)
        .with_protocol(protocol)
        .with_header("x-from-code", "yes")
        .build()
        .unwrap();
    f.record(
        FlowEvent::builder("node_success", 1_795_305_121.5)
            .node("a", "a")
            .trace_id("3e512c5b0a184257a25c215d19544e6a")
            .latency_ms(1.0)
            .build()
            .unwrap(),
    )
    .unwrap();
    f.flush(Duration::from_secs(10)).unwrap();
    f.shutdown(Duration::from_secs(5)).unwrap();
}

fn assert_headers(r: &Request) {
    assert_eq!(r.header("authorization"), Some("Bearer s3cr3t"), "{r:?}");
    assert_eq!(r.header("x-tenant"), Some("acme"), "{r:?}");
    assert_eq!(r.header("x-from-code"), Some("yes"), "{r:?}");
}

#[test]
fn headers_from_the_environment_and_code_are_sent() {
    // One test in this binary: nothing else reads the environment meanwhile.
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "authorization=Bearer%20s3cr3t,x-tenant=acme",
    );
    let rx = FaultReceiver::start();

    send_one(rx.http_endpoint(), Protocol::HttpProtobuf);
    let traces = rx.wait_for(Signal::Traces, Duration::from_secs(10), |r| !r.is_empty());
    assert!(!traces.is_empty(), "no traces request: {:?}", rx.requests());
    assert_headers(&traces[0]);
    // Metrics requests carry them too (the shutdown exports metrics).
    let metrics = rx.requests_for(Signal::Metrics);
    assert!(!metrics.is_empty(), "{:?}", rx.requests());
    metrics.iter().for_each(assert_headers);

    let grpc = FaultReceiver::start();
    send_one(grpc.grpc_endpoint(), Protocol::Grpc);
    let traces = grpc.wait_for(Signal::Traces, Duration::from_secs(10), |r| !r.is_empty());
    assert!(
        !traces.is_empty(),
        "no traces request: {:?}",
        grpc.requests()
    );
    assert_headers(&traces[0]);
}
