//! A parsed FHIRPath expression ([`Expression`]): parsed once by the parser,
//! evaluated many times by the evaluator, with the invariant form validators
//! use (`evaluate_constraint`).

use crate::error::EvalError;
use crate::error::ParseError;
use crate::eval::{self, EvalContext};
use crate::parser::{self, BinOp, Expr, Func};
use crate::value::{Collection, Item};

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
    /// The addresses of the sub-expressions evaluated once per evaluation
    /// (`eval::hoisted`); they point into `root`'s boxes, so a clone
    /// computes its own.
    hoisted: Vec<eval::Hoisted>,
}

impl Clone for Expression {
    fn clone(&self) -> Self {
        let root = self.root.clone();
        Expression {
            source: self.source.clone(),
            hoisted: eval::hoisted(&root),
            root,
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
            hoisted: eval::hoisted(&root),
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
        eval::evaluate(&self.root, &self.regexes, &self.hoisted, ctx)
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
            && let Some(result) = eval::fast_constraint(&self.root, &self.regexes, ctx)
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
            eval::fast_constraint(&self.root, &self.regexes, ctx)
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
