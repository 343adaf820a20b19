//! Shared helpers for the gateway's tests.
//!
//! Owns: where test fixtures live in the repository, which PostgreSQL
//! server tests use, which browser the patient page's test drives, which
//! FHIR server binary (hfs) the national-connector tests run, and which
//! OAuth authorization server (oidc-provider on Node.js) they run. It
//! is the one library allowed to read the environment, because it exists
//! only for tests.
//!
//! Must not know about: any gateway crate (it sits below them all, so every
//! crate can take it as a dev-dependency without a cycle).

use std::path::PathBuf;

/// The environment variable that names the PostgreSQL server for tests
/// (`.ci/run` sets it to `postgres://postgres@127.0.0.1:5432/test`).
pub const POSTGRES_URL_VAR: &str = "EHDS_TEST_POSTGRES_URL";

/// The PostgreSQL URL tests use, or `None` to skip PostgreSQL tests on a
/// developer machine without one.
///
/// # Panics
/// When `CI` is set and [`POSTGRES_URL_VAR`] is not: under CI a PostgreSQL
/// test fails rather than skips.
#[allow(clippy::panic)]
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{POSTGRES_URL_VAR} is not set but CI is: PostgreSQL tests must run under CI, not skip"
        ),
        _ => {
            eprintln!("skipping PostgreSQL test: {POSTGRES_URL_VAR} is not set");
            None
        }
    }
}

/// Environment variable naming the Helios FHIR Server binary (`hfs`,
/// crates.io `helios-hfs`) the national-connector tests run as a real
/// national FHIR server; `.ci/run` installs it and sets this.
pub const HFS_BIN_VAR: &str = "EHDS_TEST_HFS_BIN";

/// The Helios FHIR Server binary, or `None` to skip a test that needs it on
/// a developer machine without it.
///
/// # Panics
///
/// When `CI` is set and [`HFS_BIN_VAR`] does not name an existing file:
/// under CI such a test fails rather than skips.
#[allow(clippy::panic)]
pub fn hfs_binary() -> Option<PathBuf> {
    let found = std::env::var_os(HFS_BIN_VAR)
        .map(PathBuf::from)
        .filter(|path| path.is_file());
    match found {
        Some(path) => Some(path),
        None if std::env::var_os("CI").is_some() => panic!(
            "{HFS_BIN_VAR} does not name the hfs binary but CI is set: national-connector tests \
             must run under CI, not skip (.ci/run installs helios-hfs and sets it)"
        ),
        None => {
            eprintln!(
                "skipping national FHIR server test: {HFS_BIN_VAR} does not name the hfs binary"
            );
            None
        }
    }
}

/// Environment variable naming the release build of the `ehds-gateway`
/// binary (`target/release/ehds-gateway`); `.ci/run` builds it and sets
/// this, for the test that runs it alone from an empty directory (issue 17).
pub const RELEASE_BIN_VAR: &str = "EHDS_TEST_RELEASE_BIN";

/// The release `ehds-gateway` binary, or `None` to skip a test that needs
/// it on a developer machine that has not built it.
///
/// # Panics
///
/// When `CI` is set and [`RELEASE_BIN_VAR`] does not name an existing file:
/// under CI such a test fails rather than skips.
#[allow(clippy::panic)]
pub fn release_binary() -> Option<PathBuf> {
    let found = std::env::var_os(RELEASE_BIN_VAR)
        .map(PathBuf::from)
        .filter(|path| path.is_file());
    match found {
        Some(path) => Some(path),
        None if std::env::var_os("CI").is_some() => panic!(
            "{RELEASE_BIN_VAR} does not name the release binary but CI is set: the test of \
             the release binary must run under CI, not skip (.ci/run builds it and sets it)"
        ),
        None => {
            eprintln!("skipping release binary test: {RELEASE_BIN_VAR} does not name the binary");
            None
        }
    }
}

/// Environment variable naming the installed npm package `oidc-provider`
/// (its folder, `…/node_modules/oidc-provider`): panva's OpenID Certified
/// OAuth 2.0 authorization server, which the national connector's OAuth
/// tests run as a national FHIR server's authorization server; `.ci/run`
/// installs it and sets this.
pub const OIDC_PROVIDER_VAR: &str = "EHDS_TEST_OIDC_PROVIDER";

/// The authorization server of the national connector's OAuth tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcProvider {
    /// Node.js (`node` on `PATH`).
    pub node: PathBuf,
    /// The `oidc-provider` package folder.
    pub package: PathBuf,
}

/// Node.js and the `oidc-provider` package, or `None` to skip a test that
/// needs them on a developer machine without them.
///
/// # Panics
/// When `CI` is set and either is missing: under CI such a test fails
/// rather than skips.
#[allow(clippy::panic)]
pub fn oidc_provider() -> Option<OidcProvider> {
    let package = std::env::var_os(OIDC_PROVIDER_VAR)
        .map(PathBuf::from)
        .filter(|path| path.join("package.json").is_file());
    let node = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("node"))
            .find(|path| path.is_file())
    });
    match (node, package) {
        (Some(node), Some(package)) => Some(OidcProvider { node, package }),
        _ if std::env::var_os("CI").is_some() => panic!(
            "node is not on PATH or {OIDC_PROVIDER_VAR} does not name the oidc-provider package \
             but CI is set: the national connector's OAuth tests must run under CI, not skip \
             (.ci/run installs it with npm and sets it)"
        ),
        _ => {
            eprintln!(
                "skipping OAuth test: node is not on PATH or {OIDC_PROVIDER_VAR} does not name \
                 the oidc-provider package"
            );
            None
        }
    }
}

