//! Registry behaviour on small packages written by the tests.

use std::path::{Path, PathBuf};

use super::*;

use ehds_test_support::ScratchDir as Scratch;

/// Writes a package folder `dir` with a package.json and `files`.
fn package(dir: &Path, name: &str, version: &str, files: &[(&str, String)]) -> PathBuf {
    package_with(dir, name, version, "", files)
}

/// [`package`] with `dependencies` written as JSON members
/// (`"a.b":"1.0.0"`).
fn package_with(
    dir: &Path,
    name: &str,
    version: &str,
    dependencies: &str,
    files: &[(&str, String)],
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        format!(r#"{{"name":"{name}","version":"{version}","dependencies":{{{dependencies}}}}}"#),
    )
    .unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir.to_path_buf()
}

fn resource(resource_type: &str, url: &str, version: Option<&str>, name: &str) -> String {
    let version = version.map_or(String::new(), |v| format!(r#","version":"{v}""#));
    format!(r#"{{"resourceType":"{resource_type}","url":"{url}"{version},"name":"{name}"}}"#)
}

const X: &str = "http://example.org/fhir/StructureDefinition/x";
const Y: &str = "http://example.org/fhir/ValueSet/y";

#[test]
fn registry_is_send_and_sync() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Registry>();
    shareable::<Arc<Registry>>();
    shareable::<ProfilesError>();
}

#[test]
fn a_later_package_does_not_replace_the_same_url_and_version() {
    let scratch = Scratch::new("dup");
    let a = package(
        &scratch.path().join("a"),
        "example.a",
        "1.0.0",
        &[
            (
                "StructureDefinition-x.json",
                resource("StructureDefinition", X, Some("1.0.0"), "FirstX"),
            ),
            ("ValueSet-y.json", resource("ValueSet", Y, None, "FirstY")),
        ],
    );
    let b = package(
        &scratch.path().join("b"),
        "example.b",
        "2.0.0",
        &[
            (
                "StructureDefinition-x.json",
                resource("StructureDefinition", X, Some("1.0.0"), "SecondX"),
            ),
            (
                "StructureDefinition-x11.json",
                resource("StructureDefinition", X, Some("1.1.0"), "NewerX"),
            ),
            ("ValueSet-y.json", resource("ValueSet", Y, None, "SecondY")),
        ],
    );
    let registry = Registry::load(&[a, b.clone()]).unwrap();
    assert_eq!(registry.len(), 3);
    assert_eq!(registry.packages().len(), 2);
    assert_eq!(registry.packages()[1].to_string(), "example.b#2.0.0");

    let dups = registry.duplicates();
    assert_eq!(dups.len(), 2, "{dups:?}");
    assert_eq!(dups[0].url, X);
    assert_eq!(dups[0].version.as_deref(), Some("1.0.0"));
    assert_eq!(dups[0].kept.name, "example.a");
    assert_eq!(dups[0].ignored.name, "example.b");
    assert_eq!(dups[0].path, b.join("StructureDefinition-x.json"));
    assert_eq!(dups[1].url, Y);
    assert_eq!(dups[1].version, None);
    assert_eq!(dups[1].resource_type, "ValueSet");

    let name = |c: &str| registry.resolve(c).and_then(|r| r.name.as_deref());
    assert_eq!(name(X), Some("NewerX"), "url alone is the highest version");
    assert_eq!(name(&format!("{X}|1.0.0")), Some("FirstX"));
    assert_eq!(name(&format!("{X}|1.1.0")), Some("NewerX"));
    assert_eq!(name(&format!("{X}|2.0.0")), None);
    assert_eq!(name(Y), Some("FirstY"));
    assert_eq!(
        registry.resolve(X).unwrap().canonical(),
        format!("{X}|1.1.0")
    );
    assert_eq!(registry.resolve(Y).unwrap().canonical(), Y);

    let sds: Vec<_> = registry
        .of_type("StructureDefinition")
        .map(|r| r.name.as_deref().unwrap())
        .collect();
    assert_eq!(sds, ["FirstX", "NewerX"]);
    assert_eq!(registry.of_type("CodeSystem").count(), 0);
}

#[test]
fn resolution_is_exact_apart_from_a_fragment_and_a_major_minor() {
    let scratch = Scratch::new("exact");
    let a = package(
        &scratch.path().join("a"),
        "example.a",
        "1.0.0",
        &[
            (
                "StructureDefinition-x.json",
                resource("StructureDefinition", X, Some("1.0.0"), "X"),
            ),
            ("ValueSet-y.json", resource("ValueSet", Y, Some("3"), "Y")),
        ],
    );
    let registry = Registry::load(&[a]).unwrap();
    assert!(registry.resolve(&format!("{X}#Extension.value")).is_some());
    assert!(registry.resolve(&format!("{X}|1.0.0#frag")).is_some());
    assert!(registry.resolve(&X.to_uppercase()).is_none());
    assert!(registry.resolve(&format!("{X}/")).is_none());
    assert!(registry.resolve(&X.replace("http:", "https:")).is_none());
    assert!(registry.resolve(&format!(" {X}")).is_none());
    // A plain release not held means the highest of its major.minor (Java
    // `CanonicalResourceManager.get`); pre-releases and other majors do not.
    assert!(registry.resolve(&format!("{X}|1.0")).is_some());
    assert!(registry.resolve(&format!("{X}|1.0.4")).is_some());
    assert!(registry.resolve(&format!("{X}|1.0.0-ballot")).is_none());
    assert!(registry.resolve(&format!("{X}|1.1")).is_none());
    assert!(registry.resolve(&format!("{X}|1")).is_none());
    assert!(registry.resolve_typed("StructureDefinition", X).is_some());
    assert!(registry.resolve_typed("ValueSet", X).is_none());
    assert!(
        registry
            .resolve_typed("ValueSet", &format!("{Y}|3"))
            .is_some()
    );
    assert!(
        registry
            .resolve_typed("CodeSystem", &format!("{Y}|3"))
            .is_none()
    );
}

#[test]
fn without_semver_like_versions_the_first_loaded_wins() {
    let scratch = Scratch::new("first");
    let a = package(
        &scratch.path().join("a"),
        "example.a",
        "1.0.0",
        &[
            ("A.json", resource("ValueSet", Y, Some("R4"), "A")),
            ("B.json", resource("ValueSet", Y, None, "B")),
            ("C.json", resource("ValueSet", Y, Some("current"), "C")),
        ],
    );
    let registry = Registry::load(std::slice::from_ref(&a)).unwrap();
    assert_eq!(registry.resolve(Y).unwrap().name.as_deref(), Some("A"));
    assert_eq!(
        registry
            .resolve(&format!("{Y}|current"))
            .unwrap()
            .name
            .as_deref(),
        Some("C")
    );

    // One semver-like version beats versions that are not.
    std::fs::write(
        a.join("D.json"),
        resource("ValueSet", Y, Some("0.1.0"), "D"),
    )
    .unwrap();
    std::fs::write(
        a.join("E.json"),
        resource("ValueSet", Y, Some("0.1.0-ballot"), "E"),
    )
    .unwrap();
    let registry = Registry::load(&[a]).unwrap();
    assert_eq!(registry.resolve(Y).unwrap().name.as_deref(), Some("D"));
}

#[test]
fn only_top_level_conformance_resources_with_a_url_are_loaded() {
    let scratch = Scratch::new("skip");
    let a = package(
        &scratch.path().join("a"),
        "example.a",
        "1.0.0",
        &[
            (
                "StructureDefinition-x.json",
                resource("StructureDefinition", X, None, "X"),
            ),
            (
                "NamingSystem-n.json",
                resource("NamingSystem", "http://example.org/ns", None, "N"),
            ),
            (
                "ConceptMap-c.json",
                resource("ConceptMap", "http://example.org/cm", None, "C"),
            ),
            (
                "SearchParameter-s.json",
                resource("SearchParameter", "http://example.org/sp", None, "S"),
            ),
            (
                "ImplementationGuide-ig.json",
                resource("ImplementationGuide", "http://example.org/ig", None, "IG"),
            ),
            (
                "Patient-p.json",
                r#"{"resourceType":"Patient","id":"p"}"#.to_owned(),
            ),
            (
                "CodeSystem-nourl.json",
                r#"{"resourceType":"CodeSystem","name":"NoUrl"}"#.to_owned(),
            ),
            (
                ".index.json",
                r#"{"index-version":1,"files":[]}"#.to_owned(),
            ),
            ("notes.txt", "not json".to_owned()),
            ("ValueSet-y.xml", "<ValueSet/>".to_owned()),
        ],
    );
    std::fs::create_dir_all(a.join("example")).unwrap();
    std::fs::write(a.join("example/broken.json"), "{").unwrap();
    std::fs::create_dir_all(a.join("folder.json")).unwrap();

    let registry = Registry::load(&[a]).unwrap();
    assert_eq!(registry.len(), 3);
    let types: Vec<_> = registry.iter().map(|r| r.resource_type.as_str()).collect();
    assert_eq!(types, ["ConceptMap", "NamingSystem", "StructureDefinition"]);
    let skipped = registry.skipped();
    assert_eq!(skipped.without_url, 1);
    assert_eq!(
        skipped
            .by_type
            .iter()
            .map(|(t, n)| (t.as_str(), *n))
            .collect::<Vec<_>>(),
        [
            ("ImplementationGuide", 1),
            ("Patient", 1),
            ("SearchParameter", 1)
        ]
    );
}

#[test]
fn an_npm_tarball_layout_is_read_from_its_package_folder() {
    let scratch = Scratch::new("npm");
    let outer = scratch.path().join("example.npm-1.0.0");
    package(
        &outer.join("package"),
        "example.npm",
        "1.0.0",
        &[("ValueSet-y.json", resource("ValueSet", Y, None, "Y"))],
    );
    let registry = Registry::load(std::slice::from_ref(&outer)).unwrap();
    assert_eq!(registry.len(), 1);
    assert_eq!(registry.packages()[0].name, "example.npm");
    assert_eq!(
        registry.resolve(Y).unwrap().path,
        outer.join("package/ValueSet-y.json")
    );
}

#[test]
fn load_root_takes_package_folders_in_name_order() {
    let scratch = Scratch::new("root");
    let root = scratch.path();
    package(
        &root.join("z.second-1.0.0"),
        "z.second",
        "1.0.0",
        &[("ValueSet-y.json", resource("ValueSet", Y, None, "FromZ"))],
    );
    package(
        &root.join("a.first-1.0.0"),
        "a.first",
        "1.0.0",
        &[("ValueSet-y.json", resource("ValueSet", Y, None, "FromA"))],
    );
    package(&root.join("m.npm/package"), "m.npm", "1.0.0", &[]);
    std::fs::create_dir_all(root.join("not-a-package")).unwrap();
    std::fs::write(root.join("README.md"), "# packages").unwrap();

    let registry = Registry::load_root(root).unwrap();
    let names: Vec<_> = registry
        .packages()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["a.first", "m.npm", "z.second"]);
    assert_eq!(registry.resolve(Y).unwrap().name.as_deref(), Some("FromA"));
    assert_eq!(registry.duplicates().len(), 1);
}

#[test]
fn core_structure_is_the_base_definition_of_the_type() {
    let scratch = Scratch::new("core");
    let sd = |id: &str, ty: &str, derivation: &str| {
        format!(
            r#"{{"resourceType":"StructureDefinition","url":"{CORE_STRUCTURE_PREFIX}{id}","version":"4.0.1","name":"{id}","type":"{ty}","derivation":"{derivation}"}}"#
        )
    };
    let core = package(
        &scratch.path().join("core"),
        "example.core",
        "4.0.1",
        &[
            (
                "StructureDefinition-Patient.json",
                sd("Patient", "Patient", "specialization"),
            ),
            (
                "StructureDefinition-vitalsigns.json",
                sd("vitalsigns", "Observation", "constraint"),
            ),
            (
                "ValueSet-Patient.json",
                r#"{"resourceType":"ValueSet","url":"http://hl7.org/fhir/ValueSet/Patient"}"#
                    .to_owned(),
            ),
        ],
    );
    let registry = Registry::load(&[core]).unwrap();
    assert_eq!(
        registry.core_structure("Patient").unwrap().url,
        format!("{CORE_STRUCTURE_PREFIX}Patient")
    );
    assert!(registry.core_structure("vitalsigns").is_none());
    assert!(registry.core_structure("Observation").is_none());
    assert!(registry.core_structure("patient").is_none());
}

#[test]
fn a_folder_without_package_json_is_an_error() {
    let scratch = Scratch::new("nopkg");
    let dir = scratch.path().join("loose");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ValueSet-y.json"),
        resource("ValueSet", Y, None, "Y"),
    )
    .unwrap();
    let err = Registry::load(std::slice::from_ref(&dir)).unwrap_err();
    assert!(
        matches!(&err, ProfilesError::NotAPackage { path } if *path == dir),
        "{err:?}"
    );
    assert!(err.to_string().contains("no package.json"), "{err}");

    let missing = scratch.path().join("missing");
    let err = Registry::load(std::slice::from_ref(&missing)).unwrap_err();
    assert!(
        matches!(&err, ProfilesError::Io { path, source } if *path == missing && source.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
}

#[test]
fn a_package_json_without_version_is_an_error() {
    let scratch = Scratch::new("badpkg");
    let dir = scratch.path().join("p");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("package.json"), r#"{"name":"example.p"}"#).unwrap();
    let err = Registry::load(std::slice::from_ref(&dir)).unwrap_err();
    assert!(
        matches!(&err, ProfilesError::BadPackageJson { path, .. } if *path == dir.join("package.json")),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"version\""), "{err}");

    std::fs::write(dir.join("package.json"), "{name").unwrap();
    let err = Registry::load(&[dir]).unwrap_err();
    assert!(
        matches!(err, ProfilesError::BadPackageJson { .. }),
        "{err:?}"
    );
}

#[test]
fn a_malformed_resource_is_an_error_with_its_path_and_position() {
    let scratch = Scratch::new("malformed");
    let a = package(
        &scratch.path().join("a"),
        "example.a",
        "1.0.0",
        &[
            ("StructureDefinition-x.json", resource("StructureDefinition", X, None, "X")),
            (
                "ValueSet-bad.json",
                "{\n  \"resourceType\": \"ValueSet\",\n  \"url\": \"http://example.org/v\",\n  \"status\": \"active\",\n}\n".to_owned(),
            ),
        ],
    );
    let err = Registry::load(std::slice::from_ref(&a)).unwrap_err();
    let bad = a.join("ValueSet-bad.json");
    match &err {
        ProfilesError::NotFhirJson { path, rejection } => {
            assert_eq!(*path, bad);
            assert_eq!(rejection.line, 5, "{rejection:?}");
        }
        other => panic!("expected NotFhirJson, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.starts_with(&bad.display().to_string()), "{message}");
    assert!(message.contains("line 5"), "{message}");

    // FHIR JSON rules apply too: a duplicate member is refused.
    std::fs::write(
        &bad,
        r#"{"resourceType":"ValueSet","url":"http://example.org/v","url":"http://example.org/w"}"#,
    )
    .unwrap();
    let err = Registry::load(&[a]).unwrap_err();
    assert!(matches!(err, ProfilesError::NotFhirJson { .. }), "{err:?}");
}

#[test]
fn an_empty_package_loads_nothing() {
    let scratch = Scratch::new("empty");
    let a = package(&scratch.path().join("a"), "example.a", "1.0.0", &[]);
    let registry = Registry::load(&[a]).unwrap();
    assert!(registry.is_empty());
    assert_eq!(registry.len(), 0);
    assert!(registry.resolve(X).is_none());
    assert!(Registry::load(&[]).unwrap().is_empty());
}

/// Two versions of one package (an IPS-like base) and packages depending on
/// each: the scope of a dependent package finds its base's version; a
/// version-less reference from outside means the default.
fn two_versions_and_dependents(scratch: &Scratch) -> Registry {
    let base = |dir: &str, version: &str| {
        package(
            &scratch.path().join(dir),
            "example.base",
            version,
            &[
                (
                    "StructureDefinition-x.json",
                    resource(
                        "StructureDefinition",
                        X,
                        Some(version),
                        &format!("X{version}"),
                    ),
                ),
                (
                    "ValueSet-y.json",
                    resource("ValueSet", Y, Some(version), &format!("Y{version}")),
                ),
            ],
        )
    };
    let old = base("base-1.1.0", "1.1.0");
    let new = base("base-2.0.0-ballot", "2.0.0-ballot");
    let lab = package_with(
        &scratch.path().join("lab-0.1.0"),
        "example.lab",
        "0.1.0",
        r#""hl7.fhir.r4.core":"4.0.1","example.base":"1.1.0","example.ext":"0.1.x""#,
        &[],
    );
    let ext = package(
        &scratch.path().join("ext-0.1.0"),
        "example.ext",
        "0.1.0",
        &[],
    );
    let current = package_with(
        &scratch.path().join("lab-0.2.0-ci"),
        "example.lab",
        "0.2.0-ci",
        r#""example.base":"current""#,
        &[],
    );
    let national = package_with(
        &scratch.path().join("national"),
        "example.national",
        "0.0.1",
        r#""example.lab":"0.1.0","example.base":"1.1.0""#,
        &[],
    );
    Registry::load(&[old, new, lab, ext, current, national]).unwrap()
}

fn id(name: &str, version: &str) -> PackageId {
    PackageId {
        name: name.into(),
        version: version.into(),
    }
}

#[test]
fn dependency_scopes_follow_package_json_breadth_first() {
    let scratch = Scratch::new("scope");
    let registry = two_versions_and_dependents(&scratch);
    let names = |p: PackageId| {
        registry
            .dependency_scope(&p)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(id("example.lab", "0.1.0")),
        [
            "example.lab#0.1.0",
            "example.base#1.1.0",
            "example.ext#0.1.0"
        ],
        "exact and wildcard dependencies; the core is not loaded here"
    );
    assert_eq!(
        names(id("example.lab", "0.2.0-ci")),
        ["example.lab#0.2.0-ci", "example.base#2.0.0-ballot"],
        "`current` is the highest loaded"
    );
    assert_eq!(
        names(id("example.national", "0.0.1")),
        [
            "example.national#0.0.1",
            "example.base#1.1.0",
            "example.lab#0.1.0",
            "example.ext#0.1.0"
        ],
        "one level in name order, then the next"
    );
    assert!(names(id("example.lab", "9.9.9")).is_empty());
    assert_eq!(registry.dependencies(&id("example.lab", "0.1.0")).len(), 3);
}

#[test]
fn a_reference_resolves_in_its_package_scope_else_to_the_default() {
    let scratch = Scratch::new("resolve-in");
    let registry = two_versions_and_dependents(&scratch);
    let name = |r: Option<&LoadedResource>| r.and_then(|r| r.name.clone());
    // From outside: the highest version, or the one asked for.
    assert_eq!(name(registry.resolve(X)), Some("X2.0.0-ballot".into()));
    assert_eq!(
        name(registry.resolve(&format!("{X}|1.1.0"))),
        Some("X1.1.0".into())
    );
    // From a package depending on 1.1.0: 1.1.0, for every resource type.
    let lab = registry.dependency_scope(&id("example.lab", "0.1.0"));
    assert_eq!(
        name(registry.resolve_in(None, X, &lab)),
        Some("X1.1.0".into())
    );
    assert_eq!(
        name(registry.resolve_in(Some("ValueSet"), Y, &lab)),
        Some("Y1.1.0".into())
    );
    assert_eq!(
        registry
            .resolve_in(Some("CodeSystem"), Y, &lab)
            .map(|r| &r.url),
        None
    );
    // A version written out wins over the scope.
    assert_eq!(
        name(registry.resolve_in(None, &format!("{X}|2.0.0-ballot"), &lab)),
        Some("X2.0.0-ballot".into())
    );
    // A scope without the URL falls back to the default.
    let ext = registry.dependency_scope(&id("example.ext", "0.1.0"));
    assert_eq!(
        name(registry.resolve_in(None, X, &ext)),
        Some("X2.0.0-ballot".into())
    );
}

#[test]
fn an_explicit_default_package_decides_version_less_references() {
    let scratch = Scratch::new("default");
    let registry = two_versions_and_dependents(&scratch)
        .with_default_packages(&[id("example.base", "1.1.0")])
        .unwrap();
    let name = |r: Option<&LoadedResource>| r.and_then(|r| r.name.clone());
    assert_eq!(name(registry.resolve(X)), Some("X1.1.0".into()));
    assert_eq!(
        name(registry.resolve_typed("ValueSet", Y)),
        Some("Y1.1.0".into())
    );
    assert_eq!(
        name(registry.resolve(&format!("{X}|2.0.0-ballot"))),
        Some("X2.0.0-ballot".into())
    );
    // The scope of a package depending on another version still wins.
    let current = registry.dependency_scope(&id("example.lab", "0.2.0-ci"));
    assert_eq!(
        name(registry.resolve_in(None, X, &current)),
        Some("X2.0.0-ballot".into())
    );
    assert!(matches!(
        two_versions_and_dependents(&Scratch::new("default-missing"))
            .with_default_packages(&[id("example.base", "3.0.0")]),
        Err(ProfilesError::UnknownDefaultPackage(_))
    ));
}

#[test]
fn dependencies_must_be_an_object_of_version_strings() {
    let scratch = Scratch::new("bad-deps");
    for (i, dependencies) in [r#""dependencies":[]"#, r#""dependencies":{"a":1}"#]
        .into_iter()
        .enumerate()
    {
        let dir = scratch.path().join(format!("p{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("package.json"),
            format!(r#"{{"name":"a","version":"1.0.0",{dependencies}}}"#),
        )
        .unwrap();
        assert!(
            matches!(
                Registry::load(&[dir]),
                Err(ProfilesError::BadPackageJson { .. })
            ),
            "{dependencies}"
        );
    }
}

#[test]
fn compact_form_leaves_out_only_documentation() {
    let source = br#"{
  "resourceType": "StructureDefinition", "url": "http://x/sd", "text": {"div": "<div/>"},
  "description": "d", "mapping": [{"identity": "rim"}], "name": "N\u00e9",
  "snapshot": {"element": [{"id": "A", "path": "A", "short": "kept",
    "definition": "gone", "comment": "gone", "mapping": [{"map": "gone"}],
    "min": 0, "max": "*", "constraint": [{"key": "k-1", "human": "kept",
    "expression": "true", "xpath": "gone"}],
    "binding": {"strength": "required", "description": "gone", "valueSet": "http://x/vs"},
    "extension": [{"url": "http://x/e", "valueString": "kept"}]}]}
}"#;
    let root = ehds_fhir::json::parse(source).unwrap();
    let compact = compact::compact(source, &root);
    assert_eq!(
        std::str::from_utf8(&compact).unwrap(),
        r#"{"resourceType":"StructureDefinition","url":"http://x/sd","name":"N\u00e9","snapshot":{"element":[{"id":"A","path":"A","short":"kept","min":0,"max":"*","constraint":[{"key":"k-1","human":"kept","expression":"true"}],"binding":{"strength":"required","valueSet":"http://x/vs"},"extension":[{"url":"http://x/e","valueString":"kept"}]}]}}"#
    );

    let code_system = br#"{"resourceType":"CodeSystem","url":"http://x/cs","concept":[
      {"code":"a","display":"A","definition":"gone","designation":[{"value":"gone"}],
       "concept":[{"code":"b","display":"B","definition":"gone","property":[{"code":"p","valueBoolean":true}]}]}]}"#;
    let root = ehds_fhir::json::parse(code_system).unwrap();
    assert_eq!(
        std::str::from_utf8(&compact::compact(code_system, &root)).unwrap(),
        r#"{"resourceType":"CodeSystem","url":"http://x/cs","concept":[{"code":"a","display":"A","concept":[{"code":"b","display":"B","property":[{"code":"p","valueBoolean":true}]}]}]}"#
    );
}

#[test]
fn compact_value_sets_keep_their_codes_without_displays() {
    let value_set = br#"{"resourceType":"ValueSet","url":"http://x/vs","compose":{"include":[
      {"system":"http://x/cs","concept":[{"code":"a","display":"gone","designation":[{"value":"gone"}]}],
       "filter":[{"property":"concept","op":"is-a","value":"b"}]}]},
      "expansion":{"contains":[{"system":"http://x/cs","code":"a","display":"gone","contains":[{"code":"c","display":"gone"}]}]}}"#;
    let root = ehds_fhir::json::parse(value_set).unwrap();
    assert_eq!(
        std::str::from_utf8(&compact::compact(value_set, &root)).unwrap(),
        r#"{"resourceType":"ValueSet","url":"http://x/vs","compose":{"include":[{"system":"http://x/cs","concept":[{"code":"a"}],"filter":[{"property":"concept","op":"is-a","value":"b"}]}]},"expansion":{"contains":[{"system":"http://x/cs","code":"a","contains":[{"code":"c"}]}]}}"#
    );
}

