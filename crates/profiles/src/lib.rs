//! FHIR package registry.
//!
//! Owns: loading FHIR packages — the ones shipped under `profiles/`
//! (hl7.fhir.r4.core 4.0.1, hl7.fhir.uv.ips, hl7.fhir.eu.mpd, ihe.pharm.mpd.r4,
//! hl7.eu.terminology.ehdsi, hl7.fhir.be.medication) and any an operator names
//! in the configuration — into an immutable, shareable [`Registry`] of
//! conformance resources (StructureDefinitions, ValueSets, CodeSystems,
//! NamingSystems, ConceptMaps) resolved by canonical URL (`url` or
//! `url|version`). A package is a folder with a `package.json` (`name`,
//! `version`) and one JSON file per resource; every file is kept as received
//! bytes plus the lossless view of `ehds_fhir`.
//!
//! Must not know about: how resources are validated against them, HTTP,
//! storage, routing or transport. It never fetches packages from a registry
//! or the network: what is loaded is what is on disk.

mod load;
mod version;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ehds_fhir::{JsonRejection, Node, ReceivedResource};

pub use version::compare as compare_versions;

/// Canonical URL prefix of the core (base) StructureDefinitions.
pub const CORE_STRUCTURE_PREFIX: &str = "http://hl7.org/fhir/StructureDefinition/";

/// Identity of a loaded package: `name` and `version` from package.json.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageId {
    /// `name`, e.g. `hl7.fhir.r4.core`.
    pub name: String,
    /// `version`, e.g. `4.0.1`.
    pub version: String,
}

impl fmt::Display for PackageId {
    /// `name#version`, as FHIR tooling writes a package reference.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.name, self.version)
    }
}

/// One conformance resource (StructureDefinition, ValueSet, CodeSystem, ...)
/// as loaded.
#[derive(Debug, Clone)]
pub struct LoadedResource {
    /// `resourceType`.
    pub resource_type: String,
    /// Canonical URL (`url`; resources without one are not loaded).
    pub url: String,
    /// Business version (`version`), if any.
    pub version: Option<String>,
    /// Computer-friendly name (`name`), if any.
    pub name: Option<String>,
    /// The package it came from.
    pub package: Arc<PackageId>,
    /// The file it was read from.
    pub path: PathBuf,
    /// The bytes as read and their lossless view.
    pub resource: ReceivedResource,
}

impl LoadedResource {
    /// `url|version`, or `url` when there is no version.
    pub fn canonical(&self) -> String {
        match &self.version {
            Some(version) => format!("{}|{version}", self.url),
            None => self.url.clone(),
        }
    }
}

/// A resource not loaded because an earlier one has the same `url|version`
/// (the first loaded is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// `resourceType` of the resource not loaded.
    pub resource_type: String,
    /// The shared canonical URL.
    pub url: String,
    /// The shared version.
    pub version: Option<String>,
    /// The package of the resource kept.
    pub kept: Arc<PackageId>,
    /// The package of the resource not loaded.
    pub ignored: Arc<PackageId>,
    /// The file not loaded.
    pub path: PathBuf,
}

/// Resource files read but not loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Files of resource types the registry does not keep (e.g.
    /// SearchParameter, ImplementationGuide), counted by type.
    pub by_type: BTreeMap<String, usize>,
    /// Resources of a kept type without a canonical `url`.
    pub without_url: usize,
}

/// Why packages could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfilesError {
    /// A file or folder could not be read.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A folder given as a package has no `package.json` (nor
    /// `package/package.json`).
    #[error(
        "{}: not a FHIR package folder (no package.json, nor package/package.json)",
        .path.display()
    )]
    NotAPackage {
        /// The folder.
        path: PathBuf,
    },
    /// A `package.json` that is not JSON or lacks `name` or `version`.
    #[error("{}: {reason}", .path.display())]
    BadPackageJson {
        /// The package.json file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A resource file that is not FHIR JSON.
    #[error("{}: not FHIR JSON: {}", .path.display(), describe(.rejection))]
    NotFhirJson {
        /// The resource file.
        path: PathBuf,
        /// What is wrong and where.
        rejection: JsonRejection,
    },
    /// A thread reading resource files stopped unexpectedly.
    #[error("a thread reading FHIR package files stopped unexpectedly")]
    LoaderThread,
}

fn describe(rejection: &JsonRejection) -> String {
    let expression = rejection.expression();
    if expression.is_empty() {
        rejection.to_string()
    } else {
        format!("{rejection} ({expression})")
    }
}

