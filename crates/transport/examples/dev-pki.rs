//! Regenerates a development PKI: `cargo run -p ehds-transport --example
//! dev-pki -- OUT [COUNTRY...]` (default countries BE LU), with the long
//! validity of the committed `deploy/dev-pki`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next() else {
        eprintln!("usage: dev-pki OUT [COUNTRY...]");
        return ExitCode::FAILURE;
    };
    let mut countries: Vec<String> = args.collect();
    if countries.is_empty() {
        countries = vec!["BE".into(), "LU".into()];
    }
    let codes: Vec<&str> = countries.iter().map(String::as_str).collect();
    let spec = ehds_transport::dev_pki::DevPkiSpec::long_lived(&codes);
    match ehds_transport::dev_pki::generate(&PathBuf::from(&out), &spec) {
        Ok(_) => {
            println!("development PKI written to {out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
