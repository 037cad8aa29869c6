//! The text of `flowtel inspect`: the incident-debugging sequence of the
//! PenguiFlow telemetry guide for one run, one function per step. What
//! failed, what recovered and what last succeeded are decided in
//! `incident.rs`; this file only words it.

use std::fmt::Write as _;

use flowtel::FlowEvent;
use flowtel_semconv::event;
use serde_json::Value as Json;

use crate::incident::{Failure, Incident};
use crate::inspect::iso;
use crate::view::{fmt_ms, Style};

fn node(e: &FlowEvent) -> &str {
    e.node_name.as_deref().unwrap_or("?")
}

fn exception(e: &FlowEvent) -> Option<&str> {
    e.extra.get("exception").and_then(Json::as_str)
}

/// ` (ValueError('...'))`, or nothing.
fn exception_note(e: &FlowEvent) -> String {
    exception(e).map(|x| format!(" ({x})")).unwrap_or_default()
}

fn failure_kind(e: &FlowEvent) -> &'static str {
    if e.event_type == event::NODE_TIMEOUT {
        "timeout"
    } else {
        "error"
    }
}

/// What ended a failing node: `NODE_TIMEOUT: Node 'summarize' timed out
/// ...` from its `node_failed`, or, when its retries had not run out where
/// the events end, what its last attempt did.
fn failure_detail(e: &FlowEvent, f: &Failure) -> String {
    if !f.terminal {
        return format!(
            "{}, no node_failed (still retrying, or the log ends here)",
            failure_kind(e)
        );
    }
    match e.extra.get("flow_error") {
        Some(fe) => {
            let code = fe.get("code").and_then(Json::as_str).unwrap_or("?");
            let msg = fe.get("message").and_then(Json::as_str).unwrap_or("");
            format!("{code}: {msg}")
        }
        None => exception(e).unwrap_or("node_failed").to_string(),
    }
}

/// One run's events (sorted by time) and how to write about them.
struct Writer<'a> {
    evs: &'a [FlowEvent],
    style: Style,
    t0: f64,
    out: String,
}

