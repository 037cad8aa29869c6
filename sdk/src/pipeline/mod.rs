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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;
use tokio::sync::mpsc as tmpsc;

use crate::config::{Config, FlowtelBuilder, Target};
use crate::error::{BuildError, FlushError, RecordError};
use crate::event::FlowEvent;
use crate::export::{
    self, CallbackSpanExporter, ConsoleMetricExporter, ConsoleSpanExporter, Local, MetricExport,
    RetryGate, SpanSink,
};
use crate::metrics::FlowMetrics;
use crate::spans::SpanMapper;
use crate::stats::{Counters, Stats};

mod buffer;
mod export_loop;
mod worker;

use buffer::SpanBuffer;
use export_loop::{ExportCmd, ExportLoop, OTLP_EXPORTS_IN_FLIGHT};
use worker::Worker;

type Reply = mpsc::Sender<Result<(), FlushError>>;

enum Msg {
    Event(FlowEvent),
    EndRun(String),
    Flush { spans: Reply, metrics: Reply },
    Shutdown { deadline: Instant, reply: Reply },
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

        let mut runtime = RuntimeGuard(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("flowtel-export")
                .enable_all()
                .build()
                .map_err(BuildError::Runtime)?,
        ));
        let rt = runtime.get();
        // tonic creates its (lazy) channel on the current runtime.
        let _enter = rt.enter();

        let mut resource = Resource::builder();
        if let Some(name) = &config.service_name {
            resource = resource.with_service_name(name.clone());
        }
        let resource = resource.build();

        let interval = config.metric_interval;
        let meter_provider = SdkMeterProvider::builder().with_resource(resource.clone());
        let handle = rt.handle().clone();
        let meter_provider = match &target {
            Target::Otlp => {
                // Counts what it exported itself (partial success).
                let e = export::otlp_metric_exporter(&config, &handle, &stats)?;
                meter_provider.with_reader(periodic(e, interval))
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
        export::register_self_metrics(&meter, &stats);

        let buffer = Arc::new(SpanBuffer::new(
            config.max_buffered_spans,
            config.max_export_batch,
            config.backpressure,
        ));
        let loop_cfg = ExportLoop {
            buffer: buffer.clone(),
            stats: stats.clone(),
            gate: Arc::new(RetryGate::default()),
            delay: config.span_schedule_delay,
            request_timeout: config.timeout_for("TRACES")?,
        };
        let mut cmd_txs = Vec::new();
        match &target {
            Target::Otlp => {
                // Several requests in flight over one transport, one gate.
                let sink = export::otlp_spans(&config, &resource)?;
                for _ in 0..OTLP_EXPORTS_IN_FLIGHT {
                    spawn_loop(rt, &loop_cfg, sink.clone(), &mut cmd_txs);
                }
            }
            Target::Console => spawn_loop(rt, &loop_cfg, Local(ConsoleSpanExporter), &mut cmd_txs),
            Target::InMemory(m) => spawn_loop(rt, &loop_cfg, Local(m.spans.clone()), &mut cmd_txs),
            Target::Callback(f) => spawn_loop(
                rt,
                &loop_cfg,
                Local(CallbackSpanExporter(f.clone())),
                &mut cmd_txs,
            ),
        }
        drop(_enter);
        let runtime = runtime.take();

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
fn spawn_loop<S: SpanSink>(
    runtime: &tokio::runtime::Runtime,
    cfg: &ExportLoop,
    sink: S,
    txs: &mut Vec<tmpsc::UnboundedSender<ExportCmd>>,
) {
    let (tx, rx) = tmpsc::unbounded_channel();
    txs.push(tx);
    runtime.spawn(cfg.clone().run(sink, rx));
}

/// The export runtime while `start()` builds the rest: on a build error it
/// is let go in the background, since dropping a tokio runtime inside
/// another runtime (a caller's `#[tokio::main]`) panics.
struct RuntimeGuard(Option<tokio::runtime::Runtime>);

impl RuntimeGuard {
    fn get(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("present until taken")
    }

    fn take(&mut self) -> tokio::runtime::Runtime {
        self.0.take().expect("taken once")
    }
}

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
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
