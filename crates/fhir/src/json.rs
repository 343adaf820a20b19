//! Lossless JSON: a parsed view over received bytes that keeps every value as
//! it was written.
//!
//! * numbers stay as their source text (`1.50` is not `1.5`, `1e2` is not `100`),
//! * object members keep their source order,
//! * every value knows its byte span in the source, so a finding can point at
//!   a line and column,
//! * nothing is dropped: unknown elements are just members.
//!
//! The parser enforces RFC 8259 strictly (no comments, no trailing commas, no
//! unquoted keys, no trailing content) and, on top of it, the FHIR JSON
//! representation rules (<http://hl7.org/fhir/R4/json.html>):
//!
//! * duplicate member names are an error at any depth (serde_json's `Value`
//!   silently keeps the last one);
//! * objects, arrays and strings are never empty;
//! * `null` appears only inside arrays of a primitive element and its `_x`
//!   sibling, as a filler aligned with a non-null value in the partner array;
//! * a `\u` escape may not leave a lone UTF-16 surrogate.
//!
//! Nesting deeper than [`MAX_DEPTH`] is refused, so a hostile document cannot
//! exhaust the stack. The view is kept small per received byte (issue 16 #4):
//! arrays and objects are boxed slices of their exact length, so a [`Node`] is
//! 32 bytes and a [`Member`] 56.
//!
//! A leading UTF-8 byte-order mark is accepted and skipped for parsing (RFC 8259
//! §8.1 lets parsers ignore it, and the HL7 Java validator accepts such
//! documents); the received bytes, BOM included, stay the source of truth.

use std::fmt;

/// Deepest nesting of arrays and objects accepted. FHIR resources in the wild
/// (Questionnaire items, nested extensions, contained resources in Bundles)
/// stay well under 40; 100 leaves head-room and keeps recursion bounded.
pub const MAX_DEPTH: usize = 100;

/// The UTF-8 byte-order mark.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Byte range of a value in the received document.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Offset one past the last byte.
    pub end: u32,
}

/// One JSON value with where it was written.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    /// The value.
    pub value: Json,
    /// Where it was written.
    pub span: Span,
}

/// A JSON value, as written.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Json {
    /// `null` (only ever an aligned filler in a primitive array).
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, kept as its source text.
    Number(Box<str>),
    /// A string, unescaped.
    String(Box<str>),
    /// An array (boxed to its exact length: no spare capacity is kept).
    Array(Box<[Node]>),
    /// An object, members in source order (boxed to its exact length).
    Object(Box<[Member]>),
}

/// One member of an object.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// The member name, unescaped.
    pub key: Box<str>,
    /// Where the name was written.
    pub key_span: Span,
    /// The member value.
    pub node: Node,
}

