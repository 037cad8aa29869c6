//! Exporters: OTLP (gRPC and HTTP/protobuf), console, and in-memory.
//!
//! The OTLP exporters run on a small tokio runtime that flowtel owns, so the
//! caller needs no runtime of its own and its runtime flavour does not
//! matter: tonic's "no reactor running" panic and the current-thread flush
//! deadlock of opentelemetry-rust cannot happen here.

mod console;
mod memory;
mod metric_export;
mod otlp;

pub(crate) use console::{CallbackSpanExporter, ConsoleMetricExporter, ConsoleSpanExporter};
pub use memory::{InMemory, MetricPoint, PointValue};
pub(crate) use metric_export::MetricExport;
pub(crate) use otlp::{otlp_metric_exporter, otlp_span_exporter};
