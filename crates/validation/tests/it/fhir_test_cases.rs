//! The official fhir-test-cases validator suite, R4 cases runnable offline:
//! our validator beside the HL7 Java validator's expected outcomes.
//!
//! `conformance/fhir-test-cases/manifest.json` lists the selected cases, each
//! the upstream manifest entry unchanged (see that folder's README.md for the
//! selection and provenance). Each case is validated like `$validate` does
//! (R4 core, claimed profiles, the document Bundle rules; a `profile` step
//! validates again against that profile) and compared with Java's
//! expectation:
//!
//! * error count: issues of severity error or fatal, in the expected
//!   OperationOutcome or `errorCount`;
//! * error locations, where Java gives them (`expression`, else `location`):
//!   every expected error location must be found among our issues of the same
//!   severity, either at the same FHIRPath or one element below it (Java
//!   reports a missing or repeated element at its parent, we at the element).
//!   Messages are never compared. Java's document-section locations are
//!   1-based (see `java_location`) and read as such.
//!
//! A step agrees (strict agreement) when both hold; its verdict agrees when
//! both or neither report an error. A profile that cannot be compiled makes
//! its step disagree in both. The run prints both figures for the whole
//! (widened) set and for the 95 cases of the original selection
//! (`original-selection` in the manifest).
//! `conformance/fhir-test-cases/known-disagreements.txt` is a ratchet: every
//! strict disagreement must be listed with its reason, a listed case that
//! agrees fails the run until it is removed, and neither figure may drop
//! below the `# agreement-floor: N` and `# verdict-floor: N` of its first
//! two lines.
//!
//! `FHIR_CASES=case-a,case-b cargo test -p ehds-validation --test it --
//! fhir_test_cases --nocapture` runs those cases only (the floors are then
//! not checked).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ehds_fhir::ReceivedResource;
use ehds_fhir::outcome::Issue;
use ehds_profiles::Registry;
use ehds_test_support::repo_root;
use ehds_validation::terminology::recorded::RecordedAnswers;
use ehds_validation::{UnknownExtensions, ValidationOptions, Validator};
use serde_json::Value;

const CORE_SD: &str = "http://hl7.org/fhir/StructureDefinition/";

fn suite_dir() -> PathBuf {
    repo_root().join("conformance").join("fhir-test-cases")
}

/// The package folders under `profiles/`, as `Registry::load_root` finds
/// them.
fn core_package_dirs() -> Vec<PathBuf> {
    let root = repo_root().join("profiles");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|d| {
            d.join("package.json").is_file() || d.join("package").join("package.json").is_file()
        })
        .collect();
    dirs.sort();
    dirs
}

fn base_validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
        Validator::with_options(&registry, java_options()).with_recorded_answers(recorded_answers())
    })
}

/// The terminology server's answers Java's run recorded
/// (`conformance/fhir-test-cases/tx-cache/`, entries of the HL7 validator's
/// own `txCache`, see that folder's README): Java's harness validates with
/// a terminology server, and its test run replays these recordings; the
/// display language asked for by default is Java's, `en-US`.
fn recorded_answers() -> std::sync::Arc<RecordedAnswers> {
    static ANSWERS: OnceLock<std::sync::Arc<RecordedAnswers>> = OnceLock::new();
    ANSWERS
        .get_or_init(|| {
            let dir = suite_dir().join("tx-cache");
            let mut answers = RecordedAnswers::new().with_default_language("en-US");
            let unread = answers
                .add_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            assert!(unread.is_empty(), "{unread:?}");
            assert!(
                !answers.is_empty(),
                "no recorded answers in {}",
                dir.display()
            );
            std::sync::Arc::new(answers)
        })
        .clone()
}

