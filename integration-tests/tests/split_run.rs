//! One real PenguiFlow log split between two processes that both export to
//! the same real collector: the root owner (default) and a partial
//! pipeline (`with_partial_runs(true)`). Line by line, so an attempt's start
//! and its end often land in different processes. The collector must end up
//! with one root per run, every attempt once, and no span id twice.

use std::process::Command;
use std::time::Duration;

use flowtel::{Flowtel, Protocol};
use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::split::{attempts_per_trace, check_split_runs, split_log};

fn log() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/penguiflow/sample.log"
    );
    std::fs::read_to_string(path).unwrap()
}

#[test]
#[ignore = "run as a child process by a_run_split_across_two_processes_is_one_tree"]
fn child_exports_its_part() {
    let part: usize = std::env::var("FLOWTEL_TEST_PART").unwrap().parse().unwrap();
    let flowtel = Flowtel::builder()
        .with_endpoint(std::env::var("FLOWTEL_TEST_ENDPOINT").unwrap())
        .with_protocol(Protocol::Grpc)
        .with_flow_name("sample")
        .with_partial_runs(part == 1)
        .build()
        .unwrap();
    for (side, _, ev) in split_log(&log()) {
        if side == part {
            flowtel.record(ev).unwrap();
        }
    }
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
}

#[test]
fn a_run_split_across_two_processes_is_one_tree() {
    let collector = Collector::start();
    let children: Vec<_> = (0..2)
        .map(|part| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "child_exports_its_part", "--ignored"])
                .env("FLOWTEL_TEST_PART", part.to_string())
                .env("FLOWTEL_TEST_ENDPOINT", collector.grpc_endpoint())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }

    let text = log();
    let split = split_log(&text);
    let attempts = attempts_per_trace(split.iter().map(|(_, _, ev)| ev));
    let r = check_split_runs(&collector, &attempts);
    assert!(
        r.spans
            .iter()
            .any(|s| s.attr("flow.run.partial") == Some("true")),
        "the partial process exported its part of the runs"
    );
}
