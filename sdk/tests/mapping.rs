//! End-to-end through the pipeline into the in-memory exporter: the mapping
//! rules users rely on.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use flowtel::{FlowEvent, Flowtel, InMemory, PointValue, SpanData};
use flowtel_semconv::{attr, metric};
use opentelemetry::trace::{SpanId, Status};

mod common;
use common::*;

fn run(events: Vec<FlowEvent>) -> (Vec<SpanData>, InMemory, Flowtel) {
    let sink = InMemory::new();
    let flowtel = Flowtel::builder()
        .with_flow_name("triage-flow")
        .with_in_memory(&sink)
        .build()
        .unwrap();
    for e in events {
        flowtel.record(e).unwrap();
    }
    let stats_before = flowtel.clone();
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    (sink.spans(), sink, stats_before)
}

#[test]
fn one_trace_per_run_one_span_per_attempt_with_exact_timing() {
    let (spans, _, _) = run(scenario());
    let traces: HashSet<String> = spans
        .iter()
        .map(|s| s.span_context.trace_id().to_string())
        .collect();
    assert_eq!(traces, HashSet::from([T1.to_string(), T2.to_string()]));

    let attempts = |node: &str| -> Vec<&SpanData> {
        let mut v: Vec<&SpanData> = spans.iter().filter(|s| s.name == node).collect();
        v.sort_by_key(|s| attr_of(s, attr::NODE_ATTEMPT));
        v
    };
    assert_eq!(attempts("fetch").len(), 1);
    assert_eq!(attempts("triage").len(), 2);
    assert_eq!(attempts("summarize").len(), 2);
    assert_eq!(attempts("untraced").len(), 0, "no trace id, no span");

    let fetch = attempts("fetch")[0];
    let end_us = (BASE + 0.010) * 1e6;
    assert_eq!(micros(fetch.end_time), end_us.round() as i128);
    assert_eq!(
        micros(fetch.start_time),
        (end_us - 10_000.0).round() as i128
    );
    assert_eq!(fetch.status, Status::Unset);

    let triage = attempts("triage");
    assert!(matches!(triage[0].status, Status::Error { .. }));
    assert_eq!(
        attr_of(triage[0], attr::ERROR_TYPE).as_deref(),
        Some("ValueError")
    );
    let exc = &triage[0].events.events[0];
    assert_eq!(exc.name, "exception");
    let exc_attrs: HashMap<String, String> = exc
        .attributes
        .iter()
        .map(|kv| (kv.key.to_string(), kv.value.as_str().into_owned()))
        .collect();
    assert_eq!(exc_attrs["exception.type"], "ValueError");
    assert_eq!(exc_attrs["exception.message"], "upstream 503");
    assert_eq!(triage[1].status, Status::Unset);
    assert_eq!(attr_of(triage[1], attr::NODE_ATTEMPT).as_deref(), Some("1"));

    for s in attempts("summarize") {
        assert_eq!(attr_of(s, attr::ERROR_TYPE).as_deref(), Some("timeout"));
        assert_eq!(attr_of(s, attr::NODE_OUTCOME).as_deref(), Some("timeout"));
    }
}

#[test]
fn every_trace_is_one_tree_with_a_root_named_after_the_flow() {
    let (spans, _, _) = run(scenario());
    let ids: Vec<SpanId> = spans.iter().map(|s| s.span_context.span_id()).collect();
    let unique: HashSet<SpanId> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "duplicate span ids");
    for t in [T1, T2] {
        let in_trace: Vec<&SpanData> = spans
            .iter()
            .filter(|s| s.span_context.trace_id().to_string() == t)
            .collect();
        let roots: Vec<&&SpanData> = in_trace
            .iter()
            .filter(|s| s.parent_span_id == SpanId::INVALID)
            .collect();
        assert_eq!(roots.len(), 1, "one root in {t}");
        assert_eq!(roots[0].name, "triage-flow");
        let root_id = roots[0].span_context.span_id();
        for s in &in_trace {
            assert!(
                s.parent_span_id == SpanId::INVALID || s.parent_span_id == root_id,
                "dangling parent in {}",
                s.name
            );
            assert!(s.start_time >= roots[0].start_time && s.end_time <= roots[0].end_time);
        }
    }
}

