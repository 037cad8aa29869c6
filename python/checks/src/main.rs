//! `flowtel-check-run`: the Python package's tests hand it the FlowEvents a
//! second middleware captured from a real PenguiFlow run and the debug log
//! of the rotel-agent flowtel exported to; it checks one against the other
//! with the Rust integration tests' own asserters
//! (`flowtel_integration_tests::penguiflow`), so the Python path is held to
//! exactly the promises the SDK and the `flowtel` command are.
//!
//! ```text
//! flowtel-check-run --log ROTEL.log [--events EVENTS.jsonl --flow-name NAME [--spans-only]]
//!                   [--counter METRIC KEY=VALUE EXPECTED]... [--timeout SECONDS]
//! ```
//!
//! It polls the log until every check passes or the timeout (default 20 s)
//! passes, then prints `ok: ...` (exit 0) or the first problem (exit 1).
//! `--spans-only` skips the metric checks, for runs split over several
//! processes whose cumulative metrics share one series. `--counter` checks
//! the latest total of a counter over the series carrying `KEY=VALUE`
//! (flowtel's self-metrics, say). Exit 2: bad usage or unreadable input.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use flowtel::FlowEvent;
use flowtel_integration_tests::assertions::counter_total;
use flowtel_integration_tests::debuglog;
use flowtel_integration_tests::penguiflow::{
    check_metrics, check_spans, expected_attempts, traces,
};

/// `--counter METRIC KEY=VALUE EXPECTED`.
struct Counter {
    metric: String,
    key: String,
    value: String,
    expected: f64,
}

struct Args {
    /// The captured events and the flow name.
    run: Option<(String, String)>,
    log: String,
    spans_only: bool,
    counters: Vec<Counter>,
    timeout: Duration,
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "flowtel-check-run: {problem}\nusage: flowtel-check-run --log ROTEL.log \
         [--events EVENTS.jsonl --flow-name NAME [--spans-only]] \
         [--counter METRIC KEY=VALUE EXPECTED]... [--timeout SECONDS]"
    );
    ExitCode::from(2)
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut events, mut log, mut flow_name) = (None, None, None);
    let mut spans_only = false;
    let mut counters = Vec::new();
    let mut timeout = Duration::from_secs(20);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--events" => events = Some(value()?),
            "--log" => log = Some(value()?),
            "--flow-name" => flow_name = Some(value()?),
            "--spans-only" => spans_only = true,
            "--counter" => {
                let metric = value()?;
                let attr = value()?;
                let expected = value()?;
                let (key, value) = attr
                    .split_once('=')
                    .ok_or(format!("--counter {metric} {attr}: not KEY=VALUE"))?;
                let expected = expected
                    .parse()
                    .map_err(|_| format!("--counter {metric}: {expected} is not a number"))?;
                counters.push(Counter {
                    key: key.to_string(),
                    value: value.to_string(),
                    metric,
                    expected,
                });
            }
            "--timeout" => {
                let v = value()?;
                timeout = v
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or(format!("--timeout {v}: not a number of seconds"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let run = match (events, flow_name) {
        (Some(e), Some(f)) => Some((e, f)),
        (None, None) if !counters.is_empty() => None,
        (None, None) => return Err("nothing to check: --events or --counter".into()),
        _ => return Err("--events and --flow-name go together".into()),
    };
    Ok(Args {
        run,
        log: log.ok_or("--log is required")?,
        spans_only,
        counters,
        timeout,
    })
}

fn read_events(path: &str) -> Result<Vec<FlowEvent>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| FlowEvent::from_json(l).map_err(|e| format!("{path}:{}: {e}", i + 1)))
        .collect()
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    let (evs, flow_name) = match &args.run {
        Some((path, flow_name)) => match read_events(path) {
            Ok(evs) if !evs.is_empty() => (evs, flow_name.as_str()),
            Ok(_) => return usage(&format!("{path}: no events")),
            Err(e) => return usage(&e),
        },
        None => (Vec::new(), ""),
    };
    let check = |r: &debuglog::Received| -> Result<(), String> {
        if args.run.is_some() {
            check_spans(r, &evs, flow_name)?;
            if !args.spans_only {
                check_metrics(r, &evs)?;
            }
        }
        for c in &args.counters {
            let got = counter_total(r, &c.metric, &c.key, &c.value);
            if got != c.expected {
                return Err(format!(
                    "{} {{{}={}}}: {got}, expected {}",
                    c.metric, c.key, c.value, c.expected
                ));
            }
        }
        Ok(())
    };
    let started = Instant::now();
    loop {
        let log = match std::fs::read_to_string(&args.log) {
            Ok(log) => log,
            Err(e) => return usage(&format!("{}: {e}", args.log)),
        };
        let r = debuglog::parse(&log);
        match check(&r) {
            Ok(()) => {
                println!(
                    "ok: {} events, {} runs, {} attempt spans, {} metric points, {} counters",
                    evs.len(),
                    traces(&evs).len(),
                    expected_attempts(&evs).len(),
                    r.points.len(),
                    args.counters.len()
                );
                return ExitCode::SUCCESS;
            }
            Err(e) if started.elapsed() >= args.timeout => {
                println!("FAIL after {:?}: {e}", args.timeout);
                return ExitCode::FAILURE;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
