//! A development and test PKI: the federation CA, per country the NCP's
//! server and client certificates, a national CA with one client certificate
//! per national client kind, CRLs, the negative certificates the tests
//! refuse, and the ES256 key pair that signs health-professional assertions.
//!
//! For development and tests only: private keys are written in the clear
//! next to the certificates.
//!
//! Layout (every name fixed; `cc` is the lower-case country code), see
//! [`DevPkiLayout`]:
//!
//! ```text
//! README.md
//! federation/ca.pem ca.key.pem ca.crl.pem ca-stale.crl.pem
//! unrelated/ca.pem ca.key.pem                      (a CA nobody trusts)
//! cc/ncp-server.pem ncp-server.key.pem             (EKU serverAuth)
//! cc/ncp-client.pem ncp-client.key.pem             (EKU clientAuth)
//! cc/national-ca.pem national-ca.key.pem national-ca.crl.pem national-ca-stale.crl.pem
//! cc/national-server.pem national-server.key.pem   (national CA, EKU serverAuth)
//! cc/clients/<kind>.pem <kind>.key.pem             (kind: ehr-system, pharmacy, doctor-system, patient-portal)
//! cc/hp-assertion-es256.key.pem (PKCS#8) hp-assertion-es256.pub.pem (SPKI)
//! cc/negative/<case>.pem <case>.key.pem            (see Negative)
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use ehds_transport::{IdentityFiles, NationalClientKind, TrustFiles};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::DevPkiError;

/// One country of the development PKI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountrySpec {
    /// ISO 3166-1 alpha-2, upper case (`BE`).
    pub code: String,
    /// The NCP id, the CN of its certificates (`ncp-be`).
    pub ncp_id: String,
    /// The NCP's DNS name, in its certificates' SAN (`ncp.be.ehds.test`).
    pub ncp_host: String,
}

