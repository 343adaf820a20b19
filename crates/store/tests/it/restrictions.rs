//! Patients' restrictions of parts of their data and the released variants
//! of their documents, on both backends: set once, listed in a fixed order,
//! lifted once; one variant kept per original and set of restrictions, the
//! first stored winning when two replicas build it at once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ehds_store::{
    DocumentIdentifier, NewDocument, NewReleasedDocument, PutOutcome, RestrictionKind, Store,
    restrictions_fingerprint,
};
use time::macros::datetime;

on_both_backends!(
    restrictions_set_listed_and_lifted,
    variants_kept_once_per_restriction_set,
    a_whole_document_is_restricted_by_its_identifier,
);

const PATIENT: &str = "urn:oid:2.16.840.1.113883.2.4.6.3|574687583";

async fn restrictions_set_listed_and_lifted(store: &Store) {
    let at = datetime!(2026-11-24 12:00 UTC);
    assert!(
        store
            .restrictions_for_patient(PATIENT)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .set_restriction(
            PATIENT,
            RestrictionKind::Section,
            "http://loinc.org|11450-4",
            at,
        )
        .await
        .unwrap();
    store
        .set_restriction(PATIENT, RestrictionKind::Entry, "Condition/1", at)
        .await
        .unwrap();
    // Setting it again keeps one.
    store
        .set_restriction(PATIENT, RestrictionKind::Entry, "Condition/1", at)
        .await
        .unwrap();
    store
        .set_restriction("urn:x|other", RestrictionKind::Entry, "Condition/2", at)
        .await
        .unwrap();
    let found = store.restrictions_for_patient(PATIENT).await.unwrap();
    let kinds: Vec<_> = found.iter().map(|r| (r.kind, r.target.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (RestrictionKind::Entry, "Condition/1"),
            (RestrictionKind::Section, "http://loinc.org|11450-4")
        ]
    );
    assert_eq!(found[0].restricted_at, at);
    assert!(
        store
            .lift_restriction(PATIENT, RestrictionKind::Entry, "Condition/1")
            .await
            .unwrap()
    );
    assert!(
        !store
            .lift_restriction(PATIENT, RestrictionKind::Entry, "Condition/1")
            .await
            .unwrap()
    );
    assert_eq!(
        store.restrictions_for_patient(PATIENT).await.unwrap().len(),
        1
    );
}

/// A whole document (one laboratory report) restricted by its identifier
/// is kept and read back as such; it is no part of the summary, so the
/// summary's released variants do not change with it.
async fn a_whole_document_is_restricted_by_its_identifier(store: &Store) {
    let at = datetime!(2026-11-24 12:00 UTC);
    let before = restrictions_fingerprint(&store.restrictions_for_patient(PATIENT).await.unwrap());
    store
        .set_restriction(
            PATIENT,
            RestrictionKind::Document,
            "urn:ietf:rfc:3986|urn:uuid:lab-1",
            at,
        )
        .await
        .unwrap();
    let found = store.restrictions_for_patient(PATIENT).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, RestrictionKind::Document);
    assert_eq!(found[0].target, "urn:ietf:rfc:3986|urn:uuid:lab-1");
    assert_eq!(
        RestrictionKind::from_name("document"),
        Some(RestrictionKind::Document)
    );
    assert!(!RestrictionKind::Document.is_summary_part());
    assert_eq!(restrictions_fingerprint(&found), before);
}

async fn variants_kept_once_per_restriction_set(store: &Store) {
    let at = datetime!(2026-11-24 12:00 UTC);
    let original = match store
        .put_document(NewDocument {
            identifier: DocumentIdentifier {
                system: "urn:ietf:rfc:3986".into(),
                value: "urn:uuid:original".into(),
            },
            bundle_type: "document",
            patient_identifier: Some(PATIENT),
            sender: "ehr",
            document_type: None,
            content_type: ehds_store::FHIR_JSON,
            content: b"{\"resourceType\":\"Bundle\"}",
        })
        .await
        .unwrap()
    {
        PutOutcome::Created(doc) => doc,
        other => panic!("{other:?}"),
    };
    store
        .set_restriction(PATIENT, RestrictionKind::Entry, "Condition/1", at)
        .await
        .unwrap();
    let fingerprint =
        restrictions_fingerprint(&store.restrictions_for_patient(PATIENT).await.unwrap());
    assert!(
        store
            .released_variant(&original.id, &fingerprint)
            .await
            .unwrap()
            .is_none()
    );
    let identifier = DocumentIdentifier {
        system: "urn:ietf:rfc:3986".into(),
        value: "urn:uuid:variant-1".into(),
    };
    let first = store
        .put_released_document(NewReleasedDocument {
            id: "variant-1",
            original_id: &original.id,
            restrictions_sha256: fingerprint,
            identifier: &identifier,
            released_at: at,
            content: b"{\"resourceType\":\"Bundle\",\"id\":\"variant-1\"}",
            provenance: b"{\"resourceType\":\"Provenance\"}",
        })
        .await
        .unwrap();
    assert_eq!(first.id, "variant-1");
    // A second replica built the same variant at the same moment: the first
    // one stored is what both release.
    let second = store
        .put_released_document(NewReleasedDocument {
            id: "variant-2",
            original_id: &original.id,
            restrictions_sha256: fingerprint,
            identifier: &DocumentIdentifier {
                system: "urn:ietf:rfc:3986".into(),
                value: "urn:uuid:variant-2".into(),
            },
            released_at: at,
            content: b"{\"resourceType\":\"Bundle\",\"id\":\"variant-2\"}",
            provenance: b"{\"resourceType\":\"Provenance\"}",
        })
        .await
        .unwrap();
    assert_eq!(second, first);
    assert!(
        store
            .released_document("variant-2")
            .await
            .unwrap()
            .is_none()
    );
    let found = store.released_document("variant-1").await.unwrap().unwrap();
    assert_eq!(found.original_id, original.id);
    assert_eq!(found.provenance, b"{\"resourceType\":\"Provenance\"}");
    // Another set of restrictions, another variant; the original untouched.
    let other = restrictions_fingerprint(&[]);
    assert!(
        store
            .released_variant(&original.id, &other)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.document(&original.id).await.unwrap().unwrap().content,
        b"{\"resourceType\":\"Bundle\"}"
    );
}
