//! FHIR R4 narrative checks: the XHTML of `Narrative.div`
//! (<http://hl7.org/fhir/R4/narrative.html#xhtml>, invariants txt-1 and
//! txt-2 on `Narrative.div`).
//!
//! Consumers render narratives for humans, often straight into a browser's
//! `innerHTML` (R4 narrative.html says so), so the div must be well-formed,
//! inert and conformant before the gateway relays it. [`check_div`] is a
//! pure function over the (JSON-decoded) string value of `Narrative.div`.
//! Messages name elements, attributes and entities only: never text content
//! or attribute values, because narratives hold patient data.
//!
//! "Java" below is the HL7 reference validator (org.hl7.fhir.core):
//! `XhtmlValidator` (`HTML_ELEMENTS`, `HTML_ATTRIBUTES`, `HTML_COMBO_LIST`,
//! `HTML_BLOCK_LIST`, `checkInnerNS`, `checkInnerNames`, `checkUrls`),
//! `UrlUtil.checkValidUrl`, `XhtmlNode.getNsDecl` and `XhtmlParser`.
//!
//! | rule key | check | severity | source |
//! | --- | --- | --- | --- |
//! | `xhtml` | well-formed XML 1.0: one root element, proper nesting, quoted and unique attributes, no `<` in attribute values, no `]]>` in text, only XML characters | error | narrative.html#xhtml ("an XHTML fragment"); XML 1.0 §2.1, §2.2, §2.4, §3, §3.1 |
//! | `xhtml` | references: only the five predefined entities (`&lt;` `&gt;` `&amp;` `&quot;` `&apos;`) and character references to XML characters; `&nbsp;`, `&copy;` … are errors | error | narrative.html#xhtml: "there is no support for HTML entities like `&nbsp;` or `&copy;` … Unicode characters SHALL be used instead"; XML 1.0 §4.1, §4.6; Java `XhtmlParser.parseLiteral` in XML mode (`XHTML_XHTML_Entity_Illegal`) |
//! | `xhtml` | no DOCTYPE, no processing instruction, no XML declaration; comments allowed inside the div | error | narrative.html#xhtml (JSON: `"<?xml ...><div>text</div>"` is not legal); Java `XHTML_XHTML_DOCTYPE_ILLEGAL` and `checkXhtmlStructure` (DocType, Instruction) |
//! | `xhtml` | only whitespace around the root element (no comment or text): the characters between the first `>` and the last `<` are the div's content | error | narrative.html#xhtml (JSON representation) |
//! | `xhtml` | root element is unprefixed `div` with `xmlns="http://www.w3.org/1999/xhtml"` | error | narrative.html#xhtml; Java `XHTML_XHTML_NS_INVALID`, `XHTML_XHTML_NAME_INVALID` (`getNsDecl` reads the `xmlns` attribute) |
//! | `xhtml` | every descendant stays in the XHTML namespace: an `xmlns` other than XHTML, or an element prefix bound elsewhere or not bound | error | Java `checkInnerNS`; Namespaces in XML 1.0 §5 |
//! | `xhtml` | CDATA sections are refused | error | gateway policy: an HTML parser (`innerHTML`) reads `<![CDATA[` as a bogus comment ending at the first `>`, so text inert in XML becomes live markup |
//! | `xhtml` | comments: no `--`, not ending in `-`, not starting with `>` or `->` | error | XML 1.0 §2.5; the last two are gateway policy: HTML closes such comments early (`<!-->`), another XML/HTML parse differential |
//! | `xhtml` | nesting deeper than [`MAX_DEPTH`] elements is refused and checking stops | error | gateway policy (bounded work, like `ehds_fhir::json::MAX_DEPTH`) |
//! | `txt-1` | only the elements of Java `HTML_ELEMENTS` ([`PERMITTED_ELEMENTS`]); everything else (`script`, `style`, `form`, `iframe`, `object`, `font`, `u`, `ins` …) is an error naming the element | error | txt-1; Java `XHTML_XHTML_ELEMENT_ILLEGAL` |
//! | `txt-1` | only the attributes of Java `HTML_ATTRIBUTES` ([`PERMITTED_ATTRIBUTES`]) on any element, `HTML_COMBO_LIST` ([`PERMITTED_ELEMENT_ATTRIBUTES`]) on their element, and `xmlns`/`xmlns:*`; `on*` event handlers are named as such; the root div's own attributes are checked too (Java checks only its descendants) | error | txt-1 ("no … event related attributes"); Java `XHTML_XHTML_ATTRIBUTE_ILLEGAL` |
//! | `txt-1` | `xml:space` | information | Java hint `XHTML_XHTML_ATTRIBUTE_XML_SPACE` |
//! | `txt-1` | no block element ([`BLOCK_ELEMENTS`]) inside a `p` | error | Java `XHTML_XHTML_ELEMENT_ILLEGAL_IN_PARA` |
//! | `txt-1` | URL attributes (`href`, `src`, `cite`, `longdesc`, `usemap`): no `javascript:` or `vbscript:` scheme (after entity decoding, ignoring case, surrounding control characters and embedded tabs/newlines, as browsers do); `data:` only as `img` `src` with an `image/*` type | error | txt-1 ("no … scripts", "no active content"); gateway policy (Java checks the syntax of URLs, not their scheme) |
//! | `txt-1` | `a` `href` and `img` `src`: not empty; outside `data:`, only the characters Java allows; `data:` URLs with exactly one `,`, valid base64 and a valid media type | error | Java `checkUrls`, `UrlUtil.checkValidUrl`, `Base64Util`, `MimeTypeUtil` |
//! | `txt-1` | `img` `src` that is neither `#id` (a contained resource) nor `data:` | warning | narrative.html#id: images "SHOULD always be embedded as a data: url, in an attachment or a contained resource"; an external image also tells its host who reads the narrative (Java accepts it silently) |
//! | `txt-1` | `style` attributes: active CSS (`expression(`, `javascript:`, `vbscript:`, `-moz-binding`, `behavior:`) | error | txt-1 ("internally contained style attributes", no active content); gateway policy |
//! | `txt-1` | `style` attributes: external resources (`url(`, `@import`) or CSS escapes (which could hide either) | warning | txt-1 ("internally contained"); gateway policy |
//! | `txt-2` | some non-whitespace text (whitespace as XPath `normalize-space`: space, tab, CR, LF; so `&#160;` counts) or an `img` with a `src` | error | txt-2 (R4 XPath `descendant::text()[normalize-space(.)!=''] or descendant::h:img[@src]`); narrative.html ("SHALL have some non-whitespace content (text or an image)") |
//!
//! Not implemented from Java: `checkXhtmlStructure` (table/list/paragraph
//! content models, rule dated 2025-06-16), duplicate `id` warnings and the
//! mixed-language warning.
//!
//! Work is linear in the input: one pass of quick-xml's tokenizer, hash
//! lookups for attribute uniqueness and namespace prefixes, no recursion.
//! At most [`MAX_FINDINGS`] findings are kept (identical messages once);
//! past that one information finding says how many were left out.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use std::sync::LazyLock;