impl CountrySpec {
    /// `code` with NCP id `ncp-<cc>` and host `ncp.<cc>.ehds.test`.
    pub fn new(code: &str) -> Self {
        let lower = code.to_ascii_lowercase();
        Self {
            code: code.to_ascii_uppercase(),
            ncp_id: format!("ncp-{lower}"),
            ncp_host: format!("ncp.{lower}.ehds.test"),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPkiSpec {
    /// The countries.
    pub countries: Vec<CountrySpec>,
    /// CA certificates are valid from `now - 1 day` for this long.
    pub ca_validity: Duration,
    /// End-entity certificates are valid from `now - 1 day` for this long.
    pub leaf_validity: Duration,
    /// CRLs: thisUpdate `now - 1 hour`, nextUpdate `now + crl_validity`.
    pub crl_validity: Duration,
    /// The generation time (expired and stale negatives lie before it).
    pub now: OffsetDateTime,
    /// When set, every end-entity certificate of the federation CA names
    /// this OCSP responder in its Authority Information Access extension,
    /// and `federation/ocsp-index.txt` is written for `openssl ocsp -index`.
    pub ocsp_url: Option<String>,
}

impl DevPkiSpec {
    /// For tests: CAs valid 2 years, end entities 1 year, CRLs 30 days.
    pub fn for_tests(countries: &[&str]) -> Self {
        Self {
            countries: countries.iter().map(|c| CountrySpec::new(c)).collect(),
            ca_validity: Duration::days(730),
            leaf_validity: Duration::days(365),
            crl_validity: Duration::days(30),
            now: OffsetDateTime::now_utc(),
            ocsp_url: None,
        }
    }

    /// For the committed `deploy/dev-pki`: CAs and end entities valid 10
    /// years, CRLs 1 year.
    pub fn long_lived(countries: &[&str]) -> Self {
        Self {
            ca_validity: Duration::days(3653),
            leaf_validity: Duration::days(3653),
            crl_validity: Duration::days(365),
            ..Self::for_tests(countries)
        }
    }
}

/// The negative certificates, per country (in `cc/negative/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Negative {
    /// NCP client certificate listed in the federation CRL.
    NcpClientRevoked,
    /// NCP client certificate whose notAfter has passed.
    NcpClientExpired,
    /// NCP client certificate signed by the unrelated CA.
    NcpClientWrongCa,
    /// NCP certificate from the federation CA with EKU serverAuth only,
    /// presented as a client certificate.
    NcpClientWrongEku,
    /// NCP client certificate with basicConstraints CA=true.
    NcpClientCaFlagged,
    /// NCP server certificate listed in the federation CRL.
    NcpServerRevoked,
    /// National EHR-system certificate listed in the national CRL.
    NationalClientRevoked,
    /// National EHR-system certificate whose notAfter has passed.
    NationalClientExpired,
    /// National client certificate (valid, from the national CA) without an
    /// OU: no client kind, so the national listener closes the connection.
    NationalClientNoKind,
}

impl Negative {
    /// Every case.
    pub const ALL: [Self; 9] = [
        Self::NcpClientRevoked,
        Self::NcpClientExpired,
        Self::NcpClientWrongCa,
        Self::NcpClientWrongEku,
        Self::NcpClientCaFlagged,
        Self::NcpServerRevoked,
        Self::NationalClientRevoked,
        Self::NationalClientExpired,
        Self::NationalClientNoKind,
    ];

    /// The file stem.
    pub fn file_stem(self) -> &'static str {
        match self {
            Self::NcpClientRevoked => "ncp-client-revoked",
            Self::NcpClientExpired => "ncp-client-expired",
            Self::NcpClientWrongCa => "ncp-client-wrong-ca",
            Self::NcpClientWrongEku => "ncp-client-wrong-eku",
            Self::NcpClientCaFlagged => "ncp-client-ca-flagged",
            Self::NcpServerRevoked => "ncp-server-revoked",
            Self::NationalClientRevoked => "national-client-revoked",
            Self::NationalClientExpired => "national-client-expired",
            Self::NationalClientNoKind => "national-client-no-kind",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::NcpClientRevoked => "NCP client certificate listed in the federation CRL",
            Self::NcpClientExpired => "NCP client certificate, notAfter in the past",
            Self::NcpClientWrongCa => "NCP client certificate signed by unrelated/ca.pem",
            Self::NcpClientWrongEku => {
                "NCP certificate with EKU serverAuth only (refused as a client certificate)"
            }
            Self::NcpClientCaFlagged => {
                "NCP client certificate with basicConstraints CA=true (refused as end entity)"
            }
            Self::NcpServerRevoked => "NCP server certificate listed in the federation CRL",
            Self::NationalClientRevoked => {
                "national EHR-system certificate listed in the national CRL"
            }
            Self::NationalClientExpired => "national EHR-system certificate, notAfter in the past",
            Self::NationalClientNoKind => {
                "national client certificate without OU (no client kind: refused after the handshake)"
            }
        }
    }
}

/// Which CA: for [`revoke`] and [`DevPkiLayout`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Authority {
    /// The federation CA.
    Federation,
    /// A country's national CA (upper-case code).
    National(String),
}

/// The paths of a generated development PKI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPkiLayout {
    dir: PathBuf,
}

