//! The client of one national FHIR server (FHIR R4 RESTful API, http.html):
//! the searches and reads the patient's country makes on behalf of a
//! cross-border request, each answer parsed losslessly and checked to be
//! what was asked for and about the patient asked about. Every call goes
//! through the concurrency limit and the circuit breaker; the whole answer
//! of a cross-border request is bounded by [`NationalFhir::within_budget`].

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use ehds_fhir::{Node, ReceivedResource};
use ehds_transport::{ClientTimeouts, IdentityFiles, TlsIdentity, TrustFiles, TrustStore};
use tokio::sync::Semaphore;

use ehds_identifiers::PatientIdentifier;

use crate::about::{identifiers, is_of, matches, token};
use crate::breaker::{Breaker, BreakerState};
use crate::oauth::OAuthClient;
use crate::{NationalError, NationalServer, Retrieval};

/// How many search results one call asks for (`_count`): a patient's
/// documents of one service fit in one page; more are not listed.
pub const PAGE_SIZE: &str = "100";

/// A national FHIR server, ready to be asked.
#[derive(Debug)]
pub struct NationalFhir {
    base: url::Url,
    client: reqwest::Client,
    /// OAuth 2.0 client credentials, when configured: every request carries
    /// its access token ([`NationalFhir::dispatch`]).
    oauth: Option<OAuthClient>,
    permits: Semaphore,
    breaker: Breaker,
    budget: Duration,
    chained_search: bool,
    retrieval: Retrieval,
}

/// A document the national server lists for the patient
/// (`DocumentReference`), as the gateway lists it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDocument {
    /// The id of the document on the national server: `Bundle/{id}`, or
    /// [`SUMMARY_PREFIX`]`{patient id}` for a summary made on demand.
    pub id: String,
    /// `DocumentReference.masterIdentifier` (system, value), if given.
    pub identifier: Option<(String, String)>,
    /// `DocumentReference.type.coding` (system, code) pairs.
    pub types: Vec<(String, String)>,
    /// `DocumentReference.date`, as written.
    pub date: Option<String>,
    /// `content.attachment.size`, if given.
    pub size: Option<u64>,
}

/// The id prefix under which a summary generated on demand
/// (`Patient/{id}/$summary`) is listed and read.
pub const SUMMARY_PREFIX: &str = "summary-";

impl NationalFhir {
    /// A client for `server` (checked again; certificates loaded now).
    pub fn connect(server: &NationalServer) -> Result<Self, NationalError> {
        let base = server.check().map_err(NationalError::Unexpected)?;
        let timeouts = ClientTimeouts {
            connect: Duration::from_secs(server.connect_timeout_secs),
            request: server.budget(),
        };
        let client = match &server.tls {
            // The transport's outbound client: TLS 1.3, the server's
            // certificate chained to `cas` with current CRLs and its name
            // checked against the URL's host, no redirects, no proxy.
            Some(tls) => {
                let identity = TlsIdentity::load(&IdentityFiles {
                    cert_chain: tls.client_certificate.clone(),
                    private_key: tls.client_private_key.clone(),
                })?;
                let trust = TrustStore::load(&TrustFiles {
                    ca_certs: tls.cas.clone(),
                    crls: tls.crls.clone(),
                })?;
                ehds_transport::federation_client(&identity, &trust, timeouts)?
            }
            // Plain HTTP to a loopback address only (`NationalServer::check`):
            // TLS is configured with no trust anchor at all, so this client
            // can never complete an https handshake.
            None => reqwest::Client::builder()
                .use_preconfigured_tls(no_tls()?)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .http1_only()
                .connect_timeout(timeouts.connect)
                .timeout(timeouts.request)
                .build()
                .map_err(|e| NationalError::Unexpected(e.to_string()))?,
        };
        let oauth = match &server.oauth {
            Some(oauth) => Some(OAuthClient::load(oauth, &base)?),
            None => None,
        };
        Ok(Self {
            base,
            client,
            oauth,
            permits: Semaphore::new(server.max_concurrent),
            breaker: Breaker::new(
                server.breaker_failures,
                Duration::from_secs(server.breaker_open_secs),
            ),
            budget: server.budget(),
            chained_search: server.chained_search,
            retrieval: server.retrieval,
        })
    }

