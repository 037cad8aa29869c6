//! The text of `flowtel inspect`: the incident-debugging sequence of the
//! PenguiFlow telemetry guide for one run, one function per step. What
//! failed, what recovered and what last succeeded are decided from the
//! run's spans in `incident.rs`; this file only words it. The words come
//! from the event each decided span was made from where the span carries
//! the fact only parsed, cut or rounded (the exception's repr, the
//! `flow_error`, the raw timestamp and latency), or not at all (queue
//! limits, the run's pending and in-flight counts).

use std::fmt::Write as _;

use flowtel::{FlowEvent, SpanData};
use flowtel_semconv::event;
use serde_json::Value as Json;

use crate::incident::{Failure, Incident};
use crate::inspect::iso;
use crate::timeline::{Kind, Moment};
use crate::view::{fmt_ms, Style};

fn node(e: &FlowEvent) -> &str {
    e.node_name.as_deref().unwrap_or("?")
}

fn exception(e: &FlowEvent) -> Option<&str> {
    e.extra.get("exception").and_then(Json::as_str)
}

/// ` (ValueError('...'))`, or nothing.
fn exception_note(e: Option<&FlowEvent>) -> String {
    e.and_then(exception)
        .map(|x| format!(" ({x})"))
        .unwrap_or_default()
}

/// How a failed attempt failed: `timeout` or `error`.
fn failure_kind(m: &Moment) -> &'static str {
    if m.kind == Kind::Timeout {
        "timeout"
    } else {
        "error"
    }
}

/// What ended a failing node: `NODE_TIMEOUT: Node 'summarize' timed out
/// ...` from its `node_failed`, or, when its retries had not run out where
/// the events end, what its last attempt did.
fn failure_detail(f: &Failure, e: Option<&FlowEvent>) -> String {
    if !f.terminal {
        return format!(
            "{}, no node_failed (still retrying, or the log ends here)",
            failure_kind(&f.at)
        );
    }
    match e.and_then(|e| e.extra.get("flow_error")) {
        Some(fe) => {
            let code = fe.get("code").and_then(Json::as_str).unwrap_or("?");
            // Worded as the run's root span words its status.
            match fe.get("message").and_then(Json::as_str).unwrap_or("") {
                "" => code.to_string(),
                msg => format!("{code}: {msg}"),
            }
        }
        None => e.and_then(exception).unwrap_or("node_failed").to_string(),
    }
}

/// One run's events (sorted by time) and how to write about them.
struct Writer<'a> {
    evs: &'a [FlowEvent],
    style: Style,
    t0: f64,
    out: String,
}

