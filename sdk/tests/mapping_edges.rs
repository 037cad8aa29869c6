//! The mapping under real timing and imperfect input: long nodes, attempts
//! that never end, duplicates, out-of-order starts, node ids without names,
//! state and series limits, and runs split across pipelines.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use flowtel::{FlowEvent, Flowtel, FlowtelBuilder, InMemory, PointValue, SpanData};
use flowtel_semconv::{attr, metric};
use opentelemetry::trace::{SpanId, Status};

mod common;
use common::*;

fn pipeline(sink: &InMemory, b: FlowtelBuilder) -> Flowtel {
    b.with_flow_name("triage-flow")
        .with_in_memory(sink)
        .build()
        .unwrap()
}

/// Everything about a span that must agree when its id is exported twice.
fn content(s: &SpanData) -> String {
    let mut attrs: Vec<String> = s
        .attributes
        .iter()
        .map(|kv| format!("{}={}", kv.key, kv.value))
        .collect();
    attrs.sort();
    let events: Vec<String> = s.events.iter().map(|e| e.name.to_string()).collect();
    format!(
        "{} {:?} {:?} {:?} {} {attrs:?} {events:?}",
        s.name, s.start_time, s.end_time, s.status, s.parent_span_id
    )
}

/// No span id exported twice with different content; returns the spans by id.
fn assert_unique_ids(spans: &[SpanData]) -> HashMap<SpanId, &SpanData> {
    let mut by_id: HashMap<SpanId, &SpanData> = HashMap::new();
    for s in spans {
        if let Some(prev) = by_id.insert(s.span_context.span_id(), s) {
            assert_eq!(
                content(prev),
                content(s),
                "span id {} exported twice with different content",
                s.span_context.span_id()
            );
        }
    }
    by_id
}

fn roots(spans: &[SpanData]) -> Vec<&SpanData> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == SpanId::INVALID)
        .collect()
}

