//! The FHIR type model FHIRPath navigates with: for a type and a child name,
//! which JSON member(s) hold the child and of which type. Built once from the
//! snapshots of the core (base) StructureDefinitions in a
//! [`Registry`](ehds_profiles::Registry): resources, complex and primitive
//! datatypes, and one anonymous type per backbone element (`Patient.contact`).
//! Choice elements (`Observation.value[x]`) list their types, so
//! `Observation.value` finds `valueQuantity` and types it `Quantity`
//! (FHIRPath in FHIR: <https://hl7.org/fhir/R4/fhirpath.html#types>).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use ehds_fhir::Node;
use ehds_profiles::{CORE_STRUCTURE_PREFIX, Registry};

/// The model's maps use the Fx hash (rustc's): fast and non-cryptographic,
/// for short, trusted keys (element and type names from the loaded
/// definitions), looked up on every navigation step.
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<rustc_hash::FxHasher>>;

/// Index of a type in a [`Model`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TypeId(u32);

impl TypeId {
    /// The type's position among the model's types ([`Model::types`]), for
    /// tables indexed by type.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The FHIRPath system type a FHIR primitive's value converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SystemKind {
    /// `System.Boolean`.
    Boolean,
    /// `System.String`.
    String,
    /// `System.Integer`.
    Integer,
    /// `System.Decimal`.
    Decimal,
    /// `System.Date`.
    Date,
    /// `System.DateTime`.
    DateTime,
    /// `System.Time`.
    Time,
}

/// What kind of type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TypeKind {
    /// A primitive datatype (`string`, `date`, ...), with its system type.
    Primitive(SystemKind),
    /// A complex datatype (`HumanName`, `Quantity`, ...).
    Complex,
    /// A resource (`Patient`, `Bundle`, ...).
    Resource,
    /// An anonymous backbone element type, named by its path.
    Backbone,
}

/// Where a child lives in JSON.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Child {
    /// One member named like the child.
    Single(TypeId),
    /// A choice element: members `name` + a type suffix (`valueQuantity`).
    Choice(Vec<(Box<str>, TypeId)>),
}

/// One type.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TypeDef {
    /// `Patient`, `string`, or for a backbone its path `Patient.contact`.
    pub name: Box<str>,
    /// The base type (`Patient` → `DomainResource`, `code` → `string`).
    pub base: Option<TypeId>,
    /// Primitive, complex, resource or backbone.
    pub kind: TypeKind,
    /// Its own children and, once the model is built, those it inherits
    /// from its base types (its own first), so a look-up is one probe.
    #[serde(serialize_with = "sorted")]
    children: FastMap<Box<str>, Child>,
}

/// The types FHIRPath navigates with. Immutable once built; share it.
///
/// Serialisable (serde), so a validator compiled at build time carries it
/// ready to use; maps are written in key order, so the same model always
/// writes the same bytes.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Model {
    types: Vec<TypeDef>,
    #[serde(serialize_with = "sorted")]
    by_name: FastMap<Box<str>, TypeId>,
}

/// Writes a map in key order (hash maps iterate in an order that depends on
/// their history, not only their content).
fn sorted<V: serde::Serialize, S: serde::Serializer>(
    map: &FastMap<Box<str>, V>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut entries: Vec<(&Box<str>, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    serializer.collect_map(entries)
}

const FHIR_TYPE_EXTENSION: &str =
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";

fn system_kind(primitive: &str) -> SystemKind {
    match primitive {
        "boolean" => SystemKind::Boolean,
        "integer" | "positiveInt" | "unsignedInt" | "integer64" => SystemKind::Integer,
        "decimal" => SystemKind::Decimal,
        "date" => SystemKind::Date,
        "dateTime" | "instant" => SystemKind::DateTime,
        "time" => SystemKind::Time,
        _ => SystemKind::String,
    }
}

fn text<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.get(key).and_then(Node::as_str)
}

/// The FHIR type code of one `ElementDefinition.type`.
fn type_code(ty: &Node) -> Option<&str> {
    let code = text(ty, "code")?;
    if !code.starts_with("http://hl7.org/fhirpath/System.") {
        return Some(code);
    }
    let declared = ty
        .get("extension")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .find(|e| text(e, "url") == Some(FHIR_TYPE_EXTENSION))
        .and_then(|e| text(e, "valueUrl").or_else(|| text(e, "valueUri")));
    Some(declared.unwrap_or(match code {
        "http://hl7.org/fhirpath/System.Boolean" => "boolean",
        "http://hl7.org/fhirpath/System.Integer" => "integer",
        "http://hl7.org/fhirpath/System.Decimal" => "decimal",
        "http://hl7.org/fhirpath/System.Date" => "date",
        "http://hl7.org/fhirpath/System.DateTime" => "dateTime",
        "http://hl7.org/fhirpath/System.Time" => "time",
        _ => "string",
    }))
}

