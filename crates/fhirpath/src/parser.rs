//! FHIRPath lexer and parser (grammar: <https://hl7.org/fhirpath/N1/grammar.html>),
//! producing an [`Expr`] tree with functions resolved to [`Func`] once, at
//! parse time.

use crate::decimal::Decimal;
use crate::error::ParseError;
use crate::quantity::{Quantity, calendar_keyword};
use crate::temporal::Temporal;

/// A literal value of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `true` / `false`.
    Boolean(bool),
    /// `'text'`.
    String(Box<str>),
    /// `42`.
    Integer(i64),
    /// `4.2`.
    Decimal(Decimal),
    /// `@2019-02-03`.
    Date(Temporal),
    /// `@2019-02-03T10:00:00Z`.
    DateTime(Temporal),
    /// `@T10:00`.
    Time(Temporal),
    /// `4 'mg'`, `3 days`.
    Quantity(Quantity),
}

/// Binary operators, by precedence group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `div`
    IntDiv,
    /// `mod`
    Mod,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `&`
    Concat,
    /// `|`
    Union,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `~`
    Equiv,
    /// `!~`
    NotEquiv,
    /// `in`
    In,
    /// `contains`
    Contains,
    /// `and`
    And,
    /// `or`
    Or,
    /// `xor`
    Xor,
    /// `implies`
    Implies,
}

/// A type name as written in `is`, `as`, `ofType`: optional namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeSpec {
    /// `System` or `FHIR`, when written.
    pub namespace: Option<Box<str>>,
    /// The type name.
    pub name: Box<str>,
}

macro_rules! functions {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// Every function the engine knows, resolved at parse time.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Func {
            $(
                #[doc = concat!("`", $name, "()`")]
                $variant,
            )*
        }

        impl Func {
            /// The function named `name`.
            pub fn from_name(name: &str) -> Option<Func> {
                Some(match name {
                    $($name => Func::$variant,)*
                    _ => return None,
                })
            }

            /// Its FHIRPath name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Func::$variant => $name,)*
                }
            }
        }
    };
}

functions! {
    Empty => "empty", Exists => "exists", All => "all", AllTrue => "allTrue",
    AnyTrue => "anyTrue", AllFalse => "allFalse", AnyFalse => "anyFalse",
    SubsetOf => "subsetOf", SupersetOf => "supersetOf", Count => "count",
    Distinct => "distinct", IsDistinct => "isDistinct",
    Where => "where", Select => "select", Repeat => "repeat", RepeatAll => "repeatAll",
    OfType => "ofType",
    Single => "single", First => "first", Last => "last", Tail => "tail", Skip => "skip",
    Take => "take", Intersect => "intersect", Exclude => "exclude",
    Union => "union", Combine => "combine",
    Iif => "iif", ToBoolean => "toBoolean", ConvertsToBoolean => "convertsToBoolean",
    ToInteger => "toInteger", ConvertsToInteger => "convertsToInteger",
    ToDecimal => "toDecimal", ConvertsToDecimal => "convertsToDecimal",
    ToStringFn => "toString", ConvertsToString => "convertsToString",
    ToDate => "toDate", ConvertsToDate => "convertsToDate",
    ToDateTime => "toDateTime", ConvertsToDateTime => "convertsToDateTime",
    ToTime => "toTime", ConvertsToTime => "convertsToTime",
    ToQuantity => "toQuantity", ConvertsToQuantity => "convertsToQuantity",
    IndexOf => "indexOf", LastIndexOf => "lastIndexOf", Substring => "substring",
    StartsWith => "startsWith", EndsWith => "endsWith", ContainsFn => "contains",
    Upper => "upper", Lower => "lower", Replace => "replace", Matches => "matches",
    MatchesFull => "matchesFull", ReplaceMatches => "replaceMatches", Length => "length",
    ToChars => "toChars", Trim => "trim", Split => "split", Join => "join",
    Encode => "encode", Decode => "decode", Escape => "escape", Unescape => "unescape",
    Abs => "abs", Ceiling => "ceiling", Exp => "exp", Floor => "floor", Ln => "ln",
    Log => "log", Power => "power", Round => "round", Sqrt => "sqrt", Truncate => "truncate",
    Children => "children", Descendants => "descendants",
    Trace => "trace", Now => "now", Today => "today", TimeOfDay => "timeOfDay",
    Sort => "sort", Aggregate => "aggregate", Not => "not",
    Is => "is", As => "as", Type => "type",
    Extension => "extension", HasValue => "hasValue", GetValue => "getValue",
    Resolve => "resolve", MemberOf => "memberOf", ConformsTo => "conformsTo",
    HtmlChecks => "htmlChecks", LowBoundary => "lowBoundary", HighBoundary => "highBoundary",
    Precision => "precision", Comparable => "comparable",
    Subsumes => "subsumes", SubsumedBy => "subsumedBy",
}

