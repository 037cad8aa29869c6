//! The `Flowtel` class: one flowtel pipeline as Python sees it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use flowtel::{BuildError, FlowEvent};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::batch::Batch;
use crate::convert::{self, Unmappable};
use crate::middleware::Middleware;
use crate::{live, settings, FlowtelError, FlushError};

/// What a `Flowtel` object and its middlewares share.
pub(crate) struct Shared {
    /// `None` only while being dropped (see `Drop`).
    pipeline: Option<flowtel::Flowtel>,
    /// Values that could not be converted to a FlowEvent.
    unmappable: AtomicU64,
    warned_unmappable: AtomicBool,
    pub(crate) exit_timeout: Duration,
    /// The middlewares' events not converted yet (see `batch.rs`).
    pub(crate) batch: Batch,
}

impl Shared {
    fn pipeline(&self) -> Option<&flowtel::Flowtel> {
        self.pipeline.as_ref()
    }

    fn record(&self, converted: Result<FlowEvent, Unmappable>) -> bool {
        match (converted, self.pipeline()) {
            (Ok(ev), Some(p)) => p.record(ev).is_ok(),
            (Err(why), _) => {
                self.count_unmappable(&why);
                false
            }
            (Ok(_), None) => false,
        }
    }

    /// The middleware's path: a PenguiFlow `FlowEvent` object, or anything
    /// `record()` takes. Never raises.
    pub(crate) fn record_from_runtime(&self, event: &Bound<'_, PyAny>) -> bool {
        let converted = match convert::event_type_attr(event) {
            Some(t) => convert::from_object(event, &t),
            None => convert::from_payload(event),
        };
        self.record(converted)
    }

    /// [`record_from_runtime`](Self::record_from_runtime), a panic counted
    /// as unmappable: the middleware's path never raises.
    pub(crate) fn record_caught(&self, event: &Bound<'_, PyAny>) {
        let recorded = catch_unwind(AssertUnwindSafe(|| {
            self.record_from_runtime(event);
        }));
        if recorded.is_err() {
            self.count_unmappable(&Unmappable("flowtel panicked converting it".into()));
        }
    }

    /// Convert and queue the middlewares' batch, in order. Everything that
    /// must see every event recorded so far calls this first.
    /// The pipeline's counts, after converting the pending batch.
    fn stats_now(&self, py: Python<'_>) -> flowtel::Stats {
        self.drain(py);
        self.pipeline()
            .map(flowtel::Flowtel::stats)
            .unwrap_or_default()
    }

    pub(crate) fn drain(&self, py: Python<'_>) {
        for event in self.batch.take() {
            self.record_caught(event.bind(py));
        }
    }

    /// Count a value that could not become a FlowEvent: here, and in the
    /// pipeline's own `events_invalid` and `flowtel.sdk.events.dropped`
    /// (reason `invalid`), one set of self-metrics. A warning goes to
    /// standard error once.
    pub(crate) fn count_unmappable(&self, why: &Unmappable) {
        self.unmappable.fetch_add(1, Relaxed);
        if !self.warned_unmappable.swap(true, Relaxed) {
            eprintln!(
                "flowtel: warning: an event could not be mapped ({}); such events are dropped \
                 and counted in stats()[\"events_unmappable\"]",
                why.0
            );
        }
        if let Some(p) = self.pipeline() {
            p.count_invalid();
        }
    }

    /// Shut down within `timeout`; what happens if it cannot is the SDK's
    /// (counted, one line on standard error).
    pub(crate) fn shutdown(&self, timeout: Duration) -> Result<(), flowtel::FlushError> {
        match self.pipeline() {
            Some(p) => p.shutdown(timeout),
            None => Err(flowtel::FlushError::ShutDown),
        }
    }
}

impl Drop for Shared {
    /// The SDK flushes when its last handle drops, for up to 5 s. Python
    /// drops objects while holding the GIL, often on the event loop's
    /// thread, so that wait happens on a thread of its own.
    fn drop(&mut self) {
        if let Some(p) = self.pipeline.take() {
            let _ = std::thread::Builder::new()
                .name("flowtel-drop".into())
                .spawn(move || drop(p));
        }
    }
}

/// A flowtel pipeline: PenguiFlow FlowEvents in, OpenTelemetry spans and
/// metrics out over OTLP. See `python/flowtel/_flowtel.pyi` for the Python
/// documentation.
#[pyclass(frozen, module = "flowtel")]
pub(crate) struct Flowtel {
    pub(crate) shared: Arc<Shared>,
}

fn build_error(e: BuildError) -> PyErr {
    match e {
        BuildError::InvalidConfig { .. } => PyValueError::new_err(e.to_string()),
        other => FlowtelError::new_err(other.to_string()),
    }
}

