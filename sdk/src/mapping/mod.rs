//! Where FlowEvents become spans: the pure mapping core.
//!
//! One trace per run (the event's `trace_id`), one root span per run named
//! after the flow, and one child span per node attempt. An attempt's span is
//! built from its terminal event alone (`start = ts - latency_ms`), so a lost
//! or never-logged `node_start` costs nothing. Run-level happenings (retries,
//! terminal failures, cancellations, deadline skips, unknown event types)
//! become span events on the root.
//!
//! The mapper knows nothing of queues, exporters or counters: it takes a
//! [`MappingConfig`], and every call returns what it decided in
//! [`Effects`]: the spans, the changes of attempts in flight per node, and
//! what it dropped or shed, with the reason.
//!
//! ## When a run ends
//!
//! A run ends at its last event, when its events say that nothing of it is
//! left (a terminal failure or deadline skip of its only message, the end
//! of its cancellation, the success of a run end node: see `run_end.rs`);
//! when no event of it has arrived for `run_idle_timeout` **and
//! none of its attempts is still open** (a node calling an LLM for minutes
//! keeps its run open), on [`Flowtel::end_run`](crate::Flowtel::end_run),
//! at shutdown, or when it is shed to stay within the state budget (least
//! recently active first). An attempt open for longer than
//! `max_attempt_age` is given up: exported as `incomplete` and counted.
//!
//! ## Span ids, and runs seen by several processes
//!
//! Ids are derived, never random, so that any process that sees an event
//! gives its span the same id:
//! - an attempt's id comes from its terminal event (trace, node, attempt,
//!   end time): an exact duplicate gets the same id and is dropped;
//! - an attempt exported while still open gets an id from its start, which
//!   its terminal event never produces, so "incomplete" and "success"
//!   versions of one attempt never share an id;
//! - the root's id comes from the trace id. Exactly one pipeline should own
//!   a run's root: by default every pipeline does; one that sees only part
//!   of its runs sets `with_partial_runs(true)` and exports, instead of the
//!   root, a *partial run span* (its own id, a child of the root) holding
//!   the run events it saw. A pipeline that already exported a run's root and
//!   then sees more of that run does the same with the late run events.
//!   No span id is ever exported twice with different content.

mod build;
mod closed;
mod event_in_run;
mod observe;
mod run_end;
mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowtel_semconv::attr;
use opentelemetry::trace::TraceId;
use opentelemetry::Key;

pub(crate) use build::{parse_exception, truncate, ts_ns};
use build::{run_span, RunSummary};
use closed::ClosedRuns;
use event_in_run::{give_up_stale, map_into_run, open_attempt_span, Ctx};
use state::{Run, RunMeta};

use crate::event::FlowEvent;
use crate::ids::{self, FastMap};
use crate::record::SpanRecord;

/// Distinct nodes tracked per run.
const MAX_NODES_PER_RUN: usize = 4096;
/// Open starts kept per node of a run; older ones are forgotten.
const MAX_OPEN_PER_NODE: usize = 1024;

/// What the mapping needs to know, and nothing else.
#[derive(Clone, Debug)]
pub(crate) struct MappingConfig {
    pub(crate) flow_name: String,
    pub(crate) run_idle_timeout: Duration,
    pub(crate) max_attempt_age: Duration,
    pub(crate) max_open_runs: usize,
    pub(crate) state_budget: usize,
    pub(crate) max_root_events: usize,
    pub(crate) max_attr_len: usize,
    pub(crate) span_extra_keys: Vec<String>,
    pub(crate) partial_runs: bool,
    /// Nodes whose `node_success` may end a run (see `run_end.rs`).
    pub(crate) run_end_nodes: Vec<String>,
}

