//! What one run's spans decided, for `flowtel inspect`: which node failed,
//! which failures were recovered from, and the last success before the
//! failure. Decided from the spans the SDK makes of the run with its
//! default settings (read into a timeline by `timeline.rs`), never from the
//! events again, so that `inspect` and an export of the run with those
//! settings cannot disagree. (An export with other settings, such as
//! `--run-end-node`, may end the run's root earlier and put a later failure
//! on a partial run span.)
//!
//! Every failed attempt (an attempt span with outcome `error` or `timeout`)
//! is settled by its node's next outcome in the run: a `success` attempt
//! span (recovered), a `flow.node.failed` event on the root (the retries
//! ran out: terminal), or nothing (unsettled: the node is still retrying,
//! or the log ends there). The failing node is the first terminal failure
//! (the one whose code is the root span's `error.type` and status), else
//! the last unsettled failure; the other failing nodes come after it. An
//! early node that failed and recovered on a retry is therefore never taken
//! for the failing node.

use std::collections::HashMap;

use flowtel::SpanData;

use crate::timeline::{timeline, Kind, Moment};

/// One failing node.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    /// Its `flow.node.failed`, or its last unsettled failed attempt.
    pub(crate) at: Moment,
    /// Whether `at` is a `flow.node.failed` (the retries ran out).
    pub(crate) terminal: bool,
    /// The failed attempts that led to it, in order.
    pub(crate) attempts: Vec<Moment>,
}

/// A failed attempt the node recovered from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// The failed attempt.
    pub(crate) at: Moment,
    /// The successful attempt that settled it.
    pub(crate) by: Moment,
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
    /// The last success before the failure (the run's last one when
    /// nothing failed).
    pub(crate) last_success: Option<Moment>,
    /// When nothing failed: the slowest successful attempt (the last of
    /// equals).
    pub(crate) slowest: Option<Moment>,
    /// The last success before the failure, else before the slowest
    /// success: what ran upstream of the attempt the report looks at.
    pub(crate) upstream: Option<Moment>,
    /// Run events the root span dropped over its limit: a
    /// `flow.node.failed` among them is in neither the export nor these
    /// decisions.
    pub(crate) unseen_run_events: u32,
}

/// A failing node, as indexes into the timeline.
struct Found {
    at: usize,
    terminal: bool,
    attempts: Vec<usize>,
}

/// What the failed attempts came to, as indexes into the timeline.
struct Settled {
    /// Terminal failures, in time order, each with its attempts.
    terminal: Vec<Found>,
    /// Nodes whose last failed attempts nothing settled, by their last.
    open: Vec<Found>,
    /// (failed attempt, the success that settled it).
    recovered: Vec<(usize, usize)>,
}

impl Incident {
    /// Decide for one run's spans, as the SDK exported them.
    pub(crate) fn of(spans: &[SpanData]) -> Incident {
        let mut incident = Incident::decide(&timeline(spans));
        incident.unseen_run_events = spans.iter().map(|s| s.events.dropped_count).sum();
        incident
    }

    /// Decide for one run's timeline.
    fn decide(t: &[Moment]) -> Incident {
        let Settled {
            mut terminal,
            mut open,
            recovered,
        } = settle(t);
        let failure = if terminal.is_empty() {
            open.pop()
        } else {
            Some(terminal.remove(0))
        };
        let mut also_failed: Vec<Found> = terminal.into_iter().chain(open).collect();
        also_failed.sort_by_key(|f| f.at);
        let success_before = |end: usize| t[..end].iter().rposition(|m| m.kind == Kind::Success);
        let last_success = success_before(failure.as_ref().map_or(t.len(), |f| f.at));
        let slowest = match failure {
            Some(_) => None,
            None => t
                .iter()
                .enumerate()
                .filter(|(_, m)| m.kind == Kind::Success)
                .max_by_key(|(_, m)| m.took)
                .map(|(i, _)| i),
        };
        let upstream = failure
            .as_ref()
            .map(|f| f.at)
            .or(slowest)
            .and_then(success_before);
        let moment = |i: usize| t[i].clone();
        let failure_of = |f: Found| Failure {
            at: moment(f.at),
            terminal: f.terminal,
            attempts: f.attempts.into_iter().map(moment).collect(),
        };
        Incident {
            failure: failure.map(failure_of),
            also_failed: also_failed.into_iter().map(failure_of).collect(),
            recovered: recovered
                .into_iter()
                .map(|(at, by)| Recovered {
                    at: moment(at),
                    by: moment(by),
                })
                .collect(),
            last_success: last_success.map(moment),
            slowest: slowest.map(moment),
            upstream: upstream.map(moment),
            unseen_run_events: 0,
        }
    }
}

