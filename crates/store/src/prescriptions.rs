//! Prescriptions and their dispenses (ePrescription / eDispensation across
//! borders): the prescription pushed at home, stored byte-exact with the
//! state the gateway tracks; the pharmacies that retrieved it; and every
//! dispense, applied to the prescription's remaining quantity exactly once.
//!
//! The store does not read FHIR: the gateway parses the MedicationRequest
//! (or prescription Bundle) and the MedicationDispense and hands over plain
//! values (identifiers, patient, quantities, status) beside the exact bytes.
//!
//! # Quantities
//!
//! Every quantity is an `i64` of **milli-units**: thousandths of the
//! prescription's unit (`2.5` packages = `2500`; see [`MILLI_PER_UNIT`]). The
//! gateway converts the FHIR `decimal` of `Quantity.value`
//! (<https://hl7.org/fhir/R4/datatypes.html#decimal>: an exact decimal, not a
//! binary float) exactly, refusing a value with more than three fraction
//! digits rather than rounding it; the store only adds and subtracts
//! integers, so no quantity is ever rounded here.
//!
//! # States
//!
//! [`PrescriptionStatus`]: `active` (nothing dispensed), `partially-dispensed`
//! and `completed` (remaining quantity zero) follow from the quantities;
//! `cancelled` and `not-available-abroad` are set by
//! [`Store::set_prescription_status`] with a reason. Only `active` and
//! `partially-dispensed` prescriptions can be dispensed. The database checks
//! that the status and the quantities agree.
//!
//! # One dispense, one transaction
//!
//! [`Store::apply_dispense`] and [`Store::cancel_dispense`] (and
//! [`Store::set_prescription_status`]) read and change a prescription inside
//! one transaction that holds its row exclusively: on PostgreSQL
//! `SELECT … FOR UPDATE` in READ COMMITTED (a waiter then reads the row as the
//! previous holder committed it), on SQLite `BEGIN IMMEDIATE` (the database
//! write lock). Two pharmacies dispensing the last package at once, through
//! one gateway or several sharing the database, therefore get exactly one
//! success. A dispense's identifier is unique: a retry of the same dispense
//! (same identifier, same bytes) gets the first answer back and changes
//! nothing.
//!
//! # A dispense covering several prescriptions
//!
//! `MedicationDispense.authorizingPrescription` is 0..* (FHIR R4), and the
//! HL7 Europe MPD example 300D is "one dispense fulfilling two requests" (a
//! combination pack filling a cream item and a pessary item). Such a
//! dispense has one line per prescription ([`DispenseLine`], in
//! `authorizingPrescription` order), each with its own quantity in that
//! prescription's unit. [`Store::apply_dispense`] locks every covered
//! prescription (in the order of their ids, so that two such dispenses never
//! wait for each other in a circle), checks each line by the rules of a
//! single dispense, and applies all lines or none; a retry, a conflict and
//! [`Store::cancel_dispense`] treat the dispense as one.

use std::fmt;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::backend::{Backend, Store, from_micros, to_micros};
use crate::documents::Identifier;
use crate::error::StoreError;

/// Milli-units per unit: quantities are stored in thousandths of the unit
/// (module documentation).
pub const MILLI_PER_UNIT: i64 = 1_000;

/// Where a prescription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrescriptionStatus {
    /// Nothing dispensed yet: the remaining quantity is the prescribed one.
    Active,
    /// Some, not all, of the quantity dispensed.
    PartiallyDispensed,
    /// Fully dispensed: nothing remains.
    Completed,
    /// Cancelled by the prescriber (with a reason). Final.
    Cancelled,
    /// Withdrawn from dispensing abroad (with a reason), e.g. by the patient
    /// or because the medicine may not be dispensed cross-border; can be
    /// reinstated.
    NotAvailableAbroad,
}

impl PrescriptionStatus {
    /// Every status.
    pub const ALL: [Self; 5] = [
        Self::Active,
        Self::PartiallyDispensed,
        Self::Completed,
        Self::Cancelled,
        Self::NotAvailableAbroad,
    ];

    /// The code stored (and used in the gateway's list metadata):
    /// `active`, `partially-dispensed`, `completed`, `cancelled`,
    /// `not-available-abroad`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::PartiallyDispensed => "partially-dispensed",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::NotAvailableAbroad => "not-available-abroad",
        }
    }

    /// The status with code `code` ([`PrescriptionStatus::as_str`]).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == code)
    }

    /// Whether a pharmacy may dispense against it (`active` or
    /// `partially-dispensed`).
    pub fn is_dispensable(self) -> bool {
        matches!(self, Self::Active | Self::PartiallyDispensed)
    }

    /// Whether it is set by hand with a reason rather than following from
    /// the quantities.
    fn is_set_by_hand(self) -> bool {
        matches!(self, Self::Cancelled | Self::NotAvailableAbroad)
    }

    /// The status the quantities give.
    fn from_quantities(remaining_milli: i64, prescribed_milli: i64) -> Self {
        if remaining_milli == 0 {
            Self::Completed
        } else if remaining_milli == prescribed_milli {
            Self::Active
        } else {
            Self::PartiallyDispensed
        }
    }

    fn read(code: &str) -> Result<Self, StoreError> {
        Self::from_code(code)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown prescription status {code:?}")))
    }
}

