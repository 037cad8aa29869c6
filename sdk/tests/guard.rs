//! The attempt guard through the pipeline into the in-memory exporter: its
//! span id fixed at the start, every way it ends, retries and terminal
//! failures, and W3C trace context in and out.

use std::time::{Duration, SystemTime};

use flowtel::{FlowEvent, Flowtel, InMemory, SpanData};
use flowtel_semconv::{attr, outcome, span as sc};
use opentelemetry::trace::{SpanId, Status};

mod common;
use common::*;

fn pipeline() -> (Flowtel, InMemory) {
    let sink = InMemory::new();
    let flowtel = Flowtel::builder()
        .with_flow_name("guarded-flow")
        .with_in_memory(&sink)
        .build()
        .unwrap();
    (flowtel, sink)
}

fn done(flowtel: Flowtel, sink: &InMemory) -> Vec<SpanData> {
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    sink.spans()
}

fn by_id(spans: &[SpanData], id: SpanId) -> &SpanData {
    spans
        .iter()
        .find(|s| s.span_context.span_id() == id)
        .unwrap_or_else(|| panic!("no span {id}: {spans:#?}"))
}

fn root(spans: &[SpanData]) -> &SpanData {
    let roots: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.parent_span_id == SpanId::INVALID)
        .collect();
    assert_eq!(roots.len(), 1, "{spans:#?}");
    roots[0]
}

#[test]
fn every_outcome_keeps_the_span_id_chosen_at_the_start() {
    let (flowtel, sink) = pipeline();
    let run = flowtel.run(T1);
    let mut expect = Vec::new();
    let a = run.start_attempt("ok", 0);
    expect.push((a.span_id(), outcome::SUCCESS, None));
    a.success();
    let a = run.start_attempt("err", 0);
    expect.push((a.span_id(), outcome::ERROR, Some("std::io::error::Error")));
    let _ = a.error(&std::io::Error::other("disk on fire"));
    let a = run.start_attempt("slow", 0);
    expect.push((a.span_id(), outcome::TIMEOUT, Some("timeout")));
    let _ = a.timeout();
    let a = run.start_attempt("stopped", 0);
    expect.push((a.span_id(), outcome::CANCELLED, None));
    a.cancelled();
    let a = run.start_attempt("forgotten", 0);
    expect.push((a.span_id(), outcome::DROPPED, Some("AttemptDropped")));
    drop(a);
    let spans = done(flowtel, &sink);

    let root = root(&spans);
    assert_eq!(spans.len(), expect.len() + 1, "{spans:#?}");
    for (id, out, error_type) in expect {
        let s = by_id(&spans, id);
        assert_eq!(s.parent_span_id, root.span_context.span_id());
        assert_eq!(s.span_context.trace_id().to_string(), T1);
        assert_eq!(
            attr_of(s, attr::NODE_OUTCOME).as_deref(),
            Some(out),
            "{s:?}"
        );
        assert_eq!(attr_of(s, attr::ERROR_TYPE).as_deref(), error_type, "{s:?}");
        assert_eq!(
            matches!(s.status, Status::Error { .. }),
            error_type.is_some()
        );
    }
}

#[test]
fn a_guard_dropped_by_a_panic_says_so() {
    let (flowtel, sink) = pipeline();
    let f = flowtel.clone();
    let id = std::thread::spawn(move || {
        let run = f.run(T1);
        let a = run.start_attempt("explodes", 0);
        let id = a.span_id();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _a = a;
            panic!("boom");
        }));
        assert!(r.is_err());
        id
    })
    .join()
    .unwrap();
    let spans = done(flowtel, &sink);
    let s = by_id(&spans, id);
    assert_eq!(
        attr_of(s, attr::NODE_OUTCOME).as_deref(),
        Some(outcome::DROPPED)
    );
    assert_eq!(attr_of(s, attr::ERROR_TYPE).as_deref(), Some("panic"));
    assert!(s.events.iter().any(|e| e.name == sc::EXCEPTION_EVENT));
}

