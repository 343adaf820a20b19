//! Whom an answer of the national server is about: the patient of a
//! document Bundle (its Composition's `subject`, FHIR R4 documents.html
//! §3.3.1: the Composition is the first entry), of a Patient and of a
//! DocumentReference (`subject`). Nothing of an answer about another
//! patient than the one asked about may leave the gateway.

use ehds_fhir::Node;
use ehds_fhir::bundle::{BundleIndex, Resolution};
use ehds_identifiers::PatientIdentifier;

/// `system|value` of `patient`, the token search form with the search
/// separators escaped (FHIR R4 search.html §3.1.1.4.9).
pub fn token(patient: &PatientIdentifier) -> String {
    format!("{}|{}", escape(patient.system()), escape(patient.value()))
}

/// Whether `resource` (a Patient) carries `patient`'s identifier.
pub fn is_of(patient: &PatientIdentifier, resource: &Node) -> bool {
    identifiers(resource)
        .any(|(system, value)| system == patient.system() && value == patient.value())
}

/// The search-value escapes of FHIR R4 search.html §3.1.1.1.2 (`\`, `,`,
/// `$`, `|`).
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | ',' | '$' | '|') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The `identifier`s (system, value) of a resource.
pub fn identifiers(resource: &Node) -> impl Iterator<Item = (&str, &str)> {
    resource
        .get("identifier")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|i| Some((i.get("system")?.as_str()?, i.get("value")?.as_str()?)))
}

/// The Patient a document Bundle is about: the entry its Composition's
/// `subject.reference` resolves to, if it is a Patient.
pub fn document_patient(bundle: &Node) -> Option<&Node> {
    let index = BundleIndex::new(bundle);
    let composition = index.entries().first()?;
    if composition.resource_type() != Some("Composition") {
        return None;
    }
    let subject = composition
        .resource?
        .get("subject")?
        .get("reference")?
        .as_str()?;
    match index.resolve(composition.index, subject) {
        Resolution::Entry(i) => index
            .entry(i)?
            .resource
            .filter(|r| r.get("resourceType").and_then(Node::as_str) == Some("Patient")),
        _ => None,
    }
}

/// Whether a document Bundle is about `patient`: its Composition's subject
/// is a Patient entry carrying the identifier, and no other Patient entry
/// carries another identifier of the same system (a document mixing two
/// patients of this country is about neither).
pub fn document_is_about(bundle: &Node, patient: &PatientIdentifier) -> bool {
    let Some(subject) = document_patient(bundle) else {
        return false;
    };
    if !is_of(patient, subject) {
        return false;
    }
    let entries = bundle.get("entry").map(Node::items).unwrap_or_default();
    entries
        .iter()
        .filter_map(|e| e.get("resource"))
        .filter(|r| r.get("resourceType").and_then(Node::as_str) == Some("Patient"))
        .all(|p| {
            identifiers(p)
                .all(|(system, value)| system != patient.system() || value == patient.value())
        })
}

/// The resources of a search set's entries (`Bundle.entry.resource`) of
/// search mode `match` (FHIR R4 search.html §3.1.1.3: `include` entries are
/// not results).
pub fn matches(searchset: &Node) -> impl Iterator<Item = &Node> {
    searchset
        .get("entry")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter(|e| {
            e.get("search")
                .and_then(|s| s.get("mode"))
                .and_then(Node::as_str)
                .is_none_or(|mode| mode == "match")
        })
        .filter_map(|e| e.get("resource"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Node {
        ehds_fhir::json::parse(json.as_bytes()).unwrap()
    }

    fn document(patients: &str) -> String {
        format!(
            r#"{{"resourceType":"Bundle","type":"document","entry":[
              {{"fullUrl":"urn:uuid:c","resource":{{"resourceType":"Composition","subject":{{"reference":"urn:uuid:p"}}}}}},
              {patients}]}}"#
        )
    }

    #[test]
    fn a_document_is_about_the_patient_its_composition_names() {
        let asked = PatientIdentifier::new("urn:oid:1.2", "42").unwrap();
        let ours = r#"{"fullUrl":"urn:uuid:p","resource":{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2","value":"42"}]}}"#;
        let theirs = r#"{"fullUrl":"urn:uuid:q","resource":{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2","value":"43"}]}}"#;
        assert!(document_is_about(&parse(&document(ours)), &asked));
        let other = ours.replace("\"42\"", "\"43\"");
        assert!(!document_is_about(&parse(&document(&other)), &asked));
        assert!(!document_is_about(
            &parse(&document(&format!("{ours},{theirs}"))),
            &asked
        ));
        assert!(!document_is_about(
            &parse(r#"{"resourceType":"Bundle"}"#),
            &asked
        ));
    }

    #[test]
    fn tokens_escape_the_search_separators() {
        let id = PatientIdentifier::new("urn:oid:1", "a|b,c").unwrap();
        assert_eq!(token(&id), r"urn:oid:1|a\|b\,c");
    }
}
