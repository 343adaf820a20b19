//! Compiles the shipped FHIR packages (every package folder under the
//! repository's `profiles/`) into the compiled package set the crate embeds
//! (`Registry::shipped`), with the very code that compiles operator-added
//! packages at run time (`src/load.rs`, `src/compact.rs`, `src/pack.rs`,
//! included here).

// The included modules are the library's, whose items are `pub` for it.
#![allow(unreachable_pub)]

#[path = "src/compact.rs"]
#[allow(dead_code)]
mod compact;
#[path = "src/load.rs"]
#[allow(dead_code)]
mod load;
#[path = "src/pack.rs"]
#[allow(dead_code)]
mod pack;
#[path = "src/package.rs"]
#[allow(dead_code)]
mod package;

use std::path::{Path, PathBuf};

use package::{Dependency, PackageId, ProfilesError, Skipped};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir.join("../../profiles");
    println!("cargo::rerun-if-changed={}", root.display());
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    dirs.retain(|dir| load::is_package_dir(dir));
    dirs.sort();
    let mut packages = Vec::with_capacity(dirs.len());
    for dir in &dirs {
        let mut package = load::compile_package(dir)?;
        // Paths as the repository names them, not this machine's.
        for resource in &mut package.resources {
            resource.path = relative(&root, &resource.path);
        }
        packages.push(package);
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("shipped-packages.bin");
    std::fs::write(out, pack::compress(&pack::encode(&packages)))?;
    Ok(())
}

/// `path` as `profiles/…`.
fn relative(root: &Path, path: &Path) -> PathBuf {
    Path::new("profiles").join(path.strip_prefix(root).unwrap_or(path))
}
