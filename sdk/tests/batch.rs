//! `EventBatch`: events parsed into batches (over the events of batches
//! already mapped) map exactly as the same lines recorded one by one.

use std::time::Duration;

use flowtel::{FlowEvent, Flowtel, InMemory, RecordError, SpanData, BATCH_EVENTS};

const WAIT: Duration = Duration::from_secs(10);

/// Real PenguiFlow logs and fixtures (with `node_failed`, whose nested
/// `flow_error` takes the general parser), lines that are not events, and
/// enough generated runs for many batches, their events parsed over those
/// of earlier ones: runs whose nodes, ids and fields differ from one line
/// to the next (a node with no id, a retry, a `trace_pending` of null).
fn lines() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    for f in [
        "examples/penguiflow/sample.log",
        "examples/penguiflow/incident.log",
        "sdk/tests/fixtures/penguiflow_node_failed.jsonl",
        "sdk/tests/fixtures/penguiflow_run_ends.jsonl",
    ] {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        out.extend(text.lines().map(str::to_string));
    }
    out.push("not JSON".into());
    out.push(r#"{"event": "user logged in", "level": "info"}"#.into());
    out.push(r#"{"event": "node_start", "ts": 1.5, "latency_ms": -1}"#.into());
    for run in 0..300u32 {
        let trace = format!("{:032x}", 0xabc0_0000u64 + u64::from(run));
        let ts = 1_795_305_121.0 + f64::from(run);
        for (i, node) in ["fetch", "triage_with_a_longer_name", "s"]
            .iter()
            .enumerate()
        {
            let id = if run % 7 == 3 && i == 1 {
                "null".to_string()
            } else {
                format!("\"{node}-{run}\"")
            };
            let pending = if run % 5 == 0 {
                "null".to_string()
            } else {
                run.to_string()
            };
            let t = ts + i as f64 * 0.01;
            out.push(format!(
                r#"{{"level": "DEBUG", "logger": "penguiflow.core", "message": "node_start", "extra": {{"ts": {t}, "event": "node_start", "node_name": "{node}", "node_id": {id}, "trace_id": "{trace}", "latency_ms": null, "q_depth_in": {i}, "attempt": 0, "trace_pending": {pending}}}}}"#
            ));
            let kind = if run % 11 == 4 {
                "node_error"
            } else {
                "node_success"
            };
            out.push(format!(
                r#"{{"level": "INFO", "extra": {{"ts": {}, "event": "{kind}", "node_name": "{node}", "node_id": {id}, "trace_id": "{trace}", "latency_ms": 4.5, "attempt": 0, "trace_cancelled": {}, "tenant": "t{run}"}}}}"#,
                t + 0.004,
                run % 13 == 0
            ));
        }
    }
    out
}

/// What a span is, as compared here.
fn view(s: &SpanData) -> String {
    let mut attrs: Vec<String> = s
        .attributes
        .iter()
        .map(|kv| format!("{}={}", kv.key, kv.value.as_str()))
        .collect();
    attrs.sort();
    format!(
        "{} {} {} {} {:?} {:?} {:?} {:?} {attrs:?}",
        s.span_context.trace_id(),
        s.span_context.span_id(),
        s.parent_span_id,
        s.name,
        s.start_time,
        s.end_time,
        s.status,
        s.events.iter().map(|e| &e.name).collect::<Vec<_>>(),
    )
}

fn pipeline(sink: &InMemory) -> Flowtel {
    Flowtel::builder()
        .with_flow_name("batch-test")
        .with_run_end_node("s")
        .with_in_memory(sink)
        .build()
        .unwrap()
}

fn spans(sink: &InMemory) -> Vec<String> {
    let mut v: Vec<String> = sink.spans().iter().map(view).collect();
    v.sort();
    v
}

#[test]
fn batches_map_exactly_as_events_recorded_one_by_one() {
    let lines = lines();
    assert!(lines.len() > 5 * BATCH_EVENTS, "{}", lines.len());

    let one_by_one = InMemory::new();
    let f = pipeline(&one_by_one);
    let mut recorded = 0;
    for line in &lines {
        if let Ok(ev) = FlowEvent::from_json(line) {
            f.record_wait(ev, WAIT).unwrap();
            recorded += 1;
        }
    }
    f.shutdown(WAIT).unwrap();

    let batched = InMemory::new();
    let f = pipeline(&batched);
    let mut batch = f.batch(WAIT);
    for (i, line) in lines.iter().enumerate() {
        if i % 200 == 199 {
            // Every batch mapped and handed back: the next ones are parsed
            // over their events.
            batch.flush().unwrap();
            f.flush(WAIT).unwrap();
        }
        // The same answer as `from_json`, event or error.
        let want = FlowEvent::from_json(line);
        match batch.push_json(line) {
            Ok(ev) => assert_eq!(Ok(ev), want.as_ref(), "{line}"),
            Err(e) => assert_eq!(Err(e), want, "{line}"),
        }
    }
    batch.flush().unwrap();
    drop(batch);
    let stats = f.stats();
    f.shutdown(WAIT).unwrap();

    assert_eq!(stats.events_recorded, recorded);
    let (want, got) = (spans(&one_by_one), spans(&batched));
    assert!(want.len() > 900, "{}", want.len());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    // The flow's metrics, not the SDK's own (which count exports).
    let points = |sink: &InMemory| {
        let mut v: Vec<String> = sink
            .metric_points()
            .iter()
            .filter(|p| !p.name.starts_with("flowtel.sdk."))
            .map(|p| format!("{} {:?} {:?}", p.name, p.attributes, p.value))
            .collect();
        v.sort();
        v
    };
    let want = points(&one_by_one);
    assert!(want.len() > 20, "{}", want.len());
    assert_eq!(points(&batched), want);
}

#[test]
fn a_dropped_batch_hands_its_events_over() {
    let sink = InMemory::new();
    let f = pipeline(&sink);
    {
        let mut batch = f.batch(WAIT);
        for line in lines().iter().take(10) {
            let _ = batch.push_json(line);
        }
        assert!(!batch.is_empty());
    }
    let recorded = f.stats().events_recorded;
    f.shutdown(WAIT).unwrap();
    assert!(recorded > 0);
    assert!(!sink.spans().is_empty());
}

#[test]
fn after_shutdown_a_batch_is_refused_and_counted() {
    let sink = InMemory::new();
    let f = pipeline(&sink);
    let mut batch = f.batch(WAIT);
    let lines = lines();
    let n = lines
        .iter()
        .take(20)
        .filter(|l| batch.push_json(l).is_ok())
        .count();
    assert_eq!(batch.len(), n);
    f.shutdown(WAIT).unwrap();
    assert_eq!(batch.flush(), Err(RecordError::ShutDown));
    assert!(batch.is_empty());
    let s = f.stats();
    assert_eq!(s.events_after_shutdown, n as u64);
    assert_eq!(s.events_recorded, 0);
}
