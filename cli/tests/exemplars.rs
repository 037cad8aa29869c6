//! Exemplars over OTLP, end to end: a real PenguiFlow log through
//! `flowtel ingest` into a real collector (rotel-agent, gRPC and HTTP).
//! Every exemplar of `flow.node.duration` names an attempt span the
//! collector received, of the same node and outcome, whose duration is the
//! exemplar's value; the ids are in exemplars only, never in attributes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::debuglog::{Received, Span};

fn ingest_into(c: &Collector, protocol: &str) -> Received {
    let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/penguiflow/sample.log");
    let endpoint = match protocol {
        "grpc" => c.grpc_endpoint(),
        _ => c.http_endpoint(),
    };
    let out = Command::new(env!("CARGO_BIN_EXE_flowtel"))
        .args([
            "ingest",
            "--quiet",
            "--endpoint",
            &endpoint,
            "--protocol",
            protocol,
        ])
        .arg(log)
        .env_remove("OTEL_METRICS_EXPORTER")
        .env_remove("OTEL_TRACES_EXPORTER")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    c.wait_for(Duration::from_secs(15), |r| {
        r.spans.len() >= 18 && r.points.iter().any(|p| p.metric == "flow.node.duration")
    })
}

fn check(protocol: &str) {
    let c = Collector::start();
    let r = ingest_into(&c, protocol);
    let spans: BTreeMap<(&str, &str), &Span> = r
        .spans
        .iter()
        .map(|s| ((s.trace_id.as_str(), s.span_id.as_str()), s))
        .collect();
    let durations: Vec<_> = r
        .latest_points()
        .into_iter()
        .filter(|p| p.metric == "flow.node.duration")
        .collect();
    assert!(!durations.is_empty(), "{}", c.raw_log());
    let mut checked = 0;
    for p in durations {
        assert!(
            !p.exemplars.is_empty(),
            "{protocol}: a series without exemplars: {p:?}"
        );
        for key in p.attributes.keys() {
            assert!(
                ["flow.node.name", "flow.node.outcome"].contains(&key.as_str()),
                "{protocol}: attribute {key} on {p:?}"
            );
        }
        for e in &p.exemplars {
            let id = (e["Trace ID"].as_str(), e["Span ID"].as_str());
            let span = spans
                .get(&id)
                .unwrap_or_else(|| panic!("{protocol}: exemplar {id:?} names no received span"));
            assert_eq!(
                span.name, p.attributes["flow.node.name"],
                "{protocol}: {e:?}"
            );
            assert_eq!(
                span.attr("flow.node.outcome"),
                Some(p.attributes["flow.node.outcome"].as_str()),
                "{protocol}: {e:?}"
            );
            let value: f64 = e["Value"].parse().unwrap();
            let span_secs = (span.end_ns - span.start_ns) as f64 / 1e9;
            assert!(
                (value - span_secs).abs() < 2e-6,
                "{protocol}: exemplar {value} s, span {span_secs} s"
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "{protocol}: {checked} exemplars");
}

#[test]
fn exemplars_over_grpc_name_received_attempt_spans() {
    check("grpc");
}

#[test]
fn exemplars_over_http_name_received_attempt_spans() {
    check("http/protobuf");
}
