//! Cross-border exchange between national contact points, modelled on the
//! MyHealth@EU NCPeH FHIR API (PatientMinimal search, DocumentReference list,
//! Bundle retrieve; see `conformance/ncpeh-api-coverage.md`).
//!
//! Two roles, one gateway:
//!
//! * **Country of treatment (NCP-B)**, on the national API: a doctor's or
//!   pharmacy's system asks about a visiting patient. The identifier's system
//!   names the patient's country; the identifier is checked against that
//!   country's rules before anything crosses the border; the health
//!   professional's assertion is verified here too; the request is relayed
//!   to that country's NCP over mutual TLS and its answer is checked (a peer
//!   is untrusted input) before it is passed on byte for byte.
//! * **Country of affiliation (NCP-A)**, on the federation listener: the
//!   peer NCP is identified by its verified certificate and must be the NCP
//!   the directory lists for its country; the assertion (signed by the
//!   peer's country's identity provider, bound to this patient, not replayed)
//!   and the access policy decide; the answer comes from the store.
//!
//! Both ends write an AuditEvent for every access and every refusal
//! ([`crate::audit`]); data is released only after its record is written.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use ehds_access::{
    AccessPolicy, Decision, Expectations, Operation, PatientRef, TrustList, VerifiedAssertion,
    Verifier, VerifierSettings,
};
use ehds_fhir::audit_event::{
    AccessRecord, AuditAction, AuditOutcome, AuditedEntity, EntityTarget, NcpParty,
    PatientIdentifier, PeerNcp, PeerRole, Professional, RestInteraction,
};
use ehds_fhir::{Node, ReceivedResource};
use ehds_routing::NcpDirectory;
use ehds_routing::search::{
    BundleRead, DocumentReferenceSearch, MedicationRequestSearch, PatientSearch, SearchRefusal,
    TokenParam,
};
use ehds_store::Store;
use ehds_transport::{
    ClientTimeouts, IdentityFiles, NationalClientKind, PeerIdentity, ReloadableServerTls,
    ServerTlsFiles, TlsIdentity, TrustFiles, TrustStore, VerifiedPeer,
};
use time::OffsetDateTime;

use crate::audit;
use crate::config::CheckedConfig;
use crate::error::GatewayError;
use crate::http::{AppState, FHIR_JSON, NationalCaller};

/// LOINC 60591-5 Patient summary Document: the document type of the IPS.
pub const PATIENT_SUMMARY_TYPE: (&str, &str) = ("http://loinc.org", "60591-5");

/// `DocumentReference.type` of an ePrescription (eHDSI document codes:
/// LOINC 57833-6 "Prescription for medication").
pub const PRESCRIPTION_TYPE: (&str, &str) = ("http://loinc.org", "57833-6");

/// Largest answer accepted from a peer (a patient summary with embedded
/// attachments stays far below).
const MAX_PEER_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// The `aud` an assertion for the NCP of `country` carries.
pub fn audience(country: &str) -> String {
    format!("urn:ehds:ncp:{country}")
}

/// Everything the gateway needs to take part in the federation.
#[derive(Debug)]
pub struct Federation {
    /// This NCP's country (ISO 3166-1 alpha-2).
    pub country: String,
    /// This NCP's id.
    pub ncp_id: String,
    /// Countries, their NCPs and identifier rules.
    pub directory: NcpDirectory,
    /// The mutual-TLS client for calling peers.
    pub client: reqwest::Client,
    /// Verifies health-professional assertions.
    pub verifier: Verifier,
    /// Who may do what.
    pub policy: AccessPolicy,
    /// The federation CAs, to find the issuer of a peer's server certificate.
    pub trust: TrustStore,
    /// OCSP for peer server certificates that name a responder (cached
    /// until the response's nextUpdate).
    pub ocsp: ehds_transport::ocsp::OcspChecker,
    /// Services for which an emergency purpose of use lifts the patient's
    /// restrictions (`[patient_rights]`).
    pub emergency_lifts_restrictions: Vec<String>,
    /// Peers (by NCP id) whose server certificate was checked (directory
    /// identity and OCSP) before any patient data was sent to them, and
    /// until when that check stands ([`PEER_CHECK_VALIDITY`]).
    pub checked_peers: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// How long a peer's server certificate check (identity and OCSP, made
/// with a request that carries no patient data) stands before it is made
/// again ahead of the next request.
pub const PEER_CHECK_VALIDITY: Duration = Duration::from_secs(300);

/// The federation listener's TLS configuration with [`Federation`].
pub struct LoadedFederation {
    /// The federation.
    pub federation: Federation,
    /// The federation listener's TLS configuration.
    pub listener_tls: ReloadableServerTls,
}

impl Federation {
    /// Loads the directory, the trust list, the policy and the TLS material
    /// named by `[federation]` and `[assertions]`; `None` without them.
    pub fn load(config: &CheckedConfig) -> Result<Option<LoadedFederation>, GatewayError> {
        let (Some(section), Some(assertions), Some(ncp)) = (
            &config.raw.federation,
            &config.raw.assertions,
            &config.raw.ncp,
        ) else {
            return Ok(None);
        };
        let directory = NcpDirectory::load(&section.directory)
            .map_err(|e| GatewayError::Config(format!("federation.directory: {e}")))?;
        let own = directory.ncp_for_country(&ncp.country).ok_or_else(|| {
            GatewayError::Config(format!(
                "the directory does not list this gateway's country {}",
                ncp.country
            ))
        })?;
        if own.id() != section.ncp_id {
            return Err(GatewayError::Config(format!(
                "federation.ncp_id {:?} is not the directory's NCP for {} ({:?})",
                section.ncp_id,
                ncp.country,
                own.id()
            )));
        }
        let trust = TrustFiles {
            ca_certs: section.cas.clone(),
            crls: section.crls.clone(),
        };
        // This country's national CA (the national listener's client CAs)
        // is admitted on the federation listener only to tell a national
        // system that calls it by mistake, with a 403 it can read and a
        // record (`refuse_national_clients`); it is never read as an NCP.
        let national = &config.raw.server.tls;
        let listener_tls = ReloadableServerTls::load(ServerTlsFiles {
            identity: IdentityFiles {
                cert_chain: section.certificate.clone(),
                private_key: section.private_key.clone(),
            },
            trust: trust.clone(),
            misdirected_clients: Some(TrustFiles {
                ca_certs: national.client_cas.clone(),
                crls: national.client_crls.clone(),
            }),
        })?;
        let client_identity = TlsIdentity::load(&IdentityFiles {
            cert_chain: section.client_certificate.clone(),
            private_key: section.client_private_key.clone(),
        })?;
        let trust_store = TrustStore::load(&trust)?;
        let client = ehds_transport::federation_client(
            &client_identity,
            &trust_store,
            ClientTimeouts {
                connect: Duration::from_secs(section.connect_timeout_secs),
                request: Duration::from_secs(section.request_timeout_secs),
            },
        )?;
        let access = |what: &str, e: ehds_access::AccessError| {
            GatewayError::Config(format!("assertions.{what}: {e}"))
        };
        let trust_list =
            TrustList::load(&assertions.trust_list).map_err(|e| access("trust_list", e))?;
        let policy = AccessPolicy::load(&assertions.policy).map_err(|e| access("policy", e))?;
        let settings = VerifierSettings {
            clock_skew_secs: u32::try_from(assertions.clock_skew_secs).unwrap_or(u32::MAX),
            max_lifetime_secs: u32::try_from(assertions.max_lifetime_secs).unwrap_or(u32::MAX),
            ..VerifierSettings::default()
        };
        Ok(Some(LoadedFederation {
            federation: Self {
                country: ncp.country.clone(),
                ncp_id: section.ncp_id.clone(),
                directory,
                client,
                verifier: Verifier::new(trust_list, settings),
                policy,
                trust: trust_store,
                ocsp: ehds_transport::ocsp::OcspChecker::new(
                    ehds_transport::ocsp::OcspOptions::default(),
                ),
                emergency_lifts_restrictions: config
                    .raw
                    .patient_rights
                    .emergency_lifts_restrictions
                    .clone(),
                checked_peers: std::sync::Mutex::default(),
            },
            listener_tls,
        }))
    }

    fn own_party(&self) -> NcpParty {
        NcpParty {
            country: self.country.clone(),
            ncp_id: self.ncp_id.clone(),
        }
    }
}

/// The replay ledger over the store: shared by every replica of a gateway
/// on one PostgreSQL database.
struct StoreLedger<'a>(&'a Store);

impl ehds_access::ReplayLedger for StoreLedger<'_> {
    async fn first_use(
        &self,
        issuer: &str,
        jti: &str,
        remember_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, ehds_access::AccessError> {
        self.0
            .first_use_of_assertion(issuer, jti, remember_until, now)
            .await
            .map_err(|e| ehds_access::AccessError::Ledger(e.to_string()))
    }
}

/// What an audit record says about one request, filled in as it proceeds.
struct Trail {
    record: AccessRecord,
    /// Where to report a refusal decided here about a patient of another
    /// country: that country's NCP (its `POST AuditEvent`), so that the
    /// patient's access log at home shows it too.
    report_to: Option<(Arc<Federation>, ehds_routing::Ncp)>,
}

