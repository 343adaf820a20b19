//! The search parameters of the cross-border NCPeH FHIR API, parsed into
//! typed requests, and the canonical query relayed to the patient's NCP.
//!
//! The API subset is modelled on the MyHealth@EU NCPeH FHIR API: find the
//! patient by identifier (`Patient?identifier=…`), list the patient's
//! documents (`DocumentReference?patient.identifier=…&type=…`), list the
//! patient's prescriptions (`MedicationRequest?patient.identifier=…`), and
//! retrieve a document Bundle by id (`Bundle/{id}`).
//!
//! # Rules (FHIR R4, <http://hl7.org/fhir/R4/search.html>)
//!
//! * **Percent-decoding** (RFC 3986 §2.1): every `%` is followed by two
//!   hexadecimal digits; the decoded bytes must be UTF-8; decoded names and
//!   values must not contain control characters (C0, DEL, C1).
//! * **`+` is a literal plus sign.** A GET search is a URL query (RFC 3986
//!   §3.4), where `+` has no special meaning; only the
//!   `application/x-www-form-urlencoded` body of a `POST …/_search`
//!   (search.html §3.1.1.2, "Introduction") turns `+` into a space. The
//!   relayed query encodes a space as `%20` and a plus as `%2B`, so no peer
//!   can read it either way.
//! * **Escaping** (search.html#escaping, §3.1.1.4.19): after
//!   percent-decoding, `\` escapes `\`, `|`, `,` and `$`; any other use of
//!   `\` is illegal. An unescaped `,` separates alternatives (OR): this API
//!   takes one value per parameter, except `MedicationRequest?status`.
//!   Parameters here are not composite, so an unescaped `$` is literal.
//! * **Tokens** (search.html#token): `system|value`. A patient identifier
//!   must name its system (`value` alone or `|value` is refused): the system
//!   decides which country answers. `type` must name its system too: a code
//!   without its system is ambiguous across borders.
//! * **Dates** (search.html#date): `birthdate` takes a FHIR `date`
//!   (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, datatypes.html#date) with no prefix
//!   or `eq`; other prefixes are refused.
//! * **Empty parameters are ignored** (search.html#errors: "Empty
//!   parameters are not an error - they are just ignored by the server").
//! * **Strict handling.** search.html#errors lets a server ignore unknown or
//!   unsupported parameters, or refuse them when the client sends
//!   `Prefer: handling=strict`. The cross-border API always behaves as
//!   `handling=strict`: an ignored parameter would widen the search the
//!   professional believes they made and send more of a patient's record
//!   across a border than asked for. Unknown parameters, modifiers
//!   (`name:exact`), result parameters (`_count`, `_include`, `_format`)
//!   and repeated parameters are refused — except `_elements` on the
//!   Patient search (search.html#elements), which only narrows what
//!   crosses (the NCPeH API's data minimisation): a comma-separated list
//!   of the Patient's root element names, anything else refused.
//!
//! Invalid input is a value: parsing returns every [`SearchRefusal`] found,
//! each naming its parameter (for an OperationOutcome `issue.location` /
//! `expression` such as `http.identifier`) with a message that never
//! repeats the value.
//!
//! # Relay
//!
//! [`NcpehRequest::relay_path`] builds the relative URL to call at the
//! patient's NCP from the typed request only: known parameters, fixed
//! order, FHIR-escaped then percent-encoded, so what crosses the border is
//! canonical and carries nothing the caller added.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Longest raw query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Longest parameter name, in bytes, once percent-decoded.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest parameter value, in bytes, once percent-decoded.
pub const MAX_VALUE_BYTES: usize = 256;

/// A token parameter with its system: `system|value`, unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenParam {
    /// The system (an identifier system or code system URI).
    pub system: String,
    /// The identifier value or code.
    pub value: String,
}

/// A FHIR `date` searched for equality: year, year and month, or full date
/// (datatypes.html#date; year 0001 to 9999).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateParam {
    /// `YYYY`.
    Year(u16),
    /// `YYYY-MM`.
    Month(u16, u8),
    /// `YYYY-MM-DD`.
    Day(u16, u8, u8),
}

impl fmt::Display for DateParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Year(y) => write!(f, "{y:04}"),
            Self::Month(y, m) => write!(f, "{y:04}-{m:02}"),
            Self::Day(y, m, d) => write!(f, "{y:04}-{m:02}-{d:02}"),
        }
    }
}

/// Administrative gender (<http://hl7.org/fhir/administrative-gender>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    /// `male`.
    Male,
    /// `female`.
    Female,
    /// `other`.
    Other,
    /// `unknown`.
    Unknown,
}

/// The administrative-gender code system.
pub const ADMINISTRATIVE_GENDER: &str = "http://hl7.org/fhir/administrative-gender";

impl Gender {
    /// The code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Male => "male",
            Self::Female => "female",
            Self::Other => "other",
            Self::Unknown => "unknown",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        [Self::Male, Self::Female, Self::Other, Self::Unknown]
            .into_iter()
            .find(|g| g.code() == code)
    }
}

