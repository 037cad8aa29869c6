//! Where FlowEvents become metrics.
//!
//! Attributes are a closed set: event type, node name, outcome, error type,
//! queue direction, and, only when enabled, tenant and allow-listed `extra`
//! keys. Never a trace id, a node id, or any other `extra` value. Each
//! variable attribute is bounded by the cardinality limit: once a value set is
//! full, new values are recorded as `_overflow`, counted, and warned about once.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use flowtel_semconv::{attr, event, metric, outcome, reason, unit, OVERFLOW_VALUE};
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::{Key, KeyValue, StringValue, Value};
use serde_json::Value as Json;

use crate::config::Config;
use crate::event::FlowEvent;
use crate::ids::FastMap;
use crate::stats::Counters;

/// Explicit histogram buckets for durations in seconds (1 ms to 5 min):
/// aggregatable across workers, unlike quantile gauges.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// A metric attribute whose values are bounded by the cardinality limit.
/// Each value gets a slot; slot `limit` is the overflow value.
struct Bounded {
    key: Key,
    limit: usize,
    slots: FastMap<String, usize>,
    kvs: Vec<KeyValue>,
}

impl Bounded {
    fn new(key: impl Into<Key>, limit: usize) -> Self {
        let key = key.into();
        Bounded {
            kvs: vec![KeyValue::new(
                key.clone(),
                Value::String(StringValue::from(OVERFLOW_VALUE)),
            )],
            key,
            limit,
            slots: FastMap::default(),
        }
    }

    /// The slot of `value`; `Err` with the overflow slot when the value set
    /// is full (the caller counts the overflow).
    fn slot(&mut self, value: &str) -> Result<usize, usize> {
        if let Some(&i) = self.slots.get(value) {
            return Ok(i);
        }
        if self.slots.len() < self.limit {
            let v = Value::String(StringValue::from(Arc::<str>::from(value)));
            self.kvs.push(KeyValue::new(self.key.clone(), v));
            let i = self.kvs.len() - 1;
            self.slots.insert(value.to_string(), i);
            return Ok(i);
        }
        Err(0)
    }
}

/// Last seen queue depths and trace in-flight count of one node, reported
/// by observable gauges at collection time: a plain store per event instead
/// of four instrument updates.
#[derive(Clone, Default)]
struct NodeGauges {
    node: Option<KeyValue>,
    depth_in: u64,
    depth_out: u64,
    inflight: u64,
    /// Attempts started and not yet finished (`flow.node.active`).
    active: i64,
}

type GaugeTable = Arc<Mutex<Vec<NodeGauges>>>;

pub(crate) struct FlowMetrics {
    events: Counter<u64>,
    duration: Histogram<f64>,
    retry_delay: Histogram<f64>,
    failures: Counter<u64>,
    overflow: Counter<u64>,
    gauges: GaugeTable,
    nodes: Bounded,
    event_types: Bounded,
    error_types: Bounded,
    tenants: Option<Bounded>,
    extras: Vec<(String, Bounded)>,
    /// Reused attribute list, so recording allocates nothing once warm.
    scratch: Vec<KeyValue>,
    stats: Arc<Counters>,
}

impl FlowMetrics {
    pub(crate) fn new(meter: &Meter, config: &Config, stats: Arc<Counters>) -> Self {
        let limit = config.cardinality_limit;
        register_self_metrics(meter, &stats);
        let gauges: GaugeTable = Arc::default();
        register_gauges(meter, &gauges);
        FlowMetrics {
            events: meter
                .u64_counter(metric::EVENTS)
                .with_unit(unit::EVENTS)
                .with_description("FlowEvents by type and node")
                .build(),
            duration: meter
                .f64_histogram(metric::NODE_DURATION)
                .with_unit(unit::SECONDS)
                .with_description("Node attempt duration by outcome; one observation per attempt")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            retry_delay: meter
                .f64_histogram(metric::RETRY_DELAY)
                .with_unit(unit::SECONDS)
                .with_description("Delay before a retried attempt")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            failures: meter
                .u64_counter(metric::NODE_FAILURES)
                .with_unit(unit::FAILURES)
                .with_description("Terminal node failures by error code")
                .build(),
            overflow: meter
                .u64_counter(metric::SDK_CARDINALITY_OVERFLOW)
                .with_unit(unit::VALUES)
                .with_description("Metric attribute values replaced by _overflow")
                .build(),
            gauges,
            nodes: Bounded::new(attr::NODE_NAME, limit),
            event_types: Bounded::new(attr::EVENT_TYPE, limit),
            error_types: Bounded::new(attr::ERROR_TYPE, limit),
            tenants: config
                .tenant_metrics
                .then(|| Bounded::new(attr::TENANT, limit)),
            extras: config
                .metric_extra_keys
                .iter()
                .filter(|k| !is_forbidden_extra(k))
                .map(|k| (k.clone(), Bounded::new(Key::new(k.clone()), limit)))
                .collect(),
            scratch: Vec::with_capacity(8),
            stats,
        }
    }

