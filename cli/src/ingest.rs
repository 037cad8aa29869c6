//! `flowtel ingest`: JSON lines in, OTLP (or the terminal view) out, with
//! progress (`progress.rs`), per-kind problem counts and a summary.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use flowtel::{
    EventBatch, EventError, Exporter, FlowEvent, Flowtel, FlushError, RecordError, Stats,
};

use crate::args::Ingest;
use crate::lines::{self, Line, Origin, SourceHandle};
use crate::progress::{Counts, Printer, Progress};
use crate::signals;
use crate::view::{NodeTable, Runs, Style};

/// Problems shown in full (with file:line); the rest are only counted.
const SHOWN_PROBLEMS: usize = 5;

/// What one input line turned out to be. Returned and matched at once,
/// so the event is not boxed: that was an allocation per line.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed<E = FlowEvent> {
    /// A FlowEvent (or where it went: see [`classify_with`]).
    Event(E),
    /// Not for us: blank, not JSON, or JSON that is not a FlowEvent.
    Skip(&'static str),
    /// Meant to be a FlowEvent but broken: the field and the full error.
    Bad(String, String),
}

/// Sort one line. JSON that is not a FlowEvent (another library's log line:
/// see the rule in `FlowEvent::from_json`, an `event` counts only with a
/// single-token value and a `ts` or a FlowEvent-specific key) is skipped;
/// a FlowEvent candidate that breaks the contract is a problem.
pub(crate) fn classify(text: &str) -> Parsed {
    classify_with(text, FlowEvent::from_json)
}

/// [`classify`], the event parsed by `parse` (into a batch, say).
pub(crate) fn classify_with<E>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<E, EventError>,
) -> Parsed<E> {
    let t = text.trim();
    if t.is_empty() {
        return Parsed::Skip("blank");
    }
    if !t.starts_with('{') {
        return Parsed::Skip("not JSON");
    }
    match parse(t) {
        Ok(ev) => Parsed::Event(ev),
        Err(e) if e.is_not_a_flow_event() => Parsed::Skip("JSON, not a FlowEvent"),
        Err(e) if e.field() == "line" => Parsed::Bad("malformed JSON".into(), e.to_string()),
        Err(e) => Parsed::Bad(format!("invalid `{}`", e.field()), e.to_string()),
    }
}

/// Counts of everything that happened to the input.
pub(crate) struct Tally {
    pub(crate) lines: u64,
    pub(crate) events: u64,
    pub(crate) skipped: BTreeMap<&'static str, u64>,
    pub(crate) problems: BTreeMap<String, u64>,
    /// Events refused for a reason the pipeline's stats do not count (a
    /// fork it could not follow); the others are in its dropped counts.
    pub(crate) not_recorded: u64,
    /// Where the first problems are shown.
    printer: Printer,
}

impl Tally {
    pub(crate) fn new(printer: Printer) -> Self {
        Tally {
            lines: 0,
            events: 0,
            skipped: BTreeMap::new(),
            problems: BTreeMap::new(),
            not_recorded: 0,
            printer,
        }
    }

    /// What the progress line shows.
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            events: self.events,
            skipped: self.skipped_total(),
            problems: self.problems_total(),
        }
    }

    pub(crate) fn skip(&mut self, kind: &'static str) {
        *self.skipped.entry(kind).or_default() += 1;
    }

    /// Count a problem; show the first few with their origin.
    pub(crate) fn problem(&mut self, origin: &Origin<'_>, kind: String, detail: &str) {
        let shown: u64 = self.problems.values().sum();
        if (shown as usize) < SHOWN_PROBLEMS {
            self.printer.println(&format!(
                "flowtel: {}:{}: {detail}",
                origin.name, origin.line
            ));
        } else if shown as usize == SHOWN_PROBLEMS {
            self.printer
                .println("flowtel: further problems are only counted (see the summary)");
        }
        *self.problems.entry(kind).or_default() += 1;
    }

    pub(crate) fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    pub(crate) fn problems_total(&self) -> u64 {
        self.problems.values().sum()
    }

    /// Count one line; a FlowEvent goes into `batch`, and is returned.
    pub(crate) fn line<'b>(
        &mut self,
        origin: &Origin<'_>,
        line: Line<'_>,
        batch: &'b mut EventBatch,
    ) -> Option<&'b FlowEvent> {
        if matches!(line, Line::Pause) {
            return None;
        }
        self.lines += 1;
        match line {
            Line::TooLong(n) => {
                self.problem(
                    origin,
                    "line too long".into(),
                    &format!("line of {n} bytes is over --max-line-bytes; skipped"),
                );
                None
            }
            Line::BadUtf8 => {
                self.problem(
                    origin,
                    "invalid UTF-8".into(),
                    "line is not valid UTF-8; skipped",
                );
                None
            }
            Line::Pause => None, // (returned above: not a line)
            Line::Text(t) => match classify_with(t, |t| batch.push_json(t)) {
                Parsed::Event(ev) => Some(ev),
                Parsed::Skip(kind) => {
                    self.skip(kind);
                    None
                }
                Parsed::Bad(kind, detail) => {
                    self.problem(origin, kind, &detail);
                    None
                }
            },
        }
    }
}

