//! TLS to the collector with a private CA, over gRPC and HTTP. rotel's
//! receivers speak plain OTLP, so the test puts a TLS front (rustls, a
//! certificate for `localhost` signed by a CA made here) on loopback that
//! forwards to the real collector; flowtel trusts the CA through
//! `with_ca_certificate` or `OTEL_EXPORTER_OTLP_CERTIFICATE`. Its own binary:
//! one test sets an environment variable.

use std::sync::Arc;
use std::time::Duration;

use flowtel::{FlowEvent, Flowtel, Protocol};
use flowtel_integration_tests::collector::{free_port, Collector};
use flowtel_integration_tests::unix_now;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

struct Pki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// A TLS front on a free loopback port forwarding to `target`; runs on its
/// own thread until the test process ends.
fn tls_front(pki: &Pki, target: u16, alpn: &[&[u8]]) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), pki.key.clone_key())
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let port = free_port();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
            ready_tx.send(()).unwrap();
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A handshake failure (an untrusting client) just ends the connection.
                    let Ok(mut tls) = acceptor.accept(inbound).await else {
                        return;
                    };
                    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
    });
    ready_rx.recv().unwrap();
    port
}

fn event(trace: &str) -> FlowEvent {
    FlowEvent::builder("node_success", unix_now())
        .node("fetch", "fetch")
        .trace_id(trace)
        .latency_ms(2.0)
        .build()
        .unwrap()
}

fn send(builder: flowtel::FlowtelBuilder, trace: &str) -> Result<(), flowtel::FlushError> {
    send_within(builder, trace, Duration::from_secs(8))
}

fn send_within(
    builder: flowtel::FlowtelBuilder,
    trace: &str,
    timeout: Duration,
) -> Result<(), flowtel::FlushError> {
    let f = builder
        .with_export_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    f.record(event(trace)).unwrap();
    f.shutdown(timeout)
}

#[test]
fn tls_with_a_private_ca_over_grpc_and_http() {
    let pki = pki();
    let collector = Collector::start();
    let grpc = tls_front(&pki, collector.grpc_port, &[b"h2"]);
    let http = tls_front(&pki, collector.http_port, &[b"http/1.1"]);

    let grpc_trace = "11111111111111111111111111111111";
    send(
        Flowtel::builder()
            .with_endpoint(format!("https://localhost:{grpc}"))
            .with_protocol(Protocol::Grpc)
            .with_ca_certificate(pki.ca_pem.clone()),
        grpc_trace,
    )
    .unwrap();
    let http_trace = "22222222222222222222222222222222";
    send(
        Flowtel::builder()
            .with_endpoint(format!("https://localhost:{http}"))
            .with_protocol(Protocol::HttpProtobuf)
            .with_ca_certificate(pki.ca_pem.clone()),
        http_trace,
    )
    .unwrap();
    let r = collector.wait_for(Duration::from_secs(10), |r| r.spans.len() >= 4);
    assert_eq!(r.trace(grpc_trace).len(), 2, "gRPC over TLS arrived");
    assert_eq!(r.trace(http_trace).len(), 2, "HTTP over TLS arrived");

    // Without the CA the server is not trusted: nothing is sent.
    for (port, protocol) in [(grpc, Protocol::Grpc), (http, Protocol::HttpProtobuf)] {
        let r = send_within(
            Flowtel::builder()
                .with_endpoint(format!("https://localhost:{port}"))
                .with_protocol(protocol),
            "33333333333333333333333333333333",
            Duration::from_secs(2),
        );
        assert!(r.is_err(), "{protocol:?} without the CA must fail: {r:?}");
    }

    // The CA from OTEL_EXPORTER_OTLP_CERTIFICATE (a file).
    let dir = std::env::temp_dir().join(format!("flowtel-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    std::env::set_var("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca_file);
    let env_trace = "44444444444444444444444444444444";
    send(
        Flowtel::builder()
            .with_endpoint(format!("https://localhost:{grpc}"))
            .with_protocol(Protocol::Grpc),
        env_trace,
    )
    .unwrap();
    std::env::set_var("OTEL_EXPORTER_OTLP_CERTIFICATE", dir.join("missing.pem"));
    let err = Flowtel::builder()
        .with_endpoint(format!("https://localhost:{grpc}"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_CERTIFICATE") && err.contains("missing.pem"),
        "{err}"
    );
    std::env::remove_var("OTEL_EXPORTER_OTLP_CERTIFICATE");
    let r = collector.wait_for(Duration::from_secs(10), |r| r.trace(env_trace).len() >= 2);
    assert_eq!(r.trace(env_trace).len(), 2, "CA from the environment");
    assert!(r.trace("33333333333333333333333333333333").is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
