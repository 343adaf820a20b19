//! Validation off the async workers: every validation a request causes
//! (a pushed document, `$validate`, a peer's or a national server's answer)
//! runs through [`Validation`], which waits for one of a bounded number of
//! validation slots and then runs the validator with
//! `tokio::task::block_in_place`, so that a large document's validation
//! never holds an async worker thread: the worker's other connections (body
//! reads, keep-alive, health checks) move to another thread while it
//! validates. Without it, a few concurrent 20 MiB bodies on a 2-core host
//! starved every other connection's body read into 408s. A resource of at
//! most `INLINE_UP_TO` bytes without contained resources (a patient
//! summary) is validated on the worker itself: its validation costs less
//! than the hand-over.
//!
//! The slots bound CPU-bound work to the cores the operator gives the
//! gateway: more documents than slots wait their turn (still within the
//! request's own time limits) instead of oversubscribing the cores.

use std::sync::Arc;

use ehds_fhir::ReceivedResource;
use ehds_validation::{ValidationReport, Validator};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::Semaphore;

/// The largest resource (its received bytes) validated on the async worker
/// itself: a patient summary (the 51 KB IPS example validates in under
/// 1 ms) costs less than handing the worker's queue to another thread and
/// taking it back, which `block_in_place` does at every call (issue 17:
/// the gateway's CPU per pushed summary). Larger resources, whose
/// validation could hold a worker for tens of milliseconds, go off it.
const INLINE_UP_TO: usize = 64 * 1024;

/// Whether `resource` is validated on the async worker: small, and without
/// contained resources. Many small contained resources cost several times
/// more per byte than a summary's entries (each is a resource with its own
/// invariants: about 3 ms for 64 KB of them, BENCHMARKS.md "Contained
/// resources: linear at last"), which must not hold a worker.
fn inline(resource: &ReceivedResource) -> bool {
    let bytes = resource.bytes();
    bytes.len() <= INLINE_UP_TO && memchr::memmem::find(bytes, b"\"contained\"").is_none()
}

/// The shared validator behind a bounded number of validation slots. It
/// offers the validator's validations (async, off the workers) and its
/// cheap questions (`knows_profile`, `knows_rule`), and nothing else, so a
/// request cannot validate on an async worker by calling the validator
/// directly.
#[derive(Debug, Clone)]
pub struct Validation {
    validator: Arc<Validator>,
    slots: Arc<Semaphore>,
}

impl Validation {
    /// `validator` with `slots` validations at once (at least one).
    pub fn new(validator: Arc<Validator>, slots: usize) -> Self {
        Self {
            validator,
            slots: Arc::new(Semaphore::new(slots.max(1))),
        }
    }

    /// [`Validator::validate`], off the async workers.
    pub async fn validate(
        &self,
        resource: &ReceivedResource,
        profiles: &[&str],
    ) -> ValidationReport {
        self.off_workers(resource, |v| v.validate(resource, profiles))
            .await
    }

    /// [`Validator::validate_pushed_document`], off the async workers.
    pub async fn validate_pushed_document(
        &self,
        resource: &ReceivedResource,
        document_profiles: &[&str],
    ) -> ValidationReport {
        self.off_workers(resource, |v| {
            v.validate_pushed_document(resource, document_profiles)
        })
        .await
    }

    /// [`Validator::validate_downgrading`], off the async workers.
    pub async fn validate_downgrading(
        &self,
        resource: &ReceivedResource,
        profiles: &[&str],
        downgraded: &[String],
    ) -> ValidationReport {
        self.off_workers(resource, |v| {
            v.validate_downgrading(resource, profiles, downgraded)
        })
        .await
    }

    /// [`Validator::validate_pushed_document_downgrading`], off the async
    /// workers.
    pub async fn validate_pushed_document_downgrading(
        &self,
        resource: &ReceivedResource,
        document_profiles: &[&str],
        downgraded: &[String],
    ) -> ValidationReport {
        self.off_workers(resource, |v| {
            v.validate_pushed_document_downgrading(resource, document_profiles, downgraded)
        })
        .await
    }

    /// [`Validator::knows_profile`].
    pub fn knows_profile(&self, canonical: &str) -> bool {
        self.validator.knows_profile(canonical)
    }

    /// [`Validator::knows_rule`].
    pub fn knows_rule(&self, rule: &str) -> bool {
        self.validator.knows_rule(rule)
    }

