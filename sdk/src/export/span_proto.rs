//! A span batch written straight from `SpanData` as OTLP protobuf bytes
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
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope as ProtoScope;
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;

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
pub(crate) fn encode(batch: &[SpanData], resource: &SpanResource) -> Vec<u8> {
    // Sizes first (each span's kept for its own length prefix), then one
    // exact allocation and one pass of writing.
    let span_lens: Vec<usize> = batch.iter().map(span_len).collect();
    let mut scopes: Vec<Scope<'_>> = Vec::new();
    for (i, span) in batch.iter().enumerate() {
        let scope = &span.instrumentation_scope;
        let at = match scopes.iter().position(|s| s.scope == scope) {
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
            put_span(&batch[i], &mut buf);
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
        encode_key(6, WireType::ThirtyTwoBit, buf);
        let f = flags(lcx.trace_flags().to_u8(), lcx.is_remote());
        buf.extend_from_slice(&f.to_le_bytes());
    }
    put_varint(DROPPED_LINKS, span.links.dropped_count.into(), buf);
    put_delimited(STATUS, status_len(&span.status), buf);
    let (message, code) = status(&span.status);
    put_str(2, message, buf);
    put_varint(3, code, buf);
    encode_key(FLAGS, WireType::ThirtyTwoBit, buf);
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

// Attributes: `KeyValue` { key (1), value (2): `AnyValue` }.

fn attributes_len(tag: u32, kvs: &[KeyValue]) -> usize {
    kvs.iter()
        .map(|kv| delimited_len(tag, key_value_len(kv)))
        .sum()
}

fn key_value_len(kv: &KeyValue) -> usize {
    str_len(1, kv.key.as_str()) + delimited_len(2, any_len(&kv.value))
}

fn put_attributes(tag: u32, kvs: &[KeyValue], buf: &mut Vec<u8>) {
    for kv in kvs {
        put_delimited(tag, key_value_len(kv), buf);
        put_str(1, kv.key.as_str(), buf);
        put_delimited(2, any_len(&kv.value), buf);
        put_any(&kv.value, buf);
    }
}

/// One `AnyValue`'s content: the set member of its `oneof` (written even
/// when it holds a default, as prost writes a set `oneof`).
enum Scalar<'a> {
    Bool(bool),
    I64(i64),
    F64(f64),
    Str(&'a StringValue),
}

impl Scalar<'_> {
    fn len(&self) -> usize {
        match self {
            Scalar::Bool(_) => key_len(2) + 1,
            Scalar::I64(i) => key_len(3) + encoded_len_varint(*i as u64),
            Scalar::F64(_) => key_len(4) + 8,
            Scalar::Str(s) => delimited_len(1, s.as_str().len()),
        }
    }

    fn put(&self, buf: &mut Vec<u8>) {
        match self {
            Scalar::Bool(b) => {
                encode_key(2, WireType::Varint, buf);
                buf.push(u8::from(*b));
            }
            Scalar::I64(i) => {
                encode_key(3, WireType::Varint, buf);
                encode_varint(*i as u64, buf);
            }
            Scalar::F64(f) => {
                encode_key(4, WireType::SixtyFourBit, buf);
                buf.extend_from_slice(&f.to_le_bytes());
            }
            Scalar::Str(s) => {
                put_delimited(1, s.as_str().len(), buf);
                buf.extend_from_slice(s.as_str().as_bytes());
            }
        }
    }
}

/// The elements of an array value.
fn elements(a: &Array) -> Box<dyn Iterator<Item = Scalar<'_>> + '_> {
    match a {
        Array::Bool(v) => Box::new(v.iter().map(|b| Scalar::Bool(*b))),
        Array::I64(v) => Box::new(v.iter().map(|i| Scalar::I64(*i))),
        Array::F64(v) => Box::new(v.iter().map(|f| Scalar::F64(*f))),
        Array::String(v) => Box::new(v.iter().map(Scalar::Str)),
        _ => Box::new(std::iter::empty()),
    }
}

/// `ArrayValue` { values (1) }.
fn array_len(a: &Array) -> usize {
    elements(a).map(|s| delimited_len(1, s.len())).sum()
}

fn any_len(v: &Value) -> usize {
    match v {
        Value::Bool(b) => Scalar::Bool(*b).len(),
        Value::I64(i) => Scalar::I64(*i).len(),
        Value::F64(f) => Scalar::F64(*f).len(),
        Value::String(s) => Scalar::Str(s).len(),
        Value::Array(a) => delimited_len(5, array_len(a)),
        // A kind of value newer than flowtel: an empty `AnyValue`.
        _ => 0,
    }
}

fn put_any(v: &Value, buf: &mut Vec<u8>) {
    match v {
        Value::Bool(b) => Scalar::Bool(*b).put(buf),
        Value::I64(i) => Scalar::I64(*i).put(buf),
        Value::F64(f) => Scalar::F64(*f).put(buf),
        Value::String(s) => Scalar::Str(s).put(buf),
        Value::Array(a) => {
            put_delimited(5, array_len(a), buf);
            for s in elements(a) {
                put_delimited(1, s.len(), buf);
                s.put(buf);
            }
        }
        _ => {}
    }
}

// Wire-format pieces. Proto3 leaves out scalars holding their default.

fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn put_delimited(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn str_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        delimited_len(tag, s.len())
    }
}