/// MedicationRequest status (<http://hl7.org/fhir/CodeSystem/medicationrequest-status>,
/// R4 required binding), in the order relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MedicationRequestStatus {
    /// `active`.
    Active,
    /// `on-hold`.
    OnHold,
    /// `cancelled`.
    Cancelled,
    /// `completed`.
    Completed,
    /// `entered-in-error`.
    EnteredInError,
    /// `stopped`.
    Stopped,
    /// `draft`.
    Draft,
    /// `unknown`.
    Unknown,
}

const MEDICATION_REQUEST_STATUSES: [MedicationRequestStatus; 8] = [
    MedicationRequestStatus::Active,
    MedicationRequestStatus::OnHold,
    MedicationRequestStatus::Cancelled,
    MedicationRequestStatus::Completed,
    MedicationRequestStatus::EnteredInError,
    MedicationRequestStatus::Stopped,
    MedicationRequestStatus::Draft,
    MedicationRequestStatus::Unknown,
];

impl MedicationRequestStatus {
    /// The code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::OnHold => "on-hold",
            Self::Cancelled => "cancelled",
            Self::Completed => "completed",
            Self::EnteredInError => "entered-in-error",
            Self::Stopped => "stopped",
            Self::Draft => "draft",
            Self::Unknown => "unknown",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        MEDICATION_REQUEST_STATUSES
            .into_iter()
            .find(|s| s.code() == code)
    }
}

/// `GET Patient?identifier=system|value[&name=…][&birthdate=…][&gender=…]`
/// (the PatientMinimal search of the NCPeH API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientSearch {
    /// The patient identifier (required).
    pub identifier: TokenParam,
    /// A name (string search: the peer matches it as a prefix, case- and
    /// accent-insensitively).
    pub name: Option<String>,
    /// Birth date, equality.
    pub birthdate: Option<DateParam>,
    /// Administrative gender.
    pub gender: Option<Gender>,
    /// `_elements` (search.html#elements, the NCPeH API's data
    /// minimisation): the Patient's root elements asked for, in the order
    /// [`PATIENT_ELEMENTS`] lists them, each once; `None`: the whole
    /// Patient.
    pub elements: Option<Vec<&'static str>>,
}

/// The root elements of the R4 Patient resource (patient.html; the
/// snapshot of `StructureDefinition-Patient.json` in
/// `profiles/hl7.fhir.r4.core-4.0.1`), as `_elements` names them: a choice
/// element by its name without `[x]` (`deceased`, `multipleBirth`).
pub const PATIENT_ELEMENTS: &[&str] = &[
    "id",
    "meta",
    "implicitRules",
    "language",
    "text",
    "contained",
    "extension",
    "modifierExtension",
    "identifier",
    "active",
    "name",
    "telecom",
    "gender",
    "birthDate",
    "deceased",
    "address",
    "maritalStatus",
    "multipleBirth",
    "photo",
    "contact",
    "communication",
    "generalPractitioner",
    "managingOrganization",
    "link",
];

/// `GET DocumentReference?patient.identifier=system|value[&type=system|code]
/// [&date=…][&contenttype=…][&category=system|code][&creation=…]` (the
/// patient's documents; `type=http://loinc.org|60591-5` for the patient
/// summary; the provider's parameters of the MyHealth@EU NCPeH FHIR API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentReferenceSearch {
    /// The patient identifier (chained search on `patient`, required).
    pub patient_identifier: TokenParam,
    /// The document type.
    pub type_: Option<TokenParam>,
    /// `date` (DocumentReference.date), each bound to hold (AND): e.g.
    /// `date=ge2025-01-01&date=lt2026-01-01`.
    pub date: Vec<DateBound>,
    /// `contenttype` (DocumentReference.content.attachment.contentType), a
    /// media type such as `application/pdf`, lower-cased.
    pub contenttype: Option<String>,
    /// `category` (DocumentReference.category), `system|code`.
    pub category: Option<TokenParam>,
    /// `creation` (DocumentReference.content.attachment.creation), each
    /// bound to hold.
    pub creation: Vec<DateBound>,
}

/// A date search prefix (search.html#prefix) the document searches take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePrefix {
    /// `eq` (or none): within the value's range.
    Eq,
    /// `gt`: after the value's range.
    Gt,
    /// `lt`: before the value's range.
    Lt,
    /// `ge`: from the start of the value's range.
    Ge,
    /// `le`: up to the end of the value's range.
    Le,
}

impl DatePrefix {
    /// The prefix as written in a query.
    pub fn code(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Gt => "gt",
            Self::Lt => "lt",
            Self::Ge => "ge",
            Self::Le => "le",
        }
    }
}

/// One `date`/`creation` bound: a prefix and a FHIR date or dateTime
/// (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, `YYYY-MM-DDThh:mm:ss[.f](Z|±hh:mm)`,
/// search.html#date), which stands for the range of its precision: a day is
/// `[00:00, 24:00)` UTC, a dateTime its second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateBound {
    /// The prefix.
    pub prefix: DatePrefix,
    /// The value as received (checked).
    pub value: String,
    /// Start of the value's range, microseconds since 1970-01-01T00:00Z.
    pub start_us: i64,
    /// End of the value's range (exclusive).
    pub end_us: i64,
}

