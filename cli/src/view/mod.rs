//! The embedded default: runs shown in the terminal instead of exported.
//!
//! The waterfall is drawn from the very spans the SDK would export (handed
//! over by `with_span_callback`), so it shows exactly what a tracing backend
//! would. The per-node table is tallied from the events themselves, so it
//! also covers events without a trace id.
//!
//! - `runs.rs`: spans gathered into runs, and which runs to show;
//! - `waterfall.rs`: one run drawn as a waterfall;
//! - `nodes.rs`: the per-node table;
//! - `style.rs`: colours and durations.

mod nodes;
mod runs;
mod style;
mod waterfall;

pub(crate) use nodes::NodeTable;
pub(crate) use runs::Runs;
pub(crate) use style::{fmt_ms, Style};

#[cfg(test)]
mod tests {
    use flowtel::FlowEvent;

    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

        /// Whatever spans the SDK makes of arbitrary events, the terminal
        /// view renders them without panicking.
        #[test]
        fn any_runs_render(
            evs in proptest::collection::vec((
                proptest::sample::select(vec!["node_start", "node_success", "node_error",
                    "node_timeout", "node_retry", "node_failed", "node_trace_cancelled",
                    "deadline_skip", "trace_cancel_start", "custom"]),
                0.0..5.0f64,
                proptest::option::of(0.0..3000.0f64),
                0u32..3,
                0usize..3,
                0usize..4,
            ), 0..40),
            limit in 0usize..4,
        ) {
            let runs = Runs::default();
            let f = flowtel::Flowtel::builder().with_span_callback(runs.sink()).build().unwrap();
            let mut table = NodeTable::default();
            let mut all = Vec::new();
            for (kind, dt, latency, attempt, trace, node) in evs {
                let mut b = FlowEvent::builder(kind, 1_795_305_121.0 + dt)
                    .node(["a", "b", "c", "d"][node], ["a", "b", "c", "d"][node])
                    .trace_id(["t1", "3e512c5b0a184257a25c215d19544e6a", "t3"][trace])
                    .attempt(attempt)
                    .extra("sleep_s", 0.1);
                if let Some(l) = latency {
                    b = b.latency_ms(l);
                }
                let ev = b.build().unwrap();
                table.add(&ev);
                all.push(ev.clone());
                f.record(ev).unwrap();
            }
            all.sort_by(|x, y| x.ts.total_cmp(&y.ts));
            f.shutdown(std::time::Duration::from_secs(10)).unwrap();
            all.retain(|e| e.trace_id.as_deref() == Some("t1"));
            let spans = crate::inspect::map_run(&all, &Runs::default()).unwrap();
            for color in [false, true] {
                let _ = runs.render(limit, Style { color });
                let _ = table.render(Style { color });
                let _ = crate::report::report("t1", &all, &spans, Style { color });
            }
        }
    }
}
