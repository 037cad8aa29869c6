//! One real PenguiFlow log split between two processes that both export to
//! the same real collector: the root owner (default) and a partial
//! pipeline (`with_partial_runs(true)`). Line by line, so an attempt's start
//! and its end often land in different processes. The collector must end up
//! with one root per run, every attempt once, and no span id twice with
//! different content.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use flowtel::{FlowEvent, Flowtel, Protocol};
use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::debuglog::Span;

const LOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/penguiflow/sample.log"
);

/// The log's FlowEvents, each with the process (0 = owner, 1 = partial)
/// that gets it: lines alternate, but the owner sees every run's first
/// event (a run the owner never sees has no root; see the README).
fn split() -> Vec<(usize, FlowEvent)> {
    let text = std::fs::read_to_string(LOG).unwrap();
    let mut seen = HashSet::new();
    text.lines()
        .filter_map(|l| FlowEvent::from_json(l).ok())
        .enumerate()
        .map(|(i, ev)| {
            let first = ev.trace_id.clone().is_some_and(|t| seen.insert(t));
            (if first { 0 } else { i % 2 }, ev)
        })
        .collect()
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
    for (p, ev) in split() {
        if p == part {
            flowtel.record(ev).unwrap();
        }
    }
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
}

/// What must agree when one span id arrives twice.
fn content(s: &Span) -> String {
    format!(
        "{} {} {} {} {} {} {:?}",
        s.trace_id, s.parent_id, s.name, s.start_ns, s.end_ns, s.status_code, s.attributes
    )
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

    let events = split();
    let mut terminals: HashMap<String, HashSet<String>> = HashMap::new();
    for (_, ev) in &events {
        if matches!(
            ev.event_type.as_str(),
            "node_success" | "node_error" | "node_timeout"
        ) {
            terminals
                .entry(ev.trace_id.clone().unwrap())
                .or_default()
                .insert(format!("{:?}{}{}", ev.node_id, ev.attempt, ev.ts));
        }
    }
    let expected_attempts: usize = terminals.values().map(HashSet::len).sum();
    let r = collector.wait_for(Duration::from_secs(10), |r| {
        r.spans
            .iter()
            .filter(|s| {
                s.attr("flow.node.outcome")
                    .is_some_and(|o| o != "incomplete")
            })
            .count()
            >= expected_attempts
    });

    let mut by_id: BTreeMap<&str, &Span> = BTreeMap::new();
    for s in &r.spans {
        if let Some(prev) = by_id.insert(&s.span_id, s) {
            assert_eq!(
                content(prev),
                content(s),
                "span id {} exported twice with different content",
                s.span_id
            );
        }
    }
    assert!(!terminals.is_empty());
    for (trace, ends) in &terminals {
        let spans = r.trace(trace);
        let roots: Vec<_> = spans.iter().filter(|s| s.parent_id.is_empty()).collect();
        assert_eq!(roots.len(), 1, "one root for {trace}");
        let root = &roots[0].span_id;
        let mut attempt_ids = HashSet::new();
        for s in &spans {
            if !s.parent_id.is_empty() {
                assert_eq!(&s.parent_id, root, "{} hangs under the root", s.name);
            }
            if s.attr("flow.node.outcome")
                .is_some_and(|o| o != "incomplete")
            {
                attempt_ids.insert(s.span_id.clone());
            }
        }
        assert_eq!(
            attempt_ids.len(),
            ends.len(),
            "every attempt of {trace} once"
        );
    }
    assert!(
        r.spans
            .iter()
            .any(|s| s.attr("flow.run.partial") == Some("true")),
        "the partial process exported its part of the runs"
    );
}