impl DateBound {
    /// Whether an instant (microseconds since the epoch, UTC) meets the
    /// bound (search.html#prefix, for a value without range of its own).
    pub fn matches(&self, instant_us: i64) -> bool {
        match self.prefix {
            DatePrefix::Eq => self.start_us <= instant_us && instant_us < self.end_us,
            DatePrefix::Gt => instant_us >= self.end_us,
            DatePrefix::Lt => instant_us < self.start_us,
            DatePrefix::Ge => instant_us >= self.start_us,
            DatePrefix::Le => instant_us < self.end_us,
        }
    }
}

/// `GET MedicationRequest?patient.identifier=system|value[&status=…]` (the
/// patient's prescriptions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicationRequestSearch {
    /// The patient identifier (chained search on `patient`, required).
    pub patient_identifier: TokenParam,
    /// Statuses asked for (alternatives, `status=active,on-hold`), sorted
    /// and without duplicates; empty when the parameter is absent.
    pub status: Vec<MedicationRequestStatus>,
}

/// `GET Bundle/{id}`: retrieve a document Bundle. No query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleRead {
    /// The logical id (`[A-Za-z0-9\-\.]{1,64}`, datatypes.html#id).
    pub id: String,
}

/// A parsed cross-border request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NcpehRequest {
    /// Patient search.
    Patient(PatientSearch),
    /// DocumentReference search.
    DocumentReference(DocumentReferenceSearch),
    /// MedicationRequest search.
    MedicationRequest(MedicationRequestSearch),
    /// Bundle retrieval.
    Bundle(BundleRead),
}

impl NcpehRequest {
    /// The patient identifier that decides the country, when the request
    /// carries one (a Bundle read does not: the caller knows the country
    /// from the DocumentReference that named the Bundle).
    pub fn patient_identifier(&self) -> Option<&TokenParam> {
        match self {
            Self::Patient(s) => Some(&s.identifier),
            Self::DocumentReference(s) => Some(&s.patient_identifier),
            Self::MedicationRequest(s) => Some(&s.patient_identifier),
            Self::Bundle(_) => None,
        }
    }

    /// The relative URL to call under the peer NCP's federation base URL.
    pub fn relay_path(&self) -> String {
        match self {
            Self::Patient(s) => s.relay_path(),
            Self::DocumentReference(s) => s.relay_path(),
            Self::MedicationRequest(s) => s.relay_path(),
            Self::Bundle(b) => b.relay_path(),
        }
    }
}

/// Why a search cannot be served, for one parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRefusal {
    /// The parameter name as decoded (truncated to [`MAX_NAME_BYTES`]), or
    /// empty when the refusal is about the whole query or a name that
    /// cannot be decoded.
    pub parameter: String,
    /// What is wrong.
    pub kind: RefusalKind,
}

/// What is wrong with a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalKind {
    /// The query is longer than [`MAX_QUERY_BYTES`].
    QueryTooLong {
        /// The limit.
        max: usize,
    },
    /// Not a parameter of this search (strict handling).
    UnknownParameter {
        /// The parameters the search takes.
        supported: &'static [&'static str],
    },
    /// A known parameter with a modifier (`name:exact`).
    UnsupportedModifier,
    /// The parameter appears more than once.
    Repeated,
    /// A required parameter is absent.
    Missing,
    /// A token without a system (`value` or `|value`).
    MissingSystem,
    /// A token with a system but no value (`system|`).
    MissingValue,
    /// Alternatives (`a,b`) where one value is taken.
    MultipleValues,
    /// `%` not followed by two hexadecimal digits.
    InvalidPercentEncoding,
    /// Not UTF-8 once percent-decoded.
    InvalidUtf8,
    /// A control character once percent-decoded.
    ControlCharacter,
    /// Longer than the limit once percent-decoded.
    TooLong {
        /// The limit, in bytes.
        max: usize,
    },
    /// `\` before anything but `\`, `|`, `,`, `$`, or at the end.
    InvalidEscape,
    /// A date prefix other than `eq`.
    UnsupportedPrefix,
    /// Not of the expected form.
    Malformed {
        /// The expected form.
        expected: &'static str,
    },
}

impl SearchRefusal {
    pub(crate) fn new(parameter: &str, kind: RefusalKind) -> Self {
        Self {
            parameter: parameter.to_owned(),
            kind,
        }
    }

    /// Where the problem is, in the style of the FHIR search error example
    /// (`OperationOutcome/searchfail`: `location = http.name:exact`):
    /// `http.<parameter>`, or `http` for the whole query.
    pub fn location(&self) -> String {
        if self.parameter.is_empty() {
            "http".to_owned()
        } else {
            format!("http.{}", self.parameter)
        }
    }

