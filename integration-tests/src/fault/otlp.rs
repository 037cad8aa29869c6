//! OTLP bodies for the fault receiver: decode requests with
//! opentelemetry-proto's own types, encode responses and error statuses.

use std::io::Read;

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;

use super::{Answer, Reply, Request, Signal, Transport};

/// Undo `Content-Encoding: gzip` / a compressed gRPC frame.
pub(super) fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .expect("gzip body");
    out
}

fn data_points(m: &ExportMetricsServiceRequest) -> u64 {
    let mut n = 0;
    for rm in &m.resource_metrics {
        for sm in &rm.scope_metrics {
            for metric in &sm.metrics {
                n += match &metric.data {
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(s)) => s.data_points.len(),
                    Some(Data::Histogram(h)) => h.data_points.len(),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                    Some(Data::Summary(s)) => s.data_points.len(),
                    None => 0,
                } as u64;
            }
        }
    }
    n
}

fn spans(t: &ExportTraceServiceRequest) -> u64 {
    t.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}

/// Hex span ids of a decoded traces request.
pub(super) fn span_ids(t: Option<&ExportTraceServiceRequest>) -> Vec<String> {
    t.into_iter()
        .flat_map(|t| &t.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.span_id.iter().map(|b| format!("{b:02x}")).collect())
        .collect()
}

/// A request record from its decoded (uncompressed) body; the answer is
/// filled in by the caller.
pub(super) fn decode(
    signal: Signal,
    transport: Transport,
    headers: Vec<(String, String)>,
    gzip: bool,
    body: &[u8],
) -> Request {
    let mut r = Request {
        at: std::time::Instant::now(),
        wall: std::time::SystemTime::now(),
        signal,
        transport,
        headers,
        gzip,
        items: 0,
        traces: None,
        metrics: None,
        answered: Answer::Ok,
    };
    match signal {
        Signal::Traces => {
            let t = ExportTraceServiceRequest::decode(body).expect("an OTLP traces request");
            r.items = spans(&t);
            r.traces = Some(t);
        }
        Signal::Metrics => {
            let m = ExportMetricsServiceRequest::decode(body).expect("an OTLP metrics request");
            r.items = data_points(&m);
            r.metrics = Some(m);
        }
    }
    r
}

/// The protobuf response body of an accepted request (with its partial
/// success, if scripted).
pub(super) fn response(signal: Signal, reply: &Reply) -> Vec<u8> {
    let (rejected, message) = match &reply.answer {
        Answer::Partial { rejected, message } => (*rejected, message.clone()),
        _ => return Vec::new(),
    };
    match signal {
        Signal::Traces => ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: message,
            }),
        }
        .encode_to_vec(),
        Signal::Metrics => ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message: message,
            }),
        }
        .encode_to_vec(),
    }
}

/// A `google.rpc.Status` body for an HTTP error answer.
pub(super) fn rpc_status(code: i32, message: &str) -> Vec<u8> {
    tonic_types::pb::Status {
        code,
        message: message.to_string(),
        details: Vec::new(),
    }
    .encode_to_vec()
}
