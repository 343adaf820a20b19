//! The operator's cache of a national server's answers (issue 19: "nothing
//! from the national server is stored unless the operator turns on a cache
//! (off by default; bounded; never for refusals)"): in memory only, for a
//! service whose `[…national_server.cache]` is configured
//! ([`NationalCache`]), bounded in entries and in bytes, each answer kept
//! for `ttl_secs` at most.
//!
//! What is kept is the national server's answer to one `GET`, its bytes as
//! sent, under the exact URL asked (base, path and query: a search carries
//! the patient's identifier, or the patient's id on the server, in its
//! query), so an answer is only ever reused for the very same request. It
//! is kept only once the client has found it usable: a 2xx answer, FHIR
//! JSON, of the type asked for (`NationalFhir`'s checks); never a failure
//! (unreachable, too slow, 5xx, not FHIR), never a not-found or another
//! refusal of the server (4xx), and the cache is emptied when an answer is
//! refused as about another patient or as invalid. A kept answer goes
//! through every check again each time it is used (assertion, policy,
//! opt-out, the patient it is about, validation, restrictions): the cache
//! saves the national server's round trip, not one of the gateway's
//! decisions. Nothing is written to disk; a restart empties it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::time::Instant;

/// `[…national_server.cache]`: the operator turns the cache on for one
/// service's national server by writing this table (absent: off).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NationalCache {
    /// Seconds an answer is kept at most (then asked again).
    pub ttl_secs: u64,
    /// Answers kept at most; the oldest go first.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// Bytes kept at most (answers and their URLs); the oldest go first,
    /// and an answer larger than this is not kept.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
}

fn default_max_entries() -> usize {
    1024
}

fn default_max_bytes() -> usize {
    32 * 1024 * 1024
}

