//! The commonest line of all, read without serde's layers: a PenguiFlow
//! log line `{"level": ..., "extra": {...}}` whose `extra` is a flat
//! FlowEvent, whose keys have no escapes and whose values (but `extra`)
//! are scalars. This is nearly every line a PenguiFlow service writes (all
//! but `node_failed`, whose `flow_error` is an object).
//!
//! It checks all of the line's JSON (strings free of control characters,
//! escapes as JSON has them, numbers as the grammar has them, nothing after
//! the object) and reads each field as `fast.rs` reads it; a string value
//! with escapes is decoded by serde_json. On anything else (an escaped key,
//! a nested value, a field of the wrong type, a repeated field, an `event`
//! in the wrapper, a bare payload) it answers `None`, and `fast.rs`, then
//! the general parser, decide. Its tests, and those of `fast.rs`, compare
//! its answers with the general parser's: real logs, generated lines, and
//! every cut and one-byte damage of twelve real lines.
//!
//! Why by hand, measured on `scripts/bench-ingest`'s lines: `fast.rs`
//! (serde_json with a visitor that fills the event in place) was about
//! 1.3 µs per line, half of `flowtel ingest`'s CPU. serde_json only
//! checking such a line (`IgnoredAny`, building nothing) takes 0.45 µs;
//! simd-json's tape 0.84 µs (these two with a throwaway program, not in the
//! repository). With this path first, `parse_rate` on 300 000 lines uses
//! 0.84× the CPU (paired runs of the example built before and after the
//! commit that added this file, reading and line splitting included), and
//! the reading thread of `flowtel ingest` 0.2–0.3 µs less per event.
//!
//! A plain line (no backslash, no control character: nearly every line)
//! is checked once, in one vectorised pass, and its strings end at the next
//! quote, found eight bytes at a time; other lines take the checking path.
//! Measured with callgrind on 60 000 `scripts/bench-ingest` lines:
//! `flowtel ingest` went from 19 389 to 17 731 instructions per event; a
//! parse of a line in memory from 875 to 727 ns (paired runs of a throwaway
//! program).

use serde_json::Value;

use crate::event::FlowEvent;

/// The event of `input`, or `None` for `fast.rs` to decide.
pub(super) fn parse(input: &str) -> Option<FlowEvent> {
    // Filled in place (the event is large: not moved from call to call).
    let mut event = super::blank();
    fill(input, &mut event, Spare::default()).map(|()| event)
}

/// The event of `input` written over `ev`, an event already used, whose
/// strings' buffers are filled again instead of allocated anew (`None`:
/// `fast.rs` decides, and `ev` holds nothing of use).
pub(super) fn parse_into(input: &str, ev: &mut FlowEvent) -> Option<()> {
    // A buffer is kept only while small: a burst of long values does not
    // stay pinned in events parsed over for the life of a producer.
    let small = |b: Option<String>| b.filter(|b| b.capacity() <= 4096);
    let mut event_type = small(Some(std::mem::take(&mut ev.event_type))).unwrap_or_default();
    event_type.clear();
    let spare = Spare {
        node_name: small(ev.node_name.take()),
        node_id: small(ev.node_id.take()),
        trace_id: small(ev.trace_id.take()),
    };
    *ev = super::blank();
    ev.event_type = event_type;
    fill(input, ev, spare)
}

/// The string buffers of an event used before, for the same fields.
#[derive(Default)]
struct Spare {
    node_name: Option<String>,
    node_id: Option<String>,
    trace_id: Option<String>,
}

/// `input` read into `event`, a blank event (but for the buffers of its
/// `event_type` and of `spare`).
fn fill(input: &str, event: &mut FlowEvent, mut spare: Spare) -> Option<()> {
    let b = input.as_bytes();
    let mut s = Scanner {
        s: input,
        b,
        at: 0,
        plain: is_plain(b),
    };
    s.byte(b'{')?;
    let mut read = false;
    if s.peek()? == b'}' {
        return None;
    }
    // The wrapper member PenguiFlow writes next (its order: `WRAPPER`).
    let mut next = 0;
    loop {
        let key = match WRAPPER.get(next) {
            Some(&(quoted, key)) if s.takes(quoted) => {
                next += 1;
                key
            }
            _ => {
                let key = s.string()?;
                s.byte(b':')?;
                next = WRAPPER
                    .iter()
                    .position(|&(_, k)| k == key)
                    .map_or(next, |i| i + 1);
                key
            }
        };
        match key {
            "extra" if !read => {
                inner(&mut s, event, &mut spare)?;
                read = true;
            }
            // A second `extra`, or an `event` in the wrapper.
            "extra" | "event" | "event_type" => return None,
            // The wrapper's own values are only checked.
            _ => s.skip_scalar()?,
        }
        if !s.next_member()? {
            break;
        }
    }
    s.end()?;
    read.then_some(())
}

