//! What of a patient's data may cross the border once the patient's
//! restrictions are applied (EHDS: the right to restrict access to parts of
//! one's electronic health data), at the country that holds the data.
//!
//! - A patient summary with restricted parts is released as a variant built
//!   by [`ehds_fhir::restriction`]: a new document with its own id and
//!   `Bundle.identifier`, validated against the document profiles like any
//!   document (a variant that fails is not released: fail closed), kept in
//!   the store with a Provenance linking it to the original, which stays
//!   byte-exact and untouched. One variant is kept per original and set of
//!   restrictions in force, so repeated reads release the same document.
//! - A restricted prescription is left out of lists and cannot be dispensed
//!   abroad, as if it did not exist.
//! - A restricted document of any document service (one laboratory report,
//!   one PDF original, one summary; by its identifier) is left out of lists
//!   and read as "not found", as if it did not exist; the patient's country
//!   audits the read as withheld.
//! - An emergency purpose of use lifts restrictions only for the services
//!   `[patient_rights] emergency_lifts_restrictions` names; the caller
//!   audits each lifting as such.

use ehds_access::PurposeOfUse;
use ehds_fhir::ReceivedResource;
use ehds_fhir::restriction::{
    Restricted, RestrictedPart, URI_IDENTIFIER_SYSTEM, VariantIdentity, restrict_document,
};
use ehds_store::{
    DocumentIdentifier, NewReleasedDocument, Restriction, RestrictionKind, StoredDocument,
    restrictions_fingerprint,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::edge::{AppState, CrossBorder as Federation};
use crate::error::GatewayError;

/// What the audit record of a release notes when restrictions were lifted.
pub(crate) const LIFTED_FOR_EMERGENCY: &str = "patient's restrictions lifted: emergency purpose of use, as this country's configuration allows";

/// A patient summary as it may be released.
#[derive(Debug, Clone)]
pub(crate) struct ReleasableSummary {
    /// The id to read it by (`Bundle/{id}`).
    pub id: String,
    /// Its `Bundle.identifier`.
    pub identifier: DocumentIdentifier,
    /// Its bytes.
    pub content: Vec<u8>,
    /// Whether the patient's restrictions were lifted for an emergency.
    pub lifted: bool,
}

/// Whether an emergency lifts the patient's restrictions on `service` here.
fn lifts(federation: &Federation, purpose: PurposeOfUse, service: &str) -> bool {
    purpose == PurposeOfUse::Emergency
        && federation
            .emergency_lifts_restrictions
            .iter()
            .any(|s| s == service)
}

/// The restrictions of parts of the summary `patient` (`system|value`) has
/// in force.
pub(crate) async fn summary_restrictions(
    state: &AppState,
    patient: &str,
) -> Result<Vec<Restriction>, GatewayError> {
    Ok(state
        .store
        .restrictions_for_patient(patient)
        .await?
        .into_iter()
        .filter(|r| r.kind.is_summary_part())
        .collect())
}

/// The patient summary `original` as it may cross the border for this
/// `purpose`: the original when no restriction of its patient touches it
/// (or an emergency lifts them), else its restricted variant.
pub(crate) async fn summary_for_release(
    state: &AppState,
    federation: &Federation,
    original: StoredDocument,
    purpose: PurposeOfUse,
) -> Result<ReleasableSummary, GatewayError> {
    let restrictions = match original.patient_identifier.as_deref() {
        Some(patient) => summary_restrictions(state, patient).await?,
        None => Vec::new(),
    };
    summary_under(state, federation, original, &restrictions, purpose).await
}

/// [`summary_for_release`] with the patient's summary restrictions already
/// read ([`summary_restrictions`]), for a list of the patient's documents.
pub(crate) async fn summary_under(
    state: &AppState,
    federation: &Federation,
    original: StoredDocument,
    restrictions: &[Restriction],
    purpose: PurposeOfUse,
) -> Result<ReleasableSummary, GatewayError> {
    let unchanged = |original: StoredDocument, lifted: bool| ReleasableSummary {
        id: original.id,
        identifier: original.identifier,
        content: original.content,
        lifted,
    };
    if restrictions.is_empty() {
        return Ok(unchanged(original, false));
    }
    if lifts(federation, purpose, "patient-summary") {
        return Ok(unchanged(original, true));
    }
    let fingerprint = restrictions_fingerprint(restrictions);
    if let Some(kept) = state
        .store
        .released_variant(&original.id, &fingerprint)
        .await?
    {
        return Ok(ReleasableSummary {
            id: kept.id,
            identifier: kept.identifier,
            content: kept.content,
            lifted: false,
        });
    }
    let resource = ReceivedResource::parse(original.content.clone().into())
        .map_err(|e| GatewayError::ReleaseFailed(format!("stored document unreadable: {e}")))?;
    let Some(variant) = variant_of(state, &resource, restrictions).await? else {
        return Ok(unchanged(original, false));
    };
    let Variant {
        id,
        identifier,
        now,
        timestamp,
        content: variant,
    } = variant;
    let provenance = provenance(
        &id,
        &original,
        (&federation.ncp_id, federation.country.as_str()),
        &timestamp,
    )?;
    let kept = state
        .store
        .put_released_document(NewReleasedDocument {
            id: &id,
            original_id: &original.id,
            restrictions_sha256: fingerprint,
            identifier: &identifier,
            released_at: now,
            content: variant.bytes(),
            provenance: &provenance,
        })
        .await?;
    Ok(ReleasableSummary {
        id: kept.id,
        identifier: kept.identifier,
        content: kept.content,
        lifted: false,
    })
}

/// A restricted variant of a summary, validated, not yet kept.
struct Variant {
    id: String,
    identifier: DocumentIdentifier,
    now: OffsetDateTime,
    timestamp: String,
    content: ReceivedResource,
}

/// The variant of the summary `resource` without the parts `restrictions`
/// name (`None`: they touch nothing of it), validated against the patient
/// summary's profiles like any pushed document (fail closed).
async fn variant_of(
    state: &AppState,
    resource: &ReceivedResource,
    restrictions: &[Restriction],
) -> Result<Option<Variant>, GatewayError> {
    let parts: Vec<RestrictedPart> = restrictions.iter().filter_map(restricted_part).collect();
    let id = uuid::Uuid::new_v4().to_string();
    let identifier = DocumentIdentifier {
        system: URI_IDENTIFIER_SYSTEM.to_owned(),
        value: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
    };
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::now_utc());
    let timestamp = now
        .format(&Rfc3339)
        .map_err(|e| GatewayError::ReleaseFailed(format!("timestamp: {e}")))?;
    let identity = VariantIdentity {
        id: &id,
        identifier_system: &identifier.system,
        identifier_value: &identifier.value,
        timestamp: &timestamp,
    };
    let content = match restrict_document(resource.root(), resource.bytes(), &parts, identity) {
        Restricted::Unchanged => return Ok(None),
        Restricted::NotADocument => {
            return Err(GatewayError::ReleaseFailed(
                "the summary is not a document Bundle".into(),
            ));
        }
        Restricted::Variant { content, .. } => content,
    };
    // The variant is a document this gateway wrote: it must meet what every
    // pushed document meets before anyone abroad sees it.
    let variant = ReceivedResource::parse(content.into())
        .map_err(|e| GatewayError::ReleaseFailed(format!("variant unreadable: {e}")))?;
    let profiles = state
        .services
        .named(crate::services::PATIENT_SUMMARY)
        .map(crate::services::Service::profiles)
        .unwrap_or_default();
    let report = state.validator.validate(&variant, &profiles).await;
    if !report.is_acceptable() {
        tracing::error!(
            errors = report.error_count(),
            "a restricted summary variant failed validation; nothing released"
        );
        return Err(GatewayError::ReleaseFailed(format!(
            "the variant has {} validation errors",
            report.error_count()
        )));
    }
    Ok(Some(Variant {
        id,
        identifier,
        now,
        timestamp,
        content: variant,
    }))
}