/// The options that reproduce the Java harness: an extension it cannot
/// resolve is an error (`EXTENSION_EXT_UNKNOWN_NOTHERE`) unless
/// `InstanceValidator.allowUnknownExtension` lets it through: example URLs
/// (`example.org`, `acme.com`, allowed by default) and `nema.org`. The
/// gateway's default is information. A narrative `#` link that names
/// nothing is an error, as in Java (the gateway warns). The clock is fixed
/// at the suite's date (2026-06-25T00:00:00Z, README.md's provenance), so
/// that the verdicts on bounds relative to now
/// (`toplevel-minvalueduration-*`, `toplevel-maxvalueduration-*`) do not
/// change with the day the tests run.
fn java_options() -> ValidationOptions {
    ValidationOptions {
        now: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_782_345_600)),
        narrative_links: ehds_fhir::outcome::Severity::Error,
        unknown_extensions: UnknownExtensions {
            severity: ehds_fhir::outcome::Severity::Error,
            allowed_domains: vec!["example.org".into(), "acme.com".into(), "nema.org".into()],
        },
        ..ValidationOptions::default()
    }
}

/// A validator over `profiles/` plus the case's supporting conformance
/// resources, loaded as one extra package from a temporary folder, and the
/// case's `allowed-extension-domain` (Java's harness adds it to the
/// validator's extension domains: `ValidationTests`,
/// `val.getExtensionDomains().add(…)`; an unknown extension under it is
/// not an error, `InstanceValidator.allowUnknownExtension`).
fn validator_with(case: &str, supporting: &[String], extension_domain: Option<&str>) -> Validator {
    let dir = std::env::temp_dir().join(format!(
        "ehds-fhir-test-cases-{}-{}",
        std::process::id(),
        case.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        r#"{"name":"fhir-test-cases.supporting","version":"0.0.0"}"#,
    )
    .unwrap();
    for (i, file) in supporting.iter().enumerate() {
        let name = Path::new(file).file_name().unwrap().to_string_lossy();
        std::fs::copy(suite_dir().join(file), dir.join(format!("{i:02}-{name}"))).unwrap();
    }
    let mut dirs = core_package_dirs();
    dirs.push(dir.clone());
    let registry = Registry::load(&dirs).unwrap_or_else(|e| panic!("{case}: {e}"));
    let mut options = java_options();
    options
        .unknown_extensions
        .allowed_domains
        .extend(extension_domain.map(str::to_owned));
    let validator =
        Validator::with_options(&registry, options).with_recorded_answers(recorded_answers());
    let _ = std::fs::remove_dir_all(&dir);
    validator
}

/// One expected or found error: severity and, when it can be mapped, its
/// FHIRPath in our spelling.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Located {
    severity: &'static str,
    path: Option<String>,
}

/// Java's expectation for one validation step.
#[derive(Debug, Default)]
struct Expected {
    errors: usize,
    located: Vec<Located>,
}

fn severity_code(text: &str) -> Option<&'static str> {
    match text {
        "fatal" => Some("fatal"),
        "error" => Some("error"),
        _ => None,
    }
}

/// Java's FHIRPath in our spelling: resource comments (`/*Patient/1*/`)
/// removed, `x.ofType(T)` on a choice element as `xT`, and on a resource
/// slot (`resource`, `contained`, `outcome`, `return`) dropped. `None` when
/// it is not a path (e.g. `Line[1] Col[2]`).
fn java_path(expression: &str) -> Option<String> {
    let mut text = String::with_capacity(expression.len());
    let mut rest = expression;
    while let Some(start) = rest.find("/*") {
        text.push_str(&rest[..start]);
        let end = rest[start..].find("*/")? + start + 2;
        rest = &rest[end..];
    }
    text.push_str(rest);
    let first = text.chars().next()?;
    if !first.is_ascii_uppercase() || text.contains(char::is_whitespace) {
        return None;
    }
    // Only numeric indexes: `extension[1][url='…']` is not a path we write.
    let indexes_only = text.split('[').skip(1).all(|after| {
        after.split_once(']').is_some_and(|(index, _)| {
            !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())
        })
    });
    if !indexes_only {
        return None;
    }
    while let Some(at) = text.find(".ofType(") {
        let close = text[at..].find(')')? + at;
        let type_name = text[at + ".ofType(".len()..close].to_owned();
        let element = text[..at].rsplit('.').next().unwrap_or_default();
        let element = element.split('[').next().unwrap_or_default();
        let replacement = if matches!(element, "resource" | "contained" | "outcome" | "return") {
            String::new()
        } else {
            let mut chars = type_name.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        };
        text.replace_range(at..=close, &replacement);
    }
    Some(text)
}

