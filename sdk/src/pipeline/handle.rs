//! The handle users hold: `record()` on the caller's thread, and flush,
//! shutdown and end-run messages through the same queue as events.
//!
//! The handle also keeps the pipeline alive across the two ways a process
//! usually loses telemetry: dropping the last handle without `shutdown()`
//! (the drop flushes, for up to [`DROP_FLUSH_TIMEOUT`]) and `fork()` (the
//! child gets a pipeline of its own on its first call).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock, Weak};
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry::trace::SpanId;
use opentelemetry_sdk::trace::SpanData;

use super::batch::Batches;
use super::buffer::SpanBuffer;
use super::{fork, wait, Msg};
use crate::config::Config;
use crate::error::{FlushError, RecordError};
use crate::event::FlowEvent;
use crate::guard_event::GuardEvent;
use crate::ids::FreshIds;
use crate::stats::{Counters, Stats};

/// A pipeline handle that does not keep it alive: what a `tracing` layer
/// (usually installed for the whole process) holds, so that dropping the
/// user's last [`Flowtel`] still flushes and stops the pipeline.
#[derive(Clone)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) struct WeakFlowtel(Weak<Inner>);

#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
impl WeakFlowtel {
    pub(crate) fn upgrade(&self) -> Option<Flowtel> {
        self.0.upgrade().map(|inner| Flowtel { inner })
    }
}

/// How long dropping the last handle without `shutdown()` waits for the
/// pipeline to export what it holds.
pub const DROP_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The flowtel pipeline. Cheap to clone; every clone feeds the same pipeline.
///
/// ```
/// use std::time::Duration;
/// use flowtel::{Flowtel, FlowEvent};
///
/// let flowtel = Flowtel::builder().with_flow_name("checkout").with_console().build()?;
/// let ev = FlowEvent::builder("node_success", 1_700_000_000.5)
///     .node("charge", "charge-1")
///     .trace_id("3e512c5b0a184257a25c215d19544e6a")
///     .latency_ms(42.0)
///     .build()?;
/// flowtel.record(ev)?; // never blocks
/// flowtel.shutdown(Duration::from_secs(5))?; // exports the run's root span too
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Flowtel {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) tx: SyncSender<Msg>,
    pub(super) stats: Arc<Counters>,
    /// The span buffer, for spans made outside the mapping (`tracing`).
    buffer: Arc<SpanBuffer>,
    /// Span ids attempt guards choose at their start.
    ids: FreshIds,
    pub(super) shut: AtomicBool,
    /// The fork generation this pipeline's threads live in.
    generation: u64,
    /// The settings, to start a pipeline of its own in a forked child.
    pub(super) config: Config,
    /// Batches in the queue, and mapped ones to parse over.
    pub(super) batches: Arc<Batches>,
    /// That child's pipeline (or why it could not start).
    child: OnceLock<Result<Flowtel, String>>,
}

impl Drop for Inner {
    /// The last handle is gone: flush and stop, within
    /// [`DROP_FLUSH_TIMEOUT`], as the OpenTelemetry SDK's providers do.
    fn drop(&mut self) {
        // In a forked child this pipeline's threads do not exist (the
        // child's own pipeline, if any, flushes as `child` drops).
        if fork::generation() != self.generation || self.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        let deadline = Instant::now() + DROP_FLUSH_TIMEOUT;
        let (tx, rx) = mpsc::channel();
        let msg = Msg::Shutdown {
            deadline,
            reply: tx,
        };
        if send_control(&self.tx, msg, deadline, DROP_FLUSH_TIMEOUT).is_ok() {
            let _ = wait(&rx, deadline, DROP_FLUSH_TIMEOUT);
        }
    }
}

