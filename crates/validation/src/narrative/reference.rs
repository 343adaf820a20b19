//! The narrative checker as it was before the purpose-built scanner: the
//! same rules over quick-xml's tokenizer, kept verbatim (test builds only)
//! so that `differential` can compare the two on real and mutated divs.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use std::sync::LazyLock;

use ehds_fhir::outcome::Severity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use rustc_hash::FxHashSet;
use smallvec::SmallVec;

use super::{
    BLOCK_ELEMENTS, MAX_DEPTH, MAX_FINDINGS, NarrativeFinding, PERMITTED_ATTRIBUTES,
    PERMITTED_ELEMENT_ATTRIBUTES, PERMITTED_ELEMENTS, RULE_TXT1, RULE_TXT2, RULE_XHTML, XHTML_NS,
};

/// [`PERMITTED_ELEMENTS`], [`PERMITTED_ATTRIBUTES`] and
/// [`PERMITTED_ELEMENT_ATTRIBUTES`] as hash sets: every element of every
/// narrative is looked up, and a hash of a short name costs less than the
/// string comparisons of a binary search.
struct Permitted {
    elements: FxHashSet<&'static str>,
    attributes: FxHashSet<&'static str>,
    element_attributes: FxHashSet<(&'static str, &'static str)>,
}

static PERMITTED: LazyLock<Permitted> = LazyLock::new(|| Permitted {
    elements: PERMITTED_ELEMENTS.iter().copied().collect(),
    attributes: PERMITTED_ATTRIBUTES.iter().copied().collect(),
    element_attributes: PERMITTED_ELEMENT_ATTRIBUTES.iter().copied().collect(),
});

/// An element's attributes: name, and value with references decoded
/// (`None` when its references are bad); four inline.
type Attributes<'s> = SmallVec<[(&'s str, Option<Cow<'s, str>>); 4]>;

/// Whether (element, attribute) is in `set` (one lifetime, so that the
/// static set is looked up with borrowed names).
fn pair_permitted<'n>(set: &FxHashSet<(&'n str, &'n str)>, element: &'n str, key: &'n str) -> bool {
    set.contains(&(element, key))
}

/// Attributes whose value is a URL (HTML 4.01 %URI; on the permitted
/// elements).
const URL_ATTRIBUTES: &[&str] = &["href", "src", "cite", "longdesc", "usemap"];

/// How much of a name a message shows.
const MAX_SHOWN_CHARS: usize = 64;

/// The old `check_div`: never panics; linear in the length of `div`. An empty result means the
/// div is acceptable.
pub(crate) fn check_div(div: &str) -> Vec<NarrativeFinding> {
    let mut checker = Checker::default();
    let completed = checker.run(div);
    if completed && !checker.has_content {
        checker.report(
            RULE_TXT2,
            Severity::Error,
            "the narrative SHALL have some non-whitespace content (text or an img with a src)"
                .to_owned(),
            None,
        );
    }
    checker.finish()
}

/// Where the tokenizer is relative to the root element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    Inside,
    After,
}

/// Whether to go on reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// One open element.
#[derive(Debug)]
struct Open {
    /// Where the element's name is in the div (shown only in messages).
    name: std::ops::Range<usize>,
    /// Whether it is a `p` (for the block-in-paragraph rule).
    is_p: bool,
    /// Whether unprefixed descendants are in the XHTML namespace.
    default_xhtml: bool,
    /// Prefixes this element binds (popped when it closes).
    declared: Vec<String>,
}

/// A bad `&...;` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RefProblem {
    /// A named entity other than the five XML ones.
    Undefined(String),
    /// A character reference that is malformed or names no XML character.
    BadCharRef,
    /// An `&` with no `;` after it.
    Unterminated,
}

impl RefProblem {
    /// A noun phrase for messages.
    fn describe(&self) -> String {
        match self {
            Self::Undefined(name) if is_name(name) && name.len() <= 32 => format!(
                "the undefined entity &{name}; (narrative XHTML has only the five XML entities: write the Unicode character, or a character reference such as &#160; for &nbsp;)"
            ),
            Self::Undefined(_) => "an undefined entity reference".to_owned(),
            Self::BadCharRef => {
                "a character reference that is malformed or not an XML character".to_owned()
            }
            Self::Unterminated => {
                "an '&' that does not start a reference ending in ';' (write &amp;)".to_owned()
            }
        }
    }
}

