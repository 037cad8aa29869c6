//! `flowtel._flowtel`: the native module of the `flowtel` Python package.
//!
//! It wraps the Rust SDK (crate `flowtel`) and adds nothing to its model:
//! PenguiFlow `FlowEvent` objects are read attribute by attribute into the
//! same [`flowtel::FlowEvent`], payload dicts and JSON go through the SDK's
//! one parser, and the mapping and export are the SDK's.
//!
//! | file | what |
//! | --- | --- |
//! | `pipeline.rs` | the `Flowtel` class: record, flush, shutdown, stats, end_run |
//! | `settings.rs` | keyword settings → [`flowtel::FlowtelBuilder`] |
//! | `convert.rs` | Python values → [`flowtel::FlowEvent`] |
//! | `middleware.rs` | the PenguiFlow middleware and the completed awaitable it returns |
//! | `batch.rs` | the middleware's events, converted a batch at a time |
//! | `live.rs` | the pipelines alive in this process, shut down at exit |
//!
//! The process-wide pipeline, the exit hooks and the public names are in
//! the Python package (`python/flowtel/`).

use pyo3::prelude::*;

/// The middleware allocates an event's strings on the event loop's thread
/// and the mapping thread frees them. With glibc's malloc those frees go
/// back to the loop thread's arena under its lock, and the loop's own
/// allocations (Python's included) then take malloc's slow paths; mimalloc
/// frees across threads lock-free, into the page's owner. It serves only
/// this extension's Rust allocations: Python keeps its own allocator.
/// Measured with `python/bench/run` (see the README's overhead table).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod batch;
mod convert;
mod live;
mod middleware;
mod pipeline;
mod settings;

pyo3::create_exception!(
    _flowtel,
    FlowtelError,
    pyo3::exceptions::PyException,
    "Base class of the errors flowtel raises (never from a middleware)."
);
pyo3::create_exception!(
    _flowtel,
    FlushError,
    FlowtelError,
    "A flush or shutdown did not complete: not within the timeout, the \
     pipeline was already shut down, or the exporter failed."
);

/// The module: classes, exceptions and the exit hook's entry point.
#[pymodule]
fn _flowtel(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<pipeline::Flowtel>()?;
    m.add_class::<middleware::Middleware>()?;
    m.add_class::<middleware::Done>()?;
    m.add("FlowtelError", py.get_type::<FlowtelError>())?;
    m.add("FlushError", py.get_type::<FlushError>())?;
    m.add_function(wrap_pyfunction!(live::shutdown_all, m)?)?;
    m.add_function(wrap_pyfunction!(live::after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::zero_stats, m)?)?;
    m.add("SETTINGS", pyo3::types::PyTuple::new(py, settings::NAMES)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
