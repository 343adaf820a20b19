//! Membership against the packages in `profiles/` and against small
//! synthetic packages written by the tests.

use std::sync::OnceLock;

use ehds_fhir::Node;
use ehds_profiles::Registry;

use super::*;

/// The registry of `profiles/` and the terminology built from it (loaded
/// once per test binary; the build's cost is the `terminology` benchmark of
/// ehds-benches).
fn full() -> &'static (Registry, Terminology) {
    static FULL: OnceLock<(Registry, Terminology)> = OnceLock::new();
    FULL.get_or_init(|| {
        let root = ehds_test_support::repo_root().join("profiles");
        let registry = Registry::load_root(&root).unwrap();
        let terminology = Terminology::new(&registry);
        (registry, terminology)
    })
}

fn tx() -> &'static Terminology {
    &full().1
}

fn is_member(m: &Membership) -> bool {
    matches!(m, Membership::Member)
}

#[track_caller]
fn assert_member(m: Membership) {
    assert_eq!(m, Membership::Member);
}

#[track_caller]
fn assert_not_member(m: Membership, mentions: &str) {
    match &m {
        Membership::NotMember(why) => assert!(why.contains(mentions), "{why}"),
        other => panic!("expected NotMember mentioning {mentions:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_checked(m: Membership, mentions: &str) {
    match &m {
        Membership::NotChecked(why) => assert!(why.contains(mentions), "{why}"),
        other => panic!("expected NotChecked mentioning {mentions:?}, got {other:?}"),
    }
}

const GENDER_VS: &str = "http://hl7.org/fhir/ValueSet/administrative-gender";
const GENDER_CS: &str = "http://hl7.org/fhir/administrative-gender";

#[test]
fn terminology_is_send_and_sync() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Terminology>();
}

#[test]
fn administrative_gender() {
    let tx = tx();
    assert_member(tx.check_code(GENDER_VS, Some(GENDER_CS), "male"));
    assert_member(tx.check_code(&format!("{GENDER_VS}|4.0.1"), Some(GENDER_CS), "female"));
    assert_not_member(
        tx.check_code(GENDER_VS, Some(GENDER_CS), "m"),
        "not defined in CodeSystem",
    );
    // FHIR's own codes are case-sensitive (terminologies.html).
    assert_not_member(tx.check_code(GENDER_VS, Some(GENDER_CS), "Male"), "'Male'");
    assert_not_member(
        tx.check_code(GENDER_VS, Some("http://snomed.info/sct"), "248153007"),
        "includes no codes of system http://snomed.info/sct",
    );
    assert_member(tx.check_bare_code(GENDER_VS, "unknown"));
    assert_not_member(tx.check_bare_code(GENDER_VS, "M"), "'M'");
    // A version not held: decided with the version held.
    assert_member(tx.check_bare_code(&format!("{GENDER_VS}|9.9.9"), "other"));
    assert!(tx.knows_value_set(GENDER_VS));
    assert_eq!(tx.display(GENDER_CS, "male"), Some("Male"));
    assert_eq!(tx.display(GENDER_CS, "nope"), None);
    assert_eq!(tx.display("http://snomed.info/sct", "248153007"), None);
}

#[test]
fn core_code_bindings_resolve_offline() {
    let tx = tx();
    let composition = "http://hl7.org/fhir/ValueSet/composition-status|4.0.1";
    assert_member(tx.check_bare_code(composition, "final"));
    assert_not_member(tx.check_bare_code(composition, "finished"), "'finished'");
    let observation = "http://hl7.org/fhir/ValueSet/observation-status|4.0.1";
    assert_member(tx.check_bare_code(observation, "entered-in-error"));
    assert_not_member(tx.check_bare_code(observation, "done"), "not defined");
    let bundle = "http://hl7.org/fhir/ValueSet/bundle-type|4.0.1";
    assert_member(tx.check_bare_code(bundle, "document"));
    assert_not_member(tx.check_bare_code(bundle, "Document"), "'Document'");
    let use_ = "http://hl7.org/fhir/ValueSet/identifier-use|4.0.1";
    assert_member(tx.check_bare_code(use_, "official"));
}

/// Every required binding of a `code` element in R4 core resolves offline,
/// except to value sets of code systems no package defines (listed).
#[test]
fn every_required_code_binding_in_core_is_decidable() {
    let (registry, tx) = full();
    let mut undecided = std::collections::BTreeMap::new();
    let mut checked = std::collections::BTreeSet::new();
    let mut members = 0;
    for sd in registry.of_type("StructureDefinition") {
        if sd.package.name != "hl7.fhir.r4.core" {
            continue;
        }
        let root = sd.resource.root();
        let elements = root
            .get("snapshot")
            .and_then(|s| s.get("element"))
            .map(Node::items)
            .unwrap_or_default();
        for element in elements {
            let is_code = element
                .get("type")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .any(|t| t.get("code").and_then(Node::as_str) == Some("code"));
            let binding = element.get("binding");
            let strength = binding
                .and_then(|b| b.get("strength"))
                .and_then(Node::as_str);
            let Some(vs) = binding
                .and_then(|b| b.get("valueSet"))
                .and_then(Node::as_str)
            else {
                continue;
            };
            if !is_code || strength != Some("required") || !checked.insert(vs.to_owned()) {
                continue;
            }
            if let Membership::NotChecked(why) = tx.check_bare_code(vs, "-no-such-code-") {
                undecided.insert(vs.to_owned(), why);
                continue;
            }
            // A code the compiled value set names is a member.
            let id = find_value_set(&tx.vs_by_canonical, vs).unwrap();
            if let Some((system, code)) = some_candidate(tx, id) {
                assert_eq!(
                    tx.check_bare_code(vs, &code),
                    Membership::Member,
                    "{vs} {code}"
                );
                assert_eq!(
                    tx.check_code(vs, Some(&system), &code),
                    Membership::Member,
                    "{vs} {system} {code}"
                );
                members += 1;
            }
        }
    }
    for (vs, why) in &undecided {
        println!("not decidable offline: {vs}: {why}");
    }
    println!(
        "{} value sets bound (required) to code elements; {} not decidable",
        checked.len(),
        undecided.len()
    );
    // Code systems no package holds: ISO 4217, MIME types (BCP 13), IANA
    // time zones.
    let expected = [
        "http://hl7.org/fhir/ValueSet/currencies|4.0.1",
        "http://hl7.org/fhir/ValueSet/mimetypes|4.0.1",
        "http://hl7.org/fhir/ValueSet/timezones|4.0.1",
    ];
    assert_eq!(undecided.keys().collect::<Vec<_>>(), expected);
    assert!(checked.len() > 200, "{}", checked.len());
    assert!(members > 200, "{members}");
}

/// Some (system, code) the first include of a compiled value set without
/// excludes selects (following a first import), if it is easy to name;
/// always the same one.
fn some_candidate(tx: &Terminology, id: usize) -> Option<(String, String)> {
    match &tx.value_sets.get(id)?.body {
        Body::Expansion(e) => {
            let (system, codes) = e.by_system.iter().min_by_key(|(system, _)| *system)?;
            Some((system.to_string(), codes.iter().min()?.to_string()))
        }
        Body::Compose(c) if c.excludes.is_empty() => {
            let clause = c.includes.first()?;
            let Some(part) = &clause.system else {
                return match clause.imports.first()? {
                    Import::Held(id) => some_candidate(tx, *id),
                    Import::Missing(_) => None,
                };
            };
            let system = part.system.to_string();
            let code = match &part.matcher {
                Matcher::Listed { codes, .. } => codes.iter().min()?.to_string(),
                Matcher::All(cs) | Matcher::Partial(cs) => {
                    tx.systems.get(*cs)?.concepts.first()?.code.to_string()
                }
                Matcher::Filtered { cs, bits, .. } => {
                    let cs = tx.systems.get(*cs)?;
                    let at = (0..cs.concepts.len()).find(|&i| bits.get(i))?;
                    cs.concepts.get(at)?.code.to_string()
                }
                Matcher::Unknown(_) => return None,
            };
            Some((system, code))
        }
        _ => None,
    }
}

/// Report (no assertion beyond sanity): of the value sets bound `required`
/// or `extensible` anywhere in `profiles/`, how many decide a made-up code
/// offline, and why the others cannot.
#[test]
fn binding_coverage_report() {
    let (registry, tx) = full();
    let mut value_sets = std::collections::BTreeSet::new();
    for sd in registry.of_type("StructureDefinition") {
        let elements = sd
            .resource
            .root()
            .get("snapshot")
            .and_then(|s| s.get("element"))
            .map(Node::items)
            .unwrap_or_default();
        for binding in elements.iter().filter_map(|e| e.get("binding")) {
            let strength = binding.get("strength").and_then(Node::as_str);
            if let (Some("required" | "extensible"), Some(vs)) =
                (strength, binding.get("valueSet").and_then(Node::as_str))
            {
                value_sets.insert(vs.to_owned());
            }
        }
    }
    let mut decided = 0;
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for vs in &value_sets {
        match tx.check_bare_code(vs, "-no-such-code-") {
            Membership::NotChecked(why) => {
                let reason = why.split(" offline: ").nth(1).unwrap_or(&why).to_owned();
                let reason = reason.split(" (").next().unwrap_or(&reason).to_owned();
                *reasons.entry(reason).or_default() += 1;
            }
            _ => decided += 1,
        }
    }
    println!(
        "{} value sets bound required/extensible; {decided} decide a code offline",
        value_sets.len()
    );
    let mut by_count: Vec<_> = reasons.into_iter().collect();
    by_count.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    for (reason, n) in by_count.iter().take(25) {
        println!("{n:4}  {reason}");
    }
    assert!(decided > 0);
}

#[test]
fn is_a_filter_and_exclude_on_held_v3_code_system() {
    let tx = tx();
    let vs = "http://terminology.hl7.org/ValueSet/v3-ActEncounterCode";
    let cs = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
    assert_member(tx.check_code(vs, Some(cs), "AMB"));
    // A grandchild through nested concepts.
    assert_member(tx.check_code(vs, Some(cs), "ACUTE"));
    // The root is in `is-a` but removed by compose.exclude.
    assert_not_member(tx.check_code(vs, Some(cs), "_ActEncounterCode"), "excluded");
    assert_not_member(
        tx.check_code(vs, Some(cs), "_ActCareProvisionCode"),
        "does not match the filter 'concept is-a _ActEncounterCode'",
    );
    assert_not_member(
        tx.check_code(vs, Some(cs), "NOPE"),
        "not defined in CodeSystem",
    );
    assert_not_member(tx.check_code(vs, Some(cs), "amb"), "'amb'");
}

#[test]
fn is_not_a_filter_on_v2_table() {
    let tx = tx();
    let vs = "http://hl7.org/fhir/ValueSet/patient-contactrelationship";
    let cs = "http://terminology.hl7.org/CodeSystem/v2-0131";
    assert_member(tx.check_code(vs, Some(cs), "C"));
    assert_member(tx.check_code(vs, Some(cs), "N"));
    assert_not_member(
        tx.check_code(vs, Some(cs), "O"),
        "does not match the filter",
    );
}

#[test]
fn snomed_value_sets_are_not_checked() {
    let tx = tx();
    let vs = "http://hl7.org/fhir/uv/ips/ValueSet/allergy-intolerance-uv-ips";
    assert_not_checked(
        tx.check_code(vs, Some("http://snomed.info/sct"), "762952008"),
        "http://snomed.info/sct",
    );
    // A code of a system the value set does not include is decided.
    assert_not_member(
        tx.check_code(vs, Some("http://loinc.org"), "1234-5"),
        "includes no codes of system http://loinc.org",
    );
    assert_not_checked(
        tx.check_code(
            "http://hl7.org/fhir/ValueSet/observation-codes",
            Some("http://loinc.org"),
            "8867-4",
        ),
        "CodeSystem http://loinc.org is not held",
    );
}

#[test]
fn ehdsi_concept_lists() {
    let tx = tx();
    // SNOMED CT is not held, but the value set lists its codes.
    let blood = "http://terminology.ehdsi.eu/ValueSet/eHDSIBloodGroup";
    let sct = "http://snomed.info/sct";
    assert_member(tx.check_code(blood, Some(sct), "112144000"));
    assert_not_member(
        tx.check_code(blood, Some(sct), "22298006"),
        "not among the codes",
    );
    let certainty = "http://terminology.ehdsi.eu/ValueSet/eHDSIAllergyCertainty";
    let verification = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
    assert_member(tx.check_code(certainty, Some(verification), "confirmed"));
    assert_not_member(
        tx.check_code(certainty, Some(verification), "entered-in-error"),
        "not among the codes",
    );
    let relationship = "http://terminology.ehdsi.eu/ValueSet/eHDSIPersonalRelationship";
    assert_member(tx.check_code(
        relationship,
        Some("http://terminology.hl7.org/CodeSystem/v3-RoleCode"),
        "AUNT",
    ));
}

#[test]
fn expansion_decides_when_present() {
    let tx = tx();
    let vs = "http://hl7.org/fhir/ValueSet/yesnodontknow";
    assert_member(tx.check_code(
        vs,
        Some("http://terminology.hl7.org/CodeSystem/v2-0136"),
        "Y",
    ));
    assert_member(tx.check_code(
        vs,
        Some("http://terminology.hl7.org/CodeSystem/data-absent-reason"),
        "asked-unknown",
    ));
    assert_not_member(
        tx.check_code(
            vs,
            Some("http://terminology.hl7.org/CodeSystem/data-absent-reason"),
            "masked",
        ),
        "expansion has no code 'masked'",
    );
}

#[test]
fn languages() {
    let tx = tx();
    let vs = "http://hl7.org/fhir/ValueSet/languages";
    let bcp47 = "urn:ietf:bcp:47";
    assert_member(tx.check_code(vs, Some(bcp47), "en-US"));
    // BCP 47 tags are case-insensitive.
    assert_member(tx.check_code(vs, Some(bcp47), "en-us"));
    assert_not_member(tx.check_code(vs, Some(bcp47), "tlh"), "not among the codes");
    assert_not_checked(
        tx.check_bare_code("http://hl7.org/fhir/ValueSet/all-languages", "en-US"),
        "urn:ietf:bcp:47",
    );
}

#[test]
fn unknown_value_set_is_not_checked() {
    assert_not_checked(
        tx().check_bare_code("http://example.org/fhir/ValueSet/none", "x"),
        "ValueSet http://example.org/fhir/ValueSet/none is not held",
    );
}

// --- synthetic packages ----------------------------------------------------

use ehds_test_support::ScratchDir as Scratch;

/// A terminology from one package holding `resources` (JSON texts).
fn synthetic(label: &str, resources: &[&str]) -> Terminology {
    let scratch = Scratch::new(label);
    let dir = scratch.path();
    std::fs::write(
        dir.join("package.json"),
        r#"{"name":"example.terminology","version":"1.0.0"}"#,
    )
    .unwrap();
    for (i, text) in resources.iter().enumerate() {
        std::fs::write(dir.join(format!("r{i}.json")), text).unwrap();
    }
    let registry = Registry::load(&[dir.to_path_buf()]).unwrap();
    assert_eq!(registry.len(), resources.len(), "{:?}", registry.skipped());
    Terminology::new(&registry)
}

const ANIMALS: &str = "http://example.org/fhir/CodeSystem/animals";

/// animal > mammal > (dog, cat, whale), animal > bird > penguin; bat is a
/// mammal through the `parent` property; dodo is retired.
const ANIMALS_CS: &str = r#"{
  "resourceType": "CodeSystem",
  "url": "http://example.org/fhir/CodeSystem/animals",
  "version": "1.0.0",
  "status": "active",
  "content": "complete",
  "caseSensitive": true,
  "hierarchyMeaning": "is-a",
  "valueSet": "http://example.org/fhir/ValueSet/all-animals",
  "property": [
    {"code": "legs", "type": "integer"},
    {"code": "kind", "type": "string"},
    {"code": "status", "uri": "http://hl7.org/fhir/concept-properties#status", "type": "code"},
    {"code": "parent", "uri": "http://hl7.org/fhir/concept-properties#parent", "type": "code"}
  ],
  "concept": [
    {"code": "animal", "display": "Animal", "concept": [
      {"code": "mammal", "display": "Mammal", "concept": [
        {"code": "dog", "display": "Dog", "property": [
          {"code": "legs", "valueInteger": 4}, {"code": "kind", "valueString": "pet"}]},
        {"code": "cat", "display": "Cat", "property": [
          {"code": "legs", "valueInteger": 4}, {"code": "kind", "valueString": "pet"}]},
        {"code": "whale", "display": "Whale", "property": [{"code": "legs", "valueInteger": 0}]}
      ]},
      {"code": "bird", "display": "Bird", "concept": [
        {"code": "penguin", "display": "Penguin", "property": [{"code": "legs", "valueInteger": 2}]}
      ]}
    ]},
    {"code": "bat", "display": "Bat", "property": [
      {"code": "parent", "valueCode": "mammal"}, {"code": "legs", "valueInteger": 2}]},
    {"code": "dodo", "display": "Dodo", "property": [
      {"code": "status", "valueCode": "retired"}, {"code": "parent", "valueCode": "bird"}]}
  ]
}"#;

