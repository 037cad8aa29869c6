//! Exporters: OTLP (gRPC and HTTP/protobuf), console, and in-memory.
//!
//! The OTLP exporters run on a small tokio runtime that flowtel owns, so the
//! caller needs no runtime of its own and its runtime flavour does not
//! matter: tonic's "no reactor running" panic and the current-thread flush
//! deadlock of opentelemetry-rust cannot happen here.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::Value;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, Temporality};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::runtime::Handle;

use crate::config::{Config, Protocol};
use crate::error::BuildError;
use crate::stats::Counters;

/// Telemetry kept in memory, for tests: pass it to
/// [`FlowtelBuilder::with_in_memory`](crate::FlowtelBuilder::with_in_memory),
/// record, flush, then look at what was exported.
///
/// ```
/// use std::time::Duration;
/// use flowtel::{Flowtel, FlowEvent, InMemory};
/// let sink = InMemory::new();
/// let flowtel = Flowtel::builder().with_in_memory(&sink).build().unwrap();
/// flowtel.record(FlowEvent::builder("node_success", 1_700_000_000.0)
///     .node("a", "a-1").trace_id("3e512c5b0a184257a25c215d19544e6a")
///     .latency_ms(5.0).build().unwrap()).unwrap();
/// flowtel.shutdown(Duration::from_secs(5)).unwrap();
/// assert_eq!(sink.spans().len(), 2); // the attempt and its run's root
/// assert!(sink.metric_points().iter().any(|p| p.name == "flow.node.duration"));
/// ```
#[derive(Clone, Debug)]
pub struct InMemory {
    pub(crate) spans: MemorySpans,
    pub(crate) metrics: InMemoryMetricExporter,
}

/// The span half of [`InMemory`]. (The SDK's own in-memory span exporter
/// forgets everything on shutdown, which is exactly when tests look.)
#[derive(Clone, Debug, Default)]
pub(crate) struct MemorySpans(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for MemorySpans {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(batch);
        std::future::ready(Ok(()))
    }
}

impl Default for InMemory {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemory {
    /// An empty sink.
    pub fn new() -> Self {
        InMemory {
            spans: MemorySpans::default(),
            metrics: InMemoryMetricExporter::default(),
        }
    }

    /// Every span exported so far.
    pub fn spans(&self) -> Vec<SpanData> {
        self.spans
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forget everything exported so far (for long benchmarks and soaks).
    pub fn clear(&self) {
        self.spans
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.metrics.reset();
    }

    /// The metric points of the latest export (cumulative totals).
    pub fn metric_points(&self) -> Vec<MetricPoint> {
        self.metrics
            .get_finished_metrics()
            .unwrap_or_default()
            .last()
            .map(flatten)
            .unwrap_or_default()
    }
}

/// One metric data point, flattened for assertions and console output.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MetricPoint {
    /// Metric name.
    pub name: String,
    /// Attributes, sorted by key, values rendered as strings.
    pub attributes: Vec<(String, String)>,
    /// The value.
    pub value: PointValue,
}

impl MetricPoint {
    /// The value of attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The value of a [`MetricPoint`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PointValue {
    /// Counter or UpDownCounter total.
    Sum(f64),
    /// Last gauge value.
    Gauge(f64),
    /// Histogram count and sum.
    Histogram {
        /// Number of observations.
        count: u64,
        /// Sum of observations.
        sum: f64,
    },
}

fn value_str(v: &Value) -> String {
    v.as_str().into_owned()
}

fn attrs<'a>(it: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = it
        .map(|kv| (kv.key.to_string(), value_str(&kv.value)))
        .collect();
    v.sort();
    v
}

fn flatten_data<T: Copy>(
    name: &str,
    data: &MetricData<T>,
    to_f64: fn(T) -> f64,
    out: &mut Vec<MetricPoint>,
) {
    let point = |attributes, value| MetricPoint {
        name: name.to_string(),
        attributes,
        value,
    };
    match data {
        MetricData::Gauge(g) => {
            for p in g.data_points() {
                out.push(point(
                    attrs(p.attributes()),
                    PointValue::Gauge(to_f64(p.value())),
                ));
            }
        }
        MetricData::Sum(s) => {
            for p in s.data_points() {
                out.push(point(
                    attrs(p.attributes()),
                    PointValue::Sum(to_f64(p.value())),
                ));
            }
        }
        MetricData::Histogram(h) => {
            for p in h.data_points() {
                let value = PointValue::Histogram {
                    count: p.count(),
                    sum: to_f64(p.sum()),
                };
                out.push(point(attrs(p.attributes()), value));
            }
        }
        MetricData::ExponentialHistogram(h) => {
            for p in h.data_points() {
                let value = PointValue::Histogram {
                    count: p.count() as u64,
                    sum: to_f64(p.sum()),
                };
                out.push(point(attrs(p.attributes()), value));
            }
        }
    }
}

/// Every data point of one export, flattened. Integer values become f64
/// (exact below 2^53, plenty for assertions and console output).
pub(crate) fn flatten(rm: &ResourceMetrics) -> Vec<MetricPoint> {
    let mut out = Vec::new();
    for sm in rm.scope_metrics() {
        for m in sm.metrics() {
            match m.data() {
                AggregatedMetrics::F64(d) => flatten_data(m.name(), d, |v| v, &mut out),
                AggregatedMetrics::U64(d) => flatten_data(m.name(), d, |v| v as f64, &mut out),
                AggregatedMetrics::I64(d) => flatten_data(m.name(), d, |v| v as f64, &mut out),
            }
        }
    }
    out
}