impl Node {
    /// The member `key` if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Json::Object(members) => members.iter().find(|m| &*m.key == key).map(|m| &m.node),
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The items, if this is an array.
    pub fn as_array(&self) -> Option<&[Node]> {
        match &self.value {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The members, if this is an object.
    pub fn as_object(&self) -> Option<&[Member]> {
        match &self.value {
            Json::Object(members) => Some(members),
            _ => None,
        }
    }

    /// The source text of a number.
    pub fn as_number_text(&self) -> Option<&str> {
        match &self.value {
            Json::Number(n) => Some(n),
            _ => None,
        }
    }

    /// The items of an array, or the value itself for anything else: FHIR
    /// repeating elements read the same way whether written once or many times.
    pub fn items(&self) -> &[Node] {
        match &self.value {
            Json::Array(items) => items,
            _ => std::slice::from_ref(self),
        }
    }

    /// The node a JSON Pointer (RFC 6901, e.g. `/entry/3/resource`) names
    /// from this one: `~1` and `~0` unescaped, array items by index; `None`
    /// when a step does not exist.
    pub fn at_pointer(&self, pointer: &str) -> Option<&Node> {
        let mut node = self;
        for part in pointer.split('/').skip(1) {
            node = match &node.value {
                Json::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => node.get(&part.replace("~1", "/").replace("~0", "~"))?,
            };
        }
        Some(node)
    }
}

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// An object member.
    Key(Box<str>),
    /// An array item.
    Index(usize),
}

/// Renders a path as a FHIRPath-style expression rooted at `root` (the
/// resource type), e.g. `Bundle.entry[3].resource.code`.
pub fn render_path(root: &str, path: &[PathSegment]) -> String {
    let mut out = String::from(root);
    for segment in path {
        match segment {
            PathSegment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            PathSegment::Index(index) => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Why received bytes are not acceptable FHIR JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectionKind {
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// A `\u` escape leaves a UTF-16 surrogate unpaired.
    LoneSurrogate,
    /// A member name appears twice in one object.
    DuplicateKey(Box<str>),
    /// Arrays and objects nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Something follows the top-level value.
    TrailingContent,
    /// The document ends inside a value.
    UnexpectedEnd,
    /// A character that JSON does not allow here.
    UnexpectedCharacter(char),
    /// A number that is not JSON (leading zeros, `+`, `.5`, `NaN`, …).
    InvalidNumber,
    /// A backslash escape that JSON does not define.
    InvalidEscape,
    /// A raw control character inside a string.
    ControlCharacterInString,
    /// An object member name that is not a double-quoted string.
    UnquotedKey,
    /// `null` where FHIR does not allow it.
    MisplacedNull,
    /// `null` in an array whose `_x`/`x` partner does not carry a value at
    /// that position, or partner arrays of different lengths.
    UnalignedNull,
    /// `{}`.
    EmptyObject,
    /// `[]`.
    EmptyArray,
    /// `""`.
    EmptyString,
    /// The top-level value is not an object with a `resourceType` string.
    NotAResource,
    /// The document is larger than this parser addresses (4 GiB).
    TooLarge,
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUtf8 => f.write_str("the document is not valid UTF-8"),
            Self::LoneSurrogate => f.write_str(
                "a \\u escape encodes an unpaired UTF-16 surrogate, which is not a character",
            ),
            Self::DuplicateKey(key) => write!(
                f,
                "the property \"{key}\" appears more than once in the same object (FHIR JSON forbids duplicate properties)"
            ),
            Self::TooDeep => write!(
                f,
                "arrays and objects nest deeper than the gateway's limit of {MAX_DEPTH}"
            ),
            Self::TrailingContent => f.write_str("unexpected content after the end of the JSON value"),
            Self::UnexpectedEnd => f.write_str("the document ends before the JSON value is complete"),
            Self::UnexpectedCharacter(c) => write!(f, "unexpected character {c:?}"),
            Self::InvalidNumber => f.write_str("malformed JSON number"),
            Self::InvalidEscape => f.write_str("invalid escape sequence in a string"),
            Self::ControlCharacterInString => {
                f.write_str("unescaped control character inside a string")
            }
            Self::UnquotedKey => f.write_str("property names must be double-quoted strings"),
            Self::MisplacedNull => f.write_str(
                "null is not allowed here (FHIR JSON allows null only as a filler in aligned primitive arrays)",
            ),
            Self::UnalignedNull => f.write_str(
                "a primitive array and its '_' extension array must have the same length, with null only where the other has a value",
            ),
            Self::EmptyObject => f.write_str("empty objects are not allowed in FHIR JSON"),
            Self::EmptyArray => f.write_str("empty arrays are not allowed in FHIR JSON"),
            Self::EmptyString => f.write_str("empty strings are not allowed in FHIR JSON"),
            Self::NotAResource => {
                f.write_str("the document is not a FHIR resource (an object with a resourceType string)")
            }
            Self::TooLarge => f.write_str("the document is too large to parse"),
        }
    }
}

/// Received bytes refused as FHIR JSON: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonRejection {
    /// What is wrong.
    pub kind: RejectionKind,
    /// Byte offset of the problem.
    pub offset: usize,
    /// 1-based line of the problem.
    pub line: usize,
    /// 1-based column (in characters) of the problem.
    pub column: usize,
    /// Path to the value that holds the problem.
    pub path: Vec<PathSegment>,
    /// The resource type at the root, when it had been read before the problem.
    pub resource_type: Option<Box<str>>,
}

impl JsonRejection {
    /// FHIRPath-style location, e.g. `Bundle.entry[2].resource.name`.
    pub fn expression(&self) -> String {
        render_path(self.resource_type.as_deref().unwrap_or(""), &self.path)
    }

    /// `line N, column M` as the Java validator reports positions.
    pub fn position(&self) -> String {
        format!("line {}, column {}", self.line, self.column)
    }
}

impl fmt::Display for JsonRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.kind, self.position())
    }
}