    /// A message for an OperationOutcome issue. It names the parameter and
    /// never repeats its value.
    pub fn message(&self) -> String {
        let p = &self.parameter;
        match &self.kind {
            RefusalKind::QueryTooLong { max } => format!("the query is longer than {max} bytes"),
            RefusalKind::UnknownParameter { supported } => format!(
                "unknown search parameter '{p}': this search takes only {} and refuses any \
                 other parameter (strict handling)",
                supported.join(", ")
            ),
            RefusalKind::UnsupportedModifier => {
                format!("search parameter '{p}': modifiers are not supported")
            }
            RefusalKind::Repeated => format!("search parameter '{p}' appears more than once"),
            RefusalKind::Missing => format!("search parameter '{p}' is required"),
            RefusalKind::MissingSystem => format!(
                "search parameter '{p}' must name its system (system|value): the identifier \
                 system decides which country answers"
            ),
            RefusalKind::MissingValue => {
                format!("search parameter '{p}' names a system but no value")
            }
            RefusalKind::MultipleValues => format!(
                "search parameter '{p}' takes a single value (',' separates alternatives; a \
                 literal comma is written \\,)"
            ),
            RefusalKind::InvalidPercentEncoding => format!(
                "search parameter '{p}' is not correctly percent-encoded ('%' must be followed \
                 by two hexadecimal digits)"
            ),
            RefusalKind::InvalidUtf8 => {
                format!("search parameter '{p}' is not UTF-8 once percent-decoded")
            }
            RefusalKind::ControlCharacter => {
                format!("search parameter '{p}' contains a control character")
            }
            RefusalKind::TooLong { max } => {
                format!("search parameter '{p}' is longer than {max} bytes")
            }
            RefusalKind::InvalidEscape => format!(
                "search parameter '{p}' has an invalid escape: '\\' may only precede '\\', '|', \
                 ',' or '$'"
            ),
            RefusalKind::UnsupportedPrefix => {
                format!("search parameter '{p}' only searches for equality (no prefix, or 'eq')")
            }
            RefusalKind::Malformed { expected } => {
                format!("search parameter '{p}' is not well-formed: expected {expected}")
            }
        }
    }
}

const PATIENT_PARAMS: &[&str] = &["identifier", "name", "birthdate", "gender", "_elements"];
const DOCUMENT_REFERENCE_PARAMS: &[&str] = &[
    "patient.identifier",
    "type",
    "date",
    "contenttype",
    "category",
    "creation",
];
/// The document search parameters that may repeat (date ranges).
const DOCUMENT_REFERENCE_REPEATABLE: &[&str] = &["date", "creation"];
const MEDICATION_REQUEST_PARAMS: &[&str] = &["patient.identifier", "status"];
const NO_PARAMS: &[&str] = &[];

impl PatientSearch {
    /// Parses the raw query string of `GET Patient?…` (with or without the
    /// leading `?`).
    pub fn parse(query: &str) -> Result<Self, Vec<SearchRefusal>> {
        let (params, mut refusals) = collect(query, PATIENT_PARAMS);
        let identifier = required(&params, "identifier", &mut refusals)
            .and_then(|v| keep(parse_system_token("identifier", v), &mut refusals));
        let name = params
            .get("name")
            .and_then(|v| keep(parse_single("name", v), &mut refusals));
        let birthdate = params
            .get("birthdate")
            .and_then(|v| keep(parse_date("birthdate", v), &mut refusals));
        let gender = params
            .get("gender")
            .and_then(|v| keep(parse_gender("gender", v), &mut refusals));
        let elements = params
            .get("_elements")
            .and_then(|v| keep(parse_elements("_elements", v), &mut refusals));
        match identifier {
            Some(identifier) if refusals.is_empty() => Ok(Self {
                identifier,
                name,
                birthdate,
                gender,
                elements,
            }),
            _ => Err(refusals),
        }
    }

    /// `Patient?identifier=…[&name=…][&birthdate=…][&gender=…][&_elements=…]`.
    pub fn relay_path(&self) -> String {
        let mut query = Query::new("Patient");
        query.token("identifier", &self.identifier);
        if let Some(name) = &self.name {
            query.escaped("name", name);
        }
        if let Some(date) = &self.birthdate {
            query.raw("birthdate", &date.to_string());
        }
        if let Some(gender) = self.gender {
            query.raw("gender", gender.code());
        }
        if let Some(elements) = &self.elements {
            query.alternatives("_elements", elements);
        }
        query.finish()
    }
}

impl DocumentReferenceSearch {
    /// Parses the raw query string of `GET DocumentReference?…`.
    pub fn parse(query: &str) -> Result<Self, Vec<SearchRefusal>> {
        let (params, repeated, mut refusals) = collect_repeatable(
            query,
            DOCUMENT_REFERENCE_PARAMS,
            DOCUMENT_REFERENCE_REPEATABLE,
        );
        let patient_identifier = required(&params, "patient.identifier", &mut refusals)
            .and_then(|v| keep(parse_system_token("patient.identifier", v), &mut refusals));
        let type_ = params
            .get("type")
            .and_then(|v| keep(parse_system_token("type", v), &mut refusals));
        let category = params
            .get("category")
            .and_then(|v| keep(parse_system_token("category", v), &mut refusals));
        let contenttype = params
            .get("contenttype")
            .and_then(|v| keep(parse_media_type("contenttype", v), &mut refusals));
        let mut bounds = |name: &'static str| -> Vec<DateBound> {
            repeated
                .get(name)
                .into_iter()
                .flatten()
                .filter_map(|v| keep(parse_date_bound(name, v), &mut refusals))
                .collect()
        };
        let date = bounds("date");
        let creation = bounds("creation");
        match patient_identifier {
            Some(patient_identifier) if refusals.is_empty() => Ok(Self {
                patient_identifier,
                type_,
                date,
                contenttype,
                category,
                creation,
            }),
            _ => Err(refusals),
        }
    }

    /// `DocumentReference?patient.identifier=…[&type=…][&date=…]
    /// [&contenttype=…][&category=…][&creation=…]`, each date bound with its
    /// prefix written out.
    pub fn relay_path(&self) -> String {
        let mut query = Query::new("DocumentReference");
        query.token("patient.identifier", &self.patient_identifier);
        if let Some(type_) = &self.type_ {
            query.token("type", type_);
        }
        for bound in &self.date {
            query.raw("date", &format!("{}{}", bound.prefix.code(), bound.value));
        }
        if let Some(contenttype) = &self.contenttype {
            query.raw("contenttype", contenttype);
        }
        if let Some(category) = &self.category {
            query.token("category", category);
        }
        for bound in &self.creation {
            query.raw(
                "creation",
                &format!("{}{}", bound.prefix.code(), bound.value),
            );
        }
        query.finish()
    }
}

