//! flowtel's own OTLP transport: one request of pre-encoded protobuf bytes
//! over HTTP (reqwest) or gRPC (tonic), classified into an [`Outcome`].
//!
//! # Why not opentelemetry-otlp
//!
//! flowtel used opentelemetry-otlp 0.33 until its behaviour under a strict
//! or struggling collector was measured:
//!
//! - it retries every request internally (`RetryPolicy`: 3 retries, 100 ms to
//!   1.6 s) and then reports the failure only as
//!   `OTelSdkError::InternalFailure(String)`, so flowtel could not tell a
//!   rejection (HTTP 400: drop) from an outage (retry) and retried both
//!   forever, on top of the exporter's own retries: two layers multiplying;
//! - a `Retry-After` longer than the request timeout was lost (a 429 asking
//!   for 30 s was retried after 0.5 s), and each of flowtel's export loops
//!   backed off on its own;
//! - partial success was logged, not reported, so rejected spans were
//!   counted as exported;
//! - its tonic client cloned the whole batch on every attempt.
//!
//! So flowtel owns the transport and there is exactly one retry layer, the
//! export loop: each batch is encoded once ([`encode`](super::encode)),
//! compressed once (HTTP), and the same bytes are sent on every attempt;
//! this module sends one request and says what happened, and never retries.
//! The export loops share one [`RetryGate`](super::RetryGate) that honours
//! `Retry-After` and `RetryInfo` with jittered exponential backoff.

use std::time::Duration;

use bytes::Bytes;

use super::grpc_transport::GrpcTransport;
use super::http_transport::HttpTransport;
use super::outcome::Outcome;

/// The OTLP signal a transport carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    /// The signal's word in `OTEL_EXPORTER_OTLP_<SIGNAL>_*`.
    pub(crate) fn env(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
        }
    }
}

/// Sends encoded export requests of one signal to the collector.
pub(crate) enum Transport {
    Http(HttpTransport),
    Grpc(GrpcTransport),
}

impl Transport {
    /// The request body for `encoded`, as every attempt will send it
    /// (gzip-compressed once here for HTTP, when configured; tonic frames
    /// and compresses gRPC messages itself).
    pub(crate) fn prepare(&self, encoded: Vec<u8>) -> Bytes {
        match self {
            Transport::Http(h) => h.prepare(encoded),
            Transport::Grpc(_) => Bytes::from(encoded),
        }
    }

    /// Send one request with `body` and classify the answer. Never retries.
    pub(crate) async fn send(&self, body: &Bytes, timeout: Duration) -> Outcome {
        match self {
            Transport::Http(h) => h.send(body, timeout).await,
            Transport::Grpc(g) => g.send(body, timeout).await,
        }
    }
}

/// A collector's message, made safe for one line of standard error.
pub(crate) fn clean_message(raw: &str) -> String {
    const MAX: usize = 300;
    let mut s: String = raw
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX)
        .collect();
    if raw.trim().chars().count() > MAX {
        s.push('…');
    }
    s
}
