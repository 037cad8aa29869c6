//! The attempt guard: the idiomatic way for a Rust runtime to record a node
//! attempt, timed with a monotonic clock, with its span id known from the
//! start so that `tracing` spans and outgoing calls can name it as parent.

use std::fmt;
use std::future::Future;
use std::time::Instant;

use flowtel_semconv::{event, extra};
use opentelemetry::context::{FutureExt, WithContext};
use opentelemetry::trace::SpanId;
use opentelemetry::{Context, ContextGuard};

use crate::failure::{Failure, Kind};
use crate::guard_event::{record, ts_not_after, ts_not_before, unix_ns, GuardEvent, Name};
use crate::mapping::ts_ns;
use crate::run::Run;
use crate::w3c;

/// One node attempt in progress; created by [`Run::start_attempt`] (or
/// [`Flowtel::start_attempt`](crate::Flowtel::start_attempt)).
///
/// Starting it records `node_start`; exactly one outcome ends it:
/// [`success`](Attempt::success), [`error`](Attempt::error),
/// [`timeout`](Attempt::timeout) or [`cancelled`](Attempt::cancelled).
/// Its duration comes from a monotonic clock, so wall-clock jumps never
/// produce negative or inflated latencies. Dropped without an outcome (a
/// panic unwinding through it, an early `?` return, a future dropped by a
/// timeout or an abort), it still ends its span, with outcome `dropped`
/// and `error.type` `panic` or `AttemptDropped`.
///
/// Its span id is chosen when it starts: `tracing` spans created inside
/// [`within`](Attempt::within) or [`enter`](Attempt::enter) become
/// its children (with the `tracing` feature, see
/// [`Flowtel::tracing_layer`](crate::Flowtel::tracing_layer)), and
/// [`traceparent`](Attempt::traceparent) puts the next service's spans under
/// it.
///
/// ```
/// use std::time::Duration;
/// # let flowtel = flowtel::Flowtel::builder().with_in_memory(&flowtel::InMemory::new()).build().unwrap();
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
/// # rt.block_on(async {
/// # async fn fetch(_: &str) -> Result<String, std::io::Error> { Ok("ok".into()) }
/// let run = flowtel.new_run();
/// for n in 0..3 {
///     let attempt = run.start_attempt("fetch", n);
///     // Held across `.await`; `tracing` spans inside are its children, and
///     // the downstream call continues the trace under it.
///     let result = attempt.within(fetch(&attempt.traceparent())).await;
///     match result {
///         Ok(_) => {
///             attempt.success();
///             break;
///         }
///         Err(e) if n < 2 => {
///             let backoff = Duration::from_millis(10 << n);
///             attempt.error(&e).retry_after(backoff);
///             tokio::time::sleep(backoff).await;
///         }
///         Err(e) => attempt.error(&e).give_up(),
///     }
/// }
/// # });
/// # flowtel.shutdown(Duration::from_secs(5)).unwrap();
/// ```
#[must_use = "an attempt records its end when finished or dropped"]
pub struct Attempt {
    run: Run,
    node: Name,
    attempt: u32,
    span_id: SpanId,
    /// Start as the mapping reads it (unix ns), never after the real start.
    start_ns: u128,
    start: Instant,
    done: bool,
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("run", &self.run)
            .field("node", &self.node)
            .field("attempt", &self.attempt)
            .field("span_id", &self.span_id)
            .finish()
    }
}

/// `error.type` and message of a Rust error: its type name (generic
/// arguments and `dyn ` left out), or, for a string, the text read as a
/// `Type('message')` repr as PenguiFlow writes them.
fn exception<E: fmt::Display + ?Sized>(err: &E) -> String {
    let name = std::any::type_name::<E>();
    if matches!(name, "str" | "alloc::string::String") {
        return err.to_string();
    }
    let name = name.split('<').next().unwrap_or(name);
    let name = name.strip_prefix("dyn ").unwrap_or(name);
    format!("{name}('{err}')")
}

impl Attempt {
    pub(crate) fn start(run: Run, node: Name, attempt: u32, traceparent: Option<String>) -> Self {
        let span_id = run.inner.flowtel.fresh_span_id();
        let start = Instant::now();
        let ts = ts_not_after(unix_ns());
        let a = Attempt {
            run,
            node,
            attempt,
            span_id,
            start_ns: ts_ns(ts),
            start,
            done: false,
        };
        let mut ev = a.event(event::NODE_START, ts, 0.0);
        if let Some(tp) = traceparent {
            ev.extra.push((extra::TRACEPARENT, tp.into()));
        }
        record(&a.run, ev);
        a
    }

    fn event(&self, kind: &'static str, ts: f64, latency_ms: f64) -> GuardEvent {
        GuardEvent {
            kind,
            run: self.run.inner.run_id.clone(),
            node: self.node.clone(),
            attempt: self.attempt,
            ts,
            latency_ms: Some(latency_ms),
            span_id: Some(self.span_id),
            extra: Vec::new(),
        }
    }

