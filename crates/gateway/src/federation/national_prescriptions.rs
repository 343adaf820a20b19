//! ePrescriptions answered from the national FHIR server (issue 19): with
//! the ePrescription service on `source = "fhir"`, the federation API's
//! prescription list (`GET /fhir/MedicationRequest?patient.identifier=…`,
//! `super::prescription_search`) and DocumentReference list of the service
//! (`super::document_search`), prescription read (`GET
//! /fhir/MedicationRequest/{id}`, `super::prescription_read`) and dispense
//! (`POST /fhir/MedicationDispense`, `super::dispense`) ask the national
//! server (`ehds-national-fhir`) instead of the store, after the same
//! admission as today (`super::admit`: calling NCP, assertion, policy,
//! opt-out).
//!
//! Each MedicationRequest the server answers is parsed losslessly, checked
//! to be about the patient asked about (another patient's: 502, nothing
//! relayed), validated as a pushed prescription is (R4, the profiles it
//! claims, the HL7 Europe MPD MedicationRequest profile, and the facts
//! `crate::eprescription` reads: identifier, prescribed quantity with a
//! coded unit), restricted by the patient's prescription restrictions
//! (withheld ones are absent, as from the store), and passed on byte-exact
//! with the same list metadata in `entry.search`. The national server owns
//! the prescription's state: dispensable is its `status = active`; what
//! remains is its to count, so the list names the prescribed quantity and
//! no `remaining`.
//!
//! A dispense from abroad is checked as at home (its prescriptions, found
//! on the server by the identifiers the list gave, must be this patient's,
//! unrestricted, active, and the dispensed unit comparable,
//! `crate::eprescription::units`), then written to the national server as
//! a `MedicationDispense` create, as received, conditional on its
//! identifier (FHIR R4 http.html#ccreate: a dispense sent again is not
//! written twice; 200 then, as at home); then each prescription's status
//! is read back from the server (`MedicationRequest/{id}`) and answered in
//! `X-Prescription-State`. Nothing is stored in the gateway, so the home
//! rule "listed by this pharmacy first" is the national service's to keep.
//! A dispense sent again as `entered-in-error` cancels the one written back
//! (as at home): the national server's dispense with that identifier, of
//! this patient, for the same prescriptions and the same performer, is
//! updated to it (conditional update); the quantity is the national
//! service's to give back.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ehds_access::{Operation, PurposeOfUse};
use ehds_fhir::ReceivedResource;
use ehds_national_fhir::{NationalError, NationalFhir, PatientIdentifier};
use ehds_routing::search::{
    DocumentReferenceSearch, MedicationRequestSearch, MedicationRequestStatus,
};
use ehds_store::DocumentIdentifier;
use ehds_transport::VerifiedPeer;

use crate::audit::Trail;
use crate::edge::patient::{patient_identifier, patient_key};
use crate::edge::respond::{FHIR_JSON, SearchSet, fhir_json};
use crate::edge::{AppState, CrossBorder};
use crate::eprescription::{self as ep, DispenseAction, DispenseFacts, ListMetadata};
use crate::error::{DispenseRefusal, GatewayError};
use crate::release::PrescriptionRestrictions;
use crate::services::Service;

/// A MedicationRequest of the national server, checked: its bytes as the
/// server sent them and what the gateway reads of it.
struct Prescription {
    resource: ReceivedResource,
    identifier: DocumentIdentifier,
    status: String,
    quantity_milli: i64,
    unit_system: String,
    unit: String,
    substitution_allowed: bool,
    atc: Option<String>,
}

impl Prescription {
    /// Its id on the national server.
    fn id(&self) -> Option<&str> {
        ep::text(self.resource.root(), "id")
    }

    /// `Bundle.entry.search`'s list metadata: dispensable when active; the
    /// national server counts what remains.
    fn metadata(&self) -> (bool, String) {
        if self.status == "active" {
            (
                true,
                format!(
                    "{} {} prescribed",
                    ep::milli_to_decimal(self.quantity_milli),
                    self.unit
                ),
            )
        } else {
            (false, format!("the prescription is {}", self.status))
        }
    }
}

