//! Evaluation of a parsed expression over the lossless JSON view
//! (<https://hl7.org/fhirpath/N1/#functions>, <https://hl7.org/fhirpath/N1/#operations>).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Mutex;

use ehds_fhir::Node;
use ehds_fhir::json::Json;
use regex::Regex;
use smallvec::{SmallVec, smallvec};

use crate::decimal::Decimal;
use crate::error::EvalError;
use crate::model::{Child, Model, TypeId, TypeKind};
use crate::parser::{BinOp, Expr, Func, Literal, TypeSpec};
use crate::quantity::Quantity;
use crate::temporal::{Temporal, TemporalKind};
use crate::value::{Collection, Item, NodeRef};

/// Compiled regular expressions of one [`crate::Expression`], by pattern.
#[derive(Debug, Default)]
pub(crate) struct RegexCache(Mutex<HashMap<(Box<str>, bool), Regex>>);

/// What the engine asks of its caller. Every method has a default, so a
/// caller implements only what it can answer.
pub trait Hooks<'a> {
    /// The resource a reference (`Reference.reference` or a URL string)
    /// points to, e.g. inside the Bundle being validated. Contained
    /// references (`#id`) are resolved by the engine itself.
    fn resolve(&self, _reference: &str) -> Option<&'a Node> {
        None
    }

    /// Whether a code, Coding or CodeableConcept (`item`, of FHIR type
    /// `type_name`) is in the value set `value_set`; `None` when unknown
    /// (the result is then empty).
    fn member_of(&self, _item: &Item<'a>, _type_name: &str, _value_set: &str) -> Option<bool> {
        None
    }

    /// Whether a resource conforms to the profile `url`; `None` when the
    /// profile is unknown (an evaluation error, as FHIRPath requires).
    fn conforms_to(&self, _resource: &Item<'a>, _url: &str) -> Option<bool> {
        None
    }

    /// FHIR's `htmlChecks()` on a narrative `div`: the engine answers true
    /// unless the caller checks narrative XHTML itself.
    fn html_checks(&self, _div: &Item<'a>) -> bool {
        true
    }

    /// `trace(name)`: the items passing by (debugging; ignored by default).
    fn trace(&self, _name: &str, _items: &[Item<'a>]) {}
}

/// Hooks that know nothing: `resolve()` finds only contained resources,
/// `memberOf()` is empty, `conformsTo()` fails, `htmlChecks()` is true.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl Hooks<'_> for NoHooks {}

/// Everything an evaluation reads besides the expression.
pub struct EvalContext<'a, 'h> {
    model: &'h Model,
    hooks: &'h dyn Hooks<'a>,
    context: Option<Item<'a>>,
    resource: Option<Item<'a>>,
    root_resource: Option<Item<'a>>,
    strict: bool,
    r4_compat: bool,
    /// The clock `now()`, `today()` and `timeOfDay()` read; `None`: the
    /// system clock.
    now: Option<std::time::SystemTime>,
    /// Values shared with the other evaluations over the same resource
    /// and over the same root resource ([`ResourceScope`]).
    scopes: Option<(&'h ResourceScope<'a>, &'h ResourceScope<'a>)>,
}

/// What the evaluations over one resource may share: the values of
/// hoisted sub-expressions ([`hoisted`]) built from `%resource` or
/// `%rootResource`, the constant variables and literals only (not
/// `%context`, not the clock). A validator evaluates ref-1's
/// `reference.substring(1) in %rootResource.contained.id` once per
/// reference: with one scope per root resource, a document holding N
/// contained resources referenced N times costs N look-ups, not N walks
/// of N (the time grew with N squared).
///
/// The caller keeps one scope per resource and hands it
/// ([`EvalContext::with_resource_scopes`]) only to contexts whose
/// `%resource` (or `%rootResource`) is that resource, with the same
/// hooks.
#[derive(Default)]
pub struct ResourceScope<'a> {
    values: Memo<Collection<'a>>,
    sets: Memo<std::rc::Rc<Seen<'a>>>,
}

impl ResourceScope<'_> {
    /// An empty scope, for a resource about to be walked.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for ResourceScope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceScope")
            .field("values", &self.values.borrow().len())
            .field("sets", &self.sets.borrow().len())
            .finish()
    }
}

impl<'a, 'h> EvalContext<'a, 'h> {
    /// Evaluation over a resource: `%context`, `%resource` and
    /// `%rootResource` are all `resource`, typed by its `resourceType`.
    pub fn new(model: &'h Model, resource: &'a Node) -> EvalContext<'a, 'h> {
        let item = Item::resource(resource, model);
        EvalContext {
            model,
            hooks: &NoHooks,
            context: Some(item.clone()),
            resource: Some(item.clone()),
            root_resource: Some(item),
            strict: false,
            r4_compat: true,
            now: None,
            scopes: None,
        }
    }

    /// Evaluation of an invariant on an element: `context` is the element
    /// (with its type), `resource` the resource that holds it (`%resource`)
    /// and `root_resource` the outermost one (`%rootResource`, e.g. the
    /// Bundle).
    /// Build the resource items once per resource with [`Item::resource`].
    pub fn for_element(
        model: &'h Model,
        context: Item<'a>,
        resource: Item<'a>,
        root_resource: Item<'a>,
    ) -> EvalContext<'a, 'h> {
        EvalContext {
            model,
            hooks: &NoHooks,
            context: Some(context),
            resource: Some(resource),
            root_resource: Some(root_resource),
            strict: false,
            r4_compat: true,
            now: None,
            scopes: None,
        }
    }

    /// Evaluation with no input at all (`%context` and `%resource` empty),
    /// for expressions over literals only.
    pub fn without_resource(model: &'h Model) -> EvalContext<'a, 'h> {
        EvalContext {
            model,
            hooks: &NoHooks,
            context: None,
            resource: None,
            root_resource: None,
            strict: false,
            r4_compat: true,
            now: None,
            scopes: None,
        }
    }

    /// `now()`, `today()` and `timeOfDay()` read `now` instead of the
    /// system clock (a validator's fixed "now", so that verdicts on dates
    /// are reproducible).
    pub fn with_now(mut self, now: Option<std::time::SystemTime>) -> Self {
        self.now = now;
        self
    }

    /// Shares the values that depend on `%resource` (and constants) with
    /// the other evaluations given the same `resource` scope, and those
    /// that depend on `%rootResource` (and constants) with those given the
    /// same `root` scope ([`ResourceScope`]: one per resource; for a
    /// resource that is its own root, the same scope twice).
    pub fn with_resource_scopes(
        mut self,
        resource: &'h ResourceScope<'a>,
        root: &'h ResourceScope<'a>,
    ) -> Self {
        self.scopes = Some((resource, root));
        self
    }

    /// Uses `hooks` for resolve(), memberOf(), conformsTo(), htmlChecks().
    pub fn with_hooks(mut self, hooks: &'h dyn Hooks<'a>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Strict mode: navigating to a child the model says a type does not
    /// have is an error rather than empty (FHIRPath's semantic checking).
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// R4 compatibility (on by default): the behaviour the R4 core
    /// invariants were written for, which FHIRPath 2.0 (and the official
    /// suite) later made errors or false. With it, `as` over several items
    /// filters like `ofType` (dom-3: `descendants().as(canonical)`), and an
    /// unqualified system type name in `is`/`as`/`ofType` also matches FHIR
    /// primitives of that kind (que-7: `answer is Boolean` on `answerBoolean`).
    pub fn r4_compat(mut self, on: bool) -> Self {
        self.r4_compat = on;
        self
    }

    /// The model in use.
    pub fn model(&self) -> &'h Model {
        self.model
    }

    /// The `%context` item, if any.
    pub fn context(&self) -> Option<&Item<'a>> {
        self.context.as_ref()
    }
}

type R<T> = Result<T, EvalError>;

fn type_err(msg: impl Into<String>) -> EvalError {
    EvalError::Type(msg.into())
}

/// The frame `$this`, `$index`, `$total` refer to.
#[derive(Clone, Copy)]
struct Frame<'f, 'a> {
    this: &'f [Item<'a>],
    index: Option<usize>,
    total: Option<&'f [Item<'a>]>,
}

struct Eval<'e, 'a, 'h> {
    ctx: &'e EvalContext<'a, 'h>,
    model: &'h Model,
    regexes: &'e RegexCache,
    /// The shortcut's `trace()` calls, handed to the hooks only once it has
    /// decided (when it leaves the expression to the interpreter, the
    /// interpreter traces instead, so each call is made once).
    traces: std::cell::RefCell<Vec<(&'e str, Collection<'a>)>>,
    /// The shortcut's paths of child names from a variable (`%resource.type`),
    /// by the address of their node in the expression: the same wherever
    /// they are met in one evaluation (`entry.all(… %resource.type …)`
    /// meets them once per entry).
    constant_paths: Memo<Collection<'a>>,
    /// The expression's hoisted sub-expressions ([`hoisted`]), sorted;
    /// empty for most expressions.
    hoisted: &'e [Hoisted],
    /// Their values, once evaluated in this evaluation.
    hoisted_values: Memo<Collection<'a>>,
    /// The values of hoisted right operands of `in`, as sets: each
    /// membership test is then a hash look-up (dom-3 asks one per
    /// contained resource).
    hoisted_sets: Memo<std::rc::Rc<Seen<'a>>>,
}

/// Values remembered for one evaluation, by the address of the expression
/// node they belong to (a few per expression: a list).
type Memo<T> = std::cell::RefCell<Vec<(usize, T)>>;

/// The value `memo` holds for the node at `key`.
fn recall<T: Clone>(memo: &Memo<T>, key: usize) -> Option<T> {
    memo.borrow()
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, value)| value.clone())
}

/// The address a node is remembered by.
fn node_key(expr: &Expr) -> usize {
    std::ptr::from_ref(expr).addr()
}

pub(crate) fn evaluate<'a>(
    root: &Expr,
    regexes: &RegexCache,
    hoisted: &[Hoisted],
    ctx: &EvalContext<'a, '_>,
) -> R<Collection<'a>> {
    let ev = Eval {
        ctx,
        model: ctx.model,
        regexes,
        traces: std::cell::RefCell::default(),
        constant_paths: std::cell::RefCell::default(),
        hoisted,
        hoisted_values: std::cell::RefCell::default(),
        hoisted_sets: std::cell::RefCell::default(),
    };
    let this = ctx.context.as_slice();
    ev.eval(
        root,
        Frame {
            this,
            index: None,
            total: None,
        },
    )
}

fn one<'a>(item: Item<'a>) -> Collection<'a> {
    smallvec![item]
}

fn boolean<'a>(b: bool) -> Collection<'a> {
    smallvec![Item::Boolean(b)]
}

fn opt_bool<'a>(b: Option<bool>) -> Collection<'a> {
    b.map(boolean).unwrap_or_default()
}

fn single<'c, 'a>(c: &'c [Item<'a>], what: &'static str) -> R<Option<&'c Item<'a>>> {
    match c {
        [] => Ok(None),
        [x] => Ok(Some(x)),
        _ => Err(EvalError::NotSingleton(what)),
    }
}

fn system_type(name: &str) -> bool {
    matches!(
        name,
        "Boolean" | "String" | "Integer" | "Decimal" | "Date" | "DateTime" | "Time" | "Quantity"
    )
}