impl DevPkiLayout {
    /// The layout under `dir` (whether or not it was generated yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn country(&self, cc: &str) -> PathBuf {
        self.dir.join(cc.to_ascii_lowercase())
    }

    /// A CA's certificate.
    pub fn ca_cert(&self, ca: &Authority) -> PathBuf {
        match ca {
            Authority::Federation => self.dir.join("federation/ca.pem"),
            Authority::National(cc) => self.country(cc).join("national-ca.pem"),
        }
    }

    /// A CA's private key.
    pub fn ca_key(&self, ca: &Authority) -> PathBuf {
        match ca {
            Authority::Federation => self.dir.join("federation/ca.key.pem"),
            Authority::National(cc) => self.country(cc).join("national-ca.key.pem"),
        }
    }

    /// A CA's current CRL.
    pub fn crl(&self, ca: &Authority) -> PathBuf {
        match ca {
            Authority::Federation => self.dir.join("federation/ca.crl.pem"),
            Authority::National(cc) => self.country(cc).join("national-ca.crl.pem"),
        }
    }

    /// A CA's CRL whose nextUpdate has passed.
    pub fn stale_crl(&self, ca: &Authority) -> PathBuf {
        match ca {
            Authority::Federation => self.dir.join("federation/ca-stale.crl.pem"),
            Authority::National(cc) => self.country(cc).join("national-ca-stale.crl.pem"),
        }
    }

    /// The federation CA's `openssl ca` index (written when
    /// [`DevPkiSpec::ocsp_url`] is set).
    pub fn ocsp_index(&self) -> PathBuf {
        self.dir.join("federation/ocsp-index.txt")
    }

    /// The unrelated CA's private key.
    pub fn unrelated_ca_key(&self) -> PathBuf {
        self.dir.join("unrelated/ca.key.pem")
    }

    /// The unrelated CA's certificate (trusted by nobody).
    pub fn unrelated_ca_cert(&self) -> PathBuf {
        self.dir.join("unrelated/ca.pem")
    }

    /// A CA and its current CRL as a trust store.
    pub fn trust(&self, ca: &Authority) -> TrustFiles {
        TrustFiles {
            ca_certs: vec![self.ca_cert(ca)],
            crls: vec![self.crl(ca)],
        }
    }

    /// A country's NCP server certificate and key.
    pub fn ncp_server(&self, cc: &str) -> IdentityFiles {
        self.pair(self.country(cc), "ncp-server")
    }

    /// A country's NCP client certificate and key.
    pub fn ncp_client(&self, cc: &str) -> IdentityFiles {
        self.pair(self.country(cc), "ncp-client")
    }

    /// A country's national API server certificate and key (national CA).
    pub fn national_server(&self, cc: &str) -> IdentityFiles {
        self.pair(self.country(cc), "national-server")
    }

    /// A country's national client of `kind`.
    pub fn national_client(&self, cc: &str, kind: NationalClientKind) -> IdentityFiles {
        self.pair(self.country(cc).join("clients"), kind.as_str())
    }

    /// A country's negative certificate.
    pub fn negative(&self, cc: &str, case: Negative) -> IdentityFiles {
        self.pair(self.country(cc).join("negative"), case.file_stem())
    }

    /// A country's health-professional assertion signing key (PKCS#8 PEM).
    pub fn hp_assertion_private_key(&self, cc: &str) -> PathBuf {
        self.country(cc).join("hp-assertion-es256.key.pem")
    }

    /// A country's health-professional assertion verification key (SPKI PEM).
    pub fn hp_assertion_public_key(&self, cc: &str) -> PathBuf {
        self.country(cc).join("hp-assertion-es256.pub.pem")
    }

    fn pair(&self, dir: PathBuf, stem: &str) -> IdentityFiles {
        IdentityFiles {
            cert_chain: dir.join(format!("{stem}.pem")),
            private_key: dir.join(format!("{stem}.key.pem")),
        }
    }
}

/// The command that regenerates `deploy/dev-pki`.
pub const REGENERATE_COMMAND: &str =
    "cargo run -p ehds-dev-pki --example dev-pki -- deploy/dev-pki BE LU";

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    revoked: Vec<SerialNumber>,
    /// The responder named in the certificates this CA issues.
    ocsp_url: Option<String>,
    /// `openssl ca` index lines of the certificates it issued.
    index: Vec<String>,
}

struct Writer<'a> {
    layout: DevPkiLayout,
    spec: &'a DevPkiSpec,
    readme: String,
}

