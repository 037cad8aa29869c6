//! Helpers for the unit tests.

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// A proptest runner with a fixed seed: the same `cases` inputs every run,
/// and no regression files written.
pub(crate) fn fixed_seed_runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    )
}
