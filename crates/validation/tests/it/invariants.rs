//! FHIRPath invariants in the validator: failed constraints are reported
//! with their key, declared severity and the element's location; the
//! example documents raise no invariant errors and (almost) no
//! evaluation errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::OnceLock;

use ehds_fhir::ReceivedResource;
use ehds_fhir::outcome::{IssueType, Severity};
use ehds_profiles::Registry;
use ehds_test_support::{conformance_dir, files_with_extension, repo_root};
use ehds_validation::{ValidationReport, Validator};

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
        Validator::new(&registry)
    })
}

fn validate(json: &str) -> ValidationReport {
    let resource = ReceivedResource::parse(json.as_bytes().to_vec().into()).unwrap();
    validator().validate(&resource, &[])
}

fn invariant<'r>(report: &'r ValidationReport, key: &str) -> Vec<&'r ehds_fhir::outcome::Issue> {
    report
        .issues
        .iter()
        .filter(|i| {
            i.code == IssueType::Invariant && i.diagnostics.starts_with(&format!("{key}: "))
        })
        .collect()
}

#[test]
fn a_failed_invariant_is_reported_with_key_severity_and_location() {
    let report = validate(
        r#"{"resourceType":"Patient","id":"p","contained":[{"resourceType":"Organization","id":"o","name":"x"}],
            "name":[{"family":"X","period":{"start":"2020-01-02","end":"2020-01-01"}}]}"#,
    );
    let dom3 = invariant(&report, "dom-3");
    assert_eq!(dom3.len(), 1, "{report:#?}");
    assert_eq!(dom3[0].severity, Severity::Error);
    assert_eq!(dom3[0].expression.as_deref(), Some("Patient"));
    let per1 = invariant(&report, "per-1");
    assert_eq!(per1.len(), 1, "{report:#?}");
    assert_eq!(
        per1[0].expression.as_deref(),
        Some("Patient.name[0].period")
    );
    // dom-6 (a warning): no narrative.
    let dom6: Vec<_> = invariant(&report, "dom-6")
        .into_iter()
        .filter(|i| i.expression.as_deref() == Some("Patient"))
        .collect();
    assert_eq!(dom6.len(), 1, "{report:#?}");
    assert_eq!(dom6[0].severity, Severity::Warning);
}

#[test]
fn bundle_invariants_and_resolve_inside_the_bundle() {
    let report = validate(
        r#"{"resourceType":"Bundle","type":"collection","entry":[
            {"fullUrl":"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0","resource":{"resourceType":"Basic","code":{"text":"a"}}},
            {"fullUrl":"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0","resource":{"resourceType":"Basic","code":{"text":"b"}}}]}"#,
    );
    let bdl7 = invariant(&report, "bdl-7");
    assert_eq!(bdl7.len(), 1, "{report:#?}");
    assert_eq!(bdl7[0].expression.as_deref(), Some("Bundle"));
}

#[test]
fn a_reference_to_the_container_passes_ref_1_as_corrected() {
    let report = validate(
        r##"{"resourceType":"Patient","id":"p","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">p</div>"},
            "contained":[{"resourceType":"RelatedPerson","id":"r","patient":{"reference":"#"}}],
            "link":[{"other":{"reference":"#r"},"type":"seealso"}],
            "generalPractitioner":[{"display":"no reference at all"}]}"##,
    );
    assert!(invariant(&report, "ref-1").is_empty(), "{report:#?}");
    assert!(invariant(&report, "dom-3").is_empty(), "{report:#?}");
    assert!(report.is_acceptable(), "{report:#?}");
}

