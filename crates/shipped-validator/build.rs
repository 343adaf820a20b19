//! Compiles the validator of the shipped FHIR packages (`ehds-profiles`'
//! embedded set, `Registry::shipped`) with `ehds_validation::Validator::new`,
//! the very code a gateway with operator-added packages runs at start, and
//! writes its compiled form (`Validator::compiled`, LZ4-compressed) and the
//! registry's counts for the crate to embed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Inputs are the build dependencies (the packages are embedded in
    // `ehds-profiles`, the invariant corrections in `ehds-validation`):
    // Cargo reruns this script when they change.
    println!("cargo::rerun-if-changed=build.rs");
    let registry = ehds_profiles::Registry::shipped()?;
    let validator = ehds_validation::Validator::new(&registry);
    let compiled = validator.compiled()?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("shipped-validator.bin"),
        lz4_flex::compress_prepend_size(&compiled),
    )?;
    std::fs::write(
        out.join("counts.rs"),
        format!(
            "/// Packages in the shipped set.\npub const PACKAGES: usize = {};\n\
             /// Resources in the shipped set.\npub const RESOURCES: usize = {};\n",
            registry.packages().len(),
            registry.len()
        ),
    )?;
    Ok(())
}
