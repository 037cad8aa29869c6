//! A pre-fork server: the pipeline is built in the parent, the process
//! forks, and the child records through the handle it inherited. The child
//! gets a pipeline of its own (its threads did not survive the fork):
//! `record()` neither hangs nor loses events, and both processes' spans reach
//! the real collector. (One test per file: forking a process that runs other
//! tests' threads would copy their state too.)

use std::time::Duration;

use flowtel::{FlowEvent, Flowtel, Protocol};
use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::fork::run_in_forked_child;
use flowtel_integration_tests::unix_now;

fn run_events(run: u64, nodes: u64) -> Vec<FlowEvent> {
    let t = unix_now() - 5.0;
    (0..nodes)
        .map(|n| {
            FlowEvent::builder("node_success", t + n as f64 * 0.001)
                .node(format!("node{n}"), format!("node{n}"))
                .trace_id(format!("{:032x}", 0xf0e4_0000 + run))
                .latency_ms(0.5)
                .build()
                .unwrap()
        })
        .collect()
}

/// The child's work; returns its exit code.
fn child(flowtel: Flowtel) -> i32 {
    for e in run_events(2, 3) {
        if flowtel.record(e).is_err() {
            return 3;
        }
    }
    let s = flowtel.stats();
    if s.events_recorded != 3 {
        eprintln!("child: stats are not the child's own pipeline's: {s:?}");
        return 4;
    }
    // Dropping the inherited handle flushes the child's pipeline.
    drop(flowtel);
    0
}

#[test]
fn a_forked_child_records_through_its_own_pipeline() {
    let collector = Collector::start();
    let flowtel = Flowtel::builder()
        .with_endpoint(collector.grpc_endpoint())
        .with_protocol(Protocol::Grpc)
        .build()
        .unwrap();
    for e in run_events(1, 2) {
        flowtel.record(e).unwrap();
    }

    let flowtel = run_in_forked_child(flowtel, child);

    // The parent's pipeline still works after the fork.
    for e in run_events(3, 1) {
        flowtel.record(e).unwrap();
    }
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(flowtel.stats().events_recorded, 3, "the parent's own count");

    // Parent: runs 1 and 3 (2 + 1 attempts, 2 roots); child: run 2 (3 + 1).
    let r = collector.wait_for(Duration::from_secs(10), |r| r.spans.len() >= 9);
    for (run, spans) in [(1u64, 3), (2, 4), (3, 2)] {
        let trace = format!("{:032x}", 0xf0e4_0000 + run);
        assert_eq!(r.trace(&trace).len(), spans, "run {run}");
    }
}
