//! The alert rules (`alerts/flowtel.rules.yml`) against the real tools:
//! `promtool check rules`, `promtool test rules` (every alert fires on the
//! series written for it and stays silent on the others), mutations that
//! the unit tests must catch, and a real Prometheus that loads the rules and
//! says what each alert is (for, severity, summary).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flowtel_integration_tests::collector::free_port;
use flowtel_integration_tests::prometheus::{run_promtool, Prometheus, Target};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn alerts_dir() -> PathBuf {
    root().join("alerts")
}

const RULES: &str = "flowtel.rules.yml";
const TESTS: &str = "flowtel.rules.test.yml";

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let (ok, out) = run_promtool(&alerts_dir(), &["check", "rules", RULES]);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    let (ok, out) = run_promtool(&alerts_dir(), &["test", "rules", TESTS]);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The alerts of the unit tests: which fire somewhere and which are
/// expected silent somewhere (`exp_alerts: []`).
fn unit_test_expectations() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(alerts_dir().join(TESTS)).unwrap();
    let (mut fires, mut silent) = (BTreeSet::new(), BTreeSet::new());
    let mut alert = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(a) = line.strip_prefix("alertname:") {
            alert = a.trim().to_string();
        } else if line == "exp_alerts: []" {
            silent.insert(alert.clone());
        } else if line.starts_with("- exp_labels:") {
            fires.insert(alert.clone());
        }
    }
    (fires, silent)
}

/// Each alert's rule as a real Prometheus loaded it.
fn loaded_alerts() -> BTreeMap<String, serde_json::Value> {
    // Nothing to scrape: a closed port.
    let target = Target {
        address: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        bearer_token: None,
    };
    let p = Prometheus::start(&target, &[alerts_dir().join(RULES)]);
    // Each rule is evaluated once before it reports its health.
    let t = Instant::now();
    let data = loop {
        let data = p.api("/api/v1/rules").unwrap();
        let rules = || {
            data["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["rules"].as_array().unwrap())
        };
        if rules().all(|r| r["health"] != "unknown") || t.elapsed() > Duration::from_secs(30) {
            break data;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = BTreeMap::new();
    for g in data["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "{r}");
            if r["type"] == "alerting" {
                out.insert(r["name"].as_str().unwrap().to_string(), r.clone());
            }
        }
    }
    out
}

/// The panel titles of the dashboard.
fn panel_titles() -> BTreeSet<String> {
    let d: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("dashboards/flowtel.json")).unwrap(),
    )
    .unwrap();
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .map(|p| p["title"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_alert_has_for_a_severity_and_a_next_step_and_is_tested_both_ways() {
    let alerts = loaded_alerts();
    let names: BTreeSet<String> = alerts.keys().cloned().collect();
    let want: BTreeSet<String> = [
        "FlowNodeQueueSaturated",
        "FlowNodeTimeoutRegression",
        "FlowNodeErrorRegression",
        "FlowNodeRetryStorm",
        "FlowDeadlineSkipSpike",
        "FlowCancellationSpike",
        "FlowNodeStuck",
        "FlowtelDroppingTelemetry",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        names, want,
        "seed 000's starter set, stuck work, flowtel's drops"
    );

    let titles = panel_titles();
    for (name, rule) in &alerts {
        assert!(rule["duration"].as_f64().unwrap() >= 60.0, "{name}: for");
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["warning", "critical"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        let summary = rule["annotations"]["summary"].as_str().unwrap();
        assert!(
            summary.contains("`flowtel inspect TRACE_ID app.log`"),
            "{name}: {summary}"
        );
        let panel = summary
            .split("panel \"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("{name}: no panel named in {summary}"));
        assert!(
            titles.contains(panel),
            "{name}: no dashboard panel {panel:?}"
        );
        assert!(!rule["annotations"]["description"]
            .as_str()
            .unwrap_or_default()
            .is_empty());
    }

    let (fires, silent) = unit_test_expectations();
    for name in &want {
        assert!(fires.contains(name), "{name} never fires in {TESTS}");
        assert!(
            silent.contains(name),
            "{name} is never expected silent in {TESTS}"
        );
    }
}

/// A copy of the rules and their tests with one change to the rules.
fn mutated(from: &str, to: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!(
        "flowtel-rules-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = std::fs::read_to_string(alerts_dir().join(RULES)).unwrap();
    assert_eq!(rules.matches(from).count(), 1, "mutation target {from:?}");
    std::fs::write(dir.join(RULES), rules.replace(from, to)).unwrap();
    std::fs::copy(alerts_dir().join(TESTS), dir.join(TESTS)).unwrap();
    let r = run_promtool(&dir, &["test", "rules", TESTS]);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

#[test]
fn the_unit_tests_catch_a_broken_rule_of_every_alert() {
    for (alert, from, to) in [
        (
            "FlowNodeQueueSaturated",
            "(flow_node_queue_backlog) > 32",
            "(flow_node_queue_backlog) > 64",
        ),
        (
            "FlowNodeTimeoutRegression",
            "flowtel:node_timeout_ratio:rate5m > 0.05",
            "flowtel:node_timeout_ratio:rate5m > 0.5",
        ),
        (
            "FlowNodeTimeoutRegression",
            "rate5m\n            > 2 * (avg_over_time(flowtel:node_timeout_ratio",
            "rate5m\n            > 0 * (avg_over_time(flowtel:node_timeout_ratio",
        ),
        (
            "FlowNodeErrorRegression",
            "flowtel:node_error_ratio:rate5m > 0.05",
            "flowtel:node_error_ratio:rate5m > 0.5",
        ),
        (
            "FlowNodeRetryStorm",
            "flowtel:node_retries_per_success:rate5m > 1",
            "flowtel:node_retries_per_success:rate5m > 100",
        ),
        (
            "FlowNodeRetryStorm",
            "flow_event_type=\"node_retry\"",
            "flow_event_type=\"node_success\"",
        ),
        (
            "FlowDeadlineSkipSpike",
            "flowtel:deadline_skips:rate5m > 1 / 60",
            "flowtel:deadline_skips:rate5m > 1",
        ),
        (
            "FlowCancellationSpike",
            "> 3 * (avg_over_time(flowtel:trace_cancellations",
            "> 0 * (avg_over_time(flowtel:trace_cancellations",
        ),
        (
            "FlowNodeStuck",
            "(flow_node_oldest_open_attempt_age_seconds) > 600",
            "(flow_node_oldest_open_attempt_age_seconds) > 6000",
        ),
        (
            "FlowtelDroppingTelemetry",
            "{flowtel_reason!=\"duplicate\"}",
            "{flowtel_reason!=\"queue_full\"}",
        ),
        // Idle: a denominator that can reach 0 records NaN instead of 0
        // (the "idle signals are zero" test).
        (
            "flowtel:node_retries_per_success:rate5m == 0",
            "            1 / 300\n",
            "            0\n",
        ),
    ] {
        let (ok, out) = mutated(from, to);
        assert!(
            !ok,
            "{alert}: the unit tests pass with {from:?} -> {to:?}:\n{out}"
        );
        assert!(out.contains(alert), "{alert}: another failure:\n{out}");
    }
}
