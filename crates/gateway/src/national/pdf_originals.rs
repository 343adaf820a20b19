//! PDF originals on the national API (MyHealth@EU Original Clinical
//! Documents, OrCD: the hospital's own PDF of a laboratory, discharge or
//! imaging report; issue 18):
//!
//! - `POST /fhir/DocumentReference`: a hospital EHR system pushes a PDF with
//!   its metadata as a FHIR R4 DocumentReference (documentreference.html):
//!   `type` one of the document types of a service of the registry that
//!   accepts PDF originals (`pdf_original = true`), `masterIdentifier` (the
//!   document's identifier, idempotency as for `POST /fhir/Bundle`),
//!   `subject.identifier`, one `content.attachment` with `contentType:
//!   application/pdf` and the PDF in `data` (base64). The DocumentReference
//!   is validated against R4 core, the PDF checked on its bytes
//!   (`ehds_validation::pdf`: header, trailer, no active content it can
//!   see, at most [`MAX_PDF_ORIGINAL_BYTES`]) and stored byte-exact as
//!   `application/pdf`; refusals are located OperationOutcomes (422, 413
//!   over the size). The answer is the DocumentReference the lists carry
//!   (or, as `Prefer: return=` asks, nothing or the OperationOutcome). The
//!   DocumentReference is judged under the policy of its type's service
//!   (`crate::validation_policy`), the PDF's own checks whatever the policy.
//! - `POST /fhir` (or `POST /fhir/Bundle`) with a `transaction` Bundle: the
//!   same as a `Binary` holding the PDF and a DocumentReference whose
//!   `content.attachment.url` is the Binary's `fullUrl` (one of each,
//!   both `POST`), checked and stored as the inline form is.
//! - The PDF's size limit is [`MAX_PDF_ORIGINAL_BYTES`] (10 MiB decoded),
//!   in both forms: the validator's 1 MB limit is for `string` values only
//!   (R4 sets none for base64Binary; as the HL7 Java validator:
//!   [`validated`]).
//! - `GET /fhir/Binary/{id}`: the PDF read back by the system that pushed
//!   it, or, for `<country>.<id>`, a PDF original held by another country
//!   (`crate::relay::binary_read`); `Accept: application/pdf` gives the
//!   bytes, otherwise a FHIR Binary (binary.html#rest). Behind the audited
//!   exit.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use ehds_fhir::Node;
use ehds_fhir::audit_event::EntityTarget;
use ehds_fhir::outcome::{Issue, IssueType};
use ehds_identifiers::PatientIdentifier;
use ehds_routing::search::TokenParam;
use ehds_store::{DocumentIdentifier, NewDocument, PutOutcome, StoredDocument};
use ehds_transport::NationalClientKind;
use ehds_validation::ValidationReport;
use ehds_validation::pdf::{MAX_PDF_ORIGINAL_BYTES, PdfCheck, check_pdf};

use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::extract::{FhirBody, NationalCaller, receive_resource};
use crate::edge::respond::{
    ReturnPreference, fhir_json, pdf_original, stored_outcome, validation_counts,
};
use crate::error::GatewayError;
use crate::services::{ServiceKind, ServiceRegistry};

/// Where the PDF sits in a pushed DocumentReference.
const DATA_AT: &str = "DocumentReference.content[0].attachment.data";

