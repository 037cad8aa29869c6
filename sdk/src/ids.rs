//! Deterministic trace and span ids.
//!
//! Ids are pure functions of the event's identity so that several processes
//! (or several bridge instances) that each see part of a run emit spans that
//! fit into one tree with no coordination. The hash is FNV-1a (64 and 128
//! bit): tiny, fully specified, and easy to reproduce in any language.

use opentelemetry::trace::{SpanId, TraceId};

const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;
const FNV128_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const FNV128_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h = FNV64_OFFSET;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // Separator so ("ab","c") and ("a","bc") differ.
            h ^= 0xff;
            h = h.wrapping_mul(FNV64_PRIME);
        }
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(FNV64_PRIME);
        }
    }
    h
}

/// FNV-1a as a `Hasher`: the series keys of the metrics (a hash of a few
/// attribute slots) and their sets.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(FNV64_OFFSET)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(FNV64_PRIME);
        }
    }
    // Integers (series slots, keys) a word at a time: FNV's step on a
    // 64-bit word instead of on each of its bytes.
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(FNV64_PRIME);
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

/// A `HashMap` for flowtel's internal maps (runs by trace id, nodes by key,
/// attribute values): rustc's Fx hash, a word at a time, where byte-wise FNV
/// spends 32 dependent multiplies on a 32-character node id (the map
/// lookups were the largest hashing cost in `perf` of the mapping stage;
/// `examples/stages.rs` measures the stage). Keys are
/// bounded per run and per pipeline, so flooding a map with colliding keys
/// only slows that map.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;

fn fnv128(bytes: &[u8]) -> u128 {
    let mut h = FNV128_OFFSET;
    for b in bytes {
        h ^= u128::from(*b);
        h = h.wrapping_mul(FNV128_PRIME);
    }
    h
}

/// The OTel trace id of a run, and whether the original string was used
/// unchanged (32 hex characters) or hashed.
pub(crate) fn trace_id_for(run: &str) -> (TraceId, bool) {
    match hex128(run.as_bytes()) {
        Some(id) if id != 0 => (TraceId::from(id), true),
        _ => (TraceId::from(fnv128(run.as_bytes()).max(1)), false),
    }
}

/// [`trace_id_for`] with its last answer kept: a run's events mostly come
/// one after another, and the same run id again is compared with the last
/// one instead of decoded (in `scripts/bench-ingest`'s lines, five events
/// of six). Run ids longer than a trace id's 32 digits are not kept.
#[derive(Default)]
pub(crate) struct LastTraceId {
    run: String,
    id: Option<(TraceId, bool)>,
}

impl LastTraceId {
    /// `trace_id_for(run)`.
    pub(crate) fn get(&mut self, run: &str) -> (TraceId, bool) {
        match self.id {
            Some(id) if self.run == run => id,
            _ => {
                let id = trace_id_for(run);
                self.run.clear();
                self.id = None;
                if run.len() <= 32 {
                    self.run.push_str(run);
                    self.id = Some(id);
                }
                id
            }
        }
    }
}

