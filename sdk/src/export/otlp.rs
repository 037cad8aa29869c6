//! Builds the OTLP transports (gRPC or HTTP/protobuf) from the resolved
//! configuration: endpoint, headers, compression, timeout and TLS.

use std::sync::Arc;

use opentelemetry_sdk::Resource;
use tokio::runtime::Handle;

use super::encode::SpanResource;
use super::grpc_transport::{metadata, GrpcTransport};
use super::http_transport::{error_chain, header_map, HttpTransport};
use super::otlp_metrics::OtlpMetricExporter;
use super::sink::OtlpSpans;
use super::transport::{Signal, Transport};
use crate::error::BuildError;
use crate::stats::Counters;

/// OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// OTLP/gRPC through tonic (default port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318).
    HttpProtobuf,
}

/// One signal's OTLP settings, resolved from code, environment and
/// defaults by the configuration layer: all the export layer knows of the
/// configuration.
#[derive(Clone, Debug)]
pub(crate) struct OtlpSettings {
    pub(crate) protocol: Protocol,
    /// Full URL (HTTP: including `/v1/<signal>`).
    pub(crate) endpoint: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) gzip: bool,
    pub(crate) timeout: std::time::Duration,
    /// Extra CA certificates (PEM) to trust.
    pub(crate) ca: Option<Vec<u8>>,
    pub(crate) https: bool,
}

const USER_AGENT: &str = concat!("flowtel-otlp-exporter-rust/", env!("CARGO_PKG_VERSION"));

fn exporter_error(what: &str, e: &dyn std::error::Error) -> BuildError {
    BuildError::Exporter(format!("OTLP {what}: {}", error_chain(e)))
}

/// rustls needs one crypto provider per process; flowtel brings ring (and
/// keeps any provider the application installed first).
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// tonic's TLS settings: system roots plus the configured CA, when the
/// endpoint is `https://` or a CA is given.
fn grpc_tls(ca: Option<Vec<u8>>, https: bool) -> Option<tonic::transport::ClientTlsConfig> {
    if ca.is_none() && !https {
        return None;
    }
    let mut tls = tonic::transport::ClientTlsConfig::new().with_enabled_roots();
    if let Some(pem) = ca {
        tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
    }
    Some(tls)
}

/// The HTTP client for OTLP/HTTP: rustls with system roots plus the
/// configured CA. (Timeouts are set per request.)
fn http_client(ca: Option<Vec<u8>>) -> Result<reqwest::Client, BuildError> {
    let mut b = reqwest::Client::builder().user_agent(USER_AGENT);
    if let Some(pem) = ca {
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
    b.build().map_err(|e| exporter_error("HTTP client", &e))
}

/// The transport of one signal. Call inside the export runtime: tonic
/// starts its (lazy) connection task there.
pub(crate) fn transport(s: &OtlpSettings, signal: Signal) -> Result<Transport, BuildError> {
    install_crypto_provider();
    let env = signal.env();
    let OtlpSettings {
        protocol,
        endpoint,
        headers,
        gzip,
        timeout,
        ca,
        https,
    } = s.clone();
    let bad_endpoint = |problem: String| BuildError::InvalidConfig {
        setting: format!("{} endpoint `{endpoint}`", env.to_ascii_lowercase()),
        problem,
    };
    Ok(match protocol {
        Protocol::HttpProtobuf => {
            reqwest::Url::parse(&endpoint).map_err(|e| bad_endpoint(e.to_string()))?;
            let client = http_client(ca)?;
            Transport::Http(HttpTransport::new(
                client,
                endpoint.clone(),
                header_map(&headers)?,
                gzip,
                signal,
            ))
        }
        Protocol::Grpc => {
            let metadata = metadata(&headers)?;
            let mut ep = tonic::transport::Endpoint::from_shared(endpoint.clone())
                .map_err(|e| bad_endpoint(error_chain(&e)))?
                .timeout(timeout)
                .connect_timeout(timeout)
                .user_agent(USER_AGENT)
                .map_err(|e| exporter_error("gRPC user agent", &e))?;
            if let Some(tls) = grpc_tls(ca, https) {
                ep = ep
                    .tls_config(tls)
                    .map_err(|e| exporter_error("gRPC TLS", &e))?;
            }
            Transport::Grpc(GrpcTransport::new(
                ep.connect_lazy(),
                metadata,
                gzip,
                signal,
            ))
        }
    })
}

/// The span sink the OTLP export loops share (one transport, one gate).
pub(crate) fn otlp_spans(s: &OtlpSettings, resource: &Resource) -> Result<OtlpSpans, BuildError> {
    Ok(OtlpSpans {
        transport: Arc::new(transport(s, Signal::Traces)?),
        resource: Arc::new(SpanResource::new(resource)),
    })
}

/// The OTLP metric exporter: its requests run on `handle` (flowtel's
/// runtime), with retries bounded by the export timeout.
pub(crate) fn otlp_metric_exporter(
    s: &OtlpSettings,
    temporality: opentelemetry_sdk::metrics::Temporality,
    handle: &Handle,
    stats: &Arc<Counters>,
    exemplars: Option<Arc<crate::exemplars::Exemplars>>,
) -> Result<OtlpMetricExporter, BuildError> {
    Ok(OtlpMetricExporter {
        transport: Arc::new(transport(s, Signal::Metrics)?),
        paused_until: Arc::default(),
        handle: handle.clone(),
        stats: stats.clone(),
        timeout: s.timeout,
        temporality,
        exemplars,
    })
}
