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
mod error;
mod eval;
mod expression;
mod model;
mod parser;
mod quantity;
mod temporal;
mod value;

pub use decimal::Decimal;
pub use error::{EvalError, FhirPathError, ParseError};
pub use eval::{EvalContext, Hooks, NoHooks, ResourceScope};
pub use expression::Expression;

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
pub use temporal::{Precision, Temporal, TemporalKind, TimeUnit};
pub use value::{Collection, Item, NodeRef};