#[derive(Debug)]
struct Checker {
    findings: Vec<NarrativeFinding>,
    seen: HashSet<(&'static str, String)>,
    omitted: usize,
    phase: Phase,
    stack: Vec<Open>,
    /// Prefix → binding stack (true when bound to XHTML).
    bindings: HashMap<String, Vec<bool>>,
    /// How many `p` elements are open.
    open_paragraphs: usize,
    has_content: bool,
}

impl Default for Checker {
    fn default() -> Self {
        Self {
            findings: Vec::new(),
            seen: HashSet::new(),
            omitted: 0,
            phase: Phase::Before,
            stack: Vec::new(),
            bindings: HashMap::new(),
            open_paragraphs: 0,
            has_content: false,
        }
    }
}

impl Checker {
    /// Records a finding, once per (rule, message), at most [`MAX_FINDINGS`].
    fn report(&mut self, rule: &'static str, severity: Severity, message: String, at: Option<u64>) {
        let key = (rule, message);
        if self.seen.contains(&key) {
            return;
        }
        if self.findings.len() >= MAX_FINDINGS {
            self.omitted = self.omitted.saturating_add(1);
            return;
        }
        let message = key.1.clone();
        self.seen.insert(key);
        let message = match at {
            Some(offset) => format!("{message} (byte {offset} of the div)"),
            None => message,
        };
        self.findings.push(NarrativeFinding {
            rule,
            message,
            severity,
        });
    }

    fn xhtml(&mut self, message: String, at: u64) {
        self.report(RULE_XHTML, Severity::Error, message, Some(at));
    }

    fn txt1(&mut self, severity: Severity, message: String, at: u64) {
        self.report(RULE_TXT1, severity, message, Some(at));
    }

    fn finish(mut self) -> Vec<NarrativeFinding> {
        if self.omitted > 0 {
            let message = format!(
                "{} further problems were not reported (at most {MAX_FINDINGS} are)",
                self.omitted
            );
            self.findings.push(NarrativeFinding {
                rule: RULE_XHTML,
                message,
                severity: Severity::Information,
            });
        }
        self.findings
    }

    /// Reads the whole div; true when it was read to the end (so txt-2 can be
    /// judged), false when a well-formedness error stopped it.
    fn run(&mut self, div: &str) -> bool {
        if let Some((offset, ch)) = first_non_xml_char(div) {
            self.xhtml(
                format!("character U+{:04X} is not allowed in XML", u32::from(ch)),
                offset as u64,
            );
            return false;
        }
        let mut reader = Reader::from_str(div);
        {
            let config = reader.config_mut();
            config.trim_text(false);
            config.check_end_names = true;
            config.check_comments = true;
            config.allow_unmatched_ends = false;
            config.allow_dangling_amp = false;
            config.expand_empty_elements = false;
        }
        loop {
            let at = reader.buffer_position();
            let event = match reader.read_event() {
                Ok(event) => event,
                Err(error) => {
                    let message = describe_xml_error(&error);
                    self.xhtml(message, reader.error_position());
                    return false;
                }
            };
            let flow = match event {
                Event::Start(start) => self.start(&start, false, at),
                Event::Empty(start) => self.start(&start, true, at),
                Event::End(_) => self.end(at),
                Event::Text(text) => self.text(&text, at),
                Event::GeneralRef(reference) => self.reference(&reference, at),
                Event::Comment(comment) => self.comment(&comment, at),
                Event::CData(_) => {
                    self.xhtml(
                        "CDATA sections are not accepted in a narrative (HTML parsers read them differently)".to_owned(),
                        at,
                    );
                    Flow::Continue
                }
                Event::Decl(_) => {
                    self.xhtml(
                        "an XML declaration is not allowed in a narrative div".to_owned(),
                        at,
                    );
                    Flow::Continue
                }
                Event::PI(_) => {
                    self.xhtml(
                        "processing instructions are not allowed in a narrative".to_owned(),
                        at,
                    );
                    Flow::Continue
                }
                Event::DocType(_) => {
                    self.xhtml("a DOCTYPE is not allowed in a narrative".to_owned(), at);
                    Flow::Continue
                }
                Event::Eof => return self.eof(div, at),
            };
            if flow == Flow::Stop {
                return false;
            }
        }
    }

