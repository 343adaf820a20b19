//! Sending one request to the patient's country's NCP ([`Relay`]) and
//! checking its answer ([`check_answer`]): what every relay endpoint of
//! `super` does, once (the steps are listed in `super`'s documentation).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use ehds_fhir::audit_event::{EntityTarget, PeerRole};
use ehds_fhir::{Node, ReceivedResource};
use ehds_routing::Ncp;
use ehds_routing::search::{SearchRefusal, TokenParam};
use ehds_transport::{NationalClientKind, PeerFailure};

use crate::audit::Trail;
use crate::edge::extract::NationalCaller;
use crate::edge::respond::{FHIR_JSON, fhir_json, pdf_original};
use crate::edge::state::PeerNcpTarget;
use crate::edge::{AppState, CrossBorder};
use crate::error::GatewayError;
use crate::services::{PATIENT_SUMMARY, ServiceRegistry};

/// Largest answer accepted from a peer (a patient summary with embedded
/// attachments stays far below).
const MAX_PEER_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// The kinds of national system that ask for a visiting patient's data.
const ASKING_SYSTEMS: &[NationalClientKind] = &[
    NationalClientKind::DoctorSystem,
    NationalClientKind::Pharmacy,
];

/// What a peer's answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpectedAnswer {
    /// A `searchset` Bundle.
    SearchSet,
    /// A document Bundle of a document service, meeting that service's
    /// profiles (`crate::services`).
    Document,
    /// A valid MedicationDispense (the one the pharmacy sent, as stored).
    Dispense,
    /// A valid MedicationRequest meeting the MPD profile when it is loaded
    /// (a prescription as its prescriber sent it).
    Prescription,
    /// A PDF original (`application/pdf`), checked as pushed ones are
    /// (`ehds_validation::pdf`), answered as the caller's `Accept` asks.
    PdfOriginal,
}

/// One request relayed to the patient's country.
#[derive(Debug)]
pub(crate) struct Relay<'a> {
    /// The patient it is about (the assertion must name them).
    pub(crate) patient: TokenParam,
    /// The NCP of the patient's country.
    pub(crate) ncp: &'a Ncp,
    /// The path (and canonical query) sent to that NCP.
    pub(crate) path: String,
    /// The body of a create.
    pub(crate) body: Option<Bytes>,
    /// What its answer must be.
    pub(crate) expected: ExpectedAnswer,
    /// The service it is of (a name of the service registry), when known
    /// before the answer; a document read learns it from the document
    /// answered. Recorded in this country's audit record, as the patient's
    /// country records it in its own.
    pub(crate) service: Option<String>,
}

/// The NCP answering for `patient` (by the directory's identifier rules).
pub(crate) fn ncp_of<'f>(
    federation: &'f CrossBorder,
    patient: &TokenParam,
) -> Result<&'f Ncp, GatewayError> {
    federation
        .directory
        .check_patient_identifier(&patient.system, &patient.value)
        .map(|routed| routed.ncp)
        .map_err(GatewayError::Identifier)
}

/// An id naming a document or prescription held by another country than
/// this gateway's: `<country>.<id at that country>` (the form the
/// DocumentReference lists give in `content.attachment.url`), as
/// `(country, id there)`.
pub(crate) fn held_abroad<'i>(state: &AppState, id: &'i str) -> Option<(&'i str, &'i str)> {
    let (country, rest) = id.split_once('.')?;
    (ehds_identifiers::CountryCode::parse(country).is_some()
        && !rest.is_empty()
        && state.country.map(|own| own.as_str()) != Some(country))
    .then_some((country, rest))
}

fn peer_error(failure: PeerFailure, country: &str) -> GatewayError {
    match failure {
        PeerFailure::Timeout => GatewayError::PeerTimeout,
        PeerFailure::Unreachable => {
            GatewayError::PeerUnavailable(format!("the NCP of {country} could not be reached"))
        }
        other => GatewayError::PeerUnavailable(other.message().to_owned()),
    }
}

