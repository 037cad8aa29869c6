//! The pipeline: `record()` on the caller's thread, mapping on flowtel's
//! thread, export on flowtel's runtime.
//!
//! ```text
//! caller ──record()──▶ bounded queue ──▶ flowtel-map thread ──▶ span buffer ──▶ export task
//!  (validate, try_send;   (drops counted)   (spans + metrics)     (bounded,        (flowtel's own
//!   never blocks)                                                   retried)         tokio runtime)
//! ```
//!
//! Flush and shutdown travel through the same queue as events, so they
//! cover everything recorded before them, and the caller waits for the
//! answer with a deadline: they return an error instead of hanging, from any
//! thread, inside or outside any tokio runtime.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use tokio::sync::{mpsc as tmpsc, Notify};

use crate::config::{Config, FlowtelBuilder, Target};
use crate::error::{BuildError, FlushError, RecordError};
use crate::event::FlowEvent;
use crate::export::{
    self, CallbackSpanExporter, ConsoleMetricExporter, ConsoleSpanExporter, MetricExport,
};
use crate::metrics::FlowMetrics;
use crate::spans::{Effects, SpanMapper};
use crate::stats::{Counters, Stats};

type Reply = mpsc::Sender<Result<(), FlushError>>;

enum Msg {
    Event(FlowEvent),
    EndRun(String),
    Flush { spans: Reply, metrics: Reply },
    Shutdown { deadline: Instant, reply: Reply },
}

enum ExportCmd {
    Flush(Reply),
    Shutdown(Instant, Reply),
}

/// Finished spans waiting for export. Bounded: when full, new spans are
/// dropped and counted.
struct SpanBuffer {
    queue: Mutex<VecDeque<SpanData>>,
    capacity: usize,
    batch: usize,
    ready: Notify,
    /// With backpressure, the mapping thread waits here for room.
    room: Condvar,
    backpressure: bool,
}

/// With backpressure, how long the mapping thread waits for an exporter
/// that makes no progress at all before it drops (and counts) after all.
const STUCK_EXPORTER: Duration = Duration::from_secs(60);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the queue inconsistent
    // (push/pop only), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SpanBuffer {
    fn push(&self, spans: &mut Vec<SpanData>, stats: &Counters) {
        if spans.is_empty() {
            return;
        }
        let mut q = lock(&self.queue);
        if self.backpressure {
            let mut last_len = q.len();
            let mut last_progress = Instant::now();
            while q.len() + spans.len() > self.capacity && last_progress.elapsed() < STUCK_EXPORTER
            {
                self.ready.notify_one();
                q = self
                    .room
                    .wait_timeout(q, Duration::from_millis(100))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
                if q.len() < last_len {
                    last_progress = Instant::now();
                }
                last_len = q.len();
            }
        }
        let room = self.capacity.saturating_sub(q.len());
        if spans.len() > room {
            stats.add_spans_dropped((spans.len() - room) as u64);
            spans.truncate(room);
        }
        q.extend(spans.drain(..));
        if q.len() >= self.batch {
            self.ready.notify_one();
        }
    }

    fn take_batch(&self) -> Vec<SpanData> {
        let mut q = lock(&self.queue);
        let n = q.len().min(self.batch);
        let batch = q.drain(..n).collect();
        self.room.notify_one();
        batch
    }

    /// Put a batch whose export failed back at the front, oldest first.
    fn requeue(&self, batch: Vec<SpanData>, stats: &Counters) {
        let mut q = lock(&self.queue);
        let room = self.capacity.saturating_sub(q.len());
        let keep = batch.len().min(room);
        if keep < batch.len() {
            stats.add_spans_dropped((batch.len() - keep) as u64);
        }
        for s in batch.into_iter().take(keep).rev() {
            q.push_front(s);
        }
    }
}

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
    inner: Arc<Inner>,
}

struct Inner {
    tx: SyncSender<Msg>,
    stats: Arc<Counters>,
    shut: AtomicBool,
}

