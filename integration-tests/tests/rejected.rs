//! A collector that refuses a batch for good (HTTP 400/401/403/404/413,
//! gRPC INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED,
//! RESOURCE_EXHAUSTED without RetryInfo): the OTLP spec says not to retry.
//! The batch is sent once, dropped at once and counted as rejected, and the
//! spans behind it still go through.

use std::collections::HashSet;
use std::time::Duration;

use flowtel::Flowtel;
use flowtel_integration_tests::fault::{Code, FaultReceiver, Reply, Signal, Transport};
use flowtel_integration_tests::load::runs;

fn pipeline(rx: &FaultReceiver, transport: Transport) -> Flowtel {
    rx.builder(transport).build().unwrap()
}

/// Batch A (3 spans) meets `reply`; batch B (3 spans) is accepted.
fn rejected_once(transport: Transport, reply: Reply, message: &str) {
    let rx = FaultReceiver::start();
    rx.script(Signal::Traces, [reply]);
    let f = pipeline(&rx, transport);

    runs(0, 1, 3).into_iter().for_each(|e| f.record(e).unwrap());
    let err = f.flush(Duration::from_secs(5)).unwrap_err().to_string();
    runs(1, 1, 3).into_iter().for_each(|e| f.record(e).unwrap());
    f.flush(Duration::from_secs(5))
        .expect("the batch behind the rejected one goes through");

    let reqs = rx.requests_for(Signal::Traces);
    let a: HashSet<String> = reqs[0].span_ids().into_iter().collect();
    assert_eq!(a.len(), 3, "{reqs:?}");
    let carrying_a = reqs
        .iter()
        .filter(|r| r.span_ids().iter().any(|id| a.contains(id)))
        .count();
    assert_eq!(
        carrying_a, 1,
        "the rejected batch was sent again: {reqs:#?}"
    );
    let delivered: HashSet<String> = reqs[1..].iter().flat_map(|r| r.span_ids()).collect();
    assert_eq!(delivered.len(), 3, "batch B arrived: {reqs:#?}");
    eprintln!(
        "figure: {transport:?} {:?}: {carrying_a} request for the rejected batch",
        reqs[0].answered
    );
    assert!(err.contains(message), "the collector's message: {err}");

    f.shutdown(Duration::from_secs(5)).unwrap();
    let s = f.stats();
    assert_eq!(s.spans_rejected, 3, "{s:?}");
    assert_eq!(s.spans_exported, s.spans_created - 3, "{s:?}");
    assert_eq!(s.spans_dropped, 0, "{s:?}");
    assert_eq!(
        s.export_failures, 0,
        "a rejection is not a retryable failure: {s:?}"
    );
}

#[test]
fn http_400_is_dropped_at_once() {
    rejected_once(
        Transport::Http,
        Reply::http(400, "span name too long"),
        "span name too long",
    );
}

#[test]
fn http_401_is_dropped_at_once() {
    rejected_once(Transport::Http, Reply::http(401, "no token"), "no token");
}

#[test]
fn http_403_is_dropped_at_once() {
    rejected_once(
        Transport::Http,
        Reply::http(403, "forbidden tenant"),
        "forbidden tenant",
    );
}

#[test]
fn http_404_and_413_are_dropped_at_once() {
    rejected_once(
        Transport::Http,
        Reply::http(404, "wrong path"),
        "wrong path",
    );
    rejected_once(Transport::Http, Reply::http(413, "too large"), "too large");
}

#[test]
fn grpc_unauthenticated_is_dropped_at_once() {
    rejected_once(
        Transport::Grpc,
        Reply::grpc(Code::Unauthenticated, "bad api key"),
        "bad api key",
    );
}

#[test]
fn grpc_invalid_argument_is_dropped_at_once() {
    rejected_once(
        Transport::Grpc,
        Reply::grpc(Code::InvalidArgument, "trace id of 15 bytes"),
        "trace id of 15 bytes",
    );
}

#[test]
fn grpc_permission_denied_is_dropped_at_once() {
    rejected_once(
        Transport::Grpc,
        Reply::grpc(Code::PermissionDenied, "tenant is read-only"),
        "tenant is read-only",
    );
}

#[test]
fn grpc_resource_exhausted_without_retry_info_is_dropped_at_once() {
    // The spec: RESOURCE_EXHAUSTED is retryable only with a RetryInfo.
    rejected_once(
        Transport::Grpc,
        Reply::grpc(Code::ResourceExhausted, "quota used up"),
        "quota used up",
    );
}

/// Metrics: a refused export is sent once and its points counted as rejected.
fn metrics_rejected(transport: Transport, reply: Reply) {
    let rx = FaultReceiver::start();
    rx.script(Signal::Metrics, [reply]);
    let f = pipeline(&rx, transport);
    runs(0, 1, 3).into_iter().for_each(|e| f.record(e).unwrap());
    assert!(f.flush(Duration::from_secs(5)).is_err());
    let first = rx.requests_for(Signal::Metrics);
    assert_eq!(first.len(), 1, "not retried: {first:#?}");
    f.shutdown(Duration::from_secs(5)).unwrap();
    let all = rx.requests_for(Signal::Metrics);
    let s = f.stats();
    assert_eq!(s.metric_points_rejected, first[0].items, "{s:?}");
    assert_eq!(
        s.metric_points_exported,
        all[1..].iter().map(|r| r.items).sum::<u64>(),
        "{s:?}"
    );
}

#[test]
fn metrics_http_400_are_rejected_once() {
    metrics_rejected(Transport::Http, Reply::http(400, "bad metric"));
}

#[test]
fn metrics_grpc_invalid_argument_are_rejected_once() {
    metrics_rejected(
        Transport::Grpc,
        Reply::grpc(Code::InvalidArgument, "bad metric"),
    );
}
