//! Where FlowEvents become metrics.
//!
//! Attributes are a closed set: event type, node name, outcome, error type,
//! queue direction, and, only when enabled, tenant and allow-listed `extra`
//! keys. Never a trace id, a node id, or any other `extra` value. Each
//! variable attribute is bounded by the cardinality limit: once a value set is
//! full, new values are recorded as `_overflow`, counted, and warned about once.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use flowtel_semconv::{attr, event, metric, outcome, reason, unit, OVERFLOW_VALUE};
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, UpDownCounter};
use opentelemetry::{Key, KeyValue, StringValue, Value};
use serde_json::Value as Json;

use crate::config::Config;
use crate::event::FlowEvent;
use crate::stats::Counters;

/// Explicit histogram buckets for durations in seconds (1 ms to 5 min):
/// aggregatable across workers, unlike quantile gauges.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// A metric attribute whose values are bounded by the cardinality limit.
struct Bounded {
    key: Key,
    limit: usize,
    values: HashMap<String, Value>,
    overflow: Value,
}

impl Bounded {
    fn new(key: impl Into<Key>, limit: usize) -> Self {
        Bounded {
            key: key.into(),
            limit,
            values: HashMap::new(),
            overflow: Value::String(StringValue::from(OVERFLOW_VALUE)),
        }
    }

    /// The attribute for `value`, or `None` when it overflowed (the caller
    /// records the overflow and uses the overflow value).
    fn get(&mut self, value: &str) -> Result<KeyValue, KeyValue> {
        if let Some(v) = self.values.get(value) {
            return Ok(KeyValue::new(self.key.clone(), v.clone()));
        }
        if self.values.len() < self.limit {
            let v = Value::String(StringValue::from(Arc::<str>::from(value)));
            self.values.insert(value.to_string(), v.clone());
            return Ok(KeyValue::new(self.key.clone(), v));
        }
        Err(KeyValue::new(self.key.clone(), self.overflow.clone()))
    }
}

pub(crate) struct FlowMetrics {
    events: Counter<u64>,
    duration: Histogram<f64>,
    retry_delay: Histogram<f64>,
    failures: Counter<u64>,
    active: UpDownCounter<i64>,
    queue_depth: Gauge<u64>,
    backlog: Gauge<u64>,
    inflight: Gauge<u64>,
    overflow: Counter<u64>,
    nodes: Bounded,
    event_types: Bounded,
    error_types: Bounded,
    tenants: Option<Bounded>,
    extras: Vec<(String, Bounded)>,
    direction_in: KeyValue,
    direction_out: KeyValue,
    stats: Arc<Counters>,
}

