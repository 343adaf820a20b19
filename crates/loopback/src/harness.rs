//! Two countries' gateways, Belgium's and Luxembourg's, on 127.0.0.1 over a
//! development PKI ([`ehds_dev_pki`]): the files both read (the
//! shipped NCP directory with this run's federation URLs, a trust list of
//! both countries' identity providers) and each gateway's configuration,
//! every setting a run varies (store, federation CRL, relay timeouts, extra
//! sections) open to change. The relay bench and the end-to-end tests start
//! from it, so the two countries are set up one way; the `demo` takes the
//! journey's patient, summary, doctor and identity provider from it too.
//!
//! Development and tests only: it configures the development PKI's
//! certificates and keys, and signs with its identity providers' keys.

use std::path::{Path, PathBuf};

use ehds_access::{AssertionIssuer, KeyAlgorithm, Login, Organisation, Professional};
use ehds_dev_pki::{Authority, DevPkiLayout, DevPkiSpec};

use crate::LoopbackError;

/// Luxembourg's national register (`deploy/config/directory.toml`).
pub const LU_SYSTEM: &str = "urn:oid:1.3.182.4.4";
/// The Luxembourg patient of the journey (13 digits, as LU's directory
/// entry requires).
pub const LU_PATIENT: &str = "1998041799999";

/// The example summary: the IPS IG's first example.
const IPS_EXAMPLE: &str = "conformance/examples/ips/Bundle-IPS-examples-Bundle-01.json";
/// Its patient's identifier, replaced by the journey's.
const IPS_EXAMPLE_PATIENT: &str =
    r#""system":"urn:oid:2.16.840.1.113883.2.4.6.3","value":"574687583""#;

/// The example laboratory report: HL7 Europe Laboratory 0.1.0's simple
/// chemistry result report (Bundle-eu-lab).
const LAB_EXAMPLE: &str =
    "conformance/examples/eu-lab-0.1.0/Bundle-SimpleChemistryResultReport.json";
/// Its patient's first identifier, replaced by the journey's.
const LAB_EXAMPLE_PATIENT: &str =
    r#""system":"https://ncez.mzcr.cz/standards/fhir/sid/rcis","value":"740512852""#;

/// The federation URLs in the shipped directory, replaced by this run's.
const SHIPPED_BE_URL: &str = "https://ncp.be.ehds.test:8443/fhir";
const SHIPPED_LU_URL: &str = "https://ncp.lu.ehds.test:9443/fhir";

/// The gateway's relay timeouts when `[federation]` leaves them out
/// (`ehds_gateway::config`), which a [`GatewayToml`] starts from.
const GATEWAY_CONNECT_TIMEOUT_SECS: u64 = 5;
const GATEWAY_REQUEST_TIMEOUT_SECS: u64 = 30;

fn setup_error(what: impl std::fmt::Display) -> LoopbackError {
    LoopbackError::Setup(what.to_string())
}

/// Where [`free_port`] looks: below Linux's default ephemeral range
/// (32768–60999), from which every outbound connection takes its local
/// port. A port found free inside that range (port 0) could be taken by
/// another test's client connection before the gateway binds it (seen in
/// CI: `AddrInUse` on a port a concurrent connection had just taken).
const FREE_PORTS: std::ops::Range<u32> = 20_000..32_000;

/// A free port on 127.0.0.1 (bound, read, released), outside the ephemeral
/// range; each call of a process tries the next port of a sequence that
/// starts at a place of its own (by process id), so concurrent tests and
/// processes do not pick the same one.
pub fn free_port() -> Result<u16, LoopbackError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = FREE_PORTS.end - FREE_PORTS.start;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FREE_PORTS.start + start.wrapping_add(n) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(setup_error)
}

/// The two listeners of one gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Its national API.
    pub national: u16,
    /// Its federation listener.
    pub federation: u16,
}

