//! A handle on one run (one trace) for Rust runtimes: where its attempts
//! start, and where an inbound W3C `traceparent` is attached to it.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::TraceId;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

use crate::attempt::Attempt;
use crate::error::RecordError;
use crate::guard_event::Name;
use crate::ids;
use crate::pipeline::Flowtel;

/// One run of a flow: one trace, whose root span flowtel exports when the
/// run ends. Cheap to clone; clones share the run.
///
/// Start one with [`Flowtel::run`] (the runtime's own run id) or
/// [`Flowtel::new_run`] (a fresh trace id), then time each node attempt
/// with [`Run::start_attempt`].
///
/// ```
/// # let sink = flowtel::InMemory::new();
/// # let flowtel = flowtel::Flowtel::builder().with_in_memory(&sink).build().unwrap();
/// // The HTTP request that triggered this run carried a traceparent:
/// let run = flowtel
///     .new_run()
///     .with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// let attempt = run.start_attempt("fetch", 0);
/// attempt.success();
/// run.end()?; // export the root span now instead of after the idle timeout
/// # flowtel.shutdown(std::time::Duration::from_secs(5)).unwrap();
/// # let root = sink.spans().into_iter().find(|s| s.parent_span_id == opentelemetry::trace::SpanId::INVALID).unwrap();
/// # assert_eq!(root.links.links[0].span_context.span_id().to_string(), "00f067aa0ba902b7");
/// # Ok::<(), flowtel::RecordError>(())
/// ```
#[derive(Clone)]
pub struct Run {
    pub(crate) inner: Arc<RunInner>,
}

pub(crate) struct RunInner {
    pub(crate) flowtel: Flowtel,
    /// The run id as the runtime names it (the events' `trace_id`).
    pub(crate) run_id: Arc<str>,
    /// The OTel trace id it maps to.
    pub(crate) trace_id: TraceId,
    /// An inbound `traceparent` not yet sent: the first attempt's start
    /// carries it to the mapping (as `extra.traceparent`, like a bridged
    /// event would).
    pub(crate) traceparent: Mutex<Option<String>>,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("run_id", &self.inner.run_id)
            .field("trace_id", &self.inner.trace_id)
            .finish()
    }
}

impl Flowtel {
    /// The run `run_id`: the runtime's own id for it, the `trace_id` of its
    /// events (32 hex characters are used as the trace id unchanged; any
    /// other string is hashed to one and kept as `flow.run.id`).
    ///
    /// ```
    /// # let flowtel = flowtel::Flowtel::builder().with_in_memory(&flowtel::InMemory::new()).build().unwrap();
    /// let run = flowtel.run("3e512c5b0a184257a25c215d19544e6a");
    /// assert_eq!(run.trace_id(), "3e512c5b0a184257a25c215d19544e6a");
    /// # flowtel.shutdown(std::time::Duration::from_secs(5)).unwrap();
    /// ```
    pub fn run(&self, run_id: impl Into<String>) -> Run {
        let run_id: String = run_id.into();
        let (trace_id, _) = ids::trace_id_for(&run_id);
        Run {
            inner: Arc::new(RunInner {
                flowtel: self.clone(),
                run_id: Arc::from(run_id),
                trace_id,
                traceparent: Mutex::new(None),
            }),
        }
    }

    /// A new run with a random trace id.
    ///
    /// ```
    /// # let flowtel = flowtel::Flowtel::builder().with_in_memory(&flowtel::InMemory::new()).build().unwrap();
    /// let run = flowtel.new_run();
    /// assert_eq!(run.trace_id().len(), 32);
    /// assert_ne!(run.trace_id(), flowtel.new_run().trace_id());
    /// # flowtel.shutdown(std::time::Duration::from_secs(5)).unwrap();
    /// ```
    pub fn new_run(&self) -> Run {
        self.run(RandomIdGenerator::default().new_trace_id().to_string())
    }

    /// Start an attempt of `node` in run `run_id`: shorthand for
    /// `self.run(run_id).start_attempt(node, attempt)`.
    ///
    /// ```
    /// # let flowtel = flowtel::Flowtel::builder().with_in_memory(&flowtel::InMemory::new()).build().unwrap();
    /// let attempt = flowtel.start_attempt("3e512c5b0a184257a25c215d19544e6a", "triage", 0);
    /// // ... run the node ...
    /// attempt.success();
    /// # flowtel.shutdown(std::time::Duration::from_secs(5)).unwrap();
    /// ```
    pub fn start_attempt(
        &self,
        run_id: impl Into<String>,
        node: impl Into<Cow<'static, str>>,
        attempt: u32,
    ) -> Attempt {
        self.run(run_id).start_attempt(node, attempt)
    }
}

impl Run {
    /// Link the run to the span named by a W3C `traceparent` header value,
    /// e.g. of the HTTP request that triggered it: the run's root span
    /// carries a link to that span (the run keeps its own trace id; see the
    /// crate docs, "W3C trace context"). An invalid value is ignored. Takes
    /// effect with the run's next attempt start.
    pub fn with_traceparent(self, traceparent: impl Into<String>) -> Self {
        *lock(&self.inner.traceparent) = Some(traceparent.into());
        self
    }

    /// The run id, as the events' `trace_id`.
    pub fn trace_id(&self) -> &str {
        &self.inner.run_id
    }

    /// Record `node_start` for an attempt of `node` (0-based `attempt`) and
    /// return the guard that records its end; see [`Attempt`]. A
    /// `&'static str` name costs no allocation; a `String` one.
    pub fn start_attempt(&self, node: impl Into<Cow<'static, str>>, attempt: u32) -> Attempt {
        let traceparent = lock(&self.inner.traceparent).take();
        Attempt::start(self.clone(), Name::new(node), attempt, traceparent)
    }

    /// End the run now: its root span is exported without waiting for the
    /// idle timeout (see [`Flowtel::end_run`]).
    pub fn end(&self) -> Result<(), RecordError> {
        self.inner.flowtel.end_run(self.inner.run_id.to_string())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