impl<'e, 'a, 'h> Eval<'e, 'a, 'h> {
    fn eval(&self, expr: &Expr, f: Frame<'_, 'a>) -> R<Collection<'a>> {
        if let Some(reads) = self.hoisted_as(expr) {
            let key = node_key(expr);
            let memo = self.values_memo(reads);
            if let Some(known) = recall(memo, key) {
                return Ok(known);
            }
            let value = self.eval_here(expr, f)?;
            memo.borrow_mut().push((key, value.clone()));
            return Ok(value);
        }
        self.eval_here(expr, f)
    }

    fn eval_here(&self, expr: &Expr, f: Frame<'_, 'a>) -> R<Collection<'a>> {
        match expr {
            Expr::Empty => Ok(Collection::new()),
            Expr::Literal(l) => Ok(one(literal(l))),
            Expr::This => Ok(f.this.iter().cloned().collect()),
            Expr::Index => Ok(f
                .index
                .map(|i| one(Item::Integer(i64::try_from(i).unwrap_or(i64::MAX))))
                .unwrap_or_default()),
            Expr::Total => Ok(f
                .total
                .map(|t| t.iter().cloned().collect())
                .unwrap_or_default()),
            Expr::Variable(name) => self.variable(name),
            Expr::Identifier(name) => {
                // A type name at the start of a path selects the context
                // when it is of that type (`Patient.name`).
                if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                    if let Some(ty) = self.model.type_named(name) {
                        let matching: Collection<'a> = f
                            .this
                            .iter()
                            .filter(|i| matches!(i, Item::Node(n) if n.ty.is_some_and(|t| self.model.derives_from(t, ty))))
                            .cloned()
                            .collect();
                        if !matching.is_empty() || self.ctx.strict {
                            if matching.is_empty() {
                                return Err(type_err(format!("the context is not a {name}")));
                            }
                            return Ok(matching);
                        }
                    } else if self.model.is_empty() {
                        let matching: Collection<'a> = f
                            .this
                            .iter()
                            .filter(|i| {
                                matches!(i, Item::Node(NodeRef { value: Some(v), .. })
                                    if v.get("resourceType").and_then(Node::as_str) == Some(name))
                            })
                            .cloned()
                            .collect();
                        if !matching.is_empty() {
                            return Ok(matching);
                        }
                    }
                }
                let mut out = Collection::new();
                for item in f.this {
                    self.member(item, name, &mut out)?;
                }
                Ok(out)
            }
            Expr::Member(target, name) => {
                // Strict mode checks what it can statically: after `as T` /
                // `ofType(T)` the type is known even when nothing matched.
                if self.ctx.strict
                    && let Expr::TypeCall {
                        func: Func::As | Func::OfType,
                        ty,
                        ..
                    } = &**target
                    && ty.namespace.as_deref() != Some("System")
                    && let Some(t) = self.model.type_named(&ty.name)
                    && self.model.child(t, name).is_none()
                {
                    return Err(EvalError::Invalid(format!(
                        "{} has no element {name}",
                        ty.name
                    )));
                }
                let input = self.eval(target, f)?;
                let mut out = Collection::new();
                for item in &input {
                    self.member(item, name, &mut out)?;
                }
                Ok(out)
            }
            Expr::Indexer(target, index) => {
                let input = self.eval(target, f)?;
                let idx = self.eval(index, f)?;
                let Some(i) = single(&idx, "indexer")? else {
                    return Ok(Collection::new());
                };
                let Item::Integer(i) = i else {
                    return Err(type_err("an index must be an integer"));
                };
                Ok(usize::try_from(*i)
                    .ok()
                    .and_then(|i| input.get(i))
                    .cloned()
                    .map(one)
                    .unwrap_or_default())
            }
            Expr::Negate(inner) => {
                let v = self.eval(inner, f)?;
                let Some(x) = single(&v, "unary minus")? else {
                    return Ok(Collection::new());
                };
                Ok(one(match self.sys(x)? {
                    Some(Item::Integer(i)) => match i.checked_neg() {
                        Some(n) => Item::Integer(n),
                        None => return Ok(Collection::new()),
                    },
                    Some(Item::Decimal(d)) => Item::Decimal(d.neg()),
                    Some(Item::Quantity(mut q)) => {
                        q.value = q.value.neg();
                        Item::Quantity(q)
                    }
                    _ => return Err(type_err("unary minus needs a number or quantity")),
                }))
            }
            Expr::Binary(op, l, r) => self.binary(*op, l, r, f),
            Expr::TypeCall { target, func, ty } => {
                let input = match target {
                    Some(t) => self.eval(t, f)?,
                    None => f.this.iter().cloned().collect(),
                };
                self.type_call(*func, &input, ty)
            }
            // `children().count()` (ele-1 on every element): count without
            // typing each child.
            Expr::Call {
                target: Some(inner),
                func: Func::Count,
                ..
            } if matches!(
                &**inner,
                Expr::Call {
                    target: None,
                    func: Func::Children,
                    ..
                }
            ) =>
            {
                let n: usize = f.this.iter().map(count_children).sum();
                Ok(one(Item::Integer(i64::try_from(n).unwrap_or(i64::MAX))))
            }
            Expr::Call { target, func, args } => {
                if self.ctx.strict
                    && matches!(
                        func,
                        Func::Skip | Func::Take | Func::First | Func::Last | Func::Tail
                    )
                    && matches!(
                        target.as_deref(),
                        Some(Expr::Call {
                            func: Func::Children | Func::Descendants,
                            ..
                        })
                    )
                {
                    return Err(EvalError::Invalid(format!(
                        "{}() on the unordered result of children()/descendants()",
                        func.name()
                    )));
                }
                let input = match target {
                    Some(t) => self.eval(t, f)?,
                    None => f.this.iter().cloned().collect(),
                };
                self.call(*func, input, args, f)
            }
        }
    }

    fn variable(&self, name: &str) -> R<Collection<'a>> {
        let ctx = self.ctx;
        let string = |s: String| Ok(one(Item::String(Cow::Owned(s))));
        match name {
            "context" => Ok(ctx.context.clone().into_iter().collect()),
            "resource" => Ok(ctx.resource.clone().into_iter().collect()),
            "rootResource" => Ok(ctx.root_resource.clone().into_iter().collect()),
            "ucum" => string("http://unitsofmeasure.org".into()),
            "sct" => string("http://snomed.info/sct".into()),
            "loinc" => string("http://loinc.org".into()),
            _ => {
                if let Some(vs) = name.strip_prefix("vs-") {
                    return string(format!("http://hl7.org/fhir/ValueSet/{vs}"));
                }
                if let Some(ext) = name.strip_prefix("ext-") {
                    return string(format!("http://hl7.org/fhir/StructureDefinition/{ext}"));
                }
                Err(EvalError::UndefinedVariable(name.to_owned()))
            }
        }
    }

    /// The system value of an item (primitive nodes convert; complex nodes
    /// stay nodes; a primitive without a value is `None`).
    fn sys(&self, item: &Item<'a>) -> R<Option<Item<'a>>> {
        Ok(item.to_system(self.model))
    }

    // ----- navigation -------------------------------------------------

    fn member(&self, item: &Item<'a>, name: &str, out: &mut Collection<'a>) -> R<()> {
        self.member_into(item, name, out)
    }

    /// Child `name` of `item` into `out` (collected, or only counted).
    #[inline]
    fn member_into<S: Sink<'a>>(&self, item: &Item<'a>, name: &str, out: &mut S) -> R<()> {
        let n = match item {
            Item::Node(n) => n,
            Item::Type(t) => {
                match name {
                    "namespace" => out.push(Item::String(Cow::Owned(t.0.to_owned()))),
                    "name" => out.push(Item::String(Cow::Owned(t.1.clone()))),
                    _ => {}
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        // Primitives keep id and extension in their `_x` partner.
        let object = match n.value {
            Some(
                v @ Node {
                    value: Json::Object(_),
                    ..
                },
            ) => v,
            _ => match n.ext {
                Some(e) => e,
                None => return Ok(()),
            },
        };
        let model = self.model;
        match n.ty.and_then(|t| model.child(t, name)) {
            Some(Child::Single(ty)) => push_member(model, object, name, Some(*ty), out),
            Some(Child::Choice(choices)) => {
                let Some(members) = object.as_object() else {
                    return Ok(());
                };
                for m in members {
                    let Some(suffix) = m.key.strip_prefix(name) else {
                        continue;
                    };
                    if let Some((_, ty)) = choices.iter().find(|(s, _)| &**s == suffix) {
                        push_member(model, object, &m.key, Some(*ty), out);
                    }
                }
            }
            None => {
                // `valueQuantity` is JSON, not FHIRPath: R4 FHIRPath names the
                // choice element `value` (fhirpath.html#polymorphism).
                if let Some(ty) = n.ty
                    && model.child_by_key(ty, name).is_some()
                {
                    return Err(EvalError::Invalid(format!(
                        "{name} is a choice type variant: use the element name and ofType()"
                    )));
                }
                if self.ctx.strict && n.ty.is_some() && !model.is_empty() {
                    return Err(EvalError::Invalid(format!(
                        "{} has no element {name}",
                        n.ty.map(|t| model.type_name(t)).unwrap_or("")
                    )));
                }
                push_member(model, object, name, None, out);
            }
        }
        Ok(())
    }

    // ----- operators --------------------------------------------------

    fn binary(&self, op: BinOp, l: &Expr, r: &Expr, f: Frame<'_, 'a>) -> R<Collection<'a>> {
        match op {
            BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Implies => {
                let a = self.truth(&self.eval(l, f)?, "logical operator")?;
                // Short-circuit where the result no longer depends on b.
                match (op, a) {
                    (BinOp::And, Some(false)) => return Ok(boolean(false)),
                    (BinOp::Or, Some(true)) => return Ok(boolean(true)),
                    (BinOp::Implies, Some(false)) => return Ok(boolean(true)),
                    _ => {}
                }
                let b = self.truth(&self.eval(r, f)?, "logical operator")?;
                Ok(opt_bool(three_valued(op, a, b)))
            }
            BinOp::In if let Some((key, reads)) = self.hoisted_operand(r) => {
                // As `binary_values`, with the right operand's set built
                // once per evaluation (per resource, when shared), and
                // the operand not evaluated again once it is: a copy of
                // its value per test would make N tests cost N².
                let a = self.eval(l, f)?;
                let memo = self.sets_memo(reads);
                let set = match recall(memo, key) {
                    Some(set) => {
                        self.trace_again(r, key, reads, f)?;
                        set
                    }
                    None => {
                        let b = self.eval(r, f)?;
                        let set = std::rc::Rc::new(Seen::of(self, &b));
                        memo.borrow_mut().push((key, std::rc::Rc::clone(&set)));
                        set
                    }
                };
                let Some(x) = single(&a, "membership")? else {
                    return Ok(Collection::new());
                };
                Ok(boolean(set.contains(self, x)))
            }
            _ => {
                let a = self.eval(l, f)?;
                let b = self.eval(r, f)?;
                self.binary_values(op, a, b)
            }
        }
    }

    /// Whether `expr` is one of the expression's hoisted sub-expressions,
    /// and if so what its value depends on ([`Hoisted::reads`]).
    fn hoisted_as(&self, expr: &Expr) -> Option<Reads> {
        if self.hoisted.is_empty() {
            return None;
        }
        let key = node_key(expr);
        self.hoisted
            .binary_search_by_key(&key, |h| h.key)
            .ok()
            .and_then(|at| self.hoisted.get(at))
            .map(|h| h.reads)
    }

    /// The hoisted sub-expression whose value `operand` is, by address:
    /// itself, or what it traces (`%rootResource.contained.id.trace('ids')`
    /// in ref-1: `trace()` is called every time, and passes its input on).
    fn hoisted_operand(&self, operand: &Expr) -> Option<(usize, Reads)> {
        let hoisted = match operand {
            Expr::Call {
                target: Some(target),
                func: Func::Trace,
                ..
            } if self.hoisted_as(operand).is_none() => target,
            _ => operand,
        };
        self.hoisted_as(hoisted)
            .map(|reads| (node_key(hoisted), reads))
    }

    /// The `trace()` that `operand` makes of the hoisted value at `key`,
    /// if it is one, made again without evaluating its input (the value is
    /// remembered); a `trace()` with a projection is evaluated in full.
    fn trace_again(&self, operand: &Expr, key: usize, reads: Reads, f: Frame<'_, 'a>) -> R<()> {
        let Expr::Call {
            target: Some(target),
            func: Func::Trace,
            args,
        } = operand
        else {
            return Ok(());
        };
        if node_key(target) != key {
            return Ok(());
        }
        if args.len() > 1 {
            self.eval(operand, f)?;
            return Ok(());
        }
        let name = self.arg_string(args, 0, f)?.unwrap_or_default();
        let memo = self.values_memo(reads);
        let traced = memo
            .borrow()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, value)| self.ctx.hooks.trace(&name, value))
            .is_some();
        if !traced {
            self.eval(operand, f)?;
        }
        Ok(())
    }

    /// Where a hoisted value that `reads` is remembered: its scope's memo,
    /// or this evaluation's.
    fn values_memo(&self, reads: Reads) -> &Memo<Collection<'a>> {
        match self.scope_for(reads) {
            Some(scope) => &scope.values,
            None => &self.hoisted_values,
        }
    }

    /// Where the set of a hoisted `in` operand that `reads` is remembered.
    fn sets_memo(&self, reads: Reads) -> &Memo<std::rc::Rc<Seen<'a>>> {
        match self.scope_for(reads) {
            Some(scope) => &scope.sets,
            None => &self.hoisted_sets,
        }
    }

    /// The scope a hoisted value that `reads` is shared in, if any.
    fn scope_for(&self, reads: Reads) -> Option<&'h ResourceScope<'a>> {
        let (resource, root) = self.ctx.scopes?;
        match reads {
            Reads::Evaluation => None,
            Reads::Resource => Some(resource),
            Reads::Root => Some(root),
        }
    }

    fn binary_values(&self, op: BinOp, a: Collection<'a>, b: Collection<'a>) -> R<Collection<'a>> {
        match op {
            BinOp::Union => {
                let mut out = Collection::new();
                let mut seen = Seen::default();
                for x in a.into_iter().chain(b) {
                    if seen.insert(self, &x) {
                        out.push(x);
                    }
                }
                Ok(out)
            }
            BinOp::Eq | BinOp::Ne => {
                let eq = self.collections_equal(&a, &b)?;
                Ok(opt_bool(if op == BinOp::Ne { eq.map(|e| !e) } else { eq }))
            }
            BinOp::Equiv | BinOp::NotEquiv => {
                let eq = self.collections_equivalent(&a, &b)?;
                Ok(boolean(if op == BinOp::NotEquiv { !eq } else { eq }))
            }
            BinOp::In | BinOp::Contains => {
                let (needle, hay) = if op == BinOp::In { (&a, &b) } else { (&b, &a) };
                let Some(x) = single(needle, "membership")? else {
                    return Ok(Collection::new());
                };
                Ok(boolean(self.contains(hay, x)))
            }
            BinOp::Concat => {
                let s = |c: &Collection<'a>| -> R<String> {
                    match single(c, "&")? {
                        None => Ok(String::new()),
                        Some(x) => Ok(self.string_of(x).unwrap_or_default()),
                    }
                };
                Ok(one(Item::String(Cow::Owned(s(&a)? + &s(&b)?))))
            }
            BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => {
                let (Some(x), Some(y)) = (single(&a, "comparison")?, single(&b, "comparison")?)
                else {
                    return Ok(Collection::new());
                };
                let (Some(x), Some(y)) = (self.sys(x)?, self.sys(y)?) else {
                    return Ok(Collection::new());
                };
                let Some(ord) = self.compare(&x, &y)? else {
                    return Ok(Collection::new());
                };
                Ok(boolean(match op {
                    BinOp::Lt => ord == Ordering::Less,
                    BinOp::Gt => ord == Ordering::Greater,
                    BinOp::Le => ord != Ordering::Greater,
                    _ => ord != Ordering::Less,
                }))
            }
            _ => {
                let (Some(x), Some(y)) = (single(&a, "arithmetic")?, single(&b, "arithmetic")?)
                else {
                    return Ok(Collection::new());
                };
                let (Some(x), Some(y)) = (self.sys(x)?, self.sys(y)?) else {
                    return Ok(Collection::new());
                };
                Ok(arithmetic(op, &x, &y)?.map(one).unwrap_or_default())
            }
        }
    }

    /// Boolean of a collection in a logical operator: empty is unknown, a
    /// boolean is itself, any other single item is true.
    fn truth(&self, c: &[Item<'a>], what: &'static str) -> R<Option<bool>> {
        match single(c, what)? {
            None => Ok(None),
            Some(x) => match self.sys(x)? {
                Some(Item::Boolean(b)) => Ok(Some(b)),
                _ => Ok(Some(true)),
            },
        }
    }

    fn compare(&self, x: &Item<'a>, y: &Item<'a>) -> R<Option<Ordering>> {
        Ok(match (x, y) {
            (Item::Integer(a), Item::Integer(b)) => Some(a.cmp(b)),
            (Item::Integer(_) | Item::Decimal(_), Item::Integer(_) | Item::Decimal(_)) => {
                Some(to_decimal(x).cmp_value(&to_decimal(y)))
            }
            (Item::String(a), Item::String(b)) => Some(a.cmp(b)),
            (Item::Date(a) | Item::DateTime(a), Item::Date(b) | Item::DateTime(b))
            | (Item::Time(a), Item::Time(b)) => a.compare(b),
            (Item::Quantity(a), Item::Quantity(b)) => a.compare(b),
            (Item::Quantity(a), Item::Integer(_) | Item::Decimal(_)) if a.unit.as_ref() == "1" => {
                Some(a.value.cmp_value(&to_decimal(y)))
            }
            _ => {
                return Err(type_err(format!(
                    "cannot compare {} with {}",
                    x.type_name(self.model).1,
                    y.type_name(self.model).1
                )));
            }
        })
    }

    /// `=` on two items: `None` when the result is empty (dates of
    /// different precision, primitives without a value).
    fn equal(&self, x: &Item<'a>, y: &Item<'a>) -> Option<bool> {
        if let (Item::Node(a), Item::Node(b)) = (x, y) {
            let primitive =
                |n: &NodeRef<'a>| !matches!(n.value.map(|v| &v.value), Some(Json::Object(_)));
            if !primitive(a) || !primitive(b) {
                return Some(node_eq(a, b));
            }
        }
        let (x, y) = (x.to_system(self.model)?, y.to_system(self.model)?);
        match (&x, &y) {
            (Item::Node(a), Item::Node(b)) => Some(node_eq(a, b)),
            (Item::Boolean(a), Item::Boolean(b)) => Some(a == b),
            (Item::String(a), Item::String(b)) => Some(a == b),
            (Item::Integer(a), Item::Integer(b)) => Some(a == b),
            (Item::Integer(_) | Item::Decimal(_), Item::Integer(_) | Item::Decimal(_)) => {
                Some(to_decimal(&x) == to_decimal(&y))
            }
            (Item::Date(a) | Item::DateTime(a), Item::Date(b) | Item::DateTime(b))
            | (Item::Time(a), Item::Time(b)) => a.compare(b).map(|o| o == Ordering::Equal),
            (Item::Quantity(a), Item::Quantity(b)) => a.compare(b).map(|o| o == Ordering::Equal),
            (Item::Type(a), Item::Type(b)) => Some(a == b),
            _ => Some(false),
        }
    }

    fn equivalent(&self, x: &Item<'a>, y: &Item<'a>) -> bool {
        let (Some(x), Some(y)) = (x.to_system(self.model), y.to_system(self.model)) else {
            return false;
        };
        match (&x, &y) {
            (Item::Node(a), Item::Node(b)) => node_eq(a, b),
            (Item::String(a), Item::String(b)) => normalise(a) == normalise(b),
            (Item::Integer(_) | Item::Decimal(_), Item::Integer(_) | Item::Decimal(_)) => {
                let (a, b) = (to_decimal(&x), to_decimal(&y));
                let places = a.scale().min(b.scale());
                a.round(places) == b.round(places)
            }
            (Item::Date(a) | Item::DateTime(a), Item::Date(b) | Item::DateTime(b))
            | (Item::Time(a), Item::Time(b)) => a.equivalent(b),
            (Item::Quantity(a), Item::Quantity(b)) => a.equivalent(b),
            _ => self.equal(&x, &y) == Some(true),
        }
    }

    fn collections_equal(&self, a: &[Item<'a>], b: &[Item<'a>]) -> R<Option<bool>> {
        if a.is_empty() || b.is_empty() {
            return Ok(None);
        }
        if a.len() != b.len() {
            return Ok(Some(false));
        }
        let mut unknown = false;
        for (x, y) in a.iter().zip(b) {
            match self.equal(x, y) {
                Some(false) => return Ok(Some(false)),
                None => unknown = true,
                Some(true) => {}
            }
        }
        Ok(if unknown { None } else { Some(true) })
    }

    fn collections_equivalent(&self, a: &[Item<'a>], b: &[Item<'a>]) -> R<bool> {
        if a.len() != b.len() {
            return Ok(false);
        }
        let mut used = vec![false; b.len()];
        for x in a {
            let found = b
                .iter()
                .enumerate()
                .find(|(i, y)| !used.get(*i).copied().unwrap_or(true) && self.equivalent(x, y));
            match found {
                Some((i, _)) => {
                    if let Some(u) = used.get_mut(i) {
                        *u = true;
                    }
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Whether `hay` holds an item equal to `x` (union, distinct, in).
    fn contains(&self, hay: &[Item<'a>], x: &Item<'a>) -> bool {
        hay.iter().any(|y| self.same(x, y))
    }

    fn same(&self, x: &Item<'a>, y: &Item<'a>) -> bool {
        if let (Item::Node(a), Item::Node(b)) = (x, y) {
            return node_eq(a, b);
        }
        self.equal(x, y) == Some(true)
    }

    // ----- types ------------------------------------------------------

    /// Whether an item is of type `spec` (`exact`: not a subtype).
    fn is_type(&self, item: &Item<'a>, spec: &TypeSpec, exact: bool) -> R<bool> {
        let ns = spec.namespace.as_deref();
        let name: &str = &spec.name;
        let fhir = match ns {
            Some("System") => None,
            Some("FHIR") => match self.model.type_named(name) {
                Some(t) => Some(t),
                None if self.model.is_empty() => return Ok(false),
                None => return Err(type_err(format!("unknown type FHIR.{name}"))),
            },
            Some(other) => return Err(type_err(format!("unknown namespace {other}"))),
            None => match self.model.type_named(name) {
                Some(t) => Some(t),
                None if system_type(name) || self.model.is_empty() => None,
                None => return Err(type_err(format!("unknown type {name}"))),
            },
        };
        match (item, fhir) {
            (Item::Node(n), Some(t)) => Ok(n.ty.is_some_and(|ty| {
                let primitive = matches!(
                    self.model.def(t).map(|d| d.kind),
                    Some(TypeKind::Primitive(_))
                );
                if exact && primitive {
                    ty == t
                } else {
                    self.model.derives_from(ty, t)
                }
            })),
            (Item::Node(n), None) => Ok(self.ctx.r4_compat
                && ns.is_none()
                && n.value.is_some()
                && item
                    .to_system(self.model)
                    .is_some_and(|v| v.type_name(self.model).1 == name)),
            (_, Some(_)) => Ok(false),
            (_, None) => Ok(item.type_name(self.model).1 == name),
        }
    }

    fn type_call(&self, func: Func, input: &[Item<'a>], spec: &TypeSpec) -> R<Collection<'a>> {
        match func {
            Func::Is => match single(input, "is")? {
                None => Ok(Collection::new()),
                Some(x) => Ok(boolean(self.is_type(x, spec, false)?)),
            },
            Func::As if self.ctx.r4_compat && input.len() > 1 => {
                let mut out = Collection::new();
                for x in input {
                    if self.is_type(x, spec, true)? {
                        out.push(x.clone());
                    }
                }
                Ok(out)
            }
            Func::As => match single(input, "as")? {
                None => Ok(Collection::new()),
                Some(x) => Ok(if self.is_type(x, spec, true)? {
                    one(x.clone())
                } else {
                    Collection::new()
                }),
            },
            _ => {
                let mut out = Collection::new();
                for x in input {
                    if self.is_type(x, spec, true)? {
                        out.push(x.clone());
                    }
                }
                Ok(out)
            }
        }
    }

    // ----- functions --------------------------------------------------

    fn arg(&self, args: &[Expr], i: usize, f: Frame<'_, 'a>) -> R<Collection<'a>> {
        match args.get(i) {
            Some(e) => self.eval(e, f),
            None => Ok(Collection::new()),
        }
    }

    /// A single-item argument as a system value.
    fn arg_value(&self, args: &[Expr], i: usize, f: Frame<'_, 'a>) -> R<Option<Item<'a>>> {
        let c = self.arg(args, i, f)?;
        match single(&c, "argument")? {
            None => Ok(None),
            Some(x) => self.sys(x),
        }
    }

    fn arg_string(&self, args: &[Expr], i: usize, f: Frame<'_, 'a>) -> R<Option<String>> {
        match self.arg_value(args, i, f)? {
            None => Ok(None),
            Some(Item::String(s)) => Ok(Some(s.into_owned())),
            Some(_) => Err(type_err("expected a string argument")),
        }
    }

    fn arg_integer(&self, args: &[Expr], i: usize, f: Frame<'_, 'a>) -> R<Option<i64>> {
        match self.arg_value(args, i, f)? {
            None => Ok(None),
            Some(Item::Integer(n)) => Ok(Some(n)),
            Some(_) => Err(type_err("expected an integer argument")),
        }
    }

    /// The input as one string (empty → `None`; non-string → error).
    fn input_string(&self, input: &[Item<'a>], what: &'static str) -> R<Option<Cow<'a, str>>> {
        match single(input, what)? {
            None => Ok(None),
            Some(x) => match self.sys(x)? {
                Some(Item::String(s)) => Ok(Some(s)),
                None => Ok(None),
                Some(_) => Err(type_err(format!("{what}() needs a string"))),
            },
        }
    }

    fn input_value(&self, input: &[Item<'a>], what: &'static str) -> R<Option<Item<'a>>> {
        match single(input, what)? {
            None => Ok(None),
            Some(x) => self.sys(x),
        }
    }

    /// `toString()`: a primitive node's JSON text as written (a `dateTime`
    /// keeps its offset form and fraction digits), else the system value's
    /// FHIRPath rendering; `None` for complex nodes and type infos.
    fn string_of(&self, item: &Item<'a>) -> Option<String> {
        let mut out = String::new();
        self.push_string_of(item, &mut out).then_some(out)
    }

    /// Appends the string of `item` (as [`Self::string_of`]); false when it
    /// has none.
    fn push_string_of(&self, item: &Item<'a>, out: &mut String) -> bool {
        match item {
            Item::Node(NodeRef { value: Some(v), .. }) => match &v.value {
                Json::String(s) => out.push_str(s),
                Json::Number(n) => out.push_str(n),
                Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                _ => return false,
            },
            Item::Node(_) | Item::Type(_) => return false,
            other => {
                use std::fmt::Write;
                let _ = write!(out, "{other}");
            }
        }
        true
    }

    fn regex(&self, pattern: &str, full: bool) -> R<Regex> {
        let key = (Box::<str>::from(pattern), full);
        if let Ok(cache) = self.regexes.0.lock()
            && let Some(r) = cache.get(&key)
        {
            return Ok(r.clone());
        }
        let source = if full {
            format!("(?s)^(?:{pattern})$")
        } else {
            format!("(?s){pattern}")
        };
        let re = Regex::new(&source)
            .map_err(|e| EvalError::Invalid(format!("invalid regular expression: {e}")))?;
        if let Ok(mut cache) = self.regexes.0.lock() {
            cache.insert(key, re.clone());
        }
        Ok(re)
    }

    fn filter(&self, input: &[Item<'a>], criteria: &Expr, f: Frame<'_, 'a>) -> R<Collection<'a>> {
        let mut out = Collection::new();
        for (i, item) in input.iter().enumerate() {
            let frame = Frame {
                this: std::slice::from_ref(item),
                index: Some(i),
                total: f.total,
            };
            if self.truth(&self.eval(criteria, frame)?, "where")? == Some(true) {
                out.push(item.clone());
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_lines)]
    fn call(
        &self,
        func: Func,
        input: Collection<'a>,
        args: &[Expr],
        f: Frame<'_, 'a>,
    ) -> R<Collection<'a>> {
        use Func::*;
        let string = |s: String| Ok(one(Item::String(Cow::Owned(s))));
        match func {
            Empty => Ok(boolean(input.is_empty())),
            Exists => match args.first() {
                None => Ok(boolean(!input.is_empty())),
                Some(c) => Ok(boolean(!self.filter(&input, c, f)?.is_empty())),
            },
            All => {
                let Some(c) = args.first() else {
                    return Ok(boolean(true));
                };
                for (i, item) in input.iter().enumerate() {
                    let frame = Frame {
                        this: std::slice::from_ref(item),
                        index: Some(i),
                        total: f.total,
                    };
                    if self.truth(&self.eval(c, frame)?, "all")? != Some(true) {
                        return Ok(boolean(false));
                    }
                }
                Ok(boolean(true))
            }
            AllTrue | AnyTrue | AllFalse | AnyFalse => {
                let mut bools = Vec::with_capacity(input.len());
                for x in &input {
                    match self.sys(x)? {
                        Some(Item::Boolean(b)) => bools.push(b),
                        _ => return Err(type_err(format!("{}() needs booleans", func.name()))),
                    }
                }
                Ok(boolean(match func {
                    AllTrue => bools.iter().all(|b| *b),
                    AnyTrue => bools.iter().any(|b| *b),
                    AllFalse => bools.iter().all(|b| !*b),
                    _ => bools.iter().any(|b| !*b),
                }))
            }
            SubsetOf | SupersetOf => {
                let other = self.arg(args, 0, f)?;
                let (small, big) = if func == SubsetOf {
                    (&input, &other)
                } else {
                    (&other, &input)
                };
                let big = Seen::of(self, big);
                Ok(boolean(small.iter().all(|x| big.contains(self, x))))
            }
            Count => Ok(one(Item::Integer(
                i64::try_from(input.len()).unwrap_or(i64::MAX),
            ))),
            Distinct => {
                let mut out = Collection::new();
                let mut seen = Seen::default();
                for x in input {
                    if seen.insert(self, &x) {
                        out.push(x);
                    }
                }
                Ok(out)
            }
            IsDistinct => {
                let mut seen = Seen::with_capacity(input.len());
                Ok(boolean(input.iter().all(|x| seen.insert(self, x))))
            }
            Where => match args.first() {
                Some(c) => self.filter(&input, c, f),
                None => Ok(input),
            },
            Select => {
                let Some(p) = args.first() else {
                    return Ok(input);
                };
                let mut out = Collection::with_capacity(input.len());
                for (i, item) in input.iter().enumerate() {
                    let frame = Frame {
                        this: std::slice::from_ref(item),
                        index: Some(i),
                        total: f.total,
                    };
                    out.extend(self.eval(p, frame)?);
                }
                Ok(out)
            }
            Repeat | RepeatAll => {
                let Some(p) = args.first() else {
                    return Ok(input);
                };
                let mut out = Collection::new();
                let mut seen = Seen::default();
                let mut queue: std::collections::VecDeque<Item<'a>> = input.into_iter().collect();
                let mut steps = 0usize;
                while let Some(item) = queue.pop_front() {
                    steps += 1;
                    if steps > 100_000 {
                        return Err(EvalError::Invalid("repeat() does not terminate".into()));
                    }
                    let frame = Frame {
                        this: std::slice::from_ref(&item),
                        index: None,
                        total: f.total,
                    };
                    for next in self.eval(p, frame)? {
                        if func == RepeatAll || seen.insert(self, &next) {
                            out.push(next.clone());
                            queue.push_back(next);
                        }
                    }
                }
                Ok(out)
            }
            Single => match input.len() {
                0 | 1 => Ok(input),
                _ => Err(EvalError::NotSingleton("single")),
            },
            First => Ok(input.into_iter().take(1).collect()),
            Last => Ok(input.into_iter().next_back().into_iter().collect()),
            Tail => Ok(input.into_iter().skip(1).collect()),
            Skip | Take => {
                let n = self.arg_integer(args, 0, f)?.unwrap_or(0);
                let n = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
                Ok(if func == Skip {
                    input.into_iter().skip(n).collect()
                } else {
                    input.into_iter().take(n).collect()
                })
            }
            Intersect => {
                let other = self.arg(args, 0, f)?;
                let other = Seen::of(self, &other);
                let mut out = Collection::new();
                let mut seen = Seen::default();
                for x in input {
                    if other.contains(self, &x) && seen.insert(self, &x) {
                        out.push(x);
                    }
                }
                Ok(out)
            }
            Exclude => {
                let other = self.arg(args, 0, f)?;
                let other = Seen::of(self, &other);
                Ok(input
                    .into_iter()
                    .filter(|x| !other.contains(self, x))
                    .collect())
            }
            Union => {
                let other = self.arg(args, 0, f)?;
                self.binary_values(BinOp::Union, input, other)
            }
            Combine => {
                let mut out = input;
                out.extend(self.arg(args, 0, f)?);
                Ok(out)
            }
            Iif => {
                if input.len() > 1 {
                    return Err(EvalError::NotSingleton("iif"));
                }
                let frame = match args.first() {
                    Some(_) if !input.is_empty() => Frame {
                        this: &input,
                        index: f.index,
                        total: f.total,
                    },
                    _ => f,
                };
                let cond = self.arg(args, 0, frame)?;
                let truth = match single(&cond, "iif")? {
                    None => false,
                    Some(x) => match self.sys(x)? {
                        Some(Item::Boolean(b)) => b,
                        _ => return Err(type_err("iif() criterion must be a boolean")),
                    },
                };
                if truth {
                    self.arg(args, 1, frame)
                } else {
                    self.arg(args, 2, frame)
                }
            }
            ToBoolean | ConvertsToBoolean => {
                let v = self.input_value(&input, func.name())?;
                convert(func == ConvertsToBoolean, v.map(|v| to_boolean(&v)))
            }
            ToInteger | ConvertsToInteger => {
                let v = self.input_value(&input, func.name())?;
                convert(
                    func == ConvertsToInteger,
                    v.map(|v| match v {
                        Item::Integer(i) => Some(Item::Integer(i)),
                        Item::Boolean(b) => Some(Item::Integer(i64::from(b))),
                        Item::String(s) => {
                            let t = s.strip_prefix('+').unwrap_or(&s);
                            let digits = t.strip_prefix('-').unwrap_or(t);
                            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                                t.parse().ok().map(Item::Integer)
                            } else {
                                None
                            }
                        }
                        _ => None,
                    }),
                )
            }
            ToDecimal | ConvertsToDecimal => {
                let v = self.input_value(&input, func.name())?;
                convert(
                    func == ConvertsToDecimal,
                    v.map(|v| match v {
                        Item::Integer(i) => Some(Item::Decimal(Decimal::from_i64(i))),
                        Item::Decimal(d) => Some(Item::Decimal(d)),
                        Item::Boolean(b) => {
                            Some(Item::Decimal(Decimal::new(i128::from(b) * 10, 1)))
                        }
                        Item::String(s) if !s.contains(['e', 'E']) => {
                            Decimal::parse(&s).map(Item::Decimal)
                        }
                        _ => None,
                    }),
                )
            }
            ToStringFn | ConvertsToString => {
                let Some(x) = single(&input, func.name())? else {
                    return Ok(Collection::new());
                };
                convert(
                    func == ConvertsToString,
                    Some(self.string_of(x).map(|s| Item::String(Cow::Owned(s)))),
                )
            }
            ToDate | ConvertsToDate => {
                let v = self.input_value(&input, func.name())?;
                convert(
                    func == ConvertsToDate,
                    v.map(|v| match v {
                        Item::Date(t) => Some(Item::Date(t)),
                        Item::DateTime(t) => Some(Item::Date(t.to_date())),
                        Item::String(s) => Temporal::parse_date(&s)
                            .or_else(|| Temporal::parse_datetime(&s).map(|t| t.to_date()))
                            .map(Item::Date),
                        _ => None,
                    }),
                )
            }
            ToDateTime | ConvertsToDateTime => {
                let v = self.input_value(&input, func.name())?;
                convert(
                    func == ConvertsToDateTime,
                    v.map(|v| match v {
                        Item::Date(t) | Item::DateTime(t) => Some(Item::DateTime(t.to_datetime())),
                        Item::String(s) => Temporal::parse_datetime(&s).map(Item::DateTime),
                        _ => None,
                    }),
                )
            }
            ToTime | ConvertsToTime => {
                let v = self.input_value(&input, func.name())?;
                convert(
                    func == ConvertsToTime,
                    v.map(|v| match v {
                        Item::Time(t) => Some(Item::Time(t)),
                        Item::String(s) => Temporal::parse_time(&s).map(Item::Time),
                        _ => None,
                    }),
                )
            }
            ToQuantity | ConvertsToQuantity => {
                let v = self.input_value(&input, func.name())?;
                let unit = self.arg_string(args, 0, f)?;
                convert(
                    func == ConvertsToQuantity,
                    v.map(|v| {
                        let q = to_quantity(&v)?;
                        match &unit {
                            None => Some(Item::Quantity(Box::new(q))),
                            Some(u) => {
                                let target = Quantity::ucum(Decimal::from_i64(1), u);
                                let value = target.convert_other(&q)?;
                                Some(Item::Quantity(Box::new(Quantity::ucum(value, u))))
                            }
                        }
                    }),
                )
            }
            IndexOf | LastIndexOf => {
                let (Some(s), Some(sub)) = (
                    self.input_string(&input, func.name())?,
                    self.arg_string(args, 0, f)?,
                ) else {
                    return Ok(Collection::new());
                };
                let found = if func == IndexOf {
                    s.find(&sub)
                } else {
                    s.rfind(&sub)
                };
                let index = found.map_or(-1, |b| char_count(s.get(..b).unwrap_or("")));
                Ok(one(Item::Integer(index)))
            }
            Substring => {
                let Some(s) = self.input_string(&input, "substring")? else {
                    return Ok(Collection::new());
                };
                let Some(start) = self.arg_integer(args, 0, f)? else {
                    return Ok(Collection::new());
                };
                let len = if args.len() > 1 {
                    match self.arg_integer(args, 1, f)? {
                        Some(l) => Some(l),
                        None => return Ok(Collection::new()),
                    }
                } else {
                    None
                };
                let chars = char_count(&s);
                if start < 0 || start >= chars {
                    return Ok(Collection::new());
                }
                let take = len.unwrap_or(chars).max(0);
                string(
                    s.chars()
                        .skip(usize::try_from(start).unwrap_or(0))
                        .take(usize::try_from(take).unwrap_or(0))
                        .collect(),
                )
            }
            StartsWith | EndsWith | ContainsFn => {
                let (Some(s), Some(p)) = (
                    self.input_string(&input, func.name())?,
                    self.arg_string(args, 0, f)?,
                ) else {
                    return Ok(Collection::new());
                };
                Ok(boolean(match func {
                    StartsWith => s.starts_with(&p),
                    EndsWith => s.ends_with(&p),
                    _ => s.contains(&p),
                }))
            }
            Upper | Lower | Trim | Length | ToChars => {
                let Some(s) = self.input_string(&input, func.name())? else {
                    return Ok(Collection::new());
                };
                match func {
                    Upper => string(s.to_uppercase()),
                    Lower => string(s.to_lowercase()),
                    Trim => string(s.trim().to_owned()),
                    Length => Ok(one(Item::Integer(char_count(&s)))),
                    _ => Ok(s
                        .chars()
                        .map(|c| Item::String(Cow::Owned(c.to_string())))
                        .collect()),
                }
            }
            Replace => {
                let (Some(s), Some(p), Some(r)) = (
                    self.input_string(&input, "replace")?,
                    self.arg_string(args, 0, f)?,
                    self.arg_string(args, 1, f)?,
                ) else {
                    return Ok(Collection::new());
                };
                string(s.replace(&p, &r))
            }
            Matches | MatchesFull => {
                let (Some(s), Some(p)) = (
                    self.input_string(&input, func.name())?,
                    self.arg_string(args, 0, f)?,
                ) else {
                    return Ok(Collection::new());
                };
                Ok(boolean(self.regex(&p, func == MatchesFull)?.is_match(&s)))
            }
            ReplaceMatches => {
                let (Some(s), Some(p), Some(r)) = (
                    self.input_string(&input, "replaceMatches")?,
                    self.arg_string(args, 0, f)?,
                    self.arg_string(args, 1, f)?,
                ) else {
                    return Ok(Collection::new());
                };
                if p.is_empty() {
                    return string(s.into_owned());
                }
                let re = self.regex(&p, false)?;
                string(re.replace_all(&s, r.as_str()).into_owned())
            }
            Split => {
                let (Some(s), Some(sep)) = (
                    self.input_string(&input, "split")?,
                    self.arg_string(args, 0, f)?,
                ) else {
                    return Ok(Collection::new());
                };
                Ok(s.split(sep.as_str())
                    .map(|p| Item::String(Cow::Owned(p.to_owned())))
                    .collect())
            }
            Join => {
                let sep = self.arg_string(args, 0, f)?.unwrap_or_default();
                let mut parts = Vec::with_capacity(input.len());
                for x in &input {
                    match self.sys(x)? {
                        Some(Item::String(s)) => parts.push(s.into_owned()),
                        Some(_) => return Err(type_err("join() needs strings")),
                        None => {}
                    }
                }
                string(parts.join(&sep))
            }
            Encode | Decode | Escape | Unescape => {
                let (Some(s), Some(format)) = (
                    self.input_string(&input, func.name())?,
                    self.arg_string(args, 0, f)?,
                ) else {
                    return Ok(Collection::new());
                };
                Ok(codec(func, &s, &format)
                    .map(|r| one(Item::String(Cow::Owned(r))))
                    .unwrap_or_default())
            }
            Abs | Ceiling | Floor | Truncate | Exp | Ln | Sqrt | Round | Log | Power => {
                let Some(v) = self.input_value(&input, func.name())? else {
                    return Ok(Collection::new());
                };
                let arg = match func {
                    Round | Log | Power => self.arg_value(args, 0, f)?,
                    _ => None,
                };
                if matches!(func, Log | Power) && arg.is_none() {
                    return Ok(Collection::new());
                }
                Ok(math(func, &v, arg.as_ref())?.map(one).unwrap_or_default())
            }
            Children => {
                let mut out = Collection::new();
                for x in &input {
                    push_children(self.model, x, &mut out);
                }
                Ok(out)
            }
            Descendants => {
                let mut out = Collection::new();
                let mut level: Collection<'a> = Collection::new();
                for x in &input {
                    push_children(self.model, x, &mut level);
                }
                while !level.is_empty() {
                    let mut next = Collection::new();
                    for x in &level {
                        push_children(self.model, x, &mut next);
                    }
                    out.extend(level);
                    level = next;
                }
                Ok(out)
            }
            Trace => {
                let name = self.arg_string(args, 0, f)?.unwrap_or_default();
                if let Some(p) = args.get(1) {
                    let mut projected = Collection::new();
                    for (i, item) in input.iter().enumerate() {
                        let frame = Frame {
                            this: std::slice::from_ref(item),
                            index: Some(i),
                            total: f.total,
                        };
                        projected.extend(self.eval(p, frame)?);
                    }
                    self.ctx.hooks.trace(&name, &projected);
                } else {
                    self.ctx.hooks.trace(&name, &input);
                }
                Ok(input)
            }
            Now | Today | TimeOfDay => {
                // The context's clock, else the system clock, read once per
                // call.
                let ms = self
                    .ctx
                    .now
                    .unwrap_or_else(std::time::SystemTime::now)
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(0))
                    .unwrap_or(0);
                let now = Temporal::from_unix_millis(ms);
                Ok(one(match func {
                    Now => Item::DateTime(now),
                    Today => Item::Date(now.to_date()),
                    _ => match now.to_time() {
                        Some(t) => Item::Time(t),
                        None => return Ok(Collection::new()),
                    },
                }))
            }
            Sort => self.sort(input, args, f),
            Aggregate => {
                let mut total: Collection<'a> = self.arg(args, 1, f)?;
                let Some(agg) = args.first() else {
                    return Ok(total);
                };
                for (i, item) in input.iter().enumerate() {
                    let frame = Frame {
                        this: std::slice::from_ref(item),
                        index: Some(i),
                        total: Some(&total),
                    };
                    total = self.eval(agg, frame)?;
                }
                Ok(total)
            }
            Not => Ok(opt_bool(self.truth(&input, "not")?.map(|b| !b))),
            Type => {
                let mut out = Collection::new();
                for x in &input {
                    let (ns, name) = x.type_name(self.model);
                    out.push(Item::Type(Box::new((ns, name.into_owned()))));
                }
                Ok(out)
            }
            Is | As | OfType => Err(EvalError::Invalid(format!(
                "{}() needs a type name",
                func.name()
            ))),
            Extension => {
                let Some(url) = self.arg_string(args, 0, f)? else {
                    return Ok(Collection::new());
                };
                let mut exts = Collection::new();
                for x in &input {
                    self.member(x, "extension", &mut exts)?;
                }
                Ok(exts
                    .into_iter()
                    .filter(|e| {
                        matches!(e, Item::Node(NodeRef { value: Some(v), .. })
                            if v.get("url").and_then(Node::as_str) == Some(url.as_str()))
                    })
                    .collect())
            }
            HasValue => Ok(boolean(match input.as_slice() {
                [Item::Node(n)] => n
                    .value
                    .is_some_and(|v| !matches!(v.value, Json::Object(_) | Json::Array(_))),
                [Item::Type(_)] => false,
                [_] => true,
                _ => false,
            })),
            GetValue => match single(&input, "getValue")? {
                Some(x @ Item::Node(NodeRef { value: Some(v), .. }))
                    if !matches!(v.value, Json::Object(_)) =>
                {
                    Ok(self.sys(x)?.into_iter().collect())
                }
                _ => Ok(Collection::new()),
            },
            Resolve => {
                let mut out = Collection::new();
                for x in &input {
                    let reference = match x {
                        Item::Node(NodeRef { value: Some(v), .. }) => match &v.value {
                            Json::Object(_) => v.get("reference").and_then(Node::as_str),
                            Json::String(s) => Some(&**s),
                            _ => None,
                        },
                        Item::String(s) => Some(&**s),
                        _ => None,
                    };
                    if let Some(target) = reference.and_then(|r| self.resolve(r)) {
                        out.push(target);
                    }
                }
                Ok(out)
            }
            MemberOf => {
                let Some(vs) = self.arg_string(args, 0, f)? else {
                    return Ok(Collection::new());
                };
                let Some(x) = single(&input, "memberOf")? else {
                    return Ok(Collection::new());
                };
                let (_, type_name) = x.type_name(self.model);
                Ok(opt_bool(self.ctx.hooks.member_of(x, &type_name, &vs)))
            }
            ConformsTo => {
                let Some(url) = self.arg_string(args, 0, f)? else {
                    return Ok(Collection::new());
                };
                let Some(x) = single(&input, "conformsTo")? else {
                    return Ok(Collection::new());
                };
                match self.ctx.hooks.conforms_to(x, &url) {
                    Some(b) => Ok(boolean(b)),
                    None => Err(EvalError::Hook(format!(
                        "conformsTo(): unknown profile {url}"
                    ))),
                }
            }
            HtmlChecks => Ok(boolean(input.iter().all(|x| self.ctx.hooks.html_checks(x)))),
            LowBoundary | HighBoundary => {
                let Some(v) = self.input_value(&input, func.name())? else {
                    return Ok(Collection::new());
                };
                let digits = self.arg_integer(args, 0, f)?;
                Ok(boundary(&v, digits, func == HighBoundary)
                    .map(one)
                    .unwrap_or_default())
            }
            Precision => {
                let Some(v) = self.input_value(&input, "precision")? else {
                    return Ok(Collection::new());
                };
                Ok(match v {
                    Item::Decimal(d) => one(Item::Integer(i64::from(d.scale()))),
                    Item::Integer(_) => one(Item::Integer(0)),
                    Item::Date(t) | Item::DateTime(t) | Item::Time(t) => {
                        one(Item::Integer(t.precision_digits()))
                    }
                    _ => Collection::new(),
                })
            }
            Comparable => {
                let (Some(Item::Quantity(a)), Some(Item::Quantity(b))) = (
                    self.input_value(&input, "comparable")?,
                    self.arg_value(args, 0, f)?,
                ) else {
                    return Ok(Collection::new());
                };
                Ok(boolean(a.comparable(&b)))
            }
            Subsumes | SubsumedBy => Ok(Collection::new()),
        }
    }

    fn resolve(&self, reference: &str) -> Option<Item<'a>> {
        if let Some(id) = reference.strip_prefix('#') {
            let resource = match &self.ctx.resource {
                Some(Item::Node(NodeRef { value: Some(r), .. })) => *r,
                _ => return None,
            };
            if id.is_empty() {
                return Some(Item::resource(resource, self.model));
            }
            return resource
                .get("contained")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .find(|c| c.get("id").and_then(Node::as_str) == Some(id))
                .map(|c| Item::resource(c, self.model));
        }
        self.ctx
            .hooks
            .resolve(reference)
            .map(|n| Item::resource(n, self.model))
    }

    fn sort(&self, input: Collection<'a>, args: &[Expr], f: Frame<'_, 'a>) -> R<Collection<'a>> {
        // Each item with its sort keys; `-key` sorts descending.
        let mut keyed: Vec<(Vec<Option<Item<'a>>>, Item<'a>)> = Vec::with_capacity(input.len());
        for (i, item) in input.into_iter().enumerate() {
            let mut keys = Vec::new();
            if args.is_empty() {
                keys.push(self.sys(&item)?);
            }
            for a in args {
                let e = match a {
                    Expr::Negate(inner) => &**inner,
                    other => other,
                };
                let frame = Frame {
                    this: std::slice::from_ref(&item),
                    index: Some(i),
                    total: f.total,
                };
                let v = self.eval(e, frame)?;
                keys.push(match single(&v, "sort key")? {
                    Some(x) => self.sys(x)?,
                    None => None,
                });
            }
            keyed.push((keys, item));
        }
        let descending: Vec<bool> = if args.is_empty() {
            vec![false]
        } else {
            args.iter().map(|a| matches!(a, Expr::Negate(_))).collect()
        };
        let mut failed = None;
        keyed.sort_by(|(ka, _), (kb, _)| {
            for ((a, b), desc) in ka.iter().zip(kb).zip(&descending) {
                let ord = match (a, b) {
                    (None, None) => Ordering::Equal,
                    // Items without a key sort after those with one.
                    (None, Some(_)) => Ordering::Greater,
                    (Some(_), None) => Ordering::Less,
                    (Some(x), Some(y)) => match self.compare(x, y) {
                        Ok(o) => o.unwrap_or(Ordering::Equal),
                        Err(e) => {
                            failed = Some(e);
                            Ordering::Equal
                        }
                    },
                };
                let ord = if *desc { ord.reverse() } else { ord };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(keyed.into_iter().map(|(_, item)| item).collect())
    }
}

/// A hashable identity for items whose FHIRPath equality is plain value
/// equality (strings, booleans, numbers: `1 = 1.0`).
#[derive(PartialEq, Eq, Hash)]
enum HashKey<'a> {
    Str(Cow<'a, str>),
    Num(String),
    Bool(bool),
}

/// A set of items under FHIRPath equality: hashed for strings, booleans and
/// numbers, so `distinct()`, `isDistinct()`, `|`, `intersect()` and
/// `exclude()` stay linear on large documents (bdl-7 over every entry);
/// other items (complex nodes, dates, quantities) are compared pairwise.
#[derive(Default)]
struct Seen<'a> {
    keyed: std::collections::HashSet<HashKey<'a>>,
    other: Vec<Item<'a>>,
}

impl<'a> Seen<'a> {
    fn with_capacity(n: usize) -> Seen<'a> {
        Seen {
            keyed: std::collections::HashSet::with_capacity(n),
            other: Vec::new(),
        }
    }

    fn of(ev: &Eval<'_, 'a, '_>, items: &[Item<'a>]) -> Seen<'a> {
        let mut seen = Seen::with_capacity(items.len());
        for x in items {
            seen.insert(ev, x);
        }
        seen
    }

    fn key(ev: &Eval<'_, 'a, '_>, item: &Item<'a>) -> Option<HashKey<'a>> {
        match item.to_system(ev.model)? {
            Item::String(s) => Some(HashKey::Str(s)),
            Item::Boolean(b) => Some(HashKey::Bool(b)),
            Item::Integer(i) => Some(HashKey::Num(i.to_string())),
            Item::Decimal(d) => Some(HashKey::Num(d.trimmed(0).to_string())),
            _ => None,
        }
    }

    fn contains(&self, ev: &Eval<'_, 'a, '_>, item: &Item<'a>) -> bool {
        match Seen::key(ev, item) {
            Some(k) => self.keyed.contains(&k),
            None => ev.contains(&self.other, item),
        }
    }

    /// Adds `item`; false when an equal item is already there.
    fn insert(&mut self, ev: &Eval<'_, 'a, '_>, item: &Item<'a>) -> bool {
        match Seen::key(ev, item) {
            Some(k) => self.keyed.insert(k),
            None => {
                if ev.contains(&self.other, item) {
                    false
                } else {
                    self.other.push(item.clone());
                    true
                }
            }
        }
    }
}

/// Every child element of a node, in document order, typed by the model
/// (FHIRPath `children()`): primitives merge their `_x` partner, choice
/// members (`valueQuantity`) take their type from the suffix, and a member
/// holding a resource is typed by its `resourceType`.
pub(crate) fn push_children<'a>(model: &Model, item: &Item<'a>, out: &mut Collection<'a>) {
    let Item::Node(n) = item else { return };
    let object = match n.value {
        Some(
            v @ Node {
                value: Json::Object(_),
                ..
            },
        ) => v,
        _ => match n.ext {
            Some(e) => e,
            None => return,
        },
    };
    let Some(members) = object.as_object() else {
        return;
    };
    for m in members {
        let key: &str = &m.key;
        if key == "resourceType" {
            continue;
        }
        let key = match key.strip_prefix('_') {
            Some(base) if object.get(base).is_some() => continue,
            Some(base) => base,
            None => key,
        };
        let ty =
            n.ty.and_then(|t| model.child_by_key(t, key))
                .map(|(ty, _)| ty);
        push_member(model, object, key, ty, out);
    }
}

/// How many items `children()` yields for `item`, without typing them.
fn count_children(item: &Item<'_>) -> usize {
    let Item::Node(n) = item else { return 0 };
    let object = match n.value {
        Some(
            v @ Node {
                value: Json::Object(_),
                ..
            },
        ) => v,
        _ => match n.ext {
            Some(e) => e,
            None => return 0,
        },
    };
    let Some(members) = object.as_object() else {
        return 0;
    };
    // Without primitive extensions (`_x`): one item per non-null value.
    let mut simple = 0;
    for m in members {
        match m.key.as_bytes() {
            [b'_', ..] => return count_children_merged(object, members),
            b"resourceType" => {}
            _ => {
                simple += match &m.node.value {
                    Json::Array(values) => values
                        .iter()
                        .filter(|v| !matches!(v.value, Json::Null))
                        .count(),
                    Json::Null => 0,
                    _ => 1,
                };
            }
        }
    }
    simple
}

/// [`count_children`] of an object with `_x` partners.
fn count_children_merged(object: &Node, members: &[ehds_fhir::json::Member]) -> usize {
    let mut count = 0;
    for m in members {
        let key: &str = &m.key;
        if key == "resourceType" {
            continue;
        }
        let (base, partner) = match key.strip_prefix('_') {
            Some(base) => {
                if object.get(base).is_some() {
                    continue;
                }
                (base, None)
            }
            None => (
                key,
                object.as_object().and_then(|ms| {
                    ms.iter()
                        .find(|p| p.key.strip_prefix('_') == Some(key))
                        .map(|p| &p.node)
                }),
            ),
        };
        let _ = base;
        let values = m.node.items();
        count += match partner {
            None => values
                .iter()
                .filter(|v| !matches!(v.value, Json::Null))
                .count(),
            Some(p) => {
                let exts = p.items();
                (0..values.len().max(exts.len()))
                    .filter(|&i| {
                        values
                            .get(i)
                            .is_some_and(|v| !matches!(v.value, Json::Null))
                            || exts.get(i).is_some_and(|e| !matches!(e.value, Json::Null))
                    })
                    .count()
            }
        };
    }
    count
}

/// Where navigation puts the items it selects: a collection, or a count
/// when only how many matters (`exists()`, `empty()`, `count()`).
trait Sink<'a> {
    /// Room for `n` more items.
    fn reserve(&mut self, n: usize);
    /// One item.
    fn push(&mut self, item: Item<'a>);
    /// One element of the document; `ty` types it when the item is kept.
    fn node(
        &mut self,
        value: Option<&'a Node>,
        ext: Option<&'a Node>,
        ty: impl FnOnce(Option<&'a Node>) -> Option<TypeId>,
    );
}

impl<'a> Sink<'a> for Collection<'a> {
    #[inline]
    fn reserve(&mut self, n: usize) {
        SmallVec::reserve(self, n);
    }

    #[inline]
    fn push(&mut self, item: Item<'a>) {
        SmallVec::push(self, item);
    }

    #[inline]
    fn node(
        &mut self,
        value: Option<&'a Node>,
        ext: Option<&'a Node>,
        ty: impl FnOnce(Option<&'a Node>) -> Option<TypeId>,
    ) {
        SmallVec::push(self, Item::primitive(value, ext, ty(value)));
    }
}

/// Counts the items instead of keeping them.
#[derive(Default)]
struct Count(usize);

impl<'a> Sink<'a> for Count {
    #[inline]
    fn reserve(&mut self, _n: usize) {}

    #[inline]
    fn push(&mut self, _item: Item<'a>) {
        self.0 += 1;
    }

    #[inline]
    fn node(
        &mut self,
        _value: Option<&'a Node>,
        _ext: Option<&'a Node>,
        _ty: impl FnOnce(Option<&'a Node>) -> Option<TypeId>,
    ) {
        self.0 += 1;
    }
}

/// Pushes the items of member `key` (and its `_key` partner) of `object`.
fn push_member<'a, S: Sink<'a>>(
    model: &Model,
    object: &'a Node,
    key: &str,
    ty: Option<TypeId>,
    out: &mut S,
) {
    let Some(members) = object.as_object() else {
        return;
    };
    let mut value = None;
    let mut ext = None;
    // Lengths and first bytes before whole names: most members differ from
    // `key` and `_key` there already.
    let key = key.as_bytes();
    for m in members {
        let k = m.key.as_bytes();
        if k.len() == key.len() {
            if k.first() == key.first() && k == key {
                value = Some(&m.node);
            }
        } else if k.len() == key.len() + 1 && k.first() == Some(&b'_') && k.get(1..) == Some(key) {
            ext = Some(&m.node);
        }
    }
    // A member holding a resource is typed by its `resourceType`.
    let type_of = |n: Option<&'a Node>| -> Option<TypeId> {
        n.and_then(|n| n.get("resourceType"))
            .and_then(Node::as_str)
            .and_then(|rt| model.type_named(rt))
            .or(ty)
    };
    let present = |n: &'a Node| (!matches!(n.value, Json::Null)).then_some(n);
    match (value, ext) {
        (None, None) => {}
        (Some(v), None) => {
            let items = v.items();
            out.reserve(items.len());
            for item in items {
                if !matches!(item.value, Json::Null) {
                    out.node(Some(item), None, type_of);
                }
            }
        }
        (v, Some(e)) => {
            let values = v.map(Node::items).unwrap_or_default();
            let exts = e.items();
            out.reserve(values.len().max(exts.len()));
            for i in 0..values.len().max(exts.len()) {
                let v = values.get(i).and_then(present);
                let e = exts.get(i).and_then(present);
                if v.is_some() || e.is_some() {
                    out.node(v, e, type_of);
                }
            }
        }
    }
}

fn literal<'a>(l: &Literal) -> Item<'a> {
    match l {
        Literal::Boolean(b) => Item::Boolean(*b),
        Literal::String(s) => Item::String(Cow::Owned(s.to_string())),
        Literal::Integer(i) => Item::Integer(*i),
        Literal::Decimal(d) => Item::Decimal(*d),
        Literal::Date(t) => Item::Date(*t),
        Literal::DateTime(t) => Item::DateTime(*t),
        Literal::Time(t) => Item::Time(*t),
        Literal::Quantity(q) => Item::Quantity(Box::new(q.clone())),
    }
}

fn to_decimal(x: &Item<'_>) -> Decimal {
    match x {
        Item::Integer(i) => Decimal::from_i64(*i),
        Item::Decimal(d) => *d,
        _ => Decimal::ZERO,
    }
}

fn char_count(s: &str) -> i64 {
    i64::try_from(s.chars().count()).unwrap_or(i64::MAX)
}

fn normalise(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Deep equality of two nodes (same node, or same JSON content with members
/// in any order).
fn node_eq(a: &NodeRef<'_>, b: &NodeRef<'_>) -> bool {
    opt_json_eq(a.value, b.value) && opt_json_eq(a.ext, b.ext)
}

fn opt_json_eq(a: Option<&Node>, b: Option<&Node>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => std::ptr::eq(x, y) || json_eq(x, y),
        _ => false,
    }
}

fn json_eq(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Json::Number(x), Json::Number(y)) => match (Decimal::parse(x), Decimal::parse(y)) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|m| {
                    y.iter()
                        .find(|n| n.key == m.key)
                        .is_some_and(|n| json_eq(&m.node, &n.node))
                })
        }
        (x, y) => x == y,
    }
}

