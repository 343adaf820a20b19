//! Benchmarks of the gateway's hot paths (`cargo bench -p ehds-benches`).
//!
//! Owns: the criterion benches under `benches/`, each measuring a gateway
//! path beside a peer on the same input in the same run, so BENCHMARKS.md
//! can give ratios. It deliberately avoids the `ehds-gateway` crate (and with
//! it fhir-sdk's heavy typed models) so a bench build stays quick.
//!
//! Must not know about: anything beyond the public APIs of the crates it
//! measures; it is never a dependency of another crate.

/// The ~50 KB IPS document the ingest benchmark uses (the IPS IG example
/// with immunizations, 51 377 bytes).
pub const IPS_50KB: &str = "examples/ips/Bundle-IPS-examples-Bundle-with-immunization.json";

/// The ~48 KB laboratory report the ingest benchmark pushes beside the
/// summary (HL7 Europe Laboratory 0.1.0's simple chemistry result report,
/// Bundle-eu-lab, 48 105 bytes: the demo's laboratory report).
pub const LAB_48KB: &str = "examples/eu-lab-0.1.0/Bundle-SimpleChemistryResultReport.json";

/// Reads a file under `conformance/`.
pub fn conformance_file(relative: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(ehds_test_support::conformance_dir().join(relative))
}