fn value_set(url: &str, compose: &str) -> String {
    format!(
        r#"{{"resourceType": "ValueSet", "url": "{url}", "status": "active", "compose": {compose}}}"#
    )
}

fn filter_vs(url: &str, filters: &str) -> String {
    value_set(
        url,
        &format!(r#"{{"include": [{{"system": "{ANIMALS}", "filter": [{filters}]}}]}}"#),
    )
}

fn vs_url(name: &str) -> String {
    format!("http://example.org/fhir/ValueSet/{name}")
}

/// The members among the animals.
fn animals_in(tx: &Terminology, vs: &str) -> Vec<&'static str> {
    [
        "animal", "mammal", "dog", "cat", "whale", "bird", "penguin", "bat", "dodo",
    ]
    .into_iter()
    .filter(|code| is_member(&tx.check_code(vs, Some(ANIMALS), code)))
    .collect()
}

#[test]
fn filters_on_a_held_code_system() {
    let cases = [
        (
            "is-a",
            r#"{"property": "concept", "op": "is-a", "value": "mammal"}"#,
        ),
        (
            "descendent-of",
            r#"{"property": "concept", "op": "descendent-of", "value": "mammal"}"#,
        ),
        (
            "is-not-a",
            r#"{"property": "concept", "op": "is-not-a", "value": "mammal"}"#,
        ),
        (
            "generalizes",
            r#"{"property": "concept", "op": "generalizes", "value": "dog"}"#,
        ),
        ("legs", r#"{"property": "legs", "op": "=", "value": "4"}"#),
        (
            "regex",
            r#"{"property": "code", "op": "regex", "value": "d.*"}"#,
        ),
        (
            "in",
            r#"{"property": "concept", "op": "in", "value": "dog, cat,emu"}"#,
        ),
        (
            "not-in",
            r#"{"property": "legs", "op": "not-in", "value": "4,2"}"#,
        ),
        (
            "kind",
            r#"{"property": "kind", "op": "exists", "value": "true"}"#,
        ),
        (
            "no-kind",
            r#"{"property": "kind", "op": "exists", "value": "false"}"#,
        ),
        (
            "parent",
            r#"{"property": "parent", "op": "=", "value": "bird"}"#,
        ),
        (
            "two",
            r#"{"property": "concept", "op": "is-a", "value": "mammal"},
               {"property": "legs", "op": "=", "value": "4"}"#,
        ),
    ];
    let mut resources = vec![ANIMALS_CS.to_owned()];
    for (name, filter) in cases {
        resources.push(filter_vs(&vs_url(name), filter));
    }
    let texts: Vec<&str> = resources.iter().map(String::as_str).collect();
    let tx = synthetic("filters", &texts);
    let members = |name: &str| animals_in(&tx, &vs_url(name));
    assert_eq!(members("is-a"), ["mammal", "dog", "cat", "whale", "bat"]);
    assert_eq!(members("descendent-of"), ["dog", "cat", "whale", "bat"]);
    assert_eq!(members("is-not-a"), ["animal", "bird", "penguin", "dodo"]);
    assert_eq!(members("generalizes"), ["animal", "mammal", "dog"]);
    assert_eq!(members("legs"), ["dog", "cat"]);
    assert_eq!(members("regex"), ["dog", "dodo"]);
    assert_eq!(members("in"), ["dog", "cat"]);
    // not-in: no value of the property in the list (none at all counts).
    assert_eq!(
        members("not-in"),
        ["animal", "mammal", "whale", "bird", "dodo"]
    );
    assert_eq!(members("kind"), ["dog", "cat"]);
    assert_eq!(
        members("no-kind"),
        [
            "animal", "mammal", "whale", "bird", "penguin", "bat", "dodo"
        ]
    );
    assert_eq!(members("parent"), ["penguin", "dodo"]);
    assert_eq!(members("two"), ["dog", "cat"]);
    assert_not_member(
        tx.check_code(&vs_url("legs"), Some(ANIMALS), "whale"),
        "does not match the filter 'legs = 4'",
    );
    assert_not_member(
        tx.check_code(&vs_url("is-a"), Some(ANIMALS), "unicorn"),
        "'unicorn' is not defined in CodeSystem http://example.org/fhir/CodeSystem/animals|1.0.0",
    );
    // A bare code takes the system of the value set.
    assert_member(tx.check_bare_code(&vs_url("is-a"), "bat"));
    assert_not_member(tx.check_bare_code(&vs_url("is-a"), "bird"), "filter");
    assert_eq!(tx.display(ANIMALS, "penguin"), Some("Penguin"));
}

#[test]
fn unsupported_filters_are_not_checked() {
    let cases = [
        (
            "op",
            r#"{"property": "concept", "op": "child-of", "value": "mammal"}"#,
            "not supported",
        ),
        (
            "property",
            r#"{"property": "colour", "op": "=", "value": "red"}"#,
            "'colour' is not a property",
        ),
        (
            "is-a-legs",
            r#"{"property": "legs", "op": "is-a", "value": "4"}"#,
            "only supported on property 'concept'",
        ),
        (
            "unknown-root",
            r#"{"property": "concept", "op": "is-a", "value": "unicorn"}"#,
            "'unicorn' is not defined",
        ),
        (
            "bad-regex",
            r#"{"property": "code", "op": "regex", "value": "("}"#,
            "does not compile",
        ),
    ];
    let mut resources = vec![ANIMALS_CS.to_owned()];
    for (name, filter, _) in cases {
        resources.push(filter_vs(&vs_url(name), filter));
    }
    let texts: Vec<&str> = resources.iter().map(String::as_str).collect();
    let tx = synthetic("unsupported", &texts);
    for (name, _, why) in cases {
        assert_not_checked(tx.check_code(&vs_url(name), Some(ANIMALS), "dog"), why);
        // Other systems are still decided.
        assert_not_member(
            tx.check_code(&vs_url(name), Some("http://example.org/other"), "dog"),
            "includes no codes of system http://example.org/other",
        );
    }
}

#[test]
fn exclude_and_inactive() {
    let excluding = value_set(
        &vs_url("no-cats-no-birds"),
        &format!(
            r#"{{"include": [{{"system": "{ANIMALS}"}}],
                "exclude": [
                  {{"system": "{ANIMALS}", "concept": [{{"code": "cat"}}]}},
                  {{"system": "{ANIMALS}", "filter": [{{"property": "concept", "op": "is-a", "value": "bird"}}]}}
                ]}}"#
        ),
    );
    let active = value_set(
        &vs_url("active"),
        &format!(r#"{{"inactive": false, "include": [{{"system": "{ANIMALS}"}}]}}"#),
    );
    let tx = synthetic("exclude", &[ANIMALS_CS, &excluding, &active]);
    assert_eq!(
        animals_in(&tx, &vs_url("no-cats-no-birds")),
        ["animal", "mammal", "dog", "whale", "bat"]
    );
    assert_not_member(
        tx.check_code(&vs_url("no-cats-no-birds"), Some(ANIMALS), "cat"),
        "excluded by compose.exclude",
    );
    assert_not_member(
        tx.check_code(&vs_url("active"), Some(ANIMALS), "dodo"),
        "inactive",
    );
    assert_member(tx.check_code(&vs_url("active"), Some(ANIMALS), "dog"));
    // CodeSystem.valueSet without a ValueSet resource: the whole system.
    assert_member(tx.check_code(&vs_url("all-animals"), Some(ANIMALS), "dodo"));
    assert_not_member(
        tx.check_bare_code(&vs_url("all-animals"), "unicorn"),
        "not defined",
    );
}

