//! The OTLP metric exporter: each collection is encoded once and sent on
//! flowtel's runtime; transient failures are retried (honouring the
//! collector's `Retry-After` / `RetryInfo`) until the export timeout, after
//! which the next periodic export carries the values again.
//!
//! Each export backs off on its own (a collection is a fresh snapshot, and
//! the first attempt of each goes out at once), but a pause the collector
//! asked for is kept across exports.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use tokio::runtime::Handle;

use super::encode;
use super::outcome::Outcome;
use super::transport::Transport;
use super::RetryGate;
use crate::exemplars::Exemplars;
use crate::stats::Counters;

pub(crate) struct OtlpMetricExporter {
    pub(crate) transport: Arc<Transport>,
    /// Until when the collector asked not to be sent metrics.
    pub(crate) paused_until: Arc<Mutex<Option<Instant>>>,
    pub(crate) handle: Handle,
    pub(crate) stats: Arc<Counters>,
    pub(crate) timeout: Duration,
    pub(crate) temporality: Temporality,
    /// Exemplars to attach to their histogram's points.
    pub(crate) exemplars: Option<Arc<Exemplars>>,
}

impl std::fmt::Debug for OtlpMetricExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtlpMetricExporter")
    }
}

/// One collection, sent until accepted, rejected, or out of time.
async fn deliver(
    transport: Arc<Transport>,
    paused_until: Arc<Mutex<Option<Instant>>>,
    stats: Arc<Counters>,
    body: bytes::Bytes,
    points: u64,
    timeout: Duration,
) -> OTelSdkResult {
    use std::sync::atomic::Ordering::Relaxed;
    let deadline = Instant::now() + timeout;
    let gate = Arc::new(RetryGate::default());
    let paused = *paused_until.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = paused {
        gate.hold_until(t);
    }
    let mut last = String::from("the collector's pause outlasts the export timeout");
    while let Some(permit) = gate.acquire(Some(deadline)).await {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let outcome = tokio::time::timeout(left, transport.send(&body, left))
            .await
            .unwrap_or_else(|_| Outcome::Retry {
                after: None,
                error: format!("metric export timed out after {timeout:?}"),
            });
        if let Outcome::Retry {
            after: Some(pause), ..
        } = &outcome
        {
            let until = Instant::now() + *pause;
            let mut p = paused_until.lock().unwrap_or_else(|e| e.into_inner());
            *p = Some(p.map_or(until, |t| t.max(until)));
        }
        permit.settle(&outcome);
        match outcome {
            Outcome::Accepted { rejected, message } => {
                let rejected = rejected.min(points);
                stats
                    .metric_points_exported
                    .fetch_add(points - rejected, Relaxed);
                if rejected > 0 {
                    let why = message.as_deref().unwrap_or("no message");
                    stats.add_metric_points_rejected_partial(rejected, why);
                } else if let Some(m) = message {
                    stats.warn_collector_message(&m);
                }
                return Ok(());
            }
            Outcome::Rejected { error } => {
                stats.add_metric_points_rejected(points, &error);
                return Err(OTelSdkError::InternalFailure(error));
            }
            Outcome::Retry { error, .. } | Outcome::Failed { error } => last = error,
        }
    }
    stats.add_metric_export_failure(&last);
    Err(OTelSdkError::InternalFailure(last))
}

impl PushMetricExporter for OtlpMetricExporter {
    fn export(&self, metrics: &ResourceMetrics) -> impl Future<Output = OTelSdkResult> + Send {
        let (encoded, points) = encode::metrics(metrics, self.exemplars.as_deref());
        let body = self.transport.prepare(encoded);
        // The periodic reader polls this on its own thread: the request runs
        // on flowtel's runtime, where tonic's and reqwest's I/O lives.
        let task = self.handle.spawn(deliver(
            self.transport.clone(),
            self.paused_until.clone(),
            self.stats.clone(),
            body,
            points,
            self.timeout,
        ));
        async move {
            task.await
                .unwrap_or_else(|e| Err(OTelSdkError::InternalFailure(e.to_string())))
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        self.temporality
    }
}