impl std::fmt::Debug for Flowtel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flowtel")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Flowtel {
    /// A builder with every setting at its default (see [`FlowtelBuilder`]).
    pub fn builder() -> FlowtelBuilder {
        FlowtelBuilder::default()
    }

    /// Hand an event to flowtel. Never blocks and never panics: it validates
    /// the event and queues it for the mapping thread. An invalid event, a
    /// full queue or a shut-down pipeline is reported in the result and
    /// counted in [`stats`](Flowtel::stats) and `flowtel.sdk.events.dropped`.
    pub fn record(&self, event: FlowEvent) -> Result<(), RecordError> {
        self.enqueue(event, None)
    }

    /// Like [`record`](Flowtel::record), but when the queue is full wait up
    /// to `timeout` for room instead of dropping the event: backpressure for
    /// producers that can afford to wait (log replays, bridges). Never use it
    /// on a flow runtime's hot path.
    pub fn record_wait(&self, event: FlowEvent, timeout: Duration) -> Result<(), RecordError> {
        self.enqueue(event, Some(Instant::now() + timeout))
    }

    /// Validate and queue; with a deadline, wait for room until then.
    fn enqueue(&self, event: FlowEvent, deadline: Option<Instant>) -> Result<(), RecordError> {
        let c = &self.inner.stats;
        if self.inner.shut.load(Ordering::Acquire) {
            c.events_after_shutdown.fetch_add(1, Ordering::Relaxed);
            return Err(RecordError::ShutDown);
        }
        if let Err(e) = event.validate() {
            c.events_invalid.fetch_add(1, Ordering::Relaxed);
            return Err(RecordError::Invalid(e));
        }
        let mut msg = Msg::Event(event);
        loop {
            match self.inner.tx.try_send(msg) {
                Ok(()) => {
                    c.events_recorded.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(TrySendError::Full(m)) => match deadline {
                    Some(d) if Instant::now() < d => {
                        msg = m;
                        thread::sleep(Duration::from_micros(50));
                    }
                    _ => {
                        c.add_queue_full();
                        return Err(RecordError::QueueFull);
                    }
                },
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

    /// Counters of what flowtel did and dropped so far.
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }

    /// Export everything recorded so far (spans of finished attempts and the
    /// current metric values) and wait up to `timeout` for the exporter to
    /// acknowledge. Open runs stay open: their root spans are exported when
    /// they end (see [`end_run`](Flowtel::end_run)).
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        if self.inner.shut.load(Ordering::Acquire) {
            return Err(FlushError::ShutDown);
        }
        let deadline = Instant::now() + timeout;
        let (stx, srx) = mpsc::channel();
        let (mtx, mrx) = mpsc::channel();
        self.send_control(
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
        if self.inner.shut.swap(true, Ordering::AcqRel) {
            return Err(FlushError::ShutDown);
        }
        let deadline = Instant::now() + timeout;
        let (tx, rx) = mpsc::channel();
        self.send_control(
            Msg::Shutdown {
                deadline,
                reply: tx,
            },
            deadline,
            timeout,
        )?;
        wait(&rx, deadline, timeout)
    }

    /// Control messages must not be dropped like events: retry until the
    /// deadline while the queue is full.
    fn send_control(
        &self,
        mut msg: Msg,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), FlushError> {
        loop {
            match self.inner.tx.try_send(msg) {
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

    pub(crate) fn start(config: Config) -> Result<Flowtel, BuildError> {
        let stats = Arc::new(Counters::default());
        let target = config.resolved_target();

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("flowtel-export")
            .enable_all()
            .build()
            .map_err(BuildError::Runtime)?;
        // tonic creates its (lazy) channel on the current runtime.
        let _enter = runtime.enter();

        let mut resource = Resource::builder();
        if let Some(name) = &config.service_name {
            resource = resource.with_service_name(name.clone());
        }
        let resource = resource.build();

        let interval = config.metric_interval;
        let meter_provider = SdkMeterProvider::builder().with_resource(resource.clone());
        let handle = runtime.handle().clone();
        let meter_provider = match &target {
            Target::Otlp => {
                let e = export::otlp_metric_exporter(&config)?;
                meter_provider.with_reader(periodic(counted(e, &handle, &stats), interval))
            }
            Target::Console => meter_provider.with_reader(periodic(
                counted(ConsoleMetricExporter, &handle, &stats),
                interval,
            )),
            Target::InMemory(m) => meter_provider.with_reader(periodic(
                counted(m.metrics.clone(), &handle, &stats),
                interval,
            )),
            // Spans only: the metrics are recorded and go nowhere.
            Target::Callback(_) => meter_provider,
        }
        .build();
        let meter = meter_provider.meter_with_scope(
            InstrumentationScope::builder(flowtel_semconv::span::SCOPE)
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );

        let buffer = Arc::new(SpanBuffer {
            queue: Mutex::new(VecDeque::new()),
            capacity: config.max_buffered_spans,
            batch: config.max_export_batch,
            ready: Notify::new(),
            room: Condvar::new(),
            backpressure: config.backpressure,
        });
        let loop_cfg = ExportLoop {
            buffer: buffer.clone(),
            stats: stats.clone(),
            delay: config.span_schedule_delay,
            request_timeout: config.timeout_for("TRACES")? + Duration::from_secs(1),
        };
        let mut cmd_txs = Vec::new();
        match &target {
            Target::Otlp => {
                // Several requests in flight, one exporter each (an
                // exporter's export() must not run concurrently with itself).
                for _ in 0..OTLP_EXPORTS_IN_FLIGHT {
                    let mut e = export::otlp_span_exporter(&config)?;
                    e.set_resource(&resource);
                    spawn_loop(&runtime, &loop_cfg, e, true, &mut cmd_txs);
                }
            }
            Target::Console => spawn_loop(
                &runtime,
                &loop_cfg,
                ConsoleSpanExporter,
                false,
                &mut cmd_txs,
            ),
            Target::InMemory(m) => {
                spawn_loop(&runtime, &loop_cfg, m.spans.clone(), false, &mut cmd_txs)
            }
            Target::Callback(f) => spawn_loop(
                &runtime,
                &loop_cfg,
                CallbackSpanExporter(f.clone()),
                false,
                &mut cmd_txs,
            ),
        }
        drop(_enter);

        let (tx, rx) = mpsc::sync_channel(config.queue_capacity);
        let worker = Worker {
            mapper: SpanMapper::new(&config, stats.clone()),
            metrics: FlowMetrics::new(&meter, &config, stats.clone()),
            meter_provider,
            buffer,
            cmd_txs,
            stats: stats.clone(),
            tick: (config.run_idle_timeout / 4)
                .clamp(Duration::from_millis(10), Duration::from_secs(1)),
        };
        thread::Builder::new()
            .name("flowtel-map".into())
            .spawn(move || worker.run(rx, runtime))
            .map_err(BuildError::Runtime)?;

        Ok(Flowtel {
            inner: Arc::new(Inner {
                tx,
                stats,
                shut: AtomicBool::new(false),
            }),
        })
    }
}

/// Every metric exporter is wrapped: see [`MetricExport`].
fn counted<E: PushMetricExporter>(
    inner: E,
    handle: &tokio::runtime::Handle,
    stats: &Arc<Counters>,
) -> MetricExport<E> {
    MetricExport {
        inner,
        handle: handle.clone(),
        stats: stats.clone(),
    }
}

/// A periodic reader; code's interval wins over `OTEL_METRIC_EXPORT_INTERVAL`
/// (which the SDK reads itself).
fn periodic<E: PushMetricExporter>(exporter: E, interval: Option<Duration>) -> PeriodicReader<E> {
    let b = PeriodicReader::builder(exporter);
    match interval {
        Some(i) => b.with_interval(i).build(),
        None => b.build(),
    }
}

fn wait(
    rx: &Receiver<Result<(), FlushError>>,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), FlushError> {
    let left = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(left) {
        Ok(r) => r,
        Err(RecvTimeoutError::Timeout) => Err(FlushError::Timeout(timeout)),
        Err(RecvTimeoutError::Disconnected) => Err(FlushError::ShutDown),
    }
}

/// Runs `f` on a helper thread and sends its result to `reply`, so that a
/// slow metric export never stalls event mapping.
fn on_helper(f: impl FnOnce() -> Result<(), FlushError> + Send + 'static, reply: Reply) {
    let spawned = thread::Builder::new()
        .name("flowtel-metrics-flush".into())
        .spawn({
            let reply = reply.clone();
            move || {
                let _ = reply.send(f());
            }
        });
    if let Err(e) = spawned {
        let _ = reply.send(Err(FlushError::Export(format!("cannot start thread: {e}"))));
    }
}

/// Start one export loop on the runtime; its command sender joins `txs`.
fn spawn_loop<E: SpanExporter + 'static>(
    runtime: &tokio::runtime::Runtime,
    cfg: &ExportLoop,
    exporter: E,
    retry: bool,
    txs: &mut Vec<tmpsc::UnboundedSender<ExportCmd>>,
) {
    let (tx, rx) = tmpsc::unbounded_channel();
    txs.push(tx);
    runtime.spawn(cfg.clone().run(exporter, rx, retry));
}

/// Every export loop's answer; the first failure wins.
fn all_of(replies: Vec<Receiver<Result<(), FlushError>>>) -> Result<(), FlushError> {
    replies
        .iter()
        .map(|rx| rx.recv().unwrap_or(Err(FlushError::ShutDown)))
        .fold(Ok(()), Result::and)
}

fn metric_result(r: opentelemetry_sdk::error::OTelSdkResult) -> Result<(), FlushError> {
    r.map_err(|e| FlushError::Export(format!("metrics: {e}")))
}

/// After the queue runs dry, the mapping thread naps `BUSY_NAP` at a time
/// for up to `BUSY_POLLS` naps (50 ms) before it parks on the queue.
const BUSY_POLLS: u32 = 250;
const BUSY_NAP: Duration = Duration::from_micros(200);

struct Worker {
    mapper: SpanMapper,
    metrics: FlowMetrics,
    meter_provider: SdkMeterProvider,
    buffer: Arc<SpanBuffer>,
    /// One per export loop.
    cmd_txs: Vec<tmpsc::UnboundedSender<ExportCmd>>,
    stats: Arc<Counters>,
    tick: Duration,
}

impl Worker {
    fn run(mut self, rx: Receiver<Msg>, runtime: tokio::runtime::Runtime) {
        let mut fx = Effects::default();
        let mut pending: Vec<SpanData> = Vec::new();
        let mut last_idle_check = Instant::now();
        let mut empty_polls = 0u32;
        let mut now = Instant::now();
        let mut since_clock = 0u32;
        let shutdown = loop {
            let msg = match rx.try_recv() {
                Ok(m) => {
                    empty_polls = 0;
                    Some(m)
                }
                Err(mpsc::TryRecvError::Empty) => {
                    // Queue drained: hand spans over before sleeping.
                    self.buffer.push(&mut pending, &self.stats);
                    now = Instant::now();
                    empty_polls = empty_polls.saturating_add(1);
                    if empty_polls < BUSY_POLLS {
                        // Still busy: nap without parking, so that senders
                        // never pay for a wake-up (a futex syscall on the
                        // caller's thread per event otherwise).
                        thread::sleep(BUSY_NAP);
                        None
                    } else {
                        let got = rx.recv_timeout(self.tick);
                        now = Instant::now();
                        match got {
                            Ok(m) => {
                                empty_polls = 0;
                                Some(m)
                            }
                            Err(RecvTimeoutError::Timeout) => None,
                            Err(RecvTimeoutError::Disconnected) => break None,
                        }
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => break None,
            };
            match msg {
                Some(Msg::Event(ev)) => {
                    self.stats.events_processed.fetch_add(1, Ordering::Relaxed);
                    self.metrics.record(&ev);
                    // Run idleness needs no better than ~1 ms resolution:
                    // read the clock once per 64 events.
                    since_clock += 1;
                    if since_clock >= 64 {
                        since_clock = 0;
                        now = Instant::now();
                    }
                    self.mapper.on_event(&ev, now, &mut fx);
                }
                Some(Msg::EndRun(id)) => {
                    self.mapper.end_run(&id, &mut fx);
                }
                Some(Msg::Flush { spans, metrics }) => {
                    self.apply(&mut fx, &mut pending);
                    self.buffer.push(&mut pending, &self.stats);
                    let replies = self.broadcast(ExportCmd::Flush);
                    on_helper(move || all_of(replies), spans);
                    let mp = self.meter_provider.clone();
                    on_helper(move || metric_result(mp.force_flush()), metrics);
                }
                Some(Msg::Shutdown { deadline, reply }) => break Some((deadline, reply)),
                None => {}
            }
            self.apply(&mut fx, &mut pending);
            if now.duration_since(last_idle_check) >= self.tick {
                last_idle_check = now;
                self.mapper.end_idle(now, &mut fx);
                self.apply(&mut fx, &mut pending);
            }
            if pending.len() >= 256 {
                self.buffer.push(&mut pending, &self.stats);
            }
        };

        // Shutdown, explicit or because every handle was dropped.
        let (deadline, reply) = match shutdown {
            Some((d, r)) => (d, Some(r)),
            None => (Instant::now() + Duration::from_secs(5), None),
        };
        // Events queued before the shutdown message were already handled in
        // order; anything racing in after it is counted, not lost silently.
        while let Ok(m) = rx.try_recv() {
            if let Msg::Event(_) = m {
                self.stats
                    .events_after_shutdown
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        self.mapper.end_all(&mut fx);
        self.apply(&mut fx, &mut pending);
        self.buffer.push(&mut pending, &self.stats);

        // Spans first, then the final metric export, so that the last
        // self-metrics count every span exported or dropped.
        let replies = self.broadcast(|r| ExportCmd::Shutdown(deadline, r));
        let timeout = deadline.saturating_duration_since(Instant::now());
        let spans = replies
            .iter()
            .map(|rx| wait(rx, deadline, timeout))
            .fold(Ok(()), Result::and);
        self.stats.warn_lost_at_shutdown();
        let (mtx, mrx) = mpsc::channel();
        let mp = self.meter_provider.clone();
        on_helper(move || metric_result(mp.shutdown()), mtx);
        let metrics = wait(&mrx, deadline, timeout);
        let result = spans.and(metrics);
        self.stats.shutdown_summary();
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
        // Never blocks: a metric export still stuck on a dead collector
        // fails on its own time instead of holding this thread.
        runtime.shutdown_background();
    }

    /// Send a command to every export loop; one reply receiver each.
    fn broadcast(&self, cmd: impl Fn(Reply) -> ExportCmd) -> Vec<Receiver<Result<(), FlushError>>> {
        self.cmd_txs
            .iter()
            .map(|tx| {
                let (rtx, rrx) = mpsc::channel();
                let _ = tx.send(cmd(rtx));
                rrx
            })
            .collect()
    }

    /// Feed what the mapping produced to the metrics and the span queue.
    fn apply(&mut self, fx: &mut Effects, pending: &mut Vec<SpanData>) {
        for (node, delta) in fx.active.drain(..) {
            self.metrics.active(&node, delta);
        }
        if !fx.spans.is_empty() {
            self.stats
                .spans_created
                .fetch_add(fx.spans.len() as u64, Ordering::Relaxed);
            pending.append(&mut fx.spans);
        }
    }
}

/// OTLP export requests in flight at once.
const OTLP_EXPORTS_IN_FLIGHT: usize = 4;

#[derive(Clone)]
struct ExportLoop {
    buffer: Arc<SpanBuffer>,
    stats: Arc<Counters>,
    delay: Duration,
    request_timeout: Duration,
}

impl ExportLoop {
    /// Export buffered spans in batches: when a batch is full, every
    /// `delay`, and on flush. A failed batch goes back to the front of the
    /// buffer and is retried with backoff, so an outage shorter than the
    /// buffer loses nothing.
    async fn run<E: SpanExporter>(
        self,
        exporter: E,
        mut cmds: tmpsc::UnboundedReceiver<ExportCmd>,
        retry: bool,
    ) {
        let mut backoff = Duration::ZERO;
        loop {
            let wait = if backoff.is_zero() {
                self.delay
            } else {
                backoff
            };
            let cmd = tokio::select! {
                c = cmds.recv() => match c {
                    Some(c) => Some(c),
                    None => return,
                },
                _ = self.buffer.ready.notified(), if backoff.is_zero() => None,
                _ = tokio::time::sleep(wait) => None,
            };
            match cmd {
                None => {
                    backoff = match self.drain(&exporter, retry, None).await {
                        Ok(()) => Duration::ZERO,
                        Err(_) => {
                            (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
                        }
                    };
                }
                Some(ExportCmd::Flush(reply)) => {
                    let r = self.drain(&exporter, retry, None).await;
                    if r.is_ok() {
                        backoff = Duration::ZERO;
                    }
                    let _ = reply.send(r);
                }
                Some(ExportCmd::Shutdown(deadline, reply)) => {
                    let mut r = self.drain(&exporter, retry, Some(deadline)).await;
                    // Keep retrying a failing collector until the deadline.
                    while r.is_err() && Instant::now() + Duration::from_millis(200) < deadline {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        r = self.drain(&exporter, retry, Some(deadline)).await;
                    }
                    let left = {
                        let mut q = lock(&self.buffer.queue);
                        let n = q.len();
                        q.clear();
                        n
                    };
                    if left > 0 {
                        self.stats.add_spans_lost_at_shutdown(left as u64);
                    }
                    let _ = exporter
                        .shutdown_with_timeout(deadline.saturating_duration_since(Instant::now()));
                    let _ = reply.send(r);
                    return;
                }
            }
        }
    }

    async fn drain<E: SpanExporter>(
        &self,
        exporter: &E,
        retry: bool,
        deadline: Option<Instant>,
    ) -> Result<(), FlushError> {
        loop {
            let batch = self.buffer.take_batch();
            if batch.is_empty() {
                return Ok(());
            }
            let n = batch.len() as u64;
            let copy = retry.then(|| batch.clone());
            let limit = match deadline {
                Some(d) => self
                    .request_timeout
                    .min(d.saturating_duration_since(Instant::now())),
                None => self.request_timeout,
            };
            let error = match tokio::time::timeout(limit, exporter.export(batch)).await {
                Ok(Ok(())) => {
                    self.stats.spans_exported.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("export request timed out after {limit:?}"),
            };
            self.stats.add_export_failure(&error);
            match copy {
                Some(c) => self.buffer.requeue(c, &self.stats),
                None => self.stats.add_spans_dropped(n),
            }
            return Err(FlushError::Export(error));
        }
    }
}
