//! FHIR primitive values in JSON (<http://hl7.org/fhir/R4/datatypes.html#primitive>,
//! <http://hl7.org/fhir/R4/json.html#primitive>).
//!
//! | check | source |
//! | --- | --- |
//! | JSON kind: `boolean` → true/false; `integer`, `positiveInt`, `unsignedInt`, `decimal` → number; all others → string | R4 json.html §2.6.2 |
//! | the value matches the type's regex | the `http://hl7.org/fhir/StructureDefinition/regex` extension on `<type>.value` in the type's StructureDefinition (data, from `profiles/`) |
//! | `integer` is 32-bit signed; `positiveInt` ≥ 1; `unsignedInt` ≥ 0 | R4 datatypes.html §2.24.0.1 |
//! | dates name real calendar days (no 2023-02-30) | R4 datatypes.html (date, dateTime, instant: "valid dates") |
//! | no character below U+0020 other than tab, CR, LF: a warning for every primitive (an `id`'s or other type's regex may also refuse it: an error) | R4 datatypes.html#string ("Strings SHOULD not contain Unicode character points below 32, except for u0009 (horizontal tab), u0010 (carriage return) and u0013 (line feed)"); Java `InstanceValidator.checkPrimitive`, `I18nConstants.UNICODE_XML_BAD_CHARS` (warning, for every primitive type) |

use ehds_fhir::json::Json;

/// The JSON representation a primitive type takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// `true`/`false`.
    Boolean,
    /// A JSON number.
    Number,
    /// A JSON string.
    String,
}

/// The JSON kind of a FHIR primitive type.
pub fn json_kind(fhir_type: &str) -> JsonKind {
    match fhir_type {
        "boolean" => JsonKind::Boolean,
        "integer" | "positiveInt" | "unsignedInt" | "decimal" | "integer64" => JsonKind::Number,
        _ => JsonKind::String,
    }
}

/// The lexical text of a primitive value, if its JSON kind is right.
pub fn lexical<'a>(fhir_type: &str, value: &'a Json) -> Result<&'a str, String> {
    let expected = json_kind(fhir_type);
    match (expected, value) {
        (JsonKind::Boolean, Json::Bool(true)) => Ok("true"),
        (JsonKind::Boolean, Json::Bool(false)) => Ok("false"),
        (JsonKind::Number, Json::Number(n)) => Ok(n),
        (JsonKind::String, Json::String(s)) => Ok(s),
        (kind, _) => Err(format!(
            "a {fhir_type} must be a JSON {}, found {}",
            match kind {
                JsonKind::Boolean => "boolean",
                JsonKind::Number => "number",
                JsonKind::String => "string",
            },
            describe(value)
        )),
    }
}

fn describe(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// The control characters of `text` that FHIR strings SHOULD NOT contain
/// (below U+0020, other than tab, line feed and carriage return: R4
/// datatypes.html#string), each once, in order of first appearance. Java
/// reports them for every primitive type, as a warning
/// (`InstanceValidator.checkPrimitive`, `UNICODE_XML_BAD_CHARS`).
pub fn control_characters(text: &str) -> Vec<char> {
    let is_control = |c: char| c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r');
    if !text.bytes().any(|b| is_control(char::from(b))) {
        return Vec::new();
    }
    let mut found: Vec<char> = Vec::new();
    for c in text.chars().filter(|&c| is_control(c)) {
        if !found.contains(&c) {
            found.push(c);
        }
    }
    found
}

/// The warning for [`control_characters`]: the code points only, never the
/// value.
pub fn control_characters_message(found: &[char]) -> String {
    let list: Vec<String> = found
        .iter()
        .map(|&c| format!("U+{:04X}", u32::from(c)))
        .collect();
    format!(
        "the value contains the control character{} {}: FHIR strings should not contain characters below U+0020 other than tab, carriage return and line feed (FHIR R4 datatypes.html#string)",
        if found.len() == 1 { "" } else { "s" },
        list.join(", ")
    )
}

/// Checks beyond the regex: integer ranges and calendar dates.
pub fn semantic_check(fhir_type: &str, text: &str) -> Result<(), String> {
    match fhir_type {
        "integer" | "positiveInt" | "unsignedInt" => {
            let value: i64 = text
                .parse()
                .map_err(|_| format!("'{text}' is not a valid {fhir_type}"))?;
            let (low, high) = match fhir_type {
                "positiveInt" => (1, i64::from(i32::MAX)),
                "unsignedInt" => (0, i64::from(i32::MAX)),
                _ => (i64::from(i32::MIN), i64::from(i32::MAX)),
            };
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "{text} is out of range for {fhir_type} ({low}..{high})"
                ))
            }
        }
        "date" | "dateTime" | "instant" => check_calendar_day(text),
        _ => Ok(()),
    }
}

/// `YYYY-MM-DD…` names a real day (leap years included).
fn check_calendar_day(text: &str) -> Result<(), String> {
    let (Some(year), Some(month), Some(day)) = (
        text.get(0..4).and_then(|y| y.parse::<u32>().ok()),
        text.get(5..7).and_then(|m| m.parse::<u32>().ok()),
        text.get(8..10).and_then(|d| d.parse::<u32>().ok()),
    ) else {
        return Ok(()); // Partial dates (YYYY, YYYY-MM) are valid by the regex.
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if (1..=days).contains(&day) {
        Ok(())
    } else {
        Err(format!(
            "'{text}' is not a valid date: that month has {days} days"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert!(lexical("boolean", &Json::Bool(true)).is_ok());
        assert!(lexical("boolean", &Json::String("true".into())).is_err());
        assert!(lexical("decimal", &Json::Number("1.50".into())).is_ok());
        assert!(lexical("decimal", &Json::String("1.5".into())).is_err());
        assert!(lexical("date", &Json::Number("2020".into())).is_err());
    }

    #[test]
    fn control_characters_below_space_except_tab_cr_lf() {
        assert!(control_characters("plain text\twith\r\nbreaks").is_empty());
        assert_eq!(
            control_characters("a\u{0}b\u{1f}c\u{0}"),
            vec!['\u{0}', '\u{1f}']
        );
        // DEL and C1 controls are not below U+0020.
        assert!(control_characters("\u{7f}\u{85}").is_empty());
        assert_eq!(
            control_characters_message(&['\u{0}', '\u{1b}']),
            "the value contains the control characters U+0000, U+001B: FHIR strings should not contain characters below U+0020 other than tab, carriage return and line feed (FHIR R4 datatypes.html#string)"
        );
    }

    #[test]
    fn ranges_and_days() {
        assert!(semantic_check("integer", "2147483647").is_ok());
        assert!(semantic_check("integer", "2147483648").is_err());
        assert!(semantic_check("positiveInt", "0").is_err());
        assert!(semantic_check("unsignedInt", "0").is_ok());
        assert!(semantic_check("date", "2024-02-29").is_ok());
        assert!(semantic_check("date", "2023-02-29").is_err());
        assert!(semantic_check("dateTime", "2023-04-31T10:00:00Z").is_err());
        assert!(semantic_check("date", "2023-04").is_ok());
        assert!(semantic_check("date", "1900-02-29").is_err());
        assert!(semantic_check("date", "2000-02-29").is_ok());
    }
}
