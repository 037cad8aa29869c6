//! The duration histogram's exemplars, added to an encoded-to-be OTLP
//! metrics request: the SDK's data points carry none (opentelemetry-rust
//! records no exemplars), so each `HistogramDataPoint` of that histogram
//! gets, per bucket, the latest attempt flowtel kept for its series
//! (see `crate::exemplars`), if it was recorded within the point's time
//! window (a delta point only gets exemplars of its own interval).

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::exemplar::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::Exemplar;

use crate::exemplars::{canonical, Exemplars};

/// An attribute value as the SDK's `Value::as_str` writes it.
fn text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

/// Add the exemplars of `table` to its histogram's points in `request`.
pub(crate) fn attach(request: &mut ExportMetricsServiceRequest, table: &Exemplars) {
    let metrics = request
        .resource_metrics
        .iter_mut()
        .flat_map(|r| &mut r.scope_metrics)
        .flat_map(|s| &mut s.metrics)
        .filter(|m| m.name == table.metric());
    for m in metrics {
        let Some(Data::Histogram(h)) = &mut m.data else {
            continue;
        };
        for p in &mut h.data_points {
            let key = canonical(p.attributes.iter().map(|kv| (kv.key.as_str(), text(kv))));
            let Some(buckets) = table.for_series(&key) else {
                continue;
            };
            let window = p.start_time_unix_nano..=p.time_unix_nano;
            p.exemplars.extend(
                buckets
                    .into_iter()
                    .flatten()
                    .filter(|e| window.contains(&e.time_ns))
                    .map(|e| Exemplar {
                        filtered_attributes: Vec::new(),
                        time_unix_nano: e.time_ns,
                        span_id: e.span_id.to_bytes().to_vec(),
                        trace_id: e.trace_id.to_bytes().to_vec(),
                        value: Some(Value::AsDouble(e.value)),
                    }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry::KeyValue as SdkKeyValue;
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    use super::*;

    /// A real SDK collection of one histogram with two series, one of
    /// which has an exemplar.
    #[test]
    fn each_point_gets_the_exemplars_of_its_own_series() {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let h = provider
            .meter("t")
            .f64_histogram("d")
            .with_boundaries(vec![0.1, 1.0])
            .build();
        let fetch = [SdkKeyValue::new("node", "fetch")];
        let other = [SdkKeyValue::new("node", "other")];
        let table = Exemplars::new("d", &[0.1, 1.0]);
        let ctx = (TraceId::from_bytes([7; 16]), SpanId::from_bytes([9; 8]));
        h.record(0.5, &fetch);
        table.record(1, &fetch, 0.5, ctx);
        h.record(0.5, &other);
        provider.force_flush().unwrap();

        let finished = exporter.get_finished_metrics().unwrap();
        let mut request = ExportMetricsServiceRequest::from(finished.last().unwrap());
        attach(&mut request, &table);
        let Some(Data::Histogram(got)) =
            &request.resource_metrics[0].scope_metrics[0].metrics[0].data
        else {
            panic!("a histogram");
        };
        assert_eq!(got.data_points.len(), 2);
        for p in &got.data_points {
            match text(&p.attributes[0]).as_str() {
                "fetch" => {
                    assert_eq!(p.exemplars.len(), 1, "{p:?}");
                    let e = &p.exemplars[0];
                    assert_eq!(e.trace_id, vec![7; 16]);
                    assert_eq!(e.span_id, vec![9; 8]);
                    assert_eq!(e.value, Some(Value::AsDouble(0.5)));
                    assert!(e.filtered_attributes.is_empty());
                }
                _ => assert!(p.exemplars.is_empty(), "{p:?}"),
            }
            assert!(
                p.attributes.iter().all(|kv| kv.key == "node"),
                "ids never become attributes: {p:?}"
            );
        }
    }
}