#[test]
fn the_span_encloses_the_attempt_on_the_wall_clock() {
    let (flowtel, sink) = pipeline();
    let a = flowtel.start_attempt(T1, "timed", 0);
    let inside_start = SystemTime::now();
    std::thread::sleep(Duration::from_millis(5));
    let inside_end = SystemTime::now();
    let id = a.span_id();
    a.success();
    let spans = done(flowtel, &sink);
    let s = by_id(&spans, id);
    // A FlowEvent's `ts` is f64 seconds (at today's epoch, ~0.12 µs either
    // way) and the attempt's end is its start plus the monotonic time it
    // took, while `inside_*` are wall-clock readings (a slewing clock moves
    // up to 0.05 % against it). So the span may start or end a little
    // inside the instants read around the attempt (the end check failed
    // once in a few dozen runs, `success()` coming right after `inside_end`).
    let ts_precision = Duration::from_micros(10);
    assert!(s.start_time <= inside_start + ts_precision, "{s:?}");
    assert!(s.end_time + ts_precision >= inside_end, "{s:?}");
    let d = s.end_time.duration_since(s.start_time).unwrap();
    assert!(d < Duration::from_secs(5), "{d:?}");
}

#[test]
fn retries_and_giving_up_show_on_the_root_and_in_the_metrics() {
    let (flowtel, sink) = pipeline();
    let run = flowtel.run(T1);
    run.start_attempt("fetch", 0)
        .error("ConnectionError('503')")
        .retry_after(Duration::from_millis(250));
    run.start_attempt("fetch", 1).timeout().give_up();
    let spans = done(flowtel, &sink);
    let root = root(&spans);
    let names: Vec<&str> = root.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(names, [sc::RETRY_EVENT, sc::FAILED_EVENT]);
    let retry = &root.events.events[0];
    let kv = |e: &opentelemetry::trace::Event, k: &str| {
        e.attributes
            .iter()
            .find(|a| a.key.as_str() == k)
            .map(|a| a.value.as_str().into_owned())
    };
    assert_eq!(kv(retry, attr::NODE_ATTEMPT).as_deref(), Some("1"));
    assert_eq!(kv(retry, attr::RETRY_DELAY).as_deref(), Some("0.25"));
    assert_eq!(
        kv(retry, attr::ERROR_TYPE).as_deref(),
        Some("ConnectionError")
    );
    assert_eq!(
        attr_of(root, attr::ERROR_TYPE).as_deref(),
        Some("NODE_TIMEOUT")
    );
    let failures: Vec<_> = sink
        .metric_points()
        .into_iter()
        .filter(|p| p.name == flowtel_semconv::metric::NODE_FAILURES)
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        failures[0].attribute(attr::ERROR_TYPE),
        Some("NODE_TIMEOUT")
    );
}

#[test]
fn the_terminal_events_span_id_wins_over_its_starts() {
    let (flowtel, sink) = pipeline();
    let (a, b) = (SpanId::from(0xa), SpanId::from(0xb));
    let ev = |kind: &str, ts: f64, id: Option<SpanId>| {
        let mut e = with_latency(event(kind, ts, "n", Some(T1), 0), 1.0);
        e.span_id = id;
        e
    };
    flowtel.record(ev("node_start", BASE, Some(a))).unwrap();
    flowtel
        .record(ev("node_success", BASE + 0.01, Some(b)))
        .unwrap();
    // A start with an id and a terminal without one: the start's.
    flowtel
        .record(ev("node_start", BASE + 0.02, Some(a)))
        .unwrap();
    flowtel
        .record(ev("node_success", BASE + 0.03, None))
        .unwrap();
    let spans = done(flowtel, &sink);
    assert_eq!(by_id(&spans, b).name, "n");
    assert_eq!(by_id(&spans, a).name, "n");
    assert_eq!(spans.len(), 3);
}

#[test]
fn an_all_zero_span_id_is_refused() {
    let mut e = event("node_start", BASE, "n", Some(T1), 0);
    e.span_id = Some(SpanId::INVALID);
    assert_eq!(e.validate().unwrap_err().field(), "span_id");
}

