//! Test support for driving flowtel against a real OTLP collector: start
//! rotel-agent on free loopback ports, parse what it received from its
//! debug log, and check it against a realistic PenguiFlow-shaped scenario.

pub mod assertions;
pub mod collector;
pub mod debuglog;
pub mod penguiflow;
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
