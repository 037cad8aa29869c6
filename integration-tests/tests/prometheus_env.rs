//! The Prometheus endpoint configured by the environment
//! (`OTEL_METRICS_EXPORTER`, `OTEL_EXPORTER_PROMETHEUS_HOST` / `_PORT`,
//! `FLOWTEL_PROMETHEUS_BEARER_TOKEN`), and code winning over it. Its own
//! test binary: it changes process-global state.

use std::time::Duration;

use flowtel::{Exporter, Flowtel};
use flowtel_integration_tests::collector::free_port;
use flowtel_integration_tests::http;

#[test]
fn the_environment_configures_the_endpoint_and_code_wins() {
    let port = free_port();
    // This binary has one test: no other thread reads the environment.
    std::env::set_var("OTEL_TRACES_EXPORTER", "none");
    std::env::set_var("OTEL_METRICS_EXPORTER", "prometheus");
    std::env::set_var("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1");
    std::env::set_var("OTEL_EXPORTER_PROMETHEUS_PORT", port.to_string());
    std::env::set_var("FLOWTEL_PROMETHEUS_BEARER_TOKEN", "from-env");

    let b = Flowtel::builder();
    assert_eq!(b.traces_exporter().unwrap(), Some(Exporter::None));
    assert_eq!(b.metrics_exporters().unwrap(), [Exporter::Prometheus]);
    let f = b.build().unwrap();
    let addr = f.prometheus_address().expect("served");
    assert_eq!(addr.to_string(), format!("127.0.0.1:{port}"));
    assert_eq!(http::get(addr, "/metrics", &[]).unwrap().status, 401);
    let ok = http::get(addr, "/metrics", &[("Authorization", "Bearer from-env")]).unwrap();
    assert_eq!(ok.status, 200);
    assert!(
        ok.body.contains("flowtel_sdk_spans_exported_total"),
        "{}",
        ok.body
    );
    f.shutdown(Duration::from_secs(5)).unwrap();

    // Code wins: its own address and token, and OTLP-free console metrics
    // beside the endpoint.
    let f = Flowtel::builder()
        .with_metrics_exporters([Exporter::Prometheus])
        .with_prometheus_address("127.0.0.1:0")
        .with_prometheus_bearer_token("from-code")
        .build()
        .unwrap();
    let addr = f.prometheus_address().unwrap();
    assert_ne!(addr.port(), port);
    let r = |t: &str| {
        http::get(
            addr,
            "/metrics",
            &[("Authorization", &format!("Bearer {t}"))],
        )
        .unwrap()
        .status
    };
    assert_eq!((r("from-env"), r("from-code")), (401, 200));
    f.shutdown(Duration::from_secs(5)).unwrap();

    // Metrics `none` from the environment: nothing served.
    std::env::set_var("OTEL_METRICS_EXPORTER", "none");
    let f = Flowtel::builder().build().unwrap();
    assert_eq!(f.prometheus_address(), None);
    f.shutdown(Duration::from_secs(5)).unwrap();

    // A bad value is a build error naming the variable.
    std::env::set_var("OTEL_METRICS_EXPORTER", "prometheus");
    std::env::set_var("OTEL_EXPORTER_PROMETHEUS_PORT", "http");
    let e = Flowtel::builder().build().unwrap_err().to_string();
    assert!(e.contains("OTEL_EXPORTER_PROMETHEUS_PORT"), "{e}");
}