impl MedicationRequestSearch {
    /// Parses the raw query string of `GET MedicationRequest?…`.
    pub fn parse(query: &str) -> Result<Self, Vec<SearchRefusal>> {
        let (params, mut refusals) = collect(query, MEDICATION_REQUEST_PARAMS);
        let patient_identifier = required(&params, "patient.identifier", &mut refusals)
            .and_then(|v| keep(parse_system_token("patient.identifier", v), &mut refusals));
        let status = params
            .get("status")
            .and_then(|v| keep(parse_statuses("status", v), &mut refusals))
            .unwrap_or_default();
        match patient_identifier {
            Some(patient_identifier) if refusals.is_empty() => Ok(Self {
                patient_identifier,
                status,
            }),
            _ => Err(refusals),
        }
    }

    /// `MedicationRequest?patient.identifier=…[&status=a,b]`.
    pub fn relay_path(&self) -> String {
        let mut query = Query::new("MedicationRequest");
        query.token("patient.identifier", &self.patient_identifier);
        if !self.status.is_empty() {
            let codes: Vec<&str> = self.status.iter().map(|s| s.code()).collect();
            query.alternatives("status", &codes);
        }
        query.finish()
    }
}

impl BundleRead {
    /// Parses `GET Bundle/{id}`: the path segment `id` (as received,
    /// percent-encoded or not) and the raw query, which must be empty.
    pub fn parse(id: &str, query: &str) -> Result<Self, Vec<SearchRefusal>> {
        let (_, mut refusals) = collect(query, NO_PARAMS);
        let id_ok = id.len() <= 64
            && !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !id_ok {
            refusals.push(SearchRefusal::new(
                "id",
                RefusalKind::Malformed {
                    expected: "a resource id: 1 to 64 letters, digits, '-' or '.'",
                },
            ));
        }
        if refusals.is_empty() {
            Ok(Self { id: id.to_owned() })
        } else {
            Err(refusals)
        }
    }

    /// `Bundle/{id}`.
    pub fn relay_path(&self) -> String {
        format!("Bundle/{}", self.id)
    }
}

pub(crate) fn keep<T>(
    result: Result<T, SearchRefusal>,
    refusals: &mut Vec<SearchRefusal>,
) -> Option<T> {
    result.map_err(|r| refusals.push(r)).ok()
}

pub(crate) fn required<'a>(
    params: &'a BTreeMap<&'static str, String>,
    name: &'static str,
    refusals: &mut Vec<SearchRefusal>,
) -> Option<&'a String> {
    let value = params.get(name);
    let repeated_or_broken = refusals
        .iter()
        .any(|r| r.parameter == name || matches!(r.kind, RefusalKind::QueryTooLong { .. }));
    if value.is_none() && !repeated_or_broken {
        refusals.push(SearchRefusal::new(name, RefusalKind::Missing));
    }
    value
}

/// Splits, percent-decodes and sorts the query into the known parameters
/// (by their static name) and refusals.
pub(crate) fn collect(
    query: &str,
    known: &'static [&'static str],
) -> (BTreeMap<&'static str, String>, Vec<SearchRefusal>) {
    let (params, _, refusals) = collect_repeatable(query, known, &[]);
    (params, refusals)
}

/// [`collect`], with the parameters of `repeatable` (each value kept, in
/// order) apart.
#[allow(clippy::type_complexity)]
fn collect_repeatable(
    query: &str,
    known: &'static [&'static str],
    repeatable: &'static [&'static str],
) -> (
    BTreeMap<&'static str, String>,
    BTreeMap<&'static str, Vec<String>>,
    Vec<SearchRefusal>,
) {
    let mut params = BTreeMap::new();
    let mut repeated_values: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut refusals = Vec::new();
    let query = query.strip_prefix('?').unwrap_or(query);
    if query.len() > MAX_QUERY_BYTES {
        refusals.push(SearchRefusal::new(
            "",
            RefusalKind::QueryTooLong {
                max: MAX_QUERY_BYTES,
            },
        ));
        return (params, repeated_values, refusals);
    }
    let mut unknown = BTreeSet::new();
    let mut modified = BTreeSet::new();
    let mut repeated = BTreeSet::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = match decode(raw_name, MAX_NAME_BYTES) {
            Ok(name) => name,
            Err(kind) => {
                refusals.push(SearchRefusal::new(&printable_prefix(raw_name), kind));
                continue;
            }
        };
        let known_name = known.iter().copied().find(|k| *k == name);
        let value = match decode(raw_value, MAX_VALUE_BYTES) {
            Ok(value) => value,
            Err(kind) => {
                refusals.push(SearchRefusal::new(&name, kind));
                continue;
            }
        };
        if value.is_empty() {
            continue;
        }
        match known_name {
            Some(k) if repeatable.contains(&k) => {
                repeated_values.entry(k).or_default().push(value);
            }
            Some(k) => {
                if params.insert(k, value).is_some() {
                    repeated.insert(k);
                }
            }
            None => {
                let base = name.split(':').next().unwrap_or_default();
                if name.contains(':') && known.contains(&base) {
                    modified.insert(name);
                } else {
                    unknown.insert(name);
                }
            }
        }
    }
    for name in repeated {
        params.remove(name);
        refusals.push(SearchRefusal::new(name, RefusalKind::Repeated));
    }
    refusals.extend(
        modified
            .into_iter()
            .map(|n| SearchRefusal::new(&n, RefusalKind::UnsupportedModifier)),
    );
    refusals.extend(
        unknown
            .into_iter()
            .map(|n| SearchRefusal::new(&n, RefusalKind::UnknownParameter { supported: known })),
    );
    (params, repeated_values, refusals)
}

