//! ePrescriptions at home (the country of affiliation): prescriber systems
//! push MedicationRequests through the national API (`crate::national::prescriptions`); the gateway validates
//! them (R4 core, the profiles they claim, and the HL7 Europe MPD
//! MedicationRequest profile), stores the bytes exactly as sent and tracks
//! their state (quantity remaining, dispensable abroad or not) in the store.
//!
//! What the gateway reads from a pushed MedicationRequest (and refuses to
//! store without, since a pharmacy abroad could not use it):
//!
//! | what | element | |
//! | --- | --- | --- |
//! | identifier | `identifier[0]` (system and value) | the prescription's business identifier, unique |
//! | patient | `subject.identifier` (system and value) | how a country of treatment finds it; a bare `subject.reference` is not enough across borders |
//! | quantity | `dispenseRequest.quantity`, else the IHE MPD `prescribedQuantity` extension on `dispenseRequest` | value (at most 3 decimals) and coded unit (`system` and `code`; the unit policy of [`units`] compares dispenses with it) |
//! | substitution | `substitution.allowedBoolean` | absent: not allowed |
//! | ATC | `medicationCodeableConcept.coding` of `http://www.whocc.no/atc` | optional list metadata |
//!
//! A prescription of several items (HL7 Europe MPD multi-item prescription,
//! examples 100A/200A/300A: a `collection` Bundle of MedicationRequests,
//! often with a RequestGroup) is pushed to `POST /fhir/Bundle`
//! ([`push_prescription_bundle`]): each item is tracked as its own
//! prescription, its stored bytes the item's bytes within the Bundle, its
//! patient the Bundle's Patient entry its `subject` resolves to.
//!
//! Across borders, a pharmacy's or doctor's system abroad lists the patient's
//! prescriptions (`GET MedicationRequest?patient.identifier=…[&status=…]`,
//! relayed like the patient summary): each entry carries the prescription as
//! the prescriber wrote it and, in `entry.search`, the gateway's list metadata
//! (the eHDSI list idea): whether it is dispensable abroad and why,
//! what remains, substitution, ATC ([`DISPENSING_EXTENSION`]). Listing records
//! the retrieval by the asking pharmacy (a dispense needs one).
//!
//! A pharmacy abroad then dispenses ([`dispense_at_home`], called by the
//! federation listener once the caller is admitted): the MedicationDispense
//! names the prescriptions it fills in `authorizingPrescription` (by the
//! identifiers the list gave; one or more — a combination pack may fill
//! several, HL7 Europe MPD example 300D), its one `quantity` is taken from
//! each of them, in each prescription's unit, after the unit policy
//! ([`units`]) has found the units comparable; all of them are
//! changed in one store transaction, or none.

pub(crate) mod units;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ehds_fhir::Node;
use ehds_fhir::outcome::{Issue, IssueType};
use ehds_identifiers::PatientIdentifier;
use ehds_store::DocumentIdentifier as Identifier;
use ehds_store::{NewPrescription, PutPrescriptionOutcome};
use ehds_transport::NationalClientKind;

use crate::edge::AppState;
use crate::edge::respond::FHIR_JSON;
use crate::error::{DispenseRefusal, GatewayError};

/// The HL7 Europe MPD MedicationRequest profile every pushed prescription
/// must meet (when the loaded packages hold it).
pub(crate) const MPD_MEDICATION_REQUEST: &str =
    "http://hl7.eu/fhir/mpd/StructureDefinition/MedicationRequest-eu-mpd";

/// IHE MPD extension carrying the prescribed quantity on `dispenseRequest`.
const PRESCRIBED_QUANTITY: &str = "https://profiles.ihe.net/PHARM/MPD/StructureDefinition/ihe-ext-medicationrequest-prescribedQuantity";

const ATC: &str = "http://www.whocc.no/atc";

/// An exact FHIR decimal as thousandths (`"2.5"` → 2 500); `None` for
/// negative values, more than three decimals, exponents or overflow.
pub(crate) fn decimal_to_milli(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || (text.contains('.') && fraction.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 3
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let mut milli: i64 = 0;
    for (i, digit) in fraction.bytes().enumerate() {
        let weight = 10_i64.pow(2 - u32::try_from(i).ok()?);
        milli += i64::from(digit - b'0') * weight;
    }
    whole.checked_mul(1000)?.checked_add(milli)
}

pub(crate) fn refuse(message: &str, at: &str) -> GatewayError {
    let mut report = ehds_validation::ValidationReport::default();
    report.push(Issue::error(IssueType::Required, message).at(at));
    GatewayError::Invalid(report)
}

pub(crate) fn text<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.get(key).and_then(Node::as_str)
}