/// Settle every failed attempt by its node's next success or failure.
fn settle(t: &[Moment]) -> Settled {
    // Walk backwards so that each failed attempt meets its node's next
    // outcome in one pass.
    let mut next: HashMap<&str, usize> = HashMap::new();
    let mut settled_by: Vec<Option<usize>> = vec![None; t.len()];
    for (i, m) in t.iter().enumerate().rev() {
        match m.kind {
            Kind::Success | Kind::Failed => {
                next.insert(&m.node, i);
            }
            Kind::Error | Kind::Timeout => settled_by[i] = next.get(m.node.as_str()).copied(),
        }
    }

    let mut recovered = Vec::new();
    let mut terminal = Vec::new();
    // Failed attempts waiting for the failure that settles them.
    let mut leading_to: HashMap<usize, Vec<usize>> = HashMap::new();
    // Unsettled failed attempts, by node.
    let mut unsettled: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, m) in t.iter().enumerate() {
        if m.kind == Kind::Failed {
            terminal.push(Found {
                at: i,
                terminal: true,
                attempts: leading_to.remove(&i).unwrap_or_default(),
            });
        }
        if !m.kind.is_failed_attempt() {
            continue;
        }
        match settled_by[i] {
            Some(by) if t[by].kind == Kind::Success => recovered.push((i, by)),
            Some(by) => leading_to.entry(by).or_default().push(i),
            None => unsettled.entry(&m.node).or_default().push(i),
        }
    }
    let mut open: Vec<Found> = unsettled
        .into_values()
        .filter_map(|attempts| {
            Some(Found {
                at: *attempts.last()?,
                terminal: false,
                attempts,
            })
        })
        .collect();
    open.sort_by_key(|f| f.at);
    Settled {
        terminal,
        open,
        recovered,
    }
}

#[cfg(test)]
mod tests {
    use flowtel::FlowEvent;

    use super::*;
    use crate::view::Runs;

    const T0: f64 = 1_795_305_121.0;

    fn ev(kind: &str, node: &str, t: f64, attempt: u32) -> FlowEvent {
        FlowEvent::builder(kind, T0 + t)
            .node(node, node)
            .trace_id("3e512c5b0a184257a25c215d19544e6a")
            .attempt(attempt)
            .latency_ms(100.0)
            .build()
            .unwrap()
    }

    /// The decisions for `evs`, from the spans the SDK makes of them.
    fn decide(evs: &[FlowEvent]) -> Incident {
        Incident::of(&crate::inspect::map_run(evs, &Runs::default()).unwrap())
    }

