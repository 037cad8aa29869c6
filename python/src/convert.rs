//! Python values → [`FlowEvent`].
//!
//! - A PenguiFlow `FlowEvent` object (the middleware's argument) is read
//!   attribute by attribute, only the fields the SDK uses: the Rust
//!   `FlowEvent` has the same fields, so this is a copy, not a parse, and
//!   costs no JSON round trip (`python/bench/run` times both routes).
//! - A `FlowEvent.to_payload()` dict, or its JSON text, goes through the
//!   SDK's one parser ([`FlowEvent::from_json`]), which knows the payload's
//!   renamed keys.
//!
//! Field types follow the JSON contract: a string field takes `str` or
//! `None`, a count a non-negative `int`, a time or latency any real number.
//! An attribute a future PenguiFlow drops is taken as absent (its default);
//! attributes flowtel does not know or does not read are ignored. Anything else is an
//! [`Unmappable`] error naming the field.

use flowtel::FlowEvent;
use pyo3::conversion::FromPyObjectOwned;
use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::{intern, PyTypeInfo};
use serde_json::{Map, Value};

/// Why a value could not become a FlowEvent.
#[derive(Debug)]
pub(crate) struct Unmappable(pub(crate) String);

impl From<PyErr> for Unmappable {
    fn from(e: PyErr) -> Self {
        Unmappable(e.to_string())
    }
}

/// Nested `extra` values deeper than this are kept as their `str()`.
const MAX_DEPTH: u32 = 16;

/// An event of `event_type` whose other fields are then set from the
/// source. Validation is left to `record()`, which counts what it rejects
/// (an empty type included).
fn blank(event_type: String) -> Result<FlowEvent, Unmappable> {
    if event_type.is_empty() {
        let mut ev = blank("_".into())?;
        ev.event_type = event_type;
        return Ok(ev);
    }
    FlowEvent::builder(event_type, 0.0)
        .build()
        .map_err(|e| Unmappable(e.to_string()))
}

/// Does `obj` look like a PenguiFlow `FlowEvent` (it has `event_type`)?
/// Returns that attribute, which the conversion needs first anyway.
pub(crate) fn event_type_attr<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    obj.getattr(intern!(obj.py(), "event_type")).ok()
}

/// A PenguiFlow `FlowEvent` object, given its `event_type` attribute.
///
/// Only the attributes the SDK's mapping and metrics read are copied:
/// `outgoing_edges`, `queue_maxsize` and `trace_cancelled` stay at their
/// defaults. Each attribute read costs the event loop time, and the
/// middleware runs on every event of the flow.
pub(crate) fn from_object(
    obj: &Bound<'_, PyAny>,
    event_type: &Bound<'_, PyAny>,
) -> Result<FlowEvent, Unmappable> {
    let py = obj.py();
    let mut ev = blank(string("event_type", event_type)?)?;
    ev.ts = match attr(obj, intern!(py, "ts"))? {
        Some(v) => number("ts", &v)?,
        None => return Err(Unmappable("field `ts`: missing".into())),
    };
    if let Some(v) = attr(obj, intern!(py, "node_name"))? {
        ev.node_name = opt_string("node_name", &v)?;
    }
    if let Some(v) = attr(obj, intern!(py, "node_id"))? {
        ev.node_id = opt_string("node_id", &v)?;
    }
    if let Some(v) = attr(obj, intern!(py, "trace_id"))? {
        ev.trace_id = opt_string("trace_id", &v)?;
    }
    if let Some(v) = attr(obj, intern!(py, "attempt"))? {
        ev.attempt = int("attempt", &v)?;
    }
    if let Some(v) = attr(obj, intern!(py, "latency_ms"))? {
        ev.latency_ms = if v.is_none() {
            None
        } else {
            Some(number("latency_ms", &v)?)
        };
    }
    let counts = [
        (intern!(py, "queue_depth_in"), &mut ev.queue_depth_in),
        (intern!(py, "queue_depth_out"), &mut ev.queue_depth_out),
        (intern!(py, "trace_inflight"), &mut ev.trace_inflight),
    ];
    for (name, field) in counts {
        if let Some(v) = attr(obj, name)? {
            *field = int(name.to_str()?, &v)?;
        }
    }
    if let Some(v) = attr(obj, intern!(py, "trace_pending"))? {
        ev.trace_pending = if v.is_none() {
            None
        } else {
            Some(int("trace_pending", &v)?)
        };
    }
    if let Some(v) = attr(obj, intern!(py, "extra"))? {
        extra_into(&v, &mut ev.extra)?;
    }
    Ok(ev)
}

