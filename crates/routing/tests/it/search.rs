//! Search parameter parsing and relay paths, table by table, hostile
//! inputs included.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ehds_routing::search::{
    BundleRead, DateParam, DocumentReferenceSearch, Gender, MAX_QUERY_BYTES, MAX_VALUE_BYTES,
    MedicationRequestSearch, MedicationRequestStatus, NcpehRequest, PatientSearch, RefusalKind,
    SearchRefusal, TokenParam,
};

const SSIN: &str = "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin";

fn token(system: &str, value: &str) -> TokenParam {
    TokenParam {
        system: system.into(),
        value: value.into(),
    }
}

/// (parameter, kind) pairs of a refusal list, for compact expectations.
fn kinds(refusals: &[SearchRefusal]) -> Vec<(String, RefusalKind)> {
    refusals
        .iter()
        .map(|r| (r.parameter.clone(), r.kind.clone()))
        .collect()
}

#[test]
fn patient_search_accepts_the_supported_forms() {
    let cases: Vec<(&str, PatientSearch)> = vec![
        (
            "identifier=urn:oid:1.3.182.4.4|1998041799999",
            PatientSearch {
                identifier: token("urn:oid:1.3.182.4.4", "1998041799999"),
                name: None,
                birthdate: None,
                gender: None,
                elements: None,
            },
        ),
        (
            // Percent-encoded separators mean the same (search.html#escaping).
            "?identifier=https%3A%2F%2Fwww.ehealth.fgov.be%2Fstandards%2Ffhir%2Fcore%2FNamingSystem%2Fssin%7C12345678901&name=Lux%20Brennard&birthdate=1998-04-17&gender=female",
            PatientSearch {
                identifier: token(SSIN, "12345678901"),
                name: Some("Lux Brennard".into()),
                birthdate: Some(DateParam::Day(1998, 4, 17)),
                gender: Some(Gender::Female),
                elements: None,
            },
        ),
        (
            // Parameter order does not matter; eq prefix; year-month; coded gender.
            "gender=http://hl7.org/fhir/administrative-gender|other&birthdate=eq1998-04&identifier=urn:oid:1.2|x",
            PatientSearch {
                identifier: token("urn:oid:1.2", "x"),
                name: None,
                birthdate: Some(DateParam::Month(1998, 4)),
                gender: Some(Gender::Other),
                elements: None,
            },
        ),
        (
            // Empty parameters are ignored (search.html#errors); `+` is a literal plus.
            "identifier=urn:oid:1.2|a+b&name=&&gender=&birthdate=2000",
            PatientSearch {
                identifier: token("urn:oid:1.2", "a+b"),
                name: None,
                birthdate: Some(DateParam::Year(2000)),
                gender: None,
                elements: None,
            },
        ),
        (
            // FHIR escapes: \| \, \$ \\ are literal.
            r"identifier=urn:oid:1.2|a\|b\,c\$d\\e&name=O\,Brien$Jr",
            PatientSearch {
                identifier: token("urn:oid:1.2", r"a|b,c$d\e"),
                name: Some("O,Brien$Jr".into()),
                birthdate: None,
                gender: None,
                elements: None,
            },
        ),
        (
            // Escaped backslash in the percent-encoded form; UTF-8 names.
            "identifier=urn:oid:1.2%7Cv%5C%5C&name=Andr%C3%A9",
            PatientSearch {
                identifier: token("urn:oid:1.2", r"v\"),
                name: Some("André".into()),
                birthdate: None,
                gender: None,
                elements: None,
            },
        ),
        (
            "identifier=urn:oid:1.2|v&birthdate=2024-02-29",
            PatientSearch {
                identifier: token("urn:oid:1.2", "v"),
                name: None,
                birthdate: Some(DateParam::Day(2024, 2, 29)),
                gender: None,
                elements: None,
            },
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(PatientSearch::parse(query), Ok(expected), "{query}");
    }
}

/// `_elements` (search.html#elements): root element names of Patient, kept
/// in the resource's order, each once, relayed canonically; anything else
/// is a 400 naming the parameter.
#[test]
fn patient_search_takes_elements_for_data_minimisation() {
    let search =
        PatientSearch::parse("identifier=urn:oid:1.2|v&_elements=name,identifier,name%2CbirthDate")
            .unwrap();
    assert_eq!(
        search.elements.as_deref(),
        Some(&["identifier", "name", "birthDate"][..])
    );
    assert_eq!(
        search.relay_path(),
        "Patient?identifier=urn:oid:1.2%7Cv&_elements=identifier,name,birthDate"
    );
    assert_eq!(
        PatientSearch::parse(&search.relay_path()["Patient?".len()..]),
        Ok(search)
    );
    for refused in [
        "_elements=name,diagnosis",
        "_elements=Patient.name",
        "_elements=deceasedBoolean",
        "_elements=name,",
        "_elements:exact=name",
        "_elements=name&_elements=gender",
    ] {
        let refusals =
            PatientSearch::parse(&format!("identifier=urn:oid:1.2|v&{refused}")).unwrap_err();
        assert!(
            refusals
                .iter()
                .all(|r| r.parameter.starts_with("_elements")),
            "{refused}: {refusals:?}"
        );
        assert_eq!(refusals.len(), 1, "{refused}: {refusals:?}");
    }
}

#[test]
fn patient_search_refusals() {
    use RefusalKind::*;
    let id = "identifier=urn:oid:1.2|v";
    let date = |q: &str| format!("{id}&birthdate={q}");
    let cases: Vec<(String, Vec<(&str, RefusalKind)>)> = vec![
        ("".into(), vec![("identifier", Missing)]),
        ("name=x".into(), vec![("identifier", Missing)]),
        (
            "identifier=12345678901".into(),
            vec![("identifier", MissingSystem)],
        ),
        (
            "identifier=|12345678901".into(),
            vec![("identifier", MissingSystem)],
        ),
        (
            "identifier=%7C12345678901".into(),
            vec![("identifier", MissingSystem)],
        ),
        (
            "identifier=urn:oid:1.2|".into(),
            vec![("identifier", MissingValue)],
        ),
        (
            "identifier=urn:oid:1.2|a|b".into(),
            vec![(
                "identifier",
                Malformed {
                    expected: "system|value with one unescaped '|'",
                },
            )],
        ),
        (
            "identifier=urn:oid:1.2|a,urn:oid:1.2|b".into(),
            vec![("identifier", MultipleValues)],
        ),
        (
            "identifier=urn:oid:1.2|a%2Curn:oid:1.2|b".into(),
            vec![("identifier", MultipleValues)],
        ),
        (format!("{id}&{id}"), vec![("identifier", Repeated)]),
        (format!("{id}&name=a&name=b"), vec![("name", Repeated)]),
        (
            r"identifier=urn:oid:1.2|a\b".into(),
            vec![("identifier", InvalidEscape)],
        ),
        (
            r"identifier=urn:oid:1.2|a\".into(),
            vec![("identifier", InvalidEscape)],
        ),
        (
            "identifier=urn:oid:1.2|a%5C".into(),
            vec![("identifier", InvalidEscape)],
        ),
        (
            "identifier=urn:oid:1.2|%zz".into(),
            vec![("identifier", InvalidPercentEncoding)],
        ),
        (
            "identifier=urn:oid:1.2|%4".into(),
            vec![("identifier", InvalidPercentEncoding)],
        ),
        (
            "identifier=urn:oid:1.2|%".into(),
            vec![("identifier", InvalidPercentEncoding)],
        ),
        (
            "identifier=urn:oid:1.2|%FF%FE".into(),
            vec![("identifier", InvalidUtf8)],
        ),
        (
            "identifier=urn:oid:1.2|%C3".into(),
            vec![("identifier", InvalidUtf8)],
        ),
        (
            "identifier=urn:oid:1.2|%ED%A0%80".into(),
            vec![("identifier", InvalidUtf8)],
        ),
        (
            "identifier=urn:oid:1.2|a%00".into(),
            vec![("identifier", ControlCharacter)],
        ),
        (
            "identifier=urn:oid:1.2|a%0Ab".into(),
            vec![("identifier", ControlCharacter)],
        ),
        (
            "identifier=urn:oid:1.2|a%7F".into(),
            vec![("identifier", ControlCharacter)],
        ),
        (
            "identifier=urn:oid:1.2|a%C2%85".into(),
            vec![("identifier", ControlCharacter)],
        ),
        (format!("{id}&name=a%1Bb"), vec![("name", ControlCharacter)]),
        (format!("{id}&name=a,b"), vec![("name", MultipleValues)]),
        (
            format!("{id}&name={}", "x".repeat(MAX_VALUE_BYTES + 1)),
            vec![(
                "name",
                TooLong {
                    max: MAX_VALUE_BYTES,
                },
            )],
        ),
        (
            format!("{id}&name={}", "%41".repeat(MAX_VALUE_BYTES + 1)),
            vec![(
                "name",
                TooLong {
                    max: MAX_VALUE_BYTES,
                },
            )],
        ),
        (
            format!("{id}&name:exact=Eve"),
            vec![("name:exact", UnsupportedModifier)],
        ),
        (
            "identifier:of-type=urn:oid:1.2|v".into(),
            vec![
                ("identifier:of-type", UnsupportedModifier),
                ("identifier", Missing),
            ],
        ),
        (date("gt2000"), vec![("birthdate", UnsupportedPrefix)]),
        (date("le2000-01-01"), vec![("birthdate", UnsupportedPrefix)]),
        (
            date("2000-01-01T10:00:00Z"),
            vec![(
                "birthdate",
                Malformed {
                    expected: "a date YYYY, YYYY-MM or YYYY-MM-DD",
                },
            )],
        ),
        (
            date("2023-02-29"),
            vec![(
                "birthdate",
                Malformed {
                    expected: "a date YYYY, YYYY-MM or YYYY-MM-DD",
                },
            )],
        ),
        (
            date("1900-02-29"),
            vec![(
                "birthdate",
                Malformed {
                    expected: "a date YYYY, YYYY-MM or YYYY-MM-DD",
                },
            )],
        ),
        (
            date("2000-13"),
            vec![(
                "birthdate",
                Malformed {
                    expected: "a date YYYY, YYYY-MM or YYYY-MM-DD",
                },
            )],
        ),
        (
            date("2000-04-31"),
            vec![(
                "birthdate",
                Malformed {
                    expected: "a date YYYY, YYYY-MM or YYYY-MM-DD",
                },
            )],
        ),
        (
            date("0000"),
            vec![(
                "birthdate",
                Malformed {
                    expected: "a date YYYY, YYYY-MM or YYYY-MM-DD",
                },
            )],
        ),
        (
            date("98-04-17"),
            vec![(
                "birthdate",
                Malformed {
                    expected: "a date YYYY, YYYY-MM or YYYY-MM-DD",
                },
            )],
        ),
        (
            date("1998-4-17"),
            vec![(
                "birthdate",
                Malformed {
                    expected: "a date YYYY, YYYY-MM or YYYY-MM-DD",
                },
            )],
        ),
        (
            date("1998-04-17-"),
            vec![(
                "birthdate",
                Malformed {
                    expected: "a date YYYY, YYYY-MM or YYYY-MM-DD",
                },
            )],
        ),
        (date("1998,1999"), vec![("birthdate", MultipleValues)]),
        (
            format!("{id}&gender=M"),
            vec![(
                "gender",
                Malformed {
                    expected: "male, female, other or unknown",
                },
            )],
        ),
        (
            format!("{id}&gender=Male"),
            vec![(
                "gender",
                Malformed {
                    expected: "male, female, other or unknown",
                },
            )],
        ),
        (
            format!("{id}&gender=male,female"),
            vec![("gender", MultipleValues)],
        ),
    ];
    for (query, expected) in cases {
        let refusals = PatientSearch::parse(&query).expect_err(&query);
        let expected: Vec<(String, RefusalKind)> = expected
            .into_iter()
            .map(|(p, k)| (p.to_owned(), k))
            .collect();
        assert_eq!(kinds(&refusals), expected, "{query}");
    }
}

#[test]
fn unknown_parameters_are_refused_and_listed() {
    let refusals =
        PatientSearch::parse("identifier=urn:oid:1.2|v&_count=10&family=x&_format=json&_count=1")
            .unwrap_err();
    let names: Vec<&str> = refusals.iter().map(|r| r.parameter.as_str()).collect();
    assert_eq!(names, ["_count", "_format", "family"]);
    for r in &refusals {
        assert!(matches!(r.kind, RefusalKind::UnknownParameter { .. }));
        assert!(
            r.message().contains("identifier, name, birthdate, gender"),
            "{}",
            r.message()
        );
        assert_eq!(r.location(), format!("http.{}", r.parameter));
    }
    // The other resources list their own parameters.
    let r = DocumentReferenceSearch::parse("patient.identifier=urn:oid:1.2|v&patient=Patient/1")
        .unwrap_err();
    assert_eq!(r.len(), 1);
    assert!(
        r[0].message()
            .contains("patient.identifier, type, date, contenttype, category, creation")
    );
    // The chained form is `patient.identifier`, not `patient:Patient.identifier`.
    let r = DocumentReferenceSearch::parse("patient:Patient.identifier=urn:oid:1.2|v").unwrap_err();
    assert_eq!(
        kinds(&r),
        [
            (
                "patient:Patient.identifier".to_owned(),
                RefusalKind::UnknownParameter {
                    supported: &[
                        "patient.identifier",
                        "type",
                        "date",
                        "contenttype",
                        "category",
                        "creation"
                    ]
                }
            ),
            ("patient.identifier".to_owned(), RefusalKind::Missing),
        ]
    );
}

#[test]
fn refusal_messages_never_echo_values() {
    let secret = "98765432109";
    let queries = [
        format!("identifier={secret}"),
        format!("identifier=urn:oid:1.2|{secret}%zz"),
        format!("identifier=urn:oid:1.2|{secret}%FF"),
        format!("identifier=urn:oid:1.2|{secret}%00"),
        format!("identifier=urn:oid:1.2|{secret},urn:oid:1.2|1"),
        format!(r"identifier=urn:oid:1.2|{secret}\x"),
        format!("identifier=urn:oid:1.2|{secret}&birthdate=gt{secret}"),
        format!("identifier=urn:oid:1.2|1&gender={secret}"),
        format!("identifier=urn:oid:1.2|1&name={}", secret.repeat(40)),
    ];
    for query in queries {
        for r in PatientSearch::parse(&query).unwrap_err() {
            assert!(!r.message().contains(secret), "{query}: {}", r.message());
            assert!(!r.parameter.contains(secret), "{query}");
        }
    }
}

#[test]
fn hostile_queries_are_bounded() {
    // Longer than the limit: one refusal, nothing else parsed.
    let long = format!("identifier=urn:oid:1.2|{}", "1".repeat(MAX_QUERY_BYTES));
    let r = PatientSearch::parse(&long).unwrap_err();
    assert_eq!(
        kinds(&r),
        [(
            String::new(),
            RefusalKind::QueryTooLong {
                max: MAX_QUERY_BYTES
            }
        )]
    );
    assert_eq!(r[0].location(), "http");
    // Many empty pairs are ignored; many unknown ones are each listed once.
    let amp = format!(
        "identifier=urn:oid:1.2|v{}",
        "&".repeat(MAX_QUERY_BYTES - 30)
    );
    assert!(PatientSearch::parse(&amp).is_ok());
    let unknown = format!("identifier=urn:oid:1.2|v{}", "&x=1".repeat(500));
    let r = PatientSearch::parse(&unknown).unwrap_err();
    assert_eq!(r.len(), 1);
    // An over-long or undecodable parameter name.
    let r = PatientSearch::parse(&format!("{}=1&identifier=urn:oid:1.2|v", "n".repeat(100)))
        .unwrap_err();
    assert_eq!(r.len(), 1);
    assert!(matches!(r[0].kind, RefusalKind::TooLong { .. }));
    assert!(r[0].parameter.len() <= 64);
    let r = PatientSearch::parse("na%FFme=1&identifier=urn:oid:1.2|v").unwrap_err();
    assert_eq!(
        kinds(&r),
        [("na%FFme".to_owned(), RefusalKind::InvalidUtf8)]
    );
    let r = PatientSearch::parse("%0A=1&identifier=urn:oid:1.2|v").unwrap_err();
    assert_eq!(
        kinds(&r),
        [("%0A".to_owned(), RefusalKind::ControlCharacter)]
    );
    // Raw non-ASCII and raw control characters in the string handed over.
    assert_eq!(
        PatientSearch::parse("identifier=urn:oid:1.2|v&name=Zoë")
            .unwrap()
            .name
            .as_deref(),
        Some("Zoë")
    );
    let r = PatientSearch::parse("identifier=urn:oid:1.2|v\r\nX-Injected: 1").unwrap_err();
    assert_eq!(
        kinds(&r),
        [("identifier".to_owned(), RefusalKind::ControlCharacter)]
    );
}

#[test]
fn document_reference_search() {
    assert_eq!(
        DocumentReferenceSearch::parse(
            "patient.identifier=urn:oid:1.3.182.4.4|1998041799999&type=http://loinc.org|60591-5"
        ),
        Ok(DocumentReferenceSearch {
            patient_identifier: token("urn:oid:1.3.182.4.4", "1998041799999"),
            type_: Some(token("http://loinc.org", "60591-5")),
            date: Vec::new(),
            contenttype: None,
            category: None,
            creation: Vec::new(),
        })
    );
    assert_eq!(
        DocumentReferenceSearch::parse("patient.identifier=urn:oid:1.2|v")
            .unwrap()
            .type_,
        None
    );
    use RefusalKind::*;
    for (query, expected) in [
        (
            "type=http://loinc.org|60591-5",
            vec![("patient.identifier", Missing)],
        ),
        (
            "patient.identifier=v",
            vec![("patient.identifier", MissingSystem)],
        ),
        (
            "patient.identifier=urn:oid:1.2|v&type=60591-5",
            vec![("type", MissingSystem)],
        ),
        (
            "patient.identifier=urn:oid:1.2|v&type=|60591-5",
            vec![("type", MissingSystem)],
        ),
        (
            "patient.identifier=urn:oid:1.2|v&type=http://loinc.org|60591-5,http://loinc.org|57833-6",
            vec![("type", MultipleValues)],
        ),
        (
            "patient.identifier=v&type=60591-5&identifier=x",
            vec![
                (
                    "identifier",
                    UnknownParameter {
                        supported: &[
                            "patient.identifier",
                            "type",
                            "date",
                            "contenttype",
                            "category",
                            "creation",
                        ],
                    },
                ),
                ("patient.identifier", MissingSystem),
                ("type", MissingSystem),
            ],
        ),
    ] {
        let refusals = DocumentReferenceSearch::parse(query).expect_err(query);
        let expected: Vec<(String, RefusalKind)> = expected
            .into_iter()
            .map(|(p, k)| (p.to_owned(), k))
            .collect();
        assert_eq!(kinds(&refusals), expected, "{query}");
    }
}

#[test]
fn medication_request_search() {
    use MedicationRequestStatus::*;
    let parse = |q: &str| MedicationRequestSearch::parse(q);
    assert_eq!(
        parse("patient.identifier=urn:oid:1.2|v"),
        Ok(MedicationRequestSearch {
            patient_identifier: token("urn:oid:1.2", "v"),
            status: vec![],
        })
    );
    assert_eq!(
        parse("patient.identifier=urn:oid:1.2|v&status=on-hold,active,active")
            .unwrap()
            .status,
        [Active, OnHold]
    );
    assert_eq!(
        parse("status=entered-in-error&patient.identifier=urn:oid:1.2|v")
            .unwrap()
            .status,
        [EnteredInError]
    );
    let r = parse("patient.identifier=urn:oid:1.2|v&status=active,bogus").unwrap_err();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].parameter, "status");
    assert!(r[0].message().contains("on-hold"));
    assert!(!r[0].message().contains("bogus"));
    let r = parse("patient.identifier=urn:oid:1.2|v&status=active,").unwrap_err();
    assert_eq!(r[0].parameter, "status");
}

