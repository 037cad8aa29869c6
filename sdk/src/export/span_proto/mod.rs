//! A span batch written straight from flowtel's span records (attempt spans
//! in `attempt.rs`) and `SpanData` as OTLP protobuf bytes
//! (`ExportTraceServiceRequest`), with prost's wire-format primitives.
//!
//! # Why not opentelemetry-proto's conversion
//!
//! The conversion builds the whole request as owned message structs first
//! (every id, name, attribute key and string value copied into a new
//! `String` or `Vec`), encodes them and frees them: on
//! `cargo run --release -p flowtel --features bench-stages --example stages`
//! over 1 M bridged events that was 870–990 ns per event, the largest stage
//! after parsing and mapping. Writing the same fields straight from the
//! `SpanData` costs what is noted beside that command in the README. The
//! output is byte for byte what opentelemetry-proto + prost produce (same
//! fields, same order, same defaults left out): the unit tests below compare
//! both on spans with every field set, and
//! `integration-tests/tests/wire_format.rs` decodes what flowtel sends with
//! opentelemetry-proto's types.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceState};
use opentelemetry::InstrumentationScope;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope as ProtoScope;
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;
use prost::encoding::{key_len, WireType};
use prost::Message;

use crate::record::SpanRecord;

mod attempt;
mod values;
mod wire;

use values::{attributes_len, put_attributes};
use wire::{
    delimited_len, fixed64_len, put_bytes, put_delimited, put_fixed64, put_key, put_str,
    put_varint, str_len, varint_len,
};

/// The resource every span batch carries, encoded once.
pub(crate) struct SpanResource {
    /// The `Resource` message.
    resource: Vec<u8>,
    schema_url: String,
}

impl SpanResource {
    pub(crate) fn new(resource: &Resource) -> Self {
        let r = ResourceAttributesWithSchema::from(resource);
        SpanResource {
            resource: ProtoResource {
                attributes: r.attributes.0,
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }
            .encode_to_vec(),
            schema_url: r.schema_url.unwrap_or_default(),
        }
    }
}

/// An `ExportTraceServiceRequest` holding `batch`: one `ResourceSpans`,
/// one `ScopeSpans` per instrumentation scope in order of first appearance.
pub(crate) fn encode(batch: &[SpanRecord], resource: &SpanResource) -> Vec<u8> {
    // Sizes first (each span's kept for its own length prefix), then one
    // exact allocation and one pass of writing.
    let span_lens: Vec<usize> = batch.iter().map(record_len).collect();
    let mut scopes: Vec<Scope<'_>> = Vec::new();
    for (i, span) in batch.iter().enumerate() {
        let scope = match span {
            SpanRecord::Attempt(_) => crate::record::scope(),
            SpanRecord::Whole(s) => &s.instrumentation_scope,
        };
        let at = match scopes
            .iter()
            .position(|s| std::ptr::eq(s.scope, scope) || s.scope == scope)
        {
            Some(at) => at,
            None => {
                scopes.push(Scope::new(scope));
                scopes.len() - 1
            }
        };
        scopes[at].spans.push(i);
        scopes[at].len += delimited_len(2, span_lens[i]);
    }
    let resource_spans_len = delimited_len(1, resource.resource.len())
        + scopes
            .iter()
            .map(|s| delimited_len(2, s.len))
            .sum::<usize>()
        + str_len(3, &resource.schema_url);

    let mut buf = Vec::with_capacity(delimited_len(1, resource_spans_len));
    put_delimited(1, resource_spans_len, &mut buf);
    put_delimited(1, resource.resource.len(), &mut buf);
    buf.extend_from_slice(&resource.resource);
    for s in &scopes {
        put_delimited(2, s.len, &mut buf);
        put_delimited(1, s.encoded.len(), &mut buf);
        buf.extend_from_slice(&s.encoded);
        for &i in &s.spans {
            put_delimited(2, span_lens[i], &mut buf);
            match &batch[i] {
                SpanRecord::Attempt(a) => attempt::put_span(a, &mut buf),
                SpanRecord::Whole(s) => put_span(s, &mut buf),
            }
        }
        put_str(3, s.schema_url, &mut buf);
    }
    put_str(3, &resource.schema_url, &mut buf);
    debug_assert_eq!(buf.len(), buf.capacity());
    buf
}

