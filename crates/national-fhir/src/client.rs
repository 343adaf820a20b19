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
use crate::cache::{AnswerCache, CacheCounts, Kept};
use crate::http::{Answer, Http, Request};
use crate::listing::{ListedContent, ListedDocument, listed_documents};
use crate::oauth::OAuthClient;
use crate::{NationalError, NationalServer, Retrieval};

/// The pages of a search set.
#[derive(Debug)]
pub(crate) struct Pages {
    /// Each page as the server sent it.
    pub(crate) answers: Vec<ReceivedResource>,
    /// Whether the server had more pages than `max_pages`.
    pub(crate) incomplete: bool,
}

/// What a search found: the items, and whether the list is incomplete
/// (the server had more pages than the configured `max_pages`: the caller
/// says so to whoever asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing<T> {
    /// The items found, in the server's order.
    pub items: Vec<T>,
    /// Whether more were left on the server.
    pub incomplete: bool,
}

/// A national FHIR server, ready to be asked.
#[derive(Debug)]
pub struct NationalFhir {
    base: url::Url,
    http: Http,
    /// OAuth 2.0 client credentials, when configured: every request carries
    /// its access token ([`NationalFhir::exchange`]).
    oauth: Option<OAuthClient>,
    max_pages: usize,
    page_size: String,
    permits: Semaphore,
    breaker: Breaker,
    budget: Duration,
    chained_search: bool,
    retrieval: Retrieval,
    /// The operator's cache of answers, when turned on (`crate::cache`).
    cache: Option<AnswerCache>,
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
        let http = match &server.tls {
            // The transport's outbound client: TLS 1.3, the server's
            // certificate chained to `cas` with current CRLs and its name
            // checked against the URL's host, no redirects, no proxy; the
            // gateway's client certificate always presented
            // (`NationalServer::check` requires it).
            Some(tls) => {
                let trust = TrustStore::load(&TrustFiles {
                    ca_certs: tls.cas.clone(),
                    crls: tls.crls.clone(),
                })?;
                let (Some(cert_chain), Some(private_key)) =
                    (&tls.client_certificate, &tls.client_private_key)
                else {
                    return Err(NationalError::Unreachable(
                        "no client certificate for mutual TLS with the national server".into(),
                    ));
                };
                let identity = TlsIdentity::load(&IdentityFiles {
                    cert_chain: cert_chain.clone(),
                    private_key: private_key.clone(),
                })?;
                let client = ehds_transport::federation_client(&identity, &trust, timeouts)?;
                Http::Tls {
                    client,
                    budget: timeouts.request,
                }
            }
            // Plain HTTP to a loopback address only (`NationalServer::check`),
            // by a client with no TLS at all.
            None => Http::plain(timeouts.connect, timeouts.request),
        };
        let oauth = match &server.oauth {
            Some(oauth) => Some(OAuthClient::load(oauth, &base)?),
            None => None,
        };
        Ok(Self {
            base,
            http,
            oauth,
            max_pages: server.max_pages,
            page_size: server.page_size.to_string(),
            permits: Semaphore::new(server.max_concurrent),
            breaker: Breaker::new(
                server.breaker_failures,
                Duration::from_secs(server.breaker_open_secs),
            ),
            budget: server.budget(),
            chained_search: server.chained_search,
            retrieval: server.retrieval,
            cache: server.cache.as_ref().map(AnswerCache::new),
        })
    }

    /// What the operator's cache holds and how it served; `None`: no cache.
    pub fn cache_counts(&self) -> Option<CacheCounts> {
        self.cache.as_ref().map(AnswerCache::counts)
    }

    /// Empties the operator's cache: an answer of this server was refused
    /// (about another patient, invalid), so none it gave is kept.
    pub fn forget_answers(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }

    /// The answer to `GET url` kept by the cache, if any (parsed again:
    /// the bytes as the server sent them).
    fn cached(&self, url: &url::Url) -> Option<ReceivedResource> {
        let kept = self.cache.as_ref()?.get(url)?;
        parse(Answer {
            status: 200,
            media_type: kept.media_type,
            location: None,
            body: kept.body,
        })
        .ok()
    }

    /// Keeps `answer` to `GET url` in the cache, if there is one: called
    /// only with an answer found usable.
    fn keep(&self, url: &url::Url, answer: &ReceivedResource) {
        if let Some(cache) = &self.cache {
            cache.keep(
                url,
                Kept {
                    media_type: "application/fhir+json".to_owned(),
                    body: answer.bytes().clone(),
                },
            );
        }
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

    /// `request` to `url` through the concurrency limit and the circuit
    /// breaker: the server failed when it could not be reached, was too
    /// slow or answered 5xx; anything else it answered is an answer. (A
    /// call the budget cancels is dropped here unfinished: a failure.)
    pub(crate) async fn exchange(
        &self,
        url: url::Url,
        request: Request,
    ) -> Result<Answer, NationalError> {
        // A write makes kept answers stale: none is kept past it.
        if matches!(request, Request::Post { .. } | Request::Put(_)) {
            self.forget_answers();
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| NationalError::CircuitOpen)?;
        let Some(attempt) = self.breaker.attempt() else {
            return Err(NationalError::CircuitOpen);
        };
        // The one place requests leave: with OAuth, `Authorization: Bearer`
        // and one retry with a new token on 401 (`crate::oauth`).
        let answer = match &self.oauth {
            Some(oauth) => oauth.send(&self.http, url, request).await,
            None => self.http.send(url, request, None).await,
        };
        let outcome = breaker_outcome(&answer);
        if attempt.is_probe() {
            tracing::info!(?outcome, "national server: circuit breaker probe");
        }
        match outcome {
            BreakerOutcome::Answered => attempt.finish(true),
            BreakerOutcome::Failed => attempt.finish(false),
            BreakerOutcome::NotAsked => attempt.release(),
        }
        answer
    }

    /// `{base}{path}?{query}`.
    pub(crate) fn url(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<url::Url, NationalError> {
        let mut url = self
            .base
            .join(path)
            .map_err(|e| NationalError::Unexpected(e.to_string()))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// `GET {base}{path}?{query}`: the parsed answer, or `None` for 404 /
    /// 410.
    pub(crate) async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<ReceivedResource>, NationalError> {
        let url = self.url(path, query)?;
        self.get_url(url).await
    }

    async fn get_url(&self, url: url::Url) -> Result<Option<ReceivedResource>, NationalError> {
        self.get_checked(url, |_| Ok(())).await
    }

    /// `GET url`: the parsed answer if `check` accepts it (kept by the
    /// cache, if any, only then), or `None` for 404 / 410 (never kept).
    pub(crate) async fn get_checked(
        &self,
        url: url::Url,
        check: impl Fn(&ReceivedResource) -> Result<(), NationalError>,
    ) -> Result<Option<ReceivedResource>, NationalError> {
        if let Some(kept) = self.cached(&url) {
            check(&kept)?;
            return Ok(Some(kept));
        }
        let answer = self.exchange(url.clone(), Request::Get).await?;
        if answer.status == 404 || answer.status == 410 {
            return Ok(None);
        }
        if !(200..300).contains(&answer.status) {
            return Err(NationalError::Status(answer.status));
        }
        let answer = parse(answer)?;
        check(&answer)?;
        self.keep(&url, &answer);
        Ok(Some(answer))
    }

    /// A search set (`Bundle.type = searchset`) of `resource_type`, every
    /// page of it: the `next` links (FHIR R4 http.html#paging) are followed
    /// up to `max_pages` pages. `query` asks for `page_size` results a
    /// page (`_count`, search.html#count). A next link must stay on this
    /// server (under its base URL), else the answer is refused.
    pub(crate) async fn search(
        &self,
        resource_type: &str,
        query: &[(&str, &str)],
    ) -> Result<Pages, NationalError> {
        let mut query = query.to_vec();
        query.push(("_count", self.page_size.as_str()));
        let mut url = self.url(resource_type, &query)?;
        let mut pages = Pages {
            answers: Vec::new(),
            incomplete: false,
        };
        loop {
            let answer = match self.cached(&url) {
                Some(kept) => kept,
                None => self.search_page(url.clone()).await?,
            };
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
            let next = next_link(root)
                .map(|link| self.on_this_server(link))
                .transpose()?;
            self.keep(&url, &answer);
            pages.answers.push(answer);
            match next {
                None => return Ok(pages),
                Some(_) if pages.answers.len() >= self.max_pages => {
                    pages.incomplete = true;
                    return Ok(pages);
                }
                Some(next) => url = next,
            }
        }
    }

    /// One page of a search set. A search set with no results written
    /// with an empty `"entry":[]` (as the Helios FHIR Server 0.2.7 writes
    /// it; FHIR R4 json.html allows no empty arrays) is read as the empty
    /// search set it means: the search set itself is never passed on, only
    /// the resources in it, each as sent.
    async fn search_page(&self, url: url::Url) -> Result<ReceivedResource, NationalError> {
        let answer = self.exchange(url, Request::Get).await?;
        if !(200..300).contains(&answer.status) {
            return Err(NationalError::Status(answer.status));
        }
        let body = answer.body.clone();
        match parse(answer) {
            Ok(page) => Ok(page),
            Err(rejection) => match without_empty_entry(&body) {
                Some(empty) => ReceivedResource::parse(empty)
                    .map_err(|rejection| NationalError::NotFhir(rejection.to_string())),
                None => Err(rejection),
            },
        }
    }

    /// A link of this server's answer, checked to point to this server:
    /// same scheme, host and port, under the base path (a next link
    /// elsewhere would send the patient's search to another host).
    fn on_this_server(&self, link: &str) -> Result<url::Url, NationalError> {
        let url = self
            .base
            .join(link)
            .map_err(|_| NationalError::Unexpected("a next link that is not a URL".into()))?;
        let same_origin = url.scheme() == self.base.scheme()
            && url.host() == self.base.host()
            && url.port_or_known_default() == self.base.port_or_known_default()
            && url.path().starts_with(self.base.path())
            && url.username().is_empty()
            && url.fragment().is_none();
        if !same_origin {
            return Err(NationalError::Unexpected(
                "a next link to another server".into(),
            ));
        }
        Ok(url)
    }

    /// `GET Patient?identifier=system|value`: the patient's ids on the
    /// server, with the resource of the first; a Patient in the answer
    /// without the identifier is another patient (refused).
    pub async fn patients(
        &self,
        patient: &PatientIdentifier,
    ) -> Result<(Vec<String>, Option<Bytes>), NationalError> {
        let token = token(patient);
        let pages = self.search("Patient", &[("identifier", &token)]).await?;
        let mut ids = Vec::new();
        let mut first = None;
        for answer in &pages.answers {
            for resource in matches(answer.root()) {
                if !is_of(patient, resource) {
                    self.forget_answers();
                    return Err(NationalError::OtherPatient);
                }
                if let Some(id) = resource.get("id").and_then(Node::as_str) {
                    ids.push(id.to_owned());
                }
                if first.is_none() {
                    first = span_of(answer, resource);
                }
            }
        }
        Ok((ids, first))
    }

    /// Whether the `subject` of a resource the server listed for `patient`
    /// is the patient: its identifier, or a reference to one of the
    /// patient's ids on the server (`ids`, asked once when first needed).
    pub(crate) async fn subject_is(
        &self,
        patient: &PatientIdentifier,
        subject: Option<&Node>,
        ids: &mut Option<Vec<String>>,
    ) -> Result<bool, NationalError> {
        if let Some(identifier) = subject.and_then(|s| s.get("identifier")) {
            return Ok(
                identifier.get("system").and_then(Node::as_str) == Some(patient.system())
                    && identifier.get("value").and_then(Node::as_str) == Some(patient.value()),
            );
        }
        let Some(target) = subject
            .and_then(|s| s.get("reference"))
            .and_then(Node::as_str)
        else {
            return Ok(false);
        };
        if ids.is_none() {
            *ids = Some(self.patients(patient).await?.0);
        }
        let ids = ids.as_deref().unwrap_or_default();
        Ok(ids.iter().any(|id| is_reference_to(target, "Patient", id)))
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
    ) -> Result<Listing<ListedDocument>, NationalError> {
        if self.retrieval == Retrieval::Summary {
            let (ids, _) = self.patients(patient).await?;
            return Ok(Listing {
                items: ids
                    .into_iter()
                    .map(|id| ListedDocument {
                        content: ListedContent::FhirDocument,
                        id: format!("{SUMMARY_PREFIX}{id}"),
                        identifier: None,
                        types: types
                            .first()
                            .map(|(s, c)| vec![((*s).to_owned(), (*c).to_owned())])
                            .unwrap_or_default(),
                        date: None,
                        size: None,
                    })
                    .collect(),
                incomplete: false,
            });
        }
        let type_param = types
            .iter()
            .map(|(system, code)| format!("{system}|{code}"))
            .collect::<Vec<_>>()
            .join(",");
        let (pages, mut patient_ids) = self
            .of_patient("DocumentReference", patient, &[("type", &type_param)])
            .await?;
        let mut listed = Listing {
            items: Vec::new(),
            incomplete: pages.incomplete,
        };
        for answer in &pages.answers {
            for reference in matches(answer.root()) {
                if !self
                    .subject_is(patient, reference.get("subject"), &mut patient_ids)
                    .await?
                {
                    self.forget_answers();
                    return Err(NationalError::OtherPatient);
                }
                listed.items.extend(listed_documents(reference));
            }
        }
        Ok(listed)
    }

    /// The search of `resource_type` about `patient` with `query`: by the
    /// chained `patient.identifier` (FHIR R4 search.html §3.1.1.5.4.1), or
    /// `patient=Patient/{id}` for each of the patient's ids where the
    /// server has no chained search (the ids then known, for
    /// [`Self::subject_is`]).
    pub(crate) async fn of_patient(
        &self,
        resource_type: &str,
        patient: &PatientIdentifier,
        query: &[(&str, &str)],
    ) -> Result<(Pages, Option<Vec<String>>), NationalError> {
        if self.chained_search {
            let token = token(patient);
            let mut asked = vec![("patient.identifier", token.as_str())];
            asked.extend_from_slice(query);
            return Ok((self.search(resource_type, &asked).await?, None));
        }
        let (ids, _) = self.patients(patient).await?;
        let mut pages = Pages {
            answers: Vec::new(),
            incomplete: false,
        };
        for id in &ids {
            let reference = format!("Patient/{id}");
            let mut asked = vec![("patient", reference.as_str())];
            asked.extend_from_slice(query);
            let more = self.search(resource_type, &asked).await?;
            pages.answers.extend(more.answers);
            pages.incomplete |= more.incomplete;
        }
        Ok((pages, Some(ids)))
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
        let url = self.url(&path, &[])?;
        self.get_checked(url, |answer| {
            let root = answer.root();
            if root.get("resourceType").and_then(Node::as_str) != Some("Bundle")
                || root.get("type").and_then(Node::as_str) != Some("document")
            {
                return Err(NationalError::Unexpected(
                    "a document read answered with something else than a document Bundle".into(),
                ));
            }
            Ok(())
        })
        .await
    }
}

/// What a call tells the circuit breaker about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BreakerOutcome {
    /// The server answered (whatever it answered, short of a 5xx).
    Answered,
    /// The server (or its authorization server) is down or too slow: not
    /// reached, no answer within the budget, or a 5xx.
    Failed,
    /// The request never reached the server: the token endpoint refused
    /// the gateway's client credentials, or the request could not be
    /// made. That is the gateway's configuration to fix, not the server
    /// being down: the breaker is left as it was.
    NotAsked,
}

fn breaker_outcome(answer: &Result<Answer, NationalError>) -> BreakerOutcome {
    match answer {
        Ok(answer) if answer.status >= 500 => BreakerOutcome::Failed,
        Ok(_) => BreakerOutcome::Answered,
        Err(NationalError::Unreachable(_) | NationalError::Timeout(_)) => BreakerOutcome::Failed,
        // A token endpoint or SMART configuration answering 5xx.
        Err(NationalError::Status(status)) if *status >= 500 => BreakerOutcome::Failed,
        Err(_) => BreakerOutcome::NotAsked,
    }
}

/// An answer parsed as FHIR JSON (`application/fhir+json` or
/// `application/json`, FHIR R4 http.html#mime-type), bytes as sent.
pub(crate) fn parse(answer: Answer) -> Result<ReceivedResource, NationalError> {
    if !matches!(
        answer.media_type.as_str(),
        "application/fhir+json" | "application/json"
    ) {
        return Err(NationalError::NotFhir(format!(
            "Content-Type {:?}",
            answer.media_type
        )));
    }
    ReceivedResource::parse(answer.body)
        .map_err(|rejection| NationalError::NotFhir(rejection.to_string()))
}

/// `body` without its one `"entry":[]` member, if it has exactly one.
fn without_empty_entry(body: &[u8]) -> Option<Bytes> {
    let text = std::str::from_utf8(body).ok()?;
    for member in [",\"entry\":[]", "\"entry\":[],"] {
        if text.matches(member).count() == 1 {
            return Some(Bytes::from(text.replacen(member, "", 1)));
        }
    }
    None
}

/// The bytes of `resource` within `answer`, as the server sent them.
pub(crate) fn span_of(answer: &ReceivedResource, resource: &Node) -> Option<Bytes> {
    answer
        .bytes()
        .get(resource.span.start as usize..resource.span.end as usize)
        .map(Bytes::copy_from_slice)
}

/// The `next` link of a search set page (`Bundle.link` of relation
/// `next`, FHIR R4 http.html#paging).
fn next_link(bundle: &Node) -> Option<&str> {
    bundle
        .get("link")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .find(|l| l.get("relation").and_then(Node::as_str) == Some("next"))
        .and_then(|l| l.get("url"))
        .and_then(Node::as_str)
}

/// Whether `reference` (relative `Type/id` or absolute `…/Type/id`, with or
/// without `/_history/…`) points to `resource_type/id`.
pub(crate) fn is_reference_to(reference: &str, resource_type: &str, id: &str) -> bool {
    let reference = reference
        .split_once("/_history/")
        .map_or(reference, |(r, _)| r);
    let wanted = format!("{resource_type}/{id}");
    reference == wanted || reference.ends_with(&format!("/{wanted}"))
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
    fn references_are_read_relative_or_absolute() {
        assert!(is_reference_to("Patient/7", "Patient", "7"));
        assert!(is_reference_to(
            "https://x/fhir/Patient/7/_history/2",
            "Patient",
            "7"
        ));
        assert!(!is_reference_to("Patient/71", "Patient", "7"));
    }
}