/// `toX()` (`converts` false: the value or empty) or `convertsToX()`.
fn convert<'a>(converts: bool, v: Option<Option<Item<'a>>>) -> R<Collection<'a>> {
    match v {
        None => Ok(Collection::new()),
        Some(r) if converts => Ok(boolean(r.is_some())),
        Some(r) => Ok(r.into_iter().collect()),
    }
}

fn to_boolean<'a>(v: &Item<'a>) -> Option<Item<'a>> {
    match v {
        Item::Boolean(b) => Some(Item::Boolean(*b)),
        Item::Integer(0) => Some(Item::Boolean(false)),
        Item::Integer(1) => Some(Item::Boolean(true)),
        Item::Decimal(d) if *d == Decimal::ZERO => Some(Item::Boolean(false)),
        Item::Decimal(d) if *d == Decimal::from_i64(1) => Some(Item::Boolean(true)),
        Item::String(s) => match s.to_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(Item::Boolean(true)),
            "false" | "f" | "no" | "n" | "0" | "0.0" => Some(Item::Boolean(false)),
            _ => None,
        },
        _ => None,
    }
}

/// `toQuantity()` of a system value; strings follow the FHIRPath quantity
/// literal syntax (`'1 day'`, `'4.5 \'mg\''`).
fn to_quantity(v: &Item<'_>) -> Option<Quantity> {
    match v {
        Item::Integer(_) | Item::Decimal(_) => Some(Quantity::ucum(to_decimal(v), "1")),
        Item::Boolean(b) => Some(Quantity::ucum(Decimal::new(i128::from(*b) * 10, 1), "1")),
        Item::Quantity(q) => Some((**q).clone()),
        Item::String(s) => {
            let s = s.trim();
            let (number, unit) = match s.find(' ') {
                Some(i) => (s.get(..i)?, s.get(i + 1..)?.trim()),
                None => (s, ""),
            };
            let value = Decimal::parse(number)?;
            if number.contains(['e', 'E']) {
                return None;
            }
            if unit.is_empty() {
                return Some(Quantity::ucum(value, "1"));
            }
            if let Some(u) = unit.strip_prefix('\'').and_then(|u| u.strip_suffix('\'')) {
                return Some(Quantity::ucum(value, u));
            }
            crate::quantity::calendar_keyword(unit)?;
            Some(Quantity {
                value,
                unit: unit.into(),
                calendar: true,
            })
        }
        _ => None,
    }
}