/// `POST /fhir/DocumentReference`: push a PDF original (hospital EHR
/// systems).
pub(crate) async fn push(
    State(state): State<AppState>,
    caller: NationalCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    caller.require(&[NationalClientKind::EhrSystem], "push PDF originals")?;
    let resource =
        FhirBody(receive_resource(&headers, body, &state).await?).of_type("DocumentReference")?;
    // The PDF first: an oversize one is a 413 whatever else is wrong.
    let original = PdfOriginal::read(
        resource.root(),
        "DocumentReference",
        PdfIn::Inline,
        &state.services,
    )?;
    checked_pdf(&original, DATA_AT)?;
    let report = validated(&state, &resource, &original.service).await?;
    let (status, stored) = store(&state, &caller, &original).await?;
    let location = format!("/fhir/Binary/{}", stored.id);
    // `Prefer: return=` (http.html#ops): the DocumentReference the lists
    // carry, nothing, or the validation's issues.
    let mut response = match ReturnPreference::from_headers(&headers) {
        ReturnPreference::Representation => {
            let listed =
                listed_reference(&state.services, &stored, &format!("Binary/{}", stored.id));
            fhir_json(status, listed.to_string())
        }
        ReturnPreference::Minimal => status.into_response(),
        ReturnPreference::OperationOutcome => stored_outcome(status, Some(&report), "PDF original"),
    };
    validation_counts(response.headers_mut(), &report);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `POST /fhir` (or `POST /fhir/Bundle`) with a `transaction` Bundle: push a
/// PDF original as a `Binary` (the PDF, `contentType: application/pdf`) and
/// a DocumentReference whose `content.attachment.url` is the Binary's
/// `fullUrl` (http.html#transaction, references between entries
/// bundle.html#references). Both entries `POST`, nothing else in the
/// Bundle; checked as the inline form is (the Bundle validated against R4
/// core, the PDF on its bytes) and stored as it is: the PDF's bytes,
/// byte-exact. A `transaction-response` answers it (`200`), each entry
/// `201 Created` (or `200 OK` when already stored), the Binary's with its
/// location and the DocumentReference's with the one the lists carry.
pub(crate) async fn push_transaction(
    state: &AppState,
    caller: &NationalCaller,
    resource: &ehds_fhir::ReceivedResource,
) -> Result<Response, GatewayError> {
    caller.require(&[NationalClientKind::EhrSystem], "push PDF originals")?;
    let transaction = PdfTransaction::read(resource.root())?;
    let reference_at = format!("Bundle.entry[{}].resource", transaction.reference);
    let data_at = format!("Bundle.entry[{}].resource.data", transaction.binary);
    let original = PdfOriginal::read(
        transaction.reference_node,
        &reference_at,
        PdfIn::Binary {
            full_url: transaction.binary_full_url,
            binary: transaction.binary_node,
            data_at: &data_at,
        },
        &state.services,
    )?;
    checked_pdf(&original, &data_at)?;
    let report = validated(state, resource, &original.service).await?;
    let (status, stored) = store(state, caller, &original).await?;
    let status_line = if status == StatusCode::CREATED {
        "201 Created"
    } else {
        "200 OK"
    };
    let listed = listed_reference(&state.services, &stored, &format!("Binary/{}", stored.id));
    let binary_entry = serde_json::json!({"response": {
        "status": status_line,
        "location": format!("Binary/{}", stored.id),
    }});
    // The validation's issues, when there are any, as the entry's outcome
    // (`Bundle.entry.response.outcome`: "hints and warnings produced as
    // part of processing this entry"; errors too under `report`).
    let mut reference_response = serde_json::Map::new();
    reference_response.insert("status".into(), status_line.into());
    if !report.issues.is_empty()
        && let Ok(rendered) = ehds_fhir::outcome::render(&report.issues)
        && let Ok(outcome) = serde_json::from_slice::<serde_json::Value>(&rendered)
    {
        reference_response.insert("outcome".into(), outcome);
    }
    let reference_entry = serde_json::json!({
        "resource": listed,
        "response": reference_response,
    });
    // In the order of the request's entries (http.html#transaction-response).
    let entries = if transaction.binary < transaction.reference {
        [binary_entry, reference_entry]
    } else {
        [reference_entry, binary_entry]
    };
    let answer = serde_json::json!({
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": entries,
    });
    // A transaction is answered 200 whatever its entries' outcomes
    // (http.html#transaction-response).
    let mut response = fhir_json(StatusCode::OK, answer.to_string());
    validation_counts(response.headers_mut(), &report);
    Ok(response)
}

/// `POST /fhir`: a transaction Bundle (only the PDF original form, see
/// [`push_transaction`]).
pub(crate) async fn push_at_base(
    State(state): State<AppState>,
    caller: NationalCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    let resource = FhirBody(receive_resource(&headers, body, &state).await?).of_type("Bundle")?;
    push_transaction(&state, &caller, &resource).await
}

/// Whether a pushed Bundle is a `transaction` (the PDF original form).
pub(crate) fn is_transaction(root: &Node) -> bool {
    root.get("type").and_then(Node::as_str) == Some("transaction")
}

/// Checks the PDF on its bytes (`ehds_validation::pdf`), refusals located
/// at `data_at`: 413 over [`MAX_PDF_ORIGINAL_BYTES`], 422 otherwise.
fn checked_pdf(original: &PdfOriginal, data_at: &str) -> Result<(), GatewayError> {
    match check_pdf(&original.pdf, MAX_PDF_ORIGINAL_BYTES, data_at) {
        PdfCheck::Accepted => Ok(()),
        PdfCheck::TooLarge { limit } => Err(GatewayError::PayloadTooLarge { limit }),
        PdfCheck::Refused(report) => Err(GatewayError::Invalid(report)),
    }
}

/// Validates `resource` against R4 core under the policy of `service`
/// (`crate::validation_policy`, as a pushed document:
/// `enforce` refuses an error with 422, `report` stores it and the answer
/// carries the issues, downgraded rules are warnings, the unknown-extensions
/// policy); the report to answer with, or the refusal. The PDF's own
/// checks (`checked_pdf`: a PDF, no active content, the size) refuse
/// whatever the policy: they protect the receiver's systems, not the
/// metadata's conformance. The PDF's size limit is
/// [`MAX_PDF_ORIGINAL_BYTES`], checked on its bytes before; the
/// validator's 1 MB limit does not reach the PDF's base64: R4 sets no
/// upper limit for base64Binary (datatypes.html#base64Binary) and, as the
/// HL7 Java validator (`InstanceValidator.checkPrimitive`:
/// TYPE_SPECIFIC_CHECKS_DT_STRING_LENGTH), `ehds_validation` holds only
/// `string` values to 1 MB.
async fn validated(
    state: &AppState,
    resource: &ehds_fhir::ReceivedResource,
    service: &str,
) -> Result<ValidationReport, GatewayError> {
    let default_policy = crate::validation_policy::ServicePolicy::default();
    let policy = state
        .services
        .named(service)
        .map_or(&default_policy, |service| &service.validation);
    let findings = state
        .validator
        .validate_downgrading(resource, &[], &policy.downgraded_rules)
        .await;
    let judgement = state.judged(findings.issues, service, policy, None);
    let stores = judgement.verdict.stores();
    let note = judgement.report_note(service, true);
    let report = ValidationReport {
        issues: judgement.issues.into_iter().chain(note).collect(),
    };
    if stores {
        Ok(report)
    } else {
        Err(GatewayError::Invalid(report))
    }
}

/// Stores the PDF original (byte-exact, idempotent by its identifier):
/// `201` and the new document, or `200` and the one already stored.
async fn store(
    state: &AppState,
    caller: &NationalCaller,
    original: &PdfOriginal,
) -> Result<(StatusCode, StoredDocument), GatewayError> {
    let outcome = state
        .store
        .put_document(NewDocument {
            identifier: original.identifier.clone(),
            bundle_type: "document",
            patient_identifier: Some(&original.patient),
            sender: &caller.sender(),
            document_type: Some(&original.document_type),
            content_type: ehds_store::PDF,
            content: &original.pdf,
        })
        .await?;
    match outcome {
        PutOutcome::Created(doc) => {
            state.metrics.count_document_stored();
            tracing::info!(document_id = %doc.id, "PDF original stored");
            Ok((StatusCode::CREATED, doc))
        }
        PutOutcome::AlreadyStored(doc) => Ok((StatusCode::OK, doc)),
        PutOutcome::Conflict { existing_id } => {
            Err(GatewayError::IdentifierConflict { existing_id })
        }
    }
}

/// `GET /fhir/Binary/{id}`: the PDF for the system that pushed it; or, for
/// `<country>.<id>`, a PDF original held by another country.
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: NationalCaller,
    trail: Trail,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    if let Some(held_by) = crate::relay::send::held_abroad(&state, &id) {
        return crate::relay::binary_read::relay(&state, &caller, &headers, &trail, held_by).await;
    }
    trail.target(EntityTarget::Id(id.clone()));
    let not_found = || GatewayError::ResourceNotFound(format!("Binary/{id}"));
    let doc = state
        .store
        .document(&id)
        .await?
        .filter(|d| d.content_type == ehds_store::PDF)
        .ok_or_else(not_found)?;
    if let Some((system, value)) = doc
        .patient_identifier
        .as_deref()
        .and_then(|p| p.split_once('|'))
    {
        trail.patient(&TokenParam {
            system: system.to_owned(),
            value: value.to_owned(),
        });
    }
    caller.require_sender(&doc.sender)?;
    Ok(pdf_original(headers.get(header::ACCEPT), &id, doc.content).into_response())
}