    /// Resolve a value of a bounded attribute, counting an overflow.
    fn resolve(
        b: &mut Bounded,
        value: &str,
        overflow: &Counter<u64>,
        stats: &Counters,
    ) -> (usize, KeyValue) {
        match b.slot(value) {
            Ok(i) => (i, b.kvs[i].clone()),
            Err(i) => {
                stats.add_overflow(b.key.as_str(), b.limit);
                overflow.add(
                    1,
                    &[KeyValue::new(
                        attr::OVERFLOW_ATTRIBUTE,
                        b.key.as_str().to_string(),
                    )],
                );
                (i, b.kvs[i].clone())
            }
        }
    }

    /// Update every instrument the event concerns.
    pub(crate) fn record(&mut self, ev: &FlowEvent) {
        let (overflow, stats) = (&self.overflow, &*self.stats);
        let mut attrs = std::mem::take(&mut self.scratch);
        attrs.clear();
        // Opt-in dimensions shared by every instrument of this event.
        if let (Some(b), Some(t)) = (
            self.tenants.as_mut(),
            ev.extra.get("tenant").and_then(Json::as_str),
        ) {
            attrs.push(Self::resolve(b, t, overflow, stats).1);
        }
        for (key, b) in &mut self.extras {
            let scalar = match ev.extra.get(key) {
                Some(Json::String(s)) => Some(s.clone()),
                Some(Json::Bool(v)) => Some(v.to_string()),
                Some(Json::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            if let Some(v) = scalar {
                attrs.push(Self::resolve(b, &v, overflow, stats).1);
            }
        }
        let common = attrs.len();

        let (_, event_type) = Self::resolve(&mut self.event_types, &ev.event_type, overflow, stats);
        let node = ev
            .node_name
            .as_deref()
            .map(|n| Self::resolve(&mut self.nodes, n, overflow, stats));
        attrs.push(event_type);
        if let Some((_, n)) = &node {
            attrs.push(n.clone());
        }
        self.events.add(1, &attrs);
        attrs.truncate(common);

        if let Some((slot, node_kv)) = node {
            attrs.push(node_kv.clone());
            match ev.event_type.as_str() {
                event::NODE_SUCCESS | event::NODE_ERROR | event::NODE_TIMEOUT => {
                    if let Some(ms) = ev.latency_ms {
                        let out = match ev.event_type.as_str() {
                            event::NODE_SUCCESS => outcome::SUCCESS,
                            event::NODE_ERROR => outcome::ERROR,
                            _ => outcome::TIMEOUT,
                        };
                        attrs.push(KeyValue::new(attr::NODE_OUTCOME, out));
                        self.duration.record(ms / 1000.0, &attrs);
                    }
                }
                event::NODE_RETRY => {
                    if let Some(s) = ev.extra.get("sleep_s").and_then(Json::as_f64) {
                        if s.is_finite() && s >= 0.0 {
                            self.retry_delay.record(s, &attrs);
                        }
                    }
                }
                event::NODE_FAILED => {
                    let code = ev
                        .extra
                        .get("flow_error")
                        .and_then(|f| f.get("code"))
                        .and_then(Json::as_str)
                        .unwrap_or("NODE_FAILED");
                    let (_, et) = Self::resolve(&mut self.error_types, code, overflow, stats);
                    attrs.push(et);
                    self.failures.add(1, &attrs);
                }
                _ => {}
            }
            let mut table = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
            let g = node_entry(&mut table, slot, node_kv);
            g.depth_in = ev.queue_depth_in;
            g.depth_out = ev.queue_depth_out;
            g.inflight = ev.trace_inflight;
        }
        self.scratch = attrs;
    }

    /// Apply a change of attempts in flight reported by the span mapping.
    pub(crate) fn active(&mut self, node: &str, delta: i64) {
        let (slot, kv) = Self::resolve(&mut self.nodes, node, &self.overflow, &self.stats);
        let mut table = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        node_entry(&mut table, slot, kv).active += delta;
    }
}

fn node_entry(table: &mut Vec<NodeGauges>, slot: usize, node: KeyValue) -> &mut NodeGauges {
    if table.len() <= slot {
        table.resize(slot + 1, NodeGauges::default());
    }
    let g = &mut table[slot];
    if g.node.is_none() {
        g.node = Some(node);
    }
    g
}

/// Call `f` with every node of the last-value table that has been seen.
fn each_node(table: &GaugeTable, mut f: impl FnMut(&NodeGauges, &KeyValue)) {
    let t = table.lock().unwrap_or_else(|p| p.into_inner());
    for g in t.iter() {
        if let Some(n) = &g.node {
            f(g, n);
        }
    }
}

/// The node gauges, observed from the last-value table.
fn register_gauges(meter: &Meter, table: &GaugeTable) {
    let t = table.clone();
    meter
        .u64_observable_gauge(metric::QUEUE_DEPTH)
        .with_unit(unit::MESSAGES)
        .with_description("Queue depth of a node by direction")
        .with_callback(move |o| {
            each_node(&t, |g, n| {
                o.observe(
                    g.depth_in,
                    &[n.clone(), KeyValue::new(attr::QUEUE_DIRECTION, "in")],
                );
                o.observe(
                    g.depth_out,
                    &[n.clone(), KeyValue::new(attr::QUEUE_DIRECTION, "out")],
                );
            });
        })
        .build();
    let t = table.clone();
    meter
        .u64_observable_gauge(metric::QUEUE_BACKLOG)
        .with_unit(unit::MESSAGES)
        .with_description("Messages queued at a node, in and out")
        .with_callback(move |o| {
            each_node(&t, |g, n| {
                o.observe(
                    g.depth_in.saturating_add(g.depth_out),
                    std::slice::from_ref(n),
                );
            });
        })
        .build();
    let t = table.clone();
    meter
        .i64_observable_up_down_counter(metric::NODE_ACTIVE)
        .with_unit(unit::ATTEMPTS)
        .with_description("Node attempts started and not yet finished")
        .with_callback(move |o| {
            each_node(&t, |g, n| {
                o.observe(g.active, std::slice::from_ref(n));
            });
        })
        .build();
    let t = table.clone();
    meter
        .u64_observable_gauge(metric::TRACE_INFLIGHT)
        .with_unit(unit::MESSAGES)
        .with_description("In-flight invocations of the trace the node last served")
        .with_callback(move |o| {
            each_node(&t, |g, n| {
                o.observe(g.inflight, std::slice::from_ref(n));
            });
        })
        .build();
}

/// Keys that identify a run or a node instance: never metric attributes,
/// even when allow-listed.
fn is_forbidden_extra(key: &str) -> bool {
    matches!(
        key,
        "trace_id" | "node_id" | "exception" | "flow_error" | "message_id"
    )
}

/// The `flowtel.sdk.*` counters, observed from the shared atomics.
fn register_self_metrics(meter: &Meter, stats: &Arc<Counters>) {
    let s = stats.clone();
    meter
        .u64_observable_counter(metric::SDK_EVENTS_DROPPED)
        .with_unit(unit::EVENTS)
        .with_description("FlowEvents that did not become telemetry, by reason")
        .with_callback(move |o| {
            for (r, v) in [
                (reason::QUEUE_FULL, &s.events_dropped_queue_full),
                (reason::INVALID, &s.events_invalid),
                (reason::SHUTDOWN, &s.events_after_shutdown),
                (reason::DUPLICATE, &s.events_duplicate),
            ] {
                o.observe(v.load(Relaxed), &[KeyValue::new(attr::DROP_REASON, r)]);
            }
        })
        .build();
    let s = stats.clone();
    meter
        .u64_observable_counter(metric::SDK_SPANS_DROPPED)
        .with_unit(unit::SPANS)
        .with_description("Spans dropped before export, by reason")
        .with_callback(move |o| {
            o.observe(
                s.spans_dropped.load(Relaxed),
                &[KeyValue::new(attr::DROP_REASON, reason::BUFFER_FULL)],
            );
            o.observe(
                s.root_events_dropped.load(Relaxed),
                &[KeyValue::new(attr::DROP_REASON, reason::EVENT_LIMIT)],
            );
        })
        .build();
    let s = stats.clone();
    meter
        .u64_observable_counter(metric::SDK_SPANS_EXPORTED)
        .with_unit(unit::SPANS)
        .with_description("Spans acknowledged by the exporter")
        .with_callback(move |o| o.observe(s.spans_exported.load(Relaxed), &[]))
        .build();
    let s = stats.clone();
    meter
        .u64_observable_counter(metric::SDK_EXPORT_FAILURES)
        .with_unit(unit::REQUESTS)
        .with_description("Failed span export requests (retried while buffered)")
        .with_callback(move |o| o.observe(s.export_failures.load(Relaxed), &[]))
        .build();
}
