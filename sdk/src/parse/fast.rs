//! The usual lines in one serde pass, when `scan.rs` (tried first) left
//! them: a PenguiFlow log line whose `extra` holds the event, or a bare
//! `to_payload()` object without a nested `extra`.
//! Each member goes straight into the event as it is read: no list of
//! members, no second look at them.
//!
//! Anything else, and anything wrong (a field of the wrong type, a missing
//! `ts`, a line that is not a FlowEvent, a nested `extra`, a repeated
//! `extra`), returns `None` and is left to the general parser, which gives
//! the same event or the exact error. The two agree on every line where
//! this one answers: the tests below compare them on the fuzzing corpus,
//! the example logs and generated lines.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use smallvec::SmallVec;

use super::{blank, extra_value, set_field, Key, FLOW_EVENT_KEYS};
use crate::event::FlowEvent;

/// The event of `input`, or `None` for the general parser to decide.
pub(super) fn parse(input: &str) -> Option<FlowEvent> {
    super::scan::parse(input).or_else(|| parse_serde(input))
}

/// `parse` after `scan.rs` left the line.
pub(super) fn parse_serde(input: &str) -> Option<FlowEvent> {
    // Both objects are filled in place: an event is a few hundred bytes,
    // and moving it out through serde's layers cost more than the filling.
    let (mut top, mut inner) = (Object::default(), Object::default());
    let mut de = serde_json::Deserializer::from_str(input);
    de.deserialize_map(Level {
        out: &mut top,
        inner: Some(&mut inner),
    })
    .ok()?;
    de.end().ok()?;
    match (top.saw_event, inner.present) {
        // A bare payload.
        (true, false) if !top.bad => {
            for (k, raw) in std::mem::take(&mut top.unknown) {
                top.ev.extra.insert(k.into_owned(), extra_value(raw));
            }
            top.finish()
        }
        // A log line: its wrapper's members do not matter.
        (false, true) => inner.finish(),
        _ => None,
    }
}

/// One object's members, as read into an event.
struct Object<'de> {
    ev: FlowEvent,
    saw_ts: bool,
    saw_event: bool,
    /// `ts` or a key only FlowEvents carry (see the module docs of `parse`).
    evidence: bool,
    /// Members that are no FlowEvent field, kept raw (top level only: they
    /// matter only if the line turns out to be a bare payload).
    unknown: SmallVec<[(Cow<'de, str>, &'de RawValue); 8]>,
    /// A field of the wrong type (top level only: a log line's wrapper may
    /// hold anything).
    bad: bool,
    /// Whether the object was in the line (the `extra` one may not be).
    present: bool,
}

impl Default for Object<'_> {
    fn default() -> Self {
        Object {
            ev: blank(),
            saw_ts: false,
            saw_event: false,
            evidence: false,
            unknown: SmallVec::new(),
            bad: false,
            present: false,
        }
    }
}

impl Object<'_> {
    /// The event, when it is a complete, valid FlowEvent candidate.
    fn finish(self) -> Option<FlowEvent> {
        let ok = self.saw_event
            && self.evidence
            && self.saw_ts
            && !self.ev.event_type.is_empty()
            && self.ev.validate().is_ok();
        ok.then_some(self.ev)
    }
}

/// Visits the line (with a place for its `extra`) or its `extra` object.
struct Level<'a, 'de> {
    out: &'a mut Object<'de>,
    /// Where the `extra` object goes: `None` inside `extra` itself.
    inner: Option<&'a mut Object<'de>>,
}

impl<'de> DeserializeSeed<'de> for Level<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

/// Leave the line to the general parser.
fn general<E: de::Error>() -> E {
    E::custom("left to the general parser")
}

impl<'de> Visitor<'de> for Level<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Level { out, mut inner } = self;
        let top = inner.is_some();
        out.present = true;
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            if k == "extra" {
                // Nested in the event, or a second one: the general parser.
                match inner.as_deref_mut() {
                    Some(o) if !o.present => map.next_value_seed(Level {
                        out: o,
                        inner: None,
                    })?,
                    _ => return Err(general()),
                }
                continue;
            }
            // The key makes the object an event, whatever its value.
            let is_event = k == "event" || k == "event_type";
            out.saw_event |= is_event;
            if !out.evidence {
                out.evidence = k == "ts" || FLOW_EVENT_KEYS.contains(&k.as_ref());
            }
            if !top {
                // Inside `extra`, where a wrong type is left to the general
                // parser: the fields' values are read as their types.
                if !read_field(out, &k, &mut map)? {
                    let raw: &'de RawValue = map.next_value()?;
                    out.ev.extra.insert(k.into_owned(), extra_value(raw));
                } else if is_event && out.ev.event_type.chars().any(char::is_whitespace) {
                    return Err(general());
                }
                continue;
            }
            let raw: &'de RawValue = map.next_value()?;
            match set_field(&mut out.ev, &k, raw, &mut out.saw_ts) {
                Ok(true) => {
                    // A sentence is a log message, not an event type.
                    if is_event && out.ev.event_type.chars().any(char::is_whitespace) {
                        return Err(general());
                    }
                }
                Ok(false) => out.unknown.push((k, raw)),
                Err(_) => out.bad = true,
            }
        }
        Ok(())
    }
}