/// What the gateway tracks of one pushed MedicationRequest (see the module
/// documentation for the elements).
pub(crate) struct PrescriptionFacts<'a> {
    pub(crate) identifier: (&'a str, &'a str),
    pub(crate) patient: String,
    pub(crate) quantity_milli: i64,
    pub(crate) unit_system: &'a str,
    pub(crate) unit: &'a str,
    pub(crate) substitution_allowed: bool,
    pub(crate) atc: Option<&'a str>,
}

/// Reads the tracked facts of the MedicationRequest `root`; `at` is its
/// location (`MedicationRequest` or `Bundle.entry[i].resource`); `patient`
/// is the patient's identifier when the caller resolved it (a Bundle's
/// Patient entry), else `subject.identifier` is required.
pub(crate) fn prescription_facts<'a>(
    root: &'a Node,
    at: &str,
    patient: Option<String>,
) -> Result<PrescriptionFacts<'a>, GatewayError> {
    let identifier = root
        .get("identifier")
        .and_then(|i| i.items().first())
        .and_then(|i| Some((text(i, "system")?, text(i, "value")?)))
        .ok_or_else(|| {
            refuse(
                "a prescription crossing borders needs identifier[0] with a system and a value",
                &format!("{at}.identifier"),
            )
        })?;
    let patient = match patient {
        Some(patient) => patient,
        None => root
            .get("subject")
            .and_then(|s| s.get("identifier"))
            .and_then(|i| PatientIdentifier::new(text(i, "system")?, text(i, "value")?))
            .map(|p| p.key())
            .ok_or_else(|| {
                refuse(
                    "subject.identifier (system and value) is required: a country of treatment finds prescriptions by the patient's identifier",
                    &format!("{at}.subject.identifier"),
                )
            })?,
    };
    let dispense_request = root.get("dispenseRequest");
    let quantity = dispense_request
        .and_then(|d| d.get("quantity"))
        .or_else(|| {
            dispense_request
                .and_then(|d| d.get("extension"))
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .find(|e| text(e, "url") == Some(PRESCRIBED_QUANTITY))
                .and_then(|e| e.get("valueQuantity"))
        })
        .ok_or_else(|| {
            refuse(
                "the prescribed quantity is required (dispenseRequest.quantity or the IHE MPD prescribedQuantity extension)",
                &format!("{at}.dispenseRequest"),
            )
        })?;
    let quantity_milli = quantity
        .get("value")
        .and_then(Node::as_number_text)
        .and_then(decimal_to_milli)
        .filter(|m| *m > 0)
        .ok_or_else(|| {
            refuse(
                "the prescribed quantity must be a positive number with at most three decimals",
                &format!("{at}.dispenseRequest.quantity.value"),
            )
        })?;
    // A dispense abroad is compared with this unit by system and code
    // (crate::units): an uncoded unit could never be compared.
    let (unit_system, unit) = text(quantity, "system")
        .zip(text(quantity, "code"))
        .ok_or_else(|| {
            refuse(
                "the prescribed quantity needs a coded unit (system and code, e.g. UCUM or an EDQM unit of presentation): a dispense abroad is compared with it by code",
                &format!("{at}.dispenseRequest.quantity.code"),
            )
        })?;
    let substitution_allowed = matches!(
        root.get("substitution")
            .and_then(|s| s.get("allowedBoolean"))
            .map(|b| &b.value),
        Some(ehds_fhir::json::Json::Bool(true))
    );
    let atc = root
        .get("medicationCodeableConcept")
        .and_then(|m| m.get("coding"))
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .find(|c| text(c, "system") == Some(ATC))
        .and_then(|c| text(c, "code"));
    Ok(PrescriptionFacts {
        identifier,
        patient,
        quantity_milli,
        unit_system,
        unit,
        substitution_allowed,
        atc,
    })
}

