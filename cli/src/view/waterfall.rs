//! One run drawn as a waterfall: a header with the run's outcome, a bar per
//! node attempt on a common time axis, and the root span's events (retries,
//! the terminal failure, deadline skips, cancellation steps) between them
//! in time order.

use std::fmt::Write as _;

use flowtel_semconv::{attr, event, outcome, span as sc};

use super::runs::{attr_str, Bar, Mark, RunView};
use super::style::{fmt_ms, Style};

const BAR_WIDTH: usize = 40;

/// Append the waterfall of run `id` to `out`.
pub(super) fn render_run(out: &mut String, id: &str, run: &RunView, style: Style) {
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
    let _ = writeln!(
        out,
        "{} {id}  {name}  {}  {}",
        style.bold("run"),
        fmt_ms((t1 - t0) as f64 / 1e6),
        status(run, style)
    );
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
            let line = bar_line(&run.bars[i], t0, span, style);
            let _ = writeln!(out, "{}", line.trim_end());
            continue;
        }
        let Some(root) = &run.root else { continue };
        let _ = writeln!(out, "  {}", mark_line(&root.marks[i], t0, style));
    }
    out.push('\n');
}

/// The run's outcome, as the header shows it.
fn status(run: &RunView, style: Style) -> String {
    match &run.root {
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
    }
}

/// One attempt: node, attempt number, its bar on the run's axis (`t0`,
/// `span` nanoseconds long), its duration and what went wrong.
fn bar_line(b: &Bar, t0: i128, span: i128, style: Style) -> String {
    // At least one cell, inside the axis, even for a zero-length attempt at
    // the very end of the run.
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
    format!(
        "  {:<14} #{:<2} {}{bar}{} {:>9}  {note}",
        b.node,
        b.attempt,
        style.dim("▕"),
        style.dim("▏"),
        fmt_ms((b.end - b.start) as f64 / 1e6),
    )
}

/// One root span event, at its offset from the run's start `t0`.
fn mark_line(m: &Mark, t0: i128, style: Style) -> String {
    let node = attr_str(&m.attrs, attr::NODE_NAME).unwrap_or_default();
    let at = format!("+{}", fmt_ms((m.at - t0) as f64 / 1e6));
    match m.name.as_str() {
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
            let text = other_mark_text(kind, &node, m);
            if kind.contains("cancel") {
                style.magenta(&format!("⊘ {at:>10}  {text}"))
            } else {
                format!("• {at:>10}  {text}")
            }
        }
    }
}

/// What a cancellation step or any other root event of type `kind` says.
fn other_mark_text(kind: &str, node: &str, m: &Mark) -> String {
    match kind {
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
    }
}