fn arithmetic<'a>(op: BinOp, x: &Item<'a>, y: &Item<'a>) -> R<Option<Item<'a>>> {
    let mismatch = || {
        Err(type_err(format!(
            "operator {op:?} is not defined for {} and {}",
            x.type_name(&Model::empty()).1,
            y.type_name(&Model::empty()).1
        )))
    };
    Ok(match (op, x, y) {
        (BinOp::Add, Item::String(a), Item::String(b)) => {
            Some(Item::String(Cow::Owned(format!("{a}{b}"))))
        }
        (BinOp::Add | BinOp::Sub | BinOp::Mul, Item::Integer(a), Item::Integer(b)) => match op {
            BinOp::Add => a.checked_add(*b),
            BinOp::Sub => a.checked_sub(*b),
            _ => a.checked_mul(*b),
        }
        .map(Item::Integer),
        (BinOp::IntDiv | BinOp::Mod, Item::Integer(a), Item::Integer(b)) => {
            if *b == 0 {
                None
            } else if op == BinOp::IntDiv {
                a.checked_div(*b).map(Item::Integer)
            } else {
                a.checked_rem(*b).map(Item::Integer)
            }
        }
        (_, Item::Integer(_) | Item::Decimal(_), Item::Integer(_) | Item::Decimal(_)) => {
            let (a, b) = (to_decimal(x), to_decimal(y));
            match op {
                BinOp::Add => a.add(&b).map(Item::Decimal),
                BinOp::Sub => a.sub(&b).map(Item::Decimal),
                BinOp::Mul => a.mul(&b).map(Item::Decimal),
                BinOp::Div => a.div(&b).map(Item::Decimal),
                BinOp::IntDiv => a
                    .div(&b)
                    .and_then(|q| q.truncate().to_i64())
                    .map(Item::Integer),
                BinOp::Mod => {
                    if b.is_zero() {
                        None
                    } else {
                        a.div(&b)
                            .map(|q| q.truncate())
                            .and_then(|q| q.mul(&b))
                            .and_then(|p| a.sub(&p))
                            .map(Item::Decimal)
                    }
                }
                _ => return mismatch(),
            }
        }
        (
            BinOp::Add | BinOp::Sub,
            Item::Date(t) | Item::DateTime(t) | Item::Time(t),
            Item::Quantity(q),
        ) => {
            let Some(unit) = q.time_unit() else {
                return Err(type_err(format!(
                    "cannot add a quantity in '{}' to a date or time",
                    q.unit
                )));
            };
            let n = q.value.truncate().to_i64().unwrap_or(0);
            let n = if op == BinOp::Sub { -n } else { n };
            t.add(n, unit).map(|r| match x {
                Item::Date(_) => Item::Date(r),
                Item::DateTime(_) => Item::DateTime(r),
                _ => Item::Time(r),
            })
        }
        (BinOp::Add | BinOp::Sub, Item::Quantity(a), Item::Quantity(b)) => a
            .add(b, if op == BinOp::Add { 1 } else { -1 })
            .map(|q| Item::Quantity(Box::new(q))),
        (BinOp::Mul | BinOp::Div, Item::Quantity(a), Item::Quantity(b)) => a
            .mul(b, op == BinOp::Div)
            .map(|q| Item::Quantity(Box::new(q))),
        (BinOp::Mul | BinOp::Div, Item::Quantity(a), Item::Integer(_) | Item::Decimal(_)) => {
            let n = to_decimal(y);
            let value = if op == BinOp::Mul {
                a.value.mul(&n)
            } else {
                a.value.div(&n)
            };
            value.map(|value| {
                Item::Quantity(Box::new(Quantity {
                    value,
                    unit: a.unit.clone(),
                    calendar: a.calendar,
                }))
            })
        }
        (BinOp::Mul, Item::Integer(_) | Item::Decimal(_), Item::Quantity(_)) => {
            return arithmetic(op, y, x);
        }
        _ => return mismatch(),
    })
}