/// What the mapping dropped or shed, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Exact duplicate terminal events (not mapped, not measured).
    pub(crate) duplicates: u64,
    /// `node_start`s that arrived after their attempt's end.
    pub(crate) late_starts: u64,
    /// Root span events beyond the per-run limit.
    pub(crate) root_events_dropped: u64,
    /// Runs ended early to stay within the state budget or open-run limit.
    pub(crate) runs_shed: u64,
    /// Open attempts given up after `max_attempt_age`, or forgotten beyond
    /// the per-node limit.
    pub(crate) stale_attempts: u64,
}

/// What mapping produced: spans, changes of the number of attempts in
/// flight per node (by metric node name, never an id), and counts.
#[derive(Default)]
pub(crate) struct Effects {
    pub(crate) spans: Vec<SpanRecord>,
    pub(crate) active: Vec<(Arc<str>, i64)>,
    pub(crate) counts: Counts,
    /// The trace and span id of the attempt span the last event ended, as
    /// exported (derived, or chosen by a guard): the duration histogram's
    /// exemplar. The caller takes it after each event.
    pub(crate) ended_attempt: Option<(TraceId, opentelemetry::trace::SpanId)>,
}

/// The mapping's verdict on one event, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The event counts (spans and metrics).
    Mapped,
    /// An exact duplicate of an event already mapped: it must not be
    /// counted again anywhere.
    Duplicate,
}

#[derive(Clone, Copy)]
enum EndReason {
    LastEvent,
    Idle,
    Explicit,
    Shutdown,
    Evicted,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            EndReason::LastEvent => "last_event",
            EndReason::Idle => "idle",
            EndReason::Explicit => "explicit",
            EndReason::Shutdown => "shutdown",
            EndReason::Evicted => "evicted",
        }
    }
}

/// Turns FlowEvents into spans; one per pipeline, on its mapping thread.
pub(crate) struct SpanMapper {
    cfg: MappingConfig,
    runs: FastMap<TraceId, Run>,
    /// Units of state held by all open runs (see [`Run::units`]).
    units: usize,
    /// Runs this pipeline has ended (see `closed.rs`).
    closed: ClosedRuns,
    /// Allow-listed `extra` keys and their span attribute keys.
    span_extras: Vec<(String, Key)>,
    /// Distinguishes this pipeline's partial run spans from other
    /// pipelines'.
    instance: u64,
    /// The last run id's trace id (see [`ids::LastTraceId`]).
    last_trace: ids::LastTraceId,
}

impl SpanMapper {
    pub(crate) fn new(cfg: MappingConfig) -> Self {
        let span_extras = cfg
            .span_extra_keys
            .iter()
            .filter(|k| crate::privacy::secret_word(k).is_none())
            .map(|k| (k.clone(), Key::new(format!("{}{k}", attr::EXTRA_PREFIX))))
            .collect();
        SpanMapper {
            runs: FastMap::default(),
            units: 0,
            // The last 4× to 8× `max_open_runs` ended runs (at least 4 096).
            closed: ClosedRuns::new(cfg.max_open_runs.max(1024) * 4),
            span_extras,
            instance: ids::random_u64(),
            last_trace: ids::LastTraceId::default(),
            cfg,
        }
    }

    /// Map one (validated) event.
    pub(crate) fn on_event(&mut self, ev: &FlowEvent, now: Instant, fx: &mut Effects) -> Verdict {
        let Some(run_str) = ev.trace_id.as_deref() else {
            return Verdict::Mapped;
        };
        let (trace, kept) = self.last_trace.get(run_str);
        if !self.runs.contains_key(&trace) {
            if self.runs.len() >= self.cfg.max_open_runs {
                // A tenth at a time: one partial sort per many new runs.
                self.shed(fx, (self.cfg.max_open_runs / 10).max(1));
            }
            let meta = RunMeta {
                trace,
                run_id: (!kept).then(|| Arc::from(truncate(run_str, self.cfg.max_attr_len))),
                tenant: None,
            };
            self.runs.insert(trace, Run::new(meta, now));
            self.units += 1;
        }
        let Some(run) = self.runs.get_mut(&trace) else {
            return Verdict::Mapped;
        };
        let before = run.units();
        let verdict = map_into_run(
            run,
            ev,
            now,
            Ctx {
                cfg: &self.cfg,
                span_extras: &self.span_extras,
            },
            fx,
        );
        let after = run.units();
        self.units = self.units + after - before;
        if verdict == Verdict::Mapped && run_end::is_last_event(ev, &self.cfg.run_end_nodes) {
            self.finish(trace, EndReason::LastEvent, fx);
        } else if self.units > self.cfg.state_budget {
            self.shed_to_budget(fx);
        }
        verdict
    }

