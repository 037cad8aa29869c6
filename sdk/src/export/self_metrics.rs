//! The export path's own self-metrics: what the collector refused.
//!
//! Rejected spans are a reason of `flowtel.sdk.spans.dropped`, the counter
//! the mapping's self-metrics already register (`metrics.rs`): registering
//! the same instrument again (same name, kind, unit and description) makes
//! the SDK feed both callbacks into one metric. The test below fails if the
//! two registrations ever drift apart and would export two metrics.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use flowtel_semconv::{attr, metric, reason, unit};
use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;

use crate::stats::Counters;

/// Must equal the description `metrics.rs` gives `flowtel.sdk.spans.dropped`.
const SPANS_DROPPED_DESCRIPTION: &str = "Spans dropped before export, by reason";

/// Register the rejection counters on `meter`.
pub(crate) fn register(meter: &Meter, stats: &Arc<Counters>) {
    let s = stats.clone();
    meter
        .u64_observable_counter(metric::SDK_SPANS_DROPPED)
        .with_unit(unit::SPANS)
        .with_description(SPANS_DROPPED_DESCRIPTION)
        .with_callback(move |o| {
            for (r, v) in [
                (reason::REJECTED, &s.spans_rejected),
                (reason::REJECTED_PARTIAL, &s.spans_rejected_partial),
            ] {
                o.observe(v.load(Relaxed), &[KeyValue::new(attr::DROP_REASON, r)]);
            }
        })
        .build();
    let s = stats.clone();
    meter
        .u64_observable_counter(metric::SDK_METRIC_POINTS_DROPPED)
        .with_unit(unit::DATA_POINTS)
        .with_description("Metric data points the collector refused, by reason")
        .with_callback(move |o| {
            for (r, v) in [
                (reason::REJECTED, &s.metric_points_rejected),
                (reason::REJECTED_PARTIAL, &s.metric_points_rejected_partial),
            ] {
                o.observe(v.load(Relaxed), &[KeyValue::new(attr::DROP_REASON, r)]);
            }
        })
        .build();
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    use super::*;
    use crate::config::Config;
    use crate::metrics::FlowMetrics;

    #[test]
    fn rejections_are_reasons_of_the_one_spans_dropped_metric() {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let meter = provider.meter("test");
        let stats = Arc::new(Counters::default());
        let _mapping = FlowMetrics::new(&meter, &Config::default(), stats.clone());
        register(&meter, &stats);
        stats.spans_dropped.fetch_add(1, Relaxed);
        stats.add_spans_rejected(2, "HTTP 400");
        stats.add_spans_rejected_partial(3, "too old");
        stats.add_metric_points_rejected(4, "HTTP 400");
        provider.force_flush().unwrap();

        let finished = exporter.get_finished_metrics().unwrap();
        let rm = finished.last().unwrap();
        let named = |name: &str| {
            rm.scope_metrics()
                .flat_map(|s| s.metrics())
                .filter(|m| m.name() == name)
                .collect::<Vec<_>>()
        };
        let dropped = named(metric::SDK_SPANS_DROPPED);
        assert_eq!(dropped.len(), 1, "one metric, not two streams");
        let AggregatedMetrics::U64(MetricData::Sum(sum)) = dropped[0].data() else {
            panic!("a u64 sum");
        };
        let mut by_reason: Vec<(String, u64)> = sum
            .data_points()
            .map(|p| {
                let r = p
                    .attributes()
                    .find(|kv| kv.key.as_str() == attr::DROP_REASON);
                (
                    r.map(|kv| kv.value.to_string()).unwrap_or_default(),
                    p.value(),
                )
            })
            .collect();
        by_reason.sort();
        assert_eq!(
            by_reason,
            [
                (reason::BUFFER_FULL.to_string(), 1),
                (reason::EVENT_LIMIT.to_string(), 0),
                (reason::REJECTED.to_string(), 2),
                (reason::REJECTED_PARTIAL.to_string(), 3),
            ]
        );
        assert_eq!(named(metric::SDK_METRIC_POINTS_DROPPED).len(), 1);
    }
}
