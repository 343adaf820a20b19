//! The patient's country answering from its national FHIR server (issue
//! 19): for a service with `source = "fhir"` (`crate::sources`), the
//! federation API's document list, document read and patient
//! identification ask the national server (`ehds-national-fhir`) instead
//! of the store, after the same admission as today (`super::admit`:
//! calling NCP, assertion, policy, opt-out) and before anything leaves.
//! Each answer is parsed losslessly and checked to be about the patient
//! asked about (an answer about another patient is refused whole: 502,
//! audited, nothing relayed), a document is validated against its
//! service's profiles and restricted by the patient's restrictions, and
//! passed on byte-exact. Nothing the national server answers is stored.
//! Its failures (503 unreachable or circuit open, 504 too slow, 502 not
//! FHIR or invalid) go through the one error table and the audited exit.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ehds_national_fhir::{ListedContent, NationalFhir, PatientIdentifier, about};
use ehds_routing::search::{DocumentReferenceSearch, PatientSearch, TokenParam};
use ehds_transport::VerifiedPeer;
use time::format_description::well_known::Rfc3339;

use crate::audit::Trail;
use crate::edge::patient::{patient_identifier, patient_key};
use crate::edge::respond::{FHIR_JSON, SearchSet, fhir_json};
use crate::edge::{AppState, CrossBorder};
use crate::error::GatewayError;
use crate::services::{PATIENT_SUMMARY, Service, ServiceKind};
use ehds_access::PurposeOfUse;
use ehds_store::DocumentIdentifier;

fn identifier(token: &TokenParam) -> Result<PatientIdentifier, GatewayError> {
    patient_identifier(&token.system, &token.value)
}

/// The patient's documents of `service` from the national server, listed
/// as the store's are: one DocumentReference each, built here (the
/// national server's own URLs are never relayed), its attachment the
/// `Bundle/<country>.<id>` to read it by, or `Binary/<country>.<id>` for a
/// PDF original of a service that takes them (`super::national_originals`),
/// narrowed by the NCPeH search parameters as the store's list is. A
/// summary whose patient has restrictions is listed without size: the
/// variant is made when read.
pub(crate) async fn document_list(
    state: &AppState,
    federation: &CrossBorder,
    service: &Service,
    national: &NationalFhir,
    search: &DocumentReferenceSearch,
    purpose: PurposeOfUse,
    trail: &Trail,
) -> Result<SearchSet, GatewayError> {
    let patient = &search.patient_identifier;
    let types: Vec<(&str, &str)> = match &search.type_ {
        Some(t) => vec![(t.system.as_str(), t.value.as_str())],
        None => service
            .document_types
            .iter()
            .map(|t| (t.system.as_str(), t.code.as_str()))
            .collect(),
    };
    let listed = national
        .within_budget(national.documents(&identifier(patient)?, &types))
        .await?;
    let restricted = service.name == PATIENT_SUMMARY
        && !crate::release::summary_restrictions(
            state,
            &patient_key(&patient.system, &patient.value)?,
        )
        .await?
        .is_empty();
    // A document the patient restricted is not listed, as from the store
    // (`crate::release::DocumentRestrictions`), unless an emergency lifts
    // the service's restrictions here.
    let restrictions = crate::release::DocumentRestrictions::of(
        state,
        federation,
        &patient_key(&patient.system, &patient.value)?,
        purpose,
    )
    .await?;
    let mut lifted = false;
    let mut set = SearchSet::with_capacity(1024 * (listed.items.len() + 1));
    for document in &listed.items {
        // A PDF original (OrCD) is listed by a service that takes them, read
        // as `Binary/…`; a FHIR document as `Bundle/…`.
        let (content_type, read_as) = match document.content {
            ListedContent::FhirDocument => (FHIR_JSON, "Bundle"),
            ListedContent::PdfOriginal if service.pdf_original => {
                (ehds_national_fhir::PDF, "Binary")
            }
            ListedContent::PdfOriginal => continue,
        };
        // The NCPeH search parameters hold as on the store's list
        // (`DocumentReference.date` as the list's date).
        let date = document
            .date
            .as_deref()
            .and_then(|d| time::OffsetDateTime::parse(d, &Rfc3339).ok());
        if !super::listed::listed_matches(search, service, date, content_type) {
            continue;
        }
        if let Some((system, value)) = &document.identifier {
            let identifier = DocumentIdentifier {
                system: system.clone(),
                value: value.clone(),
            };
            lifted |= restrictions.lifted_for(&service.name, &identifier);
            if restrictions.withholds(&service.name, &identifier) {
                continue;
            }
        }
        let type_ = document
            .types
            .iter()
            .find_map(|(system, code)| {
                service
                    .document_types
                    .iter()
                    .find(|t| &t.system == system && &t.code == code)
            })
            .or_else(|| service.listed_type());
        let mut attachment = serde_json::Map::new();
        attachment.insert("contentType".into(), content_type.into());
        attachment.insert(
            "url".into(),
            format!("{read_as}/{}.{}", federation.country, document.id).into(),
        );
        // A summary the patient restricted parts of is made when read, so
        // its size is not known; a PDF original crosses whole.
        let variant = restricted && document.content == ListedContent::FhirDocument;
        if let (Some(size), false) = (document.size, variant) {
            attachment.insert("size".into(), size.into());
        }
        let mut reference = serde_json::Map::new();
        reference.insert("resourceType".into(), "DocumentReference".into());
        reference.insert("id".into(), document.id.as_str().into());
        if let Some((system, value)) = &document.identifier {
            reference.insert(
                "masterIdentifier".into(),
                serde_json::json!({"system": system, "value": value}),
            );
        }
        reference.insert("status".into(), "current".into());
        reference.insert("type".into(), super::listed::type_json(type_));
        // FHIR JSON has no empty arrays: a service without categories
        // lists none.
        if !service.categories.is_empty() {
            reference.insert("category".into(), super::listed::categories_json(service));
        }
        reference.insert(
            "subject".into(),
            serde_json::json!({"identifier": {"system": patient.system, "value": patient.value}}),
        );
        if let Some(date) = &document.date {
            reference.insert("date".into(), date.as_str().into());
        }
        reference.insert(
            "content".into(),
            serde_json::json!([{"attachment": attachment}]),
        );
        let reference = serde_json::Value::Object(reference);
        set.entry(None, reference.to_string().as_bytes());
    }
    if lifted {
        trail.note(crate::release::LIFTED_FOR_EMERGENCY);
    }
    say_if_incomplete(&mut set, listed.incomplete);
    Ok(set)
}