/// Flush, then poll the sink until `cond` holds (the export is async).
fn wait_for(flowtel: &Flowtel, sink: &InMemory, cond: impl Fn(&[SpanData]) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        flowtel.flush(Duration::from_secs(5)).unwrap();
        if cond(&sink.spans()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn points(sink: &InMemory, name: &str) -> Vec<flowtel::MetricPoint> {
    sink.metric_points()
        .into_iter()
        .filter(|p| p.name == name)
        .collect()
}

fn sum(p: &flowtel::MetricPoint) -> f64 {
    match p.value {
        PointValue::Sum(v) | PointValue::Gauge(v) => v,
        PointValue::Histogram { count, .. } => count as f64,
        _ => panic!("unexpected point {p:?}"),
    }
}

#[test]
fn a_node_longer_than_the_idle_timeout_keeps_its_run_whole() {
    let sink = InMemory::new();
    let idle = Duration::from_millis(40);
    let flowtel = pipeline(&sink, Flowtel::builder().with_run_idle_timeout(idle));
    flowtel
        .record(event("node_start", BASE, "llm", Some(T1), 0))
        .unwrap();
    // Many idle timeouts pass while the node runs (the scenario itself is
    // the passing of time, so this wait is the test, not a synchronisation).
    std::thread::sleep(idle * 10);
    flowtel.flush(Duration::from_secs(5)).unwrap();
    assert!(
        sink.spans().is_empty(),
        "nothing may be exported while the attempt is open: {:?}",
        sink.spans().iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    flowtel
        .record(with_latency(
            event("node_error", BASE + 120.0, "llm", Some(T1), 0),
            120_000.0,
        ))
        .unwrap();
    flowtel
        .record(with_extra(
            with_latency(
                event("node_failed", BASE + 120.001, "llm", Some(T1), 0),
                120_000.0,
            ),
            "flow_error",
            serde_json::json!({"code": "NODE_EXCEPTION", "message": "boom"}),
        ))
        .unwrap();
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    let spans = sink.spans();
    assert_unique_ids(&spans);
    let llm: Vec<_> = spans.iter().filter(|s| s.name == "llm").collect();
    assert_eq!(llm.len(), 1, "one span for the one attempt");
    assert_eq!(
        attr_of(llm[0], attr::NODE_OUTCOME).as_deref(),
        Some("error")
    );
    let r = roots(&spans);
    assert_eq!(r.len(), 1);
    assert!(
        matches!(r[0].status, Status::Error { .. }),
        "node_failed marks the root"
    );
    assert!(
        r[0].end_time >= llm[0].end_time,
        "the root outlives its child"
    );
    assert!(r[0].start_time <= llm[0].start_time);
}

#[test]
fn an_attempt_open_beyond_its_age_limit_is_given_up_and_counted() {
    let sink = InMemory::new();
    let flowtel = pipeline(
        &sink,
        Flowtel::builder()
            .with_run_idle_timeout(Duration::from_millis(20))
            .with_max_attempt_age(Duration::from_millis(60)),
    );
    flowtel
        .record(event("node_start", BASE, "hung", Some(T1), 0))
        .unwrap();
    assert!(
        wait_for(&flowtel, &sink, |s| s.iter().any(|s| s.name == "hung")),
        "the stale attempt is exported"
    );
    assert_eq!(flowtel.stats().attempts_given_up, 1);
    // Its end arrives after all: a second span with its own id, no second root.
    flowtel
        .record(with_latency(
            event("node_success", BASE + 5.0, "hung", Some(T1), 0),
            5000.0,
        ))
        .unwrap();
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    let spans = sink.spans();
    assert_unique_ids(&spans);
    let hung: Vec<_> = spans.iter().filter(|s| s.name == "hung").collect();
    let outcomes: Vec<_> = hung
        .iter()
        .map(|s| attr_of(s, attr::NODE_OUTCOME).unwrap())
        .collect();
    assert_eq!(outcomes, ["incomplete", "success"]);
    assert_ne!(
        hung[0].span_context.span_id(),
        hung[1].span_context.span_id()
    );
    assert_eq!(roots(&spans).len(), 1);
}

#[test]
fn duplicates_are_counted_once_in_spans_and_in_metrics() {
    let sink = InMemory::new();
    let flowtel = pipeline(&sink, Flowtel::builder());
    let term = with_latency(event("node_success", BASE + 1.0, "a", Some(T1), 0), 100.0);
    flowtel
        .record(event("node_start", BASE + 0.9, "a", Some(T1), 0))
        .unwrap();
    flowtel.record(term.clone()).unwrap();
    flowtel.record(term).unwrap();
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(flowtel.stats().events_duplicate, 1);
    assert_eq!(sink.spans().iter().filter(|s| s.name == "a").count(), 1);
    let events = points(&sink, metric::EVENTS);
    let success = events
        .iter()
        .find(|p| p.attribute(attr::EVENT_TYPE) == Some("node_success"))
        .unwrap();
    assert_eq!(sum(success), 1.0, "flow.events counts the duplicate once");
    let duration = points(&sink, metric::NODE_DURATION);
    assert_eq!(duration.len(), 1);
    assert_eq!(sum(&duration[0]), 1.0, "one duration observation");
}

#[test]
fn a_start_that_arrives_after_its_end_opens_nothing() {
    let sink = InMemory::new();
    let flowtel = pipeline(&sink, Flowtel::builder());
    flowtel
        .record(with_latency(
            event("node_success", BASE + 1.0, "a", Some(T1), 0),
            100.0,
        ))
        .unwrap();
    flowtel
        .record(event("node_start", BASE + 0.9, "a", Some(T1), 0))
        .unwrap();
    flowtel.flush(Duration::from_secs(5)).unwrap();
    let active = points(&sink, metric::NODE_ACTIVE);
    assert!(!active.is_empty(), "the active gauge is reported");
    for p in &active {
        assert_eq!(sum(p), 0.0, "no phantom attempt in flight: {p:?}");
    }
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    let spans = sink.spans();
    let a: Vec<_> = spans.iter().filter(|s| s.name == "a").collect();
    assert_eq!(a.len(), 1, "no incomplete phantom");
    assert_eq!(
        attr_of(a[0], attr::NODE_OUTCOME).as_deref(),
        Some("success")
    );
    assert_eq!(flowtel.stats().events_late, 1);
}

#[test]
fn a_failed_attempt_that_ends_before_its_start_keeps_its_exception_inside_the_span() {
    // Clock skew: the start was stamped after the error, which carries no
    // latency. The span is then empty at the start's time, and its
    // exception event is at the span's end, not before the span.
    let sink = InMemory::new();
    let flowtel = pipeline(&sink, Flowtel::builder());
    flowtel
        .record(event("node_start", BASE + 2.0, "a", Some(T1), 0))
        .unwrap();
    flowtel
        .record(with_extra(
            event("node_error", BASE + 1.0, "a", Some(T1), 0),
            "exception",
            serde_json::json!("ValueError('boom')"),
        ))
        .unwrap();
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    let spans = sink.spans();
    let a = spans.iter().find(|s| s.name == "a").expect("attempt span");
    assert_eq!(a.start_time, a.end_time);
    let start_us = ((BASE + 2.0) * 1e6).round() as i128;
    assert!(
        (micros(a.end_time) - start_us).abs() <= 1,
        "{:?}",
        a.end_time
    );
    let exception = a.events.iter().next().expect("exception event");
    assert_eq!(exception.timestamp, a.end_time);
}

#[test]
fn node_ids_never_reach_metrics_even_without_a_node_name() {
    let sink = InMemory::new();
    let flowtel = pipeline(&sink, Flowtel::builder());
    let id = "5b0c1f2e-id-of-an-instance";
    let mut start = FlowEvent::builder("node_start", BASE)
        .trace_id(T1)
        .build()
        .unwrap();
    start.node_id = Some(id.into());
    let mut end = start.clone();
    end.event_type = "node_success".into();
    end.ts = BASE + 1.0;
    end.latency_ms = Some(1000.0);
    flowtel.record(start).unwrap();
    flowtel.flush(Duration::from_secs(5)).unwrap();
    let active = points(&sink, metric::NODE_ACTIVE);
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].attribute(attr::NODE_NAME), Some("_unknown"));
    flowtel.record(end).unwrap();
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    for p in sink.metric_points() {
        for (k, v) in &p.attributes {
            assert!(!v.contains(id), "{} carries the node id in {k}", p.name);
        }
    }
    // The span still names the node by its id: spans may carry ids.
    let span = sink
        .spans()
        .into_iter()
        .find(|s| s.parent_span_id != SpanId::INVALID)
        .unwrap();
    assert_eq!(attr_of(&span, attr::NODE_ID).as_deref(), Some(id));
}

#[test]
fn one_state_budget_bounds_every_run_and_counts_what_it_sheds() {
    let sink = InMemory::new();
    let flowtel = pipeline(&sink, Flowtel::builder().with_state_budget(200));
    // 300 runs, each with a node that starts and never ends: 3 units each.
    for i in 0..300u32 {
        let trace = format!("{:032x}", 0xabc0_0000u64 + u64::from(i));
        flowtel
            .record(event(
                "node_start",
                BASE + f64::from(i),
                "n",
                Some(&trace),
                0,
            ))
            .unwrap();
    }
    flowtel.flush(Duration::from_secs(5)).unwrap();
    let shed = flowtel.stats().runs_shed;
    assert!(shed >= 300 - 200 / 3, "runs shed: {shed}");
    let spans = sink.spans();
    let evicted = roots(&spans)
        .iter()
        .filter(|s| attr_of(s, attr::RUN_END_REASON).as_deref() == Some("evicted"))
        .count() as u64;
    assert_eq!(evicted, shed, "every shed run is exported, not lost");
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(roots(&sink.spans()).len(), 300);
}

#[test]
fn series_beyond_the_limit_overflow_visibly_and_lose_no_count() {
    let sink = InMemory::new();
    let flowtel = pipeline(&sink, Flowtel::builder().with_max_series_per_metric(5));
    for i in 0..10 {
        flowtel
            .record(with_latency(
                event(
                    "node_success",
                    BASE + f64::from(i),
                    &format!("n{i}"),
                    Some(T1),
                    0,
                ),
                1.0,
            ))
            .unwrap();
    }
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    let events = points(&sink, metric::EVENTS);
    assert_eq!(events.len(), 6, "5 series and the overflow set: {events:?}");
    let overflow: Vec<_> = events
        .iter()
        .filter(|p| p.attribute("otel.metric.overflow") == Some("true"))
        .collect();
    assert_eq!(overflow.len(), 1);
    assert_eq!(sum(overflow[0]), 5.0);
    assert_eq!(events.iter().map(sum).sum::<f64>(), 10.0, "nothing lost");
    assert!(flowtel.stats().cardinality_overflows >= 5);
}

#[test]
fn the_sdk_never_overflows_behind_flowtels_back() {
    // 1 500 node names: flowtel keeps 1 000 and `_overflow`; the queue-depth
    // gauge then has 2 × 1 001 series, past the OTel SDK's default of 2 000.
    let sink = InMemory::new();
    let flowtel = pipeline(&sink, Flowtel::builder());
    for i in 0..1500 {
        flowtel
            .record(with_latency(
                event("node_success", BASE, &format!("n{i}"), Some(T1), 0),
                1.0,
            ))
            .unwrap();
    }
    flowtel.flush(Duration::from_secs(10)).unwrap();
    let depth = points(&sink, metric::QUEUE_DEPTH);
    assert!(
        depth
            .iter()
            .all(|p| p.attribute("otel.metric.overflow").is_none()),
        "the SDK overflowed silently"
    );
    assert_eq!(depth.len(), 2 * 1001);
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
}

/// Run `events` through a pipeline built from `b`.
fn spans_of(events: &[FlowEvent], b: FlowtelBuilder) -> Vec<SpanData> {
    let sink = InMemory::new();
    let flowtel = pipeline(&sink, b);
    for e in events {
        flowtel.record(e.clone()).unwrap();
    }
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    sink.spans()
}

#[test]
fn a_run_split_across_pipelines_has_one_root_and_no_id_twice() {
    let events = scenario();
    let whole = spans_of(&events, Flowtel::builder());
    // Split mid-attempt: triage's start goes to one pipeline, its end to
    // the other. The owner sees part of every run (T1's first three events,
    // its cancel start), the partial pipeline the rest. (A cancelled
    // attempt's end carries no latency: it needs its start in the same
    // pipeline.)
    let owned = |i: usize| i < 3 || i == 11;
    let (mine, theirs): (Vec<_>, Vec<_>) = events.iter().enumerate().partition(|(i, _)| owned(*i));
    let strip =
        |v: Vec<(usize, &FlowEvent)>| v.into_iter().map(|(_, e)| e.clone()).collect::<Vec<_>>();
    let owner = spans_of(&strip(mine), Flowtel::builder());
    let partial = spans_of(&strip(theirs), Flowtel::builder().with_partial_runs(true));
    let all: Vec<SpanData> = owner.iter().chain(partial.iter()).cloned().collect();
    assert_unique_ids(&all);

    for trace in [T1, T2] {
        let of = |s: &&SpanData| s.span_context.trace_id().to_string() == trace;
        let r: Vec<_> = roots(&all).into_iter().filter(of).collect();
        assert_eq!(r.len(), 1, "exactly one root for {trace}");
        let root_id = r[0].span_context.span_id();
        for s in all.iter().filter(of) {
            if s.parent_span_id != SpanId::INVALID {
                assert_eq!(s.parent_span_id, root_id, "{} hangs under the root", s.name);
            }
        }
    }
    let partials: Vec<_> = all
        .iter()
        .filter(|s| attr_of(s, attr::RUN_PARTIAL).as_deref() == Some("true"))
        .collect();
    assert!(!partials.is_empty());
    // Every attempt that ended is there once, with the id the whole run
    // gives it; the attempt seen open by the first pipeline is extra.
    let ended = |s: &&SpanData| {
        s.parent_span_id != SpanId::INVALID
            && attr_of(s, attr::RUN_PARTIAL).is_none()
            && attr_of(s, attr::NODE_OUTCOME).as_deref() != Some("incomplete")
    };
    let mut a: Vec<String> = whole.iter().filter(ended).map(content).collect();
    let mut b: Vec<String> = all.iter().filter(ended).map(content).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    // The retry and the terminal failure the second pipeline saw are on its
    // partial span.
    let t1_partial = partials
        .iter()
        .find(|s| s.span_context.trace_id().to_string() == T1)
        .unwrap();
    assert!(t1_partial
        .events
        .iter()
        .any(|e| e.name == "flow.node.failed"));
    assert!(matches!(t1_partial.status, Status::Error { .. }));
}
