//! Recorded terminology-server answers: what a FHIR terminology server said
//! about a code of a code system the gateway does not hold (SNOMED CT,
//! LOINC, CVX, ICD-10), read from the HL7 Java validator's terminology cache
//! format, so that code and display checks that need a server are decided
//! offline with the server's own verdicts.
//!
//! The HL7 Java validator checks every `Coding` with a system against the
//! code system (`InstanceValidator.checkCodeableConcept`/`checkCoding` →
//! `validateCode`), locally when it holds the code system and on its
//! terminology server otherwise, and reports the server's issues at the
//! Coding: a wrong display (`Wrong Display Name … Valid display is …`, at
//! `.display`), an unknown code (at `.code`). It records each request and
//! answer in a cache (`TerminologyCache`, one `<system>.cache` file per code
//! system) and its own test suite runs offline against the recorded files
//! (`org.hl7.fhir.validation/src/test/resources/txCache/`). [`RecordedAnswers`]
//! reads that format, so the validator can do the same: the fhir-test-cases
//! harness loads answers recorded by Java's run, and an operator can run
//! with answers recorded from its own terminology server.
//!
//! Format (`TerminologyCache.save`/`load`, as written in the files): entries
//! separated by a line of dashes; each entry is the request as JSON, `####`,
//! then `v: ` and the answer as JSON (`e: ` for a failed request, which is
//! not an answer and is skipped). Only answers about one code of a code
//! system are used: the request has a `code` object (`system`, `code`,
//! optional `display`) and no value set (`valueSet` null, no `url`);
//! answers checking value-set membership are not read. The request's
//! `langs` is the display language asked for.
//!
//! | rule | source |
//! | --- | --- |
//! | an answer's issues (`issues`, an OperationOutcome) are reported with their severity at the Coding's element the issue's expression ends in (`.display`, `.code`, `.system`), else at the Coding | Java `InstanceValidator.checkCodeableConcept` (`bindingsOk`… `txIssue`); the recorded issues' `expression` is relative to the `CodeableConcept`/`Coding` asked about |
//! | an answer without `issues` but with `severity` and `error` (the older format) is one issue: at `.display` when the message is about the display, else at `.code` | `TerminologyCache` entries written before issues were recorded |
//! | the display language asked for is the resource's `language`, else the answers' default language (Java's is `en-US`, its `defaultDisplayLanguage` parameter in the recorded requests) | Java `ValidationEngine`/`TerminologyCache` requests (`langs`) |
//! | the answer for the display language asked for; when none was recorded for it, the answer recorded without a language (`langs` empty) | a display recorded as right or wrong without a language is the code system's default display, which applies when no other language is asked |
//! | a request about a CodeableConcept of one Coding answers for that Coding; one of several Codings is not read (its issues would need placing among them) | Java caches `validateCode(CodeableConcept)` under the CodeableConcept |
//! | a code, system or display not recorded: no answer (nothing is reported; the check needs the server) | this module's contract: never a verdict the server did not give |

use std::collections::HashMap;

use ehds_fhir::outcome::Severity;
use serde_json::Value;

/// Where on the Coding a recorded issue belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodingPart {
    /// The Coding itself.
    Coding,
    /// `Coding.system`.
    System,
    /// `Coding.code`.
    Code,
    /// `Coding.display`.
    Display,
}

impl CodingPart {
    /// The child element's name, `None` for the Coding itself.
    pub fn key(self) -> Option<&'static str> {
        match self {
            CodingPart::Coding => None,
            CodingPart::System => Some("system"),
            CodingPart::Code => Some("code"),
            CodingPart::Display => Some("display"),
        }
    }
}

/// One issue a terminology server reported about a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedIssue {
    /// The server's severity.
    pub severity: Severity,
    /// Where on the Coding.
    pub part: CodingPart,
    /// The server's message.
    pub message: String,
}

/// The key of one recorded request: system, code, display asked about
/// (empty when none) and display language (empty when none), joined by
/// NUL (which none of them can hold: FHIR strings exclude control
/// characters), so a look-up builds one string.
type Key = Box<str>;

fn key(system: &str, code: &str, display: &str, langs: &str) -> Key {
    [system, code, display, langs].join("\0").into()
}

/// Recorded answers about single codes, by request. Built from the text of
/// one or more cache files ([`RecordedAnswers::add`]); immutable once the
/// validator holds it.
#[derive(Debug, Default)]
pub struct RecordedAnswers {
    answers: HashMap<Key, Vec<RecordedIssue>>,
    /// The display language asked for when the resource names none.
    default_language: Box<str>,
}

