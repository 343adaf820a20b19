//! Bundle rules for every Bundle type, as the HL7 Java validator applies them
//! (`org.hl7.fhir.validation.instance.type.BundleValidator.validateBundle`);
//! the document-only rules are in [`crate::document`].
//!
//! | rule | Bundle types | severity | source |
//! | --- | --- | --- | --- |
//! | `link.relation` `first`, `previous`, `next`, `last` are for searches and histories only | all but `searchset`, `history` | error | Java `validateDocumentLink` … `validateTransactionOrBatchLink` (`BUNDLE_LINK_SEARCH_PROHIBITED`); R4 bundle.html#bundle-link |
//! | `link.relation` `self` at most once; for searches and histories `first`, `previous`, `next`, `last` too | all | error | Java `relationshipUnique` (`BUNDLE_LINK_SEARCH_NO_DUPLICATES`) |
//! | `entry.fullUrl`, when present, is absolute | all but `document` (checked by [`crate::document`]) | error | Java `BUNDLE_ENTRY_URL_ABSOLUTE`; R4 Bundle.entry.fullUrl ("The Absolute URL") |
//! | a RESTful `fullUrl` (`…/Type/id`) belongs to a resource with an id, and ends with that resource's type and id | all | error | Java `BUNDLE_ENTRY_URL_MATCHES_NO_ID`, `BUNDLE_ENTRY_URL_MATCHES_TYPE_ID`; R4 bundle.html#bundle-unique |
//! | `entry.fullUrl` present | all but `transaction`, `batch` and their responses | error | Java `BUNDLE_BUNDLE_ENTRY_FULLURL_REQUIRED`; R4 bundle.html#bundle-unique |
//! | search results: a `match` or `include` entry has a resource with an id; a `match` is of a type the search (`self` link) asks for; an `outcome` entry is an OperationOutcome | `searchset` | error | Java `checkSearchSet` (`BUNDLE_SEARCH_ENTRY_NO_RESOURCE_ID`, `…_WRONG_RESOURCE_TYPE_MODE`, `…_WRONG_RESOURCE_TYPE_OUTCOME`, `…_NO_RESOURCE`) |
//! | search results: a `self` link, and `search.mode` on every entry | `searchset` | warning | Java `checkSearchSet` (`BUNDLE_SEARCH_NOSELF`, `BUNDLE_SEARCH_NO_MODE`) |
//! | an extension's link `<fullUrl>#<id>` into another entry names exactly one element of it | `document`, `message` | error or information | [`fragments`]; Java `checkAllInterlinked` |

use ehds_fhir::Node;
use ehds_fhir::outcome::{Issue, IssueType, Severity};

mod fragments;

/// Relations that page through a search.
const PAGING: [&str; 4] = ["first", "previous", "next", "last"];

