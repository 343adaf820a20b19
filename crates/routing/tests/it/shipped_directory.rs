//! The shipped directory, `deploy/config/directory.toml`: it loads, names BE
//! and LU with the development PKI's identities, and routes each country's
//! identifiers to its NCP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ehds_routing::{IdentifierRefusal, NcpDirectory};
use ehds_test_support::repo_root;

fn shipped() -> NcpDirectory {
    NcpDirectory::load(&repo_root().join("deploy/config/directory.toml")).unwrap()
}

const BE_SSIN: &str = "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin";
const BE_SSIN_OID: &str = "urn:oid:2.16.840.1.113883.3.6777.5.1";
const LU_MATRICULE: &str = "urn:oid:1.3.182.4.4";

#[test]
fn lists_be_and_lu_with_the_dev_pki_identities() {
    let d = shipped();
    let codes: Vec<&str> = d.countries().map(|c| c.code().as_str()).collect();
    assert_eq!(codes, ["BE", "LU"]);
    for (code, id, url) in [
        ("BE", "ncp-be", "https://ncp.be.ehds.test:8443/fhir"),
        ("LU", "ncp-lu", "https://ncp.lu.ehds.test:9443/fhir"),
    ] {
        let ncp = d.ncp_for_country(code).unwrap();
        assert_eq!(ncp.id(), id);
        assert_eq!(ncp.federation_base_url(), url);
        // dev-pki convention: subject C=<country>, CN=<NCP id>.
        assert_eq!(ncp.certificate().country.as_str(), code);
        assert_eq!(ncp.certificate().common_name, id);
        assert_eq!(d.peer_by_identity(code, id).unwrap().id(), id);
    }
}

#[test]
fn routes_each_countrys_identifiers() {
    let d = shipped();
    let cases = [
        (BE_SSIN, "12345678901", Ok("ncp-be")),
        (BE_SSIN_OID, "12345678901", Ok("ncp-be")),
        (LU_MATRICULE, "1998041799999", Ok("ncp-lu")),
        (BE_SSIN, "1998041799999", Err("Malformed")),
        (LU_MATRICULE, "12345678901", Err("Malformed")),
        (BE_SSIN, "", Err("Empty")),
        (
            "urn:oid:2.16.840.1.113883.2.4.6.3",
            "123456789",
            Err("UnknownSystem"),
        ),
    ];
    for (system, value, expected) in cases {
        let got = d
            .check_patient_identifier(system, value)
            .map(|r| r.ncp.id())
            .map_err(|e| match e {
                IdentifierRefusal::UnknownSystem => "UnknownSystem",
                IdentifierRefusal::Empty => "Empty",
                IdentifierRefusal::TooLong { .. } => "TooLong",
                IdentifierRefusal::Malformed { .. } => "Malformed",
            });
        assert_eq!(got, expected, "{system} {value}");
    }
    let refusal = d
        .check_patient_identifier(LU_MATRICULE, "12345678901")
        .unwrap_err();
    assert!(
        refusal.message().contains("13 digits"),
        "{}",
        refusal.message()
    );
}