#[test]
fn bundle_read() {
    assert_eq!(
        BundleRead::parse("a-b.C9", ""),
        Ok(BundleRead {
            id: "a-b.C9".into()
        })
    );
    assert_eq!(BundleRead::parse("x", "?").unwrap().id, "x");
    for (id, query) in [
        ("", ""),
        ("a/b", ""),
        ("a%2Fb", ""),
        ("a_b", ""),
        (&*"x".repeat(65), ""),
        ("ok", "_format=json"),
    ] {
        assert!(BundleRead::parse(id, query).is_err(), "{id} {query}");
    }
}

#[test]
fn relay_paths_are_canonical() {
    let cases: Vec<(NcpehRequest, &str)> = vec![
        (
            NcpehRequest::Patient(
                PatientSearch::parse(
                    "gender=female&birthdate=eq1998-04-17&name=Lux%20Brennard&identifier=urn:oid:1.3.182.4.4|1998041799999",
                )
                .unwrap(),
            ),
            "Patient?identifier=urn:oid:1.3.182.4.4%7C1998041799999&name=Lux%20Brennard&birthdate=1998-04-17&gender=female",
        ),
        (
            NcpehRequest::Patient(PatientSearch::parse(&format!("identifier={SSIN}|12345678901")).unwrap()),
            "Patient?identifier=https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin%7C12345678901",
        ),
        (
            // Literal separators are FHIR-escaped again, then percent-encoded;
            // `+`, `&`, `=`, `#`, `?` and non-ASCII never pass raw.
            NcpehRequest::Patient(
                PatientSearch::parse(r"identifier=urn:oid:1.2|a\|b\,c\$d\\e+f&name=O%26B%3D%23%3F%C3%A9%2B%20x").unwrap(),
            ),
            "Patient?identifier=urn:oid:1.2%7Ca%5C%7Cb%5C%2Cc%5C%24d%5C%5Ce%2Bf&name=O%26B%3D%23%3F%C3%A9%2B%20x",
        ),
        (
            NcpehRequest::DocumentReference(
                DocumentReferenceSearch::parse(
                    "type=http://loinc.org|60591-5&patient.identifier=urn:oid:1.3.182.4.4|1998041799999",
                )
                .unwrap(),
            ),
            "DocumentReference?patient.identifier=urn:oid:1.3.182.4.4%7C1998041799999&type=http://loinc.org%7C60591-5",
        ),
        (
            NcpehRequest::MedicationRequest(
                MedicationRequestSearch::parse("status=completed,active&patient.identifier=urn:oid:1.2|v").unwrap(),
            ),
            "MedicationRequest?patient.identifier=urn:oid:1.2%7Cv&status=active,completed",
        ),
        (
            NcpehRequest::MedicationRequest(
                MedicationRequestSearch::parse("patient.identifier=urn:oid:1.2|v").unwrap(),
            ),
            "MedicationRequest?patient.identifier=urn:oid:1.2%7Cv",
        ),
        (
            NcpehRequest::Bundle(BundleRead::parse("doc-1", "").unwrap()),
            "Bundle/doc-1",
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(request.relay_path(), expected);
    }
}

#[test]
fn relay_round_trips() {
    // What is relayed parses back to the same request at the peer.
    for query in [
        "identifier=urn:oid:1.2|a\\|b\\,c\\$d\\\\e+f&name=O%26B%3D%23%3F%C3%A9%2B%20x&gender=unknown&birthdate=2001",
        "identifier=http://x.example/ns|%E2%82%AC%20v&birthdate=1998-02",
    ] {
        let parsed = PatientSearch::parse(query).unwrap();
        let path = parsed.relay_path();
        let relayed = path.strip_prefix("Patient?").unwrap();
        assert_eq!(PatientSearch::parse(relayed).unwrap(), parsed, "{path}");
    }
    let d = DocumentReferenceSearch::parse("patient.identifier=urn:oid:1.2|v,\\,w&type=s|c")
        .unwrap_err();
    assert_eq!(d.len(), 1);
    let d =
        DocumentReferenceSearch::parse("patient.identifier=urn:oid:1.2|v\\,w&type=s|c").unwrap();
    let path = d.relay_path();
    assert_eq!(
        DocumentReferenceSearch::parse(path.strip_prefix("DocumentReference?").unwrap()).unwrap(),
        d
    );
    assert_eq!(
        NcpehRequest::DocumentReference(d).patient_identifier(),
        Some(&token("urn:oid:1.2", "v,w"))
    );
}

/// The NCPeH API's document search parameters beyond patient and type:
/// `date` and `creation` with prefixes (repeatable: a range), `contenttype`,
/// `category`; strict: anything malformed is refused, naming it.
#[test]
fn document_search_dates_content_type_and_category() {
    use ehds_routing::search::DatePrefix;
    let d = DocumentReferenceSearch::parse(
        "patient.identifier=urn:oid:1.2|v&date=ge2025-01&date=lt2026&contenttype=Application/PDF\
         &category=http://example.org/cs|Laboratory-Reports&creation=2025-03-04T10:00:00%2B01:00",
    )
    .unwrap();
    assert_eq!(d.date.len(), 2);
    assert_eq!(d.date[0].prefix, DatePrefix::Ge);
    assert_eq!(d.date[1].prefix, DatePrefix::Lt);
    assert_eq!(d.contenttype.as_deref(), Some("application/pdf"));
    assert_eq!(
        d.category,
        Some(token("http://example.org/cs", "Laboratory-Reports"))
    );
    // 2025-01-01T00:00Z and 2026-01-01T00:00Z, in microseconds.
    let (jan_2025, jan_2026) = (1_735_689_600_000_000_i64, 1_767_225_600_000_000_i64);
    assert_eq!(d.date[0].start_us, jan_2025);
    assert_eq!(d.date[1].start_us, jan_2026);
    assert!(d.date.iter().all(|b| b.matches(jan_2025)));
    assert!(!d.date.iter().all(|b| b.matches(jan_2025 - 1)));
    assert!(!d.date.iter().all(|b| b.matches(jan_2026)));
    // 10:00+01:00 is 09:00Z: that second, and no other.
    let creation = &d.creation[0];
    let nine_utc = 1_741_078_800_000_000_i64;
    assert_eq!(creation.prefix, DatePrefix::Eq);
    assert!(creation.matches(nine_utc) && creation.matches(nine_utc + 999_999));
    assert!(!creation.matches(nine_utc + 1_000_000));
    // Relayed canonically, and parsed back the same at the peer.
    let path = d.relay_path();
    assert_eq!(
        DocumentReferenceSearch::parse(path.strip_prefix("DocumentReference?").unwrap()).unwrap(),
        d,
        "{path}"
    );
    for (query, parameter) in [
        ("date=sa2025", "date"),
        ("date=2025-13", "date"),
        ("date=2025-01-01T10:00:00", "date"),
        ("date=2025-01T10:00:00Z", "date"),
        ("creation=ge2025-02-30", "creation"),
        ("contenttype=pdf", "contenttype"),
        ("category=Laboratory-Reports", "category"),
    ] {
        let refused =
            DocumentReferenceSearch::parse(&format!("patient.identifier=urn:oid:1.2|v&{query}"))
                .unwrap_err();
        assert_eq!(refused.len(), 1, "{query}");
        assert_eq!(refused[0].parameter, parameter, "{query}");
    }
    // One contenttype, one category.
    let refused = DocumentReferenceSearch::parse(
        "patient.identifier=urn:oid:1.2|v&contenttype=application/pdf&contenttype=text/plain",
    )
    .unwrap_err();
    assert_eq!(refused[0].kind, RefusalKind::Repeated);
}
