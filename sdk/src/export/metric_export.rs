//! The wrapper every metric exporter goes through.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use tokio::runtime::Handle;

use crate::stats::Counters;

/// Every metric exporter goes through this: it counts the exported data
/// points, and runs the exporter's futures inside flowtel's runtime,
/// although the SDK's periodic reader polls them on its own plain thread.
pub(crate) struct MetricExport<E> {
    pub(crate) inner: E,
    pub(crate) handle: Handle,
    pub(crate) stats: Arc<Counters>,
}

fn count_points(rm: &ResourceMetrics) -> u64 {
    let mut n = 0;
    for sm in rm.scope_metrics() {
        for m in sm.metrics() {
            n += match m.data() {
                AggregatedMetrics::F64(d) => points_in(d),
                AggregatedMetrics::U64(d) => points_in(d),
                AggregatedMetrics::I64(d) => points_in(d),
            };
        }
    }
    n
}

fn points_in<T>(d: &MetricData<T>) -> u64 {
    (match d {
        MetricData::Gauge(g) => g.data_points().count(),
        MetricData::Sum(s) => s.data_points().count(),
        MetricData::Histogram(h) => h.data_points().count(),
        MetricData::ExponentialHistogram(h) => h.data_points().count(),
    }) as u64
}

impl<E: PushMetricExporter> PushMetricExporter for MetricExport<E> {
    fn export(&self, metrics: &ResourceMetrics) -> impl Future<Output = OTelSdkResult> + Send {
        let handle = self.handle.clone();
        let stats = self.stats.clone();
        let points = count_points(metrics);
        let mut fut: Pin<Box<_>> = Box::pin(self.inner.export(metrics));
        std::future::poll_fn(move |cx| {
            let _enter = handle.enter();
            let r = fut.as_mut().poll(cx);
            if let std::task::Poll::Ready(Ok(())) = &r {
                stats
                    .metric_points_exported
                    .fetch_add(points, std::sync::atomic::Ordering::Relaxed);
            }
            r
        })
    }
    fn force_flush(&self) -> OTelSdkResult {
        let _enter = self.handle.enter();
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _enter = self.handle.enter();
        self.inner.shutdown_with_timeout(timeout)
    }
    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
