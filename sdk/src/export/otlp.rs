//! OTLP exporters (gRPC and HTTP/protobuf), with headers and TLS.

use std::collections::HashMap;

use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};

use crate::config::{Config, Protocol};
use crate::error::BuildError;

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
