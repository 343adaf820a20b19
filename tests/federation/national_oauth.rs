//! The national connector authenticating with OAuth 2.0 client credentials
//! and a private-key JWT (issue 19; SMART App Launch 2.x Backend Services):
//! Luxembourg's gateway asks a real authorization server this project did
//! not write — panva's `oidc-provider` (npm, OpenID Certified), configured
//! by `national_oauth.mjs` with the gateway's public keys and run on
//! loopback — for an access token, signing its client assertion with its
//! private key (ES384 or RS384), and calls the national FHIR server with
//! it. The national server is the Helios FHIR Server with its
//! authentication on: it verifies each access token's signature against
//! the authorization server's JWK Set, its issuer and its audience, and
//! refuses requests without one (401). A key the authorization server does
//! not know gets no token: the national server is not asked, and the
//! caller gets the national failure (502), audited. With hfs, the gateway
//! finds the token endpoint in hfs's `.well-known/smart-configuration`.
//!
//! Without `EHDS_TEST_OIDC_PROVIDER` (and `node`), or for the hfs journey
//! without `EHDS_TEST_HFS_BIN`, the tests skip (under `CI` they fail).

use super::national_source::{
    FakeNational, Hfs, Misbehaviour, PlainHttp, at_lu_as_be_ncp, national_service, patient_of,
    reference_to, summary_for,
};
use super::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use ehds_test_support::ScratchDir;

/// The scopes the authorization server grants for the national FHIR
/// server: read and search for the gateway, everything for the seeder.
const SCOPES: &str = "system/*.rs system/*.cruds";

/// The client the test seeds hfs with (`client_secret_basic`).
const SEEDER: (&str, &str) = ("seeder", "seeder-secret-0123456789abcdef");

/// A key pair made by `openssl genpkey`: the private key as PKCS#8 PEM (the
/// gateway's), the public key as PEM (registered at the authorization
/// server).
struct KeyPair {
    private: PathBuf,
    public: PathBuf,
}

fn key_pair(dir: &Path, name: &str, algorithm: &[&str]) -> KeyPair {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let made = Command::new("openssl")
        .arg("genpkey")
        .args(algorithm)
        .arg("-out")
        .arg(&private)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let made = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap();
    assert!(made.success());
    KeyPair { private, public }
}

const P384: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];
const RSA: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];

/// A client registered at the authorization server: id, public key, `kid`,
/// algorithm.
struct Registered<'a> {
    client_id: &'a str,
    key: &'a KeyPair,
    kid: &'a str,
    alg: &'a str,
}

/// oidc-provider on a free loopback port, granting tokens for `resource`;
/// killed when dropped.
struct AuthorizationServer {
    child: Child,
    issuer: String,
    _dir: ScratchDir,
}

impl AuthorizationServer {
    async fn start(resource: &str, clients: &[Registered<'_>]) -> Option<Self> {
        let provider = ehds_test_support::oidc_provider()?;
        let dir = ScratchDir::new("oidc-provider");
        let port = loopback::free_port().unwrap();
        let issuer = format!("http://127.0.0.1:{port}");
        let config = serde_json::json!({
            "issuer": issuer,
            "port": port,
            "resource": resource,
            "scope": SCOPES,
            "ttl": 300,
            "clients": clients.iter().map(|c| serde_json::json!({
                "client_id": c.client_id,
                "public_key": c.key.public,
                "kid": c.kid,
                "alg": c.alg,
            })).collect::<Vec<_>>(),
            "seeder": {"client_id": SEEDER.0, "secret": SEEDER.1},
        });
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = std::fs::File::create(dir.path().join("oidc-provider.log")).unwrap();
        let child = Command::new(&provider.node)
            .arg(repo_root().join("tests/federation/national_oauth.mjs"))
            .arg(&provider.package)
            .arg(&config_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Self {
            child,
            issuer,
            _dir: dir,
        };
        let client = PlainHttp::new(None);
        let discovery = format!("{}/.well-known/openid-configuration", server.issuer);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = client.send("GET", &discovery, None).await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "oidc-provider did not start within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(server)
    }

    fn token_url(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// An access token for the seeder (client secret, `system/*.cruds`).
    async fn seeder_token(&self) -> String {
        use base64::Engine as _;
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", SEEDER.0, SEEDER.1));
        let request = http::Request::post(self.token_url())
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"grant_type=client_credentials&scope=system%2F*.cruds",
            )))
            .unwrap();
        let (status, body) = PlainHttp::new(None).exchange(request).await.unwrap();
        assert_eq!(status, 200);
        let answer: Value = serde_json::from_slice(&body).unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    }
}