/// Stores one prescription with its facts.
pub(crate) async fn store_prescription(
    state: &AppState,
    facts: &PrescriptionFacts<'_>,
    sender: &str,
    content: &[u8],
    at: &str,
) -> Result<(StatusCode, ehds_store::StoredPrescription), GatewayError> {
    let outcome = state
        .store
        .put_prescription(NewPrescription {
            identifier: Identifier {
                system: facts.identifier.0.to_owned(),
                value: facts.identifier.1.to_owned(),
            },
            patient_identifier: &facts.patient,
            prescriber: None,
            sender,
            quantity_prescribed_milli: facts.quantity_milli,
            unit: facts.unit,
            unit_system: Some(facts.unit_system),
            substitution_allowed: facts.substitution_allowed,
            atc_code: facts.atc,
            dose_form: None,
            not_available_abroad: None,
            content,
            received_at: time::OffsetDateTime::now_utc(),
        })
        .await?;
    match outcome {
        PutPrescriptionOutcome::Created(p) => Ok((StatusCode::CREATED, p)),
        PutPrescriptionOutcome::AlreadyStored(p) => Ok((StatusCode::OK, p)),
        PutPrescriptionOutcome::Conflict { existing_id } => {
            Err(GatewayError::IdentifierConflict { existing_id })
        }
        PutPrescriptionOutcome::Invalid(why) => Err(refuse(
            &format!("the prescription cannot be tracked: {why:?}"),
            at,
        )),
    }
}

pub(crate) fn prescription_state(stored: &ehds_store::StoredPrescription) -> String {
    format!(
        "{}; remaining={}",
        stored.status.as_str(),
        stored.quantity_remaining_milli
    )
}

/// Who may push prescriptions.
pub(crate) const PRESCRIBERS: &[NationalClientKind] = &[
    NationalClientKind::EhrSystem,
    NationalClientKind::DoctorSystem,
];

pub(crate) fn mpd_profiles(state: &AppState) -> &'static [&'static str] {
    if state.validator.knows_profile(MPD_MEDICATION_REQUEST) {
        &[MPD_MEDICATION_REQUEST]
    } else {
        &[]
    }
}

/// Extension on `Bundle.entry.search` of a cross-border prescription list:
/// sub-extensions `dispensable` (boolean), `reason` (string), `remaining`
/// (Quantity), `substitutionAllowed` (boolean), `atc` (code).
pub(crate) const DISPENSING_EXTENSION: &str =
    "urn:ehds-gateway:StructureDefinition:cross-border-dispensing";

/// Thousandths as a FHIR decimal (`2500` → `2.5`).
pub(crate) fn milli_to_decimal(milli: i64) -> String {
    let whole = milli / 1000;
    let fraction = (milli % 1000).abs();
    if fraction == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{fraction:03}")
            .trim_end_matches('0')
            .to_owned()
    }
}

/// The store statuses a FHIR `status` search parameter asks for (none: the
/// ones a pharmacy abroad may act on, and those withdrawn from cross-border
/// dispensing, so it sees why).
pub(crate) fn store_statuses(
    asked: &[ehds_routing::search::MedicationRequestStatus],
) -> Vec<ehds_store::PrescriptionStatus> {
    use ehds_routing::search::MedicationRequestStatus as Fhir;
    use ehds_store::PrescriptionStatus as Store;
    if asked.is_empty() {
        return vec![
            Store::Active,
            Store::PartiallyDispensed,
            Store::NotAvailableAbroad,
        ];
    }
    let mut out = Vec::new();
    for status in asked {
        match status {
            Fhir::Active => out.extend([
                Store::Active,
                Store::PartiallyDispensed,
                Store::NotAvailableAbroad,
            ]),
            Fhir::Completed => out.push(Store::Completed),
            Fhir::Cancelled | Fhir::Stopped => out.push(Store::Cancelled),
            _ => {}
        }
    }
    out
}

/// One searchset entry: the stored bytes, and the list metadata.
pub(crate) fn list_entry(prescription: &ehds_store::StoredPrescription) -> Vec<u8> {
    let dispensable = prescription.status.is_dispensable();
    let reason = match prescription.status_reason.as_deref() {
        Some(reason) => reason.to_owned(),
        None if dispensable => format!(
            "{} {} remaining",
            milli_to_decimal(prescription.quantity_remaining_milli),
            prescription.unit
        ),
        None => format!("the prescription is {}", prescription.status.as_str()),
    };
    entry_with_metadata(
        &prescription.content,
        &ListMetadata {
            dispensable,
            reason: &reason,
            remaining: Some((prescription.quantity_remaining_milli, &prescription.unit)),
            substitution_allowed: prescription.substitution_allowed,
            atc: prescription.atc_code.as_deref(),
        },
    )
}