fn math<'a>(func: Func, v: &Item<'a>, arg: Option<&Item<'a>>) -> R<Option<Item<'a>>> {
    let d = match v {
        Item::Integer(_) | Item::Decimal(_) => to_decimal(v),
        Item::Quantity(q) if func == Func::Abs => {
            return Ok(Some(Item::Quantity(Box::new(Quantity {
                value: q.value.abs(),
                unit: q.unit.clone(),
                calendar: q.calendar,
            }))));
        }
        _ => return Err(type_err(format!("{}() needs a number", func.name()))),
    };
    let int = |d: Decimal| d.to_i64().map(Item::Integer);
    let float = |x: f64| Decimal::from_f64(x).map(Item::Decimal);
    Ok(match func {
        Func::Abs => match v {
            Item::Integer(i) => i.checked_abs().map(Item::Integer),
            _ => Some(Item::Decimal(d.abs())),
        },
        Func::Ceiling => int(d.ceiling()),
        Func::Floor => int(d.floor()),
        Func::Truncate => int(d.truncate()),
        Func::Round => {
            let places = match arg {
                None => 0,
                Some(Item::Integer(p)) if *p >= 0 => u32::try_from(*p).unwrap_or(0),
                _ => return Err(type_err("round() needs a non-negative integer precision")),
            };
            Some(Item::Decimal(d.round(places)))
        }
        Func::Exp => float(d.to_f64().exp()),
        Func::Ln => {
            if d.is_negative() || d.is_zero() {
                None
            } else {
                float(d.to_f64().ln())
            }
        }
        Func::Sqrt => {
            if d.is_negative() {
                None
            } else {
                float(d.to_f64().sqrt())
            }
        }
        Func::Log => {
            let base = match arg {
                Some(b @ (Item::Integer(_) | Item::Decimal(_))) => to_decimal(b).to_f64(),
                _ => return Err(type_err("log() needs a numeric base")),
            };
            if d.is_negative() || d.is_zero() {
                None
            } else {
                float(d.to_f64().ln() / base.ln())
            }
        }
        Func::Power => match (v, arg) {
            (Item::Integer(a), Some(Item::Integer(b))) if *b >= 0 => u32::try_from(*b)
                .ok()
                .and_then(|b| a.checked_pow(b))
                .map(Item::Integer),
            (_, Some(e @ (Item::Integer(_) | Item::Decimal(_)))) => {
                let r = d.to_f64().powf(to_decimal(e).to_f64());
                if r.is_nan() { None } else { float(r) }
            }
            _ => return Err(type_err("power() needs a numeric exponent")),
        },
        _ => None,
    })
}

