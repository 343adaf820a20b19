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

// ---------------------------------------------------------------------------
// Imports inside each crate: no circle, and ehds-gateway's layers.
// ---------------------------------------------------------------------------

/// The module files of one crate's `src/`, by module path (`crate`,
/// `crate::edge`, `crate::edge::state`).
fn module_files(src: &std::path::Path) -> std::collections::BTreeMap<String, std::path::PathBuf> {
    let mut modules = std::collections::BTreeMap::new();
    for file in files_with_extension(src, "rs") {
        let relative = file.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            parts.pop();
        }
        if parts.first().map(String::as_str) == Some("bin") {
            continue;
        }
        let path = std::iter::once("crate".to_owned())
            .chain(parts)
            .collect::<Vec<_>>()
            .join("::");
        modules.insert(path, file);
    }
    modules
}

/// The production code of a file: up to its `#[cfg(test)]` module (test
/// code may reach anywhere), without comments (a doc link is no import).
fn production_text(file: &std::path::Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let code = match text.find("\n#[cfg(test)]") {
        Some(end) => &text[..end],
        None => text.as_str(),
    };
    code.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The items a module re-exports (`pub use a::b::Item;`, `pub(crate) use
/// a::{B, C};`), each with the path it names, relative to the module.
fn reexports(text: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut found = std::collections::BTreeMap::new();
    for statement in text.split(';') {
        let statement = statement.trim();
        let Some(rest) = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let rest: String = rest.split_whitespace().collect::<Vec<_>>().join(" ");
        let (head, items): (&str, Vec<&str>) = match rest.split_once("::{") {
            Some((head, group)) => (head, group.trim_end_matches('}').split(',').collect()),
            None => match rest.rsplit_once("::") {
                Some((head, item)) => (head, vec![item]),
                None => continue,
            },
        };
        for item in items {
            let item = item.trim();
            let (name, alias) = match item.split_once(" as ") {
                Some((name, alias)) => (name.trim(), alias.trim()),
                None => (item, item),
            };
            if name.is_empty() || name == "self" {
                continue;
            }
            let mut path: Vec<String> = head.split("::").map(str::to_owned).collect();
            path.extend(name.split("::").map(str::to_owned));
            found.insert(alias.rsplit("::").next().unwrap_or(alias).to_owned(), path);
        }
    }
    found
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths named after `prefix::` in `text` (`crate`, `super`, or a
/// child module's name), each as its segments; a `{…}` group gives one path
/// per item.
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let needle = format!("{prefix}::");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(&needle) {
        let start = from + at;
        from = start + needle.len();
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| ident_char(c) || c == ':') {
            continue;
        }
        let rest = &text[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let segments = segments_of(item.trim());
                if !segments.is_empty() {
                    found.push(segments);
                }
            }
        } else {
            let segments = segments_of(rest);
            if !segments.is_empty() {
                found.push(segments);
            }
        }
    }
    found
}

fn segments_of(text: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut rest = text;
    loop {
        let end = rest.find(|c: char| !ident_char(c)).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        segments.push(rest[..end].to_owned());
        match rest[end..].strip_prefix("::") {
            Some(next) if next.starts_with(|c: char| ident_char(c)) => rest = next,
            _ => break,
        }
    }
    segments
}

/// The module file a path from `base` lands in: the longest prefix that is
/// a module, followed through that module's re-exports of the next segment.
fn resolve(
    modules: &std::collections::BTreeMap<String, std::path::PathBuf>,
    base: &str,
    segments: &[String],
) -> Option<String> {
    resolve_within(modules, base, segments, 4)
}

fn resolve_within(
    modules: &std::collections::BTreeMap<String, std::path::PathBuf>,
    base: &str,
    segments: &[String],
    depth: u8,
) -> Option<String> {
    let mut best = modules.contains_key(base).then(|| base.to_owned());
    let mut path = base.to_owned();
    let mut used = 0;
    for segment in segments {
        let next = format!("{path}::{segment}");
        if modules.contains_key(&next) {
            path = next;
            best = Some(path.clone());
            used += 1;
        } else {
            break;
        }
    }
    let (Some(module), Some(item)) = (&best, segments.get(used)) else {
        return best;
    };
    if depth == 0 {
        return best;
    }
    let text = production_text(modules.get(module)?);
    match reexports(&text).get(item) {
        Some(target) => {
            let (from, rest) = match target.first().map(String::as_str) {
                Some("crate") => ("crate".to_owned(), &target[1..]),
                Some("super") => (
                    module.rsplit_once("::").map(|(p, _)| p.to_owned())?,
                    &target[1..],
                ),
                Some("self") => (module.clone(), &target[1..]),
                _ => (module.clone(), &target[..]),
            };
            let found = resolve_within(modules, &from, rest, depth - 1);
            // An item re-exported from another crate stays with the module.
            match found {
                Some(found) if found != *module || from != *module => Some(found),
                _ => best,
            }
        }
        None => best,
    }
}

