//! Configuration: the builder, the environment variables it honours, and the
//! resolution order (code, then environment, then defaults).

use std::env;
use std::sync::Arc;
use std::time::Duration;

use crate::error::BuildError;
use opentelemetry_sdk::trace::SpanData;

use crate::export::InMemory;

/// OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// OTLP/gRPC through tonic (default port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318).
    HttpProtobuf,
}

impl Protocol {
    fn parse(var: &str, value: &str) -> Result<Self, BuildError> {
        match value.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            other => Err(BuildError::InvalidConfig {
                setting: var.to_string(),
                problem: format!("unsupported protocol `{other}` (use `grpc` or `http/protobuf`)"),
            }),
        }
    }
}

/// A function that receives finished span batches (see
/// [`FlowtelBuilder::with_span_callback`]).
pub(crate) type SpanCallback = Arc<dyn Fn(Vec<SpanData>) + Send + Sync>;

/// Where telemetry goes.
#[derive(Clone)]
pub(crate) enum Target {
    Otlp,
    Console,
    InMemory(InMemory),
    Callback(SpanCallback),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Otlp => f.write_str("Otlp"),
            Target::Console => f.write_str("Console"),
            Target::InMemory(_) => f.write_str("InMemory"),
            Target::Callback(_) => f.write_str("Callback"),
        }
    }
}

/// Everything the pipeline needs, resolved.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) target: Option<Target>,
    pub(crate) endpoint: Option<String>,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) export_timeout: Option<Duration>,
    pub(crate) service_name: Option<String>,
    pub(crate) flow_name: Option<String>,
    pub(crate) metric_interval: Option<Duration>,
    pub(crate) queue_capacity: usize,
    pub(crate) max_buffered_spans: usize,
    pub(crate) max_export_batch: usize,
    pub(crate) span_schedule_delay: Duration,
    pub(crate) run_idle_timeout: Duration,
    pub(crate) max_attempt_age: Duration,
    pub(crate) max_open_runs: usize,
    pub(crate) state_budget: usize,
    pub(crate) partial_runs: bool,
    pub(crate) max_series: usize,
    pub(crate) max_root_events: usize,
    pub(crate) cardinality_limit: usize,
    pub(crate) tenant_metrics: bool,
    pub(crate) metric_extra_keys: Vec<String>,
    pub(crate) max_attribute_len: usize,
    pub(crate) backpressure: bool,
    pub(crate) span_extra_keys: Vec<String>,
    pub(crate) ca_pem: Option<Vec<u8>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            target: None,
            endpoint: None,
            protocol: None,
            headers: Vec::new(),
            export_timeout: None,
            service_name: None,
            flow_name: None,
            metric_interval: None,
            queue_capacity: 16_384,
            max_buffered_spans: 24_576,
            max_export_batch: 2048,
            span_schedule_delay: Duration::from_millis(500),
            run_idle_timeout: Duration::from_secs(30),
            max_attempt_age: Duration::from_secs(3600),
            max_open_runs: 10_000,
            state_budget: 100_000,
            partial_runs: false,
            max_series: 2_000,
            max_root_events: 256,
            cardinality_limit: 1_000,
            tenant_metrics: false,
            metric_extra_keys: Vec::new(),
            max_attribute_len: 256,
            backpressure: false,
            span_extra_keys: Vec::new(),
            ca_pem: None,
        }
    }
}

/// The word that makes `key` look like a secret, if any: a segment of the
/// key (split at non-alphanumerics and camelCase) from a deny list. The deny
/// list wins over every allow-list.
pub(crate) fn secret_word(key: &str) -> Option<&'static str> {
    const DENY: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "auth",
        "authorization",
        "cookie",
        "credential",
        "credentials",
        "apikey",
        "session",
        "jwt",
        "bearer",
        "private",
    ];
    let mut spaced = String::with_capacity(key.len() + 4);
    for (i, c) in key.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            spaced.push(' ');
        }
        spaced.extend(c.to_lowercase());
    }
    let joined: String = spaced.chars().filter(|c| c.is_alphanumeric()).collect();
    if joined.contains("apikey") || joined.contains("accesskey") {
        return Some("api key");
    }
    spaced
        .split(|c: char| !c.is_alphanumeric())
        .find_map(|seg| DENY.iter().find(|d| **d == seg).copied())
}

