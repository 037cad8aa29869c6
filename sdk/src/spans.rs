//! Where FlowEvents become spans.
//!
//! One trace per run (the event's `trace_id`), one root span per run named
//! after the flow, and one child span per node attempt. An attempt's span is
//! built from its terminal event alone (`start = ts - latency_ms`), so a lost
//! or never-logged `node_start` costs nothing. Run-level happenings (retries,
//! terminal failures, cancellations, deadline skips, unknown event types)
//! become span events on the root.
//!
//! The root span is exported when the run ends, which flowtel decides as
//! follows: no event of the run for `run_idle_timeout` (`idle`), an explicit
//! [`Flowtel::end_run`](crate::Flowtel::end_run) (`explicit`), shutdown
//! (`shutdown`), or too many open runs (`evicted`, least recently active
//! first). Attempts that started but never finished are exported then too,
//! with outcome `incomplete`. Events that arrive for a run whose root was
//! already exported still produce attempt spans under the same root id, and
//! never a second root.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flowtel_semconv::{attr, event, outcome, span as sc};
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use serde_json::Value as Json;

use crate::event::FlowEvent;
use crate::ids::{self, FastMap};
use crate::stats::Counters;

/// Nanoseconds since the unix epoch, exact to the microsecond for the
/// timestamps PenguiFlow writes (the fraction is taken apart from the seconds
/// so that f64 rounding at 1.7e9 s does not eat it).
pub(crate) fn ts_ns(ts: f64) -> u128 {
    let secs = ts.trunc();
    let nanos = ((ts - secs) * 1e9).round() as u128;
    secs as u128 * 1_000_000_000 + nanos
}

fn ms_to_ns(ms: f64) -> u128 {
    (ms * 1e6).round() as u128
}

pub(crate) fn to_time(ns: u128) -> SystemTime {
    let d = Duration::new((ns / 1_000_000_000) as u64, (ns % 1_000_000_000) as u32);
    UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
}

/// Cut a string to at most `max` bytes on a char boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

/// Split a Python exception repr (`ValueError('boom')`, `TimeoutError()`)
/// into type and message.
pub(crate) fn parse_exception(repr: &str) -> (String, String) {
    if let Some(open) = repr.find('(') {
        let name = &repr[..open];
        if repr.ends_with(')')
            && !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            let inner = &repr[open + 1..repr.len() - 1];
            let msg = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                .unwrap_or(inner);
            return (name.to_string(), msg.to_string());
        }
    }
    ("Exception".to_string(), repr.to_string())
}

struct OpenStart {
    start_ns: u128,
    attempt: u32,
}

/// Terminal events seen for one (node, attempt) of a run: how many (the
/// next span's sequence number) and the latest few timestamps, to recognise
/// an exact duplicate. Fixed size however long the run lives.
#[derive(Default)]
struct Done {
    count: u32,
    recent: [u128; RECENT_TERMINALS],
}

const RECENT_TERMINALS: usize = 4;
/// Distinct nodes tracked per run.
const MAX_NODES_PER_RUN: usize = 4096;
/// Open starts kept per node of a run; older ones are forgotten.
const MAX_OPEN_PER_NODE: usize = 1024;

impl Done {
    fn is_duplicate(&self, ts: u128) -> bool {
        let n = (self.count as usize).min(RECENT_TERMINALS);
        self.recent[..n].contains(&ts)
    }

    /// Record a terminal event; returns its sequence number.
    fn push(&mut self, ts: u128) -> u32 {
        self.recent[self.count as usize % RECENT_TERMINALS] = ts;
        self.count = self.count.saturating_add(1);
        self.count - 1
    }
}

/// What a run knows about one of its nodes (keyed by node id, else name).
struct NodeState {
    name: Arc<str>,
    id: Option<Arc<str>>,
    /// Started attempts without a terminal event yet.
    open: Vec<OpenStart>,
    /// Terminal events seen, per attempt number.
    done: Vec<(u32, Done)>,
}

