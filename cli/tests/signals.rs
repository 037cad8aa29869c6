//! Choosing an exporter per signal, as a new user would against a real
//! traces-only backend (rotel-agent with its metrics receiver disabled,
//! which answers metrics as Phoenix or Jaeger do): `OTEL_METRICS_EXPORTER=none`
//! makes `flowtel ingest` deliver everything and exit 0; without it the
//! summary says why not and what to set. Per-signal endpoints keep working.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use flowtel_integration_tests::collector::Collector;

fn sample_log() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/penguiflow/sample.log"
    ))
}

/// The runs of the sample log.
fn sample_traces() -> BTreeSet<String> {
    std::fs::read_to_string(sample_log())
        .unwrap()
        .lines()
        .filter_map(|l| flowtel::FlowEvent::from_json(l).ok())
        .filter_map(|e| e.trace_id)
        .collect()
}

/// `flowtel ingest` of the sample log with `args` and `env` (and no other
/// `OTEL_*` variable of the test's own environment).
fn ingest(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flowtel"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") || k.starts_with("FLOWTEL_PROMETHEUS") {
            c.env_remove(k);
        }
    }
    c.args(["ingest", "--quiet", "--timeout", "10"])
        .args(args)
        .arg(sample_log())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Wait until the collector holds a span of every run of the sample log.
fn every_run_arrived(c: &Collector) {
    let want = sample_traces();
    let r = c.wait_for(Duration::from_secs(15), |r| {
        let got: BTreeSet<&str> = r.spans.iter().map(|s| s.trace_id.as_str()).collect();
        want.iter().all(|t| got.contains(t.as_str()))
    });
    let got: BTreeSet<String> = r.spans.iter().map(|s| s.trace_id.clone()).collect();
    assert!(want.is_subset(&got), "runs {want:?}, got {got:?}");
}

#[test]
fn a_traces_only_backend_with_metrics_none_gets_everything_and_exit_0() {
    let c = Collector::start_traces_only();
    // gRPC, the endpoint as a flag and the choice from the environment.
    let out = ingest(
        &["--endpoint", &c.grpc_endpoint()],
        &[("OTEL_METRICS_EXPORTER", "none".into())],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("delivered: everything"), "{err}");
    assert!(err.contains("  metrics:   none"), "{err}");
    assert!(!err.contains("warning"), "{err}");
    every_run_arrived(&c);

    // HTTP through the per-signal endpoint only, the choice as a flag.
    let c = Collector::start_traces_only();
    let out = ingest(
        &["--metrics-exporter", "none"],
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("{}/v1/traces", c.http_endpoint()),
            ),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("delivered: everything"), "{err}");
    every_run_arrived(&c);
    assert!(c.received().points.is_empty(), "metrics were sent");
}

#[test]
fn without_metrics_none_the_summary_says_what_to_set() {
    let c = Collector::start_traces_only();
    let out = ingest(&["--endpoint", &c.grpc_endpoint()], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("delivered: NOT everything"), "{err}");
    assert!(err.contains("OTEL_METRICS_EXPORTER=none"), "{err}");
    assert!(err.contains("--metrics-exporter none"), "{err}");
    // The spans still arrived.
    every_run_arrived(&c);
}

#[test]
fn traces_none_sends_metrics_only() {
    let c = Collector::start();
    let out = ingest(
        &["--endpoint", &c.grpc_endpoint()],
        &[("OTEL_TRACES_EXPORTER", "none".into())],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("  traces:    none"), "{err}");
    let r = c.wait_for(Duration::from_secs(15), |r| {
        r.points.iter().any(|p| p.metric == "flow.events")
    });
    assert!(
        r.points.iter().any(|p| p.metric == "flow.node.duration"),
        "{}",
        c.raw_log()
    );
    assert!(r.spans.is_empty(), "spans were sent: {:?}", r.spans.len());
    // No terminal view either: nothing on standard output.
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bad_exporter_choices_are_usage_errors() {
    for (args, env, msg) in [
        (
            vec![],
            vec![("OTEL_METRICS_EXPORTER", "statsd")],
            "unknown exporter `statsd`",
        ),
        (
            vec![],
            vec![("OTEL_TRACES_EXPORTER", "prometheus")],
            "takes metrics only",
        ),
        (
            vec![],
            vec![("OTEL_METRICS_EXPORTER", "none,otlp")],
            "cannot be combined",
        ),
        (
            vec!["--prometheus-address", "127.0.0.1:0"],
            vec![],
            "need --metrics-exporter prometheus",
        ),
    ] {
        let env: Vec<(&str, String)> = env.into_iter().map(|(k, v)| (k, v.to_string())).collect();
        let out = ingest(&args, &env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert!(err.contains(msg), "{args:?} {env:?}: {err}");
    }
}
