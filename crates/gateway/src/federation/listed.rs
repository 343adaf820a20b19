//! How the federation API lists a document (NCPeH FHIR API, DocumentReference
//! search): the pieces of the minimal DocumentReference every list builds
//! (`type`, `category`) and whether a listed document meets the search's
//! NCPeH parameters. Shared by the store's lists (`super::document_search`)
//! and the national servers' (`super::national_source`,
//! `super::national_prescriptions`); knows nothing of where documents come
//! from.

use ehds_routing::search::DocumentReferenceSearch;

use crate::services::{DocumentType, Service};

/// Whether a listed document (stored `received_at`, the list's `date`; its
/// media type) meets the search's `date`, `contenttype`, `category` and
/// `creation` (search.html: every parameter must hold). The lists carry no
/// `content.attachment.creation`, so a search by `creation` finds none (a
/// resource without the element does not match).
pub(crate) fn listed_matches(
    search: &DocumentReferenceSearch,
    service: &Service,
    received_at: Option<time::OffsetDateTime>,
    content_type: &str,
) -> bool {
    let instant_us =
        received_at.map(|at| i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX));
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    // A list without a date matches no `date` bound (search.html: a
    // resource without the element does not match).
    search
        .date
        .iter()
        .all(|bound| instant_us.is_some_and(|us| bound.matches(us)))
        && search
            .contenttype
            .as_ref()
            .is_none_or(|asked| *asked == essence)
        && search.category.as_ref().is_none_or(|asked| {
            service
                .categories
                .iter()
                .any(|c| c.system == asked.system && c.code == asked.value)
        })
        && search.creation.is_empty()
}

/// `DocumentReference.category` of a service's documents.
pub(crate) fn categories_json(service: &Service) -> serde_json::Value {
    serde_json::Value::Array(
        service
            .categories
            .iter()
            .map(|c| {
                serde_json::json!({"coding": [{
                    "system": c.system, "code": c.code, "display": c.display,
                }]})
            })
            .collect(),
    )
}

/// `DocumentReference.type` of a service's document type.
pub(crate) fn type_json(type_: Option<&DocumentType>) -> serde_json::Value {
    match type_ {
        Some(t) => serde_json::json!({"coding": [{
            "system": t.system,
            "code": t.code,
            "display": t.display,
        }]}),
        None => serde_json::json!({}),
    }
}
