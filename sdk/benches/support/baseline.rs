//! The hand-written opentelemetry-rust baseline: what a runtime author
//! would write instead of flowtel for one node attempt. One span with
//! explicit start and end through `SpanBuilder` into a batch span processor
//! (with an exporter that does nothing), and three metric updates with two
//! attributes each (a counter, a histogram, an up-down counter).

use std::time::{Duration, SystemTime};

use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _, UpDownCounter};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};

#[derive(Debug)]
struct NoExport;

impl SpanExporter for NoExport {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

/// The providers and instruments, built once.
pub(crate) struct Baseline {
    tracer: SdkTracer,
    events: Counter<u64>,
    duration: Histogram<f64>,
    active: UpDownCounter<i64>,
    tracers: SdkTracerProvider,
    meters: SdkMeterProvider,
}

impl Baseline {
    pub(crate) fn new() -> Self {
        let tracers = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(NoExport).build())
            .build();
        // A reader that never fires during the bench: metrics are recorded
        // (the SDK skips instruments without a reader), never exported.
        let reader = PeriodicReader::builder(InMemoryMetricExporter::default())
            .with_interval(Duration::from_secs(3600))
            .build();
        let meters = SdkMeterProvider::builder().with_reader(reader).build();
        let meter = meters.meter("baseline");
        Baseline {
            tracer: tracers.tracer("baseline"),
            events: meter.u64_counter("flow.events").build(),
            duration: meter.f64_histogram("flow.node.duration").build(),
            active: meter.i64_up_down_counter("flow.node.active").build(),
            tracers,
            meters,
        }
    }

    /// One attempt's worth of telemetry, by hand.
    pub(crate) fn attempt(&self, node: &'static str) {
        let end = SystemTime::now();
        let start = end - Duration::from_micros(12_500);
        let mut span = self
            .tracer
            .span_builder(node)
            .with_start_time(start)
            .with_attributes([
                KeyValue::new("flow.node.name", node),
                KeyValue::new("flow.node.outcome", "success"),
            ])
            .start(&self.tracer);
        span.end_with_timestamp(end);
        let attrs = [
            KeyValue::new("flow.node.name", node),
            KeyValue::new("flow.node.outcome", "success"),
        ];
        self.events.add(1, &attrs);
        self.duration.record(0.0125, &attrs);
        self.active.add(-1, &attrs);
    }

    pub(crate) fn shutdown(self) {
        let _ = self.tracers.shutdown();
        let _ = self.meters.shutdown();
    }
}
