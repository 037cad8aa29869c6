//! flowtel quickstart: a simulated three-node flow (fetch → triage →
//! summarize) whose runs become traces and metrics.
//!
//! ```text
//! cargo run -p quickstart                                   # print to the console
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 cargo run -p quickstart   # OTLP/gRPC
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
//!   OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf cargo run -p quickstart         # OTLP/HTTP
//! ```
//!
//! Three runs: one clean, one where `triage` fails once and is retried, and
//! one where `summarize` times out twice and the node fails terminally.

use std::thread::sleep;
use std::time::Duration;

use flowtel::{Flowtel, Run};

/// What a node does in one attempt of the simulation.
#[derive(Clone, Copy)]
enum Outcome {
    Pass,
    Error,
    Timeout,
}

/// Run one node with retries, as a flow runtime would: each attempt is timed
/// by an [`flowtel::Attempt`] guard; a failed attempt is retried after a
/// backoff or, after the last one, the node gives up. Returns whether the
/// node eventually succeeded.
fn run_node(run: &Run, node: &'static str, work: Duration, plan: &[Outcome]) -> bool {
    for (attempt, outcome) in plan.iter().enumerate() {
        let guard = run.start_attempt(node, attempt as u32);
        sleep(work);
        let failure = match outcome {
            Outcome::Pass => {
                guard.success();
                return true;
            }
            Outcome::Error => guard.error("ConnectionError('upstream returned 503')"),
            Outcome::Timeout => guard.timeout(),
        };
        if attempt + 1 == plan.len() {
            failure.give_up();
            return false;
        }
        let delay = Duration::from_millis(20 * (attempt as u64 + 1));
        failure.retry_after(delay);
        sleep(delay);
    }
    false
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or a per-signal one) is set,
    // the console otherwise.
    let flowtel = Flowtel::builder()
        .with_service_name("flowtel-quickstart")
        .with_flow_name("support-triage")
        .build()?;

    use Outcome::{Error, Pass, Timeout};
    let runs: [(&str, [&[Outcome]; 3]); 3] = [
        (
            "4bf92f3577b34da6a3ce929d0e0e4736",
            [&[Pass], &[Pass], &[Pass]],
        ),
        (
            "5cf92f3577b34da6a3ce929d0e0e4737",
            [&[Pass], &[Error, Pass], &[Pass]],
        ),
        (
            "6df92f3577b34da6a3ce929d0e0e4738",
            [&[Pass], &[Pass], &[Timeout, Timeout]],
        ),
    ];
    let nodes = [
        ("fetch", Duration::from_millis(15)),
        ("triage", Duration::from_millis(30)),
        ("summarize", Duration::from_millis(45)),
    ];
    for (trace_id, plans) in runs {
        let run = flowtel.run(trace_id);
        for ((node, work), plan) in nodes.iter().zip(plans) {
            if !run_node(&run, node, *work, plan) {
                break;
            }
        }
        // The run is over: export its root span now rather than after the
        // idle timeout.
        run.end()?;
    }

    let result = flowtel.shutdown(Duration::from_secs(10));
    let s = flowtel.stats();
    eprintln!(
        "quickstart: {} events, {} spans exported, {} dropped",
        s.events_recorded,
        s.spans_exported,
        s.events_dropped() + s.spans_dropped
    );
    result?;
    Ok(())
}