/// Writes the development PKI for `spec` into `dir` (created if missing;
/// existing files of the layout are overwritten) and returns its layout.
pub fn generate(dir: &Path, spec: &DevPkiSpec) -> Result<DevPkiLayout, DevPkiError> {
    let mut w = Writer {
        layout: DevPkiLayout::new(dir),
        spec,
        readme: String::new(),
    };
    let now = spec.now;
    let ca_from = now - Duration::days(1);
    let ca_to = now + spec.ca_validity;

    w.section("Federation (trusted by every NCP's federation listener and outbound client)");
    let mut federation = w.ca(
        &w.layout.ca_cert(&Authority::Federation),
        &w.layout.ca_key(&Authority::Federation),
        dn(
            None,
            "EHDS Dev Federation",
            None,
            "EHDS Dev Federation Root CA",
        ),
        ca_from,
        ca_to,
        "federation root CA",
    )?;
    federation.ocsp_url = spec.ocsp_url.clone();
    let mut unrelated = w.ca(
        &w.layout.unrelated_ca_cert(),
        &w.layout.unrelated_ca_key(),
        dn(None, "EHDS Dev Unrelated", None, "Unrelated Dev CA"),
        ca_from,
        ca_to,
        "a CA nobody trusts (issuer of the wrong-CA negatives)",
    )?;

    let mut nationals = Vec::new();
    for country in &spec.countries {
        let cc = country.code.as_str();
        w.section(&format!(
            "{cc}: NCP `{}` ({})",
            country.ncp_id, country.ncp_host
        ));
        let ncp_dn = || {
            dn(
                Some(cc),
                &format!("EHDS Dev NCP {cc}"),
                None,
                &country.ncp_id,
            )
        };
        let sans = vec![
            SanType::DnsName(rcgen_dns(&country.ncp_host)?),
            SanType::DnsName(rcgen_dns("localhost")?),
            SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])),
        ];
        let leaf = |eku: ExtendedKeyUsagePurpose| Leaf {
            dn: ncp_dn(),
            sans: sans.clone(),
            eku: vec![eku],
            is_ca: false,
            expired: false,
        };
        let server = w.layout.ncp_server(cc);
        w.leaf(
            &server,
            leaf(ExtendedKeyUsagePurpose::ServerAuth),
            &mut federation,
            false,
            "NCP server certificate (federation CA, EKU serverAuth, SAN DNS host + localhost, IP 127.0.0.1)",
        )?;
        let client = w.layout.ncp_client(cc);
        w.leaf(
            &client,
            leaf(ExtendedKeyUsagePurpose::ClientAuth),
            &mut federation,
            false,
            "NCP client certificate (federation CA, EKU clientAuth)",
        )?;

        let national_ca = Authority::National(cc.to_owned());
        let mut national = w.ca(
            &w.layout.ca_cert(&national_ca),
            &w.layout.ca_key(&national_ca),
            dn(
                Some(cc),
                &format!("EHDS Dev {cc} National"),
                None,
                &format!("EHDS Dev {cc} National CA"),
            ),
            ca_from,
            ca_to,
            "national CA (trusted by this country's national listener only)",
        )?;
        let national_host = format!("national.{}.ehds.test", cc.to_ascii_lowercase());
        let national_server = w.layout.national_server(cc);
        w.leaf(
            &national_server,
            Leaf {
                dn: dn(
                    Some(cc),
                    &format!("EHDS Dev NCP {cc}"),
                    None,
                    &format!("national-api-{}", cc.to_ascii_lowercase()),
                ),
                sans: vec![
                    SanType::DnsName(rcgen_dns(&national_host)?),
                    SanType::DnsName(rcgen_dns("localhost")?),
                    SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])),
                ],
                eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
                is_ca: false,
                expired: false,
            },
            &mut national,
            false,
            &format!("national API server certificate (national CA, EKU serverAuth, SAN DNS {national_host} + localhost, IP 127.0.0.1)"),
        )?;
        for kind in NationalClientKind::ALL {
            let files = w.layout.national_client(cc, kind);
            w.leaf(
                &files,
                national_leaf(
                    cc,
                    kind,
                    &format!("{}-1.{}", kind.as_str(), cc.to_ascii_lowercase()),
                    false,
                ),
                &mut national,
                false,
                &format!("national client, OU={kind} (national CA, EKU clientAuth)"),
            )?;
        }
        let (private, public) = (
            w.layout.hp_assertion_private_key(cc),
            w.layout.hp_assertion_public_key(cc),
        );
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        w.write(
            &private,
            &key.serialize_pem(),
            "ES256 (P-256) private key, PKCS#8: signs health-professional assertions",
        )?;
        w.write(&public, &key.public_key_pem(), "its public key, SPKI")?;

        for case in Negative::ALL {
            let files = w.layout.negative(cc, case);
            let (leaf, ca, revoke) = match case {
                Negative::NcpClientRevoked => (
                    leaf(ExtendedKeyUsagePurpose::ClientAuth),
                    &mut federation,
                    true,
                ),
                Negative::NcpClientExpired => (
                    Leaf {
                        expired: true,
                        ..leaf(ExtendedKeyUsagePurpose::ClientAuth)
                    },
                    &mut federation,
                    false,
                ),
                Negative::NcpClientWrongCa => (
                    leaf(ExtendedKeyUsagePurpose::ClientAuth),
                    &mut unrelated,
                    false,
                ),
                Negative::NcpClientWrongEku => (
                    leaf(ExtendedKeyUsagePurpose::ServerAuth),
                    &mut federation,
                    false,
                ),
                Negative::NcpClientCaFlagged => (
                    Leaf {
                        is_ca: true,
                        ..leaf(ExtendedKeyUsagePurpose::ClientAuth)
                    },
                    &mut federation,
                    false,
                ),
                Negative::NcpServerRevoked => (
                    leaf(ExtendedKeyUsagePurpose::ServerAuth),
                    &mut federation,
                    true,
                ),
                Negative::NationalClientRevoked => (
                    national_leaf(
                        cc,
                        NationalClientKind::EhrSystem,
                        &format!("ehr-system-revoked.{}", cc.to_ascii_lowercase()),
                        false,
                    ),
                    &mut national,
                    true,
                ),
                Negative::NationalClientNoKind => (
                    Leaf {
                        dn: dn(
                            Some(cc),
                            &format!("EHDS Dev {cc} unknown"),
                            None,
                            &format!("no-kind.{}", cc.to_ascii_lowercase()),
                        ),
                        ..national_leaf(cc, NationalClientKind::EhrSystem, "", false)
                    },
                    &mut national,
                    false,
                ),
                Negative::NationalClientExpired => (
                    national_leaf(
                        cc,
                        NationalClientKind::EhrSystem,
                        &format!("ehr-system-expired.{}", cc.to_ascii_lowercase()),
                        true,
                    ),
                    &mut national,
                    false,
                ),
            };
            w.leaf(&files, leaf, ca, revoke, case.description())?;
        }
        nationals.push((national_ca, national));
    }

    w.section("CRLs");
    w.crls(&Authority::Federation, &federation)?;
    if federation.ocsp_url.is_some() {
        let mut index = federation.index.join("\n");
        index.push('\n');
        w.write(
            &w.layout.ocsp_index(),
            &index,
            "`openssl ca` index of the federation CA's end-entity certificates, for `openssl ocsp -index`",
        )?;
        let attr = w.layout.dir.join("federation/ocsp-index.txt.attr");
        w.write(
            &attr,
            "unique_subject = no\n",
            "its attributes (NCP server and client certificates share a subject)",
        )?;
    }
    for (authority, ca) in &nationals {
        w.crls(authority, ca)?;
    }

    let readme = readme(spec, &w.readme);
    w.write(&w.layout.dir.join("README.md"), &readme, "")?;
    Ok(w.layout)
}

