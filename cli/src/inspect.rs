//! `flowtel inspect TRACE_ID FILE...`: the incident-debugging sequence of the
//! PenguiFlow telemetry guide, walked for one run: the last successful node,
//! the failing (or slowest) node with its error, queue depths around it,
//! retries, cancellation and deadline events, then the run's waterfall.
//! This file finds the run's events and has the SDK map them to spans (as
//! an export would); `incident.rs` decides from those spans what failed,
//! and `report.rs` words the sequence.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowtel::{BuildError, FlowEvent, Flowtel, SpanData};

use crate::args::Inspect;
use crate::ingest::{classify, Parsed};
use crate::lines::{self, Line};
use crate::report::report;
use crate::view::{NodeTable, Runs, Style};

/// Unix seconds to `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub(crate) fn iso(ts: f64) -> String {
    let ms_total = (ts * 1000.0).round() as i64;
    let (secs, ms) = (ms_total.div_euclid(1000), ms_total.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn run(a: Inspect, stop: &AtomicBool, color: bool) -> i32 {
    let sources = match lines::open_all(&a.files) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("flowtel: {e}");
            return 2;
        }
    };
    let mut evs: Vec<FlowEvent> = Vec::new();
    let errors = lines::for_each_line(sources, false, a.common.max_line_bytes, stop, |_, l| {
        if let Line::Text(t) = l {
            // Cheap filter first: only lines that mention the run are parsed.
            if t.contains(a.trace_id.as_str()) {
                if let Parsed::Event(ev) = classify(t) {
                    if ev.trace_id.as_deref() == Some(a.trace_id.as_str()) {
                        evs.push(ev);
                    }
                }
            }
        }
    });
    for e in &errors {
        eprintln!("flowtel: {e}");
    }
    if evs.is_empty() {
        eprintln!(
            "flowtel: no events of run {} in {}",
            a.trace_id,
            a.files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return 1;
    }
    evs.sort_by(|x, y| x.ts.total_cmp(&y.ts));
    let style = Style { color };
    let runs = Runs::default();
    let spans = match map_run(&evs, &runs) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("flowtel: {e}");
            return 2;
        }
    };
    let mut text = report(&a.trace_id, &evs, &spans, style);
    // The waterfall, from the same spans.
    text.push_str(&runs.render(1, style).0);
    let mut table = NodeTable::default();
    for e in &evs {
        table.add(e);
    }
    text.push_str(&table.render(style));
    print!("{text}");
    i32::from(!errors.is_empty())
}

/// The spans the SDK makes of one run's events (sorted by time), exactly
/// as it would export them, in the order it hands them over; `runs` gets
/// them too, for the waterfall.
pub(crate) fn map_run(evs: &[FlowEvent], runs: &Runs) -> Result<Vec<SpanData>, BuildError> {
    let spans: Arc<Mutex<Vec<SpanData>>> = Arc::default();
    let sink = {
        let (spans, runs) = (Arc::clone(&spans), runs.sink());
        move |batch: Vec<SpanData>| {
            spans
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(batch.iter().cloned());
            runs(batch);
        }
    };
    let f = Flowtel::builder().with_span_callback(sink).build()?;
    let refused = evs
        .iter()
        .filter(|e| {
            f.record_wait((*e).clone(), Duration::from_secs(10))
                .is_err()
        })
        .count();
    if refused > 0 {
        eprintln!(
            "flowtel: warning: {refused} of the run's events could not be mapped; \
             the report and the waterfall leave them out"
        );
    }
    if let Err(e) = f.shutdown(Duration::from_secs(10)) {
        eprintln!("flowtel: warning: mapping the run did not finish: {e}");
    }
    let mut spans = spans.lock().unwrap_or_else(|p| p.into_inner());
    Ok(std::mem::take(&mut *spans))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_795_305_121.4152963), "2026-11-21T23:52:01.415Z");
        assert_eq!(iso(951_782_400.0), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso(32_503_680_000.0), "3000-01-01T00:00:00.000Z");
    }
}
