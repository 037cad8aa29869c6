//! What flowtel's own threads cost a service that records a trickle of
//! events: CPU time of the `flowtel-*` threads (from
//! `/proc/self/task/*/schedstat`, nanoseconds on CPU), per second of wall
//! time, at several event rates. Linux only.
//!
//! ```sh
//! cargo run --release -p flowtel --example idle_cpu            # 5 s per rate
//! cargo run --release -p flowtel --example idle_cpu -- 20      # 20 s per rate
//! ```

use std::time::{Duration, Instant};

use flowtel::{FlowEvent, Flowtel, InMemory};

/// Nanoseconds on CPU of this process's threads whose name starts with
/// `flowtel`.
fn flowtel_cpu_ns() -> u64 {
    let mut total = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("flowtel") {
            continue;
        }
        let sched = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let sink = InMemory::new();
    let flowtel = Flowtel::builder()
        .with_in_memory(&sink)
        .with_metric_interval(Duration::from_secs(60))
        .build()
        .expect("pipeline");
    println!("flowtel threads' CPU while recording at a steady rate ({secs} s per rate)");
    println!(
        "{:>10}  {:>12}  {:>14}",
        "events/s", "CPU % core", "µs CPU/event"
    );
    for rate in [0u32, 20, 200, 2_000, 20_000] {
        // Let the previous rate's work settle first.
        std::thread::sleep(Duration::from_millis(300));
        sink.clear();
        let cpu0 = flowtel_cpu_ns();
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed() < Duration::from_secs(secs) {
            if rate > 0 {
                let due = Duration::from_secs_f64(n as f64 / f64::from(rate));
                if let Some(wait) = due.checked_sub(t0.elapsed()) {
                    std::thread::sleep(wait);
                }
                let trace = format!("{:032x}", 1 + n / 10);
                let ev = FlowEvent::builder("node_success", 1_700_000_000.0 + n as f64 * 1e-3)
                    .node("fetch", "fetch-1")
                    .trace_id(trace)
                    .latency_ms(1.0)
                    .build()
                    .expect("valid event");
                let _ = flowtel.record(ev);
                n += 1;
            } else {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = (flowtel_cpu_ns() - cpu0) as f64 / 1e9;
        let per_event = if n > 0 {
            format!("{:.2}", cpu * 1e6 / n as f64)
        } else {
            "-".into()
        };
        println!("{rate:>10}  {:>12.3}  {per_event:>14}", cpu / wall * 100.0);
    }
    flowtel.shutdown(Duration::from_secs(5)).expect("shutdown");
}
