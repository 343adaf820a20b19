//! FHIR package registry.
//!
//! Owns: loading FHIR packages — the ones shipped under `profiles/`
//! (hl7.fhir.r4.core 4.0.1, hl7.fhir.uv.ips 1.1.0 and 2.0.0-ballot,
//! hl7.fhir.eu.laboratory 0.1.0 and 0.2.0-ci, myhealth.eu.fhir.laboratory,
//! hl7.fhir.eu.extensions, hl7.fhir.eu.mpd, ihe.pharm.mpd.r4,
//! hl7.eu.terminology.ehdsi, hl7.fhir.be.medication) and any an operator names
//! in the configuration — into an immutable, shareable [`Registry`] of
//! conformance resources (StructureDefinitions, ValueSets, CodeSystems,
//! NamingSystems, ConceptMaps) resolved by canonical URL (`url` or
//! `url|version`). A package is a folder with a `package.json` (`name`,
//! `version`) and one JSON file per resource. Every resource is compiled to
//! its compact form ([`compact`]: without narrative, descriptions, comments,
//! mappings) and kept as those bytes plus the lossless view of `ehds_fhir`.
//! The shipped packages are compiled by the build script and embedded in
//! the binary ([`Registry::shipped`]): a gateway reads no package file at
//! start unless its operator adds packages, which load through the same
//! compiler.
//!
//! Several versions of one package (`hl7.fhir.uv.ips` 1.1.0 and 2.0.0-ballot)
//! live side by side, and so do several versions of one canonical URL:
//!
//! | reference | resolves to | source |
//! | --- | --- | --- |
//! | `url\|version` | exactly that version; when none is held and `version` is a plain release (`1.1.5`, `1.1`), the highest held of the same major.minor | Java `CanonicalResourceManager.get(url, version)` (`VersionUtilities.getMajMin`) |
//! | `url` | the **default**: the version from a package named in [`Registry::with_default_packages`], else the highest version (semver order, pre-releases below their release) | Java `CanonicalResourceManager` (the latest by version wins) |
//! | `url` from a resource of package P ([`Registry::resolve_in`]) | the version held by the first package of P's dependency scope ([`Registry::dependency_scope`]: P, then its `package.json` `dependencies`, breadth first) that has the URL, else the default | Java `BaseWorkerContext.fetchResourceWithExceptionByVersion` (`populatePVList`) and `CanonicalResourceManager.getByPackage` |
//!
//! So a profile of `hl7.fhir.eu.laboratory` 0.1.0, which depends on IPS
//! 1.1.0, finds IPS 1.1.0's profiles, while a document that merely claims
//! the IPS Bundle profile is checked against the default.
//!
//! Must not know about: how resources are validated against them, HTTP,
//! storage, routing or transport. It never fetches packages from a registry
//! or the network: what is loaded is what was embedded or is on disk.

pub mod compact;
mod load;
mod pack;
mod package;
mod version;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ehds_fhir::{Node, ReceivedResource};

pub use package::{Dependency, PackageId, ProfilesError, Skipped};

pub use version::{compare as compare_versions, major_minor, major_minor_of_any};

/// The shipped packages (`profiles/`), compiled by the build script
/// (LZ4-compressed, [`pack::compress`]).
static SHIPPED_PACKAGES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shipped-packages.bin"));

/// Canonical URL prefix of the core (base) StructureDefinitions.
pub const CORE_STRUCTURE_PREFIX: &str = "http://hl7.org/fhir/StructureDefinition/";

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

/// Every resource with one canonical URL, and which one a version-less
/// reference resolves to.
#[derive(Debug)]
struct UrlEntry {
    /// Indices into `Registry::resources`, in load order.
    all: Vec<usize>,
    /// The one `url` alone resolves to (the default).
    latest: usize,
}