    fn eof(&mut self, div: &str, at: u64) -> bool {
        match self.phase {
            Phase::Before => {
                self.xhtml("the div has no root element".to_owned(), at);
                false
            }
            Phase::Inside => {
                let name = self
                    .stack
                    .last()
                    .and_then(|open| div.get(open.name.clone()))
                    .map_or_else(|| "div".to_owned(), show);
                self.xhtml(
                    format!("element <{name}> is not closed before the end of the div"),
                    at,
                );
                false
            }
            Phase::After => true,
        }
    }

    fn start(&mut self, start: &BytesStart<'_>, empty: bool, at: u64) -> Flow {
        let is_root = match self.phase {
            Phase::Before => true,
            Phase::Inside => false,
            Phase::After => {
                self.xhtml(
                    "content after the root element: a narrative has exactly one root <div>"
                        .to_owned(),
                    at,
                );
                return Flow::Stop;
            }
        };
        if self.stack.len() >= MAX_DEPTH {
            self.xhtml(
                format!("elements are nested deeper than {MAX_DEPTH} levels; the rest of the div was not checked"),
                at,
            );
            return Flow::Stop;
        }
        let raw_name = start.name().into_inner();
        if !is_name(raw_name) {
            self.xhtml("malformed element name".to_owned(), at);
            return Flow::Stop;
        }
        let shown = Shown(raw_name);

        // Attributes: syntax, uniqueness, references. A value whose
        // references are bad is `None` and skips the value checks.
        let mut attributes: Attributes<'_> = SmallVec::new();
        let mut iter = start.attributes();
        iter.with_checks(false);
        for attribute in iter {
            let Ok(attribute) = attribute else {
                self.xhtml(format!("malformed attribute syntax in <{shown}>"), at);
                return Flow::Stop;
            };
            let key = attribute.key.into_inner();
            let raw_value: &str = attribute.value.as_ref();
            if !is_name(key) {
                self.xhtml(format!("malformed attribute name in <{shown}>"), at);
                return Flow::Stop;
            }
            if attributes.iter().any(|(seen, _)| *seen == key) {
                self.xhtml(
                    format!("attribute '{}' appears twice on <{shown}>", show(key)),
                    at,
                );
                return Flow::Stop;
            }
            if raw_value.contains('<') {
                self.xhtml(
                    format!(
                        "attribute '{}' on <{shown}> contains a raw '<' (write &lt;)",
                        show(key)
                    ),
                    at,
                );
                return Flow::Stop;
            }
            let decoded = match &attribute.value {
                // Borrowed from the div: decoding can borrow it too.
                Cow::Borrowed(raw) => decode_references(raw),
                Cow::Owned(raw) => decode_references(raw).map(|v| Cow::Owned(v.into_owned())),
            };
            let value = match decoded {
                Ok(value) => Some(value),
                Err(problem) => {
                    self.xhtml(
                        format!(
                            "attribute '{}' on <{shown}> contains {}",
                            show(key),
                            problem.describe()
                        ),
                        at,
                    );
                    None
                }
            };
            attributes.push((key, value));
        }

        // Namespaces.
        let parent_default = self.stack.last().is_some_and(|open| open.default_xhtml);
        let mut default_xhtml = parent_default;
        let mut xmlns: Option<bool> = None;
        let mut declared: Vec<String> = Vec::new();
        for (key, value) in &attributes {
            let value = value.as_deref().unwrap_or_default();
            if *key == "xmlns" {
                let is_xhtml = value == XHTML_NS;
                xmlns = Some(is_xhtml);
                default_xhtml = is_xhtml;
            } else if let Some(prefix) = key.strip_prefix("xmlns:") {
                if prefix.is_empty()
                    || prefix.contains(':')
                    || prefix == "xmlns"
                    || value.is_empty()
                {
                    self.xhtml(format!("malformed namespace declaration on <{shown}>"), at);
                    continue;
                }
                self.bindings
                    .entry(prefix.to_owned())
                    .or_default()
                    .push(value == XHTML_NS);
                declared.push(prefix.to_owned());
            }
        }
        let (prefix, local) = match raw_name.split_once(':') {
            Some((prefix, local)) => (Some(prefix), local),
            None => (None, raw_name),
        };
        if prefix.is_some_and(str::is_empty) || local.is_empty() || local.contains(':') {
            self.xhtml(
                format!("element name <{shown}> is not namespace-well-formed"),
                at,
            );
        }
        if is_root {
            if prefix.is_some() || local != "div" {
                self.xhtml(
                    format!("the root element must be <div>, found <{shown}>"),
                    at,
                );
            }
            match xmlns {
                Some(true) => {}
                Some(false) => self.xhtml(
                    format!(
                        "the root <{shown}> declares a namespace other than xmlns=\"{XHTML_NS}\""
                    ),
                    at,
                ),
                None => self.xhtml(
                    format!("the root <{shown}> must declare xmlns=\"{XHTML_NS}\""),
                    at,
                ),
            }
        } else if xmlns == Some(false) {
            self.xhtml(
                format!("<{shown}> declares a default namespace other than XHTML"),
                at,
            );
        }
        if let Some(prefix) = prefix.filter(|p| !p.is_empty()) {
            match self.bindings.get(prefix).and_then(|stack| stack.last()) {
                Some(true) => {}
                Some(false) => {
                    self.xhtml(format!("<{shown}> is in a namespace other than XHTML"), at)
                }
                None => self.xhtml(
                    format!("<{shown}> uses a namespace prefix that is not declared"),
                    at,
                ),
            }
        }

        // txt-1: elements.
        if !PERMITTED.elements.contains(local) {
            self.txt1(
                Severity::Error,
                format!("element <{shown}> is not permitted in a narrative"),
                at,
            );
        }
        if self.open_paragraphs > 0 && BLOCK_ELEMENTS.contains(&local) {
            self.txt1(
                Severity::Error,
                format!("block element <{shown}> is not permitted inside a <p>"),
                at,
            );
        }

        // txt-1: attributes.
        for (key, value) in &attributes {
            self.attribute(local, shown, key, value.as_deref(), is_root, at);
        }

        // txt-2: an image counts as content.
        if local == "img" && attributes.iter().any(|(key, _)| *key == "src") {
            self.has_content = true;
        }

        if is_root {
            self.phase = Phase::Inside;
        }
        let name_start = usize::try_from(at).unwrap_or(usize::MAX).saturating_add(1);
        let open = Open {
            name: name_start..name_start.saturating_add(raw_name.len()),
            is_p: local == "p",
            default_xhtml,
            declared,
        };
        if empty {
            self.close(open);
        } else {
            if open.is_p {
                self.open_paragraphs = self.open_paragraphs.saturating_add(1);
            }
            self.stack.push(open);
        }
        Flow::Continue
    }

