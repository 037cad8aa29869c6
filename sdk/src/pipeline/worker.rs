//! The mapping thread: takes events off the queue, maps them to spans and
//! metric updates, hands spans to the buffer, and runs flush and shutdown.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry_sdk::metrics::SdkMeterProvider;
use tokio::sync::mpsc as tmpsc;

use super::batch::Batches;
use super::buffer::SpanBuffer;
use super::export_loop::ExportCmd;
use super::{all_of, metric_result, on_helper, wait, Msg, Reply};
use crate::error::FlushError;
use crate::event::FlowEvent;
use crate::ids::FastMap;
use crate::mapping::{Counts, Effects, SpanMapper, Verdict};
use crate::metrics::FlowMetrics;
use crate::record::SpanRecord;
use crate::stats::Counters;

/// When the queue runs dry the mapping thread naps instead of parking on
/// it, so that `record()` never pays for a wake-up (a futex system call on
/// the caller's thread per event otherwise). The nap adapts to the rate:
/// it doubles while few events arrive per nap, up to `MAX_NAP`, and shrinks
/// when many do; after `PARK_AFTER` of silence the thread blocks on the
/// queue, so an idle pipeline costs nothing and only the first event after
/// the silence wakes it.
const MIN_NAP: Duration = Duration::from_micros(100);
/// Bounds the events that can pile up during one nap: at 10 ms, a 16 384-
/// event queue fills only at 1.6 M events/s.
const MAX_NAP: Duration = Duration::from_millis(10);
const PARK_AFTER: Duration = Duration::from_secs(1);
/// Fewer events than this per nap: nap longer.
const FEW_PER_NAP: u32 = 64;
/// More than this per nap: nap shorter.
const MANY_PER_NAP: u32 = 1024;

/// The adaptive nap (see `MIN_NAP`).
struct Nap {
    len: Duration,
    since_last: u32,
    last_msg: Instant,
}

impl Nap {
    fn new() -> Self {
        Nap {
            len: MIN_NAP,
            since_last: 0,
            last_msg: Instant::now(),
        }
    }

    /// `n` events arrived.
    fn got(&mut self, now: Instant, n: usize) {
        self.since_last = self.since_last.saturating_add(n as u32);
        self.last_msg = now;
    }

    /// The next nap, or `None` when it is time to block on the queue.
    fn next(&mut self, now: Instant) -> Option<Duration> {
        if now.duration_since(self.last_msg) >= PARK_AFTER {
            return None;
        }
        self.len = if self.since_last < FEW_PER_NAP {
            (self.len * 2).min(MAX_NAP)
        } else if self.since_last > MANY_PER_NAP {
            (self.len / 4).max(MIN_NAP)
        } else {
            self.len
        };
        self.since_last = 0;
        Some(self.len)
    }
}

pub(super) struct Worker {
    pub(super) mapper: SpanMapper,
    pub(super) metrics: FlowMetrics,
    pub(super) meter_provider: SdkMeterProvider,
    pub(super) buffer: Arc<SpanBuffer>,
    /// One per export loop.
    pub(super) cmd_txs: Vec<tmpsc::UnboundedSender<ExportCmd>>,
    pub(super) stats: Arc<Counters>,
    /// Batches' events, handed back once mapped.
    pub(super) batches: Arc<Batches>,
    pub(super) tick: Duration,
    /// Traces go nowhere (`OTEL_TRACES_EXPORTER=none`): the mapping still
    /// runs for the metrics, its spans are dropped here, uncounted.
    pub(super) discard_spans: bool,
}

/// Closes the batches' hand-over when dropped (see `Batches::close`).
struct CloseBatches(Arc<Batches>);

