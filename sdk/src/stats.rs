//! Counters of what flowtel did and what it lost, shared by the caller's
//! threads, the mapping thread and the exporter; read by [`Flowtel::stats`]
//! and exported as the `flowtel.sdk.*` self-metrics.
//!
//! [`Flowtel::stats`]: crate::Flowtel::stats

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// A snapshot of flowtel's own counters.
///
/// ```
/// # let flowtel = flowtel::Flowtel::builder().with_in_memory(&flowtel::InMemory::new()).build().unwrap();
/// let s = flowtel.stats();
/// assert_eq!(s.events_dropped(), 0);
/// # flowtel.shutdown(std::time::Duration::from_secs(5)).unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Events accepted by `record()`, `record_wait()` and the hand-overs of
    /// an `EventBatch`.
    pub events_recorded: u64,
    /// Events mapped by the mapping thread.
    pub events_processed: u64,
    /// Events dropped because the queue was full.
    pub events_dropped_queue_full: u64,
    /// Events rejected by validation, and values that could not be made
    /// events ([`Flowtel::count_invalid`](crate::Flowtel::count_invalid)).
    pub events_invalid: u64,
    /// Events recorded after shutdown.
    pub events_after_shutdown: u64,
    /// Duplicate terminal events (same attempt, same timestamp) ignored.
    pub events_duplicate: u64,
    /// Spans produced by the mapping.
    pub spans_created: u64,
    /// Spans acknowledged by the exporter.
    pub spans_exported: u64,
    /// Spans dropped because the span buffer was full.
    pub spans_dropped: u64,
    /// Failed export requests (their spans stay buffered and are retried).
    pub export_failures: u64,
    /// Metric data points the exporter acknowledged (over all exports).
    pub metric_points_exported: u64,
    /// Root span events beyond the per-run limit.
    pub root_events_dropped: u64,
    /// Metric attribute values replaced by `_overflow`, and metric series
    /// recorded under the overflow set.
    pub cardinality_overflows: u64,
    /// `node_start` events that arrived after their attempt had ended
    /// (out-of-order input): already covered by the attempt's span, they
    /// open nothing.
    pub events_late: u64,
    /// Runs ended early to stay within the state budget or the open-run
    /// limit.
    pub runs_shed: u64,
    /// Open attempts given up (older than `max_attempt_age`, or beyond the
    /// per-node limit), exported as `incomplete`.
    pub attempts_given_up: u64,
    /// Spans the collector refused for good (a non-retryable answer such as
    /// HTTP 400 or gRPC `INVALID_ARGUMENT`): dropped at once, never retried.
    pub spans_rejected: u64,
    /// Spans the collector reported as rejected in an OTLP partial success
    /// (the rest of their request counts in `spans_exported`).
    pub spans_rejected_partial: u64,
    /// Metric data points the collector refused for good.
    pub metric_points_rejected: u64,
    /// Metric data points reported as rejected in an OTLP partial success.
    pub metric_points_rejected_partial: u64,
    /// Metric exports that failed (collector unreachable, or throttling
    /// beyond the export timeout); the next export carries the cumulative
    /// values again.
    pub metric_export_failures: u64,
    /// Scrapes the Prometheus endpoint answered with metrics.
    pub prometheus_scrapes: u64,
    /// Requests to the Prometheus endpoint refused for a missing or wrong
    /// bearer token (401).
    pub prometheus_unauthorized: u64,
}

impl Stats {
    /// All events that did not become telemetry.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped_queue_full + self.events_invalid + self.events_after_shutdown
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) events_recorded: AtomicU64,
    pub(crate) events_processed: AtomicU64,
    pub(crate) events_dropped_queue_full: AtomicU64,
    pub(crate) events_invalid: AtomicU64,
    pub(crate) events_after_shutdown: AtomicU64,
    pub(crate) events_duplicate: AtomicU64,
    pub(crate) spans_created: AtomicU64,
    pub(crate) spans_exported: AtomicU64,
    pub(crate) spans_dropped: AtomicU64,
    pub(crate) export_failures: AtomicU64,
    pub(crate) metric_points_exported: AtomicU64,
    pub(crate) root_events_dropped: AtomicU64,
    pub(crate) cardinality_overflows: AtomicU64,
    pub(crate) events_late: AtomicU64,
    pub(crate) runs_shed: AtomicU64,
    pub(crate) attempts_given_up: AtomicU64,
    pub(crate) spans_rejected: AtomicU64,
    pub(crate) spans_rejected_partial: AtomicU64,
    pub(crate) metric_points_rejected: AtomicU64,
    pub(crate) metric_points_rejected_partial: AtomicU64,
    pub(crate) metric_export_failures: AtomicU64,
    pub(crate) prometheus_scrapes: AtomicU64,
    pub(crate) prometheus_unauthorized: AtomicU64,
    /// Where the Prometheus endpoint listens, once bound (not a count:
    /// kept here because every part of the pipeline shares this struct).
    pub(crate) prometheus_address: std::sync::OnceLock<std::net::SocketAddr>,
    lost_at_shutdown: AtomicU64,
    warned_queue_full: AtomicBool,
    warned_buffer_full: AtomicBool,
    warned_overflow: AtomicBool,
    warned_export: AtomicBool,
    warned_shed: AtomicBool,
    warned_rejected: AtomicBool,
    warned_partial: AtomicBool,
    warned_metrics_rejected: AtomicBool,
    warned_metrics_partial: AtomicBool,
    warned_metric_export: AtomicBool,
}

