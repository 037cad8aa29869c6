//! When a run's own events say it is over, so that its root span goes out
//! at once instead of after `run_idle_timeout`.
//!
//! PenguiFlow (3.11) emits no run-end event. What it does emit, on every
//! event of a run, is `trace_pending`: the run's messages queued or being
//! processed, the one the event is about included (and its outputs, once
//! emitted; a result counts until the caller fetches it), and
//! `trace_inflight`: the run's node invocations running besides the
//! event's. Read at the right events, they say that nothing of the run is
//! left:
//!
//! | event | the run is over when | why |
//! | --- | --- | --- |
//! | `trace_cancel_finish` | always (`trace_pending` is 0) | emitted when the cancelled run's last message is dropped |
//! | `node_failed` | `trace_pending == 1`, `trace_inflight == 0` | the failed message, dropped next, is the run's only one |
//! | `deadline_skip` | `trace_pending == 1`, `trace_inflight == 0` | the skipped message is the run's only one |
//! | `node_success` of a *run end node* | `trace_pending <= 2`, `trace_inflight == 0` | its input and its one result are the run's only messages |
//!
//! A successful run's end cannot be seen without knowing the flow: the
//! last node's `node_success` (input plus its result to the caller, 2)
//! looks exactly like any other node's (input plus its output to the next
//! node, 2). So success ends a run only at the nodes named with
//! `with_run_end_node`: those whose results go to the caller (`.to()` with
//! no successor), opt-in.
//!
//! Every rule errs late, never early: a sibling branch still working, a
//! result the caller has not fetched yet, a second message of the run
//! queued, all keep the count above the threshold, and the run then ends
//! as before (idle timeout, shed, shutdown). Events of a run that arrive
//! after it ended (a message the caller emits later under the same trace
//! id) go to a partial run span, as for any late event. The evidence, from
//! real PenguiFlow flows, is in `docs/RUN_END.md`.

use flowtel_semconv::event;

use crate::event::FlowEvent;

/// Does `ev` (already mapped into its run) end its run?
pub(super) fn is_last_event(ev: &FlowEvent, end_nodes: &[String]) -> bool {
    if ev.trace_inflight != 0 {
        return false;
    }
    match ev.event_type.as_str() {
        event::TRACE_CANCEL_FINISH => ev.trace_pending.unwrap_or(0) == 0,
        event::NODE_FAILED | event::DEADLINE_SKIP => ev.trace_pending == Some(1),
        event::NODE_SUCCESS => {
            ev.trace_pending.is_some_and(|p| p <= 2)
                && ev
                    .node_name
                    .as_deref()
                    .is_some_and(|n| end_nodes.iter().any(|e| e == n))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, node: &str, pending: Option<u64>, inflight: u64) -> FlowEvent {
        FlowEvent::builder(kind, 1.0)
            .node(node, format!("{node}-1"))
            .trace_id("3e512c5b0a184257a25c215d19544e6a")
            .trace_state(pending, inflight, false)
            .build()
            .unwrap()
    }

    #[test]
    fn the_rules_of_the_table() {
        let ends = vec!["respond".to_string()];
        let cases = [
            (ev("trace_cancel_finish", "Rookery", Some(0), 0), true),
            (ev("node_failed", "triage", Some(1), 0), true),
            (ev("node_failed", "triage", Some(2), 0), false),
            (ev("node_failed", "triage", Some(1), 1), false),
            (ev("node_failed", "triage", None, 0), false),
            (ev("deadline_skip", "triage", Some(1), 0), true),
            (ev("deadline_skip", "triage", Some(2), 0), false),
            (ev("node_success", "respond", Some(2), 0), true),
            (ev("node_success", "respond", Some(1), 0), true),
            (ev("node_success", "respond", Some(3), 0), false),
            (ev("node_success", "respond", Some(2), 1), false),
            (ev("node_success", "respond", None, 0), false),
            (ev("node_success", "triage", Some(2), 0), false),
            (ev("node_error", "respond", Some(1), 0), false),
            (ev("node_timeout", "respond", Some(1), 0), false),
            (ev("node_retry", "respond", Some(1), 0), false),
        ];
        for (e, want) in cases {
            assert_eq!(
                is_last_event(&e, &ends),
                want,
                "{} {:?} pending {:?} inflight {}",
                e.event_type,
                e.node_name,
                e.trace_pending,
                e.trace_inflight
            );
        }
        assert!(!is_last_event(
            &ev("node_success", "respond", Some(2), 0),
            &[]
        ));
    }
}
