//! The PenguiFlow middleware: an async callable whose call does all the
//! work synchronously (convert and queue, well under a microsecond of
//! Rust) and returns an awaitable that is already complete, so awaiting it
//! never suspends the flow and allocates nothing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyTuple};

use crate::convert::Unmappable;
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
}

#[pymethods]
impl Middleware {
    /// Record `event`; never raises into the flow. Whatever cannot be
    /// recorded is counted in `stats()`.
    fn __call__(&self, py: Python<'_>, event: &Bound<'_, PyAny>) -> Py<Done> {
        let recorded = catch_unwind(AssertUnwindSafe(|| {
            self.shared.record_from_runtime(event);
        }));
        if recorded.is_err() {
            self.shared
                .count_unmappable(&Unmappable("flowtel panicked converting it".into()));
        }
        self.done.clone_ref(py)
    }

    fn __repr__(&self) -> &'static str {
        "<flowtel.Middleware>"
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