#[test]
fn an_undecidable_exclude_makes_members_not_checked() {
    let vs = value_set(
        &vs_url("minus-snomed"),
        &format!(
            r#"{{"include": [{{"system": "{ANIMALS}"}}],
                "exclude": [{{"valueSet": ["http://example.org/fhir/ValueSet/missing"]}}]}}"#
        ),
    );
    let tx = synthetic("undecidable-exclude", &[ANIMALS_CS, &vs]);
    assert_not_checked(
        tx.check_code(&vs_url("minus-snomed"), Some(ANIMALS), "dog"),
        "the imported ValueSet http://example.org/fhir/ValueSet/missing is not held",
    );
    // Not included at all: decided regardless of the exclude.
    assert_not_member(
        tx.check_code(&vs_url("minus-snomed"), Some(ANIMALS), "unicorn"),
        "not defined",
    );
}

#[test]
fn value_sets_importing_each_other_are_not_checked() {
    let a = value_set(
        &vs_url("a"),
        &format!(
            r#"{{"include": [{{"valueSet": ["{}"]}}, {{"system": "{ANIMALS}", "concept": [{{"code": "dog"}}]}}]}}"#,
            vs_url("b")
        ),
    );
    let b = value_set(
        &vs_url("b"),
        &format!(r#"{{"include": [{{"valueSet": ["{}"]}}]}}"#, vs_url("a")),
    );
    let tx = synthetic("cycle", &[ANIMALS_CS, &a, &b]);
    // dog is included directly by a: a member whatever the cycle says.
    assert_member(tx.check_code(&vs_url("a"), Some(ANIMALS), "dog"));
    assert_member(tx.check_code(&vs_url("b"), Some(ANIMALS), "dog"));
    assert_not_checked(
        tx.check_code(&vs_url("a"), Some(ANIMALS), "cat"),
        "cycle: http://example.org/fhir/ValueSet/a → http://example.org/fhir/ValueSet/b → http://example.org/fhir/ValueSet/a",
    );
    assert_not_checked(tx.check_bare_code(&vs_url("b"), "cat"), "cycle");
}

#[test]
fn several_imports_in_one_include() {
    let pets = value_set(
        &vs_url("pets"),
        &format!(
            r#"{{"include": [{{"system": "{ANIMALS}", "concept": [{{"code": "dog"}}, {{"code": "cat"}}]}}]}}"#
        ),
    );
    let mammals = filter_vs(
        &vs_url("mammals"),
        r#"{"property": "concept", "op": "is-a", "value": "mammal"}"#,
    );
    let both = value_set(
        &vs_url("both"),
        &format!(
            r#"{{"include": [{{"valueSet": ["{}", "{}"]}}]}}"#,
            vs_url("pets"),
            vs_url("mammals")
        ),
    );
    let narrowed = value_set(
        &vs_url("narrowed"),
        &format!(
            r#"{{"include": [{{"system": "{ANIMALS}", "concept": [{{"code": "dog"}}, {{"code": "bird"}}], "valueSet": ["{}"]}}]}}"#,
            vs_url("mammals")
        ),
    );
    let tx = synthetic("imports", &[ANIMALS_CS, &pets, &mammals, &both, &narrowed]);
    assert_member(tx.check_code(&vs_url("both"), Some(ANIMALS), "dog"));
    assert_not_member(
        tx.check_code(&vs_url("both"), Some(ANIMALS), "bird"),
        "none of the value sets",
    );
    assert_not_checked(
        tx.check_code(&vs_url("both"), Some(ANIMALS), "whale"),
        "'intersection'",
    );
    // system part AND import.
    assert_member(tx.check_code(&vs_url("narrowed"), Some(ANIMALS), "dog"));
    assert_not_member(
        tx.check_code(&vs_url("narrowed"), Some(ANIMALS), "bird"),
        "filter",
    );
    assert_not_member(
        tx.check_code(&vs_url("narrowed"), Some(ANIMALS), "cat"),
        "not among",
    );
}

#[test]
fn expansions_complete_and_incomplete() {
    let complete = format!(
        r#"{{"resourceType": "ValueSet", "url": "{}", "status": "active",
            "compose": {{"include": [{{"system": "{ANIMALS}"}}]}},
            "expansion": {{"timestamp": "2024-01-01T00:00:00Z", "total": 2, "contains": [
              {{"system": "{ANIMALS}", "code": "dog"}},
              {{"abstract": true, "display": "group", "contains": [{{"system": "{ANIMALS}", "code": "cat"}}]}}
            ]}}}}"#,
        vs_url("expanded")
    );
    let paged = format!(
        r#"{{"resourceType": "ValueSet", "url": "{}", "status": "active",
            "compose": {{"include": [{{"system": "{ANIMALS}", "concept": [{{"code": "dog"}}, {{"code": "whale"}}]}}]}},
            "expansion": {{"timestamp": "2024-01-01T00:00:00Z", "total": 5, "contains": [
              {{"system": "{ANIMALS}", "code": "dog"}}
            ]}}}}"#,
        vs_url("paged")
    );
    let limited = format!(
        r#"{{"resourceType": "ValueSet", "url": "{}", "status": "active",
            "expansion": {{"timestamp": "2024-01-01T00:00:00Z",
              "parameter": [{{"name": "limitedExpansion", "valueBoolean": true}}],
              "contains": [{{"system": "{ANIMALS}", "code": "dog"}}]}}}}"#,
        vs_url("limited")
    );
    let tx = synthetic("expansions", &[ANIMALS_CS, &complete, &paged, &limited]);
    // The complete expansion decides, not the compose (which has whale).
    assert_member(tx.check_code(&vs_url("expanded"), Some(ANIMALS), "cat"));
    assert_not_member(
        tx.check_code(&vs_url("expanded"), Some(ANIMALS), "whale"),
        "expansion has no code 'whale'",
    );
    assert_not_member(
        tx.check_code(&vs_url("expanded"), Some("http://example.org/other"), "dog"),
        "includes no codes of system",
    );
    // Incomplete: the compose decides.
    assert_member(tx.check_code(&vs_url("paged"), Some(ANIMALS), "whale"));
    assert_not_member(
        tx.check_code(&vs_url("paged"), Some(ANIMALS), "cat"),
        "not among",
    );
    // Incomplete without compose: only what is found is decided.
    assert_member(tx.check_code(&vs_url("limited"), Some(ANIMALS), "dog"));
    assert_not_checked(
        tx.check_code(&vs_url("limited"), Some(ANIMALS), "cat"),
        "incomplete",
    );
}

