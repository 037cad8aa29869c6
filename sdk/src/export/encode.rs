//! Encode once: a span batch or a metric collection becomes OTLP protobuf
//! bytes here (spans written straight from the SDK's data, metrics through
//! opentelemetry-proto's conversions), and those bytes are what every
//! attempt sends.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use prost::Message;

use crate::exemplars::Exemplars;
use crate::record::SpanRecord;

pub(crate) use super::span_proto::SpanResource;

/// An `ExportTraceServiceRequest` with the batch (written straight from
/// the spans: see `span_proto/`).
pub(crate) fn spans(batch: &[SpanRecord], resource: &SpanResource) -> Vec<u8> {
    super::span_proto::encode(batch, resource)
}

/// An `ExportMetricsServiceRequest` with the collection (and the
/// exemplars of `exemplars`' histogram), and its number of data points.
pub(crate) fn metrics(rm: &ResourceMetrics, exemplars: Option<&Exemplars>) -> (Vec<u8>, u64) {
    let mut request = ExportMetricsServiceRequest::from(rm);
    if let Some(table) = exemplars {
        super::otlp_exemplars::attach(&mut request, table);
    }
    let mut points = 0;
    for m in request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        points += match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        } as u64;
    }
    (request.encode_to_vec(), points)
}
