//! One gate in front of the collector, shared by every export loop of a
//! signal: when the collector throttles (`Retry-After`, `RetryInfo`) or is
//! unreachable, *all* loops pause, not just the one that heard about it.
//!
//! - A transient failure closes the gate for the delay the collector asked
//!   for, or else for a jittered exponential backoff (50–100 ms after the
//!   first failure, doubling, at most 2.5–5 s).
//! - When it reopens, one request goes first (a probe); the others wait for
//!   its outcome, so a recovering collector is not hit by every loop at once.
//! - Any definite answer (accepted, or rejected for good) clears the
//!   backoff: the collector is reachable.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::outcome::Outcome;

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Default)]
struct State {
    /// No request before this instant.
    not_before: Option<Instant>,
    /// The part of that pause the collector asked for.
    server_until: Option<Instant>,
    /// Transient failures since the last definite answer.
    failures: u32,
    /// A probe is in flight; the others wait for its outcome.
    probing: bool,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct RetryGate {
    state: Mutex<State>,
    changed: Notify,
}

/// Leave to send one request. Settle it with the request's outcome.
pub(crate) struct Permit {
    gate: Arc<RetryGate>,
    probe: bool,
}

enum Wait {
    Until(Instant),
    Probe,
}

impl RetryGate {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_acquire(self: &Arc<Self>, now: Instant) -> Result<Permit, Wait> {
        let mut s = self.lock();
        if let Some(t) = s.not_before.filter(|t| *t > now) {
            return Err(Wait::Until(t));
        }
        if s.failures == 0 {
            return Ok(self.permit(false));
        }
        if s.probing {
            return Err(Wait::Probe);
        }
        s.probing = true;
        Ok(self.permit(true))
    }

    fn permit(self: &Arc<Self>, probe: bool) -> Permit {
        Permit {
            gate: self.clone(),
            probe,
        }
    }

