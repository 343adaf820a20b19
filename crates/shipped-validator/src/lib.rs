//! The validator of the shipped FHIR packages, compiled at build time.
//!
//! Owns: the shipped packages (`profiles/`, embedded by `ehds-profiles`)
//! compiled by the build script into `ehds-validation`'s compiled form
//! ([`ehds_validation::Validator::compiled`]: structures with their
//! snapshots, constraints, the FHIRPath model, the terminology tables) and
//! embedded LZ4-compressed, so a gateway that adds no package starts by
//! reading it ([`validator`]) instead of parsing the package set into a
//! registry and compiling every definition. It equals a validator compiled
//! now from `Registry::shipped()` (`tests/embedded.rs`).
//!
//! Must not know about: how resources are validated (`ehds-validation`),
//! where packages come from (`ehds-profiles`), HTTP, storage. Operator-added
//! packages are not its business: they are compiled at start by
//! `ehds-validation` from a registry, as before.

use ehds_validation::structure::compile::CompileError;
use ehds_validation::{ValidationOptions, Validator};

include!(concat!(env!("OUT_DIR"), "/counts.rs"));

/// The compiled form, LZ4-compressed with its length first.
static COMPILED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shipped-validator.bin"));

/// The validator of the shipped packages, with the operator's `options`.
pub fn validator(options: ValidationOptions) -> Result<Validator, CompileError> {
    Validator::from_compiled(&compiled_form()?, options)
}

/// The embedded compiled form, decompressed
/// ([`ehds_validation::Validator::compiled`]'s bytes).
pub fn compiled_form() -> Result<Vec<u8>, CompileError> {
    lz4_flex::decompress_size_prepended(COMPILED)
        .map_err(|e| CompileError::CompiledForm(format!("decompressing: {e}")))
}

/// Bytes of the embedded form in the binary (compressed).
pub fn embedded_len() -> usize {
    COMPILED.len()
}
