//! Collector outages against the real collector: down at start, killed
//! mid-run and restarted. An outage shorter than the span buffer loses
//! nothing; beyond it, drops are counted exactly and reported.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use flowtel::{FlowEvent, Flowtel, Protocol};
use flowtel_integration_tests::collector::{free_port, Collector};
use flowtel_integration_tests::debuglog::Received;
use flowtel_integration_tests::unix_now;

/// `runs` runs of `nodes` successful attempts each: `runs * (nodes + 1)`
/// spans once every run is ended.
fn events(first_run: u32, runs: u32, nodes: u32) -> Vec<FlowEvent> {
    let t = unix_now() - 10.0;
    let mut v = Vec::new();
    for r in first_run..first_run + runs {
        for n in 0..nodes {
            v.push(
                FlowEvent::builder(
                    "node_success",
                    t + f64::from(r) * 0.01 + f64::from(n) * 0.001,
                )
                .node(format!("node{n}"), format!("node{n}"))
                .trace_id(format!("{:032x}", 0xabc0_0000_u64 + u64::from(r)))
                .latency_ms(0.5)
                .build()
                .unwrap(),
            );
        }
    }
    v
}

fn span_ids(r: &Received) -> HashSet<String> {
    r.spans.iter().map(|s| s.span_id.clone()).collect()
}

/// Wait until the runs have ended (idle) and their spans were made: `n`
/// spans created. Polls with a deadline, never a fixed sleep.
fn wait_created(flowtel: &Flowtel, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while flowtel.stats().spans_created < n {
        assert!(
            Instant::now() < deadline,
            "runs did not end: {:?}",
            flowtel.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn pipeline(grpc_port: u16, buffer: usize) -> Flowtel {
    Flowtel::builder()
        .with_endpoint(format!("http://127.0.0.1:{grpc_port}"))
        .with_protocol(Protocol::Grpc)
        .with_export_timeout(Duration::from_millis(500))
        .with_max_buffered_spans(buffer)
        .with_run_idle_timeout(Duration::from_millis(50))
        .build()
        .unwrap()
}

#[test]
fn collector_down_at_start_loses_nothing() {
    let (gp, hp) = (free_port(), free_port());
    let flowtel = pipeline(gp, 10_000);
    for e in events(0, 50, 4) {
        flowtel.record(e).unwrap();
    }
    // The runs end (idle) and their spans wait in the buffer: nothing listens.
    wait_created(&flowtel, 250);
    assert!(
        flowtel.flush(Duration::from_secs(2)).is_err(),
        "no collector yet"
    );

    let collector = Collector::start_on(gp, hp);
    flowtel.flush(Duration::from_secs(30)).unwrap();
    let r = collector.wait_for(Duration::from_secs(10), |r| span_ids(r).len() >= 250);
    assert_eq!(span_ids(&r).len(), 250, "every span of the outage arrived");
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    let s = flowtel.stats();
    assert_eq!(s.spans_dropped, 0, "{s:?}");
    assert!(s.export_failures > 0, "the outage was seen: {s:?}");
}

#[test]
fn collector_killed_mid_run_and_restarted_loses_nothing() {
    let mut first = Collector::start();
    let (gp, hp) = (first.grpc_port, first.http_port);
    let flowtel = pipeline(gp, 10_000);
    for e in events(0, 20, 4) {
        flowtel.record(e).unwrap();
    }
    wait_created(&flowtel, 100);
    flowtel.flush(Duration::from_secs(10)).unwrap();
    let before = first.wait_for(Duration::from_secs(10), |r| span_ids(r).len() >= 100);

    first.kill();
    for e in events(100, 30, 4) {
        flowtel.record(e).unwrap();
    }
    wait_created(&flowtel, 250);
    assert!(
        flowtel.flush(Duration::from_secs(2)).is_err(),
        "collector is down"
    );

    let second = Collector::start_on(gp, hp);
    flowtel.flush(Duration::from_secs(30)).unwrap();
    let after = second.wait_for(Duration::from_secs(10), |r| span_ids(r).len() >= 150);
    let all: HashSet<String> = span_ids(&before)
        .union(&span_ids(&after))
        .cloned()
        .collect();
    assert_eq!(
        all.len(),
        250,
        "before kill {} + after restart {}",
        span_ids(&before).len(),
        span_ids(&after).len()
    );
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(flowtel.stats().spans_dropped, 0);
}

#[test]
fn beyond_the_buffer_drops_are_counted_exactly_and_reported() {
    let (gp, hp) = (free_port(), free_port());
    let flowtel = pipeline(gp, 40);
    for e in events(0, 50, 4) {
        flowtel.record(e).unwrap();
    }
    wait_created(&flowtel, 250);
    let collector = Collector::start_on(gp, hp);
    flowtel.shutdown(Duration::from_secs(30)).unwrap();
    let s = flowtel.stats();
    let r = collector.wait_for(Duration::from_secs(10), |r| {
        r.points
            .iter()
            .any(|p| p.metric == "flowtel.sdk.spans.dropped")
    });
    let arrived = span_ids(&r).len() as u64;
    assert_eq!(s.spans_created, 250);
    assert!(s.spans_dropped > 0, "{s:?}");
    // Exact: every span either arrived or was counted as dropped.
    assert_eq!(arrived + s.spans_dropped, s.spans_created, "{s:?}");
    assert_eq!(arrived, s.spans_exported);
    // The self-metric reports the same count.
    let dropped_metric: f64 = r
        .latest_points()
        .iter()
        .filter(|p| p.metric == "flowtel.sdk.spans.dropped")
        .filter_map(|p| p.value)
        .sum();
    assert_eq!(
        dropped_metric as u64,
        s.spans_dropped,
        "{}",
        collector.raw_log().len()
    );
}
