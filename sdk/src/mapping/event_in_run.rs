//! One event into its open run: where a node event becomes (or ends) an
//! attempt, and a run-level event becomes an event on the root. The run's
//! life (opening, ending, shedding) is in `mod.rs`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use flowtel_semconv::{attr, event, outcome, span as sc};
use opentelemetry::trace::Event;
use opentelemetry::{Key, KeyValue, Value};
use serde_json::Value as Json;

use super::build::{attempt_span, kv, ms_to_ns, to_time, AttemptEnd};
use super::state::{NodeState, OpenStart, Run, RunMeta};
use super::{
    parse_exception, truncate, ts_ns, Effects, MappingConfig, Verdict, MAX_NODES_PER_RUN,
    MAX_OPEN_PER_NODE,
};
use crate::event::FlowEvent;
use crate::ids;
use crate::record::SpanRecord;

pub(super) fn node_key(ev: &FlowEvent) -> &str {
    ev.node_id
        .as_deref()
        .or(ev.node_name.as_deref())
        .unwrap_or("")
}

pub(super) fn extra_str<'a>(ev: &'a FlowEvent, key: &str) -> Option<&'a str> {
    ev.extra.get(key).and_then(Json::as_str)
}

pub(super) fn extra_f64(ev: &FlowEvent, key: &str) -> Option<f64> {
    ev.extra.get(key).and_then(Json::as_f64)
}

/// The allow-listed `extra` values of an event, as span attributes.
pub(super) fn extra_attrs(keys: &[(String, Key)], max_len: usize, ev: &FlowEvent) -> Vec<KeyValue> {
    let mut out = Vec::new();
    for (name, key) in keys {
        let value: Option<Value> = match ev.extra.get(name) {
            Some(Json::String(s)) => Some(truncate(s, max_len).into()),
            Some(Json::Bool(b)) => Some((*b).into()),
            Some(Json::Number(n)) => n
                .as_i64()
                .map(Value::from)
                .or_else(|| n.as_f64().map(Value::from)),
            _ => None,
        };
        if let Some(v) = value {
            out.push(KeyValue::new(key.clone(), v));
        }
    }
    out
}

pub(super) fn is_terminal(kind: &str) -> bool {
    matches!(
        kind,
        event::NODE_SUCCESS | event::NODE_ERROR | event::NODE_TIMEOUT | event::NODE_DROPPED
    )
}

/// What `map_into_run` reads from the mapper.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub(super) cfg: &'a MappingConfig,
    pub(super) span_extras: &'a [(String, Key)],
}

/// The span of an attempt exported while still open; with `keep_id`, under
/// the id its guard chose, if any.
pub(super) fn open_attempt_span(
    cfg: &MappingConfig,
    meta: &RunMeta,
    (key, node): (&str, &NodeState),
    s: &OpenStart,
    end: u128,
    keep_id: bool,
) -> SpanRecord {
    let derived = || ids::open_attempt_span_id(meta.trace, key, s.attempt, s.start_ns);
    let a = AttemptEnd {
        kind: outcome::INCOMPLETE,
        extras: Vec::new(),
        attempt: s.attempt,
        exception: None,
        depth_in: 0,
        depth_out: 0,
        start: s.start_ns,
        end,
        id: s.span_id.filter(|_| keep_id).unwrap_or_else(derived),
    };
    SpanRecord::Attempt(attempt_span(cfg.max_attr_len, meta, node, a))
}

/// Give up the attempts of `run` open for longer than `max_attempt_age`.
pub(super) fn give_up_stale(run: &mut Run, now: Instant, cfg: &MappingConfig, fx: &mut Effects) {
    let run_end = run.end_ns;
    for (key, node) in run.nodes.iter_mut() {
        let mut i = 0;
        while i < node.open.len() {
            if now.duration_since(node.open[i].seen) < cfg.max_attempt_age {
                i += 1;
                continue;
            }
            let s = node.open.remove(i);
            let end = run_end.max(s.start_ns);
            fx.spans.push(open_attempt_span(
                cfg,
                &run.meta,
                (key, node),
                &s,
                end,
                false,
            ));
            fx.active.push((node.metric_name.clone(), -1));
            fx.counts.stale_attempts += 1;
            run.open_total -= 1;
        }
    }
}

