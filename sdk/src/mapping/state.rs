//! What the mapping remembers between events: open runs, their nodes, the
//! attempts still open, and the last few terminal events of each node (to
//! recognise duplicates and late starts). Every part is bounded; the mapper
//! keeps one global budget over all of it (see `SpanMapper`).

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::trace::{Event, SpanContext, SpanId, TraceId};

use crate::ids::FastMap;

/// Run-level facts every span of the run carries.
pub(super) struct RunMeta {
    pub(super) trace: TraceId,
    pub(super) run_id: Option<Arc<str>>,
    pub(super) tenant: Option<Arc<str>>,
}

/// An attempt that started and has not ended yet.
pub(super) struct OpenStart {
    pub(super) attempt: u32,
    pub(super) start_ns: u128,
    /// When the mapping saw the start (monotonic): its age limit counts
    /// from here.
    pub(super) seen: Instant,
    /// The span id its guard chose, if any (see `FlowEvent::span_id`).
    pub(super) span_id: Option<SpanId>,
}

/// One terminal event already mapped: enough to recognise an exact
/// duplicate (same attempt, end and guard span id) and a start that arrives
/// after its end. Times in microseconds (PenguiFlow's precision), so that
/// 32 bytes hold any timestamp up to the year 5000 that validation accepts.
#[derive(Clone, Copy, Default)]
struct Terminal {
    attempt: u32,
    start_us: u64,
    end_us: u64,
    /// The guard-chosen span id the terminal carried, 0 for none.
    span: u64,
}

fn span_key(span: Option<SpanId>) -> u64 {
    span.map_or(0, |s| u64::from_be_bytes(s.to_bytes()))
}

fn us(ns: u128) -> u64 {
    u64::try_from(ns / 1000).unwrap_or(u64::MAX)
}

/// Terminal events remembered per node: a fixed ring, whatever the number of
/// attempts or invocations (duplicates arrive close to their original).
const RECENT_TERMINALS: usize = 4;

/// How long before a terminal's computed start a `node_start` of the same
/// attempt still counts as that attempt's (clock skew between the start
/// event and the latency measurement).
const START_SLACK_US: u64 = 1_000_000;

/// What a run knows about one of its nodes (keyed by node id, else name).
pub(super) struct NodeState {
    /// Span name and `flow.node.name` on spans: the node name, else the key.
    pub(super) span_name: Arc<str>,
    /// `flow.node.name` on metrics: the node name, else `_unknown` (never
    /// an id).
    pub(super) metric_name: Arc<str>,
    pub(super) id: Option<Arc<str>>,
    /// Started attempts without a terminal event yet.
    pub(super) open: Vec<OpenStart>,
    recent: [Terminal; RECENT_TERMINALS],
    recent_len: u8,
    recent_next: u8,
}

impl NodeState {
    pub(super) fn new(name: Option<&str>, id: Option<&str>, key: &str) -> Self {
        let span_name: Arc<str> = Arc::from(name.unwrap_or(key));
        let metric_name = match name {
            Some(_) => span_name.clone(),
            None => Arc::from(flowtel_semconv::UNKNOWN_VALUE),
        };
        NodeState {
            span_name,
            metric_name,
            id: id.map(Arc::from),
            open: Vec::new(),
            recent: [Terminal::default(); RECENT_TERMINALS],
            recent_len: 0,
            recent_next: 0,
        }
    }

    fn recent(&self) -> &[Terminal] {
        &self.recent[..usize::from(self.recent_len)]
    }

    /// An exact duplicate of a terminal event already mapped. Two guards'
    /// attempts ending in the same microsecond carry different span ids, so
    /// neither is a duplicate of the other.
    pub(super) fn is_duplicate(&self, attempt: u32, end_ns: u128, span: Option<SpanId>) -> bool {
        let (end, span) = (us(end_ns), span_key(span));
        self.recent()
            .iter()
            .any(|t| t.attempt == attempt && t.end_us == end && t.span == span)
    }

    /// A `node_start` whose attempt already ended (out-of-order input): it
    /// must not open a phantom attempt. A guard's start is late only when
    /// its own terminal event (same span id) came first.
    pub(super) fn is_late_start(&self, attempt: u32, ts_ns: u128, span: Option<SpanId>) -> bool {
        if span.is_some() {
            let span = span_key(span);
            return self.recent().iter().any(|t| t.span == span);
        }
        let ts = us(ts_ns);
        self.recent().iter().any(|t| {
            t.span == 0
                && t.attempt == attempt
                && ts <= t.end_us
                && ts.saturating_add(START_SLACK_US) >= t.start_us
        })
    }

