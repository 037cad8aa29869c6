//! # flowtel
//!
//! OpenTelemetry for flow runtimes. A runtime hands flowtel its FlowEvents
//! (node started, succeeded, errored, timed out, retried, failed; trace
//! cancelled; deadline skipped; queue depths); flowtel turns them into
//!
//! - **spans**: one trace per run, keyed by the event's `trace_id`, with one
//!   root span per run and one span per node attempt, and
//! - **metrics**: bounded counters, histograms and gauges that never carry a
//!   trace id,
//!
//! and exports both over OTLP (gRPC or HTTP/protobuf), to the console, or
//! into memory for tests; metrics can also be served for Prometheus to
//! scrape ([`Exporter::Prometheus`]), with exemplars that lead from a latency
//! bucket to the trace of a recent attempt.
//!
//! ```
//! use std::time::Duration;
//! use flowtel::{Flowtel, FlowEvent, InMemory};
//!
//! let sink = InMemory::new();
//! let flowtel = Flowtel::builder().with_flow_name("triage").with_in_memory(&sink).build()?;
//! // A PenguiFlow structured-log line, or FlowEvent::builder(...) from Rust.
//! let line = r#"{"level":"ERROR","logger":"penguiflow.core","message":"node_error",
//!   "extra":{"ts":1700000000.5,"event":"node_error","node_name":"fetch","node_id":"f1",
//!   "trace_id":"3e512c5b0a184257a25c215d19544e6a","latency_ms":250.0,"attempt":0,
//!   "exception":"ValueError('upstream 503')"}}"#;
//! flowtel.record(FlowEvent::from_json(line)?)?;
//! flowtel.shutdown(Duration::from_secs(5))?;
//!
//! let spans = sink.spans();
//! let attempt = spans.iter().find(|s| s.name == "fetch").unwrap();
//! assert_eq!(attempt.span_context.trace_id().to_string(), "3e512c5b0a184257a25c215d19544e6a");
//! assert!(spans.iter().any(|s| s.name == "triage")); // the run's root
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## How it behaves
//!
//! - `record()` validates and queues; it never blocks and never panics. The
//!   mapping happens on flowtel's own thread and export on flowtel's own small
//!   tokio runtime, so it works the same from sync code and from any tokio
//!   runtime flavour.
//! - Everything is bounded (event queue, span buffer, one budget over all
//!   open runs, nodes and attempts, metric attribute values and series) and
//!   every drop is counted: [`Flowtel::stats`] and the
//!   `flowtel.sdk.*` self-metrics, plus one warning on standard error per kind
//!   and, when anything was lost, a one-line summary at shutdown.
//! - [`Flowtel::flush`] and [`Flowtel::shutdown`] take a timeout and return an
//!   error instead of hanging; [`Flowtel::flush_async`] and
//!   [`Flowtel::shutdown_async`] never block an executor thread. Dropping the
//!   last handle flushes within [`DROP_FLUSH_TIMEOUT`]. In a child process
//!   after `fork()`, the first call starts a pipeline of the child's own.
//! - A run's root span is exported when the run ends: at its last event,
//!   when the event says nothing of the run is left (PenguiFlow's
//!   `trace_pending` / `trace_inflight` on a terminal failure, a deadline
//!   skip, the end of a cancellation, or the success of a node named with
//!   [`FlowtelBuilder::with_run_end_node`]); idle for
//!   `run_idle_timeout` (30 s) with no attempt open; [`Flowtel::end_run`];
//!   shutdown; or shed by the state budget. Span ids are derived from the
//!   events, so processes that each see part of a run agree on them; one of
//!   them owns the root, the others use
//!   [`FlowtelBuilder::with_partial_runs`].
//!
//! ## Rust runtimes: attempt guards
//!
//! A runtime written in Rust times node attempts with guards rather than
//! building FlowEvents: [`Flowtel::run`] / [`Flowtel::new_run`] give a
//! [`Run`], [`Run::start_attempt`] an [`Attempt`] that records `node_start`
//! and ends with [`success`](Attempt::success), [`error`](Attempt::error),
//! [`timeout`](Attempt::timeout) or [`cancelled`](Attempt::cancelled) (a
//! guard dropped without one ends with outcome `dropped`); a [`Failure`]
//! is then retried ([`Failure::retry_after`]) or given up
//! ([`Failure::give_up`]). The attempt's span id is chosen when it starts
//! (carried by its events as [`FlowEvent::span_id`]), so that, with the
//! `tracing` feature, `tracing` spans opened within it
//! ([`Attempt::within`], [`Attempt::enter`]) are its children, exported
//! through this pipeline (`Flowtel::tracing_layer`, `Flowtel::tracer`).
//!
//! ## W3C trace context
//!
//! - **In**: [`Run::with_traceparent`] (e.g. the HTTP request that started
//!   the run), or a `traceparent` key in a FlowEvent's `extra` (bridged
//!   runtimes). The first valid one becomes a **link** on the run's root
//!   span. Not the parent: the run keeps its own trace id, the one in its
//!   log lines and the one every other process or bridge that sees the run
//!   derives from its `trace_id` with no coordination; a run may also
//!   outlive the request, and one request may start many runs. A link
//!   joins the two in any backend without merging the traces or making the
//!   root a child.
//! - **Out**: [`Attempt::traceparent`] (a header value) and
//!   [`Attempt::context`] (an `opentelemetry::Context` for any propagator or
//!   tracer): the next service's spans join the run's trace under the
//!   attempt.
//!
//! Every name flowtel emits is a constant of [`flowtel_semconv`], documented
//! in one table.
//!
//! ## Cargo features
//!
//! - `tracing`: `tracing` spans within attempts, exported through this
//!   pipeline (above).
//! - `bound-instruments`: each node's duration is recorded through a
//!   histogram bound to its series, so that no event hashes the attribute
//!   set to find it: about 530 fewer instructions per event on the mapping
//!   thread over `scripts/bench-ingest`'s lines (callgrind). It
//!   turns on opentelemetry's experimental bound instruments, which also
//!   make the OTel SDK's own span and log processors report `otel.sdk.*`
//!   metrics to the global meter provider, and an experimental API may
//!   change in a patch release: so it is off unless asked for
//!   (`flowtel = { version = "0.1", features = ["bound-instruments"] }`, with
//!   a lock file). The `flowtel` command and the Python package are built
//!   with it. What is exported is the same either way.
//!
//! ## Configuration
//!
#![doc = include_str!("../CONFIG.md")]

mod attempt;
mod builder;
mod config;
mod error;
mod event;
mod exemplars;
mod export;
mod failure;
mod guard_event;
mod ids;
mod mapping;
mod metrics;
mod parse;
mod pipeline;
mod privacy;
mod record;
mod run;
mod self_metrics;
#[cfg(feature = "bench-stages")]
#[doc(hidden)]
pub mod stages;
mod stats;
#[cfg(test)]
mod test_support;
#[cfg(feature = "tracing")]
mod tracing_layer;
mod w3c;

pub use attempt::Attempt;
pub use builder::FlowtelBuilder;
pub use config::Exporter;
pub use error::{BuildError, FlushError, RecordError};
pub use event::{EventError, FlowEvent, FlowEventBuilder};
pub use export::Protocol;
pub use export::{InMemory, MetricPoint, PointValue};
pub use failure::Failure;
pub use pipeline::{EventBatch, Flowtel, BATCH_EVENTS, DROP_FLUSH_TIMEOUT};
pub use run::Run;
pub use stats::Stats;

/// Re-exported so tests can inspect spans from [`InMemory::spans`].
pub use opentelemetry_sdk::trace::SpanData;

/// The README's Rust example, compiled as a doc test so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
