//! FHIRPath for the EHDS NCP gateway.
//!
//! Owns: parsing FHIRPath expressions (<https://hl7.org/fhirpath/N1/>, plus
//! the FHIRPath 2.1 functions the official R4 test suite uses) into an
//! [`Expression`] once, and evaluating them many times directly over the
//! lossless JSON view of `ehds_fhir` ([`ehds_fhir::Node`]), without converting documents
//! to typed structs. Types come from a [`Model`] built from the core
//! StructureDefinitions in an `ehds_profiles::Registry`: choice elements
//! (`Observation.value` → `valueQuantity`), primitive types (a JSON string
//! that is a `date`), type tests (`is`, `as`, `ofType`) and resource types.
//! What the engine cannot know — resolving references, value set membership,
//! profile conformance, narrative checks — is asked of the caller through
//! [`Hooks`].
//!
//! Must not know about: validation reports, storage, HTTP, routing or
//! transport.
//!
//! ## How a validator uses it
//!
//! * At start-up: `Model::from_registry(&registry)` once, and
//!   [`Expression::parse`] once per invariant (`ElementDefinition.constraint.expression`);
//!   every expression in `profiles/` parses (tests/profile_constraints.rs).
//! * Per element: [`EvalContext::for_element`] with the element as an
//!   [`Item`] (a node and its [`TypeId`]; for a primitive, its value and its
//!   `_x` partner), `%resource` and `%rootResource` built once per resource
//!   with [`Item::resource`], the caller's [`Hooks`] (resolve inside the
//!   Bundle, terminology for `memberOf`), then
//!   [`Expression::evaluate_constraint`]: empty or `true` passes, `false`
//!   fails, an [`EvalError`] is the expression's fault, not the document's.
//! * R4 compatibility is on by default ([`EvalContext::r4_compat`]): the
//!   R4 core invariants rely on `as()` over collections (dom-3) and on
//!   `is Boolean` matching a FHIR `boolean` (que-7), which FHIRPath 2.0 made
//!   an error and false; the official suite runs with it off.
//!
//! ## Conformance and limits
//!
//! The official R4 suite passes except the tests listed in
//! `conformance/fhirpath/known-failures.txt` (disputed expectations).
//! Decimals are exact (base 10, up to 38 digits); quantities compare and
//! convert through a subset of UCUM (metric prefixes on m, g, s, L, mol; min,
//! h, d, wk, mo, a; `[in_i]`, `[ft_i]`, `[lb_av]`, `[oz_av]`; products, quotients,
//! powers) and units outside it compare only when written identically.
//! `subsumes()`/`subsumedBy()` return empty (no code system hierarchy).
//! Expressions nest at most [`MAX_DEPTH`] levels.
//!
//! ```
//! use ehds_fhirpath::{EvalContext, Expression, Model};
//! let doc = ehds_fhir::json::parse(br#"{"resourceType":"Patient","active":true}"#).unwrap();
//! let model = Model::empty();
//! let expr = Expression::parse("active and Patient.active.exists()").unwrap();
//! assert_eq!(expr.evaluate_constraint(&EvalContext::new(&model, &doc)).unwrap(), true);
//! ```

mod decimal;
mod eval;
mod model;
mod parser;
mod quantity;
mod temporal;
mod value;

pub use decimal::Decimal;
pub use eval::{EvalContext, Hooks, NoHooks};

/// The child elements of an item, in document order and typed: what
/// `children()` returns, for callers that walk a document (a validator
/// applying each element's invariants).
pub fn children<'a>(model: &Model, item: &Item<'a>) -> Collection<'a> {
    let mut out = Collection::new();
    eval::push_children(model, item, &mut out);
    out
}
pub use model::{Child, Model, SystemKind, TypeDef, TypeId, TypeKind};
pub use parser::{BinOp, Expr, Func, Literal, MAX_DEPTH, TypeSpec};
pub use quantity::Quantity;
pub use temporal::{Precision, Temporal, TemporalKind};
pub use value::{Collection, Item, NodeRef};

/// Why an expression does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not FHIRPath syntax.
    #[error("FHIRPath syntax error at offset {position}: {message}")]
    Syntax {
        /// What is wrong.
        message: String,
        /// Byte offset in the expression.
        position: usize,
    },
    /// A function this engine does not know.
    #[error("unknown FHIRPath function {name}() at offset {position}")]
    UnknownFunction {
        /// Its name.
        name: String,
        /// Byte offset in the expression.
        position: usize,
    },
    /// A known function called with the wrong number of arguments.
    #[error("{name}() does not take {count} argument(s)")]
    Arity {
        /// The function.
        name: String,
        /// How many were given.
        count: usize,
    },
}

/// Why an evaluation failed (FHIRPath: an error, not an empty result).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A function or operator that needs at most one item got several.
    #[error("{0}: expected a single item, got a collection of several")]
    NotSingleton(&'static str),
    /// An operand of the wrong type.
    #[error("{0}")]
    Type(String),
    /// `%name` that is not defined.
    #[error("undefined variable %{0}")]
    UndefinedVariable(String),
    /// A hook could not answer (e.g. `conformsTo` of an unknown profile).
    #[error("{0}")]
    Hook(String),
    /// Any other failure the specification calls an error.
    #[error("{0}")]
    Invalid(String),
}

