//! Attributes as OTLP `KeyValue`s and `AnyValue`s, written straight from
//! opentelemetry's values.

use opentelemetry::{Array, KeyValue, Value};
use prost::encoding::{encoded_len_varint, key_len, WireType};

use super::wire::{delimited_len, put_delimited, put_key, put_str, put_uvarint, str_len};
use crate::record::AttrValue;

// `KeyValue` { key (1), value (2): `AnyValue` }.

pub(super) fn attributes_len(tag: u32, kvs: &[KeyValue]) -> usize {
    kvs.iter()
        .map(|kv| delimited_len(tag, key_value_len(kv)))
        .sum()
}

fn key_value_len(kv: &KeyValue) -> usize {
    str_len(1, kv.key.as_str()) + delimited_len(2, any_len(&kv.value))
}

pub(super) fn put_attributes(tag: u32, kvs: &[KeyValue], buf: &mut Vec<u8>) {
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
    Str(&'a str),
}

impl Scalar<'_> {
    fn len(&self) -> usize {
        match self {
            Scalar::Bool(_) => key_len(2) + 1,
            Scalar::I64(i) => key_len(3) + encoded_len_varint(*i as u64),
            Scalar::F64(_) => key_len(4) + 8,
            Scalar::Str(s) => delimited_len(1, s.len()),
        }
    }

    fn put(&self, buf: &mut Vec<u8>) {
        match self {
            Scalar::Bool(b) => {
                put_key(2, WireType::Varint, buf);
                buf.push(u8::from(*b));
            }
            Scalar::I64(i) => {
                put_key(3, WireType::Varint, buf);
                put_uvarint(*i as u64, buf);
            }
            Scalar::F64(f) => {
                put_key(4, WireType::SixtyFourBit, buf);
                buf.extend_from_slice(&f.to_le_bytes());
            }
            Scalar::Str(s) => {
                put_delimited(1, s.len(), buf);
                buf.extend_from_slice(s.as_bytes());
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
        Array::String(v) => Box::new(v.iter().map(|s| Scalar::Str(s.as_str()))),
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
        Value::String(s) => Scalar::Str(s.as_str()).len(),
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
        Value::String(s) => Scalar::Str(s.as_str()).put(buf),
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

// The same, for an attempt span's borrowed attributes (`record.rs`).

/// A `KeyValue`'s length, from its parts.
pub(super) fn attr_len(key: &str, v: &AttrValue<'_>) -> usize {
    str_len(1, key) + delimited_len(2, attr_value_len(v))
}

/// A `KeyValue` (tag, length, key, value), from its parts.
pub(super) fn put_attr(tag: u32, key: &str, v: &AttrValue<'_>, buf: &mut Vec<u8>) {
    let value_len = attr_value_len(v);
    put_delimited(tag, str_len(1, key) + delimited_len(2, value_len), buf);
    put_str(1, key, buf);
    put_delimited(2, value_len, buf);
    match split(v) {
        Ok(scalar) => scalar.put(buf),
        Err(any) => put_any(any, buf),
    }
}

fn attr_value_len(v: &AttrValue<'_>) -> usize {
    match split(v) {
        Ok(scalar) => scalar.len(),
        Err(any) => any_len(any),
    }
}

/// A scalar written as such, or an `extra` value written as any value is.
fn split<'a>(v: &AttrValue<'a>) -> Result<Scalar<'a>, &'a Value> {
    match *v {
        AttrValue::Shared(s) => Ok(Scalar::Str(s)),
        AttrValue::Static(s) | AttrValue::Owned(s) => Ok(Scalar::Str(s)),
        AttrValue::I64(i) => Ok(Scalar::I64(i)),
        AttrValue::Any(v) => Err(v),
    }
}
