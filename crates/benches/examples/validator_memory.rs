//! Where the validator's memory goes: the process's resident set (and its
//! peak) after each step of building it from the shipped packages; for the
//! live heap by allocation site run it under a heap profiler
//! (`heaptrack`, `valgrind --tool=massif`; the workspace forbids the
//! `unsafe` a counting allocator needs):
//!
//! `cargo run --release -p ehds-benches --example validator_memory [-- --from-files]`
//!
//! Steps: the registry (the embedded compiled packages parsed; with
//! `--from-files`, `profiles/` read and compiled), the terminology alone,
//! the structures alone (snapshots, FHIRPath model and invariants), the
//! whole validator, then the registry dropped (what a gateway keeps).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use ehds_profiles::Registry;
use ehds_validation::Validator;

fn status(key: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map_or_else(|| "?".into(), |v| v.trim().to_owned())
}

/// Prints the resident set after `step`, then pauses a little so that a
/// heap profiler's timeline shows the step as a plateau.
fn report(step: &str) {
    println!(
        "{step:<34} RSS {:>10} (anonymous {:>10}, file {:>10})   RSS peak {:>10}",
        status("VmRSS:"),
        status("RssAnon:"),
        status("RssFile:"),
        status("VmHWM:"),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
}

fn main() {
    report("start");
    let from_files = std::env::args().any(|a| a == "--from-files");
    let registry = if from_files {
        Registry::load_root(&ehds_test_support::repo_root().join("profiles")).unwrap()
    } else {
        Registry::shipped().unwrap()
    };
    report("registry");
    let terminology = ehds_validation::terminology::Terminology::new(&registry);
    report("+ terminology");
    drop(terminology);
    report("- terminology");
    let (structures, _) = ehds_validation::structure::StructureValidator::new(&registry);
    report("+ structures");
    drop(structures);
    report("- structures");
    let validator = Validator::new(&registry);
    report("+ validator");
    drop(registry);
    report("- registry (what a gateway keeps)");
    std::hint::black_box(&validator);
}