/// The list metadata of one prescription ([`DISPENSING_EXTENSION`]).
pub(crate) struct ListMetadata<'a> {
    pub(crate) dispensable: bool,
    pub(crate) reason: &'a str,
    /// What remains (thousandths, unit), when the gateway knows it.
    pub(crate) remaining: Option<(i64, &'a str)>,
    pub(crate) substitution_allowed: bool,
    pub(crate) atc: Option<&'a str>,
}

/// One searchset entry: the prescription's bytes as they are, and its list
/// metadata in `entry.search`.
pub(crate) fn entry_with_metadata(content: &[u8], metadata: &ListMetadata<'_>) -> Vec<u8> {
    let string = |text: &str| serde_json::Value::String(text.to_owned()).to_string();
    let mut extensions = format!(
        r#"{{"url":"dispensable","valueBoolean":{}}},{{"url":"reason","valueString":{}}}"#,
        metadata.dispensable,
        string(metadata.reason),
    );
    if let Some((milli, unit)) = metadata.remaining {
        extensions.push_str(&format!(
            r#",{{"url":"remaining","valueQuantity":{{"value":{},"unit":{}}}}}"#,
            milli_to_decimal(milli),
            string(unit),
        ));
    }
    extensions.push_str(&format!(
        r#",{{"url":"substitutionAllowed","valueBoolean":{}}}"#,
        metadata.substitution_allowed
    ));
    if let Some(atc) = metadata.atc {
        extensions.push_str(&format!(r#",{{"url":"atc","valueCode":{}}}"#, string(atc)));
    }
    let search = format!(
        r#"{{"mode":"match","extension":[{{"url":{},"extension":[{extensions}]}}]}}"#,
        string(DISPENSING_EXTENSION)
    );
    let mut out = Vec::with_capacity(content.len() + 512);
    out.extend_from_slice(br#"{"fullUrl":"urn:uuid:"#);
    out.extend_from_slice(uuid::Uuid::new_v4().to_string().as_bytes());
    out.extend_from_slice(br#"","resource":"#);
    out.extend_from_slice(content);
    out.extend_from_slice(br#","search":"#);
    out.extend_from_slice(search.as_bytes());
    out.push(b'}');
    out
}

/// What the gateway reads from a MedicationDispense sent across borders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DispenseFacts {
    /// `identifier[0]` (system, value).
    pub identifier: (String, String),
    /// `authorizingPrescription[*].identifier` (system, value), in order:
    /// the prescriptions as the list named them (at least one).
    pub prescriptions: Vec<(String, String)>,
    /// `subject.identifier` (system, value).
    pub patient: (String, String),
    /// `quantity.value` in thousandths (0 for a refused dispense without one).
    pub quantity_milli: i64,
    /// `quantity.system` and `quantity.code`, when both are given.
    pub unit: Option<units::CodedUnit>,
    /// Handed over (`completed`), refused (`declined`), or withdrawn
    /// (`entered-in-error`: the same dispense sent again to cancel it).
    pub action: DispenseAction,
}

/// What a MedicationDispense asks of the prescription at home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DispenseAction {
    /// Apply it (handed over, or declined without changing the quantity).
    Apply(ehds_store::DispenseKind),
    /// Cancel an earlier dispense with this identifier: its quantity comes
    /// back, once.
    Cancel,
}

fn pair(node: Option<&Node>) -> Option<(String, String)> {
    let node = node?;
    Some((
        text(node, "system")?.to_owned(),
        text(node, "value")?.to_owned(),
    ))
}

/// Reads [`DispenseFacts`]; a dispense that lacks one is refused (422) at
/// the element.
pub(crate) fn read_dispense(root: &Node) -> Result<DispenseFacts, GatewayError> {
    let identifier = pair(root.get("identifier").and_then(|i| i.items().first())).ok_or_else(|| {
        refuse(
            "identifier[0] with a system and a value is required (it makes a retried dispense recognisable)",
            "MedicationDispense.identifier",
        )
    })?;
    let authorizing = root
        .get("authorizingPrescription")
        .map(Node::items)
        .unwrap_or_default();
    if authorizing.is_empty() {
        return Err(refuse(
            "authorizingPrescription with an identifier (system and value, as the list gave it) is required",
            "MedicationDispense.authorizingPrescription",
        ));
    }
    let mut prescriptions = Vec::with_capacity(authorizing.len());
    for (i, item) in authorizing.iter().enumerate() {
        let found = pair(item.get("identifier")).ok_or_else(|| {
            refuse(
                "each authorizingPrescription needs an identifier (system and value, as the list gave it): across borders a reference to another server's id cannot be resolved",
                &format!("MedicationDispense.authorizingPrescription[{i}].identifier"),
            )
        })?;
        if prescriptions.contains(&found) {
            return Err(refuse(
                "a prescription is named twice in authorizingPrescription",
                &format!("MedicationDispense.authorizingPrescription[{i}]"),
            ));
        }
        prescriptions.push(found);
    }
    let patient = pair(root.get("subject").and_then(|s| s.get("identifier"))).ok_or_else(|| {
        refuse(
            "subject.identifier (system and value) is required",
            "MedicationDispense.subject.identifier",
        )
    })?;
    let action = match text(root, "status") {
        Some("completed") => DispenseAction::Apply(ehds_store::DispenseKind::Completed),
        Some("declined") => DispenseAction::Apply(ehds_store::DispenseKind::Declined),
        Some("entered-in-error") => DispenseAction::Cancel,
        _ => {
            return Err(refuse(
                "status must be completed (handed over), declined (refused) or entered-in-error (cancel an earlier dispense)",
                "MedicationDispense.status",
            ));
        }
    };
    let kind = match action {
        DispenseAction::Apply(kind) => kind,
        DispenseAction::Cancel => ehds_store::DispenseKind::Declined,
    };
    let quantity = root.get("quantity");
    let quantity_milli = match quantity
        .and_then(|q| q.get("value"))
        .and_then(Node::as_number_text)
    {
        Some(value) => decimal_to_milli(value).ok_or_else(|| {
            refuse(
                "the quantity must be a non-negative number with at most three decimals",
                "MedicationDispense.quantity.value",
            )
        })?,
        None if kind == ehds_store::DispenseKind::Declined => 0,
        None => {
            return Err(refuse(
                "the dispensed quantity is required",
                "MedicationDispense.quantity",
            ));
        }
    };
    let unit = quantity
        .and_then(|q| Some((text(q, "system")?, text(q, "code")?)))
        .map(|(system, code)| units::CodedUnit {
            system: system.to_owned(),
            code: code.to_owned(),
        });
    Ok(DispenseFacts {
        identifier,
        prescriptions,
        patient,
        quantity_milli,
        unit,
        action,
    })
}

/// The dispensed quantity's unit against the prescribed one (`system`,
/// `code`) of the prescription at `line` ([`units`]: compared by code).
pub(crate) fn check_unit(
    facts: &DispenseFacts,
    system: Option<&str>,
    code: &str,
    line: usize,
    several: bool,
) -> Result<(), GatewayError> {
    let Some(system) = system else {
        return Err(dispense_refused(
            DispenseRefusal::Unprocessable,
            "the prescription's quantity has no coded unit, so no dispensed quantity can be compared with it",
            line_at(line),
        ));
    };
    let prescribed = units::CodedUnit {
        system: system.to_owned(),
        code: code.to_owned(),
    };
    match units::UnitTable::shipped().compare(&prescribed, facts.unit.as_ref()) {
        Ok(()) => Ok(()),
        Err(units::UnitMismatch::Uncoded) => Err(dispense_refused(
            DispenseRefusal::Unprocessable,
            "the dispensed quantity needs a coded unit (quantity.system and quantity.code): units are compared by code",
            "MedicationDispense.quantity",
        )),
        Err(units::UnitMismatch::NotComparable { message }) => {
            let message = if several {
                format!("authorizingPrescription[{line}]: {message}")
            } else {
                message
            };
            Err(dispense_refused(
                DispenseRefusal::Unprocessable,
                message,
                "MedicationDispense.quantity.code",
            ))
        }
    }
}

pub(crate) fn dispense_refused(
    kind: DispenseRefusal,
    message: impl Into<String>,
    at: impl Into<String>,
) -> GatewayError {
    GatewayError::DispenseRefused {
        kind,
        message: message.into(),
        at: Some(at.into()),
    }
}

pub(crate) fn line_at(line: usize) -> String {
    format!("MedicationDispense.authorizingPrescription[{line}]")
}

/// `X-Prescription-State`: `status; remaining=milli` per prescription, in
/// `authorizingPrescription` order, separated by `, `.
fn state_header(
    states: impl Iterator<Item = (ehds_store::PrescriptionStatus, i64)>,
) -> Option<HeaderValue> {
    let text: Vec<String> = states
        .map(|(status, remaining)| format!("{}; remaining={remaining}", status.as_str()))
        .collect();
    HeaderValue::from_str(&text.join(", ")).ok()
}

/// Applies (or cancels) a dispense from a pharmacy abroad to the
/// prescriptions of `patient` (`system|value`) it names, at home; `pharmacy`
/// is the asking organisation as its retrievals were recorded. The caller
/// (the federation listener) has admitted the request and audits the
/// outcome.
///
/// Answers 201 with the dispense's bytes (200 when it was applied before)
/// and `X-Prescription-State`; refusals name the element: 404 for a
/// prescription that is not this patient's, 422 for units the policy cannot
/// compare ([`units`]) or a malformed quantity, 409 for what the
/// prescriptions' state refuses (not retrieved by this pharmacy, not
/// dispensable, more than remains, the identifier taken by another
/// dispense). A dispense sent again as `entered-in-error` by the pharmacy
/// that dispensed it is cancelled: its quantity comes back to every
/// prescription, once.
pub(crate) async fn dispense_at_home(
    state: &AppState,
    facts: &DispenseFacts,
    content: &[u8],
    pharmacy: &str,
    patient: &str,
) -> Result<Response, GatewayError> {
    let mut prescriptions = Vec::with_capacity(facts.prescriptions.len());
    for (line, (system, value)) in facts.prescriptions.iter().enumerate() {
        let found = state
            .store
            .prescription_by_identifier(&Identifier {
                system: system.clone(),
                value: value.clone(),
            })
            .await?;
        match found {
            Some(p) if p.patient_identifier == patient => prescriptions.push(p),
            _ => {
                return Err(dispense_refused(
                    DispenseRefusal::UnknownPrescription,
                    "no such prescription for this patient",
                    line_at(line),
                ));
            }
        }
    }
    let identifier = Identifier {
        system: facts.identifier.0.clone(),
        value: facts.identifier.1.clone(),
    };
    let kind = match facts.action {
        DispenseAction::Apply(kind) => kind,
        DispenseAction::Cancel => {
            return cancel_at_home(state, &identifier, &prescriptions, pharmacy).await;
        }
    };
    if kind == ehds_store::DispenseKind::Completed {
        for (line, prescription) in prescriptions.iter().enumerate() {
            check_unit(
                facts,
                prescription.unit_system.as_deref(),
                &prescription.unit,
                line,
                prescriptions.len() > 1,
            )?;
        }
    }
    let outcome = state
        .store
        .apply_dispense(ehds_store::NewDispense {
            identifier,
            lines: prescriptions
                .iter()
                .map(|p| ehds_store::DispenseLine {
                    prescription_id: &p.id,
                    quantity_milli: facts.quantity_milli,
                })
                .collect(),
            pharmacy,
            kind,
            content,
            received_at: time::OffsetDateTime::now_utc(),
        })
        .await?;
    use ehds_store::DispenseRefusal as R;
    let (status, dispense) = match outcome {
        ehds_store::DispenseOutcome::Applied { dispense } => (StatusCode::CREATED, dispense),
        ehds_store::DispenseOutcome::AlreadyApplied { dispense } => (StatusCode::OK, dispense),
        ehds_store::DispenseOutcome::Refused(refusal) => {
            return Err(match refusal {
                R::InvalidLines => dispense_refused(
                    DispenseRefusal::Unprocessable,
                    "the prescriptions named cannot be dispensed together",
                    "MedicationDispense.authorizingPrescription",
                ),
                R::InvalidQuantity { .. } => dispense_refused(
                    DispenseRefusal::Unprocessable,
                    "the quantity must be positive",
                    "MedicationDispense.quantity.value",
                ),
                R::UnknownPrescription { line } => dispense_refused(
                    DispenseRefusal::UnknownPrescription,
                    "no such prescription for this patient",
                    line_at(line),
                ),
                R::NotRetrieved { line } => dispense_refused(
                    DispenseRefusal::StateConflict,
                    "this pharmacy has not retrieved the prescription (list it first)",
                    line_at(line),
                ),
                R::NotDispensable { line, status } => dispense_refused(
                    DispenseRefusal::StateConflict,
                    format!("the prescription is {}", status.as_str()),
                    line_at(line),
                ),
                R::OverRemaining {
                    line,
                    remaining_milli,
                } => {
                    let unit = prescriptions
                        .get(line)
                        .map(|p| p.unit.as_str())
                        .unwrap_or_default();
                    dispense_refused(
                        DispenseRefusal::StateConflict,
                        format!(
                            "only {} {unit} remain on the prescription at authorizingPrescription[{line}]",
                            milli_to_decimal(remaining_milli)
                        ),
                        "MedicationDispense.quantity.value",
                    )
                }
                R::IdentifierConflict { .. } => dispense_refused(
                    DispenseRefusal::StateConflict,
                    "a different dispense with this identifier was already applied",
                    "MedicationDispense.identifier",
                ),
            });
        }
    };
    let mut response = (status, dispense.content).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    if let Some(value) = state_header(
        dispense
            .lines
            .iter()
            .map(|l| (l.status_after, l.remaining_after_milli)),
    ) {
        headers.insert("x-prescription-state", value);
    }
    Ok(response)
}

/// The pharmacy that dispensed cancels its dispense (sent again with status
/// `entered-in-error`, naming the same prescriptions): the quantity comes
/// back to each, once. Another pharmacy's dispense, or one naming other
/// prescriptions, is "not found".
async fn cancel_at_home(
    state: &AppState,
    identifier: &Identifier,
    prescriptions: &[ehds_store::StoredPrescription],
    pharmacy: &str,
) -> Result<Response, GatewayError> {
    let unknown = || {
        dispense_refused(
            DispenseRefusal::UnknownPrescription,
            "no such dispense of this pharmacy for these prescriptions",
            "MedicationDispense.identifier",
        )
    };
    let ids: Vec<&str> = prescriptions.iter().map(|p| p.id.as_str()).collect();
    match state.store.dispense_by_identifier(identifier).await? {
        Some(d) if d.pharmacy == pharmacy && d.covers(&ids) => {}
        _ => return Err(unknown()),
    }
    let states: Vec<(ehds_store::PrescriptionStatus, i64)> = match state
        .store
        .cancel_dispense(identifier, time::OffsetDateTime::now_utc())
        .await?
    {
        ehds_store::CancelOutcome::Restored { prescriptions } => prescriptions
            .iter()
            .map(|p| (p.status, p.remaining_milli))
            .collect(),
        ehds_store::CancelOutcome::AlreadyCancelled => {
            let mut now = Vec::with_capacity(ids.len());
            for id in &ids {
                let p = state.store.prescription(id).await?.ok_or_else(unknown)?;
                now.push((p.status, p.quantity_remaining_milli));
            }
            now
        }
        ehds_store::CancelOutcome::Unknown => return Err(unknown()),
    };
    let mut response = crate::edge::respond::outcome_response(
        StatusCode::OK,
        &[ehds_fhir::outcome::Issue::new(
            ehds_fhir::outcome::Severity::Information,
            IssueType::Informational,
            "the dispense is cancelled; its quantity is back on the prescription",
        )],
    );
    if let Some(value) = state_header(states.into_iter()) {
        response.headers_mut().insert("x-prescription-state", value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_become_exact_thousandths() {
        assert_eq!(decimal_to_milli("21"), Some(21_000));
        assert_eq!(decimal_to_milli("2.5"), Some(2_500));
        assert_eq!(decimal_to_milli("0.125"), Some(125));
        assert_eq!(decimal_to_milli("1.050"), Some(1_050));
        for (milli, text) in [
            (21_000, "21"),
            (2_500, "2.5"),
            (125, "0.125"),
            (1_050, "1.05"),
        ] {
            assert_eq!(milli_to_decimal(milli), text);
            assert_eq!(decimal_to_milli(text), Some(milli));
        }
        for bad in [
            "",
            "-1",
            "1.2345",
            "1e3",
            ".5",
            "1.",
            "x",
            "99999999999999999999",
        ] {
            assert_eq!(decimal_to_milli(bad), None, "{bad}");
        }
    }
}
