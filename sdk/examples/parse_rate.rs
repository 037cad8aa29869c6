//! The ceiling for `flowtel ingest`: how fast this machine parses a file of
//! JSON lines into FlowEvents, and nothing else (used by scripts/bench-ingest).
//!
//! cargo run --release -p flowtel --example parse_rate -- FILE

use std::io::BufRead;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: parse_rate FILE")?;
    let file = std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(&path)?);
    let t = Instant::now();
    let (mut events, mut other) = (0u64, 0u64);
    for line in file.lines() {
        match flowtel::FlowEvent::from_json(&line?) {
            Ok(ev) => {
                events += 1;
                std::hint::black_box(ev);
            }
            Err(_) => other += 1,
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "parse-only: {events} events (+{other} other lines) in {secs:.2} s = {:.0} events/s",
        events as f64 / secs
    );
    Ok(())
}
