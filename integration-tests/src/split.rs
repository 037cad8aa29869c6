//! Splitting one PenguiFlow log between two bridges, as when one run's
//! events reach two processes: line by line, so an attempt's start and its
//! end often land on different sides, except that the first event of every
//! run goes to the root owner (side 0): a run its owner never sees has no
//! root (see the README on runs split across processes).

use std::collections::HashSet;

use flowtel::FlowEvent;

use crate::assertions::check_tree;
use crate::collector::Collector;
use crate::debuglog::{Received, Span};

/// The FlowEvent lines of `log`, each with its side (0 = root owner,
/// 1 = partial bridge) and its parsed event.
pub fn split_log(log: &str) -> Vec<(usize, &str, FlowEvent)> {
    let mut seen = HashSet::new();
    log.lines()
        .filter_map(|l| FlowEvent::from_json(l).ok().map(|ev| (l, ev)))
        .enumerate()
        .map(|(i, (line, ev))| {
            let first = ev.trace_id.clone().is_some_and(|t| seen.insert(t));
            (if first { 0 } else { i % 2 }, line, ev)
        })
        .collect()
}

/// Distinct terminal events (success, error, timeout) per trace id: the
/// attempts a collector must have received once each.
pub fn attempts_per_trace<'a>(
    events: impl IntoIterator<Item = &'a FlowEvent>,
) -> std::collections::HashMap<String, usize> {
    let mut seen: HashSet<(String, String, u32, u64)> = HashSet::new();
    let mut out = std::collections::HashMap::new();
    for ev in events {
        if !matches!(
            ev.event_type.as_str(),
            "node_success" | "node_error" | "node_timeout"
        ) {
            continue;
        }
        let Some(t) = ev.trace_id.clone() else {
            continue;
        };
        let node = ev
            .node_id
            .clone()
            .or(ev.node_name.clone())
            .unwrap_or_default();
        if seen.insert((t.clone(), node, ev.attempt, ev.ts.to_bits())) {
            *out.entry(t).or_insert(0) += 1;
        }
    }
    out
}

fn ended(s: &Span) -> bool {
    s.attr("flow.node.outcome")
        .is_some_and(|o| o != "incomplete")
}

/// Wait until `collector` has every ended attempt of `attempts`, then check
/// each run: one tree (one root, every other span under it, no span id
/// twice) holding every attempt once. Returns what arrived.
pub fn check_split_runs(
    collector: &Collector,
    attempts: &std::collections::HashMap<String, usize>,
) -> Received {
    let total: usize = attempts.values().sum();
    assert!(total > 0, "no attempts to check");
    let r = collector.wait_for(std::time::Duration::from_secs(15), |r| {
        r.spans.iter().filter(|s| ended(s)).count() >= total
    });
    for (trace, n) in attempts {
        let spans = r.trace(trace);
        check_tree(&spans).unwrap_or_else(|e| panic!("{trace}: {e}"));
        let got = spans.iter().filter(|s| ended(s)).count();
        assert_eq!(got, *n, "every attempt of {trace} once");
    }
    r
}
