//! A service that drops its last handle without calling `shutdown()` and
//! exits at once loses nothing: the drop flushes (within
//! `DROP_FLUSH_TIMEOUT`), as the OpenTelemetry SDK's providers do. Checked
//! in a real child process against the real collector.

use std::process::Command;
use std::time::{Duration, Instant};

use flowtel::{FlowEvent, Flowtel, Protocol};
use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::unix_now;

const RUNS: u64 = 10;
const NODES: u64 = 3;

/// The child's part (run by `the_last_drop_flushes_before_the_process_exits`
/// in a process of its own; ignored otherwise).
#[test]
#[ignore = "run as a child process by the_last_drop_flushes_before_the_process_exits"]
fn child_records_and_exits_without_shutdown() {
    let endpoint = std::env::var("FLOWTEL_TEST_ENDPOINT").expect("run by the parent test");
    let flowtel = Flowtel::builder()
        .with_endpoint(endpoint)
        .with_protocol(Protocol::Grpc)
        .build()
        .unwrap();
    let t = unix_now() - 5.0;
    for r in 0..RUNS {
        for n in 0..NODES {
            let ev = FlowEvent::builder("node_success", t + r as f64 * 0.01 + n as f64 * 0.001)
                .node(format!("node{n}"), format!("node{n}"))
                .trace_id(format!("{:032x}", 0xe417_0000 + r))
                .latency_ms(0.5)
                .build()
                .unwrap();
            flowtel.record(ev).unwrap();
        }
    }
    // No shutdown, no flush: the runs are still open (30 s idle timeout).
    drop(flowtel);
    // The process exits as soon as this test returns.
}

#[test]
fn the_last_drop_flushes_before_the_process_exits() {
    let collector = Collector::start();
    let started = Instant::now();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_records_and_exits_without_shutdown",
            "--ignored",
            "--nocapture",
        ])
        .env("FLOWTEL_TEST_ENDPOINT", collector.grpc_endpoint())
        .status()
        .unwrap();
    assert!(status.success(), "child failed: {status}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the drop is bounded"
    );
    let expected = (RUNS * (NODES + 1)) as usize;
    let r = collector.wait_for(Duration::from_secs(10), |r| r.spans.len() >= expected);
    assert_eq!(
        r.spans.len(),
        expected,
        "every attempt and every run's root arrived although the process exited"
    );
    assert!(
        r.points.iter().any(|p| p.metric == "flow.events"),
        "the metrics were flushed too"
    );
}