    fn attribute(
        &mut self,
        element: &str,
        shown: Shown<'_>,
        key: &str,
        value: Option<&str>,
        is_root: bool,
        at: u64,
    ) {
        let shown_key = Shown(key);
        let permitted = key == "xmlns"
            || key.starts_with("xmlns:")
            || (is_root && !super::root_attribute_is_checked(key))
            || PERMITTED.attributes.contains(key)
            || pair_permitted(&PERMITTED.element_attributes, element, key);
        if !permitted {
            if key == "xml:space" {
                self.txt1(
                    Severity::Information,
                    format!("attribute 'xml:space' on <{shown}> is ignored by HTML renderers"),
                    at,
                );
            } else if key.len() > 2 && key.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("on")) {
                self.txt1(
                    Severity::Error,
                    format!(
                        "attribute '{shown_key}' on <{shown}> is an event handler (active content) and is not permitted"
                    ),
                    at,
                );
            } else {
                self.txt1(
                    Severity::Error,
                    format!("attribute '{shown_key}' on <{shown}> is not permitted in a narrative"),
                    at,
                );
            }
        }
        let Some(value) = value else {
            return;
        };
        if URL_ATTRIBUTES.contains(&key) {
            self.url(element, shown, key, value, at);
        }
        if key == "style" {
            self.style(shown, value, at);
        }
    }

