//! `flowtel-check-run`: the Python package's tests hand it the FlowEvents a
//! second middleware captured from a real PenguiFlow run and the debug log
//! of the rotel-agent flowtel exported to; it checks one against the other
//! with the Rust integration tests' own asserters
//! (`flowtel_integration_tests::penguiflow`), so the Python path is held to
//! exactly the promises the SDK and the `flowtel` command are.
//!
//! ```text
//! flowtel-check-run --events EVENTS.jsonl --log ROTEL.log --flow-name NAME
//!                   [--spans-only] [--timeout SECONDS]
//! ```
//!
//! It polls the log until the check passes or the timeout (default 20 s)
//! passes, then prints `ok: ...` (exit 0) or the first problem (exit 1).
//! `--spans-only` skips the metric checks, for runs split over several
//! processes whose cumulative metrics share one series. Exit 2: bad usage
//! or unreadable input.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use flowtel::FlowEvent;
use flowtel_integration_tests::debuglog;
use flowtel_integration_tests::penguiflow::{
    check_metrics, check_spans, expected_attempts, traces,
};

struct Args {
    events: String,
    log: String,
    flow_name: String,
    spans_only: bool,
    timeout: Duration,
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "flowtel-check-run: {problem}\nusage: flowtel-check-run --events EVENTS.jsonl \
         --log ROTEL.log --flow-name NAME [--spans-only] [--timeout SECONDS]"
    );
    ExitCode::from(2)
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut events, mut log, mut flow_name) = (None, None, None);
    let mut spans_only = false;
    let mut timeout = Duration::from_secs(20);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--events" => events = Some(value()?),
            "--log" => log = Some(value()?),
            "--flow-name" => flow_name = Some(value()?),
            "--spans-only" => spans_only = true,
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
    Ok(Args {
        events: events.ok_or("--events is required")?,
        log: log.ok_or("--log is required")?,
        flow_name: flow_name.ok_or("--flow-name is required")?,
        spans_only,
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
    let evs = match read_events(&args.events) {
        Ok(evs) if !evs.is_empty() => evs,
        Ok(_) => return usage(&format!("{}: no events", args.events)),
        Err(e) => return usage(&e),
    };
    let check = |r: &debuglog::Received| {
        check_spans(r, &evs, &args.flow_name)?;
        if args.spans_only {
            Ok(())
        } else {
            check_metrics(r, &evs)
        }
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
                    "ok: {} events, {} runs, {} attempt spans, {} metric points",
                    evs.len(),
                    traces(&evs).len(),
                    expected_attempts(&evs).len(),
                    r.points.len()
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