/// Every resource with one canonical URL, and which one a version-less
/// reference resolves to.
#[derive(Debug)]
struct UrlEntry {
    /// Indices into `Registry::resources`, in load order.
    all: Vec<usize>,
    /// The one `url` alone resolves to.
    latest: usize,
}

/// The loaded conformance resources, by canonical URL and by type.
///
/// Immutable once built, `Send + Sync`; share it as `Arc<Registry>`.
pub struct Registry {
    packages: Vec<Arc<PackageId>>,
    resources: Vec<LoadedResource>,
    by_url: HashMap<String, UrlEntry>,
    by_type: HashMap<String, Vec<usize>>,
    duplicates: Vec<Duplicate>,
    skipped: Skipped,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("packages", &self.packages)
            .field("resources", &self.resources.len())
            .field("duplicates", &self.duplicates.len())
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl Registry {
    /// Loads every package folder given, in order. A folder is a package when
    /// it holds `package.json`, or has a `package/` sub-folder that does (an
    /// unpacked npm tarball). Its resources are the `*.json` files directly in
    /// that folder except `package.json` and names starting with `.`.
    ///
    /// A resource with the same `url|version` as one loaded earlier is not
    /// loaded; it is recorded in [`Registry::duplicates`]. Resources of types
    /// other than StructureDefinition, ValueSet, CodeSystem, NamingSystem and
    /// ConceptMap, and resources without `url`, are counted in
    /// [`Registry::skipped`]. Any file that is not FHIR JSON fails the load.
    pub fn load(package_dirs: &[PathBuf]) -> Result<Registry, ProfilesError> {
        let mut packages = Vec::with_capacity(package_dirs.len());
        let mut files = Vec::new();
        let mut owners = Vec::new();
        for dir in package_dirs {
            let root = load::package_root(dir)?;
            let package = Arc::new(load::read_package_json(&root)?);
            let listed = load::resource_files(&root)?;
            owners.extend(std::iter::repeat_n(Arc::clone(&package), listed.len()));
            files.extend(listed);
            packages.push(package);
        }
        let read = load::read_all(&files)?;

        let mut resources: Vec<LoadedResource> = Vec::with_capacity(read.len());
        let mut by_url: HashMap<String, Vec<usize>> = HashMap::with_capacity(read.len());
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        let mut duplicates = Vec::new();
        let mut skipped = Skipped::default();
        for ((file, path), package) in read.into_iter().zip(files).zip(owners) {
            let (resource_type, url, version, name, resource) = match file {
                load::ReadFile::Kept {
                    resource_type,
                    url,
                    version,
                    name,
                    resource,
                } => (resource_type, url, version, name, resource),
                load::ReadFile::OtherType(resource_type) => {
                    *skipped.by_type.entry(resource_type).or_default() += 1;
                    continue;
                }
                load::ReadFile::WithoutUrl => {
                    skipped.without_url += 1;
                    continue;
                }
            };
            let same_url = by_url.entry(url.clone()).or_default();
            let earlier = same_url
                .iter()
                .filter_map(|&i| resources.get(i))
                .find(|r| r.version == version);
            if let Some(earlier) = earlier {
                duplicates.push(Duplicate {
                    resource_type,
                    url,
                    version,
                    kept: Arc::clone(&earlier.package),
                    ignored: package,
                    path,
                });
                continue;
            }
            let index = resources.len();
            same_url.push(index);
            by_type
                .entry(resource_type.clone())
                .or_default()
                .push(index);
            resources.push(LoadedResource {
                resource_type,
                url,
                version,
                name,
                package,
                path,
                resource,
            });
        }
        let by_url = by_url
            .into_iter()
            .filter_map(|(url, all)| {
                let latest = latest(&resources, all.iter().copied())?;
                Some((url, UrlEntry { all, latest }))
            })
            .collect();
        Ok(Registry {
            packages,
            resources,
            by_url,
            by_type,
            duplicates,
            skipped,
        })
    }

    /// Loads every immediate sub-folder of `root` that is a package folder
    /// (see [`Registry::load`]), in the order of their names, e.g.
    /// `profiles/`.
    pub fn load_root(root: &Path) -> Result<Registry, ProfilesError> {
        let io = |source| ProfilesError::Io {
            path: root.to_path_buf(),
            source,
        };
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(root).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if load::is_package_dir(&path) {
                dirs.push(path);
            }
        }
        dirs.sort();
        Self::load(&dirs)
    }

    /// Resolves a canonical reference: `url` (the latest version: the highest
    /// of the semver-like versions by [`compare_versions`], or the first
    /// loaded when none is semver-like) or `url|version` (exactly that
    /// version). URLs and versions are compared exactly (case-sensitive).
    /// When the reference as written does not resolve and carries a
    /// `#fragment`, it is tried once more without the fragment; nothing else
    /// is rewritten.
    pub fn resolve(&self, canonical: &str) -> Option<&LoadedResource> {
        self.lookup(None, canonical)
    }

