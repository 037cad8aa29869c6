//! Where FlowEvents become metrics.
//!
//! Attributes are a closed set: event type, node name, outcome, error type,
//! queue direction, and, only when enabled, tenant and allow-listed `extra`
//! keys. Never a trace id, a node id, or any other `extra` value. Each
//! variable attribute is bounded by the cardinality limit: once a value set is
//! full, new values are recorded as `_overflow`, counted, and warned about once.

use std::hash::Hasher as _;
use std::sync::Arc;
use std::time::Instant;

use flowtel_semconv::{attr, event, metric, outcome, unit, OVERFLOW_VALUE};
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{Key, KeyValue, StringValue, Value};
use serde_json::Value as Json;

mod gauges;

use gauges::{node_entry, publish, register_gauges, GaugeTable, NodeGauges};

use crate::event::FlowEvent;
use crate::exemplars::Exemplars;
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

/// The series (attribute sets) one instrument has used, bounded: past the
/// limit, new sets are recorded under the overflow set and counted, so
/// that flowtel, not the OTel SDK, decides what overflows, and says so.
struct SeriesGuard {
    name: &'static str,
    limit: usize,
    seen: std::collections::HashSet<u64, std::hash::BuildHasherDefault<crate::ids::Fnv>>,
}

impl SeriesGuard {
    fn new(name: &'static str, limit: usize) -> Self {
        SeriesGuard {
            name,
            limit,
            seen: Default::default(),
        }
    }

    /// Whether the series `key` (a hash of the attribute slots) may be
    /// recorded as it is.
    fn admit(&mut self, key: u64) -> bool {
        if self.seen.contains(&key) {
            return true;
        }
        if self.seen.len() < self.limit {
            self.seen.insert(key);
            return true;
        }
        false
    }
}

/// The attribute set recorded for series beyond the limit (the OTel SDK's
/// own convention for its overflow series).
fn overflow_set() -> [KeyValue; 1] {
    [KeyValue::new("otel.metric.overflow", true)]
}

/// A series key from attribute slots (FNV-1a over their indices).
fn series_key(parts: &[usize]) -> u64 {
    let mut h = crate::ids::Fnv::default();
    for p in parts {
        h.write_usize(*p);
    }
    h.finish()
}

/// What the metric mapping needs to know, and nothing else.
#[derive(Clone, Debug)]
pub(crate) struct MetricsConfig {
    pub(crate) cardinality_limit: usize,
    pub(crate) max_series: usize,
    pub(crate) tenant_metrics: bool,
    pub(crate) metric_extra_keys: Vec<String>,
}

pub(crate) struct FlowMetrics {
    events: Counter<u64>,
    duration: Histogram<f64>,
    retry_delay: Histogram<f64>,
    failures: Counter<u64>,
    overflow: Counter<u64>,
    /// What the gauge callbacks read.
    gauges: GaugeTable,
    /// The node gauges as the mapping thread updates them, published to
    /// `gauges` at each flush: no lock per event.
    node_gauges: Vec<NodeGauges>,
    gauges_changed: bool,
    nodes: Bounded,
    event_types: Bounded,
    error_types: Bounded,
    tenants: Option<Bounded>,
    extras: Vec<(String, Bounded)>,
    events_series: SeriesGuard,
    duration_series: SeriesGuard,
    retry_series: SeriesGuard,
    failure_series: SeriesGuard,
    /// The latest attempt per bucket of each duration series.
    exemplars: Arc<Exemplars>,
    /// Reused attribute list, so recording allocates nothing once warm.
    scratch: Vec<KeyValue>,
    /// `flow.node.events` counts not yet added to the instrument, by
    /// series (at most the series limit): one `add` per series per
    /// [`flush_pending`](Self::flush_pending) instead of one per event.
    events_pending: FastMap<u64, PendingCount>,
    /// Events of series beyond the limit since the last flush.
    events_overflow_pending: u64,
    /// Each admitted `flow.node.duration` series (at most the series
    /// limit), its attributes built and its histogram bound when it is
    /// first seen.
    duration_attrs: FastMap<u64, DurationSeries>,
    stats: Arc<Counters>,
}

