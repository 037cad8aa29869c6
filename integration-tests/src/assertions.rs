//! Checks on what a collector received. Each returns `Err` with a
//! description of the first problem, so the checks themselves can be tested
//! against deliberately wrong input (see the tests below).

use std::collections::HashSet;

use crate::debuglog::{Received, Span};
use crate::scenario::{ExpectedAttempt, Scenario};

/// Exactly one root, every other span's parent is that root, no duplicate
/// span ids. Returns the root.
pub fn check_tree<'a>(spans: &[&'a Span]) -> Result<&'a Span, String> {
    let roots: Vec<&&Span> = spans.iter().filter(|s| s.parent_id.is_empty()).collect();
    if roots.len() != 1 {
        return Err(format!("expected one root span, found {}", roots.len()));
    }
    let root = *roots[0];
    let mut ids = HashSet::new();
    for s in spans {
        if !ids.insert(&s.span_id) {
            return Err(format!("duplicate span id {} ({})", s.span_id, s.name));
        }
        if !s.parent_id.is_empty() && s.parent_id != root.span_id {
            return Err(format!(
                "span {} ({}) has dangling parent {}",
                s.span_id, s.name, s.parent_id
            ));
        }
    }
    Ok(root)
}

/// Like [`check_tree`], for traces with deeper spans (`tracing` spans,
/// downstream services): exactly one root, no duplicate span ids, every
/// other span's parent present in the trace, and every child's times inside
/// its parent's. Returns the root.
pub fn check_nested_tree<'a>(spans: &[&'a Span]) -> Result<&'a Span, String> {
    let roots: Vec<&&Span> = spans.iter().filter(|s| s.parent_id.is_empty()).collect();
    if roots.len() != 1 {
        return Err(format!("expected one root span, found {}", roots.len()));
    }
    let mut by_id = std::collections::HashMap::new();
    for s in spans {
        if by_id.insert(s.span_id.as_str(), *s).is_some() {
            return Err(format!("duplicate span id {} ({})", s.span_id, s.name));
        }
    }
    for s in spans.iter().filter(|s| !s.parent_id.is_empty()) {
        let Some(p) = by_id.get(s.parent_id.as_str()) else {
            return Err(format!(
                "span {} ({}) has dangling parent {}",
                s.span_id, s.name, s.parent_id
            ));
        };
        if s.start_ns < p.start_ns || s.end_ns > p.end_ns {
            return Err(format!(
                "span {} ({}) {}..{} outside its parent {} ({}) {}..{}",
                s.span_id, s.name, s.start_ns, s.end_ns, p.span_id, p.name, p.start_ns, p.end_ns
            ));
        }
    }
    Ok(*roots[0])
}

/// The attempt arrived exactly once, with exact timing (µs), status and
/// error type.
pub fn check_attempt(r: &Received, a: &ExpectedAttempt) -> Result<(), String> {
    let found: Vec<&Span> = r
        .trace(&a.trace_id)
        .into_iter()
        .filter(|s| s.name == a.node && s.attr("flow.node.attempt") == Some(&a.attempt.to_string()))
        .collect();
    let what = format!("{} attempt {} in {}", a.node, a.attempt, a.trace_id);
    let [s] = found.as_slice() else {
        return Err(format!("{what}: expected one span, found {}", found.len()));
    };
    let start = (s.start_ns / 1000) as i128;
    let end = (s.end_ns / 1000) as i128;
    // ns → µs truncation can land one below the rounded µs.
    if (start - a.start_us).abs() > 1 || (end - a.end_us).abs() > 1 {
        return Err(format!(
            "{what}: timing {start}..{end} µs, expected {}..{} µs",
            a.start_us, a.end_us
        ));
    }
    if s.attr("flow.node.outcome") != Some(a.outcome) {
        return Err(format!(
            "{what}: outcome {:?}, expected {}",
            s.attr("flow.node.outcome"),
            a.outcome
        ));
    }
    let is_error = s.status_code == "STATUS_CODE_ERROR";
    if is_error != a.error_type.is_some() {
        return Err(format!("{what}: status {}", s.status_code));
    }
    if s.attr("error.type") != a.error_type.as_deref() {
        return Err(format!(
            "{what}: error.type {:?}, expected {:?}",
            s.attr("error.type"),
            a.error_type
        ));
    }
    if a.error_type.is_some() && !s.events.iter().any(|e| e.name == "exception") {
        return Err(format!("{what}: no exception event"));
    }
    Ok(())
}