struct Leaf {
    dn: DistinguishedName,
    sans: Vec<SanType>,
    eku: Vec<ExtendedKeyUsagePurpose>,
    is_ca: bool,
    expired: bool,
}

fn national_leaf(cc: &str, kind: NationalClientKind, cn: &str, expired: bool) -> Leaf {
    Leaf {
        dn: dn(
            Some(cc),
            &format!("EHDS Dev {cc} {}", kind.as_str()),
            Some(kind.as_str()),
            cn,
        ),
        sans: Vec::new(),
        eku: vec![ExtendedKeyUsagePurpose::ClientAuth],
        is_ca: false,
        expired,
    }
}

impl Writer<'_> {
    fn section(&mut self, title: &str) {
        let _ = write!(self.readme, "\n### {title}\n\n");
    }

    fn write(&mut self, path: &Path, contents: &str, what: &str) -> Result<(), DevPkiError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| DevPkiError::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(path, contents).map_err(|source| DevPkiError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        if !what.is_empty() {
            let rel = path.strip_prefix(&self.layout.dir).unwrap_or(path);
            let _ = writeln!(self.readme, "- `{}`: {what}", rel.display());
        }
        Ok(())
    }

    fn ca(
        &mut self,
        cert_path: &Path,
        key_path: &Path,
        dn: DistinguishedName,
        from: OffsetDateTime,
        to: OffsetDateTime,
        what: &str,
    ) -> Result<Ca, DevPkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        params.not_before = from;
        params.not_after = to;
        params.serial_number = Some(serial_for(&key));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params.self_signed(&key)?;
        self.write(cert_path, &cert.pem(), what)?;
        self.write(key_path, &key.serialize_pem(), "its private key (PKCS#8)")?;
        Ok(Ca {
            issuer: Issuer::new(params, key),
            revoked: Vec::new(),
            ocsp_url: None,
            index: Vec::new(),
        })
    }

    fn leaf(
        &mut self,
        files: &IdentityFiles,
        leaf: Leaf,
        ca: &mut Ca,
        revoke: bool,
        what: &str,
    ) -> Result<(), DevPkiError> {
        let now = self.spec.now;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = leaf.dn;
        params.subject_alt_names = leaf.sans;
        params.extended_key_usages = leaf.eku;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let serial = serial_for(&key);
        params.serial_number = Some(serial.clone());
        if leaf.is_ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages.push(KeyUsagePurpose::KeyCertSign);
        } else {
            params.is_ca = IsCa::ExplicitNoCa;
        }
        if leaf.expired {
            params.not_before = now - Duration::days(400);
            params.not_after = now - Duration::days(35);
        } else {
            params.not_before = now - Duration::days(1);
            params.not_after = now + self.spec.leaf_validity;
        }
        if let Some(url) = &ca.ocsp_url {
            params.custom_extensions.push(aia_ocsp(url));
        }
        let cert = params.signed_by(&key, &ca.issuer)?;
        let serial_hex: String = serial.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        let subject = X509Certificate::from_der(cert.der())
            .map(|(_, c)| format!("/{}", c.subject().to_string().replace(", ", "/")))
            .unwrap_or_default();
        ca.index.push(if revoke {
            format!(
                "R\t{}\t{},keyCompromise\t{serial_hex}\tunknown\t{subject}",
                index_time(params.not_after),
                index_time(now - Duration::hours(1)),
            )
        } else {
            format!(
                "V\t{}\t\t{serial_hex}\tunknown\t{subject}",
                index_time(params.not_after)
            )
        });
        if revoke {
            ca.revoked.push(serial);
        }
        let what = if revoke {
            format!("{what} (revoked)")
        } else {
            what.to_owned()
        };
        self.write(&files.cert_chain, &cert.pem(), &what)?;
        self.write(
            &files.private_key,
            &key.serialize_pem(),
            "its private key (PKCS#8)",
        )
    }

    fn crls(&mut self, authority: &Authority, ca: &Ca) -> Result<(), DevPkiError> {
        let now = self.spec.now;
        let crl = crl_params(
            &ca.revoked,
            now - Duration::hours(1),
            now + self.spec.crl_validity,
            1,
        )
        .signed_by(&ca.issuer)?;
        let name = match authority {
            Authority::Federation => "federation CA".to_owned(),
            Authority::National(cc) => format!("{cc} national CA"),
        };
        self.write(
            &self.layout.crl(authority),
            &crl.pem()?,
            &format!(
                "CRL of the {name}: {} revoked, nextUpdate {}",
                ca.revoked.len(),
                date(now + self.spec.crl_validity)
            ),
        )?;
        let stale = crl_params(
            &ca.revoked,
            now - Duration::days(60),
            now - Duration::days(30),
            1,
        )
        .signed_by(&ca.issuer)?;
        self.write(
            &self.layout.stale_crl(authority),
            &stale.pem()?,
            &format!(
                "stale CRL of the {name}: nextUpdate {} (in the past: handshakes must fail)",
                date(now - Duration::days(30))
            ),
        )
    }
}