#[test]
fn an_open_guard_keeps_its_id_at_shutdown_but_not_when_its_run_ends_early() {
    let (flowtel, sink) = pipeline();
    let early = flowtel.run(T1).start_attempt("slow", 0);
    flowtel.end_run(T1).unwrap();
    flowtel.flush(Duration::from_secs(5)).unwrap();
    let early_id = early.span_id();
    // Ends after its run's root went out: a second span, under its own id.
    early.success();
    let open = flowtel.run(T2).start_attempt("never-ends", 0);
    let open_id = open.span_id();
    let spans = done(flowtel, &sink);
    std::mem::forget(open);

    let incomplete: Vec<&SpanData> = spans
        .iter()
        .filter(|s| attr_of(s, attr::NODE_OUTCOME).as_deref() == Some(outcome::INCOMPLETE))
        .collect();
    assert_eq!(incomplete.len(), 2, "{spans:#?}");
    let slow_open = incomplete.iter().find(|s| s.name == "slow").unwrap();
    assert_ne!(slow_open.span_context.span_id(), early_id);
    assert_eq!(
        attr_of(by_id(&spans, early_id), attr::NODE_OUTCOME).as_deref(),
        Some(outcome::SUCCESS)
    );
    assert_eq!(
        by_id(&spans, open_id).name,
        "never-ends",
        "kept at shutdown"
    );
    let mut ids: Vec<SpanId> = spans.iter().map(|s| s.span_context.span_id()).collect();
    let n = ids.len();
    ids.sort_by_key(|i| i.to_string());
    ids.dedup();
    assert_eq!(ids.len(), n, "no span id exported twice");
}

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn an_inbound_traceparent_becomes_a_link_on_the_root_from_code_and_from_bridges() {
    let (flowtel, sink) = pipeline();
    let run = flowtel.run(T1).with_traceparent(TP);
    run.start_attempt("a", 0).success();
    run.start_attempt("b", 0).success();
    // A bridged runtime's event.
    let ev = FlowEvent::builder("node_success", BASE)
        .node("c", "c")
        .trace_id(T2)
        .latency_ms(1.0)
        .extra("traceparent", TP)
        .build()
        .unwrap();
    flowtel.record(ev).unwrap();
    // An invalid one is ignored.
    let bad = flowtel.new_run().with_traceparent("00-nonsense");
    bad.start_attempt("d", 0).success();
    let spans = done(flowtel, &sink);
    for t in [T1, T2] {
        let trace: Vec<SpanData> = spans
            .iter()
            .filter(|s| s.span_context.trace_id().to_string() == t)
            .cloned()
            .collect();
        let r = root(&trace);
        assert_eq!(r.span_context.trace_id().to_string(), t, "own trace id");
        assert_eq!(r.links.links.len(), 1, "{r:?}");
        let l = &r.links.links[0].span_context;
        assert_eq!(l.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(l.span_id().to_string(), "00f067aa0ba902b7");
        assert!(trace
            .iter()
            .filter(|s| s.parent_span_id != SpanId::INVALID)
            .all(|s| s.links.links.is_empty()));
    }
    let other = bad.trace_id();
    let trace: Vec<SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id().to_string() == other)
        .cloned()
        .collect();
    assert!(root(&trace).links.links.is_empty());
}

#[test]
fn an_attempt_hands_out_its_traceparent_and_context() {
    use opentelemetry::trace::TraceContextExt;
    let (flowtel, sink) = pipeline();
    let a = flowtel.start_attempt(T1, "caller", 0);
    let tp = a.traceparent();
    assert_eq!(tp, format!("00-{T1}-{}-01", a.span_id()));
    let cx = a.context();
    let sc = cx.span().span_context().clone();
    assert_eq!(sc.trace_id().to_string(), T1);
    assert_eq!(sc.span_id(), a.span_id());
    assert!(sc.is_sampled());
    let id = a.span_id();
    a.success();
    let spans = done(flowtel, &sink);
    by_id(&spans, id);
}

#[test]
fn guards_of_one_node_ending_in_the_same_microsecond_are_all_kept() {
    let (flowtel, sink) = pipeline();
    let run = flowtel.run(T1);
    let mut ids = Vec::new();
    for _ in 0..500 {
        let a = run.start_attempt("hot", 0);
        ids.push(a.span_id());
        a.success();
    }
    let spans = done(flowtel.clone(), &sink);
    let s = flowtel.stats();
    assert_eq!((s.events_duplicate, s.events_late), (0, 0), "{s:?}");
    for id in ids {
        by_id(&spans, id);
    }
    assert_eq!(spans.len(), 501);
}