impl Relay<'_> {
    /// Sends the request for `caller`, with the assertion of `headers`,
    /// recording on `trail`; the peer's answer, checked, as the response.
    pub(crate) async fn send(
        self,
        state: &AppState,
        caller: &NationalCaller,
        headers: &HeaderMap,
        trail: &Trail,
    ) -> Result<Response, GatewayError> {
        caller.require(ASKING_SYSTEMS, "ask for a visiting patient's data")?;
        let federation = state.cross_border()?;
        let target = self.ncp.country().as_str();
        trail.target(match self.path.split_once('?') {
            Some((_, query)) => EntityTarget::Query(query.to_owned()),
            None if self.body.is_some() => EntityTarget::Query(String::new()),
            None => EntityTarget::Id(self.path.rsplit('/').next().unwrap_or_default().to_owned()),
        });
        trail.patient(&self.patient);
        if let Some(service) = &self.service {
            trail.service(service);
        }
        trail.peer(target, self.ncp.id(), String::new(), PeerRole::Responder);
        if target == federation.country.as_str() {
            return Err(GatewayError::Forbidden(
                "this patient is of this gateway's own country: ask the national infrastructure, not the federation"
                    .into(),
            ));
        }
        trail.report_refusals_to(federation, self.ncp);
        let token = crate::assertion::bearer(headers)?;
        // The assertion is checked here too: a forged, expired or replayed
        // one never leaves the country.
        let assertion = crate::assertion::verify(
            state,
            federation,
            token,
            target,
            federation.country.as_str(),
            &ehds_access::PatientRef::new(&self.patient.system, &self.patient.value),
        )
        .await?;
        trail.professional(&assertion);
        // Before the patient's identifier and the assertion leave: the
        // peer's server certificate must be the directory's NCP and not
        // revoked by OCSP (a certificate revoked only at its OCSP responder
        // passes the handshake's CRL check).
        let peer = PeerNcpTarget::of(self.ncp);
        federation
            .client
            .preflight(peer.expected())
            .await
            .map_err(|f| peer_error(f, target))?;
        let url = self.ncp.federation_url_for(&self.path);
        let request = match &self.body {
            Some(body) => federation
                .client
                .request(reqwest::Method::POST, &url)
                .header(header::CONTENT_TYPE, FHIR_JSON)
                .body(body.clone()),
            None => federation.client.request(reqwest::Method::GET, &url),
        };
        let accept = if self.expected == ExpectedAnswer::PdfOriginal {
            ehds_store::PDF
        } else {
            FHIR_JSON
        };
        let mut request = request
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::ACCEPT, accept);
        // The exchange's correlation id goes with it: both ends' audit
        // records carry it.
        if let Some(correlation_id) = crate::edge::request_id::current_correlation_id() {
            request = request.header(crate::edge::request_id::CORRELATION_HEADER, correlation_id);
        }
        // The answering server must be the NCP the directory names for the
        // country (subject C and CN), not merely any federation certificate
        // valid for the host name, and not revoked (OCSP).
        let answer = federation
            .client
            .send(request, peer.expected(), MAX_PEER_ANSWER_BYTES)
            .await
            .map_err(|f| peer_error(f, target))?;
        let accepted = answer.status == 200 || (self.body.is_some() && answer.status == 201);
        if !accepted {
            return Err(GatewayError::PeerAnswer {
                status: answer.status,
                outcome: peer_outcome(&answer.body),
            });
        }
        if let Some(service) = check_answer(state, &answer.body, self.expected).await? {
            trail.service(&service);
        }
        if self.expected == ExpectedAnswer::PdfOriginal {
            let id = self.path.rsplit('/').next().unwrap_or_default();
            return Ok(pdf_original(
                headers.get(header::ACCEPT),
                &format!("{target}.{id}"),
                answer.body.to_vec(),
            ));
        }
        let mut response = fhir_json(
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
            answer.body,
        );
        if let Some(value) = answer.headers.get("x-prescription-state")
            && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
        {
            response.headers_mut().insert("x-prescription-state", value);
        }
        Ok(response)
    }
}

/// A search of the national API that is relayed, as it is, to the country
/// of the patient it names.
pub(crate) trait RelayedSearch: Sized {
    fn parse(query: &str) -> Result<Self, Vec<SearchRefusal>>;
    /// The patient the search names (its country answers).
    fn patient(&self) -> &TokenParam;
    /// The path and query relayed to that country's NCP.
    fn relay_path(&self) -> String;
    /// The service searched (a name of `services`); `None` for a search
    /// of no one service (patient identification).
    fn service(&self, services: &ServiceRegistry) -> Option<String>;
}

/// `RelayedSearch` for a search type of `ehds_routing::search`: the field
/// naming the patient.
macro_rules! relayed_search {
    ($search:ty, $patient:ident, $service:expr) => {
        impl RelayedSearch for $search {
            fn parse(query: &str) -> Result<Self, Vec<SearchRefusal>> {
                <$search>::parse(query)
            }
            fn patient(&self) -> &TokenParam {
                &self.$patient
            }
            fn relay_path(&self) -> String {
                <$search>::relay_path(self)
            }
            fn service(&self, services: &ServiceRegistry) -> Option<String> {
                let service: fn(&$search, &ServiceRegistry) -> Option<String> = $service;
                service(self, services)
            }
        }
    };
}

