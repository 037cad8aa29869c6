//! OpenTelemetry names to Prometheus names, after the OpenTelemetry
//! specification's "Prometheus and OpenMetrics compatibility" rules:
//!
//! - every character outside `[a-zA-Z0-9_:]` (labels: `[a-zA-Z0-9_]`)
//!   becomes `_`, runs of `_` collapse to one, and a leading digit gets a
//!   `_` (labels: `key_`) in front;
//! - the unit becomes a suffix (`s` → `_seconds`, `By` → `_bytes`,
//!   `1` → `_ratio` for gauges, `By/s` → `_bytes_per_second`); annotations in braces
//!   (`{event}`) are dropped; a name that already ends with its unit keeps
//!   a single one;
//! - a monotonic sum (counter) ends in `_total`.
//!
//! So `flow.node.duration` (unit `s`) is `flow_node_duration_seconds`,
//! `flow.events` (`{event}`, a counter) is `flow_events_total`, and the
//! attribute `flow.node.name` is the label `flow_node_name`.

/// What kind of Prometheus metric a family is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// `s` with every character outside the allowed set replaced by `_` and
/// runs of `_` collapsed.
fn sanitize(s: &str, allow_colon: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let ok = c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':');
        let c = if ok { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out
}

/// One UCUM unit (no `/`) in Prometheus words.
fn unit_word(unit: &str) -> String {
    match unit {
        "d" => "days".into(),
        "h" => "hours".into(),
        "min" => "minutes".into(),
        "s" => "seconds".into(),
        "ms" => "milliseconds".into(),
        "us" => "microseconds".into(),
        "ns" => "nanoseconds".into(),
        "By" => "bytes".into(),
        "KiBy" => "kibibytes".into(),
        "MiBy" => "mebibytes".into(),
        "%" => "percent".into(),
        other => sanitize(other, false).trim_matches('_').to_string(),
    }
}

/// The denominator of a "per" unit, singular as the specification has it
/// (`m/s` → `meters_per_second`).
fn per_word(unit: &str) -> String {
    match unit {
        "s" => "second".into(),
        "min" => "minute".into(),
        "h" => "hour".into(),
        "d" => "day".into(),
        "w" => "week".into(),
        "mo" => "month".into(),
        "y" => "year".into(),
        other => unit_word(other),
    }
}

/// The unit suffix of a family (without the leading `_`), if any.
fn unit_suffix(unit: &str, kind: Kind) -> Option<String> {
    // Annotations are not units: `{event}`, `{request}/s` keeps `/s`.
    let mut bare = String::new();
    let mut depth = 0u32;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            c if depth == 0 => bare.push(c),
            _ => {}
        }
    }
    let bare = bare.trim();
    if bare.is_empty() {
        return None;
    }
    if bare == "1" {
        return (kind == Kind::Gauge).then(|| "ratio".to_string());
    }
    let words = match bare.split_once('/') {
        Some((num, per)) if !per.is_empty() => {
            let per = per_word(per);
            match num {
                "" | "1" => format!("per_{per}"),
                n => format!("{}_per_{per}", unit_word(n)),
            }
        }
        _ => unit_word(bare),
    };
    (!words.is_empty()).then_some(words)
}

/// The Prometheus family name of an OpenTelemetry metric, without the
/// `_total` of a counter's samples (OpenMetrics names the family without
/// it).
pub(crate) fn family(name: &str, unit: &str, kind: Kind) -> String {
    let mut n = sanitize(name, true);
    if n.starts_with(|c: char| c.is_ascii_digit()) {
        n.insert(0, '_');
    }
    if kind == Kind::Counter {
        if let Some(stripped) = n.strip_suffix("_total") {
            n = stripped.to_string();
        }
    }
    if let Some(u) = unit_suffix(unit, kind) {
        if !n.ends_with(&format!("_{u}")) && n != u {
            n.push('_');
            n.push_str(&u);
        }
    }
    n
}

/// The Prometheus label name of an attribute key.
pub(crate) fn label(key: &str) -> String {
    let mut l = sanitize(key, false);
    if l.starts_with(|c: char| c.is_ascii_digit()) {
        l.insert_str(0, "key_");
    }
    if l.is_empty() {
        l.push('_');
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flowtel_metrics_get_their_documented_names() {
        assert_eq!(
            family("flow.node.duration", "s", Kind::Histogram),
            "flow_node_duration_seconds"
        );
        assert_eq!(
            family("flow.events", "{event}", Kind::Counter),
            "flow_events"
        );
        assert_eq!(
            family("flow.node.oldest_open_attempt.age", "s", Kind::Gauge),
            "flow_node_oldest_open_attempt_age_seconds"
        );
        assert_eq!(
            family("flowtel.sdk.spans.dropped", "{span}", Kind::Counter),
            "flowtel_sdk_spans_dropped"
        );
        assert_eq!(
            family("flow.node.active", "{attempt}", Kind::Gauge),
            "flow_node_active"
        );
        assert_eq!(label("flow.node.name"), "flow_node_name");
        assert_eq!(label("error.type"), "error_type");
    }

    #[test]
    fn the_specification_rules_for_other_names() {
        assert_eq!(
            family("http.server.duration", "ms", Kind::Histogram),
            "http_server_duration_milliseconds"
        );
        assert_eq!(family("cpu..util", "1", Kind::Gauge), "cpu_util_ratio");
        assert_eq!(family("hits", "1", Kind::Counter), "hits");
        assert_eq!(family("requests_total", "", Kind::Counter), "requests");
        assert_eq!(
            family("rate", "{request}/s", Kind::Gauge),
            "rate_per_second"
        );
        assert_eq!(family("io", "By/s", Kind::Gauge), "io_bytes_per_second");
        assert_eq!(
            family("latency_seconds", "s", Kind::Gauge),
            "latency_seconds"
        );
        assert_eq!(family("2xx", "", Kind::Gauge), "_2xx");
        assert_eq!(family("a-b/c", "", Kind::Gauge), "a_b_c");
        assert_eq!(label("9lives"), "key_9lives");
        assert_eq!(label("a:b"), "a_b");
        assert_eq!(label("é"), "_");
    }
}
