//! `flowtel inspect TRACE_ID FILE...`: the incident-debugging sequence of the
//! PenguiFlow telemetry guide, walked for one run: the last successful node,
//! the failing (or slowest) node with its error, queue depths around it,
//! retries, cancellation and deadline events, then the run's waterfall.

use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use flowtel::{FlowEvent, Flowtel};
use flowtel_semconv::event;
use serde_json::Value as Json;

use crate::args::Inspect;
use crate::ingest::{classify, Parsed};
use crate::lines::{self, Line};
use crate::view::{fmt_ms, NodeTable, Runs, Style};

/// Unix seconds to `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub(crate) fn iso(ts: f64) -> String {
    let ms_total = (ts * 1000.0).round() as i64;
    let (secs, ms) = (ms_total.div_euclid(1000), ms_total.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn node(e: &FlowEvent) -> &str {
    e.node_name.as_deref().unwrap_or("?")
}

fn exception(e: &FlowEvent) -> Option<&str> {
    e.extra.get("exception").and_then(Json::as_str)
}

fn is_failure(e: &FlowEvent) -> bool {
    matches!(
        e.event_type.as_str(),
        event::NODE_ERROR | event::NODE_TIMEOUT | event::NODE_FAILED
    )
}

/// The incident report for one run's events (sorted by time).
pub(crate) fn report(trace: &str, evs: &[FlowEvent], style: Style) -> String {
    let mut out = String::new();
    let t0 = evs.first().map_or(0.0, |e| e.ts);
    let t1 = evs.last().map_or(0.0, |e| e.ts);
    let at = |e: &FlowEvent| format!("+{}", fmt_ms((e.ts - t0) * 1000.0));
    let mut nodes: Vec<&str> = Vec::new();
    for e in evs {
        if let Some(n) = &e.node_name {
            if !nodes.contains(&n.as_str()) {
                nodes.push(n);
            }
        }
    }
    let _ = writeln!(
        out,
        "{} {trace}: {} events from {} to {} ({}); nodes: {}\n",
        style.bold("run"),
        evs.len(),
        iso(t0),
        iso(t1),
        fmt_ms((t1 - t0) * 1000.0),
        nodes.join(" → ")
    );

    let first_failure = evs.iter().position(is_failure);
    let before = &evs[..first_failure.unwrap_or(evs.len())];
    let _ = write!(out, "{} ", style.bold("1. Last successful node:"));
    match before
        .iter()
        .rev()
        .find(|e| e.event_type == event::NODE_SUCCESS)
    {
        Some(e) => {
            let _ = writeln!(
                out,
                "{} (attempt {}) at {}, took {}",
                node(e),
                e.attempt,
                at(e),
                fmt_ms(e.latency_ms.unwrap_or(0.0))
            );
        }
        None => {
            let _ = writeln!(out, "none before the first failure");
        }
    }

    let _ = write!(out, "{} ", style.bold("2. Failing node:"));
    let focus: Option<&FlowEvent> = match first_failure {
        Some(i) => {
            let failing = node(&evs[i]).to_string();
            let terminal = evs
                .iter()
                .find(|e| e.event_type == event::NODE_FAILED && node(e) == failing);
            match terminal.and_then(|t| t.extra.get("flow_error")) {
                Some(fe) => {
                    let code = fe.get("code").and_then(Json::as_str).unwrap_or("?");
                    let msg = fe.get("message").and_then(Json::as_str).unwrap_or("");
                    let _ = writeln!(
                        out,
                        "{}",
                        style.red(&format!("{failing} failed: {code}: {msg}"))
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{}",
                        style.red(&format!(
                            "{failing} (recovered or still running: no node_failed)"
                        ))
                    );
                }
            }
            for e in evs.iter().filter(|e| {
                node(e) == failing && is_failure(e) && e.event_type != event::NODE_FAILED
            }) {
                let _ = writeln!(
                    out,
                    "     attempt {}: {} after {} at {}{}",
                    e.attempt,
                    if e.event_type == event::NODE_TIMEOUT {
                        "timeout"
                    } else {
                        "error"
                    },
                    fmt_ms(e.latency_ms.unwrap_or(0.0)),
                    at(e),
                    exception(e).map(|x| format!(" ({x})")).unwrap_or_default()
                );
            }
            Some(&evs[i])
        }
        None => {
            let slowest = evs
                .iter()
                .filter(|e| e.latency_ms.is_some() && e.event_type == event::NODE_SUCCESS)
                .max_by(|a, b| {
                    a.latency_ms
                        .partial_cmp(&b.latency_ms)
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
            match slowest {
                Some(e) => {
                    let _ = writeln!(
                        out,
                        "none failed; slowest attempt: {} (attempt {}) took {}",
                        node(e),
                        e.attempt,
                        fmt_ms(e.latency_ms.unwrap_or(0.0))
                    );
                }
                None => {
                    let _ = writeln!(out, "none failed");
                }
            }
            slowest
        }
    };

    let _ = write!(out, "{} ", style.bold("3. Queue depths around it:"));
    match focus {
        Some(f) => {
            let saturated = f.queue_maxsize > 0 && f.queue_depth() * 5 >= f.queue_maxsize * 4;
            let _ = writeln!(
                out,
                "{} in={} out={} (queue max {}){}; trace pending={} in-flight={}",
                node(f),
                f.queue_depth_in,
                f.queue_depth_out,
                f.queue_maxsize,
                if saturated {
                    style.red(" SATURATED")
                } else {
                    String::new()
                },
                f.trace_pending.map_or("-".into(), |p| p.to_string()),
                f.trace_inflight
            );
            if let Some(prev) = before
                .iter()
                .rev()
                .find(|e| e.event_type == event::NODE_SUCCESS)
            {
                let _ = writeln!(
                    out,
                    "     upstream {} out={} when it finished at {}",
                    node(prev),
                    prev.queue_depth_out,
                    at(prev)
                );
            }
        }
        None => {
            let _ = writeln!(out, "no node events");
        }
    }

    let _ = write!(out, "{} ", style.bold("4. Retries:"));
    let retries: Vec<&FlowEvent> = evs
        .iter()
        .filter(|e| e.event_type == event::NODE_RETRY)
        .collect();
    if retries.is_empty() {
        let _ = writeln!(out, "none");
    } else {
        let _ = writeln!(out, "{}", retries.len());
        for e in retries {
            let delay = e.extra.get("sleep_s").and_then(Json::as_f64).unwrap_or(0.0);
            let _ = writeln!(
                out,
                "     {} {} → attempt {} after {}{}",
                at(e),
                node(e),
                e.attempt,
                fmt_ms(delay * 1000.0),
                exception(e).map(|x| format!(" ({x})")).unwrap_or_default()
            );
        }
    }

    let _ = write!(out, "{} ", style.bold("5. Cancellation and deadlines:"));
    let control: Vec<&FlowEvent> = evs
        .iter()
        .filter(|e| {
            e.event_type.starts_with("trace_cancel")
                || e.event_type == event::NODE_TRACE_CANCELLED
                || e.event_type == event::DEADLINE_SKIP
        })
        .collect();
    if control.is_empty() {
        let _ = writeln!(out, "none");
    } else {
        let _ = writeln!(out);
        for e in &control {
            let detail = match e.event_type.as_str() {
                event::TRACE_CANCEL_START => e
                    .extra
                    .get("pending")
                    .map(|p| format!(" ({p} pending)"))
                    .unwrap_or_default(),
                event::DEADLINE_SKIP => e
                    .extra
                    .get("deadline_s")
                    .and_then(Json::as_f64)
                    .map(|d| format!(" (deadline {})", iso(d)))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "     {} {} at {}{detail}",
                at(e),
                e.event_type,
                node(e)
            );
        }
    }

    let timeouts = evs.iter().any(|e| e.event_type == event::NODE_TIMEOUT);
    let errors = evs.iter().any(|e| e.event_type == event::NODE_ERROR);
    let cancelled = !control.is_empty();
    let mut next = Vec::new();
    if timeouts {
        next.push("timeouts: tighten timeouts, reduce concurrency, or fix the slow dependency");
    }
    if errors {
        next.push("errors: fix the code, the validation or the schema drift behind the exception");
    }
    if cancelled {
        next.push("cancellation/deadlines: check the upstream budget (deadline_s) or who cancelled the run");
    }
    if next.is_empty() {
        next.push(
            "nothing failed: compare the slowest node's latency with its p95 (`flowtel ingest`)",
        );
    }
    let _ = writeln!(out, "{} {}\n", style.bold("6. Next step:"), next.join("; "));
    out
}

pub(crate) fn run(a: Inspect, stop: &AtomicBool, color: bool) -> i32 {
    let sources = match lines::open_all(&a.files) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("flowtel: {e}");
            return 2;
        }
    };
    let mut evs: Vec<FlowEvent> = Vec::new();
    let errors = lines::for_each_line(sources, false, a.max_line_bytes, stop, |_, l| {
        if let Line::Text(t) = l {
            // Cheap filter first: only lines that mention the run are parsed.
            if t.contains(a.trace_id.as_str()) {
                if let Parsed::Event(ev) = classify(t) {
                    if ev.trace_id.as_deref() == Some(a.trace_id.as_str()) {
                        evs.push(*ev);
                    }
                }
            }
        }
    });
    for e in &errors {
        eprintln!("flowtel: {e}");
    }
    if evs.is_empty() {
        eprintln!(
            "flowtel: no events of run {} in {}",
            a.trace_id,
            a.files.join(", ")
        );
        return 1;
    }
    evs.sort_by(|x, y| x.ts.total_cmp(&y.ts));
    let style = Style { color };
    let mut text = report(&a.trace_id, &evs, style);

    // The waterfall, from the same spans an export would carry.
    let runs = Runs::default();
    let flowtel = Flowtel::builder().with_span_callback(runs.sink()).build();
    let mut table = NodeTable::default();
    if let Ok(f) = flowtel {
        for e in &evs {
            table.add(e);
            let _ = f.record_wait(e.clone(), Duration::from_secs(10));
        }
        let _ = f.shutdown(Duration::from_secs(10));
        text.push_str(&runs.render(1, style).0);
        text.push_str(&table.render(style));
    }
    print!("{text}");
    i32::from(!errors.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_795_305_121.4152963), "2026-11-21T23:52:01.415Z");
        assert_eq!(iso(951_782_400.0), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso(32_503_680_000.0), "3000-01-01T00:00:00.000Z");
    }
}