/// The loaded conformance resources, by canonical URL and by type.
///
/// Immutable once built, `Send + Sync`; share it as `Arc<Registry>`.
pub struct Registry {
    packages: Vec<Arc<PackageId>>,
    /// By package index: its declared dependencies.
    dependencies: Vec<Vec<Dependency>>,
    /// Packages whose versions a version-less `url` means, first first.
    defaults: Vec<PackageId>,
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
        let compiled = package_dirs
            .iter()
            .map(|dir| load::compile_package(dir))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_compiled(compiled)
    }

    /// The packages shipped in `profiles/`, compiled when the binary was
    /// built ([`compact`]) and embedded in it: no file is read.
    pub fn shipped() -> Result<Registry, ProfilesError> {
        Self::shipped_and(&[])
    }

    /// The shipped packages ([`Registry::shipped`]), then the package
    /// folders `extra_dirs` compiled as [`Registry::load`] does.
    pub fn shipped_and(extra_dirs: &[PathBuf]) -> Result<Registry, ProfilesError> {
        let mut compiled = pack::decode(pack::decompress(SHIPPED_PACKAGES)?)?;
        for dir in extra_dirs {
            compiled.push(load::compile_package(dir)?);
        }
        Self::from_compiled(compiled)
    }

    /// Builds the registry from compiled packages: parses their resources
    /// (in parallel) and indexes them.
    fn from_compiled(compiled: Vec<pack::CompiledPackage>) -> Result<Registry, ProfilesError> {
        let mut packages = Vec::with_capacity(compiled.len());
        let mut dependencies = Vec::with_capacity(compiled.len());
        let mut skipped = Skipped::default();
        let mut files = Vec::new();
        let mut owners = Vec::new();
        for package in compiled {
            let id = Arc::new(package.id);
            dependencies.push(package.dependencies);
            for (resource_type, n) in package.skipped.by_type {
                *skipped.by_type.entry(resource_type).or_default() += n;
            }
            skipped.without_url += package.skipped.without_url;
            owners.extend(std::iter::repeat_n(
                Arc::clone(&id),
                package.resources.len(),
            ));
            files.extend(package.resources);
            packages.push(id);
        }
        let read = load::in_parallel(&files, load::parse_compiled)?;

        let mut resources: Vec<LoadedResource> = Vec::with_capacity(read.len());
        let mut by_url: HashMap<String, Vec<usize>> = HashMap::with_capacity(read.len());
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        let mut duplicates = Vec::new();
        for ((parsed, file), package) in read.into_iter().zip(files).zip(owners) {
            let load::ParsedResource {
                resource_type,
                url,
                version,
                name,
                resource,
            } = parsed;
            let path = file.path;
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
            dependencies,
            defaults: Vec::new(),
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

    /// Makes a version-less `url` mean the version held by the first of
    /// `packages` that has the URL (an explicit default per package, e.g.
    /// `hl7.fhir.uv.ips#1.1.0` while 2.0.0-ballot is loaded too); URLs none
    /// of them holds keep the highest version. Each must be loaded.
    pub fn with_default_packages(mut self, packages: &[PackageId]) -> Result<Self, ProfilesError> {
        if let Some(missing) = packages
            .iter()
            .find(|p| !self.packages.iter().any(|loaded| **loaded == **p))
        {
            return Err(ProfilesError::UnknownDefaultPackage(missing.clone()));
        }
        self.defaults = packages.to_vec();
        let mut by_url = std::mem::take(&mut self.by_url);
        for entry in by_url.values_mut() {
            if let Some(chosen) = self.default_of(entry.all.iter().copied()) {
                entry.latest = chosen;
            }
        }
        self.by_url = by_url;
        Ok(self)
    }

    /// The packages named in [`Registry::with_default_packages`].
    pub fn default_packages(&self) -> &[PackageId] {
        &self.defaults
    }

    /// Resolves a canonical reference: `url` (the default version: from a
    /// default package ([`Registry::with_default_packages`]), else the
    /// highest of the semver-like versions by [`compare_versions`], or the
    /// first loaded when none is semver-like) or `url|version` (exactly that
    /// version; failing that, for a plain release `x.y.z` or `x.y`, the
    /// highest held of the same major.minor, as the Java validator's
    /// `CanonicalResourceManager.get` does). URLs and versions are compared
    /// exactly (case-sensitive). When the reference as written does not
    /// resolve and carries a `#fragment`, it is tried once more without the
    /// fragment; nothing else is rewritten.
    pub fn resolve(&self, canonical: &str) -> Option<&LoadedResource> {
        self.lookup(None, canonical)
    }

    /// Resolves a canonical written in a resource of a package whose
    /// [`Registry::dependency_scope`] is `scope`: `url|version` as
    /// [`Registry::resolve`]; a version-less `url` to the version held by the
    /// first package of `scope` that has it (of `resource_type`, when
    /// given), else the default. This is how a profile of
    /// `hl7.fhir.eu.laboratory` 0.1.0 finds the IPS 1.1.0 profiles it builds
    /// on (Java `CanonicalResourceManager.getByPackage`).
    pub fn resolve_in(
        &self,
        resource_type: Option<&str>,
        canonical: &str,
        scope: &[Arc<PackageId>],
    ) -> Option<&LoadedResource> {
        let url = canonical.split_once('#').map_or(canonical, |(url, _)| url);
        if !url.contains('|')
            && let Some(entry) = self.by_url.get(canonical).or_else(|| self.by_url.get(url))
        {
            let of_type = |r: &&LoadedResource| resource_type.is_none_or(|t| r.resource_type == t);
            for package in scope {
                if let Some(found) = entry
                    .all
                    .iter()
                    .filter_map(|&i| self.resources.get(i))
                    .filter(of_type)
                    .find(|r| *r.package == **package)
                {
                    return Some(found);
                }
            }
        }
        self.lookup(resource_type, canonical)
    }

    /// The declared dependencies of a loaded package (none when it is not
    /// loaded).
    pub fn dependencies(&self, package: &PackageId) -> &[Dependency] {
        self.packages
            .iter()
            .position(|p| **p == *package)
            .and_then(|i| self.dependencies.get(i))
            .map_or(&[], Vec::as_slice)
    }

    /// The packages a version-less canonical written in `package` is looked
    /// up in, in order: `package` itself, then the loaded packages its
    /// dependencies name (in name order), then theirs, breadth first, each
    /// once (Java `BaseWorkerContext.populatePVList`). A dependency names a loaded
    /// package by its exact version; a wildcard (`0.1.x`, `0.1.*`) or a
    /// major.minor (`1.1`) by the highest loaded version it matches; a label
    /// that is not a version (`current`, `dev`) by the highest loaded version
    /// of that name. A dependency on a version that is not loaded adds
    /// nothing. Empty when `package` is not loaded.
    pub fn dependency_scope(&self, package: &PackageId) -> Vec<Arc<PackageId>> {
        let Some(start) = self.packages.iter().position(|p| **p == *package) else {
            return Vec::new();
        };
        let mut scope = vec![start];
        let mut next = 0;
        while let Some(&current) = scope.get(next) {
            next += 1;
            for dependency in self.dependencies.get(current).into_iter().flatten() {
                if let Some(found) = self.dependency_package(dependency)
                    && !scope.contains(&found)
                {
                    scope.push(found);
                }
            }
        }
        scope
            .into_iter()
            .filter_map(|i| self.packages.get(i).cloned())
            .collect()
    }

    /// The loaded package a dependency names (see
    /// [`Registry::dependency_scope`]), by index.
    fn dependency_package(&self, dependency: &Dependency) -> Option<usize> {
        let named = || {
            self.packages
                .iter()
                .enumerate()
                .filter(|(_, p)| p.name == dependency.name)
        };
        if let Some((i, _)) = named().find(|(_, p)| p.version == dependency.version) {
            return Some(i);
        }
        let wanted = dependency.version.as_str();
        let is_label = version::compare(wanted, wanted).is_none()
            && version::wildcard_prefix(wanted).is_none();
        let mut best: Option<(usize, &str)> = None;
        for (i, p) in named() {
            let fits = if is_label {
                version::compare(&p.version, &p.version).is_some()
            } else {
                version::matches(wanted, &p.version)
            };
            if !fits {
                continue;
            }
            match best {
                Some((_, v))
                    if version::compare(&p.version, v) != Some(std::cmp::Ordering::Greater) => {}
                _ => best = Some((i, &p.version)),
            }
        }
        best.map(|(i, _)| i)
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
        self.default_of(base).and_then(|i| self.resources.get(i))
    }

    /// Of `candidates` (indices in load order), the one a version-less
    /// reference means: one from the first default package that has one,
    /// else [`latest`].
    fn default_of(&self, candidates: impl Iterator<Item = usize> + Clone) -> Option<usize> {
        self.defaults
            .iter()
            .find_map(|package| {
                candidates.clone().find(|&i| {
                    self.resources
                        .get(i)
                        .is_some_and(|r| *r.package == *package)
                })
            })
            .or_else(|| latest(&self.resources, candidates))
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
                Some(_) => self
                    .default_of(
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
        let versions = || {
            self.by_url
                .get(url)
                .into_iter()
                .flat_map(|entry| entry.all.iter())
                .filter_map(|&i| self.resources.get(i))
                .filter(of_type)
        };
        if let Some(exact) = versions().find(|r| r.version.as_deref() == Some(version)) {
            return Some(exact);
        }
        // Java `CanonicalResourceManager.get(url, version)`: a plain release
        // that is not held means the highest held of its major.minor.
        let wanted = version::major_minor(version)?;
        let mut best: Option<&LoadedResource> = None;
        for candidate in versions() {
            let Some(held) = candidate.version.as_deref() else {
                continue;
            };
            if version::major_minor_of_any(held) != Some(wanted) {
                continue;
            }
            match best.and_then(|b| b.version.as_deref()) {
                Some(b) if version::compare(held, b) != Some(std::cmp::Ordering::Greater) => {}
                _ => best = Some(candidate),
            }
        }
        best
    }

    /// Every loaded version of a canonical URL (the `url` part only), in
    /// load order.
    pub fn versions<'a>(&'a self, url: &str) -> impl Iterator<Item = &'a LoadedResource> + 'a {
        self.by_url
            .get(url)
            .into_iter()
            .flat_map(|entry| entry.all.iter())
            .filter_map(|&i| self.resources.get(i))
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
