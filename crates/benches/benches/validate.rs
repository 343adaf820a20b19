//! Full validation of pushed documents (`Validator::validate_pushed_document`
//! against the IPS Bundle profile), parse included and excluded, on the
//! largest IPS IG example, a generated ~50 KB IPS of 60 entries and generated
//! document Bundles of 1k, 10k and 100k entries (to show the cost is linear).
//!
//! The peer validators (npm `@medplum/core` `validateResource` and FHIR.js
//! `fhir`) run in Node on the same bytes: this bench writes every input to
//! `crates/benches/peer/generated/` with a manifest (`inputs.json`) that
//! `crates/benches/peer/bench.mjs` reads. See BENCHMARKS.md.
//!
//! It runs with the gateway binary's allocator (jemalloc, as
//! `ehds-gateway-bin` ships), so that the figures are the shipped
//! gateway's.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ehds_benches::{IPS_50KB, conformance_file};
use ehds_fhir::ReceivedResource;
use ehds_profiles::Registry;
use ehds_validation::Validator;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const IPS_BUNDLE: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips";

/// One benchmark input: a name, its bytes, and where the peer reads them.
struct Input {
    name: &'static str,
    bytes: Bytes,
    /// Path relative to `crates/benches/peer/`.
    peer_path: String,
    entries: usize,
}

fn peer_dir() -> PathBuf {
    ehds_test_support::repo_root().join("crates/benches/peer")
}

/// Every input, generated ones written to `peer/generated/` with a manifest.
fn inputs() -> Vec<Input> {
    let example = Bytes::from(conformance_file(IPS_50KB).unwrap());
    let mut inputs = vec![Input {
        name: "ips_example_51kb",
        entries: count_entries(&example),
        bytes: example,
        peer_path: format!("../../../conformance/{IPS_50KB}"),
    }];
    for (name, entries) in [
        ("generated_ips_60", 60),
        ("generated_1k", 1_000),
        ("generated_10k", 10_000),
        ("generated_100k", 100_000),
    ] {
        inputs.push(Input {
            name,
            bytes: Bytes::from(generate_document(entries)),
            peer_path: format!("generated/{name}.json"),
            entries,
        });
    }
    write_for_peer(&peer_dir(), &inputs);
    inputs
}

fn count_entries(bytes: &[u8]) -> usize {
    let resource = ReceivedResource::parse(Bytes::copy_from_slice(bytes)).unwrap();
    resource
        .root()
        .get("entry")
        .and_then(|e| e.as_array())
        .map_or(0, <[_]>::len)
}

/// Writes the generated inputs and `generated/inputs.json` (name, path,
/// size, entries of every input, in bench order) for the Node peer.
fn write_for_peer(peer: &Path, inputs: &[Input]) {
    let dir = peer.join("generated");
    std::fs::create_dir_all(&dir).unwrap();
    let mut manifest = String::from("[\n");
    for (i, input) in inputs.iter().enumerate() {
        if input.peer_path.starts_with("generated/") {
            let path = peer.join(&input.peer_path);
            // Rewrite only when the bytes differ, so the files keep their
            // times between runs.
            if std::fs::read(&path).ok().as_deref() != Some(&input.bytes[..]) {
                std::fs::write(&path, &input.bytes).unwrap();
            }
        }
        let comma = if i + 1 < inputs.len() { "," } else { "" };
        writeln!(
            manifest,
            "  {{\"name\": \"{}\", \"path\": \"{}\", \"bytes\": {}, \"entries\": {}}}{comma}",
            input.name,
            input.peer_path,
            input.bytes.len(),
            input.entries
        )
        .unwrap();
    }
    manifest.push_str("]\n");
    std::fs::write(dir.join("inputs.json"), manifest).unwrap();
}

// ---------------------------------------------------------------------------
// Deterministic generator of IPS-shaped FHIR R4 document Bundles.
// ---------------------------------------------------------------------------

/// `urn:uuid:` of the `n`-th resource of a generated document: a version 4,
/// variant 1 UUID made from `n`, so documents are reproducible.
fn uuid(n: usize) -> String {
    format!("urn:uuid:{:08x}-7a1d-4c3e-8f00-{:012x}", 0x1b5_0000 + n, n)
}

/// A date in 2010–2024 derived from `i` (always a real calendar day).
fn date(i: usize) -> String {
    format!(
        "{}-{:02}-{:02}",
        2010 + i % 15,
        1 + (i / 15) % 12,
        1 + (i / 7) % 28
    )
}