use ehds_fhir::outcome::Severity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use rustc_hash::FxHashSet;
use smallvec::SmallVec;

/// The XHTML namespace, which the root `div` must declare as its default.
pub const XHTML_NS: &str = "http://www.w3.org/1999/xhtml";

/// Deepest element nesting checked; deeper input gets one `xhtml` finding
/// and checking stops.
pub const MAX_DEPTH: usize = 200;

/// Most findings reported for one div.
pub const MAX_FINDINGS: usize = 100;

/// Rule key: well-formedness, namespace and root element.
pub const RULE_XHTML: &str = "xhtml";
/// Rule key: only permitted elements and attributes, no active content.
pub const RULE_TXT1: &str = "txt-1";
/// Rule key: some non-whitespace content.
pub const RULE_TXT2: &str = "txt-2";

/// Elements permitted in a narrative: Java `XhtmlValidator.HTML_ELEMENTS`,
/// sorted for binary search (a superset of the R4 txt-1 XPath list: it adds `address`, `bdo`, `kbd`,
/// `map` and `area`).
pub const PERMITTED_ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "address",
    "area",
    "b",
    "bdo",
    "big",
    "blockquote",
    "br",
    "caption",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "kbd",
    "li",
    "map",
    "ol",
    "p",
    "pre",
    "q",
    "samp",
    "small",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "tt",
    "ul",
    "var",
];