impl Func {
    /// Allowed argument counts.
    fn arity(self) -> (usize, usize) {
        use Func::*;
        match self {
            Exists | Trace | ToQuantity | ConvertsToQuantity | Round | LowBoundary
            | HighBoundary | Join | Split => match self {
                Trace => (1, 2),
                Split => (1, 1),
                Join => (0, 1),
                _ => (0, 1),
            },
            All | Where | Select | Repeat | RepeatAll | OfType | SubsetOf | SupersetOf | Skip
            | Take | Intersect | Exclude | Union | Combine | IndexOf | LastIndexOf | StartsWith
            | EndsWith | ContainsFn | Matches | MatchesFull | Log | Power | Is | As | Extension
            | MemberOf | ConformsTo | Comparable | Subsumes | SubsumedBy | Encode | Decode
            | Escape | Unescape => (1, 1),
            Substring => (1, 2),
            Replace | ReplaceMatches => (2, 2),
            Iif => (2, 3),
            Aggregate => (1, 2),
            Sort => (0, usize::MAX),
            _ => (0, 0),
        }
    }
}

/// An expression tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `{}`.
    Empty,
    /// A literal.
    Literal(Literal),
    /// An identifier at the start of a path: a child of `$this`, or the
    /// type of the context (`Patient.name`).
    Identifier(Box<str>),
    /// `$this`.
    This,
    /// `$index`.
    Index,
    /// `$total`.
    Total,
    /// `%name`.
    Variable(Box<str>),
    /// `expr.name`.
    Member(Box<Expr>, Box<str>),
    /// `expr.f(args)` or `f(args)` (target `None`: applies to `$this`).
    Call {
        /// The input, when written.
        target: Option<Box<Expr>>,
        /// The function.
        func: Func,
        /// The arguments, unevaluated.
        args: Vec<Expr>,
    },
    /// `is(T)`, `as(T)`, `ofType(T)`, `x is T`, `x as T`.
    TypeCall {
        /// The input, when written.
        target: Option<Box<Expr>>,
        /// Is, As or OfType.
        func: Func,
        /// The type.
        ty: TypeSpec,
    },
    /// `expr[index]`.
    Indexer(Box<Expr>, Box<Expr>),
    /// `-expr` (`+expr` parses to `expr`).
    Negate(Box<Expr>),
    /// `a op b`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(Box<str>),
    Quoted(Box<str>),
    Str(Box<str>),
    Number(Box<str>),
    Date(Box<str>),
    Time(Box<str>),
    Special(Box<str>),
    Var(Box<str>),
    Sym(&'static str),
}

const SYMBOLS: [&str; 20] = [
    "<=", ">=", "!=", "!~", ".", ",", "(", ")", "[", "]", "{", "}", "+", "-", "*", "/", "&", "|",
    "=", "~",
];

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

fn err(message: impl Into<String>, position: usize) -> ParseError {
    ParseError::Syntax {
        message: message.into(),
        position,
    }
}