#[test]
fn content_modes_supplements_and_case_rules() {
    let fragment = r#"{"resourceType": "CodeSystem", "url": "http://example.org/fhir/CodeSystem/fragment",
        "status": "active", "content": "fragment", "caseSensitive": true, "concept": [{"code": "x"}]}"#;
    let letters = r#"{"resourceType": "CodeSystem", "url": "http://example.org/fhir/CodeSystem/letters",
        "status": "active", "content": "complete", "concept": [{"code": "A", "display": "Letter A"}]}"#;
    let supplement = r#"{"resourceType": "CodeSystem", "url": "http://example.org/fhir/CodeSystem/animals-fr",
        "status": "active", "content": "supplement", "supplements": "http://example.org/fhir/CodeSystem/animals",
        "concept": [{"code": "dog", "display": "Chien"}]}"#;
    let whole = |name: &str, system: &str| {
        value_set(
            &vs_url(name),
            &format!(r#"{{"include": [{{"system": "{system}"}}]}}"#),
        )
    };
    let fragment_vs = whole("fragment", "http://example.org/fhir/CodeSystem/fragment");
    let letters_vs = whole("letters", "http://example.org/fhir/CodeSystem/letters");
    let supplement_vs = whole(
        "supplement",
        "http://example.org/fhir/CodeSystem/animals-fr",
    );
    let fragment_filter = value_set(
        &vs_url("fragment-filter"),
        r#"{"include": [{"system": "http://example.org/fhir/CodeSystem/fragment",
            "filter": [{"property": "concept", "op": "is-a", "value": "x"}]}]}"#,
    );
    let tx = synthetic(
        "content",
        &[
            ANIMALS_CS,
            fragment,
            letters,
            supplement,
            &fragment_vs,
            &letters_vs,
            &supplement_vs,
            &fragment_filter,
        ],
    );
    assert_member(tx.check_bare_code(&vs_url("fragment"), "x"));
    assert_not_checked(
        tx.check_bare_code(&vs_url("fragment"), "y"),
        "held only in part",
    );
    assert_not_checked(
        tx.check_bare_code(&vs_url("fragment-filter"), "x"),
        "content 'fragment'",
    );
    // caseSensitive not stated, not an HL7 system: any case (Postel).
    assert_member(tx.check_bare_code(&vs_url("letters"), "a"));
    assert_eq!(
        tx.display("http://example.org/fhir/CodeSystem/letters", "a"),
        Some("Letter A")
    );
    assert_not_checked(
        tx.check_bare_code(&vs_url("supplement"), "dog"),
        "CodeSystem http://example.org/fhir/CodeSystem/animals-fr is not held",
    );
    // Stated case-sensitive.
    assert_not_member(
        tx.check_bare_code(&vs_url("all-animals"), "Dog"),
        "not defined",
    );
    assert_eq!(tx.display(ANIMALS, "dog"), Some("Dog"));
}