impl fmt::Display for PrescriptionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A prescription to store.
///
/// `Debug` leaves out the patient identifier and the content.
#[derive(Clone)]
pub struct NewPrescription<'a> {
    /// `MedicationRequest.identifier` (or `groupIdentifier` for a
    /// prescription of several items); unique among prescriptions.
    pub identifier: Identifier,
    /// The patient as `system|value`.
    pub patient_identifier: &'a str,
    /// The prescriber's identifier (`system|value`), if the prescription
    /// names one.
    pub prescriber: Option<&'a str>,
    /// Who sent it (the authenticated prescriber system).
    pub sender: &'a str,
    /// The quantity prescribed, in milli-units (module documentation);
    /// must be positive.
    pub quantity_prescribed_milli: i64,
    /// The unit of the quantities: the code of `Quantity.code` (or its
    /// text when it has no code).
    pub unit: &'a str,
    /// The code system of `unit` (`Quantity.system`), when it is coded.
    pub unit_system: Option<&'a str>,
    /// Whether the dispenser may substitute another product.
    pub substitution_allowed: bool,
    /// The medication's ATC code, if given (list metadata).
    pub atc_code: Option<&'a str>,
    /// The medication's dose form, if given (list metadata).
    pub dose_form: Option<&'a str>,
    /// `Some(reason)`: stored as `not-available-abroad` from the start;
    /// `None`: `active`. The reason must not be blank.
    pub not_available_abroad: Option<&'a str>,
    /// The exact bytes received.
    pub content: &'a [u8],
    /// When the gateway received it (stored to the microsecond).
    pub received_at: OffsetDateTime,
}

impl fmt::Debug for NewPrescription<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewPrescription")
            .field("identifier", &self.identifier)
            .field("patient_identifier", &"<redacted>")
            .field("quantity_prescribed_milli", &self.quantity_prescribed_milli)
            .field("unit", &self.unit)
            .field("content_len", &self.content.len())
            .field("received_at", &self.received_at)
            .finish_non_exhaustive()
    }
}

/// A stored prescription and its current state.
///
/// `Debug` leaves out the patient identifier, the prescriber and the content
/// (health data must not reach logs).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPrescription {
    /// The gateway's id for it (a UUID).
    pub id: String,
    /// Its business identifier.
    pub identifier: Identifier,
    /// The patient as `system|value`.
    pub patient_identifier: String,
    /// The prescriber's identifier, if given.
    pub prescriber: Option<String>,
    /// Who sent it.
    pub sender: String,
    /// The current status.
    pub status: PrescriptionStatus,
    /// Why it is `cancelled` or `not-available-abroad` (`None` otherwise).
    pub status_reason: Option<String>,
    /// The quantity prescribed, in milli-units.
    pub quantity_prescribed_milli: i64,
    /// The quantity not yet dispensed, in milli-units.
    pub quantity_remaining_milli: i64,
    /// The unit of the quantities (a code, or text when uncoded).
    pub unit: String,
    /// The code system of `unit`, when it is coded.
    pub unit_system: Option<String>,
    /// Whether the dispenser may substitute another product.
    pub substitution_allowed: bool,
    /// The medication's ATC code, if given.
    pub atc_code: Option<String>,
    /// The medication's dose form, if given.
    pub dose_form: Option<String>,
    /// When the gateway received it (microsecond precision).
    pub received_at: OffsetDateTime,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
    /// The exact bytes received.
    pub content: Vec<u8>,
}

impl fmt::Debug for StoredPrescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredPrescription")
            .field("id", &self.id)
            .field("identifier", &self.identifier)
            .field("patient_identifier", &"<redacted>")
            .field("status", &self.status)
            .field("status_reason", &self.status_reason)
            .field("quantity_prescribed_milli", &self.quantity_prescribed_milli)
            .field("quantity_remaining_milli", &self.quantity_remaining_milli)
            .field("unit", &self.unit)
            .field("substitution_allowed", &self.substitution_allowed)
            .field("received_at", &self.received_at)
            .field("content_len", &self.content.len())
            .finish_non_exhaustive()
    }
}

/// Why a prescription was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidPrescription {
    /// The prescribed quantity is zero or negative.
    NonPositiveQuantity,
    /// `not_available_abroad` was given with a blank reason.
    BlankReason,
}

/// What storing a prescription did (the same rules as
/// [`Store::put_document`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutPrescriptionOutcome {
    /// A new prescription was stored.
    Created(StoredPrescription),
    /// The same identifier with identical bytes was stored before: nothing
    /// was written; this is the stored one, in its current state.
    AlreadyStored(StoredPrescription),
    /// The identifier is taken by a prescription with different bytes.
    Conflict {
        /// The id of the prescription holding the identifier.
        existing_id: String,
    },
    /// The values are unusable; nothing was written.
    Invalid(InvalidPrescription),
}

/// What changing a prescription's status did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChangeOutcome {
    /// The status changed.
    Changed {
        /// The status before.
        from: PrescriptionStatus,
        /// The status now.
        to: PrescriptionStatus,
    },
    /// It already had the status asked for (or, for a request to make it
    /// dispensable, already was): nothing changed, the first reason is kept.
    Unchanged(PrescriptionStatus),
    /// The change is not allowed; nothing changed.
    Refused(StatusChangeRefusal),
}

/// Why a status change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChangeRefusal {
    /// No prescription has that id.
    UnknownPrescription,
    /// `cancelled` and `not-available-abroad` need a reason that is not
    /// blank.
    ReasonRequired,
    /// `completed` follows from dispenses; it cannot be set.
    SetByDispenses,
    /// The prescription is `completed` or `cancelled`: it stays so.
    Final(PrescriptionStatus),
}

/// What a pharmacy did with a prescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DispenseKind {
    /// Medication handed over (`MedicationDispense.status` `completed`):
    /// the quantity is taken from the remaining quantity.
    Completed,
    /// A refused dispense (`MedicationDispense.status` `declined`, or
    /// `not-done` with a reason): recorded, the quantity is not touched.
    Declined,
}

impl DispenseKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Declined => "declined",
        }
    }

    fn read(code: &str) -> Result<Self, StoreError> {
        match code {
            "completed" => Ok(Self::Completed),
            "declined" => Ok(Self::Declined),
            _ => Err(StoreError::Corrupt(format!(
                "unknown dispense kind {code:?}"
            ))),
        }
    }
}

/// One prescription a dispense covers, and the quantity taken from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispenseLine<'a> {
    /// The gateway id of the prescription.
    pub prescription_id: &'a str,
    /// The quantity, in milli-units of that prescription's unit: positive
    /// for a [`DispenseKind::Completed`] dispense, zero or more for a
    /// declined one.
    pub quantity_milli: i64,
}

