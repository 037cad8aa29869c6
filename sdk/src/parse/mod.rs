//! Parsing PenguiFlow JSON into [`FlowEvent`]s.
//!
//! Two shapes are accepted, one parser for both:
//! - a bare `FlowEvent.to_payload()` object (`{"event": ..., "ts": ..., "q_depth_in": ...}`,
//!   with `extra` merged into the top level), and
//! - a PenguiFlow structured-log line (`{"level", "logger", "message", "timestamp",
//!   "extra": {...payload...}}`), whose wrapper fields (including the formatted
//!   traceback in `exception`) are ignored.
//!
//! Other libraries' JSON logs share the `event` key (structlog writes
//! `{"event": "user logged in", "timestamp": ..., "level": "info"}`), so an
//! `event` alone does not make a FlowEvent. An object (the line itself, or the
//! `extra` of a log line) is a FlowEvent *candidate* when
//!
//! 1. its `event` (or `event_type`) value is a single token: not a string
//!    containing whitespace. PenguiFlow's event types are snake_case
//!    identifiers; a sentence is a log message; and
//! 2. it has a `ts` key, or one of the keys only FlowEvents carry:
//!    `FLOW_EVENT_KEYS` (`node_name`, `node_id`, `latency_ms`, the queue depths,
//!    the trace counters). `trace_id` and `attempt` are not among them: OTel
//!    log correlation adds `trace_id` to any library's lines, and retry
//!    helpers log `attempt`.
//!
//! Anything else is not a FlowEvent ([`EventError::is_not_a_flow_event`]);
//! a candidate that breaks the contract (a negative `latency_ms`, a `ts`
//! that is not a number) is an error naming the field.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::event::{EventError, FlowEvent};

mod fast;
mod scan;

/// For the tests of the faster paths: where `answer` (a faster path's
/// answer for `line`) is an event, it is the general parser's.
#[cfg(test)]
fn agrees_with_general(answer: Option<FlowEvent>, line: &str) -> bool {
    match answer {
        Some(ev) => {
            assert_eq!(Ok(ev), parse_general(line), "{line}");
            true
        }
        None => false,
    }
}

/// For the generated-line tests of the faster paths: run `cases` lines of
/// `lines` (a fixed seed: the same lines every run) through `agree`, and
/// say how many the faster path answered.
#[cfg(test)]
fn generated_answers(
    cases: u32,
    lines: impl proptest::strategy::Strategy<Value = String>,
    agree: fn(&str) -> bool,
) -> usize {
    let answered = std::cell::Cell::new(0);
    crate::test_support::fixed_seed_runner(cases)
        .run(&lines, |l| {
            answered.set(answered.get() + usize::from(agree(&l)));
            Ok(())
        })
        .unwrap();
    answered.get()
}

impl FlowEvent {
    /// Parse one JSON object: a `FlowEvent.to_payload()` object or a PenguiFlow
    /// structured-log line. Errors name the field and the problem.
    ///
    /// ```
    /// use flowtel::FlowEvent;
    /// let line = r#"{"level":"INFO","logger":"penguiflow.core","message":"node_success",
    ///   "extra":{"ts":1700000000.5,"event":"node_success","node_name":"triage",
    ///   "trace_id":"3e512c5b0a184257a25c215d19544e6a","latency_ms":12.5,"attempt":0}}"#;
    /// let ev = FlowEvent::from_json(line).unwrap();
    /// assert_eq!(ev.event_type, "node_success");
    ///
    /// let err = FlowEvent::from_json(r#"{"event":"node_success","ts":1.0,"latency_ms":-3}"#)
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "latency_ms");
    /// ```
    pub fn from_json(input: &str) -> Result<FlowEvent, EventError> {
        fast::parse(input).map_or_else(|| parse_general(input), Ok)
    }

    /// [`from_json`](FlowEvent::from_json), the event written over `self`
    /// (an event already used): its strings' buffers are filled again
    /// rather than allocated anew. On an error `self` holds nothing of use.
    pub(crate) fn parse_json_into(&mut self, input: &str) -> Result<(), EventError> {
        if scan::parse_into(input, self).is_none() {
            *self = fast::parse_serde(input).map_or_else(|| parse_general(input), Ok)?;
        }
        Ok(())
    }
}