/// Why part of a cache file was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadEntry {
    /// 1-based line of the entry's separator.
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

impl RecordedAnswers {
    /// An empty set: every question goes unanswered.
    pub fn new() -> Self {
        Self::default()
    }

    /// These answers, asking for displays in `language` (a BCP 47 tag) when
    /// the resource names no language of its own: the language the
    /// recording server was asked for by default (Java asks for `en-US`,
    /// its `defaultDisplayLanguage`).
    pub fn with_default_language(mut self, language: &str) -> Self {
        self.default_language = language.into();
        self
    }

    /// How many answers are held.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// Whether no answer is held.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// Reads the answers of one cache file's `text`, keeping the last answer
    /// of a request recorded twice (the cache appends). Entries that are not
    /// answers about one code (value-set checks, failed requests,
    /// expansions) are skipped silently; entries that cannot be read are
    /// returned.
    pub fn add(&mut self, text: &str) -> Vec<UnreadEntry> {
        let mut unread = Vec::new();
        for (line, entry) in entries(text) {
            match read_entry(entry) {
                Ok(Some((key, issues))) => {
                    self.answers.insert(key, issues);
                }
                Ok(None) => {}
                Err(reason) => unread.push(UnreadEntry { line, reason }),
            }
        }
        unread
    }

    /// Reads every cache file (`*.cache`) of the folder `dir`, in name
    /// order, with [`RecordedAnswers::add`]: the entries that could not be
    /// read, each with its file; `Err` when the folder or a file cannot be
    /// read.
    pub fn add_dir(
        &mut self,
        dir: &std::path::Path,
    ) -> std::io::Result<Vec<(std::path::PathBuf, UnreadEntry)>> {
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        files.retain(|p| p.extension().is_some_and(|x| x == "cache"));
        files.sort();
        let mut unread = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file)?;
            unread.extend(self.add(&text).into_iter().map(|e| (file.clone(), e)));
        }
        Ok(unread)
    }

    /// The issues the server reported about (`system`, `code`) with this
    /// `display` (or none) for display language `langs` (empty: the
    /// default language): an empty slice when it found nothing wrong,
    /// `None` when the question was never recorded.
    pub fn answer(
        &self,
        system: &str,
        code: &str,
        display: Option<&str>,
        langs: &str,
    ) -> Option<&[RecordedIssue]> {
        let display = display.unwrap_or("");
        let langs = if langs.is_empty() {
            &*self.default_language
        } else {
            langs
        };
        let get = |langs: &str| self.answers.get(&key(system, code, display, langs));
        get(langs)
            .or_else(|| if langs.is_empty() { None } else { get("") })
            .map(Vec::as_slice)
    }
}

/// The entries of a cache file: each with the 1-based line of its
/// separator (a line of dashes).
fn entries(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start: Option<(usize, usize)> = None;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        if bare.len() >= 10 && bare.bytes().all(|b| b == b'-') {
            if let Some((line_no, from)) = start {
                out.push((line_no, text.get(from..offset).unwrap_or("")));
            }
            start = Some((index + 1, offset + line.len()));
        }
        offset += line.len();
    }
    if let Some((line_no, from)) = start {
        out.push((line_no, text.get(from..).unwrap_or("")));
    }
    out
}

type Read = Result<Option<(Key, Vec<RecordedIssue>)>, String>;

fn read_entry(entry: &str) -> Read {
    let Some((request, rest)) = entry.split_once("####") else {
        return Err("no `####` between request and answer".into());
    };
    let rest = rest.trim_start();
    let Some(answer) = rest.strip_prefix("v:") else {
        // `e:` records a failed request: not an answer.
        return Ok(None);
    };
    // Plain JSON (the request holds `null`s), not FHIR JSON.
    let request: Value =
        serde_json::from_str(request.trim()).map_err(|e| format!("request is not JSON: {e}"))?;
    let answer: Value =
        serde_json::from_str(answer.trim()).map_err(|e| format!("answer is not JSON: {e}"))?;
    let Some(mut coding) = request.get("code") else {
        return Ok(None); // an expansion
    };
    // A CodeableConcept of one Coding is a question about that Coding.
    if let Some(codings) = coding.get("coding") {
        match codings.as_array().map(Vec::as_slice) {
            Some([only]) => coding = only,
            _ => return Ok(None),
        }
    }
    let asks_value_set =
        request.get("url").is_some() || request.get("valueSet").is_some_and(|v| !v.is_null());
    if asks_value_set {
        return Ok(None);
    }
    let (Some(system), Some(code)) = (
        coding.get("system").and_then(Value::as_str),
        coding.get("code").and_then(Value::as_str),
    ) else {
        return Ok(None);
    };
    let display = coding.get("display").and_then(Value::as_str).unwrap_or("");
    let langs = request.get("langs").and_then(Value::as_str).unwrap_or("");
    Ok(Some((key(system, code, display, langs), issues(&answer))))
}

