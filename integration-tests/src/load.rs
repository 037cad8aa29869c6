//! Plain loads for the fault tests: runs of successful attempts, each run
//! and node with ids of its own, so that every span can be told apart.

use flowtel::FlowEvent;

/// `runs` runs of `nodes` successful attempts each (runs numbered from
/// `first`): `runs * nodes` attempt spans, plus one root span per run once
/// the run ends.
pub fn runs(first: u32, runs: u32, nodes: u32) -> Vec<FlowEvent> {
    let t = crate::unix_now() - 10.0;
    let mut v = Vec::new();
    for r in first..first + runs {
        for n in 0..nodes {
            let ts = t + f64::from(r) * 0.01 + f64::from(n) * 0.001;
            v.push(
                FlowEvent::builder("node_success", ts)
                    .node(format!("node{n}"), format!("node{n}"))
                    .trace_id(format!("{:032x}", 0xfa17_0000_u64 + u64::from(r)))
                    .latency_ms(0.5)
                    .build()
                    .expect("a valid event"),
            );
        }
    }
    v
}