    /// Wait for leave to send; `None` when it cannot come before `deadline`.
    pub(crate) async fn acquire(self: &Arc<Self>, deadline: Option<Instant>) -> Option<Permit> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so no wake-up is missed.
            changed.as_mut().enable();
            let until = match self.try_acquire(Instant::now()) {
                Ok(p) => return Some(p),
                Err(Wait::Until(t)) => Some(t),
                Err(Wait::Probe) => None,
            };
            let limit = match (until, deadline) {
                (Some(t), Some(d)) if t > d => return None,
                (Some(t), _) => Some(t),
                (None, d) => d,
            };
            match limit {
                Some(t) => {
                    let woke = tokio::time::timeout_at(t.into(), changed).await;
                    if woke.is_err() && until.is_none() {
                        return None; // the probe outlived the deadline
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Close the gate until `t` (a pause the collector asked for earlier).
    pub(crate) fn hold_until(&self, t: Instant) {
        let mut s = self.lock();
        s.not_before = Some(s.not_before.map_or(t, |n| n.max(t)));
        s.server_until = Some(s.server_until.map_or(t, |n| n.max(t)));
    }

    /// Cut flowtel's own backoff short (a flush wants an attempt now); a
    /// pause the collector asked for stays, and the next request is still
    /// a lone probe.
    pub(crate) fn nudge(&self) {
        let mut s = self.lock();
        s.not_before = s.server_until.filter(|t| *t > Instant::now());
        drop(s);
        self.changed.notify_waiters();
    }

    /// Leave to send right now, if the gate gives it.
    pub(crate) fn try_now(self: &Arc<Self>) -> Option<Permit> {
        self.try_acquire(Instant::now()).ok()
    }

    /// Resolves when the gate may have reopened: its pause is over, or a
    /// probe has settled. (Then ask again: another loop may be first.)
    pub(crate) async fn reopened(&self) {
        let changed = self.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let (until, probing) = {
            let s = self.lock();
            (s.not_before.filter(|t| *t > Instant::now()), s.probing)
        };
        match (until, probing) {
            (Some(t), _) => {
                let _ = tokio::time::timeout_at(t.into(), changed).await;
            }
            (None, true) => changed.await,
            (None, false) => {}
        }
    }
}

impl Permit {
    /// Record the outcome of the request this permit let through; returns
    /// the pause imposed on every loop, if any.
    pub(crate) fn settle(self, outcome: &Outcome) -> Option<Duration> {
        self.settle_at(outcome, Instant::now())
    }

    fn settle_at(self, outcome: &Outcome, now: Instant) -> Option<Duration> {
        let mut s = self.gate.lock();
        let pause = match outcome {
            Outcome::Retry { after, .. } => {
                // Several loops failing on the same outage count once.
                let open = s.not_before.is_none_or(|t| t <= now);
                if open || self.probe {
                    s.failures = s.failures.saturating_add(1);
                }
                // "Retry after 0" would be a busy loop: back off instead.
                let pause = after
                    .filter(|d| !d.is_zero())
                    .unwrap_or_else(|| backoff(s.failures));
                let until = now + pause;
                s.not_before = Some(s.not_before.map_or(until, |t| t.max(until)));
                if after.is_some() {
                    s.server_until = Some(s.server_until.map_or(until, |t| t.max(until)));
                }
                Some(pause)
            }
            _ => {
                s.failures = 0;
                None
            }
        };
        drop(s);
        // Dropping self ends the probe and wakes the waiters.
        pause
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.probe {
            self.gate.lock().probing = false;
        }
        self.gate.changed.notify_waiters();
    }
}

/// Exponential backoff after `failures` transient failures, with jitter in
/// its upper half so that several clients do not retry in step.
fn backoff(failures: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1 << failures.saturating_sub(1).min(16));
    let d = exp.min(BACKOFF_MAX);
    d / 2 + d.mul_f64(random_fraction() / 2.0)
}

/// A number in [0, 1), different on each call; good enough for jitter.
fn random_fraction() -> f64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let h = std::collections::hash_map::RandomState::new().hash_one(n);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(after: Option<Duration>) -> Outcome {
        Outcome::Retry {
            after,
            error: String::new(),
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        for f in 1..40 {
            let d = backoff(f);
            let full = BACKOFF_BASE
                .saturating_mul(1 << (f - 1).min(16))
                .min(BACKOFF_MAX);
            assert!(d >= full / 2 && d <= full, "{f}: {d:?}");
        }
        let samples: std::collections::HashSet<Duration> = (0..20).map(|_| backoff(3)).collect();
        assert!(samples.len() > 1, "jittered");
    }

    fn wait_until(r: Result<Permit, Wait>) -> Option<Instant> {
        match r {
            Err(Wait::Until(t)) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn a_server_delay_closes_the_gate_for_everyone_then_one_probe_goes() {
        let gate = Arc::new(RetryGate::default());
        let t0 = Instant::now();
        let a = gate.try_acquire(t0).ok().unwrap();
        let b = gate.try_acquire(t0).ok().unwrap();
        let pause = Duration::from_secs(2);
        assert_eq!(a.settle_at(&retry(Some(pause)), t0), Some(pause));
        // b was in flight; its failure counts once and does not shorten it.
        b.settle_at(&retry(None), t0 + Duration::from_millis(1));
        let reopen = t0 + pause;
        assert_eq!(
            wait_until(gate.try_acquire(t0 + Duration::from_secs(1))),
            Some(reopen)
        );

        let probe = gate.try_acquire(reopen).ok().unwrap();
        assert!(probe.probe);
        // While the probe is out, nobody else goes.
        assert!(matches!(gate.try_acquire(reopen), Err(Wait::Probe)));
        probe.settle_at(&Outcome::OK, reopen);
        let free = gate.try_acquire(reopen).ok().unwrap();
        assert!(!free.probe);
    }

    #[test]
    fn a_failed_probe_backs_off_further() {
        let gate = Arc::new(RetryGate::default());
        let t0 = Instant::now();
        let p = gate.try_acquire(t0).ok().unwrap();
        let first = p.settle_at(&retry(None), t0).unwrap();
        let t1 = t0 + first;
        let probe = gate.try_acquire(t1).ok().unwrap();
        let second = probe.settle_at(&retry(None), t1).unwrap();
        assert!(
            second >= Duration::from_millis(100),
            "{first:?} then {second:?}"
        );
        // A dropped probe (its request abandoned) lets the next one go.
        let probe = gate.try_acquire(t1 + second).ok().unwrap();
        drop(probe);
        assert!(gate.try_acquire(t1 + second).is_ok());
    }

    #[test]
    fn a_flush_cuts_the_backoff_short_but_not_the_collectors_pause() {
        let gate = Arc::new(RetryGate::default());
        let t0 = Instant::now();
        gate.try_acquire(t0)
            .ok()
            .unwrap()
            .settle_at(&retry(None), t0);
        gate.nudge();
        let probe = gate.try_acquire(Instant::now()).ok().unwrap();
        assert!(probe.probe, "still one request first");
        let t1 = Instant::now();
        probe.settle_at(&retry(Some(Duration::from_secs(60))), t1);
        gate.nudge();
        assert!(wait_until(gate.try_acquire(Instant::now()))
            .is_some_and(|t| t >= t1 + Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn a_deadline_before_the_reopening_gives_up_at_once() {
        let gate = Arc::new(RetryGate::default());
        let p = gate.acquire(None).await.unwrap();
        p.settle(&retry(Some(Duration::from_secs(30))));
        let deadline = Instant::now() + Duration::from_secs(1);
        let t = Instant::now();
        assert!(gate.acquire(Some(deadline)).await.is_none());
        assert!(t.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn a_rejection_clears_the_backoff() {
        let gate = Arc::new(RetryGate::default());
        let t0 = Instant::now();
        let pause = gate
            .try_acquire(t0)
            .ok()
            .unwrap()
            .settle_at(&retry(None), t0);
        let t1 = t0 + pause.unwrap();
        let probe = gate.try_acquire(t1).ok().unwrap();
        probe.settle_at(
            &Outcome::Rejected {
                error: String::new(),
            },
            t1,
        );
        // Healthy again: permits without a probe round.
        let a = gate.try_acquire(t1).ok().unwrap();
        let b = gate.try_acquire(t1).ok().unwrap();
        assert!(!a.probe && !b.probe);
    }
}
