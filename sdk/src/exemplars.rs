//! Exemplars of the node duration histogram: for each series and bucket,
//! the trace id and span id of the latest attempt that fell into it, so
//! that a latency bucket leads to a trace.
//!
//! opentelemetry-rust 0.33 records no exemplars, so flowtel keeps them
//! itself, beside the histogram: the metric mapping records one per attempt
//! whose span the mapping made (the span context comes from the mapping),
//! and the exporters attach them to the data points they send: the OTLP
//! encoder to `HistogramDataPoint.exemplars`, the Prometheus endpoint to the
//! `_bucket` lines of its OpenMetrics exposition. This is the OpenTelemetry
//! specification's default reservoir for explicit-bucket histograms
//! ("aligned histogram bucket": the last measurement of each bucket) with
//! its default filter (only measurements made in a sampled trace).
//!
//! The ids live here only: they never become attributes or labels, so the
//! series stay as bounded as they are without exemplars. The table holds at
//! most one entry per admitted series (the series limit) and one exemplar per
//! bucket.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::KeyValue;

use crate::ids::FastMap;

/// One measurement and the span it was made in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Exemplar {
    /// The measured duration, seconds.
    pub(crate) value: f64,
    /// When it was recorded, unix nanoseconds.
    pub(crate) time_ns: u64,
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
}

/// The exemplars of one series, one slot per bucket (the last one is the
/// overflow bucket, above the last boundary).
struct Series {
    buckets: Box<[Option<Exemplar>]>,
}

#[derive(Default)]
struct Table {
    /// Series key (the metric mapping's) to index.
    by_key: FastMap<u64, usize>,
    /// Canonical attribute set to index.
    by_attrs: FastMap<String, usize>,
    series: Vec<Series>,
}

/// The exemplar table of one histogram, shared by the metric mapping
/// (writes) and the exporters (reads).
pub(crate) struct Exemplars {
    /// The histogram's OpenTelemetry name.
    metric: &'static str,
    bounds: Vec<f64>,
    table: Mutex<Table>,
}

/// An attribute set as one string, the same whichever side builds it: the
/// pairs sorted by key, `key=value` joined by a unit separator.
pub(crate) fn canonical<'a>(pairs: impl Iterator<Item = (&'a str, String)>) -> String {
    let mut v: Vec<(&str, String)> = pairs.collect();
    v.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    for (k, val) in v {
        out.push_str(k);
        out.push('=');
        out.push_str(&val);
        out.push('\u{1f}');
    }
    out
}

/// [`canonical`] of SDK attributes.
pub(crate) fn canonical_kvs<'a>(kvs: impl Iterator<Item = &'a KeyValue>) -> String {
    canonical(kvs.map(|kv| (kv.key.as_str(), kv.value.as_str().into_owned())))
}

impl Exemplars {
    /// A table for the histogram `metric` with these bucket boundaries.
    pub(crate) fn new(metric: &'static str, bounds: &[f64]) -> Self {
        Exemplars {
            metric,
            bounds: bounds.to_vec(),
            table: Mutex::default(),
        }
    }

    /// The OpenTelemetry name of the histogram these exemplars belong to.
    pub(crate) fn metric(&self) -> &'static str {
        self.metric
    }

    /// The bucket `value` falls into (upper bounds inclusive, as in OTel).
    fn bucket(&self, value: f64) -> usize {
        self.bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len())
    }

    /// Keep `value`, measured in span `(trace_id, span_id)`, as the latest
    /// exemplar of its bucket in the series `key` (whose attributes are
    /// `attrs`, read only the first time the series is seen).
    pub(crate) fn record(
        &self,
        key: u64,
        attrs: &[KeyValue],
        value: f64,
        (trace_id, span_id): (TraceId, SpanId),
    ) {
        let time_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let bucket = self.bucket(value);
        let n = self.bounds.len() + 1;
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let i = match t.by_key.get(&key) {
            Some(&i) => i,
            None => {
                let attrs = canonical_kvs(attrs.iter());
                let i = match t.by_attrs.get(&attrs) {
                    Some(&i) => i,
                    None => {
                        t.series.push(Series {
                            buckets: vec![None; n].into_boxed_slice(),
                        });
                        let i = t.series.len() - 1;
                        t.by_attrs.insert(attrs, i);
                        i
                    }
                };
                t.by_key.insert(key, i);
                i
            }
        };
        t.series[i].buckets[bucket] = Some(Exemplar {
            value,
            time_ns,
            trace_id,
            span_id,
        });
    }

    /// The exemplars of the series with this canonical attribute set, one
    /// slot per bucket (boundaries, then the overflow bucket).
    pub(crate) fn for_series(&self, attrs: &str) -> Option<Vec<Option<Exemplar>>> {
        let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let i = *t.by_attrs.get(attrs)?;
        Some(t.series[i].buckets.to_vec())
    }

    /// How many series have exemplars (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.series.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(n: u8) -> (TraceId, SpanId) {
        (TraceId::from_bytes([n; 16]), SpanId::from_bytes([n; 8]))
    }

    #[test]
    fn each_bucket_keeps_its_latest_attempt() {
        let e = Exemplars::new("h", &[0.1, 1.0]);
        let attrs = [
            KeyValue::new("flow.node.outcome", "success"),
            KeyValue::new("flow.node.name", "fetch"),
        ];
        e.record(7, &attrs, 0.05, ctx(1));
        e.record(7, &attrs, 0.1, ctx(2)); // bounds are inclusive
        e.record(7, &attrs, 0.5, ctx(3));
        e.record(7, &attrs, 30.0, ctx(4));
        let key = canonical(
            [
                ("flow.node.name", "fetch".to_string()),
                ("flow.node.outcome", "success".into()),
            ]
            .into_iter(),
        );
        let got = e.for_series(&key).unwrap();
        let ids: Vec<_> = got.iter().map(|x| x.map(|x| x.span_id)).collect();
        assert_eq!(ids, [Some(ctx(2).1), Some(ctx(3).1), Some(ctx(4).1)]);
        assert_eq!(got[0].unwrap().value, 0.1);
        assert!(e.for_series("flow.node.name=other\u{1f}").is_none());
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn the_same_attribute_set_under_two_keys_is_one_series() {
        let e = Exemplars::new("h", &[1.0]);
        let attrs = [KeyValue::new("k", "v")];
        e.record(1, &attrs, 0.5, ctx(1));
        e.record(2, &attrs, 0.7, ctx(2));
        assert_eq!(e.len(), 1);
        let got = e.for_series(&canonical_kvs(attrs.iter())).unwrap();
        assert_eq!(got[0].unwrap().trace_id, ctx(2).0);
    }
}