/// A dispense to apply.
///
/// `Debug` leaves out the content.
#[derive(Clone)]
pub struct NewDispense<'a> {
    /// `MedicationDispense.identifier`; unique among dispenses, the key of
    /// retries.
    pub identifier: Identifier,
    /// The prescriptions it covers, in the order of
    /// `MedicationDispense.authorizingPrescription`: at least one, none
    /// twice. A dispense covering several (one combination pack filling two
    /// items, HL7 Europe MPD example 300D) is applied to all of them or to
    /// none.
    pub lines: Vec<DispenseLine<'a>>,
    /// The dispensing pharmacy, as the gateway names it; the same string the
    /// pharmacy's retrievals were recorded under ([`Store::record_retrieval`]).
    pub pharmacy: &'a str,
    /// Dispensed or declined.
    pub kind: DispenseKind,
    /// The exact bytes received.
    pub content: &'a [u8],
    /// When the gateway received it (stored to the microsecond).
    pub received_at: OffsetDateTime,
}

impl fmt::Debug for NewDispense<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewDispense")
            .field("identifier", &self.identifier)
            .field("lines", &self.lines)
            .field("pharmacy", &self.pharmacy)
            .field("kind", &self.kind)
            .field("content_len", &self.content.len())
            .field("received_at", &self.received_at)
            .finish()
    }
}

/// A prescription a stored dispense covers, with the prescription's state
/// right after the dispense was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDispenseLine {
    /// The gateway id of the prescription.
    pub prescription_id: String,
    /// The quantity taken from it, in milli-units.
    pub quantity_milli: i64,
    /// Its remaining quantity right after the dispense, in milli-units.
    pub remaining_after_milli: i64,
    /// Its status right after the dispense.
    pub status_after: PrescriptionStatus,
}

/// A stored dispense.
///
/// `Debug` leaves out the content.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredDispense {
    /// The gateway's id for it (a UUID).
    pub id: String,
    /// `MedicationDispense.identifier`.
    pub identifier: Identifier,
    /// The prescriptions it covers, in `authorizingPrescription` order.
    pub lines: Vec<StoredDispenseLine>,
    /// The dispensing pharmacy.
    pub pharmacy: String,
    /// Dispensed or declined.
    pub kind: DispenseKind,
    /// When the gateway received it (microsecond precision).
    pub received_at: OffsetDateTime,
    /// When it was cancelled ([`Store::cancel_dispense`]), if it was.
    pub cancelled_at: Option<OffsetDateTime>,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
    /// The exact bytes received.
    pub content: Vec<u8>,
}

impl StoredDispense {
    /// Whether it covers exactly these prescriptions, in this order.
    pub fn covers(&self, prescription_ids: &[&str]) -> bool {
        self.lines.len() == prescription_ids.len()
            && self
                .lines
                .iter()
                .zip(prescription_ids)
                .all(|(line, id)| line.prescription_id == *id)
    }
}

impl fmt::Debug for StoredDispense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredDispense")
            .field("id", &self.id)
            .field("identifier", &self.identifier)
            .field("lines", &self.lines)
            .field("pharmacy", &self.pharmacy)
            .field("kind", &self.kind)
            .field("received_at", &self.received_at)
            .field("cancelled_at", &self.cancelled_at)
            .field("content_len", &self.content.len())
            .finish_non_exhaustive()
    }
}

/// What applying a dispense did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispenseOutcome {
    /// Recorded (and, for a completed dispense, taken from the remaining
    /// quantity of every prescription it covers); each line of `dispense`
    /// carries its prescription's state right after.
    Applied {
        /// The stored dispense.
        dispense: StoredDispense,
    },
    /// The same dispense (identifier, prescriptions and bytes) was applied
    /// before: nothing changed; this is the first answer (the lines carry
    /// the states right after the first application; `cancelled_at` shows a
    /// later cancellation, if any).
    AlreadyApplied {
        /// The dispense as first stored.
        dispense: StoredDispense,
    },
    /// Not applied; nothing changed, on any prescription.
    Refused(DispenseRefusal),
}

/// Why a dispense was refused. `line` is the position of the prescription
/// in [`NewDispense::lines`] (in `authorizingPrescription`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispenseRefusal {
    /// No prescription, or one prescription twice.
    InvalidLines,
    /// The quantity is zero or negative for a completed dispense, or
    /// negative for a declined one.
    InvalidQuantity {
        /// Which line.
        line: usize,
    },
    /// No prescription has that id.
    UnknownPrescription {
        /// Which line.
        line: usize,
    },
    /// The pharmacy never retrieved the prescription.
    NotRetrieved {
        /// Which line.
        line: usize,
    },
    /// The prescription is not `active` or `partially-dispensed` (checked
    /// for completed dispenses only).
    NotDispensable {
        /// Which line.
        line: usize,
        /// Its status.
        status: PrescriptionStatus,
    },
    /// The quantity exceeds what remains.
    OverRemaining {
        /// Which line.
        line: usize,
        /// What remains, in milli-units.
        remaining_milli: i64,
    },
    /// The identifier is taken by a dispense with other bytes or of other
    /// prescriptions.
    IdentifierConflict {
        /// The id of the dispense holding the identifier.
        existing_id: String,
    },
}

/// A prescription's quantity and status at some moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrescriptionState {
    /// The gateway id of the prescription.
    pub prescription_id: String,
    /// Its remaining quantity, in milli-units.
    pub remaining_milli: i64,
    /// Its status.
    pub status: PrescriptionStatus,
}

/// What cancelling a dispense did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The dispense is now cancelled and its quantity is back on every
    /// prescription it covered (nothing to give back for a declined
    /// dispense): their states now, in line order.
    Restored {
        /// The prescriptions, in line order.
        prescriptions: Vec<PrescriptionState>,
    },
    /// It was cancelled before: nothing changed.
    AlreadyCancelled,
    /// No dispense has that identifier.
    Unknown,
}

