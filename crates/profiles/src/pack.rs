//! The compiled package set: packages in compact form ([`crate::compact`])
//! with their identities, dependencies and what was left out, in one byte
//! string. The build script writes the shipped packages (`profiles/`) in
//! this form and the binary embeds it, so start-up reads no file and parses
//! only what the validator uses; [`Registry::load`](crate::Registry::load)
//! compiles operator-added packages to the same form in memory.
//!
//! Layout: [`MAGIC`], then little-endian `u32` counts and lengths: the
//! packages, each its name, version, dependencies (name, version),
//! skipped types (type, count), the count without `url`, and its resources
//! (path, compact JSON). The embedded set is LZ4-compressed ([`compress`]):
//! a fifth of the size in the binary, and in the gateway's resident memory
//! once read, for some 15 ms of decompression at start.

use std::path::PathBuf;

use bytes::Bytes;

use crate::{Dependency, PackageId, ProfilesError, Skipped};

/// The first bytes of a compiled package set, with its layout's version.
pub(crate) const MAGIC: &[u8] = b"ehds-fhir-packages/1\n";

/// One package, compiled.
#[derive(Debug, Clone)]
pub(crate) struct CompiledPackage {
    /// `name` and `version` of its package.json.
    pub id: PackageId,
    /// Its declared dependencies.
    pub dependencies: Vec<Dependency>,
    /// Its files not kept.
    pub skipped: Skipped,
    /// Its kept resources, in file-name order.
    pub resources: Vec<CompiledResource>,
}

/// One kept resource, compiled.
#[derive(Debug, Clone)]
pub(crate) struct CompiledResource {
    /// The file it was compiled from.
    pub path: PathBuf,
    /// Its compact JSON.
    pub bytes: Bytes,
}

/// Writes `packages` in the layout above.
#[allow(
    dead_code,
    reason = "the build script writes the shipped set; the library only reads"
)]
pub(crate) fn encode(packages: &[CompiledPackage]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let text = |out: &mut Vec<u8>, s: &[u8]| {
        count(out, s.len());
        out.extend_from_slice(s);
    };
    count(&mut out, packages.len());
    for package in packages {
        text(&mut out, package.id.name.as_bytes());
        text(&mut out, package.id.version.as_bytes());
        count(&mut out, package.dependencies.len());
        for dependency in &package.dependencies {
            text(&mut out, dependency.name.as_bytes());
            text(&mut out, dependency.version.as_bytes());
        }
        count(&mut out, package.skipped.by_type.len());
        for (resource_type, n) in &package.skipped.by_type {
            text(&mut out, resource_type.as_bytes());
            count(&mut out, *n);
        }
        count(&mut out, package.skipped.without_url);
        count(&mut out, package.resources.len());
        for resource in &package.resources {
            text(&mut out, resource.path.to_string_lossy().as_bytes());
            text(&mut out, &resource.bytes);
        }
    }
    out
}

/// The embedded form of an encoded set: LZ4 block, its length first.
#[allow(dead_code, reason = "see `encode`")]
pub(crate) fn compress(encoded: &[u8]) -> Vec<u8> {
    lz4_flex::compress_prepend_size(encoded)
}

/// The encoded set of its embedded form ([`compress`]).
pub(crate) fn decompress(compressed: &[u8]) -> Result<Bytes, ProfilesError> {
    lz4_flex::decompress_size_prepended(compressed)
        .map(Bytes::from)
        .map_err(|e| ProfilesError::BadPack(format!("not LZ4 as compiled: {e}")))
}

#[allow(dead_code, reason = "see `encode`")]
fn count(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
}

/// Reads a package set written by [`encode`]; the resources' bytes are
/// slices of `pack` (no copy).
pub(crate) fn decode(pack: Bytes) -> Result<Vec<CompiledPackage>, ProfilesError> {
    let mut reader = Reader { pack, at: 0 };
    if reader.take(MAGIC.len())? != MAGIC {
        return Err(ProfilesError::BadPack(
            "it does not start with the expected layout version".into(),
        ));
    }
    let mut packages = Vec::new();
    for _ in 0..reader.count()? {
        let id = PackageId {
            name: reader.text()?,
            version: reader.text()?,
        };
        let mut dependencies = Vec::new();
        for _ in 0..reader.count()? {
            dependencies.push(Dependency {
                name: reader.text()?,
                version: reader.text()?,
            });
        }
        let mut skipped = Skipped::default();
        for _ in 0..reader.count()? {
            let resource_type = reader.text()?;
            skipped.by_type.insert(resource_type, reader.count()?);
        }
        skipped.without_url = reader.count()?;
        let mut resources = Vec::new();
        for _ in 0..reader.count()? {
            let path = PathBuf::from(reader.text()?);
            let n = reader.count()?;
            resources.push(CompiledResource {
                path,
                bytes: reader.take(n)?,
            });
        }
        packages.push(CompiledPackage {
            id,
            dependencies,
            skipped,
            resources,
        });
    }
    if reader.at != reader.pack.len() {
        return Err(ProfilesError::BadPack(
            "bytes after the last package".into(),
        ));
    }
    Ok(packages)
}

struct Reader {
    pack: Bytes,
    at: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<Bytes, ProfilesError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.pack.len())
            .ok_or_else(|| ProfilesError::BadPack("it ends inside a package".into()))?;
        let taken = self.pack.slice(self.at..end);
        self.at = end;
        Ok(taken)
    }

    fn count(&mut self) -> Result<usize, ProfilesError> {
        let bytes = self.take(4)?;
        let mut n = [0u8; 4];
        n.copy_from_slice(&bytes);
        usize::try_from(u32::from_le_bytes(n))
            .map_err(|_| ProfilesError::BadPack("a count too large".into()))
    }

    fn text(&mut self) -> Result<String, ProfilesError> {
        let n = self.count()?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| ProfilesError::BadPack("a name that is not UTF-8".into()))
    }
}
