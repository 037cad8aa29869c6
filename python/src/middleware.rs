//! The PenguiFlow middleware: an async callable whose call keeps the
//! event for its batch (see `batch.rs`: converted and queued a batch at a
//! time, on this thread) and returns an awaitable that is already complete,
//! so awaiting it never suspends the flow and allocates nothing.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyTuple};

use crate::batch::{self, Push};
use crate::pipeline::Shared;

/// `flowtel.Middleware`: PenguiFlow calls it with every `FlowEvent`
/// (`await middleware(event)`).
#[pyclass(frozen, module = "flowtel")]
pub(crate) struct Middleware {
    shared: Arc<Shared>,
    done: Py<Done>,
}

impl Middleware {
    pub(crate) fn new(py: Python<'_>, shared: Arc<Shared>) -> PyResult<Self> {
        Ok(Middleware {
            shared,
            done: Py::new(py, Done::new(py)?)?,
        })
    }

    /// Arm a drain timer on this thread's running event loop; false when
    /// there is none.
    fn arm_timer(&self, py: Python<'_>) -> bool {
        let drain = Drain {
            shared: self.shared.clone(),
        };
        match Py::new(py, drain) {
            Ok(d) => batch::arm_timer(py, d.bind(py).as_any()),
            Err(_) => false,
        }
    }
}

#[pymethods]
impl Middleware {
    /// Record `event`; never raises into the flow. Whatever cannot be
    /// recorded is counted in `stats()`.
    fn __call__(&self, py: Python<'_>, event: &Bound<'_, PyAny>) -> Py<Done> {
        match self.shared.batch.push(event) {
            Some(Push::Kept) => {}
            Some(Push::Full) => self.shared.drain(py),
            Some(Push::ArmTimer) => {
                if self.arm_timer(py) {
                    self.shared.batch.set_timer(true);
                } else {
                    self.shared.drain(py);
                }
            }
            None => {
                self.shared.drain(py);
                self.shared.record_caught(event);
            }
        }
        self.done.clone_ref(py)
    }

    fn __repr__(&self) -> &'static str {
        "<flowtel.Middleware>"
    }
}

/// A drain timer's callback: converts the batch kept so far. One per
/// timer: when its loop is closed before it fires (the end of
/// `asyncio.run`), the timer is dropped, and so is this, which drains then.
#[pyclass(frozen, module = "flowtel")]
pub(crate) struct Drain {
    shared: Arc<Shared>,
}

impl Drain {
    fn run(&self, py: Python<'_>) {
        self.shared.batch.set_timer(false);
        self.shared.drain(py);
    }
}

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) {
        self.run(py);
    }

    fn __repr__(&self) -> &'static str {
        "<flowtel batch drain>"
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        // Dropped by the interpreter (the timer fired, or its loop was
        // closed): the GIL is held; after firing the batch is usually
        // empty and this costs a lock.
        Python::attach(|py| self.run(py));
    }
}

/// An awaitable that is already complete (`await` gives `None` at once).
/// Stateless, so one instance serves every call. Its `__await__` returns
/// an exhausted built-in iterator (`iter(())`), which the interpreter
/// finishes in C: one call into this extension per `await`, not two.
#[pyclass(frozen, module = "flowtel")]
pub(crate) struct Done {
    exhausted: Py<PyIterator>,
}

impl Done {
    fn new(py: Python<'_>) -> PyResult<Self> {
        Ok(Done {
            exhausted: PyTuple::empty(py).try_iter()?.unbind(),
        })
    }
}

#[pymethods]
impl Done {
    fn __await__(&self, py: Python<'_>) -> Py<PyIterator> {
        self.exhausted.clone_ref(py)
    }
}