/// `resource` (a MedicationRequest of the patient `key`) validated as a
/// pushed prescription is, its facts read; a failure is the national
/// server's (502).
async fn checked(
    state: &AppState,
    resource: ReceivedResource,
    key: &str,
) -> Result<Prescription, GatewayError> {
    let digest = crate::answer_memo::ValidatedAnswers::digest(resource.bytes());
    if !state.validated_answers.validated(&digest) {
        let findings = state
            .validator
            .validate(&resource, ep::mpd_profiles(state))
            .await;
        // Judged under the ePrescription service's policy, as a pushed
        // prescription is (`super::national_source::under_policy`).
        let (name, policy) = state.services.eprescription_policy();
        if super::national_source::under_policy(state, name, policy, findings)? {
            state.validated_answers.remember(digest);
        }
    }
    let facts = ep::prescription_facts(resource.root(), "MedicationRequest", Some(key.into()))
        .map_err(|error| match error {
            GatewayError::Invalid(report) => GatewayError::NationalInvalid(report),
            other => other,
        })?;
    let identifier = DocumentIdentifier {
        system: facts.identifier.0.to_owned(),
        value: facts.identifier.1.to_owned(),
    };
    let (quantity_milli, unit_system, unit) = (
        facts.quantity_milli,
        facts.unit_system.to_owned(),
        facts.unit.to_owned(),
    );
    let (substitution_allowed, atc) = (facts.substitution_allowed, facts.atc.map(str::to_owned));
    let status = ep::text(resource.root(), "status")
        .unwrap_or_default()
        .to_owned();
    Ok(Prescription {
        resource,
        identifier,
        status,
        quantity_milli,
        unit_system,
        unit,
        substitution_allowed,
        atc,
    })
}

/// The statuses a list asks the national server for: those asked, or
/// (none asked) the ones a pharmacy abroad may act on and those on hold,
/// so it sees why.
fn statuses(asked: &[MedicationRequestStatus]) -> Vec<&'static str> {
    if asked.is_empty() {
        return vec!["active", "on-hold"];
    }
    asked.iter().map(|s| s.code()).collect()
}

/// `GET MedicationRequest?patient.identifier=…[&status=…]` answered from
/// the national server: the patient's prescriptions of the asked statuses,
/// as the store's are listed (restricted ones absent).
pub(crate) async fn list(
    state: &AppState,
    federation: &CrossBorder,
    national: &NationalFhir,
    search: &MedicationRequestSearch,
    purpose: PurposeOfUse,
    trail: &Trail,
) -> Result<SearchSet, GatewayError> {
    let asked = &search.patient_identifier;
    let patient = patient_identifier(&asked.system, &asked.value)?;
    let key = patient.key();
    let statuses = statuses(&search.status);
    let listing = national
        .within_budget(national.prescriptions(&patient, &statuses))
        .await?;
    let restrictions = PrescriptionRestrictions::of(state, federation, &key, purpose).await?;
    let mut set = SearchSet::with_capacity(4096);
    for resource in listing.items {
        let prescription = checked(state, resource, &key).await?;
        // A server that ignored `status` lists others: not passed on.
        if !statuses.contains(&prescription.status.as_str())
            || restrictions.withholds(&prescription.identifier)
        {
            continue;
        }
        let (dispensable, reason) = prescription.metadata();
        set.raw_entry(&ep::entry_with_metadata(
            prescription.resource.bytes(),
            &ListMetadata {
                dispensable,
                reason: &reason,
                remaining: None,
                substitution_allowed: prescription.substitution_allowed,
                atc: prescription.atc.as_deref(),
            },
        ));
    }
    if restrictions.lifted_any() {
        trail.note(crate::release::LIFTED_FOR_EMERGENCY);
    }
    super::national_source::say_if_incomplete(&mut set, listing.incomplete);
    Ok(set)
}