impl Writer<'_> {
    /// `+12.3 ms` since the run's first event.
    fn at(&self, e: &FlowEvent) -> String {
        format!("+{}", fmt_ms((e.ts - self.t0) * 1000.0))
    }

    fn heading(&mut self, title: &str) {
        let _ = write!(self.out, "{} ", self.style.bold(title));
    }

    fn header(&mut self, trace: &str) {
        let t1 = self.evs.last().map_or(0.0, |e| e.ts);
        let mut nodes: Vec<&str> = Vec::new();
        for n in self.evs.iter().filter_map(|e| e.node_name.as_deref()) {
            if !nodes.contains(&n) {
                nodes.push(n);
            }
        }
        let _ = writeln!(
            self.out,
            "{} {trace}: {} events from {} to {} ({}); nodes: {}\n",
            self.style.bold("run"),
            self.evs.len(),
            iso(self.t0),
            iso(t1),
            fmt_ms((t1 - self.t0) * 1000.0),
            nodes.join(" → ")
        );
    }

    /// Step 1: the last success before the failure.
    fn last_success(&mut self, incident: &Incident) {
        self.heading("1. Last successful node:");
        let text = match incident.last_success.map(|i| &self.evs[i]) {
            Some(e) => format!(
                "{} (attempt {}) at {}, took {}",
                node(e),
                e.attempt,
                self.at(e),
                fmt_ms(e.latency_ms.unwrap_or(0.0))
            ),
            None if incident.failure.is_some() => "none before the failure".into(),
            None => "none".into(),
        };
        let _ = writeln!(self.out, "{text}");
    }

    /// Step 2: the failing node, its attempts, the other failing nodes, and the
    /// failures that were recovered from. Returns the event to look at in
    /// step 3: the failure, or when nothing failed the slowest success.
    fn failing_node(&mut self, incident: &Incident) -> Option<usize> {
        self.heading("2. Failing node:");
        let evs = self.evs;
        let focus = match &incident.failure {
            Some(f) => {
                let e = &evs[f.at];
                let sep = if f.terminal { " failed: " } else { ": " };
                let headline = format!("{}{sep}{}", node(e), failure_detail(e, f));
                let _ = writeln!(self.out, "{}", self.style.red(&headline));
                for e in f.attempts.iter().map(|&i| &evs[i]) {
                    let _ = writeln!(
                        self.out,
                        "     attempt {}: {} after {} at {}{}",
                        e.attempt,
                        failure_kind(e),
                        fmt_ms(e.latency_ms.unwrap_or(0.0)),
                        self.at(e),
                        exception_note(e)
                    );
                }
                for other in &incident.also_failed {
                    let e = &evs[other.at];
                    let also = format!(
                        "also failed: {}: {} ({})",
                        node(e),
                        failure_detail(e, other),
                        self.at(e)
                    );
                    let _ = writeln!(self.out, "     {}", self.style.red(&also));
                }
                Some(f.at)
            }
            None => {
                let slowest = evs
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.event_type == event::NODE_SUCCESS)
                    .filter_map(|(i, e)| e.latency_ms.map(|l| (i, l)))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                let text = match slowest {
                    Some((i, ms)) => format!(
                        "none failed; slowest attempt: {} (attempt {}) took {}",
                        node(&evs[i]),
                        evs[i].attempt,
                        fmt_ms(ms)
                    ),
                    None => "none failed".into(),
                };
                let _ = writeln!(self.out, "{text}");
                slowest.map(|(i, _)| i)
            }
        };
        for r in &incident.recovered {
            let (e, by) = (&evs[r.at], &evs[r.by]);
            let _ = writeln!(
                self.out,
                "     recovered: {} attempt {} {} at {}{}, then succeeded on attempt {}",
                node(e),
                e.attempt,
                failure_kind(e),
                self.at(e),
                exception_note(e),
                by.attempt
            );
        }
        focus
    }

    /// Step 3: queue depths at the focus event, and upstream's when it finished.
    fn queue_depths(&mut self, focus: Option<usize>) {
        self.heading("3. Queue depths around it:");
        let Some(i) = focus else {
            let _ = writeln!(self.out, "no node events");
            return;
        };
        let f = &self.evs[i];
        let saturated = f.queue_maxsize > 0 && f.queue_depth() * 5 >= f.queue_maxsize * 4;
        let _ = writeln!(
            self.out,
            "{} in={} out={} (queue max {}){}; trace pending={} in-flight={}",
            node(f),
            f.queue_depth_in,
            f.queue_depth_out,
            f.queue_maxsize,
            if saturated {
                self.style.red(" SATURATED")
            } else {
                String::new()
            },
            f.trace_pending.map_or("-".into(), |p| p.to_string()),
            f.trace_inflight
        );
        let upstream = self.evs[..i]
            .iter()
            .rev()
            .find(|e| e.event_type == event::NODE_SUCCESS);
        if let Some(prev) = upstream {
            let _ = writeln!(
                self.out,
                "     upstream {} out={} when it finished at {}",
                node(prev),
                prev.queue_depth_out,
                self.at(prev)
            );
        }
    }

    /// Step 4: every retry, with its delay and the exception behind it.
    fn retries(&mut self) {
        self.heading("4. Retries:");
        let evs = self.evs;
        let retries: Vec<&FlowEvent> = evs
            .iter()
            .filter(|e| e.event_type == event::NODE_RETRY)
            .collect();
        if retries.is_empty() {
            let _ = writeln!(self.out, "none");
            return;
        }
        let _ = writeln!(self.out, "{}", retries.len());
        for e in retries {
            let delay = e.extra.get("sleep_s").and_then(Json::as_f64).unwrap_or(0.0);
            let _ = writeln!(
                self.out,
                "     {} {} → attempt {} after {}{}",
                self.at(e),
                node(e),
                e.attempt,
                fmt_ms(delay * 1000.0),
                exception_note(e)
            );
        }
    }

    /// Step 5: cancellation and deadline events. Returns whether there were any.
    fn control(&mut self) -> bool {
        self.heading("5. Cancellation and deadlines:");
        let evs = self.evs;
        let control: Vec<&FlowEvent> = evs
            .iter()
            .filter(|e| {
                e.event_type.starts_with("trace_cancel")
                    || e.event_type == event::NODE_TRACE_CANCELLED
                    || e.event_type == event::DEADLINE_SKIP
            })
            .collect();
        if control.is_empty() {
            let _ = writeln!(self.out, "none");
            return false;
        }
        let _ = writeln!(self.out);
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
                self.out,
                "     {} {} at {}{detail}",
                self.at(e),
                e.event_type,
                node(e)
            );
        }
        true
    }

    /// Step 6: the remediation playbook for what happened.
    fn next_step(&mut self, cancelled: bool) {
        let has = |kind: &str| self.evs.iter().any(|e| e.event_type == kind);
        let mut next = Vec::new();
        if has(event::NODE_TIMEOUT) {
            next.push("timeouts: tighten timeouts, reduce concurrency, or fix the slow dependency");
        }
        if has(event::NODE_ERROR) {
            next.push(
                "errors: fix the code, the validation or the schema drift behind the exception",
            );
        }
        if cancelled {
            next.push("cancellation/deadlines: check the upstream budget (deadline_s) or who cancelled the run");
        }
        if next.is_empty() {
            next.push(
                "nothing failed: compare the slowest node's latency with its p95 (`flowtel ingest`)",
            );
        }
        let _ = writeln!(
            self.out,
            "{} {}\n",
            self.style.bold("6. Next step:"),
            next.join("; ")
        );
    }
}

