//! FHIR document Bundle rules (<http://hl7.org/fhir/R4/documents.html>,
//! Bundle invariants in <http://hl7.org/fhir/R4/bundle.html#invs>).
//!
//! | rule | source |
//! | --- | --- |
//! | `resourceType` is `Bundle`, `type` is `document` | R4 documents.html §3.3.1 |
//! | `identifier.system` and `identifier.value` present | bdl-9 |
//! | `timestamp` present | bdl-10 |
//! | first entry's resource is a Composition | bdl-11 |
//! | every entry has a resource | bdl-5 |
//! | `fullUrl` unique in the Bundle (with `meta.versionId`) | bdl-7 |
//! | `fullUrl` is an absolute URI | Bundle.entry.fullUrl definition ("The Absolute URL for the resource"), R4 bundle.html |
//! | `fullUrl` not version specific | bdl-8 |
//! | every `urn:uuid`/`urn:oid`/relative reference the Composition makes for the document (subject, author, encounter, custodian, attester.party, event.detail, and each section's author, focus and entries, nested sections included) resolves in the Bundle | R4 bundle.html §2.36.4 (resolving references in Bundles), documents.html §3.3.1; Java `BundleValidator.validateDocument` / `validateSections` (error `BUNDLE_BUNDLE_ENTRY_NOTFOUND`) |
//! | a versioned reference (`…/_history/v`) the Composition makes resolves to the entry with that `meta.versionId`; an unversioned one is not ambiguous between versions sharing a fullUrl | Java `BaseValidator.resolveInBundle` (`BUNDLE_BUNDLE_ENTRY_NOTFOUND_APPARENT`, `BUNDLE_BUNDLE_ENTRY_FOUND_MULTIPLE`); bdl-7 |
//! | any other unresolved reference of a document Bundle is information, not an error | Java `BundleValidator.checkAllInterlinked` resolves every other reference with `isWarning` set, so `BaseValidator.resolveInBundle` gives a hint (`hintOrError(!isWarning, …)`) |

use ehds_fhir::bundle::{self, BundleIndex, Resolution};
use ehds_fhir::json::{PathSegment, render_path};
use ehds_fhir::outcome::{Issue, IssueType, Severity};
use ehds_fhir::{Node, ReceivedResource};

use crate::report::ValidationReport;

/// What the gateway indexes a document by, read from a document Bundle that
/// passed [`check_document_bundle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentHeader<'a> {
    /// `Bundle.identifier.system`.
    pub identifier_system: &'a str,
    /// `Bundle.identifier.value`.
    pub identifier_value: &'a str,
    /// `Bundle.type`.
    pub bundle_type: &'a str,
    /// The first identifier of the Composition's subject, as `system|value`.
    pub patient_identifier: Option<String>,
}

/// Checks the rules every pushed FHIR document must meet.
pub fn check_document_bundle(resource: &ReceivedResource) -> ValidationReport {
    let mut report = ValidationReport::default();
    let root = resource.root();
    if resource.resource_type() != "Bundle" {
        report.push(
            Issue::error(
                IssueType::Invalid,
                format!("expected a Bundle, found a {}", resource.resource_type()),
            )
            .at(resource.resource_type()),
        );
        return report;
    }
    if root.get("type").and_then(Node::as_str) != Some("document") {
        report.push(
            Issue::error(
                IssueType::Invalid,
                "Bundle.type must be 'document' (FHIR documents, R4 documents.html)",
            )
            .at("Bundle.type"),
        );
    }
    let identifier = root.get("identifier");
    for element in ["system", "value"] {
        if identifier
            .and_then(|i| i.get(element))
            .and_then(Node::as_str)
            .is_none()
        {
            report.push(
                Issue::error(
                    IssueType::Invariant,
                    format!("bdl-9: a document must have an identifier with a system and a value (Bundle.identifier.{element} is missing)"),
                )
                .at(format!("Bundle.identifier.{element}")),
            );
        }
    }
    if root.get("timestamp").and_then(Node::as_str).is_none() {
        report.push(
            Issue::error(
                IssueType::Invariant,
                "bdl-10: a document must have a date (Bundle.timestamp is missing)",
            )
            .at("Bundle.timestamp"),
        );
    }
    let index = BundleIndex::new(root);
    match index.entries().first() {
        Some(first) if first.resource_type() == Some("Composition") => {}
        _ => report.push(
            Issue::error(
                IssueType::Invariant,
                "bdl-11: a document must have a Composition as the first resource",
            )
            .at("Bundle.entry[0].resource"),
        ),
    }
    for entry in index.entries() {
        if entry.resource.is_none() {
            report.push(
                Issue::error(
                    IssueType::Invariant,
                    "bdl-5: each entry of a document must be a resource",
                )
                .at(format!("Bundle.entry[{}].resource", entry.index)),
            );
        }
        if let Some(url) = entry.full_url
            && !is_absolute_uri(url)
        {
            report.push(
                Issue::error(
                    IssueType::Invalid,
                    "Bundle.entry.fullUrl must be an absolute URL or a urn:uuid/urn:oid, not a relative reference",
                )
                .at(format!("Bundle.entry[{}].fullUrl", entry.index)),
            );
        }
        if entry.full_url.is_some_and(|u| u.contains("/_history/")) {
            report.push(
                Issue::error(
                    IssueType::Invariant,
                    "bdl-8: fullUrl cannot be a version specific reference",
                )
                .at(format!("Bundle.entry[{}].fullUrl", entry.index)),
            );
        }
    }
    for (duplicate, first) in index.duplicate_full_urls() {
        report.push(
            Issue::error(
                IssueType::Invariant,
                format!("bdl-7: fullUrl must be unique in a bundle; it repeats the fullUrl of entry {first}"),
            )
            .at(format!("Bundle.entry[{duplicate}].fullUrl")),
        );
    }
    check_references(&index, &mut report);
    report
}