impl NationalCache {
    /// Every bound greater than 0.
    pub fn check(&self) -> Result<(), String> {
        if self.ttl_secs == 0 || self.max_entries == 0 || self.max_bytes == 0 {
            return Err(
                "cache.ttl_secs, cache.max_entries and cache.max_bytes must be greater \
                        than 0 (leave [cache] out to keep nothing)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// What the cache holds now and how it served, as `/metrics` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounts {
    /// Answers held.
    pub entries: usize,
    /// Bytes held (answers and their URLs).
    pub bytes: usize,
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests the cache could not answer (asked of the server).
    pub misses: u64,
    /// Answers dropped to stay within the bounds or emptied after a
    /// refusal (expired ones not counted).
    pub evictions: u64,
}

/// An answer kept: its media type and bytes as the server sent them.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub(crate) media_type: String,
    pub(crate) body: Bytes,
}

#[derive(Debug)]
struct Entry {
    kept: Kept,
    until: Instant,
    /// Its place in the insertion order (a replaced entry's old place is
    /// skipped when found).
    serial: u64,
    size: usize,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// URLs in the order kept, oldest first, with the serial of the entry
    /// kept then.
    order: VecDeque<(String, u64)>,
    next_serial: u64,
    counts: CacheCounts,
}

/// The answers of one national server kept in memory.
#[derive(Debug)]
pub(crate) struct AnswerCache {
    ttl: Duration,
    max_entries: usize,
    max_bytes: usize,
    inner: Mutex<Inner>,
}

impl AnswerCache {
    pub(crate) fn new(config: &NationalCache) -> Self {
        Self {
            ttl: Duration::from_secs(config.ttl_secs),
            max_entries: config.max_entries,
            max_bytes: config.max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock holds entries that are still whole.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The answer kept for `url`, if still fresh.
    pub(crate) fn get(&self, url: &url::Url) -> Option<Kept> {
        let mut inner = self.lock();
        let now = Instant::now();
        let fresh = match inner.entries.get(url.as_str()) {
            Some(entry) if now < entry.until => Some(entry.kept.clone()),
            Some(_) => {
                inner.remove(url.as_str());
                None
            }
            None => None,
        };
        match fresh {
            Some(_) => inner.counts.hits += 1,
            None => inner.counts.misses += 1,
        }
        fresh
    }

    /// Keeps `kept` as the answer to `url` for the TTL, making room by
    /// dropping expired answers and then the oldest ones.
    pub(crate) fn keep(&self, url: &url::Url, kept: Kept) {
        let size = url.as_str().len() + kept.body.len() + kept.media_type.len();
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        inner.remove(url.as_str());
        let now = Instant::now();
        inner.drop_expired(now);
        while inner.counts.entries >= self.max_entries || inner.counts.bytes + size > self.max_bytes
        {
            if !inner.drop_oldest() {
                break;
            }
            inner.counts.evictions += 1;
        }
        let serial = inner.next_serial;
        inner.next_serial += 1;
        inner.order.push_back((url.as_str().to_owned(), serial));
        inner.entries.insert(
            url.as_str().to_owned(),
            Entry {
                kept,
                until: now + self.ttl,
                serial,
                size,
            },
        );
        inner.counts.entries += 1;
        inner.counts.bytes += size;
        // Places left behind by replaced entries: rebuilt when they
        // outnumber the entries.
        if inner.order.len() > 2 * inner.entries.len() + 16 {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(url, serial)| entries.get(url).is_some_and(|e| e.serial == *serial));
        }
    }

    /// Drops every answer (one was refused: about another patient,
    /// invalid, not what was asked for).
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        let dropped = inner.entries.len() as u64;
        inner.entries.clear();
        inner.order.clear();
        inner.counts.entries = 0;
        inner.counts.bytes = 0;
        inner.counts.evictions += dropped;
    }

    /// What it holds now, expired answers not counted.
    pub(crate) fn counts(&self) -> CacheCounts {
        let mut inner = self.lock();
        inner.drop_expired(Instant::now());
        inner.counts
    }
}

impl Inner {
    fn remove(&mut self, url: &str) {
        if let Some(entry) = self.entries.remove(url) {
            self.counts.entries -= 1;
            self.counts.bytes -= entry.size;
        }
    }

    /// Drops the oldest answer; `false` when none is left.
    fn drop_oldest(&mut self) -> bool {
        while let Some((url, serial)) = self.order.pop_front() {
            if self.entries.get(&url).is_some_and(|e| e.serial == serial) {
                self.remove(&url);
                return true;
            }
        }
        false
    }

    /// Drops the answers whose time is up. Every entry has the same TTL,
    /// so they expire in insertion order: the oldest are looked at until a
    /// fresh one.
    fn drop_expired(&mut self, now: Instant) {
        while let Some((url, serial)) = self.order.front() {
            match self.entries.get(url) {
                Some(entry) if entry.serial == *serial && now < entry.until => return,
                Some(entry) if entry.serial == *serial => {
                    let url = url.clone();
                    self.order.pop_front();
                    self.remove(&url);
                }
                _ => {
                    self.order.pop_front();
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cache(ttl_secs: u64, max_entries: usize, max_bytes: usize) -> AnswerCache {
        AnswerCache::new(&NationalCache {
            ttl_secs,
            max_entries,
            max_bytes,
        })
    }

    fn url(text: &str) -> url::Url {
        url::Url::parse(&format!("http://127.0.0.1:1/fhir/{text}")).unwrap()
    }

    fn kept(body: &str) -> Kept {
        Kept {
            media_type: "application/fhir+json".into(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_kept_by_their_exact_url_until_their_ttl() {
        let cache = cache(60, 10, 10_000);
        let first = url("Patient?identifier=urn%3Aoid%3A1%7C42");
        let second = url("Patient?identifier=urn%3Aoid%3A1%7C43");
        cache.keep(&first, kept("forty-two"));
        assert_eq!(&cache.get(&first).unwrap().body[..], b"forty-two");
        assert!(cache.get(&second).is_none(), "another patient's search");
        let counts = cache.counts();
        assert_eq!((counts.entries, counts.hits, counts.misses), (1, 1, 1));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(cache.get(&first).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(cache.get(&first).is_none(), "expired");
        assert_eq!(cache.counts().entries, 0);
        assert_eq!(cache.counts().bytes, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_answers_go_to_stay_within_entries_and_bytes() {
        let cache = cache(60, 2, 10_000);
        for n in 0..3 {
            cache.keep(&url(&format!("Bundle/{n}")), kept("x"));
        }
        assert!(cache.get(&url("Bundle/0")).is_none());
        assert!(cache.get(&url("Bundle/1")).is_some());
        assert!(cache.get(&url("Bundle/2")).is_some());
        assert_eq!(cache.counts().evictions, 1);

        // Bytes: each entry is its URL, media type and body.
        let one = url("Bundle/a");
        let size = one.as_str().len() + "application/fhir+json".len() + 100;
        let cache = super::AnswerCache::new(&NationalCache {
            ttl_secs: 60,
            max_entries: 100,
            max_bytes: 2 * size + 10,
        });
        let body = "y".repeat(100);
        for id in ["a", "b", "c"] {
            cache.keep(&url(&format!("Bundle/{id}")), kept(&body));
            assert!(cache.counts().bytes <= 2 * size + 10);
        }
        assert_eq!(cache.counts().entries, 2);
        assert!(cache.get(&url("Bundle/a")).is_none());
        // Larger than the whole cache: not kept, nothing dropped for it.
        cache.keep(&url("Bundle/big"), kept(&"z".repeat(3 * size)));
        assert!(cache.get(&url("Bundle/big")).is_none());
        assert_eq!(cache.counts().entries, 2);

        // Kept again: replaced, counted once.
        cache.keep(&url("Bundle/c"), kept(&body));
        cache.keep(&url("Bundle/c"), kept(&body));
        assert_eq!(cache.counts().entries, 2);
        assert_eq!(cache.counts().bytes, 2 * size);
        cache.clear();
        assert_eq!(cache.counts().entries, 0);
        assert_eq!(cache.counts().bytes, 0);
        assert!(cache.get(&url("Bundle/c")).is_none());
    }

    #[test]
    fn every_bound_must_be_set() {
        let parsed: NationalCache = toml::from_str("ttl_secs = 30").unwrap();
        assert!(parsed.check().is_ok());
        assert_eq!(parsed.max_entries, 1024);
        for bad in [
            "ttl_secs = 0",
            "ttl_secs = 30\nmax_entries = 0",
            "ttl_secs = 30\nmax_bytes = 0",
        ] {
            let parsed: NationalCache = toml::from_str(bad).unwrap();
            assert!(parsed.check().is_err(), "{bad}");
        }
        assert!(toml::from_str::<NationalCache>("max_entries = 5").is_err());
        assert!(toml::from_str::<NationalCache>("ttl_secs = 5\nforever = true").is_err());
    }
}