/// Is an OTLP endpoint configured anywhere (code or environment)?
fn env_endpoint_set() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    ]
    .iter()
    .any(|v| env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

impl Config {
    /// The target after applying the defaults: OTLP when an endpoint is set in
    /// code or in the environment, the console otherwise.
    pub(crate) fn resolved_target(&self) -> Target {
        match &self.target {
            Some(t) => t.clone(),
            None if self.endpoint.is_some() || env_endpoint_set() => Target::Otlp,
            None => Target::Console,
        }
    }

    /// The protocol for one signal (`TRACES` or `METRICS`): code, then
    /// `OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`, then `OTEL_EXPORTER_OTLP_PROTOCOL`,
    /// then gRPC.
    pub(crate) fn protocol_for(&self, signal: &str) -> Result<Protocol, BuildError> {
        if let Some(p) = self.protocol {
            return Ok(p);
        }
        let specific = format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL");
        for var in [specific.as_str(), "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let Ok(v) = env::var(var) {
                if !v.trim().is_empty() {
                    return Protocol::parse(var, &v);
                }
            }
        }
        Ok(Protocol::Grpc)
    }

    /// The first non-empty of the per-signal then the general variable.
    fn env_for(signal: &str, suffix: &str) -> Option<(String, String)> {
        [
            format!("OTEL_EXPORTER_OTLP_{signal}_{suffix}"),
            format!("OTEL_EXPORTER_OTLP_{suffix}"),
        ]
        .into_iter()
        .find_map(|var| {
            env::var(&var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| (var, v))
        })
    }

    /// The CA certificate(s) to trust for one signal, PEM: code, then the
    /// file named by `OTEL_EXPORTER_OTLP_<SIGNAL>_CERTIFICATE` or
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`.
    pub(crate) fn ca_for(&self, signal: &str) -> Result<Option<Vec<u8>>, BuildError> {
        if let Some(pem) = &self.ca_pem {
            return Ok(Some(pem.clone()));
        }
        match Self::env_for(signal, "CERTIFICATE") {
            Some((var, path)) => {
                std::fs::read(path.trim())
                    .map(Some)
                    .map_err(|e| BuildError::InvalidConfig {
                        setting: var,
                        problem: format!("cannot read CA certificate file `{path}`: {e}"),
                    })
            }
            None => Ok(None),
        }
    }

    /// Export request timeout for one signal: code, then
    /// `OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT` / `OTEL_EXPORTER_OTLP_TIMEOUT`
    /// (milliseconds), then 10 s.
    pub(crate) fn timeout_for(&self, signal: &str) -> Result<Duration, BuildError> {
        if let Some(t) = self.export_timeout {
            return Ok(t);
        }
        match Self::env_for(signal, "TIMEOUT") {
            Some((var, v)) => v
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| BuildError::InvalidConfig {
                    setting: var,
                    problem: format!("`{v}` is not a number of milliseconds"),
                }),
            None => Ok(Duration::from_secs(10)),
        }
    }

    /// Whether the endpoint of one signal uses TLS (`https://`).
    pub(crate) fn is_https(&self, signal: &str) -> bool {
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| Self::env_for(signal, "ENDPOINT").map(|(_, v)| v));
        endpoint.is_some_and(|e| e.trim().to_ascii_lowercase().starts_with("https://"))
    }

    pub(crate) fn flow_name(&self) -> String {
        self.flow_name
            .clone()
            .unwrap_or_else(|| flowtel_semconv::span::DEFAULT_FLOW_NAME.to_string())
    }

    /// The settings the span mapping reads, and only those.
    pub(crate) fn mapping(&self) -> crate::mapping::MappingConfig {
        crate::mapping::MappingConfig {
            flow_name: self.flow_name(),
            run_idle_timeout: self.run_idle_timeout,
            max_attempt_age: self.max_attempt_age,
            max_open_runs: self.max_open_runs,
            state_budget: self.state_budget,
            max_root_events: self.max_root_events,
            max_attr_len: self.max_attribute_len,
            span_extra_keys: self.span_extra_keys.clone(),
            partial_runs: self.partial_runs,
        }
    }
}