fn capitalised(code: &str) -> String {
    let mut chars = code.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One element of a snapshot, as the model needs it.
struct Element<'a> {
    path: &'a str,
    types: Vec<&'a str>,
    content_reference: Option<&'a str>,
}

impl Model {
    /// A model with no types: navigation falls back to JSON member names and
    /// JSON value types.
    pub fn empty() -> Model {
        Model::default()
    }

    /// Builds the model from the core StructureDefinitions of `registry`
    /// (those under `http://hl7.org/fhir/StructureDefinition/` that are not
    /// constraints and not logical models).
    pub fn from_registry(registry: &Registry) -> Model {
        let mut model = Model::default();
        let mut structures = Vec::new();
        for loaded in registry.of_type("StructureDefinition") {
            let root = loaded.resource.root();
            let (Some(name), Some(kind)) = (text(root, "type"), text(root, "kind")) else {
                continue;
            };
            if !loaded.url.starts_with(CORE_STRUCTURE_PREFIX)
                || text(root, "derivation") == Some("constraint")
                || kind == "logical"
                || loaded.url != format!("{CORE_STRUCTURE_PREFIX}{name}")
                || model.by_name.contains_key(name)
            {
                continue;
            }
            let kind = match kind {
                "primitive-type" => TypeKind::Primitive(system_kind(name)),
                "resource" => TypeKind::Resource,
                _ => TypeKind::Complex,
            };
            model.add(name, kind);
            structures.push(root);
        }
        // Bases, then elements (every type exists by now).
        for root in &structures {
            let (Some(name), Some(base)) = (text(root, "type"), text(root, "baseDefinition"))
            else {
                continue;
            };
            let base = base
                .strip_prefix(CORE_STRUCTURE_PREFIX)
                .and_then(|b| model.by_name.get(b).copied());
            if let (Some(id), Some(base)) = (model.by_name.get(name).copied(), base)
                && let Some(def) = model.def_mut(id)
            {
                def.base = Some(base);
            }
        }
        for root in &structures {
            model.add_elements(root);
        }
        model.inherit_children();
        model
    }

    /// Copies into every type the children of its base types it does not
    /// define itself (a derived type's own definition wins, as
    /// [`Model::child`] finds it first).
    fn inherit_children(&mut self) {
        for index in 0..self.types.len() {
            let mut inherited: Vec<(Box<str>, Child)> = Vec::new();
            let mut base = self.types.get(index).and_then(|d| d.base);
            // Bounded: a malformed base chain cannot loop forever.
            let mut steps = self.types.len();
            while let Some(b) = base
                && steps > 0
            {
                steps -= 1;
                let Some(def) = self.def(b) else { break };
                inherited.extend(def.children.iter().map(|(k, c)| (k.clone(), c.clone())));
                base = def.base;
            }
            if let Some(def) = self.types.get_mut(index) {
                for (name, child) in inherited {
                    def.children.entry(name).or_insert(child);
                }
            }
        }
    }

    fn add(&mut self, name: &str, kind: TypeKind) -> TypeId {
        let id = TypeId(u32::try_from(self.types.len()).unwrap_or(u32::MAX));
        self.types.push(TypeDef {
            name: name.into(),
            base: None,
            kind,
            children: FastMap::default(),
        });
        if kind != TypeKind::Backbone {
            self.by_name.insert(name.into(), id);
        }
        id
    }

    fn def_mut(&mut self, id: TypeId) -> Option<&mut TypeDef> {
        self.types.get_mut(id.0 as usize)
    }