/// The `extra` object, read into `ev` (`None`: not a complete, valid
/// event).
fn inner(s: &mut Scanner<'_>, ev: &mut FlowEvent, spare: &mut Spare) -> Option<()> {
    s.byte(b'{')?;
    // Fields already read (a repeated one is left to the others).
    let mut seen = 0u32;
    if s.peek()? == b'}' {
        return None;
    }
    // The field PenguiFlow writes next (its order: `ORDER`).
    let mut next = 0;
    loop {
        let (f, key) = match ORDER.get(next) {
            Some(&quoted) if s.takes(quoted) => (Some(Field::IN_ORDER[next]), ""),
            _ => {
                let key = s.string()?;
                s.byte(b':')?;
                (field(key), key)
            }
        };
        match f {
            Some(f) => {
                let bit = 1u32 << f as u32;
                if seen & bit != 0 {
                    return None;
                }
                seen |= bit;
                // A count written plainly is read as it is scanned.
                match f.is_count().then(|| s.plain_count()).flatten() {
                    Some(n) => set_count(ev, f, n)?,
                    None => set(ev, spare, f, s.scalar()?)?,
                }
                next = f as usize + 1;
            }
            None => {
                let value = s.scalar()?;
                if key == "extra" {
                    return None;
                }
                let v = match value {
                    Scalar::Str(t) => Value::String(t.to_owned()?),
                    Scalar::Num(n) => serde_json::from_str(n).ok()?,
                    Scalar::Bool(b) => Value::Bool(b),
                    Scalar::Null => Value::Null,
                };
                if ev.extra.insert(key.to_string(), v).is_some() {
                    return None;
                }
            }
        }
        if !s.next_member()? {
            break;
        }
    }
    let has = |f: Field| seen & (1u32 << f as u32) != 0;
    let complete = has(Field::Event) && has(Field::Ts) && !ev.event_type.is_empty();
    (complete && ev.validate().is_ok()).then_some(())
}

/// The FlowEvent fields a log line's `extra` may carry (aliases share
/// one), in the order PenguiFlow writes them.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Field {
    Ts,
    Event,
    NodeName,
    NodeId,
    TraceId,
    Latency,
    DepthIn,
    DepthOut,
    DepthTotal,
    Outgoing,
    MaxSize,
    Attempt,
    Inflight,
    Cancelled,
    Pending,
}

impl Field {
    /// Whether the field is a count: a non-negative integer (`set_count`).
    fn is_count(self) -> bool {
        matches!(
            self,
            Field::DepthIn
                | Field::DepthOut
                | Field::DepthTotal
                | Field::Outgoing
                | Field::MaxSize
                | Field::Attempt
                | Field::Inflight
                | Field::Pending
        )
    }

    /// Every field, each at its own index.
    const IN_ORDER: [Field; 15] = [
        Field::Ts,
        Field::Event,
        Field::NodeName,
        Field::NodeId,
        Field::TraceId,
        Field::Latency,
        Field::DepthIn,
        Field::DepthOut,
        Field::DepthTotal,
        Field::Outgoing,
        Field::MaxSize,
        Field::Attempt,
        Field::Inflight,
        Field::Cancelled,
        Field::Pending,
    ];
}

/// The keys of `extra`, quotes included, as PenguiFlow 3.11.2 writes them
/// (`FlowEvent.to_payload`), each at the index of its `Field`, with the
/// separator Python's `json.dumps` writes after a key (`": "`). A line's
/// next key is first compared with the one expected after the last field
/// read: where a key begins, bytes equal to `"ts": ` are the key `ts` and
/// its colon, so one comparison stands for finding the closing quote,
/// matching the key among all fields' and reading the colon. Any other key
/// (an alias, an extra field, another order, other white space) is read
/// and matched as before. Measured with callgrind on
/// 60 000 `scripts/bench-ingest` lines: `flowtel ingest` went from 16 442
/// to 15 056 instructions per event (one run each; runs of one binary
/// differ by up to ±100). Taking the colon (and `next_member` the comma)
/// in the same comparison took `parse` from 373.8 M to 335.2 M
/// instructions for those lines (its inclusive cost, which does not vary
/// between runs): 640 per event, white space no longer skipped around
/// every colon and comma.
const ORDER: [&[u8]; 15] = [
    b"\"ts\": ",
    b"\"event\": ",
    b"\"node_name\": ",
    b"\"node_id\": ",
    b"\"trace_id\": ",
    b"\"latency_ms\": ",
    b"\"q_depth_in\": ",
    b"\"q_depth_out\": ",
    b"\"q_depth_total\": ",
    b"\"outgoing\": ",
    b"\"queue_maxsize\": ",
    b"\"attempt\": ",
    b"\"trace_inflight\": ",
    b"\"trace_cancelled\": ",
    b"\"trace_pending\": ",
];