/// The general parser: every shape, and the exact error for every problem.
/// [`fast::parse`] takes the usual lines first and leaves the rest here.
fn parse_general(input: &str) -> Result<FlowEvent, EventError> {
    // One pass over the line: the members stay unparsed, except a
    // nested `extra` object, whose members are taken in the same scan.
    let mut fields = parse_object(input)?;
    if fields.has_event() {
        fields.check_candidate()?;
        return from_fields(fields);
    }
    match fields.take_extra() {
        Some(Ok(inner)) => {
            if !inner.has_event() {
                return Err(not_a_flow_event("a log line whose `extra` has no `event`"));
            }
            inner.check_candidate()?;
            from_fields(*inner)
        }
        Some(Err(_)) => Err(EventError::new(
            "extra",
            "log line `extra`: not a JSON object",
        )),
        None => Err(not_a_flow_event(
            "no `event` key and no log-line `extra` holding one",
        )),
    }
}

/// Keys only a FlowEvent carries (besides `ts`): one of them, or `ts`, makes
/// an object with an `event` a FlowEvent candidate. See the module docs.
const FLOW_EVENT_KEYS: &[&str] = &[
    "node_name",
    "node_id",
    "latency_ms",
    "q_depth_in",
    "q_depth_out",
    "q_depth_total",
    "queue_depth_in",
    "queue_depth_out",
    "outgoing",
    "outgoing_edges",
    "queue_maxsize",
    "trace_pending",
    "trace_inflight",
    "trace_cancelled",
];

/// How every "not a FlowEvent" problem starts.
const NOT_A_FLOW_EVENT: &str = "not a FlowEvent: ";

fn not_a_flow_event(why: &str) -> EventError {
    EventError::new("event", format!("{NOT_A_FLOW_EVENT}{why}"))
}

impl EventError {
    /// Whether the input was JSON that is not a FlowEvent at all (another
    /// library's log line, say) rather than a broken FlowEvent. A bridge
    /// skips the first and reports the second.
    ///
    /// ```
    /// use flowtel::FlowEvent;
    /// let structlog = r#"{"event":"user logged in","timestamp":"2026-11-22T00:20:29Z","level":"info"}"#;
    /// assert!(FlowEvent::from_json(structlog).unwrap_err().is_not_a_flow_event());
    /// let broken = r#"{"event":"node_success","ts":1700000000.5,"node_name":"a","latency_ms":-1}"#;
    /// assert!(!FlowEvent::from_json(broken).unwrap_err().is_not_a_flow_event());
    /// ```
    pub fn is_not_a_flow_event(&self) -> bool {
        self.field() == "event" && self.problem().starts_with(NOT_A_FLOW_EVENT)
    }
}

/// A JSON object's members in order, values left unparsed, except `extra`
/// when it is an object (a log line's payload, or the dataclass form's
/// nested extra): split into its members in the same pass.
struct Fields<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// `extra`'s members, when split in the same pass.
    extra: Option<Box<Fields<'a>>>,
}

#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

/// Deserializes [`Fields`]; `split_extra` takes an `extra` object apart in
/// the same pass (any other `extra` fails the pass: see `parse_object`).
#[derive(Clone, Copy)]
struct FieldsSeed {
    split_extra: bool,
}

impl<'de> DeserializeSeed<'de> for FieldsSeed {
    type Value = Fields<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed {
    type Value = Fields<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Fields {
            members: Vec::with_capacity(map.size_hint().unwrap_or(16)),
            extra: None,
        };
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            if self.split_extra && k == "extra" && out.extra.is_none() {
                out.extra = Some(Box::new(map.next_value_seed(self)?));
            } else {
                let v: &'de RawValue = map.next_value()?;
                out.members.push((k, v));
            }
        }
        Ok(out)
    }
}

