//! Reading package folders: `package.json`, the list of resource files, and
//! the files themselves, parsed in parallel.

use std::fs;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use ehds_fhir::{Node, ReceivedResource};

use crate::{Dependency, PackageId, ProfilesError};

/// Threads reading and parsing resource files (the calling thread is one of
/// them). Parsing dominates; two keeps start-up short without taking a busy
/// machine's cores.
const LOAD_THREADS: usize = 2;

/// The resource types the registry keeps; files of other types are skipped.
pub(crate) const KEPT_TYPES: [&str; 5] = [
    "StructureDefinition",
    "ValueSet",
    "CodeSystem",
    "NamingSystem",
    "ConceptMap",
];

/// The folder holding `package.json` and the resources: `dir` itself, or its
/// `package/` sub-folder (the layout of an unpacked npm tarball).
pub(crate) fn package_root(dir: &Path) -> Result<PathBuf, ProfilesError> {
    if dir.join("package.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    let nested = dir.join("package");
    if nested.join("package.json").is_file() {
        return Ok(nested);
    }
    // Report a folder that is missing altogether as the I/O error it is.
    fs::metadata(dir).map_err(|source| ProfilesError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Err(ProfilesError::NotAPackage {
        path: dir.to_path_buf(),
    })
}

/// True when `dir` is a package folder [`package_root`] accepts.
pub(crate) fn is_package_dir(dir: &Path) -> bool {
    dir.join("package.json").is_file() || dir.join("package").join("package.json").is_file()
}

/// `name`, `version` and `dependencies` from `root/package.json`.
pub(crate) fn read_package_json(
    root: &Path,
) -> Result<(PackageId, Vec<Dependency>), ProfilesError> {
    let path = root.join("package.json");
    let bytes = fs::read(&path).map_err(|source| ProfilesError::Io {
        path: path.clone(),
        source,
    })?;
    let text = bytes
        .strip_prefix(ehds_fhir::json::UTF8_BOM)
        .unwrap_or(&bytes);
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| ProfilesError::BadPackageJson {
            path: path.clone(),
            reason: format!("not JSON: {e}"),
        })?;
    let field = |key: &str| {
        value
            .get(key)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ProfilesError::BadPackageJson {
                path: path.clone(),
                reason: format!("no \"{key}\" string"),
            })
    };
    let id = PackageId {
        name: field("name")?,
        version: field("version")?,
    };
    // `dependencies`: an object of package name → version (npm's
    // package.json, as FHIR packages use it).
    let dependencies = match value.get("dependencies") {
        None => Vec::new(),
        Some(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(name, version)| {
                version
                    .as_str()
                    .map(|version| Dependency {
                        name: name.clone(),
                        version: version.to_owned(),
                    })
                    .ok_or_else(|| ProfilesError::BadPackageJson {
                        path: path.clone(),
                        reason: format!("dependency \"{name}\" has no version string"),
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ProfilesError::BadPackageJson {
                path: path.clone(),
                reason: "\"dependencies\" is not an object".into(),
            });
        }
    };
    Ok((id, dependencies))
}

/// The resource files of a package, sorted by name: `*.json` directly in
/// `root`, except `package.json` and names starting with `.` (`.index.json`).
pub(crate) fn resource_files(root: &Path) -> Result<Vec<PathBuf>, ProfilesError> {
    let io = |source| ProfilesError::Io {
        path: root.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(root).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.starts_with('.') || name == "package.json" || !name.ends_with(".json") {
            continue;
        }
        let path = entry.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// One resource file, read and parsed.
pub(crate) enum ReadFile {
    /// A resource of a kept type with a canonical URL.
    Kept {
        resource_type: String,
        url: String,
        version: Option<String>,
        name: Option<String>,
        resource: ReceivedResource,
    },
    /// A resource of another type (its type).
    OtherType(String),
    /// A resource of a kept type without `url`.
    WithoutUrl,
}

fn read_one(path: &Path) -> Result<ReadFile, ProfilesError> {
    let bytes = fs::read(path).map_err(|source| ProfilesError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let resource = ReceivedResource::parse(Bytes::from(bytes)).map_err(|rejection| {
        ProfilesError::NotFhirJson {
            path: path.to_path_buf(),
            rejection,
        }
    })?;
    let resource_type = resource.resource_type();
    if !KEPT_TYPES.contains(&resource_type) {
        return Ok(ReadFile::OtherType(resource_type.to_owned()));
    }
    let root = resource.root();
    let text = |key: &str| root.get(key).and_then(Node::as_str).map(str::to_owned);
    let Some(url) = text("url") else {
        return Ok(ReadFile::WithoutUrl);
    };
    Ok(ReadFile::Kept {
        resource_type: resource_type.to_owned(),
        url,
        version: text("version"),
        name: text("name"),
        resource,
    })
}

/// Reads and parses `files` on up to [`LOAD_THREADS`] threads; the results
/// are in the order of `files`. Stops at the first failure.
pub(crate) fn read_all(files: &[PathBuf]) -> Result<Vec<ReadFile>, ProfilesError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(LOAD_THREADS)
        .min(files.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let work = || {
        let mut done = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = files.get(index) else {
                break;
            };
            let read = read_one(path);
            if read.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            done.push((index, read));
        }
        done
    };
    let mut done = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut done = work();
        for helper in helpers {
            done.extend(helper.join().map_err(|_| ProfilesError::LoaderThread)?);
        }
        Ok::<_, ProfilesError>(done)
    })?;
    done.sort_unstable_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, read)| read).collect()
}