relayed_search!(ehds_routing::search::PatientSearch, identifier, |_, _| None);
relayed_search!(
    ehds_routing::search::DocumentReferenceSearch,
    patient_identifier,
    // As the patient's country reads it: the asked type names the service,
    // no type the patient summary (federation::document_search).
    |search, services| match &search.type_ {
        None => Some(PATIENT_SUMMARY.to_owned()),
        Some(t) => services
            .for_type(&t.system, &t.value)
            .map(|s| s.name.clone()),
    }
);
relayed_search!(
    ehds_routing::search::MedicationRequestSearch,
    patient_identifier,
    |_, services| Some(services.eprescription_name().to_owned())
);

/// Parses a national search (a malformed one is refused before anything
/// crosses the border) and relays it to the patient's country.
pub(crate) async fn relay_search<S: RelayedSearch>(
    state: &AppState,
    caller: &NationalCaller,
    query: Option<&str>,
    headers: &HeaderMap,
    trail: &Trail,
) -> Result<Response, GatewayError> {
    let search = S::parse(query.unwrap_or_default()).map_err(GatewayError::Search)?;
    let federation = state.cross_border()?;
    let ncp = ncp_of(federation, search.patient())?;
    Relay {
        patient: search.patient().clone(),
        ncp,
        path: search.relay_path(),
        body: None,
        expected: ExpectedAnswer::SearchSet,
        service: search.service(&state.services),
    }
    .send(state, caller, headers, trail)
    .await
}

/// A read of `<resource_type>/<id>` held by `country`, relayed there for
/// the patient the assertion names.
pub(crate) async fn relay_read(
    state: &AppState,
    caller: &NationalCaller,
    headers: &HeaderMap,
    trail: &Trail,
    (country, remote_id): (&str, &str),
    resource_type: &str,
    expected: ExpectedAnswer,
) -> Result<Response, GatewayError> {
    let read =
        ehds_routing::search::BundleRead::parse(remote_id, "").map_err(GatewayError::Search)?;
    // The assertion names the patient; its signature is checked against
    // that patient before anything is sent.
    let patient = crate::assertion::claimed_patient(crate::assertion::bearer(headers)?)?;
    let federation = state.cross_border()?;
    let ncp = federation
        .directory
        .ncp_for_country(country)
        .ok_or_else(|| {
            GatewayError::ResourceNotFound(format!("{resource_type}/{country}.{remote_id}"))
        })?;
    Relay {
        patient: TokenParam {
            system: patient.system,
            value: patient.value,
        },
        ncp,
        path: format!("{resource_type}/{}", read.id),
        body: None,
        expected,
        // A prescription is of the ePrescription service; a document's
        // service is read from the document answered (check_answer).
        service: (expected == ExpectedAnswer::Prescription)
            .then(|| state.services.eprescription_name().to_owned()),
    }
    .send(state, caller, headers, trail)
    .await
}

/// The peer's OperationOutcome, if its error answer is one.
fn peer_outcome(body: &Bytes) -> Option<Bytes> {
    let resource = ReceivedResource::parse(body.clone()).ok()?;
    (resource.resource_type() == "OperationOutcome").then(|| body.clone())
}