/// A `to_payload()` dict, or its JSON as `str` or `bytes`.
pub(crate) fn from_payload(payload: &Bound<'_, PyAny>) -> Result<FlowEvent, Unmappable> {
    let parsed = if let Ok(s) = payload.cast::<PyString>() {
        FlowEvent::from_json(s.to_str()?)
    } else if let Ok(b) = payload.cast::<PyBytes>() {
        let text = std::str::from_utf8(b.as_bytes())
            .map_err(|e| Unmappable(format!("payload is not UTF-8: {e}")))?;
        FlowEvent::from_json(text)
    } else if let Ok(d) = payload.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            map.insert(key(&k), json(&v, 0));
        }
        let text = serde_json::to_string(&Value::Object(map))
            .map_err(|e| Unmappable(format!("payload: {e}")))?;
        FlowEvent::from_json(&text)
    } else {
        return Err(Unmappable(format!(
            "expected a FlowEvent, a to_payload() dict or its JSON, got {}",
            type_name(payload)
        )));
    };
    parsed.map_err(|e| Unmappable(e.to_string()))
}

/// An attribute, `None` when the object has none (a field a future
/// PenguiFlow dropped).
fn attr<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> Result<Option<Bound<'py, PyAny>>, Unmappable> {
    match obj.getattr(name) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_instance_of::<PyAttributeError>(obj.py()) => Ok(None),
        Err(e) => Err(Unmappable(format!("field `{name}`: {e}"))),
    }
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn wrong(field: &str, want: &str, v: &Bound<'_, PyAny>) -> Unmappable {
    Unmappable(format!(
        "field `{field}`: expected {want}, got {}",
        type_name(v)
    ))
}

fn string(field: &str, v: &Bound<'_, PyAny>) -> Result<String, Unmappable> {
    let s = v.cast::<PyString>().map_err(|_| wrong(field, "a str", v))?;
    Ok(s.to_str()?.to_owned())
}

fn opt_string(field: &str, v: &Bound<'_, PyAny>) -> Result<Option<String>, Unmappable> {
    if v.is_none() {
        Ok(None)
    } else {
        string(field, v).map(Some)
    }
}

/// A real number: `float`, `int`, or anything with `__float__` /
/// `__index__` (NumPy scalars), but not a string.
fn number(field: &str, v: &Bound<'_, PyAny>) -> Result<f64, Unmappable> {
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(f.value());
    }
    if v.is_instance_of::<PyString>() || v.is_instance_of::<PyBytes>() {
        return Err(wrong(field, "a number", v));
    }
    v.extract::<f64>().map_err(|_| wrong(field, "a number", v))
}

/// A non-negative integer (`int` or anything with `__index__`), in range.
fn int<'py, T: FromPyObjectOwned<'py>>(
    field: &str,
    v: &Bound<'py, PyAny>,
) -> Result<T, Unmappable> {
    v.extract::<T>().map_err(|_| match v.cast::<PyInt>() {
        Ok(_) => Unmappable(format!("field `{field}`: out of range: {v}")),
        Err(_) => wrong(field, "a non-negative int", v),
    })
}

/// Copy `extra` (a mapping, usually PenguiFlow's read-only proxy) into
/// `out`.
fn extra_into(v: &Bound<'_, PyAny>, out: &mut Map<String, Value>) -> Result<(), Unmappable> {
    if v.is_none() {
        return Ok(());
    }
    if let Ok(d) = v.cast::<PyDict>() {
        for (k, val) in d.iter() {
            out.insert(key(&k), json(&val, 1));
        }
        return Ok(());
    }
    // Most events carry an empty extra: a length check avoids `items()`.
    if v.len().map_err(|_| wrong("extra", "a mapping", v))? == 0 {
        return Ok(());
    }
    let items = v
        .call_method0(intern!(v.py(), "items"))
        .map_err(|_| wrong("extra", "a mapping", v))?;
    for item in items.try_iter()? {
        let (k, val): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        out.insert(key(&k), json(&val, 1));
    }
    Ok(())
}

/// A mapping key: itself if a `str`, else its `str()`.
fn key(k: &Bound<'_, PyAny>) -> String {
    match k.cast::<PyString>() {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => k.str().map(|s| s.to_string()).unwrap_or_default(),
    }
}

/// A Python value as JSON. What JSON cannot hold (an exception object, a
/// UUID, NaN, an int beyond 64 bits, nesting deeper than [`MAX_DEPTH`]) is
/// kept as its `str()`: `extra` is never exported unless allow-listed, so
/// an odd value must not cost the event.
fn json(v: &Bound<'_, PyAny>, depth: u32) -> Value {
    if v.is_none() {
        return Value::Null;
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Value::Bool(b.is_true());
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Value::String(s.to_string_lossy().into_owned());
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        if let Some(n) = serde_json::Number::from_f64(f.value()) {
            return Value::Number(n);
        }
    } else if PyInt::is_type_of(v) {
        if let Ok(i) = v.extract::<i64>() {
            return Value::from(i);
        }
        if let Ok(u) = v.extract::<u64>() {
            return Value::from(u);
        }
    } else if depth < MAX_DEPTH {
        if let Ok(d) = v.cast::<PyDict>() {
            let map = d.iter().map(|(k, x)| (key(&k), json(&x, depth + 1)));
            return Value::Object(map.collect());
        }
        if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
            if let Ok(items) = v.try_iter() {
                let items = items.flatten().map(|x| json(&x, depth + 1));
                return Value::Array(items.collect());
            }
        }
    }
    Value::String(v.str().map(|s| s.to_string()).unwrap_or_default())
}