impl Trail {
    fn new(
        federation: &Federation,
        action: AuditAction,
        subtype: RestInteraction,
        resource_type: &str,
        target: EntityTarget,
    ) -> Self {
        Self {
            record: AccessRecord {
                action,
                subtype,
                recorded: audit::now(),
                outcome: AuditOutcome::Success,
                outcome_description: None,
                requesting_professional: None,
                purpose_of_use: None,
                source_ncp: federation.own_party(),
                peer_ncp: None,
                patient: None,
                entity: Some(AuditedEntity {
                    resource_type: resource_type.to_owned(),
                    target,
                }),
                request_id: crate::http::current_request_id().unwrap_or_default(),
            },
            report_to: None,
        }
    }

    fn patient(&mut self, token: &TokenParam) {
        self.record.patient = Some(PatientIdentifier {
            system: token.system.clone(),
            value: token.value.clone(),
        });
    }

    fn peer(&mut self, country: &str, ncp_id: &str, fingerprint: String, role: PeerRole) {
        self.record.peer_ncp = Some(PeerNcp {
            country: country.to_owned(),
            ncp_id: ncp_id.to_owned(),
            cert_fingerprint: fingerprint,
            role,
        });
    }

    fn professional(&mut self, assertion: &VerifiedAssertion) {
        let claims = assertion.claims();
        self.record.requesting_professional = Some(Professional {
            id: claims.sub.clone(),
            name: claims.name.clone(),
            role_isco: claims.role.clone(),
            organisation: Some(ehds_fhir::audit_event::Organisation {
                id: claims.organisation.id.clone(),
                name: claims.organisation.name.clone(),
            }),
            country: claims.country.clone(),
        });
        self.record.purpose_of_use = Some(match assertion.purpose() {
            ehds_access::PurposeOfUse::Treatment => ehds_fhir::audit_event::PurposeOfUse::Treatment,
            ehds_access::PurposeOfUse::Emergency => {
                ehds_fhir::audit_event::PurposeOfUse::EmergencyTreatment
            }
        });
    }

    /// The asking organisation as `country/organisation id` (the pharmacy a
    /// retrieval or dispense is recorded for), once the assertion is read.
    fn requesting_organisation(&self) -> String {
        self.record
            .requesting_professional
            .as_ref()
            .and_then(|p| {
                p.organisation
                    .as_ref()
                    .map(|o| format!("{}/{}", p.country, o.id))
            })
            .unwrap_or_default()
    }

    /// Records a refusal (best effort) and returns the error.
    async fn refuse(mut self, state: &AppState, error: GatewayError) -> GatewayError {
        let (status, _) = crate::error::classify(&error);
        self.record.outcome = if status.is_server_error() {
            AuditOutcome::SeriousFailure
        } else {
            AuditOutcome::MinorFailure
        };
        self.record.outcome_description = Some(refusal_summary(&error));
        self.record.recorded = audit::now();
        audit::record_refusal(state, &self.record).await;
        if let Some((federation, ncp)) = self.report_to.take()
            && decided_here(&error)
        {
            report_refusal(federation, ncp, &self.record);
        }
        error
    }

    /// Records the success; an error means the data must not be released.
    async fn succeed(mut self, state: &AppState) -> Result<(), GatewayError> {
        self.record.recorded = audit::now();
        audit::record_access(state, &self.record).await
    }
}

/// Whether this gateway, relaying for a patient of another country, refused
/// on its own (the other country never saw the request, or saw it and
/// answered, but this gateway withheld the answer): only such refusals are
/// reported there. A refusal the other country answered is in its own trail;
/// one caused by the other country's NCP being unreachable or not who the
/// directory says cannot be reported to it.
fn decided_here(error: &GatewayError) -> bool {
    matches!(
        error,
        GatewayError::Assertion(_)
            | GatewayError::Unauthenticated(_)
            | GatewayError::Forbidden(_)
            | GatewayError::PeerInvalid(_)
    )
}

/// Sends the AuditEvent of a refusal to the patient's country's NCP, in the
/// background and once: the refusal stands and is in this gateway's trail
/// whatever happens to the report; a failure is logged without patient data.
/// The report names the patient, so it is sent only to a server whose
/// certificate passed the same check as before any relayed request
/// ([`ensure_peer_checked`]: directory identity and OCSP).
fn report_refusal(federation: Arc<Federation>, ncp: ehds_routing::Ncp, record: &AccessRecord) {
    let content = match ehds_fhir::audit_event::audit_event_json(record) {
        Ok(content) => content,
        Err(error) => {
            tracing::error!(%error, "a refusal could not be reported to the patient's country");
            return;
        }
    };
    tokio::spawn(async move {
        if let Err(error) = ensure_peer_checked(&federation, &ncp).await {
            tracing::warn!(%error, "a refusal was not reported: the patient's country's server did not pass its check");
            return;
        }
        let sent = federation
            .client
            .post(ncp.federation_url_for("AuditEvent"))
            .header(header::CONTENT_TYPE, FHIR_JSON)
            .body(content)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => tracing::warn!(
                status = response.status().as_u16(),
                "the patient's country did not accept the report of a refusal"
            ),
            Err(error) => tracing::warn!(
                timeout = error.is_timeout(),
                "the report of a refusal did not reach the patient's country"
            ),
        }
    });
}

/// `POST AuditEvent` on the federation API: another country's NCP reports a
/// refusal it decided about one of this country's patients (see
/// [`decided_here`]). The AuditEvent must be valid, observed by the calling
/// NCP (`source.site` is its country) and name a patient of this country;
/// it is appended to this gateway's hash chain exactly as sent, so the
/// patient's access log covers both ends.
async fn peer_audit_report(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    let federation = Arc::clone(federation_of(&state)?);
    let (ncp, _) = calling_ncp(&federation, peer.as_deref())?;
    let resource = crate::http::receive_resource(&headers, body, state.limits).await?;
    if resource.resource_type() != "AuditEvent" {
        return Err(GatewayError::WrongResourceType {
            expected: "AuditEvent",
            found: resource.resource_type().to_owned(),
        });
    }
    let report = state.validator.validate(&resource, &[]);
    if !report.is_acceptable() {
        return Err(GatewayError::Invalid(report));
    }
    let root = resource.root();
    let invalid = |message: &str, at: &str| {
        let mut report = ehds_validation::ValidationReport::default();
        report.push(
            ehds_fhir::outcome::Issue::error(ehds_fhir::outcome::IssueType::Invalid, message)
                .at(at),
        );
        GatewayError::Invalid(report)
    };
    if root
        .get("source")
        .and_then(|s| s.get("site"))
        .and_then(Node::as_str)
        != Some(ncp.country().as_str())
    {
        return Err(GatewayError::Forbidden(
            "an NCP reports only events it observed itself (source.site is its country)".into(),
        ));
    }
    let patient = root
        .get("entity")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.get("what"))
        .find(|w| w.get("type").and_then(Node::as_str) == Some("Patient"))
        .and_then(|w| w.get("identifier"))
        .and_then(|i| {
            Some((
                i.get("system").and_then(Node::as_str)?,
                i.get("value").and_then(Node::as_str)?,
            ))
        })
        .ok_or_else(|| {
            invalid(
                "the event names no patient (entity.what of type Patient with an identifier)",
                "AuditEvent.entity",
            )
        })?;
    match federation
        .directory
        .check_patient_identifier(patient.0, patient.1)
    {
        Ok(routed) if routed.country.code().as_str() == federation.country => {}
        _ => {
            return Err(invalid(
                "the patient is not of this country",
                "AuditEvent.entity",
            ));
        }
    }
    let outcome = root
        .get("outcome")
        .and_then(Node::as_str)
        .filter(|o| matches!(*o, "0" | "4" | "8" | "12"))
        .ok_or_else(|| invalid("outcome must be 0, 4, 8 or 12", "AuditEvent.outcome"))?;
    let recorded = root
        .get("recorded")
        .and_then(Node::as_str)
        .and_then(|r| OffsetDateTime::parse(r, &time::format_description::well_known::Rfc3339).ok())
        .ok_or_else(|| invalid("recorded must be an instant", "AuditEvent.recorded"))?;
    let key = format!("{}|{}", patient.0, patient.1);
    state
        .store
        .append_audit(ehds_store::NewAuditRecord {
            patient_identifier: Some(&key),
            outcome,
            content: resource.bytes(),
            recorded_at: recorded,
        })
        .await?;
    Ok(crate::error::outcome_response(
        StatusCode::CREATED,
        &[ehds_fhir::outcome::Issue::new(
            ehds_fhir::outcome::Severity::Information,
            ehds_fhir::outcome::IssueType::Informational,
            "the reported event is in this NCP's audit trail",
        )],
    ))
}

/// A short reason for the audit record, without patient data.
fn refusal_summary(error: &GatewayError) -> String {
    match error {
        GatewayError::Assertion(refusal) => format!("assertion refused: {}", refusal.code()),
        // For the patient's access log: why, in words, never patient data.
        GatewayError::NoConsent => "no consent: the patient's opt-out".to_owned(),
        GatewayError::Forbidden(why) => format!("forbidden: {why}"),
        GatewayError::Unauthenticated(_) => "not authenticated".to_owned(),
        GatewayError::Search(_) | GatewayError::Identifier(_) => "malformed request".to_owned(),
        GatewayError::ResourceNotFound(_) => "not found".to_owned(),
        GatewayError::PeerUnavailable(_) => "peer unavailable".to_owned(),
        GatewayError::PeerTimeout => "peer timed out".to_owned(),
        GatewayError::PeerAnswer { status, .. } => format!("peer answered {status}"),
        GatewayError::PeerInvalid(_) => "peer answer failed validation".to_owned(),
        _ => "failed".to_owned(),
    }
}

/// The bearer token of `Authorization`.
fn bearer(headers: &HeaderMap) -> Result<&str, GatewayError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            GatewayError::Unauthenticated(
                "a health-professional assertion is required (Authorization: Bearer <assertion>)"
                    .into(),
            )
        })
}