/// A patient summary from the national FHIR server (issue 19) as it may
/// cross the border for this `purpose`: its bytes as the server sent them
/// when no restriction of `patient` (`system|value`) touches it (or an
/// emergency lifts them), else its restricted variant, validated. Nothing
/// is kept: neither the national document nor the variant is stored
/// (so no Provenance is kept at home either; the variant's id is new on
/// every read). The second value: whether an emergency lifted restrictions.
pub(crate) async fn national_summary_for_release(
    state: &AppState,
    federation: &Federation,
    resource: &ReceivedResource,
    patient: &str,
    purpose: PurposeOfUse,
) -> Result<(bytes::Bytes, bool), GatewayError> {
    let restrictions = summary_restrictions(state, patient).await?;
    if restrictions.is_empty() {
        return Ok((resource.bytes().clone(), false));
    }
    if lifts(federation, purpose, "patient-summary") {
        return Ok((resource.bytes().clone(), true));
    }
    Ok(match variant_of(state, resource, &restrictions).await? {
        Some(variant) => (variant.content.bytes().clone(), false),
        None => (resource.bytes().clone(), false),
    })
}

/// The part of the summary a stored restriction names.
fn restricted_part(restriction: &Restriction) -> Option<RestrictedPart> {
    let pair = || restriction.target.split_once('|');
    match restriction.kind {
        RestrictionKind::Section => pair().map(|(system, code)| RestrictedPart::Section {
            system: system.to_owned(),
            code: code.to_owned(),
        }),
        RestrictionKind::Entry => Some(RestrictedPart::Entry(restriction.target.clone())),
        RestrictionKind::Identifier => pair().map(|(system, value)| RestrictedPart::Identifier {
            system: system.to_owned(),
            value: value.to_owned(),
        }),
        RestrictionKind::Prescription | RestrictionKind::Document => None,
    }
}

