//! `flowtel ingest --follow`: keeps reading a growing file through rotation
//! and truncation, and on SIGTERM flushes everything to the collector and
//! exits cleanly.
//!
//! No step waits a fixed time: each change to the file is made once the
//! collector has received the spans of the lines before it (so flowtel has
//! read them and sits at the end of the file), and each change can only be
//! noticed the way it is meant to be: the rotated-in file is longer than the
//! old one (only its new inode tells), the truncated file is the same inode
//! and shorter than the position flowtel had reached (only its length
//! tells), so neither depends on when flowtel next looks.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::unix_now;

/// How long any one condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

const RUNS: [&str; 4] = [
    "a0000000000000000000000000000001",
    "b0000000000000000000000000000002",
    "c0000000000000000000000000000003",
    "d0000000000000000000000000000004",
];

fn line(trace: &str, node: &str, ts: f64) -> String {
    format!(
        "{{\"event\":\"node_success\",\"ts\":{ts},\"node_name\":\"{node}\",\"node_id\":\"{node}\",\
         \"trace_id\":\"{trace}\",\"latency_ms\":5.0,\"attempt\":0}}\n"
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Wait until the collector holds `spans` spans of `run`, with flowtel
/// still following.
fn arrived(collector: &Collector, child: &mut Child, run: &str, spans: usize, step: &str) {
    let r = collector.wait_for(DEADLINE, |r| r.trace(run).len() >= spans);
    assert_eq!(
        r.trace(run).len(),
        spans,
        "{step}: spans of {run} at the collector\n{}",
        collector.raw_log()
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "{step}: flowtel stopped following"
    );
}

#[test]
fn follow_survives_rotation_and_truncation_and_flushes_on_sigterm() {
    let collector = Collector::start();
    let dir = std::env::temp_dir().join(format!("flowtel-follow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("app.log");
    let t = unix_now();
    std::fs::write(
        &log,
        line(RUNS[0], "fetch", t) + &line(RUNS[0], "triage", t + 0.01),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_flowtel"))
        .args(["ingest", "--follow", "--quiet", "--endpoint"])
        .arg(collector.grpc_endpoint())
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    arrived(&collector, &mut child, RUNS[0], 2, "start");

    // Growth.
    append(
        &log,
        &(line(RUNS[1], "fetch", t + 1.0) + &line(RUNS[1], "triage", t + 1.01)),
    );
    arrived(&collector, &mut child, RUNS[1], 2, "growth");

    // Rotation: the old file moves away, a new one takes its name. The new
    // file is whole when it appears and longer than the old one, so only
    // its new identity tells flowtel to reopen the path.
    let old_len = std::fs::metadata(&log).unwrap().len() as usize;
    let rotated = format!("INFO app: log rotated {}\n", "-".repeat(old_len))
        + &line(RUNS[2], "fetch", t + 2.0);
    std::fs::write(dir.join("app.log.new"), &rotated).unwrap();
    std::fs::rename(&log, dir.join("app.log.1")).unwrap();
    std::fs::rename(dir.join("app.log.new"), &log).unwrap();
    arrived(&collector, &mut child, RUNS[2], 1, "rotation");

    // Truncation: the file is emptied and rewritten, shorter than before
    // (same file, so only its length tells).
    let rewritten = line(RUNS[3], "fetch", t + 3.0);
    assert!(rewritten.len() < rotated.len());
    std::fs::write(&log, "").unwrap();
    append(&log, &rewritten);
    arrived(&collector, &mut child, RUNS[3], 1, "truncation");

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "flowtel did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("7 lines"), "{stderr}");
    assert!(stderr.contains("6 events"), "{stderr}");
    assert!(stderr.contains("skipped:   not JSON 1"), "{stderr}");
    assert!(stderr.contains("delivered: everything"), "{stderr}");

    // Every run arrived, roots included (ended by the shutdown flush).
    let r = collector.wait_for(DEADLINE, |r| r.spans.len() >= 10);
    for (run, attempts) in RUNS.iter().zip([2, 2, 1, 1]) {
        let spans = r.trace(run);
        assert_eq!(
            spans.len(),
            attempts + 1,
            "{run}: {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
    }
    assert_eq!(r.spans.len(), 10);
    let _ = std::fs::remove_dir_all(&dir);
}
