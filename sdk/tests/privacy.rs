//! Payloads and secrets are never exported unless the user opts in; the
//! deny rule for secret-looking keys wins over every allow-list.

use std::time::Duration;

use flowtel::{FlowEvent, Flowtel, InMemory, SpanData};
use serde_json::json;

const TRACE: &str = "3e512c5b0a184257a25c215d19544e6a";

fn event() -> FlowEvent {
    FlowEvent::builder("node_error", 1_795_305_121.5)
        .node("llm", "llm-1")
        .trace_id(TRACE)
        .latency_ms(3.0)
        .extra("exception", "ValueError('bad')")
        .extra("prompt", "PAYLOAD the user's private prompt")
        .extra("region", "eu-west")
        .extra("retries_left", 2)
        .extra(
            "flow_error",
            json!({"code": "NODE_EXCEPTION", "message": "m",
                   "metadata": {"api_key": "PAYLOAD sk-123"}}),
        )
        .build()
        .unwrap()
}

fn everything(spans: &[SpanData], sink: &InMemory) -> String {
    let mut all = format!("{spans:?}");
    all.push_str(&format!("{:?}", sink.metric_points()));
    all
}

#[test]
fn payload_values_are_not_exported_by_default() {
    let sink = InMemory::new();
    let f = Flowtel::builder().with_in_memory(&sink).build().unwrap();
    f.record(event()).unwrap();
    f.shutdown(Duration::from_secs(10)).unwrap();
    let all = everything(&sink.spans(), &sink);
    assert!(!all.contains("PAYLOAD"), "payload or secret exported");
    assert!(!all.contains("eu-west"), "extra values need an allow-list");
    assert!(
        all.contains("NODE_EXCEPTION") || all.contains("ValueError"),
        "known fields still are"
    );
}

#[test]
fn allow_listed_extra_keys_reach_spans_only() {
    let sink = InMemory::new();
    let f = Flowtel::builder()
        .with_in_memory(&sink)
        .with_span_extra_key("region")
        .with_span_extra_key("retries_left")
        .build()
        .unwrap();
    f.record(event()).unwrap();
    f.shutdown(Duration::from_secs(10)).unwrap();
    let span = sink.spans().into_iter().find(|s| s.name == "llm").unwrap();
    let get = |k: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.as_str().into_owned())
    };
    assert_eq!(get("flow.extra.region").as_deref(), Some("eu-west"));
    assert_eq!(get("flow.extra.retries_left").as_deref(), Some("2"));
    assert!(!format!("{:?}", sink.metric_points()).contains("eu-west"));
    assert!(!everything(&sink.spans(), &sink).contains("PAYLOAD"));
}

#[test]
fn secret_looking_keys_are_refused_even_when_allow_listed() {
    for key in [
        "api_token",
        "password",
        "sessionId",
        "X-Auth",
        "apiKey",
        "aws_access_key",
        "cookie",
    ] {
        let err = Flowtel::builder()
            .with_in_memory(&InMemory::new())
            .with_span_extra_key(key)
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains(key) && err.contains("secret"), "{key}: {err}");
        assert!(Flowtel::builder()
            .with_in_memory(&InMemory::new())
            .with_metric_extra_key(key)
            .build()
            .is_err());
    }
    for key in ["region", "model", "keyword_count", "tokenizer"] {
        let f = Flowtel::builder()
            .with_in_memory(&InMemory::new())
            .with_span_extra_key(key)
            .build()
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        f.shutdown(Duration::from_secs(5)).unwrap();
    }
}