    /// The circuit breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// How documents are retrieved.
    pub fn retrieval(&self) -> Retrieval {
        self.retrieval
    }

    /// `work` (calls to this server), failing with
    /// [`NationalError::Timeout`] when it takes longer than the budget.
    pub async fn within_budget<T>(
        &self,
        work: impl Future<Output = Result<T, NationalError>>,
    ) -> Result<T, NationalError> {
        match tokio::time::timeout(self.budget, work).await {
            Ok(result) => result,
            Err(_) => Err(NationalError::Timeout(self.budget.as_secs())),
        }
    }

    /// `GET {base}{path}?{query}`: the parsed answer, or `None` for 404 /
    /// 410.
    async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<ReceivedResource>, NationalError> {
        let mut url = self
            .base
            .join(path)
            .map_err(|e| NationalError::Unexpected(e.to_string()))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| NationalError::CircuitOpen)?;
        let Some(attempt) = self.breaker.attempt() else {
            return Err(NationalError::CircuitOpen);
        };
        let answer = self.send(url).await;
        // The server failed when it could not be reached, was too slow or
        // answered 5xx; anything else it answered is an answer. (A call the
        // budget cancels is dropped here unfinished: a failure.)
        let failed = matches!(
            &answer,
            Err(NationalError::Unreachable(_) | NationalError::Timeout(_))
        ) || matches!(&answer, Err(NationalError::Status(s)) if *s >= 500);
        if attempt.is_probe() {
            tracing::info!(ok = !failed, "national server: circuit breaker probe");
        }
        attempt.finish(!failed);
        answer
    }

    async fn send(&self, url: url::Url) -> Result<Option<ReceivedResource>, NationalError> {
        // Errors are told without the URL: its query holds the patient
        // identifier.
        let failure = |e: reqwest::Error| {
            if e.is_timeout() {
                NationalError::Timeout(self.budget.as_secs())
            } else {
                NationalError::Unreachable(e.without_url().to_string())
            }
        };
        let response = self
            .dispatch(
                self.client
                    .get(url)
                    .header(reqwest::header::ACCEPT, "application/fhir+json"),
            )
            .await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(NationalError::Status(status.as_u16()));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if !matches!(media_type, "application/fhir+json" | "application/json") {
            return Err(NationalError::NotFhir(format!(
                "Content-Type {media_type:?}"
            )));
        }
        let body: Bytes = response.bytes().await.map_err(failure)?;
        ReceivedResource::parse(body)
            .map(Some)
            .map_err(|rejection| NationalError::NotFhir(rejection.to_string()))
    }

    /// Sends `request` to the national server: the one place requests
    /// leave, with the gateway's credentials beyond mutual TLS (with OAuth,
    /// `Authorization: Bearer` and one retry with a new token on 401:
    /// `crate::oauth`).
    async fn dispatch(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, NationalError> {
        match &self.oauth {
            Some(oauth) => oauth.send(&self.client, request, self.budget).await,
            None => request
                .send()
                .await
                .map_err(|e| NationalError::transport(e, self.budget)),
        }
    }

    /// A search set (`Bundle.type = searchset`) of `resource_type`.
    async fn search(
        &self,
        resource_type: &str,
        query: &[(&str, &str)],
    ) -> Result<ReceivedResource, NationalError> {
        let answer = self
            .get(resource_type, query)
            .await?
            .ok_or(NationalError::Status(404))?;
        let root = answer.root();
        if root.get("resourceType").and_then(Node::as_str) != Some("Bundle")
            || root.get("type").and_then(Node::as_str) != Some("searchset")
        {
            return Err(NationalError::Unexpected(
                "a search answered with something else than a search set".into(),
            ));
        }
        if matches(root)
            .any(|r| r.get("resourceType").and_then(Node::as_str) != Some(resource_type))
        {
            return Err(NationalError::Unexpected(format!(
                "a {resource_type} search answered with other resources"
            )));
        }
        Ok(answer)
    }

    /// `GET Patient?identifier=system|value`: the patient's ids on the
    /// server, with the resource of the first; a Patient in the answer
    /// without the identifier is another patient (refused).
    pub async fn patients(
        &self,
        patient: &PatientIdentifier,
    ) -> Result<(Vec<String>, Option<Bytes>), NationalError> {
        let token = token(patient);
        let answer = self
            .search("Patient", &[("identifier", &token), ("_count", PAGE_SIZE)])
            .await?;
        let mut ids = Vec::new();
        let mut first = None;
        for resource in matches(answer.root()) {
            if !is_of(patient, resource) {
                return Err(NationalError::OtherPatient);
            }
            if let Some(id) = resource.get("id").and_then(Node::as_str) {
                ids.push(id.to_owned());
            }
            if first.is_none() {
                first = answer
                    .bytes()
                    .get(resource.span.start as usize..resource.span.end as usize)
                    .map(Bytes::copy_from_slice);
            }
        }
        Ok((ids, first))
    }

    /// The patient's documents of `types` (`system|code` of LOINC):
    /// `DocumentReference?patient.identifier=…&type=…` (chained search),
    /// or `patient=Patient/{id}` for each of the patient's ids where the
    /// server has no chained search. With `retrieval = "summary"`, one
    /// summary per patient id instead. Every DocumentReference must be about
    /// the patient (its subject's identifier, or a reference to one of the
    /// patient's ids), else nothing is listed.
    pub async fn documents(
        &self,
        patient: &PatientIdentifier,
        types: &[(&str, &str)],
    ) -> Result<Vec<ListedDocument>, NationalError> {
        if self.retrieval == Retrieval::Summary {
            let (ids, _) = self.patients(patient).await?;
            return Ok(ids
                .into_iter()
                .map(|id| ListedDocument {
                    id: format!("{SUMMARY_PREFIX}{id}"),
                    identifier: None,
                    types: types
                        .first()
                        .map(|(s, c)| vec![((*s).to_owned(), (*c).to_owned())])
                        .unwrap_or_default(),
                    date: None,
                    size: None,
                })
                .collect());
        }
        let type_param = types
            .iter()
            .map(|(system, code)| format!("{system}|{code}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut answers = Vec::new();
        let mut patient_ids: Option<Vec<String>> = None;
        if self.chained_search {
            let token = token(patient);
            answers.push(
                self.search(
                    "DocumentReference",
                    &[
                        ("patient.identifier", &token),
                        ("type", &type_param),
                        ("_count", PAGE_SIZE),
                    ],
                )
                .await?,
            );
        } else {
            let (ids, _) = self.patients(patient).await?;
            for id in &ids {
                let reference = format!("Patient/{id}");
                answers.push(
                    self.search(
                        "DocumentReference",
                        &[
                            ("patient", &reference),
                            ("type", &type_param),
                            ("_count", PAGE_SIZE),
                        ],
                    )
                    .await?,
                );
            }
            patient_ids = Some(ids);
        }
        let mut listed = Vec::new();
        for answer in &answers {
            for reference in matches(answer.root()) {
                let subject = reference.get("subject");
                let by_identifier = subject.and_then(|s| s.get("identifier")).map(|i| {
                    i.get("system").and_then(Node::as_str) == Some(patient.system())
                        && i.get("value").and_then(Node::as_str) == Some(patient.value())
                });
                let about = match by_identifier {
                    Some(about) => about,
                    None => {
                        let Some(target) = subject
                            .and_then(|s| s.get("reference"))
                            .and_then(Node::as_str)
                        else {
                            return Err(NationalError::OtherPatient);
                        };
                        if patient_ids.is_none() {
                            patient_ids = Some(self.patients(patient).await?.0);
                        }
                        let ids = patient_ids.as_deref().unwrap_or_default();
                        ids.iter().any(|id| is_reference_to(target, "Patient", id))
                    }
                };
                if !about {
                    return Err(NationalError::OtherPatient);
                }
                if let Some(document) = listed_document(reference) {
                    listed.push(document);
                }
            }
        }
        Ok(listed)
    }

    /// The document `id` (`Bundle/{id}`, or the summary of
    /// [`SUMMARY_PREFIX`]`{patient id}`), if the server has it: a document
    /// Bundle (FHIR R4 documents.html), bytes as the server sent them.
    pub async fn document(&self, id: &str) -> Result<Option<ReceivedResource>, NationalError> {
        let path = match id.strip_prefix(SUMMARY_PREFIX) {
            Some(patient_id) if self.retrieval == Retrieval::Summary => {
                format!("Patient/{patient_id}/$summary")
            }
            _ => format!("Bundle/{id}"),
        };
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Ok(None);
        }
        let Some(answer) = self.get(&path, &[]).await? else {
            return Ok(None);
        };
        let root = answer.root();
        if root.get("resourceType").and_then(Node::as_str) != Some("Bundle")
            || root.get("type").and_then(Node::as_str) != Some("document")
        {
            return Err(NationalError::Unexpected(
                "a document read answered with something else than a document Bundle".into(),
            ));
        }
        Ok(Some(answer))
    }
}

/// A TLS configuration that trusts no server (reqwest is built with
/// rustls and no process-wide provider: every client names its own).
fn no_tls() -> Result<rustls::ClientConfig, NationalError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NationalError::Unexpected(e.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

/// Whether `reference` (relative `Type/id` or absolute `…/Type/id`, with or
/// without `/_history/…`) points to `resource_type/id`.
fn is_reference_to(reference: &str, resource_type: &str, id: &str) -> bool {
    let reference = reference
        .split_once("/_history/")
        .map_or(reference, |(r, _)| r);
    let wanted = format!("{resource_type}/{id}");
    reference == wanted || reference.ends_with(&format!("/{wanted}"))
}

/// A DocumentReference as listed: the Bundle its first attachment points to
/// (`Bundle/{id}`, relative or absolute); `None` if it points elsewhere.
fn listed_document(reference: &Node) -> Option<ListedDocument> {
    let attachment = reference
        .get("content")?
        .items()
        .first()?
        .get("attachment")?;
    let url = attachment.get("url")?.as_str()?;
    let url = url.split_once("/_history/").map_or(url, |(u, _)| u);
    let mut segments = url.rsplit('/');
    let id = segments.next()?;
    if segments.next()? != "Bundle"
        || id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return None;
    }
    let identifier = reference.get("masterIdentifier").and_then(|m| {
        Some((
            m.get("system")?.as_str()?.to_owned(),
            m.get("value")?.as_str()?.to_owned(),
        ))
    });
    let types = reference
        .get("type")
        .and_then(|t| t.get("coding"))
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| {
            Some((
                c.get("system")?.as_str()?.to_owned(),
                c.get("code")?.as_str()?.to_owned(),
            ))
        })
        .collect();
    Some(ListedDocument {
        id: id.to_owned(),
        identifier,
        types,
        date: reference
            .get("date")
            .and_then(Node::as_str)
            .map(str::to_owned),
        size: attachment
            .get("size")
            .and_then(Node::as_number_text)
            .and_then(|s| s.parse().ok()),
    })
}

