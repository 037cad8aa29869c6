//! `tracing` spans inside attempt guards, exported through flowtel to the
//! real collector (rotel) over gRPC and HTTP: trace ids, parent ids,
//! nesting and times as the collector received them; and guards dropped by
//! a panic and by a timeout.

use std::time::Duration;

use flowtel::{Flowtel, Protocol};
use flowtel_integration_tests::assertions::check_nested_tree;
use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::debuglog::Span;
use tracing::instrument::WithSubscriber;
use tracing::{Dispatch, Instrument};
use tracing_subscriber::layer::SubscriberExt;

fn pipeline(c: &Collector, protocol: Protocol) -> (Flowtel, Dispatch) {
    let endpoint = match protocol {
        Protocol::Grpc => c.grpc_endpoint(),
        _ => c.http_endpoint(),
    };
    let flowtel = Flowtel::builder()
        .with_endpoint(endpoint)
        .with_protocol(protocol)
        .with_service_name("flowtel-it-tracing")
        .with_flow_name("nested")
        .build()
        .unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(flowtel.tracing_layer()));
    (flowtel, dispatch)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn one<'a>(spans: &[&'a Span], name: &str) -> &'a Span {
    let found: Vec<&&Span> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "{name}: {spans:#?}");
    found[0]
}

/// The whole trace of `trace`, once `n` spans of it arrived (polled).
fn trace_of(c: &Collector, trace: &str, n: usize) -> Vec<Span> {
    let r = c.wait_for(Duration::from_secs(15), |r| r.trace(trace).len() >= n);
    let spans: Vec<Span> = r.trace(trace).into_iter().cloned().collect();
    assert_eq!(spans.len(), n, "{}", c.raw_log());
    spans
}

fn nesting(protocol: Protocol) {
    let c = Collector::start();
    let (flowtel, dispatch) = pipeline(&c, protocol);
    let run = flowtel.new_run();
    runtime().block_on(
        async {
            for node in ["fetch", "rank"] {
                let attempt = run.start_attempt(node, 0);
                // A span's parent is fixed when it is created: here, on the
                // first poll, within the attempt.
                let work = async move {
                    let query = tracing::info_span!("query", node);
                    async {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        tracing::info_span!("decode").in_scope(|| {});
                    }
                    .instrument(query)
                    .await
                };
                // Moved to another worker: the attempt's context follows.
                tokio::spawn(attempt.within(work).with_current_subscriber())
                    .await
                    .unwrap();
                attempt.success();
            }
        }
        .with_subscriber(dispatch),
    );
    run.end().unwrap();
    flowtel.shutdown(Duration::from_secs(15)).unwrap();

    let all = trace_of(&c, run.trace_id(), 7);
    // Nothing else: the export's own HTTP/gRPC stack is never traced.
    assert_eq!(c.received().spans.len(), 7, "{}", c.raw_log());
    let spans: Vec<&Span> = all.iter().collect();
    let root = check_nested_tree(&spans).unwrap_or_else(|e| panic!("{protocol:?}: {e}"));
    assert_eq!(root.name, "nested");
    for node in ["fetch", "rank"] {
        let attempt = one(&spans, node);
        assert_eq!(attempt.parent_id, root.span_id);
        let query = spans
            .iter()
            .find(|s| s.name == "query" && s.attr("node") == Some(node))
            .unwrap();
        assert_eq!(query.parent_id, attempt.span_id, "{protocol:?} {node}");
        let decode = spans
            .iter()
            .find(|s| s.name == "decode" && s.parent_id == query.span_id)
            .unwrap_or_else(|| panic!("{protocol:?}: no decode under {node}'s query"));
        assert_eq!(
            decode.resource.get("service.name").map(String::as_str),
            Some("flowtel-it-tracing"),
            "same resource as the mapped spans"
        );
    }
}

#[test]
fn tracing_spans_nest_under_attempts_over_grpc() {
    nesting(Protocol::Grpc);
}

#[test]
fn tracing_spans_nest_under_attempts_over_http() {
    nesting(Protocol::HttpProtobuf);
}

#[test]
fn guards_dropped_by_a_panic_and_by_a_timeout_end_their_spans() {
    let c = Collector::start();
    let (flowtel, dispatch) = pipeline(&c, Protocol::Grpc);
    let run = flowtel.new_run();

    // A panic unwinds through the guard, on a plain thread.
    let (r, d) = (run.clone(), dispatch.clone());
    let panicked = std::thread::spawn(move || {
        tracing::dispatcher::with_default(&d, || {
            let attempt = r.start_attempt("explodes", 0);
            let _in = attempt.enter();
            tracing::info_span!("before-the-panic").in_scope(|| {});
            panic!("node bug");
        })
    })
    .join();
    assert!(panicked.is_err());

    // tokio::time::timeout drops the future, and the guard with it.
    let (r, d) = (run.clone(), dispatch.clone());
    let timed_out = runtime().block_on(async move {
        tokio::time::timeout(
            Duration::from_millis(50),
            async move {
                let attempt = r.start_attempt("hangs", 0);
                let stuck = async {
                    tokio::time::sleep(Duration::from_secs(3600))
                        .instrument(tracing::info_span!("waiting"))
                        .await
                };
                attempt.within(stuck).await;
                attempt.success();
            }
            .with_subscriber(d),
        )
        .await
    });
    assert!(timed_out.is_err());
    run.end().unwrap();
    flowtel.shutdown(Duration::from_secs(15)).unwrap();

    let all = trace_of(&c, run.trace_id(), 5);
    let spans: Vec<&Span> = all.iter().collect();
    let root = spans.iter().find(|s| s.parent_id.is_empty()).unwrap();
    for (node, child, error_type) in [
        ("explodes", "before-the-panic", "panic"),
        ("hangs", "waiting", "AttemptDropped"),
    ] {
        let a = one(&spans, node);
        assert_eq!(a.parent_id, root.span_id);
        assert_eq!(a.attr("flow.node.outcome"), Some("dropped"), "{a:?}");
        assert_eq!(a.attr("error.type"), Some(error_type), "{a:?}");
        assert_eq!(a.status_code, "STATUS_CODE_ERROR");
        let ch = one(&spans, child);
        assert_eq!(ch.parent_id, a.span_id, "{child} under {node}");
    }
    let hangs = one(&spans, "hangs");
    let ms = (hangs.end_ns - hangs.start_ns) / 1_000_000;
    assert!((50..3_000).contains(&ms), "ended when dropped: {ms} ms");
}