/// What recording a retrieval did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrievalOutcome {
    /// Recorded; the pharmacy may now dispense the prescription.
    Recorded {
        /// When this pharmacy first retrieved it.
        first_at: OffsetDateTime,
    },
    /// No prescription has that id; nothing was recorded.
    UnknownPrescription,
}

const PRESCRIPTION_COLUMNS: &str = "id, identifier_system, identifier_value, patient_identifier, \
     prescriber, sender, status, status_reason, quantity_prescribed_milli, \
     quantity_remaining_milli, unit, unit_system, substitution_allowed, atc_code, dose_form, \
     received_at_us, sha256, content";

const DISPENSE_COLUMNS: &str = "id, identifier_system, identifier_value, pharmacy, kind, \
     received_at_us, cancelled_at_us, sha256, content";

/// Opens a transaction that may lock prescription rows, and the statement
/// locking one: `BEGIN IMMEDIATE` on SQLite (the write lock from the start,
/// so no two writers interleave), READ COMMITTED with `FOR UPDATE` on
/// PostgreSQL (a waiter reads the row as the holder committed it). Several
/// rows are locked in the order of their ids, so two dispenses sharing
/// prescriptions never wait for each other in a circle.
fn lock_sql(backend: &Backend, select: &str) -> (&'static str, String) {
    match backend {
        Backend::Sqlite(_) => ("BEGIN IMMEDIATE", select.to_owned()),
        Backend::Postgres(_) => (
            "BEGIN ISOLATION LEVEL READ COMMITTED",
            format!("{select} FOR UPDATE"),
        ),
    }
}

fn is_blank(reason: Option<&str>) -> bool {
    reason.is_none_or(|r| r.trim().is_empty())
}

/// What the transaction of [`Store::apply_dispense`] ended with.
enum DispenseStep {
    Applied(Vec<StoredDispenseLine>),
    /// Refused by the checks; a retry of an applied dispense may be behind
    /// it, so the identifier is looked up before answering.
    Refused(DispenseRefusal),
    /// The identifier was already taken.
    IdentifierTaken,
}

