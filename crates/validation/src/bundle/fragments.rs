//! Links into another entry's content (`<fullUrl>#<id>`) in document and
//! message Bundles, as the HL7 Java validator resolves them: the
//! `narrativeLink` extension of IPS-style resources points at the element of
//! the Composition's narrative that renders them.
//!
//! | rule | severity | source |
//! | --- | --- | --- |
//! | an extension's `valueUri`/`valueUrl` `<fullUrl>#<id>` whose `fullUrl` is one entry's: that entry holds exactly one element with `id` `<id>` (a JSON object's `id`, or an XHTML element's `id` attribute in a narrative) | none found: error for the `narrativeLink` extension, information otherwise; several found: error | Java `BundleValidator.checkAllInterlinked` → `BaseValidator.resolveInBundle` (`BUNDLE_BUNDLE_ENTRY_NOTFOUND_FRAGMENT` with `hintOrError(isNLLink, …)`, `BUNDLE_BUNDLE_ENTRY_FOUND_MULTIPLE_FRAGMENT`), `countFragmentMatches`; reported at the Bundle, as Java does |
//!
//! Java looks at every `uri`/`url` element of an entry; this reads those of
//! extensions only (where such links are written), once per entry and value
//! (Java's `findReferences` skips a value it already holds for the entry).

use ehds_fhir::Node;
use ehds_fhir::json::Json;
use ehds_fhir::outcome::{Issue, IssueType, Severity};

use crate::narrative::links;

/// The extension whose link is the resource's place in the narrative
/// (<http://hl7.org/fhir/extensions/StructureDefinition-narrativeLink.html>).
const NARRATIVE_LINK: &str = "http://hl7.org/fhir/StructureDefinition/narrativeLink";

/// Checks the `fullUrl#id` links of the entries of a document or message
/// Bundle and appends issues.
pub(super) fn check_fragment_links(entries: &[Node], issues: &mut Vec<Issue>) {
    for (index, entry) in entries.iter().enumerate() {
        let Some(resource) = entry.get("resource") else {
            continue;
        };
        let mut seen: Vec<&str> = Vec::new();
        // Objects and arrays only; extensions are read where they are
        // listed, so most objects are passed by with no lookup.
        let mut pending: Vec<&Node> = vec![resource];
        while let Some(node) = pending.pop() {
            let children: &[Node] = match &node.value {
                Json::Object(members) => {
                    for member in members.iter() {
                        if !matches!(member.node.value, Json::Object(_) | Json::Array(_)) {
                            continue;
                        }
                        match &*member.key {
                            "extension" | "modifierExtension" => {
                                for extension in member.node.items() {
                                    link_of(extension, &mut seen, entries, index, issues);
                                }
                            }
                            // A Bundle inside an entry is not walked (Java's
                            // findReferences does not enter one).
                            "resource"
                                if member.node.get("resourceType").and_then(Node::as_str)
                                    == Some("Bundle") =>
                            {
                                continue;
                            }
                            _ => {}
                        }
                        pending.push(&member.node);
                    }
                    continue;
                }
                Json::Array(items) => items,
                _ => continue,
            };
            pending.extend(
                children
                    .iter()
                    .filter(|n| matches!(n.value, Json::Object(_) | Json::Array(_))),
            );
        }
    }
}

/// Checks the link of one extension (its `valueUri` or `valueUrl` with a
/// `#`), once per entry and value.
fn link_of<'a>(
    extension: &'a Node,
    seen: &mut Vec<&'a str>,
    entries: &[Node],
    index: usize,
    issues: &mut Vec<Issue>,
) {
    let Some(members) = extension.as_object() else {
        return;
    };
    let mut url = None;
    let mut value = None;
    for member in members.iter() {
        match &*member.key {
            "url" => url = member.node.as_str(),
            "valueUri" | "valueUrl" => value = member.node.as_str(),
            _ => {}
        }
    }
    let (Some(url), Some(value)) = (url, value) else {
        return;
    };
    if memchr::memchr(b'#', value.as_bytes()).is_none() || seen.contains(&value) {
        return;
    }
    seen.push(value);
    check_link(entries, index, value, url == NARRATIVE_LINK, issues);
}