    /// Runs `job` (a validation of `resource`) once a slot is free: on a
    /// multi-threaded runtime with `block_in_place` (the worker hands its
    /// queue to another thread), unless `resource` is small enough to be
    /// validated inline ([`inline`]); on a current-thread runtime
    /// (in-process tests) or outside one, inline, as there is no other
    /// worker to hand over to.
    async fn off_workers<R>(
        &self,
        resource: &ReceivedResource,
        job: impl FnOnce(&Validator) -> R,
    ) -> R {
        // The semaphore is never closed; were it, validating unbounded
        // beats refusing every document.
        let _slot = self.slots.acquire().await.ok();
        let multi_threaded = Handle::try_current()
            .is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread);
        if multi_threaded && !inline(resource) {
            tokio::task::block_in_place(|| job(&self.validator))
        } else {
            job(&self.validator)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn validation(slots: usize) -> Validation {
        let validator =
            ehds_shipped_validator::validator(ehds_validation::ValidationOptions::default())
                .unwrap();
        Validation::new(Arc::new(validator), slots)
    }

    /// A resource of about `size` received bytes.
    fn resource(size: usize) -> ReceivedResource {
        let text = "x".repeat(size);
        let json = format!(r#"{{"resourceType":"Basic","text":{{"div":"{text}"}}}}"#);
        ReceivedResource::parse(json.into_bytes().into()).unwrap()
    }

    /// While the validation of a large resource holds the only worker
    /// thread's job, another task on the same runtime still runs: the
    /// worker handed its queue over (`block_in_place`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_validation_does_not_hold_the_async_worker() {
        let v = validation(1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = {
            let ticks = Arc::clone(&ticks);
            tokio::spawn(async move {
                for _ in 0..3 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        // The job blocks until the ticker has ticked three times: with the
        // job on the async worker the ticker could never run (deadlock,
        // caught by the bounded wait below).
        let waited = v
            .off_workers(&resource(INLINE_UP_TO + 1), |_| {
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while ticks.load(Ordering::SeqCst) < 3 && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                ticks.load(Ordering::SeqCst)
            })
            .await;
        drop(tx);
        assert!(rx.recv().is_err());
        assert_eq!(waited, 3, "the ticker task never ran during the validation");
        ticker.await.unwrap();
    }

    /// Two validations with one slot run one after the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slots_bound_concurrent_validations() {
        let v = validation(1);
        let large = resource(INLINE_UP_TO + 1);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let job = |running: Arc<AtomicUsize>, most: Arc<AtomicUsize>| {
            let v = v.clone();
            let large = large.clone();
            tokio::spawn(async move {
                v.off_workers(&large, |_| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            })
        };
        let a = job(Arc::clone(&running), Arc::clone(&most));
        let b = job(Arc::clone(&running), Arc::clone(&most));
        a.await.unwrap();
        b.await.unwrap();
        assert_eq!(most.load(Ordering::SeqCst), 1);
    }

    /// On a current-thread runtime the job runs inline (block_in_place
    /// would panic there).
    #[tokio::test]
    async fn runs_inline_on_a_current_thread_runtime() {
        let v = validation(2);
        assert_eq!(v.off_workers(&resource(INLINE_UP_TO + 1), |_| 7).await, 7);
    }

    /// A small resource with contained resources is validated off the
    /// worker (its validation time grows with their number squared).
    #[test]
    fn contained_resources_are_validated_off_the_worker() {
        assert!(inline(&resource(1024)));
        assert!(!inline(&resource(INLINE_UP_TO + 1)));
        let contained = ReceivedResource::parse(
            br#"{"resourceType":"Basic","contained":[{"resourceType":"Basic","id":"a"}]}"#
                .as_slice()
                .into(),
        )
        .unwrap();
        assert!(!inline(&contained));
    }

    /// A small resource is validated on the worker itself, with no
    /// hand-over: while its job runs, no other task of the (one) worker
    /// runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_small_resource_is_validated_inline() {
        let v = validation(1);
        let ticks = Arc::new(AtomicUsize::new(0));
        let on_worker = tokio::spawn({
            let ticks = Arc::clone(&ticks);
            async move {
                let ticker = tokio::spawn({
                    let ticks = Arc::clone(&ticks);
                    async move {
                        loop {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            ticks.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
                // Until the ticker has run (a fixed wait races with it on
                // a loaded machine).
                while ticks.load(Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let ticked_during_job = v
                    .off_workers(&resource(1024), |_| {
                        let before = ticks.load(Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(30));
                        ticks.load(Ordering::SeqCst) - before
                    })
                    .await;
                ticker.abort();
                ticked_during_job
            }
        });
        assert_eq!(on_worker.await.unwrap(), 0);
        assert!(ticks.load(Ordering::SeqCst) > 0, "the ticker never ran");
    }
}
