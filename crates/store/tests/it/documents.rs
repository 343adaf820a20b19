//! The store's cases, run against both backends: SQLite (a fresh file) and
//! PostgreSQL (a fresh schema on the server named by `EHDS_TEST_POSTGRES_URL`;
//! under CI a missing URL fails the test instead of skipping it). The harness
//! (`common`) removes the SQLite folder and drops the PostgreSQL schema after
//! each case, passed or failed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ehds_store::{DocumentIdentifier, NewDocument, PutOutcome, Store, StoreConfig};
use ehds_test_support::{ScratchDir, conformance_dir, files_with_extension};

on_both_backends!(
    stores_and_reads_back_exact_bytes,
    same_identifier_same_bytes_is_idempotent,
    same_identifier_other_bytes_conflicts,
    concurrent_pushes_of_one_identifier_store_it_once,
    concurrent_pushes_keep_their_own_outcomes,
    every_example_round_trips_byte_identical,
    unknown_ids_are_none,
    documents_for_patient_newest_first,
    the_document_type_is_kept_beside_the_bytes,
    a_pdf_original_keeps_its_media_type,
);

const PATIENT: &str = "urn:oid:2.16.17.710.850.1000.990.1|123";

fn doc<'a>(value: &str, content: &'a [u8]) -> NewDocument<'a> {
    NewDocument {
        identifier: DocumentIdentifier {
            system: "urn:ietf:rfc:3986".into(),
            value: value.into(),
        },
        bundle_type: "document",
        patient_identifier: Some(PATIENT),
        sender: "test",
        document_type: None,
        content_type: ehds_store::FHIR_JSON,
        content,
    }
}

/// The document's type (by which the gateway knows its service) is read
/// back with the document and in the patient's list; none stays none.
async fn the_document_type_is_kept_beside_the_bytes(store: &Store) {
    const LAB: &str = "http://loinc.org|11502-2";
    let lab = NewDocument {
        document_type: Some(LAB),
        ..doc("urn:uuid:lab", b"{\"resourceType\":\"Bundle\"}")
    };
    let PutOutcome::Created(created) = store.put_document(lab).await.unwrap() else {
        panic!("not created");
    };
    assert_eq!(created.document_type.as_deref(), Some(LAB));
    let read = store.document(&created.id).await.unwrap().unwrap();
    assert_eq!(read, created);
    store
        .put_document(doc("urn:uuid:untyped", b"{}"))
        .await
        .unwrap();
    let mut types: Vec<Option<String>> = store
        .documents_for_patient(PATIENT, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.document_type)
        .collect();
    types.sort();
    assert_eq!(types, vec![None, Some(LAB.to_owned())]);
}

async fn stores_and_reads_back_exact_bytes(store: &Store) {
    let content = b"{\"resourceType\":\"Bundle\", \"x\": 1.50 }\n";
    let PutOutcome::Created(created) = store
        .put_document(doc("urn:uuid:a", content))
        .await
        .unwrap()
    else {
        panic!("not created");
    };
    let read = store.document(&created.id).await.unwrap().unwrap();
    assert_eq!(read.content, content);
    assert_eq!(read, created);
    assert_eq!(
        read.patient_identifier.as_deref(),
        Some("urn:oid:2.16.17.710.850.1000.990.1|123")
    );
    assert_eq!(store.document_count().await.unwrap(), 1);
    store.ping().await.unwrap();
}

async fn same_identifier_same_bytes_is_idempotent(store: &Store) {
    let content = b"{\"resourceType\":\"Bundle\"}";
    let PutOutcome::Created(first) = store
        .put_document(doc("urn:uuid:b", content))
        .await
        .unwrap()
    else {
        panic!("not created");
    };
    let again = store
        .put_document(doc("urn:uuid:b", content))
        .await
        .unwrap();
    assert_eq!(again, PutOutcome::AlreadyStored(first));
    assert_eq!(store.document_count().await.unwrap(), 1);
}

