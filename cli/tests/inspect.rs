//! `flowtel inspect` on real PenguiFlow runs (`examples/penguiflow/incident.log`,
//! written by `flows.py --flow incident`): the failing node is the one the
//! run's events decided failed, not the first node that ever raised; and
//! the one the run's exported root span fails with.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flowtel::{FlowEvent, Flowtel, InMemory, SpanData};
use flowtel_semconv::{attr, span};
use opentelemetry::trace::{SpanId, Status};

/// enrich fails once and recovers; nothing else fails.
const RECOVERED: &str = "af13e31a2d2142b3bd21a5695f607ed8";
/// enrich fails once and recovers; answer then fails terminally.
const RECOVER_THEN_FAIL: &str = "bc79b842c8ef4d978371776a7d0f8651";
/// audit fails terminally; enrich recovers; answer fails terminally too.
const SEVERAL_FAIL: &str = "0ae6e8828f31402c930a65d8e6e6e2c9";

fn log(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/penguiflow")
        .join(name)
}

/// The report of `flowtel inspect TRACE FILE`, by numbered section.
fn inspect(trace: &str, file: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_flowtel"))
        .args(["inspect", "--color", "never", trace])
        .arg(log(file))
        .output()
        .expect("run flowtel");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sections(&stdout)
}

/// Sections 1 to 6 of the report, each with its indented detail lines.
fn sections(report: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in report.lines() {
        let numbered = line
            .split_once(". ")
            .is_some_and(|(n, _)| n.len() == 1 && n.as_bytes()[0].is_ascii_digit());
        if numbered {
            out.push(format!("{line}\n"));
        } else if line.starts_with("     ") && !out.is_empty() && out.len() <= 6 {
            out.last_mut().unwrap().push_str(&format!("{line}\n"));
        } else if line.starts_with("run ") && out.len() >= 6 {
            break; // the waterfall
        }
    }
    assert_eq!(out.len(), 6, "six sections expected:\n{report}");
    out
}

#[test]
fn recovered_errors_before_the_failure_do_not_hide_it() {
    let s = inspect(RECOVER_THEN_FAIL, "incident.log");
    assert!(
        s[0].starts_with("1. Last successful node: enrich (attempt 1)"),
        "{}",
        s[0]
    );
    assert!(
        s[1].starts_with(
            "2. Failing node: answer failed: NODE_EXCEPTION: Node 'answer' raised ValueError"
        ),
        "{}",
        s[1]
    );
    // Its attempts, then the error that was recovered from, named as such.
    assert!(s[1].contains("attempt 0: error"), "{}", s[1]);
    assert!(s[1].contains("attempt 1: error"), "{}", s[1]);
    assert!(
        s[1].contains("recovered: enrich attempt 0 error") && s[1].contains("ConnectionError"),
        "{}",
        s[1]
    );
    assert!(
        s[2].starts_with("3. Queue depths around it: answer "),
        "{}",
        s[2]
    );
    assert!(s[2].contains("upstream enrich"), "{}", s[2]);
}

#[test]
fn several_failing_nodes_are_all_named() {
    let s = inspect(SEVERAL_FAIL, "incident.log");
    // The first terminal failure leads (the run's root span carries its
    // code too); every other node that failed is named after it.
    assert!(
        s[1].starts_with(
            "2. Failing node: audit failed: NODE_EXCEPTION: Node 'audit' raised PermissionError"
        ),
        "{}",
        s[1]
    );
    assert!(
        s[1].contains("also failed: answer: NODE_EXCEPTION: Node 'answer' raised ValueError"),
        "{}",
        s[1]
    );
    assert!(
        s[1].contains("recovered: enrich attempt 0 error"),
        "{}",
        s[1]
    );
    assert!(
        s[0].starts_with("1. Last successful node: ingest (attempt 0)"),
        "{}",
        s[0]
    );
}

#[test]
fn a_run_that_recovered_has_no_failing_node() {
    for (trace, file, recovered, last) in [
        (RECOVERED, "incident.log", "enrich", "answer"),
        // The retry run of the support flow.
        (
            "5fc0395421844e579bf80ba13d97e6d6",
            "sample.log",
            "triage",
            "summarize",
        ),
    ] {
        let s = inspect(trace, file);
        assert!(
            s[0].starts_with(&format!("1. Last successful node: {last} (attempt 0)")),
            "{trace}: {}",
            s[0]
        );
        assert!(
            s[1].starts_with("2. Failing node: none failed"),
            "{trace}: {}",
            s[1]
        );
        assert!(
            s[1].contains(&format!("recovered: {recovered} attempt 0 error")),
            "{trace}: {}",
            s[1]
        );
    }
}

/// The run's root span as the SDK exports it: `file`'s events of `trace`,
/// in file order (as `flowtel ingest` records them), through an in-memory
/// exporter (the spans any exporter gets).
fn exported_root(trace: &str, file: &str) -> SpanData {
    let sink = InMemory::new();
    let f = Flowtel::builder().with_in_memory(&sink).build().unwrap();
    let text = std::fs::read_to_string(log(file)).unwrap();
    for ev in text.lines().filter_map(|l| FlowEvent::from_json(l).ok()) {
        if ev.trace_id.as_deref() == Some(trace) {
            f.record_wait(ev, Duration::from_secs(10)).unwrap();
        }
    }
    f.shutdown(Duration::from_secs(10)).unwrap();
    let mut roots: Vec<SpanData> = sink
        .spans()
        .into_iter()
        .filter(|s| s.parent_span_id == SpanId::INVALID)
        .collect();
    assert_eq!(roots.len(), 1, "{trace}: one root span");
    roots.remove(0)
}

/// Every run of `file`, by trace id, in order of appearance.
fn traces(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(log(file)).unwrap();
    let mut out: Vec<String> = Vec::new();
    for ev in text.lines().filter_map(|l| FlowEvent::from_json(l).ok()) {
        if let Some(t) = ev.trace_id {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

#[test]
fn the_failing_node_is_the_one_the_exported_root_span_fails_with() {
    let mut failed_runs = 0;
    for file in ["incident.log", "sample.log"] {
        for trace in traces(file) {
            let root = exported_root(&trace, file);
            let headline = inspect(&trace, file)[1]
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let Status::Error { description } = &root.status else {
                assert!(
                    !headline.contains(" failed: "),
                    "{trace}: the root span carries no error\n{headline}"
                );
                continue;
            };
            failed_runs += 1;
            // The root's status is its first terminal failure; the
            // `flow.node.failed` event of that failure names the node.
            let failed = root
                .events
                .iter()
                .find(|e| e.name == span::FAILED_EVENT)
                .expect("a flow.node.failed event on a failed root");
            let value = |key: &str| {
                failed
                    .attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.as_str().into_owned())
                    .unwrap_or_default()
            };
            assert!(description.starts_with(&value(attr::ERROR_TYPE)));
            let node = value(attr::NODE_NAME);
            assert_eq!(
                headline,
                format!("2. Failing node: {node} failed: {description}"),
                "{trace} in {file}"
            );
        }
    }
    assert_eq!(
        failed_runs, 3,
        "two failed runs in incident.log, one in sample.log"
    );
}