impl NodeState {
    fn new(ev: &FlowEvent, key: &str) -> Self {
        NodeState {
            name: Arc::from(ev.node_name.as_deref().unwrap_or(key)),
            id: ev.node_id.as_deref().map(Arc::from),
            open: Vec::new(),
            done: Vec::new(),
        }
    }

    fn done(&mut self, attempt: u32) -> &mut Done {
        let i = match self.done.iter().position(|(a, _)| *a == attempt) {
            Some(i) => i,
            None => {
                self.done.push((attempt, Done::default()));
                self.done.len() - 1
            }
        };
        &mut self.done[i].1
    }

    fn take_open(&mut self, attempt: u32) -> Option<u128> {
        let pos = self.open.iter().position(|s| s.attempt == attempt)?;
        Some(self.open.remove(pos).start_ns)
    }
}

/// Run-level facts every span of the run carries.
struct RunMeta {
    trace: TraceId,
    run_id: Option<Arc<str>>,
    tenant: Option<Arc<str>>,
}

struct Run {
    meta: RunMeta,
    start_ns: u128,
    end_ns: u128,
    last_seen: Instant,
    events: Vec<Event>,
    dropped_events: u32,
    attempts: u64,
    cancelled: bool,
    failure: Option<(String, String)>,
    root_exported: bool,
    nodes: FastMap<String, NodeState>,
}

/// What mapping produced: spans, and changes of the number of attempts in
/// flight per node (for `flow.node.active`).
#[derive(Default)]
pub(crate) struct Effects {
    pub(crate) spans: Vec<SpanData>,
    pub(crate) active: Vec<(Arc<str>, i64)>,
}

/// The facts of one attempt's end, from its terminal event or from the run
/// ending while it was open.
struct AttemptEnd<'a> {
    kind: &'a str,
    /// Allow-listed `extra` values (`flow.extra.<key>`).
    extras: Vec<KeyValue>,
    attempt: u32,
    exception: Option<&'a str>,
    depth_in: u64,
    depth_out: u64,
    start: u128,
    end: u128,
    seq: u32,
}

impl<'a> AttemptEnd<'a> {
    /// The end of an attempt as its terminal event tells it.
    fn terminal(
        ev: &'a FlowEvent,
        extras: Vec<KeyValue>,
        (start, end): (u128, u128),
        seq: u32,
    ) -> Self {
        AttemptEnd {
            kind: ev.event_type.as_str(),
            extras,
            attempt: ev.attempt,
            exception: extra_str(ev, "exception"),
            depth_in: ev.queue_depth_in,
            depth_out: ev.queue_depth_out,
            start,
            end,
            seq,
        }
    }
}

pub(crate) struct SpanMapper {
    flow_name: String,
    scope: InstrumentationScope,
    runs: FastMap<TraceId, Run>,
    closed: HashSet<TraceId, std::hash::BuildHasherDefault<ids::Fnv>>,
    closed_order: VecDeque<TraceId>,
    idle_timeout: Duration,
    max_open_runs: usize,
    max_root_events: usize,
    max_attr_len: usize,
    /// Allow-listed `extra` keys and their span attribute keys.
    span_extras: Vec<(String, opentelemetry::Key)>,
    stats: Arc<Counters>,
}

#[derive(Clone, Copy)]
pub(crate) enum EndReason {
    Idle,
    Explicit,
    Shutdown,
    Evicted,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Explicit => "explicit",
            EndReason::Shutdown => "shutdown",
            EndReason::Evicted => "evicted",
        }
    }
}

fn kv(key: &'static str, value: impl Into<Value>) -> KeyValue {
    KeyValue::new(key, value)
}

fn node_key(ev: &FlowEvent) -> &str {
    ev.node_id
        .as_deref()
        .or(ev.node_name.as_deref())
        .unwrap_or("")
}

fn extra_str<'a>(ev: &'a FlowEvent, key: &str) -> Option<&'a str> {
    ev.extra.get(key).and_then(Json::as_str)
}

