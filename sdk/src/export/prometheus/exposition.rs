//! One collection written out for a scrape: the Prometheus text format
//! 0.0.4, or OpenMetrics 1.0 (which Prometheus asks for first, and which
//! carries the duration histogram's exemplars).
//!
//! Counters are monotonic sums, gauges are gauges and non-monotonic sums
//! (`flow.node.active`), histograms are explicit-bucket histograms with
//! cumulative `_bucket` lines; the resource is one `target_info` series.
//! flowtel's metrics all come from one instrumentation scope, so the
//! `otel_scope_*` labels the specification suggests would add a constant
//! label to every series (and a new series on every upgrade) and are left
//! out. Exponential histograms (flowtel records none) are skipped.

use std::collections::HashSet;
use std::fmt::Write as _;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};

use super::names::{family, label, Kind};
use crate::exemplars::{canonical_kvs, Exemplar, Exemplars};

/// Which exposition format a scrape gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`, with exemplars.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the scraper accepts it (Prometheus does, first),
    /// else the classic text format.
    pub(crate) fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A sample value.
trait Sample: Copy {
    fn put(self, out: &mut String);
}

impl Sample for u64 {
    fn put(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Sample for i64 {
    fn put(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Sample for f64 {
    fn put(self, out: &mut String) {
        float(out, self);
    }
}

fn float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

fn escape_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A sample line's labels: the attributes, then `extra` (`le`).
fn labels<'a>(
    out: &mut String,
    attrs: impl Iterator<Item = &'a KeyValue>,
    extra: Option<(&str, &str)>,
) {
    let mut pairs: Vec<(String, String)> = attrs
        .map(|kv| (label(kv.key.as_str()), kv.value.as_str().into_owned()))
        .collect();
    // Two keys may sanitize to one label (`a.b`, `a_b`): keep the first.
    let mut seen = HashSet::new();
    pairs.retain(|(k, _)| seen.insert(k.clone()));
    if let Some((k, v)) = extra {
        pairs.push((k.to_string(), v.to_string()));
    }
    if pairs.is_empty() {
        return;
    }
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        escape_value(out, v);
        out.push('"');
    }
    out.push('}');
}

/// One complete sample line.
fn line<'a, T: Sample>(
    out: &mut String,
    name: &str,
    attrs: impl Iterator<Item = &'a KeyValue>,
    le: Option<&str>,
    value: T,
    exemplar: Option<&Exemplar>,
) {
    out.push_str(name);
    labels(out, attrs, le.map(|v| ("le", v)));
    out.push(' ');
    value.put(out);
    if let Some(e) = exemplar {
        let _ = write!(
            out,
            " # {{trace_id=\"{}\",span_id=\"{}\"}} ",
            e.trace_id, e.span_id
        );
        float(out, e.value);
        let _ = write!(
            out,
            " {}.{:09}",
            e.time_ns / 1_000_000_000,
            e.time_ns % 1_000_000_000
        );
    }
    out.push('\n');
}

fn header(
    out: &mut String,
    format: Format,
    family: &str,
    kind: Kind,
    help: &str,
    unit: Option<&str>,
) {
    let (type_name, sample_name) = match (format, kind) {
        (_, Kind::Histogram) => ("histogram", family.to_string()),
        (_, Kind::Gauge) => ("gauge", family.to_string()),
        (Format::OpenMetrics, Kind::Counter) => ("counter", family.to_string()),
        (Format::Text, Kind::Counter) => ("counter", format!("{family}_total")),
    };
    if !help.is_empty() {
        let _ = write!(out, "# HELP {sample_name} ");
        for c in help.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '"' if format == Format::OpenMetrics => out.push_str("\\\""),
                c => out.push(c),
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "# TYPE {sample_name} {type_name}");
    if let (Format::OpenMetrics, Some(u)) = (format, unit) {
        let _ = writeln!(out, "# UNIT {family} {u}");
    }
}

/// The word a family name ends with when it carries a unit (OpenMetrics
/// `# UNIT`, which must be the name's suffix).
fn unit_of(family: &str, otel_unit: &str) -> Option<&'static str> {
    match otel_unit {
        "s" if family.ends_with("_seconds") => Some("seconds"),
        "By" if family.ends_with("_bytes") => Some("bytes"),
        _ => None,
    }
}