/// Whether `path` (our spelling, from the resource type) names a value of
/// `instance`.
fn names_a_value(instance: &Value, path: &str) -> bool {
    let mut at = instance;
    for segment in path.split('.').skip(1) {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let Some(value) = at.get(name) else {
            return false;
        };
        at = match (index, value) {
            (Some(i), Value::Array(items)) => match items.get(i) {
                Some(item) => item,
                None => return false,
            },
            (Some(0), single) => single,
            (Some(_), _) => return false,
            (None, value) => value,
        };
    }
    true
}

/// Java's location read as Java meant it: `BundleValidator.validateDocument`
/// and `validateSections` push the document's first entry, its sections and
/// their entries with 1-based indexes (`stack.push(firstEntry, 1, …)`,
/// `stack.push(section, i, …)` from `i = 1`), so a location such as
/// `Bundle.entry[1].resource.section[1].entry[2]` means
/// `Bundle.entry[0].resource.section[0].entry[1]`. Such a location (in a
/// section, naming no value of the instance as written, but one when read
/// 1-based) is read 1-based; any other is kept.
fn java_location(path: String, instance: &Value) -> String {
    if !path.starts_with("Bundle.entry[")
        || !path.contains(".resource.section[")
        || names_a_value(instance, &path)
    {
        return path;
    }
    let mut zero_based = String::with_capacity(path.len());
    for (i, part) in path.split('[').enumerate() {
        if i > 0 {
            let Some((index, rest)) = part.split_once(']') else {
                return path;
            };
            let Some(index) = index.parse::<usize>().ok().and_then(|n| n.checked_sub(1)) else {
                return path;
            };
            zero_based.push_str(&format!("[{index}]{rest}"));
        } else {
            zero_based.push_str(part);
        }
    }
    if names_a_value(instance, &zero_based) {
        zero_based
    } else {
        path
    }
}