/// `scheme:…` with an RFC 3986 scheme.
fn is_absolute_uri(url: &str) -> bool {
    url.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// Every reference the Composition makes for the document resolves to an
/// entry of the Bundle, or points outside it by an absolute URL (an error
/// otherwise); any other reference that does not resolve is reported as
/// information, as Java does.
fn check_references(index: &BundleIndex<'_>, report: &mut ValidationReport) {
    for entry in index.entries() {
        let Some(resource) = entry.resource else {
            continue;
        };
        let resource_type = entry.resource_type().unwrap_or("Resource");
        let is_composition = entry.index == 0 && resource_type == "Composition";
        bundle::visit_references(resource, &mut |reference, steps| {
            match index.resolve(entry.index, reference) {
                Resolution::Unresolved => {
                    let mut path = vec![
                        PathSegment::Key("entry".into()),
                        PathSegment::Index(entry.index),
                        PathSegment::Key("resource".into()),
                    ];
                    path.extend(bundle::owned_path(steps));
                    let issue = if is_composition && in_document_closure(steps) {
                        Issue::error(
                            IssueType::NotFound,
                            format!(
                                "the reference '{reference}' in a {resource_type} does not resolve to an entry of this document Bundle"
                            ),
                        )
                    } else {
                        Issue::new(
                            Severity::Information,
                            IssueType::NotFound,
                            format!(
                                "the reference '{reference}' in a {resource_type} does not resolve to an entry of this document Bundle (not one the Composition makes for the document, so not an error)"
                            ),
                        )
                    };
                    report.push(issue.at(render_path("Bundle", &path)));
                }
                Resolution::Entry(target) if is_composition && in_document_closure(steps) => {
                    if let Some(problem) = version_problem(index, target, reference) {
                        let mut path = vec![
                            PathSegment::Key("entry".into()),
                            PathSegment::Index(entry.index),
                            PathSegment::Key("resource".into()),
                        ];
                        path.extend(bundle::owned_path(steps));
                        report.push(
                            Issue::error(IssueType::NotFound, problem)
                                .at(render_path("Bundle", &path)),
                        );
                    }
                }
                // Local `#id` references (ref-1) are checked by the structural
                // walk for every resource, in or out of a Bundle.
                Resolution::Contained | Resolution::Entry(_) | Resolution::External => {}
            }
        });
    }
}

/// Versions of one resource may share a fullUrl in a Bundle (bdl-7 allows
/// it with distinct `meta.versionId`s): a reference to `…/_history/v`
/// resolves only to the entry of that version, and a reference without a
/// version must not be ambiguous (Java `BaseValidator.resolveInBundle`:
/// `BUNDLE_BUNDLE_ENTRY_NOTFOUND_APPARENT`, `BUNDLE_BUNDLE_ENTRY_FOUND_MULTIPLE`;
/// R4 bundle.html#references).
fn version_problem(index: &BundleIndex<'_>, target: usize, reference: &str) -> Option<String> {
    let full_url = index.entry(target)?.full_url?;
    let same: Vec<&bundle::Entry<'_>> = index
        .entries()
        .iter()
        .filter(|e| e.full_url == Some(full_url))
        .collect();
    match reference.split_once("/_history/") {
        Some((_, version)) => (!same.iter().any(|e| e.version_id() == Some(version))).then(|| {
            format!(
                "the reference '{reference}' names version {version}, which no entry with fullUrl {full_url} has (meta.versionId)"
            )
        }),
        None => (same.len() > 1).then(|| {
            format!(
                "the reference '{reference}' matches {} entries of this Bundle (versions of {full_url}); name the version",
                same.len()
            )
        }),
    }
}

/// Whether the `reference` at `steps` (from the Composition's root) is one
/// Java's `BundleValidator.validateDocument` requires to resolve: `subject`,
/// `author`, `encounter`, `custodian`, `attester.party`, `event.detail`, and
/// in every section (nested ones too) `author`, `focus` and `entry`.
fn in_document_closure(steps: &[bundle::PathStep<'_>]) -> bool {
    use bundle::PathStep::{Index, Key};
    // Array indexes do not change which element is meant.
    let keys: Vec<&str> = steps
        .iter()
        .filter_map(|s| match s {
            Key(k) => Some(*k),
            Index(_) => None,
        })
        .collect();
    match keys.as_slice() {
        [
            "subject" | "author" | "encounter" | "custodian",
            "reference",
        ]
        | ["attester", "party", "reference"]
        | ["event", "detail", "reference"] => true,
        ["section", rest @ ..] => {
            let nested = rest.iter().take_while(|k| **k == "section").count();
            matches!(
                rest.get(nested..),
                Some(["author" | "focus" | "entry", "reference"])
            )
        }
        _ => false,
    }
}

/// Reads the header of a document Bundle; `None` when the identifier or type
/// is missing (which [`check_document_bundle`] reports).
pub fn document_header(resource: &ReceivedResource) -> Option<DocumentHeader<'_>> {
    let root = resource.root();
    let identifier = root.get("identifier")?;
    let index = BundleIndex::new(root);
    let patient_identifier = index
        .entries()
        .first()
        .and_then(|c| {
            let subject = c.resource?.get("subject")?.get("reference")?.as_str()?;
            match index.resolve(c.index, subject) {
                Resolution::Entry(i) => index.entry(i)?.resource,
                _ => None,
            }
        })
        .and_then(|patient| patient.get("identifier"))
        .and_then(|ids| ids.items().first())
        .and_then(|id| {
            Some(format!(
                "{}|{}",
                id.get("system")?.as_str()?,
                id.get("value")?.as_str()?
            ))
        });
    Some(DocumentHeader {
        identifier_system: identifier.get("system")?.as_str()?,
        identifier_value: identifier.get("value")?.as_str()?,
        bundle_type: root.get("type")?.as_str()?,
        patient_identifier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> ValidationReport {
        check_document_bundle(&ReceivedResource::parse(json.as_bytes().to_vec().into()).unwrap())
    }

    const GOOD: &str = r##"{"resourceType":"Bundle","identifier":{"system":"urn:ietf:rfc:3986","value":"urn:uuid:1"},
      "type":"document","timestamp":"2024-01-01T00:00:00Z","entry":[
      {"fullUrl":"urn:uuid:c","resource":{"resourceType":"Composition","subject":{"reference":"urn:uuid:p"},
        "section":[{"entry":[{"reference":"#m"}]}],"contained":[{"resourceType":"Medication","id":"m"}]}},
      {"fullUrl":"urn:uuid:p","resource":{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2","value":"42"}]}}]}"##;

    fn expressions(report: &ValidationReport) -> Vec<&str> {
        report
            .issues
            .iter()
            .filter_map(|i| i.expression.as_deref())
            .collect()
    }

    #[test]
    fn a_well_formed_document_passes_and_has_a_header() {
        let report = check(GOOD);
        assert!(report.issues.is_empty(), "{report:?}");
        let resource = ReceivedResource::parse(GOOD.as_bytes().to_vec().into()).unwrap();
        let header = document_header(&resource).unwrap();
        assert_eq!(header.identifier_value, "urn:uuid:1");
        assert_eq!(header.patient_identifier.as_deref(), Some("urn:oid:1.2|42"));
    }

    #[test]
    fn each_rule_reports_its_location() {
        let report = check(
            r##"{"resourceType":"Bundle","type":"collection","entry":[
              {"fullUrl":"urn:uuid:p","resource":{"resourceType":"Patient","link":[{"other":{"reference":"urn:uuid:gone"}}]}},
              {"fullUrl":"urn:uuid:p","resource":{"resourceType":"Patient","generalPractitioner":[{"reference":"#x"}]}},
              {"fullUrl":"http://x.example/Patient/1/_history/2","request":{"method":"GET","url":"Patient/1"}}]}"##,
        );
        assert_eq!(
            expressions(&report),
            [
                "Bundle.type",
                "Bundle.identifier.system",
                "Bundle.identifier.value",
                "Bundle.timestamp",
                "Bundle.entry[0].resource",
                "Bundle.entry[2].resource",
                "Bundle.entry[2].fullUrl",
                "Bundle.entry[1].fullUrl",
                "Bundle.entry[0].resource.link[0].other.reference",
            ]
        );
        // The Patient's dangling link is not the Composition's: information.
        assert_eq!(report.error_count(), 8);
    }

    /// Java `BundleValidator.validateDocument` errors on what the
    /// Composition references for the document; `checkAllInterlinked` only
    /// hints at any other unresolved reference.
    #[test]
    fn only_the_compositions_document_references_must_resolve() {
        let report = check(
            r##"{"resourceType":"Bundle","identifier":{"system":"urn:ietf:rfc:3986","value":"urn:uuid:1"},
              "type":"document","timestamp":"2024-01-01T00:00:00Z","entry":[
              {"fullUrl":"urn:uuid:c","resource":{"resourceType":"Composition","subject":{"reference":"urn:uuid:p"},
                "author":[{"reference":"urn:uuid:gone-author"}],
                "relatesTo":[{"code":"appends","targetReference":{"reference":"urn:uuid:gone-target"}}],
                "section":[{"entry":[{"reference":"urn:uuid:p"}],
                  "section":[{"entry":[{"reference":"urn:uuid:gone-entry"}]}]}]}},
              {"fullUrl":"urn:uuid:p","resource":{"resourceType":"Patient",
                "generalPractitioner":[{"reference":"urn:uuid:gone-gp"}]}}]}"##,
        );
        let at = |severity: Severity| -> Vec<&str> {
            report
                .issues
                .iter()
                .filter(|i| i.severity == severity)
                .filter_map(|i| i.expression.as_deref())
                .collect()
        };
        assert_eq!(
            at(Severity::Error),
            [
                "Bundle.entry[0].resource.author[0].reference",
                "Bundle.entry[0].resource.section[0].section[0].entry[0].reference",
            ]
        );
        assert_eq!(
            at(Severity::Information),
            [
                "Bundle.entry[0].resource.relatesTo[0].targetReference.reference",
                "Bundle.entry[1].resource.generalPractitioner[0].reference",
            ]
        );
    }

    #[test]
    fn versioned_references_name_an_existing_version() {
        let report = check(
            r##"{"resourceType":"Bundle","identifier":{"system":"urn:ietf:rfc:3986","value":"urn:uuid:1"},
              "type":"document","timestamp":"2024-01-01T00:00:00Z","entry":[
              {"fullUrl":"http://x.example/Composition/c","resource":{"resourceType":"Composition","id":"c",
                "section":[{"entry":[{"reference":"Observation/o/_history/3"},{"reference":"Observation/o"},
                  {"reference":"Observation/o/_history/2"}]}]}},
              {"fullUrl":"http://x.example/Observation/o","resource":{"resourceType":"Observation","id":"o","meta":{"versionId":"1"}}},
              {"fullUrl":"http://x.example/Observation/o","resource":{"resourceType":"Observation","id":"o","meta":{"versionId":"2"}}}]}"##,
        );
        assert_eq!(
            expressions(&report),
            [
                "Bundle.entry[0].resource.section[0].entry[0].reference",
                "Bundle.entry[0].resource.section[0].entry[1].reference",
            ]
        );
    }

    #[test]
    fn not_a_bundle() {
        let report = check(r#"{"resourceType":"Patient"}"#);
        assert_eq!(expressions(&report), ["Patient"]);
    }
}