fn endpoint_from_env() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
}

fn joined(counts: &BTreeMap<impl AsRef<str>, u64>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{} {v}", k.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn run(a: Ingest, stop: &AtomicBool, color: bool) -> i32 {
    let sources = match lines::open_all(&a.files) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("flowtel: {e}");
            return 2;
        }
    };
    let endpoint = a.endpoint.clone().or_else(endpoint_from_env);
    let bridge = match Bridge::build(&a) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("flowtel: {e}");
            return 2;
        }
    };
    let flowtel = &bridge.flowtel;
    if let Some(addr) = flowtel.prometheus_address() {
        eprintln!(
            "flowtel: serving Prometheus metrics at {}",
            signals::metrics_url(addr)
        );
    }

    let started = Instant::now();
    let (tally, mut table, read_errors) = read(&a, sources, stop, &bridge);
    for e in &read_errors {
        eprintln!("flowtel: {e}");
    }
    let shutdown = flowtel.shutdown(a.timeout);
    let elapsed = started.elapsed();
    let stats = flowtel.stats();

    if bridge.view {
        show_view(&bridge.runs, &mut table, a.runs, Style { color });
    }
    let to =
        signals::Destinations::new(bridge.traces, &bridge.metrics, endpoint.as_deref(), flowtel);
    summary(&tally, elapsed, &stats, &to, &shutdown, &read_errors)
}

/// The SDK as the flags configure it, and where its output goes.
struct Bridge {
    flowtel: Flowtel,
    /// Spans go to the terminal view (gathered in `runs`).
    view: bool,
    runs: Runs,
    traces: Option<Exporter>,
    metrics: Vec<Exporter>,
}

impl Bridge {
    fn build(a: &Ingest) -> Result<Self, String> {
        let mut b = Flowtel::builder();
        if let Some(e) = &a.endpoint {
            b = b.with_endpoint(e.clone());
        }
        if let Some(p) = a.protocol {
            b = b.with_protocol(p);
        }
        for (k, v) in &a.headers {
            b = b.with_header(k.clone(), v.clone());
        }
        if let Some(s) = &a.service_name {
            b = b.with_service_name(s.clone());
        }
        if let Some(f) = &a.flow_name {
            b = b.with_flow_name(f.clone());
        }
        b = b.with_partial_runs(a.partial_runs);
        for n in &a.run_end_nodes {
            b = b.with_run_end_node(n.clone());
        }
        // A bridge slows down rather than lose anything.
        b = b.with_backpressure(true);
        let mut b = signals::configure(a, b)?;
        let view = signals::terminal_view(&b)?;
        let traces = b.traces_exporter().map_err(|e| e.to_string())?;
        let metrics = b.metrics_exporters().map_err(|e| e.to_string())?;
        let runs = Runs::default();
        if view {
            b = b.with_span_callback(runs.sink());
        }
        let flowtel = b.build().map_err(|e| e.to_string())?;
        Ok(Bridge {
            flowtel,
            view,
            runs,
            traces,
            metrics,
        })
    }
}

/// Read every line into the pipeline (and the per-node table, for the
/// terminal view), with the progress line; returns the counts, the table
/// and the read errors.
fn read(
    a: &Ingest,
    sources: Vec<SourceHandle>,
    stop: &AtomicBool,
    bridge: &Bridge,
) -> (Tally, NodeTable, Vec<String>) {
    let flowtel = &bridge.flowtel;
    let mut progress = Progress::new(!a.quiet && std::io::stderr().is_terminal());
    let mut tally = Tally::new(progress.printer());
    let mut table = NodeTable::default();
    let max_line = a.common.max_line_bytes;
    // Events go to the pipeline a batch at a time (one hand-over per
    // batch, string buffers reused: `flowtel::EventBatch`), and at every
    // pause in the input, so that nothing waits on a quiet pipe. A bridge
    // can wait: backpressure instead of dropping.
    let mut batch = flowtel.batch(Duration::from_secs(60));
    let read_errors = lines::for_each_line(sources, a.follow, max_line, stop, |o, l| {
        if matches!(l, Line::Pause) {
            hand_over(&mut batch, &mut tally);
        } else {
            if batch.len() >= flowtel::BATCH_EVENTS {
                hand_over(&mut batch, &mut tally);
            }
            if let Some(ev) = tally.line(&o, l, &mut batch) {
                if bridge.view {
                    table.add(ev);
                }
            }
        }
        progress.update(|| (tally.counts(), flowtel.stats()));
    });
    hand_over(&mut batch, &mut tally);
    progress.finish();
    (tally, table, read_errors)
}

