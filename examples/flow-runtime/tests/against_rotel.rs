//! The example, run as a user runs it, against the real collector (rotel):
//! one tree per run, with the `tracing` spans under their attempts and the
//! downstream service's spans under the `enrich` attempts that called it.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use flowtel_integration_tests::assertions::check_nested_tree;
use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::debuglog::Span;

/// Run the example binary with `envs`, within a deadline.
fn run_example(envs: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flow-runtime"));
    for k in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(envs.iter().map(|(k, v)| (k, v)));
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("example binary");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the example did not exit within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The run ids the example printed, with their summary lines.
fn runs(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("run ")?;
            Some((rest.split(' ').next()?.to_string(), l.to_string()))
        })
        .collect()
}

fn children<'a>(spans: &[&'a Span], parent: &Span, name: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.parent_id == parent.span_id && s.name == name)
        .copied()
        .collect()
}

#[test]
fn the_example_shows_one_tree_per_run_with_the_downstream_span_under_its_caller() {
    let c = Collector::start();
    let out = run_example(&[("OTEL_EXPORTER_OTLP_ENDPOINT", c.grpc_endpoint())]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let runs = runs(&stdout);
    assert_eq!(runs.len(), 3, "{stdout}");
    // 10 + 12 + 14 spans of the flow, 2 per run of the inventory service.
    let r = c.wait_for(Duration::from_secs(20), |r| r.spans.len() >= 42);
    assert_eq!(r.spans.len(), 42, "{}", c.raw_log());

    for (i, (trace, line)) in runs.iter().enumerate() {
        let spans = r.trace(trace);
        let root = check_nested_tree(&spans).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(root.name, "order-pipeline");
        let attempts = |node: &str| children(&spans, root, node);
        for v in attempts("validate") {
            assert_eq!(children(&spans, v, "parse_order").len(), 1, "{line}");
            assert_eq!(children(&spans, v, "check_limits").len(), 1, "{line}");
        }
        let enrich = attempts("enrich");
        assert_eq!(enrich.len(), 2, "busy once, then ok: {line}");
        for e in &enrich {
            let fetch = children(&spans, e, "fetch_stock");
            assert_eq!(fetch.len(), 1, "{line}");
            let calls = children(&spans, e, "GET /stock");
            assert_eq!(
                calls.len(),
                1,
                "the downstream span under its caller: {line}"
            );
            assert_eq!(
                calls[0].resource.get("service.name").map(String::as_str),
                Some("inventory")
            );
            assert_eq!(
                e.resource.get("service.name").map(String::as_str),
                Some("flow-runtime")
            );
        }
        let charge = attempts("charge");
        for a in &charge {
            assert_eq!(children(&spans, a, "authorize").len(), 1, "{line}");
        }
        let outcomes: Vec<&str> = charge
            .iter()
            .filter_map(|a| a.attr("flow.node.outcome"))
            .collect();
        match i {
            0 => assert_eq!(outcomes, ["success"], "{line}"),
            1 => {
                let mut o = outcomes.clone();
                o.sort();
                assert_eq!(o, ["success", "timeout"], "{line}");
            }
            _ => {
                assert_eq!(outcomes, ["error"; 3], "{line}");
                assert_eq!(root.status_code, "STATUS_CODE_ERROR", "{line}");
                assert_eq!(root.attr("error.type"), Some("NODE_EXCEPTION"), "{line}");
                assert!(line.contains("FAILED"), "{line}");
            }
        }
        let retries = root
            .events
            .iter()
            .filter(|e| e.name == "flow.node.retry")
            .count();
        assert_eq!(retries, [1, 2, 3][i], "{line}");
    }
}

#[test]
fn without_a_collector_the_example_prints_its_runs_and_spans() {
    let out = run_example(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(runs(&stdout).len(), 3, "{stdout}");
    assert!(stdout.contains("name=\"GET /stock\""), "{stdout}");
    assert!(
        stdout.contains("flow-runtime: 36 spans exported, 0 dropped"),
        "{stdout}"
    );
}
