//! `tracing` spans through flowtel's own pipeline (the `tracing` feature).
//!
//! [`Flowtel::tracer`] is an OpenTelemetry SDK tracer whose only span
//! processor hands each finished span to the pipeline's bounded span
//! buffer, the same one the mapping fills: same resource, endpoint, batching,
//! drop accounting (`flowtel.sdk.spans.dropped`) and shutdown.
//! [`Flowtel::tracing_layer`] is `tracing-opentelemetry`'s layer over that
//! tracer, with context activation on: a `tracing` span whose parent is no
//! other `tracing` span takes the current OpenTelemetry context as parent,
//! which [`Attempt::within`](crate::Attempt::within) and
//! [`Attempt::enter`](crate::Attempt::enter) set to the attempt's span.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, Span, SpanData, SpanProcessor};
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::filter::{filter_fn, FilterFn, Filtered};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer as _;

use crate::pipeline::{Flowtel, WeakFlowtel, DROP_FLUSH_TIMEOUT};

/// Instrumentation scope of the spans made through [`Flowtel::tracer`].
const SCOPE: &str = "flowtel.tracing";

/// The span processor: finished spans into the pipeline's buffer. Holds
/// the pipeline weakly, so a process-wide `tracing` subscriber does not
/// keep it alive (dropping the last [`Flowtel`] still flushes and stops it).
struct ToPipeline(WeakFlowtel);

impl std::fmt::Debug for ToPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ToPipeline")
    }
}

impl SpanProcessor for ToPipeline {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        // Gone: the pipeline was dropped, as after shutdown.
        if let Some(flowtel) = self.0.upgrade() {
            flowtel.offer_span(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        match self.0.upgrade() {
            Some(f) => f
                .flush(DROP_FLUSH_TIMEOUT)
                .map_err(|e| OTelSdkError::InternalFailure(e.to_string())),
            None => Err(OTelSdkError::AlreadyShutdown),
        }
    }

    /// The pipeline shuts down with [`Flowtel::shutdown`], not with the
    /// tracer provider.
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

impl Flowtel {
    /// An OpenTelemetry tracer whose spans are exported by this pipeline
    /// (to build a `tracing-opentelemetry` layer of your own, or to create
    /// spans with the OpenTelemetry API). A span started in an attempt's
    /// [`context`](crate::Attempt::context) is a child of the attempt.
    ///
    /// ```
    /// use opentelemetry::trace::{Span as _, Tracer as _};
    /// # let sink = flowtel::InMemory::new();
    /// # let flowtel = flowtel::Flowtel::builder().with_in_memory(&sink).build().unwrap();
    /// let tracer = flowtel.tracer();
    /// let attempt = flowtel.start_attempt("3e512c5b0a184257a25c215d19544e6a", "lookup", 0);
    /// let mut span = tracer.start_with_context("cache get", &attempt.context());
    /// span.end();
    /// let attempt_id = attempt.span_id();
    /// attempt.success();
    /// # flowtel.shutdown(std::time::Duration::from_secs(5)).unwrap();
    /// # let spans = sink.spans();
    /// # let child = spans.iter().find(|s| s.name == "cache get").unwrap();
    /// # assert_eq!(child.parent_span_id, attempt_id);
    /// ```
    pub fn tracer(&self) -> SdkTracer {
        SdkTracerProvider::builder()
            .with_span_processor(ToPipeline(self.downgrade()))
            .build()
            .tracer_with_scope(
                InstrumentationScope::builder(SCOPE)
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
            )
    }

    /// A `tracing` layer whose spans are exported by this pipeline. Inside
    /// an attempt ([`Attempt::within`](crate::Attempt::within) or
    /// [`Attempt::enter`](crate::Attempt::enter)), `tracing` spans are
    /// children of the attempt's span, with the run's trace id, on any
    /// executor or thread.
    ///
    /// ```
    /// use tracing_subscriber::layer::SubscriberExt;
    /// # let sink = flowtel::InMemory::new();
    /// # let flowtel = flowtel::Flowtel::builder().with_in_memory(&sink).build().unwrap();
    /// let subscriber = tracing_subscriber::registry().with(flowtel.tracing_layer());
    /// // Usually: tracing::subscriber::set_global_default(subscriber)
    /// tracing::subscriber::with_default(subscriber, || {
    ///     let attempt = flowtel.start_attempt("3e512c5b0a184257a25c215d19544e6a", "parse", 0);
    ///     {
    ///         let _in = attempt.enter();
    ///         tracing::info_span!("tokenize").in_scope(|| { /* ... */ });
    ///     }
    ///     attempt.success();
    /// });
    /// # flowtel.shutdown(std::time::Duration::from_secs(5)).unwrap();
    /// # assert!(sink.spans().iter().any(|s| s.name == "tokenize"));
    /// ```
    ///
    /// The layer leaves out spans opened on flowtel's own export threads
    /// (the HTTP and gRPC stacks instrument with `tracing`; exporting their
    /// spans would open more, without end). A layer of your own built on
    /// [`tracer`](Flowtel::tracer) should filter the same way: the
    /// OpenTelemetry SDK suppresses spans whose parent context is
    /// suppressed, but `tracing-opentelemetry` gives explicit root spans
    /// (h2's `Connection`) a fresh context.
    pub fn tracing_layer<S>(&self) -> Filtered<OpenTelemetryLayer<S, SdkTracer>, FilterFn, S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer())
            .with_context_activation(true)
            .with_filter(filter_fn(not_on_export_threads))
    }
}

/// False on the threads where telemetry is suppressed: flowtel's export
/// threads (and OpenTelemetry SDK threads).
fn not_on_export_threads(_: &tracing::Metadata<'_>) -> bool {
    !Context::is_current_telemetry_suppressed()
}