/// `GET DocumentReference?patient.identifier=…&type=57833-6` of the
/// ePrescription service answered from the national server: the patient's
/// active prescriptions as a DocumentReference list (the NCPeH
/// ePrescription list), as the store's are listed (restricted ones absent),
/// each read as `MedicationRequest/<country>.<id>`. The national server's
/// prescriptions carry no time of receipt: listed without `date` (the
/// caller answers a search the list cannot meet with an empty list).
pub(crate) async fn documents(
    state: &AppState,
    federation: &CrossBorder,
    service: &Service,
    national: &NationalFhir,
    search: &DocumentReferenceSearch,
    purpose: PurposeOfUse,
    trail: &Trail,
) -> Result<SearchSet, GatewayError> {
    let asked = &search.patient_identifier;
    let patient = patient_identifier(&asked.system, &asked.value)?;
    let key = patient.key();
    let listing = national
        .within_budget(national.prescriptions(&patient, &["active"]))
        .await?;
    let restrictions = PrescriptionRestrictions::of(state, federation, &key, purpose).await?;
    let mut set = SearchSet::with_capacity(1024 * (listing.items.len() + 1));
    for resource in listing.items {
        let prescription = checked(state, resource, &key).await?;
        let Some(id) = prescription.id() else {
            continue;
        };
        if prescription.status != "active" || restrictions.withholds(&prescription.identifier) {
            continue;
        }
        let reference = serde_json::json!({
            "resourceType": "DocumentReference",
            "id": id,
            "masterIdentifier": {
                "system": prescription.identifier.system,
                "value": prescription.identifier.value,
            },
            "status": "current",
            "type": super::listed::type_json(service.listed_type()),
            "subject": {"identifier": {"system": asked.system, "value": asked.value}},
            "content": [{"attachment": {
                "contentType": FHIR_JSON,
                "url": format!("MedicationRequest/{}.{id}", federation.country),
                "size": prescription.resource.bytes().len(),
            }}],
        });
        set.entry(None, reference.to_string().as_bytes());
    }
    if restrictions.lifted_any() {
        trail.note(crate::release::LIFTED_FOR_EMERGENCY);
    }
    super::national_source::say_if_incomplete(&mut set, listing.incomplete);
    Ok(set)
}

/// `GET MedicationRequest/{id}` answered from the national server: the
/// prescription as the server sent it, when the assertion names its
/// patient (else not found, as from the store) and the patient did not
/// restrict it.
pub(crate) async fn read(
    state: &AppState,
    federation: &CrossBorder,
    national: &NationalFhir,
    (peer, headers): (Option<&VerifiedPeer>, &HeaderMap),
    id: &str,
    trail: &Trail,
) -> Result<Response, GatewayError> {
    // Only a known NCP makes this gateway ask its national server.
    super::admit::calling_ncp(federation, peer)?;
    let not_found = || GatewayError::ResourceNotFound(format!("MedicationRequest/{id}"));
    let found = national
        .within_budget(async {
            let Some(resource) = national.prescription(id).await? else {
                return Ok(None);
            };
            let subject = national.subject_identifiers(resource.root()).await?;
            Ok(Some((resource, subject)))
        })
        .await?;
    let (resource, subject) = found.ok_or_else(not_found)?;
    // The patient: the subject's identifier the directory routes to this
    // country.
    let patient = super::national_source::routed_here(federation, subject)
        .ok_or(NationalError::OtherPatient)?;
    let purpose = super::admit::admit_read(
        state,
        federation,
        peer,
        headers,
        &patient,
        (
            Operation::ReadPrescription,
            state.services.eprescription_name(),
        ),
        trail,
        not_found,
    )
    .await?;
    let key = patient_key(&patient.system, &patient.value)?;
    let prescription = checked(state, resource, &key).await?;
    let restrictions = PrescriptionRestrictions::of(state, federation, &key, purpose).await?;
    if restrictions.withholds(&prescription.identifier) {
        return Err(not_found());
    }
    if restrictions.lifted_for(&prescription.identifier) {
        trail.note(crate::release::LIFTED_FOR_EMERGENCY);
    }
    Ok(fhir_json(
        StatusCode::OK,
        prescription.resource.bytes().clone(),
    ))
}

