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
    let clone = flowtel.clone();
    drop(flowtel);
    assert!(sink.spans().is_empty(), "a clone keeps the pipeline open");
    drop(clone);
    // The last drop has flushed before it returned: no polling, no grace.
    assert_eq!(sink.spans().len(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn async_flush_and_shutdown_never_block_a_current_thread_runtime() {
    // A collector that accepts connections and never answers: every export
    // takes its whole timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let flowtel = Flowtel::builder()
        .with_endpoint(format!("http://{}", silent.local_addr().unwrap()))
        .with_export_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    flowtel.record(success("a")).unwrap();
    let t0 = Instant::now();
    // Another task on the same (only) executor thread must run while the
    // flush is under way; a flush that blocked the thread would starve it
    // until the flush returned.
    let ticker = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        t0.elapsed()
    };
    let flush = async {
        let r = flowtel.flush_async(Duration::from_secs(1)).await;
        (r, t0.elapsed())
    };
    let (ticked, (r, flushed)) = tokio::join!(ticker, flush);
    assert!(r.is_err(), "nothing listens: {r:?}");
    assert!(
        ticked < flushed && flushed > Duration::from_millis(250),
        "the executor was blocked: ticker at {ticked:?}, flush done at {flushed:?}"
    );
    let r = flowtel.shutdown_async(Duration::from_secs(1)).await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(
        flowtel.shutdown_async(Duration::from_secs(1)).await,
        Err(FlushError::ShutDown)
    );
}
