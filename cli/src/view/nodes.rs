//! The per-node table: attempts, errors, timeouts, retries, terminal
//! failures and latency percentiles, tallied from the events themselves (so
//! it also covers events without a trace id).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use flowtel::FlowEvent;
use flowtel_semconv::event;

use super::style::{fmt_ms, Style};

#[derive(Default)]
struct NodeRow {
    attempts: u64,
    errors: u64,
    timeouts: u64,
    retries: u64,
    failed: u64,
    durations_ms: Vec<f64>,
}

/// Per-node tallies, from the events.
#[derive(Default)]
pub(crate) struct NodeTable {
    rows: BTreeMap<String, NodeRow>,
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl NodeTable {
    pub(crate) fn add(&mut self, ev: &FlowEvent) {
        let Some(node) = ev.node_name.as_deref() else {
            return;
        };
        let kind = ev.event_type.as_str();
        let counted = matches!(
            kind,
            event::NODE_SUCCESS
                | event::NODE_ERROR
                | event::NODE_TIMEOUT
                | event::NODE_RETRY
                | event::NODE_FAILED
        );
        if !counted {
            return;
        }
        let row = self.rows.entry(node.to_string()).or_default();
        match kind {
            event::NODE_RETRY => row.retries += 1,
            event::NODE_FAILED => row.failed += 1,
            _ => {
                row.attempts += 1;
                if kind == event::NODE_ERROR {
                    row.errors += 1;
                }
                if kind == event::NODE_TIMEOUT {
                    row.timeouts += 1;
                }
                if let Some(l) = ev.latency_ms {
                    row.durations_ms.push(l);
                }
            }
        }
    }

    pub(crate) fn render(&mut self, style: Style) -> String {
        let mut out = String::new();
        if self.rows.is_empty() {
            return out;
        }
        let _ = writeln!(
            out,
            "{}",
            style.bold(&format!(
                "{:<16} {:>8} {:>7} {:>8} {:>7} {:>6} {:>10} {:>10} {:>10}",
                "node", "attempts", "errors", "timeouts", "retries", "failed", "p50", "p95", "p99"
            ))
        );
        for (node, row) in self.rows.iter_mut() {
            row.durations_ms.sort_by(f64::total_cmp);
            let p = |q| {
                percentile(&row.durations_ms, q)
                    .map(fmt_ms)
                    .unwrap_or_else(|| "-".into())
            };
            let line = format!(
                "{:<16} {:>8} {:>7} {:>8} {:>7} {:>6} {:>10} {:>10} {:>10}",
                node,
                row.attempts,
                row.errors,
                row.timeouts,
                row.retries,
                row.failed,
                p(50.0),
                p(95.0),
                p(99.0)
            );
            let line = if row.failed > 0 || row.errors > 0 {
                style.red(&line)
            } else if row.timeouts > 0 {
                style.yellow(&line)
            } else {
                line
            };
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
