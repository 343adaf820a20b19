//! ValueSets compiled for membership: a complete expansion becomes sets of
//! codes by system; a `compose` becomes include/exclude clauses whose leaves
//! are precomputed (code sets, whole held CodeSystems, filter bit sets) and
//! whose imports point at other compiled ValueSets.

use rustc_hash::FxHashMap as HashMap;

use ehds_fhir::Node;

use super::Systems;
use super::code_set::CodeSet;
use super::code_system::{Bits, Content, boolean, text};

/// One ValueSet, compiled.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct ValueSetDef {
    /// `url|version` (or `url`), for messages.
    pub canonical: String,
    /// How membership is decided.
    pub body: Body,
}

/// How membership of one ValueSet is decided.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) enum Body {
    /// A complete expansion.
    Expansion(Expansion),
    /// `compose`, with an incomplete expansion if the ValueSet had one.
    Compose(Compose),
    /// An incomplete expansion and no `compose`: codes found are members,
    /// others cannot be decided.
    PartialExpansion(Expansion),
    /// Neither: nothing can be decided (the reason).
    Undefined(String),
}

/// Codes of an expansion by system, each keyed by its system's case rule.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Expansion {
    #[serde(serialize_with = "crate::sorted::sorted_map")]
    pub by_system: HashMap<Box<str>, CodeSet>,
}

/// `ValueSet.compose`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Compose {
    pub includes: Vec<Clause>,
    pub excludes: Vec<Clause>,
    /// `compose.inactive`.
    pub inactive: Option<bool>,
    /// An incomplete expansion: a code found in it is a member.
    pub partial: Option<Expansion>,
}

/// One `include` or `exclude`: every part must hold.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Clause {
    /// `system` with its `concept`s or `filter`s.
    pub system: Option<SystemPart>,
    /// `valueSet` imports.
    pub imports: Vec<Import>,
}

/// The `system` part of a clause.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct SystemPart {
    pub system: Box<str>,
    pub matcher: Matcher,
}

/// How codes of the clause's system are matched.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) enum Matcher {
    /// Listed `concept`s (keys by the system's case rule), with the held
    /// CodeSystem if any (for `compose.inactive`).
    Listed { codes: CodeSet, cs: Option<usize> },
    /// Every code of a held, complete CodeSystem.
    All(usize),
    /// Every code of a CodeSystem held only in part (`example`,
    /// `fragment`): a code found is a member, others are undecided.
    Partial(usize),
    /// The concepts of a held, complete CodeSystem that pass the filters.
    Filtered {
        cs: usize,
        bits: Bits,
        description: String,
    },
    /// Cannot be decided offline (the reason).
    Unknown(String),
}

/// A `valueSet` import.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) enum Import {
    /// A held ValueSet (index).
    Held(usize),
    /// A canonical that resolves to nothing held.
    Missing(String),
}

/// Compiles ValueSets against held CodeSystems and the ValueSet index.
pub(super) struct Compiler<'a> {
    pub systems: &'a Systems,
    pub value_sets: &'a HashMap<String, usize>,
}