impl<'a> Writer<'a> {
    /// The event the SDK made `m` from: of its type, node and attempt, the
    /// nearest in time (there is one unless the spans came from other
    /// events). Its time is the moment's to the microsecond, so the events
    /// (sorted by time) are searched there first.
    fn source(&self, m: &Moment) -> Option<&'a FlowEvent> {
        let nearest = |evs: &'a [FlowEvent]| {
            evs.iter()
                .filter(|e| m.may_come_from(e))
                .min_by(|a, b| m.distance(a).total_cmp(&m.distance(b)))
        };
        let t = m.seconds();
        let from = self.evs.partition_point(|e| e.ts < t - 1e-6);
        let to = from + self.evs[from..].partition_point(|e| e.ts <= t + 1e-6);
        nearest(&self.evs[from..to]).or_else(|| nearest(self.evs))
    }

    /// `+12.3 ms` since the run's first event.
    fn since(&self, ts: f64) -> String {
        format!("+{}", fmt_ms((ts - self.t0) * 1000.0))
    }

    /// When `e` happened, since the run's first event.
    fn at_event(&self, e: &FlowEvent) -> String {
        self.since(e.ts)
    }

    /// When `m` happened (its event's raw timestamp), since the run's first
    /// event.
    fn at(&self, m: &Moment) -> String {
        self.since(self.source(m).map_or_else(|| m.seconds(), |e| e.ts))
    }

    /// How long the attempt took, as its event says, else as its span does.
    fn took(&self, m: &Moment) -> String {
        let ms = self.source(m).and_then(|e| e.latency_ms);
        fmt_ms(ms.unwrap_or(m.took.as_secs_f64() * 1000.0))
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
        let text = match &incident.last_success {
            Some(m) => format!(
                "{} (attempt {}) at {}, took {}",
                m.node,
                m.attempt,
                self.at(m),
                self.took(m)
            ),
            None if incident.failure.is_some() => "none before the failure".into(),
            None => "none".into(),
        };
        let _ = writeln!(self.out, "{text}");
    }

    /// One failing node: its headline (`also` for the ones after the
    /// first) and, for the first, the attempts that led to it.
    fn failure(&mut self, f: &Failure, also: bool) {
        let detail = failure_detail(f, self.source(&f.at));
        if also {
            let line = format!("also failed: {}: {detail} ({})", f.at.node, self.at(&f.at));
            let _ = writeln!(self.out, "     {}", self.style.red(&line));
            return;
        }
        let sep = if f.terminal { " failed: " } else { ": " };
        let headline = format!("{}{sep}{detail}", f.at.node);
        let _ = writeln!(self.out, "{}", self.style.red(&headline));
        for m in &f.attempts {
            let _ = writeln!(
                self.out,
                "     attempt {}: {} after {} at {}{}",
                m.attempt,
                failure_kind(m),
                self.took(m),
                self.at(m),
                exception_note(self.source(m))
            );
        }
    }

    /// Step 2: the failing node, its attempts, the other failing nodes, and
    /// the failures that were recovered from. Returns the moment to look at
    /// in step 3: the failure, or when nothing failed the slowest success.
    fn failing_node<'i>(&mut self, incident: &'i Incident) -> Option<&'i Moment> {
        self.heading("2. Failing node:");
        let focus = match &incident.failure {
            Some(f) => {
                self.failure(f, false);
                for other in &incident.also_failed {
                    self.failure(other, true);
                }
                Some(&f.at)
            }
            None => {
                let text = match &incident.slowest {
                    Some(m) => format!(
                        "none failed; slowest attempt: {} (attempt {}) took {}",
                        m.node,
                        m.attempt,
                        self.took(m)
                    ),
                    None => "none failed".into(),
                };
                let _ = writeln!(self.out, "{text}");
                incident.slowest.as_ref()
            }
        };
        if incident.unseen_run_events > 0 {
            let _ = writeln!(
                self.out,
                "     note: {} run events went over the root span's limit and are not in the spans; \
                 a node_failed among them is not seen, so its node may show as recovered or still retrying",
                incident.unseen_run_events
            );
        }
        for r in &incident.recovered {
            let _ = writeln!(
                self.out,
                "     recovered: {} attempt {} {} at {}{}, then succeeded on attempt {}",
                r.at.node,
                r.at.attempt,
                failure_kind(&r.at),
                self.at(&r.at),
                exception_note(self.source(&r.at)),
                r.by.attempt
            );
        }
        focus
    }

    /// Step 3: queue depths at the focus (as its event tells them: the spans
    /// carry no queue limit nor the run's pending and in-flight counts),
    /// and upstream's when it finished.
    fn queue_depths(&mut self, focus: Option<&Moment>, upstream: Option<&Moment>) {
        self.heading("3. Queue depths around it:");
        let Some((m, f)) = focus.and_then(|m| Some((m, self.source(m)?))) else {
            let _ = writeln!(self.out, "no node events");
            return;
        };
        let saturated = f.queue_maxsize > 0 && f.queue_depth() * 5 >= f.queue_maxsize * 4;
        let _ = writeln!(
            self.out,
            "{} in={} out={} (queue max {}){}; trace pending={} in-flight={}",
            m.node,
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
        if let Some((m, prev)) = upstream.and_then(|m| Some((m, self.source(m)?))) {
            let _ = writeln!(
                self.out,
                "     upstream {} out={} when it finished at {}",
                m.node,
                prev.queue_depth_out,
                self.at(m)
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
                self.at_event(e),
                node(e),
                e.attempt,
                fmt_ms(delay * 1000.0),
                exception_note(Some(e))
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
                self.at_event(e),
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

/// The incident report for one run: its events (sorted by time) and the
/// spans the SDK made of them.
pub(crate) fn report(trace: &str, evs: &[FlowEvent], spans: &[SpanData], style: Style) -> String {
    let mut w = Writer {
        evs,
        style,
        t0: evs.first().map_or(0.0, |e| e.ts),
        out: String::new(),
    };
    let incident = Incident::of(spans);
    w.header(trace);
    w.last_success(&incident);
    let focus = w.failing_node(&incident);
    w.queue_depths(focus, incident.upstream.as_ref());
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

    /// The report of `evs`, from the spans the SDK makes of them.
    fn text(evs: &[FlowEvent]) -> String {
        let spans = crate::inspect::map_run(evs, &crate::view::Runs::default()).unwrap();
        report("t", evs, &spans, Style { color: false })
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
        let text = text(&evs);
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
        let text = text(&evs);
        assert!(
            text.contains("1. Last successful node: b (attempt 1)"),
            "{text}"
        );
        assert!(text.contains("2. Failing node: none failed"), "{text}");
        assert_eq!(lines(&text, "recovered").len(), 1, "{text}");
    }

    /// What the root span the SDK exports for `spans`' run says failed: the
    /// node its first `flow.node.failed` event names, and the status.
    fn root_failure(spans: &[SpanData]) -> Option<(String, String)> {
        use flowtel_semconv::{attr, span as sc};
        use opentelemetry::trace::{SpanId, Status};
        let root = spans.iter().find(|s| s.parent_span_id == SpanId::INVALID)?;
        let Status::Error { description } = &root.status else {
            return None;
        };
        let node = root
            .events
            .iter()
            .find(|e| e.name == sc::FAILED_EVENT)
            .and_then(|e| {
                e.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == attr::NODE_NAME)
            })
            .map_or_else(String::new, |kv| kv.value.as_str().into_owned());
        Some((node, description.to_string()))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Whatever the run, the node `inspect` says failed is the node
        /// whose failure the run's exported root span carries, with the
        /// same error; and when the root carries none, `inspect` names no
        /// node as failed.
        #[test]
        fn the_failing_node_is_the_one_the_root_span_reports(
            evs in proptest::collection::vec((
                proptest::sample::select(vec!["node_start", "node_success", "node_error",
                    "node_timeout", "node_retry", "node_failed"]),
                proptest::prop_oneof![0.0..5.0f64, proptest::strategy::Strategy::prop_map(0u8..5, f64::from)],
                0u32..3,
                0usize..4,
                proptest::option::of(1u64..3),
                0u64..2,
                proptest::bool::ANY,
            ), 1..40),
        ) {
            let mut all: Vec<FlowEvent> = evs
                .into_iter()
                .map(|(kind, t, attempt, node, pending, inflight, said)| {
                    let n = ["a", "b", "c", "d"][node];
                    FlowEvent::builder(kind, 1_795_305_121.0 + t)
                        .node(n, n)
                        .trace_id("3e512c5b0a184257a25c215d19544e6a")
                        .attempt(attempt)
                        .latency_ms(10.0)
                        .trace_state(pending, inflight, false)
                        .extra("flow_error", serde_json::json!({
                            "code": format!("CODE_{n}{attempt}"),
                            // Sometimes no message: the status is the code.
                            "message": if said { format!("{n} gave up at {t}") } else { String::new() },
                        }))
                        .build()
                        .unwrap()
                })
                .collect();
            all.sort_by(|x, y| x.ts.total_cmp(&y.ts));
            let spans = crate::inspect::map_run(&all, &crate::view::Runs::default()).unwrap();
            let text = report("t", &all, &spans, Style { color: false });
            let headline = lines(&text, "2. ");
            match root_failure(&spans) {
                Some((node, error)) => proptest::prop_assert_eq!(
                    headline,
                    [format!("2. Failing node: {node} failed: {error}")],
                    "{}", text
                ),
                None => proptest::prop_assert!(
                    headline.iter().all(|l| !l.contains(" failed: ")),
                    "{}", text
                ),
            }
        }
    }
}