/// `count` JSON items joined by commas, item `i` naming the next one
/// (`{prefix}{i+1}`) and the last naming `dangling`.
fn chain(
    count: usize,
    prefix: &str,
    dangling: &str,
    item: impl Fn(usize, &str) -> String,
) -> String {
    (0..count)
        .map(|i| {
            let next = if i + 1 == count {
                dangling.to_owned()
            } else {
                format!("{prefix}{}", i + 1)
            };
            item(i, &next)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Many contained resources referencing each other (more than the few a
/// scan serves): ref-1, dom-3 and the local reference check give each
/// resource its own verdict, with what the root's evaluations share
/// (`%rootResource.contained.id`, the contained ids) computed once.
#[test]
fn many_contained_resources_each_get_their_own_verdict() {
    const CONTAINED: usize = 60;
    let organizations = chain(CONTAINED, "o", "missing", |i, part_of| {
        format!(
            r##"{{"resourceType":"Organization","id":"o{i}","name":"x","partOf":{{"reference":"#{part_of}"}}}}"##
        )
    });
    let report = validate(&format!(
        r##"{{"resourceType":"Patient","id":"p","text":{{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">p</div>"}},
            "contained":[{}],"managingOrganization":{{"reference":"#o0"}}}}"##,
        organizations
    ));
    let ref1 = invariant(&report, "ref-1");
    let last = format!("Patient.contained[{}].partOf", CONTAINED - 1);
    assert_eq!(ref1.len(), 1, "{report:#?}");
    assert!(
        ref1[0]
            .expression
            .as_deref()
            .is_some_and(|e| e.starts_with(&last)),
        "{report:#?}"
    );
    let unresolved: Vec<_> = report
        .issues
        .iter()
        .filter(|i| i.code == IssueType::NotFound)
        .collect();
    assert_eq!(unresolved.len(), 1, "{report:#?}");
    assert_eq!(unresolved[0].expression.as_deref(), Some(last.as_str()));
    assert!(invariant(&report, "dom-3").is_empty(), "{report:#?}");
}

/// Many narratives of one resource (a Composition's sections), each
/// linking to another's anchor: the resource's link targets are collected
/// once, and each link still gets its own verdict (the last names nothing:
/// one finding, at its narrative).
#[test]
fn many_narratives_linking_to_each_other_each_get_their_own_verdict() {
    const SECTIONS: usize = 40;
    let sections = chain(SECTIONS, "a", "nowhere", |i, next| {
        format!(
            r##"{{"title":"s{i}","text":{{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a name=\"a{i}\">s{i}</a> <a href=\"#{next}\">next</a></div>"}},"emptyReason":{{"text":"none"}}}}"##
        )
    });
    let report = validate(&format!(
        r##"{{"resourceType":"Composition","id":"c","text":{{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">c</div>"}},
            "status":"final","type":{{"text":"t"}},"date":"2026-12-07","author":[{{"display":"a"}}],"title":"t",
            "section":[{}]}}"##,
        sections
    ));
    let unresolved: Vec<_> = report
        .issues
        .iter()
        .filter(|i| i.diagnostics.contains("names no id"))
        .collect();
    assert_eq!(unresolved.len(), 1, "{report:#?}");
    assert_eq!(
        unresolved[0].expression.as_deref(),
        Some(format!("Composition.section[{}].text.div", SECTIONS - 1).as_str()),
        "{report:#?}"
    );
}

/// Every example evaluates its invariants without an engine error, or the
/// count of such notes is printed (they are information, never errors).
#[test]
fn examples_have_no_invariant_evaluation_errors() {
    let mut notes = Vec::new();
    let mut failed = 0;
    let mut files = 0;
    for path in files_with_extension(&conformance_dir().join("examples"), "json") {
        files += 1;
        let resource = ReceivedResource::parse(std::fs::read(&path).unwrap().into()).unwrap();
        let report = validator().validate(&resource, &[]);
        for issue in &report.issues {
            if issue.diagnostics.starts_with("invariant ") {
                notes.push(format!(
                    "{}: {} {}",
                    path.display(),
                    issue.expression.as_deref().unwrap_or("?"),
                    issue.diagnostics
                ));
            }
            if issue.code == IssueType::Invariant && issue.severity == Severity::Warning {
                failed += 1;
            }
        }
    }
    println!(
        "invariants over {files} examples: {} not evaluated, {failed} warnings",
        notes.len()
    );
    assert!(notes.is_empty(), "{}", notes.join("\n"));
}

/// fhir-test-cases `mr-covid-m`: a Measure population criteria (an
/// Expression) with neither expression nor reference breaks exp-1, where
/// the Java validator reports it too.
#[test]
fn exp_1_on_a_measure_population_criteria() {
    let path = conformance_dir().join("fhir-test-cases/mr-covid-m.json");
    let resource = ReceivedResource::parse(std::fs::read(path).unwrap().into()).unwrap();
    let report = validator().validate(&resource, &[]);
    let exp1 = invariant(&report, "exp-1");
    assert_eq!(exp1.len(), 1, "{report:#?}");
    assert_eq!(
        exp1[0].expression.as_deref(),
        Some("Measure.group[0].population[0].criteria")
    );
}

/// `Validator::invariant_jobs` lists what validation evaluates: on the IPS
/// bench example, every job's element is typed and the Bundle invariants are
/// evaluated on the root.
#[test]
fn invariant_jobs_list_the_evaluations() {
    let path =
        conformance_dir().join("examples/ips/Bundle-IPS-examples-Bundle-with-immunization.json");
    let resource = ReceivedResource::parse(std::fs::read(path).unwrap().into()).unwrap();
    let jobs = validator().invariant_jobs(
        &resource,
        &["http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips"],
    );
    assert!(jobs.len() > 500, "{}", jobs.len());
    assert!(
        jobs.iter()
            .any(|j| j.key == "bdl-7" && j.pointer.is_empty())
    );
    assert!(jobs.iter().any(|j| j.key == "bdl-ips-1"));
    assert!(
        jobs.iter().all(|j| j.element_type.is_some()),
        "untyped jobs"
    );
}