/// Verifies the assertion of `token` for `patient`, as the NCP of
/// `audience_country`, coming from `peer_country`, and consumes its id.
async fn verify_assertion(
    state: &AppState,
    federation: &Federation,
    token: &str,
    audience_country: &str,
    peer_country: &str,
    patient: &PatientRef,
) -> Result<VerifiedAssertion, GatewayError> {
    let audience = audience(audience_country);
    let expected = Expectations {
        audience: &audience,
        peer_country,
        patient,
        now: OffsetDateTime::now_utc(),
    };
    match federation
        .verifier
        .verify(token, &expected, &StoreLedger(&state.store))
        .await
    {
        Ok(Ok(verified)) => Ok(verified),
        Ok(Err(refusal)) => Err(GatewayError::Assertion(refusal)),
        Err(error) => Err(GatewayError::Ledger(error.to_string())),
    }
}

fn authorise(
    federation: &Federation,
    assertion: &VerifiedAssertion,
    operation: Operation,
) -> Result<(), GatewayError> {
    match federation.policy.authorise(assertion, operation) {
        Decision::Permit => Ok(()),
        Decision::Deny(reason) => Err(GatewayError::Forbidden(format!(
            "the access policy does not let this role {} ({})",
            operation.as_str(),
            reason.code()
        ))),
    }
}

fn patient_ref(token: &TokenParam) -> PatientRef {
    PatientRef::new(token.system.clone(), token.value.clone())
}

fn federation_of(state: &AppState) -> Result<&Arc<Federation>, GatewayError> {
    state.federation.as_ref().ok_or_else(|| {
        GatewayError::UnknownRoute(
            "cross-border requests (this gateway has no [federation])".into(),
        )
    })
}

fn fhir_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = (status, body.into()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

// ---------------------------------------------------------------------------
// Country of treatment (NCP-B): national API endpoints relayed to a peer.
// ---------------------------------------------------------------------------

/// The kinds of national system that ask for a visiting patient's data.
const ASKING_SYSTEMS: &[NationalClientKind] = &[
    NationalClientKind::DoctorSystem,
    NationalClientKind::Pharmacy,
];

/// A search of the national API that is relayed, as it is, to the country
/// of the patient it names.
trait RelayedSearch: Sized {
    /// The resource type searched.
    const RESOURCE: &'static str;
    fn parse(query: &str) -> Result<Self, Vec<SearchRefusal>>;
    /// The patient the search names (its country answers).
    fn patient(&self) -> &TokenParam;
    /// The path and query relayed to that country's NCP.
    fn relay_path(&self) -> String;
}

/// `RelayedSearch` for a search type of `ehds_routing::search`: its
/// resource type and the field naming the patient.
macro_rules! relayed_search {
    ($search:ty, $resource:literal, $patient:ident) => {
        impl RelayedSearch for $search {
            const RESOURCE: &'static str = $resource;
            fn parse(query: &str) -> Result<Self, Vec<SearchRefusal>> {
                <$search>::parse(query)
            }
            fn patient(&self) -> &TokenParam {
                &self.$patient
            }
            fn relay_path(&self) -> String {
                <$search>::relay_path(self)
            }
        }
    };
}

relayed_search!(PatientSearch, "Patient", identifier);
relayed_search!(
    DocumentReferenceSearch,
    "DocumentReference",
    patient_identifier
);
relayed_search!(
    MedicationRequestSearch,
    "MedicationRequest",
    patient_identifier
);

/// Parses a national search (a malformed one is refused and recorded before
/// anything crosses the border) and relays it to the patient's country.
async fn national_search<S: RelayedSearch>(
    state: &AppState,
    peer: Option<&VerifiedPeer>,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, GatewayError> {
    let search = match S::parse(query.unwrap_or_default()) {
        Ok(search) => search,
        Err(refusals) => {
            let error = GatewayError::Search(refusals);
            return Err(refuse_early(state, S::RESOURCE, error).await);
        }
    };
    relay_for_patient(
        state,
        peer,
        headers,
        search.patient(),
        search.relay_path(),
        (
            S::RESOURCE,
            RestInteraction::SearchType,
            AuditAction::Search,
        ),
        ExpectedAnswer::SearchSet,
    )
    .await
}

/// `GET /fhir/Patient?identifier=system|value[&name&birthdate&gender]`.
pub async fn national_patient_search(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    national_search::<PatientSearch>(&state, peer.as_deref(), query.as_deref(), &headers).await
}

/// `GET /fhir/DocumentReference?patient.identifier=system|value[&type=…]`.
pub async fn national_document_search(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    national_search::<DocumentReferenceSearch>(&state, peer.as_deref(), query.as_deref(), &headers)
        .await
}

/// `GET /fhir/MedicationRequest?patient.identifier=system|value[&status=…]`:
/// a visiting patient's prescriptions at their country's NCP.
pub async fn national_prescription_search(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    national_search::<MedicationRequestSearch>(&state, peer.as_deref(), query.as_deref(), &headers)
        .await
}

/// `POST /fhir/MedicationDispense`: a pharmacy hands over (or refuses) a
/// visiting patient's prescription; relayed to the patient's country, which
/// applies it to the prescription exactly once.
pub async fn national_dispense(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    let caller = NationalCaller::of(peer.as_deref(), state.country.as_deref())?;
    caller.require(&[NationalClientKind::Pharmacy], "dispense")?;
    let resource = crate::http::receive_resource(&headers, body, state.limits).await?;
    if resource.resource_type() != "MedicationDispense" {
        return Err(GatewayError::WrongResourceType {
            expected: "MedicationDispense",
            found: resource.resource_type().to_owned(),
        });
    }
    let report = state.validator.validate(&resource, &[]);
    if !report.is_acceptable() {
        return Err(GatewayError::Invalid(report));
    }
    let facts = match crate::prescriptions::read_dispense(resource.root()) {
        Ok(facts) => facts,
        Err(error) => return Err(refuse_early(&state, "MedicationDispense", error).await),
    };
    let patient = TokenParam {
        system: facts.patient.0.clone(),
        value: facts.patient.1.clone(),
    };
    let federation = federation_of(&state)?;
    let routed = match federation
        .directory
        .check_patient_identifier(&patient.system, &patient.value)
    {
        Ok(routed) => routed,
        Err(refusal) => {
            let error = GatewayError::Identifier(refusal);
            return Err(refuse_early(&state, "MedicationDispense", error).await);
        }
    };
    let ncp = routed.ncp;
    relay_with_body(
        &state,
        peer.as_deref(),
        &headers,
        &patient,
        ncp,
        "MedicationDispense".to_owned(),
        (
            "MedicationDispense",
            RestInteraction::Create,
            AuditAction::Create,
        ),
        ExpectedAnswer::Dispense,
        Some(resource.bytes().clone()),
    )
    .await
}

/// An id naming a document or prescription held by another country than
/// this gateway's: `<country>.<id at that country>` (the form the
/// DocumentReference lists give in `content.attachment.url`), as
/// `(country, id there)`.
pub fn held_abroad<'i>(state: &AppState, id: &'i str) -> Option<(&'i str, &'i str)> {
    let (country, rest) = id.split_once('.')?;
    (country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && !rest.is_empty()
        && state.country.as_deref() != Some(country))
    .then_some((country, rest))
}

/// `GET /fhir/Bundle/<country>.<id>`: a document held by another country.
pub async fn national_bundle_read(
    state: &AppState,
    peer: Option<&VerifiedPeer>,
    headers: &HeaderMap,
    country: &str,
    remote_id: &str,
) -> Result<Response, GatewayError> {
    let read = (country, remote_id);
    national_read(
        state,
        peer,
        headers,
        read,
        "Bundle",
        ExpectedAnswer::Document,
    )
    .await
}

/// `GET /fhir/MedicationRequest/<country>.<id>`: a prescription held by
/// another country (the id its prescription document list gave).
pub async fn national_prescription_read(
    state: &AppState,
    peer: Option<&VerifiedPeer>,
    headers: &HeaderMap,
    country: &str,
    remote_id: &str,
) -> Result<Response, GatewayError> {
    let read = (country, remote_id);
    let expected = ExpectedAnswer::Prescription;
    national_read(state, peer, headers, read, "MedicationRequest", expected).await
}

/// A read of `<resource_type>/<id>` held by `country`, relayed there for
/// the patient the assertion names.
async fn national_read(
    state: &AppState,
    peer: Option<&VerifiedPeer>,
    headers: &HeaderMap,
    (country, remote_id): (&str, &str),
    resource_type: &str,
    expected: ExpectedAnswer,
) -> Result<Response, GatewayError> {
    let read = BundleRead::parse(remote_id, "").map_err(GatewayError::Search)?;
    // The assertion names the patient; its signature is checked below
    // against that patient, so reading the claim first trusts nothing.
    let token = bearer(headers)?;
    let patient = unverified_patient(token).ok_or_else(|| {
        GatewayError::Assertion(ehds_access::AssertionRefusal::Malformed("payload"))
    })?;
    let federation = federation_of(state)?;
    let ncp = federation
        .directory
        .ncp_for_country(country)
        .ok_or_else(|| {
            GatewayError::ResourceNotFound(format!("{resource_type}/{country}.{remote_id}"))
        })?;
    let token_param = TokenParam {
        system: patient.system.clone(),
        value: patient.value.clone(),
    };
    relay(
        state,
        peer,
        headers,
        &token_param,
        ncp,
        format!("{resource_type}/{}", read.id),
        (resource_type, RestInteraction::Read, AuditAction::Read),
        expected,
    )
    .await
}

/// The patient an assertion names, read without checking its signature:
/// only to know which patient to verify it for (verification follows).
fn unverified_patient(token: &str) -> Option<PatientRef> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let patient = claims.get("treatment_relationship")?.get("patient")?;
    Some(PatientRef::new(
        patient.get("system")?.as_str()?,
        patient.get("value")?.as_str()?,
    ))
}