/// A dispense from abroad (admitted, restrictions checked by
/// `super::dispense`) written back to the national server: 201 with the
/// dispense as received (200 when the server already had it) and each
/// prescription's status as the server then tells it
/// (`X-Prescription-State`, in `authorizingPrescription` order).
pub(crate) async fn dispense(
    state: &AppState,
    national: &NationalFhir,
    facts: &DispenseFacts,
    content: Bytes,
    patient: &PatientIdentifier,
) -> Result<Response, GatewayError> {
    let kind = match facts.action {
        DispenseAction::Apply(kind) => kind,
        DispenseAction::Cancel => return cancel(state, national, facts, content, patient).await,
    };
    let key = patient.key();
    let found = national
        .within_budget(async {
            let mut found = Vec::with_capacity(facts.prescriptions.len());
            for (system, value) in &facts.prescriptions {
                found.push(
                    national
                        .prescription_by_identifier(patient, (system, value))
                        .await?,
                );
            }
            Ok(found)
        })
        .await?;
    let (system, value) = (&facts.identifier.0, &facts.identifier.1);
    // A dispense sent again once the national service has changed the
    // prescription (completed it, say) is not refused: it is found, as at
    // home (200), by the conditional create below.
    let mut written_before = None;
    let mut prescriptions = Vec::with_capacity(found.len());
    for (line, resource) in found.into_iter().enumerate() {
        let Some(resource) = resource else {
            return Err(ep::dispense_refused(
                DispenseRefusal::UnknownPrescription,
                "no such prescription for this patient",
                ep::line_at(line),
            ));
        };
        let prescription = checked(state, resource, &key).await?;
        if prescription.status != "active" {
            if written_before.is_none() {
                written_before = Some(
                    national
                        .within_budget(national.holds("MedicationDispense", (system, value)))
                        .await?,
                );
            }
            if written_before == Some(true) {
                prescriptions.push(prescription);
                continue;
            }
            return Err(ep::dispense_refused(
                DispenseRefusal::StateConflict,
                format!("the prescription is {}", prescription.status),
                ep::line_at(line),
            ));
        }
        if kind == ehds_store::DispenseKind::Completed {
            ep::check_unit(
                facts,
                Some(&prescription.unit_system),
                &prescription.unit,
                line,
                facts.prescriptions.len() > 1,
            )?;
        }
        prescriptions.push(prescription);
    }
    let ids: Vec<String> = prescriptions
        .iter()
        .filter_map(|p| p.id().map(str::to_owned))
        .collect();
    if ids.len() != prescriptions.len() {
        return Err(NationalError::Unexpected("a prescription without an id".into()).into());
    }
    let (created, statuses) = national
        .within_budget(async {
            let created = national
                .create("MedicationDispense", content.clone(), (system, value))
                .await?;
            Ok((created, statuses_now(national, &ids).await?))
        })
        .await
        .map_err(|error| match error {
            // The national service refused the dispense itself (FHIR R4
            // http.html#create: 400 invalid, 409/412 conflict, 422 its
            // business rules): the dispense's, not a failure of the server.
            NationalError::Status(status) if (400..500).contains(&status) => {
                GatewayError::DispenseRefused {
                    kind: DispenseRefusal::StateConflict,
                    message: format!(
                        "the national ePrescription service refused the dispense (HTTP {status})"
                    ),
                    at: None,
                }
            }
            other => other.into(),
        })?;
    let status = if created.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (status, content).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    if let Ok(value) = HeaderValue::from_str(&statuses.join(", ")) {
        headers.insert("x-prescription-state", value);
    }
    Ok(response)
}

