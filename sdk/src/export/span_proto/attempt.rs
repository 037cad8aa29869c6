//! An attempt span (`record.rs`) written as an OTLP `Span`, straight from
//! its facts: the bytes its `SpanData` would give (`tests.rs` compares
//! both), without building one.

use flowtel_semconv::{attr, span as sc};
use opentelemetry::trace::{SpanId, TraceFlags};
use prost::encoding::{key_len, WireType};

use super::values::{attr_len, put_attr};
use super::wire::{delimited_len, fixed64_len, put_bytes, put_delimited, put_fixed64, put_str};
use super::wire::{put_key, put_varint, str_len, varint_len};
use super::{flags, ATTRIBUTES, END, EVENTS, FLAGS, KIND, NAME, PARENT_SPAN_ID};
use super::{SPAN_ID, START, STATUS, TRACE_ID};
use crate::record::{AttemptError, AttemptSpan, AttrValue};

/// `SpanKind::Internal`.
const INTERNAL: u64 = 1;
/// `Status.code` of an error.
const ERROR: u64 = 2;

fn parent(a: &AttemptSpan) -> Option<[u8; 8]> {
    (a.parent != SpanId::INVALID).then(|| a.parent.to_bytes())
}

/// The exception event's two attributes.
fn exception_attrs(e: &AttemptError) -> [(&'static str, AttrValue<'_>); 2] {
    [
        (attr::EXCEPTION_TYPE, AttrValue::Owned(&e.exception_type)),
        (attr::EXCEPTION_MESSAGE, AttrValue::Owned(&e.message)),
    ]
}

/// `Span.Event` of the exception: time (1), name (2), attributes (3).
fn exception_len(a: &AttemptSpan, e: &AttemptError) -> usize {
    fixed64_len(1, a.end_ns as u64)
        + str_len(2, sc::EXCEPTION_EVENT)
        + exception_attrs(e)
            .iter()
            .map(|(k, v)| delimited_len(3, attr_len(k, v)))
            .sum::<usize>()
}

/// `Status`: message (2), code (3); empty when unset.
fn status_len(a: &AttemptSpan) -> usize {
    a.error
        .as_ref()
        .map_or(0, |e| str_len(2, e.description()) + varint_len(3, ERROR))
}

fn attributes_len(a: &AttemptSpan) -> usize {
    let mut len = 0;
    a.for_each_attribute(|k, v| len += delimited_len(ATTRIBUTES, attr_len(k.as_str(), &v)));
    len
}

pub(super) fn span_len(a: &AttemptSpan) -> usize {
    delimited_len(TRACE_ID, 16)
        + delimited_len(SPAN_ID, 8)
        + parent(a).map_or(0, |_| delimited_len(PARENT_SPAN_ID, 8))
        + key_len(FLAGS)
        + 4
        + str_len(NAME, &a.name)
        + varint_len(KIND, INTERNAL)
        + fixed64_len(START, a.start_ns as u64)
        + fixed64_len(END, a.end_ns as u64)
        + attributes_len(a)
        + a.error
            .as_ref()
            .map_or(0, |e| delimited_len(EVENTS, exception_len(a, e)))
        + delimited_len(STATUS, status_len(a))
}

pub(super) fn put_span(a: &AttemptSpan, buf: &mut Vec<u8>) {
    put_bytes(TRACE_ID, &a.trace.to_bytes(), buf);
    put_bytes(SPAN_ID, &a.id.to_bytes(), buf);
    if let Some(p) = parent(a) {
        put_bytes(PARENT_SPAN_ID, &p, buf);
    }
    put_str(NAME, &a.name, buf);
    put_varint(KIND, INTERNAL, buf);
    put_fixed64(START, a.start_ns as u64, buf);
    put_fixed64(END, a.end_ns as u64, buf);
    a.for_each_attribute(|k, v| put_attr(ATTRIBUTES, k.as_str(), &v, buf));
    if let Some(e) = &a.error {
        put_delimited(EVENTS, exception_len(a, e), buf);
        put_fixed64(1, a.end_ns as u64, buf);
        put_str(2, sc::EXCEPTION_EVENT, buf);
        for (k, v) in exception_attrs(e) {
            put_attr(3, k, &v, buf);
        }
    }
    put_delimited(STATUS, status_len(a), buf);
    if let Some(e) = &a.error {
        put_str(2, e.description(), buf);
        put_varint(3, ERROR, buf);
    }
    put_key(FLAGS, WireType::ThirtyTwoBit, buf);
    let f = flags(TraceFlags::SAMPLED.to_u8(), false);
    buf.extend_from_slice(&f.to_le_bytes());
}
