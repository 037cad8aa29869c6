//! The hot path: typical PenguiFlow events (a `node_start` / `node_success`
//! pair per attempt, ten nodes per run, a new run every twenty events)
//! through `record()`, span and metric mapping, into the in-memory exporter.
//!
//! Run: `cargo bench -p flowtel --bench record`
//!
//! | bench | what is timed | ns/event (2026-11-22) |
//! | --- | --- | --- |
//! | `record/caller` | `record()` alone on the caller's thread (validate, enqueue) | 63 |
//! | `record/end_to_end` | `record()` + span and metric mapping + in-memory export + a flush every 10 000 events | 3 100 |
//!
//! Machine: the project's 2-core x86_64 development machine (24 GiB), idle
//! otherwise. The end-to-end figure is bounded by the single mapping thread
//! with ~10 000 runs open at once (a new run every 20 events); with one long
//! run the same path measures ~1.2 µs/event (mapping-thread CPU time).
//! History: first version 580 ns / 5 200 ns; by-value queue, no wake-up
//! syscalls, gauge table: 63 ns / 3 100 ns.

use std::time::{Duration, Instant};

use criterion::{criterion_main, Criterion, Throughput};
use flowtel::{FlowEvent, Flowtel, InMemory};

const NODES: [&str; 10] = [
    "fetch",
    "parse",
    "triage",
    "enrich",
    "rank",
    "retrieve",
    "summarize",
    "review",
    "format",
    "deliver",
];
const CHUNK: usize = 10_000;

/// `n` events of successive runs, as PenguiFlow emits them.
fn events(first_run: u64, n: usize) -> Vec<FlowEvent> {
    let mut out = Vec::with_capacity(n);
    let mut run = first_run;
    let mut ts = 1_795_305_121.0;
    while out.len() < n {
        let trace = format!("{run:032x}");
        for node in NODES {
            for (kind, latency) in [("node_start", 0.0), ("node_success", 12.5)] {
                ts += 0.0125;
                out.push(
                    FlowEvent::builder(kind, ts)
                        .node(node, format!("{node}-5d80f5a7b14443779e6118969165232e"))
                        .trace_id(trace.clone())
                        .latency_ms(latency)
                        .queue_depths(1, 0)
                        .topology(1, 64)
                        .trace_state(Some(1), 1, false)
                        .build()
                        .unwrap(),
                );
            }
        }
        run += 1;
    }
    out.truncate(n);
    out
}

/// Record `iters` events in chunks; the time of `record()` alone, or of
/// `record()` plus the flush that waits for mapping and export.
fn timed_chunks(
    flowtel: &Flowtel,
    sink: &InMemory,
    run: &mut u64,
    iters: u64,
    with_flush: bool,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let n = left.min(CHUNK);
        let evs = events(*run, n);
        *run += (n / 20 + 1) as u64;
        let t = Instant::now();
        for e in evs {
            let _ = flowtel.record(e);
        }
        if !with_flush {
            total += t.elapsed();
        }
        flowtel.flush(Duration::from_secs(30)).unwrap();
        if with_flush {
            total += t.elapsed();
        }
        sink.clear();
        left -= n;
    }
    total
}

fn bench(c: &mut Criterion) {
    let sink = InMemory::new();
    let flowtel = Flowtel::builder()
        .with_in_memory(&sink)
        .with_queue_capacity(CHUNK * 2)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(10));
    let mut run = 0u64;

    // Caller-side cost only: the mapping thread catches up between chunks,
    // outside the timed region.
    g.bench_function("caller", |b| {
        b.iter_custom(|iters| timed_chunks(&flowtel, &sink, &mut run, iters, false))
    });
    // Everything: record, map to spans and metrics, export, flush.
    g.bench_function("end_to_end", |b| {
        b.iter_custom(|iters| timed_chunks(&flowtel, &sink, &mut run, iters, true))
    });
    g.finish();
    let s = flowtel.stats();
    assert_eq!(
        s.events_dropped(),
        0,
        "the bench must not measure drops: {s:?}"
    );
    flowtel.shutdown(Duration::from_secs(30)).unwrap();
}

// The macro-generated group function has no doc comment.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