/// Warnings are printed once per kind, to standard error, so that a loss is
/// never silent but never floods the log either.
fn warn_once(flag: &AtomicBool, msg: &str) {
    if !flag.swap(true, Relaxed) {
        eprintln!("flowtel: warning: {msg}");
    }
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            events_recorded: self.events_recorded.load(Relaxed),
            events_processed: self.events_processed.load(Relaxed),
            events_dropped_queue_full: self.events_dropped_queue_full.load(Relaxed),
            events_invalid: self.events_invalid.load(Relaxed),
            events_after_shutdown: self.events_after_shutdown.load(Relaxed),
            events_duplicate: self.events_duplicate.load(Relaxed),
            spans_created: self.spans_created.load(Relaxed),
            spans_exported: self.spans_exported.load(Relaxed),
            spans_dropped: self.spans_dropped.load(Relaxed),
            export_failures: self.export_failures.load(Relaxed),
            metric_points_exported: self.metric_points_exported.load(Relaxed),
            root_events_dropped: self.root_events_dropped.load(Relaxed),
            cardinality_overflows: self.cardinality_overflows.load(Relaxed),
            events_late: self.events_late.load(Relaxed),
            runs_shed: self.runs_shed.load(Relaxed),
            attempts_given_up: self.attempts_given_up.load(Relaxed),
            spans_rejected: self.spans_rejected.load(Relaxed),
            spans_rejected_partial: self.spans_rejected_partial.load(Relaxed),
            metric_points_rejected: self.metric_points_rejected.load(Relaxed),
            metric_points_rejected_partial: self.metric_points_rejected_partial.load(Relaxed),
            metric_export_failures: self.metric_export_failures.load(Relaxed),
            prometheus_scrapes: self.prometheus_scrapes.load(Relaxed),
            prometheus_unauthorized: self.prometheus_unauthorized.load(Relaxed),
        }
    }

    /// Runs ended early to stay within the state budget (warned once).
    pub(crate) fn add_runs_shed(&self, n: u64) {
        self.runs_shed.fetch_add(n, Relaxed);
        warn_once(
            &self.warned_shed,
            "mapping state budget or open-run limit reached: the least recently active runs \
             are ended early (counted in flowtel.sdk.state.shed); raise with_state_budget / \
             with_max_open_runs",
        );
    }

    pub(crate) fn add_queue_full(&self, n: u64) {
        self.events_dropped_queue_full.fetch_add(n, Relaxed);
        warn_once(
            &self.warned_queue_full,
            "event queue full: events are being dropped (counted in flowtel.sdk.events.dropped); \
             raise with_queue_capacity or record less",
        );
    }

    pub(crate) fn add_spans_dropped(&self, n: u64) {
        self.spans_dropped.fetch_add(n, Relaxed);
        warn_once(
            &self.warned_buffer_full,
            "span buffer full (collector down or slow): spans are being dropped \
             (counted in flowtel.sdk.spans.dropped)",
        );
    }

    /// Spans still buffered when the shutdown deadline passed (each export
    /// loop adds what it holds; one warning follows, see below).
    pub(crate) fn add_spans_lost_at_shutdown(&self, n: u64) {
        self.spans_dropped.fetch_add(n, Relaxed);
        self.lost_at_shutdown.fetch_add(n, Relaxed);
    }

    /// The shutdown summary: one line on standard error, only when
    /// something was lost.
    pub(crate) fn shutdown_summary(&self) {
        let s = self.snapshot();
        if s.events_dropped() + s.spans_dropped + s.root_events_dropped > 0 {
            eprintln!(
                "flowtel: shutdown: {} of {} events dropped (queue full {}, invalid {}, after shutdown {}); \
                 {} of {} spans dropped; {} run events over the limit",
                s.events_dropped(),
                s.events_recorded + s.events_dropped(),
                s.events_dropped_queue_full,
                s.events_invalid,
                s.events_after_shutdown,
                s.spans_dropped,
                s.spans_created,
                s.root_events_dropped
            );
        }
        if let Some(line) = self.rejected_summary() {
            eprintln!("{line}");
        }
    }

    /// The one warning about spans lost at shutdown, once every export loop
    /// has finished.
    pub(crate) fn warn_lost_at_shutdown(&self) {
        let n = self.lost_at_shutdown.load(Relaxed);
        if n > 0 {
            eprintln!(
                "flowtel: warning: {n} spans could not be delivered before the shutdown deadline \
                 (counted in flowtel.sdk.spans.dropped)"
            );
        }
    }

    pub(crate) fn add_overflow(&self, attribute: &str, limit: usize) {
        self.cardinality_overflows.fetch_add(1, Relaxed);
        if !self.warned_overflow.load(Relaxed) {
            warn_once(
                &self.warned_overflow,
                &format!(
                    "metric attribute `{attribute}` exceeded the cardinality limit of {limit} values; \
                     further values are recorded as `_overflow` (counted in flowtel.sdk.cardinality.overflow)"
                ),
            );
        }
    }

    pub(crate) fn add_export_failure(&self, error: &str) {
        self.export_failures.fetch_add(1, Relaxed);
        if !self.warned_export.load(Relaxed) {
            warn_once(
                &self.warned_export,
                &format!("span export failed, retrying while buffered: {error}"),
            );
        }
    }
}

