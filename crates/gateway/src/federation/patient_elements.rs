//! `_elements` on `GET /fhir/Patient?identifier=…&_elements=…` (federation
//! API; FHIR R4 search.html#elements, the NCPeH FHIR API's data
//! minimisation): the Patient as its sender wrote it, with only the root
//! elements asked for, plus those a server always returns, and marked
//! `SUBSETTED`.
//!
//! The subset is derived from the received bytes, as a restricted summary
//! is (`ehds_fhir::restriction`): every kept element is copied byte for
//! byte (no number re-rounded, no string re-escaped), in the order the
//! sender wrote them; only the separators between kept elements and the
//! `SUBSETTED` tag are written here.
//!
//! What is always returned (search.html#elements: "Servers SHOULD always
//! return mandatory elements whether they are requested or not", and
//! clients "SHOULD list all mandatory and modifier elements"): R4 Patient
//! has no mandatory root element (every `min` is 0 in the core snapshot,
//! `profiles/hl7.fhir.r4.core-4.0.1/StructureDefinition-Patient.json`);
//! its modifier elements (`isModifier`: `implicitRules`,
//! `modifierExtension`, `active`, `deceased[x]`, `link`) are kept too, since
//! leaving one out would change what the rest means (an inactive record, a
//! deceased patient, a replaced record); so are `resourceType`, `id` and
//! `meta` (which carries the tag). `contained` is kept when a kept element
//! refers to a contained resource (`"#…"`), so no local reference dangles.

use ehds_fhir::Node;
use ehds_routing::search::PATIENT_ELEMENTS;

/// The Patient's root elements returned whatever `_elements` asks (see the
/// module documentation).
pub(crate) const ALWAYS_RETURNED: &[&str] = &[
    "id",
    "meta",
    "implicitRules",
    "modifierExtension",
    "active",
    "deceased",
    "link",
];

/// The tag of a resource with elements left out (R4 search.html#elements;
/// CodeSystem v3-ObservationValue, `SUBSETTED`).
const SUBSETTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";
const SUBSETTED: &str = r#"{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED","display":"subsetted"}"#;

/// The root element a JSON member belongs to: `birthDate` and its
/// primitive extension `_birthDate` to `birthDate`, `deceasedBoolean` to
/// `deceased`; `None` for a name that is no element of Patient.
fn element_of(key: &str) -> Option<&'static str> {
    let name = key.strip_prefix('_').unwrap_or(key);
    PATIENT_ELEMENTS.iter().copied().find(|element| {
        *element == name
            || (matches!(*element, "deceased" | "multipleBirth")
                && name
                    .strip_prefix(element)
                    .and_then(|rest| rest.chars().next())
                    .is_some_and(|c| c.is_ascii_uppercase()))
    })
}

/// The bytes of `patient` (a node parsed from `source`) with only the root
/// elements in `asked` and [`ALWAYS_RETURNED`], tagged `SUBSETTED`; `None`
/// when `patient` is not an object within `source`.
pub(crate) fn subset(patient: &Node, source: &[u8], asked: &[&str]) -> Option<Vec<u8>> {
    let members = patient.as_object()?;
    let bytes = |start: u32, end: u32| source.get(start as usize..end as usize);
    let kept_element = |key: &str| {
        key == "resourceType"
            || element_of(key).is_some_and(|e| asked.contains(&e) || ALWAYS_RETURNED.contains(&e))
    };
    let mut kept: Vec<&ehds_fhir::json::Member> =
        members.iter().filter(|m| kept_element(&m.key)).collect();
    // A kept element referring to a contained resource keeps `contained`.
    let refers_inside = kept.iter().any(|m| {
        bytes(m.node.span.start, m.node.span.end).is_some_and(|b| b.windows(2).any(|w| w == b"\"#"))
    });
    if refers_inside {
        kept = members
            .iter()
            .filter(|m| kept_element(&m.key) || &*m.key == "contained")
            .collect();
    }
    let has_meta = kept.iter().any(|m| &*m.key == "meta");
    // Without a meta of its own, the tag goes in a new one after `id` (or
    // `resourceType`), where FHIR JSON writes it.
    let meta_after = if kept.iter().any(|m| &*m.key == "id") {
        "id"
    } else {
        "resourceType"
    };
    let mut out =
        Vec::with_capacity(patient.span.end.saturating_sub(patient.span.start) as usize + 128);
    out.push(b'{');
    for (i, member) in kept.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if &*member.key == "meta" {
            out.extend_from_slice(bytes(member.key_span.start, member.node.span.start)?);
            tagged_meta(&member.node, source, &mut out)?;
        } else {
            out.extend_from_slice(bytes(member.key_span.start, member.node.span.end)?);
        }
        if !has_meta && &*member.key == meta_after {
            out.extend_from_slice(br#","meta":{"tag":["#);
            out.extend_from_slice(SUBSETTED.as_bytes());
            out.extend_from_slice(b"]}");
        }
    }
    out.push(b'}');
    Some(out)
}

