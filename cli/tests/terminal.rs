//! The `flowtel` command without a collector: terminal output against golden
//! files (regenerate with `UPDATE_GOLDEN=1 cargo test -p flowtel-cli`), and
//! how it treats bad input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sample() -> PathBuf {
    root().join("examples/penguiflow/sample.log")
}

/// The binary with no OTLP configuration inherited from the environment.
fn flowtel(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowtel"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run flowtel");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

#[test]
fn ingest_shows_waterfall_and_node_table() {
    let out = flowtel(&["ingest", sample().to_str().unwrap()], None);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    golden("ingest_sample.txt", &stdout);
    assert!(!stdout.contains('\x1b'), "no colour when not on a terminal");
    assert!(stderr.contains("42 lines"), "{stderr}");
    assert!(stderr.contains("35 events"), "{stderr}");
    assert!(stderr.contains("skipped:   not JSON 7"), "{stderr}");
    assert!(stderr.contains("delivered: everything"), "{stderr}");
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let out = flowtel(
        &["ingest", "--color", "always", sample().to_str().unwrap()],
        None,
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("\x1b[31m"), "errors in red");
    assert!(stdout.contains("\x1b[33m"), "timeouts in yellow");
}

#[test]
fn inspect_walks_the_incident_sequence() {
    let out = flowtel(
        &[
            "inspect",
            "40badd4efcaa47e48b7a9f5759d94fb4",
            sample().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    golden("inspect_timeout.txt", &text(&out.stdout));

    let out = flowtel(
        &[
            "inspect",
            "a0dfd7f371b64b4784de17a3a72426ab",
            sample().to_str().unwrap(),
        ],
        None,
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("trace_cancel_start at OpenSea (1 pending)"),
        "{stdout}"
    );
    assert!(stdout.contains("cancellation/deadlines"), "{stdout}");

    let out = flowtel(
        &[
            "inspect",
            "ffffffffffffffffffffffffffffffff",
            sample().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no events of run ffffffffffffffffffffffffffffffff"));
}

#[test]
fn bad_lines_never_stop_a_run_and_are_counted() {
    let mut input = String::new();
    input.push_str("plain text line\n");
    input.push_str("{\"event\":\"node_success\",\"ts\":1795305121.5,\"node_name\":\"a\",\"trace_id\":\"3e512c5b0a184257a25c215d19544e6a\",\"latency_ms\":5}\n");
    for i in 1..=8 {
        input.push_str(&format!(
            "{{\"event\":\"node_success\",\"ts\":1,\"latency_ms\":-{i}}}\n"
        ));
    }
    input.push_str("{\"event\":\"node_start\",\"ts\":\"late\"}\n");
    input.push_str("{\"event\":\"node_st\n");
    input.push_str("{\"level\":\"INFO\",\"message\":\"hi\",\"extra\":{\"k\":1}}\n");
    let mut bytes = input.into_bytes();
    bytes.extend_from_slice(b"\xff\xfe not utf8\n");
    bytes.extend_from_slice(&[b'x'; 300]);
    bytes
        .extend_from_slice(b"\n{\"event\":\"node_start\",\"ts\":1795305121.0,\"node_name\":\"a\"}");
    let out = flowtel(&["ingest", "--max-line-bytes", "200", "-"], Some(&bytes));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The first five problems are shown with their origin...
    assert!(stderr.contains("<stdin>:3: field `latency_ms`"), "{stderr}");
    assert_eq!(stderr.matches("<stdin>:").count(), 5, "{stderr}");
    assert!(
        stderr.contains("further problems are only counted"),
        "{stderr}"
    );
    // ... and every kind is counted in the summary.
    assert!(stderr.contains("invalid `latency_ms` 8"), "{stderr}");
    assert!(stderr.contains("invalid `ts` 1"), "{stderr}");
    assert!(stderr.contains("malformed JSON 1"), "{stderr}");
    assert!(stderr.contains("invalid UTF-8 1"), "{stderr}");
    assert!(stderr.contains("line too long 1"), "{stderr}");
    assert!(stderr.contains("JSON, not a FlowEvent 1"), "{stderr}");
    assert!(stderr.contains("2 events"), "{stderr}");
}

#[test]
fn other_libraries_json_logs_are_skipped_not_problems() {
    // A service log mixing structlog lines with PenguiFlow's.
    let input = "\
{\"event\": \"user logged in\", \"timestamp\": \"2026-11-22T00:20:29.202800Z\", \"level\": \"info\"}
{\"event\": \"cache_warmed\", \"timestamp\": \"2026-11-22T00:20:29.3Z\", \"level\": \"debug\", \"trace_id\": \"3e512c5b0a184257a25c215d19544e6a\"}
{\"event\":\"node_success\",\"ts\":1795305121.5,\"node_name\":\"a\",\"trace_id\":\"3e512c5b0a184257a25c215d19544e6a\",\"latency_ms\":5}
{\"event\":\"node_success\",\"ts\":1795305121.6,\"node_name\":\"b\",\"latency_ms\":-5}
";
    let out = flowtel(&["ingest", "-"], Some(input.as_bytes()));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("1 events"), "{stderr}");
    assert!(
        stderr.contains("skipped:   JSON, not a FlowEvent 2"),
        "{stderr}"
    );
    // The broken FlowEvent is still a problem, shown with its origin.
    assert!(stderr.contains("1 problems"), "{stderr}");
    assert!(stderr.contains("<stdin>:4: field `latency_ms`"), "{stderr}");
    assert!(!stderr.contains("<stdin>:1:"), "{stderr}");
}

#[test]
fn zero_length_and_single_event_runs_render() {
    let t = "3e512c5b0a184257a25c215d19544e6a";
    let input = format!(
        "{{\"event\":\"node_success\",\"ts\":1795305121.0,\"node_name\":\"a\",\"trace_id\":\"{t}\",\"latency_ms\":10}}\n\
         {{\"event\":\"node_success\",\"ts\":1795305121.5,\"node_name\":\"b\",\"trace_id\":\"{t}\",\"latency_ms\":0}}\n\
         {{\"event\":\"node_success\",\"ts\":1795305122.0,\"node_name\":\"c\",\"trace_id\":\"other\",\"latency_ms\":0}}\n"
    );
    let out = flowtel(&["ingest", "-"], Some(input.as_bytes()));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("  b "), "{stdout}");
    assert!(stdout.contains("  c "), "{stdout}");
}

#[test]
fn usage_errors_and_missing_files_exit_2() {
    let out = flowtel(&["ingest", "/nonexistent/app.log"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/app.log"));
    let out = flowtel(&["ingest", "--bogus"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("Usage: flowtel ingest"));
    let out = flowtel(&["--help"], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("flowtel ingest"));
}