/// Control messages must not be dropped like events: retry until the
/// deadline while the queue is full.
fn send_control(
    tx: &SyncSender<Msg>,
    mut msg: Msg,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), FlushError> {
    loop {
        match tx.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Disconnected(_)) => return Err(FlushError::ShutDown),
            Err(TrySendError::Full(m)) => {
                if Instant::now() >= deadline {
                    return Err(FlushError::Timeout(timeout));
                }
                msg = m;
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// Run `f` on a thread of its own and hand its result to a future: the
/// async variants never block an executor thread, on any runtime.
fn off_thread(
    f: impl FnOnce() -> Result<(), FlushError> + Send + 'static,
) -> impl Future<Output = Result<(), FlushError>> + Send + 'static {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = thread::Builder::new()
        .name("flowtel-flush".into())
        .spawn(move || {
            let _ = tx.send(f());
        });
    async move {
        if let Err(e) = spawned {
            return Err(FlushError::Export(format!("cannot start thread: {e}")));
        }
        rx.await.unwrap_or(Err(FlushError::ShutDown))
    }
}

impl std::fmt::Debug for Flowtel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flowtel")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Flowtel {
    /// Hand an event to flowtel. Never blocks and never panics: it validates
    /// the event and queues it for the mapping thread. An invalid event, a
    /// full queue or a shut-down pipeline is reported in the result and
    /// counted in [`stats`](Flowtel::stats) and `flowtel.sdk.events.dropped`.
    pub fn record(&self, event: FlowEvent) -> Result<(), RecordError> {
        self.here()?.enqueue(event, None)
    }

    /// Count an event that could not even be made a [`FlowEvent`]: a value
    /// of the wrong shape from a runtime, a field of the wrong type. It is
    /// dropped and counted like an event that fails validation, in
    /// [`Stats::events_invalid`](crate::Stats::events_invalid) and
    /// `flowtel.sdk.events.dropped` (`flowtel.reason=invalid`); after
    /// shutdown, in `events_after_shutdown`. For bridges and language
    /// bindings that convert events themselves (the Python package counts
    /// what its middleware cannot map here).
    ///
    /// ```
    /// let flowtel = flowtel::Flowtel::builder().with_console().build().unwrap();
    /// flowtel.count_invalid();
    /// assert_eq!(flowtel.stats().events_invalid, 1);
    /// # flowtel.shutdown(std::time::Duration::from_secs(1)).unwrap();
    /// ```
    pub fn count_invalid(&self) {
        let Ok(this) = self.here() else {
            return;
        };
        let c = &this.inner.stats;
        if this.inner.shut.load(Ordering::Acquire) {
            c.events_after_shutdown.fetch_add(1, Ordering::Relaxed);
        } else {
            c.events_invalid.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Like [`record`](Flowtel::record), but when the queue is full wait up
    /// to `timeout` for room instead of dropping the event: backpressure for
    /// producers that can afford to wait (log replays, bridges). Never use it
    /// on a flow runtime's hot path.
    pub fn record_wait(&self, event: FlowEvent, timeout: Duration) -> Result<(), RecordError> {
        self.here()?.enqueue(event, Some(timeout))
    }

    pub(super) fn from_parts(
        tx: SyncSender<Msg>,
        stats: Arc<Counters>,
        buffer: Arc<SpanBuffer>,
        config: Config,
        batches: Arc<Batches>,
    ) -> Self {
        Flowtel {
            inner: Arc::new(Inner {
                tx,
                stats,
                buffer,
                ids: FreshIds::new(),
                shut: AtomicBool::new(false),
                generation: fork::generation(),
                config,
                batches,
                child: OnceLock::new(),
            }),
        }
    }

    /// The pipeline of this process: this one, or in a forked child a new
    /// one built from the same settings (started on first use).
    pub(super) fn here(&self) -> Result<&Flowtel, RecordError> {
        if fork::generation() == self.inner.generation {
            return Ok(self);
        }
        let child = self.inner.child.get_or_init(|| {
            Flowtel::start(self.inner.config.clone()).map_err(|e| {
                eprintln!("flowtel: warning: cannot restart the pipeline after fork: {e}");
                e.to_string()
            })
        });
        match child {
            Ok(c) => c.here(),
            Err(e) => Err(RecordError::Forked(e.clone())),
        }
    }

    /// A span id for an attempt that is starting (see [`FreshIds`]).
    pub(crate) fn fresh_span_id(&self) -> SpanId {
        match self.here() {
            Ok(this) => this.inner.ids.next(),
            Err(_) => self.inner.ids.next(),
        }
    }

    /// A span finished outside the mapping (a `tracing` span): into the same
    /// bounded buffer as the mapping's spans, counted the same way, never
    /// waiting (it is the caller's thread).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn offer_span(&self, span: SpanData) {
        let Ok(this) = self.here() else {
            return;
        };
        let c = &this.inner.stats;
        c.spans_created.fetch_add(1, Ordering::Relaxed);
        this.inner.buffer.offer(span.into(), c);
    }

    /// A handle that does not keep the pipeline alive (see
    /// [`WeakFlowtel`]).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn downgrade(&self) -> WeakFlowtel {
        WeakFlowtel(Arc::downgrade(&self.inner))
    }

    /// An attempt guard's event: valid by construction and compact (no
    /// allocation on the caller's thread); the mapping thread makes the
    /// FlowEvent. Counted like `record()`.
    pub(crate) fn record_guard(&self, event: GuardEvent) -> Result<(), RecordError> {
        let this = self.here()?;
        if this.inner.shut.load(Ordering::Acquire) {
            let c = &this.inner.stats;
            c.events_after_shutdown.fetch_add(1, Ordering::Relaxed);
            return Err(RecordError::ShutDown);
        }
        this.send_event(Msg::Guard(event), None)
    }

    /// Validate and queue; with a wait, wait up to that long for room.
    fn enqueue(&self, event: FlowEvent, wait: Option<Duration>) -> Result<(), RecordError> {
        let c = &self.inner.stats;
        if self.inner.shut.load(Ordering::Acquire) {
            c.events_after_shutdown.fetch_add(1, Ordering::Relaxed);
            return Err(RecordError::ShutDown);
        }
        if let Err(e) = event.validate() {
            c.events_invalid.fetch_add(1, Ordering::Relaxed);
            return Err(RecordError::Invalid(e));
        }
        self.send_event(Msg::Event(event), wait)
    }

    /// Queue an event message; with a wait, wait up to that long for room
    /// (the clock is read only once the queue is found full).
    fn send_event(&self, mut msg: Msg, wait: Option<Duration>) -> Result<(), RecordError> {
        let c = &self.inner.stats;
        let mut deadline = None;
        loop {
            match self.inner.tx.try_send(msg) {
                Ok(()) => {
                    c.events_recorded.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(TrySendError::Full(m)) => {
                    let now = Instant::now();
                    match wait.map(|w| *deadline.get_or_insert(now + w)) {
                        Some(d) if now < d => {
                            msg = m;
                            thread::sleep(Duration::from_micros(50));
                        }
                        _ => {
                            c.add_queue_full(1);
                            return Err(RecordError::QueueFull);
                        }
                    }
                }
                Err(TrySendError::Disconnected(_)) => {
                    c.events_after_shutdown.fetch_add(1, Ordering::Relaxed);
                    return Err(RecordError::ShutDown);
                }
            }
        }
    }

    /// End the run `trace_id` now: its root span (and any attempt that
    /// started and never finished) is exported without waiting for the idle
    /// timeout. Later events of the run still produce attempt spans under the
    /// same root. Does nothing if the run is not open.
    pub fn end_run(&self, trace_id: impl Into<String>) -> Result<(), RecordError> {
        let this = self.here()?;
        if !std::ptr::eq(this, self) {
            return this.end_run(trace_id);
        }
        if self.inner.shut.load(Ordering::Acquire) {
            return Err(RecordError::ShutDown);
        }
        self.inner
            .tx
            .try_send(Msg::EndRun(trace_id.into()))
            .map_err(|e| match e {
                TrySendError::Full(_) => RecordError::QueueFull,
                TrySendError::Disconnected(_) => RecordError::ShutDown,
            })
    }

    /// Where the Prometheus endpoint listens, when metrics go to
    /// [`Exporter::Prometheus`](crate::Exporter::Prometheus): the bound
    /// address, with the port the system chose for port 0. Scrape
    /// `http://<address>/metrics`.
    pub fn prometheus_address(&self) -> Option<std::net::SocketAddr> {
        let this = self.here().unwrap_or(self);
        this.inner.stats.prometheus_address.get().copied()
    }

    /// Counters of what flowtel did and dropped so far.
    pub fn stats(&self) -> Stats {
        match self.here() {
            Ok(this) => this.inner.stats.snapshot(),
            Err(_) => self.inner.stats.snapshot(),
        }
    }

    /// Export everything recorded so far (spans of finished attempts and the
    /// current metric values) and wait up to `timeout` for the exporter to
    /// acknowledge. Open runs stay open: their root spans are exported when
    /// they end (see [`end_run`](Flowtel::end_run)).
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        let this = self.here().map_err(|_| FlushError::ShutDown)?;
        if !std::ptr::eq(this, self) {
            return this.flush(timeout);
        }
        if self.inner.shut.load(Ordering::Acquire) {
            return Err(FlushError::ShutDown);
        }
        let deadline = Instant::now() + timeout;
        let (stx, srx) = mpsc::channel();
        let (mtx, mrx) = mpsc::channel();
        send_control(
            &self.inner.tx,
            Msg::Flush {
                spans: stx,
                metrics: mtx,
            },
            deadline,
            timeout,
        )?;
        let spans = wait(&srx, deadline, timeout);
        let metrics = wait(&mrx, deadline, timeout);
        spans.and(metrics)
    }

    /// End every open run, export everything, and stop. Returns within
    /// `timeout` (plus scheduling noise) even when the collector is
    /// unreachable; what could not be delivered by then is lost and
    /// reported in the error. Later `record()` calls return
    /// [`RecordError::ShutDown`].
    pub fn shutdown(&self, timeout: Duration) -> Result<(), FlushError> {
        let this = self.here().map_err(|_| FlushError::ShutDown)?;
        if !std::ptr::eq(this, self) {
            return this.shutdown(timeout);
        }
        if self.inner.shut.swap(true, Ordering::AcqRel) {
            return Err(FlushError::ShutDown);
        }
        let deadline = Instant::now() + timeout;
        let (tx, rx) = mpsc::channel();
        send_control(
            &self.inner.tx,
            Msg::Shutdown {
                deadline,
                reply: tx,
            },
            deadline,
            timeout,
        )?;
        wait(&rx, deadline, timeout)
    }

    /// [`flush`](Flowtel::flush) for async code: the wait happens on a
    /// thread of flowtel's, never on the executor's, whatever the runtime
    /// (tokio of any flavour, async-std, a plain `block_on`). The flush
    /// starts when this is called.
    ///
    /// ```
    /// # let flowtel = flowtel::Flowtel::builder().with_in_memory(&flowtel::InMemory::new()).build().unwrap();
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// rt.block_on(async {
    ///     flowtel.flush_async(std::time::Duration::from_secs(5)).await.unwrap();
    ///     flowtel.shutdown_async(std::time::Duration::from_secs(5)).await.unwrap();
    /// });
    /// ```
    pub fn flush_async(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), FlushError>> + Send + 'static {
        let this = self.clone();
        off_thread(move || this.flush(timeout))
    }

    /// [`shutdown`](Flowtel::shutdown) for async code; see
    /// [`flush_async`](Flowtel::flush_async).
    pub fn shutdown_async(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), FlushError>> + Send + 'static {
        let this = self.clone();
        off_thread(move || this.shutdown(timeout))
    }
}
