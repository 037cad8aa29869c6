//! Where the export loops send span batches: an OTLP collector (encoded
//! once, resent as often as the collector asks) or a local sink (console,
//! memory, callback: one call, no retry).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::record::SpanRecord;

use super::encode::{self, SpanResource};
use super::outcome::Outcome;
use super::transport::Transport;

/// A destination for span batches.
pub(crate) trait SpanSink: Send + Sync + 'static {
    /// A batch made ready to send; kept while its export is retried.
    type Batch: Send + Sync + 'static;
    /// Whether a request that timed out is worth sending again.
    const RETRIES: bool;

    /// Make a batch ready to send (OTLP: encode and compress it, once),
    /// taking the spans out of `spans` (whose room the caller reuses).
    fn prepare(&self, spans: &mut Vec<SpanRecord>) -> Self::Batch;

    /// Send it once and say what happened. `timeout` bounds the request.
    fn send<'a>(
        &'a self,
        batch: &'a mut Self::Batch,
        timeout: Duration,
    ) -> impl Future<Output = Outcome> + Send + 'a;
}

/// Span batches to an OTLP collector.
#[derive(Clone)]
pub(crate) struct OtlpSpans {
    pub(crate) transport: Arc<Transport>,
    pub(crate) resource: Arc<SpanResource>,
}

impl SpanSink for OtlpSpans {
    type Batch = Bytes;
    const RETRIES: bool = true;

    fn prepare(&self, spans: &mut Vec<SpanRecord>) -> Bytes {
        let encoded = encode::spans(spans, &self.resource);
        spans.clear();
        self.transport.prepare(encoded)
    }

    fn send<'a>(
        &'a self,
        batch: &'a mut Bytes,
        timeout: Duration,
    ) -> impl Future<Output = Outcome> + Send + 'a {
        self.transport.send(batch, timeout)
    }
}

/// Span batches to one of the SDK-style exporters (console, memory,
/// callback): handed over once, never retried.
pub(crate) struct Local<E>(pub(crate) E);

impl<E: SpanExporter + Sync + 'static> SpanSink for Local<E> {
    type Batch = Vec<SpanData>;
    const RETRIES: bool = false;

    fn prepare(&self, spans: &mut Vec<SpanRecord>) -> Vec<SpanData> {
        spans.drain(..).map(SpanRecord::into_span_data).collect()
    }

    fn send<'a>(
        &'a self,
        batch: &'a mut Vec<SpanData>,
        _timeout: Duration,
    ) -> impl Future<Output = Outcome> + Send + 'a {
        let export = self.0.export(std::mem::take(batch));
        async move {
            match export.await {
                Ok(()) => Outcome::OK,
                Err(e) => Outcome::Failed {
                    error: e.to_string(),
                },
            }
        }
    }
}
