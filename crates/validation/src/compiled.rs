//! The validator's compiled form: a [`crate::Validator`] written as bytes
//! (postcard) and read back without the registry it was compiled from, so
//! the shipped packages can be compiled once at build time and a gateway
//! starts by reading them instead of parsing and compiling every package.
//!
//! What is written: the structure validator ([`crate::structure`]'s
//! compiled structures, constraints by index and expressions as text, the
//! FHIRPath model, the version indexes), the terminology tables
//! ([`crate::terminology`]) and the load problems. What is rebuilt on
//! reading: the parsed FHIRPath expressions (once per distinct text) and
//! the primitive types' regexes. The operator's options are not part of
//! it. Hash maps are written in key order, so the same validator always
//! writes the same bytes.

use crate::structure::StructureValidator;
use crate::structure::compile::{CompileError, LoadProblem};
use crate::terminology::Terminology;

/// What the bytes start with: the form's name and version. Changed
/// whenever what is written changes shape.
const HEADER: [u8; 8] = *b"EHDSV\x00\x00\x01";

/// Writes a validator's parts.
pub(crate) fn write(
    structures: &StructureValidator,
    terminology: &Terminology,
    load_problems: &[LoadProblem],
) -> Result<Vec<u8>, CompileError> {
    let bytes = HEADER.to_vec();
    let body = (structures.written(), terminology, load_problems);
    postcard::to_extend(&body, bytes).map_err(|e| CompileError::CompiledForm(e.to_string()))
}

/// Reads what [`write`] wrote.
pub(crate) fn read(
    bytes: &[u8],
) -> Result<(StructureValidator, Terminology, Vec<LoadProblem>), CompileError> {
    let body = bytes
        .strip_prefix(&HEADER[..])
        .ok_or_else(|| CompileError::CompiledForm("not this version's compiled form".into()))?;
    let (structures, terminology, load_problems): (
        crate::structure::compiled::Read,
        Terminology,
        Vec<LoadProblem>,
    ) = postcard::from_bytes(body).map_err(|e| CompileError::CompiledForm(e.to_string()))?;
    Ok((
        StructureValidator::from_read(structures)?,
        terminology,
        load_problems,
    ))
}
