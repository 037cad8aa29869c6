//! What a collector must have received for FlowEvents that real PenguiFlow
//! flows emitted (captured by a second middleware in the same run), stated
//! from the events alone. Shared by the `flowtel ingest` tests
//! (`cli/tests/penguiflow.rs`) and the Python package's tests
//! (`python/checks`), so both hold flowtel to the same promises.

use std::collections::{BTreeMap, BTreeSet};

use flowtel::FlowEvent;

use crate::assertions::{
    check_attempt, check_no_ids_in_metrics, check_tree, counter_total, histogram_count,
};
use crate::debuglog::Received;
use crate::scenario::ExpectedAttempt;

fn us(ts: f64) -> i128 {
    crate::unix_ns(ts) / 1000
}

/// Every attempt span the events promise: one per terminal event
/// (`start = ts - latency_ms`), and one per attempt a cancellation ended
/// (from its `node_start` to the `node_trace_cancelled`).
pub fn expected_attempts(evs: &[FlowEvent]) -> Vec<ExpectedAttempt> {
    let mut out = Vec::new();
    for (i, e) in evs.iter().enumerate() {
        let Some(trace) = &e.trace_id else { continue };
        let node = e.node_name.clone().unwrap_or_default();
        let (outcome, error_type) = match e.event_type.as_str() {
            "node_success" => ("success", None),
            "node_error" => {
                let repr = e.extra["exception"].as_str().unwrap_or_default();
                let ty = repr.split('(').next().unwrap_or_default().to_string();
                ("error", Some(ty))
            }
            "node_timeout" => ("timeout", Some("timeout".to_string())),
            "node_trace_cancelled" => {
                // Ends the attempt its node_start opened.
                let Some(start) = evs[..i].iter().rev().find(|s| {
                    s.event_type == "node_start"
                        && s.trace_id == e.trace_id
                        && s.node_name == e.node_name
                }) else {
                    continue;
                };
                out.push(ExpectedAttempt {
                    trace_id: trace.clone(),
                    node,
                    attempt: start.attempt,
                    outcome: "cancelled",
                    start_us: us(start.ts),
                    end_us: us(e.ts),
                    error_type: None,
                });
                continue;
            }
            _ => continue,
        };
        // Computed as the SDK computes it (see `crate::attempt_us`).
        out.push(ExpectedAttempt {
            trace_id: trace.clone(),
            node,
            attempt: e.attempt,
            outcome,
            start_us: crate::attempt_us(e.ts, e.latency_ms.unwrap_or(0.0)).0,
            end_us: us(e.ts),
            error_type,
        });
    }
    out
}

/// The traces the events belong to.
pub fn traces(evs: &[FlowEvent]) -> BTreeSet<&str> {
    evs.iter().filter_map(|e| e.trace_id.as_deref()).collect()
}

/// How many spans must arrive: one per attempt and one root per trace.
pub fn expected_span_count(evs: &[FlowEvent]) -> usize {
    expected_attempts(evs).len() + traces(evs).len()
}

/// The spans: exactly the expected number, one tree per trace whose root is
/// named `flow_name` and carries the run's retries, terminal failures,
/// deadline skips and cancellations (ERROR with the `flow_error` code when
/// a node failed), and every attempt once with exact timing and status.
pub fn check_spans(r: &Received, evs: &[FlowEvent], flow_name: &str) -> Result<(), String> {
    let expected = expected_span_count(evs);
    if r.spans.len() != expected {
        return Err(format!(
            "{} spans arrived, expected {expected}",
            r.spans.len()
        ));
    }
    for t in traces(evs) {
        let spans = r.trace(t);
        let root = check_tree(&spans).map_err(|e| format!("trace {t}: {e}"))?;
        if root.name != flow_name {
            return Err(format!("trace {t}: root named {:?}", root.name));
        }
        let of = |kind: &str| {
            evs.iter()
                .filter(|e| e.trace_id.as_deref() == Some(t) && e.event_type == kind)
                .count()
        };
        let marks = |name: &str| root.events.iter().filter(|e| e.name == name).count();
        for (mark, kind) in [
            ("flow.node.retry", "node_retry"),
            ("flow.node.failed", "node_failed"),
            ("flow.deadline_skip", "deadline_skip"),
            ("flow.trace_cancel_start", "trace_cancel_start"),
        ] {
            if marks(mark) != of(kind) {
                return Err(format!(
                    "trace {t}: {} `{mark}` root events for {} `{kind}` events",
                    marks(mark),
                    of(kind)
                ));
            }
        }
        let failed = evs
            .iter()
            .find(|e| e.trace_id.as_deref() == Some(t) && e.event_type == "node_failed");
        if let Some(f) = failed {
            let code = f.extra["flow_error"]["code"].as_str();
            if root.status_code != "STATUS_CODE_ERROR" || root.attr("error.type") != code {
                return Err(format!(
                    "trace {t}: root should be ERROR {code:?}: {} {:?}",
                    root.status_code,
                    root.attr("error.type")
                ));
            }
        }
    }
    for a in &expected_attempts(evs) {
        check_attempt(r, a)?;
    }
    Ok(())
}

