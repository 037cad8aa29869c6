//! The bounded buffer of finished spans between the mapping thread and the
//! export loops.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry_sdk::trace::SpanData;
use tokio::sync::Notify;

use crate::stats::Counters;

/// Finished spans waiting for export. Bounded: when full, new spans are
/// dropped and counted.
pub(super) struct SpanBuffer {
    pub(super) queue: Mutex<VecDeque<SpanData>>,
    pub(super) capacity: usize,
    pub(super) batch: usize,
    pub(super) ready: Notify,
    /// With backpressure, the mapping thread waits here for room.
    pub(super) room: Condvar,
    pub(super) backpressure: bool,
}

/// With backpressure, how long the mapping thread waits for an exporter
/// that makes no progress at all before it drops (and counts) after all.
pub(super) const STUCK_EXPORTER: Duration = Duration::from_secs(60);

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the queue inconsistent
    // (push/pop only), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SpanBuffer {
    pub(super) fn push(&self, spans: &mut Vec<SpanData>, stats: &Counters) {
        if spans.is_empty() {
            return;
        }
        let mut q = lock(&self.queue);
        if self.backpressure {
            let mut last_len = q.len();
            let mut last_progress = Instant::now();
            while q.len() + spans.len() > self.capacity && last_progress.elapsed() < STUCK_EXPORTER
            {
                self.ready.notify_one();
                q = self
                    .room
                    .wait_timeout(q, Duration::from_millis(100))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
                if q.len() < last_len {
                    last_progress = Instant::now();
                }
                last_len = q.len();
            }
        }
        let room = self.capacity.saturating_sub(q.len());
        if spans.len() > room {
            stats.add_spans_dropped((spans.len() - room) as u64);
            spans.truncate(room);
        }
        q.extend(spans.drain(..));
        if q.len() >= self.batch {
            self.ready.notify_one();
        }
    }

    pub(super) fn take_batch(&self) -> Vec<SpanData> {
        let mut q = lock(&self.queue);
        let n = q.len().min(self.batch);
        let batch = q.drain(..n).collect();
        self.room.notify_one();
        batch
    }

    /// Put a batch whose export failed back at the front, oldest first.
    pub(super) fn requeue(&self, batch: Vec<SpanData>, stats: &Counters) {
        let mut q = lock(&self.queue);
        let room = self.capacity.saturating_sub(q.len());
        let keep = batch.len().min(room);
        if keep < batch.len() {
            stats.add_spans_dropped((batch.len() - keep) as u64);
        }
        for s in batch.into_iter().take(keep).rev() {
            q.push_front(s);
        }
    }
}
