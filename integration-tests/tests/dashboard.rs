//! The Grafana dashboard (`dashboards/flowtel.json`) as a file: importable
//! as is (a Prometheus data source variable, every query on it), seed 000's
//! panels present, quantiles labelled as quantiles. That every query is
//! valid PromQL that returns data and no NaN is checked against a real
//! Prometheus in `cli/tests/prometheus.rs`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/flowtel.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn panels(d: &Value) -> Vec<&Value> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

#[test]
fn it_imports_as_is_with_a_prometheus_data_source_variable() {
    let d = dashboard();
    assert!(d["id"].is_null(), "no instance id: Grafana assigns one");
    assert!(d["__inputs"].is_null(), "no import-time inputs needed");
    assert!(d["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty() && u.len() <= 40));
    let vars = d["templating"]["list"].as_array().unwrap();
    let ds = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data source variable");
    assert_eq!(ds["query"], "prometheus");
    let ds_ref = format!("${{{}}}", ds["name"].as_str().unwrap());
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(
            v["datasource"]["uid"],
            ds_ref.as_str(),
            "variable {}",
            v["name"]
        );
    }
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "panel id twice: {}",
            p["id"]
        );
    }
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap();
        assert_eq!(p["datasource"]["type"], "prometheus", "{title}");
        assert_eq!(p["datasource"]["uid"], ds_ref.as_str(), "{title}");
        assert!(
            !p["description"].as_str().unwrap_or_default().is_empty(),
            "{title}: describe it"
        );
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert_eq!(t["datasource"]["uid"], ds_ref.as_str(), "{title}");
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}");
            assert!(
                refs.insert(t["refId"].as_str().unwrap()),
                "{title}: refId twice"
            );
        }
    }
}

#[test]
fn it_has_seed_000s_panels() {
    let d = dashboard();
    let titles: Vec<String> = panels(&d)
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_lowercase())
        .collect();
    for want in [
        "throughput",
        "error and timeout ratio",
        "latency p50 / p95 / p99",
        "queue depth by node (in, out)",
        "queue depth total",
        "trace in-flight",
        "retries per second",
        "retry ratio",
        "terminal failures",
        "cancellations",
        "deadline skips",
        "flowtel dropped telemetry",
        "oldest open attempt age",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "no {want:?} panel in {titles:#?}"
        );
    }
}

#[test]
fn quantiles_are_labelled_as_quantiles() {
    let d = dashboard();
    let mut seen = BTreeSet::new();
    for p in panels(&d) {
        let text = p.to_string().to_lowercase();
        assert!(!text.contains("confidence"), "{}", p["title"]);
        assert!(
            !text.contains(" ci)") && !text.contains("% ci"),
            "{}",
            p["title"]
        );
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let Some(q) = expr.split("histogram_quantile(").nth(1) else {
                continue;
            };
            let q: f64 = q.split(',').next().unwrap().trim().parse().unwrap();
            let label = format!("p{}", (q * 100.0).round());
            let legend = t["legendFormat"].as_str().unwrap();
            assert!(legend.starts_with(&label), "{legend:?} for quantile {q}");
            assert!(
                p["title"].as_str().unwrap().contains(&label),
                "{}",
                p["title"]
            );
            assert_eq!(p["fieldConfig"]["defaults"]["unit"], "s");
            seen.insert(label);
        }
    }
    assert_eq!(seen, ["p50", "p95", "p99"].map(String::from).into());
}

#[test]
fn ratios_cannot_divide_by_zero() {
    let d = dashboard();
    let mut divisions = 0;
    for p in panels(&d) {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            // Outside label matchers, every `/` divides by a clamped
            // denominator (0 when idle, never NaN) or is a constant (1/300).
            let mut depth = 0;
            for (i, c) in expr.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    '/' if depth == 0 => {
                        let after = expr[i + 1..].trim_start();
                        let before = expr[..i].trim_end();
                        let constant = before.ends_with(|c: char| c.is_ascii_digit())
                            && after.starts_with(|c: char| c.is_ascii_digit());
                        assert!(
                            constant || after.starts_with("clamp_min("),
                            "{}: {expr}",
                            p["title"]
                        );
                        divisions += usize::from(!constant);
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(divisions >= 3, "the ratio panels divide: {divisions}");
}