impl Drop for CloseBatches {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Worker {
    pub(super) fn run(mut self, rx: Receiver<Msg>, runtime: tokio::runtime::Runtime) {
        // However this thread ends (a panic too), batch producers are told.
        let _closed = CloseBatches(self.batches.clone());
        let mut fx = Effects::default();
        let mut pending: Vec<SpanRecord> = Vec::new();
        let mut last_idle_check = Instant::now();
        let mut nap = Nap::new();
        let mut now = Instant::now();
        let mut since_clock = 0u32;
        let mut oldest = FastMap::default();
        let shutdown = loop {
            let msg = match rx.try_recv() {
                Ok(m) => Some(m),
                Err(mpsc::TryRecvError::Empty) => {
                    // Queue drained: hand spans and counts over before
                    // sleeping.
                    self.buffer.push(&mut pending, &self.stats);
                    self.metrics.flush_pending();
                    now = Instant::now();
                    match nap.next(now) {
                        Some(d) => {
                            thread::sleep(d);
                            None
                        }
                        None => {
                            let got = rx.recv_timeout(self.tick);
                            now = Instant::now();
                            match got {
                                Ok(m) => Some(m),
                                Err(RecvTimeoutError::Timeout) => None,
                                Err(RecvTimeoutError::Disconnected) => break None,
                            }
                        }
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => break None,
            };
            if let Some(m) = &msg {
                nap.got(now, if let Msg::Batch(b) = m { b.len() } else { 1 });
            }
            // (Matched where it lies: an event is not moved again.)
            match msg {
                Some(Msg::Event(ev)) => {
                    self.event(&ev, &mut now, &mut since_clock, &mut fx);
                }
                Some(Msg::Batch(events)) => {
                    for ev in &events {
                        self.event(ev, &mut now, &mut since_clock, &mut fx);
                        self.apply(&mut fx, &mut pending);
                    }
                    self.batches.mapped(events);
                }
                // A guard's event is made a FlowEvent here, off the
                // caller's thread.
                Some(Msg::Guard(g)) => {
                    let ev = g.into_event();
                    self.event(&ev, &mut now, &mut since_clock, &mut fx);
                }
                Some(Msg::EndRun(id)) => {
                    self.mapper.end_run(&id, &mut fx);
                }
                Some(Msg::Flush { spans, metrics }) => {
                    self.flush(&mut fx, &mut pending, spans, metrics)
                }
                Some(Msg::Shutdown { deadline, reply }) => break Some((deadline, reply)),
                None => {}
            }
            self.apply(&mut fx, &mut pending);
            if now.duration_since(last_idle_check) >= self.tick {
                last_idle_check = now;
                self.on_tick(now, &mut fx, &mut pending, &mut oldest);
            }
            if pending.len() >= 256 {
                self.buffer.push(&mut pending, &self.stats);
            }
        };

        self.shut_down(shutdown, &rx, runtime, &mut fx, &mut pending);
    }

    /// Map one event into spans and metrics.
    fn event(
        &mut self,
        ev: &FlowEvent,
        now: &mut Instant,
        since_clock: &mut u32,
        fx: &mut Effects,
    ) {
        self.stats.events_processed.fetch_add(1, Ordering::Relaxed);
        // Run idleness needs no better than ~1 ms resolution: read the
        // clock once per 64 events (and hand the counts over).
        *since_clock += 1;
        if *since_clock >= 64 {
            *since_clock = 0;
            *now = Instant::now();
            self.metrics.flush_pending();
        }
        // Metrics count what the span mapping decided: an exact duplicate
        // is counted in neither. The exemplar is the attempt span the
        // mapping exported.
        fx.ended_attempt = None;
        if self.mapper.on_event(ev, *now, fx) == Verdict::Mapped {
            self.metrics.record(ev, fx.ended_attempt.take());
        }
    }

    /// Everything mapped so far to the buffer and the instruments, then a
    /// flush of every export loop and of the metrics, answered on helper
    /// threads (this one goes on mapping).
    fn flush(
        &mut self,
        fx: &mut Effects,
        pending: &mut Vec<SpanRecord>,
        spans: Reply,
        metrics: Reply,
    ) {
        self.apply(fx, pending);
        self.buffer.push(pending, &self.stats);
        self.metrics.flush_pending();
        let replies = self.broadcast(ExportCmd::Flush);
        on_helper(move || all_of(replies), spans);
        let mp = self.meter_provider.clone();
        on_helper(move || metric_result(mp.force_flush()), metrics);
    }

    /// Once per tick: end idle runs, give up stale attempts, and tell the
    /// metrics each node's oldest open attempt.
    fn on_tick(
        &mut self,
        now: Instant,
        fx: &mut Effects,
        pending: &mut Vec<SpanRecord>,
        oldest: &mut FastMap<std::sync::Arc<str>, Instant>,
    ) {
        self.mapper.end_idle(now, fx);
        self.apply(fx, pending);
        self.mapper.oldest_open(oldest);
        self.metrics
            .oldest_open(oldest.iter().map(|(node, seen)| (&**node, *seen)));
    }

    /// Shutdown, explicit or because every handle was dropped: count what
    /// raced in after it, end every open run, export the spans, then the
    /// final metrics, and answer.
    fn shut_down(
        mut self,
        shutdown: Option<(Instant, Reply)>,
        rx: &Receiver<Msg>,
        runtime: tokio::runtime::Runtime,
        fx: &mut Effects,
        pending: &mut Vec<SpanRecord>,
    ) {
        let (deadline, reply) = match shutdown {
            Some((d, r)) => (d, Some(r)),
            None => (Instant::now() + Duration::from_secs(5), None),
        };
        // Events queued before the shutdown message were already handled in
        // order; anything racing in after it is counted, not lost silently.
        while let Ok(m) = rx.try_recv() {
            let n = match m {
                Msg::Event(_) | Msg::Guard(_) => 1,
                Msg::Batch(events) => {
                    let n = events.len() as u64;
                    self.batches.mapped(events);
                    n
                }
                _ => 0,
            };
            self.stats
                .events_after_shutdown
                .fetch_add(n, Ordering::Relaxed);
        }
        // A few hundred runs at a time: their spans go to the buffer (and
        // wait for room there, with backpressure) before the next ones end.
        loop {
            let more = self.mapper.end_some(256, fx);
            self.apply(fx, pending);
            self.buffer.push(pending, &self.stats);
            if !more {
                break;
            }
        }
        self.metrics.flush_pending();

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
        // The runtime goes with the metric shutdown: a final export still
        // stuck on a dead collector keeps polling its timers on it until it
        // fails on its own time (shutting the runtime down under it panics
        // the SDK's reader thread), and this thread never waits for that.
        on_helper(
            move || {
                let r = metric_result(mp.shutdown());
                runtime.shutdown_background();
                r
            },
            mtx,
        );
        let metrics = wait(&mrx, deadline, timeout);
        let result = spans.and(metrics);
        self.stats.shutdown_summary();
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }

    /// Send a command to every export loop; one reply receiver each.
    pub(super) fn broadcast(
        &self,
        cmd: impl Fn(Reply) -> ExportCmd,
    ) -> Vec<Receiver<Result<(), FlushError>>> {
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
    pub(super) fn apply(&mut self, fx: &mut Effects, pending: &mut Vec<SpanRecord>) {
        if fx.counts != Counts::default() {
            count_mapping(&self.stats, &std::mem::take(&mut fx.counts));
        }
        for (node, delta) in fx.active.drain(..) {
            self.metrics.active(&node, delta);
        }
        if self.discard_spans {
            fx.spans.clear();
        }
        if !fx.spans.is_empty() {
            self.stats
                .spans_created
                .fetch_add(fx.spans.len() as u64, Ordering::Relaxed);
            pending.append(&mut fx.spans);
        }
    }
}

/// Add what the mapping reported it dropped or shed to the pipeline's
/// counters.
fn count_mapping(stats: &Counters, c: &Counts) {
    for (counter, n) in [
        (&stats.events_duplicate, c.duplicates),
        (&stats.events_late, c.late_starts),
        (&stats.root_events_dropped, c.root_events_dropped),
        (&stats.attempts_given_up, c.stale_attempts),
    ] {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
    if c.runs_shed > 0 {
        stats.add_runs_shed(c.runs_shed);
    }
}
