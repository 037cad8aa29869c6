//! Exporters: OTLP (gRPC and HTTP/protobuf) through flowtel's own transport,
//! a Prometheus scrape endpoint (`prometheus/`), console, and in-memory.
//!
//! The OTLP transport runs on a small tokio runtime that flowtel owns, so the
//! caller needs no runtime of its own and its runtime flavour does not
//! matter: tonic's "no reactor running" panic and the current-thread flush
//! deadlock of opentelemetry-rust cannot happen here. Why flowtel sends OTLP
//! itself rather than through opentelemetry-otlp is written down in
//! `transport.rs`.

mod console;
mod encode;
mod grpc_transport;
mod http_transport;
mod memory;
mod metric_export;
mod otlp;
mod otlp_exemplars;
mod otlp_metrics;
mod outcome;
mod prometheus;
mod retry_gate;
mod sink;
mod span_proto;
mod transport;

pub(crate) use console::{
    CallbackSpanExporter, ConsoleMetricExporter, ConsoleSpanExporter, SpanCallback,
};
pub use memory::{InMemory, MetricPoint, PointValue};
pub(crate) use metric_export::MetricExport;
pub use otlp::Protocol;
pub(crate) use otlp::{otlp_metric_exporter, otlp_spans, OtlpSettings};
pub(crate) use outcome::Outcome;
pub(crate) use prometheus::{start as start_prometheus, PrometheusSettings};
pub(crate) use retry_gate::RetryGate;
pub(crate) use sink::{Local, SpanSink};
#[cfg(feature = "bench-stages")]
pub(crate) use {
    encode::{spans as encode_spans, SpanResource},
    sink::OtlpSpans,
};
