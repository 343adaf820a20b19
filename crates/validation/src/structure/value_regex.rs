//! A primitive type's value regex (the `http://hl7.org/fhir/StructureDefinition/regex`
//! extension on `<type>.value` in the type's core StructureDefinition, R4
//! datatypes.html) as the walker tests it: the whole value must match.
//!
//! The regexes are written for Java, where `\s` and `\S` are ASCII classes
//! (a no-break space is not whitespace), so they are compiled without
//! Unicode classes, over bytes. Each is compiled once, at load, into a
//! fully built, anchored DFA, and a value is one pass over its bytes with
//! no search set-up (the walker tests a few hundred short values per
//! document, where a general regex engine's per-call preparation costs as
//! much as the match), jumping with memchr over runs of a state that
//! loops on all but at most three bytes (a `string` or `markdown` value
//! is one such run). A pattern whose DFA would be larger than
//! [`DFA_SIZE_LIMIT`] keeps the general engine (none of R4's does); both
//! give the same answer (the test below compares them on every R4
//! primitive pattern).

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::util::{start, syntax};
use regex_automata::{Anchored, MatchKind};

/// Largest DFA built for one pattern (bytes of transition table); R4's
/// largest (`dateTime`) needs a few tens of kilobytes.
pub(super) const DFA_SIZE_LIMIT: usize = 1 << 20;

/// A compiled value regex: the whole value must match `source`.
#[derive(Debug, Clone)]
pub(super) struct ValueRegex {
    /// The pattern as the StructureDefinition gives it (unanchored).
    source: String,
    engine: Engine,
}

#[derive(Debug, Clone)]
enum Engine {
    /// The anchored DFA and its start state.
    Dfa(
        Box<dense::DFA<Vec<u32>>>,
        regex_automata::util::primitives::StateID,
    ),
    /// `^(?:source)$` in the general engine, for a pattern too large for a DFA.
    Regex(regex::bytes::Regex),
}

impl ValueRegex {
    /// Compiles `source` (a pattern without anchors, matched against the
    /// whole value), or says why it does not compile.
    pub(super) fn new(source: &str) -> Result<Self, String> {
        let anchored = format!("^(?:{source})$");
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .start_kind(StartKind::Anchored)
                    .match_kind(MatchKind::All)
                    .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                    .determinize_size_limit(Some(DFA_SIZE_LIMIT.saturating_mul(4))),
            )
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .thompson(regex_automata::nfa::thompson::Config::new().utf8(false))
            .build(&anchored);
        let engine = match dfa {
            Ok(dfa) => {
                let start = dfa
                    .start_state(&start::Config::new().anchored(Anchored::Yes))
                    .map_err(|e| e.to_string())?;
                Engine::Dfa(Box::new(dfa), start)
            }
            Err(_) => Engine::Regex(
                regex::bytes::RegexBuilder::new(&anchored)
                    .unicode(false)
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
        };
        Ok(Self {
            source: source.to_owned(),
            engine,
        })
    }

    /// The pattern as given.
    pub(super) fn as_str(&self) -> &str {
        &self.source
    }