/// An admitted `flow.node.duration` series.
struct DurationSeries {
    attrs: Vec<KeyValue>,
    /// The histogram bound to `attrs` (feature `bound-instruments`): a
    /// recording neither hashes nor compares the attribute set. Measured
    /// with callgrind on 60 000 `scripts/bench-ingest` lines: the mapping
    /// thread's `Worker::event` went from 206.0 M to 174.1 M instructions
    /// (530 per event), most of it the OTel SDK SipHashing the set to find
    /// its series.
    #[cfg(feature = "bound-instruments")]
    bound: opentelemetry::metrics::BoundHistogram<f64>,
}

impl DurationSeries {
    #[cfg(feature = "bound-instruments")]
    fn new(h: &Histogram<f64>, attrs: &[KeyValue]) -> Self {
        DurationSeries {
            bound: h.bind(attrs),
            attrs: attrs.to_vec(),
        }
    }

    #[cfg(not(feature = "bound-instruments"))]
    fn new(_: &Histogram<f64>, attrs: &[KeyValue]) -> Self {
        DurationSeries {
            attrs: attrs.to_vec(),
        }
    }

    #[cfg(feature = "bound-instruments")]
    fn record(&self, _: &Histogram<f64>, secs: f64) {
        self.bound.record(secs);
    }

    #[cfg(not(feature = "bound-instruments"))]
    fn record(&self, h: &Histogram<f64>, secs: f64) {
        h.record(secs, &self.attrs);
    }
}

/// Events of one series counted since the last flush.
struct PendingCount {
    n: u64,
    attrs: Vec<KeyValue>,
}

impl FlowMetrics {
    pub(crate) fn new(
        meter: &Meter,
        config: &MetricsConfig,
        stats: Arc<Counters>,
        exemplars: Arc<Exemplars>,
    ) -> Self {
        let limit = config.cardinality_limit;
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
            node_gauges: Vec::new(),
            gauges_changed: false,
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
            events_series: SeriesGuard::new(metric::EVENTS, config.max_series),
            duration_series: SeriesGuard::new(metric::NODE_DURATION, config.max_series),
            retry_series: SeriesGuard::new(metric::RETRY_DELAY, config.max_series),
            failure_series: SeriesGuard::new(metric::NODE_FAILURES, config.max_series),
            exemplars,
            scratch: Vec::with_capacity(8),
            events_pending: FastMap::default(),
            events_overflow_pending: 0,
            duration_attrs: FastMap::default(),
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
        let i = Self::resolve_slot(b, value, overflow, stats);
        (i, b.kvs[i].clone())
    }

    /// The slot of a value of a bounded attribute, counting an overflow.
    fn resolve_slot(
        b: &mut Bounded,
        value: &str,
        overflow: &Counter<u64>,
        stats: &Counters,
    ) -> usize {
        match b.slot(value) {
            Ok(i) => i,
            Err(i) => {
                stats.add_overflow(b.key.as_str(), b.limit);
                overflow.add(
                    1,
                    &[KeyValue::new(
                        attr::OVERFLOW_ATTRIBUTE,
                        b.key.as_str().to_string(),
                    )],
                );
                i
            }
        }
    }