    fn url(&mut self, element: &str, shown: Shown<'_>, key: &str, value: &str, at: u64) {
        let scheme = url_scheme(value);
        let is_data = scheme.as_deref() == Some("data");
        let img_src = element == "img" && key == "src";
        match scheme.as_deref() {
            Some(active @ ("javascript" | "vbscript")) => {
                self.txt1(
                    Severity::Error,
                    format!("<{shown}> {key} uses the {active}: scheme (active content)"),
                    at,
                );
                return;
            }
            Some("data") if !img_src => {
                self.txt1(
                    Severity::Error,
                    format!("<{shown}> {key} is a data: URL; data: URLs are only accepted as an <img> src"),
                    at,
                );
                return;
            }
            _ => {}
        }
        // Java `checkUrls`: a@href and img@src.
        if (element == "a" && key == "href") || img_src {
            if value.is_empty() {
                self.txt1(Severity::Error, format!("<{shown}> {key} is empty"), at);
                return;
            }
            if is_data {
                if let Some(problem) = check_data_image(value) {
                    self.txt1(Severity::Error, format!("<{shown}> {key} is {problem}"), at);
                }
                return;
            }
            if !value.chars().all(is_url_char) {
                self.txt1(
                    Severity::Error,
                    format!("<{shown}> {key} contains characters not allowed in a URL (escape them with %)"),
                    at,
                );
            }
        }
        if img_src && !value.starts_with('#') {
            self.txt1(
                Severity::Warning,
                format!("<{shown}> src refers to an image outside the resource; images SHOULD be embedded as a data: URL or a contained resource (#id)"),
                at,
            );
        }
    }

    fn style(&mut self, shown: Shown<'_>, value: &str, at: u64) {
        const ACTIVE: &[&str] = &[
            "expression(",
            "javascript:",
            "vbscript:",
            "-moz-binding",
            "behavior:",
        ];
        let css = normalize_css(value);
        if ACTIVE.iter().any(|needle| css.contains(needle)) {
            self.txt1(
                Severity::Error,
                format!("style attribute on <{shown}> contains active CSS (expression(), script URLs, bindings or behaviors)"),
                at,
            );
        } else if css.contains("url(") || css.contains("@import") {
            self.txt1(
                Severity::Warning,
                format!("style attribute on <{shown}> loads an external resource; narrative styles SHOULD be internally contained"),
                at,
            );
        } else if css.contains('\\') {
            self.txt1(
                Severity::Warning,
                format!("style attribute on <{shown}> uses CSS escapes, which this check cannot see through"),
                at,
            );
        }
    }

    fn end(&mut self, at: u64) -> Flow {
        let Some(open) = self.stack.pop() else {
            self.xhtml("an end tag has no matching start tag".to_owned(), at);
            return Flow::Stop;
        };
        if open.is_p {
            self.open_paragraphs = self.open_paragraphs.saturating_sub(1);
        }
        self.close(open);
        Flow::Continue
    }

    /// Pops what `open` declared; after the root, the phase moves on.
    fn close(&mut self, open: Open) {
        for prefix in &open.declared {
            if let Some(stack) = self.bindings.get_mut(prefix) {
                stack.pop();
            }
        }
        if self.stack.is_empty() {
            self.phase = Phase::After;
        }
    }

    fn text(&mut self, text: &str, at: u64) -> Flow {
        let has_non_space = text
            .bytes()
            .any(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
        if self.phase != Phase::Inside {
            if has_non_space {
                self.xhtml("text outside the root <div> is not allowed".to_owned(), at);
                return Flow::Stop;
            }
            return Flow::Continue;
        }
        if text.as_bytes().contains(&b']') && text.contains("]]>") {
            self.xhtml("']]>' is not allowed in text (write ]]&gt;)".to_owned(), at);
        }
        if has_non_space {
            self.has_content = true;
        }
        Flow::Continue
    }

    fn reference(&mut self, name: &str, at: u64) -> Flow {
        match resolve_reference(name) {
            Ok(ch) => {
                if self.phase != Phase::Inside {
                    self.xhtml("text outside the root <div> is not allowed".to_owned(), at);
                    return Flow::Stop;
                }
                if !matches!(ch, ' ' | '\t' | '\r' | '\n') {
                    self.has_content = true;
                }
            }
            Err(problem) => {
                self.xhtml(format!("the text contains {}", problem.describe()), at);
            }
        }
        Flow::Continue
    }

    fn comment(&mut self, comment: &str, at: u64) -> Flow {
        if self.phase != Phase::Inside {
            self.xhtml(
                "comments outside the root <div> are not allowed (the div's content must lie between the first '>' and the last '<')".to_owned(),
                at,
            );
            return Flow::Continue;
        }
        let unsafe_start = comment.starts_with('>') || comment.starts_with("->");
        if unsafe_start || comment.contains("--") || comment.ends_with('-') {
            self.xhtml(
                "a comment starts with '>' or '->', contains '--' or ends with '-' (HTML and XML read it differently)".to_owned(),
                at,
            );
        }
        Flow::Continue
    }
}

/// The first character that is not an XML 1.0 §2.2 `Char`, by byte scans:
/// in a Rust string (no surrogates) only the C0 controls other than tab,
/// line feed and carriage return, and U+FFFE / U+FFFF, are excluded.
fn first_non_xml_char(div: &str) -> Option<(usize, char)> {
    let control = div
        .bytes()
        .position(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'));
    let non_characters = [div.find('\u{FFFE}'), div.find('\u{FFFF}')];
    let offset = std::iter::once(control)
        .chain(non_characters)
        .flatten()
        .min()?;
    let found = div.get(offset..)?.chars().next()?;
    debug_assert!(!is_xml_char(found));
    Some((offset, found))
}

/// XML 1.0 §2.2 `Char`.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// XML 1.0 §2.3 `Name`, exact for ASCII; non-ASCII characters are accepted.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':' || !c.is_ascii();
    start(first) && chars.all(|c| start(c) || c.is_ascii_digit() || c == '-' || c == '.')
}

/// A name as messages show it: at most [`MAX_SHOWN_CHARS`] characters,
/// formatted only when a message is written.
#[derive(Debug, Clone, Copy)]
struct Shown<'a>(&'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(MAX_SHOWN_CHARS) {
            Some((cut, _)) => write!(f, "{}…", self.0.get(..cut).unwrap_or_default()),
            None => f.write_str(self.0),
        }
    }
}

