//! Events recorded many at a time: a bridge or a log replay parses its
//! lines into an [`EventBatch`], which goes to the mapping thread as one
//! message. When the mapping thread has mapped a batch it hands the
//! events back, and a later batch is parsed over them: the buffers of an
//! event's type, node name, node id and trace id are filled again instead
//! of allocated on the reading thread and freed on the mapping thread
//! (`extra` members and escaped strings are still allocated). So the two
//! threads share one queue operation per batch instead of one per event.
//! Measured with callgrind on 60 000 `scripts/bench-ingest` lines:
//! `flowtel ingest` went from 11 946 to 10 730 instructions per event.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::TrySendError;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::{Flowtel, Msg};
use crate::error::RecordError;
use crate::event::{EventError, FlowEvent};

/// How many events an [`EventBatch`] gathers before it hands them over.
pub const BATCH_EVENTS: usize = 256;

/// How many batches a producer lets wait in the queue before it waits
/// itself (while its wait lasts; then the queue's capacity decides). Few:
/// the mapping thread takes a batch in a fraction of a millisecond, and
/// every batch in the queue is one whose events cannot be parsed over yet,
/// so a deeper queue means fresh allocations.
const QUEUED_BATCHES: usize = 4;

/// How many mapped batches wait to be parsed over; more are dropped.
const KEEP_SPENT: usize = QUEUED_BATCHES + 2;

/// What the handles and the mapping thread share about batches.
#[derive(Default)]
pub(super) struct Batches {
    /// Events in batches queued and not yet mapped. They count against the
    /// queue's capacity (`with_queue_capacity`), beside the single events
    /// in the queue.
    queued: AtomicUsize,
    /// The mapping thread is gone (stopped, or panicked): nothing will be
    /// mapped or counted out again.
    closed: AtomicBool,
    /// Batches mapped, their events to be parsed over.
    spent: Mutex<Vec<Vec<FlowEvent>>>,
    /// Where a producer waits for room (a batch mapped).
    room_lock: Mutex<()>,
    room: Condvar,
}

/// Why events could not be counted in.
enum NoRoom {
    /// The queue stayed full until the deadline.
    Full,
    /// The mapping thread is gone.
    Closed,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves a list of vectors
    // (or nothing) intact.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Batches {
    /// The mapping thread is done with `events`.
    pub(super) fn mapped(&self, events: Vec<FlowEvent>) {
        self.release(events.len());
        let mut spent = lock(&self.spent);
        if spent.len() < KEEP_SPENT {
            spent.push(events);
            return;
        }
        drop(spent);
        drop(events);
    }

