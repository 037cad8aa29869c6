//! A pre-fork server whose pipeline serves Prometheus metrics on a fixed
//! port: the forked child restarts a pipeline of its own, which cannot
//! take the parent's port. It records anyway (no endpoint of its own, a
//! warning), and the parent keeps serving. (One test per file: forking
//! copies other tests' threads' state.)

use std::time::{Duration, Instant};

use flowtel::{Exporter, FlowEvent, Flowtel};
use flowtel_integration_tests::collector::free_port;
use flowtel_integration_tests::fork::run_in_forked_child;
use flowtel_integration_tests::{http, unix_now};

fn event(node: &str) -> FlowEvent {
    FlowEvent::builder("node_success", unix_now())
        .node(node, node)
        .trace_id("f0e40000000000000000000000000001")
        .latency_ms(0.5)
        .build()
        .unwrap()
}

/// The child's work; returns its exit code.
fn child(flowtel: Flowtel) -> i32 {
    if flowtel.record(event("child")).is_err() {
        return 3;
    }
    if flowtel.prometheus_address().is_some() {
        return 4;
    }
    if flowtel.stats().events_recorded != 1 {
        return 5;
    }
    drop(flowtel);
    0
}

#[test]
fn a_forked_child_records_while_the_parent_keeps_the_port() {
    let port = free_port();
    let flowtel = Flowtel::builder()
        .with_traces_exporter(Exporter::None)
        .with_metrics_exporters([Exporter::Prometheus])
        .with_prometheus_address(format!("127.0.0.1:{port}"))
        .build()
        .unwrap();
    let addr = flowtel.prometheus_address().unwrap();
    flowtel.record(event("parent")).unwrap();

    let flowtel = run_in_forked_child(flowtel, child);

    // The parent serves its own metrics, on its port.
    flowtel.flush(Duration::from_secs(10)).unwrap();
    let t = Instant::now();
    loop {
        let body = http::get(addr, "/metrics", &[]).unwrap().body;
        if body.contains("flow_node_name=\"parent\"") {
            assert!(!body.contains("flow_node_name=\"child\""), "{body}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{body}");
        std::thread::sleep(Duration::from_millis(20));
    }
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
}
