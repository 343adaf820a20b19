//! Implied profiles: the R4 vital-signs profile an Observation must meet
//! because of its code, whether or not it claims it.
//!
//! R4 observation-vitalsigns.html: "If implementations use this code
//! [LOINC/SNOMED CT vital-sign code] they SHALL conform to the profile".
//! The codes, the order in which they are tried and the profile each one
//! selects are those of Java
//! `BasePolicyAdvisorForFullValidation.getImpliedProfilesForObservation`
//! (hapifhir/org.hl7.fhir.core, org.hl7.fhir.validation), called from
//! `InstanceValidator` for every Observation (`getImpliedProfilesForResource`):
//! the first group with a matching coding wins, LOINC groups before SNOMED CT.

use ehds_fhir::Node;

const LOINC: &str = "http://loinc.org";
const SCT: &str = "http://snomed.info/sct";
const SD: &str = "http://hl7.org/fhir/StructureDefinition/";

/// (system, codes, profile id under `SD`), in Java's order.
const GROUPS: &[(&str, &[&str], &str)] = &[
    (LOINC, &["85353-1"], "vitalspanel"),
    (
        LOINC,
        &[
            "9279-1", "76170-0", "76172-6", "76171-8", "19840-8", "33438-3", "76270-8", "11291-2",
        ],
        "resprate",
    ),
    (
        LOINC,
        &[
            "60978-4", "73795-7", "73799-9", "76476-1", "76477-9", "8867-4", "8889-8", "8890-6",
            "8891-4", "8892-2", "8893-0", "40443-4", "55425-3", "68999-2", "11328-2", "69000-8",
            "8886-4",
        ],
        "heartrate",
    ),
    (
        LOINC,
        &[
            "2708-6", "19224-5", "20564-1", "2709-4", "2710-2", "2713-6", "51733-4", "59408-5",
            "59417-6", "89276-0", "97549-0",
        ],
        "oxygensat",
    ),
    (
        LOINC,
        &[
            "8310-5", "60834-9", "60835-6", "60836-4", "60838-0", "60955-2", "61009-7", "75539-7",
            "75987-8", "76010-8", "76011-6", "76278-1", "8309-7", "8328-7", "8329-5", "8330-3",
            "8331-1", "8332-9", "8333-7", "8334-5", "91371-5", "98657-0", "98663-8",
        ],
        "bodytemp",
    ),
    (
        LOINC,
        &["8302-2", "3137-7", "3138-5", "8306-3", "8308-9"],
        "bodyheight",
    ),
    (LOINC, &["9843-4", "8287-5"], "headcircum"),
    (
        LOINC,
        &[
            "29463-7", "3141-9", "3142-7", "75292-3", "79348-9", "8350-1", "8351-9",
        ],
        "bodyweight",
    ),
    (LOINC, &["39156-5", "59574-4", "89270-3"], "bmi"),
    (
        LOINC,
        &[
            "85354-9", "35094-2", "8459-0", "76534-7", "55284-4", "8480-6",
        ],
        "bp",
    ),
    (SCT, &["46680005"], "vitalspanel"),
    (SCT, &["86290005", "271625008", "271306003"], "bp"),
    (
        SCT,
        &[
            "271306003",
            "249043002",
            "444981005",
            "399017001",
            "251670001",
            "429525003",
            "429614003",
        ],
        "heartrate",
    ),
    (
        SCT,
        &[
            "103228002",
            "442349007",
            "442476006",
            "442440005",
            "431314004",
            "442734002",
            "713194001",
        ],
        "oxygensat",
    ),
    (
        SCT,
        &[
            "386725007",
            "276885007",
            "300076005",
            "1222808002",
            "364246006",
            "307047009",
            "708499008",
            "431598003",
            "698831002",
            "698832009",
            "415882003",
            "415974002",
            "415929009",
            "415945006",
        ],
        "bodytemp",
    ),
    (
        SCT,
        &[
            "1153637007",
            "1162419008",
            "50373000",
            "1162418000",
            "1230278008",
            "1162392001",
            "1162417005",
        ],
        "bodyheight",
    ),
    (
        SCT,
        &["363812007", "169876006", "1269262007", "363811000"],
        "headcircum",
    ),
    (
        SCT,
        &[
            "363811000",
            "60621009",
            "735395000",
            "425024002",
            "424927000",
            "784399000",
            "1162416001",
            "1162415002",
        ],
        "bodyweight",
    ),
    (SCT, &["60621009"], "bmi"),
    (
        SCT,
        &[
            "251076008",
            "163033001",
            "163035008",
            "386534000",
            "386536003",
            "271649006",
            "271650006",
            "407556006",
            "407554009",
            "716579001",
            "399304008",
        ],
        "bp",
    ),
];

/// The canonical URL of the vital-signs profile the Observation `node`
/// implies by its `code`, if any (Java tries each group on every coding).
pub(super) fn vital_signs_profile(node: &Node) -> Option<String> {
    let codings = node.get("code")?.get("coding")?.items();
    let has = |system: &str, codes: &[&str]| {
        codings.iter().any(|coding| {
            coding.get("system").and_then(Node::as_str) == Some(system)
                && coding
                    .get("code")
                    .and_then(Node::as_str)
                    .is_some_and(|code| codes.contains(&code))
        })
    };
    GROUPS
        .iter()
        .find(|(system, codes, _)| has(system, codes))
        .map(|(_, _, id)| format!("{SD}{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(system: &str, code: &str) -> Node {
        let text = format!(
            r#"{{"resourceType":"Observation","code":{{"coding":[{{"system":"http://example.org","code":"x"}},{{"system":"{system}","code":"{code}"}}]}}}}"#
        );
        ehds_fhir::json::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn codes_select_the_profile_java_implies() {
        assert_eq!(
            vital_signs_profile(&observation(SCT, "276885007")).as_deref(),
            Some("http://hl7.org/fhir/StructureDefinition/bodytemp")
        );
        assert_eq!(
            vital_signs_profile(&observation(LOINC, "29463-7")).as_deref(),
            Some("http://hl7.org/fhir/StructureDefinition/bodyweight")
        );
        // 271306003 is in Java's bp group (tried first) and heart-rate group.
        assert_eq!(
            vital_signs_profile(&observation(SCT, "271306003")).as_deref(),
            Some("http://hl7.org/fhir/StructureDefinition/bp")
        );
        assert_eq!(vital_signs_profile(&observation(LOINC, "1234-5")), None);
    }
}