    /// The mapping thread stops (or unwinds): producers waiting for room,
    /// and later ones, are told at once.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        drop(lock(&self.room_lock));
        self.room.notify_all();
    }

    /// `n` events are out of the queue (mapped, or never sent).
    fn release(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
        // Taken between the count and the signal, so that a producer that
        // found no room cannot miss it: it checks and starts waiting under
        // the same lock.
        drop(lock(&self.room_lock));
        self.room.notify_one();
    }

    /// Count `n` events in as queued. Up to `deadline` (`None`: no end)
    /// they must fit in `soft` (or the queue hold no batch); after it, in
    /// the queue's capacity `hard`.
    fn reserve(
        &self,
        n: usize,
        (soft, hard): (usize, usize),
        deadline: Option<Instant>,
    ) -> Result<(), NoRoom> {
        let mut guard = None;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(NoRoom::Closed);
            }
            let now = Instant::now();
            let late = deadline.is_some_and(|d| now >= d);
            let room = if late { hard } else { soft };
            let queued = self.queued.load(Ordering::Acquire);
            if queued == 0 || queued + n <= room {
                if self
                    .queued
                    .compare_exchange(queued, queued + n, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            if late {
                return Err(NoRoom::Full);
            }
            // Check again under the lock, then wait for a batch mapped
            // (bounded: a lost race costs at most a millisecond).
            let g = guard.take().unwrap_or_else(|| lock(&self.room_lock));
            let queued = self.queued.load(Ordering::Acquire);
            if queued == 0 || queued + n <= soft || self.closed.load(Ordering::Acquire) {
                guard = Some(g);
                continue;
            }
            let nap = deadline.map_or(Duration::from_millis(1), |d| {
                (d - now).min(Duration::from_millis(1))
            });
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
/// [`BATCH_EVENTS`] events at most, and the string buffers of events
/// already mapped reused.
///
/// Its events go to the pipeline when it is full (the next
/// [`push_json`](EventBatch::push_json) hands them over), when it is
/// [flushed](EventBatch::flush), and when it is dropped; not before. So
/// flush it whenever the input may pause (a quiet pipe, a followed file at
/// its end), and before [`Flowtel::flush`], [`Flowtel::end_run`] or
/// [`Flowtel::shutdown`], which see only what was handed over. Like
/// [`Flowtel::record_wait`], a hand-over waits for room in the queue, up
/// to the batch's wait, then drops and counts the events. Batched events
/// count against the queue's capacity (`with_queue_capacity`) beside the
/// single events in it; a producer also waits, while its wait lasts, once
/// four batches are queued.
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
pub struct EventBatch {
    flowtel: Flowtel,
    /// The first `len` are this batch's events; any after them, events of
    /// a mapped batch, to be parsed over.
    events: Vec<FlowEvent>,
    len: usize,
    wait: Duration,
}

impl fmt::Debug for EventBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBatch")
            .field("len", &self.len)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl Flowtel {
    /// An empty [`EventBatch`] for this pipeline, whose hand-overs wait up
    /// to `wait` for room in the queue.
    pub fn batch(&self, wait: Duration) -> EventBatch {
        EventBatch {
            flowtel: self.clone(),
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
        let (c, n) = (&inner.stats, events.len());
        let shut_down = || {
            c.events_after_shutdown
                .fetch_add(n as u64, Ordering::Relaxed);
            Err(RecordError::ShutDown)
        };
        if inner.shut.load(Ordering::Acquire) {
            return shut_down();
        }
        let deadline = Instant::now().checked_add(wait);
        let hard = inner.config.queue_capacity;
        let soft = hard.min(QUEUED_BATCHES * BATCH_EVENTS);
        match inner.batches.reserve(n, (soft, hard), deadline) {
            Ok(()) => {}
            Err(NoRoom::Closed) => return shut_down(),
            Err(NoRoom::Full) => {
                c.add_queue_full(n as u64);
                return Err(RecordError::QueueFull);
            }
        }
        let mut msg = Msg::Batch(events);
        loop {
            // Shutdown may have begun while this waited.
            if inner.shut.load(Ordering::Acquire) {
                inner.batches.release(n);
                return shut_down();
            }
            match inner.tx.try_send(msg) {
                Ok(()) => {
                    c.events_recorded.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(());
                }
                Err(TrySendError::Full(m)) if deadline.is_none_or(|d| Instant::now() < d) => {
                    msg = m;
                    thread::sleep(Duration::from_micros(50));
                }
                Err(TrySendError::Full(_)) => {
                    inner.batches.release(n);
                    c.add_queue_full(n as u64);
                    return Err(RecordError::QueueFull);
                }
                Err(TrySendError::Disconnected(_)) => {
                    inner.batches.release(n);
                    return shut_down();
                }
            }
        }
    }
}

impl EventBatch {
    /// Parse `line` as [`FlowEvent::from_json`] does and add the event to
    /// the batch. Returns the event, or the parse error (nothing is added).
    /// A full batch is handed over first, which may wait up to the batch's
    /// wait; if that fails, its events are dropped and counted in the
    /// pipeline's [`Stats`](crate::Stats) and this goes on (a producer that
    /// wants the error calls [`flush`](EventBatch::flush) when
    /// [`len`](EventBatch::len) reaches [`BATCH_EVENTS`]).
    pub fn push_json(&mut self, line: &str) -> Result<&FlowEvent, EventError> {
        if self.len >= BATCH_EVENTS {
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
        self.hand_over(self.wait)
    }

    fn hand_over(&mut self, wait: Duration) -> Result<(), RecordError> {
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
        self.flowtel.send_batch(events, wait)
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

impl Drop for EventBatch {
    /// The events gathered are handed over (a failure is counted); while
    /// the thread unwinds from a panic, without waiting for room.
    fn drop(&mut self) {
        let wait = if thread::panicking() {
            Duration::ZERO
        } else {
            self.wait
        };
        let _ = self.hand_over(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOFT_HARD: (usize, usize) = (4, 10);

    fn soon(ms: u64) -> Option<Instant> {
        Some(Instant::now() + Duration::from_millis(ms))
    }

    /// `act` on `b` from another thread, a moment later (most likely while
    /// this one waits; if before, the answer is the same).
    fn later(
        b: &std::sync::Arc<Batches>,
        act: impl FnOnce(&Batches) + Send + 'static,
    ) -> thread::JoinHandle<()> {
        let b = b.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            act(&b);
        })
    }

    #[test]
    fn a_batch_waits_past_the_soft_limit_and_drops_past_the_capacity() {
        let b = Batches::default();
        // An empty queue takes a batch of any size.
        assert!(b.reserve(20, SOFT_HARD, soon(0)).is_ok());
        b.release(20);
        assert!(b.reserve(3, SOFT_HARD, soon(0)).is_ok());
        // Past the soft limit: in once the wait is over, within the
        // capacity...
        let t = Instant::now();
        assert!(b.reserve(3, SOFT_HARD, soon(20)).is_ok());
        assert!(t.elapsed() >= Duration::from_millis(20));
        // ... and not past it.
        assert!(matches!(
            b.reserve(5, SOFT_HARD, soon(0)),
            Err(NoRoom::Full)
        ));
        assert_eq!(b.queued.load(Ordering::Acquire), 6);
    }

    #[test]
    fn a_waiting_producer_goes_on_when_a_batch_is_mapped() {
        // Room for one batch: unless the first is mapped, the second waits
        // until its deadline and fails.
        let one = (4, 4);
        let b = std::sync::Arc::new(Batches::default());
        assert!(b.reserve(4, one, None).is_ok());
        let mapper = later(&b, |b| b.mapped(vec![crate::parse::blank(); 4]));
        assert!(b.reserve(4, one, soon(10_000)).is_ok());
        mapper.join().unwrap();
        assert_eq!(b.queued.load(Ordering::Acquire), 4);
        assert_eq!(b.take_spent().len(), 4, "the mapped events, to parse over");
    }

    #[test]
    fn a_closed_pipeline_answers_at_once() {
        let one = (4, 4);
        let b = std::sync::Arc::new(Batches::default());
        assert!(b.reserve(4, one, None).is_ok());
        let closer = later(&b, Batches::close);
        assert!(matches!(
            b.reserve(4, one, soon(10_000)),
            Err(NoRoom::Closed)
        ));
        closer.join().unwrap();
    }
}