    /// A moment, by what the report says of it: node, attempt, kind.
    type Said<'a> = (&'a str, u32, Kind);

    fn said(m: &Moment) -> Said<'_> {
        (m.node.as_str(), m.attempt, m.kind)
    }

    /// A failure: where, whether terminal, and its attempts.
    fn failure(f: &Failure) -> (Said<'_>, bool, Vec<Said<'_>>) {
        (
            said(&f.at),
            f.terminal,
            f.attempts.iter().map(said).collect(),
        )
    }

    #[test]
    fn retries_that_ran_out_without_node_failed_and_recovered_ones() {
        // a recovers; b fails and the log ends while it retries; c is fine;
        // d times out last and the log ends too.
        let i = decide(&[
            ev("node_error", "a", 0.0, 0),
            ev("node_retry", "a", 0.1, 1),
            ev("node_success", "a", 0.5, 1),
            ev("node_error", "b", 1.0, 0),
            ev("node_success", "c", 1.5, 0),
            ev("node_timeout", "d", 2.0, 0),
        ]);
        let d0 = ("d", 0, Kind::Timeout);
        assert_eq!(failure(i.failure.as_ref().unwrap()), (d0, false, vec![d0]));
        let b0 = ("b", 0, Kind::Error);
        let also: Vec<_> = i.also_failed.iter().map(failure).collect();
        assert_eq!(also, [(b0, false, vec![b0])]);
        let recovered: Vec<_> = i
            .recovered
            .iter()
            .map(|r| (said(&r.at), said(&r.by)))
            .collect();
        assert_eq!(
            recovered,
            [(("a", 0, Kind::Error), ("a", 1, Kind::Success))]
        );
        assert_eq!(
            i.last_success.as_ref().map(said),
            Some(("c", 0, Kind::Success))
        );
        assert_eq!(i.upstream, i.last_success);
        assert_eq!(i.slowest, None, "something failed");
        // The moments are the spans': the attempt span's end and duration.
        let d = &i.failure.as_ref().unwrap().at;
        assert_eq!(d.took, std::time::Duration::from_millis(100));
        assert!((d.seconds() - (T0 + 2.0)).abs() < 1e-6, "{}", d.seconds());
    }

    #[test]
    fn a_timeout_recovered_on_retry_is_not_a_failure() {
        let i = decide(&[
            ev("node_success", "a", 0.0, 0),
            ev("node_timeout", "b", 1.0, 0),
            ev("node_retry", "b", 1.1, 1),
            ev("node_success", "b", 2.0, 1),
        ]);
        assert_eq!(i.failure, None);
        assert!(i.also_failed.is_empty());
        assert_eq!(i.recovered.len(), 1);
        assert_eq!(
            i.last_success.as_ref().map(said),
            Some(("b", 1, Kind::Success))
        );
        // Equally slow: the last of them, and what succeeded before it.
        assert_eq!(i.slowest, i.last_success);
        assert_eq!(i.upstream.as_ref().map(said), Some(("a", 0, Kind::Success)));
    }

    #[test]
    fn the_first_terminal_failure_leads_and_the_others_follow() {
        let i = decide(&[
            ev("node_success", "ingest", 0.0, 0),
            ev("node_error", "audit", 1.0, 0),
            ev("node_failed", "audit", 1.1, 0),
            ev("node_error", "enrich", 2.0, 0),
            ev("node_retry", "enrich", 2.1, 1),
            ev("node_success", "enrich", 3.0, 1),
            ev("node_error", "answer", 4.0, 0),
            ev("node_retry", "answer", 4.1, 1),
            ev("node_error", "answer", 5.0, 1),
            ev("node_failed", "answer", 5.1, 1),
        ]);
        let audit0 = ("audit", 0, Kind::Error);
        assert_eq!(
            failure(i.failure.as_ref().unwrap()),
            (("audit", 0, Kind::Failed), true, vec![audit0])
        );
        let also: Vec<_> = i.also_failed.iter().map(failure).collect();
        let answer = [("answer", 0, Kind::Error), ("answer", 1, Kind::Error)];
        assert_eq!(also, [(("answer", 1, Kind::Failed), true, answer.to_vec())]);
        assert_eq!(i.recovered.len(), 1);
        assert_eq!(
            i.last_success.as_ref().map(said),
            Some(("ingest", 0, Kind::Success))
        );
    }

    #[test]
    fn a_node_failed_at_the_time_of_its_last_attempt_settles_it() {
        let i = decide(&[
            ev("node_timeout", "a", 1.0, 0),
            ev("node_failed", "a", 1.0, 0),
        ]);
        let a0 = ("a", 0, Kind::Timeout);
        assert_eq!(
            failure(i.failure.as_ref().unwrap()),
            (("a", 0, Kind::Failed), true, vec![a0])
        );
        assert!(i.also_failed.is_empty());
    }

    #[test]
    fn a_duplicated_line_is_one_attempt_as_in_the_export() {
        let err = ev("node_error", "a", 1.0, 0);
        let i = decide(&[err.clone(), err, ev("node_failed", "a", 1.1, 0)]);
        assert_eq!(i.failure.unwrap().attempts.len(), 1);
    }

    #[test]
    fn a_failure_on_a_partial_run_span_counts_too() {
        // The first failure ends the run (its message was the run's only
        // one); later events of the run go to a partial run span.
        let mut ended = ev("node_failed", "audit", 1.1, 0);
        ended.trace_pending = Some(1);
        let i = decide(&[
            ev("node_error", "audit", 1.0, 0),
            ended,
            ev("node_error", "answer", 2.0, 0),
            ev("node_failed", "answer", 2.1, 0),
        ]);
        assert_eq!(said(&i.failure.unwrap().at), ("audit", 0, Kind::Failed));
        let also: Vec<_> = i.also_failed.iter().map(failure).collect();
        let answer0 = ("answer", 0, Kind::Error);
        assert_eq!(also, [(("answer", 0, Kind::Failed), true, vec![answer0])]);
    }

    #[test]
    fn a_node_name_cut_on_the_root_span_event_is_still_its_node() {
        let long = "n".repeat(300);
        let i = decide(&[
            ev("node_error", &long, 1.0, 0),
            ev("node_failed", &long, 1.1, 0),
        ]);
        let f = i.failure.unwrap();
        assert!(f.terminal);
        assert_eq!(f.at.node, long);
        assert_eq!(f.attempts.len(), 1);
        assert!(i.also_failed.is_empty());
    }

    #[test]
    fn a_node_failed_with_only_a_node_id_is_told_by_the_id() {
        // The root span's `flow.node.failed` event names the node by its id
        // too: a `node_failed` without a name is still the node's.
        let mut failed = ev("node_failed", "a", 1.1, 0);
        failed.node_name = None;
        let i = decide(&[ev("node_error", "a", 1.0, 0), failed]);
        let a0 = ("a", 0, Kind::Error);
        assert_eq!(
            failure(i.failure.as_ref().unwrap()),
            (("a", 0, Kind::Failed), true, vec![a0])
        );
    }

    #[test]
    fn a_node_failed_over_the_root_span_event_limit_is_not_seen_and_counted() {
        // The root span keeps 256 run events; the SDK drops the rest, and
        // says how many.
        let mut evs: Vec<FlowEvent> = (0..300)
            .map(|i| ev("node_retry", "a", f64::from(i) / 1000.0, 1))
            .collect();
        evs.push(ev("node_error", "a", 1.0, 0));
        evs.push(ev("node_failed", "a", 1.1, 0));
        let i = decide(&evs);
        assert_eq!(i.unseen_run_events, 300 + 1 - 256);
        assert!(!i.failure.unwrap().terminal);
    }
}