    /// Update every instrument the event concerns. The caller skips events
    /// the span mapping found to be duplicates, so that the metrics count
    /// exactly what the spans show. `span` is the span the mapping made of
    /// a terminal event's attempt: the duration's exemplar.
    pub(crate) fn record(&mut self, ev: &FlowEvent, span: Option<(TraceId, SpanId)>) {
        let mut attrs = std::mem::take(&mut self.scratch);
        attrs.clear();
        let common_key = self.common_dimensions(ev, &mut attrs);
        let common_len = attrs.len();
        let (overflow, stats) = (&self.overflow, &*self.stats);

        let type_slot = Self::resolve_slot(&mut self.event_types, &ev.event_type, overflow, stats);
        let node_slot = ev
            .node_name
            .as_deref()
            .map(|name| Self::resolve_slot(&mut self.nodes, name, overflow, stats));
        let key = series_key(&[
            common_key as usize,
            1,
            type_slot,
            node_slot.unwrap_or(usize::MAX),
        ]);
        // Counted here, added at the next flush: per admitted series, or
        // all together under the overflow set (no entry per series beyond
        // the limit, however many there are). A series with an entry was
        // admitted: its attributes were built once, when it was first seen.
        if let Some(p) = self.events_pending.get_mut(&key) {
            p.n += 1;
        } else {
            attrs.push(self.event_types.kvs[type_slot].clone());
            if let Some(slot) = node_slot {
                attrs.push(self.nodes.kvs[slot].clone());
            }
            if add_series(
                &mut self.events_series,
                key,
                &attrs,
                stats,
                overflow,
                |_| {},
            ) {
                self.events_pending.insert(
                    key,
                    PendingCount {
                        n: 1,
                        attrs: attrs.clone(),
                    },
                );
            } else {
                self.events_overflow_pending += 1;
            }
            attrs.truncate(common_len);
        }

        if let Some(slot) = node_slot {
            self.node_instruments(ev, span, (common_key, slot), &mut attrs);
            let g = node_entry(&mut self.node_gauges, slot, || self.nodes.kvs[slot].clone());
            g.depth_in = ev.queue_depth_in;
            g.depth_out = ev.queue_depth_out;
            g.inflight = ev.trace_inflight;
            self.gauges_changed = true;
        }
        self.scratch = attrs;
    }

    /// The opt-in dimensions every instrument of this event shares (tenant,
    /// allow-listed `extra` keys), pushed onto `attrs`; their series key:
    /// each dimension writes its slot, or a marker when the event lacks it.
    fn common_dimensions(&mut self, ev: &FlowEvent, attrs: &mut Vec<KeyValue>) -> u64 {
        let (overflow, stats) = (&self.overflow, &*self.stats);
        let mut common = crate::ids::Fnv::default();
        if let Some(b) = self.tenants.as_mut() {
            let slot = match ev.extra.get("tenant").and_then(Json::as_str) {
                Some(t) => {
                    let (slot, kv) = Self::resolve(b, t, overflow, stats);
                    attrs.push(kv);
                    slot
                }
                None => usize::MAX,
            };
            common.write_usize(slot);
        }
        for (key, b) in &mut self.extras {
            let scalar = match ev.extra.get(key) {
                Some(Json::String(s)) => Some(s.clone()),
                Some(Json::Bool(v)) => Some(v.to_string()),
                Some(Json::Number(num)) => Some(num.to_string()),
                _ => None,
            };
            let slot = match scalar {
                Some(v) => {
                    let (slot, kv) = Self::resolve(b, &v, overflow, stats);
                    attrs.push(kv);
                    slot
                }
                None => usize::MAX,
            };
            common.write_usize(slot);
        }
        common.finish()
    }

