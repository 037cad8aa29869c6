//! The bridge's cost stage by stage, for `examples/stages.rs` (feature
//! `bench-stages`, off by default; not part of the API).
//!
//! Each stage runs over the whole input on the calling thread, the same code
//! the pipeline runs, in the pipeline's order:
//!
//! - **split**: lines found with memchr and checked as UTF-8 (`flowtel
//!   ingest`'s reader does the same on its read buffer);
//! - **parse**: [`FlowEvent::from_json`] on every line;
//! - **map**: the mapping thread's [`SpanMapper`]: spans, active deltas,
//!   verdicts; open runs ended at the end as `flowtel ingest` does at EOF;
//! - **metrics**: the mapping thread's [`FlowMetrics`] updates for every
//!   mapped event, with the attempt exemplar and the active deltas;
//! - **encode**: span batches of the default size into OTLP protobuf bytes;
//! - **send**: those bytes to a collector, when one is given (wall time and
//!   the CPU time of all the process's threads while sending, from
//!   `getrusage`).
//!
//! The stages take [`CHUNK`] lines at a time, so that memory is reused as
//! in the pipeline (holding a million events at once made first-touch page
//! faults 40 % of the profile).

use std::time::{Duration, Instant};

use crate::record::SpanRecord;
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::Resource;

use crate::config::Config;
use crate::event::FlowEvent;
use crate::export::{self, Protocol};
use crate::mapping::{Effects, SpanMapper, Verdict};
use crate::metrics::FlowMetrics;

/// One stage's cost.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The stage's name.
    pub name: &'static str,
    /// Wall time of the stage over the whole input.
    pub wall: Duration,
    /// CPU time of the process over the stage (`send` only: other stages
    /// run on this thread alone).
    pub cpu: Option<Duration>,
}

/// The stages over one input.
#[derive(Debug, Clone)]
pub struct Report {
    /// Lines in the input.
    pub lines: u64,
    /// FlowEvents parsed from them.
    pub events: u64,
    /// Spans the mapping made.
    pub spans: u64,
    /// Encoded bytes of every span batch.
    pub encoded_bytes: u64,
    /// Each stage, in pipeline order.
    pub stages: Vec<Stage>,
}

/// Lines taken through every stage at a time: the working set stays as
/// small as the pipeline's, so memory is reused as it is there.
const CHUNK: usize = 1024;

/// Stage indices into [`STAGES`].
const SPLIT: usize = 0;
const PARSE: usize = 1;
const MAP: usize = 2;
const METRICS: usize = 3;
const ENCODE: usize = 4;
const SEND: usize = 5;
const STAGES: [&str; 6] = ["split", "parse", "map", "metrics", "encode", "send"];

/// Where the stages stand: the pipeline's parts, and the time of each.
struct Run {
    mapper: SpanMapper,
    metrics: FlowMetrics,
    fx: Effects,
    /// Spans mapped and not encoded yet (the buffer).
    pending: Vec<SpanRecord>,
    /// The batch being encoded.
    batch: Vec<SpanRecord>,
    batch_size: usize,
    resource: export::SpanResource,
    sender: Option<Sender>,
    wall: [Duration; 6],
    send_cpu: Duration,
    spans: u64,
    encoded_bytes: u64,
}

/// Run every stage over `input` (JSON lines), [`CHUNK`] lines at a time.
/// With `send_to`, each encoded batch also goes to that OTLP endpoint
/// (the base URL, as `with_endpoint` takes it) and must be accepted.
/// `run_end_nodes` are as `with_run_end_node` takes them.
pub fn measure(
    input: &[u8],
    send_to: Option<(&str, Protocol)>,
    run_end_nodes: &[String],
) -> Result<Report, String> {
    let config = Config {
        run_end_nodes: run_end_nodes.to_vec(),
        ..Config::default()
    };
    let provider = SdkMeterProvider::builder().build();
    let meter = provider.meter("flowtel-stages");
    let mut run = Run {
        mapper: SpanMapper::new(config.mapping()),
        metrics: FlowMetrics::new(
            &meter,
            &config.metrics(),
            Default::default(),
            std::sync::Arc::new(crate::metrics::duration_exemplars()),
        ),
        fx: Effects::default(),
        pending: Vec::new(),
        batch: Vec::new(),
        batch_size: config.max_export_batch,
        resource: export::SpanResource::new(&Resource::builder().build()),
        sender: send_to.map(|(e, p)| Sender::new(e, p)).transpose()?,
        wall: [Duration::ZERO; 6],
        send_cpu: Duration::ZERO,
        spans: 0,
        encoded_bytes: 0,
    };
    let (mut lines, mut events, mut outcomes, mut active) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut line_count, mut event_count) = (0u64, 0u64);
    let mut rest = input;
    while !rest.is_empty() {
        let t = Instant::now();
        rest = split(rest, &mut lines);
        run.wall[SPLIT] += t.elapsed();
        line_count += lines.len() as u64;

        let t = Instant::now();
        events.clear();
        events.extend(lines.iter().filter_map(|l| FlowEvent::from_json(l).ok()));
        run.wall[PARSE] += t.elapsed();
        event_count += events.len() as u64;

        let t = Instant::now();
        let now = Instant::now();
        outcomes.clear();
        active.clear();
        for ev in &events {
            run.fx.ended_attempt = None;
            let mapped = run.mapper.on_event(ev, now, &mut run.fx) == Verdict::Mapped;
            let from = active.len();
            active.append(&mut run.fx.active);
            outcomes.push((mapped, run.fx.ended_attempt.take(), from..active.len()));
            run.pending.append(&mut run.fx.spans);
        }
        run.wall[MAP] += t.elapsed();

        let t = Instant::now();
        for (i, (ev, (mapped, exemplar, deltas))) in events.iter().zip(&outcomes).enumerate() {
            if *mapped {
                run.metrics.record(ev, *exemplar);
            }
            for (node, delta) in &active[deltas.clone()] {
                run.metrics.active(node, *delta);
            }
            // As the mapping thread: counts handed over every 64 events.
            if i % 64 == 63 {
                run.metrics.flush_pending();
            }
        }
        run.wall[METRICS] += t.elapsed();

        run.export(false)?;
    }
    // The end of the input ends every open run, as EOF does in `flowtel
    // ingest`, a few hundred runs at a time as the mapping thread does.
    loop {
        let t = Instant::now();
        let more = run.mapper.end_some(256, &mut run.fx);
        run.pending.append(&mut run.fx.spans);
        run.wall[MAP] += t.elapsed();
        run.export(!more)?;
        if !more {
            break;
        }
    }

    let sending = run.sender.is_some();
    let stages = STAGES
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != SEND || sending)
        .map(|(i, &name)| Stage {
            name,
            wall: run.wall[i],
            cpu: (i == SEND).then_some(run.send_cpu),
        })
        .collect();
    Ok(Report {
        lines: line_count,
        events: event_count,
        spans: run.spans,
        encoded_bytes: run.encoded_bytes,
        stages,
    })
}