/// The DocumentReference a list carries for a stored document (FHIR or
/// PDF): the NCPeH API's minimal DocumentReference (masterIdentifier,
/// status `current`, type, subject, date, content.attachment with its media
/// type, size and the `url` to read it by).
pub(crate) fn listed_reference(
    services: &ServiceRegistry,
    doc: &StoredDocument,
    url: &str,
) -> serde_json::Value {
    let type_ = doc
        .document_type
        .as_deref()
        .and_then(|t| t.split_once('|'))
        .and_then(|(system, code)| {
            let service = services.for_type(system, code)?;
            service
                .document_types
                .iter()
                .find(|t| t.system == system && t.code == code)
        });
    let subject = doc
        .patient_identifier
        .as_deref()
        .and_then(|p| p.split_once('|'))
        .map_or(
            serde_json::Value::Null,
            |(system, value)| serde_json::json!({"identifier": {"system": system, "value": value}}),
        );
    serde_json::json!({
        "resourceType": "DocumentReference",
        "id": doc.id,
        "masterIdentifier": {"system": doc.identifier.system, "value": doc.identifier.value},
        "status": "current",
        "type": type_.map_or(serde_json::json!({}), |t| serde_json::json!({"coding": [{
            "system": t.system, "code": t.code, "display": t.display,
        }]})),
        "subject": subject,
        "date": doc
            .received_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "content": [{"attachment": {
            "contentType": doc.content_type,
            "url": url,
            "size": doc.content.len(),
        }}],
    })
}

