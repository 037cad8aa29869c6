//! Console exporters and the span callback.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::memory::{flatten, PointValue};

/// Hands span batches to a user function.
/// A function that receives finished span batches (see
/// [`FlowtelBuilder::with_span_callback`]).
pub(crate) type SpanCallback = Arc<dyn Fn(Vec<SpanData>) + Send + Sync>;

pub(crate) struct CallbackSpanExporter(pub(crate) SpanCallback);

impl std::fmt::Debug for CallbackSpanExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackSpanExporter")
    }
}

impl SpanExporter for CallbackSpanExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        (self.0)(batch);
        std::future::ready(Ok(()))
    }
}

/// Prints spans and metrics to standard output, one line each.
#[derive(Debug, Default)]
pub(crate) struct ConsoleSpanExporter;

fn fmt_attr_list(kvs: &[opentelemetry::KeyValue]) -> String {
    let mut s = String::new();
    for kv in kvs {
        let _ = write!(s, " {}={}", kv.key, kv.value);
    }
    s
}

impl SpanExporter for ConsoleSpanExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let mut out = String::new();
        for s in &batch {
            let start = s
                .start_time
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            let dur = s
                .end_time
                .duration_since(s.start_time)
                .unwrap_or_default()
                .as_secs_f64()
                * 1000.0;
            let status = match &s.status {
                opentelemetry::trace::Status::Error { description } => {
                    format!(" ERROR({description})")
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "span trace={} span={} parent={} name={:?} start={start:.6} duration_ms={dur:.3}{status}{}",
                s.span_context.trace_id(),
                s.span_context.span_id(),
                s.parent_span_id,
                s.name,
                fmt_attr_list(&s.attributes),
            );
            for e in &s.events.events {
                let _ = writeln!(out, "  event {}{}", e.name, fmt_attr_list(&e.attributes));
            }
        }
        print!("{out}");
        std::future::ready(Ok(()))
    }
}

/// Prints every metric point of each collection to standard output.
#[derive(Debug, Default)]
pub(crate) struct ConsoleMetricExporter;

impl PushMetricExporter for ConsoleMetricExporter {
    fn export(&self, metrics: &ResourceMetrics) -> impl Future<Output = OTelSdkResult> + Send {
        let mut out = String::new();
        for p in flatten(metrics) {
            let a: Vec<String> = p
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let v = match p.value {
                PointValue::Sum(v) | PointValue::Gauge(v) => format!("{v}"),
                PointValue::Histogram { count, sum } => format!("count={count} sum={sum}"),
            };
            let _ = writeln!(out, "metric {}{{{}}} {v}", p.name, a.join(","));
        }
        print!("{out}");
        std::future::ready(Ok(()))
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
