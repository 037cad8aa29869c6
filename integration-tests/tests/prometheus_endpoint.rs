//! The SDK's Prometheus endpoint, scraped over real HTTP: names, formats,
//! exemplars, the bearer token, the stuck-node gauge, and no per-run or
//! per-instance label. The events are a real PenguiFlow log.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use flowtel::{Exporter, FlowEvent, Flowtel};
use flowtel_integration_tests::http::{self, Reply};
use flowtel_integration_tests::unix_now;

const TOKEN: &str = "s3cr3t-t0ken";
const DEADLINE: Duration = Duration::from_secs(20);

/// The FlowEvents of `examples/penguiflow/sample.log`.
fn sample_events() -> Vec<FlowEvent> {
    let log = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/penguiflow/sample.log"
    );
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| FlowEvent::from_json(l).ok())
        .collect()
}

fn trace_ids(events: &[FlowEvent]) -> BTreeSet<String> {
    events.iter().filter_map(|e| e.trace_id.clone()).collect()
}

fn serving(token: Option<&str>) -> Flowtel {
    let mut b = Flowtel::builder()
        .with_traces_exporter(Exporter::None)
        .with_metrics_exporters([Exporter::Prometheus])
        .with_prometheus_address("localhost:0");
    if let Some(t) = token {
        b = b.with_prometheus_bearer_token(t);
    }
    b.build().unwrap()
}

fn scrape(addr: SocketAddr, headers: &[(&str, &str)]) -> Reply {
    http::get(addr, "/metrics", headers).unwrap()
}

/// Every label name of every sample line (exemplars left out).
fn label_names(exposition: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let series = line.split(" # ").next().unwrap_or(line);
        let Some((_, rest)) = series.split_once('{') else {
            continue;
        };
        let labels = rest.rsplit_once('}').map_or(rest, |(l, _)| l);
        // Values may hold `,` and `=`: walk `name="value"` pairs.
        let mut s = labels;
        while let Some((name, after)) = s.split_once("=\"") {
            out.insert(name.trim_start_matches(',').to_string());
            let mut end = 0;
            let bytes = after.as_bytes();
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            s = &after[(end + 1).min(after.len())..];
        }
    }
    out
}