impl Store {
    /// Stores a prescription unless its identifier is already taken, as
    /// `active` (or `not-available-abroad` with the given reason), with the
    /// whole prescribed quantity remaining.
    ///
    /// Idempotent like [`Store::put_document`]: the same identifier with
    /// identical bytes returns the stored prescription
    /// ([`PutPrescriptionOutcome::AlreadyStored`], in its current state);
    /// with other bytes, [`PutPrescriptionOutcome::Conflict`]. Concurrent
    /// pushes of one identifier store it once.
    pub async fn put_prescription(
        &self,
        new: NewPrescription<'_>,
    ) -> Result<PutPrescriptionOutcome, StoreError> {
        if new.quantity_prescribed_milli <= 0 {
            return Ok(PutPrescriptionOutcome::Invalid(
                InvalidPrescription::NonPositiveQuantity,
            ));
        }
        if new.not_available_abroad.is_some() && is_blank(new.not_available_abroad) {
            return Ok(PutPrescriptionOutcome::Invalid(
                InvalidPrescription::BlankReason,
            ));
        }
        let status = match new.not_available_abroad {
            Some(_) => PrescriptionStatus::NotAvailableAbroad,
            None => PrescriptionStatus::Active,
        };
        let sha256: [u8; 32] = Sha256::digest(new.content).into();
        let id = uuid::Uuid::new_v4().to_string();
        let received_at_us = to_micros(new.received_at)?;
        let sql = format!(
            "INSERT INTO prescriptions ({PRESCRIPTION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             ON CONFLICT (identifier_system, identifier_value) DO NOTHING"
        );
        let inserted = on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(&id)
                .bind(&new.identifier.system)
                .bind(&new.identifier.value)
                .bind(new.patient_identifier)
                .bind(new.prescriber)
                .bind(new.sender)
                .bind(status.as_str())
                .bind(new.not_available_abroad)
                .bind(new.quantity_prescribed_milli)
                .bind(new.unit)
                .bind(new.unit_system)
                .bind(new.substitution_allowed)
                .bind(new.atc_code)
                .bind(new.dose_form)
                .bind(received_at_us)
                .bind(&sha256[..])
                .bind(new.content)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if inserted == 1 {
            return Ok(PutPrescriptionOutcome::Created(StoredPrescription {
                id,
                identifier: new.identifier,
                patient_identifier: new.patient_identifier.to_owned(),
                prescriber: new.prescriber.map(str::to_owned),
                sender: new.sender.to_owned(),
                status,
                status_reason: new.not_available_abroad.map(str::to_owned),
                quantity_prescribed_milli: new.quantity_prescribed_milli,
                quantity_remaining_milli: new.quantity_prescribed_milli,
                unit: new.unit.to_owned(),
                unit_system: new.unit_system.map(str::to_owned),
                substitution_allowed: new.substitution_allowed,
                atc_code: new.atc_code.map(str::to_owned),
                dose_form: new.dose_form.map(str::to_owned),
                received_at: from_micros(received_at_us)?,
                sha256,
                content: new.content.to_vec(),
            }));
        }
        let existing = self
            .prescription_by_identifier(&new.identifier)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt("identifier conflict without a stored prescription".into())
            })?;
        if existing.sha256 == sha256 && existing.content == new.content {
            Ok(PutPrescriptionOutcome::AlreadyStored(existing))
        } else {
            Ok(PutPrescriptionOutcome::Conflict {
                existing_id: existing.id,
            })
        }
    }

    /// The prescription with the gateway id `id`, in its current state.
    pub async fn prescription(&self, id: &str) -> Result<Option<StoredPrescription>, StoreError> {
        let sql = format!("SELECT {PRESCRIPTION_COLUMNS} FROM prescriptions WHERE id = $1");
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|row| read_prescription(&row))
                .transpose()
        })
    }

    /// The prescription holding `identifier`, in its current state.
    pub async fn prescription_by_identifier(
        &self,
        identifier: &Identifier,
    ) -> Result<Option<StoredPrescription>, StoreError> {
        let sql = format!(
            "SELECT {PRESCRIPTION_COLUMNS} FROM prescriptions \
             WHERE identifier_system = $1 AND identifier_value = $2"
        );
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(&identifier.system)
                .bind(&identifier.value)
                .fetch_optional(pool)
                .await?
                .map(|row| read_prescription(&row))
                .transpose()
        })
    }

    /// The prescriptions of `patient_identifier` (`system|value`), newest
    /// first, with their content: those in one of `statuses`, or all of them
    /// when `statuses` is empty.
    pub async fn prescriptions_for_patient(
        &self,
        patient_identifier: &str,
        statuses: &[PrescriptionStatus],
    ) -> Result<Vec<StoredPrescription>, StoreError> {
        let mut codes: Vec<&'static str> = statuses.iter().map(|s| s.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        let filter = if codes.is_empty() {
            String::new()
        } else {
            let placeholders: Vec<String> = (2..codes.len() + 2).map(|n| format!("${n}")).collect();
            format!(" AND status IN ({})", placeholders.join(", "))
        };
        let sql = format!(
            "SELECT {PRESCRIPTION_COLUMNS} FROM prescriptions \
             WHERE patient_identifier = $1{filter} ORDER BY received_at_us DESC, id DESC"
        );
        on_pool!(self, |pool| {
            let mut query = sqlx::query(&sql).bind(patient_identifier);
            for code in &codes {
                query = query.bind(*code);
            }
            query
                .fetch_all(pool)
                .await?
                .iter()
                .map(read_prescription)
                .collect()
        })
    }

    /// Cancels a prescription, withdraws it from dispensing abroad, or makes
    /// a withdrawn one dispensable again.
    ///
    /// - [`PrescriptionStatus::Cancelled`] and
    ///   [`PrescriptionStatus::NotAvailableAbroad`] need a `reason` that is
    ///   not blank, and apply to a prescription that is not `completed` or
    ///   `cancelled` (a withdrawn one may still be cancelled).
    /// - [`PrescriptionStatus::Active`] or
    ///   [`PrescriptionStatus::PartiallyDispensed`] (either one) reinstate a
    ///   `not-available-abroad` prescription: its status then follows from
    ///   its quantities again and the reason is cleared; `reason` is ignored.
    /// - [`PrescriptionStatus::Completed`] cannot be set: it follows from
    ///   dispenses.
    ///
    /// Runs under the prescription's row lock (module documentation), so it
    /// never interleaves with a dispense.
    pub async fn set_prescription_status(
        &self,
        id: &str,
        status: PrescriptionStatus,
        reason: Option<&str>,
    ) -> Result<StatusChangeOutcome, StoreError> {
        use PrescriptionStatus as S;
        use StatusChangeOutcome as O;
        if status == S::Completed {
            return Ok(O::Refused(StatusChangeRefusal::SetByDispenses));
        }
        if status.is_set_by_hand() && is_blank(reason) {
            return Ok(O::Refused(StatusChangeRefusal::ReasonRequired));
        }
        let (begin, lock) = lock_sql(
            &self.backend,
            "SELECT status, quantity_remaining_milli, quantity_prescribed_milli \
             FROM prescriptions WHERE id = $1",
        );
        on_pool!(self, |pool| async {
            let mut tx = pool.begin_with(begin).await?;
            let row: Option<(String, i64, i64)> = sqlx::query_as(&lock)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((current, remaining, prescribed)) = row else {
                tx.rollback().await?;
                return Ok(O::Refused(StatusChangeRefusal::UnknownPrescription));
            };
            let current = S::read(&current)?;
            let change = match (current, status) {
                (S::Completed | S::Cancelled, _) if current == status => Err(O::Unchanged(current)),
                (S::Completed | S::Cancelled, _) => {
                    Err(O::Refused(StatusChangeRefusal::Final(current)))
                }
                (S::NotAvailableAbroad, S::Active | S::PartiallyDispensed) => {
                    Ok((S::from_quantities(remaining, prescribed), None))
                }
                (S::Active | S::PartiallyDispensed, S::Active | S::PartiallyDispensed) => {
                    Err(O::Unchanged(current))
                }
                _ if current == status => Err(O::Unchanged(current)),
                _ => Ok((status, reason)),
            };
            let (to, new_reason) = match change {
                Ok(change) => change,
                Err(outcome) => {
                    tx.rollback().await?;
                    return Ok(outcome);
                }
            };
            sqlx::query("UPDATE prescriptions SET status = $1, status_reason = $2 WHERE id = $3")
                .bind(to.as_str())
                .bind(new_reason)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(O::Changed { from: current, to })
        }
        .await)
    }

    /// Records that `pharmacy` retrieved the prescription `prescription_id`
    /// at `at` (the first and the latest time are kept per pharmacy); a
    /// pharmacy may dispense only what it retrieved
    /// ([`DispenseRefusal::NotRetrieved`]).
    pub async fn record_retrieval(
        &self,
        prescription_id: &str,
        pharmacy: &str,
        at: OffsetDateTime,
    ) -> Result<RetrievalOutcome, StoreError> {
        let at_us = to_micros(at)?;
        let first: Option<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO prescription_retrievals \
                 (prescription_id, pharmacy, first_at_us, last_at_us) \
                 SELECT $1, $2, $3, $3 WHERE EXISTS (SELECT 1 FROM prescriptions WHERE id = $1) \
                 ON CONFLICT (prescription_id, pharmacy) DO UPDATE SET \
                 first_at_us = CASE WHEN excluded.first_at_us < prescription_retrievals.first_at_us \
                 THEN excluded.first_at_us ELSE prescription_retrievals.first_at_us END, \
                 last_at_us = CASE WHEN excluded.last_at_us > prescription_retrievals.last_at_us \
                 THEN excluded.last_at_us ELSE prescription_retrievals.last_at_us END \
                 RETURNING first_at_us",
            )
            .bind(prescription_id)
            .bind(pharmacy)
            .bind(at_us)
            .fetch_optional(pool)
            .await
        })?;
        match first {
            Some(first_us) => Ok(RetrievalOutcome::Recorded {
                first_at: from_micros(first_us)?,
            }),
            None => Ok(RetrievalOutcome::UnknownPrescription),
        }
    }

    /// Applies a dispense to the prescriptions it covers, in one
    /// transaction holding their rows (module documentation): to all of
    /// them, or to none.
    ///
    /// Checked in this order, each failure a [`DispenseOutcome::Refused`]
    /// that changes nothing: the lines ([`DispenseRefusal::InvalidLines`]),
    /// each line's quantity; then, line by line, the prescription exists,
    /// the pharmacy retrieved it, and — for a completed dispense — it is
    /// dispensable and the line's quantity is at most what remains. A
    /// completed dispense then takes each line's quantity from its
    /// prescription (status `partially-dispensed`, or `completed` at zero);
    /// a declined one is recorded without touching the prescriptions. Either
    /// is stored byte-exact.
    ///
    /// A dispense whose identifier is already stored is not applied again:
    /// with the same prescriptions (same order) and identical bytes the
    /// answer is [`DispenseOutcome::AlreadyApplied`] with the first result,
    /// otherwise [`DispenseRefusal::IdentifierConflict`].
    ///
    /// Cost: on the path that applies, `BEGIN`, per line one locking
    /// statement, one insert and one update on primary keys or unique
    /// indexes, one insert of the dispense, and `COMMIT`; the identifier is
    /// looked up (outside the transaction) only when the checks or the
    /// insert refuse.
    pub async fn apply_dispense(
        &self,
        new: NewDispense<'_>,
    ) -> Result<DispenseOutcome, StoreError> {
        let mut ids: Vec<&str> = new.lines.iter().map(|l| l.prescription_id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() || ids.len() != new.lines.len() {
            return Ok(DispenseOutcome::Refused(DispenseRefusal::InvalidLines));
        }
        if let Some(line) = new.lines.iter().position(|l| match new.kind {
            DispenseKind::Completed => l.quantity_milli <= 0,
            DispenseKind::Declined => l.quantity_milli < 0,
        }) {
            return Ok(DispenseOutcome::Refused(DispenseRefusal::InvalidQuantity {
                line,
            }));
        }
        let sha256: [u8; 32] = Sha256::digest(new.content).into();
        let received_at_us = to_micros(new.received_at)?;
        let id = uuid::Uuid::new_v4().to_string();
        // The retrieval is read in the locking statement: retrievals precede
        // dispenses, so the statement's snapshot holds the one that counts.
        let (begin, lock) = lock_sql(
            &self.backend,
            "SELECT status, quantity_remaining_milli, quantity_prescribed_milli, \
             CAST(CASE WHEN EXISTS (SELECT 1 FROM prescription_retrievals r \
             WHERE r.prescription_id = p.id AND r.pharmacy = $2) THEN 1 ELSE 0 END AS BIGINT) \
             FROM prescriptions p WHERE p.id = $1",
        );
        let insert = format!(
            "INSERT INTO dispenses ({DISPENSE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8) \
             ON CONFLICT (identifier_system, identifier_value) DO NOTHING"
        );
        // Locked in the order of the prescriptions' ids (see lock_sql).
        let mut lock_order: Vec<(usize, DispenseLine<'_>)> =
            new.lines.iter().copied().enumerate().collect();
        lock_order.sort_by(|a, b| a.1.prescription_id.cmp(b.1.prescription_id));
        let completed = new.kind == DispenseKind::Completed;
        let step = on_pool!(self, |pool| async {
            let mut tx = pool.begin_with(begin).await?;
            let mut locked = Vec::with_capacity(lock_order.len());
            for (line, dispensed) in &lock_order {
                let row: Option<(String, i64, i64, i64)> = sqlx::query_as(&lock)
                    .bind(dispensed.prescription_id)
                    .bind(new.pharmacy)
                    .fetch_optional(&mut *tx)
                    .await?;
                locked.push((*line, *dispensed, row));
            }
            locked.sort_by_key(|(line, _, _)| *line);
            let mut lines = Vec::with_capacity(locked.len());
            let mut refusal = None;
            for (line, dispensed, row) in locked {
                let Some((status, remaining, prescribed, retrieved)) = row else {
                    refusal = Some(DispenseRefusal::UnknownPrescription { line });
                    break;
                };
                let status = PrescriptionStatus::read(&status)?;
                refusal = if retrieved == 0 {
                    Some(DispenseRefusal::NotRetrieved { line })
                } else if completed && !status.is_dispensable() {
                    Some(DispenseRefusal::NotDispensable { line, status })
                } else if completed && dispensed.quantity_milli > remaining {
                    Some(DispenseRefusal::OverRemaining {
                        line,
                        remaining_milli: remaining,
                    })
                } else {
                    None
                };
                if refusal.is_some() {
                    break;
                }
                let (remaining_after, status_after) = if completed {
                    let after = remaining - dispensed.quantity_milli;
                    (
                        after,
                        PrescriptionStatus::from_quantities(after, prescribed),
                    )
                } else {
                    (remaining, status)
                };
                lines.push(StoredDispenseLine {
                    prescription_id: dispensed.prescription_id.to_owned(),
                    quantity_milli: dispensed.quantity_milli,
                    remaining_after_milli: remaining_after,
                    status_after,
                });
            }
            if let Some(refusal) = refusal {
                tx.rollback().await?;
                return Ok(DispenseStep::Refused(refusal));
            }
            let inserted = sqlx::query(&insert)
                .bind(&id)
                .bind(&new.identifier.system)
                .bind(&new.identifier.value)
                .bind(new.pharmacy)
                .bind(new.kind.as_str())
                .bind(received_at_us)
                .bind(&sha256[..])
                .bind(new.content)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted == 0 {
                tx.rollback().await?;
                return Ok(DispenseStep::IdentifierTaken);
            }
            for (line, stored) in lines.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO dispense_lines (dispense_id, line, prescription_id, \
                     quantity_milli, remaining_after_milli, status_after) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&id)
                .bind(i32::try_from(line).map_err(|_| {
                    StoreError::Corrupt("a dispense covers too many prescriptions".into())
                })?)
                .bind(&stored.prescription_id)
                .bind(stored.quantity_milli)
                .bind(stored.remaining_after_milli)
                .bind(stored.status_after.as_str())
                .execute(&mut *tx)
                .await?;
                if completed {
                    sqlx::query(
                        "UPDATE prescriptions SET quantity_remaining_milli = $1, status = $2 \
                         WHERE id = $3",
                    )
                    .bind(stored.remaining_after_milli)
                    .bind(stored.status_after.as_str())
                    .bind(&stored.prescription_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            Ok::<_, StoreError>(DispenseStep::Applied(lines))
        }
        .await)?;
        let refusal = match step {
            DispenseStep::Applied(lines) => {
                return Ok(DispenseOutcome::Applied {
                    dispense: StoredDispense {
                        id,
                        identifier: new.identifier,
                        lines,
                        pharmacy: new.pharmacy.to_owned(),
                        kind: new.kind,
                        received_at: from_micros(received_at_us)?,
                        cancelled_at: None,
                        sha256,
                        content: new.content.to_vec(),
                    },
                });
            }
            DispenseStep::Refused(refusal) => Some(refusal),
            DispenseStep::IdentifierTaken => None,
        };
        // The transaction is over (rolled back if it did not commit); a
        // stored dispense is never deleted, so what is read now stands.
        let prescription_ids: Vec<&str> = new.lines.iter().map(|l| l.prescription_id).collect();
        match self.dispense_by_identifier(&new.identifier).await? {
            Some(existing)
                if existing.covers(&prescription_ids)
                    && existing.sha256 == sha256
                    && existing.content == new.content =>
            {
                Ok(DispenseOutcome::AlreadyApplied { dispense: existing })
            }
            Some(existing) => Ok(DispenseOutcome::Refused(
                DispenseRefusal::IdentifierConflict {
                    existing_id: existing.id,
                },
            )),
            None => match refusal {
                Some(refusal) => Ok(DispenseOutcome::Refused(refusal)),
                None => Err(StoreError::Corrupt(
                    "dispense identifier conflict without a stored dispense".into(),
                )),
            },
        }
    }

    /// Cancels a dispense (e.g. a discarded MedicationDispense): marks it
    /// cancelled at `at` (the row is kept) and gives its quantity back to
    /// every prescription it covered, once. Each prescription's status then
    /// follows from its quantities again, unless it is `cancelled` or
    /// `not-available-abroad`, which it stays. Runs under the prescriptions'
    /// row locks (module documentation).
    pub async fn cancel_dispense(
        &self,
        identifier: &Identifier,
        at: OffsetDateTime,
    ) -> Result<CancelOutcome, StoreError> {
        let at_us = to_micros(at)?;
        let (begin, lock) = lock_sql(
            &self.backend,
            "SELECT status, quantity_remaining_milli, quantity_prescribed_milli \
             FROM prescriptions WHERE id = $1",
        );
        on_pool!(self, |pool| async {
            let mut tx = pool.begin_with(begin).await?;
            let row: Option<(String, String)> = sqlx::query_as(
                "SELECT id, kind FROM dispenses \
                 WHERE identifier_system = $1 AND identifier_value = $2",
            )
            .bind(&identifier.system)
            .bind(&identifier.value)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((dispense_id, kind)) = row else {
                tx.rollback().await?;
                return Ok(CancelOutcome::Unknown);
            };
            let lines: Vec<(String, i64)> = sqlx::query_as(
                "SELECT prescription_id, quantity_milli FROM dispense_lines \
                 WHERE dispense_id = $1 ORDER BY line",
            )
            .bind(&dispense_id)
            .fetch_all(&mut *tx)
            .await?;
            let mut lock_order: Vec<&str> = lines.iter().map(|(p, _)| p.as_str()).collect();
            lock_order.sort_unstable();
            let mut states = Vec::with_capacity(lines.len());
            for prescription_id in lock_order {
                let (status, remaining, prescribed): (String, i64, i64) = sqlx::query_as(&lock)
                    .bind(prescription_id)
                    .fetch_one(&mut *tx)
                    .await?;
                states.push((
                    prescription_id,
                    PrescriptionStatus::read(&status)?,
                    remaining,
                    prescribed,
                ));
            }
            // Decided under the locks: a concurrent cancel has committed by now.
            let marked = sqlx::query(
                "UPDATE dispenses SET cancelled_at_us = $1 \
                 WHERE id = $2 AND cancelled_at_us IS NULL",
            )
            .bind(at_us)
            .bind(&dispense_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked == 0 {
                tx.rollback().await?;
                return Ok(CancelOutcome::AlreadyCancelled);
            }
            let kind = DispenseKind::read(&kind)?;
            let mut restored = Vec::with_capacity(lines.len());
            for (prescription_id, quantity) in &lines {
                let (_, status, remaining, prescribed) = states
                    .iter()
                    .find(|(id, _, _, _)| id == prescription_id)
                    .copied()
                    .ok_or_else(|| StoreError::Corrupt("dispense line not locked".into()))?;
                let (remaining_after, status_after) = match kind {
                    DispenseKind::Declined => (remaining, status),
                    DispenseKind::Completed => {
                        let after = remaining
                            .checked_add(*quantity)
                            .filter(|after| *after <= prescribed)
                            .ok_or_else(|| {
                                StoreError::Corrupt(
                                    "restoring a dispense exceeds the prescribed quantity".into(),
                                )
                            })?;
                        let status_after = if status.is_set_by_hand() {
                            status
                        } else {
                            PrescriptionStatus::from_quantities(after, prescribed)
                        };
                        sqlx::query(
                            "UPDATE prescriptions SET quantity_remaining_milli = $1, status = $2 \
                             WHERE id = $3",
                        )
                        .bind(after)
                        .bind(status_after.as_str())
                        .bind(prescription_id)
                        .execute(&mut *tx)
                        .await?;
                        (after, status_after)
                    }
                };
                restored.push(PrescriptionState {
                    prescription_id: prescription_id.clone(),
                    remaining_milli: remaining_after,
                    status: status_after,
                });
            }
            tx.commit().await?;
            Ok::<_, StoreError>(CancelOutcome::Restored {
                prescriptions: restored,
            })
        }
        .await)
    }

    /// The dispense holding `identifier`, with its lines (each with its
    /// prescription's state right after the dispense was applied).
    pub async fn dispense_by_identifier(
        &self,
        identifier: &Identifier,
    ) -> Result<Option<StoredDispense>, StoreError> {
        let sql = format!(
            "SELECT {DISPENSE_COLUMNS} FROM dispenses \
             WHERE identifier_system = $1 AND identifier_value = $2"
        );
        let found = on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(&identifier.system)
                .bind(&identifier.value)
                .fetch_optional(pool)
                .await?
                .map(|row| read_dispense(&row))
                .transpose()
        })?;
        match found {
            Some(dispense) => Ok(Some(self.with_lines(dispense).await?)),
            None => Ok(None),
        }
    }

    /// The dispenses (completed, declined, cancelled ones included) covering
    /// the prescription `prescription_id`, in the order they were applied.
    pub async fn dispenses_for_prescription(
        &self,
        prescription_id: &str,
    ) -> Result<Vec<StoredDispense>, StoreError> {
        let sql = format!(
            "SELECT {} FROM dispenses d WHERE EXISTS (SELECT 1 FROM dispense_lines l \
             WHERE l.dispense_id = d.id AND l.prescription_id = $1) ORDER BY d.seq",
            DISPENSE_COLUMNS
                .split(", ")
                .map(|c| format!("d.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let dispenses = on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(prescription_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(read_dispense)
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        let mut out = Vec::with_capacity(dispenses.len());
        for dispense in dispenses {
            out.push(self.with_lines(dispense).await?);
        }
        Ok(out)
    }

    /// `dispense` with its lines read from the store.
    async fn with_lines(&self, mut dispense: StoredDispense) -> Result<StoredDispense, StoreError> {
        let rows: Vec<(String, i64, i64, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT prescription_id, quantity_milli, remaining_after_milli, status_after \
                 FROM dispense_lines WHERE dispense_id = $1 ORDER BY line",
            )
            .bind(&dispense.id)
            .fetch_all(pool)
            .await
        })?;
        dispense.lines = rows
            .into_iter()
            .map(
                |(prescription_id, quantity_milli, remaining_after_milli, status)| {
                    Ok(StoredDispenseLine {
                        prescription_id,
                        quantity_milli,
                        remaining_after_milli,
                        status_after: PrescriptionStatus::read(&status)?,
                    })
                },
            )
            .collect::<Result<_, StoreError>>()?;
        if dispense.lines.is_empty() {
            return Err(StoreError::Corrupt("a dispense without lines".into()));
        }
        Ok(dispense)
    }
}

fn to_sha256(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("sha256 is not 32 bytes".into()))
}

fn read_prescription<R>(row: &R) -> Result<StoredPrescription, StoreError>
where
    R: sqlx::Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let status: String = row.try_get("status")?;
    Ok(StoredPrescription {
        id: row.try_get("id")?,
        identifier: Identifier {
            system: row.try_get("identifier_system")?,
            value: row.try_get("identifier_value")?,
        },
        patient_identifier: row.try_get("patient_identifier")?,
        prescriber: row.try_get("prescriber")?,
        sender: row.try_get("sender")?,
        status: PrescriptionStatus::read(&status)?,
        status_reason: row.try_get("status_reason")?,
        quantity_prescribed_milli: row.try_get("quantity_prescribed_milli")?,
        quantity_remaining_milli: row.try_get("quantity_remaining_milli")?,
        unit: row.try_get("unit")?,
        unit_system: row.try_get("unit_system")?,
        substitution_allowed: row.try_get("substitution_allowed")?,
        atc_code: row.try_get("atc_code")?,
        dose_form: row.try_get("dose_form")?,
        received_at: from_micros(row.try_get("received_at_us")?)?,
        sha256: to_sha256(row.try_get("sha256")?)?,
        content: row.try_get("content")?,
    })
}

