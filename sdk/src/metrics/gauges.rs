//! The node gauges (queue depths, backlog, attempts in flight, trace
//! in-flight, the oldest open attempt's age), observed at collection time
//! from a last-value table that the metric mapping writes with plain
//! stores: one store per event instead of several instrument updates.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use flowtel_semconv::{attr, metric, unit};
use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;

/// Last seen queue depths and trace in-flight count of one node, reported
/// by observable gauges at collection time: a plain store per event instead
/// of four instrument updates.
#[derive(Clone, Default)]
pub(super) struct NodeGauges {
    pub(super) node: Option<KeyValue>,
    pub(super) depth_in: u64,
    pub(super) depth_out: u64,
    pub(super) inflight: u64,
    /// Attempts started and not yet finished (`flow.node.active`).
    pub(super) active: i64,
    /// When flowtel saw the start of the node's oldest open attempt
    /// (`flow.node.oldest_open_attempt.age`), as the mapping last reported.
    pub(super) oldest_open: Option<Instant>,
}

pub(super) type GaugeTable = Arc<Mutex<Vec<NodeGauges>>>;

/// The entry of node slot `slot`, created (with its attribute) on first use.
pub(super) fn node_entry(
    table: &mut Vec<NodeGauges>,
    slot: usize,
    node: impl FnOnce() -> KeyValue,
) -> &mut NodeGauges {
    if table.len() <= slot {
        table.resize(slot + 1, NodeGauges::default());
    }
    let g = &mut table[slot];
    if g.node.is_none() {
        g.node = Some(node());
    }
    g
}

/// Copy the mapping thread's values into the table the callbacks read
/// (a node's attribute is cloned once, the first time).
pub(super) fn publish(shared: &mut Vec<NodeGauges>, local: &[NodeGauges]) {
    if shared.len() < local.len() {
        shared.resize(local.len(), NodeGauges::default());
    }
    for (to, from) in shared.iter_mut().zip(local) {
        if to.node.is_none() {
            to.node.clone_from(&from.node);
        }
        to.depth_in = from.depth_in;
        to.depth_out = from.depth_out;
        to.inflight = from.inflight;
        to.active = from.active;
        to.oldest_open = from.oldest_open;
    }
}

fn each_node(table: &GaugeTable, mut f: impl FnMut(&NodeGauges, &KeyValue)) {
    let t = table.lock().unwrap_or_else(|p| p.into_inner());
    for g in t.iter() {
        if let Some(n) = &g.node {
            f(g, n);
        }
    }
}

/// The node gauges, observed from the last-value table.
pub(super) fn register_gauges(meter: &Meter, table: &GaugeTable) {
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
        .f64_observable_gauge(metric::NODE_OLDEST_OPEN_AGE)
        .with_unit(unit::SECONDS)
        .with_description(
            "How long the node's oldest open attempt (started, no terminal event yet) has been open; 0 when none is",
        )
        .with_callback(move |o| {
            let now = Instant::now();
            each_node(&t, |g, n| {
                let age = g.oldest_open.map_or(0.0, |s| now.duration_since(s).as_secs_f64());
                o.observe(age, std::slice::from_ref(n));
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
