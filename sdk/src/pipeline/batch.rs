//! Events recorded many at a time: a bridge or a log replay parses its
//! lines into an [`EventBatch`], which goes to the mapping thread as one
//! message. When the mapping thread has mapped a batch it hands the
//! events back, and a later batch is parsed over them: their strings'
//! buffers are filled again instead of allocated on the reading thread and
//! freed on the mapping thread. So the two threads share one queue
//! operation per batch instead of one per event, and an event's strings
//! are neither allocated nor freed in the steady state. Measured with
//! callgrind on 60 000 `scripts/bench-ingest` lines: `flowtel ingest`
//! went from 11 946 to 10 730 instructions per event.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::TrySendError;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::{Flowtel, Msg};
use crate::error::RecordError;
use crate::event::{EventError, FlowEvent};

/// How many events an [`EventBatch`] gathers before it hands them over.
pub const BATCH_EVENTS: usize = 256;

/// How many batches may wait in the queue (their events count against
/// its capacity too). Few: the mapping thread takes a batch in a fraction
/// of a millisecond, and every batch in the queue is one whose events
/// cannot be parsed over yet, so a deeper queue means fresh allocations.
const QUEUED_BATCHES: usize = 4;

/// How many mapped batches wait to be parsed over; more are dropped.
const KEEP_SPENT: usize = QUEUED_BATCHES + 2;

/// What the handles and the mapping thread share about batches.
#[derive(Default)]
pub(super) struct Batches {
    /// Events in batches queued and not yet mapped: with single events
    /// they stay within the queue's capacity.
    queued: AtomicUsize,
    /// Batches mapped, their events to be parsed over.
    spent: Mutex<Vec<Vec<FlowEvent>>>,
    /// Where a producer waits for room (a batch mapped).
    room_lock: Mutex<()>,
    room: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves a list of vectors
    // (or nothing) intact.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Batches {
    /// The mapping thread is done with `events`.
    pub(super) fn mapped(&self, events: Vec<FlowEvent>) {
        self.queued.fetch_sub(events.len(), Ordering::AcqRel);
        // Taken between the count and the signal, so that a producer that
        // found no room cannot miss it: it checks and starts waiting under
        // the same lock.
        drop(lock(&self.room_lock));
        self.room.notify_one();
        let mut spent = lock(&self.spent);
        if spent.len() < KEEP_SPENT {
            spent.push(events);
            return;
        }
        drop(spent);
        drop(events);
    }

    /// Count `n` events in as queued when they fit in `room` (or the queue
    /// holds no batch), waiting until `deadline` for that; `false` if they
    /// never fit.
    fn reserve(&self, n: usize, room: usize, deadline: Instant) -> bool {
        let fits = |queued: usize| queued == 0 || queued + n <= room;
        let mut guard = None;
        loop {
            let queued = self.queued.load(Ordering::Acquire);
            if fits(queued) {
                if self
                    .queued
                    .compare_exchange(queued, queued + n, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Check again under the lock, then wait for a batch mapped
            // (bounded: a lost race costs at most a millisecond).
            let g = guard.take().unwrap_or_else(|| lock(&self.room_lock));
            if fits(self.queued.load(Ordering::Acquire)) {
                guard = Some(g);
                continue;
            }
            let nap = (deadline - now).min(Duration::from_millis(1));
            let (g, _) = self
                .room
                .wait_timeout(g, nap)
                .unwrap_or_else(|p| p.into_inner());
            guard = Some(g);
        }
    }

    /// A vector for the next batch: a mapped batch's events, or new.
    fn take_spent(&self) -> Vec<FlowEvent> {
        lock(&self.spent)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BATCH_EVENTS))
    }
}