fn boundary<'a>(v: &Item<'a>, digits: Option<i64>, high: bool) -> Option<Item<'a>> {
    match v {
        Item::Integer(_) | Item::Decimal(_) => {
            decimal_boundary(to_decimal(v), digits, high).map(Item::Decimal)
        }
        Item::Quantity(q) => {
            let value = decimal_boundary(q.value, digits, high)?;
            Some(Item::Quantity(Box::new(Quantity {
                value,
                unit: q.unit.clone(),
                calendar: q.calendar,
            })))
        }
        Item::Date(t) | Item::DateTime(t) | Item::Time(t) => {
            let r = t.boundary(digits, high)?;
            Some(match r.kind {
                TemporalKind::Date => Item::Date(r),
                TemporalKind::DateTime => Item::DateTime(r),
                TemporalKind::Time => Item::Time(r),
            })
        }
        _ => None,
    }
}

/// FHIRPath 2.1 `lowBoundary`/`highBoundary` of a decimal: half a unit of
/// the last written place either side, at `digits` places (default 8).
fn decimal_boundary(d: Decimal, digits: Option<i64>, high: bool) -> Option<Decimal> {
    let digits = u32::try_from(digits.unwrap_or(8)).ok()?;
    if digits > 28 {
        return None;
    }
    let half = Decimal::new(5, d.scale() + 1);
    let edge = if high { d.add(&half)? } else { d.sub(&half)? };
    let scaled = edge.with_scale(d.scale() + 1)?;
    if digits >= scaled.scale() {
        return scaled.with_scale(digits);
    }
    let factor = Decimal::new(1, digits);
    let units = scaled.div(&factor)?;
    let units = if high { units.ceiling() } else { units.floor() };
    units.mul(&factor)?.with_scale(digits)
}

fn codec(func: Func, s: &str, format: &str) -> Option<String> {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    match (func, format) {
        (Func::Encode, "base64" | "urlbase64") => {
            let table = if format == "base64" { B64 } else { B64URL };
            let bytes = s.as_bytes();
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let b = [
                    chunk.first().copied().unwrap_or(0),
                    chunk.get(1).copied().unwrap_or(0),
                    chunk.get(2).copied().unwrap_or(0),
                ];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for i in 0..4 {
                    if i <= chunk.len() {
                        let idx = (n >> (18 - 6 * i)) & 63;
                        out.push(char::from(*table.get(idx as usize)?));
                    } else {
                        out.push('=');
                    }
                }
            }
            Some(out)
        }
        (Func::Decode, "base64" | "urlbase64") => {
            let table = if format == "base64" { B64 } else { B64URL };
            let mut bits = 0u32;
            let mut n = 0;
            let mut out = Vec::new();
            for c in s.bytes().filter(|&c| c != b'=') {
                let v = table.iter().position(|&t| t == c)?;
                bits = (bits << 6) | u32::try_from(v).ok()?;
                n += 6;
                if n >= 8 {
                    n -= 8;
                    out.push(u8::try_from((bits >> n) & 0xFF).ok()?);
                }
            }
            String::from_utf8(out).ok()
        }
        (Func::Encode, "hex") => Some(s.bytes().map(|b| format!("{b:02x}")).collect()),
        (Func::Decode, "hex") => {
            let bytes: Option<Vec<u8>> = (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                .collect();
            String::from_utf8(bytes?).ok()
        }
        (Func::Escape, "html") => Some(
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&#39;"),
        ),
        (Func::Unescape, "html") => Some(
            s.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&"),
        ),
        (Func::Escape, "json") => Some(s.replace('\\', "\\\\").replace('"', "\\\"")),
        (Func::Unescape, "json") => Some(s.replace("\\\"", "\"").replace("\\\\", "\\")),
        _ => None,
    }
}

// ----- the shortcut's subset ---------------------------------------------

/// A value of the shortcut's subset: a boolean collection (empty or one
/// item) or one integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fast {
    Bool(Option<bool>),
    Int(i64),
}