impl Ports {
    /// Two free ports.
    pub fn free() -> Result<Self, LoopbackError> {
        Ok(Self {
            national: free_port()?,
            federation: free_port()?,
        })
    }
}

/// The IPS example summary with its patient given the national identifier
/// `system|value` (read from `repo`, the repository root).
pub fn patient_summary(repo: &Path, system: &str, value: &str) -> Result<Vec<u8>, LoopbackError> {
    let path = repo.join(IPS_EXAMPLE);
    let original = std::fs::read_to_string(&path)
        .map_err(|e| setup_error(format!("{}: {e}", path.display())))?;
    if !original.contains(IPS_EXAMPLE_PATIENT) {
        return Err(setup_error(format!(
            "{}: the example's patient identifier moved",
            path.display()
        )));
    }
    let identifier = format!(r#""system":"{system}","value":"{value}""#);
    Ok(original
        .replace(IPS_EXAMPLE_PATIENT, &identifier)
        .into_bytes())
}

/// The example laboratory report with its patient given the national
/// identifier `system|value` (read from `repo`, the repository root).
pub fn laboratory_report(repo: &Path, system: &str, value: &str) -> Result<Vec<u8>, LoopbackError> {
    let path = repo.join(LAB_EXAMPLE);
    let original = std::fs::read_to_string(&path)
        .map_err(|e| setup_error(format!("{}: {e}", path.display())))?;
    if !original.contains(LAB_EXAMPLE_PATIENT) {
        return Err(setup_error(format!(
            "{}: the example's patient identifier moved",
            path.display()
        )));
    }
    let identifier = format!(r#""system":"{system}","value":"{value}""#);
    Ok(original
        .replace(LAB_EXAMPLE_PATIENT, &identifier)
        .into_bytes())
}

/// The Belgian doctor of the journey (ISCO-08 2211, generalist medical
/// practitioner), treating the visitor from Luxembourg.
pub fn be_doctor() -> Login {
    Login {
        professional: Professional {
            id: "BE-HP-0042".into(),
            name: "Dr Anne Peeters".into(),
            role: "2211".into(),
            organisation: Organisation {
                id: "BE-ORG-17".into(),
                name: "UZ Leuven".into(),
            },
        },
        point_of_care: "Emergency department".into(),
    }
}

/// The development identity provider of health professionals of `cc`
/// (issuer `https://idp.<cc>.ehds.test`, key id `<cc>-hp-1`, ES256), as
/// the trust list [`Loopback`] writes names it.
pub fn identity_provider(pki: &DevPkiLayout, cc: &str) -> Result<AssertionIssuer, LoopbackError> {
    let key = pki.hp_assertion_private_key(cc);
    let pem = std::fs::read_to_string(&key)
        .map_err(|e| setup_error(format!("{}: {e}", key.display())))?;
    let lc = cc.to_ascii_lowercase();
    AssertionIssuer::from_pkcs8_pem(
        &format!("https://idp.{lc}.ehds.test"),
        cc,
        &format!("{lc}-hp-1"),
        KeyAlgorithm::Es256,
        &pem,
    )
    .map_err(setup_error)
}

/// What both gateways of a run share, written into the run's folder.
#[derive(Debug, Clone)]
pub struct Loopback {
    /// The run's folder: the directory, the trust list and the SQLite
    /// stores (`<cc>.db`) are in it.
    pub dir: PathBuf,
    /// The development PKI.
    pub pki: DevPkiLayout,
    /// Belgium's ports, as the directory names them.
    pub be: Ports,
    /// Luxembourg's.
    pub lu: Ports,
    /// The NCP directory: the shipped one with this run's federation URLs.
    pub directory: PathBuf,
    /// The assertion trust list: both countries' identity providers.
    pub trust_list: PathBuf,
    /// The repository root (the FHIR packages, the shipped policy).
    repo: PathBuf,
}

impl Loopback {
    /// A fresh development PKI of `spec` in `<dir>/pki`, free ports for
    /// both gateways, and the files they share.
    pub fn generate(repo: &Path, dir: &Path, spec: &DevPkiSpec) -> Result<Self, LoopbackError> {
        let pki = ehds_dev_pki::generate(&dir.join("pki"), spec)?;
        Self::with_pki(repo, dir, pki, Ports::free()?, Ports::free()?)
    }

    /// The files both gateways share, for `pki` and these ports, written
    /// into `dir`: the shipped directory (`<repo>/deploy/config/directory.toml`)
    /// with BE's and LU's federation URLs on 127.0.0.1, and the trust list
    /// of both countries' development identity providers.
    pub fn with_pki(
        repo: &Path,
        dir: &Path,
        pki: DevPkiLayout,
        be: Ports,
        lu: Ports,
    ) -> Result<Self, LoopbackError> {
        let shipped_path = repo.join("deploy/config/directory.toml");
        let shipped = std::fs::read_to_string(&shipped_path)
            .map_err(|e| setup_error(format!("{}: {e}", shipped_path.display())))?;
        let directory = dir.join("directory.toml");
        let text = shipped
            .replace(
                SHIPPED_BE_URL,
                &format!("https://127.0.0.1:{}/fhir", be.federation),
            )
            .replace(
                SHIPPED_LU_URL,
                &format!("https://127.0.0.1:{}/fhir", lu.federation),
            );
        std::fs::write(&directory, text).map_err(setup_error)?;
        let mut trust = String::new();
        for cc in ["BE", "LU"] {
            trust.push_str(&format!(
                "[[issuer]]\ncountry = \"{cc}\"\nid = \"https://idp.{lc}.ehds.test\"\n\n\
                 [[issuer.key]]\nkid = \"{lc}-hp-1\"\nalg = \"ES256\"\npem_file = \"{pem}\"\n\n",
                lc = cc.to_ascii_lowercase(),
                pem = pki.hp_assertion_public_key(cc).display(),
            ));
        }
        let trust_list = dir.join("trust-list.toml");
        std::fs::write(&trust_list, trust).map_err(setup_error)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            pki,
            be,
            lu,
            directory,
            trust_list,
            repo: repo.to_path_buf(),
        })
    }

    /// The configuration of `cc`'s gateway listening on `ports`, with the
    /// defaults: a SQLite store `<dir>/<cc>.db`, the federation CA's CRL,
    /// the gateway's own relay timeouts, no extra section.
    pub fn gateway(&self, cc: &str, ports: Ports) -> GatewayToml<'_> {
        GatewayToml {
            loopback: self,
            country: cc.to_owned(),
            ports,
            store_url: format!(
                "sqlite://{}",
                self.dir
                    .join(format!("{}.db", cc.to_ascii_lowercase()))
                    .display()
            ),
            store_schema: None,
            federation_crl: self.pki.crl(&Authority::Federation),
            connect_timeout_secs: GATEWAY_CONNECT_TIMEOUT_SECS,
            request_timeout_secs: GATEWAY_REQUEST_TIMEOUT_SECS,
            sections: String::new(),
        }
    }

    /// `cc`'s development identity provider ([`identity_provider`]).
    pub fn identity_provider(&self, cc: &str) -> Result<AssertionIssuer, LoopbackError> {
        identity_provider(&self.pki, cc)
    }
}