/// Read the value of the FlowEvent field `key` as its type, the way
/// `set_field` reads it from raw text (a wrong type fails the pass);
/// `Ok(false)` when `key` is no FlowEvent field and its value is unread.
fn read_field<'de, A: MapAccess<'de>>(
    out: &mut Object<'de>,
    key: &str,
    map: &mut A,
) -> Result<bool, A::Error> {
    let ev = &mut out.ev;
    match key {
        "event" | "event_type" => ev.event_type = map.next_value()?,
        "ts" => {
            ev.ts = map.next_value()?;
            out.saw_ts = true;
        }
        "node_name" => ev.node_name = map.next_value()?,
        "node_id" => ev.node_id = map.next_value()?,
        "trace_id" => ev.trace_id = map.next_value()?,
        "attempt" => ev.attempt = u32::try_from(map.next_value::<u64>()?).map_err(|_| general())?,
        "latency_ms" => ev.latency_ms = map.next_value()?,
        "q_depth_in" | "queue_depth_in" => ev.queue_depth_in = map.next_value()?,
        "q_depth_out" | "queue_depth_out" => ev.queue_depth_out = map.next_value()?,
        // Derived (in + out): recomputed, never trusted.
        "q_depth_total" => {
            map.next_value::<de::IgnoredAny>()?;
        }
        "outgoing" | "outgoing_edges" => ev.outgoing_edges = map.next_value()?,
        "queue_maxsize" => ev.queue_maxsize = map.next_value()?,
        "trace_pending" => ev.trace_pending = map.next_value()?,
        "trace_inflight" => ev.trace_inflight = map.next_value()?,
        "trace_cancelled" => ev.trace_cancelled = map.next_value()?,
        _ => return Ok(false),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general parser's answer.
    fn general_answer(line: &str) -> Result<FlowEvent, crate::event::EventError> {
        super::super::parse_general(line)
    }

    /// Where the fast path answers, it answers as the general parser does.
    fn agree(line: &str) -> bool {
        super::super::agrees_with_general(parse(line), line)
    }

    fn lines_of(path: &std::path::Path) -> Vec<String> {
        let bytes = std::fs::read(path).unwrap();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn it_agrees_with_the_general_parser_on_real_logs_and_the_fuzzing_corpus() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut lines = Vec::new();
        for dir in [
            "examples/penguiflow",
            "fuzz/corpus/parse",
            "sdk/tests/fixtures",
        ] {
            let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "py"))
                .collect();
            files.sort();
            for f in files {
                lines.extend(lines_of(&f));
            }
        }
        let answered = lines.iter().filter(|l| agree(l)).count();
        // The real PenguiFlow logs are nearly all FlowEvents: the fast path
        // must take most lines, or it is not the path the bridge runs.
        let real: Vec<String> = [
            "examples/penguiflow/sample.log",
            "examples/penguiflow/incident.log",
        ]
        .iter()
        .flat_map(|f| lines_of(&root.join(f)))
        .collect();
        let real_events = real.iter().filter(|l| general_answer(l).is_ok()).count();
        let real_fast = real.iter().filter(|l| parse(l).is_some()).count();
        assert_eq!(
            real_fast, real_events,
            "every real event takes the fast path"
        );
        assert!(answered > 0 && real_events > 10, "{answered} {real_events}");
    }

    use proptest::prelude::*;

    /// A JSON value of any kind a field might be given.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("{}".to_string()),
            Just(r#"{"code":"X"}"#.to_string()),
            Just("[1,2]".to_string()),
            Just("1e999".to_string()),
            (0u64..5_000_000_000).prop_map(|n| n.to_string()),
            (-5i64..0).prop_map(|n| n.to_string()),
            (0.0f64..2e9).prop_map(|f| f.to_string()),
            "[a-z_ ]{0,12}".prop_map(|s| format!("{s:?}")),
            Just(r#""3e512c5b0a184257a25c215d19544e6a""#.to_string()),
            Just(r#""n\u00e9 \"q\"""#.to_string()),
        ]
    }

    /// Members: FlowEvent keys (with typical or arbitrary values) and
    /// others, in any order, sometimes twice.
    fn members() -> impl Strategy<Value = Vec<(String, String)>> {
        let key = prop_oneof![
            Just("event"),
            Just("event_type"),
            Just("ts"),
            Just("node_name"),
            Just("node_id"),
            Just("trace_id"),
            Just("attempt"),
            Just("latency_ms"),
            Just("q_depth_in"),
            Just("queue_depth_out"),
            Just("q_depth_total"),
            Just("outgoing"),
            Just("queue_maxsize"),
            Just("trace_pending"),
            Just("trace_inflight"),
            Just("trace_cancelled"),
            Just("sleep_s"),
            Just("exception"),
            Just("flow_error"),
            Just(""),
            Just("ev\\u0065nt"),
        ];
        let kv = |k: &str, v: &str| Just((k.to_string(), v.to_string()));
        let typical = prop_oneof![
            kv("event", r#""node_success""#),
            kv("event", r#""node_start""#),
            (1.0f64..2e9).prop_map(|t| ("ts".to_string(), t.to_string())),
            (0.0f64..1e4).prop_map(|l| ("latency_ms".to_string(), l.to_string())),
            kv("node_name", r#""triage""#),
            kv("node_id", r#""b4c0""#),
            kv("trace_id", r#""3e512c5b0a184257a25c215d19544e6a""#),
            (0u32..5).prop_map(|a| ("attempt".to_string(), a.to_string())),
            kv("q_depth_in", "3"),
            kv("trace_pending", "null"),
            kv("trace_cancelled", "false"),
            kv("exception", r#""ValueError('x')""#),
            kv("level", r#""INFO""#),
        ];
        let any = (key, value()).prop_map(|(k, v)| (k.to_string(), v));
        prop::collection::vec(prop_oneof![6 => typical, 1 => any], 0..12)
    }

    fn object(members: &[(String, String)]) -> String {
        let body: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!("{{{}}}", body.join(","))
    }

    /// A line of one of the shapes from generated members.
    fn line() -> impl Strategy<Value = String> {
        (members(), members(), members(), 0u8..6).prop_map(|(outer, inner, nested, shape)| {
            let with_extra = |mut o: Vec<(String, String)>, extra: String| {
                o.push(("extra".into(), extra));
                object(&o)
            };
            match shape {
                // A bare payload.
                0 => object(&outer),
                // A log line.
                1 => with_extra(outer, object(&inner)),
                // A log line whose extra nests an extra.
                2 => with_extra(outer, with_extra(inner, object(&nested))),
                // A bare payload with a non-object extra.
                3 => with_extra(outer, "[1]".into()),
                // A log line whose event starts valid, then gets the
                // generated members (which may override or break it).
                _ => {
                    let mut base = vec![
                        ("event".to_string(), r#""node_success""#.to_string()),
                        ("ts".to_string(), "1795305121.5".to_string()),
                    ];
                    base.extend(inner);
                    with_extra(outer, object(&base))
                }
            }
        })
    }

    #[test]
    fn generated_lines_get_the_general_parsers_answer() {
        // The same 3000 lines every run.
        let answered = super::super::generated_answers(3000, line(), agree);
        // Enough of them are events for the comparison to mean something.
        assert!(answered > 200, "only {answered} answered");
    }

    #[test]
    fn it_leaves_odd_and_wrong_lines_to_the_general_parser() {
        for line in [
            // Nested or repeated `extra`.
            r#"{"event":"a","ts":1,"extra":{"k":"v"}}"#,
            r#"{"level":"I","extra":{"event":"a","ts":1,"extra":{"k":1}}}"#,
            r#"{"extra":{"event":"a","ts":1},"extra":{"event":"b","ts":2}}"#,
            // Wrong types, missing or invalid fields.
            r#"{"event":"a","ts":"late"}"#,
            r#"{"event":"a","node_name":"x"}"#,
            r#"{"event":"","ts":1}"#,
            r#"{"event":"a","ts":1,"latency_ms":-1}"#,
            r#"{"level":"I","extra":{"event":"a","ts":1,"attempt":1.5}}"#,
            // Not FlowEvents.
            r#"{"event":"user logged in","ts":1}"#,
            r#"{"event":"user_login","trace_id":"x","attempt":2}"#,
            r#"{"level":"I","extra":{"user":1}}"#,
            r#"[1,2]"#,
            r#"{"event":"a","ts":1} trailing"#,
        ] {
            assert!(parse(line).is_none(), "{line}");
        }
        // Both shapes, with unknown keys, escapes and a wrapper whose own
        // fields would be wrong for an event.
        for line in [
            r#"{"event":"node_retry","ts":10.5,"node_name":"a","attempt":2,"sleep_s":0.5,"q_depth_total":9}"#,
            r#"{"ts":"2026-11-21","level":"I","extra":{"ev\u0065nt":"node_start","ts":1,"node_name":"n\u00e9","flow_error":{"code":"X"}}}"#,
        ] {
            assert!(agree(line), "{line}");
        }
    }
}
