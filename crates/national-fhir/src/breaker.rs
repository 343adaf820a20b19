//! The circuit breaker in front of a national server (the pattern of
//! Nygard, *Release It!*, ch. 5): after `failures` failures in a row the
//! circuit opens and calls fail at once, sparing a server that is down and
//! the callers' time; after `open_for` one call is let through as a probe
//! (half-open): its success closes the circuit, its failure opens it again.
//! A call that never reached the server (the gateway's own credentials were
//! refused by the token endpoint: `NationalError::Credentials`) is neither:
//! [`Attempt::release`] leaves the count as it was, since a server that
//! refuses this client is up, and opening the circuit would hide the
//! credentials problem behind "unavailable".

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The breaker's state, as `/metrics` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once.
    Open,
    /// One probe call is in flight; others fail at once.
    HalfOpen,
}

impl BreakerState {
    /// The gauge value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// A circuit breaker.
#[derive(Debug)]
pub struct Breaker {
    failures: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

/// Whether a call may go: `Probe` is the half-open state's one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The circuit is closed.
    Call,
    /// The one probe call of the half-open state.
    Probe,
}

impl Breaker {
    /// A closed breaker opening after `failures` failures in a row for
    /// `open_for`.
    pub fn new(failures: u32, open_for: Duration) -> Self {
        Self {
            failures: failures.max(1),
            open_for,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock holds a state that is still meaningful.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may go now; `None`: the circuit is open.
    pub fn admit(&self) -> Option<Admission> {
        let mut inner = self.lock();
        match *inner {
            Inner::Closed { .. } => Some(Admission::Call),
            Inner::Open { until } if Instant::now() >= until => {
                *inner = Inner::HalfOpen;
                Some(Admission::Probe)
            }
            Inner::Open { .. } | Inner::HalfOpen => None,
        }
    }

    /// A call's outcome: `ok` when the server answered (whatever it
    /// answered, short of a 5xx).
    pub fn record(&self, admission: Admission, ok: bool) {
        let mut inner = self.lock();
        let open = || Inner::Open {
            until: Instant::now() + self.open_for,
        };
        *inner = match (&*inner, admission, ok) {
            (_, _, true) => Inner::Closed { failures: 0 },
            (Inner::HalfOpen, Admission::Probe, false) => open(),
            (Inner::Closed { failures }, Admission::Call, false) => {
                let failures = failures.saturating_add(1);
                if failures >= self.failures {
                    tracing::warn!("national server: circuit breaker opens");
                    open()
                } else {
                    Inner::Closed { failures }
                }
            }
            // A late outcome of a call admitted before the state changed.
            (Inner::Open { until }, _, false) => Inner::Open { until: *until },
            (Inner::Closed { failures }, Admission::Probe, false) => Inner::Closed {
                failures: *failures,
            },
            (Inner::HalfOpen, Admission::Call, false) => Inner::HalfOpen,
        };
    }

    /// A call admitted now, recorded when it ends: by [`Attempt::finish`],
    /// or as a failure if it is dropped unfinished (a caller's time budget
    /// cancelled it), so a cancelled probe cannot leave the breaker
    /// half-open for ever.
    pub fn attempt(&self) -> Option<Attempt<'_>> {
        let admission = self.admit()?;
        Some(Attempt {
            breaker: self,
            admission,
            finished: false,
        })
    }

    /// A call that ended without telling whether the server is up (it
    /// never reached it): the count of failures is kept as it was; a probe
    /// leaves the circuit open with the next call let through as the probe.
    pub fn release(&self, admission: Admission) {
        let mut inner = self.lock();
        if admission == Admission::Probe && matches!(*inner, Inner::HalfOpen) {
            *inner = Inner::Open {
                until: Instant::now(),
            };
        }
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

/// A call in flight through the breaker ([`Breaker::attempt`]).
#[derive(Debug)]
pub struct Attempt<'a> {
    breaker: &'a Breaker,
    admission: Admission,
    finished: bool,
}

impl Attempt<'_> {
    /// Whether this call is the half-open state's probe.
    pub fn is_probe(&self) -> bool {
        self.admission == Admission::Probe
    }

    /// Records the call's outcome (`ok`: the server answered, short of a
    /// 5xx).
    pub fn finish(mut self, ok: bool) {
        self.finished = true;
        self.breaker.record(self.admission, ok);
    }
}

impl Attempt<'_> {
    /// Ends the call as neither a success nor a failure of the server
    /// ([`Breaker::release`]): it never reached the server.
    pub fn release(mut self) {
        self.finished = true;
        self.breaker.release(self.admission);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.breaker.record(self.admission, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn it_opens_after_failures_and_closes_after_a_good_probe() {
        let breaker = Breaker::new(2, Duration::from_secs(30));
        assert_eq!(breaker.admit(), Some(Admission::Call));
        breaker.record(Admission::Call, false);
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.record(Admission::Call, false);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.admit(), None);
        tokio::time::advance(Duration::from_secs(31)).await;
        // One probe, the others wait for its outcome.
        assert_eq!(breaker.admit(), Some(Admission::Probe));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(breaker.admit(), None);
        breaker.record(Admission::Probe, false);
        assert_eq!(breaker.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(breaker.admit(), Some(Admission::Probe));
        breaker.record(Admission::Probe, true);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.admit(), Some(Admission::Call));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_cancelled_by_its_budget_counts_as_a_failure() {
        let breaker = Breaker::new(1, Duration::from_secs(30));
        breaker.record(Admission::Call, false);
        tokio::time::advance(Duration::from_secs(31)).await;
        let probe = breaker.attempt().unwrap();
        assert!(probe.is_probe());
        drop(probe);
        assert_eq!(breaker.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(31)).await;
        breaker.attempt().unwrap().finish(true);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_never_reached_the_server_counts_for_nothing() {
        let breaker = Breaker::new(2, Duration::from_secs(30));
        breaker.record(Admission::Call, false);
        for _ in 0..10 {
            breaker.attempt().unwrap().release();
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.record(Admission::Call, false);
        assert_eq!(breaker.state(), BreakerState::Open, "the count was kept");
        tokio::time::advance(Duration::from_secs(31)).await;
        let probe = breaker.attempt().unwrap();
        assert!(probe.is_probe());
        probe.release();
        // Still open; the next call is the probe.
        assert_eq!(breaker.state(), BreakerState::Open);
        let probe = breaker.attempt().unwrap();
        assert!(probe.is_probe());
        probe.finish(true);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let breaker = Breaker::new(2, Duration::from_secs(30));
        breaker.record(Admission::Call, false);
        breaker.record(Admission::Call, true);
        breaker.record(Admission::Call, false);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
