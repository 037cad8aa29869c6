//! `flowtel ingest --follow`: keeps reading a growing file through rotation
//! and truncation, and on SIGTERM flushes everything to the collector and
//! exits cleanly.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::unix_now;

fn line(trace: &str, node: &str, ts: f64) -> String {
    format!(
        "{{\"event\":\"node_success\",\"ts\":{ts},\"node_name\":\"{node}\",\"node_id\":\"{node}\",\
         \"trace_id\":\"{trace}\",\"latency_ms\":5.0,\"attempt\":0}}\n"
    )
}

fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn follow_survives_rotation_and_truncation_and_flushes_on_sigterm() {
    let collector = Collector::start();
    let dir = std::env::temp_dir().join(format!("flowtel-follow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("app.log");
    let t = unix_now();
    let runs = [
        "a0000000000000000000000000000001",
        "b0000000000000000000000000000002",
        "c0000000000000000000000000000003",
        "d0000000000000000000000000000004",
    ];
    std::fs::write(
        &log,
        line(runs[0], "fetch", t) + &line(runs[0], "triage", t + 0.01),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_flowtel"))
        .args([
            "ingest",
            "--follow",
            "--quiet",
            "--endpoint",
            &collector.grpc_endpoint(),
        ])
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pause = || std::thread::sleep(Duration::from_millis(600));
    pause();
    // Growth.
    append(
        &log,
        &(line(runs[1], "fetch", t + 1.0) + &line(runs[1], "triage", t + 1.01)),
    );
    pause();
    // Rotation: the old file moves away, a new one takes its name.
    std::fs::rename(&log, dir.join("app.log.1")).unwrap();
    append(&log, &line(runs[2], "fetch", t + 2.0));
    pause();
    // Truncation: the file is emptied and rewritten, shorter than before.
    std::fs::write(&log, "").unwrap();
    pause();
    append(&log, &line(runs[3], "fetch", t + 3.0));
    pause();

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "flowtel did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("6 events"), "{stderr}");
    assert!(stderr.contains("delivered: everything"), "{stderr}");

    // Every run arrived, roots included (ended by the shutdown flush).
    let r = collector.wait_for(Duration::from_secs(10), |r| r.spans.len() >= 10);
    for (run, attempts) in runs.iter().zip([2, 2, 1, 1]) {
        let spans = r.trace(run);
        assert_eq!(
            spans.len(),
            attempts + 1,
            "{run}: {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
