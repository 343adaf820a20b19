//! Two versions of one package side by side (IPS 1.1.0 and 2.0.0-ballot,
//! HL7 Europe Laboratory 0.1.0 and 0.2.0-ci): a profile claimed or required
//! as `url|version` is checked in that version, a version-less one in the
//! default (the highest), and in a package's context
//! (`Validator::validate_in_package`) in that package's dependency scope.
//!
//! The witness: the IPS 2.0.0-ballot example `bundle-no-info-required-sections`
//! fills `Composition.section.emptyReason`, which IPS 2.0.0-ballot allows and
//! IPS 1.1.0's Composition-uv-ips prohibits (`max` 0 on the required
//! sections' `emptyReason`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::OnceLock;

use ehds_fhir::ReceivedResource;
use ehds_profiles::{PackageId, Registry};
use ehds_test_support::{conformance_dir, repo_root};
use ehds_validation::{ValidationReport, Validator};

const IPS_BUNDLE: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips";

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        Validator::new(&Registry::load_root(&repo_root().join("profiles")).unwrap())
    })
}

/// The witness document; `claim` replaces its version-less claim of the IPS
/// Bundle profile.
fn witness(claim: Option<&str>) -> ReceivedResource {
    let path = conformance_dir().join("examples/ips/Bundle-bundle-no-info-required-sections.json");
    let text = std::fs::read_to_string(path).unwrap();
    let quoted = format!("\"{IPS_BUNDLE}\"");
    assert!(text.contains(&quoted));
    let text = match claim {
        Some(claim) => text.replacen(&quoted, &format!("\"{claim}\""), 1),
        None => text,
    };
    ReceivedResource::parse(text.into_bytes().into()).unwrap()
}

/// Errors, among them IPS 1.1.0's prohibition of `section.emptyReason`.
/// Refused, because of `emptyReason`: the Composition is then in no slice of
/// the Bundle profile (slice membership by conformance, as Java decides
/// it), so `entry:composition`'s minimum fails, with the `emptyReason`
/// finding as its reason.
fn rejected_for_empty_reason(report: &ValidationReport) -> bool {
    !report.is_acceptable()
        && report.issues.iter().any(|i| {
            i.expression
                .as_deref()
                .is_some_and(|e| e.ends_with(".emptyReason"))
        })
}

fn ips(version: &str) -> PackageId {
    PackageId {
        name: "hl7.fhir.uv.ips".into(),
        version: version.into(),
    }
}

#[test]
fn a_version_less_claim_means_the_default_the_highest() {
    let report = validator().validate(&witness(None), &[]);
    assert!(report.is_acceptable(), "{report:#?}");
    let required = validator().validate(&witness(None), &[IPS_BUNDLE]);
    assert!(required.is_acceptable(), "{required:#?}");
}

#[test]
fn a_claim_of_1_1_0_is_checked_against_1_1_0() {
    let claimed = validator().validate(&witness(Some(&format!("{IPS_BUNDLE}|1.1.0"))), &[]);
    assert!(rejected_for_empty_reason(&claimed), "{claimed:#?}");
    let newest = validator().validate(&witness(Some(&format!("{IPS_BUNDLE}|2.0.0-ballot"))), &[]);
    assert!(newest.is_acceptable(), "{newest:#?}");
}

#[test]
fn a_required_profile_with_a_version_is_that_version() {
    // What `validation.document_profiles = ["…/Bundle-uv-ips|1.1.0"]` does
    // to a pushed document.
    let pinned = format!("{IPS_BUNDLE}|1.1.0");
    let report = validator().validate_pushed_document(&witness(None), &[&pinned]);
    assert!(rejected_for_empty_reason(&report), "{report:#?}");
    assert!(validator().knows_profile(&pinned));
    // Java `CanonicalResourceManager.get`: a release not held falls back to
    // the highest of its major.minor.
    assert!(validator().knows_profile(&format!("{IPS_BUNDLE}|1.1")));
    assert!(validator().knows_profile(&format!("{IPS_BUNDLE}|1.1.7")));
    assert!(!validator().knows_profile(&format!("{IPS_BUNDLE}|3.0.0")));
}