#[test]
fn retries_failures_cancellations_and_deadlines_are_visible() {
    let (spans, _, _) = run(scenario());
    let root = |t: &str| {
        spans
            .iter()
            .find(|s| {
                s.parent_span_id == SpanId::INVALID && s.span_context.trace_id().to_string() == t
            })
            .unwrap()
    };
    let r1 = root(T1);
    let names: Vec<&str> = r1.events.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(
        names,
        ["flow.node.retry", "flow.node.retry", "flow.node.failed"]
    );
    let retry = &r1.events.events[0];
    assert!(retry
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == attr::RETRY_DELAY && kv.value.as_str() == "0.5"));
    match &r1.status {
        Status::Error { description } => assert!(description.starts_with("NODE_TIMEOUT")),
        s => panic!("root status {s:?}"),
    }
    assert_eq!(
        attr_of(r1, attr::ERROR_TYPE).as_deref(),
        Some("NODE_TIMEOUT")
    );

    let r2 = root(T2);
    let names: Vec<&str> = r2.events.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "flow.trace_cancel_start",
            "flow.node_trace_cancelled",
            "flow.deadline_skip",
            "flow.trace_cancel_finish"
        ]
    );
    assert_eq!(attr_of(r2, attr::RUN_CANCELLED).as_deref(), Some("true"));
    let slow = spans.iter().find(|s| s.name == "slow").unwrap();
    assert_eq!(
        attr_of(slow, attr::NODE_OUTCOME).as_deref(),
        Some("cancelled")
    );
    assert_eq!(micros(slow.start_time), (BASE * 1e6 + 1e6).round() as i128);
}

