//! Runs gathered from the pipeline's spans, by trace, and the choice of
//! which of them to show when they do not all fit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use flowtel::SpanData;
use flowtel_semconv::{attr, outcome, span as sc};
use opentelemetry::trace::{SpanId, Status};

use super::style::Style;
use super::waterfall::render_run;

/// Runs kept for display; later ones are only counted.
const MAX_RUNS_KEPT: usize = 10_000;

fn ns(t: std::time::SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

pub(super) fn attr_str(attrs: &[opentelemetry::KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// One node attempt (a child span).
pub(super) struct Bar {
    pub(super) node: String,
    pub(super) attempt: String,
    pub(super) start: i128,
    pub(super) end: i128,
    pub(super) outcome: String,
    pub(super) error: Option<String>,
}

/// One event on the root span: a retry, a terminal failure, a deadline
/// skip, a cancellation step.
pub(super) struct Mark {
    pub(super) name: String,
    pub(super) at: i128,
    pub(super) attrs: Vec<opentelemetry::KeyValue>,
}

/// The run's root span.
pub(super) struct Root {
    pub(super) name: String,
    pub(super) start: i128,
    pub(super) end: i128,
    pub(super) failure: Option<String>,
    pub(super) cancelled: bool,
    pub(super) marks: Vec<Mark>,
}

/// One run: its root (once seen) and its attempts.
#[derive(Default)]
pub(super) struct RunView {
    pub(super) root: Option<Root>,
    pub(super) bars: Vec<Bar>,
}

impl Root {
    fn from_span(s: &SpanData) -> Self {
        Root {
            name: s.name.to_string(),
            start: ns(s.start_time),
            end: ns(s.end_time),
            failure: match &s.status {
                Status::Error { description } => Some(description.to_string()),
                _ => None,
            },
            cancelled: attr_str(&s.attributes, attr::RUN_CANCELLED).as_deref() == Some("true"),
            marks: s
                .events
                .events
                .iter()
                .map(|e| Mark {
                    name: e.name.to_string(),
                    at: ns(e.timestamp),
                    attrs: e.attributes.clone(),
                })
                .collect(),
        }
    }
}

impl Bar {
    fn from_span(s: &SpanData) -> Self {
        let error = s
            .events
            .events
            .iter()
            .find(|e| e.name == sc::EXCEPTION_EVENT)
            .map(|e| {
                let ty = attr_str(&e.attributes, attr::EXCEPTION_TYPE).unwrap_or_default();
                let msg = attr_str(&e.attributes, attr::EXCEPTION_MESSAGE).unwrap_or_default();
                if msg.is_empty() {
                    ty
                } else {
                    format!("{ty}: {msg}")
                }
            });
        Bar {
            node: s.name.to_string(),
            attempt: attr_str(&s.attributes, attr::NODE_ATTEMPT).unwrap_or_default(),
            start: ns(s.start_time),
            end: ns(s.end_time),
            outcome: attr_str(&s.attributes, attr::NODE_OUTCOME).unwrap_or_default(),
            error,
        }
    }
}

impl RunView {
    fn interesting(&self) -> bool {
        self.bars.iter().any(|b| b.outcome != outcome::SUCCESS)
            || self
                .root
                .as_ref()
                .is_some_and(|r| r.failure.is_some() || r.cancelled || !r.marks.is_empty())
    }
    pub(super) fn start(&self) -> i128 {
        let bars = self.bars.iter().map(|b| b.start).min();
        self.root.as_ref().map(|r| r.start).or(bars).unwrap_or(0)
    }
}

/// Spans gathered from the pipeline, by trace.
#[derive(Clone, Default)]
pub(crate) struct Runs(Arc<Mutex<RunsInner>>);

#[derive(Default)]
struct RunsInner {
    runs: BTreeMap<String, RunView>,
    not_kept: u64,
}

impl Runs {
    /// The span callback to give the SDK.
    pub(crate) fn sink(&self) -> impl Fn(Vec<SpanData>) + Send + Sync + 'static {
        let me = self.clone();
        move |spans| me.add(spans)
    }

    fn add(&self, spans: Vec<SpanData>) {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for s in spans {
            let trace = s.span_context.trace_id().to_string();
            if !inner.runs.contains_key(&trace) && inner.runs.len() >= MAX_RUNS_KEPT {
                inner.not_kept += 1;
                continue;
            }
            let run = inner.runs.entry(trace).or_default();
            if s.parent_span_id == SpanId::INVALID {
                run.root = Some(Root::from_span(&s));
            } else {
                run.bars.push(Bar::from_span(&s));
            }
        }
    }

    /// Render up to `limit` runs: all of them if they fit, otherwise the
    /// ones with errors, timeouts, retries, cancellations or deadline skips
    /// first. Returns the text and how many runs were left out.
    pub(crate) fn render(&self, limit: usize, style: Style) -> (String, usize) {
        let inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<(&String, &RunView)> = inner.runs.iter().collect();
        all.sort_by_key(|(id, r)| (r.start(), (*id).clone()));
        let total = all.len() + inner.not_kept as usize;
        let chosen = if all.len() <= limit {
            all
        } else {
            choose(&all, limit)
        };
        let mut out = String::new();
        for (id, run) in &chosen {
            render_run(&mut out, id, run, style);
        }
        (out, total - chosen.len())
    }

    /// Number of runs seen.
    pub(crate) fn len(&self) -> usize {
        let inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        inner.runs.len() + inner.not_kept as usize
    }
}

/// `limit` of the runs (sorted by start), interesting ones first, in start
/// order.
fn choose<'a>(all: &[(&'a String, &'a RunView)], limit: usize) -> Vec<(&'a String, &'a RunView)> {
    let mut pick: Vec<(&String, &RunView)> = all
        .iter()
        .filter(|(_, r)| r.interesting())
        .copied()
        .collect();
    pick.truncate(limit);
    for r in all {
        if pick.len() >= limit {
            break;
        }
        if !r.1.interesting() {
            pick.push(*r);
        }
    }
    pick.sort_by_key(|(id, r)| (r.start(), (*id).clone()));
    pick
}