/// Builds a [`Flowtel`](crate::Flowtel) pipeline.
///
/// Settings made here win over the standard OpenTelemetry environment
/// variables, which win over the defaults (see the crate docs for the table).
///
/// ```
/// use std::time::Duration;
/// let flowtel = flowtel::Flowtel::builder()
///     .with_service_name("checkout-worker")
///     .with_flow_name("checkout")
///     .with_console()
///     .build()
///     .unwrap();
/// flowtel.shutdown(Duration::from_secs(5)).unwrap();
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct FlowtelBuilder {
    pub(crate) config: Config,
}

impl FlowtelBuilder {
    /// Export over OTLP to `endpoint`: for gRPC `http://host:4317`, for
    /// HTTP the base URL `http://host:4318` (`/v1/traces` and `/v1/metrics`
    /// are appended). Overrides `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.config.endpoint = Some(endpoint.into());
        self.config.target = Some(Target::Otlp);
        self
    }

    /// OTLP transport; overrides `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.config.protocol = Some(protocol);
        self
    }

    /// Add a header (gRPC metadata) to every export request, e.g. an API key.
    /// Added to those of `OTEL_EXPORTER_OTLP_HEADERS`.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.headers.push((key.into(), value.into()));
        self
    }

    /// Trust these CA certificates (PEM) for a TLS (`https://`) endpoint,
    /// in addition to the system's; overrides `OTEL_EXPORTER_OTLP_CERTIFICATE`
    /// (a file). For collectors behind a private CA.
    pub fn with_ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.config.ca_pem = Some(pem.into());
        self
    }

    /// Timeout of one export request; overrides `OTEL_EXPORTER_OTLP_TIMEOUT`.
    pub fn with_export_timeout(mut self, timeout: Duration) -> Self {
        self.config.export_timeout = Some(timeout);
        self
    }

    /// Print spans and metrics to standard output instead of exporting.
    pub fn with_console(mut self) -> Self {
        self.config.target = Some(Target::Console);
        self
    }

    /// Keep everything in memory, for tests (see [`InMemory`]).
    pub fn with_in_memory(mut self, sink: &InMemory) -> Self {
        self.config.target = Some(Target::InMemory(sink.clone()));
        self
    }

    /// Hand every batch of finished spans to `f`, on flowtel's export
    /// thread, instead of exporting them; metrics are not exported. For
    /// custom sinks and local views (the `flowtel` command's terminal
    /// waterfall is built this way).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let names = Arc::new(Mutex::new(Vec::new()));
    /// let sink = names.clone();
    /// let flowtel = flowtel::Flowtel::builder()
    ///     .with_span_callback(move |spans| {
    ///         sink.lock().unwrap().extend(spans.into_iter().map(|s| s.name.to_string()))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// flowtel.shutdown(std::time::Duration::from_secs(5)).unwrap();
    /// ```
    pub fn with_span_callback(mut self, f: impl Fn(Vec<SpanData>) + Send + Sync + 'static) -> Self {
        self.config.target = Some(Target::Callback(Arc::new(f)));
        self
    }

    /// `service.name` of the resource; overrides `OTEL_SERVICE_NAME`.
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.config.service_name = Some(name.into());
        self
    }

    /// Name of the flow: the root span's name and `flow.name` (default `flow`).
    pub fn with_flow_name(mut self, name: impl Into<String>) -> Self {
        self.config.flow_name = Some(name.into());
        self
    }

    /// Metric export interval; overrides `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s).
    pub fn with_metric_interval(mut self, interval: Duration) -> Self {
        self.config.metric_interval = Some(interval);
        self
    }

    /// Capacity of the queue between `record()` and the mapping thread
    /// (default 16 384 events). A full queue drops the event and counts it.
    pub fn with_queue_capacity(mut self, events: usize) -> Self {
        self.config.queue_capacity = events.max(1);
        self
    }

    /// Spans kept while the collector is slow or down (default 24 576). Beyond
    /// this, new spans are dropped and counted.
    pub fn with_max_buffered_spans(mut self, spans: usize) -> Self {
        self.config.max_buffered_spans = spans.max(1);
        self
    }

    /// When the span buffer is full, make the mapping thread wait for the
    /// exporter instead of dropping spans; the event queue then fills up and
    /// [`Flowtel::record_wait`](crate::Flowtel::record_wait) waits too. For
    /// bridges and log replays that must lose nothing and can slow down; a
    /// flow runtime should keep the default (drop and count), so that a slow
    /// collector never slows the flow. An exporter that makes no progress
    /// for 60 s is given up on (spans dropped and counted).
    pub fn with_backpressure(mut self, enabled: bool) -> Self {
        self.config.backpressure = enabled;
        self
    }

    /// A run's root span is ended and exported once no event of that run has
    /// arrived for this long (default 30 s). See also
    /// [`Flowtel::end_run`](crate::Flowtel::end_run).
    pub fn with_run_idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.run_idle_timeout = timeout;
        self
    }

    /// Open runs tracked at once (default 10 000); the least recently active
    /// runs are ended early (a tenth at a time) when a new one would exceed
    /// this, and counted in `flowtel.sdk.state.shed`.
    pub fn with_max_open_runs(mut self, runs: usize) -> Self {
        self.config.max_open_runs = runs.max(1);
        self
    }

    /// How long an attempt may stay open (started, no terminal event) before
    /// it is given up: exported as `incomplete` and counted in
    /// `flowtel.sdk.state.shed` (default 1 h). A run with an attempt open
    /// younger than this is never ended for being idle, so a node that
    /// runs for minutes keeps its run whole.
    pub fn with_max_attempt_age(mut self, age: Duration) -> Self {
        self.config.max_attempt_age = age;
        self
    }

    /// One budget over all the mapping's state (default 100 000 units: each
    /// open run, each node of a run and each open attempt is one unit, about
    /// 200 bytes). Beyond it the least recently active runs are ended early
    /// and counted in `flowtel.sdk.state.shed`.
    pub fn with_state_budget(mut self, units: usize) -> Self {
        self.config.state_budget = units.max(16);
        self
    }

    /// This pipeline sees only part of its runs (one of several processes
    /// or bridges fed by one flow): instead of each run's root span it
    /// exports a *partial run span*, with an id of its own, as a child of
    /// the root, holding the run events it saw. Exactly one pipeline per run
    /// should keep the default (`false`) and own the root; see the crate docs.
    pub fn with_partial_runs(mut self, enabled: bool) -> Self {
        self.config.partial_runs = enabled;
        self
    }

    /// Distinct attribute sets (series) each flowtel metric may have
    /// (default 2 000, the OTel SDK's default). Further sets are recorded
    /// under `otel.metric.overflow=true` and counted in
    /// `flowtel.sdk.cardinality.overflow`; the SDK's own limit is sized
    /// above this so that it never overflows silently.
    pub fn with_max_series_per_metric(mut self, series: usize) -> Self {
        self.config.max_series = series.max(1);
        self
    }

    /// Distinct values each bounded metric attribute may take (default 1 000);
    /// later values are recorded as `_overflow` and counted.
    pub fn with_cardinality_limit(mut self, values: usize) -> Self {
        self.config.cardinality_limit = values.max(1);
        self
    }

    /// Add `flow.tenant` (from `extra.tenant`) to metric points. Off by
    /// default: only enable it when the tenant set is small.
    pub fn with_tenant_metrics(mut self, enabled: bool) -> Self {
        self.config.tenant_metrics = enabled;
        self
    }

    /// Allow an `extra` key's scalar values onto metric points (bounded by the
    /// cardinality limit). Nothing from `extra` reaches metrics otherwise.
    pub fn with_metric_extra_key(mut self, key: impl Into<String>) -> Self {
        self.config.metric_extra_keys.push(key.into());
        self
    }

    /// Copy an `extra` key's scalar values onto node attempt spans as
    /// `flow.extra.<key>` (strings truncated to `with_max_attribute_len`).
    /// Nothing from `extra` is exported otherwise. Keys that look like
    /// secrets (`password`, `token`, `api_key`, `cookie`, ...) are refused at
    /// build time, here and in
    /// [`with_metric_extra_key`](FlowtelBuilder::with_metric_extra_key).
    pub fn with_span_extra_key(mut self, key: impl Into<String>) -> Self {
        self.config.span_extra_keys.push(key.into());
        self
    }

    /// Longest string attribute taken from event data (exception and error
    /// messages), in bytes (default 256).
    pub fn with_max_attribute_len(mut self, bytes: usize) -> Self {
        self.config.max_attribute_len = bytes;
        self
    }

    /// Most spans per export request (default 2048). Up to four requests
    /// are in flight at once.
    pub fn with_max_export_batch(mut self, spans: usize) -> Self {
        self.config.max_export_batch = spans.max(1);
        self
    }

    /// Build the pipeline: starts its mapping thread and, for OTLP, its own
    /// export runtime. Works from plain sync code and from inside any tokio
    /// runtime.
    pub fn build(self) -> Result<crate::Flowtel, BuildError> {
        let keys = self.config.span_extra_keys.iter();
        for key in keys.chain(&self.config.metric_extra_keys) {
            if let Some(word) = secret_word(key) {
                return Err(BuildError::InvalidConfig {
                    setting: format!("extra key `{key}`"),
                    problem: format!(
                        "looks like a secret (`{word}`); flowtel never exports such keys"
                    ),
                });
            }
        }
        crate::pipeline::Flowtel::start(self.config)
    }
}

