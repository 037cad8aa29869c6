//! OTLP/HTTP with protobuf bodies, over reqwest (rustls).

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};

use super::outcome::{classify_http, parse_retry_after, partial, Outcome};
use super::transport::{clean_message, Signal};
use crate::error::BuildError;

const PROTOBUF: &str = "application/x-protobuf";
/// Responses are small; a collector that sends more is not read further.
const MAX_RESPONSE: usize = 64 * 1024;

pub(crate) struct HttpTransport {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    gzip: bool,
    signal: Signal,
}

/// Headers from configuration, checked: a bad name or value is a build
/// error naming the header.
pub(crate) fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, BuildError> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let bad = |problem: &str| BuildError::InvalidConfig {
            setting: format!("header `{k}`"),
            problem: problem.into(),
        };
        let name =
            HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad("not a valid header name"))?;
        let value = HeaderValue::from_str(v).map_err(|_| bad("value is not valid header text"))?;
        map.insert(name, value);
    }
    Ok(map)
}

impl HttpTransport {
    pub(crate) fn new(
        client: reqwest::Client,
        url: String,
        headers: HeaderMap,
        gzip: bool,
        signal: Signal,
    ) -> Self {
        HttpTransport {
            client,
            url,
            headers,
            gzip,
            signal,
        }
    }

    pub(super) fn prepare(&self, encoded: Vec<u8>) -> Bytes {
        if !self.gzip {
            return Bytes::from(encoded);
        }
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(encoded.len() / 4),
            flate2::Compression::default(),
        );
        // Writing to a Vec cannot fail.
        let _ = gz.write_all(&encoded);
        Bytes::from(gz.finish().unwrap_or_default())
    }

    pub(super) async fn send(&self, body: &Bytes, timeout: Duration) -> Outcome {
        let mut request = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, PROTOBUF)
            .timeout(timeout)
            .body(body.clone());
        if self.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    error: format!("POST {}: {}", self.url, error_chain(&e)),
                }
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let protobuf = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(PROTOBUF));
        let mut bytes = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_RESPONSE {
                break;
            }
        }
        if status.is_success() {
            return self.accepted(&bytes);
        }
        let message = error_message(&bytes, protobuf);
        let error = match message.is_empty() {
            true => format!("HTTP {status}"),
            false => format!("HTTP {status}: {message}"),
        };
        classify_http(status.as_u16(), retry_after, error)
    }

    /// A 2xx: accepted, perhaps in part. A body that is not a valid
    /// response (some proxies answer 200 with text) counts as full success.
    fn accepted(&self, body: &[u8]) -> Outcome {
        let p = match self.signal {
            Signal::Traces => ExportTraceServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map(|p| (p.rejected_spans, p.error_message)),
            Signal::Metrics => ExportMetricsServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map(|p| (p.rejected_data_points, p.error_message)),
        };
        match p {
            Some((rejected, message)) => partial(rejected, clean_message(&message)),
            None => Outcome::OK,
        }
    }
}

/// The message of an error response: a `google.rpc.Status` when the body
/// is protobuf (as the OTLP spec asks), else the body as text.
fn error_message(body: &[u8], protobuf: bool) -> String {
    if protobuf {
        if let Ok(status) = tonic_types::pb::Status::decode(body) {
            return clean_message(&status.message);
        }
    }
    clean_message(&String::from_utf8_lossy(body))
}

/// An error and its causes on one line ("connection refused" is a cause).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}