fn expected_from_outcome(outcome: &Value) -> Expected {
    let mut expected = Expected::default();
    for issue in outcome["issue"].as_array().into_iter().flatten() {
        let Some(severity) = issue["severity"].as_str().and_then(severity_code) else {
            continue;
        };
        expected.errors += 1;
        let first = |key: &str| {
            issue[key]
                .as_array()
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let path = first("expression")
            .or_else(|| first("location"))
            .and_then(|e| java_path(&e));
        expected.located.push(Located { severity, path });
    }
    expected
}

/// The `java` expectation of a manifest step: a file under the suite's
/// `outcomes/`, an inline OperationOutcome, or an inline `errorCount`.
fn expected(step: &Value, case: &str) -> Expected {
    match &step["java"] {
        Value::String(file) => {
            let path = suite_dir().join("outcomes").join(file);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{case}: {file}: {e}"));
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
            expected_from_outcome(&serde_json::from_slice(bytes).unwrap())
        }
        Value::Object(java) if java.contains_key("outcome") => {
            expected_from_outcome(&java["outcome"])
        }
        Value::Object(java) => Expected {
            errors: java["errorCount"]
                .as_u64()
                .unwrap_or_else(|| panic!("{case}: no errorCount")) as usize,
            located: Vec::new(),
        },
        other => panic!("{case}: no java expectation: {other}"),
    }
}

/// Our FHIRPath in Java's spelling: the `_x` object of a primitive's
/// extensions is the element `x` itself.
fn our_path(expression: &str) -> String {
    expression
        .split('.')
        .map(|segment| segment.strip_prefix('_').unwrap_or(segment))
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether one of our errors is at `want`: the same severity, and the same
/// path or one element below it.
fn found(want: &Located, ours: &[Issue]) -> bool {
    let Some(path) = &want.path else {
        return true;
    };
    ours.iter().any(|issue| {
        issue.severity.code() == want.severity
            && issue.expression.as_deref().map(our_path).is_some_and(|e| {
                e == *path
                    || e.strip_prefix(path.as_str())
                        .and_then(|below| below.strip_prefix('.'))
                        .is_some_and(|child| !child.contains('.'))
            })
    })
}

/// One validation run of a case and how it compared.
struct Outcome {
    id: String,
    /// Error count and every located error agree (strict agreement).
    agrees: bool,
    /// Both report errors, or neither does (verdict agreement).
    same_verdict: bool,
    /// Part of the 95 cases selected before the suite was widened.
    original: bool,
    java_errors: usize,
    our_errors: usize,
    missed: Vec<Located>,
    ours: Vec<Issue>,
}

/// The canonical URL of a profile step's `source`: a URL as is, or the `url`
/// of the StructureDefinition file.
fn profile_url(source: &str) -> String {
    if source.contains("://") {
        return source.to_owned();
    }
    let bytes = std::fs::read(suite_dir().join(source)).unwrap();
    let sd: Value = serde_json::from_slice(&bytes).unwrap();
    sd["url"].as_str().unwrap().to_owned()
}

fn run_case(case: &Value) -> Vec<Outcome> {
    let name = case["name"].as_str().unwrap();
    let id: String = name.chars().filter(|c| !c.is_whitespace()).collect();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let profile = case.get("profile").filter(|p| p.is_object());
    // As the Java harness (ValidationTests): the case's supporting files
    // are loaded for the first step; the profile step's own supporting
    // files and profile only for that step.
    let mut supporting = strings(&case["supporting"]);
    supporting.extend(strings(&case["profiles"]));
    supporting.sort();
    supporting.dedup();
    let mut profile_supporting = supporting.clone();
    if let Some(profile) = profile {
        profile_supporting.extend(strings(&profile["supporting"]));
        let source = profile["source"].as_str().unwrap();
        if !source.contains("://") {
            profile_supporting.push(source.to_owned());
        }
    }
    profile_supporting.sort();
    profile_supporting.dedup();
    let extension_domain = case["allowed-extension-domain"].as_str();
    let own;
    let validator = if supporting.is_empty() && extension_domain.is_none() {
        base_validator()
    } else {
        own = validator_with(&id, &supporting, extension_domain);
        &own
    };
    let own_profile;
    let profile_validator = if profile_supporting == supporting {
        validator
    } else {
        own_profile = validator_with(
            &format!("{id}-profile"),
            &profile_supporting,
            extension_domain,
        );
        &own_profile
    };

    let file = case["file"].as_str().unwrap();
    let bytes = std::fs::read(suite_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let parsed = ReceivedResource::parse(bytes.into());
    let validate = |validator: &Validator, profiles: &[&str]| -> Vec<Issue> {
        match &parsed {
            Ok(resource) => validator.validate(resource, profiles).issues,
            Err(rejection) => vec![Issue::from(rejection)],
        }
    };
    let compare = |id: String, expected: Expected, ours: Vec<Issue>| {
        let our_errors = ours.iter().filter(|i| i.severity.is_error()).count();
        let errors: Vec<Issue> = ours
            .iter()
            .filter(|i| i.severity.is_error())
            .cloned()
            .collect();
        let missed: Vec<Located> = expected
            .located
            .iter()
            .filter(|want| !found(want, &errors))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Outcome {
            agrees: our_errors == expected.errors && missed.is_empty(),
            same_verdict: (our_errors > 0) == (expected.errors > 0),
            original: false,
            id,
            java_errors: expected.errors,
            our_errors,
            missed,
            ours,
        }
    };

    let instance: Option<Value> = std::fs::read(suite_dir().join(file))
        .ok()
        .and_then(|b| serde_json::from_slice(b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&b)).ok());
    let located = |mut expected: Expected| {
        if let Some(instance) = &instance {
            for want in &mut expected.located {
                want.path = want.path.take().map(|p| java_location(p, instance));
            }
        }
        expected
    };
    let mut outcomes = vec![compare(
        id.clone(),
        located(expected(case, name)),
        validate(validator, &[]),
    )];
    if let Some(profile) = profile {
        let url = profile_url(profile["source"].as_str().unwrap());
        let expected = located(expected(profile, name));
        if profile_validator.knows_profile(&url) || url.starts_with(CORE_SD) {
            outcomes.push(compare(
                format!("{id}@profile"),
                expected,
                validate(profile_validator, &[url.as_str()]),
            ));
        } else {
            // The profile could not be compiled (see the validator's load
            // problems): the step is run by neither count of agreement.
            let problems: Vec<String> = profile_validator
                .load_problems()
                .iter()
                .map(|p| format!("{}: {}", p.url, p.problem))
                .collect();
            outcomes.push(Outcome {
                id: format!("{id}@profile"),
                agrees: false,
                same_verdict: false,
                original: false,
                java_errors: expected.errors,
                our_errors: 0,
                missed: Vec::new(),
                ours: vec![Issue::error(
                    ehds_fhir::outcome::IssueType::NotFound,
                    format!("profile {url} not loadable: {}", problems.join("; ")),
                )],
            });
        }
    }
    outcomes
}

/// The ratchet: the strict and verdict agreement floors and `case` → reason.
fn known_disagreements() -> (usize, usize, BTreeMap<String, String>) {
    let path = suite_dir().join("known-disagreements.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let floor = |line: usize, prefix: &str| -> usize {
        text.lines()
            .nth(line)
            .and_then(|l| l.strip_prefix(prefix))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: line {} must be `{prefix} N`", path.display(), line + 1))
    };
    let verdict_floor = floor(1, "# verdict-floor:");
    let floor = floor(0, "# agreement-floor:");
    let known = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (case, reason) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            assert!(
                !reason.trim().is_empty(),
                "{case}: a known disagreement needs a reason"
            );
            (case.to_owned(), reason.trim().to_owned())
        })
        .collect();
    (floor, verdict_floor, known)
}

