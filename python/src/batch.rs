//! The middleware's batch: events kept as references on the event loop's
//! thread and converted a batch at a time.
//!
//! Converting one `FlowEvent` (eleven attribute reads, four strings, the
//! queue hand-off) costs ~0.5 µs when it runs in a tight loop, but ~2 µs
//! when it runs once between two steps of a flow: the interpreter's own
//! work has pushed the conversion's code and type caches out by then, and
//! the conversion pushes the interpreter's out in turn. So the middleware
//! only keeps a reference to the event (an increment and a push), and
//! converts [`BATCH`] of them at once, in order, on the same thread, with
//! the GIL it already holds: nothing runs on another thread with the GIL,
//! and the event loop never waits for one.
//!
//! A batch is converted when it is full; when [`DRAIN_AFTER`] has passed
//! since its first event (a timer on the running event loop, armed once per
//! batch); before anything that must see every event so far (`flush`,
//! `shutdown`, `stats`, `record`, `end_run`, the exit hook). A call from a
//! thread with no running event loop, a payload dict (mutable: it is read
//! at once) and a batch whose timer's loop has gone away convert at once.
//! A forked child drops the batch it inherited: its parent converts it.

use std::mem;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

/// Events converted at once.
pub(crate) const BATCH: usize = 64;
/// The longest an event waits for its batch while its event loop runs.
pub(crate) const DRAIN_AFTER: Duration = Duration::from_millis(20);
/// A timer not fired after this long is taken as lost (its loop was closed
/// or stopped): the next event arms another.
const TIMER_LOST_AFTER: Duration = Duration::from_millis(500);

/// What the caller must do after [`Batch::push`].
pub(crate) enum Push {
    /// Kept; nothing more to do.
    Kept,
    /// The batch is full: convert it now.
    Full,
    /// The first event of a batch and no drain timer: arm one, or convert
    /// now when there is no running loop.
    ArmTimer,
}

#[derive(Default)]
struct Inner {
    events: Vec<Py<PyAny>>,
    /// When the drain timer was armed; `None` when none is pending.
    timer: Option<Instant>,
}

/// The events waiting for conversion; touched only with the GIL held.
#[derive(Default)]
pub(crate) struct Batch {
    inner: Mutex<Inner>,
}

impl Batch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keep `event` for the next conversion. A payload dict is not kept
    /// (its owner may change it): `None`, convert it now (after the batch).
    pub(crate) fn push(&self, event: &Bound<'_, PyAny>) -> Option<Push> {
        if event.is_instance_of::<PyDict>() {
            return None;
        }
        let mut b = self.lock();
        if b.events.capacity() == 0 {
            b.events.reserve_exact(BATCH);
        }
        b.events.push(event.clone().unbind());
        Some(if b.events.len() >= BATCH {
            Push::Full
        } else if b.events.len() == 1 && b.timer.is_none_or(|t| t.elapsed() >= TIMER_LOST_AFTER) {
            Push::ArmTimer
        } else {
            Push::Kept
        })
    }

    /// Take every event kept so far, in order. The lock is not held while
    /// they are converted: reading an attribute may run Python code, which
    /// may call the middleware again.
    pub(crate) fn take(&self) -> Vec<Py<PyAny>> {
        let mut b = self.lock();
        if b.events.is_empty() {
            return Vec::new();
        }
        mem::replace(&mut b.events, Vec::with_capacity(BATCH))
    }

    /// Note that a drain timer is armed (`true`) or has fired (`false`).
    pub(crate) fn set_timer(&self, armed: bool) {
        self.lock().timer = armed.then(Instant::now);
    }

    /// In a forked child: forget the parent's batch (the parent converts it)
    /// and its timer (it belongs to the parent's loop).
    pub(crate) fn forget_after_fork(&self) -> Vec<Py<PyAny>> {
        let mut b = self.lock();
        b.timer = None;
        mem::take(&mut b.events)
    }
}

/// Arm `drain` to run on the running event loop of this thread after
/// [`DRAIN_AFTER`]. False when this thread runs no event loop (or it
/// refused the timer): the caller converts at once.
pub(crate) fn arm_timer(py: Python<'_>, drain: &Bound<'_, PyAny>) -> bool {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let Ok(get) = GET_RUNNING_LOOP.import(py, "asyncio", "_get_running_loop") else {
        return false;
    };
    let Ok(event_loop) = get.call0() else {
        return false;
    };
    if event_loop.is_none() {
        return false;
    }
    event_loop
        .call_method1(
            pyo3::intern!(py, "call_later"),
            (DRAIN_AFTER.as_secs_f64(), drain),
        )
        .is_ok()
}