/// Percent-decodes one query value (RFC 3986 §2.1) into UTF-8 without
/// control characters, as the NCPeH searches do: for other searches of the
/// gateway (the patient's access log). `None` when it cannot be decoded.
pub fn percent_decode(raw: &str) -> Option<String> {
    decode(raw, raw.len()).ok()
}

/// Percent-encodes a query value as the canonical relay paths do (RFC 3986
/// unreserved characters and `:`, `/`, `@` kept as they are).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    percent_encode_into(value, &mut out);
    out
}

/// Percent-decodes (RFC 3986 §2.1) into UTF-8 without control characters,
/// at most `max` bytes.
fn decode(raw: &str, max: usize) -> Result<String, RefusalKind> {
    // Decoding never lengthens: a raw value within the limit decodes within it.
    let mut bytes = Vec::with_capacity(raw.len().min(max));
    let mut iter = raw.bytes();
    while let Some(b) = iter.next() {
        let byte = if b == b'%' {
            let high = iter.next().and_then(hex_value);
            let low = iter.next().and_then(hex_value);
            match (high, low) {
                (Some(h), Some(l)) => (h << 4) | l,
                _ => return Err(RefusalKind::InvalidPercentEncoding),
            }
        } else {
            b
        };
        if bytes.len() == max {
            return Err(RefusalKind::TooLong { max });
        }
        bytes.push(byte);
    }
    let text = String::from_utf8(bytes).map_err(|_| RefusalKind::InvalidUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(RefusalKind::ControlCharacter);
    }
    Ok(text)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A name that could not be decoded, shown as its printable ASCII prefix.
fn printable_prefix(raw: &str) -> String {
    raw.chars()
        .take_while(|c| c.is_ascii_graphic())
        .take(MAX_NAME_BYTES)
        .collect()
}

/// One character of a decoded value and whether it was escaped with `\`.
type Escaped = (char, bool);

/// Resolves FHIR escapes (search.html#escaping).
fn unescape(parameter: &str, value: &str) -> Result<Vec<Escaped>, SearchRefusal> {
    let mut out = Vec::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | '|' | ',' | '$')) => out.push((e, true)),
                _ => return Err(SearchRefusal::new(parameter, RefusalKind::InvalidEscape)),
            }
        } else {
            out.push((c, false));
        }
    }
    Ok(out)
}

fn is_separator(c: &Escaped, separator: char) -> bool {
    c.0 == separator && !c.1
}

fn literal(chars: &[Escaped]) -> String {
    chars.iter().map(|c| c.0).collect()
}

/// One value (no unescaped `,`), unescaped.
fn parse_single_escaped(parameter: &str, value: &str) -> Result<Vec<Escaped>, SearchRefusal> {
    let chars = unescape(parameter, value)?;
    if chars.iter().any(|c| is_separator(c, ',')) {
        return Err(SearchRefusal::new(parameter, RefusalKind::MultipleValues));
    }
    Ok(chars)
}

fn parse_single(parameter: &str, value: &str) -> Result<String, SearchRefusal> {
    parse_single_escaped(parameter, value).map(|c| literal(&c))
}

/// `system|value`, both present.
pub(crate) fn parse_system_token(
    parameter: &str,
    value: &str,
) -> Result<TokenParam, SearchRefusal> {
    let chars = parse_single_escaped(parameter, value)?;
    let Some(bar) = chars.iter().position(|c| is_separator(c, '|')) else {
        return Err(SearchRefusal::new(parameter, RefusalKind::MissingSystem));
    };
    let (system, rest) = chars.split_at(bar);
    let value = rest.get(1..).unwrap_or_default();
    if system.is_empty() {
        return Err(SearchRefusal::new(parameter, RefusalKind::MissingSystem));
    }
    if value.iter().any(|c| is_separator(c, '|')) {
        return Err(SearchRefusal::new(
            parameter,
            RefusalKind::Malformed {
                expected: "system|value with one unescaped '|'",
            },
        ));
    }
    if value.is_empty() {
        return Err(SearchRefusal::new(parameter, RefusalKind::MissingValue));
    }
    Ok(TokenParam {
        system: literal(system),
        value: literal(value),
    })
}

