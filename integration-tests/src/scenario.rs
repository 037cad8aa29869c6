//! A realistic sequence of FlowEvents, shaped like PenguiFlow 3.11's, with
//! the facts a backend must show for it stated independently of flowtel's
//! mapping code.

use flowtel::FlowEvent;
use serde_json::json;

/// One node attempt the backend must show.
#[derive(Clone, Debug)]
pub struct ExpectedAttempt {
    /// Trace (32 hex).
    pub trace_id: String,
    /// Node name (the span's name).
    pub node: String,
    /// Attempt number.
    pub attempt: u32,
    /// `success`, `error`, `timeout`, `cancelled`.
    pub outcome: &'static str,
    /// Start, unix µs.
    pub start_us: i128,
    /// End, unix µs.
    pub end_us: i128,
    /// `error.type`, for errors and timeouts.
    pub error_type: Option<String>,
}

/// The events and what must arrive.
#[derive(Clone, Debug, Default)]
pub struct Scenario {
    /// Events in emission order.
    pub events: Vec<FlowEvent>,
    /// Every attempt span that must arrive, once each.
    pub attempts: Vec<ExpectedAttempt>,
    /// Root span events per trace, in order.
    pub run_events: Vec<(String, Vec<&'static str>)>,
    /// Traces whose root must have status ERROR, with its `error.type`.
    pub failed_runs: Vec<(String, &'static str)>,
    /// Every node id used (must never reach a metric).
    pub node_ids: Vec<String>,
    /// Terminal attempts without a trace id (metrics only).
    pub untraced_attempts: u64,
    /// `node_retry` events.
    pub retries: u64,
}

struct Builder {
    s: Scenario,
    t: f64,
}

fn us(ts: f64) -> i128 {
    crate::unix_ns(ts) / 1000
}

impl Builder {
    fn node_id(node: &str) -> String {
        // PenguiFlow node ids are per-instance uuid4 hex.
        let h = node.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
        format!("{h:016x}{:016x}", h.rotate_left(17))
    }

    fn ev(&mut self, kind: &str, node: &str, trace: Option<&str>, attempt: u32) -> FlowEvent {
        let id = Self::node_id(node);
        if !self.s.node_ids.contains(&id) {
            self.s.node_ids.push(id.clone());
        }
        let mut b = FlowEvent::builder(kind, self.t)
            .node(node, id)
            .attempt(attempt)
            .queue_depths(1, 2)
            .topology(1, 64)
            .trace_state(Some(1), 1, false);
        if let Some(t) = trace {
            b = b.trace_id(t);
        }
        b.build().expect("valid scenario event")
    }

    fn push(&mut self, e: FlowEvent) {
        self.s.events.push(e);
    }

    /// node_start, then after `ms` the terminal event.
    fn attempt(
        &mut self,
        trace: Option<&str>,
        node: &'static str,
        attempt: u32,
        outcome: &'static str,
        ms: f64,
    ) {
        let mut start = self.ev("node_start", node, trace, attempt);
        start.latency_ms = Some(0.0);
        self.push(start);
        self.t += ms / 1000.0;
        let kind = match outcome {
            "success" => "node_success",
            "error" => "node_error",
            _ => "node_timeout",
        };
        let mut end = self.ev(kind, node, trace, attempt);
        end.latency_ms = Some(ms);
        let error_type = match outcome {
            "error" => {
                end.extra
                    .insert("exception".into(), json!("ValueError('upstream 503')"));
                Some("ValueError")
            }
            "timeout" => {
                end.extra
                    .insert("exception".into(), json!("TimeoutError()"));
                Some("timeout")
            }
            _ => None,
        };
        let end_ts = self.t;
        self.push(end);
        if let Some(t) = trace {
            self.s.attempts.push(ExpectedAttempt {
                trace_id: t.to_string(),
                node: node.to_string(),
                attempt,
                outcome,
                start_us: crate::attempt_us(end_ts, ms).0,
                end_us: us(end_ts),
                error_type: error_type.map(String::from),
            });
        } else {
            self.s.untraced_attempts += 1;
        }
        self.t += 0.001;
    }

    fn retry(&mut self, trace: &str, node: &str, next_attempt: u32, sleep_s: f64) {
        let mut e = self.ev("node_retry", node, Some(trace), next_attempt);
        e.extra.insert("sleep_s".into(), json!(sleep_s));
        e.extra
            .insert("exception".into(), json!("ValueError('upstream 503')"));
        self.push(e);
        self.s.retries += 1;
        self.t += sleep_s;
    }

    fn control(
        &mut self,
        kind: &str,
        node: &str,
        trace: &str,
        extra: Option<(&str, serde_json::Value)>,
    ) {
        let mut e = self.ev(kind, node, Some(trace), 0);
        if let Some((k, v)) = extra {
            e.extra.insert(k.into(), v);
        }
        self.push(e);
        self.t += 0.002;
    }
}

/// Five runs and some untraced events, starting at unix time `base`:
/// success; error → retry → success; timeout → retry → timeout → failed;
/// a cancellation mid-node; a deadline skip.
pub fn realistic(base: f64) -> Scenario {
    let mut b = Builder {
        s: Scenario::default(),
        t: base,
    };
    let ok = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let retried = "b1b2c3d4e5f60718293a4b5c6d7e8f91";
    let failed = "c1b2c3d4e5f60718293a4b5c6d7e8f92";
    let cancelled = "d1b2c3d4e5f60718293a4b5c6d7e8f93";
    let skipped = "e1b2c3d4e5f60718293a4b5c6d7e8f94";

    b.attempt(Some(ok), "fetch", 0, "success", 12.25);
    b.attempt(Some(ok), "triage", 0, "success", 31.5);
    b.attempt(Some(ok), "summarize", 0, "success", 48.125);
    b.s.run_events.push((ok.into(), vec![]));

    b.attempt(Some(retried), "fetch", 0, "success", 10.0);
    b.attempt(Some(retried), "triage", 0, "error", 7.5);
    b.retry(retried, "triage", 1, 0.2);
    b.attempt(Some(retried), "triage", 1, "success", 22.0);
    b.attempt(Some(retried), "summarize", 0, "success", 40.0);
    b.s.run_events
        .push((retried.into(), vec!["flow.node.retry"]));

    b.attempt(Some(failed), "fetch", 0, "success", 9.0);
    b.attempt(Some(failed), "summarize", 0, "timeout", 50.0);
    b.retry(failed, "summarize", 1, 0.05);
    b.attempt(Some(failed), "summarize", 1, "timeout", 50.0);
    let mut f = b.ev("node_failed", "summarize", Some(failed), 1);
    f.latency_ms = Some(50.0);
    f.extra.insert("exception".into(), json!("TimeoutError()"));
    f.extra.insert(
        "flow_error".into(),
        json!({"code": "NODE_TIMEOUT", "message": "Node 'summarize' timed out after 0.05s",
               "trace_id": failed, "node_name": "summarize", "exception_type": "TimeoutError",
               "metadata": {"attempt": 1, "latency_ms": 50.0, "timeout_s": 0.05}}),
    );
    b.push(f);
    b.s.run_events
        .push((failed.into(), vec!["flow.node.retry", "flow.node.failed"]));
    b.s.failed_runs.push((failed.into(), "NODE_TIMEOUT"));

    // Cancellation while `fetch` runs: start, cancel, the node's work is
    // cancelled (no latency), cancellation finishes.
    let mut start = b.ev("node_start", "fetch", Some(cancelled), 0);
    start.latency_ms = Some(0.0);
    let start_ts = b.t;
    b.push(start);
    b.t += 0.02;
    b.control(
        "trace_cancel_start",
        "OpenSea",
        cancelled,
        Some(("pending", json!(2))),
    );
    let end_ts = b.t;
    b.control("node_trace_cancelled", "fetch", cancelled, None);
    b.control("trace_cancel_drop", "triage", cancelled, None);
    b.control("trace_cancel_finish", "Rookery", cancelled, None);
    b.s.attempts.push(ExpectedAttempt {
        trace_id: cancelled.into(),
        node: "fetch".into(),
        attempt: 0,
        outcome: "cancelled",
        start_us: us(start_ts),
        end_us: us(end_ts),
        error_type: None,
    });
    b.s.run_events.push((
        cancelled.into(),
        vec![
            "flow.trace_cancel_start",
            "flow.node_trace_cancelled",
            "flow.trace_cancel_drop",
            "flow.trace_cancel_finish",
        ],
    ));

    b.attempt(Some(skipped), "fetch", 0, "success", 5.0);
    b.control(
        "deadline_skip",
        "triage",
        skipped,
        Some(("deadline_s", json!(base))),
    );
    b.s.run_events
        .push((skipped.into(), vec!["flow.deadline_skip"]));

    // No trace id: metrics only.
    b.attempt(None, "fetch", 0, "success", 4.0);
    b.attempt(None, "triage", 0, "error", 6.0);
    b.s
}
