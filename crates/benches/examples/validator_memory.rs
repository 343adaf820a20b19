//! Where the validator's memory goes, and what loading the validator
//! compiled at build time saves: the process's resident set (and its peak)
//! and the elapsed time after each step; for the live heap by allocation
//! site run it under a heap profiler (`heaptrack`, `valgrind --tool=massif`;
//! the workspace forbids the `unsafe` a counting allocator needs):
//!
//! `cargo run --release -p ehds-benches --example validator_memory [-- MODE]`
//!
//! Without a mode it runs itself twice, one process per way of getting the
//! shipped packages' validator (each process's peak is its own), alternately
//! `--rounds N` times (3 by default), so both are measured in the same run:
//!
//! * `--compile`: the registry (the embedded compiled packages parsed; with
//!   `--from-files`, `profiles/` read and compiled), the terminology alone,
//!   the structures alone (snapshots, FHIRPath model and invariants), the
//!   whole validator, then the registry dropped (what a gateway kept before
//!   the validator was compiled at build time);
//! * `--embedded`: the validator compiled at build time read from the binary
//!   (`ehds-shipped-validator`: what `serve` does without operator-added
//!   packages).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use ehds_profiles::Registry;
use ehds_validation::{ValidationOptions, Validator};

fn status(key: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map_or_else(|| "?".into(), |v| v.trim().to_owned())
}

/// Prints the resident set after `step` and the time since `since`, then
/// pauses a little so that a heap profiler's timeline shows the step as a
/// plateau.
fn report(step: &str, since: Instant) {
    println!(
        "{step:<34} {:>8.1} ms  RSS {:>10} (anonymous {:>10}, file {:>10})   RSS peak {:>10}",
        since.elapsed().as_secs_f64() * 1000.0,
        status("VmRSS:"),
        status("RssAnon:"),
        status("RssFile:"),
        status("VmHWM:"),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
}

fn compile(from_files: bool) {
    report("start", Instant::now());
    let started = Instant::now();
    let registry = if from_files {
        Registry::load_root(&ehds_test_support::repo_root().join("profiles")).unwrap()
    } else {
        Registry::shipped().unwrap()
    };
    report("registry", started);
    let started = Instant::now();
    let terminology = ehds_validation::terminology::Terminology::new(&registry);
    report("+ terminology", started);
    drop(terminology);
    report("- terminology", Instant::now());
    let started = Instant::now();
    let (structures, _) = ehds_validation::structure::StructureValidator::new(&registry);
    report("+ structures", started);
    drop(structures);
    report("- structures", Instant::now());
    let started = Instant::now();
    let validator = Validator::new(&registry);
    report("+ validator", started);
    drop(registry);
    report("- registry (what a gateway kept)", Instant::now());
    std::hint::black_box(&validator);
}

fn embedded() {
    report("start", Instant::now());
    let started = Instant::now();
    let form = ehds_shipped_validator::compiled_form().unwrap();
    report("compiled form decompressed", started);
    let started = Instant::now();
    let validator = Validator::from_compiled(&form, ValidationOptions::default()).unwrap();
    report("+ validator read", started);
    drop(form);
    report("- compiled form (what a gateway keeps)", Instant::now());
    println!(
        "(embedded: {} bytes LZ4, {} bytes read)",
        ehds_shipped_validator::embedded_len(),
        ehds_shipped_validator::compiled_form().unwrap().len()
    );
    std::hint::black_box(&validator);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let from_files = args.iter().any(|a| a == "--from-files");
    if args.iter().any(|a| a == "--compile") {
        return compile(from_files);
    }
    if args.iter().any(|a| a == "--embedded") {
        return embedded();
    }
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(3);
    let me = std::env::current_exe().unwrap();
    for round in 1..=rounds {
        for mode in ["--compile", "--embedded"] {
            println!("== round {round}: {mode}");
            let mut command = std::process::Command::new(&me);
            command.arg(mode);
            if from_files {
                command.arg("--from-files");
            }
            let status = command.status().unwrap();
            assert!(status.success());
        }
    }
}