/// module → the modules its production code names.
fn import_graph(src: &std::path::Path) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let modules = module_files(src);
    let mut graph = std::collections::BTreeMap::new();
    for (module, file) in &modules {
        let text = production_text(file);
        let parent = module.rsplit_once("::").map(|(p, _)| p.to_owned());
        let mut targets = BTreeSet::new();
        for segments in paths_after(&text, "crate") {
            targets.extend(resolve(&modules, "crate", &segments));
        }
        if let Some(parent) = &parent {
            for segments in paths_after(&text, "super") {
                targets.extend(resolve(&modules, parent, &segments));
            }
        }
        // A parent naming its child modules (`child::item`).
        let children: Vec<&String> = modules
            .keys()
            .filter(|m| {
                m.strip_prefix(module.as_str())
                    .and_then(|r| r.strip_prefix("::"))
                    .is_some_and(|r| !r.contains("::"))
            })
            .collect();
        for child in children {
            let name = child.rsplit("::").next().unwrap();
            if !paths_after(&text, name).is_empty() {
                targets.insert(child.clone());
            }
        }
        targets.remove(module);
        graph.insert(module.clone(), targets);
    }
    graph
}

/// The circles of `graph` (strongly connected components of more than one
/// module), each sorted.
fn circles(graph: &std::collections::BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Kosaraju: order by finish time, then walk the reversed graph.
    fn visit<'a>(
        node: &'a str,
        graph: &'a std::collections::BTreeMap<String, BTreeSet<String>>,
        seen: &mut BTreeSet<&'a str>,
        order: &mut Vec<&'a str>,
    ) {
        if !seen.insert(node) {
            return;
        }
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, seen, order);
        }
        order.push(node);
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for node in graph.keys() {
        visit(node, graph, &mut seen, &mut order);
    }
    let mut reversed: std::collections::BTreeMap<String, BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for (from, targets) in graph {
        for to in targets {
            reversed.entry(to.clone()).or_default().insert(from.clone());
        }
    }
    let mut assigned = BTreeSet::new();
    let mut found = Vec::new();
    for node in order.into_iter().rev() {
        if assigned.contains(node) {
            continue;
        }
        let mut component = Vec::new();
        let mut stack = vec![node.to_owned()];
        while let Some(current) = stack.pop() {
            if !assigned.insert(current.clone()) {
                continue;
            }
            for next in reversed.get(&current).into_iter().flatten() {
                if !assigned.contains(next) {
                    stack.push(next.clone());
                }
            }
            component.push(current);
        }
        if component.len() > 1 {
            component.sort();
            found.push(component);
        }
    }
    found
}

/// "No import circle inside any crate": the modules of each crate's `src/`
/// import each other one way only (production code; a file's test module
/// may reach anywhere).
#[test]
fn no_crate_has_an_import_circle() {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(repo_root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        for circle in circles(&import_graph(&src)) {
            found.insert((name.clone(), circle.join(" <-> ")));
        }
    }
    assert!(found.is_empty(), "import circles: {found:#?}");
}

/// ehds-gateway's layers (ARCHITECTURE.md, "Inside ehds-gateway"): a module
/// imports only modules of its own layer or below. The first matching
/// prefix of the module path gives its layer.
const GATEWAY_LAYERS: &[(&str, u8)] = &[
    ("crate::edge::respond", 1),
    ("crate::edge::request_id", 1),
    ("crate::metrics", 1),
    ("crate::operations", 1),
    ("crate::answer_memo", 1),
    ("crate::validation_policy", 1),
    ("crate::start_error", 1),
    ("crate::error", 2),
    ("crate::edge", 3),
    ("crate::services", 3),
    ("crate::sources", 3),
    ("crate::audit", 4),
    ("crate::assertion", 4),
    ("crate::release", 4),
    ("crate::eprescription", 4),
    ("crate::relay", 5),
    ("crate::federation", 5),
    ("crate::national", 6),
    ("crate::config", 7),
    ("crate::patient_page", 7),
    ("crate::startup", 7),
    ("crate", 8),
];

fn gateway_layer(module: &str) -> u8 {
    GATEWAY_LAYERS
        .iter()
        .find(|(prefix, _)| {
            module == *prefix
                || module
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
        .map(|(_, layer)| *layer)
        .unwrap_or_else(|| panic!("{module} has no layer in GATEWAY_LAYERS"))
}

#[test]
fn gateway_imports_point_down_its_layers() {
    let graph = import_graph(&repo_root().join("crates/gateway/src"));
    let mut upward = Vec::new();
    for (from, targets) in &graph {
        for to in targets {
            let (a, b) = (gateway_layer(from), gateway_layer(to));
            // The crate root declares every module and re-exports the API.
            if from != "crate" && b > a {
                upward.push(format!("{from} (layer {a}) imports {to} (layer {b})"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports against the layers:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_import_scanner_sees_grouped_super_and_child_paths() {
    assert_eq!(
        paths_after("use crate::{edge::AppState, error};", "crate"),
        vec![
            vec!["edge".to_owned(), "AppState".to_owned()],
            vec!["error".to_owned()]
        ]
    );
    assert_eq!(
        paths_after("x = super::admit::admit(); y = ehds::super::z;", "super"),
        vec![vec!["admit".to_owned(), "admit".to_owned()]]
    );
    let graph: std::collections::BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(circles(&graph), vec![vec!["a", "b", "c"]]);
}