/// No metric point carries a trace id, a node id or a run id, as a key or
/// inside a value.
pub fn check_no_ids_in_metrics(r: &Received, forbidden_values: &[String]) -> Result<(), String> {
    for p in &r.points {
        for (k, v) in &p.attributes {
            if ["trace_id", "flow.node.id", "flow.run.id", "node_id"].contains(&k.as_str()) {
                return Err(format!("metric {} carries attribute {k}", p.metric));
            }
            if let Some(f) = forbidden_values.iter().find(|f| v.contains(f.as_str())) {
                return Err(format!("metric {} carries id {f} in {k}", p.metric));
            }
        }
    }
    Ok(())
}

/// Sum of the latest counts of a histogram across its series.
pub fn histogram_count(r: &Received, metric: &str) -> u64 {
    r.latest_points()
        .iter()
        .filter(|p| p.metric == metric)
        .filter_map(|p| p.count)
        .sum()
}

/// Sum of the latest values of a counter over the series whose attributes
/// include `(key, value)`.
pub fn counter_total(r: &Received, metric: &str, key: &str, value: &str) -> f64 {
    r.latest_points()
        .iter()
        .filter(|p| p.metric == metric && p.attributes.get(key).map(String::as_str) == Some(value))
        .filter_map(|p| p.value)
        .sum()
}