/// The wrapper's members as PenguiFlow's JSON log formatter writes them,
/// quoted with their colon, and bare (compared as `ORDER` is).
const WRAPPER: [(&[u8], &str); 5] = [
    (b"\"level\": ", "level"),
    (b"\"logger\": ", "logger"),
    (b"\"message\": ", "message"),
    (b"\"timestamp\": ", "timestamp"),
    (b"\"extra\": ", "extra"),
];

fn field(key: &str) -> Option<Field> {
    Some(match key {
        "event" | "event_type" => Field::Event,
        "ts" => Field::Ts,
        "node_name" => Field::NodeName,
        "node_id" => Field::NodeId,
        "trace_id" => Field::TraceId,
        "attempt" => Field::Attempt,
        "latency_ms" => Field::Latency,
        "q_depth_in" | "queue_depth_in" => Field::DepthIn,
        "q_depth_out" | "queue_depth_out" => Field::DepthOut,
        "q_depth_total" => Field::DepthTotal,
        "outgoing" | "outgoing_edges" => Field::Outgoing,
        "queue_maxsize" => Field::MaxSize,
        "trace_pending" => Field::Pending,
        "trace_inflight" => Field::Inflight,
        "trace_cancelled" => Field::Cancelled,
        _ => return None,
    })
}

/// Set `f` from `v`, read as `fast.rs` reads it (`None`: a type it would
/// refuse, or an event type that is a sentence).
fn set(ev: &mut FlowEvent, spare: &mut Spare, f: Field, v: Scalar<'_>) -> Option<()> {
    match f {
        Field::Event => {
            v.write_into(&mut ev.event_type)?;
            if ev.event_type.chars().any(char::is_whitespace) {
                return None;
            }
        }
        Field::Ts => ev.ts = v.float()?,
        Field::NodeName => ev.node_name = v.opt_string(spare.node_name.take())?,
        Field::NodeId => ev.node_id = v.opt_string(spare.node_id.take())?,
        Field::TraceId => ev.trace_id = v.opt_string(spare.trace_id.take())?,
        Field::Latency => {
            ev.latency_ms = match v {
                Scalar::Null => None,
                v => Some(v.float()?),
            }
        }
        // Derived (in + out): recomputed, never trusted; any value.
        Field::DepthTotal => {}
        Field::Pending if matches!(v, Scalar::Null) => ev.trace_pending = None,
        Field::Attempt
        | Field::DepthIn
        | Field::DepthOut
        | Field::Outgoing
        | Field::MaxSize
        | Field::Pending
        | Field::Inflight => set_count(ev, f, v.count()?)?,
        Field::Cancelled => match v {
            Scalar::Bool(b) => ev.trace_cancelled = b,
            _ => return None,
        },
    }
    Some(())
}

/// Set the count field `f` to `n` (for `set`, and for a count read as it
/// is scanned).
fn set_count(ev: &mut FlowEvent, f: Field, n: u64) -> Option<()> {
    match f {
        Field::Attempt => ev.attempt = u32::try_from(n).ok()?,
        Field::DepthIn => ev.queue_depth_in = n,
        Field::DepthOut => ev.queue_depth_out = n,
        Field::Outgoing => ev.outgoing_edges = n,
        Field::MaxSize => ev.queue_maxsize = n,
        Field::Pending => ev.trace_pending = Some(n),
        Field::Inflight => ev.trace_inflight = n,
        // Derived: never trusted (as in `set`).
        Field::DepthTotal => {}
        _ => return None,
    }
    Some(())
}

/// A string value as written in the line.
#[derive(Clone, Copy)]
enum Text<'a> {
    /// Its contents: there is no escape in it.
    Plain(&'a str),
    /// The whole token, quotes included: serde_json decodes it.
    Escaped(&'a str),
}

impl Text<'_> {
    fn to_owned(self) -> Option<String> {
        match self {
            Text::Plain(t) => Some(t.to_string()),
            Text::Escaped(raw) => serde_json::from_str(raw).ok(),
        }
    }

    /// The text written over `buf`, into its buffer where there is no
    /// escape to decode.
    fn write_into(self, buf: &mut String) -> Option<()> {
        match self {
            Text::Plain(t) => {
                buf.clear();
                buf.push_str(t);
            }
            Text::Escaped(raw) => *buf = serde_json::from_str(raw).ok()?,
        }
        Some(())
    }
}

