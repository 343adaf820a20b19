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
//! | `txt-1` | only the attributes of Java `HTML_ATTRIBUTES` ([`PERMITTED_ATTRIBUTES`]) on any element, `HTML_COMBO_LIST` ([`PERMITTED_ELEMENT_ATTRIBUTES`]) on their element, and `xmlns`/`xmlns:*`; `on*` event handlers are named as such. On the root div itself only event handlers are refused (gateway policy): Java checks the names of its descendants only (`checkInnerNames` on `getChildNodes()`) | error | txt-1 ("no … event related attributes"); Java `XHTML_XHTML_ATTRIBUTE_ILLEGAL` |
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
//! Work is linear in the input, with no recursion and, for an acceptable
//! div, no allocation beyond the element stack and two buffers kept for
//! their capacity. One pass of a purpose-built scanner reads the bytes:
//! memchr jumps over text runs and attribute values, a byte-class table
//! reads names and whitespace, a start tag of the usual shape (`<name
//! a="v" ...>`) is read in one go, and `</name>` closing the innermost
//! element is recognised by comparing bytes. Names and values are borrowed
//! slices; references in an attribute value are decoded only where a check
//! reads the value (`xmlns`, URL attributes, `style`). Permitted names are
//! looked up with `match`; attribute uniqueness uses a hash set only past
//! eight attributes, namespace prefixes a hash map only once one is
//! declared. Any other shape of markup is read the way quick-xml 0.42 read
//! it before the scanner replaced it (the old checker is kept in test
//! builds as `reference`, and `differential` compares the two on every div
//! of the repository, on hand-written cases and on seeded mutations), so
//! findings, their order and their byte offsets are unchanged, except that
//! a malformed end tag is no longer echoed (it could hold text or values)
//! and an element left open after a byte order mark is named correctly.
//! At most [`MAX_FINDINGS`] findings are kept (identical messages once);
//! past that one information finding says how many were left out.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use ehds_fhir::outcome::Severity;
use memchr::{memchr, memchr_iter, memchr2, memchr3, memchr3_iter};
use smallvec::SmallVec;

#[cfg(test)]
mod differential;
pub mod links;
#[cfg(test)]
mod reference;

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

/// Whether an attribute of the root `div` is held to the permitted list.
/// Java checks the names of the root div's descendants only
/// (`InstanceValidator.checkInnerNames(…, xhtml.getChildNodes(), …)`, the
/// root's attributes are read only for its namespace), so an unknown
/// attribute on the root (`data-*`, `xml:base`, …) is accepted as Java
/// accepts it. Event handlers (`on*`) stay refused on the root too:
/// gateway policy, because consumers render the div as HTML (txt-1 "no
/// event related attributes"; R4 narrative.html).
pub fn root_attribute_is_checked(key: &str) -> bool {
    key.len() > 2 && key.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("on"))
}

/// Block elements not allowed inside a `p`: Java
/// `XhtmlValidator.HTML_BLOCK_LIST`.
pub const BLOCK_ELEMENTS: &[&str] = &["div", "blockquote", "table", "ol", "ul", "p"];

/// Whether `name` is one of [`PERMITTED_ELEMENTS`] (a `match`: a switch on
/// the length and a few comparisons, cheaper than hashing; unit-tested
/// against the list).
fn is_permitted_element(name: &str) -> bool {
    matches!(
        name,
        "a" | "abbr"
            | "acronym"
            | "address"
            | "area"
            | "b"
            | "bdo"
            | "big"
            | "blockquote"
            | "br"
            | "caption"
            | "cite"
            | "code"
            | "col"
            | "colgroup"
            | "dd"
            | "dfn"
            | "div"
            | "dl"
            | "dt"
            | "em"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "hr"
            | "i"
            | "img"
            | "kbd"
            | "li"
            | "map"
            | "ol"
            | "p"
            | "pre"
            | "q"
            | "samp"
            | "small"
            | "span"
            | "strong"
            | "sub"
            | "sup"
            | "table"
            | "tbody"
            | "td"
            | "tfoot"
            | "th"
            | "thead"
            | "tr"
            | "tt"
            | "ul"
            | "var"
    )
}

/// Whether `name` is one of [`PERMITTED_ATTRIBUTES`] (unit-tested against
/// the list).
fn is_permitted_attribute(name: &str) -> bool {
    matches!(
        name,
        "abbr"
            | "accesskey"
            | "align"
            | "axis"
            | "char"
            | "charoff"
            | "class"
            | "colspan"
            | "dir"
            | "headers"
            | "id"
            | "lang"
            | "rowspan"
            | "scope"
            | "span"
            | "style"
            | "tabindex"
            | "title"
            | "valign"
            | "width"
            | "xml:lang"
    )
}

/// Whether (element, attribute) is one of [`PERMITTED_ELEMENT_ATTRIBUTES`]
/// (unit-tested against the list).
fn is_permitted_element_attribute(element: &str, attribute: &str) -> bool {
    match element {
        "a" => matches!(
            attribute,
            "charset" | "coords" | "href" | "hreflang" | "name" | "rel" | "rev" | "shape" | "type"
        ),
        "area" => matches!(attribute, "alt" | "coords" | "href" | "nohref" | "shape"),
        "blockquote" | "q" => attribute == "cite",
        "div" => attribute == "xmlns",
        "img" => matches!(
            attribute,
            "alt" | "border" | "height" | "ismap" | "longdesc" | "src" | "usemap" | "width"
        ),
        "map" => attribute == "name",
        "pre" => attribute == "space",
        "table" => matches!(
            attribute,
            "border" | "cellpadding" | "cellspacing" | "frame" | "rules" | "summary" | "width"
        ),
        "td" => attribute == "nowrap",
        _ => false,
    }
}

/// Whether `name` is one of [`BLOCK_ELEMENTS`].
fn is_block_element(name: &str) -> bool {
    matches!(name, "div" | "blockquote" | "table" | "ol" | "ul" | "p")
}

/// Whether an attribute's value is a URL (HTML 4.01 %URI; on the permitted
/// elements).
fn is_url_attribute(name: &str) -> bool {
    matches!(name, "href" | "src" | "cite" | "longdesc" | "usemap")
}

/// How much of a name a message shows.
const MAX_SHOWN_CHARS: usize = 64;

/// Attributes an element has before their uniqueness is checked with a hash
/// set instead of by comparing with each.
const LINEAR_UNIQUENESS: usize = 8;

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

/// Where the scanner is relative to the root element.
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
struct Open<'s> {
    /// Its name as written (for the end tag and messages).
    name: &'s str,
    /// Whether it is a `p` (for the block-in-paragraph rule).
    is_p: bool,
    /// Whether unprefixed descendants are in the XHTML namespace.
    default_xhtml: bool,
    /// How many prefixes it binds (the last ones of `Checker::declared`,
    /// unbound when it closes).
    declared: usize,
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

