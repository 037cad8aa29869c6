//! A guard that records a node attempt's start and end for Rust runtimes,
//! timing it with a monotonic clock.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use flowtel_semconv::event;

use crate::event::FlowEvent;
use crate::pipeline::Flowtel;

/// One node attempt in progress; created by [`Flowtel::start_attempt`].
///
/// It records `node_start` when created and exactly one terminal event when
/// finished. The duration comes from a monotonic clock, so wall-clock jumps
/// never produce negative or inflated latencies. Dropped without a verdict
/// (an early `?` return, a panic), it records `node_error` with
/// `AttemptDropped()`, so the attempt is never left open.
///
/// ```
/// # let flowtel = flowtel::Flowtel::builder().with_in_memory(&flowtel::InMemory::new()).build().unwrap();
/// let attempt = flowtel.start_attempt("3e512c5b0a184257a25c215d19544e6a", "triage", 0);
/// // ... run the node ...
/// attempt.success();
/// # flowtel.shutdown(std::time::Duration::from_secs(5)).unwrap();
/// ```
#[must_use = "an attempt records its end when finished or dropped"]
#[derive(Debug)]
pub struct Attempt {
    flowtel: Flowtel,
    trace_id: String,
    node: String,
    attempt: u32,
    wall_start: f64,
    start: Instant,
    done: bool,
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Flowtel {
    /// Record `node_start` for `node` (used as name and id) in run
    /// `trace_id` and return the guard that records its end.
    pub fn start_attempt(
        &self,
        trace_id: impl Into<String>,
        node: impl Into<String>,
        attempt: u32,
    ) -> Attempt {
        let a = Attempt {
            flowtel: self.clone(),
            trace_id: trace_id.into(),
            node: node.into(),
            attempt,
            wall_start: now_unix(),
            start: Instant::now(),
            done: false,
        };
        a.emit(event::NODE_START, a.wall_start, 0.0, None);
        a
    }
}

impl Attempt {
    fn emit(&self, kind: &str, ts: f64, latency_ms: f64, exception: Option<&str>) {
        let mut b = FlowEvent::builder(kind, ts)
            .node(self.node.clone(), self.node.clone())
            .trace_id(self.trace_id.clone())
            .attempt(self.attempt)
            .latency_ms(latency_ms);
        if let Some(x) = exception {
            b = b.extra("exception", x);
        }
        // Invalid events cannot come out of here (finite, non-negative
        // numbers); a full queue is counted by record().
        if let Ok(ev) = b.build() {
            let _ = self.flowtel.record(ev);
        }
    }

    fn finish(mut self, kind: &str, exception: Option<&str>) {
        self.done = true;
        let elapsed = self.start.elapsed();
        let ts = self.wall_start + elapsed.as_secs_f64();
        self.emit(kind, ts, elapsed.as_secs_f64() * 1000.0, exception);
    }

    /// The attempt succeeded.
    pub fn success(self) {
        self.finish(event::NODE_SUCCESS, None);
    }

    /// The attempt failed; `exception` is shown as `Type('message')` or any text.
    pub fn error(self, exception: &str) {
        self.finish(event::NODE_ERROR, Some(exception));
    }

    /// The attempt timed out.
    pub fn timeout(self) {
        self.finish(event::NODE_TIMEOUT, Some("TimeoutError()"));
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            let elapsed = self.start.elapsed();
            self.emit(
                event::NODE_ERROR,
                self.wall_start + elapsed.as_secs_f64(),
                elapsed.as_secs_f64() * 1000.0,
                Some("AttemptDropped()"),
            );
        }
    }
}