/// Write one metric; `emitted` keeps two metrics from writing one family.
fn metric(
    out: &mut String,
    format: Format,
    m: &Metric,
    exemplars: Option<&Exemplars>,
    emitted: &mut HashSet<String>,
) {
    let exemplars = exemplars.filter(|e| e.metric() == m.name() && format == Format::OpenMetrics);
    match m.data() {
        AggregatedMetrics::F64(d) => data(out, format, m, d, exemplars, emitted),
        AggregatedMetrics::U64(d) => data(out, format, m, d, exemplars, emitted),
        AggregatedMetrics::I64(d) => data(out, format, m, d, exemplars, emitted),
    }
}

fn data<T: Sample>(
    out: &mut String,
    format: Format,
    m: &Metric,
    d: &MetricData<T>,
    exemplars: Option<&Exemplars>,
    emitted: &mut HashSet<String>,
) {
    let kind = match d {
        MetricData::Gauge(_) => Kind::Gauge,
        MetricData::Sum(s) if s.is_monotonic() => Kind::Counter,
        MetricData::Sum(_) => Kind::Gauge,
        MetricData::Histogram(_) => Kind::Histogram,
        MetricData::ExponentialHistogram(_) => return,
    };
    let fam = family(m.name(), m.unit(), kind);
    if !emitted.insert(fam.clone()) {
        return;
    }
    header(
        out,
        format,
        &fam,
        kind,
        m.description(),
        unit_of(&fam, m.unit()),
    );
    match d {
        MetricData::Gauge(g) => {
            for p in g.data_points() {
                line(out, &fam, p.attributes(), None, p.value(), None);
            }
        }
        MetricData::Sum(s) => {
            let name = match kind {
                Kind::Counter => format!("{fam}_total"),
                _ => fam.clone(),
            };
            for p in s.data_points() {
                line(out, &name, p.attributes(), None, p.value(), None);
            }
        }
        MetricData::Histogram(h) => {
            let bucket = format!("{fam}_bucket");
            for p in h.data_points() {
                let ex = exemplars.and_then(|e| e.for_series(&canonical_kvs(p.attributes())));
                let ex_at = |i: usize| ex.as_ref().and_then(|v| v.get(i).copied().flatten());
                let mut cumulative = 0u64;
                let mut le = String::new();
                for (i, (bound, n)) in p.bounds().zip(p.bucket_counts()).enumerate() {
                    cumulative += n;
                    le.clear();
                    float(&mut le, bound);
                    line(
                        out,
                        &bucket,
                        p.attributes(),
                        Some(&le),
                        cumulative,
                        ex_at(i).as_ref(),
                    );
                }
                let last = p.bounds().count();
                line(
                    out,
                    &bucket,
                    p.attributes(),
                    Some("+Inf"),
                    p.count(),
                    ex_at(last).as_ref(),
                );
                line(
                    out,
                    &format!("{fam}_sum"),
                    p.attributes(),
                    None,
                    p.sum(),
                    None,
                );
                line(
                    out,
                    &format!("{fam}_count"),
                    p.attributes(),
                    None,
                    p.count(),
                    None,
                );
            }
        }
        MetricData::ExponentialHistogram(_) => {}
    }
}

/// The resource as `target_info`.
fn target_info(out: &mut String, format: Format, rm: &ResourceMetrics) {
    let attrs: Vec<KeyValue> = rm
        .resource()
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    if attrs.is_empty() {
        return;
    }
    match format {
        Format::Text => {
            out.push_str("# HELP target_info Target metadata\n# TYPE target_info gauge\n")
        }
        Format::OpenMetrics => out.push_str("# TYPE target info\n# HELP target Target metadata\n"),
    }
    line(out, "target_info", attrs.iter(), None, 1u64, None);
}

