//! Reading package folders: `package.json`, the list of resource files, and
//! the files themselves, compiled ([`crate::compact`]) in parallel; parsing
//! compiled resources. The build script includes this file to compile the
//! shipped packages.

use std::fs;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use ehds_fhir::{Node, ReceivedResource};

use crate::compact::compact;
use crate::pack::{CompiledPackage, CompiledResource};
use crate::{Dependency, PackageId, ProfilesError, Skipped};

/// Threads reading and parsing resource files. Parsing dominates; two keeps start-up short without taking a busy
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

/// One resource file, read and compiled.
enum CompiledFile {
    /// A resource of a kept type with a canonical URL: its compact JSON.
    Kept(Vec<u8>),
    /// A resource of another type (its type).
    OtherType(String),
    /// A resource of a kept type without `url`.
    WithoutUrl,
}

/// Reads one resource file and compiles it ([`compact`]).
fn compile_one(path: &Path) -> Result<CompiledFile, ProfilesError> {
    let bytes = fs::read(path).map_err(|source| ProfilesError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let root = ehds_fhir::json::parse(&bytes).map_err(|rejection| ProfilesError::NotFhirJson {
        path: path.to_path_buf(),
        rejection,
    })?;
    let resource_type = root
        .get("resourceType")
        .and_then(Node::as_str)
        .unwrap_or_default();
    if !KEPT_TYPES.contains(&resource_type) {
        return Ok(CompiledFile::OtherType(resource_type.to_owned()));
    }
    if root.get("url").and_then(Node::as_str).is_none() {
        return Ok(CompiledFile::WithoutUrl);
    }
    Ok(CompiledFile::Kept(compact(&bytes, &root)))
}

/// Compiles the package folder `dir` (see [`package_root`]): its
/// package.json, and its resource files read and compacted on up to
/// [`LOAD_THREADS`] threads, in file-name order. Stops at the first file
/// that cannot be read or is not FHIR JSON.
pub(crate) fn compile_package(dir: &Path) -> Result<CompiledPackage, ProfilesError> {
    let root = package_root(dir)?;
    let (id, dependencies) = read_package_json(&root)?;
    let files = resource_files(&root)?;
    let compiled = in_parallel(&files, |path| compile_one(path))?;
    let mut skipped = Skipped::default();
    let mut resources = Vec::new();
    for (file, path) in compiled.into_iter().zip(files) {
        match file {
            CompiledFile::Kept(bytes) => resources.push(CompiledResource {
                path,
                bytes: Bytes::from(bytes),
            }),
            CompiledFile::OtherType(resource_type) => {
                *skipped.by_type.entry(resource_type).or_default() += 1;
            }
            CompiledFile::WithoutUrl => skipped.without_url += 1,
        }
    }
    Ok(CompiledPackage {
        id,
        dependencies,
        skipped,
        resources,
    })
}

/// One compiled resource, parsed.
pub(crate) struct ParsedResource {
    pub resource_type: String,
    pub url: String,
    pub version: Option<String>,
    pub name: Option<String>,
    pub resource: ReceivedResource,
}

/// Parses one compiled resource (its compact JSON, which compiling made
/// from FHIR JSON with a `url`).
pub(crate) fn parse_compiled(compiled: &CompiledResource) -> Result<ParsedResource, ProfilesError> {
    let resource = ReceivedResource::parse(compiled.bytes.clone()).map_err(|rejection| {
        ProfilesError::NotFhirJson {
            path: compiled.path.clone(),
            rejection,
        }
    })?;
    let root = resource.root();
    let text = |key: &str| root.get(key).and_then(Node::as_str).map(str::to_owned);
    let url = text("url")
        .ok_or_else(|| ProfilesError::BadPack(format!("{}: no url", compiled.path.display())))?;
    Ok(ParsedResource {
        resource_type: resource.resource_type().to_owned(),
        url,
        version: text("version"),
        name: text("name"),
        resource,
    })
}

/// `work` over `items` on up to [`LOAD_THREADS`] threads; the results are
/// in the order of `items`. Stops at the first failure.
///
/// The calling thread only waits: what the workers allocate (the parsed
/// registry, dropped once the validator is compiled) comes from their own
/// allocator arenas, not the one the long-lived validator is built in, so
/// the allocator can give it back to the system when it is freed instead of
/// keeping it, fragmented, as the gateway's idle resident memory.
pub(crate) fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> Result<R, ProfilesError> + Sync,
) -> Result<Vec<R>, ProfilesError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(LOAD_THREADS)
        .min(items.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let run = || {
        let mut done = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(index) else {
                break;
            };
            let result = work(item);
            if result.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            done.push((index, result));
        }
        done
    };
    let mut done = std::thread::scope(|scope| {
        let helpers: Vec<_> = (0..threads).map(|_| scope.spawn(run)).collect();
        let mut done = Vec::new();
        for helper in helpers {
            done.extend(helper.join().map_err(|_| ProfilesError::LoaderThread)?);
        }
        Ok::<_, ProfilesError>(done)
    })?;
    done.sort_unstable_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}