/// Map one event into its (open) run.
pub(super) fn map_into_run(
    run: &mut Run,
    ev: &FlowEvent,
    now: Instant,
    cx: Ctx<'_>,
    fx: &mut Effects,
) -> Verdict {
    run.last_seen = now;
    let end = ts_ns(ev.ts);
    let start = ev
        .latency_ms
        .map_or(end, |l| end.saturating_sub(ms_to_ns(l)));
    note_run_context(run, ev, cx.cfg.max_attr_len);
    let key = node_key(ev);
    let kind = ev.event_type.as_str();
    let is_node_event =
        kind == event::NODE_START || kind == event::NODE_TRACE_CANCELLED || is_terminal(kind);

    if is_node_event && !run.nodes.contains_key(key) {
        if run.nodes.len() >= MAX_NODES_PER_RUN {
            // A run with more distinct nodes than this is hostile or broken:
            // its further nodes get no state (their terminal events still
            // become spans, statelessly, under the same root).
            if is_terminal(kind) {
                let node = NodeState::new(ev.node_name.as_deref(), ev.node_id.as_deref(), key);
                run.attempts += 1;
                extend_run_time(run, start, end);
                let a = terminal_end(ev, cx, key, &run.meta, (start, end));
                fx.spans.push(SpanRecord::Attempt(attempt_span(
                    cx.cfg.max_attr_len,
                    &run.meta,
                    &node,
                    a,
                )));
            }
            return Verdict::Mapped;
        }
        let node = NodeState::new(ev.node_name.as_deref(), ev.node_id.as_deref(), key);
        run.nodes.insert(Box::from(key), node);
    }

    match kind {
        event::NODE_START => start_attempt(run, ev, key, (now, end), fx),
        k if is_terminal(k) => return end_attempt(run, ev, key, (start, end), cx, fx),
        event::NODE_TRACE_CANCELLED => {
            cancel_attempt(run, ev, key, end, cx, fx);
            extend_run_time(run, end, end);
            root_event(run, ev, cx, "flow.node_trace_cancelled".into(), Vec::new());
        }
        _ => {
            extend_run_time(run, start, end);
            run_event(run, ev, cx);
        }
    }
    Verdict::Mapped
}

/// The run's tenant and inbound context, from its first event that has
/// them.
fn note_run_context(run: &mut Run, ev: &FlowEvent, max_attr_len: usize) {
    if run.meta.tenant.is_none() {
        if let Some(t) = extra_str(ev, "tenant") {
            run.meta.tenant = Some(Arc::from(truncate(t, max_attr_len)));
        }
    }
    if run.link.is_none() {
        // The first valid inbound context of the run becomes its link.
        run.link = extra_str(ev, flowtel_semconv::extra::TRACEPARENT)
            .and_then(crate::w3c::parse_traceparent);
    }
}

/// A `node_start`: an attempt opens, unless its end came first.
fn start_attempt(
    run: &mut Run,
    ev: &FlowEvent,
    key: &str,
    (now, at): (Instant, u128),
    fx: &mut Effects,
) {
    let Some(node) = run.nodes.get_mut(key) else {
        return;
    };
    if node.is_late_start(ev.attempt, at, ev.span_id) {
        fx.counts.late_starts += 1;
        return;
    }
    if node.open.len() >= MAX_OPEN_PER_NODE {
        // Starts that never ended, piling up: forget the oldest
        // (and take it out of the active count).
        node.open.remove(0);
        run.open_total -= 1;
        fx.active.push((node.metric_name.clone(), -1));
        fx.counts.stale_attempts += 1;
    }
    node.open.push(OpenStart {
        attempt: ev.attempt,
        start_ns: at,
        seen: now,
        span_id: ev.span_id,
    });
    run.open_total += 1;
    fx.active.push((node.metric_name.clone(), 1));
    extend_run_time(run, at, at);
}

