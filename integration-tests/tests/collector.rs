//! The realistic scenario over OTLP/gRPC and OTLP/HTTP to a real collector
//! (rotel-agent) on loopback, asserting on what the collector received.

use std::time::Duration;

use flowtel::{Flowtel, Protocol};
use flowtel_integration_tests::assertions::check_scenario;
use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::debuglog::Received;
use flowtel_integration_tests::scenario::{realistic, Scenario};
use flowtel_integration_tests::unix_now;

fn expected_spans(s: &Scenario) -> usize {
    s.attempts.len() + s.run_events.len()
}

fn complete(r: &Received, s: &Scenario) -> bool {
    r.spans.len() >= expected_spans(s) && r.points.iter().any(|p| p.metric == "flow.node.duration")
}

fn send_and_check(protocol: Protocol) {
    let collector = Collector::start();
    let endpoint = match protocol {
        Protocol::Grpc => collector.grpc_endpoint(),
        _ => collector.http_endpoint(),
    };
    let scenario = realistic(unix_now() - 30.0);
    let flowtel = Flowtel::builder()
        .with_endpoint(endpoint)
        .with_protocol(protocol)
        .with_service_name("flowtel-it")
        .with_flow_name("support-triage")
        .build()
        .unwrap();
    for e in &scenario.events {
        flowtel.record(e.clone()).unwrap();
    }
    flowtel.shutdown(Duration::from_secs(15)).unwrap();
    let stats = flowtel.stats();
    assert_eq!(stats.events_dropped(), 0, "{stats:?}");
    assert_eq!(
        stats.spans_exported as usize,
        expected_spans(&scenario),
        "{stats:?}"
    );

    let r = collector.wait_for(Duration::from_secs(15), |r| complete(r, &scenario));
    if let Err(e) = check_scenario(&r, &scenario) {
        panic!(
            "{protocol:?}: {e}\n--- collector log ---\n{}",
            collector.raw_log()
        );
    }
    assert_eq!(r.spans.len(), expected_spans(&scenario), "no extra spans");
    for s in &r.spans {
        assert_eq!(
            s.resource.get("service.name").map(String::as_str),
            Some("flowtel-it")
        );
    }
}

#[test]
fn scenario_over_grpc() {
    send_and_check(Protocol::Grpc);
}

#[test]
fn scenario_over_http_protobuf() {
    send_and_check(Protocol::HttpProtobuf);
}

/// gRPC export with the caller inside a tokio current-thread runtime: the
/// flavour where opentelemetry-rust's own flush deadlocks.
#[tokio::test(flavor = "current_thread")]
async fn grpc_from_a_current_thread_runtime() {
    let collector = Collector::start();
    let scenario = realistic(unix_now() - 30.0);
    let flowtel = Flowtel::builder()
        .with_endpoint(collector.grpc_endpoint())
        .build()
        .unwrap();
    for e in &scenario.events {
        flowtel.record(e.clone()).unwrap();
    }
    flowtel.flush(Duration::from_secs(10)).unwrap();
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    let r = collector.wait_for(Duration::from_secs(15), |r| complete(r, &scenario));
    check_scenario(&r, &scenario).unwrap();
}