/// A list the national server had more pages of than the configured
/// `max_pages` (`ehds_national_fhir::Listing::incomplete`) is answered
/// with what was found and an OperationOutcome warning of issue type
/// `incomplete` in the search set (`search.mode = outcome`, FHIR R4
/// search.html#errors), not refused (502): the national server did
/// nothing wrong — FHIR R4 http.html#paging lets a server page its results
/// and search.html#count makes `_count` a hint it may answer with fewer —
/// and refusing the whole list because a patient has many documents or
/// prescriptions would hide every one of them; answering silently would
/// let a doctor or pharmacist take a partial list for the whole.
pub(crate) fn say_if_incomplete(set: &mut SearchSet, incomplete: bool) {
    if incomplete {
        set.outcome(&[ehds_fhir::outcome::Issue::new(
            ehds_fhir::outcome::Severity::Warning,
            ehds_fhir::outcome::IssueType::Incomplete,
            "the national FHIR server holds more results than this gateway follows pages of; \
             the list is incomplete",
        )]);
    }
}

/// `GET Bundle/{id}` answered from the national servers when the store has
/// no such document. The id names no service (`<country>.<id>` is the
/// national server's id) and a read names no type, so every national server
/// of a document service is asked, at once: the document is the one a
/// server holds whose service is the document's own (its Composition's
/// type); a server that failed does not hide a document another one holds.
/// When none holds it: not found if every server answered, else the
/// failure of the first that failed (503 unreachable or circuit open, 504
/// too slow, 502 not FHIR), as an operator expects — "not found" would
/// tell a caller that a document which may well exist does not. The
/// document's patient must be one of this country: the assertion must name
/// that patient (else "not found", as for stored documents), and the
/// document must be about no one else (else 502). Validated against the
/// service's profiles, restricted (a patient summary), then passed on
/// byte-exact. `Ok(None)`: no national server has it.
pub(crate) async fn document_read(
    state: &AppState,
    federation: &CrossBorder,
    peer: Option<&VerifiedPeer>,
    headers: &HeaderMap,
    id: &str,
    trail: &Trail,
) -> Result<Option<Response>, GatewayError> {
    if federation.national_sources.all().next().is_none() {
        return Ok(None);
    }
    // Only a known NCP makes this gateway ask its national servers.
    super::admit::calling_ncp(federation, peer)?;
    let not_found = || GatewayError::ResourceNotFound(format!("Bundle/{id}"));
    // Every national server of a document service (the ePrescription
    // service's holds prescriptions, not documents).
    let (found, failure) = ask_every_server(
        state,
        federation,
        |s| s.kind != ServiceKind::Eprescription,
        |national| {
            let id = id.to_owned();
            async move { national.within_budget(national.document(&id)).await }
        },
    )
    .await;
    // The first document found that is of the service of the server that
    // holds it.
    let document = found.into_iter().find_map(|(name, document)| {
        let service = state
            .services
            .of_document(document.root())
            .map(|(service, _)| service)
            .filter(|s| s.name == name)?;
        Some((service, document))
    });
    let Some((service, document)) = document else {
        return match failure {
            Some(failure) => Err(failure.into()),
            None => Ok(None),
        };
    };
    let root = document.root();
    // The patient: the Composition's subject, by the identifier the
    // directory routes to this country.
    let patient = routed_here(
        federation,
        about::document_patient(root)
            .into_iter()
            .flat_map(about::identifiers),
    )
    .ok_or(ehds_national_fhir::NationalError::OtherPatient)
    .inspect_err(|_| forget(federation, service))?;
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
    if !about::document_is_about(root, &identifier(&patient)?) {
        forget(federation, service);
        return Err(ehds_national_fhir::NationalError::OtherPatient.into());
    }
    validate(state, &document, service)
        .await
        .inspect_err(|_| forget(federation, service))?;
    // A document the patient restricted is, to the caller, one that does
    // not exist (as from the store: `crate::release::check_document_read`).
    if let Some(header) = ehds_validation::document::document_header(&document) {
        let identifier = DocumentIdentifier {
            system: header.identifier_system.to_owned(),
            value: header.identifier_value.to_owned(),
        };
        let restrictions = crate::release::DocumentRestrictions::of(
            state,
            federation,
            &patient_key(&patient.system, &patient.value)?,
            purpose,
        )
        .await?;
        if restrictions.withholds(&service.name, &identifier) {
            return Err(GatewayError::Withheld(format!("Bundle/{id}")));
        }
        if restrictions.lifted_for(&service.name, &identifier) {
            trail.note(crate::release::LIFTED_FOR_EMERGENCY);
        }
    }
    if service.name != PATIENT_SUMMARY {
        return Ok(Some(fhir_json(StatusCode::OK, document.bytes().clone())));
    }
    let (content, lifted) = crate::release::national_summary_for_release(
        state,
        federation,
        &document,
        &patient_key(&patient.system, &patient.value)?,
        purpose,
    )
    .await?;
    if lifted {
        trail.note(crate::release::LIFTED_FOR_EMERGENCY);
    }
    Ok(Some(fhir_json(StatusCode::OK, content)))
}