impl std::error::Error for JsonRejection {}

/// Parses `bytes` as one FHIR JSON value.
pub fn parse(bytes: &[u8]) -> Result<Node, JsonRejection> {
    let body_start = if bytes.starts_with(UTF8_BOM) {
        UTF8_BOM.len()
    } else {
        0
    };
    if u32::try_from(bytes.len()).is_err() {
        return Err(reject(bytes, RejectionKind::TooLarge, 0));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => return Err(reject(bytes, RejectionKind::InvalidUtf8, e.valid_up_to())),
    };
    let mut parser = Parser {
        src: bytes,
        text,
        pos: body_start,
        root_type: None,
        members: Vec::new(),
        items: Vec::new(),
    };
    let result = parser.document();
    result.map_err(|mut raw| {
        raw.path.reverse();
        let mut rejection = reject(bytes, raw.kind, raw.offset);
        rejection.path = raw.path;
        rejection.resource_type = parser.root_type;
        rejection
    })
}

fn reject(src: &[u8], kind: RejectionKind, offset: usize) -> JsonRejection {
    let before = src.get(..offset).unwrap_or(src);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = before
        .get(line_start..)
        .unwrap_or_default()
        .iter()
        .filter(|&&b| (b & 0xC0) != 0x80)
        .count()
        + 1;
    JsonRejection {
        kind,
        offset,
        line,
        column,
        path: Vec::new(),
        resource_type: None,
    }
}

/// A rejection while unwinding: the path is collected innermost first.
struct Raw {
    kind: RejectionKind,
    offset: usize,
    path: Vec<PathSegment>,
}

impl Raw {
    fn at(kind: RejectionKind, offset: usize) -> Self {
        Self {
            kind,
            offset,
            path: Vec::new(),
        }
    }

    fn within(mut self, segment: PathSegment) -> Self {
        self.path.push(segment);
        self
    }
}

struct Parser<'a> {
    src: &'a [u8],
    /// `src` as text, checked as UTF-8 once: strings are cut from it at
    /// character boundaries without checking each again.
    text: &'a str,
    pos: usize,
    root_type: Option<Box<str>>,
    /// The members of the objects being read, innermost last: one buffer
    /// for the whole document, so that an object's members are boxed once
    /// at their exact number instead of a vector growing and then shrunk
    /// for each object (most of the parse's allocator time).
    members: Vec<Member>,
    /// The same for the items of the arrays being read.
    items: Vec<Node>,
}

/// What kind of value a position may hold, for the `null` rule.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The top-level value or an object member: never null.
    Plain,
    /// An item of an array that is an object member: null allowed, checked
    /// for alignment with the partner array afterwards.
    ArrayItem,
}

fn span(start: usize, end: usize) -> Span {
    // `parse` refuses documents whose length does not fit in u32.
    Span {
        start: u32::try_from(start).unwrap_or(u32::MAX),
        end: u32::try_from(end).unwrap_or(u32::MAX),
    }
}