/// Checks the Bundle rules of `bundle` (a Bundle's root node) and appends
/// issues.
pub fn check_bundle(bundle: &Node, issues: &mut Vec<Issue>) {
    let bundle_type = bundle.get("type").and_then(Node::as_str).unwrap_or("");
    check_links(bundle, bundle_type, issues);
    let entries = bundle.get("entry").map(Node::items).unwrap_or_default();
    if bundle_type == "searchset" {
        check_search_set(bundle, entries, issues);
    }
    if matches!(bundle_type, "document" | "message") {
        fragments::check_fragment_links(entries, issues);
    }
    let full_url_optional = matches!(
        bundle_type,
        "transaction" | "transaction-response" | "batch" | "batch-response"
    );
    for (index, entry) in entries.iter().enumerate() {
        let at = format!("Bundle.entry[{index}]");
        let resource = entry.get("resource");
        let resource_type = resource
            .and_then(|r| r.get("resourceType"))
            .and_then(Node::as_str);
        let id = resource.and_then(|r| r.get("id")).and_then(Node::as_str);
        match entry.get("fullUrl").and_then(Node::as_str) {
            Some(full_url) if !is_absolute(full_url) && bundle_type != "document" => {
                issues.push(
                    Issue::error(
                        IssueType::Invalid,
                        format!("the fullUrl must be an absolute URL (not '{full_url}')"),
                    )
                    .at(format!("{at}.fullUrl")),
                );
            }
            // Documents: reported by the document rules.
            Some(full_url) if !is_absolute(full_url) => {}
            Some(full_url) => {
                if let Some(resource_type) = resource_type
                    && is_restful(full_url)
                {
                    match id {
                        None => issues.push(
                            Issue::error(
                                IssueType::Invalid,
                                format!("the fullUrl '{full_url}' looks like a RESTful server URL, but the resource has no id"),
                            )
                            .at(format!("{at}.fullUrl")),
                        ),
                        Some(id) if !ends_with_type_and_id(full_url, resource_type, id) => issues.push(
                            Issue::error(
                                IssueType::Invalid,
                                format!("the fullUrl '{full_url}' looks like a RESTful server URL, so it must end with the resource's type and id ({resource_type}/{id})"),
                            )
                            .at(format!("{at}.fullUrl")),
                        ),
                        Some(_) => {}
                    }
                }
            }
            None if !full_url_optional && entry.get("fullUrl").is_none() => issues.push(
                Issue::error(
                    IssueType::Required,
                    "an entry must have a fullUrl (only transaction and batch entries and their responses may leave it out)",
                )
                .at(at),
            ),
            None => {}
        }
    }
}

/// `scheme:…` with an RFC 3986 scheme.
fn is_absolute(url: &str) -> bool {
    crate::structure::primitive::is_absolute_uri(url)
}

/// An `http(s)` URL whose last two segments are a resource type and an id
/// (`…/Patient/123`, optionally followed by `/_history/v`): Java's `urlRegex`.
fn is_restful(url: &str) -> bool {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return false;
    }
    let url = match url.find("/_history/") {
        Some(at) => url.get(..at).unwrap_or(url),
        None => url,
    };
    let mut segments = url.rsplit('/');
    let (Some(id), Some(resource_type)) = (segments.next(), segments.next()) else {
        return false;
    };
    is_id(id)
        && resource_type.starts_with(|c: char| c.is_ascii_uppercase())
        && resource_type.bytes().all(|b| b.is_ascii_alphabetic())
}

/// An R4 `id`: 1 to 64 of `[A-Za-z0-9.-]`.
fn is_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn ends_with_type_and_id(full_url: &str, resource_type: &str, id: &str) -> bool {
    let url = match full_url.find("/_history/") {
        Some(at) => full_url.get(..at).unwrap_or(full_url),
        None => full_url,
    };
    url.strip_suffix(id)
        .and_then(|rest| rest.strip_suffix('/'))
        .and_then(|rest| rest.strip_suffix(resource_type))
        .is_some_and(|rest| rest.ends_with('/'))
}

/// The link relations allowed and repeated, by Bundle type.
fn check_links(bundle: &Node, bundle_type: &str, issues: &mut Vec<Issue>) {
    let links = bundle.get("link").map(Node::items).unwrap_or_default();
    let searching = matches!(bundle_type, "searchset" | "history");
    let known = matches!(
        bundle_type,
        "document"
            | "message"
            | "collection"
            | "subscription-notification"
            | "transaction"
            | "transaction-response"
            | "batch"
            | "batch-response"
    );
    fn relation(link: &Node) -> Option<&str> {
        link.get("relation").and_then(Node::as_str)
    }
    for (index, link) in links.iter().enumerate() {
        let Some(rel) = relation(link) else {
            continue;
        };
        let repeated = links
            .get(..index)
            .unwrap_or_default()
            .iter()
            .any(|earlier| relation(earlier) == Some(rel));
        if searching {
            if (rel == "self" || PAGING.contains(&rel)) && repeated {
                issues.push(
                    Issue::error(
                        IssueType::Invalid,
                        format!("the link relationship type '{rel}' can only occur once"),
                    )
                    .at(format!("Bundle.link[{index}]")),
                );
            }
        } else if known {
            if PAGING.contains(&rel) {
                issues.push(
                    Issue::error(
                        IssueType::Invalid,
                        format!("the link relationship type '{rel}' is only for search and history Bundles"),
                    )
                    .at(format!("Bundle.link[{index}].relation")),
                );
            }
            if rel == "self" && repeated {
                issues.push(
                    Issue::error(
                        IssueType::Invalid,
                        format!("the link relationship type '{rel}' can only occur once"),
                    )
                    .at(format!("Bundle.link[{index}].relation")),
                );
            }
        }
    }
}