impl Compiler<'_> {
    /// Compiles one ValueSet resource.
    pub(super) fn value_set(&self, root: &Node, canonical: String) -> ValueSetDef {
        let expansion = root
            .get("expansion")
            .filter(|e| e.get("contains").is_some())
            .map(|e| self.expansion(e));
        let body = match (expansion, root.get("compose")) {
            (Some((expansion, true)), _) => Body::Expansion(expansion),
            (partial, Some(compose)) => Body::Compose(Compose {
                includes: self.clauses(compose, "include"),
                excludes: self.clauses(compose, "exclude"),
                inactive: boolean(compose, "inactive"),
                partial: partial.map(|(e, _)| e),
            }),
            (Some((expansion, false)), None) => Body::PartialExpansion(expansion),
            (None, None) => Body::Undefined(format!(
                "ValueSet {canonical} has neither a compose nor an expansion"
            )),
        };
        ValueSetDef { canonical, body }
    }

    /// The value set of all codes of a held CodeSystem (`CodeSystem.valueSet`).
    pub(super) fn whole_system(&self, cs: usize, canonical: String) -> ValueSetDef {
        let system = self
            .systems
            .get(cs)
            .map_or_else(String::new, |c| c.url.clone());
        let matcher = self.whole(cs, &system);
        ValueSetDef {
            canonical,
            body: Body::Compose(Compose {
                includes: vec![Clause {
                    system: Some(SystemPart {
                        system: system.into(),
                        matcher,
                    }),
                    imports: Vec::new(),
                }],
                excludes: Vec::new(),
                inactive: None,
                partial: None,
            }),
        }
    }

    /// The codes of an expansion and whether it is complete: not when
    /// `total` exceeds the codes it holds, when it is a page (`offset` > 0),
    /// or when marked limited (`limitedExpansion` parameter,
    /// `valueset-toocostly` extension).
    fn expansion(&self, expansion: &Node) -> (Expansion, bool) {
        let mut by_system: HashMap<&str, Vec<std::borrow::Cow<'_, str>>> = HashMap::default();
        let mut count = 0usize;
        let mut stack: Vec<&Node> = expansion
            .get("contains")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .collect();
        while let Some(entry) = stack.pop() {
            if let (Some(system), Some(code)) = (text(entry, "system"), text(entry, "code")) {
                count += 1;
                by_system
                    .entry(system)
                    .or_default()
                    .push(self.systems.key(system, code));
            }
            if let Some(nested) = entry.get("contains") {
                stack.extend(nested.items());
            }
        }
        let number = |key: &str| {
            expansion
                .get(key)
                .and_then(Node::as_number_text)
                .and_then(|n| n.parse::<usize>().ok())
        };
        let limited = expansion
            .get("parameter")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .any(|p| {
                text(p, "name") == Some("limitedExpansion")
                    && boolean(p, "valueBoolean") == Some(true)
            })
            || expansion
                .get("extension")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .any(|e| {
                    text(e, "url")
                        == Some("http://hl7.org/fhir/StructureDefinition/valueset-toocostly")
                        && boolean(e, "valueBoolean") != Some(false)
                });
        // A system whose codes do not fit a code set (over 4 GiB) is left
        // out, and the expansion then counts as incomplete (codes found are
        // members, others undecided).
        let mut fits = true;
        let out = Expansion {
            by_system: by_system
                .into_iter()
                .filter_map(|(system, codes)| match CodeSet::from_codes(codes) {
                    Ok(codes) => Some((system.into(), codes)),
                    Err(_) => {
                        fits = false;
                        None
                    }
                })
                .collect(),
        };
        let complete = fits
            && !limited
            && number("total").is_none_or(|total| total <= count)
            && number("offset").is_none_or(|offset| offset == 0);
        (out, complete)
    }

    fn clauses(&self, compose: &Node, key: &str) -> Vec<Clause> {
        compose
            .get(key)
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .map(|include| self.clause(include))
            .collect()
    }

    fn clause(&self, include: &Node) -> Clause {
        let imports = include
            .get("valueSet")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .filter_map(Node::as_str)
            .map(
                |canonical| match super::find_value_set(self.value_sets, canonical) {
                    Some(id) => Import::Held(id),
                    None => Import::Missing(canonical.to_owned()),
                },
            )
            .collect();
        let system = text(include, "system").map(|system| SystemPart {
            system: system.into(),
            matcher: self.matcher(include, system),
        });
        Clause { system, imports }
    }

    fn matcher(&self, include: &Node, system: &str) -> Matcher {
        let cs = self.systems.lookup(system, text(include, "version"));
        let concepts = include.get("concept").map(Node::items).unwrap_or_default();
        let filters = include.get("filter").map(Node::items).unwrap_or_default();
        if !concepts.is_empty() {
            let codes = concepts
                .iter()
                .filter_map(|c| text(c, "code"))
                .map(|code| self.systems.key(system, code));
            return match CodeSet::from_codes(codes) {
                Ok(codes) => Matcher::Listed { codes, cs },
                Err(_) => Matcher::Unknown(format!(
                    "the value set lists more codes of {system} than can be held (over 4 GiB)"
                )),
            };
        }
        let Some(cs) = cs else {
            return Matcher::Unknown(format!("CodeSystem {system} is not held"));
        };
        if filters.is_empty() {
            return self.whole(cs, system);
        }
        let Some(index) = self.systems.get(cs) else {
            return Matcher::Unknown(format!("CodeSystem {system} is not held"));
        };
        let described: Vec<String> = filters
            .iter()
            .map(|f| {
                format!(
                    "{} {} {}",
                    text(f, "property").unwrap_or("?"),
                    text(f, "op").unwrap_or("?"),
                    text(f, "value").unwrap_or("?")
                )
            })
            .collect();
        let description = described.join(" and ");
        match &index.content {
            Content::Complete => {}
            Content::Partial(mode) | Content::Absent(mode) => {
                return Matcher::Unknown(format!(
                    "filter '{description}' needs all of CodeSystem {system}, held only with content '{mode}'"
                ));
            }
        }
        let mut bits: Option<Bits> = None;
        for filter in filters {
            let (Some(property), Some(op), Some(value)) = (
                text(filter, "property"),
                text(filter, "op"),
                text(filter, "value"),
            ) else {
                return Matcher::Unknown(format!(
                    "a filter on {system} lacks its property, op or value"
                ));
            };
            match index.filter(property, op, value) {
                Ok(found) => match &mut bits {
                    Some(bits) => bits.intersect(&found),
                    None => bits = Some(found),
                },
                Err(reason) => return Matcher::Unknown(reason),
            }
        }
        match bits {
            Some(bits) => Matcher::Filtered {
                cs,
                bits,
                description,
            },
            None => self.whole(cs, system),
        }
    }

    /// A whole CodeSystem included.
    fn whole(&self, cs: usize, system: &str) -> Matcher {
        match self.systems.get(cs).map(|c| &c.content) {
            Some(Content::Complete) => Matcher::All(cs),
            Some(Content::Partial(_)) => Matcher::Partial(cs),
            Some(Content::Absent(mode)) => Matcher::Unknown(format!(
                "CodeSystem {system} is not held (only a resource with content '{mode}', without its codes)"
            )),
            None => Matcher::Unknown(format!("CodeSystem {system} is not held")),
        }
    }
}