/// Markup that ends before it is closed, or that is not markup at all
/// (XML 1.0 §2.5, §2.6, §2.8, §2.7, §3.1); the wording is the one the
/// quick-xml tokenizer used, so messages did not change with the scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unclosed {
    /// `<!` not followed by `--`, `[` or `D`/`d`.
    BangMarkup,
    ProcessingInstruction,
    XmlDeclaration,
    Comment,
    Doctype,
    CData,
    Tag,
    SingleQuotedValue,
    DoubleQuotedValue,
}

impl Unclosed {
    fn message(self) -> &'static str {
        match self {
            Self::BangMarkup => "not well-formed XML: unknown or missed symbol in markup",
            Self::ProcessingInstruction => {
                "not well-formed XML: processing instruction not closed: `?>` not found before end of input"
            }
            Self::XmlDeclaration => {
                "not well-formed XML: XML declaration not closed: `?>` not found before end of input"
            }
            Self::Comment => {
                "not well-formed XML: comment not closed: `-->` not found before end of input"
            }
            Self::Doctype => {
                "not well-formed XML: DOCTYPE not closed: `>` not found before end of input"
            }
            Self::CData => {
                "not well-formed XML: CDATA not closed: `]]>` not found before end of input"
            }
            Self::Tag => "not well-formed XML: tag not closed: `>` not found before end of input",
            Self::SingleQuotedValue => {
                "not well-formed XML: attribute value not closed: `'` not found before end of input"
            }
            Self::DoubleQuotedValue => {
                "not well-formed XML: attribute value not closed: `\"` not found before end of input"
            }
        }
    }
}

/// One attribute of the element being read: slices of the div.
#[derive(Debug, Clone, Copy)]
struct Attribute<'s> {
    key: &'s str,
    /// The value as written, between its quotes.
    raw: &'s str,
    /// Whether the value has references (`&`).
    has_references: bool,
    /// Whether its references are all good (else the value checks are
    /// skipped, and a namespace declaration reads it as empty).
    references_ok: bool,
}

impl<'s> Attribute<'s> {
    /// The value with references decoded (empty when they are bad).
    fn value(&self) -> Cow<'s, str> {
        if !self.references_ok {
            Cow::Borrowed("")
        } else if !self.has_references {
            Cow::Borrowed(self.raw)
        } else {
            decode_references(self.raw).unwrap_or_default()
        }
    }
}

/// The attributes of a start tag (XML 1.0 §3.1 `Attribute`), read the way
/// quick-xml 0.42 read them (a name runs from its first byte to `=` or
/// whitespace; whitespace is allowed around `=`; values are quoted).
#[derive(Debug)]
struct AttributeSyntax<'s> {
    /// The tag between `<` and `>` (or `/>`).
    content: &'s str,
    /// Where the next attribute may start.
    at: usize,
}

/// What [`AttributeSyntax::next`] read.
enum NextAttribute<'s> {
    /// A name and its raw value.
    Attribute(&'s str, &'s str),
    /// No more attributes.
    End,
    /// Not an attribute: a name without `=`, `=` without a quoted value, or a
    /// value without its closing quote.
    Malformed,
}

impl<'s> AttributeSyntax<'s> {
    fn next(&mut self) -> NextAttribute<'s> {
        let bytes = self.content.as_bytes();
        let Some(start) = skip_whitespace(bytes, self.at) else {
            return NextAttribute::End;
        };
        // The byte at `start` is part of the name whatever it is.
        let mut at = start.saturating_add(1);
        while bytes
            .get(at)
            .is_some_and(|&b| b != b'=' && !is_whitespace(b))
        {
            at = at.saturating_add(1);
        }
        let key_end = at;
        let equals = match bytes.get(at) {
            None => return NextAttribute::Malformed,
            Some(b'=') => at,
            Some(_) => match skip_whitespace(bytes, at) {
                Some(next) if bytes.get(next) == Some(&b'=') => next,
                _ => return NextAttribute::Malformed,
            },
        };
        let Some(open) = skip_whitespace(bytes, equals.saturating_add(1)) else {
            return NextAttribute::Malformed;
        };
        let quote = match bytes.get(open) {
            Some(&quote @ (b'"' | b'\'')) => quote,
            _ => return NextAttribute::Malformed,
        };
        let value_start = open.saturating_add(1);
        let Some(length) = memchr(quote, bytes.get(value_start..).unwrap_or_default()) else {
            return NextAttribute::Malformed;
        };
        let value_end = value_start.saturating_add(length);
        self.at = value_end.saturating_add(1);
        NextAttribute::Attribute(
            slice(self.content, start, key_end),
            slice(self.content, value_start, value_end),
        )
    }
}

/// The first index at or after `from` that is not XML whitespace.
fn skip_whitespace(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    let offset = rest.iter().position(|&b| !is_whitespace(b))?;
    Some(from.saturating_add(offset))
}

/// XML 1.0 §2.3 `S`.
fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `s[start..end]`, empty when that is not a slice of `s` (never the case
/// for the ASCII boundaries the scanner finds).
fn slice(s: &str, start: usize, end: usize) -> &str {
    s.get(start..end).unwrap_or_default()
}

/// An element's attributes, eight inline.
type Attributes<'s> = SmallVec<[Attribute<'s>; LINEAR_UNIQUENESS]>;

/// Byte class: may continue an XML name (`NameChar`; exact for ASCII, any
/// byte of a non-ASCII character).
const NAME_CHAR: u8 = 1;
/// Byte class: may start an XML name (`NameStartChar`, likewise).
const NAME_START: u8 = 2;
/// Byte class: XML whitespace.
const SPACE: u8 = 4;
/// Byte class: ends a run of text (`<`, `&`).
const TEXT_END: u8 = 8;
/// Byte class: an ASCII character [`is_url_char`] allows.
const URL_CHAR: u8 = 64;

/// The class bits of every byte, for the scanner's byte loops.
static CLASSES: [u8; 256] = classes();

#[allow(clippy::indexing_slicing)] // `i < 256`, evaluated at compile time
const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut class = 0;
        if b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80 {
            class |= NAME_START | NAME_CHAR;
        } else if b.is_ascii_digit() || b == b'-' || b == b'.' {
            class |= NAME_CHAR;
        }
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            class |= SPACE;
        }
        if b == b'<' || b == b'&' {
            class |= TEXT_END;
        }
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b';' | b'?'
                    | b':'
                    | b'@'
                    | b'&'
                    | b'='
                    | b'+'
                    | b'$'
                    | b'.'
                    | b','
                    | b'/'
                    | b'%'
                    | b'-'
                    | b'_'
                    | b'~'
                    | b'#'
                    | b'['
                    | b']'
                    | b'!'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'|'
            )
        {
            class |= URL_CHAR;
        }
        table[i] = class;
        i += 1;
    }
    table
}

/// The class bits of `b`.
fn class(b: u8) -> u8 {
    CLASSES.get(usize::from(b)).copied().unwrap_or(0)
}

/// The class bits of the byte at `i`; `None` past the end.
fn class_at(bytes: &[u8], i: usize) -> Option<u8> {
    bytes.get(i).map(|&b| class(b))
}

