//! `GET /fhir/Binary/{id}` answered from the national servers (issue 19):
//! a PDF original (MyHealth@EU Original Clinical Documents, OrCD) that a
//! national FHIR server holds for one of this country's patients, when the
//! store has none by that id. The national list
//! (`super::national_source::document_list`) names a PDF original by its
//! DocumentReference's id (`ehds_national_fhir::NationalFhir::pdf_original`:
//! the PDF inline or in the `Binary` its attachment names), so every
//! national server of a document service that takes PDF originals
//! (`pdf_original = true`) is asked, at once, as for `Bundle/{id}`.
//!
//! Before anything leaves, as for a stored PDF original
//! (`super::binary_read`): the DocumentReference's type must name the
//! service of the server that holds it; its subject (the identifier, or the
//! Patient it references on that server) must be a patient of this country
//! and the one the assertion names (else not found); the DocumentReference
//! is validated against R4 core under the service's policy
//! (`super::national_source::under_policy`) and the PDF checked on its bytes
//! (`ehds_validation::pdf`: a PDF with active content or over the gateway's
//! size limit is the national server's failure, 502, whatever the policy);
//! a PDF the patient restricted (its masterIdentifier) is not found. The
//! PDF then crosses byte for byte. Nothing is stored.

use axum::http::{HeaderMap, header};
use axum::response::Response;
use ehds_national_fhir::{NationalError, NationalOriginal};
use ehds_store::DocumentIdentifier;
use ehds_transport::VerifiedPeer;
use ehds_validation::pdf::{MAX_PDF_ORIGINAL_BYTES, PdfCheck, check_pdf};

use crate::audit::Trail;
use crate::edge::respond::pdf_original;
use crate::edge::{AppState, CrossBorder};
use crate::error::GatewayError;
use crate::services::{Service, ServiceKind};

/// Where the PDF is, for the issues of a refused one.
const PDF_AT: &str = "DocumentReference.content.attachment";

/// `Binary/{id}` from the national servers: `Ok(None)` when none holds it
/// (and every one answered); a server's failure when none holds it and
/// one failed, as for `Bundle/{id}`.
pub(crate) async fn binary_read(
    state: &AppState,
    federation: &CrossBorder,
    (peer, headers): (Option<&VerifiedPeer>, &HeaderMap),
    id: &str,
    trail: &Trail,
) -> Result<Option<Response>, GatewayError> {
    let takes_originals = |s: &Service| s.kind == ServiceKind::Document && s.pdf_original;
    if !federation
        .national_sources
        .all()
        .any(|(name, _)| state.services.named(name).is_some_and(takes_originals))
    {
        return Ok(None);
    }
    // Only a known NCP makes this gateway ask its national servers.
    super::admit::calling_ncp(federation, peer)?;
    let not_found = || GatewayError::ResourceNotFound(format!("Binary/{id}"));
    let (found, failure) =
        super::national_source::ask_every_server(state, federation, takes_originals, {
            let id = id.to_owned();
            move |national| {
                let id = id.clone();
                async move {
                    national
                        .within_budget(async {
                            let Some(original) = national.pdf_original(&id).await? else {
                                return Ok(None);
                            };
                            let subject = national
                                .subject_identifiers(original.reference.root())
                                .await?;
                            Ok(Some((original, subject)))
                        })
                        .await
                }
            }
        })
        .await;
    // The first PDF original found whose type names the service of the
    // server that holds it.
    let found = found.into_iter().find_map(|(name, (original, subject))| {
        let service = service_of(state, &original).filter(|s| s.name == name)?;
        Some((service, original, subject))
    });
    let Some((service, original, subject)) = found else {
        return match failure {
            Some(failure) => Err(failure.into()),
            None => Ok(None),
        };
    };
    // The patient: the subject's identifier the directory routes to this
    // country.
    let patient = super::national_source::routed_here(federation, subject)
        .ok_or(NationalError::OtherPatient)
        .inspect_err(|_| super::national_source::forget(federation, service))?;
    let purpose = super::admit::admit_read(
        state,
        federation,
        peer,
        headers,
        &patient,
        (service.permission, &service.name),
        trail,
        not_found,
    )
    .await?;
    checked(state, service, &original)
        .await
        .inspect_err(|_| super::national_source::forget(federation, service))?;
    // A PDF original the patient restricted is, to the caller, one that
    // does not exist (as from the store: `crate::release`).
    if let Some(identifier) = master_identifier(&original) {
        let restrictions = crate::release::DocumentRestrictions::of(
            state,
            federation,
            &crate::edge::patient::patient_key(&patient.system, &patient.value)?,
            purpose,
        )
        .await?;
        if restrictions.withholds(&service.name, &identifier) {
            return Err(GatewayError::Withheld(format!("Binary/{id}")));
        }
        if restrictions.lifted_for(&service.name, &identifier) {
            trail.note(crate::release::LIFTED_FOR_EMERGENCY);
        }
    }
    Ok(Some(pdf_original(
        headers.get(header::ACCEPT),
        id,
        original.pdf,
    )))
}

/// The service a national PDF original is of: the first of its
/// DocumentReference's `type.coding` a service answers to.
fn service_of<'a>(state: &'a AppState, original: &NationalOriginal) -> Option<&'a Service> {
    original
        .reference
        .root()
        .get("type")?
        .get("coding")?
        .items()
        .iter()
        .find_map(|coding| {
            state.services.for_type(
                coding.get("system")?.as_str()?,
                coding.get("code")?.as_str()?,
            )
        })
}

/// `DocumentReference.masterIdentifier`, the identifier a patient's
/// restriction names.
fn master_identifier(original: &NationalOriginal) -> Option<DocumentIdentifier> {
    let master = original.reference.root().get("masterIdentifier")?;
    Some(DocumentIdentifier {
        system: master.get("system")?.as_str()?.to_owned(),
        value: master.get("value")?.as_str()?.to_owned(),
    })
}

/// The DocumentReference against R4 core under the service's policy, and
/// the PDF on its bytes, as a pushed PDF original is
/// (`crate::national::pdf_originals`); a refusal is the national server's
/// (502).
async fn checked(
    state: &AppState,
    service: &Service,
    original: &NationalOriginal,
) -> Result<(), GatewayError> {
    let findings = state.validator.validate(&original.reference, &[]).await;
    super::national_source::under_policy(state, &service.name, &service.validation, findings)?;
    match check_pdf(&original.pdf, MAX_PDF_ORIGINAL_BYTES, PDF_AT) {
        PdfCheck::Accepted => Ok(()),
        PdfCheck::TooLarge { limit } => Err(NationalError::Unexpected(format!(
            "a PDF original larger than the gateway's limit of {limit} bytes"
        ))
        .into()),
        PdfCheck::Refused(report) => Err(GatewayError::NationalInvalid(report)),
    }
}