async fn same_identifier_other_bytes_conflicts(store: &Store) {
    let PutOutcome::Created(first) = store
        .put_document(doc("urn:uuid:c", b"{\"resourceType\":\"Bundle\"}"))
        .await
        .unwrap()
    else {
        panic!("not created");
    };
    // Same JSON value, different bytes: still a conflict (bytes are the truth).
    let other = store
        .put_document(doc("urn:uuid:c", b"{ \"resourceType\":\"Bundle\"}"))
        .await
        .unwrap();
    assert_eq!(
        other,
        PutOutcome::Conflict {
            existing_id: first.id.clone()
        }
    );
    let kept = store.document(&first.id).await.unwrap().unwrap();
    assert_eq!(kept.content, b"{\"resourceType\":\"Bundle\"}");
    assert_eq!(store.document_count().await.unwrap(), 1);
}

async fn concurrent_pushes_of_one_identifier_store_it_once(store: &Store) {
    let content = b"{\"resourceType\":\"Bundle\",\"id\":\"race\"}";
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.put_document(doc("urn:uuid:race", content)).await })
        })
        .collect();
    let mut created = 0;
    let mut already = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            PutOutcome::Created(_) => created += 1,
            PutOutcome::AlreadyStored(_) => already += 1,
            PutOutcome::Conflict { .. } => panic!("identical bytes must not conflict"),
        }
    }
    assert_eq!((created, already), (1, 7));
    assert_eq!(store.document_count().await.unwrap(), 1);
}

/// Many hospitals pushing at once: on SQLite their documents go through the
/// group-commit writer (module `group_commit`), several in one commit; each
/// push still gets its own outcome, among them a conflict in the same
/// moment, and every stored document reads back byte for byte.
async fn concurrent_pushes_keep_their_own_outcomes(store: &Store) {
    const PUSHES: usize = 32;
    let taken = store
        .put_document(doc("urn:uuid:taken", b"{\"resourceType\":\"Bundle\"}"))
        .await
        .unwrap();
    assert!(matches!(taken, PutOutcome::Created(_)));
    let before = store.group_commit_counts();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(PUSHES));
    let tasks: Vec<_> = (0..PUSHES)
        .map(|push| {
            let store = store.clone();
            let start = std::sync::Arc::clone(&start);
            tokio::spawn(async move {
                let content = format!("{{\"resourceType\":\"Bundle\",\"id\":\"p{push}\"}}");
                // The last push reuses a taken identifier with other bytes.
                let value = if push == PUSHES - 1 {
                    "urn:uuid:taken".to_owned()
                } else {
                    format!("urn:uuid:p{push}")
                };
                start.wait().await;
                let outcome = store
                    .put_document(doc(&value, content.as_bytes()))
                    .await
                    .unwrap();
                (push, content, outcome)
            })
        })
        .collect();
    for task in tasks {
        let (push, content, outcome) = task.await.unwrap();
        match outcome {
            PutOutcome::Created(stored) => {
                assert_ne!(push, PUSHES - 1);
                assert_eq!(stored.content, content.as_bytes());
                let kept = store.document(&stored.id).await.unwrap().unwrap();
                assert_eq!(kept, stored);
            }
            PutOutcome::Conflict { .. } => assert_eq!(push, PUSHES - 1),
            PutOutcome::AlreadyStored(_) => panic!("push {push} was new"),
        }
    }
    assert_eq!(store.document_count().await.unwrap(), PUSHES as u64);
    if let (Some(before), Some(after)) = (before, store.group_commit_counts()) {
        let writes = after.writes - before.writes;
        let commits = after.commits - before.commits;
        assert_eq!(writes, PUSHES as u64);
        assert!(commits < writes, "{commits} commits for {writes} writes");
    }
}

async fn every_example_round_trips_byte_identical(store: &Store) {
    let files = files_with_extension(&conformance_dir().join("examples"), "json");
    assert!(files.len() >= 740, "examples missing: {}", files.len());
    let mut ids = Vec::with_capacity(files.len());
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let name = path.to_string_lossy().into_owned();
        match store.put_document(doc(&name, &bytes)).await.unwrap() {
            PutOutcome::Created(stored) => ids.push((stored.id, bytes)),
            other => panic!("{name}: {other:?}"),
        }
    }
    for (id, bytes) in ids {
        assert_eq!(store.document(&id).await.unwrap().unwrap().content, bytes);
    }
}

async fn unknown_ids_are_none(store: &Store) {
    assert!(store.document("nope").await.unwrap().is_none());
    assert_eq!(store.document_count().await.unwrap(), 0);
}

