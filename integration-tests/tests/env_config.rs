//! Configuration from the standard OTEL_* environment variables, and code
//! winning over them. Its own test binary: it changes process-global state.

use std::time::Duration;

use flowtel::{FlowEvent, Flowtel, Protocol};
use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::unix_now;

fn one_event(trace: &str) -> FlowEvent {
    FlowEvent::builder("node_success", unix_now())
        .node("fetch", "fetch-1")
        .trace_id(trace)
        .latency_ms(2.0)
        .build()
        .unwrap()
}

#[test]
fn environment_configures_and_code_wins() {
    let collector = Collector::start();
    // SAFETY-free: this binary has one test, so no other thread reads the
    // environment concurrently.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", collector.http_endpoint());
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
    std::env::set_var("OTEL_SERVICE_NAME", "from-env");
    std::env::set_var("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci");

    // Nothing in code: everything from the environment (HTTP).
    let env_trace = "0123456789abcdef0123456789abcdef";
    let f = Flowtel::builder().build().unwrap();
    f.record(one_event(env_trace)).unwrap();
    f.shutdown(Duration::from_secs(10)).unwrap();

    // Code wins: gRPC endpoint and protocol, and a service name.
    let code_trace = "fedcba9876543210fedcba9876543210";
    let f = Flowtel::builder()
        .with_endpoint(collector.grpc_endpoint())
        .with_protocol(Protocol::Grpc)
        .with_service_name("from-code")
        .build()
        .unwrap();
    f.record(one_event(code_trace)).unwrap();
    f.shutdown(Duration::from_secs(10)).unwrap();

    let r = collector.wait_for(Duration::from_secs(15), |r| r.spans.len() >= 4);
    let service = |t: &str| -> Vec<String> {
        r.trace(t)
            .iter()
            .map(|s| s.resource.get("service.name").cloned().unwrap_or_default())
            .collect()
    };
    assert_eq!(
        service(env_trace),
        ["from-env", "from-env"],
        "{}",
        collector.raw_log()
    );
    assert_eq!(service(code_trace), ["from-code", "from-code"]);
    let env_span = r.trace(env_trace)[0];
    assert_eq!(
        env_span
            .resource
            .get("deployment.environment")
            .map(String::as_str),
        Some("ci")
    );

    // A bad protocol in the environment is a clear build error.
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon");
    let err = Flowtel::builder().build().unwrap_err().to_string();
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && err.contains("carrier-pigeon"),
        "{err}"
    );
}
