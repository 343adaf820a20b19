//! The memory budget of request bodies (issue 16 #4): a request body is
//! admitted only when the memory its handling is estimated to take fits in
//! what is left of `[server] memory_budget_bytes`; otherwise it is refused
//! with 503 and `Retry-After` before it is read
//! ([`GatewayError::MemoryBudgetExhausted`], RFC 9110 §15.6.4).
//!
//! The estimate is [`COST_PER_BODY_BYTE`] bytes per body byte, reserved from
//! `Content-Length` before the body is read, or, for a body without one
//! (chunked), chunk by chunk as the bytes arrive. [`receive`] reserves it
//! (the body extractor `super::extract` calls it); [`hold_reservations`],
//! around each request in `super::observe`, keeps what the request reserved
//! until its response is built, then gives it back. So however many large
//! bodies arrive at once, those being parsed and validated together are
//! estimated to take at most the budget.
//!
//! The budget, what is reserved and how many bodies were refused are on
//! `/metrics` ([`MemoryBudget::render`]).

use std::cell::RefCell;
use std::fmt::Write;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::error::GatewayError;

/// Memory estimated per byte of a request body, while the request is
/// handled: the received bytes (collected, then kept beside the view), the
/// lossless parsed view of `ehds_fhir::json` (measured 3.9 bytes per byte of
/// a 20 MiB Bundle of 52,195 Observations), the validator's working memory
/// and its report (2.5 per byte on the same Bundle, a warning per entry),
/// and the OperationOutcome written back (0.4 per byte). What the budget
/// bounds is the resident set (`tests/memory_budget.rs`, idle read once the
/// allocator has given back what start-up freed): one such body took
/// 208 MiB over the idle resident set (10.4 per byte), two at once 403–406
/// MiB (10.1 each), so the estimate is 12 and the default budget holds two.
/// (It was 16 while the OperationOutcome was built through fhir-sdk's
/// typed model with the parsed body still held, and the findings' texts
/// were copied to drop repeats: 14.9 per byte for one body.) Documents
/// made of little but tiny values cost more (an array of one-digit numbers:
/// about 20 per byte once parsed) and are not what the estimate is for:
/// `conformance/abuse-cases.md`, case 4.
pub const COST_PER_BODY_BYTE: u64 = 12;

/// The budget's accounting unit (a semaphore permit), in bytes.
const UNIT_BYTES: u64 = 1024;

/// The memory budget of request bodies, shared by both listeners.
#[derive(Debug)]
pub struct MemoryBudget {
    /// One permit per [`UNIT_BYTES`] of the budget.
    units: Arc<Semaphore>,
    /// The budget, in units.
    total_units: u32,
    /// Bodies refused because the budget was spent.
    refused: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `bytes` (rounded down to whole KiB, at most 4 TiB).
    pub fn new(bytes: u64) -> Self {
        let total_units = u32::try_from(bytes / UNIT_BYTES).unwrap_or(u32::MAX);
        Self {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            refused: AtomicU64::new(0),
        }
    }

    /// The budget in bytes.
    pub fn bytes(&self) -> u64 {
        u64::from(self.total_units) * UNIT_BYTES
    }

    /// Bytes reserved by requests in flight now.
    pub fn reserved_bytes(&self) -> u64 {
        let available = u64::try_from(self.units.available_permits()).unwrap_or(u64::MAX);
        u64::from(self.total_units).saturating_sub(available) * UNIT_BYTES
    }

    /// Bodies refused so far because the budget was spent.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The estimated cost of `body_bytes`, in units (rounded up).
    fn units_for(body_bytes: u64) -> u32 {
        let bytes = body_bytes.saturating_mul(COST_PER_BODY_BYTE);
        u32::try_from(bytes.div_ceil(UNIT_BYTES)).unwrap_or(u32::MAX)
    }

