//! Shared helpers for the gateway's tests.
//!
//! Owns: where test fixtures live in the repository, and which PostgreSQL
//! server tests use. It is the one library allowed to read the environment,
//! because it exists only for tests.
//!
//! Must not know about: any gateway crate (it sits below them all, so every
//! crate can take it as a dev-dependency without a cycle).

use std::path::PathBuf;

/// The environment variable that names the PostgreSQL server for tests
/// (`.ci/run` sets it to `postgres://postgres@127.0.0.1:5432/test`).
pub const POSTGRES_URL_VAR: &str = "EHDS_TEST_POSTGRES_URL";

/// The PostgreSQL URL tests use, or `None` to skip PostgreSQL tests on a
/// developer machine without one.
///
/// # Panics
/// When `CI` is set and [`POSTGRES_URL_VAR`] is not: under CI a PostgreSQL
/// test fails rather than skips.
#[allow(clippy::panic)]
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{POSTGRES_URL_VAR} is not set but CI is: PostgreSQL tests must run under CI, not skip"
        ),
        _ => {
            eprintln!("skipping PostgreSQL test: {POSTGRES_URL_VAR} is not set");
            None
        }
    }
}

/// A schema name no other test uses: `prefix` plus a random suffix.
pub fn unique_schema(prefix: &str) -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::time::{SystemTime, UNIX_EPOCH};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    format!("t_{prefix}_{:016x}", hasher.finish())
}

/// The repository root: the nearest folder holding `Cargo.lock` and
/// `ARCHITECTURE.md` above the crate under test. Found at run time from the
/// `CARGO_MANIFEST_DIR` cargo sets for tests and benches, because the
/// compile-time value is shared by every clone that reuses a target dir.
pub fn repo_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file() && dir.join("ARCHITECTURE.md").is_file())
        .map(PathBuf::from)
        .unwrap_or(start)
}

/// `conformance/` in the repository.
pub fn conformance_dir() -> PathBuf {
    repo_root().join("conformance")
}

/// Every file with extension `ext` under `dir`, sorted, recursively.
pub fn files_with_extension(dir: &std::path::Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in read.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