impl Parser<'_> {
    fn document(&mut self) -> Result<Node, Raw> {
        self.skip_ws();
        let root = self.value(0, Slot::Plain)?;
        self.skip_ws();
        if self.pos < self.src.len() {
            return Err(Raw::at(RejectionKind::TrailingContent, self.pos));
        }
        if root.get("resourceType").and_then(Node::as_str).is_none() {
            return Err(Raw::at(
                RejectionKind::NotAResource,
                root.span.start as usize,
            ));
        }
        Ok(root)
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn unexpected(&self) -> Raw {
        match self.src.get(self.pos..).and_then(|rest| {
            std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.chars().next())
        }) {
            Some(c) => Raw::at(RejectionKind::UnexpectedCharacter(c), self.pos),
            None => Raw::at(RejectionKind::UnexpectedEnd, self.pos),
        }
    }

    fn expect_byte(&mut self, byte: u8) -> Result<(), Raw> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn value(&mut self, depth: usize, slot: Slot) -> Result<Node, Raw> {
        let start = self.pos;
        let value = match self.peek() {
            Some(b'{') => self.object(depth + 1)?,
            // Items of a member's array may be aligned `null` fillers; items
            // of a nested array (never FHIR) may not.
            Some(b'[') => self.array(
                depth + 1,
                match slot {
                    Slot::Plain => Slot::ArrayItem,
                    Slot::ArrayItem => Slot::Plain,
                },
            )?,
            Some(b'"') => {
                let s = self.string()?;
                if s.is_empty() {
                    return Err(Raw::at(RejectionKind::EmptyString, start));
                }
                Json::String(s)
            }
            Some(b't') => self.literal(b"true", Json::Bool(true))?,
            Some(b'f') => self.literal(b"false", Json::Bool(false))?,
            Some(b'n') => {
                let value = self.literal(b"null", Json::Null)?;
                if slot == Slot::Plain {
                    return Err(Raw::at(RejectionKind::MisplacedNull, start));
                }
                value
            }
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => return Err(self.unexpected()),
        };
        Ok(Node {
            value,
            span: span(start, self.pos),
        })
    }

    fn literal(&mut self, word: &[u8], value: Json) -> Result<Json, Raw> {
        let end = self.pos + word.len();
        if self.src.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(value)
        } else {
            // Point at the first byte that differs.
            let matched = self
                .src
                .get(self.pos..)
                .unwrap_or_default()
                .iter()
                .zip(word)
                .take_while(|(a, b)| a == b)
                .count();
            self.pos += matched;
            Err(self.unexpected())
        }
    }

    fn number(&mut self) -> Result<Json, Raw> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(Raw::at(RejectionKind::InvalidNumber, start));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Raw::at(RejectionKind::InvalidNumber, start)),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(Raw::at(RejectionKind::InvalidNumber, start));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(Raw::at(RejectionKind::InvalidNumber, start));
            }
            self.digits();
        }
        let text = self
            .text
            .get(start..self.pos)
            .ok_or_else(|| Raw::at(RejectionKind::InvalidNumber, start))?;
        Ok(Json::Number(text.into()))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    /// Reads a string starting at the opening quote; returns it unescaped.
    fn string(&mut self) -> Result<Box<str>, Raw> {
        self.expect_byte(b'"')?;
        let start = self.pos;
        // Fast path: no escapes. Skip the plain bytes in one scan of the
        // slice (no bounds check per byte), then decide on the byte found.
        loop {
            self.skip_plain_string_bytes();
            match self.peek() {
                Some(b'"') => {
                    let text: Box<str> = self.text(start, self.pos)?.into();
                    self.pos += 1;
                    return Ok(text);
                }
                Some(b'\\') => break,
                Some(0x00..=0x1F) => {
                    return Err(Raw::at(RejectionKind::ControlCharacterInString, self.pos));
                }
                Some(_) => self.pos += 1,
                None => return Err(Raw::at(RejectionKind::UnexpectedEnd, self.pos)),
            }
        }
        // Escaped: sized once for the text as written up to its closing
        // quote (unescaping only shortens it), not grown run by run.
        let mut out = String::with_capacity(self.escaped_string_len(start));
        out.push_str(self.text(start, self.pos)?);
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out.into());
                }
                Some(b'\\') => {
                    let escape_at = self.pos;
                    self.pos += 1;
                    let escaped = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            out.push(self.unicode_escape(escape_at)?);
                            continue;
                        }
                        None => return Err(Raw::at(RejectionKind::UnexpectedEnd, self.pos)),
                        Some(_) => return Err(Raw::at(RejectionKind::InvalidEscape, escape_at)),
                    };
                    self.pos += 1;
                    out.push(escaped);
                }
                Some(0x00..=0x1F) => {
                    return Err(Raw::at(RejectionKind::ControlCharacterInString, self.pos));
                }
                Some(_) => {
                    let run_start = self.pos;
                    self.skip_plain_string_bytes();
                    out.push_str(self.text(run_start, self.pos)?);
                }
                None => return Err(Raw::at(RejectionKind::UnexpectedEnd, self.pos)),
            }
        }
    }

    /// The length as written of the string that began at `start` and whose
    /// first escape is at the current position: up to its closing quote, or
    /// to the end of the input when it has none (an error found later).
    fn escaped_string_len(&self, start: usize) -> usize {
        let mut at = self.pos;
        loop {
            at += plain_string_run(self.src.get(at..).unwrap_or_default());
            match self.src.get(at) {
                Some(b'"') => break,
                Some(b'\\') => at += 2,
                Some(_) => at += 1,
                None => break,
            }
        }
        at.min(self.src.len()).saturating_sub(start)
    }

    /// Moves past the bytes a string holds as they are: up to the next
    /// quote, backslash or control character (or the end).
    fn skip_plain_string_bytes(&mut self) {
        let rest = self.src.get(self.pos..).unwrap_or_default();
        self.pos += plain_string_run(rest);
    }

    /// The source between two offsets that lie on character boundaries.
    fn text(&self, start: usize, end: usize) -> Result<&str, Raw> {
        self.text
            .get(start..end)
            .ok_or_else(|| Raw::at(RejectionKind::InvalidUtf8, start))
    }

    fn hex4(&mut self, escape_at: usize) -> Result<u32, Raw> {
        let digits = self
            .src
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| Raw::at(RejectionKind::InvalidEscape, escape_at))?;
        let mut value = 0u32;
        for &d in digits {
            let nibble = char::from(d)
                .to_digit(16)
                .ok_or_else(|| Raw::at(RejectionKind::InvalidEscape, escape_at))?;
            value = value * 16 + nibble;
        }
        self.pos += 4;
        Ok(value)
    }

    /// After `\u`: one escape, or a surrogate pair of two escapes.
    fn unicode_escape(&mut self, escape_at: usize) -> Result<char, Raw> {
        let first = self.hex4(escape_at)?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.src.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(Raw::at(RejectionKind::LoneSurrogate, escape_at));
                }
                self.pos += 2;
                let second = self.hex4(escape_at)?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(Raw::at(RejectionKind::LoneSurrogate, escape_at));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(Raw::at(RejectionKind::LoneSurrogate, escape_at)),
            other => other,
        };
        char::from_u32(code).ok_or_else(|| Raw::at(RejectionKind::LoneSurrogate, escape_at))
    }

    fn array(&mut self, depth: usize, item_slot: Slot) -> Result<Json, Raw> {
        if depth > MAX_DEPTH {
            return Err(Raw::at(RejectionKind::TooDeep, self.pos));
        }
        let open = self.pos;
        self.expect_byte(b'[')?;
        self.skip_ws();
        if self.peek() == Some(b']') {
            return Err(Raw::at(RejectionKind::EmptyArray, open));
        }
        let first = self.items.len();
        loop {
            self.skip_ws();
            let index = self.items.len().saturating_sub(first);
            let item = self
                .value(depth, item_slot)
                .map_err(|e| e.within(PathSegment::Index(index)))?;
            self.items.push(item);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(self.items.drain(first..).collect()));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, Raw> {
        if depth > MAX_DEPTH {
            return Err(Raw::at(RejectionKind::TooDeep, self.pos));
        }
        let open = self.pos;
        self.expect_byte(b'{')?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            return Err(Raw::at(RejectionKind::EmptyObject, open));
        }
        let first = self.members.len();
        loop {
            self.skip_ws();
            let key_start = self.pos;
            if self.peek() != Some(b'"') {
                return Err(match self.peek() {
                    None => Raw::at(RejectionKind::UnexpectedEnd, self.pos),
                    Some(b'}') => self.unexpected(),
                    Some(_) => Raw::at(RejectionKind::UnquotedKey, self.pos),
                });
            }
            let key = self.string()?;
            let key_span = span(key_start, self.pos);
            if self
                .members
                .get(first..)
                .unwrap_or_default()
                .iter()
                .any(|m| m.key == key)
            {
                return Err(Raw::at(RejectionKind::DuplicateKey(key.clone()), key_start)
                    .within(PathSegment::Key(key)));
            }
            self.skip_ws();
            self.expect_byte(b':')?;
            self.skip_ws();
            let node = match self.value(depth, Slot::Plain) {
                Ok(node) => node,
                Err(e) => return Err(e.within(PathSegment::Key(key))),
            };
            if depth == 1 && &*key == "resourceType" {
                self.root_type = node.as_str().map(Box::from);
            }
            self.members.push(Member {
                key,
                key_span,
                node,
            });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    let members: Box<[Member]> = self.members.drain(first..).collect();
                    check_nulls_aligned(&members)?;
                    return Ok(Json::Object(members));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }
}