#[test]
fn metrics_count_attempts_once_and_never_carry_ids() {
    let (_, sink, flowtel) = run(scenario());
    let points = sink.metric_points();
    for p in &points {
        for (k, v) in &p.attributes {
            assert!(
                k != "trace_id" && k != attr::NODE_ID && k != attr::RUN_ID,
                "{p:?}"
            );
            assert!(
                !v.contains(T1) && !v.contains(T2) && !v.ends_with("-id"),
                "{p:?}"
            );
        }
    }
    let hist_count: u64 = points
        .iter()
        .filter(|p| p.name == metric::NODE_DURATION)
        .map(|p| match p.value {
            PointValue::Histogram { count, .. } => count,
            _ => panic!("not a histogram"),
        })
        .sum();
    // fetch 1 + triage 2 + summarize 2 + untraced 1; node_failed not counted.
    assert_eq!(hist_count, 6);
    let sum_of = |name: &str, key: &str, val: &str| -> f64 {
        points
            .iter()
            .filter(|p| p.name == name && p.attribute(key) == Some(val))
            .map(|p| match p.value {
                PointValue::Sum(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(sum_of(metric::EVENTS, attr::EVENT_TYPE, "node_retry"), 2.0);
    assert_eq!(
        sum_of(metric::EVENTS, attr::EVENT_TYPE, "remote_call_start"),
        1.0
    );
    assert_eq!(
        sum_of(metric::NODE_FAILURES, attr::ERROR_TYPE, "NODE_TIMEOUT"),
        1.0
    );
    // Every started attempt ended (terminal, cancelled): nothing left active.
    let active: f64 = points
        .iter()
        .filter(|p| p.name == metric::NODE_ACTIVE)
        .map(|p| match p.value {
            PointValue::Sum(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(active, 0.0);
    let s = flowtel.stats();
    assert_eq!(s.events_recorded, 17);
    assert_eq!(s.events_dropped(), 0);
    assert_eq!(s.spans_exported, s.spans_created);
}

#[test]
fn cardinality_overflow_is_reported_not_silent() {
    let sink = InMemory::new();
    let flowtel = Flowtel::builder()
        .with_in_memory(&sink)
        .with_cardinality_limit(5)
        .build()
        .unwrap();
    for i in 0..20 {
        flowtel
            .record(with_latency(
                event("node_success", BASE, &format!("n{i}"), None, 0),
                1.0,
            ))
            .unwrap();
    }
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    let points = sink.metric_points();
    let nodes: HashSet<&str> = points
        .iter()
        .filter(|p| p.name == metric::EVENTS)
        .filter_map(|p| p.attribute(attr::NODE_NAME))
        .collect();
    assert_eq!(nodes.len(), 6, "5 values + _overflow: {nodes:?}");
    assert!(nodes.contains("_overflow"));
    let overflow = points
        .iter()
        .find(|p| p.name == metric::SDK_CARDINALITY_OVERFLOW)
        .expect("overflow self-metric");
    assert_eq!(
        overflow.attribute(attr::OVERFLOW_ATTRIBUTE),
        Some(attr::NODE_NAME)
    );
    assert!(matches!(overflow.value, PointValue::Sum(v) if v >= 15.0));
    assert!(flowtel.stats().cardinality_overflows >= 15);
}

#[test]
fn terminal_without_start_duplicates_late_events_and_open_attempts() {
    let sink = InMemory::new();
    let flowtel = Flowtel::builder().with_in_memory(&sink).build().unwrap();
    let term = with_latency(event("node_success", BASE + 1.0, "a", Some(T1), 0), 100.0);
    flowtel.record(term.clone()).unwrap(); // no node_start ever seen
    flowtel.record(term).unwrap(); // exact duplicate
    flowtel
        .record(event("node_start", BASE + 2.0, "b", Some(T1), 0))
        .unwrap(); // never ends
    flowtel.end_run(T1).unwrap();
    // A late event after the root was exported: a span, never a second root.
    flowtel
        .record(with_latency(
            event("node_success", BASE + 3.0, "c", Some(T1), 0),
            5.0,
        ))
        .unwrap();
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    let spans = sink.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names.iter().filter(|n| **n == "a").count(), 1, "{names:?}");
    assert_eq!(
        names.iter().filter(|n| **n == "flow").count(),
        1,
        "{names:?}"
    );
    assert_eq!(names.iter().filter(|n| **n == "c").count(), 1, "{names:?}");
    let b = spans
        .iter()
        .find(|s| s.name == "b")
        .expect("open attempt exported");
    assert_eq!(
        attr_of(b, attr::NODE_OUTCOME).as_deref(),
        Some("incomplete")
    );
    let root = spans.iter().find(|s| s.name == "flow").unwrap();
    assert_eq!(
        attr_of(root, attr::RUN_END_REASON).as_deref(),
        Some("explicit")
    );
    assert_eq!(flowtel.stats().events_duplicate, 1);
    let a = spans.iter().find(|s| s.name == "a").unwrap();
    assert_eq!(micros(a.end_time) - micros(a.start_time), 100_000);
}

#[test]
fn non_hex_trace_ids_hash_and_keep_the_original() {
    let (spans, _, _) = run(vec![with_latency(
        event("node_success", BASE, "a", Some("order-42"), 0),
        1.0,
    )]);
    assert_eq!(spans.len(), 2);
    for s in &spans {
        assert_eq!(attr_of(s, attr::RUN_ID).as_deref(), Some("order-42"));
        assert_ne!(s.span_context.trace_id().to_string(), "order-42");
    }
    assert_eq!(
        spans[0].span_context.trace_id(),
        spans[1].span_context.trace_id()
    );
}

#[test]
fn invalid_events_are_rejected_and_counted() {
    let sink = InMemory::new();
    let flowtel = Flowtel::builder().with_in_memory(&sink).build().unwrap();
    let mut bad = event("node_success", BASE, "a", Some(T1), 0);
    bad.latency_ms = Some(f64::NAN);
    let err = flowtel.record(bad).unwrap_err();
    assert!(err.to_string().contains("latency_ms"), "{err}");
    flowtel.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(flowtel.stats().events_invalid, 1);
    assert!(matches!(
        flowtel.record(event("node_start", BASE, "a", None, 0)),
        Err(flowtel::RecordError::ShutDown)
    ));
    assert_eq!(
        flowtel.shutdown(Duration::from_secs(1)),
        Err(flowtel::FlushError::ShutDown)
    );
}

#[test]
fn attempt_guard_records_start_and_end_with_a_monotonic_duration() {
    let sink = InMemory::new();
    let flowtel = Flowtel::builder().with_in_memory(&sink).build().unwrap();
    let a = flowtel.start_attempt(T1, "guarded", 0);
    std::thread::sleep(Duration::from_millis(20));
    a.success();
    {
        let _dropped = flowtel.start_attempt(T1, "dropped", 0);
    }
    flowtel.shutdown(Duration::from_secs(5)).unwrap();
    let spans = sink.spans();
    let g = spans.iter().find(|s| s.name == "guarded").unwrap();
    let d = g.end_time.duration_since(g.start_time).unwrap();
    assert!(d >= Duration::from_millis(20), "{d:?}");
    let dropped = spans.iter().find(|s| s.name == "dropped").unwrap();
    assert_eq!(
        attr_of(dropped, attr::ERROR_TYPE).as_deref(),
        Some("AttemptDropped")
    );
}

/// Event counts are summed on the mapping thread and handed to the
/// instrument whenever its queue runs dry (and every 64 events): a
/// periodic export sees every event of a quiet moment without any flush.
#[test]
fn event_counts_reach_periodic_exports_without_a_flush() {
    let sink = InMemory::new();
    let flowtel = Flowtel::builder()
        .with_in_memory(&sink)
        .with_metric_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    // Fewer than 64: only the queue running dry hands them over.
    for i in 0..10 {
        flowtel
            .record(event("node_start", BASE + f64::from(i), "a", Some(T1), 0))
            .unwrap();
    }
    let counted = || -> f64 {
        sink.metric_points()
            .iter()
            .filter(|p| p.name == metric::EVENTS)
            .map(|p| match p.value {
                PointValue::Sum(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while counted() < 10.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no export counted the 10 events without a flush: {}",
            counted()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(counted(), 10.0);
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(counted(), 10.0, "counted once, also after the final export");
}
