//! A tiny downstream HTTP service on loopback ("inventory"), and the HTTP
//! client the flow calls it with. The service continues the caller's trace
//! from the `traceparent` header: its span joins the run's trace under the
//! calling attempt, exported by a flowtel pipeline of its own (its own
//! `service.name`), as a separate service would.
//!
//! HTTP/1.1 by hand (one request per connection) keeps the example free of
//! an HTTP stack; a real service would use its framework's extractor.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use flowtel::Flowtel;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, Status, TraceContextExt, TraceId, Tracer as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Start the service on a free loopback port; returns its address. The
/// first request of each trace answers 503 (busy), so every run's caller
/// retries once.
pub(crate) async fn start(telemetry: &Flowtel) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let tracer = Arc::new(telemetry.tracer());
    let seen = Arc::new(Mutex::new(HashSet::new()));
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (tracer, seen) = (tracer.clone(), seen.clone());
            tokio::spawn(async move {
                let _ = serve(conn, &tracer, &seen).await;
            });
        }
    });
    Ok(addr)
}

async fn serve(
    conn: TcpStream,
    tracer: &SdkTracer,
    seen: &Mutex<HashSet<TraceId>>,
) -> std::io::Result<()> {
    let mut conn = BufReader::new(conn);
    let mut request_line = String::new();
    conn.read_line(&mut request_line).await?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    // The caller's context, W3C style: the span below is its child.
    let parent = TraceContextPropagator::new().extract(&headers);
    let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
    let trace = parent.span().span_context().trace_id();
    let unavailable = seen.lock().map(|mut s| s.insert(trace)).unwrap_or(false);
    let mut span = tracer.start_with_context("GET /stock", &parent);
    span.set_attribute(KeyValue::new("http.request.method", "GET"));
    span.set_attribute(KeyValue::new("url.path", path));
    let (status, body) = if unavailable {
        span.set_status(Status::error("out of capacity"));
        (503, "busy")
    } else {
        (200, "in stock")
    };
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status),
    ));
    let reply = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.get_mut().write_all(reply.as_bytes()).await?;
    span.end();
    Ok(())
}

/// `GET path` with the caller's `traceparent`; returns the status code.
pub(crate) async fn get(addr: &str, path: &str, traceparent: &str) -> std::io::Result<u16> {
    let mut conn = TcpStream::connect(addr).await?;
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\ntraceparent: {traceparent}\r\n\r\n");
    conn.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    conn.read_to_string(&mut response).await?;
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {response:?}")))
}