impl Drop for AuthorizationServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `[services.service.national_server]` lines: OAuth with `key` as
/// `client_id` / `kid` at `server`'s token endpoint (`None`: the one the
/// national server's SMART configuration names).
fn oauth(
    token_endpoint: Option<&AuthorizationServer>,
    client_id: &str,
    key: &KeyPair,
    kid: &str,
    alg: &str,
) -> String {
    let token_url = token_endpoint
        .map(|server| format!("token_url = \"{}\"\n", server.token_url()))
        .unwrap_or_default();
    format!(
        "[services.service.national_server.oauth]\n{token_url}client_id = \"{client_id}\"\n\
         private_key = {:?}\nkid = \"{kid}\"\nalgorithm = \"{alg}\"\nscope = \"system/*.rs\"\n",
        key.private.display().to_string(),
    )
}

/// Both gateways, LU's services of `sections` on national servers.
async fn with_services(sections: String) -> TwoCountries {
    TwoCountries::start("national-oauth", move |config| {
        federation_settings(config);
        if config.country == "LU" {
            config.sections.push('\n');
            config.sections.push_str(&sections);
        }
    })
    .await
}

#[tokio::test]
async fn the_authorization_server_grants_the_gateways_keys_and_refuses_a_stranger() {
    let dir = ScratchDir::new("national-oauth-keys");
    let es = key_pair(dir.path(), "lu-es384", P384);
    let rs = key_pair(dir.path(), "lu-rs384", RSA);
    let stranger = key_pair(dir.path(), "stranger", P384);
    let fake = FakeNational::start().await;
    fake.misbehave(Misbehaviour::FindsNothing);
    let base = format!("http://127.0.0.1:{}/fhir", fake.port);
    let Some(server) = AuthorizationServer::start(
        &format!("{base}/"),
        &[
            Registered {
                client_id: "ncp-lu",
                key: &es,
                kid: "lu-es384",
                alg: "ES384",
            },
            Registered {
                client_id: "ncp-lu-rsa",
                key: &rs,
                kid: "lu-rs384",
                alg: "RS384",
            },
        ],
    )
    .await
    else {
        return;
    };
    // The summaries with the ES384 key, the laboratory reports with the
    // RS384 one, the discharge reports with a key signed as ncp-lu's that
    // the authorization server does not know.
    let sections = [
        national_service(
            "patient-summary",
            "ReadPatientSummary",
            "\"http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips\"",
            ("60591-5", "Patient summary Document"),
            &base,
            &oauth(Some(&server), "ncp-lu", &es, "lu-es384", "ES384"),
        ),
        national_service(
            "laboratory-report",
            "ReadLaboratoryReport",
            "",
            ("11502-2", "Laboratory report"),
            &base,
            &oauth(Some(&server), "ncp-lu-rsa", &rs, "lu-rs384", "RS384"),
        ),
        national_service(
            "discharge-report",
            "ReadDischargeReport",
            "",
            ("34105-7", "Hospital Discharge summary"),
            &base,
            &oauth(Some(&server), "ncp-lu", &stranger, "lu-es384", "ES384"),
        ),
    ]
    .concat();
    let f = with_services(sections).await;
    let audited = || async { f.lu.audit().await.records };

    // Granted: the token request with each key succeeded at oidc-provider
    // (otherwise no search would reach the national server: 502), and the
    // national server's empty search set is the answer; asked again, the
    // summaries' token is still good.
    for search in [
        about_lu_patient("DocumentReference", "&type=http://loinc.org|60591-5"),
        about_lu_patient("DocumentReference", "&type=http://loinc.org|11502-2"),
        about_lu_patient("DocumentReference", "&type=http://loinc.org|60591-5"),
    ] {
        let listed = json(at_lu_as_be_ncp(&f, &search).await, 200).await;
        assert_eq!(listed["total"], 0, "{listed}");
    }

    // Refused: invalid_client at the token endpoint, so the national server
    // is not asked; the caller gets the national failure, audited, and
    // nothing of the credentials.
    let before = audited().await;
    let discharge = about_lu_patient("DocumentReference", "&type=http://loinc.org|34105-7");
    let response = at_lu_as_be_ncp(&f, &discharge).await;
    assert_eq!(response.status().as_u16(), 502);
    let outcome: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert!(
        diagnostics(&outcome).contains("authorization server refused"),
        "{outcome}"
    );
    assert!(!outcome.to_string().contains("eyJ"), "no JWT in the answer");
    assert_eq!(audited().await, before + 1);

    // Through BE, the doctor gets the refusal with LU's OperationOutcome.
    let response = Caller::doctor(&f).get(&discharge).await;
    assert_eq!(response.status().as_u16(), 502);

    assert!(f.lu.audit().await.first_broken.is_none());
    f.stop().await;
}