fn flush_error(e: flowtel::FlushError) -> PyErr {
    FlushError::new_err(e.to_string())
}

fn duration(what: &str, seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        PyValueError::new_err(format!(
            "{what}: timeout must be a finite number of seconds >= 0, got {seconds}"
        ))
    })
}

#[pymethods]
impl Flowtel {
    #[new]
    #[pyo3(signature = (**settings))]
    fn new(settings: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let s = settings::parse(settings)?;
        let pipeline = s.builder.build().map_err(build_error)?;
        let shared = Arc::new(Shared {
            pipeline: Some(pipeline),
            unmappable: AtomicU64::new(0),
            warned_unmappable: AtomicBool::new(false),
            exit_timeout: s.exit_timeout,
            batch: Batch::default(),
        });
        live::register(&shared);
        Ok(Flowtel { shared })
    }

    /// The PenguiFlow middleware that feeds this pipeline.
    fn middleware(&self, py: Python<'_>) -> PyResult<Middleware> {
        Middleware::new(py, self.shared.clone())
    }

    /// Record a `FlowEvent.to_payload()` dict, its JSON text (`str` or
    /// `bytes`), or a PenguiFlow `FlowEvent`. True when queued.
    fn record(&self, payload: &Bound<'_, PyAny>) -> bool {
        self.shared.drain(payload.py());
        let is_payload = payload.is_instance_of::<PyDict>()
            || payload.is_instance_of::<PyString>()
            || payload.is_instance_of::<PyBytes>();
        if is_payload {
            self.shared.record(convert::from_payload(payload))
        } else {
            self.shared.record_from_runtime(payload)
        }
    }

    /// End the run `trace_id` now (export its root span). True when queued.
    fn end_run(&self, py: Python<'_>, trace_id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let trace_id: String = trace_id
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("end_run takes a trace id (str)"))?
            .to_str()?
            .to_owned();
        self.shared.drain(py);
        Ok(self
            .shared
            .pipeline()
            .is_some_and(|p| p.end_run(trace_id).is_ok()))
    }

    /// Where the Prometheus endpoint listens (`"127.0.0.1:9464"`, the port
    /// the system chose for port 0), when metrics go to `"prometheus"`;
    /// else `None`. Scrape `http://<address>/metrics`.
    fn prometheus_address(&self) -> Option<String> {
        self.shared
            .pipeline()
            .and_then(flowtel::Flowtel::prometheus_address)
            .map(|a| a.to_string())
    }

    #[pyo3(signature = (timeout = 5.0))]
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let timeout = duration("flush", timeout)?;
        self.shared.drain(py);
        let Some(p) = self.shared.pipeline() else {
            return Err(flush_error(flowtel::FlushError::ShutDown));
        };
        py.detach(|| p.flush(timeout)).map_err(flush_error)
    }

    #[pyo3(signature = (timeout = 5.0))]
    fn shutdown(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let timeout = duration("shutdown", timeout)?;
        self.shared.drain(py);
        py.detach(|| self.shared.shutdown(timeout))
            .map_err(flush_error)
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.shared.stats_now(py);
        stats_dict(py, &s, self.shared.unmappable.load(Relaxed))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let s = self.shared.stats_now(py);
        format!(
            "<flowtel.Flowtel: {} events recorded, {} spans exported, {} events and {} spans dropped>",
            s.events_recorded,
            s.spans_exported,
            s.events_dropped(),
            s.spans_dropped
        )
    }
}

/// `stats()` as a dict: the SDK's counters, their sum of dropped events,
/// and the values the extension could not convert.
fn stats_dict<'py>(
    py: Python<'py>,
    s: &flowtel::Stats,
    unmappable: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in [
        ("events_recorded", s.events_recorded),
        ("events_processed", s.events_processed),
        ("events_dropped", s.events_dropped()),
        ("events_dropped_queue_full", s.events_dropped_queue_full),
        ("events_invalid", s.events_invalid),
        ("events_unmappable", unmappable),
        ("events_after_shutdown", s.events_after_shutdown),
        ("events_duplicate", s.events_duplicate),
        ("events_late", s.events_late),
        ("spans_created", s.spans_created),
        ("spans_exported", s.spans_exported),
        ("spans_dropped", s.spans_dropped),
        ("export_failures", s.export_failures),
        ("metric_points_exported", s.metric_points_exported),
        ("root_events_dropped", s.root_events_dropped),
        ("cardinality_overflows", s.cardinality_overflows),
        ("runs_shed", s.runs_shed),
        ("attempts_given_up", s.attempts_given_up),
    ] {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// `stats()` of a pipeline that does not exist yet: every counter zero.
#[pyfunction]
pub(crate) fn zero_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    stats_dict(py, &flowtel::Stats::default(), 0)
}