/// The incident report for one run's events (sorted by time).
pub(crate) fn report(trace: &str, evs: &[FlowEvent], style: Style) -> String {
    let mut w = Writer {
        evs,
        style,
        t0: evs.first().map_or(0.0, |e| e.ts),
        out: String::new(),
    };
    let incident = Incident::of(evs);
    w.header(trace);
    w.last_success(&incident);
    let focus = w.failing_node(&incident);
    w.queue_depths(focus);
    w.retries();
    let cancelled = w.control();
    w.next_step(cancelled);
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, node: &str, t: f64, attempt: u32) -> FlowEvent {
        FlowEvent::builder(kind, 1_795_305_121.0 + t)
            .node(node, node)
            .trace_id("t")
            .attempt(attempt)
            .latency_ms(100.0)
            .build()
            .unwrap()
    }

    /// Report lines that start with `prefix`.
    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    #[test]
    fn retries_that_ran_out_without_node_failed_and_recovered_ones() {
        // a recovers; b fails and the log ends while it retries; c is fine;
        // d times out last and the log ends too.
        let evs = [
            ev("node_error", "a", 0.0, 0),
            ev("node_retry", "a", 0.1, 1),
            ev("node_success", "a", 0.5, 1),
            ev("node_error", "b", 1.0, 0),
            ev("node_success", "c", 1.5, 0),
            ev("node_timeout", "d", 2.0, 0),
        ];
        let text = report("t", &evs, Style { color: false });
        assert_eq!(
            lines(&text, "1. "),
            ["1. Last successful node: c (attempt 0) at +1.50 s, took 100.0 ms"],
            "{text}"
        );
        assert_eq!(
            lines(&text, "2. "),
            ["2. Failing node: d: timeout, no node_failed (still retrying, or the log ends here)"],
            "{text}"
        );
        assert_eq!(
            lines(&text, "also failed"),
            ["also failed: b: error, no node_failed (still retrying, or the log ends here) (+1.00 s)"],
            "{text}"
        );
        assert_eq!(
            lines(&text, "recovered"),
            ["recovered: a attempt 0 error at +0.0 ms, then succeeded on attempt 1"],
            "{text}"
        );
    }

    #[test]
    fn a_timeout_recovered_on_retry_is_not_a_failure() {
        let evs = [
            ev("node_success", "a", 0.0, 0),
            ev("node_timeout", "b", 1.0, 0),
            ev("node_retry", "b", 1.1, 1),
            ev("node_success", "b", 2.0, 1),
        ];
        let text = report("t", &evs, Style { color: false });
        assert!(
            text.contains("1. Last successful node: b (attempt 1)"),
            "{text}"
        );
        assert!(text.contains("2. Failing node: none failed"), "{text}");
        assert_eq!(lines(&text, "recovered").len(), 1, "{text}");
    }
}