/// The first of a national answer's patient identifiers (system, value)
/// that the directory routes to this country: the patient admission is
/// asked for.
pub(super) fn routed_here<S: AsRef<str>>(
    federation: &CrossBorder,
    identifiers: impl IntoIterator<Item = (S, S)>,
) -> Option<TokenParam> {
    identifiers
        .into_iter()
        .find(|(system, value)| {
            federation
                .directory
                .check_patient_identifier(system.as_ref(), value.as_ref())
                .is_ok_and(|routed| routed.country.code() == federation.country)
        })
        .map(|(system, value)| TokenParam {
            system: system.as_ref().to_owned(),
            value: value.as_ref().to_owned(),
        })
}

/// An answer of `service`'s national server was refused (about another
/// patient, invalid): the operator's cache, if any, keeps none of its
/// answers (`ehds_national_fhir::NationalFhir::forget_answers`).
pub(super) fn forget(federation: &CrossBorder, service: &Service) {
    if let Some(national) = federation.national_sources.for_service(&service.name) {
        national.forget_answers();
    }
}

/// Every national server of a service `asked_of` accepts, asked by `ask`
/// all at once: what each found, by service name in the registry's order,
/// and the first failure (in the same order). `ask` keeps its own budget
/// (`NationalFhir::within_budget`).
pub(super) async fn ask_every_server<T, Asking>(
    state: &AppState,
    federation: &CrossBorder,
    asked_of: impl Fn(&Service) -> bool,
    ask: impl Fn(Arc<NationalFhir>) -> Asking,
) -> (Vec<(String, T)>, Option<ehds_national_fhir::NationalError>)
where
    T: Send + 'static,
    Asking: std::future::Future<Output = Result<Option<T>, ehds_national_fhir::NationalError>>
        + Send
        + 'static,
{
    let mut asked = tokio::task::JoinSet::new();
    for (order, (name, national)) in federation.national_sources.all().enumerate() {
        if !state.services.named(name).is_some_and(&asked_of) {
            continue;
        }
        let (name, answer) = (name.to_owned(), ask(Arc::clone(national)));
        asked.spawn(async move { (order, name, answer.await) });
    }
    let mut answers = Vec::new();
    while let Some(joined) = asked.join_next().await {
        match joined {
            Ok(answer) => answers.push(answer),
            // A task that panicked: as a server that failed.
            Err(_) => answers.push((
                usize::MAX,
                String::new(),
                Err(ehds_national_fhir::NationalError::Unexpected(
                    "the read was interrupted".into(),
                )),
            )),
        }
    }
    answers.sort_by_key(|(order, _, _)| *order);
    let mut found = Vec::new();
    let mut failure = None;
    for (_, name, answer) in answers {
        match answer {
            Ok(Some(item)) => found.push((name, item)),
            Ok(None) => {}
            Err(error) => {
                failure.get_or_insert(error);
            }
        }
    }
    (found, failure)
}