/// The Provenance of a variant (R4 Provenance): the variant derives from
/// the original (entity role `derivation`), assembled by this NCP at the
/// patient's request (reason `PATRQT`), kept beside the variant at home.
fn provenance(
    variant_id: &str,
    original: &StoredDocument,
    (ncp_id, country): (&str, &str),
    recorded: &str,
) -> Result<Vec<u8>, GatewayError> {
    let value = serde_json::json!({
        "resourceType": "Provenance",
        "id": uuid::Uuid::new_v4().to_string(),
        "target": [{"reference": format!("Bundle/{variant_id}")}],
        "recorded": recorded,
        "reason": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "code": "PATRQT",
            "display": "patient requested"
        }]}],
        "activity": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
            "code": "DERIVE",
            "display": "derive"
        }]},
        "agent": [{
            "type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                "code": "assembler",
                "display": "Assembler"
            }]},
            "who": {
                "identifier": {"system": "urn:ehds:ncp", "value": ncp_id},
                "display": format!("National contact point {country}")
            }
        }],
        "entity": [{
            "role": "derivation",
            "what": {
                "reference": format!("Bundle/{}", original.id),
                "identifier": {
                    "system": original.identifier.system,
                    "value": original.identifier.value
                }
            }
        }]
    });
    serde_json::to_vec(&value).map_err(|e| GatewayError::ReleaseFailed(format!("provenance: {e}")))
}

/// The patient's prescription restrictions as they apply to one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrescriptionRestrictions {
    /// Identifiers (`system|value`) of the restricted prescriptions.
    restricted: Vec<String>,
    /// Whether an emergency lifts them for this request.
    lifted: bool,
}

impl PrescriptionRestrictions {
    /// The prescription restrictions `patient` (`system|value`) has in
    /// force, for a request with this `purpose`.
    pub(crate) async fn of(
        state: &AppState,
        federation: &Federation,
        patient: &str,
        purpose: PurposeOfUse,
    ) -> Result<Self, GatewayError> {
        let restricted: Vec<String> = state
            .store
            .restrictions_for_patient(patient)
            .await?
            .into_iter()
            .filter(|r| r.kind == RestrictionKind::Prescription)
            .map(|r| r.target)
            .collect();
        Ok(Self {
            lifted: !restricted.is_empty() && lifts(federation, purpose, "eprescription"),
            restricted,
        })
    }

    fn names(&self, identifier: &DocumentIdentifier) -> bool {
        let target = format!("{}|{}", identifier.system, identifier.value);
        self.restricted.contains(&target)
    }

    /// Whether the prescription `identifier` is withheld from this request.
    pub(crate) fn withholds(&self, identifier: &DocumentIdentifier) -> bool {
        !self.lifted && self.names(identifier)
    }

    /// Whether an emergency lifted the restriction of `identifier` (the
    /// caller audits it).
    pub(crate) fn lifted_for(&self, identifier: &DocumentIdentifier) -> bool {
        self.lifted && self.names(identifier)
    }

    /// Whether an emergency lifted any restriction (the caller audits it).
    pub(crate) fn lifted_any(&self) -> bool {
        self.lifted
    }
}

