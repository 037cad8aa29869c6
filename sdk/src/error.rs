//! Error types: building the pipeline, recording an event, flushing and
//! shutting down.

use std::fmt;
use std::time::Duration;

use crate::event::EventError;

/// The pipeline could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting (from code or from the environment) is invalid.
    InvalidConfig {
        /// The setting or environment variable.
        setting: String,
        /// What is wrong with it.
        problem: String,
    },
    /// An exporter could not be built (OTLP), or the Prometheus endpoint
    /// could not listen.
    Exporter(String),
    /// A thread or the export runtime could not be started.
    Runtime(std::io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::InvalidConfig { setting, problem } => {
                write!(f, "invalid setting {setting}: {problem}")
            }
            BuildError::Exporter(e) => write!(f, "cannot build the exporter: {e}"),
            BuildError::Runtime(e) => write!(f, "cannot start the export runtime: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// An event was not recorded. Every case is also counted in
/// `flowtel.sdk.events.dropped` and in [`Stats`](crate::Stats).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RecordError {
    /// The event failed validation.
    Invalid(EventError),
    /// The queue to the mapping thread is full (the caller is faster than
    /// flowtel can map; see `with_queue_capacity`).
    QueueFull,
    /// The pipeline was shut down.
    ShutDown,
    /// The process forked and the pipeline could not be restarted in the
    /// child (the reason).
    Forked(String),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Invalid(e) => write!(f, "invalid event: {e}"),
            RecordError::QueueFull => f.write_str("event queue full; event dropped"),
            RecordError::ShutDown => f.write_str("flowtel is shut down"),
            RecordError::Forked(e) => write!(f, "cannot restart flowtel after fork: {e}"),
        }
    }
}

impl std::error::Error for RecordError {}

impl From<EventError> for RecordError {
    fn from(e: EventError) -> Self {
        RecordError::Invalid(e)
    }
}

/// A flush or shutdown did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushError {
    /// Not done within the timeout; work continues in the background
    /// (until shutdown) and nothing buffered is discarded by the timeout.
    Timeout(Duration),
    /// The pipeline was already shut down.
    ShutDown,
    /// The exporter reported a failure. A transient one (collector down,
    /// throttling) leaves the spans buffered for the next attempt; data the
    /// collector rejected for good (HTTP 400, gRPC `INVALID_ARGUMENT`, ...)
    /// is dropped and counted in [`Stats`](crate::Stats).
    Export(String),
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushError::Timeout(t) => write!(f, "not completed within {t:?}"),
            FlushError::ShutDown => f.write_str("flowtel is already shut down"),
            FlushError::Export(e) => write!(f, "export failed: {e}"),
        }
    }
}

impl std::error::Error for FlushError {}
