//! `OTEL_EXPORTER_OTLP_COMPRESSION=gzip`: request bodies are gzip-compressed
//! over HTTP (`Content-Encoding: gzip`) and gRPC (`grpc-encoding: gzip`), and
//! decode to every span. Its own binary: it sets an environment variable.

use std::time::Duration;

use flowtel::{Flowtel, Protocol};
use flowtel_integration_tests::fault::{items, FaultReceiver, Signal};
use flowtel_integration_tests::load::runs;

fn send(endpoint: String, protocol: Protocol) -> u64 {
    let f = Flowtel::builder()
        .with_endpoint(endpoint)
        .with_protocol(protocol)
        .build()
        .unwrap();
    runs(0, 3, 4).into_iter().for_each(|e| f.record(e).unwrap());
    f.shutdown(Duration::from_secs(5)).unwrap();
    f.stats().spans_exported
}

#[test]
fn gzip_from_the_environment_over_http_and_grpc() {
    // One test in this binary: nothing else reads the environment meanwhile.
    std::env::set_var("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip");
    for protocol in [Protocol::HttpProtobuf, Protocol::Grpc] {
        let rx = FaultReceiver::start();
        let endpoint = match protocol {
            Protocol::Grpc => rx.grpc_endpoint(),
            _ => rx.http_endpoint(),
        };
        let exported = send(endpoint, protocol);
        let reqs = rx.requests();
        assert!(!reqs.is_empty(), "{protocol:?}");
        assert!(reqs.iter().all(|r| r.gzip), "{protocol:?}: {reqs:#?}");
        let traces = rx.requests_for(Signal::Traces);
        assert_eq!(items(&traces), 15, "12 attempts and 3 roots");
        assert_eq!(exported, 15);
    }

    std::env::set_var("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli");
    let err = Flowtel::builder()
        .with_endpoint("http://127.0.0.1:9")
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_COMPRESSION") && err.contains("brotli"),
        "{err}"
    );
}