const DATE_FORM: &str = "a date YYYY, YYYY-MM or YYYY-MM-DD";
const DATE_PREFIXES: [&str; 8] = ["ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"];

fn parse_date(parameter: &str, value: &str) -> Result<DateParam, SearchRefusal> {
    let text = parse_single(parameter, value)?;
    let malformed = || {
        SearchRefusal::new(
            parameter,
            RefusalKind::Malformed {
                expected: DATE_FORM,
            },
        )
    };
    let text = text.strip_prefix("eq").unwrap_or(&text);
    if DATE_PREFIXES.iter().any(|p| text.starts_with(p)) {
        return Err(SearchRefusal::new(
            parameter,
            RefusalKind::UnsupportedPrefix,
        ));
    }
    let mut parts = text.split('-');
    let year = parts
        .next()
        .and_then(|y| digits(y, 4))
        .filter(|y| (1..=9999).contains(y))
        .ok_or_else(malformed)?;
    let month = match parts.next() {
        None => return Ok(DateParam::Year(year)),
        Some(m) => digits(m, 2)
            .filter(|m| (1..=12).contains(m))
            .ok_or_else(malformed)?,
    };
    let day = match parts.next() {
        None => return Ok(DateParam::Month(year, month as u8)),
        Some(d) => digits(d, 2)
            .filter(|d| *d >= 1 && *d <= days_in_month(year, month))
            .ok_or_else(malformed)?,
    };
    if parts.next().is_some() {
        return Err(malformed());
    }
    Ok(DateParam::Day(year, month as u8, day as u8))
}

const DATE_BOUND_FORM: &str = "a prefix eq, ge, le, gt or lt (or none) and a date YYYY, YYYY-MM, \
     YYYY-MM-DD or a dateTime YYYY-MM-DDThh:mm:ss[.fff] with Z or ±hh:mm";

/// A `date`/`creation` bound of the document search (search.html#date,
/// #prefix).
fn parse_date_bound(parameter: &str, value: &str) -> Result<DateBound, SearchRefusal> {
    let text = parse_single(parameter, value)?;
    let malformed = || {
        SearchRefusal::new(
            parameter,
            RefusalKind::Malformed {
                expected: DATE_BOUND_FORM,
            },
        )
    };
    let prefixes = [
        ("eq", DatePrefix::Eq),
        ("gt", DatePrefix::Gt),
        ("lt", DatePrefix::Lt),
        ("ge", DatePrefix::Ge),
        ("le", DatePrefix::Le),
    ];
    let (prefix, rest) = prefixes
        .iter()
        .find_map(|(code, prefix)| text.strip_prefix(code).map(|rest| (*prefix, rest)))
        .unwrap_or((DatePrefix::Eq, text.as_str()));
    if DATE_PREFIXES.iter().any(|p| rest.starts_with(p)) {
        return Err(malformed());
    }
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    let day_us = 86_400_000_000_i64;
    let (start_us, end_us) = match (parse_date(parameter, date).map_err(|_| malformed())?, time) {
        (DateParam::Year(y), None) => (
            days_from_civil(y, 1, 1) * day_us,
            days_from_civil(y + 1, 1, 1) * day_us,
        ),
        (DateParam::Month(y, m), None) => {
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (
                days_from_civil(y, m, 1) * day_us,
                days_from_civil(ny, nm, 1) * day_us,
            )
        }
        (DateParam::Day(y, m, d), None) => {
            let start = days_from_civil(y, m, d) * day_us;
            (start, start + day_us)
        }
        (DateParam::Day(y, m, d), Some(time)) => {
            let start =
                days_from_civil(y, m, d) * day_us + time_of_day_us(time).ok_or_else(malformed)?;
            (start, start + 1_000_000)
        }
        (_, Some(_)) => return Err(malformed()),
    };
    Ok(DateBound {
        prefix,
        value: rest.to_owned(),
        start_us,
        end_us,
    })
}

/// `hh:mm:ss[.f…](Z|±hh:mm)` as microseconds from midnight UTC (may be
/// negative or past a day: the offset moves it), to the second.
fn time_of_day_us(time: &str) -> Option<i64> {
    let (clock, offset_us) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (clock, offset) = time.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (h, m) = offset.get(1..)?.split_once(':')?;
        let (h, m) = (i64::from(digits(h, 2)?), i64::from(digits(m, 2)?));
        if h > 14 || m > 59 {
            return None;
        }
        (clock, sign * (h * 3600 + m * 60) * 1_000_000)
    };
    let mut parts = clock.splitn(3, ':');
    let h = i64::from(digits(parts.next()?, 2)?);
    let m = i64::from(digits(parts.next()?, 2)?);
    let seconds = parts.next()?;
    let (s, fraction) = match seconds.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (seconds, None),
    };
    let s = i64::from(digits(s, 2)?);
    if fraction.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    Some((h * 3600 + m * 60 + s) * 1_000_000 - offset_us)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant,