/// A name for a message: at most [`MAX_SHOWN_CHARS`] characters.
fn show(name: &str) -> String {
    match name.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", name.get(..cut).unwrap_or_default()),
        None => name.to_owned(),
    }
}

/// Resolves the inside of `&...;`.
fn resolve_reference(name: &str) -> Result<char, RefProblem> {
    if let Some(number) = name.strip_prefix('#') {
        let (digits, radix) = match number.strip_prefix('x') {
            Some(hex) => (hex, 16),
            None => (number, 10),
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(RefProblem::BadCharRef);
        }
        let code = u32::from_str_radix(digits, radix).map_err(|_| RefProblem::BadCharRef)?;
        return char::from_u32(code)
            .filter(|c| is_xml_char(*c))
            .ok_or(RefProblem::BadCharRef);
    }
    match name {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        other => Err(RefProblem::Undefined(show(other))),
    }
}

/// Decodes the references in an attribute value (XML 1.0 §3.3.3 without the
/// whitespace normalization, which no check here depends on).
fn decode_references(raw: &str) -> Result<Cow<'_, str>, RefProblem> {
    if !raw.contains('&') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp.saturating_add(1)..).unwrap_or_default();
        let Some(semicolon) = after.find(';') else {
            return Err(RefProblem::Unterminated);
        };
        out.push(resolve_reference(
            after.get(..semicolon).unwrap_or_default(),
        )?);
        rest = after.get(semicolon.saturating_add(1)..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// The scheme of a URL, lower-cased, read the way browsers do (WHATWG URL):
/// leading and trailing C0 controls and spaces are ignored, tabs and newlines
/// anywhere are removed. `None` for a relative reference.
fn url_scheme(value: &str) -> Option<String> {
    let trimmed = value.trim_matches(|c: char| c <= ' ');
    let mut scheme = String::new();
    for c in trimmed.chars() {
        match c {
            '\t' | '\n' | '\r' => {}
            ':' => {
                return scheme
                    .starts_with(|c: char| c.is_ascii_alphabetic())
                    .then_some(scheme);
            }
            c if c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.') => {
                scheme.push(c.to_ascii_lowercase());
            }
            _ => return None,
        }
    }
    None
}

/// Java `UrlUtil.checkValidUrl`: characters allowed outside `data:` URLs.
fn is_url_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(
            c,
            ';' | '?'
                | ':'
                | '@'
                | '&'
                | '='
                | '+'
                | '$'
                | '.'
                | ','
                | '/'
                | '%'
                | '-'
                | '_'
                | '~'
                | '#'
                | '['
                | ']'
                | '!'
                | '\''
                | '('
                | ')'
                | '*'
                | '|'
        )
}