    /// The instruments of a node's event: the duration of a terminal
    /// attempt (with its exemplar), the delay before a retry, a terminal
    /// failure's code. `attrs` holds the common dimensions; the node's
    /// attribute is added here when a series needs its attributes.
    fn node_instruments(
        &mut self,
        ev: &FlowEvent,
        span: Option<(TraceId, SpanId)>,
        (common_key, slot): (u64, usize),
        attrs: &mut Vec<KeyValue>,
    ) {
        let (overflow, stats) = (&self.overflow, &*self.stats);
        match ev.event_type.as_str() {
            event::NODE_SUCCESS | event::NODE_ERROR | event::NODE_TIMEOUT | event::NODE_DROPPED => {
                if let Some(ms) = ev.latency_ms {
                    let (out, out_slot) = match ev.event_type.as_str() {
                        event::NODE_SUCCESS => (outcome::SUCCESS, 0),
                        event::NODE_ERROR => (outcome::ERROR, 1),
                        event::NODE_DROPPED => (outcome::DROPPED, 3),
                        _ => (outcome::TIMEOUT, 2),
                    };
                    let key = series_key(&[common_key as usize, 2, slot, out_slot]);
                    let h = &self.duration;
                    let secs = ms / 1000.0;
                    // An admitted series' attributes are built once.
                    let admitted = match self.duration_attrs.get(&key) {
                        Some(series) => {
                            series.record(h, secs);
                            Some(&series.attrs[..])
                        }
                        None => {
                            attrs.push(self.nodes.kvs[slot].clone());
                            attrs.push(KeyValue::new(attr::NODE_OUTCOME, out));
                            if add_series(
                                &mut self.duration_series,
                                key,
                                attrs,
                                stats,
                                overflow,
                                |a| h.record(secs, a),
                            ) {
                                let series = DurationSeries::new(h, attrs);
                                let series = self.duration_attrs.entry(key).or_insert(series);
                                Some(&series.attrs[..])
                            } else {
                                None
                            }
                        }
                    };
                    if let (Some(attrs), Some(span)) = (admitted, span) {
                        self.exemplars.record(key, attrs, secs, span);
                    }
                }
            }
            event::NODE_RETRY => {
                if let Some(s) = ev.extra.get("sleep_s").and_then(Json::as_f64) {
                    if s.is_finite() && s >= 0.0 {
                        attrs.push(self.nodes.kvs[slot].clone());
                        let key = series_key(&[common_key as usize, 3, slot]);
                        let h = &self.retry_delay;
                        add_series(&mut self.retry_series, key, attrs, stats, overflow, |a| {
                            h.record(s, a)
                        });
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
                let (code_slot, et) = Self::resolve(&mut self.error_types, code, overflow, stats);
                attrs.push(self.nodes.kvs[slot].clone());
                attrs.push(et);
                let key = series_key(&[common_key as usize, 4, slot, code_slot]);
                let c = &self.failures;
                add_series(&mut self.failure_series, key, attrs, stats, overflow, |a| {
                    c.add(1, a)
                });
            }
            _ => {}
        }
    }

    /// Add the events counted since the last flush to `flow.node.events`.
    /// The mapping thread calls it whenever its queue runs dry, every few
    /// hundred events, and before every flush and the final export, so a
    /// collection never misses more than the events of the moment.
    pub(crate) fn flush_pending(&mut self) {
        self.publish_gauges();
        for p in self.events_pending.values_mut() {
            if p.n > 0 {
                self.events.add(p.n, &p.attrs);
                p.n = 0;
            }
        }
        if self.events_overflow_pending > 0 {
            self.events
                .add(self.events_overflow_pending, &overflow_set());
            self.events_overflow_pending = 0;
        }
    }

    /// Apply a change of attempts in flight reported by the span mapping
    /// (`node` is the node's metric name: its name or `_unknown`).
    pub(crate) fn active(&mut self, node: &str, delta: i64) {
        let slot = Self::resolve_slot(&mut self.nodes, node, &self.overflow, &self.stats);
        let nodes = &self.nodes;
        node_entry(&mut self.node_gauges, slot, || nodes.kvs[slot].clone()).active += delta;
        self.gauges_changed = true;
    }

    /// The node gauges' values to the table their callbacks read (at each
    /// [`flush_pending`](Self::flush_pending): what a collection sees is
    /// as fresh as the event counts).
    fn publish_gauges(&mut self) {
        if !std::mem::take(&mut self.gauges_changed) {
            return;
        }
        let mut table = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        publish(&mut table, &self.node_gauges);
    }

    /// The mapping's report of the oldest open attempt per node (by metric
    /// node name, with when flowtel saw it start); nodes it does not name
    /// have none open.
    pub(crate) fn oldest_open<'a>(&mut self, oldest: impl IntoIterator<Item = (&'a str, Instant)>) {
        let table = &mut self.node_gauges;
        for g in table.iter_mut() {
            g.oldest_open = None;
        }
        for (node, seen) in oldest {
            // Every name reported here was resolved (and any overflow
            // counted) when its attempt started: not counted again.
            let slot = self.nodes.slot(node).unwrap_or_else(|overflow| overflow);
            let nodes = &self.nodes;
            let g = node_entry(table, slot, || nodes.kvs[slot].clone());
            // Several names may share the overflow slot: keep the oldest.
            g.oldest_open = Some(g.oldest_open.map_or(seen, |o| o.min(seen)));
        }
        self.gauges_changed = true;
        self.publish_gauges();
    }
}