/// Compression of OTLP request bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    /// Bodies as they are.
    None,
    /// gzip (HTTP `Content-Encoding: gzip`, gRPC `grpc-encoding: gzip`).
    Gzip,
}

/// Where each OTLP signal goes and how: resolved from code, then the
/// environment, then the defaults (the table in the crate docs).
impl Config {
    /// The endpoint of one signal (`TRACES` or `METRICS`). For HTTP the full
    /// URL: the code's endpoint plus `/v1/<path>`, else
    /// `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT` as it is, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` plus `/v1/<path>`, else
    /// `http://localhost:4318/v1/<path>`. For gRPC the same without paths,
    /// defaulting to `http://localhost:4317`.
    pub(crate) fn endpoint_for(&self, signal: &str, protocol: Protocol) -> String {
        let path = format!("v1/{}", signal.to_ascii_lowercase());
        let join = |base: &str| format!("{}/{path}", base.trim().trim_end_matches('/'));
        let specific = format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT");
        let from_env = |var: &str| env::var(var).ok().filter(|v| !v.trim().is_empty());
        match protocol {
            Protocol::Grpc => self
                .endpoint
                .clone()
                .or_else(|| from_env(&specific))
                .or_else(|| from_env("OTEL_EXPORTER_OTLP_ENDPOINT"))
                .unwrap_or_else(|| "http://localhost:4317".into())
                .trim()
                .to_string(),
            Protocol::HttpProtobuf => match (&self.endpoint, from_env(&specific)) {
                (Some(base), _) => join(base),
                (None, Some(url)) => url.trim().to_string(),
                (None, None) => join(
                    &from_env("OTEL_EXPORTER_OTLP_ENDPOINT")
                        .unwrap_or_else(|| "http://localhost:4318".into()),
                ),
            },
        }
    }