fn extra_f64(ev: &FlowEvent, key: &str) -> Option<f64> {
    ev.extra.get(key).and_then(Json::as_f64)
}

/// `ids` is (trace, span, parent).
/// The allow-listed `extra` values of an event, as span attributes.
fn extra_attrs(
    keys: &[(String, opentelemetry::Key)],
    max_len: usize,
    ev: &FlowEvent,
) -> Vec<KeyValue> {
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

fn new_span(
    scope: &InstrumentationScope,
    (trace, id, parent): (TraceId, SpanId, SpanId),
    name: String,
    (start, end): (u128, u128),
    attributes: Vec<KeyValue>,
    events: SpanEvents,
    status: Status,
) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            trace,
            id,
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: parent,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: name.into(),
        start_time: to_time(start),
        end_time: to_time(end),
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

fn attempt_span(
    scope: &InstrumentationScope,
    max_attr_len: usize,
    meta: &RunMeta,
    key: &str,
    node: &NodeState,
    a: AttemptEnd<'_>,
) -> SpanData {
    let (out, error) = match a.kind {
        event::NODE_SUCCESS => (outcome::SUCCESS, None),
        event::NODE_ERROR => {
            let (ty, msg) = a
                .exception
                .map(parse_exception)
                .unwrap_or_else(|| ("Exception".into(), String::new()));
            (outcome::ERROR, Some((ty.clone(), ty, msg)))
        }
        event::NODE_TIMEOUT => {
            let (ty, msg) = a
                .exception
                .map(parse_exception)
                .unwrap_or_else(|| ("TimeoutError".into(), String::new()));
            (outcome::TIMEOUT, Some(("timeout".to_string(), ty, msg)))
        }
        event::NODE_TRACE_CANCELLED => (outcome::CANCELLED, None),
        _ => (outcome::INCOMPLETE, None),
    };
    let mut attributes = Vec::with_capacity(10);
    attributes.push(kv(attr::NODE_NAME, node.name.clone()));
    if let Some(id) = &node.id {
        attributes.push(kv(attr::NODE_ID, id.clone()));
    }
    attributes.push(kv(attr::NODE_ATTEMPT, i64::from(a.attempt)));
    attributes.push(kv(attr::NODE_OUTCOME, out));
    attributes.push(kv(attr::QUEUE_DEPTH_IN, a.depth_in as i64));
    attributes.push(kv(attr::QUEUE_DEPTH_OUT, a.depth_out as i64));
    if let Some(id) = &meta.run_id {
        attributes.push(kv(attr::RUN_ID, id.clone()));
    }
    if let Some(t) = &meta.tenant {
        attributes.push(kv(attr::TENANT, t.clone()));
    }
    attributes.extend(a.extras);
    let mut events = SpanEvents::default();
    let status = match error {
        Some((error_type, exc_type, msg)) => {
            let msg = truncate(&msg, max_attr_len);
            events.events.push(Event::new(
                sc::EXCEPTION_EVENT,
                to_time(a.end),
                vec![
                    kv(attr::EXCEPTION_TYPE, exc_type),
                    kv(attr::EXCEPTION_MESSAGE, msg.clone()),
                ],
                0,
            ));
            let description = if msg.is_empty() {
                error_type.clone()
            } else {
                msg
            };
            attributes.push(kv(attr::ERROR_TYPE, error_type));
            Status::error(description)
        }
        None => Status::Unset,
    };
    new_span(
        scope,
        (
            meta.trace,
            ids::attempt_span_id(meta.trace, key, a.attempt, a.seq),
            ids::root_span_id(meta.trace),
        ),
        node.name.to_string(),
        (a.start, a.end.max(a.start)),
        attributes,
        events,
        status,
    )
}

impl SpanMapper {
    pub(crate) fn new(config: &crate::config::Config, stats: Arc<Counters>) -> Self {
        SpanMapper {
            flow_name: config.flow_name(),
            scope: InstrumentationScope::builder(sc::SCOPE)
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            runs: FastMap::default(),
            closed: HashSet::default(),
            closed_order: VecDeque::new(),
            idle_timeout: config.run_idle_timeout,
            max_open_runs: config.max_open_runs,
            max_root_events: config.max_root_events,
            max_attr_len: config.max_attribute_len,
            span_extras: config
                .span_extra_keys
                .iter()
                .filter(|k| crate::config::secret_word(k).is_none())
                .map(|k| {
                    (
                        k.clone(),
                        opentelemetry::Key::new(format!("{}{k}", attr::EXTRA_PREFIX)),
                    )
                })
                .collect(),
            stats,
        }
    }

    /// Map one (validated) event.
    pub(crate) fn on_event(&mut self, ev: &FlowEvent, now: Instant, fx: &mut Effects) {
        let Some(run_str) = ev.trace_id.as_deref() else {
            return;
        };
        let (trace, kept) = ids::trace_id_for(run_str);
        if !self.runs.contains_key(&trace) {
            if self.runs.len() >= self.max_open_runs {
                self.evict(fx);
            }
            let reopened = self.closed.contains(&trace);
            self.runs.insert(
                trace,
                Run {
                    meta: RunMeta {
                        trace,
                        run_id: (!kept).then(|| Arc::from(truncate(run_str, self.max_attr_len))),
                        tenant: None,
                    },
                    start_ns: u128::MAX,
                    end_ns: 0,
                    last_seen: now,
                    events: Vec::new(),
                    dropped_events: 0,
                    attempts: 0,
                    cancelled: false,
                    failure: None,
                    root_exported: reopened,
                    nodes: FastMap::with_capacity_and_hasher(8, Default::default()),
                },
            );
        }
        let (scope, max_attr_len, max_root_events, span_extras) = (
            &self.scope,
            self.max_attr_len,
            self.max_root_events,
            &self.span_extras,
        );
        let Some(run) = self.runs.get_mut(&trace) else {
            return;
        };
        run.last_seen = now;
        let end = ts_ns(ev.ts);
        let start = ev
            .latency_ms
            .map_or(end, |l| end.saturating_sub(ms_to_ns(l)));
        run.start_ns = run.start_ns.min(start);
        run.end_ns = run.end_ns.max(end);
        if run.meta.tenant.is_none() {
            if let Some(t) = extra_str(ev, "tenant") {
                run.meta.tenant = Some(Arc::from(truncate(t, max_attr_len)));
            }
        }
        let key = node_key(ev);

        let root_event = |run: &mut Run, name: Cow<'static, str>, mut attrs: Vec<KeyValue>| {
            if run.events.len() >= max_root_events {
                run.dropped_events += 1;
                return;
            }
            if let Some(n) = ev.node_name.as_deref() {
                attrs.insert(0, kv(attr::NODE_NAME, truncate(n, max_attr_len)));
            }
            run.events.push(Event::new(name, to_time(end), attrs, 0));
        };

        let kind = ev.event_type.as_str();
        let is_node_event = matches!(
            kind,
            event::NODE_START
                | event::NODE_SUCCESS
                | event::NODE_ERROR
                | event::NODE_TIMEOUT
                | event::NODE_TRACE_CANCELLED
        );
        if is_node_event && !run.nodes.contains_key(key) && run.nodes.len() >= MAX_NODES_PER_RUN {
            // A run with more distinct nodes than this is hostile or broken:
            // its further nodes get no state (their terminal events still
            // become spans, statelessly, under the same root).
            if matches!(
                kind,
                event::NODE_SUCCESS | event::NODE_ERROR | event::NODE_TIMEOUT
            ) {
                let node = NodeState::new(ev, key);
                run.attempts += 1;
                let a = AttemptEnd::terminal(
                    ev,
                    extra_attrs(span_extras, max_attr_len, ev),
                    (start, end),
                    0,
                );
                fx.spans
                    .push(attempt_span(scope, max_attr_len, &run.meta, key, &node, a));
            }
            return;
        }
        if is_node_event && !run.nodes.contains_key(key) {
            run.nodes.insert(key.to_string(), NodeState::new(ev, key));
        }
        match kind {
            event::NODE_START => {
                let Some(node) = run.nodes.get_mut(key) else {
                    return;
                };
                if node.open.len() >= MAX_OPEN_PER_NODE {
                    // Starts that never ended, piling up: forget the oldest
                    // (and take it out of the active count).
                    node.open.remove(0);
                    fx.active.push((node.name.clone(), -1));
                }
                node.open.push(OpenStart {
                    start_ns: end,
                    attempt: ev.attempt,
                });
                fx.active.push((node.name.clone(), 1));
            }
            event::NODE_SUCCESS | event::NODE_ERROR | event::NODE_TIMEOUT => {
                let Some(node) = run.nodes.get_mut(key) else {
                    return;
                };
                let opened = node.take_open(ev.attempt);
                if opened.is_some() {
                    fx.active.push((node.name.clone(), -1));
                }
                let start = match (ev.latency_ms, opened) {
                    (Some(_), _) => start,
                    (None, Some(s)) => s,
                    (None, None) => end,
                };
                let done = node.done(ev.attempt);
                if done.is_duplicate(end) {
                    self.stats.add_duplicate();
                    return;
                }
                let seq = done.push(end);
                run.attempts += 1;
                let a = AttemptEnd::terminal(
                    ev,
                    extra_attrs(span_extras, max_attr_len, ev),
                    (start, end),
                    seq,
                );
                fx.spans
                    .push(attempt_span(scope, max_attr_len, &run.meta, key, node, a));
            }
            event::NODE_TRACE_CANCELLED => {
                if let Some(node) = run.nodes.get_mut(key) {
                    if let Some(s) = node.open.pop() {
                        fx.active.push((node.name.clone(), -1));
                        let seq = node.done(s.attempt).push(end);
                        run.attempts += 1;
                        let a = AttemptEnd {
                            kind,
                            extras: extra_attrs(span_extras, max_attr_len, ev),
                            attempt: s.attempt,
                            exception: None,
                            depth_in: ev.queue_depth_in,
                            depth_out: ev.queue_depth_out,
                            start: s.start_ns,
                            end,
                            seq,
                        };
                        fx.spans
                            .push(attempt_span(scope, max_attr_len, &run.meta, key, node, a));
                    }
                }
                root_event(run, "flow.node_trace_cancelled".into(), Vec::new());
            }
            event::NODE_RETRY => {
                let mut attrs = vec![kv(attr::NODE_ATTEMPT, i64::from(ev.attempt))];
                if let Some(d) = extra_f64(ev, "sleep_s") {
                    attrs.push(kv(attr::RETRY_DELAY, d));
                }
                if let Some(x) = extra_str(ev, "exception") {
                    attrs.push(kv(attr::ERROR_TYPE, parse_exception(x).0));
                }
                root_event(run, sc::RETRY_EVENT.into(), attrs);
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
                root_event(run, sc::FAILED_EVENT.into(), attrs);
            }
            event::DEADLINE_SKIP => {
                let mut attrs = Vec::new();
                if let Some(d) = extra_f64(ev, "deadline_s") {
                    attrs.push(kv(attr::DEADLINE, d));
                }
                root_event(run, sc::DEADLINE_SKIP_EVENT.into(), attrs);
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
                root_event(run, name.into(), attrs);
            }
        }
    }

    /// End the run of `trace_id` now (explicit end). Returns false when no
    /// such run is open.
    pub(crate) fn end_run(&mut self, run: &str, fx: &mut Effects) -> bool {
        let (trace, _) = ids::trace_id_for(run);
        self.finish(trace, EndReason::Explicit, fx)
    }

    /// End every run idle for longer than the idle timeout.
    pub(crate) fn end_idle(&mut self, now: Instant, fx: &mut Effects) {
        let idle: Vec<TraceId> = self
            .runs
            .values()
            .filter(|r| now.duration_since(r.last_seen) >= self.idle_timeout)
            .map(|r| r.meta.trace)
            .collect();
        for t in idle {
            self.finish(t, EndReason::Idle, fx);
        }
    }

    /// End every open run (shutdown).
    pub(crate) fn end_all(&mut self, fx: &mut Effects) {
        let all: Vec<TraceId> = self.runs.keys().copied().collect();
        for t in all {
            self.finish(t, EndReason::Shutdown, fx);
        }
    }

    /// Make room: end the least recently active tenth of the open runs.
    fn evict(&mut self, fx: &mut Effects) {
        let mut by_age: Vec<(Instant, TraceId)> = self
            .runs
            .values()
            .map(|r| (r.last_seen, r.meta.trace))
            .collect();
        by_age.sort_unstable_by_key(|(seen, _)| *seen);
        let n = (self.max_open_runs / 10).max(1);
        for (_, t) in by_age.into_iter().take(n) {
            self.finish(t, EndReason::Evicted, fx);
        }
    }

    fn finish(&mut self, trace: TraceId, reason: EndReason, fx: &mut Effects) -> bool {
        let Some(mut run) = self.runs.remove(&trace) else {
            return false;
        };
        // Attempts that started and never ended: exported as incomplete,
        // ending with the run, and no longer counted as active.
        for (key, node) in run.nodes.iter_mut() {
            for s in std::mem::take(&mut node.open) {
                fx.active.push((node.name.clone(), -1));
                let seq = node.done(s.attempt).push(s.start_ns);
                let a = AttemptEnd {
                    kind: outcome::INCOMPLETE,
                    extras: Vec::new(),
                    attempt: s.attempt,
                    exception: None,
                    depth_in: 0,
                    depth_out: 0,
                    start: s.start_ns,
                    end: run.end_ns.max(s.start_ns),
                    seq,
                };
                fx.spans.push(attempt_span(
                    &self.scope,
                    self.max_attr_len,
                    &run.meta,
                    key,
                    node,
                    a,
                ));
            }
        }
        if !run.root_exported {
            fx.spans.push(self.root_span(run, reason));
        }
        if self.closed.insert(trace) {
            self.closed_order.push_back(trace);
            if self.closed_order.len() > self.max_open_runs.max(1024) * 4 {
                if let Some(old) = self.closed_order.pop_front() {
                    self.closed.remove(&old);
                }
            }
        }
        true
    }

    fn root_span(&self, run: Run, reason: EndReason) -> SpanData {
        let mut attributes = vec![
            kv(attr::FLOW_NAME, self.flow_name.clone()),
            kv(attr::RUN_ATTEMPTS, run.attempts as i64),
            kv(attr::RUN_CANCELLED, run.cancelled),
            kv(attr::RUN_END_REASON, reason.as_str()),
        ];
        if let Some(id) = &run.meta.run_id {
            attributes.push(kv(attr::RUN_ID, id.clone()));
        }
        if let Some(t) = &run.meta.tenant {
            attributes.push(kv(attr::TENANT, t.clone()));
        }
        let status = match &run.failure {
            Some((code, message)) => {
                attributes.push(kv(attr::ERROR_TYPE, code.clone()));
                Status::error(if message.is_empty() {
                    code.clone()
                } else {
                    format!("{code}: {message}")
                })
            }
            None => Status::Unset,
        };
        if run.dropped_events > 0 {
            self.stats
                .add_root_events_dropped(u64::from(run.dropped_events));
        }
        let mut events = SpanEvents::default();
        events.events = run.events;
        events.dropped_count = run.dropped_events;
        let trace = run.meta.trace;
        new_span(
            &self.scope,
            (trace, ids::root_span_id(trace), SpanId::INVALID),
            self.flow_name.clone(),
            (run.start_ns.min(run.end_ns), run.end_ns),
            attributes,
            events,
            status,
        )
    }
}
