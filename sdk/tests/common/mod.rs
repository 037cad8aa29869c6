//! Helpers shared by the mapping tests: event builders, a reference
//! scenario, and span accessors.
#![allow(dead_code)]

use std::time::UNIX_EPOCH;

use flowtel::{FlowEvent, SpanData};

pub(crate) const T1: &str = "3e512c5b0a184257a25c215d19544e6a";
pub(crate) const T2: &str = "9b0c2f1e8d7a6b5c4d3e2f1a0b9c8d7e";
pub(crate) const BASE: f64 = 1_795_305_121.415_296;

pub(crate) fn event(
    kind: &str,
    ts: f64,
    node: &str,
    trace: Option<&str>,
    attempt: u32,
) -> FlowEvent {
    let mut b = FlowEvent::builder(kind, ts)
        .node(node, format!("{node}-id"))
        .attempt(attempt)
        .queue_depths(2, 1);
    if let Some(t) = trace {
        b = b.trace_id(t);
    }
    b.build().unwrap()
}

pub(crate) fn with_latency(mut ev: FlowEvent, ms: f64) -> FlowEvent {
    ev.latency_ms = Some(ms);
    ev
}

pub(crate) fn with_extra(mut ev: FlowEvent, k: &str, v: serde_json::Value) -> FlowEvent {
    ev.extra.insert(k.into(), v);
    ev
}

pub(crate) fn attr_of(s: &SpanData, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

pub(crate) fn micros(t: std::time::SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH).unwrap().as_micros() as i128
}

pub(crate) fn scenario() -> Vec<FlowEvent> {
    let mut v = Vec::new();
    // T1: fetch succeeds; triage errors, retries, succeeds; summarize times
    // out twice and fails.
    v.push(event("node_start", BASE, "fetch", Some(T1), 0));
    v.push(with_latency(
        event("node_success", BASE + 0.010, "fetch", Some(T1), 0),
        10.0,
    ));
    v.push(event("node_start", BASE + 0.011, "triage", Some(T1), 0));
    v.push(with_extra(
        with_latency(
            event("node_error", BASE + 0.020, "triage", Some(T1), 0),
            9.0,
        ),
        "exception",
        "ValueError('upstream 503')".into(),
    ));
    v.push(with_extra(
        with_extra(
            event("node_retry", BASE + 0.021, "triage", Some(T1), 1),
            "sleep_s",
            0.5.into(),
        ),
        "exception",
        "ValueError('upstream 503')".into(),
    ));
    v.push(with_latency(
        event("node_success", BASE + 0.530, "triage", Some(T1), 1),
        8.0,
    ));
    v.push(with_extra(
        with_latency(
            event("node_timeout", BASE + 0.600, "summarize", Some(T1), 0),
            50.0,
        ),
        "exception",
        "TimeoutError()".into(),
    ));
    v.push(with_extra(
        event("node_retry", BASE + 0.601, "summarize", Some(T1), 1),
        "sleep_s",
        0.01.into(),
    ));
    v.push(with_latency(
        event("node_timeout", BASE + 0.700, "summarize", Some(T1), 1),
        50.0,
    ));
    v.push(with_extra(
        with_latency(event("node_failed", BASE + 0.701, "summarize", Some(T1), 1), 50.0),
        "flow_error",
        serde_json::json!({"code": "NODE_TIMEOUT", "message": "Node 'summarize' timed out after 0.05s"}),
    ));
    // T2: cancelled while a node runs; a deadline skip.
    v.push(event("node_start", BASE + 1.0, "slow", Some(T2), 0));
    v.push(with_extra(
        event("trace_cancel_start", BASE + 1.1, "OpenSea", Some(T2), 0),
        "pending",
        2.into(),
    ));
    v.push(event(
        "node_trace_cancelled",
        BASE + 1.2,
        "slow",
        Some(T2),
        0,
    ));
    v.push(with_extra(
        event("deadline_skip", BASE + 1.25, "after", Some(T2), 0),
        "deadline_s",
        1.0.into(),
    ));
    v.push(event(
        "trace_cancel_finish",
        BASE + 1.3,
        "Rookery",
        Some(T2),
        0,
    ));
    // No trace id: metrics only.
    v.push(with_latency(
        event("node_success", BASE + 2.0, "untraced", None, 0),
        3.0,
    ));
    v.push(event("remote_call_start", BASE + 2.1, "untraced", None, 0));
    v
}
