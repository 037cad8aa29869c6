//! flowtel's own metrics (`flowtel.sdk.*`): every count of [`Counters`]
//! that says what was dropped, shed, rejected or exported, observed at
//! collection time. One registration per metric, all reasons in it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use flowtel_semconv::{attr, metric, reason, unit};
use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;

use crate::stats::Counters;

/// The `flowtel.sdk.*` counters, observed from the shared atomics.
pub(crate) fn register(meter: &Meter, stats: &Arc<Counters>) {
    let s = stats.clone();
    meter
        .u64_observable_counter(metric::SDK_EVENTS_DROPPED)
        .with_unit(unit::EVENTS)
        .with_description("FlowEvents that did not become telemetry, by reason")
        .with_callback(move |o| {
            for (r, v) in [
                (reason::QUEUE_FULL, &s.events_dropped_queue_full),
                (reason::INVALID, &s.events_invalid),
                (reason::SHUTDOWN, &s.events_after_shutdown),
                (reason::DUPLICATE, &s.events_duplicate),
            ] {
                o.observe(v.load(Relaxed), &[KeyValue::new(attr::DROP_REASON, r)]);
            }
        })
        .build();
    let s = stats.clone();
    meter
        .u64_observable_counter(metric::SDK_SPANS_DROPPED)
        .with_unit(unit::SPANS)
        .with_description("Spans dropped before export, by reason")
        .with_callback(move |o| {
            o.observe(
                s.spans_dropped.load(Relaxed),
                &[KeyValue::new(attr::DROP_REASON, reason::BUFFER_FULL)],
            );
            o.observe(
                s.root_events_dropped.load(Relaxed),
                &[KeyValue::new(attr::DROP_REASON, reason::EVENT_LIMIT)],
            );
            o.observe(
                s.spans_rejected.load(Relaxed),
                &[KeyValue::new(attr::DROP_REASON, reason::REJECTED)],
            );
            o.observe(
                s.spans_rejected_partial.load(Relaxed),
                &[KeyValue::new(attr::DROP_REASON, reason::REJECTED_PARTIAL)],
            );
        })
        .build();
    let s = stats.clone();
    meter
        .u64_observable_counter(metric::SDK_STATE_SHED)
        .with_description("Mapping state shed to stay within its budget, by reason")
        .with_callback(move |o| {
            o.observe(
                s.runs_shed.load(Relaxed),
                &[KeyValue::new(attr::DROP_REASON, reason::STATE_BUDGET)],
            );
            o.observe(
                s.attempts_given_up.load(Relaxed),
                &[KeyValue::new(attr::DROP_REASON, reason::STALE_ATTEMPT)],
            );
        })
        .build();
    let s = stats.clone();
    meter
        .u64_observable_counter(metric::SDK_SPANS_EXPORTED)
        .with_unit(unit::SPANS)
        .with_description("Spans acknowledged by the exporter")
        .with_callback(move |o| o.observe(s.spans_exported.load(Relaxed), &[]))
        .build();
    let s = stats.clone();
    meter
        .u64_observable_counter(metric::SDK_EXPORT_FAILURES)
        .with_unit(unit::REQUESTS)
        .with_description("Failed span export requests (retried while buffered)")
        .with_callback(move |o| o.observe(s.export_failures.load(Relaxed), &[]))
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

    #[test]
    fn every_drop_reason_is_a_point_of_one_spans_dropped_metric() {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let meter = provider.meter("test");
        let stats = Arc::new(Counters::default());
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
