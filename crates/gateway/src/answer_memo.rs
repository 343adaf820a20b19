//! The documents a peer answered that this gateway has already validated,
//! remembered by their SHA-256 so that the same bytes are not validated again
//! on every retrieval (`[validation] peer_answer_memo_entries`).
//!
//! # Why skipping the second validation is sound
//!
//! "A peer is untrusted input" (ARCHITECTURE.md, invariants): what another NCP
//! answers is validated before it is passed on. The memo keeps that true for
//! every distinct byte string: an answer is passed on unvalidated only when
//! its bytes hash to the SHA-256 of bytes this process validated without an
//! error, and so are those bytes (finding other bytes with the same SHA-256 is
//! a second preimage, which SHA-256 is built to make infeasible). The verdict
//! on those bytes would be the same again because it depends on nothing else:
//!
//! * the [`ehds_validation::Validator`] is built once at start-up from the
//!   FHIR packages and never changes while the process runs, and the profile
//!   set a document answer must meet (its service's `document_profiles` in
//!   the service registry, the service chosen by the bytes' own document
//!   type) is fixed with it; one memo belongs to one [`crate::edge::AppState`],
//!   which holds both (a restart, or a changed package, starts an empty memo);
//! * validation reads only the bytes (no store, no network, no request); the
//!   one thing that could make it depend on time is a FHIRPath `now()`,
//!   `today()` or `timeOfDay()` in an invariant, and no invariant of the
//!   shipped packages has one (the test `shipped_invariants_do_not_read_the_clock`
//!   checks). An operator adding a package whose invariants read the clock sets
//!   the memo size to 0.
//!
//! Only answers with no error are remembered: a refused answer is validated
//! again each time it comes (its report is what the caller gets, and a
//! refusal is not the path worth making faster). The memo is bounded (least
//! recently used entries leave first) and holds hashes only, no health data.
//!
//! The set is [`hashlink::LruCache`]: already built for sqlx (no new crate in
//! the build), a small linked hash map with O(1) look-up and eviction.

use std::sync::{Arc, Mutex};

use hashlink::LruCache;
use sha2::{Digest, Sha256};

/// Default number of remembered answers: 32-byte keys, well under a megabyte.
pub const DEFAULT_ENTRIES: usize = 4096;

/// SHA-256 digests of peer answers that validated with no error, each with
/// the service a document answer was of (empty for other answers).
#[derive(Debug)]
pub struct ValidatedAnswers {
    /// `None` when the memo is switched off (size 0).
    entries: Option<Mutex<LruCache<[u8; 32], Arc<str>>>>,
}

impl ValidatedAnswers {
    /// A memo of at most `capacity` answers; 0 switches it off (every answer
    /// is validated).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: (capacity > 0).then(|| Mutex::new(LruCache::new(capacity))),
        }
    }

    /// The key of `bytes`: their SHA-256.
    pub fn digest(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    /// Whether bytes with this SHA-256 validated with no error (and marks
    /// them recently used).
    pub fn validated(&self, digest: &[u8; 32]) -> bool {
        self.service_of(digest).is_some()
    }

    /// The service of a document answer with this SHA-256 that validated
    /// with no error (empty for an answer that is not a document); `None`
    /// when it is not remembered. Marks it recently used.
    pub fn service_of(&self, digest: &[u8; 32]) -> Option<Arc<str>> {
        let entries = self.entries.as_ref()?;
        // A poisoned lock only means another thread panicked while holding
        // it; the set of digests is still a set of digests.
        let mut entries = entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(digest).cloned()
    }

    /// Remembers that bytes with this SHA-256 validated with no error.
    pub fn remember(&self, digest: [u8; 32]) {
        self.remember_document(digest, "");
    }

    /// Remembers that a document answer of `service` with this SHA-256
    /// validated with no error.
    pub fn remember_document(&self, digest: [u8; 32], service: &str) {
        if let Some(entries) = &self.entries {
            entries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(digest, Arc::from(service));
        }
    }

    /// How many digests are held.
    pub fn len(&self) -> usize {
        self.entries
            .as_ref()
            .map_or(0, |e| e.lock().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// Whether no digest is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_by_content_and_forgets_the_least_recently_used() {
        let memo = ValidatedAnswers::new(2);
        let a = ValidatedAnswers::digest(b"a");
        let b = ValidatedAnswers::digest(b"b");
        let c = ValidatedAnswers::digest(b"c");
        assert!(!memo.validated(&a));
        memo.remember(a);
        memo.remember(b);
        assert!(memo.validated(&a), "a was remembered");
        assert!(
            !memo.validated(&ValidatedAnswers::digest(b"a ")),
            "other bytes are not"
        );
        // a was used after b: c pushes b out.
        memo.remember(c);
        assert!(memo.validated(&a));
        assert!(memo.validated(&c));
        assert!(!memo.validated(&b));
        assert_eq!(memo.len(), 2);
    }

    #[test]
    fn size_zero_remembers_nothing() {
        let memo = ValidatedAnswers::new(0);
        let a = ValidatedAnswers::digest(b"a");
        memo.remember(a);
        assert!(!memo.validated(&a));
        assert!(memo.is_empty());
    }
}