impl Fields<'_> {
    fn has_event(&self) -> bool {
        self.members
            .iter()
            .any(|(k, _)| k == "event" || k == "event_type")
    }

    /// The candidate rule of the module docs.
    fn check_candidate(&self) -> Result<(), EventError> {
        for (k, raw) in &self.members {
            if k == "event" || k == "event_type" {
                // Borrowed unless the string has escapes; a non-string
                // `event` is left to the field check, which names it.
                let name = plain_str(raw)
                    .map(Cow::Borrowed)
                    .ok_or(())
                    .or_else(|()| serde_json::from_str::<String>(raw.get()).map(Cow::Owned));
                if name.is_ok_and(|n| n.chars().any(char::is_whitespace)) {
                    return Err(not_a_flow_event(&format!(
                        "`{k}` is a sentence, not an event type"
                    )));
                }
            }
        }
        let evidence = self
            .members
            .iter()
            .any(|(k, _)| k == "ts" || FLOW_EVENT_KEYS.contains(&k.as_ref()));
        if evidence {
            Ok(())
        } else {
            Err(not_a_flow_event(
                "an `event` with neither `ts` nor any FlowEvent field",
            ))
        }
    }
}

/// Parse an object in one pass, `extra` included. When that fails (an
/// `extra` that is not an object, or nested deeper than a value may be, or
/// input that is not a JSON object at all), parse it again with `extra`
/// left raw, so that such lines fare exactly as before and only they pay
/// for a second pass.
fn parse_object(input: &str) -> Result<Fields<'_>, EventError> {
    let pass = |split_extra| {
        let mut de = serde_json::Deserializer::from_str(input);
        let f = FieldsSeed { split_extra }.deserialize(&mut de)?;
        de.end().map(|()| f)
    };
    pass(true)
        .or_else(|_| pass(false))
        .map_err(|e| EventError::new("line", format!("not a JSON object: {e}")))
}

impl<'a> Fields<'a> {
    /// `extra`'s members: split in the first pass, or parsed now from the
    /// raw member (`Err` with the raw value when it is not an object).
    fn take_extra(&mut self) -> Option<Result<Box<Fields<'a>>, &'a RawValue>> {
        if let Some(f) = self.extra.take() {
            return Some(Ok(f));
        }
        let i = self.members.iter().position(|(k, _)| k == "extra")?;
        let (_, raw) = self.members.remove(i);
        Some(match raw.get().starts_with('{') {
            true => parse_object(raw.get()).map(Box::new).map_err(|_| raw),
            false => Err(raw),
        })
    }
}

fn type_name(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

fn wrong(field: &str, want: &str, raw: &RawValue) -> EventError {
    let mut shown = raw.get().to_string();
    if shown.len() > 40 {
        let mut cut = 40;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push('…');
    }
    EventError::new(
        field,
        format!("expected {want}, got {} `{shown}`", type_name(raw)),
    )
}

/// The text of a raw JSON string without escapes: its bytes between the
/// quotes are the string itself (the scanner already validated them), so no
/// second parse is needed. `None` for any other value or a string with
/// escapes.
fn plain_str(raw: &RawValue) -> Option<&str> {
    let s = raw.get();
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.as_bytes().contains(&b'\\')).then_some(inner)
}

fn string(field: &str, raw: &RawValue) -> Result<String, EventError> {
    if let Some(s) = plain_str(raw) {
        return Ok(s.to_owned());
    }
    serde_json::from_str::<String>(raw.get()).map_err(|_| wrong(field, "a string", raw))
}

fn opt_string(field: &str, raw: &RawValue) -> Result<Option<String>, EventError> {
    if is_null(raw) {
        Ok(None)
    } else {
        string(field, raw).map(Some)
    }
}

// A raw JSON value that is a number is exactly a JSON number literal, which
// the standard parsers read as serde_json does (correctly rounded), without
// a deserializer per field; anything else (a string, null, ...) fails them.
fn number(field: &str, raw: &RawValue) -> Result<f64, EventError> {
    raw.get()
        .parse::<f64>()
        .map_err(|_| wrong(field, "a number", raw))
}

fn count(field: &str, raw: &RawValue) -> Result<u64, EventError> {
    raw.get()
        .parse::<u64>()
        .map_err(|_| wrong(field, "a non-negative integer", raw))
}