/// The category of a reason: the text before its first `:`.
fn category(reason: &str) -> &str {
    reason.split(':').next().unwrap_or(reason).trim()
}

fn describe(outcome: &Outcome) -> String {
    let mut text = format!(
        "{}: Java {} error(s), ours {}",
        outcome.id, outcome.java_errors, outcome.our_errors
    );
    for missed in &outcome.missed {
        text.push_str(&format!(
            "\n    Java {} at {} not found among ours",
            missed.severity,
            missed.path.as_deref().unwrap_or("?")
        ));
    }
    for issue in outcome.ours.iter().filter(|i| i.severity.is_error()) {
        text.push_str(&format!(
            "\n    ours: {} {} at {}: {}",
            issue.severity.code(),
            issue.code.code(),
            issue.expression.as_deref().unwrap_or("?"),
            issue.diagnostics
        ));
    }
    text
}

#[test]
fn java_path_spelling() {
    assert_eq!(
        java_path("Bundle.entry[0].resource/*Observation/8*/.value.ofType(CodeableConcept)")
            .as_deref(),
        Some("Bundle.entry[0].resource.valueCodeableConcept")
    );
    assert_eq!(
        java_path("Observation.effective.ofType(dateTime)").as_deref(),
        Some("Observation.effectiveDateTime")
    );
    assert_eq!(
        java_path("Bundle.entry[1].resource.ofType(Patient).name[0]").as_deref(),
        Some("Bundle.entry[1].resource.name[0]")
    );
    assert_eq!(java_path("Line[1] Col[2]"), None);
    assert_eq!(java_path("Patient.extension[1][url='http://x']"), None);
    assert_eq!(
        our_path("Observation._valueInteger.value"),
        "Observation.valueInteger.value"
    );
}