    /// [`Registry::resolve`] restricted to one resource type.
    pub fn resolve_typed(&self, resource_type: &str, canonical: &str) -> Option<&LoadedResource> {
        self.lookup(Some(resource_type), canonical)
    }

    /// All loaded resources of a type, in load order.
    pub fn of_type<'a>(
        &'a self,
        resource_type: &'a str,
    ) -> impl Iterator<Item = &'a LoadedResource> + 'a {
        self.by_type
            .get(resource_type)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.resources.get(i))
    }

    /// All loaded resources, in load order (package by package, files by
    /// name).
    pub fn iter(&self) -> impl Iterator<Item = &LoadedResource> {
        self.resources.iter()
    }

    /// The packages loaded, in load order.
    pub fn packages(&self) -> &[Arc<PackageId>] {
        &self.packages
    }

    /// How many resources are loaded.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// True when no resource is loaded.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// Resources not loaded because an earlier one had the same
    /// `url|version`, in load order.
    pub fn duplicates(&self) -> &[Duplicate] {
        &self.duplicates
    }

    /// Resource files read but not loaded (other types, no `url`).
    pub fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    /// The base (core) StructureDefinition for a resource or datatype name,
    /// e.g. `Patient` → `http://hl7.org/fhir/StructureDefinition/Patient`,
    /// `string` → `http://hl7.org/fhir/StructureDefinition/string`. Only a
    /// definition of that very type that is not a constraint qualifies, so
    /// core profiles such as `vitalsigns` are not returned.
    pub fn core_structure(&self, type_name: &str) -> Option<&LoadedResource> {
        let url = format!("{CORE_STRUCTURE_PREFIX}{type_name}");
        let entry = self.by_url.get(&url)?;
        let base = entry.all.iter().copied().filter(|&i| {
            self.resources.get(i).is_some_and(|r| {
                let root = r.resource.root();
                let text = |key: &str| root.get(key).and_then(Node::as_str);
                r.resource_type == "StructureDefinition"
                    && text("type") == Some(type_name)
                    && text("derivation") != Some("constraint")
            })
        });
        latest(&self.resources, base).and_then(|i| self.resources.get(i))
    }

    fn lookup(&self, resource_type: Option<&str>, canonical: &str) -> Option<&LoadedResource> {
        if let Some(found) = self.lookup_exact(resource_type, canonical) {
            return Some(found);
        }
        let (without_fragment, _) = canonical.split_once('#')?;
        self.lookup_exact(resource_type, without_fragment)
    }

    fn lookup_exact(
        &self,
        resource_type: Option<&str>,
        canonical: &str,
    ) -> Option<&LoadedResource> {
        let of_type = |r: &&LoadedResource| resource_type.is_none_or(|t| r.resource_type == t);
        if let Some(entry) = self.by_url.get(canonical) {
            let found = match resource_type {
                None => self.resources.get(entry.latest),
                Some(_) => latest(
                    &self.resources,
                    entry
                        .all
                        .iter()
                        .copied()
                        .filter(|&i| self.resources.get(i).as_ref().is_some_and(of_type)),
                )
                .and_then(|i| self.resources.get(i)),
            };
            if found.is_some() {
                return found;
            }
        }
        let (url, version) = canonical.split_once('|')?;
        self.by_url
            .get(url)?
            .all
            .iter()
            .filter_map(|&i| self.resources.get(i))
            .filter(of_type)
            .find(|r| r.version.as_deref() == Some(version))
    }
}

/// Of `candidates` (indices in load order), the one a version-less reference
/// means: the highest semver-like version (the first loaded among equals),
/// or the first loaded when no version is semver-like.
fn latest(resources: &[LoadedResource], candidates: impl Iterator<Item = usize>) -> Option<usize> {
    let mut first = None;
    let mut best: Option<(usize, &str)> = None;
    for index in candidates {
        let Some(resource) = resources.get(index) else {
            continue;
        };
        first.get_or_insert(index);
        let Some(version) = resource.version.as_deref() else {
            continue;
        };
        if version::compare(version, version).is_none() {
            continue;
        }
        match best {
            Some((_, best_version))
                if version::compare(version, best_version) != Some(std::cmp::Ordering::Greater) => {
            }
            _ => best = Some((index, version)),
        }
    }
    best.map(|(index, _)| index).or(first)
}

#[cfg(test)]
mod tests;
