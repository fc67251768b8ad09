//! A circuit breaker: after `failures` failures in a row the upstream is not asked for
//! `open` (callers fail at once, told when to come back); then one trial request passes,
//! and its outcome closes the breaker or opens it again. Times are passed in, so the
//! states are tested without waiting.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial is out since `since`; a trial that never reports (its caller went away)
    /// lets another through after `open`.
    HalfOpen {
        since: Instant,
    },
}

#[derive(Debug)]
pub struct Breaker {
    failures: u32,
    open: Duration,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(failures: u32, open: Duration) -> Self {
        Self {
            failures: failures.max(1),
            open,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request may go now; `Err(seconds)` until the breaker lets one through.
    pub fn allow(&self, now: Instant) -> Result<(), u64> {
        let mut s = self.lock();
        match *s {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now < until => Err(secs_until(now, until)),
            State::HalfOpen { since } if now < since + self.open => Err(1),
            State::Open { .. } | State::HalfOpen { .. } => {
                *s = State::HalfOpen { since: now };
                Ok(())
            }
        }
    }

    pub fn success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// Counts a failure; true when it opened the breaker.
    pub fn failure(&self, now: Instant) -> bool {
        let mut s = self.lock();
        let failures = match *s {
            State::Closed { failures } => failures + 1,
            State::Open { .. } | State::HalfOpen { .. } => self.failures,
        };
        if failures >= self.failures {
            let was_open = matches!(*s, State::Open { .. });
            *s = State::Open {
                until: now + self.open,
            };
            !was_open
        } else {
            *s = State::Closed { failures };
            false
        }
    }

    /// Whether requests fail fast now (open, or a trial is out).
    pub fn is_open(&self) -> bool {
        !matches!(*self.lock(), State::Closed { .. })
    }
}

fn secs_until(now: Instant, until: Instant) -> u64 {
    until.saturating_duration_since(now).as_secs().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_in_a_row_then_lets_one_trial_through() {
        let t0 = Instant::now();
        let b = Breaker::new(3, Duration::from_secs(30));
        assert!(!b.failure(t0));
        b.success(); // a success in between starts the count again
        assert!(!b.failure(t0));
        assert!(!b.failure(t0));
        assert_eq!(b.allow(t0), Ok(()));
        assert!(b.failure(t0), "the third failure in a row opens it");
        assert!(b.is_open());
        assert_eq!(b.allow(t0 + Duration::from_secs(10)), Err(20));
        // after `open`: one trial, the others still fail fast
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(b.allow(t1), Ok(()));
        assert_eq!(b.allow(t1), Err(1));
        // the trial fails: open again for the whole period
        b.failure(t1);
        assert_eq!(b.allow(t1 + Duration::from_secs(1)), Err(29));
        // the next trial succeeds: closed
        let t2 = t1 + Duration::from_secs(30);
        assert_eq!(b.allow(t2), Ok(()));
        b.success();
        assert!(!b.is_open());
        assert_eq!(b.allow(t2), Ok(()));
    }

    #[test]
    fn a_trial_that_never_reports_does_not_hold_the_breaker_half_open() {
        let t0 = Instant::now();
        let b = Breaker::new(1, Duration::from_secs(5));
        b.failure(t0);
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(b.allow(t1), Ok(()));
        assert_eq!(b.allow(t1 + Duration::from_secs(4)), Err(1));
        assert_eq!(b.allow(t1 + Duration::from_secs(5)), Ok(()));
    }
}