    /// Reserves the estimated cost of `body_bytes` for the request being
    /// handled (kept until [`hold_reservations`] ends), or refuses it.
    pub(crate) fn reserve(&self, body_bytes: u64) -> Result<(), GatewayError> {
        let units = Self::units_for(body_bytes);
        if units == 0 {
            return Ok(());
        }
        match Arc::clone(&self.units).try_acquire_many_owned(units) {
            Ok(permit) => {
                // Outside a request (no `hold_reservations` scope) there is
                // nothing to hold it for: it is given back at once.
                let _ = RESERVED.try_with(|held| match &mut *held.borrow_mut() {
                    Some(earlier) => earlier.merge(permit),
                    none => *none = Some(permit),
                });
                Ok(())
            }
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(GatewayError::MemoryBudgetExhausted {
                    estimated: u64::from(units) * UNIT_BYTES,
                    budget: self.bytes(),
                })
            }
        }
    }

    /// The `/metrics` text of the budget.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP ehds_memory_budget_bytes Memory budget of request bodies being handled ([server] memory_budget_bytes).\n",
        );
        out.push_str("# TYPE ehds_memory_budget_bytes gauge\n");
        let _ = writeln!(out, "ehds_memory_budget_bytes {}", self.bytes());
        out.push_str(
            "# HELP ehds_memory_budget_reserved_bytes Memory reserved now by the request bodies being handled (estimated from their size).\n",
        );
        out.push_str("# TYPE ehds_memory_budget_reserved_bytes gauge\n");
        let _ = writeln!(
            out,
            "ehds_memory_budget_reserved_bytes {}",
            self.reserved_bytes()
        );
        out.push_str(
            "# HELP ehds_memory_budget_refused_total Request bodies refused with 503 because the memory budget was spent.\n",
        );
        out.push_str("# TYPE ehds_memory_budget_refused_total counter\n");
        let _ = writeln!(out, "ehds_memory_budget_refused_total {}", self.refused());
        out
    }
}

tokio::task_local! {
    /// What the request being handled has reserved.
    static RESERVED: RefCell<Option<OwnedSemaphorePermit>>;
}

/// Runs `request` (a request's handling, response built) holding what it
/// reserves of the budget, and gives it back when it is done.
pub(crate) async fn hold_reservations<F: Future>(request: F) -> F::Output {
    RESERVED.scope(RefCell::new(None), request).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    #[tokio::test]
    async fn reservations_are_held_for_the_request_and_given_back_after() {
        let budget = Arc::new(MemoryBudget::new(100 * COST_PER_BODY_BYTE * 1024));
        assert_eq!(budget.bytes(), 100 * COST_PER_BODY_BYTE * 1024);
        let inside = Arc::clone(&budget);
        hold_reservations(async move {
            // 60 KiB of body, then 30 more as they arrive: 90 KiB held.
            inside.reserve(60 * 1024).unwrap();
            inside.reserve(30 * 1024).unwrap();
            assert_eq!(inside.reserved_bytes(), 90 * COST_PER_BODY_BYTE * 1024);
            // Another 20 KiB does not fit.
            let refused = inside.reserve(20 * 1024).unwrap_err();
            let response = refused.into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(response.headers().contains_key("retry-after"));
        })
        .await;
        assert_eq!(budget.reserved_bytes(), 0);
        assert_eq!(budget.refused(), 1);
        let metrics = budget.render();
        assert!(metrics.contains("ehds_memory_budget_refused_total 1\n"));
        assert!(metrics.contains("ehds_memory_budget_reserved_bytes 0\n"));
    }

    #[tokio::test]
    async fn an_empty_body_reserves_nothing_and_a_reservation_outside_a_request_is_not_kept() {
        let budget = MemoryBudget::new(1024 * COST_PER_BODY_BYTE);
        budget.reserve(0).unwrap();
        budget.reserve(1024).unwrap();
        assert_eq!(budget.reserved_bytes(), 0);
        assert!(budget.reserve(1025).is_err());
    }
}