/// A scalar JSON value, as written in the line.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Str(Text<'a>),
    /// A number's text (checked against the JSON grammar).
    Num(&'a str),
    Bool(bool),
    Null,
}

impl<'a> Scalar<'a> {
    /// A string, written over `buf` (`None`: not a string).
    fn write_into(self, buf: &mut String) -> Option<()> {
        match self {
            Scalar::Str(t) => t.write_into(buf),
            _ => None,
        }
    }

    /// A string or null; a string goes into `buf`, a spare buffer, when
    /// there is one.
    fn opt_string(self, buf: Option<String>) -> Option<Option<String>> {
        match self {
            Scalar::Null => Some(None),
            Scalar::Str(t) => {
                let mut buf = buf.unwrap_or_default();
                t.write_into(&mut buf)?;
                Some(Some(buf))
            }
            _ => None,
        }
    }

    /// A number as an f64 (serde_json, with `float_roundtrip`, rounds as
    /// the standard library does); out of range is left to serde_json.
    fn float(self) -> Option<f64> {
        match self {
            Scalar::Num(n) => n.parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        }
    }

    /// A non-negative integer that fits a u64 (no fraction, no exponent).
    fn count(self) -> Option<u64> {
        let Scalar::Num(n) = self else {
            return None;
        };
        n.bytes().try_fold(0u64, |acc, d| {
            if !d.is_ascii_digit() {
                return None;
            }
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
    }
}

struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    at: usize,
    /// The whole line holds no backslash and no control character (see
    /// [`is_plain`]): every string ends at its next quote, and needs no
    /// check of its own.
    plain: bool,
}

/// Whether `bytes` hold a control character, which JSON wants escaped
/// (no early exit: the loop is vectorised).
fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, &c| found | (c < 0x20))
}

/// Whether a line holds neither a backslash nor a control character: one
/// vectorised pass over the line instead of a check per string. Nearly
/// every PenguiFlow line is plain (no escapes, one space between tokens);
/// a line with a tab or an escape anywhere takes the checking path.
fn is_plain(bytes: &[u8]) -> bool {
    !bytes
        .iter()
        .fold(false, |found, &c| found | (c < 0x20) | (c == b'\\'))
}