/// 32 hex digits (either case) as a number, without a branch per digit
/// (`from_str_radix` after a check of every digit was ~3 % of the mapping
/// stage in `perf`).
fn hex128(s: &[u8]) -> Option<u128> {
    /// Each byte's digit value, or 16 for a byte that is not a hex digit.
    const DIGITS: [u8; 256] = {
        let mut t = [16u8; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            t[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
    let s: &[u8; 32] = s.try_into().ok()?;
    let (mut v, mut bad) = (0u128, 0u8);
    for &b in s {
        let d = DIGITS[usize::from(b)];
        bad |= d;
        v = v << 4 | u128::from(d & 15);
    }
    (bad < 16).then_some(v)
}

/// A random number per call (no RNG crate needed: std's randomly keyed
/// hasher, mixed with the process id and the clock).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// The root span id of a run.
pub(crate) fn root_span_id(trace: TraceId) -> SpanId {
    span_id(&[b"root", &trace.to_bytes()])
}

/// The span id of the attempt of `node` numbered `attempt` that ended at
/// `end_ns` (unix nanoseconds). Derived from the terminal event's own
/// identity, so any process that sees that event gives its span the same id,
/// and two invocations of one attempt number (fan-out, loops) get two ids.
pub(crate) fn attempt_span_id(trace: TraceId, node: &str, attempt: u32, end_ns: u128) -> SpanId {
    span_id(&[
        b"attempt",
        &trace.to_bytes(),
        node.as_bytes(),
        &attempt.to_be_bytes(),
        &end_ns.to_be_bytes(),
    ])
}

/// The span id of an attempt exported while still open (its run ended
/// first): derived from its start, never equal to the id its terminal event
/// gives it, so a process that later sees the end exports a second span
/// rather than a second version of this one.
pub(crate) fn open_attempt_span_id(
    trace: TraceId,
    node: &str,
    attempt: u32,
    start_ns: u128,
) -> SpanId {
    span_id(&[
        b"open",
        &trace.to_bytes(),
        node.as_bytes(),
        &attempt.to_be_bytes(),
        &start_ns.to_be_bytes(),
    ])
}

/// The span id of the `n`-th partial run span that the pipeline `instance`
/// exports for a run (see `with_partial_runs`).
pub(crate) fn partial_span_id(trace: TraceId, instance: u64, n: u32) -> SpanId {
    span_id(&[
        b"partial",
        &trace.to_bytes(),
        &instance.to_be_bytes(),
        &n.to_be_bytes(),
    ])
}

/// Span ids chosen up front, for attempt guards: unique within one pipeline
/// (a bijection of a counter) and unrelated across pipelines and processes
/// (a random seed per pipeline; a forked child starts a pipeline, so a seed,
/// of its own).
pub(crate) struct FreshIds {
    seed: u64,
    next: std::sync::atomic::AtomicU64,
}

impl FreshIds {
    pub(crate) fn new() -> Self {
        FreshIds {
            seed: random_u64(),
            next: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The next id: splitmix64 of the seeded counter (a few ns).
    pub(crate) fn next(&self) -> SpanId {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut z = self
            .seed
            .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        SpanId::from((z ^ (z >> 31)).max(1))
    }
}

fn span_id(parts: &[&[u8]]) -> SpanId {
    SpanId::from(fnv64(parts).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_trace_ids_are_kept_unchanged() {
        let (id, kept) = trace_id_for("3e512c5b0a184257a25c215d19544e6a");
        assert!(kept);
        assert_eq!(id.to_string(), "3e512c5b0a184257a25c215d19544e6a");
        // Upper case hex is the same id; OTel renders lower case.
        let (up, _) = trace_id_for("3E512C5B0A184257A25C215D19544E6A");
        assert_eq!(up, id);
    }

    #[test]
    fn the_hex_reader_agrees_with_the_standard_one() {
        let reference = |s: &str| {
            (s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u128::from_str_radix(s, 16).ok())
                .flatten()
        };
        let mut cases = vec![
            "3e512c5b0a184257a25c215d19544e6a".to_string(),
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF".into(),
            "00000000000000000000000000000000".into(),
            "+e512c5b0a184257a25c215d19544e6a".into(),
            "3e512c5b0a184257a25c215d19544e6".into(),
            "3e512c5b0a184257a25c215d19544e6g".into(),
            "3e512c5b-a184257a25c215d19544e6a".into(),
            "".into(),
        ];
        // Every byte value at every position of a valid id.
        for pos in [0, 15, 16, 31] {
            for b in 0..=255u8 {
                let mut bytes = cases[0].clone().into_bytes();
                bytes[pos] = b;
                if let Ok(s) = String::from_utf8(bytes) {
                    cases.push(s);
                }
            }
        }
        for c in &cases {
            assert_eq!(hex128(c.as_bytes()), reference(c), "{c:?}");
        }
    }

    /// The kept last answer is `trace_id_for`'s, run after run: repeated,
    /// changed, hex and not, longer than a trace id (not kept), empty.
    #[test]
    fn the_last_trace_id_kept_is_the_answer() {
        let mut last = LastTraceId::default();
        let long = "r".repeat(40);
        for run in [
            "order-42",
            "order-42",
            "order-43",
            "3e512c5b0a184257a25c215d19544e6a",
            "3e512c5b0a184257a25c215d19544e6a",
            &long,
            &long,
            "",
            "order-42",
        ] {
            assert_eq!(last.get(run), trace_id_for(run), "{run}");
        }
    }

    #[test]
    fn other_strings_hash_deterministically_and_distinctly() {
        let (a, kept) = trace_id_for("order-42");
        assert!(!kept);
        assert_eq!(a, trace_id_for("order-42").0);
        assert_ne!(a, trace_id_for("order-43").0);
        assert_ne!(a, TraceId::INVALID);
        // All-zero hex is not a valid OTel id, so it is hashed.
        let (z, kept) = trace_id_for("00000000000000000000000000000000");
        assert!(!kept);
        assert_ne!(z, TraceId::INVALID);
        // Known FNV-1a 128 value, so other implementations can check theirs.
        assert_eq!(
            trace_id_for("").0,
            TraceId::from(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d)
        );
    }

    #[test]
    fn span_ids_depend_on_every_part() {
        let t = trace_id_for("3e512c5b0a184257a25c215d19544e6a").0;
        let base = attempt_span_id(t, "n", 0, 0);
        assert_eq!(base, attempt_span_id(t, "n", 0, 0));
        assert_ne!(base, attempt_span_id(t, "n", 1, 0));
        assert_ne!(base, attempt_span_id(t, "n", 0, 1));
        assert_ne!(base, attempt_span_id(t, "m", 0, 0));
        assert_ne!(base, open_attempt_span_id(t, "n", 0, 0));
        assert_ne!(base, root_span_id(t));
        assert_ne!(partial_span_id(t, 1, 0), partial_span_id(t, 2, 0));
        assert_ne!(partial_span_id(t, 1, 0), partial_span_id(t, 1, 1));
        assert_eq!(fnv64(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn fresh_ids_do_not_repeat_within_a_pipeline_nor_across_pipelines() {
        let (a, b) = (FreshIds::new(), FreshIds::new());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(a.next()));
            assert!(seen.insert(b.next()));
        }
        assert!(!seen.contains(&SpanId::INVALID));
    }
}
