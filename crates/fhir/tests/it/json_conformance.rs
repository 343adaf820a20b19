//! Lossless JSON against real documents.
//!
//! * Every deliberately malformed JSON input of fhir-test-cases
//!   (`conformance/malformed-json/`) is refused with a located `structure` issue.
//! * Every R4 specification example and IPS IG example (`conformance/examples/`)
//!   parses, and the parsed view keeps what was written: numbers as their
//!   source text, members in source order, spans that point at the source.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ehds_fhir::ReceivedResource;
use ehds_fhir::json::{Json, Node};
use ehds_fhir::outcome::{Issue, IssueType};
use ehds_test_support::{conformance_dir, files_with_extension};

#[test]
fn malformed_json_from_fhir_test_cases_is_refused_with_a_location() {
    let files = files_with_extension(&conformance_dir().join("malformed-json"), "json");
    assert_eq!(
        files.len(),
        9,
        "bad-json-close-1..3, json-no-quotes-1..2, json-comma-bad-1..2, json-comments-1..2"
    );
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let rejection = ReceivedResource::parse(bytes.into())
            .err()
            .unwrap_or_else(|| panic!("{} was accepted", path.display()));
        let issue = Issue::from(&rejection);
        assert_eq!(issue.code, IssueType::Structure);
        assert!(
            issue
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with("line "))
        );
    }
}

#[test]
fn every_example_parses_and_keeps_what_was_written() {
    let files = files_with_extension(&conformance_dir().join("examples"), "json");
    assert!(files.len() >= 740, "examples missing: {}", files.len());
    let mut numbers = 0usize;
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let resource = ReceivedResource::parse(bytes.clone().into())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(resource.bytes().as_ref(), &bytes[..]);
        check_view(resource.root(), &bytes, &mut numbers, path);
    }
    assert!(numbers > 1000, "only {numbers} numbers seen");
}

fn check_view(node: &Node, src: &[u8], numbers: &mut usize, path: &std::path::Path) {
    let text = &src[node.span.start as usize..node.span.end as usize];
    match &node.value {
        Json::Number(n) => {
            assert_eq!(n.as_bytes(), text, "{}", path.display());
            *numbers += 1;
        }
        Json::String(_) => assert!(text.starts_with(b"\"") && text.ends_with(b"\"")),
        Json::Object(members) => {
            assert!(text.starts_with(b"{") && text.ends_with(b"}"));
            let mut last = node.span.start;
            for member in members {
                assert!(
                    member.key_span.start > last,
                    "member order lost in {}",
                    path.display()
                );
                last = member.node.span.start;
                check_view(&member.node, src, numbers, path);
            }
        }
        Json::Array(items) => {
            assert!(text.starts_with(b"[") && text.ends_with(b"]"));
            for item in items {
                check_view(item, src, numbers, path);
            }
        }
        Json::Bool(b) => assert_eq!(text, if *b { &b"true"[..] } else { &b"false"[..] }),
        Json::Null => assert_eq!(text, b"null"),
    }
}

#[test]
fn agrees_with_serde_json_on_every_string_and_shape() {
    for path in files_with_extension(&conformance_dir().join("examples"), "json") {
        let bytes = std::fs::read(&path).unwrap();
        let ours = ehds_fhir::json::parse(&bytes).unwrap();
        let body = bytes
            .strip_prefix(ehds_fhir::json::UTF8_BOM)
            .unwrap_or(&bytes);
        let theirs: serde_json::Value = serde_json::from_slice(body).unwrap();
        same(&ours, &theirs, &path);
    }
}

fn same(ours: &Node, theirs: &serde_json::Value, path: &std::path::Path) {
    match (&ours.value, theirs) {
        (Json::String(a), serde_json::Value::String(b)) => {
            assert_eq!(&**a, b, "{}", path.display())
        }
        (Json::Number(a), serde_json::Value::Number(b)) => {
            assert_eq!(a.parse::<f64>().ok(), b.as_f64(), "{}", path.display());
        }
        (Json::Bool(a), serde_json::Value::Bool(b)) => assert_eq!(a, b),
        (Json::Null, serde_json::Value::Null) => {}
        (Json::Array(a), serde_json::Value::Array(b)) => {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                same(x, y, path);
            }
        }
        (Json::Object(a), serde_json::Value::Object(b)) => {
            assert_eq!(a.len(), b.len(), "{}", path.display());
            for member in a {
                same(&member.node, &b[&*member.key], path);
            }
        }
        (a, b) => panic!("{}: {a:?} vs {b:?}", path.display()),
    }
}