/// The index of the first quote in `b` from `from`, eight bytes at a time
/// (SWAR: a word's zero bytes after XOR with quotes; exact, no false
/// positives). For the short strings of a log line this beats a call to
/// memchr, whose set-up is for long haystacks.
fn find_quote(b: &[u8], from: usize) -> Option<usize> {
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().ok()?) ^ QUOTES;
        // The high bit of each byte of x that is zero, and of no other.
        let zero = !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7);
        if zero != 0 {
            return Some(i + (zero.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?.iter().position(|&c| c == b'"').map(|p| i + p)
}

/// Whether `a` equals `b`, a word at a time, the last word overlapping
/// the one before. The keys `takes` compares are 6 to 19 bytes long; for
/// them the call to memcmp that `==` makes cost more than the comparison.
/// Measured with callgrind on 60 000 `scripts/bench-ingest` lines: `parse`
/// went from 334.8 M to 320.7 M instructions (235 per line).
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        if n < 4 {
            return a == b;
        }
        let word = |s: &[u8], i: usize| {
            s.get(i..i + 4)
                .and_then(|w| w.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        return word(a, 0) == word(b, 0) && word(a, n - 4) == word(b, n - 4);
    }
    let word = |s: &[u8], i: usize| {
        s.get(i..i + 8)
            .and_then(|w| w.try_into().ok())
            .map(u64::from_ne_bytes)
    };
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

impl<'a> Scanner<'a> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after white space, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.b.get(self.at).copied()
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.peek()? == want).then(|| self.at += 1)
    }

    /// A string without escapes, the opening quote next.
    fn string(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        if self.plain {
            let start = self.at;
            let end = find_quote(self.b, start)?;
            self.at = end + 1;
            return self.s.get(start..end);
        }
        let rest = &self.b[self.at..];
        let len = memchr::memchr2(b'"', b'\\', rest)?;
        // An escape, or a control character JSON wants escaped.
        if rest[len] == b'\\' || has_control(&rest[..len]) {
            return None;
        }
        let start = self.at;
        self.at += len + 1;
        // The cuts fall on ASCII quotes: char boundaries.
        self.s.get(start..start + len)
    }

    /// A string value: its contents when it has no escape, else the whole
    /// token (checked as `skip_string` checks it).
    fn text(&mut self) -> Option<Text<'a>> {
        if self.plain {
            return self.string().map(Text::Plain);
        }
        self.skip_ws();
        let start = self.at;
        let rest = self.b.get(start + 1..)?;
        if let Some(len) = memchr::memchr2(b'"', b'\\', rest) {
            if rest[len] == b'"' && !has_control(&rest[..len]) {
                self.at = start + 1 + len + 1;
                return self.s.get(start + 1..start + 1 + len).map(Text::Plain);
            }
        }
        self.skip_string()?;
        self.s.get(start..self.at).map(Text::Escaped)
    }

    /// A string, escapes and all, checked as serde_json checks a string it
    /// skips: no control characters, and every escape one of JSON's.
    fn skip_string(&mut self) -> Option<()> {
        if self.plain {
            return self.string().map(|_| ());
        }
        self.byte(b'"')?;
        loop {
            let rest = &self.b[self.at..];
            let len = memchr::memchr2(b'"', b'\\', rest)?;
            if has_control(&rest[..len]) {
                return None;
            }
            self.at += len + 1;
            if rest[len] == b'"' {
                return Some(());
            }
            match self.b.get(self.at)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                b'u' => {
                    let hex = self.b.get(self.at + 1..self.at + 5)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    self.at += 5;
                }
                _ => return None,
            }
        }
    }

    /// A scalar whose value does not matter.
    fn skip_scalar(&mut self) -> Option<()> {
        if self.peek()? == b'"' {
            self.skip_string()
        } else {
            self.scalar().map(|_| ())
        }
    }

    /// Whether `quoted` (a key, quotes included: no escape in it, and the
    /// colon after it) is next, after white space; consumed if so.
    fn takes(&mut self, quoted: &[u8]) -> bool {
        self.skip_ws();
        let hit = self
            .b
            .get(self.at..self.at + quoted.len())
            .is_some_and(|r| same(r, quoted));
        if hit {
            self.at += quoted.len();
        }
        hit
    }

    /// A non-negative integer written plainly (`0`, or digits not led by
    /// `0`) that fits a u64, read in the pass that scans it; `None`, with
    /// nothing but white space consumed, for anything else (which `scalar`
    /// then reads as before). 8 of a PenguiFlow event's 15 fields are
    /// counts: through `scalar` and `Scalar::count`, each was scanned, cut
    /// and read again. Measured with callgrind on 60 000
    /// `scripts/bench-ingest` lines: 14 853 → 14 375 instructions per event
    /// (one run each, without LTO; runs differ by up to ±100).
    fn plain_count(&mut self) -> Option<u64> {
        self.skip_ws();
        let start = self.at;
        let mut end = start;
        let mut n = 0u64;
        while let Some(&d) = self.b.get(end).filter(|d| d.is_ascii_digit()) {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            end += 1;
        }
        // What follows (a fraction, an exponent, anything but the end of
        // the member) fails at `next_member`, as after `scalar`.
        let leading_zero = end - start > 1 && self.b[start] == b'0';
        if end == start || leading_zero {
            return None;
        }
        self.at = end;
        Some(n)
    }

    /// A scalar value (`None` for an object, an array or bad JSON).
    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => self.text().map(Scalar::Str),
            b't' => self.literal("true", Scalar::Bool(true)),
            b'f' => self.literal("false", Scalar::Bool(false)),
            b'n' => self.literal("null", Scalar::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &str, v: Scalar<'a>) -> Option<Scalar<'a>> {
        self.b[self.at..].starts_with(word.as_bytes()).then(|| {
            self.at += word.len();
            v
        })
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<Scalar<'a>> {
        let start = self.at;
        let digits = |s: &mut Self| {
            let from = s.at;
            while s.b.get(s.at).is_some_and(u8::is_ascii_digit) {
                s.at += 1;
            }
            s.at - from
        };
        if self.b.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.b.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return None,
        }
        if self.b.get(self.at) == Some(&b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.b.get(self.at) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        // The text is ASCII: the cut is on char boundaries.
        self.s.get(start..self.at).map(Scalar::Num)
    }

    /// After a member: `true` when another follows (a comma), `false` at
    /// the object's end.
    fn next_member(&mut self) -> Option<bool> {
        // As `json.dumps` separates members (`", "`), tried first.
        if self.b.get(self.at..self.at + 2) == Some(b", ") {
            self.at += 2;
            return Some(true);
        }
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(true)
            }
            b'}' => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// Only white space left.
    fn end(&mut self) -> Option<()> {
        self.skip_ws();
        (self.at == self.b.len()).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn general(line: &str) -> Result<FlowEvent, crate::event::EventError> {
        super::super::parse_general(line)
    }

    #[test]
    fn same_answers_as_slice_equality() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=base.len() {
            let a = &base[..n];
            assert!(same(a, a), "{n} bytes");
            // One byte changed at every position, first to last.
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same(a, &b), "{n} bytes, byte {at} differs");
            }
            // Another length never matches.
            assert!(!same(a, &base[..n.saturating_sub(1)]) || n == 0);
        }
    }

    /// Where this path answers, the general parser gives the same event.
    fn agree(line: &str) -> bool {
        let fresh = parse(line);
        recycled_agrees(line, fresh.as_ref());
        super::super::agrees_with_general(fresh, line)
    }

    thread_local! {
        /// The event the last line was parsed into (`recycled_agrees`).
        static LAST: std::cell::RefCell<FlowEvent> = std::cell::RefCell::new(full());
    }

    /// An event with every field set and `extra` members: what a line that
    /// lacks any of them must not inherit.
    fn full() -> FlowEvent {
        let mut ev = FlowEvent::builder("node_error", 1_700_000_000.5)
            .node("old_node", "old-id")
            .trace_id("3e512c5b0a184257a25c215d19544e6a")
            .latency_ms(3.0)
            .attempt(2)
            .build()
            .unwrap();
        ev.queue_depth_in = 7;
        ev.queue_depth_out = 8;
        ev.outgoing_edges = 2;
        ev.queue_maxsize = 64;
        ev.trace_pending = Some(3);
        ev.trace_inflight = 4;
        ev.trace_cancelled = true;
        ev.span_id = Some(opentelemetry::trace::SpanId::from_bytes([1; 8]));
        ev.extra
            .insert("old".into(), serde_json::json!({"k": [1, 2]}));
        ev
    }

    /// Parsed over an event already used (a full one, and the last line's),
    /// `line` gives what a fresh parse gives: nothing of the old event
    /// remains.
    fn recycled_agrees(line: &str, fresh: Option<&FlowEvent>) {
        let mut old = full();
        let answer = parse_into(line, &mut old);
        assert_eq!(answer.is_some(), fresh.is_some(), "{line}");
        if let Some(ev) = fresh {
            assert_eq!(&old, ev, "{line}");
        }
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            let answer = parse_into(line, &mut last);
            assert_eq!(answer.is_some(), fresh.is_some(), "{line}");
            if let Some(ev) = fresh {
                assert_eq!(&*last, ev, "{line}");
            }
        });
    }

    /// All but `node_failed`, whose `flow_error` is a nested object.
    #[test]
    fn every_real_penguiflow_event_takes_this_path() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut events = 0;
        for f in [
            "examples/penguiflow/sample.log",
            "examples/penguiflow/incident.log",
        ] {
            let text = std::fs::read_to_string(root.join(f)).unwrap();
            for line in text.lines() {
                match general(line) {
                    Ok(ev) if ev.event_type != "node_failed" => {
                        assert!(agree(line), "not taken: {line}");
                        events += 1;
                    }
                    _ => {
                        assert!(parse(line).is_none(), "{line}");
                        recycled_agrees(line, None);
                    }
                }
            }
        }
        assert!(events > 30, "{events}");
    }

    #[test]
    fn odd_lines_are_left_to_the_other_parsers() {
        for ok in [
            r#"{"level": "I", "extra": {"event": "node_start", "ts": 1.5}}"#,
            // Escapes in values, decoded by serde_json.
            r#"{"m": "a\"b\u00e9", "extra": {"event": "node_st\u0061rt", "ts": 1.5, "x": "a\nb"}}"#,
        ] {
            assert!(agree(ok), "{ok}");
        }
        for line in [
            // An escape in a key, a bad escape, control characters,
            // nested values.
            r#"{"level": "I", "extra": {"ev\u0065nt": "node_start", "ts": 1.5}}"#,
            r#"{"level": "a\qb", "extra": {"event": "node_start", "ts": 1.5}}"#,
            r#"{"level": "a\u12", "extra": {"event": "node_start", "ts": 1.5}}"#,
            "{\"level\": \"I\u{1}\", \"extra\": {\"event\": \"node_start\", \"ts\": 1.5}}",
            r#"{"level": {"k": 1}, "extra": {"event": "node_start", "ts": 1.5}}"#,
            r#"{"level": "I", "extra": {"event": "node_start", "ts": 1.5, "flow_error": {}}}"#,
            // Numbers outside the grammar or the type.
            r#"{"extra": {"event": "node_start", "ts": 01.5}}"#,
            r#"{"extra": {"event": "node_start", "ts": 1.}}"#,
            r#"{"extra": {"event": "node_start", "ts": 1e999}}"#,
            r#"{"extra": {"event": "node_start", "ts": 1.5, "attempt": -0}}"#,
            r#"{"extra": {"event": "node_start", "ts": 1.5, "attempt": 4294967296}}"#,
            r#"{"extra": {"event": "node_start", "ts": 1.5, "q_depth_in": 1.0}}"#,
            // Repeated fields, a second or nested `extra`, a wrapper event.
            r#"{"extra": {"event": "node_start", "ts": 1.5, "ts": 2.5}}"#,
            r#"{"extra": {"event": "node_start", "ts": 1.5, "x": 1, "x": 2}}"#,
            r#"{"extra": {"event": "node_start", "ts": 1.5}, "extra": {}}"#,
            r#"{"event": "a", "extra": {"event": "node_start", "ts": 1.5}}"#,
            // Not a whole object; not an event.
            r#"{"extra": {"event": "node_start", "ts": 1.5}} x"#,
            r#"{"extra": {"event": "node_start", "ts": 1.5}"#,
            r#"{"extra": {"event": "user logged in", "ts": 1.5}}"#,
            r#"{"extra": {"ts": 1.5}}"#,
            r#"{"event": "node_start", "ts": 1.5}"#,
        ] {
            assert!(parse(line).is_none(), "{line}");
            recycled_agrees(line, None);
        }
    }

    /// Every cut of real lines (each prefix, and each line with one byte
    /// changed to a quote, a backslash, a brace or a control character):
    /// no panic, and the general parser's answer wherever this one answers.
    #[test]
    fn cut_and_damaged_real_lines() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let text = std::fs::read_to_string(root.join("examples/penguiflow/incident.log")).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with('{'))
            .take(12)
            .collect();
        for line in lines {
            for cut in (0..=line.len()).filter(|&i| line.is_char_boundary(i)) {
                agree(&line[..cut]);
            }
            for at in (0..line.len()).filter(|&i| line.is_char_boundary(i)) {
                let end = (at + 1..=line.len())
                    .find(|&j| line.is_char_boundary(j))
                    .unwrap();
                for b in ["\"", "\\", "{", "}", "\u{1}", " ", "0"] {
                    agree(&format!("{}{b}{}", &line[..at], &line[end..]));
                }
            }
        }
    }

    /// A JSON token, valid or not, of every kind a field may be given.
    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            Just("nul".to_string()),
            Just("{}".to_string()),
            Just("[1]".to_string()),
            (0u64..5_000_000_000).prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            (-5i64..0).prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| format!("{f:e}")),
            (0.0f64..2e9).prop_map(|f| f.to_string()),
            prop::sample::select(vec![
                "-0",
                "01",
                "1.",
                ".5",
                "-",
                "1e",
                "1E+2",
                "2e-3",
                "1e999",
                "-1.5e3",
                "0.0",
                "18446744073709551616",
            ])
            .prop_map(str::to_string),
            "[a-z_ é]{0,10}".prop_map(|s| format!("\"{s}\"")),
            Just("\"a\\\"b\"".to_string()),
            Just("\"tab\there\"".to_string()),
        ]
    }

    /// The key in an expected key's bytes (`"ts": ` → `ts`).
    fn key_of(quoted: &[u8]) -> &str {
        let inner = quoted
            .strip_prefix(b"\"")
            .and_then(|q| q.strip_suffix(b"\": "))
            .unwrap();
        std::str::from_utf8(inner).unwrap()
    }

    /// A log line: wrapper members and an `extra` of FlowEvent fields
    /// (typical values, or any token) and others, with odd white space.
    fn line() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "event",
            "event_type",
            "ts",
            "node_name",
            "node_id",
            "trace_id",
            "attempt",
            "latency_ms",
            "q_depth_in",
            "queue_depth_in",
            "q_depth_out",
            "q_depth_total",
            "outgoing",
            "queue_maxsize",
            "trace_pending",
            "trace_inflight",
            "trace_cancelled",
            "exception",
            "sleep_s",
            "extra",
        ]);
        let typical = prop_oneof![
            Just(("event", "\"node_success\"".to_string())),
            (1.0f64..2e9).prop_map(|t| ("ts", t.to_string())),
            (0.0f64..1e4).prop_map(|l| ("latency_ms", l.to_string())),
            Just(("node_name", "\"triage\"".to_string())),
            Just((
                "trace_id",
                "\"3e512c5b0a184257a25c215d19544e6a\"".to_string()
            )),
            (0u32..5).prop_map(|a| ("attempt", a.to_string())),
            (
                prop::sample::select(vec![
                    "q_depth_in",
                    "q_depth_out",
                    "q_depth_total",
                    "outgoing",
                    "queue_maxsize",
                    "trace_inflight",
                    "trace_pending",
                ]),
                0u64..100,
            )
                .prop_map(|(k, n)| (k, n.to_string())),
            Just(("trace_pending", "null".to_string())),
            Just(("trace_cancelled", "false".to_string())),
        ];
        let member = prop_oneof![
            3 => typical.prop_map(|(k, v)| (k.to_string(), v)),
            1 => (key, token()).prop_map(|(k, v)| (k.to_string(), v)),
        ];
        let ws = prop::sample::select(vec!["", " ", "  ", "\t", "\n"]);
        // White space before and after a colon, and a comma: chosen apart,
        // so that `json.dumps`'s own `": "` and `", "` (the expected
        // keys' and `next_member`'s) come up beside their near misses.
        let around = prop::sample::select(vec![
            ("", " "),
            ("", " "),
            ("", ""),
            (" ", " "),
            ("", "  "),
            ("\t", " "),
            ("", "\n"),
        ]);
        let outer_key = prop_oneof![
            "[a-z]{1,6}",
            prop::sample::select(vec!["level", "logger", "message", "timestamp"])
                .prop_map(str::to_string),
        ];
        (
            prop::collection::vec(member, 0..10),
            prop::collection::vec((outer_key, token()), 0..4),
            (ws, around.clone(), around),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(inner, mut outer, (ws, colon, comma), base, ordered)| {
                let mut members: Vec<(String, String)> = Vec::new();
                if base {
                    members.push(("event".into(), "\"node_start\"".into()));
                    members.push(("ts".into(), "1795305121.5".into()));
                }
                members.extend(inner);
                // Half the lines in PenguiFlow's order (the keys it does
                // not write last), so that the expected keys are met.
                if ordered {
                    let rank = |k: &str, order: &[&str]| {
                        order.iter().position(|o| *o == k).unwrap_or(order.len())
                    };
                    let fields: Vec<&str> = ORDER.iter().map(|q| key_of(q)).collect();
                    members.sort_by_key(|(k, _)| rank(k, &fields));
                    let wrapper: Vec<&str> = WRAPPER.iter().map(|&(_, k)| k).collect();
                    outer.sort_by_key(|(k, _)| rank(k, &wrapper));
                }
                let obj = |m: &[(String, String)]| {
                    let body: Vec<String> = m
                        .iter()
                        .map(|(k, v)| format!("\"{k}\"{}:{}{v}", colon.0, colon.1))
                        .collect();
                    let comma = format!("{},{}", comma.0, comma.1);
                    format!("{{{ws}{}{ws}}}", body.join(&comma))
                };
                let mut wrapper: Vec<(String, String)> = outer;
                wrapper.push(("extra".into(), obj(&members)));
                obj(&wrapper)
            })
    }

    #[test]
    fn generated_lines_get_the_general_parsers_answer() {
        // The same 5000 lines every run.
        let answered = super::super::generated_answers(5000, line(), agree);
        assert!(answered > 300, "only {answered} answered");
    }

    /// The expected keys are the fields' own: `ORDER[i]`, unquoted, is
    /// the key of `Field::IN_ORDER[i]`, whose index is `i`; `WRAPPER`'s
    /// two spellings agree.
    #[test]
    fn expected_keys_name_their_fields() {
        for (i, quoted) in ORDER.iter().enumerate() {
            let key = key_of(quoted);
            assert_eq!(format!("\"{key}\": ").as_bytes(), *quoted);
            assert_eq!(field(key), Some(Field::IN_ORDER[i]), "{key}");
            assert_eq!(Field::IN_ORDER[i] as usize, i);
        }
        for (quoted, key) in WRAPPER {
            assert_eq!(format!("\"{key}\": ").as_bytes(), quoted);
        }
    }

    /// The word-at-a-time search finds the first quote wherever it lies
    /// (in a word or in the tail, after bytes that differ from a quote in
    /// one bit or have the high bit set), and none when there is none.
    #[test]
    fn find_quote_finds_the_first_quote() {
        let byte = prop_oneof![
            Just(b'"'),
            Just(b'"' ^ 0x80),
            Just(b'"' ^ 0x01),
            Just(b'"' - 1),
            Just(0x00),
            Just(0xff),
            any::<u8>(),
        ];
        let case = (prop::collection::vec(byte, 0..40), 0usize..40);
        crate::test_support::fixed_seed_runner(20_000)
            .run(&case, |(bytes, from)| {
                let want = bytes
                    .get(from..)
                    .and_then(|rest| rest.iter().position(|&c| c == b'"'))
                    .map(|p| from + p);
                prop_assert_eq!(find_quote(&bytes, from), want);
                Ok(())
            })
            .unwrap();
    }
}