    pub(super) fn remember_terminal(
        &mut self,
        attempt: u32,
        (start_ns, end_ns): (u128, u128),
        span: Option<SpanId>,
    ) {
        self.recent[usize::from(self.recent_next)] = Terminal {
            attempt,
            start_us: us(start_ns),
            end_us: us(end_ns),
            span: span_key(span),
        };
        self.recent_next = (self.recent_next + 1) % RECENT_TERMINALS as u8;
        self.recent_len = (self.recent_len + 1).min(RECENT_TERMINALS as u8);
    }

    /// The open start a terminal event of `attempt` ending at `end_ns`
    /// closes: the one with the same guard-chosen span id, else the latest
    /// of that attempt that began no later than the end.
    pub(super) fn take_open(
        &mut self,
        attempt: u32,
        end_ns: u128,
        span_id: Option<SpanId>,
    ) -> Option<OpenStart> {
        if let Some(id) = span_id {
            if let Some(i) = self.open.iter().position(|s| s.span_id == Some(id)) {
                return Some(self.open.remove(i));
            }
        }
        let pos = self
            .open
            .iter()
            .enumerate()
            .filter(|(_, s)| s.attempt == attempt && s.start_ns <= end_ns)
            .max_by_key(|(_, s)| s.start_ns)
            .map(|(i, _)| i)
            .or_else(|| self.open.iter().position(|s| s.attempt == attempt))?;
        Some(self.open.remove(pos))
    }
}

/// One open run.
pub(super) struct Run {
    pub(super) meta: RunMeta,
    pub(super) start_ns: u128,
    pub(super) end_ns: u128,
    pub(super) last_seen: Instant,
    pub(super) events: Vec<Event>,
    pub(super) dropped_events: u32,
    pub(super) attempts: u64,
    pub(super) cancelled: bool,
    pub(super) failure: Option<(String, String)>,
    /// The inbound context (`extra.traceparent`) the run's span links to.
    pub(super) link: Option<SpanContext>,
    pub(super) nodes: FastMap<Box<str>, NodeState>,
    /// Open attempts over all nodes.
    pub(super) open_total: usize,
}

impl Run {
    pub(super) fn new(meta: RunMeta, now: Instant) -> Self {
        Run {
            meta,
            start_ns: u128::MAX,
            end_ns: 0,
            last_seen: now,
            events: Vec::new(),
            dropped_events: 0,
            attempts: 0,
            cancelled: false,
            failure: None,
            link: None,
            nodes: FastMap::default(),
            open_total: 0,
        }
    }

    /// Units of the mapping's state budget this run holds: itself, its
    /// nodes and its open attempts.
    pub(super) fn units(&self) -> usize {
        1 + self.nodes.len() + self.open_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_remembers_a_fixed_number_of_terminals_whatever_the_attempts() {
        let mut n = NodeState::new(Some("a"), None, "a");
        for attempt in 0..10_000u32 {
            let end = (u128::from(attempt) * 10 + 5) * 1000;
            n.remember_terminal(attempt, (end - 5000, end), None);
        }
        assert_eq!(n.recent().len(), RECENT_TERMINALS);
        assert!(n.is_duplicate(9_999, 99_995_000, None));
        assert!(!n.is_duplicate(0, 5_000, None), "forgotten long ago");
        assert!(n.is_late_start(9_999, 99_991_000, None));
        assert!(
            !n.is_late_start(9_999, 99_996_000, None),
            "after the end: a new invocation"
        );
    }

    #[test]
    fn guard_attempts_are_told_apart_by_their_span_ids() {
        let mut n = NodeState::new(Some("a"), None, "a");
        let (a, b) = (Some(SpanId::from(1)), Some(SpanId::from(2)));
        n.remember_terminal(0, (1_000, 5_000), a);
        assert!(n.is_duplicate(0, 5_000, a));
        assert!(!n.is_duplicate(0, 5_000, b), "same µs, another guard");
        assert!(!n.is_duplicate(0, 5_000, None));
        assert!(n.is_late_start(0, 2_000, a), "its own end came first");
        assert!(!n.is_late_start(0, 2_000, b));
        assert!(!n.is_late_start(0, 2_000, None), "not a PenguiFlow end");
    }
}
