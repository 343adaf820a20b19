//! The two gateways of the run: a fresh development PKI, the BE and LU
//! configurations (written the way `tests/federation.rs` writes them), each
//! gateway served by a child process of this binary so that its CPU time can
//! be read from `/proc/<pid>/stat` exactly as nginx's is.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ehds_access::{
    AssertionIssuer, KeyAlgorithm, Organisation, PatientRef, Professional, PurposeOfUse,
};
use ehds_test_support::{conformance_dir, repo_root};
use ehds_transport::dev_pki::{Authority, DevPkiLayout};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::BenchError;

/// The patient's identifier system at LU (Luxembourg's national register).
pub const LU_SYSTEM: &str = "urn:oid:1.3.182.4.4";
/// The LU patient of the run.
pub const LU_PATIENT: &str = "1998041799999";

/// The IPS example (`Bundle-IPS-examples-Bundle-01.json`) with its patient
/// given the LU identifier, as `tests/federation.rs` pushes it.
pub fn lu_patient_summary() -> Result<Vec<u8>, BenchError> {
    let path = conformance_dir().join("examples/ips/Bundle-IPS-examples-Bundle-01.json");
    let original = std::fs::read_to_string(&path)?;
    let from = r#""system":"urn:oid:2.16.840.1.113883.2.4.6.3","value":"574687583""#;
    let to = format!(r#""system":"{LU_SYSTEM}","value":"{LU_PATIENT}""#);
    if !original.contains(from) {
        return Err(BenchError::Setup(format!(
            "{}: the example's patient identifier moved",
            path.display()
        )));
    }
    Ok(original.replace(from, &to).into_bytes())
}

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> Result<u16, BenchError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn slash(path: &Path) -> String {
    path.display().to_string()
}

/// The shipped directory with the federation URLs of this run.
pub fn write_directory(dir: &Path, be_port: u16, lu_port: u16) -> Result<PathBuf, BenchError> {
    let shipped = std::fs::read_to_string(repo_root().join("deploy/config/directory.toml"))?;
    let text = shipped
        .replace(
            "https://ncp.be.ehds.test:8443/fhir",
            &format!("https://127.0.0.1:{be_port}/fhir"),
        )
        .replace(
            "https://ncp.lu.ehds.test:9443/fhir",
            &format!("https://127.0.0.1:{lu_port}/fhir"),
        );
    let path = dir.join("directory.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The federation trust list: the BE and LU identity providers' keys.
pub fn write_trust_list(dir: &Path, pki: &DevPkiLayout) -> Result<PathBuf, BenchError> {
    let mut text = String::new();
    for cc in ["BE", "LU"] {
        text.push_str(&format!(
            "[[issuer]]\ncountry = \"{cc}\"\nid = \"https://idp.{lc}.ehds.test\"\n\n[[issuer.key]]\nkid = \"{lc}-hp-1\"\nalg = \"ES256\"\npem_file = \"{pem}\"\n\n",
            lc = cc.to_ascii_lowercase(),
            pem = slash(&pki.hp_assertion_public_key(cc)),
        ));
    }
    let path = dir.join("trust-list.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The identity provider of `cc` (its development signing key).
pub fn idp(pki: &DevPkiLayout, cc: &str) -> Result<AssertionIssuer, BenchError> {
    let pem = std::fs::read_to_string(pki.hp_assertion_private_key(cc))?;
    let lc = cc.to_ascii_lowercase();
    Ok(AssertionIssuer::from_pkcs8_pem(
        &format!("https://idp.{lc}.ehds.test"),
        cc,
        &format!("{lc}-hp-1"),
        KeyAlgorithm::Es256,
        &pem,
    )?)
}

/// The ports of one gateway.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// National API.
    pub national: u16,
    /// Federation listener.
    pub federation: u16,
}

/// Files shared by both gateways' configurations.
pub struct Shared<'a> {
    /// The run's folder (stores are created in it).
    pub dir: &'a Path,
    /// The development PKI.
    pub pki: &'a DevPkiLayout,
    /// The NCP directory.
    pub directory: &'a Path,
    /// The assertion trust list.
    pub trust_list: &'a Path,
}

/// The configuration of the gateway of `cc`, as `tests/federation.rs`
/// writes it (SQLite store in the run's folder, the shipped policy).
pub fn config_text(cc: &str, shared: &Shared<'_>, ports: Ports) -> String {
    let pki = shared.pki;
    let lc = cc.to_ascii_lowercase();
    let national = Authority::National(cc.to_owned());
    let server = pki.national_server(cc);
    let ncp_server = pki.ncp_server(cc);
    let ncp_client = pki.ncp_client(cc);
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
url = "sqlite://{store}"

[validation]
packages_dir = "{profiles}"

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
connect_timeout_secs = 5
request_timeout_secs = 30

[assertions]
trust_list = "{trust_list}"
policy = "{policy}"
"#,
        national_port = ports.national,
        federation_port = ports.federation,
        server_cert = slash(&server.cert_chain),
        server_key = slash(&server.private_key),
        national_ca = slash(&pki.ca_cert(&national)),
        national_crl = slash(&pki.crl(&national)),
        store = slash(&shared.dir.join(format!("{lc}.db"))),
        profiles = slash(&repo_root().join("profiles")),
        ncp_server_cert = slash(&ncp_server.cert_chain),
        ncp_server_key = slash(&ncp_server.private_key),
        ncp_client_cert = slash(&ncp_client.cert_chain),
        ncp_client_key = slash(&ncp_client.private_key),
        federation_ca = slash(&pki.ca_cert(&Authority::Federation)),
        federation_crl = slash(&pki.crl(&Authority::Federation)),
        directory = slash(shared.directory),
        trust_list = slash(shared.trust_list),
        policy = slash(&repo_root().join("deploy/config/access-policy.toml")),
    )
}

/// A gateway served by a child process of this binary (`serve <config>`).
/// It stops when its standard input closes (when this is dropped, or the
/// parent dies) and is killed on drop if it has not.
pub struct GatewayProcess {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// Its national API.
    pub national: SocketAddr,
}

impl GatewayProcess {
    /// Starts `serve <config>` and waits until it says it is listening.
    pub async fn start(config: &Path, national: u16) -> Result<Self, BenchError> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("serve")
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::Setup("the gateway process exited at once".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Setup("no stdout of the gateway process".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .map_err(|_| BenchError::Setup("the gateway did not start within 120 s".into()))??;
        if line.as_deref() != Some(crate::READY) {
            return Err(BenchError::Setup(format!(
                "the gateway process said {line:?} instead of {:?}",
                crate::READY
            )));
        }
        Ok(Self {
            child,
            pid,
            national: SocketAddr::from(([127, 0, 0, 1], national)),
        })
    }

    /// `https://<national API><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.national)
    }

    /// Closes its standard input (graceful stop) and waits for it.
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The BE doctor of the journey.
pub fn doctor() -> Professional {
    Professional {
        id: "BE-HP-0042".into(),
        name: "Dr Anne Peeters".into(),
        role: "2211".into(),
        organisation: Organisation {
            id: "BE-ORG-17".into(),
            name: "UZ Leuven".into(),
        },
        point_of_care: "Emergency department".into(),
    }
}

/// `count` fresh assertions of the BE doctor for the LU patient, audience
/// LU's NCP, signed on every core before the timing starts (signing is the
/// doctor's identity provider's cost, not the relay's). Each is used once:
/// both NCPs' replay ledgers refuse a second use.
pub fn assertions(idp: &AssertionIssuer, count: usize) -> Result<Vec<String>, BenchError> {
    let patient = PatientRef::new(LU_SYSTEM, LU_PATIENT);
    let professional = doctor();
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    let per_thread = count.div_ceil(threads);
    let now = time::OffsetDateTime::now_utc();
    let chunks: Vec<Result<Vec<String>, BenchError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let n = per_thread.min(count.saturating_sub(t * per_thread));
                let patient = &patient;
                let professional = &professional;
                scope.spawn(move || {
                    (0..n)
                        .map(|_| {
                            idp.issue(
                                professional,
                                "urn:ehds:ncp:LU",
                                patient,
                                PurposeOfUse::Treatment,
                                now,
                                time::Duration::minutes(10),
                            )
                            .map_err(BenchError::from)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(BenchError::Setup("a signing thread failed".into())))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(count);
    for chunk in chunks {
        all.extend(chunk?);
    }
    Ok(all)
}