#[tokio::test]
async fn a_doctor_abroad_reads_from_a_national_server_that_verifies_the_gateways_token() {
    let dir = ScratchDir::new("national-oauth-keys");
    let es = key_pair(dir.path(), "lu-es384", P384);
    let hfs_port = loopback::free_port().unwrap();
    // The resource (RFC 8707) the tokens are for, and hfs's audience.
    let resource = format!("http://127.0.0.1:{hfs_port}/");
    let Some(server) = AuthorizationServer::start(
        &resource,
        &[Registered {
            client_id: "ncp-lu",
            key: &es,
            kid: "lu-es384",
            alg: "ES384",
        }],
    )
    .await
    else {
        return;
    };
    let seeder = server.seeder_token().await;
    // hfs with its authentication on: bearer JWTs verified against the
    // authorization server's JWK Set, issuer and audience checked, SMART
    // scopes enforced (helios-auth); its SMART configuration names the
    // token endpoint.
    let auth = [
        ("HFS_AUTH_ENABLED", "true".to_owned()),
        ("HFS_AUTH_JWKS_URL", format!("{}/jwks", server.issuer)),
        ("HFS_AUTH_ISSUER", server.issuer.clone()),
        ("HFS_AUTH_AUDIENCE", resource.clone()),
        ("HFS_SMART_TOKEN_ENDPOINT", server.token_url()),
    ];
    let Some(hfs) = Hfs::start_with(hfs_port, &auth, Some(&seeder)).await else {
        return;
    };
    let first = summary_for(
        "ps-lu-1",
        LU_PATIENT,
        "urn:uuid:0c8b2f1e-5b7e-4b35-9d39-6f0e2c7a1b01",
    );
    hfs.put(&patient_of(&first, "lu-patient")).await;
    hfs.put(&first).await;
    hfs.put(&reference_to("dr-lu-1", "ps-lu-1", "lu-patient"))
        .await;

    // The national server refuses whoever has no token.
    let (anonymous, _) = PlainHttp::new(None)
        .send("GET", &format!("{}/Bundle/ps-lu-1", hfs.base), None)
        .await
        .unwrap();
    assert_eq!(anonymous, 401);

    let f = with_services(national_service(
        "patient-summary",
        "ReadPatientSummary",
        "\"http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips\"",
        ("60591-5", "Patient summary Document"),
        &resource,
        // The token endpoint is read from hfs's SMART configuration.
        &format!(
            "timeout_secs = 10\n{}",
            oauth(None, "ncp-lu", &es, "lu-es384", "ES384")
        ),
    ))
    .await;
    let doctor = Caller::doctor(&f);

    // Identified, listed and read through both gateways: every call to hfs
    // carried a token hfs accepted.
    let found = json(doctor.get(&lu_patient_search()).await, 200).await;
    assert_eq!(
        found["entry"][0]["resource"]["identifier"][0]["value"], LU_PATIENT,
        "{found}"
    );
    let summaries = about_lu_patient("DocumentReference", "&type=http://loinc.org|60591-5");
    let listed = json(doctor.get(&summaries).await, 200).await;
    assert_eq!(listed["total"], 1, "{listed}");
    let response = doctor.get("/fhir/Bundle/LU.ps-lu-1").await;
    let status = response.status().as_u16();
    let received = response.bytes().await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&received));
    assert_eq!(
        Sha256::digest(&received),
        Sha256::digest(hfs.get("Bundle/ps-lu-1").await),
        "the summary arrives as the national server sent it"
    );

    assert!(f.lu.audit().await.first_broken.is_none());
    f.stop().await;
}
