//! Response writers: FHIR JSON bodies, OperationOutcomes and `searchset`
//! Bundles assembled from their entries' raw bytes (received bytes are the
//! truth: an entry's resource is copied, never re-serialised).
//!
//! FHIR R4 RESTful API: <http://hl7.org/fhir/R4/http.html> (media type
//! `application/fhir+json`), search result Bundles
//! <http://hl7.org/fhir/R4/search.html#bundle>.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ehds_fhir::outcome::{self, Issue};

/// The FHIR JSON media type every FHIR response carries.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// A FHIR JSON response with `status` and `body`.
pub(crate) fn fhir_json(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut response = (status, body.into()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

/// A PDF original read as `Binary/{id}` (FHIR R4 binary.html#rest: "a
/// read of a Binary returns the content in its native format" when the
/// client asks for it; otherwise the Binary resource): `Accept:
/// application/pdf` gets the exact bytes as `application/pdf`, any other
/// `Accept` a FHIR JSON Binary with the bytes base64-encoded in `data`.
pub(crate) fn pdf_original(
    accept: Option<&HeaderValue>,
    id: &str,
    bytes: impl Into<bytes::Bytes>,
) -> Response {
    let bytes: bytes::Bytes = bytes.into();
    let wants_pdf = accept.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|m| {
            m.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(ehds_store::PDF))
        })
    });
    if wants_pdf {
        let mut response = (StatusCode::OK, bytes).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(ehds_store::PDF),
        );
        return response;
    }
    use base64::Engine as _;
    let binary = serde_json::json!({
        "resourceType": "Binary",
        "id": id,
        "contentType": ehds_store::PDF,
        "data": base64::engine::general_purpose::STANDARD.encode(&bytes),
    });
    fhir_json(StatusCode::OK, binary.to_string())
}

/// The `Prefer: return=` header of a create
/// (<http://hl7.org/fhir/R4/http.html#ops>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnPreference {
    /// The stored resource (the default).
    Representation,
    /// No body.
    Minimal,
    /// An OperationOutcome of the validation warnings and information.
    OperationOutcome,
}

impl ReturnPreference {
    pub(crate) fn from_headers(headers: &axum::http::HeaderMap) -> Self {
        let preference = headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([',', ';']))
            .find_map(|p| p.trim().strip_prefix("return="));
        match preference {
            Some("minimal") => Self::Minimal,
            Some("OperationOutcome") => Self::OperationOutcome,
            _ => Self::Representation,
        }
    }
}

/// The OperationOutcome a create answers with under `Prefer:
/// return=OperationOutcome`: the validation's issues, or one information
/// issue saying the `what` was stored when there are none.
pub(crate) fn stored_outcome(
    status: StatusCode,
    report: Option<&ehds_validation::ValidationReport>,
    what: &str,
) -> Response {
    match report {
        Some(report) if !report.issues.is_empty() => outcome_response(status, &report.issues),
        _ => information(
            status,
            &format!("{what} stored; validation found no issues"),
        ),
    }
}

/// Header carrying how many issues validation raised on an accepted
/// resource (the issues themselves come back with `Prefer:
/// return=OperationOutcome`, or from `$validate`).
const VALIDATION_ISSUES_HEADER: &str = "x-validation-issues";

/// Header carrying how many of them are errors: more than 0 only for a
/// service whose policy is `report` (FHIR R4 http.html#ops: without `Prefer:
/// return=OperationOutcome` the body is the resource, "not the
/// OperationOutcome; that should only be returned if explicitly
/// requested", so the count says that there is more to ask for).
const VALIDATION_ERRORS_HEADER: &str = "x-validation-errors";

/// Adds the validation counts of an accepted resource's `report` to an
/// answer's headers.
pub(crate) fn validation_counts(
    headers: &mut axum::http::HeaderMap,
    report: &ehds_validation::ValidationReport,
) {
    if let Ok(value) = HeaderValue::from_str(&report.issues.len().to_string()) {
        headers.insert(VALIDATION_ISSUES_HEADER, value);
    }
    if let Ok(value) = HeaderValue::from_str(&report.error_count().to_string()) {
        headers.insert(VALIDATION_ERRORS_HEADER, value);
    }
}