/// The first index at or after `from` whose byte has none of `bits`;
/// `None` when the div ends first.
fn skip_class(bytes: &[u8], from: usize, bits: u8) -> Option<usize> {
    let length = bytes
        .get(from..)?
        .iter()
        .position(|&b| class(b) & bits == 0)?;
    Some(from.saturating_add(length))
}

/// Where the text starting at `from` ends (the next `<` or `&`, or the end
/// of the div), and whether it has a `]`.
fn text_run(bytes: &[u8], from: usize) -> (usize, bool) {
    // Between tags there is often no text at all.
    if class_at(bytes, from).is_none_or(|class| class & TEXT_END != 0) {
        return (from, false);
    }
    let mut bracket = false;
    let mut at = from;
    loop {
        let rest = bytes.get(at..).unwrap_or_default();
        let Some(found) = memchr3(b'<', b'&', b']', rest) else {
            return (bytes.len(), bracket);
        };
        at = at.saturating_add(found);
        if bytes.get(at) != Some(&b']') {
            return (at, bracket);
        }
        bracket = true;
        at = at.saturating_add(1);
    }
}

/// A start tag of the plain shape, read in one pass.
#[derive(Debug)]
struct PlainStartTag<'s> {
    name: &'s str,
    empty: bool,
    /// Where the text after the tag starts.
    next: usize,
}

/// Reads the start tag at `lt` in one pass when it has the plain shape:
/// `<` name, then up to eight distinct attributes each after whitespace,
/// `name S? = S? "value"` (or single quotes) with no `<` and only good
/// references in the value, then `S? />` or `S? >`; names of name
/// characters starting with a name start character. Such a tag reads the
/// same as [`Checker::start`] reads it (its `>` is the first outside
/// quotes), without the findings that only malformed tags have; any other
/// shape is `None` and left to `start`.
fn plain_start_tag<'s>(
    src: &'s str,
    lt: usize,
    attributes: &mut Vec<Attribute<'s>>,
) -> Option<PlainStartTag<'s>> {
    let bytes = src.as_bytes();
    let name_start = lt.saturating_add(1);
    if class_at(bytes, name_start)? & NAME_START == 0 {
        return None;
    }
    let mut at = skip_class(bytes, name_start.saturating_add(1), NAME_CHAR)?;
    let name = slice(src, name_start, at);
    attributes.clear();
    loop {
        match *bytes.get(at)? {
            b'>' => {
                return Some(PlainStartTag {
                    name,
                    empty: false,
                    next: at.saturating_add(1),
                });
            }
            b'/' => {
                return (*bytes.get(at.saturating_add(1))? == b'>').then_some(PlainStartTag {
                    name,
                    empty: true,
                    next: at.saturating_add(2),
                });
            }
            b if is_whitespace(b) => {}
            _ => return None,
        }
        at = skip_class(bytes, at, SPACE)?;
        let key_start = at;
        match class_at(bytes, at)? {
            class if class & NAME_START != 0 => {}
            // `>` or `/` after whitespace: read at the top of the loop.
            _ if matches!(bytes.get(at), Some(b'>' | b'/')) => continue,
            _ => return None,
        }
        at = skip_class(bytes, at.saturating_add(1), NAME_CHAR)?;
        let key = slice(src, key_start, at);
        at = skip_class(bytes, at, SPACE)?;
        if *bytes.get(at)? != b'=' {
            return None;
        }
        at = skip_class(bytes, at.saturating_add(1), SPACE)?;
        let quote = *bytes.get(at)?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let value_start = at.saturating_add(1);
        let mut has_references = false;
        at = value_start;
        loop {
            at = at.saturating_add(memchr3(quote, b'<', b'&', bytes.get(at..)?)?);
            match *bytes.get(at)? {
                b'<' => return None,
                b'&' => has_references = true,
                _ => break,
            }
            at = at.saturating_add(1);
        }
        let raw = slice(src, value_start, at);
        at = at.saturating_add(1);
        if attributes.len() >= LINEAR_UNIQUENESS
            || attributes
                .iter()
                .any(|seen: &Attribute<'_>| seen.key == key)
            || (has_references && check_references(raw).is_err())
        {
            return None;
        }
        attributes.push(Attribute {
            key,
            raw,
            has_references,
            references_ok: true,
        });
    }
}

#[derive(Debug)]
struct Checker<'s> {
    findings: Vec<NarrativeFinding>,
    seen: HashSet<(&'static str, String)>,
    omitted: usize,
    phase: Phase,
    stack: Vec<Open<'s>>,
    /// The prefixes bound by the open elements, innermost last.
    declared: Vec<&'s str>,
    /// Prefix → binding stack (true when bound to XHTML); allocated only when
    /// a prefix is declared.
    bindings: HashMap<&'s str, SmallVec<[bool; 2]>>,
    /// How many `p` elements are open.
    open_paragraphs: usize,
    has_content: bool,
    /// The `style` value being checked, normalized (kept for its capacity).
    css: Vec<u8>,
    /// The attributes of the plain start tag being checked (kept for its
    /// capacity).
    plain_attributes: Vec<Attribute<'s>>,
}

impl Default for Checker<'_> {
    fn default() -> Self {
        Self {
            findings: Vec::new(),
            seen: HashSet::new(),
            omitted: 0,
            phase: Phase::Before,
            stack: Vec::new(),
            declared: Vec::new(),
            bindings: HashMap::new(),
            open_paragraphs: 0,
            has_content: false,
            css: Vec::new(),
            plain_attributes: Vec::new(),
        }
    }
}

impl<'s> Checker<'s> {
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

    fn xhtml(&mut self, message: String, at: usize) {
        self.report(RULE_XHTML, Severity::Error, message, Some(at as u64));
    }

    fn unclosed(&mut self, what: Unclosed, at: usize) {
        self.xhtml(what.message().to_owned(), at);
    }