/// Everything the scenario promises, checked against what arrived.
pub fn check_scenario(r: &Received, s: &Scenario) -> Result<(), String> {
    for (trace, events) in &s.run_events {
        let spans = r.trace(trace);
        let root = check_tree(&spans).map_err(|e| format!("trace {trace}: {e}"))?;
        let names: Vec<&str> = root.events.iter().map(|e| e.name.as_str()).collect();
        if names != *events {
            return Err(format!(
                "trace {trace}: root events {names:?}, expected {events:?}"
            ));
        }
        let failed = s.failed_runs.iter().find(|(t, _)| t == trace);
        let is_error = root.status_code == "STATUS_CODE_ERROR";
        match failed {
            Some((_, code)) if !is_error || root.attr("error.type") != Some(code) => {
                return Err(format!(
                    "trace {trace}: root should be ERROR {code}: {root:?}"
                ));
            }
            None if is_error => {
                return Err(format!("trace {trace}: root unexpectedly ERROR"));
            }
            _ => {}
        }
    }
    for a in &s.attempts {
        check_attempt(r, a)?;
    }
    let attempt_spans = r.spans.iter().filter(|s| !s.parent_id.is_empty()).count();
    if attempt_spans != s.attempts.len() {
        return Err(format!(
            "{attempt_spans} attempt spans arrived, expected {}",
            s.attempts.len()
        ));
    }
    let mut forbidden: Vec<String> = s.node_ids.clone();
    forbidden.extend(s.run_events.iter().map(|(t, _)| t.clone()));
    check_no_ids_in_metrics(r, &forbidden)?;
    let timed = s
        .attempts
        .iter()
        .filter(|a| a.outcome != "cancelled")
        .count() as u64
        + s.untraced_attempts;
    let count = histogram_count(r, "flow.node.duration");
    if count != timed {
        return Err(format!(
            "flow.node.duration count {count}, expected {timed} (one per attempt)"
        ));
    }
    let retries = counter_total(r, "flow.events", "flow.event.type", "node_retry");
    if retries != s.retries as f64 {
        return Err(format!(
            "node_retry count {retries}, expected {}",
            s.retries
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debuglog::Point;

    fn span(id: &str, parent: &str) -> Span {
        Span {
            trace_id: "t".into(),
            span_id: id.into(),
            parent_id: parent.into(),
            name: "n".into(),
            ..Span::default()
        }
    }

    #[test]
    fn tree_check_rejects_broken_trees() {
        let (a, b, c) = (span("r", ""), span("x", "r"), span("y", "r"));
        assert!(check_tree(&[&a, &b, &c]).is_ok());
        let two_roots = span("r2", "");
        assert!(check_tree(&[&a, &b, &two_roots])
            .unwrap_err()
            .contains("one root"));
        let dangling = span("z", "missing");
        assert!(check_tree(&[&a, &dangling])
            .unwrap_err()
            .contains("dangling"));
        let dup = span("x", "r");
        assert!(check_tree(&[&a, &b, &dup])
            .unwrap_err()
            .contains("duplicate"));
        assert!(check_tree(&[&b]).is_err(), "no root at all");
    }

    #[test]
    fn nested_tree_check_rejects_broken_trees() {
        let timed = |id: &str, parent: &str, start: u128, end: u128| Span {
            start_ns: start,
            end_ns: end,
            ..span(id, parent)
        };
        let root = timed("r", "", 0, 100);
        let attempt = timed("a", "r", 10, 90);
        let inner = timed("t", "a", 20, 80);
        assert_eq!(
            check_nested_tree(&[&root, &attempt, &inner])
                .unwrap()
                .span_id,
            "r"
        );
        let outside = timed("t", "a", 20, 95);
        assert!(check_nested_tree(&[&root, &attempt, &outside])
            .unwrap_err()
            .contains("outside"));
        let dangling = timed("t", "missing", 20, 80);
        assert!(check_nested_tree(&[&root, &dangling])
            .unwrap_err()
            .contains("dangling"));
        assert!(check_nested_tree(&[&root, &attempt, &attempt.clone()])
            .unwrap_err()
            .contains("duplicate"));
        assert!(check_nested_tree(&[&root, &timed("r2", "", 0, 1)])
            .unwrap_err()
            .contains("one root"));
        // The flat check refuses what this one accepts.
        assert!(check_tree(&[&root, &attempt, &inner]).is_err());
    }

    fn attempt_fixture() -> (Received, ExpectedAttempt) {
        let mut s = span("x", "r");
        s.name = "triage".into();
        s.start_ns = 1_000_000_000;
        s.end_ns = 1_007_500_000;
        s.status_code = "STATUS_CODE_ERROR".into();
        for (k, v) in [
            ("flow.node.attempt", "0"),
            ("flow.node.outcome", "error"),
            ("error.type", "ValueError"),
        ] {
            s.attributes.insert(k.into(), v.into());
        }
        s.events.push(crate::debuglog::SpanEvent {
            name: "exception".into(),
            ..Default::default()
        });
        let r = Received {
            spans: vec![s],
            points: vec![],
        };
        let a = ExpectedAttempt {
            trace_id: "t".into(),
            node: "triage".into(),
            attempt: 0,
            outcome: "error",
            start_us: 1_000_000,
            end_us: 1_007_500,
            error_type: Some("ValueError".into()),
        };
        (r, a)
    }

    #[test]
    fn attempt_check_rejects_wrong_timing_status_and_counts() {
        let (r, a) = attempt_fixture();
        assert!(check_attempt(&r, &a).is_ok());

        let mut late = r.clone();
        late.spans[0].start_ns += 5_000;
        assert!(check_attempt(&late, &a).unwrap_err().contains("timing"));

        let mut ok_status = r.clone();
        ok_status.spans[0].status_code = "STATUS_CODE_UNSET".into();
        assert!(check_attempt(&ok_status, &a)
            .unwrap_err()
            .contains("status"));

        let mut twice = r.clone();
        twice.spans.push(twice.spans[0].clone());
        assert!(check_attempt(&twice, &a).unwrap_err().contains("found 2"));

        let mut wrong_type = r.clone();
        wrong_type.spans[0]
            .attributes
            .insert("error.type".into(), "KeyError".into());
        assert!(check_attempt(&wrong_type, &a)
            .unwrap_err()
            .contains("error.type"));

        let mut no_exc = r;
        no_exc.spans[0].events.clear();
        assert!(check_attempt(&no_exc, &a)
            .unwrap_err()
            .contains("exception"));
    }

    #[test]
    fn metric_check_rejects_ids() {
        let mut p = Point {
            metric: "flow.events".into(),
            ..Point::default()
        };
        p.attributes.insert("flow.node.name".into(), "fetch".into());
        let clean = Received {
            spans: vec![],
            points: vec![p.clone()],
        };
        let ids = vec!["a1b2c3".to_string()];
        assert!(check_no_ids_in_metrics(&clean, &ids).is_ok());

        let mut keyed = p.clone();
        keyed.attributes.insert("trace_id".into(), "zzz".into());
        let r = Received {
            spans: vec![],
            points: vec![keyed],
        };
        assert!(check_no_ids_in_metrics(&r, &ids).is_err());

        let mut valued = p;
        valued
            .attributes
            .insert("flow.node.name".into(), "x-a1b2c3".into());
        let r = Received {
            spans: vec![],
            points: vec![valued],
        };
        assert!(check_no_ids_in_metrics(&r, &ids).is_err());
    }

    #[test]
    fn scenario_check_rejects_an_empty_collector() {
        let s = crate::scenario::realistic(1_795_305_121.0);
        let err = check_scenario(&Received::default(), &s).unwrap_err();
        assert!(err.contains("one root"), "{err}");
    }
}