impl Run {
    /// Encode (and send) full batches of the pending spans; all of them
    /// when `all`.
    fn export(&mut self, all: bool) -> Result<(), String> {
        while self.pending.len() >= self.batch_size || (all && !self.pending.is_empty()) {
            let n = self.pending.len().min(self.batch_size);
            let t = Instant::now();
            self.batch.extend(self.pending.drain(..n));
            self.spans += self.batch.len() as u64;
            let bytes = export::encode_spans(&self.batch, &self.resource);
            // As the export loop: the batch's room is kept for the next.
            self.batch.clear();
            self.wall[ENCODE] += t.elapsed();
            self.encoded_bytes += bytes.len() as u64;
            if let Some(sender) = &self.sender {
                let (cpu, t) = (process_cpu(), Instant::now());
                sender.send(bytes)?;
                self.wall[SEND] += t.elapsed();
                self.send_cpu += process_cpu().saturating_sub(cpu);
            }
        }
        Ok(())
    }
}

/// The next [`CHUNK`] lines of `input` into `lines`, as `flowtel ingest`
/// finds them (memchr, UTF-8 checked); what is left of the input.
fn split<'a>(input: &'a [u8], lines: &mut Vec<&'a str>) -> &'a [u8] {
    lines.clear();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', input) {
        if let Ok(l) = std::str::from_utf8(&input[start..end]) {
            lines.push(l);
        }
        start = end + 1;
        if lines.len() == CHUNK {
            return &input[start..];
        }
    }
    if let Ok(l) = std::str::from_utf8(&input[start..]) {
        if !l.is_empty() {
            lines.push(l);
        }
    }
    &[]
}

/// Sends encoded batches to a collector over a transport built as the
/// pipeline builds it, one request at a time.
struct Sender {
    rt: tokio::runtime::Runtime,
    sink: export::OtlpSpans,
    timeout: Duration,
}

impl Sender {
    fn new(endpoint: &str, protocol: Protocol) -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let config = Config {
            endpoint: Some(endpoint.to_string()),
            protocol: Some(protocol),
            ..Config::default()
        };
        let settings = config.otlp("TRACES").map_err(|e| e.to_string())?;
        let sink = {
            let _enter = rt.enter();
            export::otlp_spans(&settings, &Resource::builder().build())
                .map_err(|e| e.to_string())?
        };
        Ok(Sender {
            rt,
            sink,
            timeout: settings.timeout,
        })
    }

    fn send(&self, encoded: Vec<u8>) -> Result<(), String> {
        let transport = &self.sink.transport;
        let body = transport.prepare(encoded);
        let outcome = self.rt.block_on(transport.send(&body, self.timeout));
        if outcome != export::Outcome::OK {
            return Err(format!("the collector did not take a batch: {outcome:?}"));
        }
        Ok(())
    }
}

/// User + system CPU time of every thread of this process so far
/// (`getrusage`, which counts the running thread up to now; the per-thread
/// `schedstat` lags by up to a scheduler tick, which once charged ~2 ms of
/// parsing to every request).
#[cfg(unix)]
fn process_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(Duration::ZERO, |u| {
        let us = |t: nix::sys::time::TimeVal| {
            Duration::from_micros((t.tv_sec() * 1_000_000 + t.tv_usec()).max(0) as u64)
        };
        us(u.user_time()) + us(u.system_time())
    })
}

#[cfg(not(unix))]
fn process_cpu() -> Duration {
    Duration::ZERO
}