/// `meta` (a node within `source`) with the `SUBSETTED` tag added to its
/// `tag` (unless it has it already), written to `out`.
fn tagged_meta(meta: &Node, source: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let bytes = |start: u32, end: u32| source.get(start as usize..end as usize);
    let members = meta.as_object()?;
    match meta.get("tag") {
        Some(tags) => {
            let already = tags.items().iter().any(|t| {
                t.get("system").and_then(Node::as_str) == Some(SUBSETTED_SYSTEM)
                    && t.get("code").and_then(Node::as_str) == Some("SUBSETTED")
            });
            if already || tags.as_array().is_none() {
                out.extend_from_slice(bytes(meta.span.start, meta.span.end)?);
                return Some(());
            }
            // Before the array's closing bracket.
            let close = tags.span.end.checked_sub(1)?;
            out.extend_from_slice(bytes(meta.span.start, close)?);
            if !tags.items().is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(SUBSETTED.as_bytes());
            out.extend_from_slice(bytes(close, meta.span.end)?);
        }
        None => {
            // Before the object's closing brace.
            let close = meta.span.end.checked_sub(1)?;
            out.extend_from_slice(bytes(meta.span.start, close)?);
            if !members.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(br#""tag":["#);
            out.extend_from_slice(SUBSETTED.as_bytes());
            out.extend_from_slice(b"]}");
        }
    }
    Some(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn subset_of(json: &str, asked: &[&str]) -> String {
        let resource = ehds_fhir::ReceivedResource::parse(json.as_bytes().to_vec().into()).unwrap();
        String::from_utf8(subset(resource.root(), resource.bytes(), asked).unwrap()).unwrap()
    }

    /// Kept elements are the sender's bytes in the sender's order (numbers
    /// and escapes as written); the tag goes in a new `meta` after `id`.
    #[test]
    fn the_subset_keeps_what_is_asked_as_written() {
        let patient = r#"{"resourceType":"Patient","id":"p1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"name":[{"family":"Br\u00e9nnard"}],"gender":"female","_gender":{"extension":[{"url":"http://example.org/x","valueDecimal":1.50}]},"birthDate":"1998-04-17","identifier":[{"system":"urn:oid:1.2","value":"7"}],"address":[{"city":"Esch"}],"deceasedBoolean":false}"#;
        assert_eq!(
            subset_of(patient, &["identifier", "name", "gender"]),
            format!(
                r#"{{"resourceType":"Patient","id":"p1","meta":{{"tag":[{SUBSETTED}]}},"name":[{{"family":"Br\u00e9nnard"}}],"gender":"female","_gender":{{"extension":[{{"url":"http://example.org/x","valueDecimal":1.50}}]}},"identifier":[{{"system":"urn:oid:1.2","value":"7"}}],"deceasedBoolean":false}}"#
            )
        );
    }

    /// An existing meta gets the tag in its `tag`, or a `tag` of its own;
    /// a meta already tagged is left as written.
    #[test]
    fn the_tag_joins_an_existing_meta() {
        let with_tags = r#"{"resourceType":"Patient","meta":{"versionId":"3","tag":[{"code":"x"}]},"gender":"male"}"#;
        assert_eq!(
            subset_of(with_tags, &["gender"]),
            format!(
                r#"{{"resourceType":"Patient","meta":{{"versionId":"3","tag":[{{"code":"x"}},{SUBSETTED}]}},"gender":"male"}}"#
            )
        );
        let without_tags =
            r#"{"resourceType":"Patient","meta":{"versionId":"3" },"gender":"male"}"#;
        assert_eq!(
            subset_of(without_tags, &[]),
            format!(
                r#"{{"resourceType":"Patient","meta":{{"versionId":"3" ,"tag":[{SUBSETTED}]}}}}"#
            )
        );
        let tagged = format!(r#"{{"resourceType":"Patient","meta":{{"tag":[{SUBSETTED}]}}}}"#);
        assert_eq!(subset_of(&tagged, &["name"]), tagged);
    }

    /// A kept element referring to a contained resource keeps `contained`.
    #[test]
    fn contained_resources_referred_to_are_kept() {
        let patient = r##"{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"GP"}],"generalPractitioner":[{"reference":"#o"}],"gender":"male"}"##;
        let kept = subset_of(patient, &["generalPractitioner"]);
        assert!(
            kept.contains(r#""contained":[{"resourceType":"Organization""#),
            "{kept}"
        );
        assert!(!kept.contains("gender"), "{kept}");
        let kept = subset_of(patient, &["gender"]);
        assert!(!kept.contains("contained"), "{kept}");
    }

    /// The subset of a valid Patient is a valid R4 Patient.
    #[test]
    fn the_subset_is_valid_r4() {
        let patient = r#"{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Brennard","given":["Lux"]}],"gender":"female","birthDate":"1998-04-17","identifier":[{"system":"urn:oid:1.2","value":"7"}],"telecom":[{"system":"phone","value":"+352 1"}]}"#;
        let bytes = subset_of(patient, &["identifier", "birthDate"]);
        let validator =
            ehds_shipped_validator::validator(ehds_validation::ValidationOptions::default())
                .unwrap();
        let resource =
            ehds_fhir::ReceivedResource::parse(bytes.clone().into_bytes().into()).unwrap();
        let report = validator.validate(&resource, &[]);
        assert!(report.is_acceptable(), "{bytes}: {:#?}", report.issues);
        assert!(!bytes.contains("telecom") && bytes.contains(r#""active":true"#));
    }

    /// [`ALWAYS_RETURNED`] is what R4 says: the root elements of Patient
    /// that are mandatory or modifiers, and `id`, `meta`.
    #[test]
    fn always_returned_are_the_mandatory_and_modifier_elements_of_r4_patient() {
        let path = ehds_test_support::repo_root()
            .join("profiles/hl7.fhir.r4.core-4.0.1/StructureDefinition-Patient.json");
        let definition: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let mut expected = vec!["id".to_owned(), "meta".to_owned()];
        let mut elements = Vec::new();
        for element in definition["snapshot"]["element"].as_array().unwrap() {
            let path = element["path"].as_str().unwrap();
            let Some(name) = path.strip_prefix("Patient.").filter(|n| !n.contains('.')) else {
                continue;
            };
            let name = name.trim_end_matches("[x]").to_owned();
            elements.push(name.clone());
            if (element["min"].as_u64().unwrap() > 0 || element["isModifier"] == true)
                && !expected.contains(&name)
            {
                expected.push(name);
            }
        }
        assert_eq!(ALWAYS_RETURNED, expected);
        assert_eq!(PATIENT_ELEMENTS, elements);
    }
}
