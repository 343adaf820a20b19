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

use ehds_fhir::Node;
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
    if !has_control_byte(text.as_bytes()) {
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

/// Whether `bytes` holds a byte below 0x20 other than tab, line feed and
/// carriage return. Every primitive value is scanned (narrative divs of
/// kilobytes too), so eight bytes at a time: a word with no byte below
/// 0x20 is passed over at once (`(x - 0x20…) & !x & 0x80…` is non-zero
/// exactly when some byte is below 0x20), and only a word with one (a line
/// break, usually) is looked at byte by byte.
fn has_control_byte(bytes: &[u8]) -> bool {
    const LOW: u64 = u64::from_ne_bytes([0x20; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let is_control = |b: u8| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r');
    let mut words = bytes.chunks_exact(8);
    for word in words.by_ref() {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let x = u64::from_ne_bytes(eight);
        if x.wrapping_sub(LOW) & !x & HIGH != 0 && word.iter().any(|&b| is_control(b)) {
            return true;
        }
    }
    words.remainder().iter().any(|&b| is_control(b))
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
    fn the_word_scan_finds_what_a_byte_scan_finds() {
        let naive = |bytes: &[u8]| {
            bytes
                .iter()
                .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
        };
        // Every byte value at every place of words and remainders, beside
        // neighbours that borrow (0x00, 0x20) or not (0xff, 'a').
        for len in 1..=19 {
            for at in 0..len {
                for fill in [b'a', 0x20, 0x00, 0xff, b'\n'] {
                    for b in 0..=255u8 {
                        let mut bytes = vec![fill; len];
                        if let Some(slot) = bytes.get_mut(at) {
                            *slot = b;
                        }
                        assert_eq!(has_control_byte(&bytes), naive(&bytes), "{bytes:?}");
                    }
                }
            }
        }
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

/// Longest `string` value accepted: 1 MB, counted as Java counts it, in
/// UTF-16 code units (R4 datatypes.html#string: "strings SHALL NOT exceed
/// 1MB in size"; Java `InstanceValidator.checkPrimitive`, `if
/// (type.equalsIgnoreCase("string") && e.hasPrimitiveValue())` … `rule(…,
/// e.primitiveValue().length() <= 1048576,
/// TYPE_SPECIFIC_CHECKS_DT_STRING_LENGTH)`).
pub const MAX_LENGTH: usize = 1_048_576;

/// Whether `text`, a value of `fhir_type`, is over the 1 MB limit. Java
/// holds only values whose element type is `string` to it (the test above
/// sits in the `string` branch of `InstanceValidator.checkPrimitive`): a
/// `base64Binary` (an attached PDF), `markdown`, `uri` or `code` of any
/// length passes; a profile's `maxLength` is a separate rule
/// (`TYPE_SPECIFIC_CHECKS_DT_PRIMITIVE_LENGTH`). The UTF-16 count is taken
/// only past `MAX_LENGTH` bytes: a text of n bytes has at most n UTF-16
/// units.
#[inline]
pub fn over_max_length(fhir_type: &str, text: &str) -> bool {
    text.len() > MAX_LENGTH
        && fhir_type.eq_ignore_ascii_case("string")
        && text.encode_utf16().count() > MAX_LENGTH
}

/// The number of bytes `data` decodes to when it is base64 (whitespace
/// ignored, as XML-derived base64 may wrap); `None` when it is not.
pub fn base64_decoded_len(data: &str) -> Option<u64> {
    let mut symbols: u64 = 0;
    let mut padding: u64 = 0;
    for b in data.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' if padding == 0 => symbols += 1,
            b'=' => padding += 1,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => return None,
        }
    }
    let total = symbols.checked_add(padding)?;
    if total % 4 != 0 || padding > 2 {
        return None;
    }
    (total / 4).checked_mul(3)?.checked_sub(padding)
}

/// Whether `uri` is absolute: an RFC 3986 scheme followed by `:`.
pub fn is_absolute_uri(uri: &str) -> bool {
    uri.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    })
}

/// How a value compares with a `minValue[x]`/`maxValue[x]` bound, when
/// that is decidable offline: numbers (integer, decimal, …), dates and times
/// of the same precision (compared as text, which orders ISO 8601 values of
/// one precision and time zone form), and Quantities with the same system
/// whose UCUM codes are the same unit or a metric prefix of one of `g`, `L`,
/// `l`, `mol` apart. `None` otherwise (a duration bound on a date, units
/// that need full UCUM), which is not reported.
pub fn compare_bound(value: &Node, bound: &Node) -> Option<std::cmp::Ordering> {
    match (&value.value, &bound.value) {
        (Json::Number(a), Json::Number(b)) => {
            a.parse::<f64>().ok()?.partial_cmp(&b.parse::<f64>().ok()?)
        }
        (Json::String(a), Json::String(b)) => {
            let comparable = a.len() == b.len() && (a.ends_with('Z') == b.ends_with('Z'));
            comparable.then(|| a.as_ref().cmp(b.as_ref()))
        }
        (Json::Object(_), Json::Object(_)) => {
            let number = |n: &Node, key: &str| match n.get(key).map(|v| &v.value) {
                Some(Json::Number(text)) => text.parse::<f64>().ok(),
                _ => None,
            };
            let text = |n: &Node, key: &str| match n.get(key).map(|v| &v.value) {
                Some(Json::String(text)) => Some(text.to_string()),
                _ => None,
            };
            if text(value, "system") != text(bound, "system") {
                return None;
            }
            let (a, b) = (number(value, "value")?, number(bound, "value")?);
            let (ua, ub) = (text(value, "code")?, text(bound, "code")?);
            let (base_a, fa) = metric(&ua)?;
            let (base_b, fb) = metric(&ub)?;
            (base_a == base_b).then_some(())?;
            (a * fa).partial_cmp(&(b * fb))
        }
        _ => None,
    }
}

/// How a `date`, `dateTime` or `instant` value compares with a
/// `minValue[x]`/`maxValue[x]` given as a Duration, a time relative to
/// `now` (R4 ElementDefinition.minValue[x]: "For the date/dateTime/instant
/// values, the type of minValue[x] SHALL be either the same, or a Duration
/// which specifies a relative time limit to the current time. The duration
/// value is positive, and is subtracted from the current clock to determine
/// the minimum allowable value"; maxValue[x]: "… added to the current
/// clock …"; fhir-test-cases `toplevel-minvalueduration-*` and
/// `toplevel-maxvalueduration-*`, where Java reports a birth date more than
/// 100 years ago, or more than 10 years ahead, as one error; the Java
/// source held for reference, `InstanceValidator.checkPrimitive` at
/// 001a37c, has no date bound check yet, so the rule follows the R4 text).
///
/// `minimum` says which bound it is (now minus or plus the duration);
/// `now_ms` is the clock, in milliseconds since 1970 UTC. Whole years (`a`)
/// and months (`mo`) are counted on the calendar, as a profile's author
/// means them (a birth date at most 100 years ago), not as UCUM's mean
/// Julian year; fractions of them use UCUM's mean lengths (a = 365.25 d,
/// mo = a/12), the other units their fixed lengths. The comparison is
/// FHIRPath's (<https://hl7.org/fhirpath/N1/#comparison>): a value whose
/// precision leaves the order open
/// (`1926` against 1926-12-06) is `None`, not reported, so no value the
/// bound could admit is refused. `None` too when the value is not a date or
/// date-time, or the bound not a Duration in a UCUM time unit.
pub fn compare_duration_bound(
    value: &Node,
    bound: &Node,
    minimum: bool,
    now_ms: i64,
) -> Option<std::cmp::Ordering> {
    use ehds_fhirpath::{Temporal, TimeUnit};
    let Json::String(text) = &value.value else {
        return None;
    };
    let value = Temporal::parse_datetime(text)?;
    let system = bound.get("system").and_then(Node::as_str);
    if system.is_some_and(|s| s != "http://unitsofmeasure.org") {
        return None;
    }
    let amount = match bound.get("value").map(|v| &v.value) {
        Some(Json::Number(n)) => n.parse::<f64>().ok()?,
        _ => return None,
    };
    // UCUM time units (a = 365.25 d, mo = a/12), for amounts that are not
    // whole numbers of the unit.
    let (unit, unit_ms) = match bound.get("code").and_then(Node::as_str)? {
        "a" => (TimeUnit::Year, 31_557_600_000.0),
        "mo" => (TimeUnit::Month, 2_629_800_000.0),
        "wk" => (TimeUnit::Week, 604_800_000.0),
        "d" => (TimeUnit::Day, 86_400_000.0),
        "h" => (TimeUnit::Hour, 3_600_000.0),
        "min" => (TimeUnit::Minute, 60_000.0),
        "s" => (TimeUnit::Second, 1000.0),
        "ms" => (TimeUnit::Millisecond, 1.0),
        _ => return None,
    };
    let signed = if minimum { -amount } else { amount };
    let now = Temporal::from_unix_millis(now_ms);
    let limit = if signed.fract() == 0.0 && signed.abs() < 1e15 {
        now.add(signed as i64, unit)?
    } else {
        let ms = signed * unit_ms;
        if !ms.is_finite() || ms.abs() >= 1e15 {
            return None;
        }
        now.add(ms as i64, TimeUnit::Millisecond)?
    };
    value.compare(&limit)
}

/// A UCUM code as (base unit, factor): the code itself with factor 1, or a
/// metric prefix (`k`, `d`, `c`, `m`, `u`, `n`) on `g`, `L`, `l` or `mol`.
fn metric(code: &str) -> Option<(&str, f64)> {
    for base in ["g", "L", "l", "mol"] {
        if code == base {
            return Some((base, 1.0));
        }
        if let Some(prefix) = code.strip_suffix(base) {
            let factor = match prefix {
                "k" => 1e3,
                "d" => 1e-1,
                "c" => 1e-2,
                "m" => 1e-3,
                "u" => 1e-6,
                "n" => 1e-9,
                _ => continue,
            };
            return Some((base, factor));
        }
    }
    Some((code, 1.0))
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// `json` parsed as the value of an element.
    fn node(json: &str) -> Node {
        let wrapped = format!("{{\"resourceType\":\"X\",\"v\":{json}}}");
        ehds_fhir::json::parse(wrapped.as_bytes())
            .unwrap()
            .get("v")
            .unwrap()
            .clone()
    }

    #[test]
    fn bounds() {
        use std::cmp::Ordering::{Greater, Less};
        let kg = |v: &str| {
            node(&format!(
                r#"{{"value":{v},"system":"http://unitsofmeasure.org","code":"kg"}}"#
            ))
        };
        let g = |v: &str| {
            node(&format!(
                r#"{{"value":{v},"system":"http://unitsofmeasure.org","code":"g"}}"#
            ))
        };
        assert_eq!(compare_bound(&g("11000"), &kg("10")), Some(Greater));
        assert_eq!(compare_bound(&g("-1"), &kg("0")), Some(Less));
        assert_eq!(compare_bound(&kg("-1"), &kg("0")), Some(Less));
        assert_eq!(compare_bound(&node("3"), &node("2.5")), Some(Greater));
        assert_eq!(
            compare_bound(&node(r#""2020-01-01""#), &node(r#""2021-01-01""#)),
            Some(Less)
        );
        assert_eq!(
            compare_bound(&node(r#""2020-01""#), &node(r#""2021-01-01""#)),
            None
        );
        let min = node(r#"{"value":1,"system":"http://unitsofmeasure.org","code":"min"}"#);
        assert_eq!(compare_bound(&min, &kg("0")), None);
    }

    #[test]
    fn duration_bounds_are_relative_to_now() {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let years = |n: &str| {
            node(&format!(
                r#"{{"value":{n},"unit":"a","system":"http://unitsofmeasure.org","code":"a"}}"#
            ))
        };
        // 2026-06-25T00:00:00Z.
        let now = 1_782_345_600_000;
        let birth = |d: &str| node(&format!("\"{d}\""));
        // Minimum: now minus 100 years, 1926-06-25.
        let min = |d: &str| compare_duration_bound(&birth(d), &years("100"), true, now);
        assert_eq!(min("1850-01-01"), Some(Less));
        assert_eq!(min("1950-01-01"), Some(Greater));
        assert_eq!(min("1926-06-24"), Some(Less));
        // A day, month or year that holds the limit leaves the order open.
        assert_eq!(min("1926-06-25"), None);
        assert_eq!(min("1926-06-25T00:00:00Z"), Some(Equal));
        assert_eq!(min("1926"), None);
        assert_eq!(min("1926-06"), None);
        assert_eq!(min("1925"), Some(Less));
        // Maximum: now plus 10 years, 2036-06-25.
        let max = |d: &str| compare_duration_bound(&birth(d), &years("10"), false, now);
        assert_eq!(max("2100-01-01"), Some(Greater));
        assert_eq!(max("2020-01-01"), Some(Less));
        assert_eq!(max("2036-06-25"), None);
        assert_eq!(max("2036-06-24T23:00:00Z"), Some(Less));
        assert_eq!(max("2036-06-25T01:00:00+02:00"), Some(Less));
        assert_eq!(max("2036-06-25T10:00:00+02:00"), Some(Greater));
        // Fractions of a unit, other units, and what is not a Duration.
        let half = node(r#"{"value":0.5,"system":"http://unitsofmeasure.org","code":"a"}"#);
        assert_eq!(
            compare_duration_bound(&birth("2026-03-01"), &half, true, now),
            Some(Greater)
        );
        let days = node(r#"{"value":2,"system":"http://unitsofmeasure.org","code":"d"}"#);
        assert_eq!(
            compare_duration_bound(&birth("2026-06-27T00:00:01Z"), &days, false, now),
            Some(Greater)
        );
        let kg = node(r#"{"value":2,"system":"http://unitsofmeasure.org","code":"kg"}"#);
        assert_eq!(
            compare_duration_bound(&birth("2026-06-27"), &kg, false, now),
            None
        );
        let other = node(r#"{"value":2,"system":"http://example.org/units","code":"d"}"#);
        assert_eq!(
            compare_duration_bound(&birth("2026-06-27"), &other, false, now),
            None
        );
        assert_eq!(compare_duration_bound(&node("3"), &days, false, now), None);
        assert_eq!(
            compare_duration_bound(&birth("10:00:00"), &days, false, now),
            None
        );
    }

    #[test]
    fn only_strings_are_held_to_one_megabyte() {
        let long = "A".repeat(MAX_LENGTH + 4);
        assert!(over_max_length("string", &long));
        assert!(!over_max_length("base64Binary", &long));
        assert!(!over_max_length("markdown", &long));
        assert!(!over_max_length("string", &long[..MAX_LENGTH]));
        // 2 bytes per character in UTF-8, 1 UTF-16 unit: Java counts units.
        let accented = "é".repeat(MAX_LENGTH / 2 + 1);
        assert!(accented.len() > MAX_LENGTH);
        assert!(!over_max_length("string", &accented));
    }

    #[test]
    fn base64_lengths_and_absolute_uris() {
        assert_eq!(base64_decoded_len("SGVsbG8gV29ybGQh"), Some(12));
        assert_eq!(base64_decoded_len("SGVsbG8="), Some(5));
        assert_eq!(base64_decoded_len("SGVs\nbG8="), Some(5));
        assert_eq!(base64_decoded_len(""), Some(0));
        assert_eq!(base64_decoded_len("SGVsbG8"), None);
        assert_eq!(base64_decoded_len("SG=sbG8="), None);
        assert!(is_absolute_uri("http://loinc.org"));
        assert!(is_absolute_uri("urn:oid:1.2.3"));
        assert!(!is_absolute_uri("loinc"));
        assert!(!is_absolute_uri("/CodeSystem/x"));
        assert!(!is_absolute_uri("1:2"));
    }
}
