//! Tidy: the repository keeps the promises ARCHITECTURE.md makes.
//!
//! * every dependency edge between workspace crates (normal, build or dev) is
//!   listed in ARCHITECTURE.md, and every listed edge exists;
//! * every library opens with a doc comment saying what it owns;
//! * libraries do not read the environment (only the binary and the test
//!   support crate may);
//! * nothing reads the shared conformance data outside the repository.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::process::Command;

use ehds_test_support::{files_with_extension, repo_root};
use serde_json::Value;

type Edge = (String, String, String);

fn workspace_edges() -> BTreeSet<Edge> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let members: BTreeSet<&str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let mut edges = BTreeSet::new();
    for package in metadata["packages"].as_array().unwrap() {
        for dep in package["dependencies"].as_array().unwrap() {
            let name = dep["name"].as_str().unwrap();
            if members.contains(name) {
                let kind = dep["kind"].as_str().unwrap_or("normal").to_owned();
                edges.insert((
                    package["name"].as_str().unwrap().to_owned(),
                    name.to_owned(),
                    kind,
                ));
            }
        }
    }
    edges
}

/// Lines like ``- `ehds-validation` → `ehds-fhir` `` (normal) or with a
/// trailing `(dev)` / `(build)`, in ARCHITECTURE.md.
fn documented_edges() -> BTreeSet<Edge> {
    let text = std::fs::read_to_string(repo_root().join("ARCHITECTURE.md")).unwrap();
    text.lines()
        .filter_map(|line| {
            let line = line.trim().strip_prefix("- `")?;
            let (from, rest) = line.split_once("` → `")?;
            let (to, rest) = rest.split_once('`')?;
            let kind = match rest.trim() {
                "(dev)" => "dev",
                "(build)" => "build",
                _ => "normal",
            };
            Some((from.to_owned(), to.to_owned(), kind.to_owned()))
        })
        .collect()
}

#[test]
fn dependency_edges_match_architecture_md() {
    let actual = workspace_edges();
    let documented = documented_edges();
    let undocumented: Vec<_> = actual.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&actual).collect();
    assert!(
        undocumented.is_empty(),
        "dependency edges missing from ARCHITECTURE.md: {undocumented:?}"
    );
    assert!(
        stale.is_empty(),
        "ARCHITECTURE.md lists edges that do not exist: {stale:?}"
    );
}

#[test]
fn every_library_says_what_it_owns() {
    for entry in std::fs::read_dir(repo_root().join("crates")).unwrap() {
        let lib = entry.unwrap().path().join("src/lib.rs");
        if !lib.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&lib).unwrap();
        assert!(
            text.starts_with("//! "),
            "{} must open with a //! doc comment",
            lib.display()
        );
        assert!(
            text.contains("Must not know about"),
            "{} must say what it must not know about",
            lib.display()
        );
    }
}

#[test]
fn libraries_do_not_read_the_environment() {
    let allowed = ["test-support", "gateway-bin"];
    for entry in std::fs::read_dir(repo_root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if allowed.contains(&name.as_str()) {
            continue;
        }
        for file in files_with_extension(&dir.join("src"), "rs") {
            let text = std::fs::read_to_string(&file).unwrap();
            for needle in ["std::env::var", "env::var(", "env::var_os(", "env::vars("] {
                assert!(
                    !text.contains(needle),
                    "{} reads the environment",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn nothing_reads_the_shared_folder() {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in ["crates", "tests", ".ci", "deploy"] {
        files.extend(files_with_extension(&root.join(dir), "rs"));
        files.extend(files_with_extension(&root.join(dir), "toml"));
    }
    files.push(root.join(".ci/run"));
    let needle = ["..", "/shared"].concat();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            !text.contains(&needle),
            "{} mentions the shared folder",
            file.display()
        );
    }
}
