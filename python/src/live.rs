//! The pipelines alive in this process, so that the exit hooks (`atexit`,
//! and multiprocessing's finalizers in its forked children, which skip
//! `atexit`) can deliver what each holds within its `exit_timeout`.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread;

use pyo3::prelude::*;

use crate::pipeline::Shared;

static LIVE: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Remember a new pipeline (and forget dropped ones).
pub(crate) fn register(shared: &Arc<Shared>) {
    let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
    live.retain(|w| w.strong_count() > 0);
    live.push(Arc::downgrade(shared));
}

/// Shut every live pipeline down, in parallel, each within its
/// `exit_timeout`, without the GIL. Already shut-down pipelines return at
/// once; losses are counted and reported by the SDK.
#[pyfunction]
pub(crate) fn shutdown_all(py: Python<'_>) {
    let all = alive();
    for s in &all {
        s.drain(py);
    }
    py.detach(|| {
        thread::scope(|scope| {
            for s in all.iter().filter(|s| !s.exit_timeout.is_zero()) {
                scope.spawn(move || {
                    let _ = s.shutdown(s.exit_timeout);
                });
            }
        })
    });
}

/// In a forked child (`os.register_at_fork`): every pipeline forgets the
/// batch of events it inherited, which its parent converts and records.
#[pyfunction]
pub(crate) fn after_fork_in_child() {
    for s in alive() {
        drop(s.batch.forget_after_fork());
    }
}

/// The pipelines still alive.
fn alive() -> Vec<Arc<Shared>> {
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect()
}
