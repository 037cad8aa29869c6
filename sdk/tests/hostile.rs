//! Hostile input: huge lines, deep nesting, extreme numbers and timestamps,
//! a flood of node names; and property tests: arbitrary events never panic
//! and never put a trace or node id into a metric.

use std::collections::HashSet;
use std::time::Duration;

use flowtel::{FlowEvent, Flowtel, InMemory, PointValue};
use flowtel_semconv::{attr, metric};
use proptest::prelude::*;

const TRACE: &str = "3e512c5b0a184257a25c215d19544e6a";

fn pipeline(sink: &InMemory) -> Flowtel {
    Flowtel::builder().with_in_memory(sink).build().unwrap()
}

#[test]
fn ten_megabyte_lines_parse_or_fail_cleanly_and_stay_bounded_in_spans() {
    let big = "x".repeat(10 << 20);
    let line = format!(
        r#"{{"event":"node_error","ts":1795305121.5,"node_name":"a","trace_id":"{TRACE}","latency_ms":1,"exception":"ValueError('{big}')"}}"#
    );
    let ev = FlowEvent::from_json(&line).unwrap();
    let sink = InMemory::new();
    let f = pipeline(&sink);
    f.record(ev).unwrap();
    f.shutdown(Duration::from_secs(10)).unwrap();
    let span = sink.spans().into_iter().find(|s| s.name == "a").unwrap();
    let msg = span.events.events[0]
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == attr::EXCEPTION_MESSAGE)
        .unwrap()
        .value
        .as_str()
        .len();
    assert!(
        msg <= 256 + 4,
        "exception message truncated, got {msg} bytes"
    );
    // 10 MB of garbage: an error naming the line, quickly.
    let e = FlowEvent::from_json(&"{".repeat(10 << 20)).unwrap_err();
    assert_eq!(e.field(), "line");
}

