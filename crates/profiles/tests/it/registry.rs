//! The registry over the packages shipped in `profiles/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use ehds_profiles::Registry;

fn profiles_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../profiles")
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry::load_root(&profiles_dir()).unwrap())
}

#[test]
fn loads_every_shipped_package() {
    let registry = registry();
    let mut packages: Vec<String> = registry.packages().iter().map(|p| p.to_string()).collect();
    packages.sort();
    assert_eq!(
        packages,
        [
            "hl7.eu.terminology.ehdsi#0.2.0",
            "hl7.fhir.be.medication#1.1.0",
            "hl7.fhir.eu.extensions#0.1.0",
            "hl7.fhir.eu.laboratory#0.1.0",
            "hl7.fhir.eu.laboratory#0.2.0-ci",
            "hl7.fhir.eu.mpd#0.1.0-ci-build",
            "hl7.fhir.r4.core#4.0.1",
            "hl7.fhir.uv.ips#1.1.0",
            "hl7.fhir.uv.ips#2.0.0-ballot",
            "ihe.pharm.mpd.r4#1.0.0-comment-3",
            "myhealth.eu.fhir.laboratory#0.0.1",
        ]
    );
    // profiles/ holds only StructureDefinitions, ValueSets, CodeSystems and
    // ConceptMaps, every one with a url, and no url|version twice.
    assert!(
        registry.duplicates().is_empty(),
        "{:?}",
        registry.duplicates()
    );
    assert_eq!(registry.skipped(), &ehds_profiles::Skipped::default());
    let count = |t| registry.of_type(t).count();
    assert_eq!(
        count("StructureDefinition"),
        658 + 33 + 7 + 22 + 26 + 36 + 35 + 35 + 32 + 2,
        "core + IPS 2.0.0-ballot + EU MPD + IHE MPD + BE medication + IPS 1.1.0 \
         + EU lab 0.1.0 + EU lab 0.2.0-ci + MyHealth@EU lab + EU extensions"
    );
    assert_eq!(
        count("ValueSet"),
        1316 + 30 + 61 + 9 + 4 + 60 + 14 + 15 + 40
    );
    assert_eq!(count("CodeSystem"), 1062 + 2 + 9 + 2 + 1 + 1 + 1);
    assert_eq!(count("ConceptMap"), 4 + 11 + 11 + 10);
    assert_eq!(
        registry.len(),
        count("StructureDefinition")
            + count("ValueSet")
            + count("CodeSystem")
            + count("ConceptMap")
    );
}

#[test]
fn resolves_core_ig_and_terminology_resources() {
    let registry = registry();
    let cases = [
        (
            "http://hl7.org/fhir/StructureDefinition/Patient",
            "StructureDefinition",
            "hl7.fhir.r4.core",
        ),
        (
            "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips",
            "StructureDefinition",
            "hl7.fhir.uv.ips",
        ),
        (
            "http://hl7.org/fhir/ValueSet/administrative-gender",
            "ValueSet",
            "hl7.fhir.r4.core",
        ),
        (
            "http://terminology.ehdsi.eu/ValueSet/eHDSIActiveIngredient",
            "ValueSet",
            "hl7.eu.terminology.ehdsi",
        ),
        (
            "http://hl7.eu/fhir/mpd/StructureDefinition/MedicationRequest-eu-mpd",
            "StructureDefinition",
            "hl7.fhir.eu.mpd",
        ),
        (
            "https://profiles.ihe.net/PHARM/MPD/StructureDefinition/ihe-ext-medicationrequest-prescribedQuantity",
            "StructureDefinition",
            "ihe.pharm.mpd.r4",
        ),
        (
            "https://www.ehealth.fgov.be/standards/fhir/medication/StructureDefinition/be-model-medicationdispense",
            "StructureDefinition",
            "hl7.fhir.be.medication",
        ),
    ];
    for (url, resource_type, package) in cases {
        let found = registry
            .resolve(url)
            .unwrap_or_else(|| panic!("{url} does not resolve"));
        assert_eq!(found.url, url);
        assert_eq!(found.resource_type, resource_type, "{url}");
        assert_eq!(found.package.name, package, "{url}");
        assert_eq!(found.resource.resource_type(), resource_type);
        // Kept in compact form: the file's JSON without its documentation.
        let bytes = std::fs::read(&found.path).unwrap();
        let parsed = ehds_fhir::json::parse(&bytes).unwrap();
        let compact = ehds_profiles::compact::compact(&bytes, &parsed);
        assert_eq!(found.resource.bytes().as_ref(), compact.as_slice(), "{url}");
        assert!(
            registry.resolve_typed(resource_type, url).is_some(),
            "{url}"
        );
        assert!(registry.resolve_typed("CodeSystem", url).is_none(), "{url}");
    }
}