/// Hands span batches to a user function.
pub(crate) struct CallbackSpanExporter(pub(crate) crate::config::SpanCallback);

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

fn exporter_error(e: impl std::fmt::Display) -> BuildError {
    BuildError::Exporter(e.to_string())
}

fn metadata(headers: &[(String, String)]) -> Result<tonic::metadata::MetadataMap, BuildError> {
    let mut map = tonic::metadata::MetadataMap::new();
    for (k, v) in headers {
        let key = tonic::metadata::AsciiMetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|_| BuildError::InvalidConfig {
                setting: format!("header `{k}`"),
                problem: "not a valid header name".into(),
            })?;
        let value = v.parse().map_err(|_| BuildError::InvalidConfig {
            setting: format!("header `{k}`"),
            problem: "value is not valid ASCII header text".into(),
        })?;
        map.insert(key, value);
    }
    Ok(map)
}

fn http_url(base: &str, path: &str) -> String {
    format!("{}/{path}", base.trim_end_matches('/'))
}

/// rustls needs one crypto provider per process; flowtel brings ring (and
/// keeps any provider the application installed first).
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// tonic's TLS settings: system roots plus the configured CA, when the
/// endpoint is `https://` or a CA is given.
fn grpc_tls(
    config: &Config,
    signal: &str,
) -> Result<Option<tonic::transport::ClientTlsConfig>, BuildError> {
    let ca = config.ca_for(signal)?;
    if ca.is_none() && !config.is_https(signal) {
        return Ok(None);
    }
    let mut tls = tonic::transport::ClientTlsConfig::new().with_enabled_roots();
    if let Some(pem) = ca {
        tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
    }
    Ok(Some(tls))
}

/// The HTTP client for OTLP/HTTP: rustls with system roots plus the
/// configured CA, and the export timeout.
fn http_client(config: &Config, signal: &str) -> Result<reqwest::Client, BuildError> {
    let mut b = reqwest::Client::builder().timeout(config.timeout_for(signal)?);
    if let Some(pem) = config.ca_for(signal)? {
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| BuildError::InvalidConfig {
                setting: "CA certificate".into(),
                problem: format!("not PEM certificates: {e}"),
            })?;
        if certs.is_empty() {
            return Err(BuildError::InvalidConfig {
                setting: "CA certificate".into(),
                problem: "no certificate in the PEM data".into(),
            });
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(exporter_error)
}

/// Endpoint, headers, timeout and TLS for a gRPC exporter of either signal.
fn grpc_settings<B: WithTonicConfig + WithExportConfig>(
    b: B,
    config: &Config,
    signal: &str,
) -> Result<B, BuildError> {
    let mut b = b
        .with_metadata(metadata(&config.headers)?)
        .with_timeout(config.timeout_for(signal)?);
    if let Some(ep) = &config.endpoint {
        b = b.with_endpoint(ep.clone());
    }
    if let Some(tls) = grpc_tls(config, signal)? {
        b = b.with_tls_config(tls);
    }
    Ok(b)
}

/// Endpoint (`<base>/v1/<path>`), headers, client (timeout, TLS) for an
/// HTTP/protobuf exporter of either signal.
fn http_settings<B: WithHttpConfig + WithExportConfig>(
    b: B,
    config: &Config,
    signal: &str,
    path: &str,
) -> Result<B, BuildError> {
    let mut b = b
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(http_client(config, signal)?)
        .with_headers(config.headers.iter().cloned().collect::<HashMap<_, _>>());
    if let Some(ep) = &config.endpoint {
        b = b.with_endpoint(http_url(ep, path));
    }
    Ok(b)
}

/// The OTLP span exporter for the configured protocol. Must be called inside
/// the export runtime (tonic spawns its connection task there).
pub(crate) fn otlp_span_exporter(
    config: &Config,
) -> Result<opentelemetry_otlp::SpanExporter, BuildError> {
    install_crypto_provider();
    let b = opentelemetry_otlp::SpanExporter::builder();
    match config.protocol_for("TRACES")? {
        Protocol::Grpc => grpc_settings(b.with_tonic(), config, "TRACES")?.build(),
        Protocol::HttpProtobuf => {
            http_settings(b.with_http(), config, "TRACES", "v1/traces")?.build()
        }
    }
    .map_err(exporter_error)
}

/// The OTLP metric exporter for the configured protocol.
pub(crate) fn otlp_metric_exporter(
    config: &Config,
) -> Result<opentelemetry_otlp::MetricExporter, BuildError> {
    install_crypto_provider();
    let b = opentelemetry_otlp::MetricExporter::builder();
    match config.protocol_for("METRICS")? {
        Protocol::Grpc => grpc_settings(b.with_tonic(), config, "METRICS")?.build(),
        Protocol::HttpProtobuf => {
            http_settings(b.with_http(), config, "METRICS", "v1/metrics")?.build()
        }
    }
    .map_err(exporter_error)
}