/// The issues of one answer.
fn issues(answer: &Value) -> Vec<RecordedIssue> {
    let listed: Vec<RecordedIssue> = answer
        .get("issues")
        .and_then(|o| o.get("issue"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|issue| {
            let severity = severity(issue.get("severity").and_then(Value::as_str)?)?;
            let message = issue
                .get("details")
                .and_then(|d| d.get("text"))
                .and_then(Value::as_str)
                .or_else(|| issue.get("diagnostics").and_then(Value::as_str))
                .unwrap_or("")
                .to_owned();
            let at = issue
                .get("expression")
                .or_else(|| issue.get("location"))
                .and_then(Value::as_array)
                .and_then(|list| list.first())
                .and_then(Value::as_str)
                .unwrap_or("");
            Some(RecordedIssue {
                severity,
                part: part_of(at),
                message,
            })
        })
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    let stated = answer
        .get("severity")
        .and_then(Value::as_str)
        .and_then(severity);
    match (stated, answer.get("error").and_then(Value::as_str)) {
        (Some(severity), Some(message)) => vec![RecordedIssue {
            severity,
            part: if message.contains("Display") || message.contains("display") {
                CodingPart::Display
            } else {
                CodingPart::Code
            },
            message: message.to_owned(),
        }],
        _ => Vec::new(),
    }
}

fn severity(code: &str) -> Option<Severity> {
    match code {
        "fatal" => Some(Severity::Fatal),
        "error" => Some(Severity::Error),
        "warning" => Some(Severity::Warning),
        "information" => Some(Severity::Information),
        _ => None,
    }
}

/// The Coding element an issue's expression (`CodeableConcept.coding[0].display`,
/// `Coding.code`) ends in.
fn part_of(expression: &str) -> CodingPart {
    match expression.rsplit('.').next() {
        Some("display") => CodingPart::Display,
        Some("code") => CodingPart::Code,
        Some("system") => CodingPart::System,
        _ => CodingPart::Coding,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const SEP: &str =
        "-------------------------------------------------------------------------------------\n";

    fn entry(request: &str, answer: &str) -> String {
        format!("{SEP}{request}####\nv: {answer}\n\n")
    }

    const WRONG: &str = r#"{
  "display" : "Right",
  "code" : "1",
  "severity" : "error",
  "error" : "Wrong Display Name 'Wrong' for http://x#1. Valid display is 'Right'",
  "issues" : {
  "resourceType" : "OperationOutcome",
  "issue" : [{
    "severity" : "error",
    "code" : "invalid",
    "details" : {"text" : "Wrong Display Name 'Wrong' for http://x#1. Valid display is 'Right'"},
    "location" : ["CodeableConcept.coding[0].display"],
    "expression" : ["CodeableConcept.coding[0].display"]
  }]
}
}"#;

    #[test]
    fn a_wrong_display_is_an_issue_at_the_display() {
        let mut answers = RecordedAnswers::new();
        let text = entry(
            r#"{"code" : {"system" : "http://x", "code" : "1", "display" : "Wrong"}, "valueSet" :null, "langs":"", "useServer":"true"}"#,
            WRONG,
        ) + &entry(
            r#"{"code" : {"system" : "http://x", "code" : "1", "display" : "Right"}, "valueSet" :null, "langs":""}"#,
            r#"{"display" : "Right", "code" : "1", "issues" : {"resourceType" : "OperationOutcome"}}"#,
        );
        assert!(answers.add(&text).is_empty());
        assert_eq!(answers.len(), 2);
        let issues = answers.answer("http://x", "1", Some("Wrong"), "").unwrap();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].severity, Severity::Error);
        assert_eq!(issues[0].part, CodingPart::Display);
        assert!(issues[0].message.starts_with("Wrong Display Name"));
        assert_eq!(
            answers.answer("http://x", "1", Some("Right"), ""),
            Some(&[][..])
        );
        // Never recorded: no verdict.
        assert_eq!(answers.answer("http://x", "1", Some("Other"), ""), None);
        assert_eq!(answers.answer("http://x", "1", None, ""), None);
    }

    #[test]
    fn the_language_asked_for_first_then_the_answer_without_one() {
        let mut answers = RecordedAnswers::new();
        let text = entry(
            r#"{"code" : {"system" : "http://x", "code" : "1", "display" : "Wrong"}, "valueSet" :null, "langs":"en-NZ"}"#,
            WRONG,
        ) + &entry(
            r#"{"code" : {"system" : "http://x", "code" : "1", "display" : "Wrong"}, "valueSet" :null, "langs":""}"#,
            r#"{"display" : "Wrong", "code" : "1"}"#,
        );
        assert!(answers.add(&text).is_empty());
        assert_eq!(
            answers
                .answer("http://x", "1", Some("Wrong"), "en-NZ")
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            answers.answer("http://x", "1", Some("Wrong"), "en-US"),
            Some(&[][..])
        );
    }

    #[test]
    fn a_codeable_concept_of_one_coding_asked_in_the_default_language() {
        let mut answers = RecordedAnswers::new().with_default_language("en-US");
        let text = entry(
            r#"{"code" : {"coding" : [{"system" : "http://x", "code" : "1", "display" : "Wrong"}]}, "langs":"en-US"}"#,
            WRONG,
        ) + &entry(
            r#"{"code" : {"coding" : [{"system" : "http://x", "code" : "1"}, {"system" : "http://y", "code" : "2"}]}, "langs":"en-US"}"#,
            WRONG,
        );
        assert!(answers.add(&text).is_empty());
        assert_eq!(answers.len(), 1);
        let issues = answers.answer("http://x", "1", Some("Wrong"), "").unwrap();
        assert_eq!(issues[0].part, CodingPart::Display);
        assert_eq!(answers.answer("http://x", "1", Some("Wrong"), "de"), None);
    }

    #[test]
    fn crlf_line_breaks_read_as_lf() {
        let text = entry(
            r#"{"code" : {"system" : "http://x", "code" : "1", "display" : "Wrong"}, "valueSet" :null, "langs":""}"#,
            WRONG,
        );
        let mut answers = RecordedAnswers::new();
        assert!(answers.add(&text.replace('\n', "\r\n")).is_empty());
        assert_eq!(
            answers
                .answer("http://x", "1", Some("Wrong"), "")
                .map(<[_]>::len),
            Some(1)
        );
    }

    #[test]
    fn value_set_checks_and_failed_requests_are_not_answers_about_a_code() {
        let mut answers = RecordedAnswers::new();
        let text = entry(
            r#"{"code" : {"system" : "http://x", "code" : "1"}, "url": "http://vs", "version": "1", "langs":""}"#,
            WRONG,
        ) + &entry(
            r#"{"code" : {"system" : "http://x", "code" : "2"}, "valueSet" :{"resourceType":"ValueSet"}, "langs":""}"#,
            WRONG,
        ) + &format!(
            "{SEP}{}####\ne: {{\"error\" : \"server down\"}}\n",
            r#"{"code" : {"system" : "http://x", "code" : "3"}, "valueSet" :null, "langs":""}"#
        );
        assert!(answers.add(&text).is_empty());
        assert!(answers.is_empty());
    }

    #[test]
    fn the_older_format_without_issues_and_unreadable_entries() {
        let mut answers = RecordedAnswers::new();
        let text = entry(
            r#"{"code" : {"system" : "http://x", "code" : "9"}, "valueSet" :null, "langs":""}"#,
            r#"{"severity" : "error", "error" : "Unknown Code '9' in the system 'http://x'", "class" : "UNKNOWN"}"#,
        ) + SEP
            + "{\"code\" : {\"system\" : \"http://x\"}\n"
            + &entry(r#"{"code" : "#, r#"{}"#);
        let unread = answers.add(&text);
        assert_eq!(unread.len(), 2, "{unread:?}");
        assert_eq!(unread[0].line, 5, "{unread:?}");
        let issues = answers.answer("http://x", "9", None, "").unwrap();
        assert_eq!(issues[0].part, CodingPart::Code);
    }
}