/// Adds `cert` (PEM) to the CRL of `ca` under `layout` and re-signs it
/// (thisUpdate now, nextUpdate `now + crl_validity`, CRL number + 1), for
/// tests of revocation after a reload.
pub fn revoke(
    layout: &DevPkiLayout,
    ca: &Authority,
    cert: &Path,
    crl_validity: Duration,
) -> Result<(), DevPkiError> {
    let issuer = Issuer::from_ca_cert_pem(
        &read_string(&layout.ca_cert(ca))?,
        KeyPair::from_pem(&read_string(&layout.ca_key(ca))?)?,
    )?;
    let crl_path = layout.crl(ca);
    let crl_der = read_crls(&crl_path)?;
    let mut revoked = Vec::new();
    let mut number = 1u64;
    for der in &crl_der {
        let (_, crl) = CertificateRevocationList::from_der(der).map_err(|e| bad(&crl_path, e))?;
        revoked.extend(
            crl.iter_revoked_certificates()
                .map(|r| SerialNumber::from_slice(r.raw_serial())),
        );
        if let Some(n) = crl.crl_number() {
            number = number.max(u64::try_from(n).unwrap_or(number));
        }
    }
    let cert_der = read_certs(cert)?;
    if let Some(der) = cert_der.first() {
        let (_, parsed) = X509Certificate::from_der(der).map_err(|e| bad(cert, e))?;
        revoked.push(SerialNumber::from_slice(parsed.raw_serial()));
    }
    let now = OffsetDateTime::now_utc();
    let crl = crl_params(
        &revoked,
        now - Duration::minutes(1),
        now + crl_validity,
        number + 1,
    )
    .signed_by(&issuer)?;
    std::fs::write(&crl_path, crl.pem()?).map_err(|source| DevPkiError::Write {
        path: crl_path.clone(),
        source,
    })
}

