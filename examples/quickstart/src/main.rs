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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowtel::{FlowEvent, Flowtel};

/// What a node does in one attempt of the simulation.
#[derive(Clone, Copy)]
enum Outcome {
    Pass,
    Error,
    Timeout,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Run one node with retries, as a flow runtime would: each attempt is timed
/// by an [`flowtel::Attempt`] guard; retries and the final failure are
/// explicit events. Returns whether the node eventually succeeded.
fn run_node(
    flowtel: &Flowtel,
    trace_id: &str,
    node: &str,
    work: Duration,
    plan: &[Outcome],
) -> Result<bool, Box<dyn std::error::Error>> {
    for (attempt, outcome) in plan.iter().enumerate() {
        let attempt = attempt as u32;
        let guard = flowtel.start_attempt(trace_id, node, attempt);
        sleep(work);
        let last = attempt as usize + 1 == plan.len();
        match outcome {
            Outcome::Pass => {
                guard.success();
                return Ok(true);
            }
            Outcome::Error => guard.error("ConnectionError('upstream returned 503')"),
            Outcome::Timeout => guard.timeout(),
        }
        if last {
            let (code, message) = match outcome {
                Outcome::Timeout => ("NODE_TIMEOUT", format!("Node '{node}' timed out")),
                _ => (
                    "NODE_EXCEPTION",
                    format!("Node '{node}' raised ConnectionError"),
                ),
            };
            flowtel.record(
                FlowEvent::builder("node_failed", now())
                    .node(node, node)
                    .trace_id(trace_id)
                    .attempt(attempt)
                    .extra(
                        "flow_error",
                        serde_json::json!({ "code": code, "message": message }),
                    )
                    .build()?,
            )?;
            return Ok(false);
        }
        let delay = 0.02 * f64::from(attempt + 1);
        flowtel.record(
            FlowEvent::builder("node_retry", now())
                .node(node, node)
                .trace_id(trace_id)
                .attempt(attempt + 1)
                .extra("sleep_s", delay)
                .build()?,
        )?;
        sleep(Duration::from_secs_f64(delay));
    }
    Ok(false)
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
        for ((node, work), plan) in nodes.iter().zip(plans) {
            if !run_node(&flowtel, trace_id, node, *work, plan)? {
                break;
            }
        }
        // The run is over: export its root span now rather than after the
        // idle timeout.
        flowtel.end_run(trace_id)?;
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