/// "chrono-Compatible Low-Level Date Algorithms", days_from_civil).
fn days_from_civil(year: u16, month: u8, day: u8) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = i64::from(year) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A media type `type/subtype` (RFC 6838 §4.2 restricted-name characters),
/// lower-cased: the `contenttype` of the document search.
fn parse_media_type(parameter: &str, value: &str) -> Result<String, SearchRefusal> {
    let text = parse_single(parameter, value)?;
    let name = |part: &str| {
        !part.is_empty()
            && part.len() <= 127
            && part.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                    )
            })
    };
    match text.split_once('/') {
        Some((kind, subtype)) if name(kind) && name(subtype) => Ok(text.to_ascii_lowercase()),
        _ => Err(SearchRefusal::new(
            parameter,
            RefusalKind::Malformed {
                expected: "a media type type/subtype, e.g. application/pdf",
            },
        )),
    }
}

/// Exactly `len` ASCII digits.
fn digits(text: &str, len: usize) -> Option<u16> {
    if text.len() != len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn days_in_month(year: u16, month: u16) -> u16 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

fn parse_gender(parameter: &str, value: &str) -> Result<Gender, SearchRefusal> {
    let chars = parse_single_escaped(parameter, value)?;
    let code = match chars.iter().position(|c| is_separator(c, '|')) {
        None => literal(&chars),
        Some(bar) => {
            let (system, rest) = chars.split_at(bar);
            if !system.is_empty() && literal(system) != ADMINISTRATIVE_GENDER {
                return Err(SearchRefusal::new(
                    parameter,
                    RefusalKind::Malformed {
                        expected: "male, female, other or unknown (system http://hl7.org/fhir/administrative-gender)",
                    },
                ));
            }
            literal(rest.get(1..).unwrap_or_default())
        }
    };
    Gender::parse(&code).ok_or_else(|| {
        SearchRefusal::new(
            parameter,
            RefusalKind::Malformed {
                expected: "male, female, other or unknown",
            },
        )
    })
}

/// `_elements`: comma-separated root element names of the Patient
/// ([`PATIENT_ELEMENTS`]); returned in that list's order, each once.
fn parse_elements(parameter: &str, value: &str) -> Result<Vec<&'static str>, SearchRefusal> {
    let chars = unescape(parameter, value)?;
    let mut asked = BTreeSet::new();
    for alternative in chars.split(|c| is_separator(c, ',')) {
        let name = literal(alternative);
        let position = PATIENT_ELEMENTS
            .iter()
            .position(|e| *e == name)
            .ok_or_else(|| {
                SearchRefusal::new(
                    parameter,
                    RefusalKind::Malformed {
                        expected: "comma-separated root element names of Patient (identifier, \
                                   name, birthDate, gender, …; patient.html)",
                    },
                )
            })?;
        asked.insert(position);
    }
    Ok(asked
        .into_iter()
        .filter_map(|i| PATIENT_ELEMENTS.get(i).copied())
        .collect())
}

fn parse_statuses(
    parameter: &str,
    value: &str,
) -> Result<Vec<MedicationRequestStatus>, SearchRefusal> {
    let chars = unescape(parameter, value)?;
    let mut statuses = BTreeSet::new();
    for alternative in chars.split(|c| is_separator(c, ',')) {
        let status = MedicationRequestStatus::parse(&literal(alternative)).ok_or_else(|| {
            SearchRefusal::new(
                parameter,
                RefusalKind::Malformed {
                    expected: "comma-separated MedicationRequest statuses (active, on-hold, \
                               cancelled, completed, entered-in-error, stopped, draft, unknown)",
                },
            )
        })?;
        statuses.insert(status);
    }
    Ok(statuses.into_iter().collect())
}

/// Builds a canonical relative URL.
struct Query {
    text: String,
    first: bool,
}

impl Query {
    fn new(resource_type: &str) -> Self {
        Self {
            text: resource_type.to_owned(),
            first: true,
        }
    }

    /// `name=` + the value percent-encoded as is (codes and dates, which
    /// need no FHIR escape).
    fn raw(&mut self, name: &str, value: &str) {
        self.text.push(if self.first { '?' } else { '&' });
        self.first = false;
        self.text.push_str(name);
        self.text.push('=');
        percent_encode_into(value, &mut self.text);
    }

    /// `name=a,b,…`: each alternative FHIR-escaped and percent-encoded,
    /// joined by a literal `,` (the OR separator, search.html#combining).
    fn alternatives(&mut self, name: &str, values: &[&str]) {
        self.raw(name, "");
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            percent_encode_into(&fhir_escape(value), &mut self.text);
        }
    }

    /// `name=` + the value FHIR-escaped, then percent-encoded.
    fn escaped(&mut self, name: &str, value: &str) {
        self.raw(name, &fhir_escape(value));
    }

    /// `name=system|value`, each part FHIR-escaped, then percent-encoded.
    fn token(&mut self, name: &str, token: &TokenParam) {
        let joined = format!(
            "{}|{}",
            fhir_escape(&token.system),
            fhir_escape(&token.value)
        );
        self.raw(name, &joined);
    }

    fn finish(self) -> String {
        self.text
    }
}

/// Prefixes `\`, `|`, `,` and `$` with `\` (search.html#escaping).
fn fhir_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '|' | ',' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Percent-encodes every byte except RFC 3986 unreserved characters
/// (§2.3) and `:`, `/`, `@`, which a query may carry as they are (§3.4).
fn percent_encode_into(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'/' | b'@')
        {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(*HEX.get(usize::from(b >> 4)).unwrap_or(&b'0')));
            out.push(char::from(*HEX.get(usize::from(b & 0x0f)).unwrap_or(&b'0')));
        }
    }
}
