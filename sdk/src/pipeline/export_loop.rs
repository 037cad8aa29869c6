//! The export loops: batches from the span buffer to a sink, on flowtel's
//! runtime. This is the one place where OTLP requests are retried.
//!
//! - A batch is prepared (encoded) once when taken from the buffer.
//! - Accepted: counted as exported, minus what a partial success rejected.
//! - Rejected for good (HTTP 400, gRPC INVALID_ARGUMENT, ...): dropped at
//!   once, counted, warned about once; the loop goes on with the next batch.
//! - Transient failure: the loop holds the prepared batch and sends the same
//!   bytes again when the shared [`RetryGate`] reopens (after the
//!   collector's `Retry-After`/`RetryInfo`, or a jittered backoff). A held
//!   batch still counts against the buffer's capacity.
//! - Shutdown: keep going until the deadline; what is left is counted lost.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc as tmpsc;

use super::buffer::SpanBuffer;
use super::Reply;
use crate::error::FlushError;
use crate::export::{Outcome, RetryGate, SpanSink};
use crate::record::SpanRecord;
use crate::stats::Counters;

pub(super) enum ExportCmd {
    Flush(Reply),
    Shutdown(Instant, Reply),
}

/// How much longer than the request timeout a send may take before the
/// loop gives up on it.
const TIMEOUT_GRACE: Duration = Duration::from_millis(250);

/// Failed attempts after which a pending flush reports the failure (the
/// batch stays held and is retried after that too).
const FLUSH_ATTEMPTS: u32 = 3;

/// OTLP export requests in flight at once.
pub(super) const OTLP_EXPORTS_IN_FLIGHT: usize = 4;

#[derive(Clone)]
pub(super) struct ExportLoop {
    pub(super) buffer: Arc<SpanBuffer>,
    pub(super) stats: Arc<Counters>,
    /// Shared by every loop of the pipeline.
    pub(super) gate: Arc<RetryGate>,
    pub(super) delay: Duration,
    /// The export timeout of one request.
    pub(super) request_timeout: Duration,
}

/// A batch taken from the buffer and not settled yet.
struct Held<B> {
    batch: B,
    spans: usize,
}

/// How a round of sending ended.
enum Drained {
    /// Nothing left to send; `Some` when a batch was rejected on the way.
    Empty(Option<String>),
    /// A batch failed and is held for a retry.
    Failed(String),
    /// The gate is closed (until the deadline, when there is one).
    Blocked,
}

impl ExportLoop {
    /// Export buffered spans in batches: when a batch is full, every
    /// `delay`, and on flush; while the gate is closed, when it reopens.
    /// A flush is answered once this loop has nothing left to send, or
    /// after a few failed attempts.
    pub(super) async fn run<S: SpanSink>(
        self,
        sink: S,
        mut cmds: tmpsc::UnboundedReceiver<ExportCmd>,
    ) {
        let mut held: Option<Held<S::Batch>> = None;
        // The vector batches are taken into: its room is reused.
        let mut batch = Vec::new();
        // Pending flushes, with the failed attempts each has seen.
        let mut flushes: Vec<(Reply, u32)> = Vec::new();
        let mut paused = false;
        loop {
            let cmd = tokio::select! {
                c = cmds.recv() => match c {
                    Some(c) => Some(c),
                    None => return,
                },
                _ = self.buffer.ready.notified(), if !paused => None,
                _ = tokio::time::sleep(self.delay), if !paused => None,
                _ = self.gate.reopened(), if paused => None,
            };
            match cmd {
                Some(ExportCmd::Flush(reply)) => {
                    self.gate.nudge();
                    flushes.push((reply, 0));
                }
                Some(ExportCmd::Shutdown(deadline, reply)) => {
                    let r = self.shutdown(&sink, held, &mut batch, deadline).await;
                    for (f, _) in flushes {
                        let _ = f.send(r.clone());
                    }
                    let _ = reply.send(r);
                    return;
                }
                None => {}
            }
            match self.drain(&sink, &mut held, &mut batch, None).await {
                Drained::Empty(rejected) => {
                    paused = false;
                    let answer = rejected.map_or(Ok(()), |e| Err(FlushError::Export(e)));
                    for (f, _) in flushes.drain(..) {
                        let _ = f.send(answer.clone());
                    }
                }
                Drained::Failed(e) => {
                    paused = true;
                    // A brief blip (a collector still starting) does not
                    // fail a flush; an outage does, after a few attempts.
                    flushes.retain_mut(|(f, failures)| {
                        *failures += 1;
                        let done = *failures >= FLUSH_ATTEMPTS;
                        if done {
                            let _ = f.send(Err(FlushError::Export(e.clone())));
                        }
                        !done
                    });
                }
                Drained::Blocked => paused = true,
            }
        }
    }