/// The whole collection in `format`; `exemplars` (of one histogram) are
/// written in OpenMetrics only, on that histogram's bucket lines.
pub(crate) fn render(
    rm: &ResourceMetrics,
    format: Format,
    exemplars: Option<&Exemplars>,
) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let mut emitted = HashSet::new();
    target_info(&mut out, format, rm);
    emitted.insert("target_info".to_string());
    for sm in rm.scope_metrics() {
        for m in sm.metrics() {
            metric(&mut out, format, m, exemplars, &mut emitted);
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
    use opentelemetry_sdk::Resource;

    use super::*;

    /// A real SDK collection: a counter, an up-down counter, a histogram
    /// with an exemplar, and a label value that needs escaping.
    fn collection(exemplars: &Exemplars) -> ResourceMetrics {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_resource(Resource::builder().with_service_name("svc").build())
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let meter = provider.meter("flowtel");
        let events = meter
            .u64_counter("flow.events")
            .with_unit("{event}")
            .with_description("FlowEvents by type and node")
            .build();
        let active = meter
            .i64_up_down_counter("flow.node.active")
            .with_unit("{attempt}")
            .build();
        let duration = meter
            .f64_histogram("flow.node.duration")
            .with_unit("s")
            .with_description("Node attempt duration \"by\" outcome\nsecond line")
            .with_boundaries(vec![0.1, 1.0])
            .build();
        let node = [KeyValue::new("flow.node.name", "fe\"tch\\\n")];
        events.add(3, &node);
        active.add(-2, &node);
        duration.record(0.05, &node);
        duration.record(0.5, &node);
        duration.record(5.0, &node);
        let ctx = (
            TraceId::from_hex("4943fb45116245dd85e8650478f51530").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        );
        exemplars.record(1, &node, 0.5, ctx);
        provider.force_flush().unwrap();
        let mut all = exporter.get_finished_metrics().unwrap();
        all.pop().unwrap()
    }

    #[test]
    fn the_text_format_has_prometheus_names_and_cumulative_buckets() {
        let ex = Exemplars::new("flow.node.duration", &[0.1, 1.0]);
        let text = render(&collection(&ex), Format::Text, Some(&ex));
        let node = r#"flow_node_name="fe\"tch\\\n""#;
        for want in [
            "# HELP target_info Target metadata\n# TYPE target_info gauge\n",
            "service_name=\"svc\"",
            "# HELP flow_events_total FlowEvents by type and node\n# TYPE flow_events_total counter\n",
            &format!("flow_events_total{{{node}}} 3\n"),
            "# TYPE flow_node_active gauge\n",
            &format!("flow_node_active{{{node}}} -2\n"),
            "# HELP flow_node_duration_seconds Node attempt duration \"by\" outcome\\nsecond line\n",
            "# TYPE flow_node_duration_seconds histogram\n",
            &format!("flow_node_duration_seconds_bucket{{{node},le=\"0.1\"}} 1\n"),
            &format!("flow_node_duration_seconds_bucket{{{node},le=\"1\"}} 2\n"),
            &format!("flow_node_duration_seconds_bucket{{{node},le=\"+Inf\"}} 3\n"),
            &format!("flow_node_duration_seconds_sum{{{node}}} 5.55\n"),
            &format!("flow_node_duration_seconds_count{{{node}}} 3\n"),
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            !text.contains("trace_id"),
            "exemplars are OpenMetrics only:\n{text}"
        );
        assert!(!text.contains("# UNIT"), "{text}");
    }

    #[test]
    fn openmetrics_has_families_units_exemplars_and_eof() {
        let ex = Exemplars::new("flow.node.duration", &[0.1, 1.0]);
        let text = render(&collection(&ex), Format::OpenMetrics, Some(&ex));
        let node = r#"flow_node_name="fe\"tch\\\n""#;
        for want in [
            "# TYPE target info\n",
            "# TYPE flow_events counter\n",
            &format!("flow_events_total{{{node}}} 3\n"),
            "# HELP flow_node_duration_seconds Node attempt duration \\\"by\\\" outcome\\nsecond line\n",
            "# UNIT flow_node_duration_seconds seconds\n",
            &format!(
                "flow_node_duration_seconds_bucket{{{node},le=\"1\"}} 2 # \
                 {{trace_id=\"4943fb45116245dd85e8650478f51530\",span_id=\"00f067aa0ba902b7\"}} 0.5 "
            ),
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        // One exemplar, on its own bucket only.
        assert_eq!(text.matches("trace_id=").count(), 1, "{text}");
        let line = text.lines().find(|l| l.contains("trace_id=")).unwrap();
        let ts: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(ts > 1.7e9, "exemplar timestamp in unix seconds: {line}");
    }

    #[test]
    fn the_scraper_chooses_the_format() {
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
    }
}
