//! What the metrics may ask the span mapping, read-only: the oldest attempt
//! still open at each node (the stuck-node gauge), from the mapping's own
//! open-attempt state, so the metrics never keep a second copy of it. (The
//! span an ending attempt became, the duration histogram's exemplar, comes
//! back in `Effects::ended_attempt`.)

use std::sync::Arc;
use std::time::Instant;

use super::SpanMapper;
use crate::ids::FastMap;

impl SpanMapper {
    /// For every node (by metric name: its name or `_unknown`, never an id)
    /// with an attempt open in any run, when flowtel saw the oldest of them
    /// start. `out` is cleared first; it holds at most one entry per node
    /// name, so it is bounded by the nodes the mapping tracks.
    pub(crate) fn oldest_open(&self, out: &mut FastMap<Arc<str>, Instant>) {
        out.clear();
        for run in self.runs.values().filter(|r| r.open_total > 0) {
            for node in run.nodes.values() {
                let Some(seen) = node.open.iter().map(|s| s.seen).min() else {
                    continue;
                };
                out.entry(node.metric_name.clone())
                    .and_modify(|t| *t = (*t).min(seen))
                    .or_insert(seen);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry::trace::SpanId;

    use super::super::{Effects, MappingConfig};
    use super::*;
    use crate::event::FlowEvent;

    fn mapper() -> SpanMapper {
        SpanMapper::new(MappingConfig {
            flow_name: "f".into(),
            run_idle_timeout: Duration::from_secs(30),
            max_attempt_age: Duration::from_secs(3600),
            max_open_runs: 100,
            state_budget: 1000,
            max_root_events: 16,
            max_attr_len: 64,
            span_extra_keys: Vec::new(),
            partial_runs: false,
            run_end_nodes: Vec::new(),
        })
    }

    fn ev(kind: &str, trace: &str, node: &str, ts: f64) -> FlowEvent {
        FlowEvent::builder(kind, ts)
            .node(node, format!("{node}-id"))
            .trace_id(trace)
            .latency_ms(1.0)
            .build()
            .unwrap()
    }

    #[test]
    fn the_exemplar_span_is_the_span_the_mapping_made() {
        let mut m = mapper();
        let mut fx = Effects::default();
        let t = "3e512c5b0a184257a25c215d19544e6a";
        m.on_event(&ev("node_start", t, "fetch", 1.0), Instant::now(), &mut fx);
        assert_eq!(fx.ended_attempt, None, "a start ends no attempt");
        // A guard's span id, chosen at the start, is the one exported.
        let mut done = ev("node_success", t, "fetch", 2.0);
        done.span_id = Some(SpanId::from(0x5eed));
        m.on_event(&done, Instant::now(), &mut fx);
        let span = fx
            .spans
            .drain(..)
            .map(crate::record::SpanRecord::into_span_data)
            .find(|s| s.name == "fetch")
            .expect("attempt span");
        assert_eq!(span.span_context.span_id(), SpanId::from(0x5eed));
        assert_eq!(
            fx.ended_attempt,
            Some((span.span_context.trace_id(), span.span_context.span_id()))
        );
    }

    #[test]
    fn the_oldest_open_attempt_per_node_over_all_runs() {
        let mut m = mapper();
        let mut fx = Effects::default();
        let t0 = Instant::now();
        let (a, b) = (
            "3e512c5b0a184257a25c215d19544e6a",
            "4e512c5b0a184257a25c215d19544e6b",
        );
        m.on_event(&ev("node_start", a, "fetch", 1.0), t0, &mut fx);
        let t1 = t0 + Duration::from_secs(5);
        m.on_event(&ev("node_start", b, "fetch", 6.0), t1, &mut fx);
        m.on_event(&ev("node_start", b, "triage", 6.0), t1, &mut fx);
        let mut out = FastMap::default();
        m.oldest_open(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[&Arc::<str>::from("fetch")], t0);
        assert_eq!(out[&Arc::<str>::from("triage")], t1);

        // The old attempt ends: the next oldest is the one of run b.
        m.on_event(&ev("node_success", a, "fetch", 7.0), t1, &mut fx);
        m.on_event(&ev("node_success", b, "triage", 7.0), t1, &mut fx);
        m.oldest_open(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[&Arc::<str>::from("fetch")], t1);
    }
}
