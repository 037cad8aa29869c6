//! The on-call kit against a real Prometheus (Debian's 2.42, installed by
//! `scripts/test`): `flowtel ingest --follow` serves its metrics on a free
//! loopback port behind a bearer token while it ingests real PenguiFlow
//! logs; Prometheus, with the alert rules loaded, scrapes it every second.
//! Then every dashboard query, every recording rule and every alert
//! expression is evaluated through Prometheus' HTTP API: each is valid
//! PromQL, the panels and recordings return data, and nothing is NaN. The
//! scraped series carry no trace, run or node id; the latency buckets'
//! exemplars name the logs' runs; an attempt left open shows as a growing
//! age.
//!
//! Phases, each waited for (no fixed sleep): the sample log is followed and
//! scraped; then a fresh run of the real flows is appended, so that every
//! counter of the first phase moves inside the rate windows (Prometheus
//! cannot see the first increment of a series it never saw at zero); then a
//! `node_start` that never ends.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use flowtel::FlowEvent;
use flowtel_integration_tests::collector::free_port;
use flowtel_integration_tests::flows::run_flows;
use flowtel_integration_tests::prometheus::{promtool, Prometheus, Sample, Target};
use flowtel_integration_tests::{http, unix_now};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);
const TOKEN: &str = "scrape-me-4f9a";
/// What the dashboard's variables become: one job, every node, top 5, and
/// windows that cover the whole test...
const BUSY: [(&str, &str); 5] = [
    ("$__rate_interval", "5m"),
    ("$__range", "5m"),
    ("$topn", "5"),
    ("$job", "flowtel"),
    ("$node", ".*"),
];
/// ... or only the last seconds, once nothing moves any more (idle: every
/// ratio must be 0, never NaN).
const IDLE: [(&str, &str); 5] = [
    ("$__rate_interval", "4s"),
    ("$__range", "4s"),
    ("$topn", "5"),
    ("$job", "flowtel"),
    ("$node", ".*"),
];
const STUCK_TRACE: &str = "5e1c0000000000000000000000000b0b";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The FlowEvents of a log, as flowtel ingest reads them.
fn events_of(log: &Path) -> Vec<FlowEvent> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| FlowEvent::from_json(l).ok())
        .collect()
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// The bridge process, killed if the test fails before it stops it.
struct Bridge(Child);

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `flowtel ingest --follow` serving Prometheus metrics; returns the child,
/// the address it announced, and its further lines of standard error.
fn bridge(log: &Path, token_file: &Path) -> (Bridge, std::net::SocketAddr, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowtel"))
        .args(["ingest", "--follow", "--quiet"])
        .args([
            "--traces-exporter",
            "none",
            "--metrics-exporter",
            "prometheus",
        ])
        .args([
            "--prometheus-address",
            "127.0.0.1:0",
            "--prometheus-token-file",
        ])
        .arg(token_file)
        .arg(log)
        .env_remove("OTEL_TRACES_EXPORTER")
        .env_remove("OTEL_METRICS_EXPORTER")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let child = Bridge(child);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[flowtel] {line}");
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(DEADLINE)
            .expect("flowtel announces its endpoint");
        if let Some(url) = line.strip_prefix("flowtel: serving Prometheus metrics at http://") {
            break url.trim_end_matches("/metrics").parse().unwrap();
        }
    };
    (child, addr, rx)
}

/// Wait until Prometheus has scraped `n` FlowEvents in all.
fn scraped_events(p: &Prometheus, n: usize, phase: &str) {
    let r = p.wait_for(DEADLINE, "sum(flow_events_total{job=\"flowtel\"})", |s| {
        s.first().is_some_and(|s| s.value == n.to_string())
    });
    let got = r
        .as_ref()
        .ok()
        .and_then(|s| s.first())
        .map(|s| s.value.clone());
    assert_eq!(
        got.as_deref(),
        Some(n.to_string().as_str()),
        "{phase}: {r:?}\n{}",
        p.log()
    );
}

/// Every value is a number (no NaN, no infinity).
fn finite(samples: &[Sample]) -> Result<(), String> {
    match samples
        .iter()
        .find(|s| !s.value.parse::<f64>().is_ok_and(f64::is_finite))
    {
        Some(s) => Err(format!("{} in {:?}", s.value, s.labels)),
        None => Ok(()),
    }
}