    /// End the run of `trace_id` now (explicit end). Returns false when no
    /// such run is open.
    pub(crate) fn end_run(&mut self, run: &str, fx: &mut Effects) -> bool {
        let (trace, _) = ids::trace_id_for(run);
        self.finish(trace, EndReason::Explicit, fx)
    }

    /// End every run idle for longer than the idle timeout and with no
    /// attempt open; give up attempts open for longer than their age limit.
    pub(crate) fn end_idle(&mut self, now: Instant, fx: &mut Effects) {
        let idle: Vec<TraceId> = self
            .runs
            .values()
            .filter(|r| now.duration_since(r.last_seen) >= self.cfg.run_idle_timeout)
            .map(|r| r.meta.trace)
            .collect();
        for t in idle {
            let Some(run) = self.runs.get_mut(&t) else {
                continue;
            };
            if run.open_total > 0 {
                let before = run.units();
                give_up_stale(run, now, &self.cfg, fx);
                self.units -= before - run.units();
            }
            if run.open_total == 0 {
                self.finish(t, EndReason::Idle, fx);
            }
        }
    }

    /// End every open run (shutdown).
    #[cfg(test)]
    pub(crate) fn end_all(&mut self, fx: &mut Effects) {
        while self.end_some(usize::MAX, fx) {}
    }

    /// End up to `n` open runs (shutdown); whether any is left. The caller
    /// hands each chunk's spans on before the next, so that ending many runs
    /// never grows one vector of all their spans.
    pub(crate) fn end_some(&mut self, n: usize, fx: &mut Effects) -> bool {
        let some: Vec<TraceId> = self.runs.keys().take(n).copied().collect();
        for t in some {
            self.finish(t, EndReason::Shutdown, fx);
        }
        !self.runs.is_empty()
    }

    /// Open runs and the state units they hold (for tests and stats).
    #[cfg(test)]
    pub(crate) fn state(&self) -> (usize, usize) {
        (self.runs.len(), self.units)
    }

    /// End the `n` least recently active runs.
    fn shed(&mut self, fx: &mut Effects, n: usize) {
        let mut by_age: Vec<(Instant, TraceId)> = self
            .runs
            .values()
            .map(|r| (r.last_seen, r.meta.trace))
            .collect();
        let n = n.min(by_age.len());
        if n == 0 {
            return;
        }
        by_age.select_nth_unstable_by_key(n - 1, |(seen, _)| *seen);
        for (_, t) in by_age.into_iter().take(n) {
            if self.finish(t, EndReason::Evicted, fx) {
                fx.counts.runs_shed += 1;
            }
        }
    }

    /// Over the state budget: shed the least recently active runs until
    /// 90% of it is free of them (one sort for many events' worth of room).
    fn shed_to_budget(&mut self, fx: &mut Effects) {
        let target = self.cfg.state_budget / 10 * 9;
        let mut by_age: Vec<(Instant, TraceId, usize)> = self
            .runs
            .values()
            .map(|r| (r.last_seen, r.meta.trace, r.units()))
            .collect();
        by_age.sort_unstable_by_key(|(seen, _, _)| *seen);
        let mut units = self.units;
        for (_, t, u) in by_age {
            if units <= target {
                break;
            }
            units -= u;
            if self.finish(t, EndReason::Evicted, fx) {
                fx.counts.runs_shed += 1;
            }
        }
    }