    /// Send the held batch, then batches from the buffer, until it is empty,
    /// a send fails, or the gate closes. Without a deadline this never waits
    /// for the gate; with one it waits until then.
    async fn drain<S: SpanSink>(
        &self,
        sink: &S,
        held: &mut Option<Held<S::Batch>>,
        batch: &mut Vec<SpanRecord>,
        deadline: Option<Instant>,
    ) -> Drained {
        let mut rejected = None;
        loop {
            if held.is_none() && self.buffer.is_empty() {
                return Drained::Empty(rejected);
            }
            let permit = match deadline {
                None => self.gate.try_now(),
                Some(d) => self.gate.acquire(Some(d)).await,
            };
            let Some(permit) = permit else {
                return Drained::Blocked;
            };
            let mut h = match held.take() {
                Some(h) => h,
                None => {
                    self.buffer.take_batch(batch);
                    if batch.is_empty() {
                        return Drained::Empty(rejected);
                    }
                    let n = batch.len();
                    Held {
                        batch: sink.prepare(batch),
                        spans: n,
                    }
                }
            };
            let limit = match deadline {
                Some(d) => self
                    .request_timeout
                    .min(d.saturating_duration_since(Instant::now())),
                None => self.request_timeout,
            };
            // The transport enforces `limit` itself and says so; this bound
            // is for sinks that do not.
            let bound = limit + TIMEOUT_GRACE;
            let outcome = match tokio::time::timeout(bound, sink.send(&mut h.batch, limit)).await {
                Ok(o) => o,
                Err(_) => {
                    let error = format!("export request timed out after {limit:?}");
                    match S::RETRIES {
                        true => Outcome::Retry { after: None, error },
                        false => Outcome::Failed { error },
                    }
                }
            };
            permit.settle(&outcome);
            match self.count(outcome, h, held) {
                Ok(Some(rejection)) => rejected = Some(rejection),
                Ok(None) => {}
                Err(error) => return Drained::Failed(error),
            }
        }
    }

    /// Count what became of a sent batch and settle it, unless it is to be
    /// retried (then it goes back into `held`). `Ok(Some)` describes a
    /// rejection; `Err` a failure that ends the round.
    fn count<B>(
        &self,
        outcome: Outcome,
        h: Held<B>,
        held: &mut Option<Held<B>>,
    ) -> Result<Option<String>, String> {
        let n = h.spans as u64;
        let r = match outcome {
            Outcome::Accepted { rejected, message } => {
                let rejected = rejected.min(n);
                let exported = n - rejected;
                self.stats
                    .spans_exported
                    .fetch_add(exported, Ordering::Relaxed);
                if rejected > 0 {
                    let why = message.as_deref().unwrap_or("no message");
                    self.stats.add_spans_rejected_partial(rejected, why);
                } else if let Some(m) = message {
                    self.stats.warn_collector_message(&m);
                }
                Ok(None)
            }
            Outcome::Rejected { error } => {
                self.stats.add_spans_rejected(n, &error);
                Ok(Some(format!("the collector rejected {n} spans: {error}")))
            }
            Outcome::Failed { error } => {
                self.stats.add_export_failure(&error);
                self.stats.add_spans_dropped(n);
                Err(error)
            }
            Outcome::Retry { error, .. } => {
                self.stats.add_export_failure(&error);
                *held = Some(h);
                return Err(error);
            }
        };
        self.buffer.settle(h.spans);
        r
    }

    /// Keep sending until everything is out or the deadline passes (a
    /// collector pause that ends after it stops at once); count what is left
    /// as lost.
    async fn shutdown<S: SpanSink>(
        &self,
        sink: &S,
        mut held: Option<Held<S::Batch>>,
        batch: &mut Vec<SpanRecord>,
        deadline: Instant,
    ) -> Result<(), FlushError> {
        // Like a flush: one attempt now, unless the collector asked to wait.
        self.gate.nudge();
        let mut error = None;
        let r = loop {
            let unsent = || "spans left unsent at the shutdown deadline".to_string();
            if Instant::now() >= deadline {
                break Err(error.unwrap_or_else(unsent));
            }
            match self.drain(sink, &mut held, batch, Some(deadline)).await {
                Drained::Empty(None) => break Ok(()),
                Drained::Empty(Some(e)) => break Err(e),
                Drained::Failed(e) => error = Some(e),
                Drained::Blocked => break Err(error.unwrap_or_else(unsent)),
            }
        }
        .map_err(FlushError::Export);
        let left = self.buffer.clear() + held.as_ref().map_or(0, |h| h.spans);
        if let Some(h) = held {
            self.buffer.settle(h.spans);
        }
        if left > 0 {
            self.stats.add_spans_lost_at_shutdown(left as u64);
        }
        r
    }
}
