//! One run's spans, exactly as the SDK exports them, read back into what
//! happened to its nodes and when: every attempt's end (an attempt span,
//! with its `flow.node.outcome` and `flow.node.attempt`) and every terminal
//! failure (a `flow.node.failed` event on the run's root span, or on a
//! partial run span, naming the node by `flow.node.name` and
//! `flow.node.id`). `incident.rs` decides from this timeline alone, so
//! `flowtel inspect` tells what the spans the SDK makes of the run (with
//! its default settings) say.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowtel::{FlowEvent, SpanData};
use flowtel_semconv::{attr, event, outcome, span as sc};
use opentelemetry::{KeyValue, Value};

/// What happened to a node at a [`Moment`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An attempt succeeded (`flow.node.outcome` = `success`).
    Success,
    /// An attempt raised (`error`).
    Error,
    /// An attempt timed out (`timeout`).
    Timeout,
    /// The node gave up: its retries ran out (`flow.node.failed`).
    Failed,
}

impl Kind {
    /// An attempt that failed and may still be retried, recovered or given
    /// up on.
    pub(crate) fn is_failed_attempt(self) -> bool {
        matches!(self, Kind::Error | Kind::Timeout)
    }

    /// The FlowEvent type the SDK maps to this.
    pub(crate) fn event_type(self) -> &'static str {
        match self {
            Kind::Success => event::NODE_SUCCESS,
            Kind::Error => event::NODE_ERROR,
            Kind::Timeout => event::NODE_TIMEOUT,
            Kind::Failed => event::NODE_FAILED,
        }
    }
}

/// One thing that happened to a node, as the spans tell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Moment {
    /// The node: the attempt span's name (the node name, else its id), or
    /// the failure event's `flow.node.name`.
    pub(crate) node: String,
    /// The attempt span's `flow.node.id` (none on a failure).
    pub(crate) node_id: Option<String>,
    /// `flow.node.attempt`.
    pub(crate) attempt: u32,
    pub(crate) kind: Kind,
    /// When, in nanoseconds since the epoch: the attempt span's end, or the
    /// failure event's time.
    pub(crate) at: u128,
    /// The attempt span's duration (zero for a failure).
    pub(crate) took: Duration,
}

impl Moment {
    /// Was `e` the event the SDK made this moment from? Same type and
    /// attempt, and the same node as the SDK tells nodes apart: by id when
    /// the event has one (an attempt span names its node after the node's
    /// first event), else by name. The time is for [`Moment::distance`].
    pub(crate) fn may_come_from(&self, e: &FlowEvent) -> bool {
        let same_node = match (&self.node_id, &e.node_id) {
            (Some(id), Some(e_id)) => id == e_id,
            (None, None) => e.node_name.as_deref() == Some(self.node.as_str()),
            // A failure (root span event) whose event had no node id.
            (None, Some(_)) => {
                self.kind == Kind::Failed && e.node_name.as_deref() == Some(self.node.as_str())
            }
            (Some(_), None) => false,
        };
        e.event_type == self.kind.event_type() && e.attempt == self.attempt && same_node
    }

    /// How far `e`'s time is from this moment's, in seconds.
    pub(crate) fn distance(&self, e: &FlowEvent) -> f64 {
        (e.ts - self.seconds()).abs()
    }

    /// The moment's time in unix seconds.
    pub(crate) fn seconds(&self) -> f64 {
        self.at as f64 / 1e9
    }
}

/// Nanoseconds since the epoch.
fn ns(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// The value of attribute `key`.
fn value<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// `flow.node.attempt` (0 when absent).
fn attempt_of(attrs: &[KeyValue]) -> u32 {
    match value(attrs, attr::NODE_ATTEMPT) {
        Some(Value::I64(a)) => u32::try_from(*a).unwrap_or(0),
        _ => 0,
    }
}

/// An attempt span's end, if `s` is one with an outcome that decides
/// anything (`incomplete`, `cancelled` and `dropped` attempts do not).
fn attempt_end(s: &SpanData) -> Option<Moment> {
    let kind = match value(&s.attributes, attr::NODE_OUTCOME)?.as_str().as_ref() {
        outcome::SUCCESS => Kind::Success,
        outcome::ERROR => Kind::Error,
        outcome::TIMEOUT => Kind::Timeout,
        _ => return None,
    };
    if s.name.is_empty() {
        return None; // an event with neither node name nor id
    }
    Some(Moment {
        node: s.name.to_string(),
        node_id: value(&s.attributes, attr::NODE_ID).map(|v| v.as_str().into_owned()),
        attempt: attempt_of(&s.attributes),
        kind,
        at: ns(s.end_time),
        took: s.end_time.duration_since(s.start_time).unwrap_or_default(),
    })
}

/// The node a failure event names, in full: the mapping cuts
/// `flow.node.name` on span events to the attribute length limit (ending it
/// with `…`), never an attempt span's name.
fn full_name(name: &str, attempts: &[(u8, usize, Moment)]) -> String {
    let mut nodes = attempts.iter().map(|(_, _, m)| &m.node);
    let Some(cut) = name.strip_suffix('…') else {
        return name.to_string();
    };
    if nodes.clone().any(|n| n == name) {
        return name.to_string(); // a name that ends with `…` itself
    }
    nodes
        .find(|n| n.len() > cut.len() && n.starts_with(cut))
        .map_or_else(|| name.to_string(), Clone::clone)
}

/// The run's moments in time order. At equal times an attempt's end comes
/// before a failure (PenguiFlow logs `node_failed` right after the attempt
/// that ran out); otherwise the order is the order the SDK exported them in.
pub(crate) fn timeline(spans: &[SpanData]) -> Vec<Moment> {
    // (class, export order, moment): class 0 for attempts, 1 for failures.
    let mut all: Vec<(u8, usize, Moment)> = spans
        .iter()
        .filter_map(attempt_end)
        .enumerate()
        .map(|(i, m)| (0, i, m))
        .collect();
    let failures = spans
        .iter()
        .flat_map(|s| s.events.events.iter())
        .filter(|e| e.name == sc::FAILED_EVENT);
    let mut failed = Vec::new();
    for (i, e) in failures.enumerate() {
        let id = value(&e.attributes, attr::NODE_ID).map(|v| v.as_str().into_owned());
        // The node by its name, else as its attempt spans call it (they
        // are named after the node's id when it has no name).
        let node = match (value(&e.attributes, attr::NODE_NAME), &id) {
            (Some(name), _) => full_name(&name.as_str(), &all),
            (None, Some(id)) => all
                .iter()
                .find(|(_, _, m)| m.node_id.as_ref() == Some(id))
                .map_or_else(|| id.clone(), |(_, _, m)| m.node.clone()),
            // Neither: it cannot be told apart from any other node's.
            (None, None) => continue,
        };
        let m = Moment {
            node,
            node_id: id,
            attempt: attempt_of(&e.attributes),
            kind: Kind::Failed,
            at: ns(e.timestamp),
            took: Duration::ZERO,
        };
        failed.push((1, i, m));
    }
    all.extend(failed);
    all.sort_by_key(|(class, order, m)| (m.at, *class, *order));
    all.into_iter().map(|(_, _, m)| m).collect()
}