/// A terminal event: the attempt's span, unless it is an exact duplicate.
fn end_attempt(
    run: &mut Run,
    ev: &FlowEvent,
    key: &str,
    (start, end): (u128, u128),
    cx: Ctx<'_>,
    fx: &mut Effects,
) -> Verdict {
    let Some(node) = run.nodes.get_mut(key) else {
        return Verdict::Mapped;
    };
    if node.is_duplicate(ev.attempt, end, ev.span_id) {
        fx.counts.duplicates += 1;
        return Verdict::Duplicate;
    }
    let opened = node.take_open(ev.attempt, end, ev.span_id);
    if opened.is_some() {
        run.open_total -= 1;
        fx.active.push((node.metric_name.clone(), -1));
    }
    // The span id chosen at the start, if any: the terminal's own
    // wins over its start's.
    let chosen = ev.span_id.or(opened.as_ref().and_then(|s| s.span_id));
    let start = match (ev.latency_ms, opened) {
        (Some(_), _) => start,
        (None, Some(s)) => s.start_ns,
        (None, None) => end,
    };
    node.remember_terminal(ev.attempt, (start, end), ev.span_id);
    run.attempts += 1;
    let mut a = terminal_end(ev, cx, key, &run.meta, (start, end));
    if let Some(id) = chosen {
        a.id = id;
    }
    fx.ended_attempt = Some((run.meta.trace, a.id));
    fx.spans.push(SpanRecord::Attempt(attempt_span(
        cx.cfg.max_attr_len,
        &run.meta,
        node,
        a,
    )));
    extend_run_time(run, start, end);
    Verdict::Mapped
}

/// `node_trace_cancelled`: the attempt it names (a guard's), else the
/// node's latest open one, ends cancelled.
fn cancel_attempt(
    run: &mut Run,
    ev: &FlowEvent,
    key: &str,
    end: u128,
    cx: Ctx<'_>,
    fx: &mut Effects,
) {
    let Some(node) = run.nodes.get_mut(key) else {
        return;
    };
    let named = ev
        .span_id
        .and_then(|id| node.open.iter().position(|s| s.span_id == Some(id)));
    let s = match named {
        Some(i) => node.open.remove(i),
        None => match node.open.pop() {
            Some(s) => s,
            None => return,
        },
    };
    run.open_total -= 1;
    fx.active.push((node.metric_name.clone(), -1));
    node.remember_terminal(s.attempt, (s.start_ns, end), ev.span_id);
    run.attempts += 1;
    let a = AttemptEnd {
        kind: ev.event_type.as_str(),
        extras: extra_attrs(cx.span_extras, cx.cfg.max_attr_len, ev),
        attempt: s.attempt,
        exception: None,
        depth_in: ev.queue_depth_in,
        depth_out: ev.queue_depth_out,
        start: s.start_ns,
        end,
        id: s
            .span_id
            .unwrap_or_else(|| ids::attempt_span_id(run.meta.trace, key, s.attempt, end)),
    };
    fx.spans.push(SpanRecord::Attempt(attempt_span(
        cx.cfg.max_attr_len,
        &run.meta,
        node,
        a,
    )));
}

pub(super) fn extend_run_time(run: &mut Run, start: u128, end: u128) {
    run.start_ns = run.start_ns.min(start);
    run.end_ns = run.end_ns.max(end);
}