/// Identifiers of a Patient resource (re-exported for the gateway's
/// PatientMinimal answer).
pub fn patient_identifiers(patient: &Node) -> Vec<(String, String)> {
    identifiers(patient)
        .map(|(s, v)| (s.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn references_and_attachments_are_read_relative_or_absolute() {
        assert!(is_reference_to("Patient/7", "Patient", "7"));
        assert!(is_reference_to(
            "https://x/fhir/Patient/7/_history/2",
            "Patient",
            "7"
        ));
        assert!(!is_reference_to("Patient/71", "Patient", "7"));
        let reference = ehds_fhir::json::parse(
            br#"{"resourceType":"DocumentReference","type":{"coding":[{"system":"http://loinc.org","code":"60591-5"}]},
               "content":[{"attachment":{"url":"http://127.0.0.1:1/Bundle/ps-1","size":12}}]}"#,
        )
        .unwrap();
        let listed = listed_document(&reference).unwrap();
        assert_eq!(listed.id, "ps-1");
        assert_eq!(listed.size, Some(12));
        assert_eq!(
            listed.types,
            vec![("http://loinc.org".into(), "60591-5".into())]
        );
        let elsewhere = ehds_fhir::json::parse(
            br#"{"resourceType":"DocumentReference","content":[{"attachment":{"url":"Binary/1"}}]}"#,
        )
        .unwrap();
        assert_eq!(listed_document(&elsewhere), None);
    }
}