#[test]
fn the_endpoint_serves_prometheus_names_and_exemplars_to_the_token_holder() {
    let flowtel = serving(Some(TOKEN));
    let addr = flowtel.prometheus_address().expect("bound");
    assert!(addr.ip().is_loopback(), "localhost binds loopback: {addr}");
    let events = sample_events();
    let runs = trace_ids(&events);
    for ev in events {
        flowtel.record(ev).unwrap();
    }
    flowtel.flush(Duration::from_secs(10)).unwrap();

    // Refused without the token, with a wrong one, and with another scheme.
    let auth = format!("Bearer {TOKEN}");
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "Basic czNjcjN0LXQwa2Vu")],
        vec![("Authorization", "Bearer s3cr3t-t0ke")],
    ] {
        let r = scrape(addr, &headers);
        assert_eq!(r.status, 401, "{headers:?}: {r:?}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"flowtel\"")
        );
        assert!(!r.body.contains("flow_"), "nothing leaks: {}", r.body);
    }
    let other = http::get(addr, "/", &[("Authorization", &auth)]).unwrap();
    assert_eq!(other.status, 404);
    let post = http::request(addr, "POST", "/metrics", &[("Authorization", &auth)]).unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    // Once the mapping has handled every event, the text format.
    let t = Instant::now();
    let text = loop {
        let r = scrape(addr, &[("Authorization", &auth)]);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        if r.body.contains("flow_node_failures_total") || t.elapsed() > DEADLINE {
            break r.body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for want in [
        "# TYPE flow_events_total counter",
        "flow_events_total{flow_event_type=\"node_success\",flow_node_name=\"fetch\"}",
        "# TYPE flow_node_duration_seconds histogram",
        "flow_node_duration_seconds_bucket{",
        "le=\"+Inf\"",
        "flow_node_duration_seconds_count{",
        "flow_node_failures_total{",
        "# TYPE flow_node_queue_backlog gauge",
        "# TYPE flow_node_active gauge",
        "# TYPE flow_node_oldest_open_attempt_age_seconds gauge",
        "flowtel_sdk_events_dropped_total{flowtel_reason=\"queue_full\"} 0",
        "target_info{",
    ] {
        assert!(text.contains(want), "missing {want:?}:\n{text}");
    }
    let labels = label_names(&text);
    for forbidden in [
        "trace_id",
        "span_id",
        "flow_run_id",
        "flow_node_id",
        "node_id",
    ] {
        assert!(!labels.contains(forbidden), "{forbidden} label: {labels:?}");
    }
    for run in &runs {
        assert!(!text.contains(run.as_str()), "a run id in the text format");
    }

    // OpenMetrics, as Prometheus asks for it: exemplars with a real run's
    // trace id, on duration buckets only.
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let om = scrape(addr, &[("Authorization", &auth), ("Accept", accept)]);
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    let exemplar_lines: Vec<&str> = om.body.lines().filter(|l| l.contains(" # {")).collect();
    assert!(!exemplar_lines.is_empty(), "no exemplar:\n{}", om.body);
    for l in &exemplar_lines {
        assert!(l.starts_with("flow_node_duration_seconds_bucket{"), "{l}");
        let trace = l.split("trace_id=\"").nth(1).unwrap().get(..32).unwrap();
        assert!(runs.contains(trace), "exemplar of an unknown run: {l}");
    }
    assert_eq!(
        label_names(&om.body),
        labels,
        "the same series in both formats"
    );

    let s = flowtel.stats();
    assert_eq!(s.prometheus_unauthorized, 4);
    assert!(s.prometheus_scrapes >= 2, "{s:?}");
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
    let t = Instant::now();
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(
            t.elapsed() < DEADLINE,
            "the endpoint closes with the pipeline"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of the stuck-node gauge for `node`, from one scrape.
fn open_age(addr: SocketAddr, node: &str) -> Option<f64> {
    let body = scrape(addr, &[]).body;
    let prefix = format!("flow_node_oldest_open_attempt_age_seconds{{flow_node_name=\"{node}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

/// Poll the gauge until `done` holds; the last value either way.
fn wait_age(addr: SocketAddr, node: &str, done: impl Fn(f64) -> bool) -> Option<f64> {
    let t = Instant::now();
    loop {
        let v = open_age(addr, node);
        if v.is_some_and(&done) || t.elapsed() > DEADLINE {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_hung_attempt_shows_as_a_growing_age_until_it_ends() {
    let flowtel = serving(None);
    let addr = flowtel.prometheus_address().unwrap();
    let trace = "5e512c5b0a184257a25c215d19544e6f";
    let now = unix_now();
    let start = FlowEvent::builder("node_start", now)
        .node("llm", "llm-1")
        .trace_id(trace)
        .build()
        .unwrap();
    flowtel.record(start).unwrap();

    let first = wait_age(addr, "llm", |a| a > 0.0).expect("the gauge");
    assert!(first > 0.0, "open attempt, age {first}");
    let later = wait_age(addr, "llm", |a| a >= first + 0.5).unwrap();
    assert!(later >= first + 0.5, "the age grows: {first} then {later}");
    // The age is the oldest attempt's: a second, younger one changes nothing.
    let second = FlowEvent::builder("node_start", now + 1.0)
        .node("llm", "llm-1")
        .trace_id("6e512c5b0a184257a25c215d19544e6f")
        .build()
        .unwrap();
    flowtel.record(second).unwrap();
    let with_two = wait_age(addr, "llm", |a| a >= later).unwrap();
    assert!(with_two >= later, "{later} then {with_two}");

    for (t, at) in [
        (trace, now + 2.0),
        ("6e512c5b0a184257a25c215d19544e6f", now + 2.0),
    ] {
        let end = FlowEvent::builder("node_success", at)
            .node("llm", "llm-1")
            .trace_id(t)
            .latency_ms(1000.0)
            .build()
            .unwrap();
        flowtel.record(end).unwrap();
    }
    let done = wait_age(addr, "llm", |a| a == 0.0);
    assert_eq!(done, Some(0.0), "no attempt open any more");
    flowtel.shutdown(Duration::from_secs(10)).unwrap();
}

#[test]
fn a_taken_port_is_a_build_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = Flowtel::builder()
        .with_traces_exporter(Exporter::None)
        .with_metrics_exporters([Exporter::Prometheus])
        .with_prometheus_address(format!("127.0.0.1:{port}"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot serve Prometheus metrics"), "{err}");
    let err = Flowtel::builder()
        .with_metrics_exporters([Exporter::Prometheus])
        .with_prometheus_address("no-port")
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not HOST:PORT"), "{err}");
}