#[test]
fn in_a_package_context_version_less_claims_resolve_in_its_scope() {
    let in_old = validator().validate_in_package(&witness(None), &[], &ips("1.1.0"));
    assert!(rejected_for_empty_reason(&in_old), "{in_old:#?}");
    let in_new = validator().validate_in_package(&witness(None), &[], &ips("2.0.0-ballot"));
    assert!(in_new.is_acceptable(), "{in_new:#?}");
    // MyHealth@EU Laboratory 0.0.1 depends on IPS 1.1.0.
    let myhealth = PackageId {
        name: "myhealth.eu.fhir.laboratory".into(),
        version: "0.0.1".into(),
    };
    assert!(validator().knows_package(&myhealth));
    let in_lab = validator().validate_in_package(&witness(None), &[], &myhealth);
    assert!(rejected_for_empty_reason(&in_lab), "{in_lab:#?}");
    // A package that is not loaded adds no scope.
    let unknown = validator().validate_in_package(&witness(None), &[], &ips("9.9.9"));
    assert!(unknown.is_acceptable(), "{unknown:#?}");
    // The push path, for a service whose documents follow one package.
    let pushed =
        validator().validate_pushed_document_in_package(&witness(None), &[IPS_BUNDLE], &myhealth);
    assert!(rejected_for_empty_reason(&pushed), "{pushed:#?}");
    let pushed = validator().validate_pushed_document_in_package(
        &witness(None),
        &[IPS_BUNDLE],
        &ips("2.0.0-ballot"),
    );
    assert!(pushed.is_acceptable(), "{pushed:#?}");
}

#[test]
fn an_explicit_default_package_changes_what_a_version_less_claim_means() {
    let registry = Registry::load_root(&repo_root().join("profiles"))
        .unwrap()
        .with_default_packages(&[ips("1.1.0")])
        .unwrap();
    let validator = Validator::new(&registry);
    let report = validator.validate(&witness(None), &[]);
    assert!(rejected_for_empty_reason(&report), "{report:#?}");
    let newest = validator.validate(&witness(Some(&format!("{IPS_BUNDLE}|2.0.0-ballot"))), &[]);
    assert!(newest.is_acceptable(), "{newest:#?}");
}

/// What the laboratory service will ask of a pushed report: every lab report
/// document of the HL7 Europe and MyHealth@EU packages passes the push path
/// against its Bundle profile, version-less (the default, 0.2.0-ci for
/// Bundle-eu-lab) and pinned to the 0.1.0 OpenNCP uses; and the IPS 1.1.0
/// documents against the default IPS Bundle profile (2.0.0-ballot), as the
/// gateway's shipped configuration checks a pushed summary.
#[test]
fn the_laboratory_and_ips_1_1_0_documents_pass_the_push_path() {
    const EU_LAB: &str = "http://hl7.eu/fhir/laboratory/StructureDefinition/Bundle-eu-lab";
    const MYHEALTH_LAB: &str =
        "http://fhir.ehdsi.eu/laboratory/StructureDefinition/Bundle-lab-myhealtheu";
    let eu_lab_0_1_0 = format!("{EU_LAB}|0.1.0");
    let cases: [(&str, Vec<&str>); 4] = [
        ("eu-lab-0.1.0", vec![EU_LAB, &eu_lab_0_1_0]),
        ("eu-lab-0.2.0-ci", vec![EU_LAB, &eu_lab_0_1_0]),
        ("myhealtheu-lab-0.0.1", vec![MYHEALTH_LAB, EU_LAB]),
        ("ips-1.1.0", vec![IPS_BUNDLE]),
    ];
    let mut documents = 0;
    for (folder, profiles) in cases {
        let dir = conformance_dir().join("examples").join(folder);
        for path in ehds_test_support::files_with_extension(&dir, "json") {
            let document = ReceivedResource::parse(std::fs::read(&path).unwrap().into()).unwrap();
            if document
                .root()
                .get("type")
                .and_then(ehds_fhir::Node::as_str)
                != Some("document")
            {
                continue;
            }
            documents += 1;
            for profile in &profiles {
                let report = validator().validate_pushed_document(&document, &[profile]);
                assert!(
                    report.is_acceptable(),
                    "{} against {profile}: {report:#?}",
                    path.display()
                );
            }
        }
    }
    assert_eq!(documents, 5 + 5 + 1 + 4);
}