/// The metrics: `flow.events` per event type equals PenguiFlow's count,
/// `flow.node.duration` counts each attempt once, and no point carries a
/// trace id or a node instance id.
pub fn check_metrics(r: &Received, evs: &[FlowEvent]) -> Result<(), String> {
    let mut by_type: BTreeMap<&str, f64> = BTreeMap::new();
    for e in evs {
        *by_type.entry(e.event_type.as_str()).or_default() += 1.0;
    }
    for (kind, n) in &by_type {
        let got = counter_total(r, "flow.events", "flow.event.type", kind);
        if got != *n {
            return Err(format!("flow.events {kind}: {got}, expected {n}"));
        }
    }
    let timed = evs
        .iter()
        .filter(|e| {
            matches!(
                e.event_type.as_str(),
                "node_success" | "node_error" | "node_timeout"
            )
        })
        .count() as u64;
    let count = histogram_count(r, "flow.node.duration");
    if count != timed {
        return Err(format!(
            "flow.node.duration count {count}, expected {timed} (one per attempt)"
        ));
    }
    let mut ids: Vec<String> = traces(evs).iter().map(|t| t.to_string()).collect();
    // PenguiFlow's control endpoints (OpenSea, Rookery) use their name as
    // their id; only real instance ids must stay out of metrics.
    ids.extend(
        evs.iter()
            .filter(|e| e.node_id != e.node_name)
            .filter_map(|e| e.node_id.clone()),
    );
    check_no_ids_in_metrics(r, &ids)
}

/// [`check_spans`] and [`check_metrics`].
pub fn check_run(r: &Received, evs: &[FlowEvent], flow_name: &str) -> Result<(), String> {
    check_spans(r, evs, flow_name)?;
    check_metrics(r, evs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(kind: &str, ts: f64, attempt: u32, latency: Option<f64>) -> FlowEvent {
        let mut b = FlowEvent::builder(kind, ts)
            .node("fetch", "f1")
            .trace_id("3e512c5b0a184257a25c215d19544e6a")
            .attempt(attempt);
        if let Some(l) = latency {
            b = b.latency_ms(l);
        }
        b.build().unwrap()
    }

    #[test]
    fn attempts_come_from_terminal_and_cancel_events() {
        let mut err = ev("node_error", 10.5, 0, Some(500.0));
        err.extra
            .insert("exception".into(), json!("ValueError('boom')"));
        let evs = vec![
            ev("node_start", 10.0, 0, Some(0.0)),
            err,
            ev("node_retry", 10.6, 1, None),
            ev("node_start", 11.0, 1, Some(0.0)),
            ev("node_trace_cancelled", 11.25, 1, None),
        ];
        let a = expected_attempts(&evs);
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].outcome, a[0].start_us), ("error", 10_000_000));
        assert_eq!(a[0].error_type.as_deref(), Some("ValueError"));
        assert_eq!((a[1].outcome, a[1].attempt), ("cancelled", 1));
        assert_eq!((a[1].start_us, a[1].end_us), (11_000_000, 11_250_000));
        assert_eq!(expected_span_count(&evs), 3);
    }

    #[test]
    fn checks_reject_a_collector_that_got_nothing() {
        let evs = vec![ev("node_success", 10.0, 0, Some(5.0))];
        let empty = Received::default();
        assert!(check_spans(&empty, &evs, "flow")
            .unwrap_err()
            .contains("0 spans arrived, expected 2"));
        assert!(check_metrics(&empty, &evs)
            .unwrap_err()
            .contains("flow.events node_success"));
    }
}