/// One gateway's configuration file ([`ehds_gateway::GatewayConfig`]) in a
/// [`Loopback`] run; [`GatewayToml::text`] writes it.
#[derive(Debug, Clone)]
pub struct GatewayToml<'a> {
    loopback: &'a Loopback,
    /// `[ncp] country`: whose certificates and keys it uses.
    pub country: String,
    /// Its listeners.
    pub ports: Ports,
    /// `[store] url`.
    pub store_url: String,
    /// `[store] schema` (PostgreSQL only).
    pub store_schema: Option<String>,
    /// `[federation] crls`: the one CRL of the federation CA it checks
    /// peers against.
    pub federation_crl: PathBuf,
    /// `[federation] connect_timeout_secs` of its relay.
    pub connect_timeout_secs: u64,
    /// `[federation] request_timeout_secs` of its relay.
    pub request_timeout_secs: u64,
    /// TOML appended after the generated sections (e.g. `[patient_rights]`
    /// or `[patient_page]`).
    pub sections: String,
}

impl<'a> GatewayToml<'a> {
    /// Puts the shipped service `service` (`deploy/config/services.toml`:
    /// `patient-summary`, `eprescription`, …) of this country on a national
    /// FHIR server (issue 19: `source = "fhir"`), at `base_url` with the
    /// further `[service.national_server]` lines `settings`: the service
    /// as shipped otherwise, added to [`GatewayToml::sections`]. The other
    /// country, and this one's other services, stay on their stores.
    pub fn answer_from_national_server(
        &mut self,
        service: &str,
        base_url: &str,
        settings: &str,
    ) -> Result<(), LoopbackError> {
        self.sections
            .push_str(&national_service_toml(service, base_url, settings)?);
        Ok(())
    }