    /// Does the whole of `value` match?
    pub(super) fn is_match(&self, value: &[u8]) -> bool {
        match &self.engine {
            Engine::Dfa(dfa, start) => {
                let mut state = *start;
                let mut at = 0;
                while let Some(&byte) = value.get(at) {
                    state = dfa.next_state(state, byte);
                    at += 1;
                    if dfa.is_special_state(state) {
                        if dfa.is_dead_state(state) {
                            return false;
                        }
                        // A state that loops on every byte but at most
                        // three: jump to the next of those (a string's
                        // `[ \r\n\t\S]+` leaves only on a vertical tab or
                        // a form feed).
                        if dfa.is_accel_state(state) {
                            let rest = value.get(at..).unwrap_or_default();
                            let skip = match *dfa.accelerator(state) {
                                [a] => memchr::memchr(a, rest),
                                [a, b] => memchr::memchr2(a, b, rest),
                                [a, b, c] => memchr::memchr3(a, b, c, rest),
                                _ => Some(0),
                            };
                            at = skip.map_or(value.len(), |skip| at + skip);
                        }
                    }
                }
                dfa.is_match_state(dfa.next_eoi_state(state))
            }
            Engine::Regex(regex) => regex.is_match(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value regexes of the R4 core primitive types
    /// (profiles/hl7.fhir.r4.core-4.0.1, `StructureDefinition-<type>.json`,
    /// `<type>.value`).
    const R4_PATTERNS: &[&str] = &[
        r"[ \r\n\t\S]+",
        r"[^\s]+(\s[^\s]+)*",
        r"\S*",
        r"[A-Za-z0-9\-\.]{1,64}",
        r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?",
        r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?",
        r"true|false",
        r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?",
        r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))",
        r"-?([0]|([1-9][0-9]*))",
        r"[1-9][0-9]*",
        r"[0]|([1-9][0-9]*)",
        r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?",
        r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+",
        r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+",
    ];

    fn reference(pattern: &str) -> regex::bytes::Regex {
        regex::bytes::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .unicode(false)
            .build()
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
    }

    /// Values near each pattern's edges: valid ones, each cut short, each
    /// with one byte changed, doubled, with a trailing or leading byte, and
    /// bytes no pattern names (NUL, controls, a no-break space in UTF-8,
    /// invalid UTF-8).
    fn probes() -> Vec<Vec<u8>> {
        let seeds: &[&str] = &[
            "",
            " ",
            "a",
            "a b",
            "a  b",
            " a",
            "a ",
            "a\tb\r\nc",
            "abc-DEF.123",
            &"x".repeat(64),
            &"x".repeat(65),
            "2024",
            "0001",
            "0000",
            "2024-02",
            "2024-13",
            "2024-02-29",
            "2024-02-30",
            "2024-02-31",
            "2024-02-32",
            "2024-02-29T12:30:00Z",
            "2024-02-29T24:00:00Z",
            "2024-02-29T23:59:60.123+14:00",
            "2024-02-29T23:59:59-14:01",
            "2024-02-29T23:59:59+13:59",
            "2024-02-29T23:59",
            "23:59:60",
            "23:59:60.5",
            "true",
            "false",
            "truefalse",
            "-0",
            "-0.0",
            "01",
            "1.5e10",
            "1.5E+10",
            "1.",
            ".5",
            "0",
            "1234567890",
            "urn:oid:1.2.840.10008",
            "urn:oid:3.1",
            "urn:oid:1.02",
            "urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
            "urn:uuid:C757873D-ec9a-4326-a141-556f43239520",
            "SGVsbG8=",
            " SGVs bG8= ",
            "SGVsbG8",
            "http://example.org/fhir/ValueSet/x|1.0",
            // Long runs, crossed with memchr where a state allows it.
            &format!("{}end", "word ".repeat(40)),
            &format!("{}end\x0b", "word ".repeat(40)),
            &format!("{}end", "http://example.org/".repeat(8)),
        ];
        let extra: &[&[u8]] = &[
            b"\x00",
            b"a\x01b",
            b"\xc2\xa0",
            b"a\xc2\xa0b",
            b"\xff",
            b"a\xfe\xffb",
            b"\x0b",
            b"\x0c",
        ];
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut add = |v: Vec<u8>| out.push(v);
        for seed in seeds
            .iter()
            .map(|s| s.as_bytes())
            .chain(extra.iter().copied())
        {
            add(seed.to_vec());
            add([seed, seed].concat());
            for cut in 0..seed.len() {
                add(seed.get(..cut).unwrap_or_default().to_vec());
            }
            for at in 0..seed.len() {
                for replacement in [b'0', b'9', b'a', b' ', b'-', b'.', b':', b'\n', 0x80] {
                    let mut changed = seed.to_vec();
                    if let Some(b) = changed.get_mut(at) {
                        *b = replacement;
                    }
                    add(changed);
                }
            }
            for edge in [b' ', b'\t', b'x', 0] {
                add([seed, &[edge][..]].concat());
                add([&[edge][..], seed].concat());
            }
        }
        out
    }

    #[test]
    fn every_r4_pattern_builds_a_dfa_and_agrees_with_the_regex_engine() {
        let probes = probes();
        for pattern in R4_PATTERNS {
            let ours = ValueRegex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            assert!(
                matches!(ours.engine, Engine::Dfa(..)),
                "{pattern} fell back to the general engine"
            );
            assert_eq!(ours.as_str(), *pattern);
            let reference = reference(pattern);
            let mut matched = 0;
            for value in &probes {
                let expected = reference.is_match(value);
                matched += usize::from(expected);
                assert_eq!(
                    ours.is_match(value),
                    expected,
                    "{pattern} on {:?}",
                    String::from_utf8_lossy(value)
                );
            }
            assert!(matched > 0, "no probe matches {pattern}");
        }
    }

    #[test]
    fn a_pattern_too_large_for_a_dfa_keeps_the_general_engine() {
        // Counted repetition of a wide class blows up the DFA, not the
        // general engine.
        let pattern = r"[\S]{0,200}x[\S]{200}";
        let ours = ValueRegex::new(pattern).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(ours.engine, Engine::Regex(_)));
        let reference = reference(pattern);
        for value in [
            format!("x{}", "y".repeat(200)),
            format!("{}x{}", "y".repeat(50), "y".repeat(200)),
            "x".to_owned(),
        ] {
            assert_eq!(
                ours.is_match(value.as_bytes()),
                reference.is_match(value.as_bytes())
            );
        }
    }

    #[test]
    fn an_invalid_pattern_is_an_error() {
        assert!(ValueRegex::new("(").is_err());
    }
}