/// A dispense written back before, sent again by the pharmacy abroad as
/// `entered-in-error` (as at home, `crate::eprescription::dispense_at_home`):
/// the dispense the national server holds under its identifier must be
/// about this patient, name the same prescriptions (each found on the
/// server, this patient's) and the same performer (the pharmacy that
/// dispensed: the national server keeps no other trace of it); it is then
/// updated to the received one (`PUT MedicationDispense?identifier=`, FHIR
/// R4 http.html#cond-update, the bytes as received), its quantity the
/// national service's to give back. 200 with an OperationOutcome and each
/// prescription's status read back (`X-Prescription-State`); a dispense
/// already entered in error is answered alike, written once. Any other:
/// "no such dispense of this pharmacy for these prescriptions" (404).
async fn cancel(
    state: &AppState,
    national: &NationalFhir,
    facts: &DispenseFacts,
    content: Bytes,
    patient: &PatientIdentifier,
) -> Result<Response, GatewayError> {
    let key = patient.key();
    let (system, value) = (&facts.identifier.0, &facts.identifier.1);
    let (found, written) = national
        .within_budget(async {
            let mut found = Vec::with_capacity(facts.prescriptions.len());
            for (system, value) in &facts.prescriptions {
                found.push(
                    national
                        .prescription_by_identifier(patient, (system, value))
                        .await?,
                );
            }
            let written = national
                .by_identifier("MedicationDispense", (system, value))
                .await?;
            Ok((found, written))
        })
        .await?;
    let mut ids = Vec::with_capacity(found.len());
    for (line, resource) in found.into_iter().enumerate() {
        let Some(resource) = resource else {
            return Err(ep::dispense_refused(
                DispenseRefusal::UnknownPrescription,
                "no such prescription for this patient",
                ep::line_at(line),
            ));
        };
        let prescription = checked(state, resource, &key).await?;
        let id = prescription
            .id()
            .ok_or_else(|| NationalError::Unexpected("a prescription without an id".into()))?;
        ids.push(id.to_owned());
    }
    let unknown = || {
        ep::dispense_refused(
            DispenseRefusal::UnknownPrescription,
            "no such dispense of this pharmacy for these prescriptions",
            "MedicationDispense.identifier",
        )
    };
    let written = written.ok_or_else(unknown)?;
    let before = ep::read_dispense(written.root()).map_err(|_| unknown())?;
    let same_prescriptions = {
        let mut asked = facts.prescriptions.clone();
        let mut held = before.prescriptions.clone();
        asked.sort();
        held.sort();
        asked == held
    };
    // The national server may write the dispense back in its own JSON
    // (its meta added, members reordered): the performers are compared as
    // JSON values.
    let same_performer = match (performer(written.bytes()), performer(&content)) {
        (Some(held), Some(asked)) => held == asked,
        (None, _) => true,
        (Some(_), None) => false,
    };
    if before.patient != facts.patient || !same_prescriptions || !same_performer {
        return Err(unknown());
    }
    let statuses = national
        .within_budget(async {
            if before.action != DispenseAction::Cancel {
                national
                    .update_by_identifier("MedicationDispense", content.clone(), (system, value))
                    .await?;
            }
            statuses_now(national, &ids).await
        })
        .await
        .map_err(|error| match error {
            // The national service refused the update (its business
            // rules): the cancel's, not a failure of the server.
            NationalError::Status(status) if (400..500).contains(&status) => {
                GatewayError::DispenseRefused {
                    kind: DispenseRefusal::StateConflict,
                    message: format!(
                        "the national ePrescription service refused the cancellation (HTTP {status})"
                    ),
                    at: None,
                }
            }
            other => other.into(),
        })?;
    let mut response = crate::edge::respond::outcome_response(
        StatusCode::OK,
        &[ehds_fhir::outcome::Issue::new(
            ehds_fhir::outcome::Severity::Information,
            ehds_fhir::outcome::IssueType::Informational,
            "the dispense is cancelled on the national ePrescription service",
        )],
    );
    if let Ok(value) = HeaderValue::from_str(&statuses.join(", ")) {
        response.headers_mut().insert("x-prescription-state", value);
    }
    Ok(response)
}

/// Each prescription's status as the national server holds it now, read
/// back after a dispense was written (for `X-Prescription-State`).
async fn statuses_now(
    national: &NationalFhir,
    ids: &[String],
) -> Result<Vec<String>, NationalError> {
    let mut statuses = Vec::with_capacity(ids.len());
    for id in ids {
        let now = national
            .prescription(id)
            .await?
            .ok_or_else(|| NationalError::Unexpected("a prescription went away".into()))?;
        statuses.push(
            ep::text(now.root(), "status")
                .unwrap_or("unknown")
                .to_owned(),
        );
    }
    Ok(statuses)
}

/// The `performer` of a dispense, as a JSON value.
fn performer(content: &[u8]) -> Option<serde_json::Value> {
    let root = ehds_fhir::json::parse(content).ok()?;
    let span = root.get("performer")?.span;
    serde_json::from_slice(content.get(span.start as usize..span.end as usize)?).ok()
}