/// The patient's restrictions of whole documents (a laboratory report, a
/// PDF original, a summary: `RestrictionKind::Document`, by the document's
/// identifier) as they apply to one request. A restricted document is
/// neither listed nor read abroad: to the caller it does not exist.
#[derive(Debug, Clone, Default)]
pub(crate) struct DocumentRestrictions {
    /// Identifiers (`system|value`) of the restricted documents.
    restricted: Vec<String>,
    /// The services whose restrictions an emergency lifts for this request
    /// (empty unless the purpose of use is an emergency).
    lifted_services: Vec<String>,
}

impl DocumentRestrictions {
    /// The document restrictions `patient` (`system|value`) has in force,
    /// for a request with this `purpose`.
    pub(crate) async fn of(
        state: &AppState,
        federation: &Federation,
        patient: &str,
        purpose: PurposeOfUse,
    ) -> Result<Self, GatewayError> {
        let restricted: Vec<String> = state
            .store
            .restrictions_for_patient(patient)
            .await?
            .into_iter()
            .filter(|r| r.kind == RestrictionKind::Document)
            .map(|r| r.target)
            .collect();
        let lifted_services = if purpose == PurposeOfUse::Emergency && !restricted.is_empty() {
            federation.emergency_lifts_restrictions.clone()
        } else {
            Vec::new()
        };
        Ok(Self {
            restricted,
            lifted_services,
        })
    }

    fn names(&self, identifier: &DocumentIdentifier) -> bool {
        self.restricted
            .iter()
            .any(|t| t.split_once('|') == Some((&identifier.system, &identifier.value)))
    }

    fn lifts(&self, service: &str) -> bool {
        self.lifted_services.iter().any(|s| s == service)
    }

    /// Whether the document `identifier` of `service` is withheld from
    /// this request.
    pub(crate) fn withholds(&self, service: &str, identifier: &DocumentIdentifier) -> bool {
        self.names(identifier) && !self.lifts(service)
    }

    /// Whether an emergency lifted the restriction of the document
    /// `identifier` of `service` (the caller audits it).
    pub(crate) fn lifted_for(&self, service: &str, identifier: &DocumentIdentifier) -> bool {
        self.names(identifier) && self.lifts(service)
    }
}

/// Checks the patient's document restrictions for one read of `document`
/// of `service`: `Err(Withheld)` when the patient restricted it (answered
/// as "not found", audited as withheld), `Ok(true)` when an emergency
/// lifted the restriction (the caller notes it), else `Ok(false)`.
pub(crate) async fn check_document_read(
    state: &AppState,
    federation: &Federation,
    document: &StoredDocument,
    service: &str,
    purpose: PurposeOfUse,
    what: String,
) -> Result<bool, GatewayError> {
    let Some(patient) = document.patient_identifier.as_deref() else {
        return Ok(false);
    };
    let restrictions = DocumentRestrictions::of(state, federation, patient, purpose).await?;
    if restrictions.withholds(service, &document.identifier) {
        return Err(GatewayError::Withheld(what));
    }
    Ok(restrictions.lifted_for(service, &document.identifier))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The Provenance kept beside a variant is a valid R4 Provenance
    /// (provenance.html: target, recorded, agent.who 1..1; entity role from
    /// the required provenance-entity-role value set).
    #[test]
    fn the_provenance_of_a_variant_is_valid_r4() {
        let original = StoredDocument {
            id: "original-1".into(),
            identifier: DocumentIdentifier {
                system: "urn:ietf:rfc:3986".into(),
                value: "urn:uuid:0c5e2a57-6f1d-4a8e-9d0b-1a2b3c4d5e6f".into(),
            },
            bundle_type: "document".into(),
            patient_identifier: Some("urn:oid:1.3.182.4.4|1998041799999".into()),
            received_at: OffsetDateTime::UNIX_EPOCH,
            sender: "ehr".into(),
            document_type: None,
            content_type: ehds_store::FHIR_JSON.into(),
            sha256: [0; 32],
            content: Vec::new(),
        };
        let bytes = provenance(
            "variant-1",
            &original,
            ("ncp-lu", "LU"),
            "2026-11-24T12:00:00Z",
        )
        .unwrap();
        let validator =
            ehds_shipped_validator::validator(ehds_validation::ValidationOptions::default())
                .unwrap();
        let resource = ReceivedResource::parse(bytes.into()).unwrap();
        let report = validator.validate(&resource, &[]);
        assert!(report.is_acceptable(), "{:#?}", report.issues);
        let text = String::from_utf8(resource.bytes().to_vec()).unwrap();
        assert!(text.contains("Bundle/variant-1") && text.contains("Bundle/original-1"));
    }
}