/// A dispense row, its lines not yet read ([`Store::with_lines`]).
fn read_dispense<R>(row: &R) -> Result<StoredDispense, StoreError>
where
    R: sqlx::Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let kind: String = row.try_get("kind")?;
    let cancelled_at: Option<i64> = row.try_get("cancelled_at_us")?;
    Ok(StoredDispense {
        id: row.try_get("id")?,
        identifier: Identifier {
            system: row.try_get("identifier_system")?,
            value: row.try_get("identifier_value")?,
        },
        lines: Vec::new(),
        pharmacy: row.try_get("pharmacy")?,
        kind: DispenseKind::read(&kind)?,
        received_at: from_micros(row.try_get("received_at_us")?)?,
        cancelled_at: cancelled_at.map(from_micros).transpose()?,
        sha256: to_sha256(row.try_get("sha256")?)?,
        content: row.try_get("content")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_round_trip() {
        for status in PrescriptionStatus::ALL {
            assert_eq!(PrescriptionStatus::from_code(status.as_str()), Some(status));
        }
        assert_eq!(PrescriptionStatus::from_code("on-hold"), None);
    }

    #[test]
    fn status_from_quantities() {
        use PrescriptionStatus as S;
        assert_eq!(S::from_quantities(10_000, 10_000), S::Active);
        assert_eq!(S::from_quantities(2_500, 10_000), S::PartiallyDispensed);
        assert_eq!(S::from_quantities(0, 10_000), S::Completed);
    }
}