/// An OperationOutcome response.
pub(crate) fn outcome_response(status: StatusCode, issues: &[Issue]) -> Response {
    match outcome::render(issues) {
        Ok(body) => fhir_json(status, body),
        Err(error) => {
            tracing::error!(%error, "OperationOutcome rendering failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// An OperationOutcome of one information issue (an operation that
/// succeeded and has nothing else to return).
pub(crate) fn information(status: StatusCode, message: &str) -> Response {
    outcome_response(
        status,
        &[Issue::new(
            outcome::Severity::Information,
            outcome::IssueType::Informational,
            message,
        )],
    )
}

/// A `searchset` Bundle written entry by entry: each entry's resource is
/// copied as the bytes given, so what a sender wrote crosses unchanged.
#[derive(Debug)]
pub(crate) struct SearchSet {
    out: Vec<u8>,
    entries: usize,
    /// Entries that are OperationOutcomes (`search.mode = outcome`), not
    /// counted in `total`.
    outcomes: usize,
    links: Vec<(&'static str, String)>,
    /// Whether `total` is written (not for a page of a longer list, whose
    /// total is not counted).
    total: bool,
}

impl SearchSet {
    /// An empty search set, room for about `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            out: Vec::with_capacity(capacity),
            entries: 0,
            outcomes: 0,
            links: Vec::new(),
            total: true,
        }
    }

    /// One page of a list whose total is not counted: no `total`.
    pub(crate) fn page(capacity: usize) -> Self {
        Self {
            total: false,
            ..Self::with_capacity(capacity)
        }
    }

    /// Adds a `link` (`relation`, `url`), e.g. `next` for paging.
    pub(crate) fn link(&mut self, relation: &'static str, url: String) {
        self.links.push((relation, url));
    }

    /// Adds a `match` entry: `full_url` (a fresh `urn:uuid:` when `None`)
    /// and the resource's exact bytes.
    pub(crate) fn entry(&mut self, full_url: Option<&str>, resource: &[u8]) {
        self.entry_with_search(full_url, resource, br#"{"mode":"match"}"#);
    }

    /// Adds an entry whose `search` element is the given JSON bytes.
    pub(crate) fn entry_with_search(
        &mut self,
        full_url: Option<&str>,
        resource: &[u8],
        search: &[u8],
    ) {
        self.out
            .extend_from_slice(if self.entries == 0 { b"" } else { b"," });
        self.out.extend_from_slice(br#"{"fullUrl":"#);
        match full_url {
            Some(url) => self.out.extend_from_slice(json_string(url).as_bytes()),
            None => {
                self.out.extend_from_slice(b"\"urn:uuid:");
                self.out
                    .extend_from_slice(uuid::Uuid::new_v4().to_string().as_bytes());
                self.out.push(b'"');
            }
        }
        self.out.extend_from_slice(br#","resource":"#);
        self.out.extend_from_slice(resource);
        self.out.extend_from_slice(br#","search":"#);
        self.out.extend_from_slice(search);
        self.out.push(b'}');
        self.entries += 1;
    }

    /// Adds an OperationOutcome of `issues` about the search itself
    /// (`search.mode = outcome`, FHIR R4 search.html#errors), not counted
    /// in `total`.
    pub(crate) fn outcome(&mut self, issues: &[ehds_fhir::outcome::Issue]) {
        if let Ok(outcome) = ehds_fhir::outcome::render(issues) {
            self.entry_with_search(None, &outcome, br#"{"mode":"outcome"}"#);
            self.outcomes += 1;
        }
    }

    /// Adds a whole entry given as JSON bytes (an entry that carries more
    /// than `fullUrl`, `resource` and `search`).
    pub(crate) fn raw_entry(&mut self, entry: &[u8]) {
        self.out
            .extend_from_slice(if self.entries == 0 { b"" } else { b"," });
        self.out.extend_from_slice(entry);
        self.entries += 1;
    }

    /// The Bundle's bytes: `resourceType`, `type`, `total`, `link` and
    /// `entry` (absent when there is none).
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        let mut bundle = Vec::with_capacity(self.out.len() + 128);
        bundle.extend_from_slice(br#"{"resourceType":"Bundle","type":"searchset""#);
        if self.total {
            bundle.extend_from_slice(br#","total":"#);
            bundle.extend_from_slice(
                self.entries
                    .saturating_sub(self.outcomes)
                    .to_string()
                    .as_bytes(),
            );
        }
        if !self.links.is_empty() {
            bundle.extend_from_slice(br#","link":["#);
            for (i, (relation, url)) in self.links.iter().enumerate() {
                if i > 0 {
                    bundle.push(b',');
                }
                bundle.extend_from_slice(br#"{"relation":"#);
                bundle.extend_from_slice(json_string(relation).as_bytes());
                bundle.extend_from_slice(br#","url":"#);
                bundle.extend_from_slice(json_string(url).as_bytes());
                bundle.push(b'}');
            }
            bundle.push(b']');
        }
        if self.entries > 0 {
            bundle.extend_from_slice(br#","entry":["#);
            bundle.extend_from_slice(&self.out);
            bundle.push(b']');
        }
        bundle.push(b'}');
        bundle
    }

    /// The Bundle as a `200 OK` FHIR JSON response.
    pub(crate) fn into_response(self) -> Response {
        fhir_json(StatusCode::OK, self.into_bytes())
    }
}

/// `text` as a JSON string literal.
pub(crate) fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_search_set_is_a_valid_bundle_with_entries_copied_byte_for_byte() {
        let mut set = SearchSet::with_capacity(64);
        assert_eq!(
            String::from_utf8(SearchSet::with_capacity(0).into_bytes()).unwrap(),
            r#"{"resourceType":"Bundle","type":"searchset","total":0}"#
        );
        set.link("next", "AuditEvent?_before=3".into());
        set.entry(
            Some("urn:uuid:1"),
            br#"{"resourceType":"Patient","n":1.50}"#,
        );
        set.entry(None, br#"{"resourceType":"Patient"}"#);
        let bytes = set.into_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["total"], 2);
        assert_eq!(value["link"][0]["relation"], "next");
        assert_eq!(value["entry"][0]["fullUrl"], "urn:uuid:1");
        assert!(
            value["entry"][1]["fullUrl"]
                .as_str()
                .unwrap()
                .starts_with("urn:uuid:")
        );
        // The decimal's trailing zero is the sender's and stays.
        assert!(String::from_utf8(bytes).unwrap().contains(r#""n":1.50"#));
    }
}
