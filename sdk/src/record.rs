//! A finished span as the pipeline carries it from the mapping to the
//! exporters.
//!
//! Attempt spans, one per node attempt, are most of what the mapping makes.
//! They travel compact: the attempt's facts, with no attribute vector and
//! no event list (a `SpanData` holds a dozen `KeyValue`s on the heap). The
//! OTLP encoder writes them straight from these facts, and they become a
//! `SpanData` only for the local exporters (console, memory, callback).
//! Every other span (a run's root, a partial run span, a `tracing` span) is
//! carried whole.
//!
//! An attempt span's attributes are listed once, in
//! [`AttemptSpan::for_each_attribute`], which both the encoder and
//! [`AttemptSpan::to_span_data`] read; its status and exception event are
//! written by each of them from [`AttemptSpan::error`]. A unit test in
//! `export/span_proto` checks that both give the same bytes.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowtel_semconv::{attr, span as sc};
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

/// flowtel's instrumentation scope: the one of every span the mapping makes
/// and of flowtel's metrics.
pub(crate) fn scope() -> &'static InstrumentationScope {
    static SCOPE: OnceLock<InstrumentationScope> = OnceLock::new();
    SCOPE.get_or_init(|| {
        InstrumentationScope::builder(sc::SCOPE)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build()
    })
}

/// A finished span on its way to export.
pub(crate) enum SpanRecord {
    /// A node attempt's span, made by the mapping.
    Attempt(AttemptSpan),
    /// Any other span, whole.
    Whole(Box<SpanData>),
}

impl SpanRecord {
    /// The span as the OpenTelemetry SDK's exporters take it.
    pub(crate) fn into_span_data(self) -> SpanData {
        match self {
            SpanRecord::Attempt(a) => a.to_span_data(),
            SpanRecord::Whole(s) => *s,
        }
    }
}

impl From<SpanData> for SpanRecord {
    fn from(span: SpanData) -> Self {
        SpanRecord::Whole(Box::new(span))
    }
}

/// One node attempt's span: a child of its run's root, named after the
/// node, internal, sampled, with flowtel's scope.
#[derive(Debug)]
pub(crate) struct AttemptSpan {
    pub(crate) trace: TraceId,
    pub(crate) id: SpanId,
    /// The run's root span.
    pub(crate) parent: SpanId,
    /// Span name and `flow.node.name`.
    pub(crate) name: Arc<str>,
    pub(crate) node_id: Option<Arc<str>>,
    pub(crate) attempt: u32,
    /// `flow.node.outcome`.
    pub(crate) outcome: &'static str,
    pub(crate) depth_in: u64,
    pub(crate) depth_out: u64,
    pub(crate) run_id: Option<Arc<str>>,
    pub(crate) tenant: Option<Arc<str>>,
    /// Allow-listed `extra` values (`flow.extra.<key>`).
    pub(crate) extras: Vec<KeyValue>,
    /// Set for a failed attempt: its error status and exception event.
    pub(crate) error: Option<Box<AttemptError>>,
    /// Start and end, nanoseconds since the Unix epoch (the end is never
    /// before the start): kept as the mapping computes them, turned into a
    /// `SystemTime` only for a `SpanData` (the encoder writes them as they
    /// are; two conversions per attempt spent a 128-bit division each).
    pub(crate) start_ns: u128,
    pub(crate) end_ns: u128,
}

/// Nanoseconds since the Unix epoch as a `SystemTime`.
pub(crate) fn to_time(ns: u128) -> SystemTime {
    let d = Duration::new((ns / 1_000_000_000) as u64, (ns % 1_000_000_000) as u32);
    UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
}

/// How an attempt failed.
#[derive(Debug)]
pub(crate) struct AttemptError {
    /// `error.type` on the span.
    pub(crate) error_type: String,
    /// `exception.type` on the exception event.
    pub(crate) exception_type: String,
    /// `exception.message` on the exception event (already truncated).
    pub(crate) message: String,
}

impl AttemptError {
    /// The span status's description: the message, else the error type.
    pub(crate) fn description(&self) -> &str {
        if self.message.is_empty() {
            &self.error_type
        } else {
            &self.message
        }
    }
}

/// An attribute value of an attempt span, borrowed from it.
pub(crate) enum AttrValue<'a> {
    Shared(&'a Arc<str>),
    Static(&'static str),
    Owned(&'a str),
    I64(i64),
    /// An allow-listed `extra` value, whatever its kind.
    Any(&'a Value),
}

impl AttrValue<'_> {
    /// As an OpenTelemetry value (shared strings stay shared).
    fn to_value(&self) -> Value {
        match self {
            AttrValue::Shared(s) => Value::from(Arc::clone(s)),
            AttrValue::Static(s) => Value::from(*s),
            AttrValue::Owned(s) => Value::from(s.to_string()),
            AttrValue::I64(i) => Value::I64(*i),
            AttrValue::Any(v) => (*v).clone(),
        }
    }
}

impl AttemptSpan {
    /// Every attribute of the span, in the order it carries them.
    pub(crate) fn for_each_attribute(&self, mut f: impl FnMut(&Key, AttrValue<'_>)) {
        let key = Key::from_static_str;
        f(&key(attr::NODE_NAME), AttrValue::Shared(&self.name));
        if let Some(id) = &self.node_id {
            f(&key(attr::NODE_ID), AttrValue::Shared(id));
        }
        f(
            &key(attr::NODE_ATTEMPT),
            AttrValue::I64(i64::from(self.attempt)),
        );
        f(&key(attr::NODE_OUTCOME), AttrValue::Static(self.outcome));
        f(
            &key(attr::QUEUE_DEPTH_IN),
            AttrValue::I64(self.depth_in as i64),
        );
        f(
            &key(attr::QUEUE_DEPTH_OUT),
            AttrValue::I64(self.depth_out as i64),
        );
        if let Some(id) = &self.run_id {
            f(&key(attr::RUN_ID), AttrValue::Shared(id));
        }
        if let Some(t) = &self.tenant {
            f(&key(attr::TENANT), AttrValue::Shared(t));
        }
        for kv in &self.extras {
            f(&kv.key, AttrValue::Any(&kv.value));
        }
        if let Some(e) = &self.error {
            f(&key(attr::ERROR_TYPE), AttrValue::Owned(&e.error_type));
        }
    }

    /// The same span as a `SpanData`.
    pub(crate) fn to_span_data(&self) -> SpanData {
        let mut attributes = Vec::with_capacity(10);
        self.for_each_attribute(|k, v| attributes.push(KeyValue::new(k.clone(), v.to_value())));
        let mut events = SpanEvents::default();
        let status = match &self.error {
            Some(e) => {
                events.events.push(Event::new(
                    sc::EXCEPTION_EVENT,
                    to_time(self.end_ns),
                    vec![
                        KeyValue::new(attr::EXCEPTION_TYPE, e.exception_type.clone()),
                        KeyValue::new(attr::EXCEPTION_MESSAGE, e.message.clone()),
                    ],
                    0,
                ));
                Status::error(e.description().to_string())
            }
            None => Status::Unset,
        };
        SpanData {
            span_context: SpanContext::new(
                self.trace,
                self.id,
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: self.parent,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: self.name.to_string().into(),
            start_time: to_time(self.start_ns),
            end_time: to_time(self.end_ns),
            attributes,
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status,
            instrumentation_scope: scope().clone(),
        }
    }
}