#[test]
fn a_compiled_package_set_reads_back_as_written() {
    let scratch = Scratch::new("pack");
    let a = package_with(
        &scratch.path().join("a"),
        "example.a",
        "1.0.0",
        r#""example.b":"2.0.x""#,
        &[
            (
                "StructureDefinition-x.json",
                resource("StructureDefinition", X, Some("1"), "X"),
            ),
            (
                "SearchParameter-s.json",
                r#"{"resourceType":"SearchParameter","url":"http://x/s"}"#.into(),
            ),
        ],
    );
    let compiled = vec![load::compile_package(&a).unwrap()];
    let decoded = pack::decode(bytes::Bytes::from(pack::encode(&compiled))).unwrap();
    assert_eq!(decoded.len(), 1);
    let (written, read) = (&compiled[0], &decoded[0]);
    assert_eq!(read.id, written.id);
    assert_eq!(read.dependencies, written.dependencies);
    assert_eq!(read.skipped, written.skipped);
    assert_eq!(read.skipped.by_type.get("SearchParameter"), Some(&1));
    assert_eq!(read.resources.len(), 1);
    assert_eq!(read.resources[0].path, written.resources[0].path);
    assert_eq!(read.resources[0].bytes, written.resources[0].bytes);

    let mut damaged = pack::encode(&compiled);
    damaged.truncate(damaged.len() - 1);
    assert!(matches!(
        pack::decode(bytes::Bytes::from(damaged)),
        Err(ProfilesError::BadPack(_))
    ));
}
