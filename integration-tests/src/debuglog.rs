//! Parser for the collector "debug exporter" text that rotel-agent prints
//! (`--debug-log-verbosity detailed`): `ResourceSpans #`, `Span #`,
//! `Trace ID :`, `Attributes:` with `-> key: Str(value)`, `Metric #`,
//! `Descriptor:`, data points with `Value` / `Count` / `Sum`.

use std::collections::BTreeMap;

/// A span as the collector received it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Span {
    /// Resource attributes of the batch it came in.
    pub resource: BTreeMap<String, String>,
    /// 32 hex.
    pub trace_id: String,
    /// 16 hex.
    pub span_id: String,
    /// 16 hex, empty for a root.
    pub parent_id: String,
    /// Span name.
    pub name: String,
    /// Unix ns.
    pub start_ns: u128,
    /// Unix ns.
    pub end_ns: u128,
    /// `STATUS_CODE_UNSET`, `STATUS_CODE_ERROR`, ...
    pub status_code: String,
    /// Status message.
    pub status_message: String,
    /// Attribute values, rendered without their type.
    pub attributes: BTreeMap<String, String>,
    /// Span events.
    pub events: Vec<SpanEvent>,
    /// Links: (trace id, span id) of each linked span.
    pub links: Vec<(String, String)>,
}

impl Span {
    /// Attribute value.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// A span event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanEvent {
    /// Event name.
    pub name: String,
    /// Attribute values.
    pub attributes: BTreeMap<String, String>,
}

/// One metric data point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Point {
    /// Resource attributes of the batch it came in.
    pub resource: BTreeMap<String, String>,
    /// Metric name.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// `Sum`, `Gauge`, `Histogram`.
    pub data_type: String,
    /// Data point attributes.
    pub attributes: BTreeMap<String, String>,
    /// Sum or gauge value.
    pub value: Option<f64>,
    /// Histogram count.
    pub count: Option<u64>,
    /// Histogram sum.
    pub sum: Option<f64>,
    /// Exemplars: `Trace ID`, `Span ID`, `Timestamp`, `Value` of each.
    pub exemplars: Vec<BTreeMap<String, String>>,
}

/// Everything received, in arrival order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Received {
    /// Spans.
    pub spans: Vec<Span>,
    /// Metric points (cumulative metrics repeat once per export).
    pub points: Vec<Point>,
}

impl Received {
    /// The newest point per (metric, attributes): cumulative totals.
    pub fn latest_points(&self) -> Vec<&Point> {
        let mut last: BTreeMap<(&str, &BTreeMap<String, String>), &Point> = BTreeMap::new();
        for p in &self.points {
            last.insert((p.metric.as_str(), &p.attributes), p);
        }
        last.into_values().collect()
    }