/// Either failure, for callers that parse and evaluate in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirPathError {
    /// The expression does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The evaluation failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
}

/// A parsed FHIRPath expression: parse once, evaluate many times. `Send +
/// Sync`; compiled regular expressions are cached inside.
#[derive(Debug)]
pub struct Expression {
    source: Box<str>,
    root: Expr,
    regexes: eval::RegexCache,
    /// Whether the root of the expression is a form the shortcut of
    /// `evaluate_constraint` knows (what lies below is checked as it goes).
    fast: bool,
}

impl Clone for Expression {
    fn clone(&self) -> Self {
        Expression {
            source: self.source.clone(),
            root: self.root.clone(),
            regexes: eval::RegexCache::default(),
            fast: self.fast,
        }
    }
}

impl Expression {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Expression, ParseError> {
        let root = parser::parse(source)?;
        Ok(Expression {
            source: source.into(),
            fast: eval::fast_supported(&root),
            root,
            regexes: eval::RegexCache::default(),
        })
    }

    /// The text it was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The syntax tree.
    pub fn ast(&self) -> &Expr {
        &self.root
    }

    /// Evaluates against the context's `%context` item.
    pub fn evaluate<'a>(&self, ctx: &EvalContext<'a, '_>) -> Result<Collection<'a>, EvalError> {
        eval::evaluate(self, ctx)
    }

    /// Whether the expression is `hasValue() or …` on its context: then it
    /// is true for any element with a primitive value whatever the rest
    /// says (FHIRPath `or` is true when either side is true, `empty` or
    /// not), so a caller may skip evaluating it there. `ele-1` is of this
    /// form and is checked on every primitive of a document.
    pub fn is_true_when_context_has_value(&self) -> bool {
        match &self.root {
            Expr::Binary(BinOp::Or, left, _) => matches!(
                left.as_ref(),
                Expr::Call {
                    target: None,
                    func: Func::HasValue,
                    args,
                } if args.is_empty()
            ),
            _ => false,
        }
    }

    /// Evaluates an invariant: satisfied when the result is `true` (boolean
    /// of a singleton collection,
    /// <https://hl7.org/fhirpath/N1/#singleton-evaluation-of-collections>)
    /// or a single non-boolean item; `false` and an empty result fail it, as
    /// in the HL7 Java validator (`FHIRPathEngine.convertToBoolean`, which
    /// `InstanceValidator.checkInvariant` uses: an empty collection is
    /// false), so `per-1` on a Period whose start and end differ in
    /// precision (`start <= end` is empty) fails there too. More than one
    /// item is an error.
    ///
    /// Expressions made only of logic, comparisons, integer and boolean
    /// literals, integer `+ - *`, and `exists()`/`empty()`/`count()`/
    /// `hasValue()`/`isDistinct()`/`is` on paths of child names, filtered by
    /// `where()`, `select()`, `first()`, `last()`, `tail()` and joined by `&`
    /// (ele-1, ext-1, bdl-5, bdl-7, obs-6, dom-2, dom-4, con-5, …: most
    /// invariants a validator evaluates) are decided
    /// by a small evaluator that counts rather than collects where it can;
    /// anything else in them (another type, an error) falls back to the
    /// interpreter, so the result is always the interpreter's, and so are
    /// the `trace()` calls (handed to the hooks only once the shortcut has
    /// decided): `tests/fast_path.rs` compares both on every example.
    pub fn evaluate_constraint(&self, ctx: &EvalContext<'_, '_>) -> Result<bool, EvalError> {
        if self.fast
            && let Some(result) = eval::fast_constraint(self, ctx)
        {
            return Ok(result);
        }
        self.evaluate_constraint_interpreted(ctx)
    }

    /// Whether [`Expression::evaluate_constraint`] tries the shortcut on
    /// this expression (for tests).
    #[doc(hidden)]
    pub fn has_shortcut(&self) -> bool {
        self.fast
    }

    /// The shortcut's own answer, `None` where it leaves the expression to
    /// the interpreter (for tests and benchmarks).
    #[doc(hidden)]
    pub fn evaluate_constraint_shortcut(&self, ctx: &EvalContext<'_, '_>) -> Option<bool> {
        if self.fast {
            eval::fast_constraint(self, ctx)
        } else {
            None
        }
    }

    /// [`Expression::evaluate_constraint`] always through the interpreter
    /// (for tests comparing it with the shortcut).
    #[doc(hidden)]
    pub fn evaluate_constraint_interpreted(
        &self,
        ctx: &EvalContext<'_, '_>,
    ) -> Result<bool, EvalError> {
        let result = self.evaluate(ctx)?;
        match result.as_slice() {
            [] => Ok(false),
            [Item::Boolean(b)] => Ok(*b),
            [_] => Ok(true),
            _ => Err(EvalError::NotSingleton("constraint result")),
        }
    }
}