async fn documents_for_patient_newest_first(store: &Store) {
    async fn put(
        store: &Store,
        value: &str,
        bundle_type: &str,
        patient: Option<&str>,
        content: &[u8],
    ) -> String {
        let new = NewDocument {
            bundle_type,
            patient_identifier: patient,
            ..doc(value, content)
        };
        let PutOutcome::Created(created) = store.put_document(new).await.unwrap() else {
            panic!("not created");
        };
        // Distinct received times (stored to the microsecond).
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        created.id
    }
    let other = "urn:oid:2.16.17.710.850.1000.990.1|456";
    let first = put(
        store,
        "urn:uuid:p1",
        "document",
        Some(PATIENT),
        b"{\"n\":1}",
    )
    .await;
    put(store, "urn:uuid:q1", "document", Some(other), b"{}").await;
    let second = put(
        store,
        "urn:uuid:p2",
        "collection",
        Some(PATIENT),
        b"{\"n\":22}",
    )
    .await;
    put(store, "urn:uuid:none", "document", None, b"{}").await;
    let third = put(
        store,
        "urn:uuid:p3",
        "document",
        Some(PATIENT),
        b"{\"n\":333}",
    )
    .await;

    let all = store.documents_for_patient(PATIENT, None).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, [third.as_str(), second.as_str(), first.as_str()]);
    assert!(all.windows(2).all(|w| w[0].received_at > w[1].received_at));
    let newest = &all[0];
    let stored = store.document(&third).await.unwrap().unwrap();
    assert_eq!(newest.identifier, stored.identifier);
    assert_eq!(newest.bundle_type, "document");
    assert_eq!(newest.received_at, stored.received_at);
    assert_eq!(newest.sha256, stored.sha256);
    assert_eq!(newest.size, 9);
    assert_eq!(all[1].size, 8);

    let documents = store
        .documents_for_patient(PATIENT, Some("document"))
        .await
        .unwrap();
    let ids: Vec<&str> = documents.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, [third.as_str(), first.as_str()]);
    assert!(
        store
            .documents_for_patient(PATIENT, Some("message"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .documents_for_patient("urn:oid:1.2.3|nobody", None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .documents_for_patient(other, None)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn sqlite_file_persists_across_reopen() {
    let dir = ScratchDir::new("reopen");
    let config = StoreConfig::Sqlite {
        path: dir.path().join("gw.db"),
    };
    let store = Store::open(&config).await.unwrap();
    let PutOutcome::Created(created) = store.put_document(doc("urn:uuid:p", b"{}")).await.unwrap()
    else {
        panic!("not created");
    };
    store.close().await;
    let reopened = Store::open(&config).await.unwrap();
    assert_eq!(
        reopened
            .document(&created.id)
            .await
            .unwrap()
            .unwrap()
            .content,
        b"{}"
    );
}

#[tokio::test]
async fn unreachable_postgres_is_an_error_not_a_hang() {
    let config = StoreConfig::Postgres {
        url: "postgres://nobody@127.0.0.1:1/none".into(),
        schema: None,
        max_connections: 1,
    };
    let opened = tokio::time::timeout(std::time::Duration::from_secs(30), Store::open(&config))
        .await
        .expect("an answer within 30 s, not a hang");
    assert!(opened.is_err());
}

/// A PDF original is stored byte-exact with its media type, read back and
/// listed with it; FHIR documents are FHIR JSON.
async fn a_pdf_original_keeps_its_media_type(store: &Store) {
    let pdf = b"%PDF-1.4\n%%EOF\n";
    let original = NewDocument {
        content_type: ehds_store::PDF,
        document_type: Some("http://loinc.org|11502-2"),
        ..doc("urn:uuid:pdf", pdf)
    };
    let PutOutcome::Created(created) = store.put_document(original).await.unwrap() else {
        panic!("not created");
    };
    let read = store.document(&created.id).await.unwrap().unwrap();
    assert_eq!(read.content, pdf);
    assert_eq!(read.content_type, ehds_store::PDF);
    let listed = store
        .documents_for_patient(PATIENT, Some("document"))
        .await
        .unwrap();
    let entry = listed.iter().find(|d| d.id == created.id).unwrap();
    assert_eq!(entry.content_type, ehds_store::PDF);
    assert!(
        listed
            .iter()
            .filter(|d| d.id != created.id)
            .all(|d| d.content_type == ehds_store::FHIR_JSON)
    );
}