    fn finish(&mut self, trace: TraceId, reason: EndReason, fx: &mut Effects) -> bool {
        let Some(mut run) = self.runs.remove(&trace) else {
            return false;
        };
        self.units -= run.units();
        // Attempts that started and never ended: exported as incomplete,
        // ending with the run, and no longer counted as active.
        // At shutdown no terminal event can follow, so an attempt whose
        // guard chose its span id keeps it (its `tracing` children and
        // downstream calls point there); otherwise the open span gets an id
        // of its own, so that a terminal event arriving later never exports
        // a second version of the same id.
        let keep_id = matches!(reason, EndReason::Shutdown);
        let run_end = run.end_ns;
        for (key, node) in run.nodes.iter_mut() {
            for s in std::mem::take(&mut node.open) {
                let end = run_end.max(s.start_ns);
                fx.spans.push(open_attempt_span(
                    &self.cfg,
                    &run.meta,
                    (key, node),
                    &s,
                    end,
                    keep_id,
                ));
                fx.active.push((node.metric_name.clone(), -1));
            }
        }
        let ends = self.closed.ends(&trace);
        let partial = self.cfg.partial_runs || ends > 0;
        // A partial span carries what only this pipeline saw: worth one only
        // when it has run events, or when partial spans are the mode.
        if !partial || self.cfg.partial_runs || !run.events.is_empty() {
            fx.counts.root_events_dropped += u64::from(run.dropped_events);
            let summary = RunSummary {
                flow_name: &self.cfg.flow_name,
                meta: &run.meta,
                start: run.start_ns,
                end: run.end_ns,
                attempts: run.attempts,
                cancelled: run.cancelled,
                failure: run.failure.as_ref(),
                link: run.link.as_ref(),
                end_reason: reason.as_str(),
                events: std::mem::take(&mut run.events),
                dropped_events: run.dropped_events,
                partial: partial.then(|| ids::partial_span_id(trace, self.instance, ends)),
            };
            fx.spans.push(run_span(summary).into());
        }
        self.closed.record_end(trace);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(budget: usize) -> MappingConfig {
        MappingConfig {
            flow_name: "f".into(),
            run_idle_timeout: Duration::from_secs(30),
            max_attempt_age: Duration::from_secs(3600),
            max_open_runs: 1000,
            state_budget: budget,
            max_root_events: 16,
            max_attr_len: 64,
            span_extra_keys: Vec::new(),
            partial_runs: false,
            run_end_nodes: Vec::new(),
        }
    }

    fn ev(kind: &str, trace: &str, node: &str, ts: f64) -> FlowEvent {
        FlowEvent::builder(kind, ts)
            .node(node, node)
            .trace_id(trace)
            .latency_ms(1.0)
            .build()
            .unwrap()
    }

    #[test]
    fn state_units_count_every_run_node_and_open_attempt() {
        let mut m = SpanMapper::new(config(1000));
        let mut fx = Effects::default();
        let now = Instant::now();
        let t = "3e512c5b0a184257a25c215d19544e6a";
        m.on_event(&ev("node_start", t, "a", 1.0), now, &mut fx);
        m.on_event(&ev("node_start", t, "b", 1.0), now, &mut fx);
        m.on_event(&ev("node_success", t, "a", 2.0), now, &mut fx);
        // The run, nodes a and b, b's open attempt.
        assert_eq!(m.state(), (1, 4));
        m.on_event(&ev("node_success", t, "b", 2.0), now, &mut fx);
        assert_eq!(m.state(), (1, 3));
        m.end_all(&mut fx);
        assert_eq!(m.state(), (0, 0));
    }

    #[test]
    fn shedding_keeps_the_units_under_the_budget() {
        let mut m = SpanMapper::new(config(50));
        let mut fx = Effects::default();
        for i in 0..100u32 {
            let t = format!("{:032x}", i + 1);
            m.on_event(
                &ev("node_start", &t, "n", f64::from(i)),
                Instant::now(),
                &mut fx,
            );
            assert!(m.state().1 <= 50, "{:?}", m.state());
        }
        assert!(fx.counts.runs_shed > 0);
    }
}