/// Audits a request refused before it could be routed (malformed search,
/// identifier failing its country's rules): nothing crossed the border, but
/// the refusal is on record. Not an audit of who asked: the caller was not
/// yet checked, so the record names no one.
async fn refuse_early(state: &AppState, resource_type: &str, error: GatewayError) -> GatewayError {
    match federation_of(state) {
        Ok(federation) => {
            let trail = Trail::new(
                federation,
                AuditAction::Search,
                RestInteraction::SearchType,
                resource_type,
                EntityTarget::Query(String::new()),
            );
            trail.refuse(state, error).await
        }
        Err(_) => error,
    }
}

/// What a peer's answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpectedAnswer {
    /// A `searchset` Bundle.
    SearchSet,
    /// A document Bundle meeting the configured document profiles.
    Document,
    /// A valid MedicationDispense (the one the pharmacy sent, as stored).
    Dispense,
    /// A valid MedicationRequest meeting the MPD profile when it is loaded
    /// (a prescription as its prescriber sent it).
    Prescription,
}

async fn relay_for_patient(
    state: &AppState,
    peer: Option<&VerifiedPeer>,
    headers: &HeaderMap,
    identifier: &TokenParam,
    relay_path: String,
    what: (&str, RestInteraction, AuditAction),
    expected: ExpectedAnswer,
) -> Result<Response, GatewayError> {
    let federation = federation_of(state)?;
    let routed = match federation
        .directory
        .check_patient_identifier(&identifier.system, &identifier.value)
    {
        Ok(routed) => routed,
        Err(refusal) => {
            let error = GatewayError::Identifier(refusal);
            return Err(refuse_early(state, what.0, error).await);
        }
    };
    let ncp = routed.ncp;
    relay(
        state, peer, headers, identifier, ncp, relay_path, what, expected,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn relay(
    state: &AppState,
    peer: Option<&VerifiedPeer>,
    headers: &HeaderMap,
    identifier: &TokenParam,
    ncp: &ehds_routing::Ncp,
    relay_path: String,
    (resource_type, subtype, action): (&str, RestInteraction, AuditAction),
    expected: ExpectedAnswer,
) -> Result<Response, GatewayError> {
    relay_with_body(
        state,
        peer,
        headers,
        identifier,
        ncp,
        relay_path,
        (resource_type, subtype, action),
        expected,
        None,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn relay_with_body(
    state: &AppState,
    peer: Option<&VerifiedPeer>,
    headers: &HeaderMap,
    identifier: &TokenParam,
    ncp: &ehds_routing::Ncp,
    relay_path: String,
    (resource_type, subtype, action): (&str, RestInteraction, AuditAction),
    expected: ExpectedAnswer,
    body: Option<Bytes>,
) -> Result<Response, GatewayError> {
    let caller = NationalCaller::of(peer, state.country.as_deref())?;
    caller.require(ASKING_SYSTEMS, "ask for a visiting patient's data")?;
    let federation = federation_of(state)?;
    let target = ncp.country().as_str().to_owned();
    let mut trail = Trail::new(
        federation,
        action,
        subtype,
        resource_type,
        match relay_path.split_once('?') {
            Some((_, query)) => EntityTarget::Query(query.to_owned()),
            None if body.is_some() => EntityTarget::Query(String::new()),
            None => EntityTarget::Id(relay_path.rsplit('/').next().unwrap_or_default().to_owned()),
        },
    );
    trail.patient(identifier);
    trail.peer(&target, ncp.id(), String::new(), PeerRole::Responder);
    if target == federation.country {
        let error = GatewayError::Forbidden(
            "this patient is of this gateway's own country: ask the national infrastructure, not the federation"
                .into(),
        );
        return Err(trail.refuse(state, error).await);
    }
    trail.report_to = Some((Arc::clone(federation), ncp.clone()));
    let token = match bearer(headers) {
        Ok(token) => token.to_owned(),
        Err(error) => return Err(trail.refuse(state, error).await),
    };
    // The assertion is checked here too: a forged, expired or replayed one
    // never leaves the country.
    let assertion = match verify_assertion(
        state,
        federation,
        &token,
        &target,
        &federation.country,
        &patient_ref(identifier),
    )
    .await
    {
        Ok(assertion) => assertion,
        Err(error) => return Err(trail.refuse(state, error).await),
    };
    trail.professional(&assertion);
    // Before the patient's identifier and the assertion leave: the peer's
    // server certificate must be the directory's NCP and not revoked by
    // OCSP (a certificate revoked only at its OCSP responder passes the
    // handshake's CRL check).
    if let Err(error) = ensure_peer_checked(federation, ncp).await {
        return Err(trail.refuse(state, error).await);
    }
    let url = ncp.federation_url_for(&relay_path);
    let request = match &body {
        Some(body) => federation
            .client
            .post(&url)
            .header(header::CONTENT_TYPE, FHIR_JSON)
            .body(body.clone()),
        None => federation.client.get(&url),
    };
    let answer = request
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::ACCEPT, FHIR_JSON)
        .send()
        .await;
    let response = match answer {
        Ok(response) => response,
        Err(error) => {
            let error = if error.is_timeout() {
                GatewayError::PeerTimeout
            } else {
                GatewayError::PeerUnavailable(format!("the NCP of {target} could not be reached"))
            };
            return Err(trail.refuse(state, error).await);
        }
    };
    // The answering server must be the NCP the directory names for the
    // country (subject C and CN), not merely any federation certificate
    // valid for the host name.
    if let Err(error) = check_server_identity(&response, ncp) {
        return Err(trail.refuse(state, error).await);
    }
    if let Err(error) = check_server_ocsp(federation, &response).await {
        return Err(trail.refuse(state, error).await);
    }
    let status = response.status().as_u16();
    let prescription_state = response.headers().get("x-prescription-state").cloned();
    let answer_body = match read_limited(response).await {
        Ok(body) => body,
        Err(error) => return Err(trail.refuse(state, error).await),
    };
    let accepted = status == 200 || (body.is_some() && status == 201);
    if !accepted {
        let error = GatewayError::PeerAnswer {
            status,
            outcome: peer_outcome(&answer_body),
        };
        return Err(trail.refuse(state, error).await);
    }
    if let Err(error) = check_answer(state, &answer_body, expected) {
        return Err(trail.refuse(state, error).await);
    }
    trail.succeed(state).await?;
    let mut response = fhir_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        answer_body,
    );
    if let Some(value) = prescription_state {
        response.headers_mut().insert("x-prescription-state", value);
    }
    Ok(response)
}

/// Checks the peer's server certificate (directory identity, OCSP) with a
/// request that carries no patient data (`GET /healthz` on its federation
/// listener), unless a check of it stands ([`PEER_CHECK_VALIDITY`]). The
/// answer of the patient request is checked again all the same.
async fn ensure_peer_checked(
    federation: &Federation,
    ncp: &ehds_routing::Ncp,
) -> Result<(), GatewayError> {
    let now = std::time::Instant::now();
    let standing = federation
        .checked_peers
        .lock()
        .map(|checked| checked.get(ncp.id()).is_some_and(|until| *until > now))
        .unwrap_or(false);
    if standing {
        return Ok(());
    }
    let health = reqwest::Url::parse(&ncp.federation_url_for("healthz"))
        .and_then(|base| base.join("/healthz"))
        .map_err(|_| {
            GatewayError::PeerUnavailable("the peer's federation URL is invalid".into())
        })?;
    let response = federation
        .client
        .get(health)
        .send()
        .await
        .map_err(|error| {
            if error.is_timeout() {
                GatewayError::PeerTimeout
            } else {
                GatewayError::PeerUnavailable(format!(
                    "the NCP of {} could not be reached",
                    ncp.country().as_str()
                ))
            }
        })?;
    check_server_identity(&response, ncp)?;
    check_server_ocsp(federation, &response).await?;
    if let Ok(mut checked) = federation.checked_peers.lock() {
        checked.insert(ncp.id().to_owned(), now + PEER_CHECK_VALIDITY);
    }
    Ok(())
}

/// The answering server's end-entity certificate (DER), as the TLS
/// handshake verified it (the federation client keeps `TlsInfo`).
fn peer_leaf(response: &reqwest::Response) -> Option<&[u8]> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(reqwest::tls::TlsInfo::peer_certificate)
}

/// OCSP on top of the CRLs for a peer server certificate that names a
/// responder: revoked, or a status that cannot be established, and nothing
/// is sent or passed on (fail closed). Verdicts are cached until the
/// responder's nextUpdate.
async fn check_server_ocsp(
    federation: &Federation,
    response: &reqwest::Response,
) -> Result<(), GatewayError> {
    let Some(leaf) = peer_leaf(response) else {
        return Err(GatewayError::PeerUnavailable(
            "the peer's certificate could not be read".into(),
        ));
    };
    // A certificate that names no responder is `NotApplicable` (CRLs alone
    // decide, at the handshake).
    let Some(issuer) = federation.trust.issuer_of(leaf) else {
        return Err(GatewayError::PeerUnavailable(
            "the peer's certificate issuer is not a federation CA".into(),
        ));
    };
    match federation.ocsp.check(leaf, issuer).await {
        Ok(verdict) if verdict.is_acceptable() => Ok(()),
        Ok(_) => Err(GatewayError::PeerUnavailable(
            "the peer's certificate is revoked (OCSP)".into(),
        )),
        Err(_) => Err(GatewayError::PeerUnavailable(
            "the revocation status of the peer's certificate could not be established (OCSP)"
                .into(),
        )),
    }
}

fn check_server_identity(
    response: &reqwest::Response,
    ncp: &ehds_routing::Ncp,
) -> Result<(), GatewayError> {
    let identity = peer_leaf(response).and_then(|der| {
        ehds_transport::PeerIdentity::from_certificate(
            ehds_transport::ListenerKind::Federation,
            der,
        )
        .ok()
    });
    let expected = ncp.certificate();
    match identity {
        Some(PeerIdentity::FederationNcp { country, ncp_id })
            if country == expected.country.as_str() && ncp_id == expected.common_name =>
        {
            Ok(())
        }
        _ => Err(GatewayError::PeerUnavailable(
            "the answering server's certificate is not the directory's NCP for that country".into(),
        )),
    }
}

async fn read_limited(response: reqwest::Response) -> Result<Bytes, GatewayError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_PEER_ANSWER_BYTES as u64)
    {
        return Err(GatewayError::PeerUnavailable(
            "the peer's answer is larger than this gateway accepts".into(),
        ));
    }
    let mut response = response;
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_PEER_ANSWER_BYTES {
                    return Err(GatewayError::PeerUnavailable(
                        "the peer's answer is larger than this gateway accepts".into(),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bytes::from(body)),
            Err(error) if error.is_timeout() => return Err(GatewayError::PeerTimeout),
            Err(_) => {
                return Err(GatewayError::PeerUnavailable(
                    "the peer's answer broke off".into(),
                ));
            }
        }
    }
}

