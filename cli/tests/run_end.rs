//! `flowtel ingest --follow --run-end-node NAME`: a successful run's root
//! span reaches the collector at the success of the node that ends the run,
//! while flowtel is still following, instead of after the 30 s idle
//! timeout.
//!
//! The input is the real PenguiFlow log `examples/penguiflow/sample.log`
//! (`flows.py`: fetch → triage → summarize, so `summarize` ends its runs).
//! Its failed, cancelled and deadline-skipped runs end at their last event
//! with no setting; its two successful runs (`ok`, and `retry`: triage
//! fails once and is retried) end there only because `summarize` is named.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowtel::FlowEvent;
use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::debuglog::{Received, Span};
use flowtel_integration_tests::unix_ns;
use flowtel_semconv::attr;

/// How long the roots may take. Below the SDK's 30 s run idle timeout, so
/// a root that arrives in time was not ended by it (and its end reason
/// says so too).
const DEADLINE: Duration = Duration::from_secs(20);

/// The runs whose last event is `summarize`'s success.
const SUCCESSFUL: [&str; 2] = [
    "4943fb45116245dd85e8650478f51530",
    "5fc0395421844e579bf80ba13d97e6d6",
];

fn sample() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/penguiflow/sample.log"
    ))
}

/// The FlowEvents of the sample log, by run.
fn runs() -> BTreeMap<String, Vec<FlowEvent>> {
    let text = std::fs::read_to_string(sample()).unwrap();
    let mut runs: BTreeMap<String, Vec<FlowEvent>> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let ev = FlowEvent::from_json(line).unwrap();
        if let Some(t) = ev.trace_id.clone() {
            runs.entry(t).or_default().push(ev);
        }
    }
    runs
}

fn roots<'a>(r: &'a Received, trace: &str) -> Vec<&'a Span> {
    r.trace(trace)
        .into_iter()
        .filter(|s| s.parent_id.is_empty())
        .collect()
}

fn ended_at_last_event(r: &Received, trace: &str) -> bool {
    roots(r, trace)
        .iter()
        .any(|s| s.attr(attr::RUN_END_REASON) == Some("last_event"))
}

fn sigterm_and_wait(child: Child) -> (Option<i32>, String) {
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let mut child = child;
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < DEADLINE,
            "flowtel did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn run_end_node_sends_successful_runs_roots_at_their_last_event_while_following() {
    let runs = runs();
    assert_eq!(runs.len(), 5, "the sample's runs");
    for t in SUCCESSFUL {
        let last = runs[t].last().unwrap();
        assert_eq!(
            (last.event_type.as_str(), last.node_name.as_deref()),
            ("node_success", Some("summarize")),
            "{t}: the sample's successful runs end at summarize"
        );
    }

    let collector = Collector::start();
    // A copy: a followed file is the test's own.
    let dir = std::env::temp_dir().join(format!("flowtel-run-end-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("app.log");
    std::fs::copy(sample(), &log).unwrap();

    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowtel"))
        .args([
            "ingest",
            "--follow",
            "--quiet",
            "--run-end-node",
            "summarize",
        ])
        .arg("--endpoint")
        .arg(collector.grpc_endpoint())
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let r = collector.wait_for(DEADLINE, |r| runs.keys().all(|t| ended_at_last_event(r, t)));
    let waited = started.elapsed();
    let following = child.try_wait().unwrap().is_none();
    let missing: Vec<&String> = runs
        .keys()
        .filter(|t| !ended_at_last_event(&r, t))
        .collect();
    if !missing.is_empty() || !following {
        let (code, stderr) = if following {
            sigterm_and_wait(child)
        } else {
            let out = child.wait_with_output().unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        panic!(
            "after {waited:?}, still following: {following}; runs without a \
             last_event root at the collector: {missing:?}\nflowtel ({code:?}):\n{stderr}\n\
             collector:\n{}",
            collector.raw_log()
        );
    }
    assert!(waited < DEADLINE, "{waited:?}");
    // Each root ends with its run's last event.
    for (t, evs) in &runs {
        let last = evs.iter().map(|e| e.ts).fold(f64::MIN, f64::max);
        let root = roots(&r, t)[0];
        let want_us = unix_ns(last) / 1000;
        assert!(
            (root.end_ns as i128 / 1000 - want_us).abs() <= 1,
            "{t}: root ends at {} ns, last event at {last}",
            root.end_ns
        );
    }

    let (code, stderr) = sigterm_and_wait(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("delivered: everything"), "{stderr}");
    // The shutdown flush sent no second root and no partial run span: each
    // run was over when its root went out.
    let r = collector.wait_for(DEADLINE, |r| r.spans.len() >= 18);
    for t in runs.keys() {
        assert_eq!(roots(&r, t).len(), 1, "{t}\n{}", collector.raw_log());
    }
    assert!(
        r.spans.iter().all(|s| s.attr(attr::RUN_PARTIAL).is_none()),
        "{}",
        collector.raw_log()
    );
    assert_eq!(r.spans.len(), 18, "13 attempts and 5 roots");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same from a pipe that stays open (`tail -f app.log | flowtel ingest
/// -`): the runs' spans reach the collector while the pipe is open and
/// quiet, not when it closes. (`flowtel ingest` hands its events over in
/// batches, and at every pause in its input.)
#[test]
fn events_from_a_quiet_pipe_go_out_while_it_stays_open() {
    use std::io::Write;

    let runs = runs();
    let collector = Collector::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowtel"))
        .args(["ingest", "--quiet", "--run-end-node", "summarize"])
        .arg("--endpoint")
        .arg(collector.grpc_endpoint())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&std::fs::read(sample()).unwrap()).unwrap();
    stdin.flush().unwrap();

    let r = collector.wait_for(DEADLINE, |r| runs.keys().all(|t| ended_at_last_event(r, t)));
    let open = child.try_wait().unwrap().is_none();
    let missing: Vec<&String> = runs
        .keys()
        .filter(|t| !ended_at_last_event(&r, t))
        .collect();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        missing.is_empty() && open,
        "pipe still open: {open}; runs without their root at the collector: {missing:?}\n\
         flowtel:\n{stderr}\ncollector:\n{}",
        collector.raw_log()
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("delivered: everything"), "{stderr}");
}