#[test]
fn resolves_url_with_version() {
    let registry = registry();
    let patient = registry
        .resolve("http://hl7.org/fhir/StructureDefinition/Patient|4.0.1")
        .unwrap();
    assert_eq!(patient.version.as_deref(), Some("4.0.1"));
    assert_eq!(patient.name.as_deref(), Some("Patient"));
    let ips = registry
        .resolve("http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips|2.0.0-ballot")
        .unwrap();
    assert_eq!(ips.name.as_deref(), Some("BundleUvIps"));
    let old = registry
        .resolve("http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips|1.1.0")
        .unwrap();
    assert_eq!(old.package.to_string(), "hl7.fhir.uv.ips#1.1.0");
    // Java `CanonicalResourceManager.get`: a release not held means the
    // highest of its major.minor.
    let patient = registry
        .resolve("http://hl7.org/fhir/StructureDefinition/Patient|4.0")
        .unwrap();
    assert_eq!(patient.version.as_deref(), Some("4.0.1"));
    assert!(
        registry
            .resolve("http://hl7.org/fhir/StructureDefinition/Patient|3.0.2")
            .is_none()
    );
}

/// Two versions of IPS and of HL7 Europe Laboratory side by side: the
/// version-less URL means the highest; a laboratory profile's references
/// resolve in its own dependencies (0.1.0 depends on IPS 1.1.0).
#[test]
fn two_versions_of_a_package_live_side_by_side() {
    const IPS_PATIENT: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Patient-uv-ips";
    const LAB_BUNDLE: &str = "http://hl7.eu/fhir/laboratory/StructureDefinition/Bundle-eu-lab";
    let registry = registry();
    let package = |canonical: &str| registry.resolve(canonical).unwrap().package.to_string();
    assert_eq!(package(IPS_PATIENT), "hl7.fhir.uv.ips#2.0.0-ballot");
    assert_eq!(package(LAB_BUNDLE), "hl7.fhir.eu.laboratory#0.2.0-ci");
    let id = |name: &str, version: &str| ehds_profiles::PackageId {
        name: name.into(),
        version: version.into(),
    };
    let scope = |p| {
        registry
            .dependency_scope(&p)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        scope(id("myhealth.eu.fhir.laboratory", "0.0.1")),
        [
            "myhealth.eu.fhir.laboratory#0.0.1",
            "hl7.fhir.eu.extensions#0.1.0",
            "hl7.fhir.eu.laboratory#0.1.0",
            "hl7.fhir.r4.core#4.0.1",
            "hl7.fhir.uv.ips#1.1.0",
        ],
        "terminology and extension packs it names are not shipped"
    );
    assert_eq!(
        scope(id("hl7.fhir.eu.laboratory", "0.2.0-ci")),
        [
            "hl7.fhir.eu.laboratory#0.2.0-ci",
            "hl7.fhir.eu.extensions#0.1.0",
            "hl7.fhir.r4.core#4.0.1",
            "hl7.fhir.uv.ips#2.0.0-ballot",
        ],
        "`0.1.x` and `current` (the highest loaded)"
    );
    let in_scope = |package: ehds_profiles::PackageId, canonical: &str| {
        let scope = registry.dependency_scope(&package);
        registry
            .resolve_in(Some("StructureDefinition"), canonical, &scope)
            .unwrap()
            .package
            .to_string()
    };
    let myhealth = || id("myhealth.eu.fhir.laboratory", "0.0.1");
    assert_eq!(in_scope(myhealth(), IPS_PATIENT), "hl7.fhir.uv.ips#1.1.0");
    assert_eq!(
        in_scope(myhealth(), LAB_BUNDLE),
        "hl7.fhir.eu.laboratory#0.1.0"
    );
    assert_eq!(
        in_scope(id("hl7.fhir.eu.laboratory", "0.2.0-ci"), IPS_PATIENT),
        "hl7.fhir.uv.ips#2.0.0-ballot"
    );
}