/// Checks a `data:` URL used as an image source (Java `UrlUtil`, plus the
/// `image/*` type); the problem as a phrase, or `None` when acceptable.
fn check_data_image(value: &str) -> Option<&'static str> {
    let trimmed = value.trim_matches(|c: char| c <= ' ');
    let body = trimmed
        .get(trimmed.find(':').map_or(0, |colon| colon.saturating_add(1))..)
        .unwrap_or_default();
    let mut parts = body.split(',');
    let (Some(media), Some(data), None) = (parts.next(), parts.next(), parts.next()) else {
        return Some("a data: URL that does not have exactly one ',' before its data");
    };
    if data.is_empty() {
        return Some("a data: URL without data");
    }
    let media = media.trim_start();
    let (media_type, base64) = match media.strip_suffix(";base64") {
        Some(media_type) => (media_type, true),
        None => (media, false),
    };
    if base64 && !is_base64(data) {
        return Some("a data: URL whose base64 data is invalid");
    }
    if !is_media_type(media_type) {
        return Some("a data: URL with a malformed media type");
    }
    let is_image = media_type
        .get(..6)
        .is_some_and(|t| t.eq_ignore_ascii_case("image/"));
    if !is_image {
        return Some("a data: URL that is not an image (image/*)");
    }
    None
}

/// Base64 (RFC 4648 §4 alphabet, whitespace ignored, `=` only at the end,
/// whole quanta).
fn is_base64(data: &str) -> bool {
    let mut count = 0usize;
    let mut padding = 0usize;
    for c in data.chars() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {}
            '=' => {
                padding = padding.saturating_add(1);
                count = count.saturating_add(1);
            }
            c if padding == 0 && (c.is_ascii_alphanumeric() || c == '+' || c == '/') => {
                count = count.saturating_add(1);
            }
            _ => return false,
        }
    }
    padding <= 2 && count.is_multiple_of(4)
}

/// Java `MimeTypeUtil`: `type/subtype` with at most one `;name=value`
/// parameter (`\w` is ASCII word characters).
fn is_media_type(media_type: &str) -> bool {
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let (essence, parameter) = match media_type.split_once(';') {
        Some((essence, parameter)) => (essence, Some(parameter)),
        None => (media_type, None),
    };
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let kind_ok = kind == "*" || word(kind);
    let subtype_ok = subtype == "*"
        || (!subtype.is_empty()
            && subtype
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+')));
    let parameter_ok = parameter.is_none_or(|p| {
        p.trim_start().split_once('=').is_some_and(|(name, value)| {
            let value = value.trim_start();
            word(name) && !value.is_empty() && !value.chars().any(char::is_whitespace)
        })
    });
    kind_ok && subtype_ok && parameter_ok
}

/// CSS for pattern matching: comments and whitespace removed, lower case.
fn normalize_css(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(open) = rest.find("/*") {
        out.push_str(rest.get(..open).unwrap_or_default());
        let after = rest.get(open.saturating_add(2)..).unwrap_or_default();
        rest = match after.find("*/") {
            Some(close) => after.get(close.saturating_add(2)..).unwrap_or_default(),
            None => "",
        };
    }
    out.push_str(rest);
    out.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A message for a quick-xml error that echoes names at most, never content.
fn describe_xml_error(error: &quick_xml::Error) -> String {
    use quick_xml::errors::IllFormedError;
    match error {
        quick_xml::Error::Syntax(syntax) => format!("not well-formed XML: {syntax}"),
        quick_xml::Error::IllFormed(IllFormedError::MismatchedEndTag { expected, found }) => {
            format!(
                "not well-formed XML: end tag </{}> does not match start tag <{}>",
                show(found),
                show(expected)
            )
        }
        quick_xml::Error::IllFormed(IllFormedError::UnmatchedEndTag(name)) => format!(
            "not well-formed XML: end tag </{}> has no start tag",
            show(name)
        ),
        quick_xml::Error::IllFormed(IllFormedError::DoubleHyphenInComment) => {
            "not well-formed XML: '--' inside a comment".to_owned()
        }
        quick_xml::Error::IllFormed(IllFormedError::UnclosedReference) => {
            "not well-formed XML: an '&' that does not start a reference ending in ';' (write &amp;)"
                .to_owned()
        }
        quick_xml::Error::InvalidAttr(_) => "not well-formed XML: malformed attribute".to_owned(),
        _ => "not well-formed XML".to_owned(),
    }
}
