use super::*;

const REAL_LOG_LINE: &str = include_str!("../../tests/fixtures/penguiflow_node_failed.jsonl");

#[test]
fn parses_real_penguiflow_log_line() {
    let ev = FlowEvent::from_json(REAL_LOG_LINE.trim()).unwrap();
    assert_eq!(ev.event_type, "node_failed");
    assert_eq!(ev.node_name.as_deref(), Some("summarize"));
    assert_eq!(
        ev.trace_id.as_deref(),
        Some("7fca484c1e3e4a65b6947391c9b0331d")
    );
    assert_eq!(ev.attempt, 1);
    assert_eq!(ev.latency_ms, Some(50.879553000015676));
    assert_eq!(ev.queue_maxsize, 64);
    assert_eq!(ev.trace_pending, Some(1));
    assert_eq!(ev.extra["flow_error"]["code"], "NODE_TIMEOUT");
    // The wrapper's formatted traceback is not part of the event.
    assert_eq!(ev.extra["exception"], "TimeoutError()");
    assert!(!ev.extra.contains_key("level"));
}

#[test]
fn parses_bare_payload_and_dataclass_shape() {
    let ev = FlowEvent::from_json(
        r#"{"event":"node_retry","ts":10.5,"node_name":"a","attempt":2,"sleep_s":0.5,"q_depth_in":3,"q_depth_out":4,"q_depth_total":99}"#,
    )
    .unwrap();
    assert_eq!(ev.attempt, 2);
    assert_eq!(ev.queue_depth(), 7);
    assert_eq!(ev.extra["sleep_s"], 0.5);
    assert!(!ev.extra.contains_key("q_depth_total"));
    let ev = FlowEvent::from_json(
        r#"{"event_type":"x_custom","ts":1,"queue_depth_in":1,"extra":{"k":"v"}}"#,
    )
    .unwrap();
    assert_eq!(ev.event_type, "x_custom");
    assert_eq!(ev.extra["k"], "v");
}

#[test]
fn errors_name_field_and_problem() {
    let cases = [
        (r#"{"ts":1}"#, "event"),
        (r#"{"event":"node_start","node_name":"a"}"#, "ts"),
        (r#"{"event":5,"ts":1}"#, "event"),
        (r#"{"event":"a","ts":"yesterday"}"#, "ts"),
        (r#"{"event":"a","ts":1,"latency_ms":-1}"#, "latency_ms"),
        (r#"{"event":"a","ts":1,"latency_ms":1e999}"#, "latency_ms"),
        (r#"{"event":"a","ts":1,"attempt":-1}"#, "attempt"),
        (r#"{"event":"a","ts":1,"attempt":1.5}"#, "attempt"),
        (
            r#"{"event":"a","ts":1,"trace_cancelled":"no"}"#,
            "trace_cancelled",
        ),
        (r#"{"event":"a","ts":1,"node_name":{}}"#, "node_name"),
        (r#"{"event":"a","ts":1e400}"#, "ts"),
        (r#"[1,2]"#, "line"),
        (r#"not json"#, "line"),
        (
            r#"{"level":"INFO","message":"hello","extra":{"user":1}}"#,
            "event",
        ),
        (r#"{"event":"a","ts":NaN}"#, "line"),
    ];
    for (input, field) in cases {
        let e = FlowEvent::from_json(input).unwrap_err();
        assert_eq!(e.field(), field, "{input}: {e}");
        assert!(!e.problem().is_empty());
    }
    let e = FlowEvent::from_json(r#"{"event":"a","ts":1,"latency_ms":"fast"}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "field `latency_ms`: expected a number, got a string `\"fast\"`"
    );
}

#[test]
fn odd_extra_values_are_kept_not_fatal() {
    // Found by the parse fuzz target: an unknown key (empty) whose number
    // serde_json cannot represent.
    let line = r#"{"level": "D", "extra": {"": 1796829.2020e4444000107702, "event": "nodstqrt", "ts": 1}}"#;
    let ev = FlowEvent::from_json(line).unwrap();
    assert_eq!(ev.extra[""], "1796829.2020e4444000107702");
    let ev =
        FlowEvent::from_json(r#"{"event":"a","ts":1,"extra":{"k":1e999,"j":[1e999]}}"#).unwrap();
    assert_eq!(ev.extra["k"], "1e999");
    assert_eq!(ev.extra["j"], "[1e999]");
}

#[test]
fn other_libraries_json_logs_are_not_flow_events() {
    for line in [
        // structlog's JSONRenderer, with and without OTel log correlation.
        r#"{"event": "user logged in", "timestamp": "2026-11-22T00:20:29Z", "level": "info"}"#,
        r#"{"event": "user_login", "timestamp": "2026-11-22T00:20:29Z", "level": "info"}"#,
        r#"{"event": "user_login", "trace_id": "3e512c5b0a184257a25c215d19544e6a", "attempt": 2}"#,
        // A sentence is a message even next to a `ts`.
        r#"{"event": "cache warmed up", "ts": 1795305121.5}"#,
        r#"{"event": "job\tdone", "ts": 1795305121.5}"#,
        r#"{"level": "INFO", "extra": {"event": "user logged in", "user": 1}}"#,
        r#"{"level": "INFO", "extra": {"event": "user_login"}}"#,
        r#"{"event": "node_start"}"#,
    ] {
        let e = FlowEvent::from_json(line).unwrap_err();
        assert!(e.is_not_a_flow_event(), "{line}: {e}");
    }
    // Candidates that break the contract are errors naming the field.
    for (line, field) in [
        (
            r#"{"event":"node_success","ts":1795305121.5,"node_name":"a","latency_ms":-1}"#,
            "latency_ms",
        ),
        (r#"{"event":"node_success","node_name":"a"}"#, "ts"),
        (r#"{"event":"node_start","ts":"late"}"#, "ts"),
        (r#"{"event":5,"ts":1}"#, "event"),
        (r#"{"event":"","ts":1}"#, "event"),
        (
            r#"{"extra":{"event":"node_start","q_depth_in":-1}}"#,
            "q_depth_in",
        ),
    ] {
        let e = FlowEvent::from_json(line).unwrap_err();
        assert!(!e.is_not_a_flow_event(), "{line}: {e}");
        assert_eq!(e.field(), field, "{line}: {e}");
    }
    // The smallest FlowEvent: a single-token type and a `ts`.
    let ev = FlowEvent::from_json(r#"{"event":"x_custom","ts":1}"#).unwrap();
    assert_eq!(ev.event_type, "x_custom");
}

#[test]
fn escaped_keys_and_unicode_values_parse() {
    let ev = FlowEvent::from_json(r#"{"ev\u0065nt":"node_start","ts":1,"node_name":"n\u00e9"}"#)
        .unwrap();
    assert_eq!(ev.event_type, "node_start");
    assert_eq!(ev.node_name.as_deref(), Some("né"));
}