    /// The run's shared files (its PKI, for a section that names
    /// certificates).
    pub fn loopback(&self) -> &'a Loopback {
        self.loopback
    }

    /// The configuration as TOML text.
    pub fn text(&self) -> String {
        let run = self.loopback;
        let pki = &run.pki;
        let cc = self.country.as_str();
        let lc = cc.to_ascii_lowercase();
        let national = Authority::National(cc.to_owned());
        let server = pki.national_server(cc);
        let ncp_server = pki.ncp_server(cc);
        let ncp_client = pki.ncp_client(cc);
        let schema = self
            .store_schema
            .as_ref()
            .map(|schema| format!("schema = \"{schema}\"\n"))
            .unwrap_or_default();
        format!(
            r#"
[ncp]
country = "{cc}"

[server]
listen = "127.0.0.1:{national_port}"

[server.tls]
certificate = "{server_cert}"
private_key = "{server_key}"
client_cas = ["{national_ca}"]
client_crls = ["{national_crl}"]

[store]
url = "{store_url}"
{schema}
[validation]

[federation]
listen = "127.0.0.1:{federation_port}"
ncp_id = "ncp-{lc}"
certificate = "{ncp_server_cert}"
private_key = "{ncp_server_key}"
client_certificate = "{ncp_client_cert}"
client_private_key = "{ncp_client_key}"
cas = ["{federation_ca}"]
crls = ["{federation_crl}"]
directory = "{directory}"
connect_timeout_secs = {connect}
request_timeout_secs = {request}

[assertions]
trust_list = "{trust_list}"
policy = "{policy}"
{sections}
"#,
            national_port = self.ports.national,
            federation_port = self.ports.federation,
            server_cert = server.cert_chain.display(),
            server_key = server.private_key.display(),
            national_ca = pki.ca_cert(&national).display(),
            national_crl = pki.crl(&national).display(),
            store_url = self.store_url,
            ncp_server_cert = ncp_server.cert_chain.display(),
            ncp_server_key = ncp_server.private_key.display(),
            ncp_client_cert = ncp_client.cert_chain.display(),
            ncp_client_key = ncp_client.private_key.display(),
            federation_ca = pki.ca_cert(&Authority::Federation).display(),
            federation_crl = self.federation_crl.display(),
            directory = run.directory.display(),
            connect = self.connect_timeout_secs,
            request = self.request_timeout_secs,
            trust_list = run.trust_list.display(),
            policy = run.repo.join("deploy/config/access-policy.toml").display(),
            sections = self.sections,
        )
    }
}

