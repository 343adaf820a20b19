//! Conformance: a patient summary the patient has restricted still meets the
//! IPS Bundle profile (`hl7.fhir.uv.ips` 2.0.0-ballot, Bundle-uv-ips) and the
//! document rules, whatever single entry or whole section is withheld (EHDS:
//! restricted content leaves out what the patient hid while "remaining a
//! valid IPS document"). Every IPS document among the example documents is
//! restricted once per clinical entry and once per section; each variant is
//! validated like a document received from a peer.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ehds_fhir::ReceivedResource;
use ehds_fhir::restriction::{
    Restricted, RestrictedPart, URI_IDENTIFIER_SYSTEM, VariantIdentity, restrict_document,
};
use ehds_profiles::Registry;
use ehds_test_support::{conformance_dir, files_with_extension, repo_root};
use ehds_validation::Validator;

const IPS_BUNDLE: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips";

const IDENTITY: VariantIdentity<'static> = VariantIdentity {
    id: "restricted-variant",
    identifier_system: URI_IDENTIFIER_SYSTEM,
    identifier_value: "urn:uuid:6f1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b",
    timestamp: "2026-11-24T12:00:00Z",
};

fn ips_documents() -> Vec<(String, ReceivedResource)> {
    files_with_extension(&conformance_dir().join("examples"), "json")
        .into_iter()
        .filter_map(|path| {
            let resource = ReceivedResource::parse(std::fs::read(&path).unwrap().into()).ok()?;
            let root = resource.root();
            let is_ips = root.get("type").and_then(ehds_fhir::Node::as_str) == Some("document")
                && root
                    .get("meta")
                    .and_then(|m| m.get("profile"))
                    .map(ehds_fhir::Node::items)
                    .unwrap_or(&[])
                    .iter()
                    .any(|p| p.as_str().is_some_and(|p| p.contains("/uv/ips/")))
                || path.to_string_lossy().contains("/ips/");
            (resource.resource_type() == "Bundle"
                && root.get("type").and_then(ehds_fhir::Node::as_str) == Some("document")
                && is_ips)
                .then(|| (path.display().to_string(), resource))
        })
        .collect()
}

/// Each restriction to try on `document`: every entry but the Composition,
/// by fullUrl, and every top-level section by its first coding.
fn restrictions(document: &ReceivedResource) -> Vec<RestrictedPart> {
    let root = document.root();
    let mut parts = Vec::new();
    for entry in root
        .get("entry")
        .map(ehds_fhir::Node::items)
        .unwrap_or(&[])
        .iter()
        .skip(1)
    {
        if let Some(url) = entry.get("fullUrl").and_then(ehds_fhir::Node::as_str) {
            parts.push(RestrictedPart::Entry(url.to_owned()));
        }
    }
    let composition = &root.get("entry").unwrap().items()[0];
    for section in composition
        .get("resource")
        .and_then(|c| c.get("section"))
        .map(ehds_fhir::Node::items)
        .unwrap_or(&[])
    {
        let coding = &section.get("code").unwrap().get("coding").unwrap().items()[0];
        parts.push(RestrictedPart::Section {
            system: coding.get("system").unwrap().as_str().unwrap().to_owned(),
            code: coding.get("code").unwrap().as_str().unwrap().to_owned(),
        });
    }
    parts
}

#[test]
fn restricted_ips_summaries_still_meet_the_ips_profile() {
    let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
    let validator = Validator::new(&registry);
    drop(registry);
    let documents = ips_documents();
    assert!(
        documents.len() >= 4,
        "only {} IPS documents",
        documents.len()
    );
    let mut variants = 0;
    let mut failures = Vec::new();
    for (name, document) in &documents {
        let baseline = validator.validate(document, &[IPS_BUNDLE]);
        assert!(
            baseline.is_acceptable(),
            "{name} is not a valid IPS to begin with: {:#?}",
            baseline.issues
        );
        for part in restrictions(document) {
            let restricted = restrict_document(
                document.root(),
                document.bytes(),
                std::slice::from_ref(&part),
                IDENTITY,
            );
            let Restricted::Variant { content, .. } = restricted else {
                // The Patient and authors are never withheld.
                continue;
            };
            variants += 1;
            let variant = ReceivedResource::parse(content.into()).unwrap();
            let report = validator.validate(&variant, &[IPS_BUNDLE]);
            if !report.is_acceptable() {
                let errors: Vec<_> = report
                    .issues
                    .iter()
                    .filter(|i| i.severity.is_error())
                    .map(|i| format!("{:?}", i))
                    .collect();
                failures.push(format!("{name} without {part:?}: {errors:#?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(variants >= 40, "only {variants} variants were built");
}