/// Whether [`fast_constraint`] is worth trying on `expr`: its root is one
/// of the forms the subset knows (logic, comparisons, `exists()`,
/// `empty()`, `count()`, `hasValue()`, `is`, `all()`, `not()`,
/// `startsWith()`).
/// Decided once per expression at parse time; what lies below is checked
/// as it is evaluated.
pub(crate) fn fast_supported(expr: &Expr) -> bool {
    match expr {
        Expr::Binary(
            BinOp::And
            | BinOp::Or
            | BinOp::Xor
            | BinOp::Implies
            | BinOp::Eq
            | BinOp::Ne
            | BinOp::Lt
            | BinOp::Gt
            | BinOp::Le
            | BinOp::Ge,
            _,
            _,
        ) => true,
        Expr::TypeCall { func: Func::Is, .. } => true,
        Expr::Call { func, .. } => matches!(
            func,
            Func::Exists
                | Func::Empty
                | Func::Count
                | Func::IsDistinct
                | Func::HtmlChecks
                | Func::HasValue
                | Func::All
                | Func::Not
                | Func::StartsWith
                | Func::EndsWith
                | Func::ContainsFn
        ),
        _ => false,
    }
}

/// Evaluates a constraint in the shortcut's subset with the same result as
/// the interpreter: logic and comparisons over boolean and integer
/// literals; integer `+`, `-`, `*`; `exists()`, `empty()`, `count()`,
/// `hasValue()`, `isDistinct()`, `htmlChecks()` (the hooks' answer),
/// `is T`, `all(criteria)` on `$this` or on paths of child names (from
/// `$this`, `%context`, `%resource` or `%rootResource`), which
/// `where(criteria)`, `select(projection)`, `first()`, `last()`, `tail()`
/// and `trace()` may filter, and `&` may join; `children().count()`;
/// `not()`; `=`/`!=` and `startsWith()`/`endsWith()`/`contains()` between
/// such a path and a string literal. A path of child names from a variable
/// (`%resource.type`) is navigated once per evaluation, however often it is
/// met. `None` when the interpreter must decide: strict mode, any other
/// form, `$index`/`$total`, an operand of another type, or an error, which
/// the interpreter then reports the same way.
pub(crate) fn fast_constraint(
    root: &Expr,
    regexes: &RegexCache,
    ctx: &EvalContext<'_, '_>,
) -> Option<bool> {
    if ctx.strict {
        return None;
    }
    let ev = Eval {
        ctx,
        model: ctx.model,
        regexes,
        traces: std::cell::RefCell::default(),
        constant_paths: std::cell::RefCell::default(),
        hoisted: &[],
        hoisted_values: std::cell::RefCell::default(),
        hoisted_sets: std::cell::RefCell::default(),
    };
    // As `Expression::evaluate_constraint`: true passes, empty fails, any
    // other single item passes.
    let passes = match ev.fast(root, ctx.context.as_slice())? {
        Fast::Bool(b) => b.unwrap_or(false),
        Fast::Int(_) => true,
    };
    let traces = ev.traces.into_inner();
    if !traces.is_empty() {
        for (name, items) in traces {
            ctx.hooks.trace(name, &items);
        }
    }
    Some(passes)
}

/// The sub-expressions of `root` whose value is the same wherever they are
/// met in one evaluation, by address, sorted: the largest paths, calls,
/// type operations and operators built only from variables and literals,
/// inside a function's arguments (evaluated once per item of its input by
/// `where()`, `select()`, `all()`, …) or, anywhere, when they read neither
/// `%context` nor the clock (then they may be shared by the evaluations
/// over one resource, [`ResourceScope`]). R4's dom-3 evaluates
/// `%resource.descendants().reference | …` for every contained resource:
/// evaluated once, a document with 717 contained resources validates in
/// milliseconds instead of 1.15 s (the time grew with their number
/// squared); ref-1 reads `%rootResource.contained.id` for every reference.
/// `trace()` is never hoisted (its calls are its effect).
pub(crate) fn hoisted(root: &Expr) -> Vec<Hoisted> {
    let mut found = Vec::new();
    let mut stack: Vec<(&Expr, bool)> = vec![(root, false)];
    while let Some((expr, in_args)) = stack.pop() {
        let hoistable = matches!(
            expr,
            Expr::Call { .. } | Expr::TypeCall { .. } | Expr::Binary(..) | Expr::Member(..)
        );
        if hoistable && focus_free(expr) {
            let reads = reads(expr);
            // Outside arguments, a value is met once per evaluation: worth
            // remembering only across evaluations.
            if in_args || reads != Reads::Evaluation {
                found.push(Hoisted {
                    key: node_key(expr),
                    reads,
                });
                continue;
            }
        }
        stack.extend(
            expr.children()
                .map(|(child, is_argument)| (child, in_args || is_argument)),
        );
    }
    found.sort_unstable_by_key(|h| h.key);
    found
}

/// A hoisted sub-expression ([`hoisted`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hoisted {
    /// Its address in the expression.
    key: usize,
    /// What its value depends on.
    reads: Reads,
}

/// What the value of a focus-free sub-expression depends on, beyond
/// constants: how widely it may be shared ([`ResourceScope`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reads {
    /// `%context` or the clock: one evaluation.
    Evaluation,
    /// `%resource` (and maybe `%rootResource`): the evaluations over one
    /// resource.
    Resource,
    /// `%rootResource` alone, or nothing: the evaluations over one root
    /// resource (its contained resources included).
    Root,
}

/// What a focus-free `expr` reads ([`Reads`]).
fn reads(root: &Expr) -> Reads {
    let mut reads = Reads::Root;
    let mut stack = vec![root];
    while let Some(expr) = stack.pop() {
        match expr {
            Expr::Variable(name) if &**name == "context" => return Reads::Evaluation,
            Expr::Variable(name) if &**name == "resource" => reads = Reads::Resource,
            Expr::Call {
                func: Func::Now | Func::Today | Func::TimeOfDay,
                ..
            } => return Reads::Evaluation,
            _ => stack.extend(expr.children().map(|(child, _)| child)),
        }
    }
    reads
}

/// Whether `expr`'s value depends on nothing but the evaluation's
/// variables and literals (not on `$this`, `$index`, `$total` or the
/// focus, and with no `trace()`), checked without recursion.
fn focus_free(root: &Expr) -> bool {
    let mut stack = vec![root];
    while let Some(expr) = stack.pop() {
        match expr {
            Expr::Variable(_) | Expr::Literal(_) | Expr::Empty => {}
            Expr::Member(t, _) | Expr::Negate(t) => stack.push(t),
            Expr::TypeCall {
                target: Some(t), ..
            } => stack.push(t),
            Expr::Indexer(a, b) | Expr::Binary(_, a, b) => {
                stack.push(a);
                stack.push(b);
            }
            Expr::Call {
                target: Some(t),
                func,
                args,
            } if !matches!(func, Func::Trace) => {
                stack.push(t);
                stack.extend(args.iter());
            }
            _ => return false,
        }
    }
    true
}

/// Whether `expr` is a path of child names from a variable
/// (`%resource.type`): its items do not depend on `$this`.
fn from_variable(expr: &Expr) -> bool {
    match expr {
        Expr::Variable(_) => true,
        Expr::Member(target, _) => from_variable(target),
        _ => false,
    }
}

/// The string of a string literal.
fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(Literal::String(s)) => Some(s),
        _ => None,
    }
}