/// A peer is untrusted input: its answer is checked before it is passed on.
/// For a document, the service it is of (its Composition's type).
/// A document answer whose exact bytes already validated with no error is
/// passed on without validating it again (SHA-256 of the bytes received now;
/// why that is sound: [`crate::answer_memo`]).
pub(crate) async fn check_answer(
    state: &AppState,
    body: &Bytes,
    expected: ExpectedAnswer,
) -> Result<Option<String>, GatewayError> {
    let digest = (expected == ExpectedAnswer::Document)
        .then(|| crate::answer_memo::ValidatedAnswers::digest(body));
    if let Some(digest) = &digest
        && let Some(service) = state.validated_answers.service_of(digest)
    {
        state.metrics.count_peer_answer_validated_before();
        return Ok(Some(service.to_string()));
    }
    if expected == ExpectedAnswer::PdfOriginal {
        return match ehds_validation::pdf::check_pdf(
            body,
            ehds_validation::pdf::MAX_PDF_ORIGINAL_BYTES,
            "Binary",
        ) {
            ehds_validation::pdf::PdfCheck::Accepted => Ok(None),
            ehds_validation::pdf::PdfCheck::TooLarge { .. } => Err(GatewayError::PeerUnavailable(
                "the peer's PDF original is larger than this gateway accepts".into(),
            )),
            ehds_validation::pdf::PdfCheck::Refused(report) => {
                Err(GatewayError::PeerInvalid(report))
            }
        };
    }
    let resource = ReceivedResource::parse(body.clone())
        .map_err(|_| GatewayError::PeerUnavailable("the peer's answer is not FHIR JSON".into()))?;
    let mut service_answered = None;
    let report = match expected {
        ExpectedAnswer::SearchSet => {
            let is_searchset = resource.resource_type() == "Bundle"
                && resource.root().get("type").and_then(Node::as_str) == Some("searchset");
            if !is_searchset {
                return Err(GatewayError::PeerUnavailable(
                    "the peer's answer is not a searchset Bundle".into(),
                ));
            }
            state.validator.validate(&resource, &[]).await
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
            state.validator.validate(&resource, &[]).await
        }
        ExpectedAnswer::Prescription => {
            if resource.resource_type() != "MedicationRequest" {
                return Err(GatewayError::PeerUnavailable(
                    "the peer's answer is not a MedicationRequest".into(),
                ));
            }
            let mpd = crate::eprescription::MPD_MEDICATION_REQUEST;
            let profiles: &[&str] = if state.validator.knows_profile(mpd) {
                &[mpd]
            } else {
                &[]
            };
            state.validator.validate(&resource, profiles).await
        }
        // Checked on its bytes above: not JSON.
        ExpectedAnswer::PdfOriginal => ehds_validation::ValidationReport::default(),
        ExpectedAnswer::Document => {
            // The document's type (its Composition's) names its service,
            // whose profiles it must meet here as at the patient's country.
            let Some((service, _)) = state.services.of_document(resource.root()) else {
                return Err(GatewayError::PeerUnavailable(
                    "the peer's answer is not a document of a service this gateway carries".into(),
                ));
            };
            service_answered = Some(service.name.clone());
            state
                .validator
                .validate_pushed_document(&resource, &service.profiles())
                .await
        }
    };
    if !report.is_acceptable() {
        return Err(GatewayError::PeerInvalid(report));
    }
    if let Some(digest) = digest {
        state
            .validated_answers
            .remember_document(digest, service_answered.as_deref().unwrap_or_default());
    }
    Ok(service_answered)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use ehds_store::Store;

    /// One validator for the tests of this module (the shipped packages'
    /// validator compiled at build time).
    fn validator() -> Arc<ehds_validation::Validator> {
        static VALIDATOR: std::sync::OnceLock<Arc<ehds_validation::Validator>> =
            std::sync::OnceLock::new();
        Arc::clone(VALIDATOR.get_or_init(|| {
            Arc::new(
                ehds_shipped_validator::validator(ehds_validation::ValidationOptions::default())
                    .unwrap(),
            )
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
            validator: crate::edge::Validation::new(validator(), 2),
            services: Arc::new(crate::services::ServiceRegistry::shipped().unwrap()),
            unknown_extensions: Arc::default(),
            validated_answers: Arc::new(crate::answer_memo::ValidatedAnswers::new(memo_entries)),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            operations: Arc::default(),
            limits: crate::edge::Limits {
                max_body_bytes: 1 << 20,
                body_timeout: Duration::from_secs(5),
            },
            memory_budget: Arc::new(crate::edge::MemoryBudget::new(64 << 20)),
            country: ehds_identifiers::CountryCode::parse("BE"),
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

        check_answer(&state, &valid, ExpectedAnswer::Document)
            .await
            .unwrap();
        assert_eq!(validated_before(&state), 0, "first sight: validated");
        check_answer(&state, &valid, ExpectedAnswer::Document)
            .await
            .unwrap();
        assert_eq!(validated_before(&state), 1, "same bytes: remembered");

        // One byte changed (a document that is no longer a document Bundle:
        // bdl-7/bdl-9 rules and the IPS profile's fixed type) is validated
        // and refused, every time.
        let changed = ips_example().replacen(r#""type":"document""#, r#""type":"collection""#, 1);
        assert_ne!(changed, ips_example(), "the example's Bundle.type moved");
        let changed = Bytes::from(changed);
        for _ in 0..2 {
            match check_answer(&state, &changed, ExpectedAnswer::Document).await {
                Err(GatewayError::PeerInvalid(report)) => assert!(!report.is_acceptable()),
                other => panic!("a changed answer passed: {other:?}"),
            }
        }
        assert_eq!(validated_before(&state), 1);

        // Other bytes that are valid too (trailing whitespace) are validated
        // once, then remembered beside the first.
        let spaced = Bytes::from(format!("{}\n ", ips_example()));
        check_answer(&state, &spaced, ExpectedAnswer::Document)
            .await
            .unwrap();
        assert_eq!(validated_before(&state), 1);
        check_answer(&state, &spaced, ExpectedAnswer::Document)
            .await
            .unwrap();
        assert_eq!(validated_before(&state), 2);
        assert_eq!(state.validated_answers.len(), 2);
    }

    #[tokio::test]
    async fn a_memo_of_size_zero_validates_every_answer() {
        let dir = ehds_test_support::ScratchDir::new("answer-memo-off");
        let state = state(&dir, 0).await;
        let valid = Bytes::from(ips_example());
        for _ in 0..2 {
            check_answer(&state, &valid, ExpectedAnswer::Document)
                .await
                .unwrap();
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