    /// The headers of every request of one signal:
    /// `OTEL_EXPORTER_OTLP_<SIGNAL>_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS`
    /// (`key=value,...`, values percent-decoded), then those set in code, which
    /// win on the same name.
    pub(crate) fn headers_for(&self, signal: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Self::env_for(signal, "HEADERS")
            .map(|(_, v)| parse_headers(&v))
            .unwrap_or_default();
        for (k, v) in &self.headers {
            out.retain(|(ek, _)| !ek.eq_ignore_ascii_case(k));
            out.push((k.clone(), v.clone()));
        }
        out
    }

    /// Compression of one signal: `OTEL_EXPORTER_OTLP_<SIGNAL>_COMPRESSION`,
    /// else `OTEL_EXPORTER_OTLP_COMPRESSION` (`gzip` or `none`), else none.
    pub(crate) fn compression_for(&self, signal: &str) -> Result<Compression, BuildError> {
        match Self::env_for(signal, "COMPRESSION") {
            None => Ok(Compression::None),
            Some((var, v)) => match v.trim().to_ascii_lowercase().as_str() {
                "gzip" => Ok(Compression::Gzip),
                "none" => Ok(Compression::None),
                other => Err(BuildError::InvalidConfig {
                    setting: var,
                    problem: format!("unsupported compression `{other}` (use `gzip` or `none`)"),
                }),
            },
        }
    }

    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`: `cumulative`
    /// (default), `delta` or `lowmemory`.
    pub(crate) fn metric_temporality(
        &self,
    ) -> Result<opentelemetry_sdk::metrics::Temporality, BuildError> {
        use opentelemetry_sdk::metrics::Temporality;
        let var = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
        match env::var(var).ok().filter(|v| !v.trim().is_empty()) {
            None => Ok(Temporality::Cumulative),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "cumulative" => Ok(Temporality::Cumulative),
                "delta" => Ok(Temporality::Delta),
                "lowmemory" => Ok(Temporality::LowMemory),
                other => Err(BuildError::InvalidConfig {
                    setting: var.into(),
                    problem: format!(
                        "unknown temporality `{other}` (use `cumulative`, `delta` or `lowmemory`)"
                    ),
                }),
            },
        }
    }
}

/// `key=value,key2=value2` with percent-encoded values (the OTel
/// environment variable format); entries without `=` or with an empty key
/// are skipped.
fn parse_headers(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), percent_decode(v.trim())))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod otlp_env_tests {
    use super::*;

    #[test]
    fn header_lists_are_parsed_and_percent_decoded() {
        assert_eq!(
            parse_headers("authorization=Bearer%20s3cr3t, x-tenant=acme,broken,=x,k=a%2Cb"),
            [
                ("authorization".to_string(), "Bearer s3cr3t".to_string()),
                ("x-tenant".to_string(), "acme".to_string()),
                ("k".to_string(), "a,b".to_string()),
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%e2%9c%93"), "✓");
    }

    #[test]
    fn code_endpoints_get_signal_paths_for_http_only() {
        let c = Config {
            endpoint: Some("http://collector:4318/".into()),
            ..Config::default()
        };
        assert_eq!(
            c.endpoint_for("TRACES", Protocol::HttpProtobuf),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            c.endpoint_for("METRICS", Protocol::HttpProtobuf),
            "http://collector:4318/v1/metrics"
        );
        assert_eq!(
            c.endpoint_for("TRACES", Protocol::Grpc),
            "http://collector:4318/"
        );
    }

    #[test]
    fn code_headers_win_over_the_environment_on_the_same_name() {
        let c = Config {
            headers: vec![("X-Key".into(), "code".into())],
            ..Config::default()
        };
        let h = c.headers_for("TRACES");
        let keys: Vec<_> = h
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("x-key"))
            .collect();
        assert_eq!(keys, [&("X-Key".to_string(), "code".to_string())]);
    }
}
