//! The attempt guard: the idiomatic way for a Rust runtime to record a node
//! attempt, timed with a monotonic clock, with its span id known from the
//! start so that `tracing` spans and outgoing calls can name it as parent.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flowtel_semconv::{event, extra};
use opentelemetry::context::{FutureExt, WithContext};
use opentelemetry::trace::SpanId;
use opentelemetry::{Context, ContextGuard};
use serde_json::json;

use crate::event::FlowEvent;
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

/// Unix ns → seconds, as close as f64 allows.
fn secs(ns: u128) -> f64 {
    (ns / 1_000_000_000) as f64 + (ns % 1_000_000_000) as f64 / 1e9
}

/// The latest timestamp the mapping reads as no later than `ns` (f64
/// seconds are ~240 ns coarse today), so that the attempt's span starts no
/// later than anything that ran inside it.
fn ts_not_after(ns: u128) -> f64 {
    let mut ts = secs(ns);
    while ts > 0.0 && ts_ns(ts) > ns {
        ts = f64::from_bits(ts.to_bits() - 1);
    }
    ts
}

/// The earliest timestamp the mapping reads as no earlier than `ns`.
fn ts_not_before(ns: u128) -> f64 {
    let mut ts = secs(ns);
    while ts_ns(ts) < ns {
        ts = f64::from_bits(ts.to_bits() + 1);
    }
    ts
}

/// Queue a guard's event. Its events are valid by construction; a full
/// queue or a shut-down pipeline is counted, as for `record()`.
fn record(run: &Run, ev: GuardEvent) {
    let _ = run.inner.flowtel.record_guard(ev);
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
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

/// A node name: a `&'static str` (the usual case, node names are
/// constants) is kept as it is, anything else shared once, so that an
/// attempt allocates nothing on the caller's thread for its name.
#[derive(Clone, Debug)]
pub(crate) enum Name {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Name {
    pub(crate) fn new(name: impl Into<Cow<'static, str>>) -> Self {
        match name.into() {
            Cow::Borrowed(s) => Name::Static(s),
            Cow::Owned(s) => Name::Shared(Arc::from(s)),
        }
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Name::Static(s) => s,
            Name::Shared(s) => s,
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

/// An attempt guard's event as it travels to the mapping thread: shared
/// strings and plain numbers, so the caller's thread allocates nothing for
/// the common path; the mapping thread turns it into the equivalent
/// [`FlowEvent`].
pub(crate) struct GuardEvent {
    kind: &'static str,
    run: Arc<str>,
    node: Name,
    attempt: u32,
    ts: f64,
    latency_ms: Option<f64>,
    span_id: Option<SpanId>,
    /// `extra` entries (exception, traceparent, sleep_s, flow_error).
    extra: Vec<(&'static str, serde_json::Value)>,
}

impl GuardEvent {
    pub(crate) fn into_event(self) -> FlowEvent {
        let mut b = FlowEvent::builder(self.kind, self.ts)
            .trace_id(self.run.to_string())
            .attempt(self.attempt);
        b.event.node_name = Some(self.node.to_string());
        b.event.latency_ms = self.latency_ms;
        b.event.span_id = self.span_id;
        for (k, v) in self.extra {
            b.event.extra.insert(k.to_string(), v);
        }
        b.event
    }
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

#[derive(Clone, Copy, Debug)]
enum Kind {
    Error,
    Timeout,
}

/// A failed attempt (an error or a timeout), already recorded: say what
/// the runtime does next, so that retries and terminal failures show in the
/// trace (`flow.node.retry` and `flow.node.failed` events on the run's
/// root) and in the metrics. Doing neither is fine too.
#[derive(Debug)]
pub struct Failure {
    run: Run,
    node: Name,
    attempt: u32,
    kind: Kind,
    exception: String,
    latency_ms: f64,
}

impl Failure {
    fn event(&self, kind: &'static str, attempt: u32) -> GuardEvent {
        GuardEvent {
            kind,
            run: self.run.inner.run_id.clone(),
            node: self.node.clone(),
            attempt,
            ts: secs(unix_ns()),
            latency_ms: None,
            span_id: None,
            extra: vec![("exception", self.exception.clone().into())],
        }
    }

    /// The node will be tried again (attempt number + 1) after `delay`
    /// (records `node_retry`; the runtime does the waiting).
    pub fn retry_after(self, delay: Duration) {
        let mut ev = self.event(event::NODE_RETRY, self.attempt + 1);
        ev.extra.push(("sleep_s", delay.as_secs_f64().into()));
        record(&self.run, ev);
    }

    /// No more attempts: the node failed for good (records `node_failed`
    /// with a `flow_error` as PenguiFlow does: code `NODE_TIMEOUT` or
    /// `NODE_EXCEPTION`); the run's root span gets status ERROR.
    pub fn give_up(self) {
        let (code, message) = match self.kind {
            Kind::Timeout => ("NODE_TIMEOUT", format!("Node '{}' timed out", self.node)),
            Kind::Error => {
                let (ty, msg) = crate::mapping::parse_exception(&self.exception);
                let m = format!("Node '{}' raised {ty}: {msg}", self.node);
                ("NODE_EXCEPTION", m)
            }
        };
        let mut ev = self.event(event::NODE_FAILED, self.attempt);
        ev.latency_ms = Some(self.latency_ms);
        ev.extra
            .push(("flow_error", json!({ "code": code, "message": message })));
        record(&self.run, ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_times_enclose_the_real_ones() {
        for ns in [
            1_795_305_121_123_456_789u128,
            1_795_305_121_000_000_000,
            1_795_305_121_999_999_999,
            1_700_000_000_000_000_001,
        ] {
            assert!(ts_ns(ts_not_after(ns)) <= ns, "{ns}");
            assert!(ns - ts_ns(ts_not_after(ns)) < 1_000, "{ns}");
            assert!(ts_ns(ts_not_before(ns)) >= ns, "{ns}");
            assert!(ts_ns(ts_not_before(ns)) - ns < 1_000, "{ns}");
        }
    }

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