/// How many bytes at the start of `bytes` a string holds as they are: up
/// to the first quote, backslash or control character (or all of them).
///
/// Eight bytes at a time (SWAR): for each test the word's lowest flagged
/// byte is its first match (a borrow only flags bytes above a true match),
/// so the lowest flag of the three tests together is the first byte any of
/// them matches. Strings are most of a FHIR document's bytes; this scan was
/// a fifth of the parse, byte by byte.
fn plain_string_run(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = ONES * b'"' as u64;
    const BACKSLASHES: u64 = ONES * b'\\' as u64;
    const SPACES: u64 = ONES * 0x20;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(chunk).map(u64::from_le_bytes) else {
            break;
        };
        let quote = word ^ QUOTES;
        let backslash = word ^ BACKSLASHES;
        let flags = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(SPACES) & !word))
            & HIGHS;
        if flags != 0 {
            return offset + (flags.trailing_zeros() / 8) as usize;
        }
        offset += 8;
    }
    let tail = bytes.get(offset..).unwrap_or_default();
    offset
        + tail
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .unwrap_or(tail.len())
}

/// FHIR JSON §2.6.2: a primitive array and its `_` partner carry `null` only
/// as a filler where the other has a value, and have the same length.
fn check_nulls_aligned(members: &[Member]) -> Result<(), Raw> {
    for member in members {
        let Json::Array(items) = &member.node.value else {
            continue;
        };
        // The partner of `given` is `_given` and the other way round; found
        // without allocating, since this runs for every array in a document.
        let partner = match member.key.strip_prefix('_') {
            Some(base) => members.iter().find(|m| &*m.key == base),
            None => members
                .iter()
                .find(|m| m.key.strip_prefix('_') == Some(&*member.key)),
        }
        .and_then(|m| m.node.as_array());
        let has_null = items.iter().any(|n| n.value == Json::Null);
        match partner {
            None if has_null => {
                let (index, node) = items
                    .iter()
                    .enumerate()
                    .find(|(_, n)| n.value == Json::Null)
                    .unwrap_or((0, &member.node));
                return Err(
                    Raw::at(RejectionKind::MisplacedNull, node.span.start as usize)
                        .within(PathSegment::Index(index))
                        .within(PathSegment::Key(member.key.clone())),
                );
            }
            None => {}
            Some(other) => {
                if other.len() != items.len() {
                    return Err(Raw::at(
                        RejectionKind::UnalignedNull,
                        member.node.span.start as usize,
                    )
                    .within(PathSegment::Key(member.key.clone())));
                }
                let mut pairs = items.iter().zip(other).enumerate();
                if let Some((index, (node, _))) =
                    pairs.find(|(_, (a, b))| a.value == Json::Null && b.value == Json::Null)
                {
                    return Err(
                        Raw::at(RejectionKind::UnalignedNull, node.span.start as usize)
                            .within(PathSegment::Index(index))
                            .within(PathSegment::Key(member.key.clone())),
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The view's size per received byte (issue 16 #4): a node is 32 bytes
    /// and a member 56, and arrays and objects keep no spare capacity (a
    /// 20 MiB Bundle of Observations takes 3.9 bytes of view per byte, 6.0
    /// with `Vec`s grown by doubling).
    #[test]
    fn the_view_stays_small() {
        assert_eq!(std::mem::size_of::<super::Node>(), 32);
        assert_eq!(std::mem::size_of::<super::Member>(), 56);
        let root = super::parse(br#"{"resourceType":"Basic","a":[1,2,3],"b":{"c":"d"}}"#).unwrap();
        let members = root.as_object().unwrap();
        assert_eq!(members.len(), 3);
        assert_eq!(members[1].node.as_array().map(<[_]>::len), Some(3));
    }

    /// The eight-bytes-at-a-time scan finds what the byte-by-byte one
    /// finds, at every length and position, for every byte value the
    /// tests care about (quote, backslash, each control character, the
    /// bytes around them, UTF-8 lead and continuation bytes).
    #[test]
    fn a_strings_plain_run_ends_where_byte_by_byte_it_does() {
        let naive = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(bytes.len())
        };
        let specials: Vec<u8> = (0x00..=0x21)
            .chain([
                b'"', b'#', b'[', b'\\', b']', 0x7F, 0x80, 0xA2, 0xBF, 0xC3, 0xE2, 0xFF,
            ])
            .collect();
        for len in 0..20 {
            for at in 0..len {
                for &special in &specials {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    assert_eq!(super::plain_string_run(&bytes), naive(&bytes), "{bytes:?}");
                    // A second special after the first does not move the answer.
                    if at + 1 < len {
                        bytes[len - 1] = b'"';
                        assert_eq!(super::plain_string_run(&bytes), naive(&bytes), "{bytes:?}");
                    }
                }
            }
        }
        let text = "héllo wörld, ünïcode …\" and after";
        assert_eq!(
            super::plain_string_run(text.as_bytes()),
            text.find('"').unwrap()
        );
    }

    #[test]
    fn json_pointers_name_nodes() {
        let root =
            parse(br#"{"resourceType":"Bundle","entry":[{"a/b":1},{"resource":{"m~n":"x"}}]}"#)
                .unwrap();
        assert!(root.at_pointer("").is_some_and(|n| std::ptr::eq(n, &root)));
        assert_eq!(
            root.at_pointer("/entry/1/resource/m~0n")
                .and_then(Node::as_str),
            Some("x")
        );
        assert_eq!(
            root.at_pointer("/entry/0/a~1b")
                .and_then(Node::as_number_text),
            Some("1")
        );
        assert!(root.at_pointer("/entry/2").is_none());
        assert!(root.at_pointer("/entry/x").is_none());
        assert!(root.at_pointer("/missing").is_none());
    }

    use super::*;

    fn kind(src: &str) -> RejectionKind {
        parse(src.as_bytes()).unwrap_err().kind
    }

    #[test]
    fn keeps_numbers_as_written_and_member_order() {
        let node = parse(br#"{"resourceType":"Observation","z":1.50,"a":1e2,"m":-0.0}"#).unwrap();
        let keys: Vec<&str> = node.as_object().unwrap().iter().map(|m| &*m.key).collect();
        assert_eq!(keys, ["resourceType", "z", "a", "m"]);
        assert_eq!(node.get("z").unwrap().as_number_text(), Some("1.50"));
        assert_eq!(node.get("a").unwrap().as_number_text(), Some("1e2"));
        assert_eq!(node.get("m").unwrap().as_number_text(), Some("-0.0"));
    }

    #[test]
    fn unescapes_strings_and_pairs() {
        let node = parse(br#"{"resourceType":"P","s":"a\u00e9\n\ud83d\ude00\/"}"#).unwrap();
        assert_eq!(node.get("s").unwrap().as_str(), Some("a\u{e9}\n\u{1F600}/"));
    }

    /// An escaped string's buffer is sized from the text as written up to
    /// its closing quote: escaped quotes and backslashes do not end it
    /// early, and a string the input ends inside is still refused.
    #[test]
    fn escaped_strings_of_every_shape() {
        let node = parse(
            br##"{"resourceType":"P","q":"<a href=\"#x\">\\\\</a>\"","e":"\\","l":"x\u0041\t"}"##,
        )
        .unwrap();
        assert_eq!(
            node.get("q").unwrap().as_str(),
            Some(r##"<a href="#x">\\</a>""##)
        );
        assert_eq!(node.get("e").unwrap().as_str(), Some("\\"));
        assert_eq!(node.get("l").unwrap().as_str(), Some("xA\t"));
        for truncated in [
            &br#"{"resourceType":"P","s":"a\""#[..],
            br#"{"resourceType":"P","s":"a\"#,
            br#"{"resourceType":"P","s":"a\\"#,
        ] {
            assert_eq!(
                parse(truncated).unwrap_err().kind,
                RejectionKind::UnexpectedEnd
            );
        }
    }

    #[test]
    fn duplicate_keys_at_any_depth() {
        let err = parse(br#"{"resourceType":"Patient","name":[{"family":"a","family":"b"}]}"#)
            .unwrap_err();
        assert_eq!(err.kind, RejectionKind::DuplicateKey("family".into()));
        assert_eq!(err.expression(), "Patient.name[0].family");
        assert_eq!(err.column, 49);
    }

    #[test]
    fn lone_surrogates() {
        assert_eq!(
            kind(r#"{"resourceType":"P","s":"\ud800"}"#),
            RejectionKind::LoneSurrogate
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","s":"\udc00x"}"#),
            RejectionKind::LoneSurrogate
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","s":"\ud800\u0041"}"#),
            RejectionKind::LoneSurrogate
        );
    }

    #[test]
    fn invalid_utf8_has_an_offset() {
        let err = parse(b"{\"resourceType\":\"P\",\n\"s\":\"\xff\"}").unwrap_err();
        assert_eq!(err.kind, RejectionKind::InvalidUtf8);
        assert_eq!((err.line, err.column), (2, 6));
    }

    #[test]
    fn depth_limit() {
        let deep = format!(
            "{{\"resourceType\":\"P\",\"x\":{}1{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert_eq!(kind(&deep), RejectionKind::TooDeep);
        let ok = format!(
            "{{\"resourceType\":\"P\",\"x\":{}1{}}}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn hostile_nesting_does_not_overflow_the_stack() {
        let deep = "[".repeat(1_000_000);
        assert_eq!(kind(&deep), RejectionKind::TooDeep);
    }

    #[test]
    fn trailing_content() {
        assert_eq!(
            kind(r#"{"resourceType":"P"} x"#),
            RejectionKind::TrailingContent
        );
        assert_eq!(
            kind(r#"{"resourceType":"P"}{}"#),
            RejectionKind::TrailingContent
        );
        assert!(parse(b"{\"resourceType\":\"P\"}\n\r\t ").is_ok());
    }

    #[test]
    fn fhir_representation_rules() {
        assert_eq!(
            kind(r#"{"resourceType":"P","a":{}}"#),
            RejectionKind::EmptyObject
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","a":[]}"#),
            RejectionKind::EmptyArray
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","a":""}"#),
            RejectionKind::EmptyString
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","a":null}"#),
            RejectionKind::MisplacedNull
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","a":[1,null]}"#),
            RejectionKind::MisplacedNull
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","a":[[null]]}"#),
            RejectionKind::MisplacedNull
        );
        assert_eq!(kind("null"), RejectionKind::MisplacedNull);
        assert_eq!(kind("[1]"), RejectionKind::NotAResource);
        assert_eq!(kind(r#"{"id":"x"}"#), RejectionKind::NotAResource);
        // Aligned fillers are fine.
        assert!(
            parse(br#"{"resourceType":"P","given":["a",null],"_given":[null,{"id":"x"}]}"#).is_ok()
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","given":["a",null],"_given":[null,null]}"#),
            RejectionKind::UnalignedNull
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","given":["a","b"],"_given":[{"id":"x"}]}"#),
            RejectionKind::UnalignedNull
        );
    }

    #[test]
    fn json_grammar() {
        assert_eq!(
            kind(r#"{"resourceType":"P","a":01}"#),
            RejectionKind::InvalidNumber
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","a":1.}"#),
            RejectionKind::InvalidNumber
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","a":.5}"#),
            RejectionKind::UnexpectedCharacter('.')
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","a":+1}"#),
            RejectionKind::UnexpectedCharacter('+')
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","a":1,}"#),
            RejectionKind::UnexpectedCharacter('}')
        );
        assert_eq!(kind(r#"{resourceType:"P"}"#), RejectionKind::UnquotedKey);
        assert_eq!(
            kind(r#"{"resourceType":"P" // c"#),
            RejectionKind::UnexpectedCharacter('/')
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","a":"\x"}"#),
            RejectionKind::InvalidEscape
        );
        assert_eq!(
            kind("{\"resourceType\":\"P\",\"a\":\"\t\"}"),
            RejectionKind::ControlCharacterInString
        );
        assert_eq!(
            kind(r#"{"resourceType":"P","a":tru}"#),
            RejectionKind::UnexpectedCharacter('}')
        );
        assert_eq!(kind(r#"{"resourceType":"P""#), RejectionKind::UnexpectedEnd);
        assert_eq!(kind(""), RejectionKind::UnexpectedEnd);
    }

    #[test]
    fn bom_is_skipped_for_parsing() {
        let mut doc = UTF8_BOM.to_vec();
        doc.extend_from_slice(br#"{"resourceType":"Patient"}"#);
        let node = parse(&doc).unwrap();
        assert_eq!(node.span.start, 3);
        // A BOM anywhere else is content JSON does not allow.
        let mut late = br#"{"resourceType":"Patient"}"#.to_vec();
        late.extend_from_slice(UTF8_BOM);
        assert_eq!(
            parse(&late).unwrap_err().kind,
            RejectionKind::TrailingContent
        );
    }

    #[test]
    fn spans_point_at_the_source() {
        let src = br#"{"resourceType":"P","v":{"value":12.30}}"#;
        let node = parse(src).unwrap();
        let v = node.get("v").unwrap().get("value").unwrap();
        assert_eq!(&src[v.span.start as usize..v.span.end as usize], b"12.30");
    }
}