fn opt_count(field: &str, raw: &RawValue) -> Result<Option<u64>, EventError> {
    if is_null(raw) {
        Ok(None)
    } else {
        count(field, raw).map(Some)
    }
}

/// A free-form `extra` value. One that serde_json cannot hold (a number
/// beyond f64, say) is kept as its JSON text: `extra` is never exported
/// unless allow-listed, so it must not cost the event.
fn extra_value(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or_else(|_| Value::String(raw.get().to_string()))
}

/// Merge an `extra` object's members into the event's `extra` (a nested
/// `extra` inside it is kept as a value of its own).
fn merge_extra(into: &mut serde_json::Map<String, Value>, mut f: Fields<'_>) {
    if let Some(nested) = f.take_extra() {
        let value = match nested {
            Ok(inner) => {
                let mut map = serde_json::Map::new();
                merge_extra(&mut map, *inner);
                Value::Object(map)
            }
            Err(raw) => extra_value(raw),
        };
        into.insert("extra".into(), value);
    }
    for (k, raw) in f.members {
        into.insert(k.into_owned(), extra_value(raw));
    }
}

/// Set the FlowEvent field `key` from its raw value; `Ok(false)` when
/// `key` is not a FlowEvent field (it belongs in `extra`).
fn set_field(
    ev: &mut FlowEvent,
    key: &str,
    raw: &RawValue,
    saw_ts: &mut bool,
) -> Result<bool, EventError> {
    match key {
        "event" | "event_type" => ev.event_type = string(key, raw)?,
        "ts" => {
            ev.ts = number("ts", raw)?;
            *saw_ts = true;
        }
        "node_name" => ev.node_name = opt_string("node_name", raw)?,
        "node_id" => ev.node_id = opt_string("node_id", raw)?,
        "trace_id" => ev.trace_id = opt_string("trace_id", raw)?,
        "attempt" => {
            let a = count("attempt", raw)?;
            ev.attempt = u32::try_from(a)
                .map_err(|_| EventError::new("attempt", format!("too large: {a}")))?;
        }
        "latency_ms" => {
            ev.latency_ms = if is_null(raw) {
                None
            } else {
                Some(number("latency_ms", raw)?)
            }
        }
        "q_depth_in" | "queue_depth_in" => ev.queue_depth_in = count(key, raw)?,
        "q_depth_out" | "queue_depth_out" => ev.queue_depth_out = count(key, raw)?,
        // Derived (in + out): recomputed, never trusted.
        "q_depth_total" => {}
        "outgoing" | "outgoing_edges" => ev.outgoing_edges = count(key, raw)?,
        "queue_maxsize" => ev.queue_maxsize = count("queue_maxsize", raw)?,
        "trace_pending" => ev.trace_pending = opt_count("trace_pending", raw)?,
        "trace_inflight" => ev.trace_inflight = count("trace_inflight", raw)?,
        "trace_cancelled" => {
            ev.trace_cancelled = serde_json::from_str::<bool>(raw.get())
                .map_err(|_| wrong("trace_cancelled", "a boolean", raw))?
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// An empty event for the parsers to fill (type and `ts` to be set).
pub(crate) fn blank() -> FlowEvent {
    FlowEvent::builder(String::new(), f64::NAN).event
}

fn from_fields(fields: Fields<'_>) -> Result<FlowEvent, EventError> {
    let mut ev = blank();
    let mut saw_ts = false;
    let mut fields = fields;
    match fields.take_extra() {
        // The dataclass form keeps extra nested; to_payload() merges it.
        Some(Ok(inner)) => merge_extra(&mut ev.extra, *inner),
        Some(Err(raw)) => {
            ev.extra.insert("extra".into(), extra_value(raw));
        }
        None => {}
    }
    for (key, raw) in fields.members {
        if !set_field(&mut ev, &key, raw, &mut saw_ts)? {
            ev.extra.insert(key.into_owned(), extra_value(raw));
        }
    }
    if ev.event_type.is_empty() {
        return Err(EventError::new("event", "must be a non-empty string"));
    }
    if !saw_ts {
        return Err(EventError::new("ts", "missing"));
    }
    ev.validate()?;
    Ok(ev)
}

#[cfg(test)]
mod tests;
