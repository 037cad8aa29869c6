//! What a runtime does after a failed attempt: retry it, or give the node
//! up. Recorded as PenguiFlow records it (`node_retry`, `node_failed`).

use std::time::Duration;

use flowtel_semconv::event;
use serde_json::json;

use crate::guard_event::{record, secs, unix_ns, GuardEvent, Name};
use crate::run::Run;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Error,
    Timeout,
}

/// A failed attempt (an error or a timeout), already recorded: say what
/// the runtime does next, so that retries and terminal failures show in the
/// trace (`flow.node.retry` and `flow.node.failed` events on the run's
/// root) and in the metrics. Doing neither is fine too.
#[derive(Debug)]
pub struct Failure {
    pub(crate) run: Run,
    pub(crate) node: Name,
    pub(crate) attempt: u32,
    pub(crate) kind: Kind,
    pub(crate) exception: String,
    pub(crate) latency_ms: f64,
}

impl Failure {
    fn event(&self, kind: &'static str, attempt: u32) -> GuardEvent {
        GuardEvent {
            kind,
            run: self.run.inner.run_id.clone(),
            node: self.node.clone(),
            attempt,
            ts: secs(unix_ns()),
            latency_ms: None,
            span_id: None,
            extra: vec![("exception", self.exception.clone().into())],
        }
    }

    /// The node will be tried again (attempt number + 1) after `delay`
    /// (records `node_retry`; the runtime does the waiting).
    pub fn retry_after(self, delay: Duration) {
        let mut ev = self.event(event::NODE_RETRY, self.attempt + 1);
        ev.extra.push(("sleep_s", delay.as_secs_f64().into()));
        record(&self.run, ev);
    }

    /// No more attempts: the node failed for good (records `node_failed`
    /// with a `flow_error` as PenguiFlow does: code `NODE_TIMEOUT` or
    /// `NODE_EXCEPTION`); the run's root span gets status ERROR.
    pub fn give_up(self) {
        let (code, message) = match self.kind {
            Kind::Timeout => ("NODE_TIMEOUT", format!("Node '{}' timed out", self.node)),
            Kind::Error => {
                let (ty, msg) = crate::mapping::parse_exception(&self.exception);
                let m = format!("Node '{}' raised {ty}: {msg}", self.node);
                ("NODE_EXCEPTION", m)
            }
        };
        let mut ev = self.event(event::NODE_FAILED, self.attempt);
        ev.latency_ms = Some(self.latency_ms);
        ev.extra
            .push(("flow_error", json!({ "code": code, "message": message })));
        record(&self.run, ev);
    }
}
