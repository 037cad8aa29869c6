//! Real PenguiFlow (penguiflow==3.11.2) flows write a structured log;
//! `flowtel ingest` pushes it to a real collector (rotel-agent) over gRPC
//! and over HTTP; what arrived is checked against the events the flows
//! emitted, captured by a second middleware in the same run.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use flowtel::FlowEvent;
use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::flows::{self, Flows};
use flowtel_integration_tests::penguiflow::{check_run, expected_span_count};

/// Run `flows.py --flow <flow>`: its log and the events it captured.
fn run_flows(flow: &str) -> Flows {
    let dir = std::env::temp_dir().join(format!("flowtel-pf-{}-{flow}", std::process::id()));
    flows::run_flows(flow, &dir)
}

/// Run the flows once per test process; every test reads the same log.
fn flows() -> &'static Flows {
    static FLOWS: OnceLock<Flows> = OnceLock::new();
    FLOWS.get_or_init(|| run_flows("support"))
}

fn ingest_and_check(protocol: &str) {
    let flows = flows();
    let collector = Collector::start();
    let endpoint = if protocol == "grpc" {
        collector.grpc_endpoint()
    } else {
        collector.http_endpoint()
    };
    // Both spellings of a flag's value: `--endpoint=URL` and `--protocol P`.
    let out = Command::new(env!("CARGO_BIN_EXE_flowtel"))
        .args([
            "ingest",
            "--quiet",
            &format!("--endpoint={endpoint}"),
            "--protocol",
            protocol,
        ])
        .args([
            "--service-name",
            "penguiflow-it",
            "--flow-name",
            "support-triage",
        ])
        .arg(&flows.log)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("delivered: everything"), "{stderr}");

    let evs = &flows.events;
    // The flows cover every scenario the issue names.
    for kind in [
        "node_retry",
        "node_timeout",
        "node_failed",
        "trace_cancel_start",
        "deadline_skip",
    ] {
        assert!(
            evs.iter().any(|e| e.event_type == kind),
            "flows emitted no {kind}"
        );
    }
    let expected_spans = expected_span_count(evs);
    let r = collector.wait_for(Duration::from_secs(15), |r| {
        r.spans.len() >= expected_spans && r.points.iter().any(|p| p.metric == "flow.events")
    });
    // Spans (one tree per run, every attempt once with exact timing and
    // status), metrics (counts per type, one duration per attempt, no ids).
    if let Err(e) = check_run(&r, evs, "support-triage") {
        panic!(
            "{protocol}: {e}\n--- collector log ---\n{}",
            collector.raw_log()
        )
    }
}

#[test]
fn penguiflow_log_over_grpc() {
    ingest_and_check("grpc");
}

#[test]
fn penguiflow_log_over_http() {
    ingest_and_check("http/protobuf");
}

/// Live runs where an early node fails and recovers on its retry before a
/// later node fails terminally (and one where two nodes fail): `inspect`
/// names the node whose `node_failed` came first, and the last success
/// before it, as PenguiFlow's own events (captured by a middleware) say.
#[test]
fn inspect_names_the_terminal_failure_of_live_runs() {
    let flows = run_flows("incident");
    let evs = &flows.events;
    let mut traces: Vec<&str> = evs.iter().filter_map(|e| e.trace_id.as_deref()).collect();
    traces.dedup();
    assert_eq!(traces.len(), 3, "{traces:?}");
    for t in traces {
        let run: Vec<&FlowEvent> = evs
            .iter()
            .filter(|e| e.trace_id.as_deref() == Some(t))
            .collect();
        let failed = run.iter().position(|e| e.event_type == "node_failed");
        let last_ok = run[..failed.unwrap_or(run.len())]
            .iter()
            .rev()
            .find(|e| e.event_type == "node_success")
            .expect("a success before");
        assert!(
            run.iter().any(|e| e.event_type == "node_error"
                && run.iter().any(|s| s.event_type == "node_success"
                    && s.node_name == e.node_name
                    && s.ts > e.ts)),
            "{t}: the flow recovers from an error in every run"
        );
        let out = Command::new(env!("CARGO_BIN_EXE_flowtel"))
            .args(["inspect", "--color", "never", t])
            .arg(&flows.log)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        let expect_ok = format!(
            "1. Last successful node: {} (attempt {})",
            last_ok.node_name.as_deref().unwrap_or("?"),
            last_ok.attempt
        );
        assert!(stdout.contains(&expect_ok), "{t}: {expect_ok}\n{stdout}");
        let expect_failing = match failed {
            Some(i) => format!(
                "2. Failing node: {} failed: {}",
                run[i].node_name.as_deref().unwrap_or("?"),
                run[i].extra["flow_error"]["code"].as_str().unwrap_or("?")
            ),
            None => "2. Failing node: none failed".to_string(),
        };
        assert!(
            stdout.contains(&expect_failing),
            "{t}: {expect_failing}\n{stdout}"
        );
        // Every node that failed terminally is named.
        for e in run.iter().filter(|e| e.event_type == "node_failed") {
            let name = e.node_name.as_deref().unwrap_or("?");
            assert!(
                stdout.contains(&format!("{name} failed:"))
                    || stdout.contains(&format!("also failed: {name}:")),
                "{t}: {name} not named as failed\n{stdout}"
            );
        }
    }
}
