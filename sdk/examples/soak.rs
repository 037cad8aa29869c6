//! Figures for flowtel under faults and load (used by scripts/soak).
//!
//! ```text
//! cargo run --release -p flowtel --example soak -- outage 10000000
//!     N events with the collector unreachable: record() latency percentiles
//!     during the outage, drops counted, peak RSS against the budget.
//! cargo run --release -p flowtel --example soak -- load 60 1000000
//!     SECS seconds at a target of RATE events/s into a discarding sink:
//!     achieved rate, drops and RSS every 5 s (flat memory).
//! ```

use std::time::{Duration, Instant};

use flowtel::{FlowEvent, Flowtel};

/// Peak and current resident set size, KiB (Linux).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Event `i` of an endless stream of runs: 3 nodes, start + success each.
fn event(i: u64, ts: f64) -> FlowEvent {
    let run = i / 6;
    let node = ["fetch", "triage", "summarize"][((i / 2) % 3) as usize];
    let (kind, latency) = if i % 2 == 0 {
        ("node_start", 0.0)
    } else {
        ("node_success", 12.5)
    };
    FlowEvent::builder(kind, ts)
        .node(node, node)
        .trace_id(format!("{run:032x}"))
        .latency_ms(latency)
        .queue_depths(1, 0)
        .build()
        .expect("valid")
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p / 100.0) as usize).min(sorted.len() - 1)]
}

fn outage(n: u64) {
    // Nothing listens on port 9 (discard) on loopback: every export fails.
    let flowtel = Flowtel::builder()
        .with_endpoint("http://127.0.0.1:9")
        .with_export_timeout(Duration::from_millis(200))
        .build()
        .expect("build");
    let mut lat = Vec::with_capacity(n as usize);
    let t0 = Instant::now();
    for i in 0..n {
        let ev = event(i, 1_795_305_121.0 + i as f64 * 1e-4);
        let t = Instant::now();
        let _ = flowtel.record(ev);
        lat.push(t.elapsed().as_nanos() as u64);
    }
    let secs = t0.elapsed().as_secs_f64();
    lat.sort_unstable();
    let s = flowtel.stats();
    let t = Instant::now();
    let r = flowtel.shutdown(Duration::from_secs(2));
    let (peak, _) = rss_kib();
    println!("outage: {n} events recorded in {secs:.1} s with the collector unreachable");
    println!(
        "  record() latency: p50 {} ns, p99 {} ns, p99.9 {} ns, max {} µs",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        percentile(&lat, 99.9),
        lat.last().copied().unwrap_or(0) / 1000
    );
    println!(
        "  accepted {}, dropped at the queue {} (counted), spans created {}, dropped {} (counted), export failures {}",
        s.events_recorded, s.events_dropped_queue_full, s.spans_created, s.spans_dropped, s.export_failures
    );
    println!(
        "  shutdown with the collector unreachable returned in {:.2} s: {:?}",
        t.elapsed().as_secs_f64(),
        r.err().map(|e| e.to_string())
    );
    // The recorded latencies themselves take 8 bytes per event; subtract them.
    let lat_kib = n * 8 / 1024;
    println!(
        "  peak RSS {peak} KiB ({} MiB), of which {} MiB is this script's latency log; pipeline ≈ {} MiB (budget 128 MiB)",
        peak / 1024,
        lat_kib / 1024,
        peak.saturating_sub(lat_kib) / 1024
    );
}

fn load(secs: u64, rate: u64) {
    let flowtel = Flowtel::builder()
        .with_span_callback(drop)
        .build()
        .expect("build");
    let start = Instant::now();
    let mut i = 0u64;
    let mut last = (Instant::now(), 0u64, 0u64);
    println!("load: target {rate} events/s for {secs} s into a discarding span sink");
    println!(
        "  {:>5} {:>14} {:>14} {:>12} {:>10}",
        "t (s)", "recorded/s", "mapped/s", "dropped", "RSS MiB"
    );
    while start.elapsed() < Duration::from_secs(secs) {
        // Pace in 1 ms slices.
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while i < due {
            let _ = flowtel.record(event(i, 1_795_305_121.0 + i as f64 * 1e-6));
            i += 1;
        }
        if last.0.elapsed() >= Duration::from_secs(5) {
            let s = flowtel.stats();
            let dt = last.0.elapsed().as_secs_f64();
            println!(
                "  {:>5.0} {:>14.0} {:>14.0} {:>12} {:>10}",
                start.elapsed().as_secs_f64(),
                (s.events_recorded - last.1) as f64 / dt,
                (s.events_processed - last.2) as f64 / dt,
                s.events_dropped_queue_full,
                rss_kib().1 / 1024
            );
            last = (Instant::now(), s.events_recorded, s.events_processed);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let s = flowtel.stats();
    let _ = flowtel.shutdown(Duration::from_secs(30));
    println!(
        "  total: offered {i}, accepted {}, mapped {}, dropped at the queue {} (counted); peak RSS {} MiB",
        s.events_recorded,
        s.events_processed,
        s.events_dropped_queue_full,
        rss_kib().0 / 1024
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
    match args.first().map(String::as_str) {
        Some("outage") => outage(num(1, 10_000_000)),
        Some("load") => load(num(1, 60), num(2, 1_000_000)),
        _ => eprintln!("usage: soak outage [N] | soak load [SECS] [RATE]"),
    }
}