/// The national document against its service's profiles, as a pushed
/// document is, under the service's validation policy (the same bytes
/// validated before with no error are not validated again:
/// `crate::answer_memo`).
async fn validate(
    state: &AppState,
    document: &ehds_fhir::ReceivedResource,
    service: &Service,
) -> Result<(), GatewayError> {
    let digest = crate::answer_memo::ValidatedAnswers::digest(document.bytes());
    if state.validated_answers.validated(&digest) {
        return Ok(());
    }
    let findings = state
        .validator
        .validate_pushed_document_downgrading(
            document,
            &service.profiles(),
            &service.validation.downgraded_rules,
        )
        .await;
    if under_policy(state, &service.name, &service.validation, findings)? {
        state.validated_answers.remember(digest);
    }
    Ok(())
}

/// A national server's answer judged as a push of the same resource would
/// be (`crate::validation_policy`: the national server is this country's
/// own infrastructure, as the systems that push are), and counted on
/// `/metrics`: under `enforce` an error refuses the answer (502, the
/// national server's failure); under `report` it is relayed and the errors
/// counted. `Ok(true)` when no error is left (the answer may be
/// remembered as validated), `Ok(false)` when relayed with errors (judged
/// again next time, so each relay counts).
pub(super) fn under_policy(
    state: &AppState,
    service: &str,
    policy: &crate::validation_policy::ServicePolicy,
    findings: ehds_validation::ValidationReport,
) -> Result<bool, GatewayError> {
    let judgement = state.judged(findings.issues, service, policy, None);
    match judgement.verdict {
        crate::validation_policy::Verdict::Accepted => Ok(true),
        crate::validation_policy::Verdict::AcceptedWithErrors => Ok(false),
        crate::validation_policy::Verdict::Refused => Err(GatewayError::NationalInvalid(
            ehds_validation::ValidationReport {
                issues: judgement.issues,
            },
        )),
    }
}

/// `GET Patient?identifier=` answered from the national server of the
/// patient summary: the Patient it holds with this identifier, exactly as
/// the server sent it (or only the elements `_elements` asks for, derived
/// from those bytes), when it matches the optional demographics.
pub(crate) async fn patient(
    national: &NationalFhir,
    search: &PatientSearch,
    matches: impl Fn(&ehds_fhir::Node) -> bool,
) -> Result<SearchSet, GatewayError> {
    let (_, first) = national
        .within_budget(national.patients(&identifier(&search.identifier)?))
        .await?;
    let mut set = SearchSet::with_capacity(512);
    if let Some(bytes) = first
        && let Ok(patient) = ehds_fhir::ReceivedResource::parse(bytes)
        && matches(patient.root())
    {
        // `_elements` narrows what crosses, from the server's bytes as
        // from the store's (`super::patient_elements`).
        match &search.elements {
            Some(asked) => {
                if let Some(subset) =
                    super::patient_elements::subset(patient.root(), patient.bytes(), asked)
                {
                    set.entry(None, &subset);
                }
            }
            None => set.entry(None, patient.bytes()),
        }
    }
    Ok(set)
}
