//! Items of FHIRPath collections: nodes of the document with their FHIR type,
//! or system values (<https://hl7.org/fhirpath/N1/#literals>).

use std::borrow::Cow;
use std::fmt;

use ehds_fhir::Node;
use ehds_fhir::json::Json;
use smallvec::SmallVec;

use crate::decimal::Decimal;
use crate::model::{Model, SystemKind, TypeId};
use crate::quantity::Quantity;
use crate::temporal::Temporal;

/// A FHIRPath collection (ordered, possibly empty); one item stays inline.
pub type Collection<'a> = SmallVec<[Item<'a>; 1]>;

/// An element of the document: for a primitive, its JSON value and its `_x`
/// partner (id, extensions) — either may be absent; for anything else the
/// object in `value`.
#[derive(Debug, Clone, Copy)]
pub struct NodeRef<'a> {
    /// The JSON value (`"male"`, `{"family":...}`), absent when only `_x` is written.
    pub value: Option<&'a Node>,
    /// The `_x` object of a primitive.
    pub ext: Option<&'a Node>,
    /// Its FHIR type, when known.
    pub ty: Option<TypeId>,
}

/// One item of a collection.
#[derive(Debug)]
pub enum Item<'a> {
    /// An element of the document.
    Node(NodeRef<'a>),
    /// `System.Boolean`.
    Boolean(bool),
    /// `System.String`.
    String(Cow<'a, str>),
    /// `System.Integer`.
    Integer(i64),
    /// `System.Decimal`.
    Decimal(Decimal),
    /// `System.Date`.
    Date(Temporal),
    /// `System.DateTime`.
    DateTime(Temporal),
    /// `System.Time`.
    Time(Temporal),
    /// `System.Quantity`.
    Quantity(Box<Quantity>),
    /// The result of `type()`: namespace and name.
    Type(Box<(&'static str, String)>),
}

impl Clone for Item<'_> {
    /// Nodes (most items, copied on every navigation step) are copied
    /// inline; system values go through [`Item::clone_value`].
    #[inline]
    fn clone(&self) -> Self {
        match self {
            Item::Node(n) => Item::Node(*n),
            other => other.clone_value(),
        }
    }
}

impl<'a> Item<'a> {
    /// [`Clone::clone`] of any item (the out-of-line part).
    #[inline(never)]
    fn clone_value(&self) -> Item<'a> {
        match self {
            Item::Node(n) => Item::Node(*n),
            Item::Boolean(b) => Item::Boolean(*b),
            Item::String(s) => Item::String(s.clone()),
            Item::Integer(i) => Item::Integer(*i),
            Item::Decimal(d) => Item::Decimal(*d),
            Item::Date(t) => Item::Date(*t),
            Item::DateTime(t) => Item::DateTime(*t),
            Item::Time(t) => Item::Time(*t),
            Item::Quantity(q) => Item::Quantity(q.clone()),
            Item::Type(t) => Item::Type(t.clone()),
        }
    }

    /// A node of known (or unknown) FHIR type.
    pub fn node(node: &'a Node, ty: Option<TypeId>) -> Item<'a> {
        Item::Node(NodeRef {
            value: Some(node),
            ext: None,
            ty,
        })
    }

    /// A primitive element: its value and its `_x` partner.
    pub fn primitive(
        value: Option<&'a Node>,
        ext: Option<&'a Node>,
        ty: Option<TypeId>,
    ) -> Item<'a> {
        Item::Node(NodeRef { value, ext, ty })
    }

    /// A resource, typed by its `resourceType`.
    pub fn resource(node: &'a Node, model: &Model) -> Item<'a> {
        let ty = node
            .get("resourceType")
            .and_then(Node::as_str)
            .and_then(|t| model.type_named(t));
        Item::node(node, ty)
    }

    /// The FHIRPath system value of a primitive node (or the item itself
    /// for system values); complex nodes and FHIR Quantities convert as
    /// FHIRPath prescribes (<https://hl7.org/fhir/R4/fhirpath.html#types>).
    pub fn to_system(&self, model: &Model) -> Option<Item<'a>> {
        let Item::Node(n) = self else {
            return Some(self.clone());
        };
        let value = n.value?;
        let kind = n.ty.and_then(|t| model.system_kind(t));
        match (&value.value, kind) {
            (Json::Bool(b), _) => Some(Item::Boolean(*b)),
            (Json::Number(t), Some(SystemKind::Integer)) => t.parse().ok().map(Item::Integer),
            (Json::Number(t), Some(SystemKind::Decimal)) => Decimal::parse(t).map(Item::Decimal),
            (Json::Number(t), _) => match t.parse::<i64>() {
                Ok(i) => Some(Item::Integer(i)),
                Err(_) => Decimal::parse(t).map(Item::Decimal),
            },
            (Json::String(s), Some(SystemKind::Date)) => Some(
                Temporal::parse_date(s)
                    .map(Item::Date)
                    .unwrap_or_else(|| Item::String(Cow::Borrowed(s))),
            ),
            (Json::String(s), Some(SystemKind::DateTime)) => Some(
                Temporal::parse_datetime(s)
                    .map(Item::DateTime)
                    .unwrap_or_else(|| Item::String(Cow::Borrowed(s))),
            ),
            (Json::String(s), Some(SystemKind::Time)) => Some(
                Temporal::parse_time(s)
                    .map(Item::Time)
                    .unwrap_or_else(|| Item::String(Cow::Borrowed(s))),
            ),
            (Json::String(s), Some(SystemKind::Integer)) => s.parse().ok().map(Item::Integer),
            (Json::String(s), Some(SystemKind::Decimal)) => Decimal::parse(s).map(Item::Decimal),
            (Json::String(s), _) => Some(Item::String(Cow::Borrowed(s))),
            (Json::Object(_), _) => {
                let is_quantity = n.ty.is_some_and(|t| {
                    model
                        .type_named("Quantity")
                        .is_some_and(|q| model.derives_from(t, q))
                });
                if is_quantity {
                    fhir_quantity(value).map(|q| Item::Quantity(Box::new(q)))
                } else {
                    Some(self.clone())
                }
            }
            _ => None,
        }
    }

    /// The string of a `System.String` or of a string-like primitive node.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Item::String(s) => Some(s),
            Item::Node(n) => n.value.and_then(Node::as_str),
            _ => None,
        }
    }

    /// The FHIRPath type name of the item (`boolean`/`code` for FHIR
    /// primitives, `Boolean`/`String` for system values).
    pub fn type_name<'m>(&self, model: &'m Model) -> (&'static str, Cow<'m, str>) {
        match self {
            Item::Node(n) => (
                "FHIR",
                Cow::Borrowed(n.ty.map(|t| model.type_name(t)).unwrap_or("")),
            ),
            Item::Boolean(_) => ("System", Cow::Borrowed("Boolean")),
            Item::String(_) => ("System", Cow::Borrowed("String")),
            Item::Integer(_) => ("System", Cow::Borrowed("Integer")),
            Item::Decimal(_) => ("System", Cow::Borrowed("Decimal")),
            Item::Date(_) => ("System", Cow::Borrowed("Date")),
            Item::DateTime(_) => ("System", Cow::Borrowed("DateTime")),
            Item::Time(_) => ("System", Cow::Borrowed("Time")),
            Item::Quantity(_) => ("System", Cow::Borrowed("Quantity")),
            Item::Type(_) => ("System", Cow::Borrowed("TypeInfo")),
        }
    }
}

