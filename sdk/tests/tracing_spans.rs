//! `tracing` spans inside attempts (the `tracing` feature), into the
//! in-memory exporter: parents, trace ids and times, from plain threads and
//! from both tokio runtime flavours; and their drop accounting.
#![cfg(feature = "tracing")]

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use flowtel::{Flowtel, InMemory, SpanData};
use opentelemetry::trace::SpanId;
use tracing::instrument::WithSubscriber;
use tracing::Dispatch;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

const T1: &str = "3e512c5b0a184257a25c215d19544e6a";

fn pipeline() -> (Flowtel, InMemory, Dispatch) {
    let sink = InMemory::new();
    let flowtel = Flowtel::builder().with_in_memory(&sink).build().unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(flowtel.tracing_layer()));
    (flowtel, sink, dispatch)
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name}: {spans:#?}"))
}

/// `child` is a direct child of `parent`, in its trace, within its times.
fn assert_child(child: &SpanData, parent: &SpanData) {
    assert_eq!(
        child.span_context.trace_id(),
        parent.span_context.trace_id(),
        "{} in the trace of {}",
        child.name,
        parent.name
    );
    assert_eq!(
        child.parent_span_id,
        parent.span_context.span_id(),
        "{} under {}",
        child.name,
        parent.name
    );
    assert!(
        child.start_time >= parent.start_time && child.end_time <= parent.end_time,
        "{} ({:?}..{:?}) inside {} ({:?}..{:?})",
        child.name,
        child.start_time,
        child.end_time,
        parent.name,
        parent.start_time,
        parent.end_time
    );
}

fn shutdown(flowtel: &Flowtel, sink: &InMemory) -> Vec<SpanData> {
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    sink.spans()
}

#[test]
fn nested_tracing_spans_sit_under_the_attempt_from_sync_code() {
    let (flowtel, sink, dispatch) = pipeline();
    tracing::dispatcher::with_default(&dispatch, || {
        let attempt = flowtel.start_attempt(T1, "parse", 0);
        {
            let _in = attempt.enter();
            tracing::info_span!("tokenize").in_scope(|| {
                tracing::info_span!("scan").in_scope(|| {});
            });
        }
        attempt.success();
        // Outside any attempt: a trace of its own.
        tracing::info_span!("housekeeping").in_scope(|| {});
    });
    let spans = shutdown(&flowtel, &sink);
    let attempt = named(&spans, "parse");
    let tokenize = named(&spans, "tokenize");
    assert_child(tokenize, attempt);
    assert_child(named(&spans, "scan"), tokenize);
    let other = named(&spans, "housekeeping");
    assert_ne!(
        other.span_context.trace_id(),
        attempt.span_context.trace_id()
    );
    assert_eq!(other.parent_span_id, SpanId::INVALID);
    let s = flowtel.stats();
    assert_eq!(s.spans_created, 5, "{s:?}"); // root, attempt, three tracing
    assert_eq!(s.spans_exported, 5, "{s:?}");
}

async fn node_body(n: u32) {
    let span = tracing::info_span!("step", n);
    async {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        tracing::info_span!("inner").in_scope(|| {});
    }
    .instrument(span)
    .await;
}

fn check_async(spans: &[SpanData], attempts: u32) {
    for n in 0..attempts {
        let attempt = spans
            .iter()
            .find(|s| {
                s.name == "work"
                    && s.attributes.iter().any(|kv| {
                        kv.key.as_str() == "flow.node.attempt" && kv.value.as_str() == n.to_string()
                    })
            })
            .unwrap();
        let step = spans
            .iter()
            .find(|s| {
                s.name == "step"
                    && s.attributes
                        .iter()
                        .any(|kv| kv.key.as_str() == "n" && kv.value.as_str() == n.to_string())
            })
            .unwrap();
        assert_child(step, attempt);
        let inner = spans
            .iter()
            .find(|s| s.name == "inner" && s.parent_span_id == step.span_context.span_id())
            .unwrap();
        assert_child(inner, step);
    }
}