fn crl_params(
    revoked: &[SerialNumber],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    number: u64,
) -> CertificateRevocationListParams {
    CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: serial.clone(),
                revocation_time: this_update,
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
}

/// A positive serial of 16 bytes derived from the public key (RFC 5280
/// §4.1.2.2: positive, at most 20 octets; unique because keys are).
fn serial_for(key: &KeyPair) -> SerialNumber {
    let digest = Sha256::digest(key.public_key_raw());
    let mut bytes: Vec<u8> = digest.iter().take(16).copied().collect();
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x7f) | 0x40;
    }
    SerialNumber::from(bytes)
}

fn dn(country: Option<&str>, org: &str, ou: Option<&str>, cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(country) = country {
        match rcgen::string::PrintableString::try_from(country) {
            Ok(c) => dn.push(DnType::CountryName, DnValue::PrintableString(c)),
            Err(_) => dn.push(DnType::CountryName, country),
        }
    }
    dn.push(DnType::OrganizationName, org);
    if let Some(ou) = ou {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

/// The Authority Information Access extension (RFC 5280 §4.2.2.1) naming
/// one OCSP responder: SEQUENCE { SEQUENCE { id-ad-ocsp, [6] URI } }.
fn aia_ocsp(url: &str) -> rcgen::CustomExtension {
    const ID_AD_OCSP: [u8; 10] = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    let uri = der_tlv(0x86, url.as_bytes());
    let description = der_tlv(0x30, &[ID_AD_OCSP.as_slice(), &uri].concat());
    let aia = der_tlv(0x30, &description);
    rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], aia)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// `YYMMDDHHMMSSZ`, the time format of an `openssl ca` index.
fn index_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        t.year().rem_euclid(100),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn rcgen_dns(name: &str) -> Result<rcgen::string::Ia5String, DevPkiError> {
    Ok(rcgen::string::Ia5String::try_from(name)?)
}

fn read_string(path: &Path) -> Result<String, DevPkiError> {
    std::fs::read_to_string(path).map_err(|source| DevPkiError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every CERTIFICATE block of a PEM file.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, DevPkiError> {
    let bytes = read_bytes(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, e))?;
    if certs.is_empty() {
        return Err(bad(path, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

/// Every X509 CRL block of a PEM file, or the one DER CRL of a binary file.
fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, DevPkiError> {
    let bytes = read_bytes(path)?;
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(path, e))?;
        if crls.is_empty() {
            return Err(bad(path, "no X509 CRL in the file"));
        }
        Ok(crls)
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes)])
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, DevPkiError> {
    std::fs::read(path).map_err(|source| DevPkiError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn bad(path: &Path, e: impl std::fmt::Display) -> DevPkiError {
    DevPkiError::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn date(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

fn readme(spec: &DevPkiSpec, files: &str) -> String {
    let countries: Vec<&str> = spec.countries.iter().map(|c| c.code.as_str()).collect();
    README_TEMPLATE
        .replace("{generated}", &date(spec.now))
        .replace("{countries}", &countries.join(", "))
        .replace("{command}", REGENERATE_COMMAND)
        .replace("{ca}", &spec.ca_validity.whole_days().to_string())
        .replace("{leaf}", &spec.leaf_validity.whole_days().to_string())
        .replace("{crl}", &spec.crl_validity.whole_days().to_string())
        .replace("{files}", files)
}

const README_TEMPLATE: &str = r#"# Development PKI — for development and tests only

**Never use these files in production.** Every private key is here in the clear; anyone
with this repository can impersonate every party below. Tests generate their own PKI in
temporary folders and do not read these files.

Generated by `ehds_dev_pki::generate` on {generated} for {countries}.
Regenerate (new keys, all files replaced):

```sh
{command}
```

With `--ocsp-url URL` the federation CA's end-entity certificates also name that OCSP
responder (Authority Information Access) and `federation/ocsp-index.txt` is written, to
serve with `openssl ocsp -index federation/ocsp-index.txt -port N -rsigner
federation/ca.pem -rkey federation/ca.key.pem -CA federation/ca.pem -ndays 1`.

Validity: CAs {ca} days, end entities {leaf} days, CRL nextUpdate {crl} days after
generation. The expired certificates and the stale CRLs are expired by construction.
All keys are ECDSA P-256; certificates and CRLs are signed with ecdsa-with-SHA256.

## Identity convention

- Federation NCP certificates (federation CA): subject `C=<ISO 3166-1 alpha-2>`, `O`,
  `CN=<NCP id>`; SAN DNS `<NCP host>` and `localhost`, SAN IP `127.0.0.1`. The server
  certificate has EKU serverAuth, the client certificate EKU clientAuth.
- National client certificates (national CA of the country): subject `C`,
  `O=<organisation>`, `OU=<client kind>` (`ehr-system`, `pharmacy`, `doctor-system`,
  `patient-portal`), `CN=<client id>`; EKU clientAuth.
- CAs: basicConstraints CA=true, pathLen 0, keyUsage keyCertSign, cRLSign,
  digitalSignature. CRLs are v2 with a CRL number; revoked entries carry reason
  keyCompromise.

## Files
{files}"#;
