//! Configuration: the builder, the environment variables it honours, and the
//! resolution order (code, then environment, then defaults).

use std::env;
use std::time::Duration;

use crate::error::BuildError;

use crate::export::{InMemory, OtlpSettings, Protocol, SpanCallback};

mod exporters;

pub use exporters::Exporter;
pub(crate) use exporters::{MetricsTo, SpansTo};

/// A protocol named in an environment variable.
fn parse_protocol(var: &str, value: &str) -> Result<Protocol, BuildError> {
    match value.trim() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        other => Err(BuildError::InvalidConfig {
            setting: var.to_string(),
            problem: format!("unsupported protocol `{other}` (use `grpc` or `http/protobuf`)"),
        }),
    }
}

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
    pub(crate) run_end_nodes: Vec<String>,
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// Chosen in code: where spans go (see `exporters.rs`).
    pub(crate) traces_exporter: Option<Exporter>,
    /// Chosen in code: where metrics go; empty for none.
    pub(crate) metrics_exporters: Option<Vec<Exporter>>,
    /// The Prometheus endpoint's `host:port`, set in code.
    pub(crate) prometheus_address: Option<String>,
    /// The bearer token the Prometheus endpoint asks for, set in code.
    pub(crate) prometheus_token: Option<crate::privacy::Secret>,
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
            run_end_nodes: Vec::new(),
            ca_pem: None,
            traces_exporter: None,
            metrics_exporters: None,
            prometheus_address: None,
            prometheus_token: None,
        }
    }
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
                    return parse_protocol(var, &v);
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

    /// One signal's OTLP settings (`TRACES` or `METRICS`), resolved: the
    /// export layer's whole view of the configuration.
    pub(crate) fn otlp(&self, signal: &str) -> Result<OtlpSettings, BuildError> {
        let protocol = self.protocol_for(signal)?;
        Ok(OtlpSettings {
            protocol,
            endpoint: self.endpoint_for(signal, protocol),
            headers: self.headers_for(signal),
            gzip: self.compression_for(signal)? == Compression::Gzip,
            timeout: self.timeout_for(signal)?,
            ca: self.ca_for(signal)?,
            https: self.is_https(signal),
        })
    }

    /// The settings the metric mapping reads, and only those.
    pub(crate) fn metrics(&self) -> crate::metrics::MetricsConfig {
        crate::metrics::MetricsConfig {
            cardinality_limit: self.cardinality_limit,
            max_series: self.max_series,
            tenant_metrics: self.tenant_metrics,
            metric_extra_keys: self.metric_extra_keys.clone(),
        }
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
            run_end_nodes: self.run_end_nodes.clone(),
        }
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