/// The resource types a search asks for, read from its `self` link: the
/// last path segment when it is a resource type, else `_type`.
fn searched_types(url: &str) -> Vec<&str> {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    if let Some(last) = head.rsplit('/').next()
        && last.starts_with(|c: char| c.is_ascii_uppercase())
        && last.bytes().all(|b| b.is_ascii_alphabetic())
    {
        return vec![last];
    }
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|p| p.strip_prefix("_type="))
        .flat_map(|t| t.split(','))
        .collect()
}

fn check_search_set(bundle: &Node, entries: &[Node], issues: &mut Vec<Issue>) {
    let self_link = bundle
        .get("link")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .find(|l| l.get("relation").and_then(Node::as_str) == Some("self"));
    let types = match self_link {
        Some(link) => link
            .get("url")
            .and_then(Node::as_str)
            .map(searched_types)
            .unwrap_or_default(),
        None => {
            issues.push(
                Issue::new(
                    Severity::Warning,
                    IssueType::Invalid,
                    "search results should have a self link (the search that was performed)",
                )
                .at("Bundle"),
            );
            Vec::new()
        }
    };
    fn mode(entry: &Node) -> Option<&str> {
        entry
            .get("search")
            .and_then(|s| s.get("mode"))
            .and_then(Node::as_str)
    }
    if entries.iter().all(|e| mode(e).is_none()) {
        // Without search modes Java only warns (BUNDLE_SEARCH_NO_MODE …);
        // a missing resource is still an error.
        for (index, entry) in entries.iter().enumerate() {
            if entry.get("resource").is_none() {
                issues.push(
                    Issue::error(IssueType::Invalid, "search results must have a resource")
                        .at(format!("Bundle.entry[{index}]")),
                );
            }
        }
        return;
    }
    for (index, entry) in entries.iter().enumerate() {
        let at = format!("Bundle.entry[{index}]");
        let mode = mode(entry);
        if mode.is_none() {
            issues.push(
                Issue::new(
                    Severity::Warning,
                    IssueType::Invalid,
                    "search results should say their search mode (match, include, outcome)",
                )
                .at(at.clone()),
            );
        }
        let Some(resource) = entry.get("resource") else {
            issues.push(
                Issue::error(IssueType::Invalid, "search results must have a resource").at(at),
            );
            continue;
        };
        let at = format!("{at}.resource");
        let resource_type = resource
            .get("resourceType")
            .and_then(Node::as_str)
            .unwrap_or("");
        let has_id = resource.get("id").is_some();
        match mode {
            Some("match") => {
                if !has_id {
                    issues.push(
                        Issue::error(IssueType::Invalid, "search results must have ids")
                            .at(at.clone()),
                    );
                }
                if !types.is_empty() && !types.contains(&resource_type) {
                    issues.push(
                        Issue::error(
                            IssueType::Invalid,
                            format!(
                                "this is not a matching resource type for the specified search ({resource_type} expecting [{}])",
                                types.join(", ")
                            ),
                        )
                        .at(at),
                    );
                }
            }
            Some("include") if !has_id => {
                issues.push(Issue::error(IssueType::Invalid, "search results must have ids").at(at))
            }
            Some("outcome") if resource_type != "OperationOutcome" => issues.push(
                Issue::error(
                    IssueType::Invalid,
                    format!("this is not an OperationOutcome ({resource_type})"),
                )
                .at(at),
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Vec<(String, String)> {
        let node = ehds_fhir::json::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut issues = Vec::new();
        check_bundle(&node, &mut issues);
        issues
            .into_iter()
            .map(|i| {
                (
                    i.severity.code().to_owned(),
                    i.expression.unwrap_or_default(),
                )
            })
            .collect()
    }

    fn errors(json: &str) -> Vec<String> {
        check(json)
            .into_iter()
            .filter(|(s, _)| s == "error")
            .map(|(_, e)| e)
            .collect()
    }

    #[test]
    fn full_urls() {
        assert_eq!(
            errors(
                r#"{"resourceType":"Bundle","type":"collection","entry":[
                  {"fullUrl":"Patient/1","resource":{"resourceType":"Patient","id":"1"}},
                  {"fullUrl":"http://x.example/fhir/Patient/2","resource":{"resourceType":"Patient"}},
                  {"fullUrl":"http://x.example/fhir/Patient/3","resource":{"resourceType":"Patient","id":"4"}},
                  {"fullUrl":"http://x.example/fhir/Patient/5/_history/1","resource":{"resourceType":"Patient","id":"5"}},
                  {"fullUrl":"urn:uuid:0c3b6f1e-2a5d-4c1e-9d55-1f1a2b3c4d5e","resource":{"resourceType":"Patient"}},
                  {"resource":{"resourceType":"Patient"}}]}"#
            ),
            [
                "Bundle.entry[0].fullUrl",
                "Bundle.entry[1].fullUrl",
                "Bundle.entry[2].fullUrl",
                "Bundle.entry[5]",
            ]
        );
        // Transactions may leave fullUrl out.
        assert!(
            errors(
                r#"{"resourceType":"Bundle","type":"transaction","entry":[
                  {"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}"#
            )
            .is_empty()
        );
    }

    #[test]
    fn links_by_bundle_type() {
        assert_eq!(
            errors(
                r#"{"resourceType":"Bundle","type":"searchset","link":[
                  {"relation":"self","url":"http://x/Patient"},{"relation":"self","url":"http://x/Patient"},
                  {"relation":"first","url":"http://x/1"},{"relation":"first","url":"http://x/2"},
                  {"relation":"alternate","url":"http://x/3"},{"relation":"alternate","url":"http://x/4"}]}"#
            ),
            ["Bundle.link[1]", "Bundle.link[3]"]
        );
        assert_eq!(
            errors(
                r#"{"resourceType":"Bundle","type":"collection","link":[
                  {"relation":"next","url":"http://x/1"},{"relation":"self","url":"http://x/2"},
                  {"relation":"self","url":"http://x/3"}]}"#
            ),
            ["Bundle.link[0].relation", "Bundle.link[2].relation"]
        );
    }

    #[test]
    fn search_results() {
        assert_eq!(
            check(
                r#"{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"http://x/fhir/Observation?_type=Observation,DocumentReference"}],
                  "entry":[
                  {"fullUrl":"urn:uuid:0c3b6f1e-2a5d-4c1e-9d55-1f1a2b3c4d5e","resource":{"resourceType":"Immunization"},"search":{"mode":"outcome"}},
                  {"fullUrl":"urn:uuid:1c3b6f1e-2a5d-4c1e-9d55-1f1a2b3c4d5e","resource":{"resourceType":"OperationOutcome"},"search":{"mode":"match"}},
                  {"fullUrl":"http://x/fhir/Observation/1","resource":{"resourceType":"Observation","id":"1"}}]}"#
            ),
            [
                ("error".into(), "Bundle.entry[0].resource".into()),
                ("error".into(), "Bundle.entry[1].resource".into()),
                ("error".into(), "Bundle.entry[1].resource".into()),
                ("warning".into(), "Bundle.entry[2]".into()),
            ]
        );
        assert_eq!(searched_types("http://x/fhir/Patient?name=x"), ["Patient"]);
        assert_eq!(searched_types("http://x/fhir/?_type=A,B&x=1"), ["A", "B"]);
    }
}
