//! Auth headers from OTEL_EXPORTER_OTLP_HEADERS reach the collector, next to
//! those set in code. rotel does not log request headers, so this one test
//! uses a minimal in-process HTTP receiver; its own binary (it sets env vars).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use flowtel::{FlowEvent, Flowtel, Protocol};

/// Accept one OTLP/HTTP request, answer 200, return its header lines.
fn receive_one(listener: TcpListener, tx: mpsc::Sender<Vec<String>>) {
    let (stream, _) = listener.accept().unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        headers.push(line.to_ascii_lowercase());
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let mut out = stream;
    out.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
    )
    .unwrap();
    tx.send(headers).unwrap();
}

#[test]
fn headers_from_the_environment_and_code_are_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || receive_one(listener, tx));
    // One test in this binary: nothing else reads the environment meanwhile.
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "authorization=Bearer%20s3cr3t,x-tenant=acme",
    );
    let f = Flowtel::builder()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_protocol(Protocol::HttpProtobuf)
        .with_header("x-from-code", "yes")
        .build()
        .unwrap();
    f.record(
        FlowEvent::builder("node_success", 1_795_305_121.5)
            .node("a", "a")
            .trace_id("3e512c5b0a184257a25c215d19544e6a")
            .latency_ms(1.0)
            .build()
            .unwrap(),
    )
    .unwrap();
    let _ = f.flush(Duration::from_secs(10));
    let headers = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        headers.iter().any(|h| h.starts_with("post /v1/traces")),
        "{headers:?}"
    );
    assert!(
        headers.contains(&"authorization: bearer s3cr3t".to_string()),
        "{headers:?}"
    );
    assert!(
        headers.contains(&"x-tenant: acme".to_string()),
        "{headers:?}"
    );
    assert!(
        headers.contains(&"x-from-code: yes".to_string()),
        "{headers:?}"
    );
    let _ = f.shutdown(Duration::from_secs(2));
}
