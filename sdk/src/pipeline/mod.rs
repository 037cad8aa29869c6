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

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;
use tokio::sync::mpsc as tmpsc;

use crate::config::{Config, MetricsTo, SpansTo};
use crate::error::{BuildError, FlushError};
use crate::event::FlowEvent;
use crate::export::{
    self, CallbackSpanExporter, ConsoleMetricExporter, ConsoleSpanExporter, Local, MetricExport,
    RetryGate, SpanSink,
};
use crate::guard_event::GuardEvent;
use crate::mapping::SpanMapper;
use crate::metrics::FlowMetrics;
use crate::stats::Counters;

mod batch;
mod buffer;
mod export_loop;
mod fork;
mod handle;
mod worker;

pub use batch::{EventBatch, BATCH_EVENTS};
use buffer::SpanBuffer;
use export_loop::{ExportCmd, ExportLoop, OTLP_EXPORTS_IN_FLIGHT};
#[cfg(feature = "tracing")]
pub(crate) use handle::WeakFlowtel;
pub use handle::{Flowtel, DROP_FLUSH_TIMEOUT};
use worker::Worker;

type Reply = mpsc::Sender<Result<(), FlushError>>;

enum Msg {
    Event(FlowEvent),
    /// Parsed events, many at a time (an [`EventBatch`]).
    Batch(Vec<FlowEvent>),
    /// An attempt guard's event, made a FlowEvent on the mapping thread.
    Guard(GuardEvent),
    EndRun(String),
    Flush {
        spans: Reply,
        metrics: Reply,
    },
    Shutdown {
        deadline: Instant,
        reply: Reply,
    },
}