    /// Record the terminal event `kind`; returns its latency (ms).
    fn end(&mut self, kind: &'static str, exception: Option<String>) -> f64 {
        self.done = true;
        let elapsed = self.start.elapsed().as_nanos();
        // The end no earlier than the real one, the start as recorded.
        let ts = ts_not_before(self.start_ns + elapsed);
        let latency_ms = (ts_ns(ts) - self.start_ns) as f64 / 1e6;
        let mut ev = self.event(kind, ts, latency_ms);
        if let Some(x) = exception {
            ev.extra.push(("exception", x.into()));
        }
        record(&self.run, ev);
        latency_ms
    }

    fn failure(mut self, kind: Kind, exception: String) -> Failure {
        let ev = match kind {
            Kind::Error => event::NODE_ERROR,
            Kind::Timeout => event::NODE_TIMEOUT,
        };
        let latency_ms = self.end(ev, Some(exception.clone()));
        Failure {
            run: self.run.clone(),
            node: self.node.clone(),
            attempt: self.attempt,
            kind,
            exception,
            latency_ms,
        }
    }

    /// The attempt succeeded.
    pub fn success(mut self) {
        self.end(event::NODE_SUCCESS, None);
    }

    /// The attempt failed with `err`: `error.type` is its type name and
    /// `exception.message` its text (a string is read as a
    /// `Type('message')` repr, PenguiFlow's format). Returns the failure,
    /// to schedule a retry or give the node up.
    pub fn error<E: fmt::Display + ?Sized>(self, err: &E) -> Failure {
        let x = exception(err);
        self.failure(Kind::Error, x)
    }

    /// The attempt timed out.
    pub fn timeout(self) -> Failure {
        self.failure(Kind::Timeout, "TimeoutError()".into())
    }

    /// The attempt was cancelled (its run was cancelled, or the runtime
    /// stopped it); the span ends with outcome `cancelled`.
    pub fn cancelled(mut self) {
        self.end(event::NODE_TRACE_CANCELLED, None);
    }

    /// The attempt's span id, fixed at its start.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The W3C `traceparent` header value naming this attempt's span: send
    /// it with the attempt's outgoing calls so that the next service's spans
    /// join the run's trace under this attempt.
    ///
    /// ```
    /// # let flowtel = flowtel::Flowtel::builder().with_in_memory(&flowtel::InMemory::new()).build().unwrap();
    /// let attempt = flowtel.start_attempt("3e512c5b0a184257a25c215d19544e6a", "call", 0);
    /// let tp = attempt.traceparent();
    /// assert!(tp.starts_with("00-3e512c5b0a184257a25c215d19544e6a-"));
    /// assert!(tp.ends_with(&format!("{}-01", attempt.span_id())));
    /// attempt.success();
    /// # flowtel.shutdown(std::time::Duration::from_secs(5)).unwrap();
    /// ```
    pub fn traceparent(&self) -> String {
        w3c::traceparent(self.run.inner.trace_id, self.span_id)
    }

    /// An OpenTelemetry context whose current span is this attempt's: the
    /// parent of spans started in it, and what a propagator injects
    /// (`TraceContextPropagator::inject_context`) into outgoing calls.
    pub fn context(&self) -> Context {
        w3c::context_of(w3c::span_context(self.run.inner.trace_id, self.span_id))
    }

    /// Run `future` within this attempt: on every poll the attempt's
    /// context is current, so `tracing` spans (and OpenTelemetry spans)
    /// started in it are the attempt's children, on any executor and any
    /// thread the future moves to. (Not called `instrument`: every type has
    /// `tracing::Instrument::instrument`, which would shadow it.)
    pub fn within<F: Future>(&self, future: F) -> WithContext<F> {
        future.with_context(self.context())
    }

    /// Make this attempt's context current on this thread until the guard
    /// drops (synchronous code; for async code use
    /// [`within`](Attempt::within)).
    ///
    /// ```
    /// # let flowtel = flowtel::Flowtel::builder().with_in_memory(&flowtel::InMemory::new()).build().unwrap();
    /// let attempt = flowtel.start_attempt("3e512c5b0a184257a25c215d19544e6a", "parse", 0);
    /// {
    ///     let _in = attempt.enter();
    ///     // tracing::info_span!("tokenize").in_scope(|| ...) is a child here
    /// }
    /// attempt.success();
    /// # flowtel.shutdown(std::time::Duration::from_secs(5)).unwrap();
    /// ```
    pub fn enter(&self) -> ContextGuard {
        self.context().attach()
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.done {
            let why = if std::thread::panicking() {
                "panic('the thread panicked during the attempt')"
            } else {
                "AttemptDropped('dropped without an outcome')"
            };
            self.end(event::NODE_DROPPED, Some(why.into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_name_the_error_type() {
        let io = std::io::Error::other("disk on fire");
        assert_eq!(exception(&io), "std::io::error::Error('disk on fire')");
        let boxed: Box<dyn std::error::Error> = "x".into();
        assert_eq!(exception(&*boxed), "core::error::Error('x')");
        assert_eq!(exception("ValueError('boom')"), "ValueError('boom')");
        assert_eq!(exception(&"boom".to_string()), "boom");
    }
}