/// The duration histogram's exemplar table, sized to its buckets.
pub(crate) fn duration_exemplars() -> Exemplars {
    Exemplars::new(metric::NODE_DURATION, DURATION_BUCKETS)
}

/// Record through `f` with `attrs` if the series is admitted (and say
/// so), else under the overflow set, counted.
fn add_series(
    guard: &mut SeriesGuard,
    key: u64,
    attrs: &[KeyValue],
    stats: &Counters,
    overflow: &Counter<u64>,
    f: impl FnOnce(&[KeyValue]),
) -> bool {
    if guard.admit(key) {
        f(attrs);
        true
    } else {
        stats.add_overflow(guard.name, guard.limit);
        overflow.add(
            1,
            &[KeyValue::new(
                attr::OVERFLOW_ATTRIBUTE,
                guard.name.to_string(),
            )],
        );
        f(&overflow_set());
        false
    }
}

/// The OTel SDK's cardinality limit for every flowtel instrument: above
/// anything flowtel lets through (its series limit plus the overflow set;
/// for the node gauges, two directions per node value including
/// `_overflow` and `_unknown`), so that the SDK never overflows silently.
pub(crate) fn sdk_cardinality_limit(config: &MetricsConfig) -> usize {
    (config.max_series + 1).max(2 * (config.cardinality_limit + 2)) + 16
}

/// Keys that identify a run or a node instance: never metric attributes,
/// even when allow-listed.
fn is_forbidden_extra(key: &str) -> bool {
    matches!(
        key,
        "trace_id" | "node_id" | "exception" | "flow_error" | "message_id"
    )
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    use super::*;

    /// Events of series beyond the limit are summed under the overflow set:
    /// what waits for the next flush stays bounded by the series limit,
    /// however many series a hostile input makes.
    #[test]
    fn counts_waiting_for_a_flush_stay_within_the_series_limit() {
        let provider = SdkMeterProvider::builder().build();
        let config = MetricsConfig {
            cardinality_limit: 100,
            max_series: 3,
            tenant_metrics: false,
            metric_extra_keys: Vec::new(),
        };
        let mut m = FlowMetrics::new(
            &provider.meter("t"),
            &config,
            Arc::default(),
            Arc::new(duration_exemplars()),
        );
        for node in 0..50 {
            for kind in 0..10 {
                let ev = FlowEvent::builder(format!("custom_{kind}"), 1.0)
                    .node(format!("n{node}"), "id")
                    .build()
                    .unwrap();
                m.record(&ev, None);
            }
        }
        assert_eq!(m.events_pending.len(), 3);
        let waiting: u64 = m.events_pending.values().map(|p| p.n).sum();
        assert_eq!(waiting + m.events_overflow_pending, 500, "none lost");
        m.flush_pending();
        assert!(m.events_pending.values().all(|p| p.n == 0));
        assert_eq!(m.events_overflow_pending, 0);
    }
}