/// Events parsed from JSON lines, recorded together: made by
/// [`Flowtel::batch`]. For a producer that reads many events at a time (a
/// bridge, a log replay): one hand-over to the mapping thread per
/// [`BATCH_EVENTS`] events, and the string buffers of events already
/// mapped reused. Its events are recorded when it is full (the next
/// [`push_json`](EventBatch::push_json) hands them over), flushed, or
/// dropped; like [`Flowtel::record_wait`], a hand-over waits for room in
/// the queue, up to the batch's wait, then drops and counts the events.
///
/// ```
/// use std::time::Duration;
/// use flowtel::Flowtel;
///
/// let flowtel = Flowtel::builder().with_console().build()?;
/// let mut batch = flowtel.batch(Duration::from_secs(10));
/// for line in [
///     r#"{"event":"node_start","ts":1700000000.0,"node_name":"triage","trace_id":"3e512c5b0a184257a25c215d19544e6a"}"#,
///     r#"{"event":"node_success","ts":1700000000.5,"node_name":"triage","trace_id":"3e512c5b0a184257a25c215d19544e6a","latency_ms":500}"#,
///     r#"{"event":"user logged in","level":"info"}"#, // another library's line
/// ] {
///     match batch.push_json(line) {
///         Ok(event) => assert_eq!(event.node_name.as_deref(), Some("triage")),
///         Err(e) => assert!(e.is_not_a_flow_event()),
///     }
/// }
/// batch.flush()?; // the two events, to the mapping thread
/// assert_eq!(flowtel.stats().events_recorded, 2);
/// flowtel.shutdown(Duration::from_secs(5))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EventBatch<'a> {
    flowtel: &'a Flowtel,
    /// The first `len` are this batch's events; any after them, events of
    /// a mapped batch, to be parsed over.
    events: Vec<FlowEvent>,
    len: usize,
    wait: Duration,
}

impl Flowtel {
    /// An empty [`EventBatch`] for this pipeline, whose hand-overs wait up
    /// to `wait` for room in the queue.
    pub fn batch(&self, wait: Duration) -> EventBatch<'_> {
        EventBatch {
            flowtel: self,
            events: Vec::new(),
            len: 0,
            wait,
        }
    }

    /// Queue `events` (valid: parsed) as one message, waiting up to `wait`
    /// for room; on failure they are dropped and counted.
    fn send_batch(&self, events: Vec<FlowEvent>, wait: Duration) -> Result<(), RecordError> {
        let this = self.here()?;
        let inner = &this.inner;
        let (c, n) = (&inner.stats, events.len() as u64);
        if inner.shut.load(Ordering::Acquire) {
            c.events_after_shutdown.fetch_add(n, Ordering::Relaxed);
            return Err(RecordError::ShutDown);
        }
        let deadline = Instant::now() + wait;
        let room = inner
            .config
            .queue_capacity
            .min(QUEUED_BATCHES * BATCH_EVENTS);
        if !inner.batches.reserve(events.len(), room, deadline) {
            c.add_queue_full(n);
            return Err(RecordError::QueueFull);
        }
        let mut msg = Msg::Batch(events);
        loop {
            match inner.tx.try_send(msg) {
                Ok(()) => {
                    c.events_recorded.fetch_add(n, Ordering::Relaxed);
                    return Ok(());
                }
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    thread::sleep(Duration::from_micros(200));
                }
                Err(e) => {
                    inner.batches.queued.fetch_sub(n as usize, Ordering::AcqRel);
                    return Err(match e {
                        TrySendError::Full(_) => {
                            c.add_queue_full(n);
                            RecordError::QueueFull
                        }
                        TrySendError::Disconnected(_) => {
                            c.events_after_shutdown.fetch_add(n, Ordering::Relaxed);
                            RecordError::ShutDown
                        }
                    });
                }
            }
        }
    }
}

impl EventBatch<'_> {
    /// Parse `line` as [`FlowEvent::from_json`] does and add the event to
    /// the batch (handing the batch over first when it is full). Returns
    /// the event, or the parse error (nothing is added).
    pub fn push_json(&mut self, line: &str) -> Result<&FlowEvent, EventError> {
        if self.len >= BATCH_EVENTS {
            // A failure is counted in the pipeline's stats.
            let _ = self.flush();
        }
        if self.len == self.events.len() {
            self.events.push(crate::parse::blank());
        }
        let slot = &mut self.events[self.len];
        slot.parse_json_into(line)?;
        self.len += 1;
        Ok(slot)
    }

    /// Hand the events gathered so far to the mapping thread, waiting up to
    /// the batch's wait for room in the queue. On an error they are
    /// dropped and counted (`Stats::events_dropped_queue_full` or
    /// `Stats::events_after_shutdown`).
    pub fn flush(&mut self) -> Result<(), RecordError> {
        if self.len == 0 {
            return Ok(());
        }
        self.events.truncate(self.len);
        self.len = 0;
        let next = match self.flowtel.here() {
            Ok(this) => this.inner.batches.take_spent(),
            Err(_) => Vec::new(),
        };
        let events = std::mem::replace(&mut self.events, next);
        self.flowtel.send_batch(events, self.wait)
    }

    /// The number of events gathered and not yet handed over.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no event waits in the batch.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for EventBatch<'_> {
    /// The events gathered are handed over (a failure is counted).
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