    fn txt1(&mut self, severity: Severity, message: String, at: usize) {
        self.report(RULE_TXT1, severity, message, Some(at as u64));
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
    ///
    /// The scanner alternates between text (up to the next `<` or `&`),
    /// markup (from `<` to its end) and references (from `&` to `;`); each
    /// step returns where the next one starts, or `None` to stop.
    fn run(&mut self, div: &'s str) -> bool {
        if let Some((offset, ch)) = first_non_xml_char(div) {
            self.xhtml(
                format!("character U+{:04X} is not allowed in XML", u32::from(ch)),
                offset,
            );
            return false;
        }
        // A byte order mark before the root is an encoding signature, not
        // content (XML 1.0 §4.3.3, Appendix F); offsets count after it.
        let src = div.strip_prefix('\u{FEFF}').unwrap_or(div);
        let bytes = src.as_bytes();
        let mut at = 0usize;
        loop {
            let (run_end, bracket) = text_run(bytes, at);
            if run_end > at && self.text(slice(src, at, run_end), bracket, at) == Flow::Stop {
                return false;
            }
            let next = match bytes.get(run_end) {
                None => return self.eof(run_end),
                Some(b'<') => self.markup(src, run_end),
                Some(_) => self.reference_at(src, run_end),
            };
            match next {
                Some(next) => at = next,
                None => return false,
            }
        }
    }

    fn eof(&mut self, at: usize) -> bool {
        match self.phase {
            Phase::Before => {
                self.xhtml("the div has no root element".to_owned(), at);
                false
            }
            Phase::Inside => {
                let name = self.stack.last().map_or("div", |open| open.name);
                self.xhtml(
                    format!(
                        "element <{}> is not closed before the end of the div",
                        Shown(name)
                    ),
                    at,
                );
                false
            }
            Phase::After => true,
        }
    }

    /// `&` at `amp`: a reference up to `;`, which may not be preceded by
    /// another `&` or a `<` (XML 1.0 §4.1).
    fn reference_at(&mut self, src: &'s str, amp: usize) -> Option<usize> {
        let name_start = amp.saturating_add(1);
        let rest = src.as_bytes().get(name_start..).unwrap_or_default();
        match memchr3(b';', b'&', b'<', rest) {
            Some(length) if rest.get(length) == Some(&b';') => {
                let name_end = name_start.saturating_add(length);
                match self.reference(slice(src, name_start, name_end), amp) {
                    Flow::Continue => Some(name_end.saturating_add(1)),
                    Flow::Stop => None,
                }
            }
            _ => {
                self.xhtml(
                    "not well-formed XML: an '&' that does not start a reference ending in ';' (write &amp;)".to_owned(),
                    amp,
                );
                None
            }
        }
    }

    /// `<` at `lt`: a tag, comment, CDATA section, DOCTYPE or processing
    /// instruction; where the text after it starts.
    fn markup(&mut self, src: &'s str, lt: usize) -> Option<usize> {
        let tail = src.as_bytes().get(lt..).unwrap_or_default();
        match tail.get(1) {
            None => {
                self.unclosed(Unclosed::Tag, lt);
                None
            }
            Some(b'!') => self.bang(src, lt, tail),
            Some(b'?') => self.question_mark(lt, tail),
            Some(b'/') => {
                // `</name>` closing the innermost element: nothing to read.
                if let Some(open) = self.stack.last() {
                    let name_end = open.name.len().saturating_add(2);
                    if tail.get(2..name_end) == Some(open.name.as_bytes())
                        && tail.get(name_end) == Some(&b'>')
                        && let Some(open) = self.stack.pop()
                    {
                        self.close_innermost(&open);
                        return Some(lt.saturating_add(name_end).saturating_add(1));
                    }
                }
                let gt = self.tag_end(lt, tail)?;
                // `</`, the name, optional whitespace (XML 1.0 §3.1 `ETag`).
                let inner = slice(src, lt.saturating_add(2), gt);
                let name = match inner.bytes().rposition(|b| !is_whitespace(b)) {
                    Some(last) => inner.get(..=last).unwrap_or(inner),
                    None => inner,
                };
                match self.end(name, lt) {
                    Flow::Continue => Some(gt.saturating_add(1)),
                    Flow::Stop => None,
                }
            }
            Some(_) => {
                // The attributes of plain tags go to a buffer kept for its
                // capacity.
                let mut attributes = std::mem::take(&mut self.plain_attributes);
                let read = plain_start_tag(src, lt, &mut attributes)
                    .map(|tag| (self.plain_start(&tag, &attributes, lt), tag.next));
                self.plain_attributes = attributes;
                if let Some((flow, next)) = read {
                    return match flow {
                        Flow::Continue => Some(next),
                        Flow::Stop => None,
                    };
                }
                let gt = self.tag_end(lt, tail)?;
                let inner = slice(src, lt.saturating_add(1), gt);
                let (content, empty) = match inner.strip_suffix('/') {
                    Some(content) => (content, true),
                    None => (inner, false),
                };
                match self.start(content, empty, lt) {
                    Flow::Continue => Some(gt.saturating_add(1)),
                    Flow::Stop => None,
                }
            }
        }
    }

    /// The `>` that ends the tag at `lt` (not one inside quotes), as an
    /// offset in the div; reports an unclosed tag.
    fn tag_end(&mut self, lt: usize, tail: &[u8]) -> Option<usize> {
        match quoted_markup_end(tail) {
            Ok(end) => Some(lt.saturating_add(end)),
            Err(unclosed) => {
                self.unclosed(unclosed, lt);
                None
            }
        }
    }

    /// `<!`: a comment, CDATA section or DOCTYPE.
    fn bang(&mut self, src: &'s str, lt: usize, tail: &[u8]) -> Option<usize> {
        match tail.get(2) {
            Some(b'-') => self.comment_at(src, lt, tail),
            Some(b'[') => {
                let Some(end) = memchr_iter(b'>', tail)
                    .find(|&i| tail.get(..i).is_some_and(|before| before.ends_with(b"]]")))
                else {
                    self.unclosed(Unclosed::CData, lt);
                    return None;
                };
                if !tail.starts_with(b"<![CDATA[") {
                    self.unclosed(Unclosed::CData, lt);
                    return None;
                }
                self.xhtml(
                    "CDATA sections are not accepted in a narrative (HTML parsers read them differently)".to_owned(),
                    lt,
                );
                Some(lt.saturating_add(end).saturating_add(1))
            }
            Some(b'D' | b'd') => {
                let Some(end) = doctype_end(tail) else {
                    self.unclosed(Unclosed::Doctype, lt);
                    return None;
                };
                let keyword = tail
                    .get(..9)
                    .is_some_and(|k| k.eq_ignore_ascii_case(b"<!DOCTYPE"));
                if !keyword {
                    self.unclosed(Unclosed::Doctype, lt);
                    return None;
                }
                let named = tail
                    .get(9..end)
                    .is_some_and(|name| name.iter().any(|&b| !is_whitespace(b)));
                if !named {
                    // A DOCTYPE without a name, reported at its `>`.
                    self.xhtml("not well-formed XML".to_owned(), lt.saturating_add(end));
                    return None;
                }
                self.xhtml("a DOCTYPE is not allowed in a narrative".to_owned(), lt);
                Some(lt.saturating_add(end).saturating_add(1))
            }
            _ => {
                self.unclosed(Unclosed::BangMarkup, lt);
                None
            }
        }
    }

    /// `<!-`: a comment up to the first `-->` at least seven bytes after
    /// `<` (so `<!-->` and `<!--->` do not end it).
    fn comment_at(&mut self, src: &'s str, lt: usize, tail: &[u8]) -> Option<usize> {
        let Some(end) = memchr_iter(b'>', tail)
            .find(|&i| i > 5 && tail.get(..i).is_some_and(|before| before.ends_with(b"--")))
        else {
            self.unclosed(Unclosed::Comment, lt);
            return None;
        };
        if !tail.starts_with(b"<!--") {
            self.unclosed(Unclosed::Comment, lt);
            return None;
        }
        // `--` inside (XML 1.0 §2.5), including a last `-` before `-->`.
        // The offset reported is the one quick-xml reported: that of the
        // offending `-` counted from after the last single `-` before it.
        let content_end = end.saturating_sub(2);
        let mut from = 4usize;
        while let Some(dash) = memchr(b'-', tail.get(from..content_end).unwrap_or_default()) {
            from = from.saturating_add(dash).saturating_add(1);
            if tail.get(from) == Some(&b'-') {
                self.xhtml(
                    "not well-formed XML: '--' inside a comment".to_owned(),
                    lt.saturating_add(4).saturating_add(dash),
                );
                return None;
            }
        }
        let content = slice(src, lt.saturating_add(4), lt.saturating_add(content_end));
        self.comment(content, lt);
        Some(lt.saturating_add(end).saturating_add(1))
    }

    /// `<?`: an XML declaration or a processing instruction, up to `?>`.
    fn question_mark(&mut self, lt: usize, tail: &[u8]) -> Option<usize> {
        let end = memchr_iter(b'>', tail).find(|&i| {
            i.checked_sub(1)
                .and_then(|before| tail.get(before))
                .is_some_and(|&b| b == b'?')
        });
        let Some(end) = end else {
            let declaration = tail.starts_with(b"<?xml")
                && tail.get(5).is_none_or(|&b| is_whitespace(b) || b == b'?');
            let what = if declaration {
                Unclosed::XmlDeclaration
            } else {
                Unclosed::ProcessingInstruction
            };
            self.unclosed(what, lt);
            return None;
        };
        // `<?>`: the `?` of `<?` cannot also open `?>`.
        if end < 3 {
            self.unclosed(Unclosed::ProcessingInstruction, lt);
            return None;
        }
        let target = tail.get(2..end.saturating_sub(1)).unwrap_or_default();
        let declaration =
            target.starts_with(b"xml") && target.get(3).is_none_or(|&b| is_whitespace(b));
        let message = if declaration {
            "an XML declaration is not allowed in a narrative div"
        } else {
            "processing instructions are not allowed in a narrative"
        };
        self.xhtml(message.to_owned(), lt);
        Some(lt.saturating_add(end).saturating_add(1))
    }

    /// Whether an element may start at `at`: not after the root, not
    /// deeper than [`MAX_DEPTH`]; `Some(is_root)` when it may.
    fn may_open(&mut self, at: usize) -> Option<bool> {
        let is_root = match self.phase {
            Phase::Before => true,
            Phase::Inside => false,
            Phase::After => {
                self.xhtml(
                    "content after the root element: a narrative has exactly one root <div>"
                        .to_owned(),
                    at,
                );
                return None;
            }
        };
        if self.stack.len() >= MAX_DEPTH {
            self.xhtml(
                format!("elements are nested deeper than {MAX_DEPTH} levels; the rest of the div was not checked"),
                at,
            );
            return None;
        }
        Some(is_root)
    }

    /// A start tag at `at` read by [`plain_start_tag`].
    fn plain_start(
        &mut self,
        tag: &PlainStartTag<'s>,
        attributes: &[Attribute<'s>],
        at: usize,
    ) -> Flow {
        let Some(is_root) = self.may_open(at) else {
            return Flow::Stop;
        };
        self.start_element(tag.name, attributes, tag.empty, is_root, at)
    }

    /// A start tag at `at` of any shape; `content` is what lies between `<`
    /// and `>` or `/>`. Reports what is malformed in the order quick-xml's
    /// tokenizer and the old checker met it.
    fn start(&mut self, content: &'s str, empty: bool, at: usize) -> Flow {
        let Some(is_root) = self.may_open(at) else {
            return Flow::Stop;
        };
        let name_len = content
            .bytes()
            .position(is_whitespace)
            .unwrap_or(content.len());
        let raw_name = slice(content, 0, name_len);
        if !is_name(raw_name) {
            self.xhtml("malformed element name".to_owned(), at);
            return Flow::Stop;
        }
        let shown = Shown(raw_name);

        // Attributes: syntax, uniqueness, references. A value whose
        // references are bad skips the value checks.
        let mut attributes: Attributes<'s> = SmallVec::new();
        let mut names: Option<HashSet<&'s str>> = None;
        let mut syntax = AttributeSyntax {
            content,
            at: name_len,
        };
        loop {
            let (key, raw) = match syntax.next() {
                NextAttribute::Attribute(key, raw) => (key, raw),
                NextAttribute::End => break,
                NextAttribute::Malformed => {
                    self.xhtml(format!("malformed attribute syntax in <{shown}>"), at);
                    return Flow::Stop;
                }
            };
            if !is_name(key) {
                self.xhtml(format!("malformed attribute name in <{shown}>"), at);
                return Flow::Stop;
            }
            let repeated = if attributes.len() < LINEAR_UNIQUENESS {
                attributes.iter().any(|seen| seen.key == key)
            } else {
                let names =
                    names.get_or_insert_with(|| attributes.iter().map(|seen| seen.key).collect());
                !names.insert(key)
            };
            if repeated {
                self.xhtml(
                    format!("attribute '{}' appears twice on <{shown}>", Shown(key)),
                    at,
                );
                return Flow::Stop;
            }
            let mut attribute = Attribute {
                key,
                raw,
                has_references: false,
                references_ok: true,
            };
            if memchr2(b'<', b'&', raw.as_bytes()).is_some() {
                if raw.as_bytes().contains(&b'<') {
                    self.xhtml(
                        format!(
                            "attribute '{}' on <{shown}> contains a raw '<' (write &lt;)",
                            Shown(key)
                        ),
                        at,
                    );
                    return Flow::Stop;
                }
                attribute.has_references = true;
                if let Err(problem) = check_references(raw) {
                    self.xhtml(
                        format!(
                            "attribute '{}' on <{shown}> contains {}",
                            Shown(key),
                            problem.describe()
                        ),
                        at,
                    );
                    attribute.references_ok = false;
                }
            }
            attributes.push(attribute);
        }
        self.start_element(raw_name, &attributes, empty, is_root, at)
    }

    /// The checks of an element whose name and attributes are well-formed
    /// (references in values may be bad), then opens it.
    fn start_element(
        &mut self,
        raw_name: &'s str,
        attributes: &[Attribute<'s>],
        empty: bool,
        is_root: bool,
        at: usize,
    ) -> Flow {
        let shown = Shown(raw_name);
        // Namespaces.
        let parent_default = self.stack.last().is_some_and(|open| open.default_xhtml);
        let mut default_xhtml = parent_default;
        let mut xmlns: Option<bool> = None;
        let declared_before = self.declared.len();
        for attribute in attributes {
            if attribute.key == "xmlns" {
                let is_xhtml = attribute.value() == XHTML_NS;
                xmlns = Some(is_xhtml);
                default_xhtml = is_xhtml;
            } else if let Some(prefix) = attribute.key.strip_prefix("xmlns:") {
                let value = attribute.value();
                if prefix.is_empty()
                    || prefix.contains(':')
                    || prefix == "xmlns"
                    || value.is_empty()
                {
                    self.xhtml(format!("malformed namespace declaration on <{shown}>"), at);
                    continue;
                }
                self.bindings
                    .entry(prefix)
                    .or_default()
                    .push(value == XHTML_NS);
                self.declared.push(prefix);
            }
        }
        let declared = self.declared.len().saturating_sub(declared_before);
        let (prefix, local) = match raw_name.bytes().position(|b| b == b':') {
            Some(colon) => (
                Some(slice(raw_name, 0, colon)),
                slice(raw_name, colon.saturating_add(1), raw_name.len()),
            ),
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
        if !is_permitted_element(local) {
            self.txt1(
                Severity::Error,
                format!("element <{shown}> is not permitted in a narrative"),
                at,
            );
        }
        if self.open_paragraphs > 0 && is_block_element(local) {
            self.txt1(
                Severity::Error,
                format!("block element <{shown}> is not permitted inside a <p>"),
                at,
            );
        }

        // txt-1: attributes.
        for attribute in attributes {
            self.attribute(local, shown, attribute, is_root, at);
        }

        // txt-2: an image counts as content.
        if local == "img" && attributes.iter().any(|attribute| attribute.key == "src") {
            self.has_content = true;
        }

        if is_root {
            self.phase = Phase::Inside;
        }
        let open = Open {
            name: raw_name,
            is_p: local == "p",
            default_xhtml,
            declared,
        };
        if empty {
            self.close(&open);
        } else {
            if open.is_p {
                self.open_paragraphs = self.open_paragraphs.saturating_add(1);
            }
            self.stack.push(open);
        }
        Flow::Continue
    }

    /// The txt-1 checks of one attribute of `element`.
    ///
    /// On the root div only event handlers are refused (see
    /// [`root_attribute_is_checked`]).
    fn attribute(
        &mut self,
        element: &str,
        shown: Shown<'_>,
        attribute: &Attribute<'_>,
        is_root: bool,
        at: usize,
    ) {
        let key = attribute.key;
        let shown_key = Shown(key);
        let permitted = is_permitted_attribute(key)
            || is_permitted_element_attribute(element, key)
            || key == "xmlns"
            || key.starts_with("xmlns:")
            || (is_root && !root_attribute_is_checked(key));
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
        if !attribute.references_ok {
            return;
        }
        if is_url_attribute(key) {
            self.url(element, shown, key, &attribute.value(), at);
        }
        if key == "style" {
            self.style(shown, &attribute.value(), at);
        }
    }

    fn url(&mut self, element: &str, shown: Shown<'_>, key: &str, value: &str, at: usize) {
        let scheme = url_scheme(value);
        let is_data = scheme == Some(Scheme::Data);
        let img_src = element == "img" && key == "src";
        match scheme {
            Some(Scheme::JavaScript | Scheme::VbScript) => {
                let active = if scheme == Some(Scheme::JavaScript) {
                    "javascript"
                } else {
                    "vbscript"
                };
                self.txt1(
                    Severity::Error,
                    format!("<{shown}> {key} uses the {active}: scheme (active content)"),
                    at,
                );
                return;
            }
            Some(Scheme::Data) if !img_src => {
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
            let url_chars = if value.is_ascii() {
                value.bytes().all(|b| class(b) & URL_CHAR != 0)
            } else {
                value.chars().all(is_url_char)
            };
            if !url_chars {
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

    fn style(&mut self, shown: Shown<'_>, value: &str, at: usize) {
        let mut css = std::mem::take(&mut self.css);
        css_for_matching(value, &mut css);
        let found = CssFound::in_css(&css);
        self.css = css;
        if found.active {
            self.txt1(
                Severity::Error,
                format!("style attribute on <{shown}> contains active CSS (expression(), script URLs, bindings or behaviors)"),
                at,
            );
        } else if found.external {
            self.txt1(
                Severity::Warning,
                format!("style attribute on <{shown}> loads an external resource; narrative styles SHOULD be internally contained"),
                at,
            );
        } else if found.escape {
            self.txt1(
                Severity::Warning,
                format!("style attribute on <{shown}> uses CSS escapes, which this check cannot see through"),
                at,
            );
        }
    }

    /// An end tag named `name` at `at` closes the innermost open element of
    /// that name (XML 1.0 §3 "Element Type Match"). What follows `</` is
    /// named in a message only when it is a name: `</` in text, or an end
    /// tag with attributes, would otherwise echo text or values.
    fn end(&mut self, name: &str, at: usize) -> Flow {
        let Some(open) = self.stack.pop() else {
            let message = if is_name(name) {
                format!(
                    "not well-formed XML: end tag </{}> has no start tag",
                    Shown(name)
                )
            } else {
                "not well-formed XML: a malformed end tag ('</' not followed by a name and '>') has no start tag".to_owned()
            };
            self.xhtml(message, at);
            return Flow::Stop;
        };
        if open.name != name {
            let message = if is_name(name) {
                format!(
                    "not well-formed XML: end tag </{}> does not match start tag <{}>",
                    Shown(name),
                    Shown(open.name)
                )
            } else {
                format!(
                    "not well-formed XML: a malformed end tag ('</' not followed by a name and '>') where </{}> was expected",
                    Shown(open.name)
                )
            };
            self.xhtml(message, at);
            return Flow::Stop;
        }
        self.close_innermost(&open);
        Flow::Continue
    }

    /// `open`, just taken off the stack, is closed by its end tag.
    fn close_innermost(&mut self, open: &Open<'s>) {
        if open.is_p {
            self.open_paragraphs = self.open_paragraphs.saturating_sub(1);
        }
        self.close(open);
    }

    /// Unbinds what `open` declared; after the root, the phase moves on.
    fn close(&mut self, open: &Open<'s>) {
        for _ in 0..open.declared {
            if let Some(prefix) = self.declared.pop()
                && let Some(stack) = self.bindings.get_mut(prefix)
            {
                stack.pop();
            }
        }
        if self.stack.is_empty() {
            self.phase = Phase::After;
        }
    }

    /// A run of text at `at`; `bracket` when it has a `]`.
    fn text(&mut self, text: &str, bracket: bool, at: usize) -> Flow {
        if self.phase != Phase::Inside {
            if has_non_space(text) {
                self.xhtml("text outside the root <div> is not allowed".to_owned(), at);
                return Flow::Stop;
            }
            return Flow::Continue;
        }
        if bracket && text.contains("]]>") {
            self.xhtml("']]>' is not allowed in text (write ]]&gt;)".to_owned(), at);
        }
        if !self.has_content && has_non_space(text) {
            self.has_content = true;
        }
        Flow::Continue
    }

    fn reference(&mut self, name: &str, at: usize) -> Flow {
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

    fn comment(&mut self, comment: &str, at: usize) {
        if self.phase != Phase::Inside {
            self.xhtml(
                "comments outside the root <div> are not allowed (the div's content must lie between the first '>' and the last '<')".to_owned(),
                at,
            );
            return;
        }
        let unsafe_start = comment.starts_with('>') || comment.starts_with("->");
        if unsafe_start || comment.contains("--") || comment.ends_with('-') {
            self.xhtml(
                "a comment starts with '>' or '->', contains '--' or ends with '-' (HTML and XML read it differently)".to_owned(),
                at,
            );
        }
    }
}

/// Whether text has a character other than XML whitespace (XPath
/// `normalize-space`).
fn has_non_space(text: &str) -> bool {
    text.bytes().any(|b| !is_whitespace(b))
}

/// Where the markup starting at `tail[0]` (`<`) ends: its first `>` outside
/// single or double quotes (XML 1.0 §3.1 `STag`, `ETag`; quoted values may
/// hold `>`).
fn quoted_markup_end(tail: &[u8]) -> Result<usize, Unclosed> {
    let mut quote: Option<u8> = None;
    for i in memchr3_iter(b'>', b'\'', b'"', tail) {
        let Some(&b) = tail.get(i) else {
            continue;
        };
        match quote {
            None if b == b'>' => return Ok(i),
            None => quote = Some(b),
            Some(open) if open == b => quote = None,
            Some(_) => {}
        }
    }
    Err(match quote {
        None => Unclosed::Tag,
        Some(b'\'') => Unclosed::SingleQuotedValue,
        Some(_) => Unclosed::DoubleQuotedValue,
    })
}

/// Where a `<!DOCTYPE ...>` starting at `tail[0]` ends: its `>` after any
/// quoted external identifier and any internal subset `[...]` (whose
/// markup declarations, comments and processing instructions may hold `>`
/// and `]`), as quick-xml 0.42's `DtdParser` found it (XML 1.0 §2.8).
fn doctype_end(tail: &[u8]) -> Option<usize> {
    #[derive(Clone, Copy)]
    enum State {
        BeforeSubset,
        Quoted(u8),
        InSubset,
        AfterSubset,
    }
    let mut state = State::BeforeSubset;
    let mut at = 0usize;
    loop {
        let rest = tail.get(at..).filter(|rest| !rest.is_empty())?;
        match state {
            State::BeforeSubset => {
                let i = rest
                    .iter()
                    .position(|&b| matches!(b, b'\'' | b'"' | b'[' | b'>'))?;
                match rest.get(i) {
                    Some(&quote @ (b'\'' | b'"')) => state = State::Quoted(quote),
                    Some(b'[') => state = State::InSubset,
                    _ => return Some(at.saturating_add(i)),
                }
                at = at.saturating_add(i).saturating_add(1);
            }
            State::Quoted(quote) => {
                let i = memchr(quote, rest)?;
                state = State::BeforeSubset;
                at = at.saturating_add(i).saturating_add(1);
            }
            State::InSubset => {
                let i = memchr2(b']', b'<', rest)?;
                at = at.saturating_add(i).saturating_add(1);
                if rest.get(i) == Some(&b']') {
                    state = State::AfterSubset;
                } else {
                    let markup = tail.get(at..).unwrap_or_default();
                    at = at.saturating_add(subset_markup_skip(markup)?);
                }
            }
            State::AfterSubset => return memchr(b'>', rest).map(|i| at.saturating_add(i)),
        }
    }
}

/// How far past its `<` a markup declaration, comment or processing
/// instruction in a DOCTYPE's internal subset reaches (`markup` starts
/// after the `<`); `None` when it is not closed.
fn subset_markup_skip(markup: &[u8]) -> Option<usize> {
    let after = |skip: usize| markup.get(skip..).unwrap_or_default();
    if markup.starts_with(b"?") {
        // Up to the `>` of `?>` (the `?` of `<?` cannot end it).
        let body = after(1);
        let end = memchr_iter(b'>', body).find(|&i| {
            i.checked_sub(1)
                .and_then(|before| body.get(before))
                .is_some_and(|&b| b == b'?')
        })?;
        Some(end.saturating_add(1))
    } else if markup.starts_with(b"!--") {
        let body = after(3);
        let end = memchr_iter(b'>', body)
            .find(|&i| body.get(..i).is_some_and(|before| before.ends_with(b"--")))?;
        Some(end.saturating_add(4))
    } else if markup.starts_with(b"!ELEMENT") {
        Some(memchr(b'>', after(8))?.saturating_add(9))
    } else if let Some(skip) = [&b"!ENTITY"[..], b"!ATTLIST", b"!NOTATION"]
        .iter()
        .find(|keyword| markup.starts_with(keyword))
        .map(|keyword| keyword.len())
    {
        quoted_markup_end(after(skip))
            .ok()
            .map(|end| end.saturating_add(skip))
    } else {
        Some(memchr(b'>', markup)?.saturating_add(1))
    }
}

/// The first character that is not an XML 1.0 §2.2 `Char`. In a Rust
/// string (no surrogates) only the C0 controls other than tab, line feed and
/// carriage return, and U+FFFE / U+FFFF (`EF BF BE`, `EF BF BF`), are
/// excluded: 32 bytes at a time are tested (as four words) for a byte below
/// 0x20 or a non-ASCII byte, and only such blocks are looked at byte by
/// byte.
fn first_non_xml_char(div: &str) -> Option<(usize, char)> {
    const BLOCK: usize = 32;
    let bytes = div.as_bytes();
    let suspect_at = |i: usize| -> bool {
        match bytes.get(i) {
            Some(&b) if b < 0x20 => !matches!(b, b'\t' | b'\n' | b'\r'),
            Some(0xEF) => {
                bytes.get(i.saturating_add(1)) == Some(&0xBF)
                    && matches!(bytes.get(i.saturating_add(2)), Some(0xBE | 0xBF))
            }
            _ => false,
        }
    };
    let first_in = |from: usize, to: usize| (from..to).find(|&i| suspect_at(i));
    let mut blocks = bytes.chunks_exact(BLOCK);
    let mut base = 0usize;
    for block in blocks.by_ref() {
        if may_hold_non_xml(block)
            && let Some(i) = first_in(base, base.saturating_add(BLOCK))
        {
            return non_xml_char_at(div, i);
        }
        base = base.saturating_add(BLOCK);
    }
    let i = first_in(base, bytes.len())?;
    non_xml_char_at(div, i)
}

/// Whether some byte of `block` is below 0x20 or not ASCII, eight bytes at
/// a time (the classic "has less than" test, exact as a yes/no answer).
fn may_hold_non_xml(block: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut flags = 0u64;
    for word in block.chunks_exact(8) {
        let word = u64::from_ne_bytes(<[u8; 8]>::try_from(word).unwrap_or_default());
        flags |= (word.wrapping_sub(ONES.wrapping_mul(0x20)) & !word) | word;
    }
    flags & HIGHS != 0
}

/// The character at `offset`, which is not an XML character.
fn non_xml_char_at(div: &str, offset: usize) -> Option<(usize, char)> {
    let found = div.get(offset..)?.chars().next()?;
    debug_assert!(!is_xml_char(found));
    Some((offset, found))
}

/// XML 1.0 §2.2 `Char`.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// XML 1.0 §2.3 `Name`, exact for ASCII; non-ASCII characters are accepted
/// (so a byte test suffices: every byte of a non-ASCII character is above
/// 0x7F).
fn is_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    let start = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b':' || !b.is_ascii();
    start(first) && bytes.all(|b| start(b) || b.is_ascii_digit() || b == b'-' || b == b'.')
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
        other => Err(RefProblem::Undefined(Shown(other).to_string())),
    }
}

/// Checks the references in an attribute value without decoding it (each
/// `&` up to the next `;`); the first bad one.
fn check_references(raw: &str) -> Result<(), RefProblem> {
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        let after = rest.get(amp.saturating_add(1)..).unwrap_or_default();
        let Some(semicolon) = after.find(';') else {
            return Err(RefProblem::Unterminated);
        };
        resolve_reference(after.get(..semicolon).unwrap_or_default())?;
        rest = after.get(semicolon.saturating_add(1)..).unwrap_or_default();
    }
    Ok(())
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

/// The URL schemes the checks single out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    JavaScript,
    VbScript,
    Data,
    Other,
}

/// The scheme of a URL, read the way browsers do (WHATWG URL): leading and
/// trailing C0 controls and spaces are ignored, tabs and newlines anywhere
/// are removed, case is ignored. `None` for a relative reference.
///
/// Read by bytes: the characters trimmed and the characters of a scheme are
/// ASCII, and any other character (a byte above 0x7F) ends the reading with
/// `None`; trailing characters only matter after a `:` has been read.
fn url_scheme(value: &str) -> Option<Scheme> {
    const LONGEST: usize = "javascript".len();
    let bytes = value.as_bytes();
    let start = bytes.iter().position(|&b| b > b' ')?;
    let mut scheme = [0u8; LONGEST];
    let mut len = 0usize;
    for &b in bytes.get(start..).unwrap_or_default() {
        match b {
            b'\t' | b'\n' | b'\r' => {}
            b':' => {
                if len == 0 || !scheme.first().is_some_and(u8::is_ascii_alphabetic) {
                    return None;
                }
                return Some(match scheme.get(..len) {
                    Some(b"javascript") => Scheme::JavaScript,
                    Some(b"vbscript") => Scheme::VbScript,
                    Some(b"data") => Scheme::Data,
                    _ => Scheme::Other,
                });
            }
            b if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.') => {
                if let Some(slot) = scheme.get_mut(len) {
                    *slot = b.to_ascii_lowercase();
                }
                len = len.saturating_add(1);
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

/// CSS for pattern matching into `out`: comments and whitespace removed,
/// lower case ([`normalize_css`], without allocating for ASCII).
fn css_for_matching(css: &str, out: &mut Vec<u8>) {
    out.clear();
    if !css.is_ascii() {
        out.extend_from_slice(normalize_css(css).as_bytes());
        return;
    }
    let bytes = css.as_bytes();
    let mut in_comment = false;
    let mut at = 0usize;
    while let Some(&b) = bytes.get(at) {
        let next = bytes.get(at.saturating_add(1)).copied();
        if !in_comment && b == b'/' && next == Some(b'*') {
            in_comment = true;
            at = at.saturating_add(2);
            continue;
        }
        if in_comment && b == b'*' && next == Some(b'/') {
            in_comment = false;
            at = at.saturating_add(2);
            continue;
        }
        // `char::is_whitespace` on ASCII.
        if !in_comment && !matches!(b, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ') {
            out.push(b.to_ascii_lowercase());
        }
        at = at.saturating_add(1);
    }
}

/// What a normalized `style` value holds (one pass over it).
#[derive(Debug, Default)]
struct CssFound {
    /// `expression(`, `javascript:`, `vbscript:`, `-moz-binding` or
    /// `behavior:`: active CSS.
    active: bool,
    /// `url(` or `@import`: an external resource.
    external: bool,
    /// `\`: a CSS escape.
    escape: bool,
}

impl CssFound {
    fn in_css(css: &[u8]) -> Self {
        let mut found = Self::default();
        for (i, &b) in css.iter().enumerate() {
            let rest = css.get(i..).unwrap_or_default();
            match b {
                b'e' if rest.starts_with(b"expression(") => found.active = true,
                b'j' if rest.starts_with(b"javascript:") => found.active = true,
                b'v' if rest.starts_with(b"vbscript:") => found.active = true,
                b'-' if rest.starts_with(b"-moz-binding") => found.active = true,
                b'b' if rest.starts_with(b"behavior:") => found.active = true,
                b'u' if rest.starts_with(b"url(") => found.external = true,
                b'@' if rest.starts_with(b"@import") => found.external = true,
                b'\\' => found.escape = true,
                _ => {}
            }
        }
        found
    }
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

    #[test]
    fn permitted_matches_agree_with_the_lists() {
        let mut names: Vec<&str> = vec![
            "",
            "script",
            "style",
            "xmlns",
            "xml:space",
            "onclick",
            "A",
            "DIV",
            "img ",
            "td2",
            "blockquote-too-long",
            "\u{0}",
            "a\u{0}",
            "\u{FFFF}",
        ];
        names.extend(PERMITTED_ELEMENTS);
        names.extend(PERMITTED_ATTRIBUTES);
        names.extend(BLOCK_ELEMENTS);
        for (element, attribute) in PERMITTED_ELEMENT_ATTRIBUTES {
            names.push(element);
            names.push(attribute);
        }
        for b in 0..=127u8 {
            assert_eq!(class(b) & URL_CHAR != 0, is_url_char(char::from(b)), "{b}");
        }
        for name in &names {
            assert_eq!(
                is_permitted_element(name),
                PERMITTED_ELEMENTS.contains(name),
                "{name}"
            );
            assert_eq!(
                is_permitted_attribute(name),
                PERMITTED_ATTRIBUTES.contains(name),
                "{name}"
            );
            assert_eq!(
                is_block_element(name),
                BLOCK_ELEMENTS.contains(name),
                "{name}"
            );
            assert_eq!(
                is_url_attribute(name),
                ["href", "src", "cite", "longdesc", "usemap"].contains(name),
                "{name}"
            );
            for attribute in &names {
                assert_eq!(
                    is_permitted_element_attribute(name, attribute),
                    PERMITTED_ELEMENT_ATTRIBUTES.contains(&(name, attribute)),
                    "{name} {attribute}"
                );
            }
        }
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

    /// Java checks the attribute names of the root div's descendants only
    /// (`checkInnerNames` on `getChildNodes()`); event handlers stay refused
    /// on the root as gateway policy.
    #[test]
    fn the_root_div_keeps_attributes_java_does_not_check() {
        for root in [
            r#"<div xmlns="http://www.w3.org/1999/xhtml" data-source="x">x</div>"#,
            r#"<div xmlns="http://www.w3.org/1999/xhtml" xml:base="http://x.example/">x</div>"#,
            r#"<div xmlns="http://www.w3.org/1999/xhtml" xml:space="preserve">x</div>"#,
        ] {
            assert_eq!(check_div(root), vec![], "{root}");
        }
        // The same attribute one level down is still refused.
        assert_error(&div(r#"<p data-source="x">x</p>"#), RULE_TXT1);
        assert_error(
            r#"<div xmlns="http://www.w3.org/1999/xhtml" OnClick="x()">x</div>"#,
            RULE_TXT1,
        );
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
            div(&format!("<p>x</ {secret}</p>")),
            div(&format!("<p>x</p {secret}>")),
            div(&format!(r#"<p>x</p title="{secret}">"#)),
            div(&format!("x</ {secret}>")),
            format!("{OPEN}x</div>{secret}</ {secret}>"),
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