impl<'s> Lexer<'s> {
    fn rest(&self) -> &'s str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            let rest = self.rest();
            if let Some(c) = rest.chars().next().filter(|c| c.is_whitespace()) {
                self.pos += c.len_utf8();
            } else if rest.starts_with("//") {
                self.pos += rest.find('\n').unwrap_or(rest.len());
            } else if rest.starts_with("/*") {
                let end = rest
                    .get(2..)
                    .and_then(|r| r.find("*/"))
                    .ok_or_else(|| err("unterminated comment", self.pos))?;
                self.pos += end + 4;
            } else {
                return Ok(());
            }
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'s str {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|&c| f(c)) {
            self.pos += c.len_utf8();
        }
        self.src.get(start..self.pos).unwrap_or("")
    }

    /// A date/time literal body: `allowed` characters, and `.` only before a
    /// digit (so `@2015-02-04.is(Date)` stops before the `.`).
    fn temporal_text(&mut self, allowed: impl Fn(char) -> bool) -> &'s str {
        let start = self.pos;
        loop {
            let rest = self.rest();
            match rest.chars().next() {
                Some(c) if allowed(c) => self.pos += 1,
                Some('.') if rest.as_bytes().get(1).is_some_and(u8::is_ascii_digit) => {
                    self.pos += 1;
                }
                _ => break,
            }
        }
        self.src.get(start..self.pos).unwrap_or("")
    }

    fn delimited(&mut self, quote: char) -> Result<Box<str>, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let c = self
                .peek()
                .ok_or_else(|| err("unterminated string or identifier", start))?;
            self.pos += c.len_utf8();
            if c == quote {
                return Ok(out.into());
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = self
                .peek()
                .ok_or_else(|| err("unterminated escape", self.pos))?;
            self.pos += e.len_utf8();
            out.push(match e {
                '\'' | '"' | '`' | '\\' | '/' => e,
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'u' => {
                    let hex = self
                        .rest()
                        .get(..4)
                        .ok_or_else(|| err("bad \\u escape", self.pos))?;
                    let code = u32::from_str_radix(hex, 16)
                        .map_err(|_| err("bad \\u escape", self.pos))?;
                    self.pos += 4;
                    char::from_u32(code).ok_or_else(|| err("bad \\u escape", self.pos))?
                }
                other => return Err(err(format!("unknown escape \\{other}"), self.pos)),
            });
        }
    }

    fn next(&mut self) -> Result<Option<(Tok, usize)>, ParseError> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let tok = match c {
            '\'' => Tok::Str(self.delimited('\'')?),
            '`' => Tok::Quoted(self.delimited('`')?),
            '0'..='9' => {
                self.take_while(|c| c.is_ascii_digit());
                let rest = self.rest();
                if rest.starts_with('.')
                    && rest
                        .get(1..2)
                        .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
                {
                    self.pos += 1;
                    self.take_while(|c| c.is_ascii_digit());
                }
                Tok::Number(self.src.get(start..self.pos).unwrap_or("").into())
            }
            '@' => {
                self.pos += 1;
                if self.peek() == Some('T') {
                    self.pos += 1;
                    Tok::Time(
                        self.temporal_text(|c| c.is_ascii_digit() || c == ':')
                            .into(),
                    )
                } else {
                    Tok::Date(
                        self.temporal_text(|c| {
                            c.is_ascii_digit() || matches!(c, '-' | ':' | 'T' | 'Z' | '+')
                        })
                        .into(),
                    )
                }
            }
            '$' => {
                self.pos += 1;
                Tok::Special(self.take_while(|c| c.is_alphanumeric() || c == '_').into())
            }
            '%' => {
                self.pos += 1;
                match self.peek() {
                    Some('`') => Tok::Var(self.delimited('`')?),
                    Some('\'') => Tok::Var(self.delimited('\'')?),
                    _ => Tok::Var(
                        self.take_while(|c| c.is_alphanumeric() || c == '_' || c == '-')
                            .into(),
                    ),
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                Tok::Ident(self.take_while(|c| c.is_alphanumeric() || c == '_').into())
            }
            _ => {
                let rest = self.rest();
                let sym = SYMBOLS
                    .iter()
                    .find(|s| rest.starts_with(**s))
                    .or_else(|| ["<", ">"].iter().find(|s| rest.starts_with(**s)))
                    .ok_or_else(|| err(format!("unexpected character {c:?}"), start))?;
                self.pos += sym.len();
                Tok::Sym(sym)
            }
        };
        Ok(Some((tok, start)))
    }
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
    nesting: usize,
}