/// Attributes permitted on every element: Java
/// `XhtmlValidator.HTML_ATTRIBUTES` (names as written, so `xml:lang`),
/// sorted for binary search.
pub const PERMITTED_ATTRIBUTES: &[&str] = &[
    "abbr",
    "accesskey",
    "align",
    "axis",
    "char",
    "charoff",
    "class",
    "colspan",
    "dir",
    "headers",
    "id",
    "lang",
    "rowspan",
    "scope",
    "span",
    "style",
    "tabindex",
    "title",
    "valign",
    "width",
    "xml:lang",
];

/// Attributes permitted on one element only, as (element, attribute): Java
/// `XhtmlValidator.HTML_COMBO_LIST`, sorted for binary search.
pub const PERMITTED_ELEMENT_ATTRIBUTES: &[(&str, &str)] = &[
    ("a", "charset"),
    ("a", "coords"),
    ("a", "href"),
    ("a", "hreflang"),
    ("a", "name"),
    ("a", "rel"),
    ("a", "rev"),
    ("a", "shape"),
    ("a", "type"),
    ("area", "alt"),
    ("area", "coords"),
    ("area", "href"),
    ("area", "nohref"),
    ("area", "shape"),
    ("blockquote", "cite"),
    ("div", "xmlns"),
    ("img", "alt"),
    ("img", "border"),
    ("img", "height"),
    ("img", "ismap"),
    ("img", "longdesc"),
    ("img", "src"),
    ("img", "usemap"),
    ("img", "width"),
    ("map", "name"),
    ("pre", "space"),
    ("q", "cite"),
    ("table", "border"),
    ("table", "cellpadding"),
    ("table", "cellspacing"),
    ("table", "frame"),
    ("table", "rules"),
    ("table", "summary"),
    ("table", "width"),
    ("td", "nowrap"),
];

/// Block elements not allowed inside a `p`: Java
/// `XhtmlValidator.HTML_BLOCK_LIST`.
pub const BLOCK_ELEMENTS: &[&str] = &["div", "blockquote", "table", "ol", "ul", "p"];

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

/// One problem found in a narrative div.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NarrativeFinding {
    /// Which rule: [`RULE_TXT1`] (only permitted elements/attributes, no
    /// active content), [`RULE_TXT2`] (non-whitespace content) or
    /// [`RULE_XHTML`] (well-formedness, namespace, root element).
    pub rule: &'static str,
    /// Human-readable message naming the element, attribute or entity (never
    /// text content or attribute values), with the byte offset in the div
    /// where that helps.
    pub message: String,
    /// Error, warning or information.
    pub severity: Severity,
}