/// What a pushed DocumentReference says of its PDF original.
#[derive(Debug)]
struct PdfOriginal {
    /// `masterIdentifier`.
    identifier: DocumentIdentifier,
    /// `subject.identifier` as `system|value`.
    patient: String,
    /// The document type (`system|code`) of a service accepting PDFs.
    document_type: String,
    /// That service's name (its validation policy judges the
    /// DocumentReference).
    service: String,
    /// The PDF, decoded from `content[0].attachment.data`.
    pdf: Vec<u8>,
}

/// Where the PDF of a pushed DocumentReference is.
#[derive(Debug, Clone, Copy)]
enum PdfIn<'a> {
    /// In `content[0].attachment.data` (base64).
    Inline,
    /// In the `Binary` of the same transaction whose `fullUrl` the
    /// attachment's `url` names.
    Binary {
        /// The Binary entry's `fullUrl`.
        full_url: &'a str,
        /// The Binary resource.
        binary: &'a Node,
        /// Where its `data` is, for refusals.
        data_at: &'a str,
    },
}

impl PdfOriginal {
    /// Reads `root` (a DocumentReference, at `base` in what was pushed:
    /// `DocumentReference` or `Bundle.entry[i].resource`), its PDF from
    /// `source`; every element this gateway needs and does not find is an
    /// issue at it.
    fn read(
        root: &Node,
        base: &str,
        source: PdfIn<'_>,
        services: &ServiceRegistry,
    ) -> Result<Self, GatewayError> {
        let mut report = ValidationReport::default();
        let mut refuse = |at: &str, code: IssueType, message: &str| {
            let at = match at.strip_prefix("DocumentReference") {
                Some(rest) => format!("{base}{rest}"),
                None => at.to_owned(),
            };
            report.push(Issue::error(code, message).at(at));
        };
        let text = |node: Option<&Node>, key: &str| {
            node.and_then(|n| n.get(key))
                .and_then(Node::as_str)
                .map(str::to_owned)
        };
        // The NCPeH API lists current documents only.
        if text(Some(root), "status").as_deref() != Some("current") {
            refuse(
                "DocumentReference.status",
                IssueType::BusinessRule,
                "a PDF original is pushed with status 'current'",
            );
        }
        let master = root.get("masterIdentifier");
        let identifier = match (text(master, "system"), text(master, "value")) {
            (Some(system), Some(value)) => Some(DocumentIdentifier { system, value }),
            _ => {
                refuse(
                    "DocumentReference.masterIdentifier",
                    IssueType::Required,
                    "a PDF original needs masterIdentifier with system and value (the \
                     document's identifier: a push is idempotent by it)",
                );
                None
            }
        };
        let subject = root.get("subject").and_then(|s| s.get("identifier"));
        let patient = match text(subject, "system")
            .zip(text(subject, "value"))
            .and_then(|(system, value)| PatientIdentifier::new(&system, &value))
        {
            Some(patient) => Some(patient.key()),
            None => {
                refuse(
                    "DocumentReference.subject.identifier",
                    IssueType::Required,
                    "a PDF original names its patient by subject.identifier (system and value)",
                );
                None
            }
        };
        let document_type = Self::document_type(root, services, &mut refuse);
        let contents = root.get("content").map(Node::items).unwrap_or_default();
        if contents.len() != 1 {
            refuse(
                "DocumentReference.content",
                IssueType::BusinessRule,
                "a PDF original is pushed as one content.attachment",
            );
        }
        let attachment = contents.first().and_then(|c| c.get("attachment"));
        let is_pdf = |media_type: Option<String>| {
            media_type.as_deref().is_some_and(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case(ehds_store::PDF))
            })
        };
        if !is_pdf(text(attachment, "contentType")) {
            refuse(
                "DocumentReference.content[0].attachment.contentType",
                IssueType::NotSupported,
                "an original clinical document is accepted as application/pdf only",
            );
        }
        let decode = |data: &str, at: &str, refuse: &mut dyn FnMut(&str, IssueType, &str)| {
            match base64::engine::general_purpose::STANDARD.decode(data) {
                Ok(pdf) => Some(pdf),
                Err(_) => {
                    refuse(at, IssueType::Value, "the PDF's data is not base64");
                    None
                }
            }
        };
        let pdf = match source {
            PdfIn::Inline => match text(attachment, "data") {
                None => {
                    refuse(
                        DATA_AT,
                        IssueType::Required,
                        "the PDF is sent in attachment.data (base64), or as a Binary of a \
                         transaction; this gateway does not fetch attachment.url",
                    );
                    None
                }
                Some(data) => decode(&data, DATA_AT, &mut refuse),
            },
            PdfIn::Binary {
                full_url,
                binary,
                data_at,
            } => {
                if attachment.and_then(|a| a.get("data")).is_some() {
                    refuse(
                        DATA_AT,
                        IssueType::BusinessRule,
                        "the PDF is in the transaction's Binary: attachment.data must be \
                         absent (one PDF, one place)",
                    );
                }
                if text(attachment, "url").as_deref() != Some(full_url) {
                    refuse(
                        "DocumentReference.content[0].attachment.url",
                        IssueType::BusinessRule,
                        "attachment.url must be the fullUrl of the transaction's Binary; this \
                         gateway fetches nothing from elsewhere",
                    );
                }
                let data_at_node = data_at.rsplit_once('.').map_or(data_at, |(at, _)| at);
                if !is_pdf(text(Some(binary), "contentType")) {
                    refuse(
                        &format!("{data_at_node}.contentType"),
                        IssueType::NotSupported,
                        "the Binary of a PDF original has contentType application/pdf",
                    );
                }
                match text(Some(binary), "data") {
                    None => {
                        refuse(data_at, IssueType::Required, "the Binary carries no data");
                        None
                    }
                    Some(data) => decode(&data, data_at, &mut refuse),
                }
            }
        };
        let declared_size = attachment
            .and_then(|a| a.get("size"))
            .and_then(Node::as_number_text)
            .and_then(|t| t.parse::<u64>().ok());
        if let (Some(size), Some(pdf)) = (declared_size, &pdf)
            && u64::try_from(pdf.len()).ok() != Some(size)
        {
            refuse(
                "DocumentReference.content[0].attachment.size",
                IssueType::Value,
                "attachment.size is not the size of the PDF",
            );
        }
        match (identifier, patient, document_type, pdf) {
            (Some(identifier), Some(patient), Some((document_type, service)), Some(pdf))
                if report.is_acceptable() =>
            {
                Ok(Self {
                    identifier,
                    patient,
                    document_type,
                    service,
                    pdf,
                })
            }
            _ => Err(GatewayError::Invalid(report)),
        }
    }

    /// The first `type.coding` naming a service of the registry, which
    /// must accept PDF originals: the type as `system|code` and the
    /// service's name.
    fn document_type(
        root: &Node,
        services: &ServiceRegistry,
        refuse: &mut impl FnMut(&str, IssueType, &str),
    ) -> Option<(String, String)> {
        let codings = root
            .get("type")
            .and_then(|t| t.get("coding"))
            .map(Node::items)
            .unwrap_or_default();
        let named = codings.iter().find_map(|coding| {
            let system = coding.get("system")?.as_str()?;
            let code = coding.get("code")?.as_str()?;
            Some((services.for_type(system, code)?, system, code))
        });
        match named {
            Some((service, system, code))
                if service.pdf_original && service.kind == ServiceKind::Document =>
            {
                Some((format!("{system}|{code}"), service.name.clone()))
            }
            Some((service, ..)) => {
                refuse(
                    "DocumentReference.type",
                    IssueType::NotSupported,
                    &format!(
                        "the service {} does not accept PDF originals (services.toml: \
                         pdf_original)",
                        service.name
                    ),
                );
                None
            }
            None => {
                refuse(
                    "DocumentReference.type",
                    IssueType::NotSupported,
                    "the document's type is not the type of a document service of this gateway",
                );
                None
            }
        }
    }
}