fn binop(tok: &Tok) -> Option<(BinOp, u8)> {
    Some(match tok {
        Tok::Sym(s) => match *s {
            "*" => (BinOp::Mul, 9),
            "/" => (BinOp::Div, 9),
            "+" => (BinOp::Add, 8),
            "-" => (BinOp::Sub, 8),
            "&" => (BinOp::Concat, 8),
            "|" => (BinOp::Union, 6),
            "<" => (BinOp::Lt, 5),
            ">" => (BinOp::Gt, 5),
            "<=" => (BinOp::Le, 5),
            ">=" => (BinOp::Ge, 5),
            "=" => (BinOp::Eq, 4),
            "!=" => (BinOp::Ne, 4),
            "~" => (BinOp::Equiv, 4),
            "!~" => (BinOp::NotEquiv, 4),
            _ => return None,
        },
        Tok::Ident(s) => match &**s {
            "div" => (BinOp::IntDiv, 9),
            "mod" => (BinOp::Mod, 9),
            "in" => (BinOp::In, 3),
            "contains" => (BinOp::Contains, 3),
            "and" => (BinOp::And, 2),
            "or" => (BinOp::Or, 1),
            "xor" => (BinOp::Xor, 1),
            "implies" => (BinOp::Implies, 0),
            _ => return None,
        },
        _ => return None,
    })
}

