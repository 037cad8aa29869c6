//! What one run's events decided, for `flowtel inspect`: which node failed,
//! which failures were recovered from, and the last success before the
//! failure.
//!
//! Every failed attempt (`node_error`, `node_timeout`) is settled by its
//! node's next outcome in the run: a `node_success` (recovered), a
//! `node_failed` (the retries ran out: terminal), or nothing (unsettled: the
//! node is still retrying, or the log ends there). The failing node is the
//! first terminal failure (the one the run's root span reports), else the
//! last unsettled failure; the other failing nodes come after it. An early
//! node that failed and recovered on a retry is therefore never taken for
//! the failing node.

use std::collections::HashMap;

use flowtel::FlowEvent;
use flowtel_semconv::event;

/// A node's identity within a run: its name, else its id.
fn node_key(e: &FlowEvent) -> Option<&str> {
    e.node_name.as_deref().or(e.node_id.as_deref())
}

fn is_failed_attempt(e: &FlowEvent) -> bool {
    matches!(
        e.event_type.as_str(),
        event::NODE_ERROR | event::NODE_TIMEOUT
    )
}

/// One failing node: indexes into the run's events.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The `node_failed` event, or the node's last unsettled failed attempt.
    pub(crate) at: usize,
    /// Whether `at` is a `node_failed` (the retries ran out).
    pub(crate) terminal: bool,
    /// The failed attempts that led to it, in order.
    pub(crate) attempts: Vec<usize>,
}

/// A failed attempt the node recovered from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// The `node_error` or `node_timeout`.
    pub(crate) at: usize,
    /// The `node_success` that settled it.
    pub(crate) by: usize,
}

/// The incident sequence's decisions for one run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Incident {
    /// The failing node, if any node failed and did not recover.
    pub(crate) failure: Option<Failure>,
    /// Every other node that failed and did not recover, in time order.
    pub(crate) also_failed: Vec<Failure>,
    /// Failed attempts that a later success of the same node made good.
    pub(crate) recovered: Vec<Recovered>,
    /// The last `node_success` before the failure (the run's last one when
    /// nothing failed).
    pub(crate) last_success: Option<usize>,
}

impl Incident {
    /// Decide for one run's events, sorted by time.
    pub(crate) fn of(evs: &[FlowEvent]) -> Incident {
        // Walk backwards so that each failed attempt meets its node's next
        // outcome in one pass.
        let mut next: HashMap<&str, usize> = HashMap::new();
        let mut settled_by: Vec<Option<usize>> = vec![None; evs.len()];
        for (i, e) in evs.iter().enumerate().rev() {
            let Some(node) = node_key(e) else { continue };
            match e.event_type.as_str() {
                event::NODE_SUCCESS | event::NODE_FAILED => {
                    next.insert(node, i);
                }
                _ if is_failed_attempt(e) => settled_by[i] = next.get(node).copied(),
                _ => {}
            }
        }

        let mut recovered = Vec::new();
        let mut terminal: Vec<Failure> = Vec::new();
        // Failed attempts waiting for the node_failed that settles them.
        let mut leading_to: HashMap<usize, Vec<usize>> = HashMap::new();
        // Unsettled failed attempts, by node.
        let mut unsettled: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, e) in evs.iter().enumerate() {
            if e.event_type == event::NODE_FAILED && node_key(e).is_some() {
                terminal.push(Failure {
                    at: i,
                    terminal: true,
                    attempts: leading_to.remove(&i).unwrap_or_default(),
                });
            }
            if !is_failed_attempt(e) {
                continue;
            }
            let Some(node) = node_key(e) else { continue };
            match settled_by[i] {
                Some(by) if evs[by].event_type == event::NODE_SUCCESS => {
                    recovered.push(Recovered { at: i, by });
                }
                Some(by) => leading_to.entry(by).or_default().push(i),
                None => unsettled.entry(node).or_default().push(i),
            }
        }
        let mut open: Vec<Failure> = unsettled
            .into_values()
            .map(|attempts| Failure {
                at: *attempts.last().unwrap_or(&0),
                terminal: false,
                attempts,
            })
            .collect();
        open.sort_by_key(|f| f.at);

        let failure = if terminal.is_empty() {
            open.pop()
        } else {
            Some(terminal.remove(0))
        };
        let mut also_failed: Vec<Failure> = terminal.into_iter().chain(open).collect();
        also_failed.sort_by_key(|f| f.at);
        let before = failure.as_ref().map_or(evs.len(), |f| f.at);
        let last_success = evs[..before]
            .iter()
            .rposition(|e| e.event_type == event::NODE_SUCCESS);
        Incident {
            failure,
            also_failed,
            recovered,
            last_success,
        }
    }
}