/// The two entries of a PDF original's transaction Bundle.
#[derive(Debug)]
struct PdfTransaction<'a> {
    /// Index of the Binary entry.
    binary: usize,
    /// The Binary entry's `fullUrl`.
    binary_full_url: &'a str,
    /// The Binary resource.
    binary_node: &'a Node,
    /// Index of the DocumentReference entry.
    reference: usize,
    /// The DocumentReference resource.
    reference_node: &'a Node,
}

impl<'a> PdfTransaction<'a> {
    /// Reads a `transaction` Bundle that holds exactly one Binary (with a
    /// `fullUrl`) and one DocumentReference, each created (`request.method`
    /// `POST`); anything else is refused, located, before anything is
    /// stored.
    fn read(root: &'a Node) -> Result<Self, GatewayError> {
        let mut report = ValidationReport::default();
        let mut refuse = |at: String, code: IssueType, message: &str| {
            report.push(Issue::error(code, message).at(at));
        };
        if !is_transaction(root) {
            refuse(
                "Bundle.type".to_owned(),
                IssueType::NotSupported,
                "a PDF original is pushed as a DocumentReference, or as a transaction Bundle",
            );
        }
        let entries = root.get("entry").map(Node::items).unwrap_or_default();
        let mut binary = None;
        let mut reference = None;
        for (i, entry) in entries.iter().enumerate() {
            let resource = entry.get("resource");
            let resource_type = resource
                .and_then(|r| r.get("resourceType"))
                .and_then(Node::as_str);
            let method = entry
                .get("request")
                .and_then(|r| r.get("method"))
                .and_then(Node::as_str);
            if method != Some("POST") {
                refuse(
                    format!("Bundle.entry[{i}].request.method"),
                    IssueType::NotSupported,
                    "a PDF original's entries are created (POST); nothing is updated or deleted",
                );
            }
            match (resource_type, resource) {
                (Some("Binary"), Some(node)) if binary.is_none() => {
                    match entry.get("fullUrl").and_then(Node::as_str) {
                        Some(full_url) => binary = Some((i, full_url, node)),
                        None => refuse(
                            format!("Bundle.entry[{i}].fullUrl"),
                            IssueType::Required,
                            "the Binary needs a fullUrl for the DocumentReference to name it",
                        ),
                    }
                }
                (Some("DocumentReference"), Some(node)) if reference.is_none() => {
                    reference = Some((i, node));
                }
                _ => refuse(
                    format!("Bundle.entry[{i}]"),
                    IssueType::NotSupported,
                    "a PDF original's transaction holds one Binary and one DocumentReference, \
                     nothing else",
                ),
            }
        }
        match (binary, reference) {
            (Some((binary, binary_full_url, binary_node)), Some((reference, reference_node)))
                if report.is_acceptable() =>
            {
                Ok(Self {
                    binary,
                    binary_full_url,
                    binary_node,
                    reference,
                    reference_node,
                })
            }
            (binary, reference) => {
                if binary.is_none() || reference.is_none() {
                    report.push(
                        Issue::error(
                            IssueType::Required,
                            "a PDF original's transaction holds one Binary and one \
                             DocumentReference",
                        )
                        .at("Bundle.entry"),
                    );
                }
                Err(GatewayError::Invalid(report))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn reference(type_code: &str, content_type: &str, data: &str) -> ehds_fhir::ReceivedResource {
        let json = serde_json::json!({
            "resourceType": "DocumentReference",
            "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"},
            "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": type_code}]},
            "subject": {"identifier": {"system": "urn:oid:1.2.3", "value": "42"}},
            "content": [{"attachment": {"contentType": content_type, "data": data}}],
        });
        ehds_fhir::ReceivedResource::parse(bytes::Bytes::from(json.to_string())).unwrap()
    }

    fn issues_at(result: Result<PdfOriginal, GatewayError>) -> Vec<String> {
        match result {
            Err(GatewayError::Invalid(report)) => report
                .issues
                .into_iter()
                .filter_map(|i| i.expression)
                .collect(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_pdf_original_is_read_from_its_document_reference() {
        let services = ServiceRegistry::shipped().unwrap();
        let data = base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.4 %%EOF");
        let original = PdfOriginal::read(
            reference("11502-2", "application/pdf", &data).root(),
            "DocumentReference",
            PdfIn::Inline,
            &services,
        )
        .unwrap();
        assert_eq!(original.document_type, "http://loinc.org|11502-2");
        assert_eq!(original.patient, "urn:oid:1.2.3|42");
        assert_eq!(original.pdf, b"%PDF-1.4 %%EOF");
    }

    #[test]
    fn refusals_are_located_at_the_element() {
        let services = ServiceRegistry::shipped().unwrap();
        // The patient summary does not take PDF originals (shipped).
        let data = base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.4");
        assert_eq!(
            issues_at(PdfOriginal::read(
                reference("60591-5", "application/pdf", &data).root(),
                "DocumentReference",
                PdfIn::Inline,
                &services
            )),
            ["DocumentReference.type"]
        );
        assert_eq!(
            issues_at(PdfOriginal::read(
                reference("11502-2", "text/html", "%%%").root(),
                "DocumentReference",
                PdfIn::Inline,
                &services
            )),
            [
                "DocumentReference.content[0].attachment.contentType",
                "DocumentReference.content[0].attachment.data"
            ]
        );
    }
}
