//! What each stage of the bridge costs per event: split, parse, map,
//! metrics, encode and (with a collector) send, each over the whole file on
//! one thread, the pipeline's own code (`flowtel::stages`). Used by
//! `scripts/bench-ingest`.
//!
//! cargo run --release -p flowtel --features bench-stages --example stages -- FILE \
//!     [--send ENDPOINT grpc|http] [--run-end-node NAME]...

use std::time::Duration;

use flowtel::Protocol;

/// The `flowtel` binary's allocator, so that the figures are the bridge's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: stages FILE [--send ENDPOINT grpc|http] [--run-end-node NAME]...";
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or(usage)?;
    let (mut send_to, mut run_end_nodes) = (None, Vec::new());
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--send", Some(ep)) => {
                let protocol = match args.next().as_deref() {
                    Some("grpc") => Protocol::Grpc,
                    Some("http") => Protocol::HttpProtobuf,
                    _ => return Err(usage.into()),
                };
                send_to = Some((ep, protocol));
            }
            ("--run-end-node", Some(name)) => run_end_nodes.push(name),
            _ => return Err(usage.into()),
        }
    }
    let input = std::fs::read(&path)?;
    let r = flowtel::stages::measure(
        &input,
        send_to.as_ref().map(|(e, p)| (e.as_str(), *p)),
        &run_end_nodes,
    )?;
    let per = |d: Duration| d.as_nanos() as f64 / r.events.max(1) as f64;
    println!(
        "{} lines, {} events, {} spans, {:.0} bytes of OTLP per span",
        r.lines,
        r.events,
        r.spans,
        r.encoded_bytes as f64 / r.spans.max(1) as f64
    );
    println!("{:<8} {:>12} {:>14}", "stage", "ns/event", "CPU ns/event");
    let mut total = 0.0;
    for s in &r.stages {
        let cpu = s.cpu.map_or(per(s.wall), per);
        total += cpu;
        let cpu_col = s.cpu.map_or("-".to_string(), |c| format!("{:.0}", per(c)));
        println!("{:<8} {:>12.0} {:>14}", s.name, per(s.wall), cpu_col);
    }
    let on = |names: &[&str]| -> f64 {
        r.stages
            .iter()
            .filter(|s| names.contains(&s.name))
            .map(|s| per(s.wall))
            .sum()
    };
    println!(
        "mapping thread (map + metrics) {:.0} ns/event; reader thread (split + parse) {:.0} ns/event",
        on(&["map", "metrics"]),
        on(&["split", "parse"])
    );
    println!("total CPU {total:.0} ns/event (one thread per stage; no queue hand-off)");
    Ok(())
}