#[test]
fn deeply_nested_extra_neither_overflows_the_stack_nor_costs_the_event() {
    let ok = format!(
        r#"{{"event":"x","ts":1,"deep":{}1{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    assert!(FlowEvent::from_json(&ok).unwrap().extra["deep"].is_array());
    // Too deep for a JSON value: kept as its text (extra is never exported
    // unless allow-listed, and then truncated).
    let deep = format!(
        r#"{{"event":"x","ts":1,"deep":{}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let ev = FlowEvent::from_json(&deep).unwrap();
    assert_eq!(ev.extra["deep"].as_str().map(str::len), Some(200_001));
    // In a known field it is a type error naming the field.
    let bad = format!(
        r#"{{"event":"x","ts":{}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(FlowEvent::from_json(&bad).unwrap_err().field(), "ts");
}

#[test]
fn extreme_numbers_and_timestamps() {
    for bad in [
        r#"{"event":"node_success","ts":1,"latency_ms":-1}"#,
        r#"{"event":"node_success","ts":1,"latency_ms":1e400}"#,
        r#"{"event":"node_success","ts":1e300}"#,
        r#"{"event":"node_success","ts":1795305121000}"#,
        r#"{"event":"node_success","ts":-5}"#,
        r#"{"event":"node_success","ts":NaN}"#,
    ] {
        assert!(FlowEvent::from_json(bad).is_err(), "{bad}");
    }
    let sink = InMemory::new();
    let f = pipeline(&sink);
    for (trace, ts) in [("a1", 0.5), ("a2", 32_503_680_000.0)] {
        let ev = FlowEvent::builder("node_success", ts)
            .node("n", "n")
            .trace_id(trace)
            .latency_ms(100.0)
            .build()
            .unwrap();
        f.record(ev).unwrap();
    }
    // Latency longer than the time since 1970: the span starts at the epoch.
    let ev = FlowEvent::builder("node_success", 10.0)
        .node("m", "m")
        .trace_id("a3")
        .latency_ms(1e15)
        .build()
        .unwrap();
    f.record(ev).unwrap();
    f.shutdown(Duration::from_secs(10)).unwrap();
    let spans = sink.spans();
    assert_eq!(spans.len(), 6);
    let years: HashSet<u64> = spans
        .iter()
        .map(|s| {
            s.end_time
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                / 31_556_952
        })
        .collect();
    assert!(years.contains(&0) && years.contains(&1030), "{years:?}");
}

#[test]
fn a_flood_of_node_names_is_bounded_and_reported() {
    let sink = InMemory::new();
    let f = Flowtel::builder()
        .with_in_memory(&sink)
        .with_cardinality_limit(100)
        .with_queue_capacity(200_000)
        .build()
        .unwrap();
    for i in 0..100_000u32 {
        let ev = FlowEvent::builder("node_success", 1_795_305_121.0)
            .node(format!("node-{i}"), format!("id-{i}"))
            .trace_id(TRACE)
            .latency_ms(1.0)
            .build()
            .unwrap();
        f.record(ev).unwrap();
    }
    f.shutdown(Duration::from_secs(60)).unwrap();
    let s = f.stats();
    assert_eq!(s.events_dropped(), 0);
    // Every attempt still became a span under the one root...
    assert_eq!(s.spans_created, 100_001);
    // ... while metric attributes stayed bounded, with the overflow counted.
    let points = sink.metric_points();
    let nodes: HashSet<&str> = points
        .iter()
        .filter(|p| p.name == metric::EVENTS)
        .filter_map(|p| p.attribute(attr::NODE_NAME))
        .collect();
    assert_eq!(nodes.len(), 101, "100 names + _overflow");
    assert!(s.cardinality_overflows >= 99_900, "{s:?}");
    let overflow = points
        .iter()
        .find(|p| p.name == metric::SDK_CARDINALITY_OVERFLOW)
        .unwrap();
    assert!(matches!(overflow.value, PointValue::Sum(v) if v >= 99_900.0));
}

fn arb_event() -> impl Strategy<Value = FlowEvent> {
    let kinds = prop::sample::select(vec![
        "node_start",
        "node_success",
        "node_error",
        "node_timeout",
        "node_retry",
        "node_failed",
        "node_trace_cancelled",
        "deadline_skip",
        "trace_cancel_start",
        "trace_cancel_finish",
        "trace_cancel_drop",
        "remote_call_success",
        "",
        "🦀",
    ]);
    (
        kinds,
        prop_oneof![
            Just(0.0),
            0.0..4e10f64,
            Just(f64::NAN),
            Just(-1.0),
            Just(1e300)
        ],
        prop::option::of("[a-z]{0,3}"),
        prop::option::of("[a-z0-9]{0,40}"),
        prop::option::of(prop_oneof!["[0-9a-f]{32}", ".{0,12}"]),
        0u32..4,
        prop::option::of(prop_oneof![0.0..1e6f64, Just(f64::INFINITY), Just(-3.0)]),
        prop::collection::vec((".{0,8}", ".{0,16}"), 0..4),
    )
        .prop_map(|(kind, ts, node, id, trace, attempt, latency, extra)| {
            let mut b = FlowEvent::builder("node_success", 1.0).attempt(attempt);
            if let Some(t) = trace {
                b = b.trace_id(t);
            }
            for (k, v) in extra {
                b = b.extra(k, v);
            }
            let mut ev = b
                .extra("sleep_s", 0.1)
                .extra(
                    "flow_error",
                    serde_json::json!({"code": "X", "message": "m"}),
                )
                .build()
                .unwrap();
            // The raw values, valid or not: record() must cope with both.
            // Name and id independently: either may come without the other.
            ev.node_name = node;
            ev.node_id = id;
            ev.event_type = kind.to_string();
            ev.ts = ts;
            ev.latency_ms = latency;
            ev
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_events_never_panic_nor_leak_ids_into_metrics(
        events in prop::collection::vec(arb_event(), 1..60)
    ) {
        let sink = InMemory::new();
        let f = pipeline(&sink);
        let mut ids: Vec<String> = Vec::new();
        for e in events {
            if let Some(t) = &e.trace_id { if t.len() >= 4 { ids.push(t.clone()); } }
            if let Some(i) = &e.node_id {
                if i.len() >= 4 && Some(i) != e.node_name.as_ref() { ids.push(i.clone()); }
            }
            let _ = f.record(e);
        }
        f.shutdown(Duration::from_secs(10)).unwrap();
        for p in sink.metric_points() {
            for (k, v) in &p.attributes {
                prop_assert!(k != "trace_id" && k != attr::NODE_ID && k != attr::RUN_ID);
                for id in &ids {
                    prop_assert!(v != id, "{} carries {}", p.name, id);
                }
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_parser(s in ".{0,300}") {
        let _ = FlowEvent::from_json(&s);
    }

    #[test]
    fn arbitrary_json_objects_never_panic_the_parser(
        fields in prop::collection::vec((
            prop::sample::select(vec!["event","ts","node_name","trace_id","latency_ms","attempt",
                "q_depth_in","trace_pending","trace_cancelled","extra","other"]),
            prop_oneof![
                Just("null".to_string()), Just("1e400".to_string()), Just("-0".to_string()),
                "-?[0-9]{1,20}(\\.[0-9]{1,5})?".prop_map(|s| s),
                "\"[^\"\\\\]{0,10}\"".prop_map(|s| s),
                Just("{}".to_string()), Just("[1,{}]".to_string()), Just("true".to_string()),
            ],
        ), 0..12)
    ) {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let line = format!("{{{}}}", body.join(","));
        let _ = FlowEvent::from_json(&line);
        let wrapped = format!("{{\"level\":\"INFO\",\"extra\":{line}}}");
        let _ = FlowEvent::from_json(&wrapped);
    }
}
