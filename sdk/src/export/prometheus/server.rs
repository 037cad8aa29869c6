//! The `/metrics` HTTP endpoint: hyper's HTTP/1 server on flowtel's export
//! runtime. Each scrape collects from the pull reader (off the runtime's
//! worker, on a blocking thread) and writes the collection in the format
//! the scraper accepts.
//!
//! - With a bearer token, any request without `Authorization: Bearer
//!   <token>` (compared in constant time) is answered 401 before anything
//!   else; without one, the endpoint trusts whoever can reach its address,
//!   which is loopback unless configured otherwise (a warning says so).
//! - Only `GET`/`HEAD /metrics` is served; other paths 404, other methods
//!   405. A client gets 10 s to send its headers, and at most
//!   [`MAX_CONNECTIONS`] connections are served at once (more are closed
//!   at once): a scrape endpoint needs a handful.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::ManualReader;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::exposition::{render, Format};
use crate::exemplars::Exemplars;
use crate::privacy::Secret;
use crate::stats::Counters;

/// Connections served at once.
pub(super) const MAX_CONNECTIONS: usize = 32;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a scrape needs.
pub(super) struct Endpoint {
    pub(super) reader: Arc<ManualReader>,
    pub(super) exemplars: Option<Arc<Exemplars>>,
    pub(super) token: Option<Secret>,
    pub(super) stats: Arc<Counters>,
}

/// Equal, in time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(req: &Request<Incoming>, token: &Secret) -> bool {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let v = value.as_bytes();
    // The scheme is case-insensitive (RFC 9110).
    v.len() > 7
        && v[..7].eq_ignore_ascii_case(b"bearer ")
        && same(v[7..].trim_ascii(), token.0.as_bytes())
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn answer(
    req: Request<Incoming>,
    ep: Arc<Endpoint>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(token) = &ep.token {
        if !authorized(&req, token) {
            ep.stats.prometheus_unauthorized.fetch_add(1, Relaxed);
            let mut r = text(StatusCode::UNAUTHORIZED, "a bearer token is required\n");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"flowtel\""),
            );
            return Ok(r);
        }
    }
    if req.uri().path() != "/metrics" {
        return Ok(text(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        ));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let format = Format::negotiate(accept.as_deref());
    // Collecting runs the observable callbacks and walks every series:
    // off the runtime's only worker thread.
    let scrape = ep.clone();
    let body = tokio::task::spawn_blocking(move || {
        let mut rm = ResourceMetrics::default();
        scrape
            .reader
            .collect(&mut rm)
            .map(|()| render(&rm, format, scrape.exemplars.as_deref()))
    })
    .await;
    match body {
        Ok(Ok(body)) => {
            ep.stats.prometheus_scrapes.fetch_add(1, Relaxed);
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(format.content_type()),
            );
            Ok(r)
        }
        _ => Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not available (flowtel is shutting down)\n",
        )),
    }
}

/// Serve scrapes on `listener` until the runtime stops.
pub(super) async fn serve(listener: TcpListener, ep: Arc<Endpoint>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            // Out of file descriptors and the like: wait, do not spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // dropping the stream closes it
        };
        let ep = ep.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, ep.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

/// Whether serving on `addr` without a token exposes the metrics beyond
/// this machine.
pub(super) fn is_public(addr: &SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(same(b"s3cr3t", b"s3cr3t"));
        assert!(!same(b"s3cr3t", b"s3cr3u"));
        assert!(!same(b"s3cr3t", b"s3cr3"));
        assert!(!same(b"", b"x"));
    }
}
