//! The identities and errors of FHIR packages, shared by loading at run
//! time and by the build script that compiles the shipped packages (it
//! includes this file).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use ehds_fhir::JsonRejection;

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

/// A dependency a package declares (`package.json` `dependencies`): a
/// package name and a version (`1.1.0`), a wildcard (`0.1.x`) or a label
/// (`current`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dependency {
    /// The package name, e.g. `hl7.fhir.uv.ips`.
    pub name: String,
    /// The version as written.
    pub version: String,
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
    /// A package named as a default ([`crate::Registry::with_default_packages`])
    /// is not loaded.
    #[error("the default package {0} is not loaded")]
    UnknownDefaultPackage(PackageId),
    /// The compiled package set (the shipped packages embedded in the
    /// binary) is not in the form this build reads.
    #[error("the compiled FHIR package set is damaged: {0}")]
    BadPack(String),
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