/// The second half of FHIRPath's three-valued logic
/// (<https://hl7.org/fhirpath/N1/#boolean-logic>): `op` of `a` and `b` once
/// the short-circuits on `a` alone (`false and`, `true or`, `false implies`)
/// were taken; `None` is the empty collection. Shared by the interpreter and
/// the constraint shortcut, so both read one table.
fn three_valued(op: BinOp, a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match op {
        BinOp::And => match (a, b) {
            (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        BinOp::Or => match (a, b) {
            (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        BinOp::Xor => match (a, b) {
            (Some(x), Some(y)) => Some(x != y),
            _ => None,
        },
        // implies
        _ => match (a, b) {
            (_, Some(true)) => Some(true),
            (Some(true), Some(false)) => Some(false),
            _ => None,
        },
    }
}

impl<'e, 'a> Eval<'e, 'a, '_> {
    #[allow(clippy::too_many_lines)]
    fn fast(&self, expr: &'e Expr, this: &[Item<'a>]) -> Option<Fast> {
        match expr {
            Expr::Literal(Literal::Boolean(b)) => Some(Fast::Bool(Some(*b))),
            Expr::Literal(Literal::Integer(i)) => Some(Fast::Int(*i)),
            Expr::Binary(op @ (BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Implies), l, r) => {
                // As `binary`: the same short-circuits, the same tables.
                let a = self.fast_truth(l, this)?;
                match (op, a) {
                    (BinOp::And, Some(false)) => return Some(Fast::Bool(Some(false))),
                    (BinOp::Or, Some(true)) | (BinOp::Implies, Some(false)) => {
                        return Some(Fast::Bool(Some(true)));
                    }
                    _ => {}
                }
                let b = self.fast_truth(r, this)?;
                Some(Fast::Bool(three_valued(*op, a, b)))
            }
            Expr::Binary(op @ (BinOp::Eq | BinOp::Ne), l, r)
                if string_literal(l).is_some() || string_literal(r).is_some() =>
            {
                // As `collections_equal` with `equal` on a string.
                let (path, literal) = match (string_literal(l), string_literal(r)) {
                    (None, Some(s)) => (l, s),
                    (Some(s), None) => (r, s),
                    _ => return None,
                };
                let items = self.fast_items(path, this)?;
                let equal = match items.as_slice() {
                    [] => None,
                    [x] => match x.to_system(self.model) {
                        None => None,
                        Some(Item::String(s)) => Some(s == literal),
                        Some(_) => return None,
                    },
                    _ => Some(false),
                };
                Some(Fast::Bool(if *op == BinOp::Ne {
                    equal.map(|e| !e)
                } else {
                    equal
                }))
            }
            // As `binary_values`' arithmetic on two integers (overflow and
            // other types: the interpreter decides).
            Expr::Binary(op @ (BinOp::Add | BinOp::Sub | BinOp::Mul), l, r) => {
                let a = self.fast(l, this)?;
                let b = self.fast(r, this)?;
                if a == Fast::Bool(None) || b == Fast::Bool(None) {
                    return Some(Fast::Bool(None));
                }
                let (Fast::Int(x), Fast::Int(y)) = (a, b) else {
                    return None;
                };
                match op {
                    BinOp::Add => x.checked_add(y),
                    BinOp::Sub => x.checked_sub(y),
                    _ => x.checked_mul(y),
                }
                .map(Fast::Int)
            }
            // As `type_call`'s Is.
            Expr::TypeCall {
                target,
                func: Func::Is,
                ty,
            } => {
                let owned;
                let input: &[Item<'a>] = match target.as_deref() {
                    None => this,
                    Some(path) => {
                        owned = self.fast_items(path, this)?;
                        &owned
                    }
                };
                match input {
                    [] => Some(Fast::Bool(None)),
                    [x] => Some(Fast::Bool(Some(self.is_type(x, ty, false).ok()?))),
                    _ => None,
                }
            }
            Expr::Binary(op, l, r) => {
                let a = self.fast(l, this)?;
                let b = self.fast(r, this)?;
                // An empty operand makes any comparison empty.
                if a == Fast::Bool(None) || b == Fast::Bool(None) {
                    return Some(Fast::Bool(None));
                }
                let ord = match (a, b) {
                    (Fast::Int(x), Fast::Int(y)) => x.cmp(&y),
                    (Fast::Bool(Some(x)), Fast::Bool(Some(y)))
                        if matches!(op, BinOp::Eq | BinOp::Ne) =>
                    {
                        x.cmp(&y)
                    }
                    // Other pairings are errors or `false`: the interpreter says which.
                    _ => return None,
                };
                Some(Fast::Bool(Some(match op {
                    BinOp::Eq => ord == Ordering::Equal,
                    BinOp::Ne => ord != Ordering::Equal,
                    BinOp::Lt => ord == Ordering::Less,
                    BinOp::Gt => ord == Ordering::Greater,
                    BinOp::Le => ord != Ordering::Greater,
                    BinOp::Ge => ord != Ordering::Less,
                    _ => return None,
                })))
            }
            Expr::Call { target, func, args } => {
                if *func == Func::Count
                    && args.is_empty()
                    && let Some(Expr::Call {
                        target: None,
                        func: Func::Children,
                        args,
                    }) = target.as_deref()
                    && args.is_empty()
                {
                    let n: usize = this.iter().map(count_children).sum();
                    return Some(Fast::Int(i64::try_from(n).unwrap_or(i64::MAX)));
                }
                // How many items: the last step of the path is counted,
                // not collected.
                if let (Func::Exists | Func::Empty | Func::Count, []) = (func, args.as_slice()) {
                    let n = match target.as_deref() {
                        None => this.len(),
                        Some(path) => self.fast_count(path, this)?,
                    };
                    return Some(match func {
                        Func::Exists => Fast::Bool(Some(n > 0)),
                        Func::Empty => Fast::Bool(Some(n == 0)),
                        _ => Fast::Int(i64::try_from(n).unwrap_or(i64::MAX)),
                    });
                }
                let owned;
                let input: &[Item<'a>] = match target.as_deref() {
                    None => this,
                    Some(path) => {
                        owned = self.fast_items(path, this)?;
                        &owned
                    }
                };
                match (func, args.as_slice()) {
                    (Func::Exists, []) => Some(Fast::Bool(Some(!input.is_empty()))),
                    (Func::Empty, []) => Some(Fast::Bool(Some(input.is_empty()))),
                    (Func::Count, []) => {
                        Some(Fast::Int(i64::try_from(input.len()).unwrap_or(i64::MAX)))
                    }
                    // As `call`'s HasValue.
                    (Func::HasValue, []) => Some(Fast::Bool(Some(match input {
                        [Item::Node(n)] => n
                            .value
                            .is_some_and(|v| !matches!(v.value, Json::Object(_) | Json::Array(_))),
                        [Item::Type(_)] => false,
                        [_] => true,
                        _ => false,
                    }))),
                    // As `call`'s HtmlChecks: the hooks' answer (a query,
                    // like those the interpreter makes).
                    (Func::HtmlChecks, []) => Some(Fast::Bool(Some(
                        input.iter().all(|x| self.ctx.hooks.html_checks(x)),
                    ))),
                    // As `call`'s IsDistinct.
                    (Func::IsDistinct, []) => {
                        let mut seen = Seen::with_capacity(input.len());
                        Some(Fast::Bool(Some(input.iter().all(|x| seen.insert(self, x)))))
                    }
                    // As `call`'s Not: the truth of a single item.
                    (Func::Not, []) => match input {
                        [] => Some(Fast::Bool(None)),
                        [x] => match x.to_system(self.model) {
                            Some(Item::Boolean(b)) => Some(Fast::Bool(Some(!b))),
                            _ => None,
                        },
                        _ => None,
                    },
                    // As `call`'s All (the criteria use no `$index`/`$total`
                    // in the subset).
                    (Func::All, [criteria]) => {
                        for item in input {
                            if self.fast_truth(criteria, std::slice::from_ref(item))? != Some(true)
                            {
                                return Some(Fast::Bool(Some(false)));
                            }
                        }
                        Some(Fast::Bool(Some(true)))
                    }
                    // As `call`'s StartsWith/EndsWith/ContainsFn with a literal.
                    (Func::StartsWith | Func::EndsWith | Func::ContainsFn, [pattern]) => {
                        let pattern = string_literal(pattern)?;
                        let s = match input {
                            [] => return Some(Fast::Bool(None)),
                            [x] => match x.to_system(self.model) {
                                None => return Some(Fast::Bool(None)),
                                Some(Item::String(s)) => s,
                                Some(_) => return None,
                            },
                            _ => return None,
                        };
                        Some(Fast::Bool(Some(match func {
                            Func::StartsWith => s.starts_with(pattern),
                            Func::EndsWith => s.ends_with(pattern),
                            _ => s.contains(pattern),
                        })))
                    }
                    // A `not()` etc. on the result of a function of the
                    // subset: its input is that function's boolean.
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// As `truth` on a value of the subset (booleans only).
    fn fast_truth(&self, expr: &'e Expr, this: &[Item<'a>]) -> Option<Option<bool>> {
        match self.fast(expr, this)? {
            Fast::Bool(b) => Some(b),
            Fast::Int(_) => None,
        }
    }

    /// `where()`, `select()`, `first()`, `last()`, `tail()` and `trace()` on `input`, as
    /// `call` does them (the criteria and projections in the subset,
    /// without `$index`/`$total`, which the subset does not know).
    fn fast_filter(
        &self,
        func: Func,
        input: Collection<'a>,
        args: &'e [Expr],
    ) -> Option<Collection<'a>> {
        match (func, args) {
            (Func::Where, [criteria]) => {
                let mut out = Collection::new();
                for item in &input {
                    if self.fast_truth(criteria, std::slice::from_ref(item))? == Some(true) {
                        out.push(item.clone());
                    }
                }
                Some(out)
            }
            (Func::Select, [projection]) => {
                let mut out = Collection::with_capacity(input.len());
                for item in &input {
                    out.extend(self.fast_items(projection, std::slice::from_ref(item))?);
                }
                Some(out)
            }
            (Func::First, []) => Some(input.into_iter().take(1).collect()),
            (Func::Last, []) => Some(input.into_iter().next_back().into_iter().collect()),
            (Func::Tail, []) => Some(input.into_iter().skip(1).collect()),
            (Func::Trace, [name]) => {
                let name = string_literal(name)?;
                self.traces.borrow_mut().push((name, input.clone()));
                Some(input)
            }
            (Func::Trace, [name, projection]) => {
                let name = string_literal(name)?;
                let mut projected = Collection::new();
                for item in &input {
                    projected.extend(self.fast_items(projection, std::slice::from_ref(item))?);
                }
                self.traces.borrow_mut().push((name, projected));
                Some(input)
            }
            _ => None,
        }
    }

    /// How many items [`Self::fast_items`] selects, without collecting the
    /// last step of a path.
    fn fast_count(&self, expr: &'e Expr, this: &[Item<'a>]) -> Option<usize> {
        let (input, name) = match expr {
            Expr::Identifier(name) if !name.starts_with(|c: char| c.is_ascii_uppercase()) => {
                (None, name)
            }
            Expr::Member(target, name) => (Some(self.fast_items(target, this)?), name),
            _ => return Some(self.fast_items(expr, this)?.len()),
        };
        let mut count = Count::default();
        for item in input.as_deref().unwrap_or(this) {
            self.member_into(item, name, &mut count).ok()?;
        }
        Some(count.0)
    }

    /// The items a path selects, as `Identifier`, `Member`, `$this` and the
    /// variables `%context`, `%resource`, `%rootResource` select them; a
    /// boolean function of the subset (`startsWith('#').not()`) yields its
    /// boolean.
    fn fast_items(&self, expr: &'e Expr, this: &[Item<'a>]) -> Option<Collection<'a>> {
        let (input, name) = match expr {
            Expr::This => return Some(this.iter().cloned().collect()),
            Expr::Variable(v) => {
                let item = match &**v {
                    "context" => &self.ctx.context,
                    "resource" => &self.ctx.resource,
                    "rootResource" => &self.ctx.root_resource,
                    _ => return None,
                };
                return Some(item.iter().cloned().collect());
            }
            Expr::Identifier(name) if !name.starts_with(|c: char| c.is_ascii_uppercase()) => {
                (None, name)
            }
            Expr::Member(..) if from_variable(expr) => {
                let key = node_key(expr);
                if let Some(known) = recall(&self.constant_paths, key) {
                    return Some(known);
                }
                let Expr::Member(target, name) = expr else {
                    return None;
                };
                let mut out = Collection::new();
                for item in &self.fast_items(target, this)? {
                    self.member(item, name, &mut out).ok()?;
                }
                self.constant_paths.borrow_mut().push((key, out.clone()));
                return Some(out);
            }
            Expr::Member(target, name) => (Some(self.fast_items(target, this)?), name),
            // As `binary_values`' Concat: empty is '', several is an error.
            Expr::Binary(BinOp::Concat, l, r) => {
                let (a, b) = (self.fast_items(l, this)?, self.fast_items(r, this)?);
                let mut text = String::new();
                for operand in [&a, &b] {
                    match operand.as_slice() {
                        [] => {}
                        [x] => {
                            self.push_string_of(x, &mut text);
                        }
                        _ => return None,
                    }
                }
                return Some(one(Item::String(Cow::Owned(text))));
            }
            Expr::Call {
                target,
                func:
                    func @ (Func::Where
                    | Func::Select
                    | Func::First
                    | Func::Last
                    | Func::Tail
                    | Func::Trace),
                args,
            } => {
                let input = match target.as_deref() {
                    None => this.iter().cloned().collect(),
                    Some(path) => self.fast_items(path, this)?,
                };
                return self.fast_filter(*func, input, args);
            }
            Expr::Call { .. } => {
                return match self.fast(expr, this)? {
                    Fast::Bool(b) => Some(b.map(|b| one(Item::Boolean(b))).unwrap_or_default()),
                    Fast::Int(i) => Some(one(Item::Integer(i))),
                };
            }
            _ => return None,
        };
        let mut out = Collection::new();
        for item in input.as_deref().unwrap_or(this) {
            self.member(item, name, &mut out).ok()?;
        }
        Some(out)
    }
}

#[cfg(test)]
mod hoisting_tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::model::Model;

    /// R4 dom-3 as published.
    const DOM_3: &str = "contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical) | %resource.descendants().as(uri) | %resource.descendants().as(url))) or descendants().where(reference = '#').exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id).empty()";

    fn resource(contained: usize, referenced: usize) -> Node {
        let items: Vec<String> = (0..contained)
            .map(|i| {
                format!(
                    r##"{{"resourceType":"Basic","id":"b{i}","subject":{{"reference":"#b{}"}}}}"##,
                    i + 1
                )
            })
            .collect();
        let json = format!(
            r##"{{"resourceType":"Basic","contained":[{}],"author":{{"reference":"#b{referenced}"}}}}"##,
            items.join(",")
        );
        ehds_fhir::json::parse(json.as_bytes()).unwrap()
    }

    /// Hoisting changes how often, never what: dom-3 gives the same result
    /// with and without, on resources where it holds and where it fails.
    #[test]
    fn hoisted_sub_expressions_give_the_interpreters_result() {
        let root = crate::parser::parse(DOM_3).unwrap();
        let hoisted = hoisted(&root);
        assert_eq!(hoisted.len(), 1, "the union of %resource paths");
        let model = Model::empty();
        let regexes = RegexCache::default();
        // b0 is referenced by the author, each bi by b(i-1): all referenced.
        // With the author on b3, b0..b2 are not referenced by anything.
        for (contained, referenced, holds) in [(5, 0, true), (5, 3, false), (1, 0, true)] {
            let node = resource(contained, referenced);
            let ctx = EvalContext::new(&model, &node);
            let plain = evaluate(&root, &regexes, &[], &ctx).unwrap();
            let once = evaluate(&root, &regexes, &hoisted, &ctx).unwrap();
            for result in [plain, once] {
                assert!(
                    matches!(result.as_slice(), [Item::Boolean(b)] if *b == holds),
                    "{contained} contained, author on b{referenced}: {result:?}"
                );
            }
        }
    }

    /// Nothing that depends on the focus is hoisted, nor `trace()`, nor
    /// what is evaluated once anyway (outside any function's arguments).
    #[test]
    fn only_focus_free_sub_expressions_are_hoisted() {
        for (text, expected) in [
            ("contained.where(id in descendants().reference)", 0),
            (
                "contained.where($this.id in %resource.descendants().reference)",
                1,
            ),
            ("contained.where(%resource.trace('x').exists())", 0),
            // Outside arguments: only what may be shared across
            // evaluations (not `%context`, not the clock).
            ("%resource.descendants().reference.exists()", 1),
            ("%context.descendants().reference.exists()", 0),
            // The clock is not hoisted; what it is compared with is.
            ("now() > %resource.meta.lastUpdated", 1),
        ] {
            let root = crate::parser::parse(text).unwrap();
            assert_eq!(hoisted(&root).len(), expected, "{text}");
        }
    }

    /// A hoisted value is shared as widely as what it reads allows:
    /// `%resource` by the evaluations over one resource, `%rootResource`
    /// (or constants) by those over one root and its contained resources,
    /// `%context` by none (nor would the clock be, but `now()` is never
    /// part of a hoisted value).
    #[test]
    fn what_a_hoisted_value_reads_decides_how_widely_it_is_shared() {
        for (text, expected) in [
            (
                "contained.where(id in %resource.descendants().reference)",
                Reads::Resource,
            ),
            (
                "contained.where(id in (%rootResource.contained.id | %resource.id))",
                Reads::Resource,
            ),
            (
                "reference.substring(1) in %rootResource.contained.id",
                Reads::Root,
            ),
            ("contained.where(id in ('a' | 'b'))", Reads::Root),
            (
                "contained.where(id in %context.descendants().reference)",
                Reads::Evaluation,
            ),
            (
                "contained.where(%resource.meta.lastUpdated < now())",
                Reads::Resource,
            ),
        ] {
            let root = crate::parser::parse(text).unwrap();
            let reads: Vec<Reads> = hoisted(&root).iter().map(|h| h.reads).collect();
            assert_eq!(reads, vec![expected], "{text}");
        }
    }

    /// Hooks that count `resolve()` calls.
    #[derive(Default)]
    struct CountingResolves(std::cell::Cell<usize>);

    impl<'a> Hooks<'a> for CountingResolves {
        fn resolve(&self, _reference: &str) -> Option<&'a Node> {
            self.0.set(self.0.get() + 1);
            None
        }
    }

    /// The answers of `expression` over each of `contained`, with `root`
    /// as `%rootResource`.
    fn answers<'a>(
        expression: &crate::Expression,
        model: &Model,
        root: &Item<'a>,
        contained: &'a [Node],
        scope: Option<&ResourceScope<'a>>,
        hooks: &CountingResolves,
    ) -> Vec<String> {
        contained
            .iter()
            .map(|c| {
                let item = Item::resource(c, model);
                let ctx = EvalContext::for_element(model, item.clone(), item, root.clone())
                    .with_hooks(hooks);
                let ctx = match scope {
                    Some(scope) => ctx.with_resource_scopes(scope, scope),
                    None => ctx,
                };
                format!("{:?}", expression.evaluate(&ctx).unwrap())
            })
            .collect()
    }

    /// ref-1's shape over every contained resource of one root: with a
    /// shared [`ResourceScope`] the root's part is evaluated once, not once
    /// per evaluation (N evaluations over N contained resources cost N,
    /// not N²), and every answer is the interpreter's.
    #[test]
    fn a_resource_scope_evaluates_the_roots_part_once_for_every_evaluation() {
        const CONTAINED: usize = 20;
        // Each contained Basic's subject is `#b(i+1)` (the last names
        // none) and its author a reference only the hooks resolve.
        let items: Vec<String> = (0..CONTAINED)
            .map(|i| {
                format!(
                    r##"{{"resourceType":"Basic","id":"b{i}","subject":{{"reference":"#b{}"}},"author":{{"reference":"Practitioner/p{i}"}}}}"##,
                    i + 1
                )
            })
            .collect();
        let json = format!(
            r##"{{"resourceType":"Basic","contained":[{}]}}"##,
            items.join(",")
        );
        let root_node = ehds_fhir::json::parse(json.as_bytes()).unwrap();
        let text = "subject.reference.substring(1) in (%rootResource.contained.author.resolve().id | %rootResource.contained.id)";
        let expression = crate::Expression::parse(text).unwrap();
        let model = Model::empty();
        let root = Item::resource(&root_node, &model);
        let contained = root_node.get("contained").unwrap().items();
        let unshared_hooks = CountingResolves::default();
        let unshared = answers(&expression, &model, &root, contained, None, &unshared_hooks);
        let shared_hooks = CountingResolves::default();
        // The right operand reads `%rootResource` only: one scope for the
        // root serves the evaluations over all its contained resources.
        let scope = ResourceScope::new();
        let shared = answers(
            &expression,
            &model,
            &root,
            contained,
            Some(&scope),
            &shared_hooks,
        );
        assert_eq!(unshared, shared);
        let holding = unshared
            .iter()
            .filter(|a| a.contains("Boolean(true)"))
            .count();
        assert_eq!(
            holding,
            CONTAINED - 1,
            "every subject but the last is contained"
        );
        assert_eq!(unshared_hooks.0.get(), CONTAINED * CONTAINED);
        assert_eq!(shared_hooks.0.get(), CONTAINED);
    }
}
