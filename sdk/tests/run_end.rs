//! A run's root span goes out at the run's last event when the events say
//! nothing of the run is left, never earlier: real PenguiFlow 3.11.2 runs
//! of every shape (linear, retried, failed, timed out, deadline-skipped,
//! cancelled, fan-out, two messages under one trace id), captured by
//! `docs/run_end_evidence.py` (see `docs/RUN_END.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use flowtel::{FlowEvent, Flowtel, InMemory, SpanData};
use flowtel_semconv::attr;
use opentelemetry::trace::SpanId;

mod common;
use common::*;

const FIXTURE: &str = include_str!("fixtures/penguiflow_run_ends.jsonl");

/// The runs whose end their events tell (scenario numbers of
/// `docs/run_end_evidence.py`, which are their trace ids), with the run end
/// nodes of those flows (`summarize`, `b`, `c`, `only`).
const ENDED: [u32; 12] = [1, 2, 3, 4, 5, 6, 7, 11, 13, 14, 21, 22];
/// The runs whose events cannot tell (a result not fetched yet, a branch
/// still pending): they wait, as before, for the idle timeout or shutdown.
const UNDECIDED: [u32; 3] = [12, 15, 16];

fn events() -> Vec<FlowEvent> {
    FIXTURE
        .lines()
        .map(|l| FlowEvent::from_json(l).unwrap())
        .collect()
}

fn trace(n: u32) -> String {
    format!("{n:032x}")
}

fn roots(spans: &[SpanData]) -> BTreeMap<String, &SpanData> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == SpanId::INVALID)
        .map(|s| (s.span_context.trace_id().to_string(), s))
        .collect()
}

fn pipeline(sink: &InMemory, end_nodes: &[&str]) -> Flowtel {
    end_nodes
        .iter()
        .fold(Flowtel::builder(), |b, n| b.with_run_end_node(*n))
        .with_flow_name("run-ends")
        .with_in_memory(sink)
        // Nothing here may wait for the idle timeout.
        .with_run_idle_timeout(Duration::from_secs(3600))
        .build()
        .unwrap()
}

#[test]
fn roots_go_out_at_the_last_event_of_runs_that_tell_and_never_earlier() {
    let events = events();
    let sink = InMemory::new();
    let flowtel = pipeline(&sink, &["summarize", "b", "c", "only"]);
    for e in events.iter().cloned() {
        flowtel.record(e).unwrap();
    }
    flowtel.flush(Duration::from_secs(10)).unwrap();

    let spans = sink.spans();
    let ended = roots(&spans);
    let want: BTreeSet<String> = ENDED.iter().map(|n| trace(*n)).collect();
    assert_eq!(ended.keys().cloned().collect::<BTreeSet<_>>(), want);
    for (t, root) in &ended {
        assert_eq!(
            attr_of(root, attr::RUN_END_REASON).as_deref(),
            Some("last_event"),
            "{t}"
        );
        // Ended at its last event: the root ends with it...
        let last = events
            .iter()
            .filter(|e| e.trace_id.as_deref() == Some(t))
            .map(|e| e.ts)
            .fold(f64::MIN, f64::max);
        let end_us = micros(root.end_time);
        assert!(
            (end_us - (last * 1e6) as i128).abs() <= 1,
            "{t}: {end_us} vs {last}"
        );
    }
    // ... and nothing of any run came after its root: no partial run span.
    assert!(
        spans
            .iter()
            .all(|s| attr_of(s, attr::RUN_PARTIAL).is_none()),
        "a run was ended before its last event"
    );
    // Every attempt that ended is exported, the undecided runs' included.
    let attempts = events
        .iter()
        .filter(|e| {
            matches!(
                e.event_type.as_str(),
                "node_success" | "node_error" | "node_timeout"
            ) || e.event_type == "node_trace_cancelled"
        })
        .count();
    assert_eq!(spans.len() - ended.len(), attempts);

    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    let spans = sink.spans();
    let all = roots(&spans);
    for n in UNDECIDED {
        let root = all.get(&trace(n)).expect("undecided run ends at shutdown");
        assert_eq!(
            attr_of(root, attr::RUN_END_REASON).as_deref(),
            Some("shutdown")
        );
    }
    assert_eq!(flowtel.stats().runs_shed, 0);
}

#[test]
fn without_run_end_nodes_only_failures_skips_and_cancellations_end_runs() {
    let sink = InMemory::new();
    let flowtel = pipeline(&sink, &[]);
    for e in events() {
        flowtel.record(e).unwrap();
    }
    flowtel.flush(Duration::from_secs(10)).unwrap();
    let spans = sink.spans();
    let ended: BTreeSet<String> = roots(&spans).keys().cloned().collect();
    // Timed out, raised, deadline skip, cancelled; the fan-out whose slow
    // branch failed last.
    let want: BTreeSet<String> = [3, 4, 5, 6, 14].iter().map(|n| trace(*n)).collect();
    assert_eq!(ended, want);
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
}

#[test]
fn a_message_sent_later_under_an_ended_run_goes_to_a_partial_run_span() {
    let sink = InMemory::new();
    let flowtel = pipeline(&sink, &["only"]);
    let t = trace(22);
    for e in events()
        .into_iter()
        .filter(|e| e.trace_id.as_deref() == Some(t.as_str()))
    {
        flowtel.record(e).unwrap();
    }
    // A third message under the same trace id, after the run ended, fails.
    let late = event("node_failed", BASE + 1e6, "only", Some(&t), 0);
    flowtel.record(late).unwrap();
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    let spans = sink.spans();
    let roots = spans
        .iter()
        .filter(|s| s.parent_span_id == SpanId::INVALID)
        .count();
    let partial = spans
        .iter()
        .filter(|s| attr_of(s, attr::RUN_PARTIAL).is_some())
        .count();
    assert_eq!((roots, partial), (1, 1), "one root, never a second");
}