impl Flowtel {
    pub(crate) fn start(config: Config) -> Result<Flowtel, BuildError> {
        fork::watch();
        // Kept to restart the pipeline in a forked child.
        let restart = config.clone();
        let stats = Arc::new(Counters::default());
        let routes = config.routes()?;

        let mut runtime = RuntimeGuard(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("flowtel-export")
                .on_thread_start(suppress_own_telemetry)
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

        let exemplars = Arc::new(crate::metrics::duration_exemplars());
        let handle = rt.handle().clone();
        let meter_provider = meter_provider(
            &config,
            &routes.metrics,
            &resource,
            &handle,
            &stats,
            &exemplars,
        )?;
        let meter = meter_provider.meter_with_scope(crate::record::scope().clone());
        crate::self_metrics::register(&meter, &stats);

        let buffer = Arc::new(SpanBuffer::new(
            config.max_buffered_spans,
            config.max_export_batch,
            config.backpressure,
        ));
        let cmd_txs = span_loops(&config, &routes.spans, rt, &buffer, &stats, &resource)?;
        drop(_enter);
        let runtime = runtime.take();

        let (tx, rx) = mpsc::sync_channel(config.queue_capacity);
        let batches = Arc::new(batch::Batches::default());
        let worker = Worker {
            batches: batches.clone(),
            mapper: SpanMapper::new(config.mapping()),
            metrics: FlowMetrics::new(&meter, &config.metrics(), stats.clone(), exemplars),
            meter_provider,
            buffer: buffer.clone(),
            cmd_txs,
            stats: stats.clone(),
            tick: (config.run_idle_timeout / 4)
                .clamp(Duration::from_millis(10), Duration::from_secs(1)),
            discard_spans: matches!(routes.spans, SpansTo::None),
        };
        thread::Builder::new()
            .name("flowtel-map".into())
            .spawn(move || worker.run(rx, runtime))
            .map_err(BuildError::Runtime)?;

        Ok(Flowtel::from_parts(tx, stats, buffer, restart, batches))
    }
}

/// The meter provider: one reader per metric destination (none at all:
/// the metrics are recorded and go nowhere), every instrument's cardinality
/// limit above what flowtel lets through.
fn meter_provider(
    config: &Config,
    to: &[MetricsTo],
    resource: &Resource,
    handle: &tokio::runtime::Handle,
    stats: &Arc<Counters>,
    exemplars: &Arc<crate::exemplars::Exemplars>,
) -> Result<SdkMeterProvider, BuildError> {
    let interval = config.metric_interval;
    let sdk_limit = crate::metrics::sdk_cardinality_limit(&config.metrics());
    let mut meter_provider = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_view(move |_: &opentelemetry_sdk::metrics::Instrument| {
            opentelemetry_sdk::metrics::Stream::builder()
                .with_cardinality_limit(sdk_limit)
                .build()
                .ok()
        });
    for to in to {
        meter_provider = match to {
            MetricsTo::Otlp => {
                // Counts what it exported itself (partial success).
                let e = export::otlp_metric_exporter(
                    &config.otlp("METRICS")?,
                    config.metric_temporality()?,
                    handle,
                    stats,
                    Some(exemplars.clone()),
                )?;
                meter_provider.with_reader(periodic(e, interval))
            }
            MetricsTo::Console => meter_provider.with_reader(periodic(
                counted(ConsoleMetricExporter, handle, stats),
                interval,
            )),
            MetricsTo::InMemory(m) => meter_provider.with_reader(periodic(
                counted(m.metrics.clone(), handle, stats),
                interval,
            )),
            MetricsTo::Prometheus(p) => {
                match export::start_prometheus(p, handle, Some(exemplars.clone()), stats) {
                    Ok((reader, addr)) => {
                        let _ = stats.prometheus_address.set(addr);
                        meter_provider.with_reader(reader)
                    }
                    // A forked child restarting its pipeline: the
                    // parent holds the port and keeps serving.
                    Err(e) if fork::generation() > 0 => {
                        eprintln!(
                            "flowtel: warning: forked child serves no Prometheus metrics: {e}"
                        );
                        meter_provider
                    }
                    Err(e) => return Err(e),
                }
            }
        };
    }
    Ok(meter_provider.build())
}

/// The span export loops on flowtel's runtime (several in flight over one
/// OTLP transport and gate, one for a local sink, none when traces go
/// nowhere); their command senders.
fn span_loops(
    config: &Config,
    to: &SpansTo,
    rt: &tokio::runtime::Runtime,
    buffer: &Arc<SpanBuffer>,
    stats: &Arc<Counters>,
    resource: &Resource,
) -> Result<Vec<tmpsc::UnboundedSender<ExportCmd>>, BuildError> {
    let loop_cfg = ExportLoop {
        buffer: buffer.clone(),
        stats: stats.clone(),
        gate: Arc::new(RetryGate::default()),
        delay: config.span_schedule_delay,
        request_timeout: config.timeout_for("TRACES")?,
    };
    let mut cmd_txs = Vec::new();
    match to {
        SpansTo::Otlp => {
            // Several requests in flight over one transport, one gate.
            let sink = export::otlp_spans(&config.otlp("TRACES")?, resource)?;
            for _ in 0..OTLP_EXPORTS_IN_FLIGHT {
                spawn_loop(rt, &loop_cfg, sink.clone(), &mut cmd_txs);
            }
        }
        SpansTo::Console => spawn_loop(rt, &loop_cfg, Local(ConsoleSpanExporter), &mut cmd_txs),
        SpansTo::InMemory(m) => spawn_loop(rt, &loop_cfg, Local(m.spans.clone()), &mut cmd_txs),
        SpansTo::Callback(f) => spawn_loop(
            rt,
            &loop_cfg,
            Local(CallbackSpanExporter(f.clone())),
            &mut cmd_txs,
        ),
        // No export loop: the worker drops the spans.
        SpansTo::None => {}
    }
    Ok(cmd_txs)
}

/// flowtel's export threads never trace themselves: spans that the HTTP and
/// gRPC stacks open there (h2, hyper, tonic instrument with `tracing`) would
/// otherwise reach a `tracing` layer (flowtel's or the application's) and be
/// exported, which opens more spans, without end. OpenTelemetry's SDK
/// starts no span in a suppressed context; the guard stays for the thread's
/// life.
fn suppress_own_telemetry() {
    std::mem::forget(opentelemetry::Context::enter_telemetry_suppressed_scope());
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