/// One `ScopeSpans` of the request being written.
struct Scope<'a> {
    scope: &'a InstrumentationScope,
    /// The `InstrumentationScope` message.
    encoded: Vec<u8>,
    schema_url: &'a str,
    /// Indices of its spans in the batch.
    spans: Vec<usize>,
    /// Length of the `ScopeSpans` message.
    len: usize,
}

impl<'a> Scope<'a> {
    fn new(scope: &'a InstrumentationScope) -> Self {
        let encoded = ProtoScope::from((scope, None)).encode_to_vec();
        let schema_url = scope.schema_url().unwrap_or_default();
        Scope {
            scope,
            len: delimited_len(1, encoded.len()) + str_len(3, schema_url),
            encoded,
            schema_url,
            spans: Vec::new(),
        }
    }
}

// `Span` fields. prost writes a message's fields in the order of their
// numbers, and so does this module.
const TRACE_ID: u32 = 1;
const SPAN_ID: u32 = 2;
const TRACE_STATE: u32 = 3;
const PARENT_SPAN_ID: u32 = 4;
const NAME: u32 = 5;
const KIND: u32 = 6;
const START: u32 = 7;
const END: u32 = 8;
const ATTRIBUTES: u32 = 9;
const DROPPED_ATTRIBUTES: u32 = 10;
const EVENTS: u32 = 11;
const DROPPED_EVENTS: u32 = 12;
const LINKS: u32 = 13;
const DROPPED_LINKS: u32 = 14;
const STATUS: u32 = 15;
const FLAGS: u32 = 16;

/// `SpanFlags`: the W3C flags, and whether the parent is remote (always
/// known here).
fn flags(trace_flags: u8, remote: bool) -> u32 {
    const HAS_IS_REMOTE: u32 = 0x100;
    const IS_REMOTE: u32 = 0x200;
    trace_flags as u32 | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 }
}