fn async_attempts(flavour: tokio::runtime::Builder) {
    let mut flavour = flavour;
    let rt = flavour.enable_all().build().unwrap();
    let (flowtel, sink, dispatch) = pipeline();
    let run = flowtel.run(T1);
    rt.block_on(async {
        let mut tasks = Vec::new();
        for n in 0..4 {
            let run = run.clone();
            // Spawned: on a multi-thread runtime, polled on any worker.
            tasks.push(tokio::spawn(
                async move {
                    let attempt = run.start_attempt("work", n);
                    attempt.within(node_body(n)).await;
                    attempt.success();
                }
                .with_subscriber(dispatch.clone()),
            ));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let spans = shutdown(&flowtel, &sink);
    check_async(&spans, 4);
}

#[test]
fn tracing_spans_follow_the_attempt_across_awaits_on_a_current_thread_runtime() {
    async_attempts(tokio::runtime::Builder::new_current_thread());
}

#[test]
fn tracing_spans_follow_the_attempt_across_awaits_on_a_multi_thread_runtime() {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(2);
    async_attempts(b);
}

#[test]
fn an_attempt_context_moved_to_a_plain_thread_parents_spans_there() {
    let (flowtel, sink, dispatch) = pipeline();
    let attempt = flowtel.start_attempt(T1, "fan-out", 0);
    let cx = attempt.context();
    std::thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            let _cx = cx.attach();
            tracing::info_span!("on-a-thread").in_scope(|| {});
        })
    })
    .join()
    .unwrap();
    attempt.success();
    let spans = shutdown(&flowtel, &sink);
    assert_child(named(&spans, "on-a-thread"), named(&spans, "fan-out"));
}

#[test]
fn tracing_spans_after_shutdown_are_counted_not_exported() {
    let (flowtel, sink, dispatch) = pipeline();
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info_span!("late").in_scope(|| {});
    });
    assert!(sink.spans().is_empty());
    assert_eq!(flowtel.stats().spans_dropped, 1);
}

/// A sink that holds every export until released: the buffer fills.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, cv) = &*self.0;
        let mut o = open.lock().unwrap();
        while !*o {
            o = cv.wait(o).unwrap();
        }
    }
    fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
}

#[test]
fn a_full_buffer_drops_and_counts_tracing_spans_like_mapped_ones() {
    let gate = Gate::default();
    let exported = Arc::new(Mutex::new(Vec::<SpanData>::new()));
    let (g, out) = (gate.clone(), exported.clone());
    let flowtel = Flowtel::builder()
        .with_max_buffered_spans(8)
        .with_max_export_batch(4)
        .with_span_callback(move |batch| {
            g.wait();
            out.lock().unwrap().extend(batch);
        })
        .build()
        .unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(flowtel.tracing_layer()));
    tracing::dispatcher::with_default(&dispatch, || {
        let run = flowtel.run(T1);
        for n in 0..20 {
            let a = run.start_attempt("n", n);
            {
                let _in = a.enter();
                tracing::info_span!("t").in_scope(|| {});
            }
            a.success();
        }
    });
    // Wait until the mapping has handed its 20 attempt spans to the buffer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while flowtel.stats().spans_created < 40 {
        assert!(Instant::now() < deadline, "{:?}", flowtel.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = flowtel.stats();
    assert!(s.spans_dropped >= 40 - 8 - 4, "{s:?}");
    gate.open();
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    let s = flowtel.stats();
    let exported = exported.lock().unwrap();
    assert_eq!(s.spans_created, 41, "{s:?}"); // + the root at shutdown
    assert_eq!(s.spans_exported + s.spans_dropped, s.spans_created, "{s:?}");
    assert_eq!(exported.len() as u64, s.spans_exported);
    assert!(
        exported.iter().any(|s| s.name == "t"),
        "tracing spans exported too"
    );
}
