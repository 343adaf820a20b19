//! nginx (the Debian package) as a plain mutual-TLS relay with the same
//! certificates as the BE gateway: it terminates the doctor system's mTLS
//! (BE national CA and CRL, TLS 1.3), maps `/fhir/Bundle/LU.<id>` to LU's
//! `/fhir/Bundle/<id>` and proxies over a keep-alive upstream to LU's
//! federation listener, presenting BE's NCP client certificate and verifying
//! LU's server certificate against the federation CA and CRL. The
//! `Authorization` header passes through untouched. It checks nothing else:
//! no assertion, no document validation, no audit record.
//!
//! Directives: <https://nginx.org/en/docs/http/ngx_http_ssl_module.html>,
//! <https://nginx.org/en/docs/http/ngx_http_proxy_module.html>,
//! <https://nginx.org/en/docs/http/ngx_http_upstream_module.html#keepalive>.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ehds_dev_pki::{Authority, DevPkiLayout};
use tokio::process::{Child, Command};

use crate::error::BenchError;

/// nginx running in the foreground (`daemon off`) as a child of the bench.
pub(crate) struct Nginx {
    child: Child,
    /// The master process id (the workers are its children).
    pub pid: u32,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// Its version line (`nginx -v`).
    pub version: String,
}

/// What nginx needs to know.
pub(crate) struct NginxSetup<'a> {
    /// The `nginx` executable.
    pub binary: &'a Path,
    /// A folder of its own (config, pid, logs, temp paths).
    pub dir: &'a Path,
    /// The development PKI.
    pub pki: &'a DevPkiLayout,
    /// Where it listens.
    pub port: u16,
    /// LU's federation listener port.
    pub lu_federation_port: u16,
    /// Worker processes.
    pub workers: usize,
}

fn slash(path: &Path) -> String {
    path.display().to_string()
}

/// The nginx configuration of the relay.
pub(crate) fn config_text(setup: &NginxSetup<'_>) -> String {
    let pki = setup.pki;
    let be = Authority::National("BE".to_owned());
    let server = pki.national_server("BE");
    let ncp_client = pki.ncp_client("BE");
    let dir = slash(setup.dir);
    format!(
        r#"daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;

    upstream lu_ncp {{
        server 127.0.0.1:{lu_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}

    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_protocols TLSv1.3;
        ssl_certificate {server_cert};
        ssl_certificate_key {server_key};
        ssl_client_certificate {national_ca};
        ssl_crl {national_crl};
        ssl_verify_client on;
        ssl_verify_depth 2;

        location = /healthz {{
            return 200 "ok\n";
        }}

        location ~ "^/fhir/Bundle/LU\.([A-Za-z0-9\-\.]{{1,64}})$" {{
            proxy_pass https://lu_ncp/fhir/Bundle/$1;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_protocols TLSv1.3;
            proxy_ssl_certificate {ncp_client_cert};
            proxy_ssl_certificate_key {ncp_client_key};
            proxy_ssl_trusted_certificate {federation_ca};
            proxy_ssl_crl {federation_crl};
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 2;
            proxy_ssl_name localhost;
            proxy_ssl_session_reuse off;
            proxy_buffer_size 16k;
            proxy_buffers 8 64k;
        }}

        location / {{
            return 404;
        }}
    }}
}}
"#,
        workers = setup.workers,
        lu_port = setup.lu_federation_port,
        port = setup.port,
        server_cert = slash(&server.cert_chain),
        server_key = slash(&server.private_key),
        national_ca = slash(&pki.ca_cert(&be)),
        national_crl = slash(&pki.crl(&be)),
        ncp_client_cert = slash(&ncp_client.cert_chain),
        ncp_client_key = slash(&ncp_client.private_key),
        federation_ca = slash(&pki.ca_cert(&Authority::Federation)),
        federation_crl = slash(&pki.crl(&Authority::Federation)),
    )
}

impl Nginx {
    /// Writes the configuration, tests it (`nginx -t`) and starts nginx;
    /// returns once it accepts connections.
    pub(crate) async fn start(setup: &NginxSetup<'_>) -> Result<Self, BenchError> {
        std::fs::create_dir_all(setup.dir)?;
        let conf: PathBuf = setup.dir.join("nginx.conf");
        std::fs::write(&conf, config_text(setup))?;
        let version = Command::new(setup.binary)
            .arg("-v")
            .output()
            .await
            .map_err(|e| BenchError::Setup(format!("{}: {e}", setup.binary.display())))?;
        let version = String::from_utf8_lossy(&version.stderr).trim().to_owned();
        let base = |cmd: &mut Command| {
            cmd.arg("-p")
                .arg(setup.dir)
                .arg("-e")
                .arg(setup.dir.join("error.log"))
                .arg("-c")
                .arg(&conf);
        };
        let mut test = Command::new(setup.binary);
        base(&mut test);
        let tested = test.arg("-t").output().await?;
        if !tested.status.success() {
            return Err(BenchError::Setup(format!(
                "nginx -t refused the configuration: {}",
                String::from_utf8_lossy(&tested.stderr)
            )));
        }
        let mut run = Command::new(setup.binary);
        base(&mut run);
        let child = run
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::Setup("nginx exited at once".into()))?;
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", setup.port))
            .await
            .is_err()
        {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(BenchError::Setup("nginx did not listen within 10 s".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            child,
            pid,
            port: setup.port,
            version,
        })
    }

    /// `https://127.0.0.1:<port><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Stops nginx with `nginx -s stop` (SIGTERM to the master named in its
    /// pid file, which stops its workers), then waits for it; killed if it
    /// has not exited within 10 s.
    pub(crate) async fn stop(mut self, setup: &NginxSetup<'_>) {
        let _ = Command::new(setup.binary)
            .arg("-p")
            .arg(setup.dir)
            .arg("-e")
            .arg(setup.dir.join("error.log"))
            .arg("-c")
            .arg(setup.dir.join("nginx.conf"))
            .args(["-s", "stop"])
            .output()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
