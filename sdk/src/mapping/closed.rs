//! The runs this pipeline has ended, and how many times: a run seen again
//! after its root went out gets a partial run span, never a second root.
//!
//! Bounded by two generations of up to `per_generation` runs each: a run
//! is recorded in the newer one; when that is full, the older one is
//! forgotten whole and the newer takes its place. So the last
//! `per_generation` to `2 × per_generation` ended runs are remembered, at
//! a constant cost per run. (One map with the oldest entry evicted per new
//! run left hashbrown a tombstone per eviction and a rehash of the whole
//! table every few thousand runs: about 4 % of the mapping thread in
//! `perf`, on `scripts/bench-ingest`'s input.)

use opentelemetry::trace::TraceId;

use crate::ids::FastMap;

pub(super) struct ClosedRuns {
    newer: FastMap<TraceId, u32>,
    older: FastMap<TraceId, u32>,
    per_generation: usize,
}

impl ClosedRuns {
    pub(super) fn new(per_generation: usize) -> Self {
        ClosedRuns {
            newer: FastMap::default(),
            older: FastMap::default(),
            per_generation: per_generation.max(1),
        }
    }

    /// How many times `trace` was ended (0: never, or too long ago).
    pub(super) fn ends(&self, trace: &TraceId) -> u32 {
        self.newer
            .get(trace)
            .or_else(|| self.older.get(trace))
            .copied()
            .unwrap_or(0)
    }

    /// `trace` was ended once more.
    pub(super) fn record_end(&mut self, trace: TraceId) {
        if let Some(n) = self.newer.get_mut(&trace) {
            *n = n.saturating_add(1);
            return;
        }
        let n = self.older.remove(&trace).unwrap_or(0).saturating_add(1);
        if self.newer.len() >= self.per_generation {
            std::mem::swap(&mut self.newer, &mut self.older);
            // The map keeps its room: no allocation in steady state.
            self.newer.clear();
        }
        self.newer.insert(trace, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_generation_is_remembered_and_older_runs_are_forgotten() {
        let mut c = ClosedRuns::new(3);
        let t = |i: u128| TraceId::from(i + 1);
        c.record_end(t(0));
        c.record_end(t(0));
        assert_eq!(c.ends(&t(0)), 2);
        for i in 1..=5 {
            c.record_end(t(i));
        }
        // Older: 0, 1, 2; newer: 3, 4, 5. All remembered.
        assert_eq!((c.ends(&t(0)), c.ends(&t(2)), c.ends(&t(5))), (2, 1, 1));
        // One more: the older generation (0, 1, 2) is forgotten.
        c.record_end(t(6));
        assert_eq!((c.ends(&t(0)), c.ends(&t(2))), (0, 0));
        assert_eq!((c.ends(&t(3)), c.ends(&t(6))), (1, 1));
        // A remembered run ended again keeps its count, in the newer one.
        c.record_end(t(3));
        assert_eq!(c.ends(&t(3)), 2);
        assert!(c.newer.len() <= 3 && c.older.len() <= 3);
    }
}
