//! The export loops: batches from the span buffer to an exporter, on
//! flowtel's runtime, retried while the buffer lasts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_sdk::trace::SpanExporter;
use tokio::sync::mpsc as tmpsc;

use super::buffer::{lock, SpanBuffer};
use super::Reply;
use crate::error::FlushError;
use crate::stats::Counters;

pub(super) enum ExportCmd {
    Flush(Reply),
    Shutdown(Instant, Reply),
}

/// OTLP export requests in flight at once.
pub(super) const OTLP_EXPORTS_IN_FLIGHT: usize = 4;

#[derive(Clone)]
pub(super) struct ExportLoop {
    pub(super) buffer: Arc<SpanBuffer>,
    pub(super) stats: Arc<Counters>,
    pub(super) delay: Duration,
    pub(super) request_timeout: Duration,
}

impl ExportLoop {
    /// Export buffered spans in batches: when a batch is full, every
    /// `delay`, and on flush. A failed batch goes back to the front of the
    /// buffer and is retried with backoff, so an outage shorter than the
    /// buffer loses nothing.
    pub(super) async fn run<E: SpanExporter>(
        self,
        exporter: E,
        mut cmds: tmpsc::UnboundedReceiver<ExportCmd>,
        retry: bool,
    ) {
        let mut backoff = Duration::ZERO;
        loop {
            let wait = if backoff.is_zero() {
                self.delay
            } else {
                backoff
            };
            let cmd = tokio::select! {
                c = cmds.recv() => match c {
                    Some(c) => Some(c),
                    None => return,
                },
                _ = self.buffer.ready.notified(), if backoff.is_zero() => None,
                _ = tokio::time::sleep(wait) => None,
            };
            match cmd {
                None => {
                    backoff = match self.drain(&exporter, retry, None).await {
                        Ok(()) => Duration::ZERO,
                        Err(_) => {
                            (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
                        }
                    };
                }
                Some(ExportCmd::Flush(reply)) => {
                    let r = self.drain(&exporter, retry, None).await;
                    if r.is_ok() {
                        backoff = Duration::ZERO;
                    }
                    let _ = reply.send(r);
                }
                Some(ExportCmd::Shutdown(deadline, reply)) => {
                    let mut r = self.drain(&exporter, retry, Some(deadline)).await;
                    // Keep retrying a failing collector until the deadline.
                    while r.is_err() && Instant::now() + Duration::from_millis(200) < deadline {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        r = self.drain(&exporter, retry, Some(deadline)).await;
                    }
                    let left = {
                        let mut q = lock(&self.buffer.queue);
                        let n = q.len();
                        q.clear();
                        n
                    };
                    if left > 0 {
                        self.stats.add_spans_lost_at_shutdown(left as u64);
                    }
                    let _ = exporter
                        .shutdown_with_timeout(deadline.saturating_duration_since(Instant::now()));
                    let _ = reply.send(r);
                    return;
                }
            }
        }
    }

    pub(super) async fn drain<E: SpanExporter>(
        &self,
        exporter: &E,
        retry: bool,
        deadline: Option<Instant>,
    ) -> Result<(), FlushError> {
        loop {
            let batch = self.buffer.take_batch();
            if batch.is_empty() {
                return Ok(());
            }
            let n = batch.len() as u64;
            let copy = retry.then(|| batch.clone());
            let limit = match deadline {
                Some(d) => self
                    .request_timeout
                    .min(d.saturating_duration_since(Instant::now())),
                None => self.request_timeout,
            };
            let error = match tokio::time::timeout(limit, exporter.export(batch)).await {
                Ok(Ok(())) => {
                    self.stats.spans_exported.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("export request timed out after {limit:?}"),
            };
            self.stats.add_export_failure(&error);
            match copy {
                Some(c) => self.buffer.requeue(c, &self.stats),
                None => self.stats.add_spans_dropped(n),
            }
            return Err(FlushError::Export(error));
        }
    }
}