/// The events gathered in `batch` to the pipeline, counted as recorded.
/// Refused ones (queue full, shut down) the pipeline counts as dropped
/// itself; only what it cannot count is counted here.
fn hand_over(batch: &mut EventBatch, tally: &mut Tally) {
    let n = batch.len() as u64;
    match batch.flush() {
        Ok(()) => tally.events += n,
        Err(RecordError::Forked(_)) => tally.not_recorded += n,
        Err(_) => {}
    }
}

/// The terminal view on standard output: up to `limit` run waterfalls, then
/// the per-node table.
fn show_view(runs: &Runs, table: &mut NodeTable, limit: usize, style: Style) {
    let (text, left_out) = runs.render(limit, style);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if left_out > 0 {
        let _ = writeln!(
            out,
            "… {left_out} more of {} runs not shown (--runs N shows more; `flowtel inspect TRACE_ID FILE` walks one)\n",
            runs.len()
        );
    }
    let _ = out.write_all(table.render(style).as_bytes());
    let _ = out.flush();
}

/// The summary, always, on standard error; returns the exit status.
fn summary(
    tally: &Tally,
    elapsed: Duration,
    s: &Stats,
    to: &signals::Destinations,
    shutdown: &Result<(), FlushError>,
    read_errors: &[String],
) -> i32 {
    let rate = tally.events as f64 / elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "flowtel: {} lines in {:.2} s: {} events ({rate:.0}/s), {} skipped, {} problems",
        tally.lines,
        elapsed.as_secs_f64(),
        tally.events,
        tally.skipped_total(),
        tally.problems_total()
    );
    if !tally.skipped.is_empty() {
        eprintln!("  skipped:   {}", joined(&tally.skipped));
    }
    if !tally.problems.is_empty() {
        eprintln!("  problems:  {}", joined(&tally.problems));
    }
    let dropped = s.events_dropped() + s.spans_dropped + tally.not_recorded;
    eprintln!(
        "  exported:  {} spans, {} metric points; dropped: {dropped}; export failures: {}",
        s.spans_exported, s.metric_points_exported, s.export_failures
    );
    eprintln!("  traces:    {}", to.traces);
    eprintln!("  metrics:   {}", to.metrics);
    let delivered = shutdown.is_ok() && dropped == 0 && read_errors.is_empty();
    let refused = s.metric_points_rejected + s.metric_points_rejected_partial;
    let why = if refused > 0 {
        format!(
            "; the collector refused {refused} metric data points (a backend that takes \
             traces only wants --metrics-exporter none)"
        )
    } else {
        String::new()
    };
    match shutdown {
        Ok(()) if delivered => eprintln!("  delivered: everything"),
        Ok(()) => eprintln!("  delivered: NOT everything (see above){why}"),
        Err(e) => eprintln!("  delivered: NOT everything: {e}{why}"),
    }
    if delivered {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_sorted_into_events_skips_and_problems() {
        assert!(matches!(classify(""), Parsed::Skip("blank")));
        assert!(matches!(
            classify("INFO app: hello"),
            Parsed::Skip("not JSON")
        ));
        assert!(matches!(
            classify(r#"{"level":"INFO","message":"x","extra":{"user":1}}"#),
            Parsed::Skip("JSON, not a FlowEvent")
        ));
        assert!(matches!(
            classify(
                r#"{"event":"user logged in","timestamp":"2026-11-22T00:20:29Z","level":"info"}"#
            ),
            Parsed::Skip("JSON, not a FlowEvent")
        ));
        assert!(matches!(
            classify(r#"{"event":"node_start","ts":1}"#),
            Parsed::Event(_)
        ));
        match classify(r#"{"event":"node_start","ts":1,"latency_ms":-1}"#) {
            Parsed::Bad(kind, detail) => {
                assert_eq!(kind, "invalid `latency_ms`");
                assert!(detail.contains("latency_ms"));
            }
            _ => panic!("expected a problem"),
        }
        assert!(
            matches!(classify(r#"{"event":"node_st"#), Parsed::Bad(k, _) if k == "malformed JSON")
        );
    }
}