impl FlowMetrics {
    pub(crate) fn new(meter: &Meter, config: &Config, stats: Arc<Counters>) -> Self {
        let limit = config.cardinality_limit;
        register_self_metrics(meter, &stats);
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
            active: meter
                .i64_up_down_counter(metric::NODE_ACTIVE)
                .with_unit(unit::ATTEMPTS)
                .with_description("Node attempts started and not yet finished")
                .build(),
            queue_depth: meter
                .u64_gauge(metric::QUEUE_DEPTH)
                .with_unit(unit::MESSAGES)
                .with_description("Queue depth of a node by direction")
                .build(),
            backlog: meter
                .u64_gauge(metric::QUEUE_BACKLOG)
                .with_unit(unit::MESSAGES)
                .with_description("Messages queued at a node, in and out")
                .build(),
            inflight: meter
                .u64_gauge(metric::TRACE_INFLIGHT)
                .with_unit(unit::MESSAGES)
                .with_description("In-flight invocations of the trace the node last served")
                .build(),
            overflow: meter
                .u64_counter(metric::SDK_CARDINALITY_OVERFLOW)
                .with_unit(unit::VALUES)
                .with_description("Metric attribute values replaced by _overflow")
                .build(),
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
            direction_in: KeyValue::new(attr::QUEUE_DIRECTION, "in"),
            direction_out: KeyValue::new(attr::QUEUE_DIRECTION, "out"),
            stats,
        }
    }

    fn bounded(&self, r: Result<KeyValue, KeyValue>, limit: usize) -> KeyValue {
        match r {
            Ok(kv) => kv,
            Err(kv) => {
                self.stats.add_overflow(kv.key.as_str(), limit);
                self.overflow.add(
                    1,
                    &[KeyValue::new(
                        attr::OVERFLOW_ATTRIBUTE,
                        kv.key.as_str().to_string(),
                    )],
                );
                kv
            }
        }
    }

    /// Update every instrument the event concerns.
    pub(crate) fn record(&mut self, ev: &FlowEvent) {
        let limit = self.nodes.limit;
        let node = ev.node_name.as_deref().map(|n| {
            let r = self.nodes.get(n);
            self.bounded(r, limit)
        });
        let r = self.event_types.get(&ev.event_type);
        let event_type = self.bounded(r, limit);

        // Opt-in dimensions shared by every instrument of this event.
        let mut common: Vec<KeyValue> = Vec::new();
        if self.tenants.is_some() {
            if let Some(t) = ev.extra.get("tenant").and_then(Json::as_str) {
                let r = self.tenants.as_mut().map(|b| b.get(t));
                if let Some(r) = r {
                    common.push(self.bounded(r, limit));
                }
            }
        }
        for i in 0..self.extras.len() {
            let scalar = match ev.extra.get(&self.extras[i].0) {
                Some(Json::String(s)) => Some(s.clone()),
                Some(Json::Bool(b)) => Some(b.to_string()),
                Some(Json::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            if let Some(s) = scalar {
                let r = self.extras[i].1.get(&s);
                common.push(self.bounded(r, limit));
            }
        }

        let mut attrs: Vec<KeyValue> = Vec::with_capacity(3 + common.len());
        attrs.push(event_type);
        if let Some(n) = &node {
            attrs.push(n.clone());
        }
        attrs.extend(common.iter().cloned());
        self.events.add(1, &attrs);

        let Some(node) = node else {
            return;
        };
        let with = |extra: &[KeyValue]| -> Vec<KeyValue> {
            let mut v = Vec::with_capacity(1 + extra.len() + common.len());
            v.push(node.clone());
            v.extend_from_slice(extra);
            v.extend(common.iter().cloned());
            v
        };
        match ev.event_type.as_str() {
            event::NODE_SUCCESS | event::NODE_ERROR | event::NODE_TIMEOUT => {
                if let Some(ms) = ev.latency_ms {
                    let out = match ev.event_type.as_str() {
                        event::NODE_SUCCESS => outcome::SUCCESS,
                        event::NODE_ERROR => outcome::ERROR,
                        _ => outcome::TIMEOUT,
                    };
                    self.duration.record(
                        ms / 1000.0,
                        &with(&[KeyValue::new(attr::NODE_OUTCOME, out)]),
                    );
                }
            }
            event::NODE_RETRY => {
                if let Some(s) = ev.extra.get("sleep_s").and_then(Json::as_f64) {
                    if s.is_finite() && s >= 0.0 {
                        self.retry_delay.record(s, &with(&[]));
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
                let r = self.error_types.get(code);
                let et = self.bounded(r, limit);
                self.failures.add(1, &with(&[et]));
            }
            _ => {}
        }
        let node_only = with(&[]);
        self.backlog.record(ev.queue_depth(), &node_only);
        self.inflight.record(ev.trace_inflight, &node_only);
        self.queue_depth
            .record(ev.queue_depth_in, &with(&[self.direction_in.clone()]));
        self.queue_depth
            .record(ev.queue_depth_out, &with(&[self.direction_out.clone()]));
    }

    /// Apply changes of attempts in flight reported by the span mapping.
    pub(crate) fn active(&mut self, node: &str, delta: i64) {
        let limit = self.nodes.limit;
        let r = self.nodes.get(node);
        let kv = self.bounded(r, limit);
        self.active.add(delta, &[kv]);
    }
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