/// Checks one `Narrative.div` value (the JSON string, already unescaped).
///
/// Never panics; linear in the length of `div`. An empty result means the
/// div is acceptable.
pub fn check_div(div: &str) -> Vec<NarrativeFinding> {
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
            self.attribute(local, shown, key, value.as_deref(), at);
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
        at: u64,
    ) {
        let shown_key = Shown(key);
        let permitted = key == "xmlns"
            || key.starts_with("xmlns:")
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

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: &str = r#"<div xmlns="http://www.w3.org/1999/xhtml">"#;

    fn div(inner: &str) -> String {
        format!("{OPEN}{inner}</div>")
    }

    #[test]
    fn byte_scan_finds_the_same_non_xml_character_as_a_char_scan() {
        for text in [
            "plain",
            "tab\tok\r\n",
            "a\u{1}b",
            "é\u{FFFE}x\u{1}",
            "\u{FFFF}",
            "x\u{7}\u{FFFE}",
            "\u{10000}\u{0}",
            "\u{D7FF}\u{E000}\u{FFFD}",
        ] {
            let slow = text.char_indices().find(|(_, c)| !is_xml_char(*c));
            assert_eq!(first_non_xml_char(text), slow, "{text:?}");
        }
    }

    #[test]
    fn permitted_lists_are_sorted_for_binary_search() {
        assert!(PERMITTED_ELEMENTS.windows(2).all(|w| w[0] < w[1]));
        assert!(PERMITTED_ATTRIBUTES.windows(2).all(|w| w[0] < w[1]));
        assert!(PERMITTED_ELEMENT_ATTRIBUTES.windows(2).all(|w| w[0] < w[1]));
    }

    fn rules(findings: &[NarrativeFinding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.rule).collect()
    }

    /// The findings of `rule` at `severity`.
    fn of(findings: &[NarrativeFinding], rule: &str, severity: Severity) -> usize {
        findings
            .iter()
            .filter(|f| f.rule == rule && f.severity == severity)
            .count()
    }

    fn assert_error(input: &str, rule: &str) -> Vec<NarrativeFinding> {
        let findings = check_div(input);
        assert!(
            of(&findings, rule, Severity::Error) > 0,
            "expected a {rule} error for {input:?}, got {findings:?}"
        );
        findings
    }

    #[test]
    fn accepts_the_spec_examples() {
        let plain = div("This is a simple\n          example with only plain text");
        assert_eq!(check_div(&plain), vec![]);
        let formatted = format!(
            "{OPEN}\n     <p>\n       This is an <i>example</i> with some <b>xhtml</b> formatting.\n     </p>\n   </div>"
        );
        assert_eq!(check_div(&formatted), vec![]);
    }

    #[test]
    fn accepts_a_rich_narrative() {
        let input = div(concat!(
            r#"<!-- generated --><h3 class="title" style="font-weight: bold">Allergies</h3>"#,
            r#"<table border="1" cellpadding="2"><thead><tr><th scope="col">Substance</th></tr></thead>"#,
            r#"<tbody><tr><td colspan="2" style="color:red">Penicillin&#160;G &amp; &lt;more&gt;</td></tr></tbody></table>"#,
            r#"<ul><li><a href="http://hl7.org/fhir/R4/narrative.html#xhtml">spec</a></li>"#,
            r##"<li><a name="x1" href="#x1">anchor</a></li></ul>"##,
            r##"<p xml:lang="de" lang="de">Bild: <img src="#pic1" alt="picture"/>"##,
            r#"<img src="data:image/png;base64,iVBORw0KGgo=" alt="dot"/><br/></p>"#,
            r#"<h:span xmlns:h="http://www.w3.org/1999/xhtml">prefixed</h:span>"#,
        ));
        assert_eq!(check_div(&input), vec![]);
    }

    #[test]
    fn root_must_be_a_div_in_the_xhtml_namespace() {
        assert_error(
            r#"<p xmlns="http://www.w3.org/1999/xhtml">x</p>"#,
            RULE_XHTML,
        );
        assert_error("<div>no namespace</div>", RULE_XHTML);
        assert_error(r#"<div xmlns="http://hl7.org/fhir">x</div>"#, RULE_XHTML);
        assert_error(
            r#"<h:div xmlns:h="http://www.w3.org/1999/xhtml">x</h:div>"#,
            RULE_XHTML,
        );
        assert_error(&div(r#"<p xmlns="urn:other">x</p>"#), RULE_XHTML);
        assert_error(
            &div(r#"<svg:svg xmlns:svg="http://www.w3.org/2000/svg">x</svg:svg>"#),
            RULE_XHTML,
        );
        assert_error(&div("<q:p>undeclared prefix</q:p>"), RULE_XHTML);
    }

    #[test]
    fn refuses_what_is_not_well_formed() {
        for input in [
            "",
            "   ",
            "text only",
            &format!("{OPEN}unclosed"),
            &div("<p>x</b>"),
            &div("<p>x"),
            &div("a < b"),
            &div("a & b"),
            &div(r#"<p class=unquoted>x</p>"#),
            &div(r#"<p class="a" class="b">x</p>"#),
            &div(r#"<p title="a<b">x</p>"#),
            &div("a ]]> b"),
            &div("bad \u{1} control"),
            &div("&#0;"),
            &div("&#xD800;"),
            &div("&#x;"),
            &(div("<p>x</p>") + "<div/>"),
            &(div("x") + "trailing"),
            &(String::from("<!-- c -->") + &div("x")),
            &div("<!-- a -- b -->"),
            &div("<!--><img src=x/>-->"),
            &div("<![CDATA[ x > <img src=x> ]]>"),
            &(String::from("<!DOCTYPE div>") + &div("x")),
            &(String::from("<?xml version=\"1.0\"?>") + &div("x")),
            &div("<?php echo 1 ?>x"),
        ] {
            assert_error(input, RULE_XHTML);
        }
    }

    #[test]
    fn html_entities_are_not_defined() {
        let findings = assert_error(&div("a&nbsp;b &copy;"), RULE_XHTML);
        assert!(findings.iter().any(|f| f.message.contains("&nbsp;")));
        assert_error(&div(r#"<p title="a&nbsp;b">x</p>"#), RULE_XHTML);
        // The five XML entities and character references are fine.
        assert_eq!(
            check_div(&div("&lt;&gt;&amp;&quot;&apos;&#160;&#xA0;&#x1F600;")),
            vec![]
        );
    }

    #[test]
    fn forbidden_elements_are_named() {
        for name in [
            "script", "style", "form", "input", "iframe", "object", "embed", "base", "link",
            "meta", "head", "body", "html", "svg", "math", "button", "textarea", "select", "font",
            "center", "u", "s", "strike", "ins", "del", "frame", "applet",
        ] {
            let findings = assert_error(&div(&format!("<p>x<{name}>y</{name}></p>")), RULE_TXT1);
            assert!(
                findings
                    .iter()
                    .any(|f| f.message.contains(&format!("<{name}>"))),
                "{findings:?}"
            );
        }
        for name in ["address", "bdo", "kbd", "map", "area", "samp", "acronym"] {
            assert_eq!(
                check_div(&div(&format!("<{name}>x</{name}>"))),
                vec![],
                "{name}"
            );
        }
    }

    #[test]
    fn forbidden_attributes_are_named() {
        let findings = assert_error(&div(r#"<p onclick="steal()">x</p>"#), RULE_TXT1);
        assert!(findings[0].message.contains("'onclick'"));
        assert!(findings[0].message.contains("event handler"));
        assert_error(&div(r#"<a href="x.html" target="_blank">x</a>"#), RULE_TXT1);
        assert_error(&div(r#"<p href="x.html">x</p>"#), RULE_TXT1);
        assert_error(&div(r#"<td height="3">x</td>"#), RULE_TXT1);
        assert_error(&div(r#"<a xlink:href="x">x</a>"#), RULE_TXT1);
        assert_error(
            r#"<div xmlns="http://www.w3.org/1999/xhtml" onload="x()">x</div>"#,
            RULE_TXT1,
        );
        let space = check_div(&div(r#"<pre xml:space="preserve">x</pre>"#));
        assert_eq!(rules(&space), vec![RULE_TXT1]);
        assert_eq!(space[0].severity, Severity::Information);
    }

    #[test]
    fn script_urls_are_refused() {
        for href in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " \u{9}java\tscript:alert(1)",
            "&#106;avascript:alert(1)",
            "java&#x0A;script:alert(1)",
            "vbscript:msgbox(1)",
            "data:text/html;base64,PHNjcmlwdD4=",
        ] {
            let escaped = href.replace('\t', "&#9;");
            assert_error(&div(&format!(r#"<a href="{escaped}">x</a>"#)), RULE_TXT1);
        }
        assert_error(&div(r#"<area href="javascript:x()"/>x"#), RULE_TXT1);
        assert_error(&div(r#"<q cite="javascript:x()">x</q>"#), RULE_TXT1);
        assert_error(
            &div(r#"<img src="data:text/html,&lt;script&gt;" alt="x"/>"#),
            RULE_TXT1,
        );
        assert_error(
            &div(r#"<img src="data:image/png;base64,abc" alt="x"/>"#),
            RULE_TXT1,
        );
        assert_error(
            &div(r#"<img src="data:image/png;base64" alt="x"/>"#),
            RULE_TXT1,
        );
        assert_error(&div(r#"<a href="">x</a>"#), RULE_TXT1);
        assert_error(&div(r#"<a href="http://x.org/a b">x</a>"#), RULE_TXT1);
        // Ordinary links and schemes are fine.
        for href in [
            "http://x.org/a?b=c&amp;d=e#f",
            "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "mailto:someone@example.org",
            "Patient/123",
            "#section-1",
        ] {
            assert_eq!(
                check_div(&div(&format!(r#"<a href="{href}">x</a>"#))),
                vec![],
                "{href}"
            );
        }
    }

    #[test]
    fn external_images_are_a_warning() {
        let findings = check_div(&div(
            r#"<img src="https://tracker.example/p.gif" alt="x"/>"#,
        ));
        assert_eq!(rules(&findings), vec![RULE_TXT1]);
        assert_eq!(findings[0].severity, Severity::Warning);
    }

    #[test]
    fn styles_must_be_inert_and_internal() {
        assert_error(
            &div(r#"<p style="width: EXPRESSION(alert(1))">x</p>"#),
            RULE_TXT1,
        );
        assert_error(
            &div(r#"<p style="background: url( javascript:alert(1) )">x</p>"#),
            RULE_TXT1,
        );
        let external = check_div(&div(
            r#"<p style="background:url(http://t.example/x)">x</p>"#,
        ));
        assert_eq!(
            of(&external, RULE_TXT1, Severity::Warning),
            1,
            "{external:?}"
        );
        let escaped = check_div(&div(r#"<p style="color: \72 ed">x</p>"#));
        assert_eq!(of(&escaped, RULE_TXT1, Severity::Warning), 1, "{escaped:?}");
    }

    #[test]
    fn blocks_are_not_allowed_in_paragraphs() {
        assert_error(&div("<p>a<span><div>b</div></span></p>"), RULE_TXT1);
        assert_error(&div("<p>a<ul><li>b</li></ul></p>"), RULE_TXT1);
        assert_eq!(
            check_div(&div("<div><p>a</p><ul><li>b</li></ul></div>")),
            vec![]
        );
    }

    #[test]
    fn txt2_needs_content() {
        for input in [
            div(""),
            div("  \n\t "),
            div("<p> </p><!-- only a comment -->"),
            div("<img alt=\"no src\"/>"),
            format!(r#"<div xmlns="{XHTML_NS}"/>"#),
        ] {
            let findings = check_div(&input);
            assert_eq!(rules(&findings), vec![RULE_TXT2], "{input}: {findings:?}");
        }
        assert_eq!(check_div(&div("&#160;")), vec![]);
        assert_eq!(check_div(&div(r##"<img src="#pic"/>"##)), vec![]);
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{OPEN}{}", "<div>".repeat(100_000));
        let findings = check_div(&deep);
        assert_eq!(rules(&findings), vec![RULE_XHTML]);
        assert!(findings[0].message.contains("200"));
        let ok = format!(
            "{OPEN}{}x{}</div>",
            "<span>".repeat(MAX_DEPTH - 1),
            "</span>".repeat(MAX_DEPTH - 1)
        );
        assert_eq!(check_div(&ok), vec![]);
    }

    #[test]
    fn findings_are_capped_and_deduplicated() {
        let many = div(&(0..1000)
            .map(|i| format!("<x{i}>a</x{i}>"))
            .collect::<String>());
        let findings = check_div(&many);
        assert_eq!(findings.len(), MAX_FINDINGS + 1);
        assert_eq!(findings[MAX_FINDINGS].severity, Severity::Information);
        let repeated = div(&"<font>a</font>".repeat(1000));
        assert_eq!(check_div(&repeated).len(), 1);
    }

    #[test]
    fn messages_never_echo_content() {
        let secret = "SECRET-PATIENT-NAME";
        for input in [
            div(&format!("<script>{secret}</script>")),
            div(&format!(r#"<a href="javascript:{secret}">{secret}</a>"#)),
            div(&format!(
                r#"<img src="https://{secret}.example/x.gif" alt="{secret}"/>"#
            )),
            div(&format!(
                r#"<p onclick="{secret}" title="{secret}&bogus;">{secret}</p>"#
            )),
            div(&format!(
                r#"<p style="background:url({secret})">{secret} &amp; &nbsp;</p>"#
            )),
            div(&format!("<p>{secret}</b>")),
            div(&format!("<!--{secret}--->")),
            format!("{OPEN}{secret}"),
        ] {
            let findings = check_div(&input);
            assert!(!findings.is_empty(), "{input}");
            for finding in findings {
                assert!(!finding.message.contains(secret), "{}", finding.message);
            }
        }
    }

    #[test]
    fn long_names_are_shortened() {
        let name = "x".repeat(10_000);
        let findings = check_div(&div(&format!("<{name}>a</{name}>")));
        assert_eq!(rules(&findings), vec![RULE_TXT1]);
        assert!(findings[0].message.len() < 200, "{}", findings[0].message);
    }

    #[test]
    fn large_inputs_are_linear() {
        // ~3 MB of paragraphs.
        let big = div(&"<p class=\"c\">some text &amp; more</p>".repeat(80_000));
        assert_eq!(check_div(&big), vec![]);
        // One element with 50 000 distinct forbidden attributes.
        let attributes: String = (0..50_000).map(|i| format!(" a{i}=\"v\"")).collect();
        let findings = check_div(&div(&format!("<p{attributes}>x</p>")));
        assert_eq!(findings.len(), MAX_FINDINGS + 1);
        // Many namespace declarations, then many prefixed elements.
        let declarations: String = (0..20_000)
            .map(|i| format!(r#" xmlns:p{i}="{XHTML_NS}""#))
            .collect();
        let elements = "<p1>x</p1>".replace("p1", "p19999:b").repeat(20_000);
        let input = format!(r#"<div xmlns="{XHTML_NS}"{declarations}>{elements}</div>"#);
        assert_eq!(check_div(&input), vec![]);
    }

    #[test]
    fn mutations_never_panic() {
        let sample = div(concat!(
            r#"<p class="a" style="color:red">Text &amp; &#160; &#x41;<b>bold</b><!-- c --></p>"#,
            r##"<a href="#x">l</a><img src="data:image/png;base64,AAAA" alt="i"/>"##,
            r#"<table><tr><td colspan="2">c</td></tr></table><br/>"#,
        ));
        let boundaries: Vec<usize> = (0..=sample.len())
            .filter(|i| sample.is_char_boundary(*i))
            .collect();
        for &cut in &boundaries {
            let _ = check_div(&sample[..cut]);
            let _ = check_div(&sample[cut..]);
            for insert in [
                "<",
                "&",
                ">",
                "\"",
                "'",
                "]]>",
                "<!--",
                "<![CDATA[",
                "&#",
                ":",
                "=",
            ] {
                let mut mutated = sample.clone();
                mutated.insert_str(cut, insert);
                let _ = check_div(&mutated);
            }
            let mut removed = sample.clone();
            if let Some(c) = removed[cut..].chars().next() {
                removed.replace_range(cut..cut + c.len_utf8(), "");
                let _ = check_div(&removed);
            }
        }
    }
}
