//! The embedded default: runs shown in the terminal instead of exported.
//!
//! The waterfall is drawn from the very spans the SDK would export (handed
//! over by `with_span_callback`), so it shows exactly what a tracing backend
//! would. The per-node table is tallied from the events themselves, so it
//! also covers events without a trace id.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use flowtel::{FlowEvent, SpanData};
use flowtel_semconv::{attr, event, outcome, span as sc};
use opentelemetry::trace::{SpanId, Status};

/// Runs kept for display; later ones are only counted.
const MAX_RUNS_KEPT: usize = 10_000;
const BAR_WIDTH: usize = 40;

/// ANSI styling, or none.
#[derive(Clone, Copy)]
pub(crate) struct Style {
    pub(crate) color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub(crate) fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub(crate) fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub(crate) fn magenta(&self, s: &str) -> String {
        self.paint("35", s)
    }
    pub(crate) fn cyan(&self, s: &str) -> String {
        self.paint("36", s)
    }
    pub(crate) fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub(crate) fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
}

/// `12.3 ms`, `1.25 s`.
pub(crate) fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

fn ns(t: std::time::SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

fn attr_str(attrs: &[opentelemetry::KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

struct Bar {
    node: String,
    attempt: String,
    start: i128,
    end: i128,
    outcome: String,
    error: Option<String>,
}

struct Mark {
    name: String,
    at: i128,
    attrs: Vec<opentelemetry::KeyValue>,
}

struct Root {
    name: String,
    start: i128,
    end: i128,
    failure: Option<String>,
    cancelled: bool,
    marks: Vec<Mark>,
}

#[derive(Default)]
struct RunView {
    root: Option<Root>,
    bars: Vec<Bar>,
}

impl RunView {
    fn interesting(&self) -> bool {
        self.bars.iter().any(|b| b.outcome != outcome::SUCCESS)
            || self
                .root
                .as_ref()
                .is_some_and(|r| r.failure.is_some() || r.cancelled || !r.marks.is_empty())
    }
    fn start(&self) -> i128 {
        let bars = self.bars.iter().map(|b| b.start).min();
        self.root.as_ref().map(|r| r.start).or(bars).unwrap_or(0)
    }
}

/// Spans gathered from the pipeline, by trace.
#[derive(Clone, Default)]
pub(crate) struct Runs(Arc<Mutex<RunsInner>>);

#[derive(Default)]
struct RunsInner {
    runs: BTreeMap<String, RunView>,
    not_kept: u64,
}

impl Runs {
    /// The span callback to give the SDK.
    pub(crate) fn sink(&self) -> impl Fn(Vec<SpanData>) + Send + Sync + 'static {
        let me = self.clone();
        move |spans| me.add(spans)
    }

    fn add(&self, spans: Vec<SpanData>) {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for s in spans {
            let trace = s.span_context.trace_id().to_string();
            if !inner.runs.contains_key(&trace) && inner.runs.len() >= MAX_RUNS_KEPT {
                inner.not_kept += 1;
                continue;
            }
            let run = inner.runs.entry(trace).or_default();
            if s.parent_span_id == SpanId::INVALID {
                run.root = Some(Root {
                    name: s.name.to_string(),
                    start: ns(s.start_time),
                    end: ns(s.end_time),
                    failure: match &s.status {
                        Status::Error { description } => Some(description.to_string()),
                        _ => None,
                    },
                    cancelled: attr_str(&s.attributes, attr::RUN_CANCELLED).as_deref()
                        == Some("true"),
                    marks: s
                        .events
                        .events
                        .iter()
                        .map(|e| Mark {
                            name: e.name.to_string(),
                            at: ns(e.timestamp),
                            attrs: e.attributes.clone(),
                        })
                        .collect(),
                });
            } else {
                let error = s
                    .events
                    .events
                    .iter()
                    .find(|e| e.name == sc::EXCEPTION_EVENT)
                    .map(|e| {
                        let ty = attr_str(&e.attributes, attr::EXCEPTION_TYPE).unwrap_or_default();
                        let msg =
                            attr_str(&e.attributes, attr::EXCEPTION_MESSAGE).unwrap_or_default();
                        if msg.is_empty() {
                            ty
                        } else {
                            format!("{ty}: {msg}")
                        }
                    });
                run.bars.push(Bar {
                    node: s.name.to_string(),
                    attempt: attr_str(&s.attributes, attr::NODE_ATTEMPT).unwrap_or_default(),
                    start: ns(s.start_time),
                    end: ns(s.end_time),
                    outcome: attr_str(&s.attributes, attr::NODE_OUTCOME).unwrap_or_default(),
                    error,
                });
            }
        }
    }

    /// Render up to `limit` runs: all of them if they fit, otherwise the
    /// ones with errors, timeouts, retries, cancellations or deadline skips
    /// first. Returns the text and how many runs were left out.
    pub(crate) fn render(&self, limit: usize, style: Style) -> (String, usize) {
        let inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<(&String, &RunView)> = inner.runs.iter().collect();
        all.sort_by_key(|(id, r)| (r.start(), (*id).clone()));
        let total = all.len() + inner.not_kept as usize;
        let chosen: Vec<(&String, &RunView)> = if all.len() <= limit {
            all
        } else {
            let mut pick: Vec<(&String, &RunView)> = all
                .iter()
                .filter(|(_, r)| r.interesting())
                .copied()
                .collect();
            pick.truncate(limit);
            for r in &all {
                if pick.len() >= limit {
                    break;
                }
                if !r.1.interesting() {
                    pick.push(*r);
                }
            }
            pick.sort_by_key(|(id, r)| (r.start(), (*id).clone()));
            pick
        };
        let mut out = String::new();
        for (id, run) in &chosen {
            render_run(&mut out, id, run, style);
        }
        (out, total - chosen.len())
    }

    /// Number of runs seen.
    pub(crate) fn len(&self) -> usize {
        let inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        inner.runs.len() + inner.not_kept as usize
    }
}

fn render_run(out: &mut String, id: &str, run: &RunView, style: Style) {
    let t0 = run.start();
    let t1 = run
        .root
        .as_ref()
        .map(|r| r.end)
        .into_iter()
        .chain(run.bars.iter().map(|b| b.end))
        .max()
        .unwrap_or(t0);
    let span = (t1 - t0).max(1);
    let name = run.root.as_ref().map_or("?", |r| r.name.as_str());
    let status = match &run.root {
        Some(r) if r.failure.is_some() => style.red(&format!(
            "FAILED {}",
            r.failure.as_deref().unwrap_or_default()
        )),
        Some(r) if r.cancelled => style.magenta("cancelled"),
        Some(r) if r.marks.iter().any(|m| m.name == sc::DEADLINE_SKIP_EVENT) => {
            style.yellow("deadline passed, messages skipped")
        }
        _ if run.bars.iter().any(|b| b.outcome != outcome::SUCCESS) => {
            style.yellow("ok, with failed attempts")
        }
        _ => "ok".to_string(),
    };
    let _ = writeln!(
        out,
        "{} {id}  {name}  {}  {status}",
        style.bold("run"),
        fmt_ms((t1 - t0) as f64 / 1e6)
    );
    let ms = |t: i128| (t - t0) as f64 / 1e6;
    // Bars and marks in time order (a bar by its start, a mark by its time).
    let mut items: Vec<(i128, usize, bool)> = run
        .bars
        .iter()
        .enumerate()
        .map(|(i, b)| (b.start, i, true))
        .collect();
    if let Some(r) = &run.root {
        items.extend(r.marks.iter().enumerate().map(|(i, m)| (m.at, i, false)));
    }
    items.sort_by_key(|(t, i, is_bar)| (*t, !*is_bar, *i));
    for (_, i, is_bar) in items {
        if is_bar {
            let b = &run.bars[i];
            // At least one cell, inside the axis, even for a zero-length
            // attempt at the very end of the run.
            let from = (((b.start - t0) * BAR_WIDTH as i128 / span) as usize).min(BAR_WIDTH - 1);
            let to = (((b.end - t0) * BAR_WIDTH as i128 + span - 1) / span) as usize;
            let to = to.max(from + 1).min(BAR_WIDTH);
            let mut bar = String::with_capacity(BAR_WIDTH * 3);
            bar.push_str(&" ".repeat(from));
            bar.push_str(&"█".repeat(to - from));
            bar.push_str(&" ".repeat(BAR_WIDTH - to));
            let (bar, note) = match b.outcome.as_str() {
                outcome::ERROR => (
                    style.red(&bar),
                    style.red(&format!("✗ {}", b.error.as_deref().unwrap_or("error"))),
                ),
                outcome::TIMEOUT => (style.yellow(&bar), style.yellow("⏱ timeout")),
                outcome::CANCELLED => (style.magenta(&bar), style.magenta("⊘ cancelled")),
                outcome::INCOMPLETE => (style.dim(&bar), style.dim("… no end seen")),
                _ => (bar, String::new()),
            };
            let line = format!(
                "  {:<14} #{:<2} {}{bar}{} {:>9}  {note}",
                b.node,
                b.attempt,
                style.dim("▕"),
                style.dim("▏"),
                fmt_ms((b.end - b.start) as f64 / 1e6),
            );
            let _ = writeln!(out, "{}", line.trim_end());
            continue;
        }
        let Some(root) = &run.root else { continue };
        let m = &root.marks[i];
        let node = attr_str(&m.attrs, attr::NODE_NAME).unwrap_or_default();
        let at = format!("+{}", fmt_ms(ms(m.at)));
        let line = match m.name.as_str() {
            sc::RETRY_EVENT => {
                let attempt = attr_str(&m.attrs, attr::NODE_ATTEMPT).unwrap_or_default();
                let delay = attr_str(&m.attrs, attr::RETRY_DELAY)
                    .and_then(|d| d.parse::<f64>().ok())
                    .map(|d| format!(" after {}", fmt_ms(d * 1000.0)))
                    .unwrap_or_default();
                style.cyan(&format!(
                    "↻ {at:>10}  {node}: retry, attempt {attempt}{delay}"
                ))
            }
            sc::FAILED_EVENT => {
                let code = attr_str(&m.attrs, attr::ERROR_TYPE).unwrap_or_default();
                let msg = attr_str(&m.attrs, attr::FLOW_ERROR_MESSAGE).unwrap_or_default();
                style.red(&format!("✗ {at:>10}  {node}: failed {code}: {msg}"))
            }
            sc::DEADLINE_SKIP_EVENT => {
                style.yellow(&format!("⌛ {at:>10}  {node}: skipped, deadline passed"))
            }
            other => {
                let kind = other.strip_prefix(sc::EVENT_PREFIX).unwrap_or(other);
                let text = match kind {
                    event::TRACE_CANCEL_START => {
                        let pending = attr_str(&m.attrs, attr::TRACE_PENDING)
                            .map(|p| format!(" ({p} pending)"))
                            .unwrap_or_default();
                        format!("cancellation started{pending}")
                    }
                    event::TRACE_CANCEL_FINISH => "cancellation finished".to_string(),
                    event::TRACE_CANCEL_DROP => format!("{node}: message dropped (cancelled run)"),
                    event::NODE_TRACE_CANCELLED => format!("{node}: work cancelled"),
                    _ if node.is_empty() => kind.to_string(),
                    _ => format!("{node}: {kind}"),
                };
                if kind.contains("cancel") {
                    style.magenta(&format!("⊘ {at:>10}  {text}"))
                } else {
                    format!("• {at:>10}  {text}")
                }
            }
        };
        let _ = writeln!(out, "  {line}");
    }
    out.push('\n');
}

#[derive(Default)]
struct NodeRow {
    attempts: u64,
    errors: u64,
    timeouts: u64,
    retries: u64,
    failed: u64,
    durations_ms: Vec<f64>,
}

/// Per-node tallies, from the events.
#[derive(Default)]
pub(crate) struct NodeTable {
    rows: BTreeMap<String, NodeRow>,
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl NodeTable {
    pub(crate) fn add(&mut self, ev: &FlowEvent) {
        let Some(node) = ev.node_name.as_deref() else {
            return;
        };
        let kind = ev.event_type.as_str();
        let counted = matches!(
            kind,
            event::NODE_SUCCESS
                | event::NODE_ERROR
                | event::NODE_TIMEOUT
                | event::NODE_RETRY
                | event::NODE_FAILED
        );
        if !counted {
            return;
        }
        let row = self.rows.entry(node.to_string()).or_default();
        match kind {
            event::NODE_RETRY => row.retries += 1,
            event::NODE_FAILED => row.failed += 1,
            _ => {
                row.attempts += 1;
                if kind == event::NODE_ERROR {
                    row.errors += 1;
                }
                if kind == event::NODE_TIMEOUT {
                    row.timeouts += 1;
                }
                if let Some(l) = ev.latency_ms {
                    row.durations_ms.push(l);
                }
            }
        }
    }

    pub(crate) fn render(&mut self, style: Style) -> String {
        let mut out = String::new();
        if self.rows.is_empty() {
            return out;
        }
        let _ = writeln!(
            out,
            "{}",
            style.bold(&format!(
                "{:<16} {:>8} {:>7} {:>8} {:>7} {:>6} {:>10} {:>10} {:>10}",
                "node", "attempts", "errors", "timeouts", "retries", "failed", "p50", "p95", "p99"
            ))
        );
        for (node, row) in self.rows.iter_mut() {
            row.durations_ms.sort_by(f64::total_cmp);
            let p = |q| {
                percentile(&row.durations_ms, q)
                    .map(fmt_ms)
                    .unwrap_or_else(|| "-".into())
            };
            let line = format!(
                "{:<16} {:>8} {:>7} {:>8} {:>7} {:>6} {:>10} {:>10} {:>10}",
                node,
                row.attempts,
                row.errors,
                row.timeouts,
                row.retries,
                row.failed,
                p(50.0),
                p(95.0),
                p(99.0)
            );
            let line = if row.failed > 0 || row.errors > 0 {
                style.red(&line)
            } else if row.timeouts > 0 {
                style.yellow(&line)
            } else {
                line
            };
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

        /// Whatever spans the SDK makes of arbitrary events, the terminal
        /// view renders them without panicking.
        #[test]
        fn any_runs_render(
            evs in proptest::collection::vec((
                proptest::sample::select(vec!["node_start", "node_success", "node_error",
                    "node_timeout", "node_retry", "node_failed", "node_trace_cancelled",
                    "deadline_skip", "trace_cancel_start", "custom"]),
                0.0..5.0f64,
                proptest::option::of(0.0..3000.0f64),
                0u32..3,
                0usize..3,
                0usize..4,
            ), 0..40),
            limit in 0usize..4,
        ) {
            let runs = Runs::default();
            let f = flowtel::Flowtel::builder().with_span_callback(runs.sink()).build().unwrap();
            let mut table = NodeTable::default();
            let mut all = Vec::new();
            for (kind, dt, latency, attempt, trace, node) in evs {
                let mut b = FlowEvent::builder(kind, 1_795_305_121.0 + dt)
                    .node(["a", "b", "c", "d"][node], ["a", "b", "c", "d"][node])
                    .trace_id(["t1", "3e512c5b0a184257a25c215d19544e6a", "t3"][trace])
                    .attempt(attempt)
                    .extra("sleep_s", 0.1);
                if let Some(l) = latency {
                    b = b.latency_ms(l);
                }
                let ev = b.build().unwrap();
                table.add(&ev);
                all.push(ev.clone());
                f.record(ev).unwrap();
            }
            all.sort_by(|x, y| x.ts.total_cmp(&y.ts));
            f.shutdown(std::time::Duration::from_secs(10)).unwrap();
            for color in [false, true] {
                let _ = runs.render(limit, Style { color });
                let _ = table.render(Style { color });
                let _ = crate::report::report("t1", &all, Style { color });
            }
        }
    }

    #[test]
    fn durations_format() {
        assert_eq!(fmt_ms(12.345), "12.3 ms");
        assert_eq!(fmt_ms(1250.0), "1.25 s");
    }
}