/// Precedence of `is` / `as` (between additive and union).
const TYPE_PREC: u8 = 7;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn position(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(_, p)| *p)
    }

    fn bump(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        t
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, sym: &str) -> Result<(), ParseError> {
        if self.eat_sym(sym) {
            Ok(())
        } else {
            Err(err(format!("expected '{sym}'"), self.position()))
        }
    }

    fn expression(&mut self, min_prec: u8) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        let mut operators = 0;
        while let Some(tok) = self.peek() {
            // Each operator nests the tree built so far one level deeper.
            operators += 1;
            if self.nesting + operators > MAX_DEPTH {
                return Err(err(
                    format!("the expression nests deeper than {MAX_DEPTH} levels"),
                    self.position(),
                ));
            }
            if let Tok::Ident(word) = tok
                && (&**word == "is" || &**word == "as")
                && TYPE_PREC >= min_prec
            {
                let func = if &**word == "is" { Func::Is } else { Func::As };
                self.pos += 1;
                let ty = self.type_spec()?;
                left = Expr::TypeCall {
                    target: Some(Box::new(left)),
                    func,
                    ty,
                };
                continue;
            }
            let Some((op, prec)) = binop(tok) else { break };
            if prec < min_prec {
                break;
            }
            self.pos += 1;
            let right = self.expression(prec + 1)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn type_spec(&mut self) -> Result<TypeSpec, ParseError> {
        let first = match self.bump() {
            Some(Tok::Ident(s) | Tok::Quoted(s)) => s,
            _ => return Err(err("expected a type name", self.position())),
        };
        if self.eat_sym(".") {
            let name = match self.bump() {
                Some(Tok::Ident(s) | Tok::Quoted(s)) => s,
                _ => return Err(err("expected a type name", self.position())),
            };
            return Ok(TypeSpec {
                namespace: Some(first),
                name,
            });
        }
        Ok(TypeSpec {
            namespace: None,
            name: first,
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        // Parsing recurses through here for every nested operand.
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(err(
                format!("the expression nests deeper than {MAX_DEPTH} levels"),
                self.position(),
            ));
        }
        let result = self.unary_inner();
        self.nesting -= 1;
        result
    }

    fn unary_inner(&mut self) -> Result<Expr, ParseError> {
        if self.eat_sym("-") {
            let inner = self.unary()?;
            return Ok(match inner {
                Expr::Literal(Literal::Integer(i)) => Expr::Literal(Literal::Integer(-i)),
                Expr::Literal(Literal::Decimal(d)) => Expr::Literal(Literal::Decimal(d.neg())),
                Expr::Literal(Literal::Quantity(mut q)) => {
                    q.value = q.value.neg();
                    Expr::Literal(Literal::Quantity(q))
                }
                other => Expr::Negate(Box::new(other)),
            });
        }
        if self.eat_sym("+") {
            return self.unary();
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.term()?;
        let mut steps = 0;
        loop {
            steps += 1;
            if self.nesting + steps > MAX_DEPTH {
                return Err(err(
                    format!("the expression nests deeper than {MAX_DEPTH} levels"),
                    self.position(),
                ));
            }
            if self.eat_sym(".") {
                let name = match self.bump() {
                    Some(Tok::Ident(s) | Tok::Quoted(s)) => s,
                    _ => return Err(err("expected a name after '.'", self.position())),
                };
                expr = self.invocation(Some(expr), name)?;
            } else if self.eat_sym("[") {
                let index = self.expression(0)?;
                self.expect_sym("]")?;
                expr = Expr::Indexer(Box::new(expr), Box::new(index));
            } else {
                return Ok(expr);
            }
        }
    }

    fn invocation(&mut self, target: Option<Expr>, name: Box<str>) -> Result<Expr, ParseError> {
        if !self.eat_sym("(") {
            return Ok(match target {
                Some(t) => Expr::Member(Box::new(t), name),
                None => Expr::Identifier(name),
            });
        }
        let position = self.position();
        let func = Func::from_name(&name).ok_or_else(|| ParseError::UnknownFunction {
            name: name.to_string(),
            position,
        })?;
        let mut args = Vec::new();
        if !self.eat_sym(")") {
            loop {
                args.push(self.expression(0)?);
                if self.eat_sym(")") {
                    break;
                }
                self.expect_sym(",")?;
            }
        }
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            return Err(ParseError::Arity {
                name: name.to_string(),
                count: args.len(),
            });
        }
        let target = target.map(Box::new);
        if matches!(func, Func::Is | Func::As | Func::OfType) {
            let ty = args
                .pop()
                .and_then(|a| type_spec_of(&a))
                .ok_or_else(|| err("expected a type name", position))?;
            return Ok(Expr::TypeCall { target, func, ty });
        }
        Ok(Expr::Call { target, func, args })
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let position = self.position();
        let tok = self
            .bump()
            .ok_or_else(|| err("unexpected end of expression", position))?;
        Ok(match tok {
            Tok::Sym("(") => {
                let e = self.expression(0)?;
                self.expect_sym(")")?;
                e
            }
            Tok::Sym("{") => {
                self.expect_sym("}")?;
                Expr::Empty
            }
            Tok::Str(s) => Expr::Literal(Literal::String(s)),
            Tok::Number(n) => self.number(&n, position)?,
            Tok::Date(d) => {
                date_literal(&d).ok_or_else(|| err("invalid date literal", position))?
            }
            Tok::Time(t) => Expr::Literal(Literal::Time(
                Temporal::parse_time(&t).ok_or_else(|| err("invalid time literal", position))?,
            )),
            Tok::Special(s) => match &*s {
                "this" => Expr::This,
                "index" => Expr::Index,
                "total" => Expr::Total,
                _ => return Err(err(format!("unknown ${s}"), position)),
            },
            Tok::Var(v) => Expr::Variable(v),
            Tok::Ident(s) if &*s == "true" => Expr::Literal(Literal::Boolean(true)),
            Tok::Ident(s) if &*s == "false" => Expr::Literal(Literal::Boolean(false)),
            Tok::Ident(s) | Tok::Quoted(s) => self.invocation(None, s)?,
            Tok::Sym(s) => return Err(err(format!("unexpected '{s}'"), position)),
        })
    }

    fn number(&mut self, text: &str, position: usize) -> Result<Expr, ParseError> {
        let value = if text.contains('.') {
            Literal::Decimal(Decimal::parse(text).ok_or_else(|| err("bad number", position))?)
        } else {
            match text.parse::<i64>() {
                Ok(i) if i <= i64::from(i32::MAX) + 1 => Literal::Integer(i),
                _ => Literal::Decimal(
                    Decimal::parse(text).ok_or_else(|| err("bad number", position))?,
                ),
            }
        };
        let unit = match self.peek() {
            Some(Tok::Str(u)) => Some((u.clone(), false)),
            Some(Tok::Ident(w)) if calendar_keyword(w).is_some() => Some((w.clone(), true)),
            _ => None,
        };
        let Some((unit, calendar)) = unit else {
            return Ok(Expr::Literal(value));
        };
        self.pos += 1;
        let value = match value {
            Literal::Integer(i) => Decimal::from_i64(i),
            Literal::Decimal(d) => d,
            _ => Decimal::ZERO,
        };
        Ok(Expr::Literal(Literal::Quantity(Quantity {
            value,
            unit,
            calendar,
        })))
    }
}

fn date_literal(text: &str) -> Option<Expr> {
    let literal = if text.contains('T') {
        Literal::DateTime(Temporal::parse_datetime(text)?)
    } else {
        Literal::Date(Temporal::parse_date(text)?)
    };
    Some(Expr::Literal(literal))
}

fn type_spec_of(expr: &Expr) -> Option<TypeSpec> {
    match expr {
        Expr::Identifier(name) => Some(TypeSpec {
            namespace: None,
            name: name.clone(),
        }),
        Expr::Member(inner, name) => match &**inner {
            Expr::Identifier(ns) => Some(TypeSpec {
                namespace: Some(ns.clone()),
                name: name.clone(),
            }),
            _ => None,
        },
        _ => None,
    }
}

/// Parses a whole expression.
pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut lexer = Lexer { src, pos: 0 };
    let mut toks = Vec::new();
    while let Some(t) = lexer.next()? {
        toks.push(t);
    }
    let mut parser = Parser {
        toks,
        pos: 0,
        end: src.len(),
        nesting: 0,
    };
    let expr = parser.expression(0)?;
    if parser.pos < parser.toks.len() {
        return Err(err(
            "unexpected content after the expression",
            parser.position(),
        ));
    }
    if depth(&expr) > MAX_DEPTH {
        return Err(err(
            format!("the expression nests deeper than {MAX_DEPTH} levels"),
            0,
        ));
    }
    Ok(expr)
}

