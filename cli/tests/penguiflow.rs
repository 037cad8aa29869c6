//! Real PenguiFlow (penguiflow==3.11.2) flows write a structured log;
//! `flowtel ingest` pushes it to a real collector (rotel-agent) over gRPC
//! and over HTTP; what arrived is checked against the events the flows
//! emitted, captured by a second middleware in the same run.

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use flowtel::FlowEvent;
use flowtel_integration_tests::assertions::{
    check_attempt, check_no_ids_in_metrics, check_tree, counter_total, histogram_count,
};
use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::penguiflow::{self, Flows};
use flowtel_integration_tests::scenario::ExpectedAttempt;

/// Run `flows.py --flow <flow>`: its log and the events it captured.
fn run_flows(flow: &str) -> Flows {
    let dir = std::env::temp_dir().join(format!("flowtel-pf-{}-{flow}", std::process::id()));
    penguiflow::run_flows(flow, &dir)
}

/// Run the flows once per test process; every test reads the same log.
fn flows() -> &'static Flows {
    static FLOWS: OnceLock<Flows> = OnceLock::new();
    FLOWS.get_or_init(|| run_flows("support"))
}

fn us(ts: f64) -> i128 {
    flowtel_integration_tests::unix_ns(ts) / 1000
}

/// Every attempt span the captured events promise.
fn expected_attempts(evs: &[FlowEvent]) -> Vec<ExpectedAttempt> {
    let mut out = Vec::new();
    for (i, e) in evs.iter().enumerate() {
        let Some(trace) = &e.trace_id else { continue };
        let node = e.node_name.clone().unwrap_or_default();
        let (outcome, error_type) = match e.event_type.as_str() {
            "node_success" => ("success", None),
            "node_error" => {
                let repr = e.extra["exception"].as_str().unwrap_or_default();
                let ty = repr.split('(').next().unwrap_or_default().to_string();
                ("error", Some(ty))
            }
            "node_timeout" => ("timeout", Some("timeout".to_string())),
            "node_trace_cancelled" => {
                // Ends the attempt its node_start opened.
                let start = evs[..i]
                    .iter()
                    .rev()
                    .find(|s| {
                        s.event_type == "node_start"
                            && s.trace_id == e.trace_id
                            && s.node_name == e.node_name
                    })
                    .expect("cancelled attempt has a start");
                out.push(ExpectedAttempt {
                    trace_id: trace.clone(),
                    node,
                    attempt: start.attempt,
                    outcome: "cancelled",
                    start_us: us(start.ts),
                    end_us: us(e.ts),
                    error_type: None,
                });
                continue;
            }
            _ => continue,
        };
        out.push(ExpectedAttempt {
            trace_id: trace.clone(),
            node,
            attempt: e.attempt,
            outcome,
            start_us: flowtel_integration_tests::attempt_us(e.ts, e.latency_ms.unwrap()).0,
            end_us: us(e.ts),
            error_type,
        });
    }
    out
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
    let attempts = expected_attempts(evs);
    let traces: HashSet<&str> = evs.iter().filter_map(|e| e.trace_id.as_deref()).collect();
    let expected_spans = attempts.len() + traces.len();
    let r = collector.wait_for(Duration::from_secs(15), |r| {
        r.spans.len() >= expected_spans && r.points.iter().any(|p| p.metric == "flow.events")
    });
    let fail = |e: String| -> ! {
        panic!(
            "{protocol}: {e}\n--- collector log ---\n{}",
            collector.raw_log()
        )
    };
    assert_eq!(r.spans.len(), expected_spans, "{protocol}: spans");

    for t in &traces {
        let spans = r.trace(t);
        let root = check_tree(&spans).unwrap_or_else(|e| fail(format!("trace {t}: {e}")));
        assert_eq!(root.name, "support-triage");
        let of = |kind: &str| {
            evs.iter()
                .filter(|e| e.trace_id.as_deref() == Some(*t) && e.event_type == kind)
                .count()
        };
        let marks = |name: &str| root.events.iter().filter(|e| e.name == name).count();
        assert_eq!(marks("flow.node.retry"), of("node_retry"), "{t}: retries");
        assert_eq!(
            marks("flow.node.failed"),
            of("node_failed"),
            "{t}: failures"
        );
        assert_eq!(
            marks("flow.deadline_skip"),
            of("deadline_skip"),
            "{t}: deadline skips"
        );
        assert_eq!(
            marks("flow.trace_cancel_start"),
            of("trace_cancel_start"),
            "{t}: cancels"
        );
        if let Some(f) = evs
            .iter()
            .find(|e| e.trace_id.as_deref() == Some(*t) && e.event_type == "node_failed")
        {
            assert_eq!(root.status_code, "STATUS_CODE_ERROR");
            assert_eq!(
                root.attr("error.type"),
                f.extra["flow_error"]["code"].as_str()
            );
        }
    }
    for a in &attempts {
        check_attempt(&r, a).unwrap_or_else(|e| fail(e));
    }
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

    // Metrics: counts per type equal PenguiFlow's, one duration per attempt,
    // and no ids anywhere.
    let mut by_type: BTreeMap<&str, f64> = BTreeMap::new();
    for e in evs {
        *by_type.entry(e.event_type.as_str()).or_default() += 1.0;
    }
    for (kind, n) in &by_type {
        assert_eq!(
            counter_total(&r, "flow.events", "flow.event.type", kind),
            *n,
            "{protocol}: flow.events {kind}"
        );
    }
    let timed = evs
        .iter()
        .filter(|e| {
            matches!(
                e.event_type.as_str(),
                "node_success" | "node_error" | "node_timeout"
            )
        })
        .count() as u64;
    assert_eq!(histogram_count(&r, "flow.node.duration"), timed);
    let mut ids: Vec<String> = traces.iter().map(|t| t.to_string()).collect();
    // PenguiFlow's control endpoints (OpenSea, Rookery) use their name as
    // their id; only real instance ids must stay out of metrics.
    ids.extend(
        evs.iter()
            .filter(|e| e.node_id != e.node_name)
            .filter_map(|e| e.node_id.clone()),
    );
    check_no_ids_in_metrics(&r, &ids).unwrap_or_else(|e| fail(e));
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