#[test]
fn a_bare_code_is_a_member_through_any_of_its_systems() {
    let letters = r#"{"resourceType": "CodeSystem", "url": "http://example.org/fhir/CodeSystem/latin",
        "status": "active", "content": "complete", "caseSensitive": true, "concept": [{"code": "A"}, {"code": "B"}]}"#;
    let greek = r#"{"resourceType": "CodeSystem", "url": "http://example.org/fhir/CodeSystem/greek",
        "status": "active", "content": "complete", "caseSensitive": true, "concept": [{"code": "A"}, {"code": "G"}]}"#;
    let vs = value_set(
        &vs_url("letters"),
        r#"{"include": [{"system": "http://example.org/fhir/CodeSystem/latin"},
                        {"system": "http://example.org/fhir/CodeSystem/greek"}],
            "exclude": [{"system": "http://example.org/fhir/CodeSystem/greek", "concept": [{"code": "A"}]},
                        {"system": "http://example.org/fhir/CodeSystem/latin", "concept": [{"code": "B"}]}]}"#,
    );
    let tx = synthetic("bare", &[letters, greek, &vs]);
    let letters = vs_url("letters");
    // Greek A is excluded, Latin A is not: the bare code is a member.
    assert_member(tx.check_bare_code(&letters, "A"));
    assert_not_member(
        tx.check_code(
            &letters,
            Some("http://example.org/fhir/CodeSystem/greek"),
            "A",
        ),
        "excluded",
    );
    assert_member(tx.check_bare_code(&letters, "G"));
    assert_not_member(tx.check_bare_code(&letters, "B"), "excluded");
    assert_not_member(
        tx.check_bare_code(&letters, "Z"),
        "'Z' is not defined in CodeSystem",
    );
}