    fn add_elements(&mut self, root: &Node) {
        let (Some(type_name), Some(elements)) = (
            text(root, "type"),
            root.get("snapshot")
                .and_then(|s| s.get("element"))
                .and_then(Node::as_array),
        ) else {
            return;
        };
        let Some(root_id) = self.by_name.get(type_name).copied() else {
            return;
        };
        let is_resource = text(root, "kind") == Some("resource");
        let elements: Vec<Element> = elements
            .iter()
            .filter_map(|e| {
                Some(Element {
                    path: text(e, "path")?,
                    types: e
                        .get("type")
                        .map(Node::items)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(type_code)
                        .collect(),
                    content_reference: text(e, "contentReference"),
                })
            })
            .collect();
        // Path → the type its children belong to.
        let mut owners: HashMap<&str, TypeId> = HashMap::new();
        owners.insert(type_name, root_id);
        let element_base = self.by_name.get("Element").copied();
        let backbone_base = self.by_name.get("BackboneElement").copied();
        for e in &elements {
            if e.path.contains('.')
                && matches!(e.types.as_slice(), ["BackboneElement"] | ["Element"])
                && elements.iter().any(|c| {
                    c.path
                        .strip_prefix(e.path)
                        .is_some_and(|r| r.starts_with('.'))
                })
            {
                let id = self.add(e.path, TypeKind::Backbone);
                if let Some(def) = self.def_mut(id) {
                    def.base = if e.types == ["Element"] {
                        element_base
                    } else {
                        backbone_base
                    };
                }
                owners.insert(e.path, id);
            }
        }
        for e in &elements {
            let Some((parent, name)) = e.path.rsplit_once('.') else {
                continue;
            };
            let Some(owner) = owners.get(parent).copied() else {
                continue;
            };
            if matches!(
                self.types.get(owner.0 as usize).map(|d| d.kind),
                Some(TypeKind::Primitive(_))
            ) && name == "value"
            {
                continue;
            }
            let child = if let Some(reference) = e.content_reference {
                let target = reference.trim_start_matches('#');
                let target = target
                    .split_once('#')
                    .map_or(target, |(_, fragment)| fragment);
                match owners.get(target) {
                    Some(&id) => Child::Single(id),
                    None => continue,
                }
            } else if let Some(base) = name.strip_suffix("[x]") {
                let choices = e
                    .types
                    .iter()
                    .filter_map(|t| {
                        Some((
                            capitalised(t).into_boxed_str(),
                            self.by_name.get(*t).copied()?,
                        ))
                    })
                    .collect();
                self.insert_child(owner, base, Child::Choice(choices));
                continue;
            } else if let Some(&id) = owners.get(e.path) {
                Child::Single(id)
            } else {
                let code = if is_resource && name == "id" && parent == type_name {
                    "id"
                } else {
                    match e.types.first() {
                        Some(code) => *code,
                        None => continue,
                    }
                };
                match self.by_name.get(code) {
                    Some(&id) => Child::Single(id),
                    None => continue,
                }
            };
            self.insert_child(owner, name, child);
        }
    }

    fn insert_child(&mut self, owner: TypeId, name: &str, child: Child) {
        if let Some(def) = self.def_mut(owner) {
            def.children.insert(name.into(), child);
        }
    }

    /// The type named `name` (`Patient`, `string`, `HumanName`).
    pub fn type_named(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied()
    }

    /// Every type, in [`TypeId::index`] order.
    pub fn types(&self) -> &[TypeDef] {
        &self.types
    }

    /// The definition of a type.
    pub fn def(&self, id: TypeId) -> Option<&TypeDef> {
        self.types.get(id.0 as usize)
    }

    /// Where child `name` of a value of type `parent` lives, following the
    /// base types.
    pub fn child(&self, parent: TypeId, name: &str) -> Option<&Child> {
        // Inherited children are copied into each type when it is built.
        self.def(parent)?.children.get(name)
    }

    /// The child whose JSON member is `key` (`valueQuantity` → `value`,
    /// Quantity), for `children()`.
    pub fn child_by_key(&self, parent: TypeId, key: &str) -> Option<(TypeId, usize)> {
        if let Some(Child::Single(id)) = self.child(parent, key) {
            return Some((*id, key.len()));
        }
        // Choice members: the name is a prefix followed by an upper-case type suffix.
        for (i, c) in key.char_indices().skip(1) {
            if c.is_ascii_uppercase() {
                let (name, suffix) = key.split_at(i);
                if let Some(Child::Choice(choices)) = self.child(parent, name)
                    && let Some((_, id)) = choices.iter().find(|(s, _)| &**s == suffix)
                {
                    return Some((*id, i));
                }
            }
        }
        None
    }

    /// True when `id` is `ancestor` or derives from it.
    pub fn derives_from(&self, id: TypeId, ancestor: TypeId) -> bool {
        let mut current = Some(id);
        while let Some(c) = current {
            if c == ancestor {
                return true;
            }
            current = self.def(c).and_then(|d| d.base);
        }
        false
    }

    /// The primitive's system type, if `id` is (or derives from) a primitive.
    pub fn system_kind(&self, id: TypeId) -> Option<SystemKind> {
        match self.def(id)?.kind {
            TypeKind::Primitive(kind) => Some(kind),
            _ => None,
        }
    }

    /// The name FHIRPath's `type()` reports (`BackboneElement` for backbones).
    pub fn type_name(&self, id: TypeId) -> &str {
        match self.def(id) {
            Some(def) if def.kind == TypeKind::Backbone => def
                .base
                .and_then(|b| self.def(b))
                .map_or("BackboneElement", |b| &b.name),
            Some(def) => &def.name,
            None => "",
        }
    }

    /// How many types (named and backbone).
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True for [`Model::empty`].
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}