/// A FHIR Quantity object as a system Quantity: the UCUM `code` when the
/// system is UCUM (or absent), else the human `unit`.
fn fhir_quantity(node: &Node) -> Option<Quantity> {
    let value = Decimal::parse(node.get("value")?.as_number_text()?)?;
    let code = node.get("code").and_then(Node::as_str);
    let system = node.get("system").and_then(Node::as_str);
    let unit = match (code, system) {
        (Some(c), Some("http://unitsofmeasure.org") | None) => c,
        _ => node.get("unit").and_then(Node::as_str).unwrap_or("1"),
    };
    Some(Quantity::ucum(value, unit))
}

impl fmt::Display for Item<'_> {
    /// The FHIRPath `toString()` form (nodes: their JSON scalar text).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Node(n) => match n.value.map(|v| &v.value) {
                Some(Json::String(s)) => f.write_str(s),
                Some(Json::Number(t)) => f.write_str(t),
                Some(Json::Bool(b)) => write!(f, "{b}"),
                _ => f.write_str(""),
            },
            Item::Boolean(b) => write!(f, "{b}"),
            Item::String(s) => f.write_str(s),
            Item::Integer(i) => write!(f, "{i}"),
            Item::Decimal(d) => write!(f, "{d}"),
            Item::Date(t) | Item::DateTime(t) | Item::Time(t) => write!(f, "{t}"),
            Item::Quantity(q) => write!(f, "{q}"),
            Item::Type(t) => write!(f, "{}.{}", t.0, t.1),
        }
    }
}
