//! OTLP partial success: the collector accepts a request but reports some
//! spans or data points as rejected. Those are counted as dropped (reason
//! `rejected_partial`), the rest as exported, and the request is not sent
//! again.

use std::time::Duration;

use flowtel::Flowtel;
use flowtel_integration_tests::fault::{items, FaultReceiver, Reply, Signal, Transport};
use flowtel_integration_tests::load::runs;

fn pipeline(rx: &FaultReceiver, transport: Transport) -> Flowtel {
    rx.builder(transport).build().unwrap()
}

fn spans_in_part(transport: Transport) {
    let rx = FaultReceiver::start();
    rx.script(
        Signal::Traces,
        [Reply::partial(2, "2 spans older than the retention")],
    );
    let f = pipeline(&rx, transport);
    runs(0, 1, 5).into_iter().for_each(|e| f.record(e).unwrap());
    f.flush(Duration::from_secs(5)).unwrap();
    f.shutdown(Duration::from_secs(5)).unwrap();

    let reqs = rx.requests_for(Signal::Traces);
    assert_eq!(reqs[0].items, 5, "{reqs:#?}");
    let first = reqs[0].span_ids();
    assert!(
        reqs[1..]
            .iter()
            .all(|r| r.span_ids().iter().all(|id| !first.contains(id))),
        "an accepted request is not sent again: {reqs:#?}"
    );
    let s = f.stats();
    assert_eq!(s.spans_rejected_partial, 2, "{s:?}");
    assert_eq!(s.spans_exported, s.spans_created - 2, "{s:?}");
    assert_eq!(s.spans_exported, items(&reqs) - 2, "{s:?}");
    assert_eq!(
        s.spans_rejected + s.spans_dropped + s.export_failures,
        0,
        "{s:?}"
    );
}

#[test]
fn http_partial_success_counts_rejected_spans() {
    spans_in_part(Transport::Http);
}

#[test]
fn grpc_partial_success_counts_rejected_spans() {
    spans_in_part(Transport::Grpc);
}

fn points_in_part(transport: Transport) {
    let rx = FaultReceiver::start();
    rx.script(
        Signal::Metrics,
        [Reply::partial(3, "3 points out of order")],
    );
    let f = pipeline(&rx, transport);
    runs(0, 1, 5).into_iter().for_each(|e| f.record(e).unwrap());
    f.flush(Duration::from_secs(5)).unwrap();
    f.shutdown(Duration::from_secs(5)).unwrap();
    let reqs = rx.requests_for(Signal::Metrics);
    assert!(reqs.len() >= 2, "flush and shutdown each export: {reqs:#?}");
    let s = f.stats();
    assert_eq!(s.metric_points_rejected_partial, 3, "{s:?}");
    assert_eq!(s.metric_points_exported, items(&reqs) - 3, "{s:?}");
    assert_eq!(s.metric_points_rejected, 0, "{s:?}");
}

#[test]
fn http_partial_success_counts_rejected_points() {
    points_in_part(Transport::Http);
}

#[test]
fn grpc_partial_success_counts_rejected_points() {
    points_in_part(Transport::Grpc);
}

#[test]
fn a_warning_without_rejections_counts_everything_as_exported() {
    let rx = FaultReceiver::start();
    rx.script(
        Signal::Traces,
        [Reply::partial(0, "attribute values truncated")],
    );
    let f = pipeline(&rx, Transport::Http);
    runs(0, 1, 4).into_iter().for_each(|e| f.record(e).unwrap());
    f.shutdown(Duration::from_secs(5)).unwrap();
    let s = f.stats();
    assert_eq!(s.spans_exported, s.spans_created, "{s:?}");
    assert_eq!(s.spans_rejected_partial, 0, "{s:?}");
}