/// The peer's OperationOutcome, if its error answer is one.
fn peer_outcome(body: &Bytes) -> Option<Bytes> {
    let resource = ReceivedResource::parse(body.clone()).ok()?;
    (resource.resource_type() == "OperationOutcome").then(|| body.clone())
}

/// A peer is untrusted input: its answer is checked before it is passed on.
/// A document answer whose exact bytes already validated with no error is
/// passed on without validating it again (SHA-256 of the bytes received now;
/// why that is sound: [`crate::answer_memo`]).
fn check_answer(
    state: &AppState,
    body: &Bytes,
    expected: ExpectedAnswer,
) -> Result<(), GatewayError> {
    let digest = (expected == ExpectedAnswer::Document)
        .then(|| crate::answer_memo::ValidatedAnswers::digest(body));
    if let Some(digest) = &digest
        && state.validated_answers.validated(digest)
    {
        state.metrics.count_peer_answer_validated_before();
        return Ok(());
    }
    let resource = ReceivedResource::parse(body.clone())
        .map_err(|_| GatewayError::PeerUnavailable("the peer's answer is not FHIR JSON".into()))?;
    match expected {
        ExpectedAnswer::SearchSet => {
            let is_searchset = resource.resource_type() == "Bundle"
                && resource.root().get("type").and_then(Node::as_str) == Some("searchset");
            if !is_searchset {
                return Err(GatewayError::PeerUnavailable(
                    "the peer's answer is not a searchset Bundle".into(),
                ));
            }
            let report = state.validator.validate(&resource, &[]);
            if !report.is_acceptable() {
                return Err(GatewayError::PeerInvalid(report));
            }
        }
        ExpectedAnswer::Dispense => {
            // The stored dispense, or (for a cancellation) an OperationOutcome.
            if !matches!(
                resource.resource_type(),
                "MedicationDispense" | "OperationOutcome"
            ) {
                return Err(GatewayError::PeerUnavailable(
                    "the peer's answer is not a MedicationDispense or an OperationOutcome".into(),
                ));
            }
            let report = state.validator.validate(&resource, &[]);
            if !report.is_acceptable() {
                return Err(GatewayError::PeerInvalid(report));
            }
        }
        ExpectedAnswer::Prescription => {
            if resource.resource_type() != "MedicationRequest" {
                return Err(GatewayError::PeerUnavailable(
                    "the peer's answer is not a MedicationRequest".into(),
                ));
            }
            let mpd = crate::prescriptions::MPD_MEDICATION_REQUEST;
            let profiles: &[&str] = if state.validator.knows_profile(mpd) {
                &[mpd]
            } else {
                &[]
            };
            let report = state.validator.validate(&resource, profiles);
            if !report.is_acceptable() {
                return Err(GatewayError::PeerInvalid(report));
            }
        }
        ExpectedAnswer::Document => {
            let profiles: Vec<&str> = state.document_profiles.iter().map(String::as_str).collect();
            let report = state
                .validator
                .validate_pushed_document(&resource, &profiles);
            if !report.is_acceptable() {
                return Err(GatewayError::PeerInvalid(report));
            }
            if let Some(digest) = digest {
                state.validated_answers.remember(digest);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Country of affiliation (NCP-A): the federation listener's API.
// ---------------------------------------------------------------------------

/// The federation listener's router.
pub fn federation_router(state: AppState) -> Router {
    Router::new()
        .route("/fhir/Patient", get(peer_patient_search))
        .route("/fhir/DocumentReference", get(peer_document_search))
        .route("/fhir/Bundle/{id}", get(peer_bundle_read))
        .route("/fhir/MedicationRequest", get(peer_prescription_search))
        .route("/fhir/MedicationRequest/{id}", get(peer_prescription_read))
        .route("/fhir/AuditEvent", axum::routing::post(peer_audit_report))
        .route(
            "/fhir/MedicationDispense",
            axum::routing::post(peer_dispense),
        )
        .route("/healthz", get(|| async { "ok" }))
        .fallback(crate::http::unknown_route)
        .layer(axum::middleware::from_fn(refuse_national_clients))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::http::observe,
        ))
        .with_state(state)
}

/// A national system of this country that calls the federation listener
/// (its certificate verified against the national CA, which the listener
/// admits for this only: `ServerTlsFiles::misdirected_clients`) gets a 403
/// on every request, whatever the route, saying where it belongs. Its
/// connection is on record as a Security Alert AuditEvent (reason
/// `misdirected_client`, the certificate's fingerprint), written by the
/// listener's refusal observer (`audit::refusal_observer`).
async fn refuse_national_clients(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let national = request
        .extensions()
        .get::<VerifiedPeer>()
        .is_some_and(|peer| matches!(peer.identity, PeerIdentity::NationalClient { .. }));
    if national {
        return GatewayError::Forbidden(
            "this is the federation API, for other countries' national contact points; \
             national systems call the national API"
                .into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// The calling NCP: its verified certificate must identify the NCP the
/// directory lists for its country, and that must not be this NCP.
fn calling_ncp<'f>(
    federation: &'f Federation,
    peer: Option<&VerifiedPeer>,
) -> Result<(&'f ehds_routing::Ncp, String), GatewayError> {
    let Some(peer) = peer else {
        return Err(GatewayError::Unauthenticated(
            "the federation API requires a federation client certificate".into(),
        ));
    };
    let PeerIdentity::FederationNcp { country, ncp_id } = &peer.identity else {
        return Err(GatewayError::Forbidden(
            "this certificate does not identify a national contact point".into(),
        ));
    };
    let ncp = federation
        .directory
        .peer_by_identity(country, ncp_id)
        .filter(|ncp| ncp.country().as_str() != federation.country)
        .ok_or_else(|| {
            GatewayError::Forbidden(
                "this certificate's NCP is not the directory's NCP for its country".into(),
            )
        })?;
    Ok((ncp, peer.fingerprint.to_hex()))
}

/// The steps every federation request takes before it is answered: the
/// calling NCP, the identifier (of this country), the assertion, the policy.
async fn admit(
    state: &AppState,
    federation: &Federation,
    peer: Option<&VerifiedPeer>,
    headers: &HeaderMap,
    patient: &TokenParam,
    operation: Operation,
    trail: &mut Trail,
) -> Result<ehds_access::PurposeOfUse, GatewayError> {
    trail.patient(patient);
    let (ncp, fingerprint) = calling_ncp(federation, peer)?;
    let peer_country = ncp.country().as_str().to_owned();
    trail.peer(&peer_country, ncp.id(), fingerprint, PeerRole::Requester);
    let routed = federation
        .directory
        .check_patient_identifier(&patient.system, &patient.value)
        .map_err(GatewayError::Identifier)?;
    if routed.country.code().as_str() != federation.country {
        return Err(GatewayError::ResourceNotFound(
            "a patient of another country".into(),
        ));
    }
    let token = bearer(headers)?;
    let assertion = verify_assertion(
        state,
        federation,
        token,
        &federation.country,
        &peer_country,
        &patient_ref(patient),
    )
    .await?;
    trail.professional(&assertion);
    authorise(federation, &assertion, operation)?;
    // The patient's own word last: an opt-out of this service towards the
    // asking country refuses, saying no more than that there is no consent.
    let service = crate::patient_rights::service_of(operation);
    let key = format!("{}|{}", patient.system, patient.value);
    if state
        .store
        .is_opted_out(&key, service, &peer_country)
        .await?
    {
        return Err(GatewayError::NoConsent);
    }
    Ok(assertion.purpose())
}

async fn peer_patient_search(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let federation = Arc::clone(federation_of(&state)?);
    let query = query.unwrap_or_default();
    let mut trail = Trail::new(
        &federation,
        AuditAction::Search,
        RestInteraction::SearchType,
        "Patient",
        EntityTarget::Query(query.clone()),
    );
    let search = match PatientSearch::parse(&query) {
        Ok(search) => search,
        Err(refusals) => return Err(trail.refuse(&state, GatewayError::Search(refusals)).await),
    };
    if let Err(error) = admit(
        &state,
        &federation,
        peer.as_deref(),
        &headers,
        &search.identifier,
        Operation::ReadPatientSummary,
        &mut trail,
    )
    .await
    {
        return Err(trail.refuse(&state, error).await);
    }
    let body = match patient_search_set(&state, &search).await {
        Ok(body) => body,
        Err(error) => return Err(trail.refuse(&state, error).await),
    };
    trail.succeed(&state).await?;
    Ok(fhir_response(StatusCode::OK, body))
}

/// The searchset of a Patient search: the Patient resource of the newest
/// stored document of this patient, exactly as its sender wrote it, when it
/// matches the optional demographics.
async fn patient_search_set(
    state: &AppState,
    search: &PatientSearch,
) -> Result<Vec<u8>, GatewayError> {
    let key = format!("{}|{}", search.identifier.system, search.identifier.value);
    let documents = state
        .store
        .documents_for_patient(&key, Some("document"))
        .await?;
    let mut found: Option<(String, Vec<u8>)> = None;
    if let Some(newest) = documents.first()
        && let Some(doc) = state.store.document(&newest.id).await?
        && let Ok(resource) = ReceivedResource::parse(Bytes::from(doc.content))
    {
        found = patient_entry(&resource, search);
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(br#"{"resourceType":"Bundle","type":"searchset","total":"#);
    match found {
        Some((full_url, patient)) => {
            out.extend_from_slice(br#"1,"entry":[{"fullUrl":"#);
            out.extend_from_slice(json_string(&full_url).as_bytes());
            out.extend_from_slice(br#","resource":"#);
            out.extend_from_slice(&patient);
            out.extend_from_slice(br#","search":{"mode":"match"}}]}"#);
        }
        None => out.extend_from_slice(b"0}"),
    }
    Ok(out)
}

/// The document's Patient entry with this identifier (fullUrl, exact bytes),
/// if its demographics match the search.
fn patient_entry(resource: &ReceivedResource, search: &PatientSearch) -> Option<(String, Vec<u8>)> {
    let entries = resource.root().get("entry")?.as_array()?;
    entries.iter().find_map(|entry| {
        let patient = entry.get("resource")?;
        if patient.get("resourceType")?.as_str()? != "Patient" {
            return None;
        }
        let has_identifier = patient.get("identifier")?.items().iter().any(|i| {
            i.get("system").and_then(Node::as_str) == Some(search.identifier.system.as_str())
                && i.get("value").and_then(Node::as_str) == Some(search.identifier.value.as_str())
        });
        if !has_identifier || !demographics_match(patient, search) {
            return None;
        }
        let full_url = entry.get("fullUrl")?.as_str()?.to_owned();
        let bytes = resource
            .bytes()
            .get(patient.span.start as usize..patient.span.end as usize)?
            .to_vec();
        Some((full_url, bytes))
    })
}

fn demographics_match(patient: &Node, search: &PatientSearch) -> bool {
    if let Some(gender) = search.gender
        && patient.get("gender").and_then(Node::as_str) != Some(gender.code())
    {
        return false;
    }
    if let Some(birthdate) = &search.birthdate {
        let wanted = birthdate.to_string();
        match patient.get("birthDate").and_then(Node::as_str) {
            Some(born) if born.starts_with(&wanted) || wanted.starts_with(born) => {}
            _ => return false,
        }
    }
    if let Some(name) = &search.name {
        let wanted = name.to_lowercase();
        let names = patient.get("name").map(Node::items).unwrap_or_default();
        let any = names.iter().any(|n| {
            let family = n.get("family").and_then(Node::as_str).into_iter();
            let given = n.get("given").map(Node::items).unwrap_or_default();
            family
                .chain(given.iter().filter_map(Node::as_str))
                .any(|part| part.to_lowercase().starts_with(&wanted))
        });
        if !any {
            return false;
        }
    }
    true
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

async fn peer_document_search(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let federation = Arc::clone(federation_of(&state)?);
    let query = query.unwrap_or_default();
    let mut trail = Trail::new(
        &federation,
        AuditAction::Search,
        RestInteraction::SearchType,
        "DocumentReference",
        EntityTarget::Query(query.clone()),
    );
    let search = match DocumentReferenceSearch::parse(&query) {
        Ok(search) => search,
        Err(refusals) => return Err(trail.refuse(&state, GatewayError::Search(refusals)).await),
    };
    // The prescription document list (eHDSI: LOINC 57833-6) is the
    // ePrescription service, asked for by its own permission.
    let wants_prescriptions = search
        .type_
        .as_ref()
        .is_some_and(|t| t.system == PRESCRIPTION_TYPE.0 && t.value == PRESCRIPTION_TYPE.1);
    let operation = if wants_prescriptions {
        Operation::ListPrescriptions
    } else {
        Operation::ReadPatientSummary
    };
    let purpose = match admit(
        &state,
        &federation,
        peer.as_deref(),
        &headers,
        &search.patient_identifier,
        operation,
        &mut trail,
    )
    .await
    {
        Ok(purpose) => purpose,
        Err(error) => return Err(trail.refuse(&state, error).await),
    };
    if wants_prescriptions {
        return match prescription_documents(&state, &federation, &search, purpose, &mut trail).await
        {
            Ok(body) => {
                trail.succeed(&state).await?;
                Ok(fhir_response(StatusCode::OK, body))
            }
            Err(error) => Err(trail.refuse(&state, error).await),
        };
    }
    let wants_summary = search
        .type_
        .as_ref()
        .is_none_or(|t| t.system == PATIENT_SUMMARY_TYPE.0 && t.value == PATIENT_SUMMARY_TYPE.1);
    let key = format!(
        "{}|{}",
        search.patient_identifier.system, search.patient_identifier.value
    );
    let documents = if wants_summary {
        match state
            .store
            .documents_for_patient(&key, Some("document"))
            .await
        {
            Ok(documents) => documents,
            Err(error) => return Err(trail.refuse(&state, error.into()).await),
        }
    } else {
        Vec::new()
    };
    // Listed as they may be released: a summary the patient restricted is
    // listed as its variant (its own id, identifier and size).
    let documents = match listed_as_released(&state, &federation, &key, documents, purpose).await {
        Ok((documents, lifted)) => {
            if lifted {
                trail.record.outcome_description =
                    Some(crate::release::LIFTED_FOR_EMERGENCY.to_owned());
            }
            documents
        }
        Err(error) => return Err(trail.refuse(&state, error).await),
    };
    let entries: Vec<serde_json::Value> = documents
        .iter()
        .map(|doc| {
            serde_json::json!({
                "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                "resource": {
                    "resourceType": "DocumentReference",
                    "id": doc.id,
                    "masterIdentifier": {
                        "system": doc.identifier.system,
                        "value": doc.identifier.value,
                    },
                    "status": "current",
                    "type": {"coding": [{
                        "system": PATIENT_SUMMARY_TYPE.0,
                        "code": PATIENT_SUMMARY_TYPE.1,
                        "display": "Patient summary Document",
                    }]},
                    "subject": {"identifier": {
                        "system": search.patient_identifier.system,
                        "value": search.patient_identifier.value,
                    }},
                    "date": doc.received_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                    "content": [{"attachment": {
                        "contentType": FHIR_JSON,
                        "url": format!("Bundle/{}.{}", federation.country, doc.id),
                        "size": doc.size,
                    }}],
                },
                "search": {"mode": "match"},
            })
        })
        .collect();
    let mut bundle = serde_json::json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
    });
    if !entries.is_empty()
        && let Some(object) = bundle.as_object_mut()
    {
        object.insert("entry".to_owned(), serde_json::Value::Array(entries));
    }
    let body = serde_json::to_vec(&bundle).unwrap_or_default();
    trail.succeed(&state).await?;
    Ok(fhir_response(StatusCode::OK, body))
}

/// The patient's dispensable prescriptions as a DocumentReference list
/// (the NCPeH ePrescription list: one DocumentReference per prescription,
/// type LOINC 57833-6, its `content.attachment.url` the
/// `MedicationRequest/<country>.<id>` to read it by); restricted ones are
/// absent.
async fn prescription_documents(
    state: &AppState,
    federation: &Federation,
    search: &DocumentReferenceSearch,
    purpose: ehds_access::PurposeOfUse,
    trail: &mut Trail,
) -> Result<Vec<u8>, GatewayError> {
    let patient = &search.patient_identifier;
    let key = format!("{}|{}", patient.system, patient.value);
    let mut prescriptions = state
        .store
        .prescriptions_for_patient(&key, &crate::prescriptions::store_statuses(&[]))
        .await?;
    let restrictions =
        crate::release::PrescriptionRestrictions::of(state, federation, &key, purpose).await?;
    prescriptions.retain(|p| p.status.is_dispensable() && !restrictions.withholds(&p.identifier));
    if restrictions.lifted_any() {
        trail.record.outcome_description = Some(crate::release::LIFTED_FOR_EMERGENCY.to_owned());
    }
    let entries: Vec<serde_json::Value> = prescriptions
        .iter()
        .map(|p| {
            serde_json::json!({
                "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                "resource": {
                    "resourceType": "DocumentReference",
                    "id": p.id,
                    "masterIdentifier": {"system": p.identifier.system, "value": p.identifier.value},
                    "status": "current",
                    "type": {"coding": [{
                        "system": PRESCRIPTION_TYPE.0,
                        "code": PRESCRIPTION_TYPE.1,
                        "display": "Prescription for medication",
                    }]},
                    "subject": {"identifier": {"system": patient.system, "value": patient.value}},
                    "date": p.received_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                    "content": [{"attachment": {
                        "contentType": FHIR_JSON,
                        "url": format!("MedicationRequest/{}.{}", federation.country, p.id),
                        "size": p.content.len(),
                    }}],
                },
                "search": {"mode": "match"},
            })
        })
        .collect();
    let mut bundle = serde_json::json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
    });
    if !entries.is_empty()
        && let Some(object) = bundle.as_object_mut()
    {
        object.insert("entry".to_owned(), serde_json::Value::Array(entries));
    }
    serde_json::to_vec(&bundle)
        .map_err(|e| GatewayError::ReleaseFailed(format!("prescription list: {e}")))
}

/// A prescription read by a pharmacy or doctor abroad
/// (`GET MedicationRequest/{id}`, the id the prescription document list
/// gave): the bytes as the prescriber sent them; reading it counts as the
/// asking organisation's retrieval (a dispense needs one). A prescription
/// of another patient, or one the patient restricted, is not found.
async fn peer_prescription_read(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let federation = Arc::clone(federation_of(&state)?);
    let mut trail = Trail::new(
        &federation,
        AuditAction::Read,
        RestInteraction::Read,
        "MedicationRequest",
        EntityTarget::Id(id.clone()),
    );
    if let Err(refusals) = BundleRead::parse(&id, "") {
        return Err(trail.refuse(&state, GatewayError::Search(refusals)).await);
    }
    let not_found = || GatewayError::ResourceNotFound(format!("MedicationRequest/{id}"));
    let prescription = match state.store.prescription(&id).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(trail.refuse(&state, not_found()).await),
        Err(error) => return Err(trail.refuse(&state, error.into()).await),
    };
    let Some((system, value)) = prescription.patient_identifier.split_once('|') else {
        return Err(trail.refuse(&state, not_found()).await);
    };
    let patient = TokenParam {
        system: system.to_owned(),
        value: value.to_owned(),
    };
    let purpose = match admit(
        &state,
        &federation,
        peer.as_deref(),
        &headers,
        &patient,
        Operation::ReadPrescription,
        &mut trail,
    )
    .await
    {
        Ok(purpose) => purpose,
        Err(GatewayError::Assertion(ehds_access::AssertionRefusal::PatientMismatch)) => {
            return Err(trail.refuse(&state, not_found()).await);
        }
        Err(error) => return Err(trail.refuse(&state, error).await),
    };
    let restrictions = match crate::release::PrescriptionRestrictions::of(
        &state,
        &federation,
        &prescription.patient_identifier,
        purpose,
    )
    .await
    {
        Ok(restrictions) => restrictions,
        Err(error) => return Err(trail.refuse(&state, error).await),
    };
    if restrictions.withholds(&prescription.identifier) {
        return Err(trail.refuse(&state, not_found()).await);
    }
    if restrictions.lifted_for(&prescription.identifier) {
        trail.record.outcome_description = Some(crate::release::LIFTED_FOR_EMERGENCY.to_owned());
    }
    let pharmacy = trail.requesting_organisation();
    if let Err(error) = state
        .store
        .record_retrieval(&prescription.id, &pharmacy, OffsetDateTime::now_utc())
        .await
    {
        return Err(trail.refuse(&state, error.into()).await);
    }
    trail.succeed(&state).await?;
    Ok(fhir_response(StatusCode::OK, prescription.content))
}

/// `documents` of the patient `key` as they may be released for `purpose`,
/// and whether an emergency lifted the patient's restrictions.
async fn listed_as_released(
    state: &AppState,
    federation: &Federation,
    key: &str,
    documents: Vec<ehds_store::DocumentSummary>,
    purpose: ehds_access::PurposeOfUse,
) -> Result<(Vec<ehds_store::DocumentSummary>, bool), GatewayError> {
    let restrictions = crate::release::summary_restrictions(state, key).await?;
    if restrictions.is_empty() {
        return Ok((documents, false));
    }
    let mut listed = Vec::with_capacity(documents.len());
    let mut lifted = false;
    for summary in documents {
        let Some(original) = state.store.document(&summary.id).await? else {
            continue;
        };
        let released =
            crate::release::summary_under(state, federation, original, &restrictions, purpose)
                .await?;
        lifted |= released.lifted;
        listed.push(ehds_store::DocumentSummary {
            size: u64::try_from(released.content.len()).unwrap_or(u64::MAX),
            sha256: <sha2::Sha256 as sha2::Digest>::digest(&released.content).into(),
            id: released.id,
            identifier: released.identifier,
            ..summary
        });
    }
    Ok((listed, lifted))
}

/// The patient's prescriptions for a pharmacy or doctor abroad, each with
/// the list metadata; listing records the asking organisation's retrieval
/// (a dispense needs one).
async fn peer_prescription_search(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let federation = Arc::clone(federation_of(&state)?);
    let query = query.unwrap_or_default();
    let mut trail = Trail::new(
        &federation,
        AuditAction::Search,
        RestInteraction::SearchType,
        "MedicationRequest",
        EntityTarget::Query(query.clone()),
    );
    let search = match MedicationRequestSearch::parse(&query) {
        Ok(search) => search,
        Err(refusals) => return Err(trail.refuse(&state, GatewayError::Search(refusals)).await),
    };
    let purpose = match admit(
        &state,
        &federation,
        peer.as_deref(),
        &headers,
        &search.patient_identifier,
        Operation::ListPrescriptions,
        &mut trail,
    )
    .await
    {
        Ok(purpose) => purpose,
        Err(error) => return Err(trail.refuse(&state, error).await),
    };
    let key = format!(
        "{}|{}",
        search.patient_identifier.system, search.patient_identifier.value
    );
    let statuses = crate::prescriptions::store_statuses(&search.status);
    let mut prescriptions = if statuses.is_empty() {
        Vec::new()
    } else {
        match state.store.prescriptions_for_patient(&key, &statuses).await {
            Ok(found) => found,
            Err(error) => return Err(trail.refuse(&state, error.into()).await),
        }
    };
    // Prescriptions the patient restricted are left out, as if absent.
    match crate::release::PrescriptionRestrictions::of(&state, &federation, &key, purpose).await {
        Ok(restrictions) => {
            prescriptions.retain(|p| !restrictions.withholds(&p.identifier));
            if restrictions.lifted_any() {
                trail.record.outcome_description =
                    Some(crate::release::LIFTED_FOR_EMERGENCY.to_owned());
            }
        }
        Err(error) => return Err(trail.refuse(&state, error).await),
    }
    // Who retrieved them: the asking organisation, in its country.
    let pharmacy = trail.requesting_organisation();
    let now = OffsetDateTime::now_utc();
    for prescription in &prescriptions {
        if let Err(error) = state
            .store
            .record_retrieval(&prescription.id, &pharmacy, now)
            .await
        {
            return Err(trail.refuse(&state, error.into()).await);
        }
    }
    let mut body = Vec::with_capacity(4096);
    body.extend_from_slice(br#"{"resourceType":"Bundle","type":"searchset","total":"#);
    body.extend_from_slice(prescriptions.len().to_string().as_bytes());
    if !prescriptions.is_empty() {
        body.extend_from_slice(br#","entry":["#);
        for (i, prescription) in prescriptions.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&crate::prescriptions::list_entry(prescription));
        }
        body.push(b']');
    }
    body.push(b'}');
    trail.succeed(&state).await?;
    Ok(fhir_response(StatusCode::OK, body))
}

/// A dispense from a pharmacy abroad, applied to the prescription in one
/// transaction (the store's row lock): exactly once, whatever the retries
/// and races.
async fn peer_dispense(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    let federation = Arc::clone(federation_of(&state)?);
    let mut trail = Trail::new(
        &federation,
        AuditAction::Create,
        RestInteraction::Create,
        "MedicationDispense",
        EntityTarget::Id(String::new()),
    );
    let resource = match crate::http::receive_resource(&headers, body, state.limits).await {
        Ok(resource) if resource.resource_type() == "MedicationDispense" => resource,
        Ok(resource) => {
            let error = GatewayError::WrongResourceType {
                expected: "MedicationDispense",
                found: resource.resource_type().to_owned(),
            };
            return Err(trail.refuse(&state, error).await);
        }
        Err(error) => return Err(trail.refuse(&state, error).await),
    };
    const MPD_DISPENSE: &str =
        "http://hl7.eu/fhir/mpd/StructureDefinition/MedicationDispense-eu-mpd";
    let profiles: &[&str] = if state.validator.knows_profile(MPD_DISPENSE) {
        &[MPD_DISPENSE]
    } else {
        &[]
    };
    let report = state.validator.validate(&resource, profiles);
    if !report.is_acceptable() {
        return Err(trail.refuse(&state, GatewayError::Invalid(report)).await);
    }
    let facts = match crate::prescriptions::read_dispense(resource.root()) {
        Ok(facts) => facts,
        Err(error) => return Err(trail.refuse(&state, error).await),
    };
    trail.record.entity = Some(AuditedEntity {
        resource_type: "MedicationDispense".to_owned(),
        target: EntityTarget::Id(facts.identifier.1.clone()),
    });
    let patient = TokenParam {
        system: facts.patient.0.clone(),
        value: facts.patient.1.clone(),
    };
    let purpose = match admit(
        &state,
        &federation,
        peer.as_deref(),
        &headers,
        &patient,
        Operation::Dispense,
        &mut trail,
    )
    .await
    {
        Ok(purpose) => purpose,
        Err(error) => return Err(trail.refuse(&state, error).await),
    };
    let key = format!("{}|{}", patient.system, patient.value);
    // A prescription the patient restricted does not exist abroad.
    let restrictions = match crate::release::PrescriptionRestrictions::of(
        &state,
        &federation,
        &key,
        purpose,
    )
    .await
    {
        Ok(restrictions) => restrictions,
        Err(error) => return Err(trail.refuse(&state, error).await),
    };
    for (line, (system, value)) in facts.prescriptions.iter().enumerate() {
        let identifier = ehds_store::DocumentIdentifier {
            system: system.clone(),
            value: value.clone(),
        };
        if restrictions.withholds(&identifier) {
            let error = GatewayError::DispenseRefused {
                status: 404,
                message: "no such prescription for this patient".into(),
                at: Some(format!(
                    "MedicationDispense.authorizingPrescription[{line}]"
                )),
            };
            return Err(trail.refuse(&state, error).await);
        }
        if restrictions.lifted_for(&identifier) {
            trail.record.outcome_description =
                Some(crate::release::LIFTED_FOR_EMERGENCY.to_owned());
        }
    }
    let pharmacy = trail.requesting_organisation();
    match crate::prescriptions::dispense_at_home(&state, &facts, resource.bytes(), &pharmacy, &key)
        .await
    {
        Ok(response) => {
            trail.succeed(&state).await?;
            Ok(response)
        }
        Err(error) => Err(trail.refuse(&state, error).await),
    }
}

async fn peer_bundle_read(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let federation = Arc::clone(federation_of(&state)?);
    let mut trail = Trail::new(
        &federation,
        AuditAction::Read,
        RestInteraction::Read,
        "Bundle",
        EntityTarget::Id(id.clone()),
    );
    if let Err(refusals) = BundleRead::parse(&id, "") {
        return Err(trail.refuse(&state, GatewayError::Search(refusals)).await);
    }
    // Found before the assertion is checked (the assertion must name the
    // document's patient), released only after. The id may be a released
    // variant's: what is released is decided from its original, against
    // the restrictions in force now.
    let document = match original_document(&state, &id).await {
        Ok(Some(doc)) => doc,
        Ok(None) => {
            let error = GatewayError::ResourceNotFound(format!("Bundle/{id}"));
            return Err(trail.refuse(&state, error).await);
        }
        Err(error) => return Err(trail.refuse(&state, error).await),
    };
    let Some(patient) = document
        .patient_identifier
        .as_deref()
        .and_then(|p| p.split_once('|'))
        .map(|(system, value)| TokenParam {
            system: system.to_owned(),
            value: value.to_owned(),
        })
    else {
        let error = GatewayError::ResourceNotFound(format!("Bundle/{id}"));
        return Err(trail.refuse(&state, error).await);
    };
    let purpose = match admit(
        &state,
        &federation,
        peer.as_deref(),
        &headers,
        &patient,
        Operation::ReadPatientSummary,
        &mut trail,
    )
    .await
    {
        Ok(purpose) => purpose,
        Err(error) => {
            // A document of another patient is "not found" to this caller.
            let error = match error {
                GatewayError::Assertion(ehds_access::AssertionRefusal::PatientMismatch) => {
                    GatewayError::ResourceNotFound(format!("Bundle/{id}"))
                }
                other => other,
            };
            return Err(trail.refuse(&state, error).await);
        }
    };
    let released =
        match crate::release::summary_for_release(&state, &federation, document, purpose).await {
            Ok(released) => released,
            Err(error) => return Err(trail.refuse(&state, error).await),
        };
    if released.lifted {
        trail.record.outcome_description = Some(crate::release::LIFTED_FOR_EMERGENCY.to_owned());
    }
    trail.succeed(&state).await?;
    Ok(fhir_response(StatusCode::OK, released.content))
}

/// The stored document `id`, or the original of the released variant `id`.
async fn original_document(
    state: &AppState,
    id: &str,
) -> Result<Option<ehds_store::StoredDocument>, GatewayError> {
    if let Some(document) = state.store.document(id).await? {
        return Ok(Some(document));
    }
    match state.store.released_document(id).await? {
        Some(variant) => Ok(state.store.document(&variant.original_id).await?),
        None => Ok(None),
    }
}

/// Refusals of a search as OperationOutcome issues located at the parameter.
pub fn search_issues(refusals: &[SearchRefusal]) -> Vec<ehds_fhir::outcome::Issue> {
    refusals
        .iter()
        .map(|r| {
            ehds_fhir::outcome::Issue::error(ehds_fhir::outcome::IssueType::Invalid, r.message())
                .at(r.location())
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// One validator for the tests of this module (loading the packages
    /// takes seconds).
    fn validator() -> Arc<ehds_validation::Validator> {
        static VALIDATOR: std::sync::OnceLock<Arc<ehds_validation::Validator>> =
            std::sync::OnceLock::new();
        Arc::clone(VALIDATOR.get_or_init(|| {
            let registry = ehds_profiles::Registry::load_root(
                &ehds_test_support::repo_root().join("profiles"),
            )
            .unwrap();
            Arc::new(ehds_validation::Validator::new(&registry))
        }))
    }

    async fn state(dir: &ehds_test_support::ScratchDir, memo_entries: usize) -> AppState {
        let store = Store::open(&ehds_store::StoreConfig::Sqlite {
            path: dir.path().join("store.db"),
        })
        .await
        .unwrap();
        AppState {
            store,
            validator: validator(),
            document_profiles: vec![crate::config::IPS_BUNDLE_PROFILE.to_owned()].into(),
            validated_answers: Arc::new(crate::answer_memo::ValidatedAnswers::new(memo_entries)),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            limits: crate::http::Limits {
                max_body_bytes: 1 << 20,
                body_timeout: Duration::from_secs(5),
            },
            country: Some("BE".into()),
            federation: None,
        }
    }

    fn validated_before(state: &AppState) -> u64 {
        let text = state.metrics.render(0, None);
        let line = text
            .lines()
            .find(|l| l.starts_with("ehds_peer_answers_validated_before_total "))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    fn ips_example() -> String {
        std::fs::read_to_string(
            ehds_test_support::conformance_dir()
                .join("examples/ips/Bundle-IPS-examples-Bundle-01.json"),
        )
        .unwrap()
    }

    /// "A peer is untrusted input", with the memo: each distinct byte string
    /// is validated; only bytes that validated with no error are passed on
    /// again without validation, and changed bytes are validated anew.
    #[tokio::test]
    async fn each_distinct_document_answer_is_validated_and_only_valid_ones_are_remembered() {
        let dir = ehds_test_support::ScratchDir::new("answer-memo");
        let state = state(&dir, 16).await;
        let valid = Bytes::from(ips_example());

        check_answer(&state, &valid, ExpectedAnswer::Document).unwrap();
        assert_eq!(validated_before(&state), 0, "first sight: validated");
        check_answer(&state, &valid, ExpectedAnswer::Document).unwrap();
        assert_eq!(validated_before(&state), 1, "same bytes: remembered");

        // One byte changed (a document that is no longer a document Bundle:
        // bdl-7/bdl-9 rules and the IPS profile's fixed type) is validated
        // and refused, every time.
        let changed = ips_example().replacen(r#""type":"document""#, r#""type":"collection""#, 1);
        assert_ne!(changed, ips_example(), "the example's Bundle.type moved");
        let changed = Bytes::from(changed);
        for _ in 0..2 {
            match check_answer(&state, &changed, ExpectedAnswer::Document) {
                Err(GatewayError::PeerInvalid(report)) => assert!(!report.is_acceptable()),
                other => panic!("a changed answer passed: {other:?}"),
            }
        }
        assert_eq!(validated_before(&state), 1);

        // Other bytes that are valid too (trailing whitespace) are validated
        // once, then remembered beside the first.
        let spaced = Bytes::from(format!("{}\n ", ips_example()));
        check_answer(&state, &spaced, ExpectedAnswer::Document).unwrap();
        assert_eq!(validated_before(&state), 1);
        check_answer(&state, &spaced, ExpectedAnswer::Document).unwrap();
        assert_eq!(validated_before(&state), 2);
        assert_eq!(state.validated_answers.len(), 2);
    }

    #[tokio::test]
    async fn a_memo_of_size_zero_validates_every_answer() {
        let dir = ehds_test_support::ScratchDir::new("answer-memo-off");
        let state = state(&dir, 0).await;
        let valid = Bytes::from(ips_example());
        for _ in 0..2 {
            check_answer(&state, &valid, ExpectedAnswer::Document).unwrap();
        }
        assert_eq!(validated_before(&state), 0);
    }

    /// The memo's soundness rests on validation not reading the clock
    /// (`crate::answer_memo`): no shipped package or invariant correction
    /// calls FHIRPath `now()`, `today()` or `timeOfDay()`.
    #[test]
    fn shipped_invariants_do_not_read_the_clock() {
        let profiles = ehds_test_support::repo_root().join("profiles");
        let mut files = ehds_test_support::files_with_extension(&profiles, "json");
        files.extend(ehds_test_support::files_with_extension(&profiles, "toml"));
        assert!(files.len() > 100, "the packages were not found");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for call in ["now()", "today()", "timeOfDay()"] {
                assert!(
                    !text.contains(call),
                    "{} calls {call}: answers validated once may not stay valid; \
                     see crate::answer_memo",
                    file.display()
                );
            }
        }
    }
}
