//! flowtel in a small tokio flow runtime: three nodes per run (`validate`
//! → `enrich` → `charge`), each attempt timed by a flowtel guard, `tracing`
//! spans inside the nodes, a timeout, retries with backoff, a node that
//! fails for good, and a call to a downstream HTTP service ("inventory", on
//! loopback) that continues the run's trace from the injected
//! `traceparent`.
//!
//! ```text
//! cargo run -p flow-runtime                                               # print to the console
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 cargo run -p flow-runtime   # OTLP/gRPC
//! ```
//!
//! Three runs, concurrently: in each, `inventory` is busy (503) on the
//! first call, so `enrich` is retried; `charge` succeeds in run 1, times out
//! once in run 2, and is declined on every attempt in run 3 (the node fails
//! and the run's root span is an error). Each run is one trace: the root,
//! the attempts, the `tracing` spans under their attempt, and inventory's
//! `GET /stock` spans under the `enrich` attempts that called it.

mod inventory;

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use flowtel::{Flowtel, Run};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

/// A node's own error type; its name becomes the span's `error.type`.
#[derive(Debug)]
struct NodeError(String);

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for NodeError {}

/// How `charge` behaves in a run.
#[derive(Clone, Copy, Debug)]
enum Charge {
    Ok,
    SlowOnce,
    Declined,
}

// Generous for a loopback call on a loaded machine; `charge` sleeps 2 s
// when it is to time out.
const NODE_TIMEOUT: Duration = Duration::from_millis(300);
const MAX_ATTEMPTS: u32 = 3;

/// Run one node the way a runtime does: up to `MAX_ATTEMPTS` attempts, each
/// under a timeout, with exponential backoff between them. `body` gets the
/// attempt number and the attempt's `traceparent` for outgoing calls.
async fn run_node<F, Fut>(run: &Run, node: &'static str, body: F) -> Result<u32, NodeError>
where
    F: Fn(u32, String) -> Fut,
    Fut: Future<Output = Result<(), NodeError>>,
{
    for n in 0..MAX_ATTEMPTS {
        let attempt = run.start_attempt(node, n);
        let work = attempt.within(body(n, attempt.traceparent()));
        let failure = match tokio::time::timeout(NODE_TIMEOUT, work).await {
            Ok(Ok(())) => {
                attempt.success();
                return Ok(n);
            }
            Ok(Err(e)) => attempt.error(&e),
            Err(_) => attempt.timeout(),
        };
        if n + 1 == MAX_ATTEMPTS {
            failure.give_up();
            break;
        }
        let backoff = Duration::from_millis(10 << n);
        failure.retry_after(backoff);
        tokio::time::sleep(backoff).await;
    }
    Err(NodeError(format!(
        "{node} failed after {MAX_ATTEMPTS} attempts"
    )))
}

async fn validate(order: u32) -> Result<(), NodeError> {
    // Spans are created inside the attempt (on the first poll), so their
    // parent is the attempt's span.
    tracing::info_span!("parse_order", order).in_scope(|| {});
    async { tokio::time::sleep(Duration::from_millis(3)).await }
        .instrument(tracing::info_span!("check_limits"))
        .await;
    Ok(())
}

async fn enrich(inventory: &str, order: u32, traceparent: String) -> Result<(), NodeError> {
    let path = format!("/stock/{order}");
    let status = inventory::get(inventory, &path, &traceparent)
        .instrument(tracing::info_span!("fetch_stock", order))
        .await
        .map_err(|e| NodeError(e.to_string()))?;
    match status {
        200 => Ok(()),
        s => Err(NodeError(format!("inventory answered {s}"))),
    }
}

async fn charge(plan: Charge, attempt: u32) -> Result<(), NodeError> {
    let span = tracing::info_span!("authorize", ?plan, attempt);
    async {
        match (plan, attempt) {
            (Charge::SlowOnce, 0) => tokio::time::sleep(Duration::from_secs(2)).await,
            (Charge::Declined, _) => return Err(NodeError("card declined".into())),
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
        Ok(())
    }
    .instrument(span)
    .await
}

/// One run of the flow; returns a line for the summary.
async fn order(run: Run, inventory: String, n: u32, plan: Charge) -> String {
    let mut line = format!("run {} (order {n}, charge {plan:?}):", run.trace_id());
    let steps = async {
        let tries = run_node(&run, "validate", |_, _| validate(n)).await?;
        line += &format!(" validate ok after {} attempt(s);", tries + 1);
        let tries = run_node(&run, "enrich", |_, tp| enrich(&inventory, n, tp)).await?;
        line += &format!(" enrich ok after {} attempt(s);", tries + 1);
        let tries = run_node(&run, "charge", |a, _| charge(plan, a)).await?;
        line += &format!(" charge ok after {} attempt(s)", tries + 1);
        Ok::<(), NodeError>(())
    };
    if let Err(e) = steps.await {
        line += &format!(" FAILED: {e}");
    }
    // The run is over: export its root span now, not after the idle timeout.
    let _ = run.end();
    line
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, the console otherwise.
    let flowtel = Flowtel::builder()
        .with_service_name("flow-runtime")
        .with_flow_name("order-pipeline")
        .build()?;
    // The downstream service is a separate service: its own pipeline.
    let inventory_telemetry = Flowtel::builder().with_service_name("inventory").build()?;
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(flowtel.tracing_layer()),
    )?;
    let inventory = inventory::start(&inventory_telemetry).await?;

    let plans = [Charge::Ok, Charge::SlowOnce, Charge::Declined];
    let runs: Vec<_> = plans
        .into_iter()
        .zip(1..)
        .map(|(plan, n)| tokio::spawn(order(flowtel.new_run(), inventory.clone(), n, plan)))
        .collect();
    let mut summary = Vec::new();
    for r in runs {
        summary.push(r.await?);
    }

    inventory_telemetry
        .shutdown_async(Duration::from_secs(10))
        .await?;
    flowtel.shutdown_async(Duration::from_secs(10)).await?;
    for line in summary {
        println!("{line}");
    }
    let (a, b) = (flowtel.stats(), inventory_telemetry.stats());
    println!(
        "flow-runtime: {} spans exported, {} dropped; inventory: {} exported, {} dropped",
        a.spans_exported, a.spans_dropped, b.spans_exported, b.spans_dropped
    );
    Ok(())
}
