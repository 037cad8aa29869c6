//! The bounded buffer of finished spans between the mapping thread and the
//! export loops.
//!
//! The bound covers every span not yet settled: those queued, and those an
//! export loop took and is still sending or holding for a retry. So memory
//! stays bounded however long the collector keeps a batch waiting.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::record::SpanRecord;
use crate::stats::Counters;

#[derive(Default)]
struct Spans {
    queue: VecDeque<SpanRecord>,
    /// Taken by an export loop and not settled yet (in flight or held).
    taken: usize,
    /// Shutdown has begun forgetting spans: later ones are counted lost.
    closed: bool,
}

impl Spans {
    fn total(&self) -> usize {
        self.queue.len() + self.taken
    }
}

/// Finished spans waiting for export. Bounded: when full, new spans are
/// dropped and counted.
pub(super) struct SpanBuffer {
    spans: Mutex<Spans>,
    capacity: usize,
    batch: usize,
    pub(super) ready: Notify,
    /// With backpressure, the mapping thread waits here for room.
    room: Condvar,
    backpressure: bool,
}

/// With backpressure, how long the mapping thread waits for an exporter
/// that makes no progress at all before it drops (and counts) after all.
pub(super) const STUCK_EXPORTER: Duration = Duration::from_secs(60);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the queue inconsistent
    // (push/pop only), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SpanBuffer {
    pub(super) fn new(capacity: usize, batch: usize, backpressure: bool) -> Self {
        SpanBuffer {
            spans: Mutex::default(),
            capacity,
            batch,
            ready: Notify::new(),
            room: Condvar::new(),
            backpressure,
        }
    }

    pub(super) fn push(&self, spans: &mut Vec<SpanRecord>, stats: &Counters) {
        if spans.is_empty() {
            return;
        }
        let mut s = lock(&self.spans);
        if self.backpressure {
            let mut last_len = s.total();
            let mut last_progress = Instant::now();
            while s.total() + spans.len() > self.capacity
                && last_progress.elapsed() < STUCK_EXPORTER
            {
                self.ready.notify_one();
                s = self
                    .room
                    .wait_timeout(s, Duration::from_millis(100))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
                if s.total() < last_len {
                    last_progress = Instant::now();
                }
                last_len = s.total();
            }
        }
        let room = self.capacity.saturating_sub(s.total());
        if spans.len() > room {
            stats.add_spans_dropped((spans.len() - room) as u64);
            spans.truncate(room);
        }
        s.queue.extend(spans.drain(..));
        if s.queue.len() >= self.batch {
            self.ready.notify_one();
        }
    }

    /// One span made outside the mapping (a `tracing` span, on the caller's
    /// thread): queued if there is room, else dropped and counted. Never
    /// waits, whatever the backpressure setting: a flow's own threads must
    /// not be slowed by a slow collector.
    pub(super) fn offer(&self, span: SpanRecord, stats: &Counters) {
        let mut s = lock(&self.spans);
        if s.closed {
            drop(s);
            stats.add_spans_lost_at_shutdown(1);
            return;
        }
        if s.total() >= self.capacity {
            drop(s);
            stats.add_spans_dropped(1);
            return;
        }
        s.queue.push_back(span);
        if s.queue.len() >= self.batch {
            self.ready.notify_one();
        }
    }

    /// Up to one batch, oldest first, into `into` (the export loop's own
    /// vector, reused from batch to batch); it stays counted against the
    /// capacity until [`settle`](Self::settle)d.
    pub(super) fn take_batch(&self, into: &mut Vec<SpanRecord>) {
        let mut s = lock(&self.spans);
        let n = s.queue.len().min(self.batch);
        s.taken += n;
        into.extend(s.queue.drain(..n));
    }

    /// `n` taken spans are done with (exported, rejected or dropped).
    pub(super) fn settle(&self, n: usize) {
        let mut s = lock(&self.spans);
        s.taken = s.taken.saturating_sub(n);
        self.room.notify_one();
    }

    pub(super) fn is_empty(&self) -> bool {
        lock(&self.spans).queue.is_empty()
    }

    /// Forget every queued span (the shutdown deadline passed); returns
    /// how many there were. Spans offered after this are counted lost.
    pub(super) fn clear(&self) -> usize {
        let mut s = lock(&self.spans);
        let n = s.queue.len();
        s.queue.clear();
        s.closed = true;
        self.room.notify_one();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn spans(n: usize) -> Vec<SpanRecord> {
        let sink = crate::InMemory::new();
        let f = crate::Flowtel::builder()
            .with_in_memory(&sink)
            .build()
            .unwrap();
        for i in 0..n {
            let ev = crate::FlowEvent::builder("node_success", 1_700_000_000.0)
                .node(format!("n{i}"), format!("n{i}"))
                .trace_id("3e512c5b0a184257a25c215d19544e6a")
                .latency_ms(1.0)
                .build()
                .unwrap();
            f.record(ev).unwrap();
        }
        f.flush(Duration::from_secs(5)).unwrap();
        let _ = f.shutdown(Duration::from_secs(5));
        sink.spans()
            .into_iter()
            .take(n)
            .map(SpanRecord::from)
            .collect()
    }

    #[test]
    fn batches_held_by_export_loops_count_against_the_capacity() {
        let stats = Counters::default();
        let b = SpanBuffer::new(10, 4, false);
        b.push(&mut spans(8), &stats);
        let mut held = Vec::new();
        b.take_batch(&mut held);
        assert_eq!(held.len(), 4);
        // 4 queued + 4 held: room for 2 more, not 6.
        b.push(&mut spans(5), &stats);
        assert_eq!(stats.snapshot().spans_dropped, 3);
        b.settle(held.len());
        b.push(&mut spans(4), &stats);
        assert_eq!(stats.snapshot().spans_dropped, 3, "settled spans free room");
        assert_eq!(b.clear(), 10);
        assert!(b.is_empty());
    }
}