fn kind(k: &SpanKind) -> u64 {
    match k {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The W3C `tracestate` header, when there is one (no allocation for the
/// usual empty state).
fn trace_state(ts: &TraceState) -> Option<String> {
    (*ts != TraceState::NONE)
        .then(|| ts.header())
        .filter(|h| !h.is_empty())
}

fn parent_id(span: &SpanData) -> Option<[u8; 8]> {
    (span.parent_span_id != SpanId::INVALID).then(|| span.parent_span_id.to_bytes())
}

/// `Status`: message (2), code (3).
fn status(s: &Status) -> (&str, u64) {
    match s {
        Status::Unset => ("", 0),
        Status::Ok => ("", 1),
        Status::Error { description } => (description, 2),
    }
}

fn status_len(s: &Status) -> usize {
    let (message, code) = status(s);
    str_len(2, message) + varint_len(3, code)
}

fn record_len(r: &SpanRecord) -> usize {
    match r {
        SpanRecord::Attempt(a) => attempt::span_len(a),
        SpanRecord::Whole(s) => span_len(s),
    }
}

fn span_len(span: &SpanData) -> usize {
    let cx = &span.span_context;
    let ts_len = trace_state(cx.trace_state()).map_or(0, |h| str_len(TRACE_STATE, &h));
    delimited_len(TRACE_ID, 16)
        + delimited_len(SPAN_ID, 8)
        + ts_len
        + parent_id(span).map_or(0, |_| delimited_len(PARENT_SPAN_ID, 8))
        + key_len(FLAGS)
        + 4
        + str_len(NAME, &span.name)
        + varint_len(KIND, kind(&span.span_kind))
        + fixed64_len(START, nanos(span.start_time))
        + fixed64_len(END, nanos(span.end_time))
        + attributes_len(ATTRIBUTES, &span.attributes)
        + varint_len(DROPPED_ATTRIBUTES, span.dropped_attributes_count.into())
        + span
            .events
            .iter()
            .map(|e| delimited_len(EVENTS, event_len(e)))
            .sum::<usize>()
        + varint_len(DROPPED_EVENTS, span.events.dropped_count.into())
        + span
            .links
            .iter()
            .map(|l| delimited_len(LINKS, link_len(l)))
            .sum::<usize>()
        + varint_len(DROPPED_LINKS, span.links.dropped_count.into())
        + delimited_len(STATUS, status_len(&span.status))
}

fn put_span(span: &SpanData, buf: &mut Vec<u8>) {
    let cx = &span.span_context;
    put_bytes(TRACE_ID, &cx.trace_id().to_bytes(), buf);
    put_bytes(SPAN_ID, &cx.span_id().to_bytes(), buf);
    if let Some(h) = trace_state(cx.trace_state()) {
        put_str(TRACE_STATE, &h, buf);
    }
    if let Some(p) = parent_id(span) {
        put_bytes(PARENT_SPAN_ID, &p, buf);
    }
    put_str(NAME, &span.name, buf);
    put_varint(KIND, kind(&span.span_kind), buf);
    put_fixed64(START, nanos(span.start_time), buf);
    put_fixed64(END, nanos(span.end_time), buf);
    put_attributes(ATTRIBUTES, &span.attributes, buf);
    put_varint(
        DROPPED_ATTRIBUTES,
        span.dropped_attributes_count.into(),
        buf,
    );
    for e in span.events.iter() {
        put_delimited(EVENTS, event_len(e), buf);
        put_fixed64(1, nanos(e.timestamp), buf);
        put_str(2, &e.name, buf);
        put_attributes(3, &e.attributes, buf);
        put_varint(4, e.dropped_attributes_count.into(), buf);
    }
    put_varint(DROPPED_EVENTS, span.events.dropped_count.into(), buf);
    for l in span.links.iter() {
        let lcx = &l.span_context;
        put_delimited(LINKS, link_len(l), buf);
        put_bytes(1, &lcx.trace_id().to_bytes(), buf);
        put_bytes(2, &lcx.span_id().to_bytes(), buf);
        if let Some(h) = trace_state(lcx.trace_state()) {
            put_str(3, &h, buf);
        }
        put_attributes(4, &l.attributes, buf);
        put_varint(5, l.dropped_attributes_count.into(), buf);
        put_key(6, WireType::ThirtyTwoBit, buf);
        let f = flags(lcx.trace_flags().to_u8(), lcx.is_remote());
        buf.extend_from_slice(&f.to_le_bytes());
    }
    put_varint(DROPPED_LINKS, span.links.dropped_count.into(), buf);
    put_delimited(STATUS, status_len(&span.status), buf);
    let (message, code) = status(&span.status);
    put_str(2, message, buf);
    put_varint(3, code, buf);
    put_key(FLAGS, WireType::ThirtyTwoBit, buf);
    let f = flags(cx.trace_flags().to_u8(), span.parent_span_is_remote);
    buf.extend_from_slice(&f.to_le_bytes());
}

/// `Span.Event`: time (1), name (2), attributes (3), dropped (4).
fn event_len(e: &opentelemetry::trace::Event) -> usize {
    fixed64_len(1, nanos(e.timestamp))
        + str_len(2, &e.name)
        + attributes_len(3, &e.attributes)
        + varint_len(4, e.dropped_attributes_count.into())
}

/// `Span.Link`: trace id (1), span id (2), trace state (3), attributes
/// (4), dropped (5), flags (6).
fn link_len(l: &opentelemetry::trace::Link) -> usize {
    let cx = &l.span_context;
    delimited_len(1, 16)
        + delimited_len(2, 8)
        + trace_state(cx.trace_state()).map_or(0, |h| str_len(3, &h))
        + attributes_len(4, &l.attributes)
        + varint_len(5, l.dropped_attributes_count.into())
        + key_len(6)
        + 4
}

#[cfg(test)]
mod tests;