/// `[[services.service]]` of `service` with `source = "fhir"` and its
/// `[services.service.national_server]`.
/// The shipped service `service` (`deploy/config/services.toml`) as a
/// `[[services.service]]` section answered by the national FHIR server at
/// `base_url` (`source = "fhir"`), with the further
/// `[service.national_server]` lines `settings`.
pub(crate) fn national_service_toml(
    service: &str,
    base_url: &str,
    settings: &str,
) -> Result<String, LoopbackError> {
    let registry = ehds_gateway::ServiceRegistry::shipped().map_err(LoopbackError::Setup)?;
    let shipped = registry
        .services()
        .iter()
        .find(|s| s.name == service)
        .ok_or_else(|| LoopbackError::Setup(format!("no shipped service {service}")))?;
    Ok(national_service_section(shipped, base_url, settings))
}

fn national_service_section(
    service: &ehds_gateway::Service,
    base_url: &str,
    settings: &str,
) -> String {
    let quoted = |text: &str| serde_json::Value::String(text.to_owned()).to_string();
    let kind = match service.kind {
        ehds_gateway::ServiceKind::Document => "document",
        ehds_gateway::ServiceKind::Eprescription => "eprescription",
    };
    let profiles: Vec<String> = service
        .document_profiles
        .iter()
        .map(|p| quoted(p))
        .collect();
    let mut section = format!(
        "\n[[services.service]]\nname = {}\ntitle = {}\nkind = \"{kind}\"\npermission = \"{}\"\n\
         document_profiles = [{}]\npdf_original = {}\nsource = \"fhir\"\n\
         [services.service.national_server]\nbase_url = {}\n{settings}\n",
        quoted(&service.name),
        quoted(&service.title),
        service.permission.as_str(),
        profiles.join(", "),
        service.pdf_original,
        quoted(base_url),
    );
    for category in &service.categories {
        section.push_str(&format!(
            "[[services.service.category]]\nsystem = {}\ncode = {}\ndisplay = {}\n",
            quoted(&category.system),
            quoted(&category.code),
            quoted(&category.display)
        ));
    }
    for document_type in &service.document_types {
        section.push_str(&format!(
            "[[services.service.document_type]]\nsystem = {}\ncode = {}\ndisplay = {}\n",
            quoted(&document_type.system),
            quoted(&document_type.code),
            quoted(&document_type.display)
        ));
    }
    section
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use ehds_test_support::{ScratchDir, repo_root};

    /// A run with the test PKI in a scratch folder (removed when dropped).
    fn test_run(label: &str) -> (ScratchDir, Loopback) {
        let dir = ScratchDir::new(label);
        let spec = DevPkiSpec::for_tests(&["BE", "LU"]);
        let run = Loopback::generate(&repo_root(), dir.path(), &spec).unwrap();
        (dir, run)
    }

    #[test]
    fn each_country_gets_a_configuration_the_gateway_accepts_with_the_runs_files() {
        let (_dir, run) = test_run("loopback");
        assert_ne!(run.be, run.lu);
        let directory = std::fs::read_to_string(&run.directory).unwrap();
        for ports in [run.be, run.lu] {
            assert!(directory.contains(&format!("https://127.0.0.1:{}/fhir", ports.federation)));
        }
        assert!(!directory.contains(SHIPPED_BE_URL) && !directory.contains(SHIPPED_LU_URL));
        for (cc, ports) in [("BE", run.be), ("LU", run.lu)] {
            let config = ehds_gateway::GatewayConfig::from_toml(&run.gateway(cc, ports).text())
                .unwrap()
                .check()
                .unwrap();
            assert_eq!(config.listen.port(), ports.national);
            assert_eq!(config.federation_listen.unwrap().port(), ports.federation);
            let federation = config.raw.federation.as_ref().unwrap();
            assert_eq!(federation.request_timeout_secs, 30, "the gateway's default");
            run.identity_provider(cc).unwrap();
        }
    }

    #[test]
    fn a_run_varies_the_store_crl_timeouts_and_sections() {
        let (_dir, run) = test_run("loopback-variants");
        let mut lu = run.gateway("LU", run.lu);
        lu.store_url = "postgres://db.example/test".into();
        lu.store_schema = Some("replicas".into());
        lu.federation_crl = run.pki.stale_crl(&Authority::Federation);
        lu.connect_timeout_secs = 2;
        lu.request_timeout_secs = 3;
        lu.sections =
            "[patient_rights]\nemergency_lifts_restrictions = [\"patient-summary\"]\n".into();
        let raw = ehds_gateway::GatewayConfig::from_toml(&lu.text()).unwrap();
        let text = lu.text();
        assert!(text.contains("url = \"postgres://db.example/test\"\nschema = \"replicas\"\n"));
        assert!(
            text.contains(
                &run.pki
                    .stale_crl(&Authority::Federation)
                    .display()
                    .to_string()
            )
        );
        let federation = raw.federation.as_ref().unwrap();
        assert_eq!(
            (
                federation.connect_timeout_secs,
                federation.request_timeout_secs
            ),
            (2, 3)
        );
        assert!(text.contains("[patient_rights]"));
    }

    #[test]
    fn a_shipped_service_is_put_on_a_national_server_as_shipped() {
        let (_dir, run) = test_run("loopback-national");
        let mut be = run.gateway("BE", run.be);
        for service in ["patient-summary", "eprescription", "laboratory-report"] {
            be.answer_from_national_server(service, "http://127.0.0.1:8090/fhir", "max_pages = 3")
                .unwrap();
        }
        assert!(
            be.answer_from_national_server("nothing", "http://127.0.0.1:1/", "")
                .is_err()
        );
        let checked = ehds_gateway::GatewayConfig::from_toml(&be.text())
            .unwrap()
            .check()
            .unwrap();
        let shipped = ehds_gateway::ServiceRegistry::shipped().unwrap();
        for service in checked.services.services() {
            let original = shipped
                .services()
                .iter()
                .find(|s| s.name == service.name)
                .unwrap();
            let national = ["patient-summary", "eprescription", "laboratory-report"]
                .contains(&service.name.as_str());
            if national {
                assert_eq!(service.source, ehds_gateway::Source::Fhir);
                let server = service.national_server.as_ref().unwrap();
                assert_eq!(server.max_pages, 3);
                let as_shipped = ehds_gateway::Service {
                    source: original.source,
                    national_server: None,
                    ..service.clone()
                };
                assert_eq!(&as_shipped, original, "otherwise as shipped");
            } else {
                assert_eq!(service, original);
            }
        }
    }

    #[test]
    fn a_configurations_default_relay_timeouts_are_the_gateways() {
        let (_dir, run) = test_run("loopback-defaults");
        let written = run.gateway("LU", run.lu).text();
        let left_out: String = written
            .lines()
            .filter(|line| !line.contains("_timeout_secs"))
            .map(|line| format!("{line}\n"))
            .collect();
        let raw = ehds_gateway::GatewayConfig::from_toml(&left_out).unwrap();
        let federation = raw.federation.as_ref().unwrap();
        assert_eq!(
            (
                federation.connect_timeout_secs,
                federation.request_timeout_secs
            ),
            (GATEWAY_CONNECT_TIMEOUT_SECS, GATEWAY_REQUEST_TIMEOUT_SECS)
        );
    }

    #[test]
    fn the_journeys_summary_names_the_given_patient() {
        let summary = patient_summary(&repo_root(), LU_SYSTEM, LU_PATIENT).unwrap();
        let text = String::from_utf8(summary).unwrap();
        assert!(text.contains(&format!(r#""system":"{LU_SYSTEM}","value":"{LU_PATIENT}""#)));
        assert!(!text.contains(IPS_EXAMPLE_PATIENT));
        assert!(patient_summary(Path::new("/nonexistent"), LU_SYSTEM, LU_PATIENT).is_err());
    }
}
