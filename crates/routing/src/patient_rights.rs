//! The queries of the patient's own reads on the national API (EHDS Art.
//! 8–10, through the patient portal), parsed into typed requests with the
//! same strict rules as the cross-border searches ([`crate::search`]): an
//! unknown, repeated, modified or malformed parameter is a
//! [`SearchRefusal`] located at it, so the gateway answers 400 for every
//! malformed query, whichever API it came to.
//!
//! - `GET AuditEvent?patient.identifier=system|value[&_count=n][&_before=seq]`:
//!   the patient's access log, newest first ([`AccessLogQuery`]);
//! - `GET $cross-border-opt-out?patient.identifier=system|value` and
//!   `GET $cross-border-restriction?patient.identifier=system|value`: the
//!   patient's choices in force ([`PatientChoicesQuery`]).
//!
//! `_count` is FHIR's page size (<https://hl7.org/fhir/R4/search.html#count>);
//! `_before` is this gateway's paging cursor, the sequence number of the
//! last record of the previous page, as written in the `next` link.

use crate::search::{
    RefusalKind, SearchRefusal, TokenParam, collect, keep, parse_system_token, required,
};

/// Records per page of the access log when `_count` is absent.
pub const DEFAULT_ACCESS_LOG_PAGE: u32 = 20;
/// Most records per page of the access log.
pub const MAX_ACCESS_LOG_PAGE: u32 = 100;

const ACCESS_LOG_PARAMS: &[&str] = &["patient.identifier", "_count", "_before"];
const PATIENT_CHOICES_PARAMS: &[&str] = &["patient.identifier"];

/// `GET AuditEvent?…`: one page of a patient's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogQuery {
    /// The patient, by national identifier.
    pub patient: TokenParam,
    /// Records per page, 1 to [`MAX_ACCESS_LOG_PAGE`].
    pub count: u32,
    /// Only records older than this sequence number (the next page).
    pub before: Option<u64>,
}

impl AccessLogQuery {
    /// Parses the raw query string (with or without the leading `?`).
    pub fn parse(query: &str) -> Result<Self, Vec<SearchRefusal>> {
        let (params, mut refusals) = collect(query, ACCESS_LOG_PARAMS);
        let patient = required(&params, "patient.identifier", &mut refusals)
            .and_then(|v| keep(parse_system_token("patient.identifier", v), &mut refusals));
        let count = params
            .get("_count")
            .and_then(|v| keep(parse_count(v), &mut refusals))
            .unwrap_or(DEFAULT_ACCESS_LOG_PAGE);
        let before = params
            .get("_before")
            .and_then(|v| keep(parse_before(v), &mut refusals));
        match patient {
            Some(patient) if refusals.is_empty() => Ok(Self {
                patient,
                count,
                before,
            }),
            _ => Err(refusals),
        }
    }
}

/// `GET $cross-border-opt-out?…` or `GET $cross-border-restriction?…`: the
/// choices in force of one patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientChoicesQuery {
    /// The patient, by national identifier.
    pub patient: TokenParam,
}

impl PatientChoicesQuery {
    /// Parses the raw query string (with or without the leading `?`).
    pub fn parse(query: &str) -> Result<Self, Vec<SearchRefusal>> {
        let (params, mut refusals) = collect(query, PATIENT_CHOICES_PARAMS);
        let patient = required(&params, "patient.identifier", &mut refusals)
            .and_then(|v| keep(parse_system_token("patient.identifier", v), &mut refusals));
        match patient {
            Some(patient) if refusals.is_empty() => Ok(Self { patient }),
            _ => Err(refusals),
        }
    }
}

fn parse_count(value: &str) -> Result<u32, SearchRefusal> {
    value
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_ACCESS_LOG_PAGE).contains(n))
        .ok_or_else(|| {
            SearchRefusal::new(
                "_count",
                RefusalKind::Malformed {
                    expected: "a whole number from 1 to 100",
                },
            )
        })
}

fn parse_before(value: &str) -> Result<u64, SearchRefusal> {
    value.parse::<u64>().map_err(|_| {
        SearchRefusal::new(
            "_before",
            RefusalKind::Malformed {
                expected: "a record number from the previous page's next link",
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(refusals: &[SearchRefusal]) -> Vec<(&str, &RefusalKind)> {
        refusals
            .iter()
            .map(|r| (r.parameter.as_str(), &r.kind))
            .collect()
    }

    #[test]
    fn an_access_log_page_is_read_with_its_defaults() {
        let query = AccessLogQuery::parse("patient.identifier=urn:oid:1.2%7CBE-1").unwrap();
        assert_eq!(query.patient.system, "urn:oid:1.2");
        assert_eq!(query.patient.value, "BE-1");
        assert_eq!(query.count, DEFAULT_ACCESS_LOG_PAGE);
        assert_eq!(query.before, None);
        let next = AccessLogQuery::parse("?patient.identifier=s%7Cv&_count=5&_before=42").unwrap();
        assert_eq!((next.count, next.before), (5, Some(42)));
    }

    #[test]
    fn malformed_access_log_queries_are_refused_at_their_parameter() {
        for (query, parameter) in [
            ("", "patient.identifier"),
            ("patient.identifier=nobar", "patient.identifier"),
            ("patient.identifier=s%7C", "patient.identifier"),
            ("patient.identifier=s%7Cv&_count=0", "_count"),
            ("patient.identifier=s%7Cv&_count=101", "_count"),
            ("patient.identifier=s%7Cv&_before=-1", "_before"),
            ("patient.identifier=s%7Cv&x=1", "x"),
            (
                "patient.identifier=s%7Cv&patient.identifier=s%7Cw",
                "patient.identifier",
            ),
            ("patient.identifier:exact=s%7Cv", "patient.identifier:exact"),
            ("patient.identifier=s%7Cv%ZZ", "patient.identifier"),
        ] {
            let refusals = AccessLogQuery::parse(query).unwrap_err();
            assert!(
                refusals.iter().any(|r| r.parameter == parameter),
                "{query}: {:?}",
                kinds(&refusals)
            );
        }
    }

    #[test]
    fn the_choices_query_takes_only_the_patient() {
        let query = PatientChoicesQuery::parse("patient.identifier=s%7Cv").unwrap();
        assert_eq!(query.patient.value, "v");
        let refusals = PatientChoicesQuery::parse("patient.identifier=s%7Cv&_count=5").unwrap_err();
        assert!(matches!(
            kinds(&refusals).as_slice(),
            [("_count", RefusalKind::UnknownParameter { .. })]
        ));
        assert!(PatientChoicesQuery::parse("").is_err());
    }
}