/// What the collector refused: counted, and warned about once per kind with
/// the collector's own message.
impl Counters {
    /// The collector refused a whole span batch for good (`why` names the
    /// answer and carries its message).
    pub(crate) fn add_spans_rejected(&self, n: u64, why: &str) {
        self.spans_rejected.fetch_add(n, Relaxed);
        warn_once(
            &self.warned_rejected,
            &format!(
                "the collector rejected {n} spans ({why}); rejected data is dropped, not retried \
                 (counted in flowtel.sdk.spans.dropped, reason `rejected`)"
            ),
        );
    }

    /// A partial success: `n` spans of an accepted request were rejected.
    pub(crate) fn add_spans_rejected_partial(&self, n: u64, why: &str) {
        self.spans_rejected_partial.fetch_add(n, Relaxed);
        warn_once(
            &self.warned_partial,
            &format!(
                "the collector accepted a span batch in part, rejecting {n} spans: {why} \
                 (counted in flowtel.sdk.spans.dropped, reason `rejected_partial`)"
            ),
        );
    }

    /// The collector refused a metric export for good.
    pub(crate) fn add_metric_points_rejected(&self, n: u64, why: &str) {
        self.metric_points_rejected.fetch_add(n, Relaxed);
        // Unimplemented / 404 / 405 for metrics: a backend that takes
        // traces only (Phoenix, Jaeger, ...), the usual first-run surprise.
        let hint = if why.contains("Unimplemented")
            || why.starts_with("HTTP 404")
            || why.starts_with("HTTP 405")
        {
            "; this backend seems to take no metrics: set OTEL_METRICS_EXPORTER=none \
             (or prometheus, to serve them for scraping)"
        } else {
            ""
        };
        warn_once(
            &self.warned_metrics_rejected,
            &format!(
                "the collector rejected {n} metric data points ({why}); not retried \
                 (counted in flowtel.sdk.metric_points.dropped, reason `rejected`){hint}"
            ),
        );
    }

    /// A partial success: `n` data points of an accepted metric export were
    /// rejected.
    pub(crate) fn add_metric_points_rejected_partial(&self, n: u64, why: &str) {
        self.metric_points_rejected_partial.fetch_add(n, Relaxed);
        warn_once(
            &self.warned_metrics_partial,
            &format!(
                "the collector accepted a metric export in part, rejecting {n} data points: {why} \
                 (counted in flowtel.sdk.metric_points.dropped, reason `rejected_partial`)"
            ),
        );
    }

    /// A partial success that rejected nothing but carries a message: the
    /// OTLP spec makes that a warning from the collector.
    pub(crate) fn warn_collector_message(&self, why: &str) {
        warn_once(
            &self.warned_partial,
            &format!("the collector accepted an export with a warning: {why}"),
        );
    }

    /// A metric export failed (after its retries).
    pub(crate) fn add_metric_export_failure(&self, why: &str) {
        self.metric_export_failures.fetch_add(1, Relaxed);
        warn_once(
            &self.warned_metric_export,
            &format!("metric export failed; the next export carries the values again: {why}"),
        );
    }

    /// The shutdown summary's line about refused data, when there was any.
    pub(crate) fn rejected_summary(&self) -> Option<String> {
        let s = self.snapshot();
        let spans = s.spans_rejected + s.spans_rejected_partial;
        let points = s.metric_points_rejected + s.metric_points_rejected_partial;
        (spans + points > 0).then(|| {
            format!(
                "flowtel: shutdown: the collector rejected {spans} spans ({} refused outright, \
                 {} in partial successes) and {points} metric data points",
                s.spans_rejected, s.spans_rejected_partial
            )
        })
    }
}
