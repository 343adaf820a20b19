//! Every FHIR document among the example documents meets the document Bundle
//! rules (they validate with 0 errors in their publishers' builds), and each
//! hand-made breach is found at its location.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ehds_fhir::ReceivedResource;
use ehds_test_support::{conformance_dir, files_with_extension};
use ehds_validation::document::check_document_bundle;
use ehds_validation::document::document_header;

#[test]
fn every_example_document_passes_the_document_rules() {
    let mut documents = 0;
    for path in files_with_extension(&conformance_dir().join("examples"), "json") {
        let resource = ReceivedResource::parse(std::fs::read(&path).unwrap().into()).unwrap();
        if resource.resource_type() != "Bundle"
            || resource
                .root()
                .get("type")
                .and_then(ehds_fhir::Node::as_str)
                != Some("document")
        {
            continue;
        }
        documents += 1;
        let report = check_document_bundle(&resource);
        assert!(
            report.is_acceptable(),
            "{}: {:#?}",
            path.display(),
            report.issues
        );
        assert!(document_header(&resource).is_some(), "{}", path.display());
    }
    // 4 IPS IG documents, the IHE connectathon IPS, and the R4 spec's
    // Bundle-father.
    assert!(documents >= 6, "only {documents} documents found");
}

#[test]
fn the_ips_example_names_its_patient() {
    let path = conformance_dir().join("examples/ips/Bundle-IPS-examples-Bundle-01.json");
    let resource = ReceivedResource::parse(std::fs::read(path).unwrap().into()).unwrap();
    let header = document_header(&resource).unwrap();
    assert_eq!(header.identifier_system, "urn:oid:2.16.724.4.8.10.200.10");
    assert_eq!(
        header.patient_identifier.as_deref(),
        Some("urn:oid:2.16.840.1.113883.2.4.6.3|574687583")
    );
}