fn check_link(
    entries: &[Node],
    from: usize,
    value: &str,
    narrative_link: bool,
    issues: &mut Vec<Issue>,
) {
    let Some((base, fragment)) = value.split_once('#') else {
        return;
    };
    if base.is_empty() || !crate::structure::primitive::is_absolute_uri(base) {
        return;
    }
    let mut targets = entries
        .iter()
        .filter(|e| e.get("fullUrl").and_then(Node::as_str) == Some(base));
    let (Some(target), None) = (targets.next(), targets.next()) else {
        // Not in the Bundle, or ambiguous: Java hints or reports the
        // ambiguity elsewhere; nothing about the fragment.
        return;
    };
    let (severity, problem) = match links::count_targets(target, fragment, false) {
        1 => return,
        0 if narrative_link => (Severity::Error, "names no element of that entry"),
        0 => (Severity::Information, "names no element of that entry"),
        _ => (
            Severity::Error,
            "names an id that several elements of that entry carry",
        ),
    };
    issues.push(
        Issue::new(
            severity,
            if severity == Severity::Error && problem.starts_with("names an id") {
                IssueType::Invalid
            } else {
                IssueType::NotFound
            },
            format!(
                "the link '{base}#…' in an extension of entry {from} {problem} (the fragment after '#' must be the id of exactly one element of the entry with that fullUrl)"
            ),
        )
        .at("Bundle"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Vec<(Severity, String)> {
        let root = ehds_fhir::json::parse(json.as_bytes()).unwrap();
        let entries = root.get("entry").map(Node::items).unwrap_or_default();
        let mut issues = Vec::new();
        check_fragment_links(entries, &mut issues);
        issues
            .into_iter()
            .map(|i| (i.severity, i.expression.unwrap_or_default()))
            .collect()
    }

    /// fhir-test-cases `ips-htmlrefs-backwards`: one link names an id no
    /// element has, one an id both narratives of the Composition carry.
    #[test]
    fn narrative_links_name_one_element_of_their_entry() {
        let div = |ids: &str| {
            format!(r#""<div xmlns=\"http://www.w3.org/1999/xhtml\">{ids}<p id=\"b\">b</p></div>""#)
        };
        let json = format!(
            r#"{{"resourceType":"Bundle","type":"document","entry":[
              {{"fullUrl":"urn:uuid:c","resource":{{"resourceType":"Composition","text":{{"div":{}}},
                "section":[{{"text":{{"div":{}}}}}]}}}},
              {{"fullUrl":"urn:uuid:1","resource":{{"resourceType":"AllergyIntolerance","extension":[
                {{"url":"{NARRATIVE_LINK}","valueUri":"urn:uuid:c#a"}}]}}}},
              {{"fullUrl":"urn:uuid:2","resource":{{"resourceType":"AllergyIntolerance","extension":[
                {{"url":"{NARRATIVE_LINK}","valueUrl":"urn:uuid:c#bXX"}}]}}}},
              {{"fullUrl":"urn:uuid:3","resource":{{"resourceType":"AllergyIntolerance","extension":[
                {{"url":"{NARRATIVE_LINK}","valueUri":"urn:uuid:c#b"}},
                {{"url":"http://example.org/other","valueUri":"urn:uuid:c#none"}},
                {{"url":"http://example.org/other","valueUri":"urn:uuid:elsewhere#b"}}]}}}}]}}"#,
            div(r#"<p id=\"a\">a</p>"#),
            div(r#"<p id=\"s\">s</p>"#)
        );
        assert_eq!(
            check(&json),
            [
                (Severity::Error, "Bundle".to_owned()),
                (Severity::Error, "Bundle".to_owned()),
                (Severity::Information, "Bundle".to_owned()),
            ]
        );
    }
}
