//! Replay protection: each assertion is accepted once.
//!
//! An assertion is a bearer token; if an intermediary or a log leaked it, a
//! second request with it would pass every other check until it expires.
//! NCP-A therefore remembers every accepted (`iss`, `jti`) pair until the
//! assertion could no longer be accepted anyway (`exp` plus the clock skew),
//! and refuses the pair a second time (RFC 7519 §4.1.7: "The jti claim can be
//! used to prevent the JWT from being replayed").
//!
//! # Why the trait returns a future
//!
//! The in-memory ledger answers at once, but several stateless gateway
//! replicas must share one ledger, and the store that holds it is async
//! (sqlx). The trait method therefore returns `impl Future + Send` (a return
//! position `impl Trait` in a trait, stable since Rust 1.75): a database
//! ledger writes `async fn first_use` in its impl (an `INSERT ... ON CONFLICT
//! DO NOTHING` whose row count says whether the pair is new), and the
//! in-memory one returns a ready future. `Send` is required so that axum
//! handlers awaiting it stay `Send`. A synchronous caller can use
//! [`InMemoryReplayLedger::record`] directly.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::AccessError;

/// Remembers which assertions were already used.
pub trait ReplayLedger: Send + Sync {
    /// Records the assertion (`issuer`, `jti`) and says whether this is its
    /// first use: `Ok(true)` the first time, `Ok(false)` on every later call
    /// before `remember_until`. The pair may be forgotten after
    /// `remember_until`; `now` is the verifier's clock (passed in, so that
    /// tests and replicas agree on one time source).
    ///
    /// An `Err` means the ledger could not answer; the caller must refuse the
    /// request (fail closed), never let it pass unchecked.
    fn first_use(
        &self,
        issuer: &str,
        jti: &str,
        remember_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, AccessError>> + Send;
}

/// A bounded in-memory ledger for one gateway process.
///
/// Entries are evicted once `remember_until` has passed. When `capacity`
/// unexpired entries are held, a new assertion is refused with an error
/// (fail closed: evicting a live entry would let its token be replayed).
/// Size it for the peak number of accepted assertions within the longest
/// accepted lifetime plus the clock skew.
#[derive(Debug)]
pub struct InMemoryReplayLedger {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (issuer, jti) pairs held.
    seen: HashSet<(String, String)>,
    /// The same pairs ordered by when they may be forgotten.
    by_deadline: BTreeSet<(OffsetDateTime, String, String)>,
}

impl InMemoryReplayLedger {
    /// The default capacity: 100 000 assertions.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A ledger holding at most `capacity` unexpired entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The synchronous form of [`ReplayLedger::first_use`].
    pub fn record(
        &self,
        issuer: &str,
        jti: &str,
        remember_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, AccessError> {
        // A panic while holding the lock cannot leave the two sets disagreeing
        // in a way that lets a replay through (inserts go to `seen` first), so
        // a poisoned lock is taken over rather than failing every request.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.evict_expired(now);
        let key = (issuer.to_owned(), jti.to_owned());
        if inner.seen.contains(&key) {
            return Ok(false);
        }
        if inner.seen.len() >= self.capacity {
            return Err(AccessError::Ledger(format!(
                "in-memory replay ledger is full ({} unexpired assertions)",
                self.capacity
            )));
        }
        inner
            .by_deadline
            .insert((remember_until, key.0.clone(), key.1.clone()));
        inner.seen.insert(key);
        Ok(true)
    }

    /// How many entries are held (expired ones included until the next
    /// call evicts them).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seen
            .len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for InMemoryReplayLedger {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl Inner {
    fn evict_expired(&mut self, now: OffsetDateTime) {
        while let Some(first) = self.by_deadline.first() {
            if first.0 >= now {
                break;
            }
            if let Some((_, issuer, jti)) = self.by_deadline.pop_first() {
                self.seen.remove(&(issuer, jti));
            }
        }
    }
}

impl ReplayLedger for InMemoryReplayLedger {
    fn first_use(
        &self,
        issuer: &str,
        jti: &str,
        remember_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, AccessError>> + Send {
        std::future::ready(self.record(issuer, jti, remember_until, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-24 12:00 UTC);

    #[test]
    fn second_use_is_refused_until_forgotten() {
        let ledger = InMemoryReplayLedger::new(10);
        let until = T0 + Duration::minutes(10);
        assert!(ledger.record("idp-lu", "a", until, T0).unwrap());
        assert!(
            !ledger
                .record("idp-lu", "a", until, T0 + Duration::minutes(9))
                .unwrap()
        );
        // Same jti from another issuer is another assertion.
        assert!(ledger.record("idp-fr", "a", until, T0).unwrap());
        // After remember_until it is forgotten (the verifier refuses it as
        // expired long before).
        assert!(
            ledger
                .record("idp-lu", "a", until, until + Duration::seconds(1))
                .unwrap()
        );
    }

    #[test]
    fn full_ledger_fails_closed_and_frees_expired_entries() {
        let ledger = InMemoryReplayLedger::new(2);
        let until = T0 + Duration::minutes(1);
        assert!(ledger.record("i", "1", until, T0).unwrap());
        assert!(ledger.record("i", "2", until, T0).unwrap());
        assert!(matches!(
            ledger.record("i", "3", until, T0),
            Err(AccessError::Ledger(_))
        ));
        // A replay is still recognised while full.
        assert!(!ledger.record("i", "1", until, T0).unwrap());
        let later = until + Duration::seconds(1);
        assert!(
            ledger
                .record("i", "3", later + Duration::minutes(1), later)
                .unwrap()
        );
        assert_eq!(ledger.len(), 1);
    }
}