#[test]
fn agreement_with_the_java_validator() {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(suite_dir().join("manifest.json")).unwrap()).unwrap();
    // `FHIR_CASES=a,b` runs those cases only (names without spaces), for
    // working on them: the figures and the ratchet then cover that subset,
    // and the floors and stale entries are not checked.
    let only: Option<BTreeSet<String>> = std::env::var("FHIR_CASES")
        .ok()
        .map(|v| v.split(',').map(|c| c.trim().to_owned()).collect());
    let all_cases = manifest["test-cases"].as_array().unwrap();
    let cases: Vec<Value> = all_cases
        .iter()
        .filter(|c| {
            only.as_ref().is_none_or(|only| {
                let name: String = c["name"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                only.contains(&name)
            })
        })
        .cloned()
        .collect();
    let original: BTreeSet<String> = manifest["original-selection"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            n.as_str()
                .unwrap()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect()
        })
        .collect();
    // Most cases build their own validator (their supporting definitions):
    // run them on every core, in manifest order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let chunk = cases.len().div_ceil(threads).max(1);
    let mut outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().flat_map(run_case).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    for outcome in &mut outcomes {
        let case = outcome.id.split('@').next().unwrap_or_default();
        outcome.original = original.contains(case);
    }
    let (floor, verdict_floor, known) = known_disagreements();

    let agreed = outcomes.iter().filter(|o| o.agrees).count();
    let verdicts = outcomes.iter().filter(|o| o.same_verdict).count();
    let original_steps: Vec<&Outcome> = outcomes.iter().filter(|o| o.original).collect();
    let original_agreed = original_steps.iter().filter(|o| o.agrees).count();
    let original_cases = |f: &dyn Fn(&Outcome) -> bool| {
        let mut by_case: BTreeMap<&str, bool> = BTreeMap::new();
        for o in &original_steps {
            let case = o.id.split('@').next().unwrap_or_default();
            let entry = by_case.entry(case).or_insert(true);
            *entry &= f(o);
        }
        by_case.values().filter(|v| **v).count()
    };
    println!(
        "original selection ({} cases, {} steps): strict agreement {original_agreed} steps; cases agreeing in every step: {} strict, {} by verdict",
        original.len(),
        original_steps.len(),
        original_cases(&|o| o.agrees),
        original_cases(&|o| o.same_verdict),
    );
    println!(
        "widened set ({} cases, {} steps): strict agreement {agreed} ({:.1}%), verdict agreement {verdicts} ({:.1}%)",
        cases.len(),
        outcomes.len(),
        100.0 * agreed as f64 / outcomes.len() as f64,
        100.0 * verdicts as f64 / outcomes.len() as f64,
    );
    // Reasons grouped by their text before ` (`, e.g. every
    // "needs packages not held offline (…)" together.
    let mut grouped: BTreeMap<&str, u64> = BTreeMap::new();
    for (why, n) in manifest["excluded"].as_object().unwrap() {
        let group = why.split(" (").next().unwrap_or(why);
        *grouped.entry(group).or_default() += n.as_u64().unwrap();
    }
    let mut excluded: Vec<(u64, &str)> = grouped.into_iter().map(|(why, n)| (n, why)).collect();
    excluded.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let excluded: Vec<String> = excluded
        .iter()
        .map(|(n, why)| format!("{n} {why}"))
        .collect();
    let excluded_total: u64 = manifest["excluded"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    println!(
        "fhir-test-cases (Java validator): agreement {agreed} / {} steps run ({excluded_total} cases excluded: {})",
        outcomes.len(),
        excluded.join("; ")
    );

    let mut by_category: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut now_agreeing = Vec::new();
    for outcome in &outcomes {
        match (outcome.agrees, known.get(&outcome.id)) {
            (true, Some(_)) => now_agreeing.push(outcome.id.clone()),
            (true, None) => {}
            (false, Some(reason)) => *by_category.entry(category(reason)).or_default() += 1,
            (false, None) => {
                *by_category.entry("(not listed)").or_default() += 1;
                unexpected.push(describe(outcome));
            }
        }
    }
    println!("disagreements by category:");
    for (category, n) in &by_category {
        println!("  {n:4}  {category}");
    }
    println!("disagreements:");
    for outcome in outcomes.iter().filter(|o| !o.agrees) {
        let reason = known
            .get(&outcome.id)
            .map_or("(not listed)", |r| category(r));
        let direction = match outcome.our_errors.cmp(&outcome.java_errors) {
            std::cmp::Ordering::Less => "fewer errors",
            std::cmp::Ordering::Greater => "more errors",
            std::cmp::Ordering::Equal => "errors elsewhere",
        };
        println!(
            "  {:<48} Java {:>2}, ours {:>2} ({direction}); {reason}",
            outcome.id, outcome.java_errors, outcome.our_errors
        );
        for missed in &outcome.missed {
            println!(
                "      Java {} at {} not found among ours",
                missed.severity,
                missed.path.as_deref().unwrap_or("?")
            );
        }
        for issue in outcome.ours.iter().filter(|i| i.severity.is_error()) {
            let text: String = issue.diagnostics.chars().take(110).collect();
            println!(
                "      ours at {}: {text}",
                issue.expression.as_deref().unwrap_or("?")
            );
        }
    }

    // No false rejections: where Java reports no error, neither do we
    // (issue 15 §1), whatever the ratchet says.
    let false_rejections: Vec<String> = outcomes
        .iter()
        .filter(|o| o.java_errors == 0 && o.our_errors > 0)
        .map(describe)
        .collect();
    println!(
        "steps where Java reports 0 errors: {}, of which we report errors in {}",
        outcomes.iter().filter(|o| o.java_errors == 0).count(),
        false_rejections.len()
    );
    assert!(
        false_rejections.is_empty(),
        "errors where the Java validator reports none:\n{}",
        false_rejections.join("\n")
    );

    if only.is_some() {
        assert!(
            now_agreeing.is_empty() && unexpected.is_empty(),
            "FHIR_CASES: now agreeing {now_agreeing:?}; not listed:\n{}",
            unexpected.join("\n")
        );
        return;
    }
    let ids: BTreeSet<&str> = outcomes.iter().map(|o| o.id.as_str()).collect();
    let stale: Vec<&String> = known.keys().filter(|k| !ids.contains(k.as_str())).collect();
    assert!(
        stale.is_empty(),
        "known-disagreements.txt names cases that are not run: {stale:?}"
    );
    assert!(
        now_agreeing.is_empty(),
        "these cases now agree with the Java validator: remove them from conformance/fhir-test-cases/known-disagreements.txt (and raise the agreement floor): {now_agreeing:?}"
    );
    assert!(
        unexpected.is_empty(),
        "{} cases disagree with the Java validator and are not in known-disagreements.txt:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        agreed >= floor,
        "agreement {agreed} is below the floor {floor} in known-disagreements.txt"
    );
    assert!(
        verdicts >= verdict_floor,
        "verdict agreement {verdicts} is below the floor {verdict_floor} in known-disagreements.txt"
    );
    // Issue 15's acceptance: strict agreement on at least 85 of the 95
    // original cases, verdict agreement on at least 85 % of the widened set.
    let original_strict = original_cases(&|o| o.agrees);
    assert!(
        original_strict >= 85,
        "strict agreement on {original_strict} of the original cases, fewer than 85 (issue 15)"
    );
    assert!(
        verdicts * 100 >= outcomes.len() * 85,
        "verdict agreement {verdicts} / {} is under 85 % (issue 15)",
        outcomes.len()
    );
    if agreed > floor || verdicts > verdict_floor {
        println!(
            "agreement {agreed} / verdicts {verdicts} above the floors {floor} / {verdict_floor}: raise them in known-disagreements.txt"
        );
    }
}
