//! Test support for driving flowtel against a real OTLP collector: start
//! rotel-agent on free loopback ports, parse what it received from its
//! debug log, and check it against a realistic PenguiFlow-shaped scenario;
//! and a fault-injecting OTLP receiver for what a real collector rarely does
//! (refuse, throttle, accept in part); a real Prometheus server that scrapes
//! flowtel's endpoint and answers PromQL.

pub mod assertions;
pub mod collector;
pub mod debuglog;
pub mod fault;
pub mod flows;
#[cfg(unix)]
pub mod fork;
pub mod http;
pub mod load;
pub mod penguiflow;
pub mod prometheus;
pub mod scenario;
pub mod split;

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time now, in seconds; scenarios start a little in the past so that
/// every timestamp is plausible to a backend.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Unix nanoseconds of a PenguiFlow timestamp, computed as the SDK does
/// (the fraction taken apart from the seconds, so that f64 rounding at
/// 1.8e9 s does not move it). Expected span times derive from this, then
/// µs: rounding the timestamp and the latency to µs separately could land
/// 2 µs away from what the SDK exports.
pub fn unix_ns(ts: f64) -> i128 {
    let secs = ts.trunc();
    secs as i128 * 1_000_000_000 + ((ts - secs) * 1e9).round() as i128
}

/// Expected start and end (µs) of an attempt that ended at `ts` after
/// `latency_ms`.
pub fn attempt_us(ts: f64, latency_ms: f64) -> (i128, i128) {
    let end = unix_ns(ts);
    let latency = (latency_ms * 1e6).round() as i128;
    ((end - latency) / 1000, end / 1000)
}