fn put_str(tag: u32, s: &str, buf: &mut Vec<u8>) {
    put_bytes(tag, s.as_bytes(), buf);
}

fn put_bytes(tag: u32, b: &[u8], buf: &mut Vec<u8>) {
    if !b.is_empty() {
        put_delimited(tag, b.len(), buf);
        buf.extend_from_slice(b);
    }
}

fn varint_len(tag: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(v)
    }
}

fn put_varint(tag: u32, v: u64, buf: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(v, buf);
    }
}

fn fixed64_len(tag: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + 8
    }
}

fn put_fixed64(tag: u32, v: u64, buf: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::SixtyFourBit, buf);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use opentelemetry::trace::{Event, Link, SpanContext, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    use super::*;

    /// What opentelemetry-proto's conversion and prost make of the batch.
    fn reference(batch: Vec<SpanData>, resource: &Resource) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &resource.into()),
        }
        .encode_to_vec()
    }

    fn cx(trace: u128, span: u64, flags: u8, remote: bool, state: TraceState) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::new(flags),
            remote,
            state,
        )
    }

    fn span(i: u64, scope: InstrumentationScope) -> SpanData {
        let t0 = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789 + i);
        let mut events = SpanEvents::default();
        let mut links = SpanLinks::default();
        if i % 2 == 0 {
            events.events.push(Event::new(
                "exception",
                t0 + Duration::from_micros(5),
                vec![
                    KeyValue::new("exception.type", "TimeoutError"),
                    KeyValue::new("exception.message", ""),
                ],
                2,
            ));
            events.dropped_count = 1;
            links.links.push(Link::new(
                cx(
                    7,
                    9,
                    0,
                    true,
                    TraceState::from_key_value([("k", "v")]).unwrap(),
                ),
                vec![KeyValue::new("flow.link", true)],
                0,
            ));
            links.dropped_count = 3;
        }
        SpanData {
            span_context: cx(
                0x3e51_2c5b_0a18_4257_a25c_215d_1954_4e6a + i as u128,
                i + 1,
                (i % 2) as u8,
                false,
                if i % 3 == 0 {
                    TraceState::from_key_value([("vendor", "x1"), ("other", "y")]).unwrap()
                } else {
                    TraceState::NONE
                },
            ),
            parent_span_id: if i % 4 == 0 {
                SpanId::INVALID
            } else {
                SpanId::from(99)
            },
            parent_span_is_remote: i % 5 == 0,
            span_kind: [
                SpanKind::Internal,
                SpanKind::Server,
                SpanKind::Client,
                SpanKind::Producer,
                SpanKind::Consumer,
            ][i as usize % 5]
                .clone(),
            name: Cow::Owned(format!("node {i}")),
            start_time: t0,
            end_time: if i == 3 {
                UNIX_EPOCH
            } else {
                t0 + Duration::from_millis(i)
            },
            attributes: vec![
                KeyValue::new("flow.node.name", "triage"),
                KeyValue::new("flow.node.attempt", i as i64),
                KeyValue::new("flow.node.attempt.neg", -(i as i64)),
                KeyValue::new("flow.latency", 12.5 * i as f64),
                KeyValue::new("flow.cancelled", i % 2 == 0),
                KeyValue::new("empty", ""),
                KeyValue::new(
                    "list.s",
                    Value::Array(vec![StringValue::from("a"), "".into()].into()),
                ),
                KeyValue::new("list.i", Value::Array(vec![1i64, -2, 0].into())),
                KeyValue::new("list.f", Value::Array(vec![0.0f64, 1.5].into())),
                KeyValue::new("list.b", Value::Array(vec![true, false].into())),
                KeyValue::new("list.empty", Value::Array(Vec::<i64>::new().into())),
            ],
            dropped_attributes_count: (i % 3) as u32,
            events,
            links,
            status: match i % 3 {
                0 => Status::Unset,
                1 => Status::Ok,
                _ => Status::error(if i == 5 {
                    ""
                } else {
                    "node failed: ValueError"
                }),
            },
            instrumentation_scope: scope,
        }
    }

    #[test]
    fn the_bytes_are_opentelemetry_protos_with_every_field_set() {
        let flowtel = InstrumentationScope::builder("flowtel")
            .with_version("0.1.0")
            .build();
        let other = InstrumentationScope::builder("app")
            .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
            .with_attributes([KeyValue::new("lib", "x")])
            .build();
        let batch: Vec<SpanData> = (0..24)
            .map(|i| {
                span(
                    i,
                    if i % 7 == 3 {
                        other.clone()
                    } else {
                        flowtel.clone()
                    },
                )
            })
            .collect();
        let resource = Resource::builder()
            .with_service_name("svc")
            .with_schema_url([KeyValue::new("deployment", "prod")], "https://x/1.0")
            .build();
        let ours = encode(&batch, &SpanResource::new(&resource));
        assert_eq!(ours, reference(batch, &resource));
    }

    #[test]
    fn an_empty_batch_and_a_bare_span_match_too() {
        let resource = Resource::builder_empty().build();
        let r = SpanResource::new(&resource);
        assert_eq!(encode(&[], &r), reference(vec![], &resource));
        let bare = SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(""),
            start_time: UNIX_EPOCH,
            end_time: UNIX_EPOCH,
            attributes: vec![],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("").build(),
        };
        assert_eq!(
            encode(std::slice::from_ref(&bare), &r),
            reference(vec![bare], &resource)
        );
    }
}