const XHTML: &str = r#"xmlns=\"http://www.w3.org/1999/xhtml\""#;

/// A generated narrative (`status` generated) whose div holds `body` (already
/// JSON-escaped XHTML).
fn narrative(body: &str) -> String {
    format!(r#""text":{{"status":"generated","div":"<div {XHTML}>{body}</div>"}}"#)
}

const IPS: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/";

/// `meta` claiming the IPS profile `name` (as IPS producers do: the IPS
/// Bundle tells several Observation profiles apart only by such claims).
fn claims(name: &str) -> String {
    format!(r#""meta":{{"profile":["{IPS}{name}"]}}"#)
}

const PROBLEMS: [(&str, &str); 6] = [
    ("38341003", "Hypertensive disorder, systemic arterial"),
    ("44054006", "Diabetes mellitus type 2"),
    ("195967001", "Asthma"),
    ("35489007", "Depressive disorder"),
    ("399211009", "History of myocardial infarction"),
    ("13645005", "Chronic obstructive lung disease"),
];

const MEDICATIONS: [(&str, &str); 6] = [
    ("108774000", "Product containing anastrozole"),
    ("386864001", "Amlodipine"),
    ("109081006", "Metformin"),
    ("387458008", "Aspirin"),
    ("372756006", "Warfarin"),
    ("386872004", "Salbutamol"),
];

/// SNOMED CT substance, display, AllergyIntolerance.category.
const ALLERGENS: [(&str, &str, &str); 5] = [
    ("373270004", "Penicillin class of antibiotic", "medication"),
    ("387406002", "Sulfonamide", "medication"),
    ("762952008", "Peanut", "food"),
    ("227493005", "Cashew nut", "food"),
    ("111088007", "Latex", "environment"),
];

const REACTIONS: [(&str, &str); 3] = [
    ("247472004", "Wheal"),
    ("271807003", "Eruption of skin"),
    ("267036007", "Dyspnea"),
];

/// LOINC code, display, UCUM unit, base value.
const LAB_TESTS: [(&str, &str, &str, u32); 5] = [
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 120),
    (
        "2345-7",
        "Glucose [Mass/volume] in Serum or Plasma",
        "mg/dL",
        850,
    ),
    (
        "2160-0",
        "Creatinine [Mass/volume] in Serum or Plasma",
        "mg/dL",
        9,
    ),
    (
        "2093-3",
        "Cholesterol [Mass/volume] in Serum or Plasma",
        "mg/dL",
        1800,
    ),
    (
        "6690-2",
        "Leukocytes [#/volume] in Blood by Automated count",
        "10*3/uL",
        65,
    ),
];

/// The `i`-th item of `table`, cycling.
fn pick<T: Copy>(table: &[T], i: usize) -> T {
    *table.get(i % table.len()).unwrap()
}

fn coding(system: &str, code: &str, display: &str) -> String {
    format!(r#"{{"system":"{system}","code":"{code}","display":"{display}"}}"#)
}

fn entry(full_url: &str, resource: &str) -> String {
    format!(r#"{{"fullUrl":"{full_url}","resource":{resource}}}"#)
}

/// The four kinds of clinical entries, in the order they repeat.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Condition,
    MedicationStatement,
    AllergyIntolerance,
    Observation,
}

const KINDS: [Kind; 4] = [
    Kind::Condition,
    Kind::MedicationStatement,
    Kind::AllergyIntolerance,
    Kind::Observation,
];

const SNOMED: &str = "http://snomed.info/sct";
const LOINC: &str = "http://loinc.org";

/// A clinical resource of `kind`, number `i`, about `patient`, performed by
/// `organization`.
fn clinical(kind: Kind, i: usize, patient: &str, organization: &str) -> String {
    let id = &uuid(i)[9..];
    let when = date(i);
    match kind {
        Kind::Condition => {
            let (code, display) = pick(&PROBLEMS, i);
            format!(
                concat!(
                    r#"{{"resourceType":"Condition","id":"{id}",{meta},{text},"#,
                    r#""clinicalStatus":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}}]}},"#,
                    r#""code":{{"coding":[{coding}]}},"#,
                    r#""subject":{{"reference":"{patient}"}},"onsetDateTime":"{when}"}}"#
                ),
                text = narrative(&format!(
                    "<p><b>Problem</b>: {display}, active since {when}</p>"
                )),
                coding = coding(SNOMED, code, display),
                meta = claims("Condition-uv-ips"),
                id = id,
                patient = patient,
                when = when,
            )
        }
        Kind::MedicationStatement => {
            let (code, display) = pick(&MEDICATIONS, i);
            format!(
                concat!(
                    r#"{{"resourceType":"MedicationStatement","id":"{id}",{meta},{text},"#,
                    r#""status":"active","medicationCodeableConcept":{{"coding":[{coding}]}},"#,
                    r#""subject":{{"reference":"{patient}"}},"effectivePeriod":{{"start":"{when}"}},"#,
                    r#""dosage":[{{"text":"1 tablet {freq} times a day","timing":{{"repeat":{{"frequency":{freq},"period":1,"periodUnit":"d"}}}}}}]}}"#
                ),
                text = narrative(&format!(
                    "<p><b>Medication</b>: {display}, one tablet {freq} times a day, since {when}</p>",
                    freq = 1 + i % 3
                )),
                coding = coding(SNOMED, code, display),
                freq = 1 + i % 3,
                meta = claims("MedicationStatement-uv-ips"),
                id = id,
                patient = patient,
                when = when,
            )
        }
        Kind::AllergyIntolerance => {
            let (code, display, category) = pick(&ALLERGENS, i);
            let (r_code, r_display) = pick(&REACTIONS, i);
            format!(
                concat!(
                    r#"{{"resourceType":"AllergyIntolerance","id":"{id}",{meta},{text},"#,
                    r#""clinicalStatus":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}}]}},"#,
                    r#""type":"allergy","category":["{category}"],"#,
                    r#""code":{{"coding":[{coding}]}},"patient":{{"reference":"{patient}"}},"onsetDateTime":"{when}","#,
                    r#""reaction":[{{"manifestation":[{{"coding":[{reaction}]}}],"severity":"moderate"}}]}}"#
                ),
                text = narrative(&format!(
                    "<p><b>Allergy</b>: {display} (reaction: {r_display})</p>"
                )),
                category = category,
                coding = coding(SNOMED, code, display),
                reaction = coding(SNOMED, r_code, r_display),
                meta = claims("AllergyIntolerance-uv-ips"),
                id = id,
                patient = patient,
                when = when,
            )
        }
        Kind::Observation => {
            let (code, display, unit, base) = pick(&LAB_TESTS, i);
            let value = f64::from(base + (i % 17) as u32) / 10.0;
            format!(
                concat!(
                    r#"{{"resourceType":"Observation","id":"{id}",{meta},{text},"#,
                    r#""status":"final","category":[{{"coding":[{category}]}}],"#,
                    r#""code":{{"coding":[{coding}]}},"subject":{{"reference":"{patient}"}},"#,
                    r#""effectiveDateTime":"{when}T09:{minute:02}:00+01:00","performer":[{{"reference":"{organization}"}}],"#,
                    r#""valueQuantity":{{"value":{value},"unit":"{unit}","system":"http://unitsofmeasure.org","code":"{unit}"}}}}"#
                ),
                text = narrative(&format!("<p><b>{display}</b>: {value} {unit} ({when})</p>")),
                category = r#"{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}"#,
                coding = coding(LOINC, code, display),
                minute = i % 60,
                meta = claims("Observation-results-laboratory-pathology-uv-ips"),
                id = id,
                patient = patient,
                when = when,
                organization = organization,
                value = value,
                unit = unit,
            )
        }
    }
}

/// A FHIR R4 document Bundle conforming to the IPS Bundle profile, with
/// `entries` entries: the Composition, the Patient, the Organization that
/// authored it, then Conditions, MedicationStatements, AllergyIntolerances
/// and laboratory Observations in turn, each with a narrative and each
/// referenced by `urn:uuid` from its Composition section. Deterministic.
fn generate_document(entries: usize) -> Vec<u8> {
    assert!(
        entries >= 3 + KINDS.len(),
        "too few entries for every section"
    );
    let composition = uuid(0);
    let patient = uuid(1);
    let organization = uuid(2);
    let mut sections: [Vec<String>; 4] = Default::default();
    let mut body = String::with_capacity(entries * 1_000);
    for i in 3..entries {
        let kind = pick(&KINDS, i - 3);
        let full_url = uuid(i);
        body.push(',');
        body.push_str(&entry(
            &full_url,
            &clinical(kind, i, &patient, &organization),
        ));
        sections
            .get_mut((i - 3) % KINDS.len())
            .unwrap()
            .push(full_url);
    }

    let section = |title: &str, code: &str, display: &str, refs: &[String], what: &str| {
        let mut list = String::new();
        for r in refs {
            if !list.is_empty() {
                list.push(',');
            }
            write!(list, r#"{{"reference":"{r}"}}"#).unwrap();
        }
        format!(
            r#"{{"title":"{title}","code":{{"coding":[{coding}]}},{text},"entry":[{list}]}}"#,
            coding = coding(LOINC, code, display),
            text = narrative(&format!(
                "<p>{} {what}, listed in this section.</p>",
                refs.len()
            )),
        )
    };
    let composition_resource = format!(
        concat!(
            r#"{{"resourceType":"Composition","id":"{id}",{meta},{text},"#,
            r#""identifier":{{"system":"urn:ietf:rfc:3986","value":"{composition}"}},"status":"final","#,
            r#""type":{{"coding":[{type_coding}]}},"subject":{{"reference":"{patient}"}},"#,
            r#""date":"2024-11-24T10:00:00+01:00","author":[{{"reference":"{organization}"}}],"#,
            r#""title":"Patient Summary as of 24 November 2024","confidentiality":"N","#,
            r#""custodian":{{"reference":"{organization}"}},"section":[{problems},{medications},{allergies},{results}]}}"#
        ),
        meta = claims("Composition-uv-ips"),
        id = &composition[9..],
        composition = composition,
        patient = patient,
        organization = organization,
        text = narrative("<p>Patient summary of Ada Example, generated for benchmarking.</p>"),
        type_coding = coding(LOINC, "60591-5", "Patient summary Document"),
        problems = section(
            "Active Problems",
            "11450-4",
            "Problem list - Reported",
            &sections[0],
            "problems"
        ),
        medications = section(
            "Medication",
            "10160-0",
            "History of Medication use Narrative",
            &sections[1],
            "medications"
        ),
        allergies = section(
            "Allergies and Intolerances",
            "48765-2",
            "Allergies and adverse reactions Document",
            &sections[2],
            "allergies"
        ),
        results = section(
            "Results",
            "30954-2",
            "Relevant diagnostic tests/laboratory data Narrative",
            &sections[3],
            "laboratory results"
        ),
    );
    let patient_resource = format!(
        concat!(
            r#"{{"resourceType":"Patient","id":"{id}",{meta},{text},"#,
            r#""identifier":[{{"system":"urn:oid:2.16.840.1.113883.2.4.6.3","value":"574687583"}}],"active":true,"#,
            r#""name":[{{"family":"Example","given":["Ada"]}}],"#,
            r#""telecom":[{{"system":"phone","value":"+31788700800","use":"home"}}],"#,
            r#""gender":"female","birthDate":"1972-05-01","#,
            r#""address":[{{"line":["Laan Van Europa 1600"],"city":"Dordrecht","postalCode":"3317 DB","country":"NL"}}]}}"#
        ),
        meta = claims("Patient-uv-ips"),
        id = &patient[9..],
        text = narrative("<p><b>Ada Example</b>, female, born 1972-05-01</p>"),
    );
    let organization_resource = format!(
        concat!(
            r#"{{"resourceType":"Organization","id":"{id}",{meta},{text},"#,
            r#""identifier":[{{"system":"urn:oid:2.16.528.1.1007.3.3","value":"564738757"}}],"#,
            r#""name":"Anorg Hospital","telecom":[{{"system":"phone","value":"+31-51-34343400","use":"work"}}],"#,
            r#""address":[{{"line":["Ziekenhuisweg 1"],"city":"Amsterdam","country":"NL"}}]}}"#
        ),
        meta = claims("Organization-uv-ips"),
        id = &organization[9..],
        text = narrative("<p>Anorg Hospital, Amsterdam</p>"),
    );

    let mut out = String::with_capacity(body.len() + 64 * entries + 4_096);
    write!(
        out,
        concat!(
            r#"{{"resourceType":"Bundle","id":"bench-{entries}","#,
            r#""identifier":{{"system":"urn:ietf:rfc:3986","value":"{bundle_id}"}},"#,
            r#""type":"document","timestamp":"2024-11-24T10:00:00+01:00","entry":["#
        ),
        entries = entries,
        bundle_id = uuid(entries + 1),
    )
    .unwrap();
    out.push_str(&entry(&composition, &composition_resource));
    out.push(',');
    out.push_str(&entry(&patient, &patient_resource));
    out.push(',');
    out.push_str(&entry(&organization, &organization_resource));
    out.push_str(&body);
    out.push_str("]}\n");
    out.into_bytes()
}

// ---------------------------------------------------------------------------
// The benchmark.
// ---------------------------------------------------------------------------

/// Negative controls: single defects in the generated IPS that the validator
/// must report, so the timed path is known to check the generated entries
/// against the IPS profiles (not only to walk them).
fn assert_defects_found(validator: &Validator) {
    let good = String::from_utf8(generate_document(60)).unwrap();
    let organization = format!(r#","performer":[{{"reference":"{}"}}]"#, uuid(2));
    let defects: [(&str, &str, String); 6] = [
        (
            "lab Observation without performer (IPS: 1..*)",
            &organization,
            String::new(),
        ),
        (
            "MedicationStatement without effective[x] (IPS: 1..1)",
            &format!(r#""effectivePeriod":{{"start":"{}"}},"#, date(4)),
            String::new(),
        ),
        (
            "no allergies section (IPS Composition: slice 1..1)",
            r#""code":"48765-2""#,
            r#""code":"48765-3""#.to_owned(),
        ),
        (
            // The Composition's: Java's document rules (and ours) require
            // what the Composition references to resolve; a dangling
            // reference elsewhere is only a hint (BundleValidator).
            "Composition.subject that does not resolve in the Bundle",
            &format!(r#""subject":{{"reference":"{}"}},"#, uuid(1)),
            format!(r#""subject":{{"reference":"{}"}},"#, uuid(99)),
        ),
        (
            "AllergyIntolerance.type outside its required binding",
            r#""type":"allergy""#,
            r#""type":"allergic""#.to_owned(),
        ),
        (
            "script in a narrative (txt-1)",
            "<p><b>Problem</b>",
            "<p><script>alert(1)</script><b>Problem</b>".to_owned(),
        ),
    ];
    for (what, from, to) in defects {
        let bad = good.replacen(from, &to, 1);
        assert_ne!(bad, good, "{what}: the defect was not introduced");
        let resource = ReceivedResource::parse(Bytes::from(bad)).unwrap();
        let report = validator.validate_pushed_document(&resource, &[IPS_BUNDLE]);
        assert!(report.error_count() > 0, "{what}: not reported");
    }
}

fn validate(c: &mut Criterion) {
    let registry = Registry::load_root(&ehds_test_support::repo_root().join("profiles")).unwrap();
    let validator = Validator::new(&registry);
    assert_defects_found(&validator);

    for input in inputs() {
        // Once before timing: the document must be valid, so the timed path
        // is the one a good document takes.
        let resource = ReceivedResource::parse(input.bytes.clone()).unwrap();
        let report = validator.validate_pushed_document(&resource, &[IPS_BUNDLE]);
        let errors: Vec<_> = report
            .issues
            .iter()
            .filter(|i| i.severity.is_error())
            .take(20)
            .collect();
        assert!(
            errors.is_empty(),
            "{}: {} errors, first: {errors:#?}",
            input.name,
            report.error_count()
        );
        eprintln!(
            "{}: {} bytes, {} entries, 0 errors, {} other issues",
            input.name,
            input.bytes.len(),
            input.entries,
            report.issues.len()
        );

        let mut group = c.benchmark_group(format!("validate_{}", input.name));
        group.throughput(Throughput::Bytes(input.bytes.len() as u64));
        if input.entries >= 10_000 {
            // Seconds per iteration at 100k: the same iteration count per
            // sample, and few samples.
            group.sampling_mode(SamplingMode::Flat);
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(if input.entries >= 100_000 {
                40
            } else {
                10
            }));
        }
        group.bench_function("parse_and_validate", |b| {
            b.iter(|| {
                let resource = ReceivedResource::parse(black_box(input.bytes.clone())).unwrap();
                validator.validate_pushed_document(&resource, &[IPS_BUNDLE])
            })
        });
        group.bench_function("validate_parsed", |b| {
            b.iter(|| validator.validate_pushed_document(black_box(&resource), &[IPS_BUNDLE]))
        });
        group.finish();
    }
}

criterion_group!(benches, validate);
criterion_main!(benches);
