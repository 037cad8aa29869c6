//! flush() and shutdown() from plain sync code and from every tokio runtime
//! flavour: they complete, or return an error within their timeout; they
//! never hang, deadlock or panic.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use flowtel::{FlowEvent, Flowtel, FlushError, InMemory, Protocol};

const TRACE: &str = "3e512c5b0a184257a25c215d19544e6a";

fn success(node: &str) -> FlowEvent {
    FlowEvent::builder("node_success", 1_795_305_121.5)
        .node(node, node)
        .trace_id(TRACE)
        .latency_ms(3.0)
        .build()
        .unwrap()
}

/// Record, flush and shut down into memory; everything must arrive.
fn in_memory_round_trip() {
    let sink = InMemory::new();
    let flowtel = Flowtel::builder().with_in_memory(&sink).build().unwrap();
    flowtel.record(success("a")).unwrap();
    flowtel.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(
        sink.spans().len(),
        1,
        "attempt span flushed; root still open"
    );
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(sink.spans().len(), 2, "root exported at shutdown");
}

/// An endpoint where nothing listens.
fn dead_endpoint() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// With no collector, flush and shutdown return an error within their
/// timeout (plus scheduling slack) instead of hanging.
fn dead_collector_returns_in_time(protocol: Protocol) {
    let flowtel = Flowtel::builder()
        .with_endpoint(dead_endpoint())
        .with_protocol(protocol)
        .with_export_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    flowtel.record(success("a")).unwrap();
    let t = Instant::now();
    let r = flowtel.flush(Duration::from_secs(2));
    assert!(r.is_err(), "flush to a dead collector: {r:?}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let t = Instant::now();
    let r = flowtel.shutdown(Duration::from_secs(2));
    assert!(
        matches!(r, Err(FlushError::Export(_) | FlushError::Timeout(_))),
        "{r:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[test]
fn plain_sync_main() {
    in_memory_round_trip();
    dead_collector_returns_in_time(Protocol::Grpc);
    dead_collector_returns_in_time(Protocol::HttpProtobuf);
}

#[tokio::test(flavor = "current_thread")]
async fn tokio_current_thread() {
    in_memory_round_trip();
    dead_collector_returns_in_time(Protocol::Grpc);
    dead_collector_returns_in_time(Protocol::HttpProtobuf);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn tokio_multi_thread_one_worker() {
    in_memory_round_trip();
    dead_collector_returns_in_time(Protocol::Grpc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokio_multi_thread_several_workers() {
    in_memory_round_trip();
    dead_collector_returns_in_time(Protocol::HttpProtobuf);
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_and_drop_from_inside_an_async_task() {
    let sink = InMemory::new();
    let flowtel = Flowtel::builder().with_in_memory(&sink).build().unwrap();
    let f = flowtel.clone();
    let r = tokio::spawn(async move {
        f.record(success("in-task")).unwrap();
        let r = f.shutdown(Duration::from_secs(10));
        drop(f); // dropping inside a runtime must not panic either
        r
    })
    .await
    .unwrap();
    r.unwrap();
    assert_eq!(sink.spans().len(), 2);
    drop(flowtel);
}

#[test]
fn dropping_every_handle_without_shutdown_still_exports() {
    let sink = InMemory::new();
    let flowtel = Flowtel::builder().with_in_memory(&sink).build().unwrap();
    flowtel.record(success("a")).unwrap();
    drop(flowtel);
    let t = Instant::now();
    while sink.spans().len() < 2 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sink.spans().len(), 2);
}