    /// Spans of one trace.
    pub fn trace(&self, trace_id: &str) -> Vec<&Span> {
        self.spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    None,
    Resource,
    SpanAttrs,
    Events,
    EventAttrs,
    Links,
    Descriptor,
    PointAttrs,
    Exemplar,
}

/// `Str(x)` → `x`, `Int(3)` → `3`, `Double(0.5)` → `0.5`, `Bool(true)` → `true`.
fn unwrap_value(v: &str) -> String {
    if let Some(open) = v.find('(') {
        if v.ends_with(')') && v[..open].chars().all(|c| c.is_ascii_alphabetic()) {
            return v[open + 1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

fn arrow(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix("-> ")?;
    Some(match rest.split_once(": ") {
        Some((k, v)) => (k, v),
        None => (rest.trim_end_matches(':'), ""),
    })
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let t = line.trim_start();
    let rest = t.strip_prefix(name)?;
    let rest = rest.trim_start().strip_prefix(':')?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// Parse a whole debug log.
pub fn parse(log: &str) -> Received {
    let mut r = Received::default();
    let mut resource = BTreeMap::new();
    let mut mode = Mode::None;
    let mut in_spans = false;
    let mut metric = Point::default();
    for line in log.lines() {
        let t = line.trim_start();
        if t.starts_with("ResourceSpans #") {
            in_spans = true;
            resource.clear();
            mode = Mode::None;
        } else if t.starts_with("ResourceMetrics #") {
            in_spans = false;
            resource.clear();
            mode = Mode::None;
        } else if t == "Resource attributes:" {
            mode = Mode::Resource;
        } else if t.starts_with("Span #") && in_spans {
            r.spans.push(Span {
                resource: resource.clone(),
                ..Span::default()
            });
            mode = Mode::None;
        } else if t.starts_with("Metric #") {
            metric = Point {
                resource: resource.clone(),
                ..Point::default()
            };
            mode = Mode::None;
        } else if t == "Descriptor:" {
            mode = Mode::Descriptor;
        } else if t.starts_with("NumberDataPoints #") || t.starts_with("HistogramDataPoints #") {
            r.points.push(Point {
                attributes: BTreeMap::new(),
                ..metric.clone()
            });
            mode = Mode::None;
        } else if t == "Data point attributes:" {
            mode = Mode::PointAttrs;
        } else if t.starts_with("Exemplar #") {
            if let Some(p) = r.points.last_mut() {
                p.exemplars.push(BTreeMap::new());
            }
            mode = Mode::Exemplar;
        } else if t == "Attributes:" && in_spans {
            mode = Mode::SpanAttrs;
        } else if t == "Events:" {
            mode = Mode::Events;
        } else if t == "Links:" && in_spans {
            mode = Mode::Links;
        } else if t.starts_with("SpanLink #") {
            if let Some(s) = r.spans.last_mut() {
                s.links.push((String::new(), String::new()));
            }
            mode = Mode::Links;
        } else if t.starts_with("SpanEvent #") {
            if let Some(s) = r.spans.last_mut() {
                s.events.push(SpanEvent::default());
            }
            mode = Mode::Events;
        } else if let Some((k, v)) = arrow(line) {
            match mode {
                Mode::Resource => {
                    resource.insert(k.to_string(), unwrap_value(v));
                }
                Mode::SpanAttrs => {
                    if let Some(s) = r.spans.last_mut() {
                        s.attributes.insert(k.to_string(), unwrap_value(v));
                    }
                }
                Mode::Events => {
                    if k == "Attributes:" || k == "Attributes" {
                        mode = Mode::EventAttrs;
                    } else if k == "Name" {
                        if let Some(e) = r.spans.last_mut().and_then(|s| s.events.last_mut()) {
                            e.name = v.to_string();
                        }
                    }
                }
                Mode::EventAttrs => {
                    if let Some(e) = r.spans.last_mut().and_then(|s| s.events.last_mut()) {
                        e.attributes.insert(k.to_string(), unwrap_value(v));
                    }
                }
                Mode::Links => {
                    if let Some(l) = r.spans.last_mut().and_then(|s| s.links.last_mut()) {
                        match k {
                            "Trace ID" => l.0 = v.trim().to_string(),
                            "ID" => l.1 = v.trim().to_string(),
                            _ => {}
                        }
                    }
                }
                Mode::Descriptor => match k {
                    "Name" => metric.metric = v.to_string(),
                    "Unit" => metric.unit = v.to_string(),
                    "DataType" => metric.data_type = v.to_string(),
                    _ => {}
                },
                Mode::PointAttrs => {
                    if let Some(p) = r.points.last_mut() {
                        p.attributes.insert(k.to_string(), unwrap_value(v));
                    }
                }
                Mode::Exemplar => {
                    if let Some(e) = r.points.last_mut().and_then(|p| p.exemplars.last_mut()) {
                        e.insert(k.to_string(), v.trim().to_string());
                    }
                }
                Mode::None => {}
            }
        } else if in_spans {
            let Some(s) = r.spans.last_mut() else {
                continue;
            };
            if let Some(v) = field(line, "Trace ID") {
                s.trace_id = v.trim().to_string();
            } else if let Some(v) = field(line, "Parent ID") {
                s.parent_id = v.trim().to_string();
            } else if let Some(v) = field(line, "ID") {
                s.span_id = v.trim().to_string();
            } else if let Some(v) = field(line, "Name") {
                s.name = v.to_string();
            } else if let Some(v) = field(line, "Start time") {
                s.start_ns = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = field(line, "End time") {
                s.end_ns = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = field(line, "Status code") {
                s.status_code = v.trim().to_string();
            } else if let Some(v) = field(line, "Status message") {
                s.status_message = v.to_string();
            }
        } else if let Some(p) = r.points.last_mut() {
            if let Some(v) = field(line, "Value") {
                p.value = v.trim().parse().ok();
            } else if let Some(v) = field(line, "Count") {
                p.count = v.trim().parse().ok();
            } else if let Some(v) = field(line, "Sum") {
                p.sum = v.trim().parse().ok();
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../tests/fixtures/rotel_debug_sample.log");

    #[test]
    fn parses_spans_events_and_points() {
        let r = parse(SAMPLE);
        assert_eq!(r.spans.len(), 2);
        let root = &r.spans[1];
        assert_eq!(root.trace_id, "6df92f3577b34da6a3ce929d0e0e4738");
        assert_eq!(root.parent_id, "");
        assert_eq!(root.name, "support-triage");
        assert_eq!(root.status_code, "STATUS_CODE_ERROR");
        assert_eq!(
            root.status_message,
            "NODE_TIMEOUT: Node 'summarize' timed out"
        );
        assert_eq!(root.attr("flow.run.attempts"), Some("4"));
        assert_eq!(root.resource["service.name"], "flowtel-quickstart");
        assert_eq!(root.events.len(), 2);
        assert_eq!(root.events[1].name, "flow.node.failed");
        assert_eq!(root.events[1].attributes["error.type"], "NODE_TIMEOUT");
        let child = &r.spans[0];
        assert_eq!(child.parent_id, "eab54c5f80036426");
        assert_eq!(child.end_ns - child.start_ns, 45_277_619);

        assert_eq!(r.points.len(), 3);
        assert_eq!(r.points[0].metric, "flow.events");
        assert_eq!(r.points[0].value, Some(1.0));
        assert_eq!(r.points[0].attributes["flow.event.type"], "node_failed");
        let h = &r.points[2];
        assert_eq!(h.data_type, "Histogram");
        assert_eq!(h.unit, "s");
        assert_eq!(h.count, Some(3));
        assert_eq!(h.attributes["flow.node.outcome"], "success");
    }

    #[test]
    fn parses_span_links() {
        let log =
            "ResourceSpans #0\nSpan #0\n    Trace ID       : 6df92f3577b34da6a3ce929d0e0e4738\n\
                   Links:\nSpanLink #0\n     -> Trace ID: 4bf92f3577b34da6a3ce929d0e0e4736\n\
                   \x20    -> ID: 00f067aa0ba902b7\n     -> TraceState: \nSpan #1\n";
        let r = parse(log);
        assert_eq!(
            r.spans[0].links,
            [(
                "4bf92f3577b34da6a3ce929d0e0e4736".to_string(),
                "00f067aa0ba902b7".to_string()
            )]
        );
        assert!(r.spans[1].links.is_empty());
    }

    #[test]
    fn latest_points_keep_the_newest_per_series() {
        let twice = format!("{SAMPLE}\n{}", SAMPLE.replace("Value: 1", "Value: 7"));
        let r = parse(&twice);
        let latest = r.latest_points();
        let ev = latest
            .iter()
            .find(|p| p.metric == "flow.events" && p.attributes["flow.event.type"] == "node_failed")
            .unwrap();
        assert_eq!(ev.value, Some(7.0));
    }

    #[test]
    fn exemplars_are_not_point_attributes() {
        let log = "ResourceMetrics #0\nMetric #0\nDescriptor:\n     -> Name: flow.node.duration\n\
                   HistogramDataPoints #0\nData point attributes:\n     -> flow.node.name: Str(fetch)\n\
                   Count: 2\nExemplars:\nExemplar #0\n     -> Trace ID: 5fc0395421844e579bf80ba13d97e6d6\n\
                   \x20    -> Span ID: b1263c1b47ec748c\n     -> Value: 0.0306\n\
                   HistogramDataPoints #1\nData point attributes:\n     -> flow.node.name: Str(triage)\n";
        let r = parse(log);
        assert_eq!(r.points.len(), 2);
        let p = &r.points[0];
        assert_eq!(p.attributes.len(), 1, "{p:?}");
        assert_eq!(p.exemplars.len(), 1);
        assert_eq!(
            p.exemplars[0]["Trace ID"],
            "5fc0395421844e579bf80ba13d97e6d6"
        );
        assert_eq!(p.exemplars[0]["Span ID"], "b1263c1b47ec748c");
        assert_eq!(p.exemplars[0]["Value"], "0.0306");
        assert_eq!(r.points[1].attributes["flow.node.name"], "triage");
        assert!(r.points[1].exemplars.is_empty());
    }
}