fn dashboard_queries(variables: &[(&str, &str)]) -> Vec<(String, String)> {
    let d: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("dashboards/flowtel.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let mut expr = t["expr"].as_str().unwrap().to_string();
            for (var, value) in variables {
                expr = expr.replace(var, value);
            }
            assert!(!expr.contains('$'), "a variable left in {expr}");
            let name = format!("{} / {}", p["title"].as_str().unwrap(), t["legendFormat"]);
            out.push((name, expr));
        }
    }
    out
}

/// The rules Prometheus loaded: (name, query, is an alert).
fn loaded_rules(p: &Prometheus) -> Vec<(String, String, bool)> {
    let data = p.api("/api/v1/rules").unwrap();
    let mut out = Vec::new();
    for g in data["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            out.push((
                r["name"].as_str().unwrap().to_string(),
                r["query"].as_str().unwrap().to_string(),
                r["type"] == "alerting",
            ));
        }
    }
    out
}

#[test]
fn a_real_prometheus_scrapes_flowtel_and_every_panel_and_alert_evaluates() {
    let dir = std::env::temp_dir().join(format!(
        "flowtel-prom-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("app.log");
    let sample = root().join("examples/penguiflow/sample.log");
    std::fs::copy(&sample, &log).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    // The second phase's flows run while the first is scraped.
    let fresh = std::thread::spawn({
        let dir = dir.join("flows");
        move || run_flows("support", &dir)
    });

    let (mut child, addr, stderr) = bridge(&log, &token_file);
    assert!(addr.ip().is_loopback(), "{addr}");
    let p = Prometheus::start(
        &Target {
            address: addr,
            bearer_token: Some(TOKEN.into()),
        },
        &[root().join("alerts/flowtel.rules.yml")],
    );

    // Phase 1: the sample log, scraped.
    let mut events = events_of(&sample);
    scraped_events(&p, events.len(), "sample log");
    let targets = p.api("/api/v1/targets").unwrap();
    let t = &targets["activeTargets"][0];
    assert_eq!(t["health"], "up", "{t}");
    assert_eq!(t["lastError"], "", "{t}");

    // Phase 2: a fresh run of the real flows, appended.
    let flows = fresh.join().unwrap();
    let text = std::fs::read_to_string(&flows.log).unwrap();
    append(&log, &text);
    events.extend(events_of(&flows.log));
    assert!(flows.events.len() <= events.len());
    scraped_events(&p, events.len(), "fresh flows");

    // Phase 3: an attempt that never ends.
    let stuck = format!(
        "{{\"event\":\"node_start\",\"ts\":{},\"node_name\":\"llm_call\",\"node_id\":\"llm-1\",\
         \"trace_id\":\"{STUCK_TRACE}\",\"attempt\":0,\"latency_ms\":0.0}}\n",
        unix_now()
    );
    append(&log, &stuck);
    let age =
        "flow_node_oldest_open_attempt_age_seconds{job=\"flowtel\",flow_node_name=\"llm_call\"}";
    let first = p.wait_for(DEADLINE, age, |s| s.first().is_some_and(|s| s.value != "0"));
    let first: f64 = first
        .unwrap()
        .first()
        .expect("the stuck gauge")
        .value
        .parse()
        .unwrap();
    let later = p.wait_for(DEADLINE, age, |s| {
        s.first()
            .is_some_and(|s| s.value.parse::<f64>().unwrap() >= first + 2.0)
    });
    let later: f64 = later.unwrap()[0].value.parse().unwrap();
    assert!(
        later >= first + 2.0,
        "the open attempt's age grows: {first} then {later}"
    );

    // Every panel query: valid, with data, no NaN.
    let mut failures = Vec::new();
    for (name, expr) in dashboard_queries(&BUSY) {
        match p.query(&expr) {
            Ok(s) if s.is_empty() => failures.push(format!("{name}: no data\n  {expr}")),
            Ok(s) => {
                if let Err(e) = finite(&s) {
                    failures.push(format!("{name}: {e}\n  {expr}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}\n  {expr}")),
        }
    }

    // Every recording rule (data, no NaN) and alert expression (valid, no
    // NaN), as Prometheus loaded them; and Prometheus evaluates them all
    // without error.
    let rules = loaded_rules(&p);
    assert!(rules.iter().filter(|r| r.2).count() >= 8, "{rules:?}");
    for (name, query, alert) in &rules {
        match p.query(query) {
            Ok(s) if s.is_empty() && !alert => failures.push(format!("{name}: no data")),
            Ok(s) => {
                if let Err(e) = finite(&s) {
                    failures.push(format!("{name}: {e}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}\n  {query}")),
        }
    }
    let health = p.wait_for(DEADLINE, "vector(1)", |_| {
        let data = p.api("/api/v1/rules").unwrap();
        data["groups"].as_array().unwrap().iter().all(|g| {
            g["rules"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["health"] == "ok")
        })
    });
    assert!(health.is_ok());
    let data = p.api("/api/v1/rules").unwrap();
    for g in data["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            if r["health"] != "ok" {
                failures.push(format!(
                    "rule {}: {} {}",
                    r["name"], r["health"], r["lastError"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Idle: once no counter has moved for a few seconds, every panel over
    // those seconds is still valid and has no NaN (ratios are 0; latency
    // quantiles of nodes without attempts are left out, not NaN).
    let idle = p.wait_for(
        DEADLINE,
        "sum(rate(flow_events_total{job=\"flowtel\"}[4s]))",
        |s| s.first().is_some_and(|s| s.value == "0"),
    );
    assert_eq!(idle.unwrap()[0].value, "0", "still moving");
    let mut zeros = 0;
    for (name, expr) in dashboard_queries(&IDLE) {
        match p.query(&expr) {
            Ok(s) => {
                if let Err(e) = finite(&s) {
                    failures.push(format!("idle {name}: {e}\n  {expr}"));
                }
                zeros += usize::from(name.contains("ratio") && s.iter().any(|s| s.value == "0"));
            }
            Err(e) => failures.push(format!("idle {name}: {e}\n  {expr}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(zeros >= 2, "idle ratios are 0");

    // No series carries a trace, run, span or node id, as a label or a value.
    let series = p
        .api(&format!(
            "/api/v1/series?match[]={}",
            http::encode("{job=\"flowtel\"}")
        ))
        .unwrap();
    let series = series.as_array().unwrap();
    assert!(series.len() > 50, "{} series", series.len());
    let mut ids: BTreeSet<String> = events.iter().filter_map(|e| e.trace_id.clone()).collect();
    // Node ids (per-instance UUIDs); PenguiFlow's own endpoints (OpenSea,
    // Rookery) use their name as their id, and names are bounded labels.
    ids.extend(
        events
            .iter()
            .filter(|e| e.node_id != e.node_name)
            .filter_map(|e| e.node_id.clone()),
    );
    ids.insert(STUCK_TRACE.into());
    ids.insert("llm-1".into());
    let mut names = BTreeSet::new();
    for s in series {
        for (k, v) in s.as_object().unwrap() {
            names.insert(k.clone());
            let v = v.as_str().unwrap();
            assert!(
                !ids.iter().any(|id| v.contains(id.as_str())),
                "an id in {k}={v}: {s}"
            );
        }
    }
    for forbidden in [
        "trace_id",
        "span_id",
        "flow_run_id",
        "flow_node_id",
        "node_id",
        "run_id",
    ] {
        assert!(!names.contains(forbidden), "label {forbidden} in {names:?}");
    }

    // The latency buckets' exemplars, as Prometheus stored them, name runs
    // of the logs.
    let runs: BTreeSet<String> = events.iter().filter_map(|e| e.trace_id.clone()).collect();
    let ex = p
        .exemplars("flow_node_duration_seconds_bucket{job=\"flowtel\"}")
        .unwrap();
    let mut named = 0;
    for s in ex.as_array().unwrap() {
        assert!(s["seriesLabels"]["le"].is_string(), "{s}");
        for e in s["exemplars"].as_array().unwrap() {
            let trace = e["labels"]["trace_id"].as_str().unwrap();
            assert!(runs.contains(trace), "exemplar of no run of the logs: {e}");
            assert_eq!(e["labels"]["span_id"].as_str().unwrap().len(), 16, "{e}");
            named += 1;
        }
    }
    assert!(named >= 5, "exemplars: {ex}");

    // What Prometheus scraped passes promtool's linter too.
    let scrape = http::get(
        addr,
        "/metrics",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    )
    .unwrap();
    let exposition = dir.join("metrics.txt");
    std::fs::write(&exposition, &scrape.body).unwrap();
    let lint = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&exposition).unwrap())
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );

    // SIGTERM: the bridge flushes and reports everything delivered.
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.0.wait().unwrap();
    let summary: Vec<String> = stderr.iter().collect();
    assert_eq!(status.code(), Some(0), "{summary:#?}");
    assert!(
        summary.iter().any(|l| l == "  delivered: everything"),
        "{summary:#?}"
    );
    let metrics = summary
        .iter()
        .find(|l| l.starts_with("  metrics:"))
        .unwrap();
    assert!(
        metrics.contains(&format!("Prometheus http://{addr}/metrics ("))
            && metrics.ends_with(" scrapes)"),
        "{metrics}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