/// Deepest syntax tree accepted: evaluation recurses along it, so a hostile
/// expression (`((((...))))`, `a.a.a.a...`) cannot exhaust the stack. R4 and
/// IG invariants stay under 30.
pub const MAX_DEPTH: usize = 200;

/// The depth of a tree, computed without recursion.
fn depth(root: &Expr) -> usize {
    let mut stack = vec![(root, 1usize)];
    let mut deepest = 0;
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        if d > MAX_DEPTH {
            break;
        }
        stack.extend(e.children().map(|(child, _)| (child, d + 1)));
    }
    deepest
}

impl Expr {
    /// The sub-expressions directly below this one, each with whether it
    /// is an argument of a function call.
    pub(crate) fn children(&self) -> impl Iterator<Item = (&Expr, bool)> {
        let (first, second, args): (Option<&Expr>, Option<&Expr>, &[Expr]) = match self {
            Expr::Member(t, _) | Expr::Negate(t) => (Some(t), None, &[]),
            Expr::Indexer(a, b) | Expr::Binary(_, a, b) => (Some(a), Some(b), &[]),
            Expr::Call { target, args, .. } => (target.as_deref(), None, args),
            Expr::TypeCall { target, .. } => (target.as_deref(), None, &[]),
            _ => (None, None, &[]),
        };
        first
            .into_iter()
            .chain(second)
            .map(|child| (child, false))
            .chain(args.iter().map(|arg| (arg, true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_literals() {
        let e = parse("1 + 2 * 3 = 7 and true").unwrap();
        assert!(matches!(e, Expr::Binary(BinOp::And, _, _)));
        assert!(matches!(
            parse("-1.convertsToInteger()").unwrap(),
            Expr::Negate(_)
        ));
        assert!(matches!(
            parse("4 days").unwrap(),
            Expr::Literal(Literal::Quantity(_))
        ));
        assert!(matches!(
            parse("@2015-02-04T14:34:28Z.is(DateTime)").unwrap(),
            Expr::TypeCall { .. }
        ));
    }

    #[test]
    fn hostile_nesting_is_refused_not_overflowed() {
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&deep).is_err());
        let chain = format!("a{}", ".a".repeat(1_000_000));
        assert!(parse(&chain).is_err());
        let sum = format!("1{}", "+1".repeat(1_000_000));
        assert!(parse(&sum).is_err());
        let minus = format!("{}1", "-".repeat(10_000));
        assert!(parse(&minus).is_err());
        assert!(parse("((((((((((1))))))))))").is_ok());
    }
}