/// The end of an attempt as its terminal event tells it.
pub(super) fn terminal_end<'a>(
    ev: &'a FlowEvent,
    cx: Ctx<'_>,
    key: &str,
    meta: &RunMeta,
    (start, end): (u128, u128),
) -> AttemptEnd<'a> {
    AttemptEnd {
        kind: ev.event_type.as_str(),
        extras: extra_attrs(cx.span_extras, cx.cfg.max_attr_len, ev),
        attempt: ev.attempt,
        exception: extra_str(ev, "exception"),
        depth_in: ev.queue_depth_in,
        depth_out: ev.queue_depth_out,
        start,
        end,
        id: ids::attempt_span_id(meta.trace, key, ev.attempt, end),
    }
}

/// A span event on the run's root (bounded per run).
pub(super) fn root_event(
    run: &mut Run,
    ev: &FlowEvent,
    cx: Ctx<'_>,
    name: Cow<'static, str>,
    mut attrs: Vec<KeyValue>,
) {
    if run.events.len() >= cx.cfg.max_root_events {
        run.dropped_events += 1;
        return;
    }
    // The node, as its attempt spans name it: by name and by id.
    if let Some(id) = ev.node_id.as_deref() {
        attrs.insert(0, kv(attr::NODE_ID, truncate(id, cx.cfg.max_attr_len)));
    }
    if let Some(n) = ev.node_name.as_deref() {
        attrs.insert(0, kv(attr::NODE_NAME, truncate(n, cx.cfg.max_attr_len)));
    }
    run.events
        .push(Event::new(name, to_time(ts_ns(ev.ts)), attrs, 0));
}

/// Run-level events: retries, terminal failures, deadline skips,
/// cancellations and unknown types.
pub(super) fn run_event(run: &mut Run, ev: &FlowEvent, cx: Ctx<'_>) {
    let max_attr_len = cx.cfg.max_attr_len;
    match ev.event_type.as_str() {
        event::NODE_RETRY => {
            let mut attrs = vec![kv(attr::NODE_ATTEMPT, i64::from(ev.attempt))];
            if let Some(d) = extra_f64(ev, "sleep_s") {
                attrs.push(kv(attr::RETRY_DELAY, d));
            }
            if let Some(x) = extra_str(ev, "exception") {
                attrs.push(kv(attr::ERROR_TYPE, parse_exception(x).0));
            }
            root_event(run, ev, cx, sc::RETRY_EVENT.into(), attrs);
        }
        event::NODE_FAILED => {
            let fe = ev.extra.get("flow_error");
            let code = fe
                .and_then(|f| f.get("code"))
                .and_then(Json::as_str)
                .map(|c| truncate(c, 64))
                .unwrap_or_else(|| "NODE_FAILED".to_string());
            let message = fe
                .and_then(|f| f.get("message"))
                .and_then(Json::as_str)
                .map(|m| truncate(m, max_attr_len))
                .unwrap_or_default();
            let attrs = vec![
                kv(attr::NODE_ATTEMPT, i64::from(ev.attempt)),
                kv(attr::ERROR_TYPE, code.clone()),
                kv(attr::FLOW_ERROR_MESSAGE, message.clone()),
            ];
            if run.failure.is_none() {
                run.failure = Some((code, message));
            }
            root_event(run, ev, cx, sc::FAILED_EVENT.into(), attrs);
        }
        event::DEADLINE_SKIP => {
            let mut attrs = Vec::new();
            if let Some(d) = extra_f64(ev, "deadline_s") {
                attrs.push(kv(attr::DEADLINE, d));
            }
            root_event(run, ev, cx, sc::DEADLINE_SKIP_EVENT.into(), attrs);
        }
        other => {
            let mut attrs = Vec::new();
            if other == event::TRACE_CANCEL_START {
                run.cancelled = true;
                if let Some(p) = ev.extra.get("pending").and_then(Json::as_i64) {
                    attrs.push(kv(attr::TRACE_PENDING, p));
                }
            }
            let name = format!("{}{}", sc::EVENT_PREFIX, truncate(other, 64));
            root_event(run, ev, cx, name.into(), attrs);
        }
    }
}
