//! Regenerates a development PKI:
//! `cargo run -p ehds-dev-pki --example dev-pki -- OUT [--ocsp-url URL] [COUNTRY...]`
//! (default countries BE LU), with the long validity of the committed
//! `deploy/dev-pki`. `--ocsp-url` puts that responder into the federation
//! certificates and writes `federation/ocsp-index.txt` for `openssl ocsp`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next() else {
        eprintln!("usage: dev-pki OUT [--ocsp-url URL] [COUNTRY...]");
        return ExitCode::FAILURE;
    };
    let mut countries = Vec::new();
    let mut ocsp_url = None;
    while let Some(arg) = args.next() {
        if arg == "--ocsp-url" {
            ocsp_url = args.next();
        } else {
            countries.push(arg);
        }
    }
    if countries.is_empty() {
        countries = vec!["BE".into(), "LU".into()];
    }
    let codes: Vec<&str> = countries.iter().map(String::as_str).collect();
    let mut spec = ehds_dev_pki::DevPkiSpec::long_lived(&codes);
    spec.ocsp_url = ocsp_url;
    match ehds_dev_pki::generate(&PathBuf::from(&out), &spec) {
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