#[test]
fn canonical_urls_are_case_sensitive() {
    let registry = registry();
    for wrong in [
        "http://hl7.org/fhir/StructureDefinition/patient",
        "HTTP://hl7.org/fhir/StructureDefinition/Patient",
        "http://hl7.org/fhir/structuredefinition/Patient",
        "http://hl7.org/fhir/uv/ips/StructureDefinition/bundle-uv-ips",
        "http://terminology.ehdsi.eu/ValueSet/ehdsiactiveingredient",
        "https://hl7.org/fhir/StructureDefinition/Patient",
        "http://hl7.org/fhir/StructureDefinition/Patient/",
    ] {
        assert!(registry.resolve(wrong).is_none(), "{wrong} resolved");
    }
}

#[test]
fn core_structures_by_type_name() {
    let registry = registry();
    for type_name in [
        "Bundle",
        "Patient",
        "MedicationRequest",
        "string",
        "CodeableConcept",
        "Extension",
    ] {
        let found = registry
            .core_structure(type_name)
            .unwrap_or_else(|| panic!("no core structure for {type_name}"));
        assert_eq!(
            found.url,
            format!("http://hl7.org/fhir/StructureDefinition/{type_name}")
        );
        assert_eq!(found.package.name, "hl7.fhir.r4.core");
        assert_eq!(
            found.resource.root().get("type").and_then(|n| n.as_str()),
            Some(type_name)
        );
    }
    assert!(registry.core_structure("vitalsigns").is_none());
    assert!(registry.core_structure("bundle").is_none());
    assert!(registry.core_structure("NoSuchType").is_none());
}

/// The package set embedded in the binary is `profiles/` compiled now: the
/// same packages, dependencies, resources (bytes and paths), duplicates and
/// skipped files. A package changed without rebuilding would show here.
#[test]
fn the_embedded_packages_are_profiles_compiled() {
    let embedded = Registry::shipped().unwrap();
    let on_disk = registry();
    assert_eq!(embedded.packages(), on_disk.packages());
    for package in on_disk.packages() {
        assert_eq!(
            embedded.dependencies(package),
            on_disk.dependencies(package),
            "{package}"
        );
    }
    assert_eq!(embedded.len(), on_disk.len());
    let root = profiles_dir();
    for (a, b) in embedded.iter().zip(on_disk.iter()) {
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.resource.bytes(), b.resource.bytes(), "{}", a.canonical());
        assert_eq!(
            root.parent().unwrap().join(&a.path),
            b.path,
            "{}",
            a.canonical()
        );
    }
    assert_eq!(embedded.skipped(), on_disk.skipped());
    assert_eq!(embedded.duplicates().len(), on_disk.duplicates().len());
}

#[test]
fn load_time_of_the_shipped_packages() {
    let started = Instant::now();
    let registry = Registry::load_root(&profiles_dir()).unwrap();
    let elapsed = started.elapsed();
    let bytes: usize = registry.iter().map(|r| r.resource.bytes().len()).sum();
    println!(
        "load_root(profiles/): {} packages, {} resources, {:.1} MB in {:.0} ms ({} build)",
        registry.packages().len(),
        registry.len(),
        bytes as f64 / 1e6,
        elapsed.as_secs_f64() * 1e3,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    );
}