#[test]
fn versions_of_value_sets() {
    let v1 = r#"{"resourceType": "ValueSet", "url": "http://example.org/fhir/ValueSet/v", "version": "1.0.0",
        "status": "active", "compose": {"include": [{"system": "http://example.org/fhir/CodeSystem/animals", "concept": [{"code": "dog"}]}]}}"#;
    let v2 = r#"{"resourceType": "ValueSet", "url": "http://example.org/fhir/ValueSet/v", "version": "2.0.0",
        "status": "active", "compose": {"include": [{"system": "http://example.org/fhir/CodeSystem/animals", "version": "0.1", "concept": [{"code": "cat"}]}]}}"#;
    let tx = synthetic("versions", &[ANIMALS_CS, v1, v2]);
    let vs = "http://example.org/fhir/ValueSet/v";
    assert_member(tx.check_bare_code(vs, "cat"));
    assert_member(tx.check_bare_code(&format!("{vs}|2.0.0"), "cat"));
    assert_member(tx.check_bare_code(&format!("{vs}|1.0.0"), "dog"));
    assert_not_member(
        tx.check_bare_code(&format!("{vs}|1.0.0"), "cat"),
        "not among",
    );
    assert_member(tx.check_bare_code(&format!("{vs}|3.0.0"), "cat"));
}