/// Headless Chromium and its WebDriver server, for browser tests: Debian's
/// `chromium` and `chromium-driver` packages (`.ci/run` installs them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Browser {
    /// The browser (`chromium`).
    pub chromium: PathBuf,
    /// Its WebDriver server (`chromedriver`).
    pub chromedriver: PathBuf,
}

/// The browser on `PATH`, or `None` to skip a browser test on a developer
/// machine without one.
///
/// # Panics
/// When `CI` is set and either program is missing: under CI a browser test
/// fails rather than skips.
#[allow(clippy::panic)]
pub fn browser() -> Option<Browser> {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
        })
    };
    match (find("chromium"), find("chromedriver")) {
        (Some(chromium), Some(chromedriver)) => Some(Browser {
            chromium,
            chromedriver,
        }),
        _ if std::env::var_os("CI").is_some() => panic!(
            "chromium or chromedriver is not on PATH but CI is set: browser tests must run \
             under CI, not skip (apt-get install chromium chromium-driver; .ci/run does)"
        ),
        _ => {
            eprintln!(
                "skipping browser test: chromium and chromedriver are not on PATH \
                 (Debian: apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}

/// A schema name no other test uses: `prefix` plus a random suffix.
pub fn unique_schema(prefix: &str) -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::time::{SystemTime, UNIX_EPOCH};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    format!("t_{prefix}_{:016x}", hasher.finish())
}

/// The repository root: the nearest folder holding `Cargo.lock` and
/// `ARCHITECTURE.md` above the crate under test. Found at run time from the
/// `CARGO_MANIFEST_DIR` cargo sets for tests and benches, because the
/// compile-time value is shared by every clone that reuses a target dir.
pub fn repo_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file() && dir.join("ARCHITECTURE.md").is_file())
        .map(PathBuf::from)
        .unwrap_or(start)
}

/// `conformance/` in the repository.
pub fn conformance_dir() -> PathBuf {
    repo_root().join("conformance")
}

/// Every file with extension `ext` under `dir`, sorted, recursively.
pub fn files_with_extension(dir: &std::path::Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in read.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A gateway binary running in a fresh working directory (with `deploy/`
/// linked in, where the default configuration looks for the development
/// PKI; no `profiles/`: the FHIR packages are compiled into the binary),
/// killed on drop.
#[derive(Debug)]
pub struct GatewayProcess {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    dir: PathBuf,
}

/// Why a gateway process could not be started.
#[derive(Debug)]
pub struct StartError(pub String);

impl GatewayProcess {
    /// Runs `binary serve ARGS` (plus `--config gateway.toml` with `config`
    /// written there) and waits for the line that says where it listens.
    pub fn start(binary: &str, args: &[&str], config: Option<&str>) -> Result<Self, StartError> {
        use std::io::BufRead;
        let fail = |what: &str, e: &dyn std::fmt::Display| StartError(format!("{what}: {e}"));
        let dir = std::env::temp_dir().join(unique_schema("gateway"));
        std::fs::create_dir_all(&dir).map_err(|e| fail("temp dir", &e))?;
        #[cfg(unix)]
        std::os::unix::fs::symlink(repo_root().join("deploy"), dir.join("deploy"))
            .map_err(|e| fail("linking the repository's deploy/", &e))?;
        let mut command = std::process::Command::new(binary);
        command.arg("serve").args(args).current_dir(&dir);
        if let Some(config) = config {
            std::fs::write(dir.join("gateway.toml"), config).map_err(|e| fail("config", &e))?;
            command.args(["--config", "gateway.toml"]);
        }
        let mut child = command
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| fail("spawning the gateway", &e))?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map_err(|e| fail("reading its output", &e))?;
        }
        let addr = line
            .split("https://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => Ok(Self { child, addr, dir }),
            None => {
                let _ = child.kill();
                Err(StartError(format!(
                    "the gateway did not say where it listens: {line:?}"
                )))
            }
        }
    }

    /// `https://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The process id (to read its memory from `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The working directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Stops the process and returns what it logged on stderr.
    pub fn stop(mut self) -> String {
        use std::io::Read;
        let _ = self.child.kill();
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut log);
        }
        log
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh folder under the system temp dir, removed when dropped.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates an empty folder named after `label` and a unique suffix.
    ///
    /// # Panics
    /// When the folder cannot be created (a test cannot run without it).
    #[allow(clippy::panic)]
    pub fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(unique_schema(label));
        let _ = std::fs::remove_dir_all(&path);
        if let Err(e) = std::fs::create_dir_all(&path) {
            panic!("cannot create {}: {e}", path.display());
        }
        Self(path)
    }

    /// The folder.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A minimal valid PDF with one empty page, for tests of the services that
/// carry PDF originals (built, not copied: no third-party file).
pub fn minimal_pdf(text: &str) -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let content = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut offsets = Vec::new();
    for (n, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", n + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}
