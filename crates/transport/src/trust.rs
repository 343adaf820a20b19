//! Trust stores (CA certificates + CRLs), the gateway's own TLS identity, and
//! the rustls server and client configurations built from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use time::OffsetDateTime;
use x509_parser::oid_registry::OID_X509_EXT_ISSUER_DISTRIBUTION_POINT;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::TransportError;

/// The ALPN protocol the listeners speak (HTTP/1.1 only, RFC 7301).
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The one crypto provider: *ring* (no aws-lc).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Only TLS 1.3 (RFC 8446): every suite is AEAD with ephemeral (EC)DHE, the
/// certificate is encrypted, and there is no renegotiation; both sides are
/// gateways or national systems we configure, so no legacy client needs 1.2.
static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

struct Anchor<'a> {
    cert: X509Certificate<'a>,
    summary: AnchorSummary,
    has_crl: bool,
}

/// Where a trust store's files are: CA certificates (PEM, one or more per
/// file) and their CRLs (PEM or DER, RFC 5280 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustFiles {
    /// CA certificate files: the trust anchors.
    pub ca_certs: Vec<PathBuf>,
    /// CRL files: every CA above needs one (fail closed).
    pub crls: Vec<PathBuf>,
}

/// One trust anchor of a [`TrustStore`], described for logs and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorSummary {
    /// The CA's subject, RFC 4514 form.
    pub subject: String,
    /// The earliest `nextUpdate` of the CA's CRLs (`None` when a CRL has
    /// none): after it, handshakes with certificates of this CA fail.
    pub crl_next_update: Option<OffsetDateTime>,
}

/// CA certificates and one or more CRLs for each of them: what a listener
/// (or the outbound client) trusts.
///
/// Loading refuses a store in which a CA has no CRL (fail closed: rustls
/// would otherwise skip revocation checking entirely), a CRL whose issuer is
/// not one of the CAs, and a CRL whose signature does not verify with its
/// CA's key. Of several full CRLs of one CA only the newest (latest
/// thisUpdate) is kept. An expired CRL is accepted at load (with a warning,
/// and visible in [`TrustStore::anchors`]) but every handshake that needs it
/// fails (`enforce_revocation_expiration`).
#[derive(Debug, Clone)]
pub struct TrustStore {
    roots: Arc<RootCertStore>,
    cas: Vec<CertificateDer<'static>>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    anchors: Vec<AnchorSummary>,
}

impl TrustStore {
    /// Reads the files and checks that every CA has a CRL.
    pub fn load(files: &TrustFiles) -> Result<Self, TransportError> {
        let mut certs = Vec::new();
        for path in &files.ca_certs {
            let found = read_certs(path)?;
            certs.extend(found.into_iter().map(|c| (path.clone(), c)));
        }
        let mut crls = Vec::new();
        for path in &files.crls {
            let found = read_crls(path)?;
            crls.extend(found.into_iter().map(|c| (path.clone(), c)));
        }
        Self::from_der(certs, crls)
    }

    fn from_der(
        certs: Vec<(PathBuf, CertificateDer<'static>)>,
        crls: Vec<(PathBuf, CertificateRevocationListDer<'static>)>,
    ) -> Result<Self, TransportError> {
        if certs.is_empty() {
            return Err(TransportError::NoTrustAnchors);
        }
        let mut anchors: Vec<Anchor<'_>> = Vec::new();
        let mut roots = RootCertStore::empty();
        for (path, der) in &certs {
            let (_, cert) = X509Certificate::from_der(der).map_err(|e| bad(path, e))?;
            if !cert.is_ca() {
                return Err(TransportError::BadFile {
                    path: path.clone(),
                    reason: format!(
                        "\"{}\" is not a CA certificate (basicConstraints CA=false)",
                        cert.subject()
                    ),
                });
            }
            roots.add(der.clone()).map_err(|e| bad(path, e))?;
            anchors.push(Anchor {
                summary: AnchorSummary {
                    subject: cert.subject().to_string(),
                    crl_next_update: None,
                },
                cert,
                has_crl: false,
            });
        }
        let now = OffsetDateTime::now_utc();
        // (issuer, partitioned, thisUpdate, index) of every CRL.
        let mut kept: Vec<(Vec<u8>, bool, OffsetDateTime, usize)> = Vec::new();
        for (index, (path, der)) in crls.iter().enumerate() {
            let (_, crl) = CertificateRevocationList::from_der(der).map_err(|e| bad(path, e))?;
            let issuer = crl.issuer().as_raw();
            let Some(anchor) = anchors
                .iter_mut()
                .find(|a| a.cert.subject().as_raw() == issuer)
            else {
                return Err(TransportError::CrlWithoutCa {
                    path: path.clone(),
                    issuer: crl.issuer().to_string(),
                });
            };
            // Checked here too (webpki checks at each handshake) so that a
            // forged or corrupted CRL fails the load or reload instead of
            // every later handshake.
            crl.verify_signature(anchor.cert.public_key())
                .map_err(|e| {
                    bad(
                        path,
                        format!("CRL signature does not verify with its CA's key: {e}"),
                    )
                })?;
            anchor.has_crl = true;
            if let Some(next) = crl.next_update().map(|t| t.to_datetime()) {
                if next < now {
                    tracing::warn!(
                        crl = %path.display(),
                        ca = %anchor.summary.subject,
                        next_update = %next,
                        "CRL is past its nextUpdate: handshakes with certificates of this CA will fail until it is replaced"
                    );
                }
                anchor.summary.crl_next_update = Some(match anchor.summary.crl_next_update {
                    Some(prev) if prev < next => prev,
                    _ => next,
                });
            }
            let partitioned = crl
                .extensions()
                .iter()
                .any(|e| e.oid == OID_X509_EXT_ISSUER_DISTRIBUTION_POINT);
            kept.push((
                issuer.to_vec(),
                partitioned,
                crl.last_update().to_datetime(),
                index,
            ));
        }
        if let Some(anchor) = anchors.iter().find(|a| !a.has_crl) {
            return Err(TransportError::MissingCrl {
                subject: anchor.summary.subject.clone(),
            });
        }
        // webpki uses the first CRL of an issuer it finds: of several full
        // CRLs of one CA keep only the newest, so an old file left next to a
        // new one cannot hide a revocation.
        let superseded =
            |(issuer, partitioned, this_update, index): &(Vec<u8>, bool, OffsetDateTime, usize)| {
                !partitioned
                    && kept.iter().any(|(other, p, t, i)| {
                        other == issuer
                            && !p
                            && (t > this_update || (t == this_update && i > index))
                    })
            };
        let keep: Vec<usize> = kept
            .iter()
            .filter(|entry| !superseded(entry))
            .map(|(_, _, _, index)| *index)
            .collect();
        let anchors = anchors.into_iter().map(|a| a.summary).collect();
        Ok(Self {
            roots: Arc::new(roots),
            cas: certs.iter().map(|(_, der)| der.clone()).collect(),
            crls: crls
                .into_iter()
                .enumerate()
                .filter(|(index, _)| keep.contains(index))
                .map(|(_, (_, crl))| crl)
                .collect(),
            anchors,
        })
    }

    /// The CA of this store that issued `cert_der` (by issuer name), if any.
    pub fn issuer_of(&self, cert_der: &[u8]) -> Option<&CertificateDer<'static>> {
        let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
        let issuer = cert.issuer().as_raw();
        self.cas.iter().find(|ca| {
            X509Certificate::from_der(ca)
                .map(|(_, ca)| ca.subject().as_raw() == issuer)
                .unwrap_or(false)
        })
    }

    /// The trust anchors, each with its CRLs' earliest `nextUpdate`.
    pub fn anchors(&self) -> &[AnchorSummary] {
        &self.anchors
    }

    /// Every CA certificate's `notAfter` and every CRL's `nextUpdate` (the
    /// CRLs in force: of several full CRLs of one CA, the newest).
    pub fn expiries(&self) -> Vec<crate::Expiry> {
        let cas = self
            .cas
            .iter()
            .filter_map(|der| crate::expiry::of_certificate(der, crate::ExpiryKind::CaCertificate));
        cas.chain(self.crls.iter().filter_map(crate::expiry::of_crl))
            .collect()
    }

    /// The client-certificate verifier of a listener: a certificate is
    /// required, must chain to one of the CAs, carry EKU clientAuth if it has
    /// an EKU, not be a CA, be within its validity, and be known not revoked
    /// by a current CRL of every certificate of its chain.
    pub fn client_verifier(
        &self,
    ) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TransportError> {
        Ok(
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), crypto_provider())
                .with_crls(self.crls.iter().cloned())
                .enforce_revocation_expiration()
                .build()?,
        )
    }

    /// The server-certificate verifier of the outbound client: the same
    /// checks with EKU serverAuth, plus the server name (done by rustls).
    pub fn server_verifier(&self) -> Result<Arc<WebPkiServerVerifier>, TransportError> {
        Ok(
            WebPkiServerVerifier::builder_with_provider(self.roots.clone(), crypto_provider())
                .with_crls(self.crls.iter().cloned())
                .enforce_revocation_expiration()
                .build()?,
        )
    }
}

/// Where the gateway's own certificate chain and private key are (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    /// The certificate, optionally followed by intermediates.
    pub cert_chain: PathBuf,
    /// The private key (PKCS#8, SEC1 or PKCS#1 PEM).
    pub private_key: PathBuf,
}

/// The gateway's own certificate chain and private key, loaded.
#[derive(Debug)]
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsIdentity {
    /// Reads the chain and the key.
    pub fn load(files: &IdentityFiles) -> Result<Self, TransportError> {
        let chain = read_certs(&files.cert_chain)?;
        if chain.is_empty() {
            return Err(TransportError::BadFile {
                path: files.cert_chain.clone(),
                reason: "no CERTIFICATE in the file".into(),
            });
        }
        let bytes = read(&files.private_key)?;
        let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TransportError::BadFile {
            path: files.private_key.clone(),
            reason: format!("no usable private key: {e}"),
        })?;
        Ok(Self { chain, key })
    }

    /// The end-entity certificate.
    pub fn leaf(&self) -> Option<&CertificateDer<'static>> {
        self.chain.first()
    }

    /// The `notAfter` of the certificate and of the CAs sent with it.
    pub fn expiries(&self) -> Vec<crate::Expiry> {
        crate::expiry::of_chain(&self.chain)
    }
}

/// A listener's configuration, its trust store, how to tell its clients'
/// sides apart (with misdirected clients) and its identity.
pub(crate) type LoadedListener = (
    Arc<ServerConfig>,
    TrustStore,
    Option<ClientSides>,
    TlsIdentity,
);

/// Where a listener's files are: its own identity and whom it trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// The listener's certificate and key.
    pub identity: IdentityFiles,
    /// The CAs (and CRLs) whose clients it accepts.
    pub trust: TrustFiles,
    /// CAs (and CRLs) of clients that belong on another listener (on the
    /// federation listener: this country's national CA). Their certificates
    /// are verified exactly like the listener's own clients' (chain,
    /// validity, EKU, CRL), then identified as the *other* listener's kind,
    /// never as this listener's, so that the application can refuse them
    /// with an answer and a record instead of a bare failed handshake.
    /// `None`: only `trust`'s clients complete a handshake.
    pub misdirected_clients: Option<TrustFiles>,
}

/// Which trust a verified client certificate chains to, on a listener with
/// [`ServerTlsFiles::misdirected_clients`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientSide {
    /// The listener's own CAs.
    Own,
    /// The CAs of clients that belong on the other listener.
    Misdirected,
}

/// Tells, after a handshake, which trust a client certificate chains to.
/// Each side is verified on its own (no name or key shortcut): a certificate
/// is this listener's client only if it verifies against this listener's
/// CAs alone.
#[derive(Clone)]
pub(crate) struct ClientSides {
    own: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    misdirected: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

impl std::fmt::Debug for ClientSides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSides")
    }
}

impl ClientSides {
    /// The side `leaf` (with the `intermediates` the client sent) verifies
    /// on now; `None` if neither (e.g. it expired since the handshake).
    pub(crate) fn side_of(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Option<ClientSide> {
        let now = rustls::pki_types::UnixTime::now();
        if self
            .own
            .verify_client_cert(leaf, intermediates, now)
            .is_ok()
        {
            Some(ClientSide::Own)
        } else if self
            .misdirected
            .verify_client_cert(leaf, intermediates, now)
            .is_ok()
        {
            Some(ClientSide::Misdirected)
        } else {
            None
        }
    }
}

/// Builds listener TLS configurations.
#[derive(Debug, Clone, Copy)]
pub struct ServerTls;

impl ServerTls {
    /// Reads the files and builds the configuration.
    pub fn load(files: &ServerTlsFiles) -> Result<Arc<ServerConfig>, TransportError> {
        Self::load_with_trust(files).map(|(config, _)| config)
    }

    /// [`ServerTls::load`], also returning the trust store it used (with
    /// [`ServerTlsFiles::misdirected_clients`], the store of both sides).
    pub fn load_with_trust(
        files: &ServerTlsFiles,
    ) -> Result<(Arc<ServerConfig>, TrustStore), TransportError> {
        Self::load_listener(files).map(|(config, trust, _, _)| (config, trust))
    }

    /// [`ServerTls::load_with_trust`], also returning how to tell the sides
    /// apart when the listener admits misdirected clients, and the
    /// listener's identity.
    pub(crate) fn load_listener(files: &ServerTlsFiles) -> Result<LoadedListener, TransportError> {
        let identity = TlsIdentity::load(&files.identity)?;
        let own = TrustStore::load(&files.trust)?;
        let Some(misdirected_files) = &files.misdirected_clients else {
            return Ok((Self::build(&identity, &own)?, own, None, identity));
        };
        let misdirected = TrustStore::load(misdirected_files)?;
        let both = TrustStore::load(&TrustFiles {
            ca_certs: [&files.trust.ca_certs[..], &misdirected_files.ca_certs[..]].concat(),
            crls: [&files.trust.crls[..], &misdirected_files.crls[..]].concat(),
        })?;
        let sides = ClientSides {
            own: own.client_verifier()?,
            misdirected: misdirected.client_verifier()?,
        };
        Ok((Self::build(&identity, &both)?, both, Some(sides), identity))
    }

    /// The configuration of a mutual-TLS listener: TLS 1.3 only, a client
    /// certificate required and verified by [`TrustStore::client_verifier`],
    /// ALPN `http/1.1`, and no session resumption — every connection makes a
    /// full handshake, so its client certificate is checked against the CRLs
    /// in force at that moment (a resumed session would skip the check).
    pub fn build(
        identity: &TlsIdentity,
        trust: &TrustStore,
    ) -> Result<Arc<ServerConfig>, TransportError> {
        let mut config = ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(PROTOCOL_VERSIONS)?
            .with_client_cert_verifier(trust.client_verifier()?)
            .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }
}

/// The configuration of the outbound federation client: TLS 1.3 only, the
/// gateway's client certificate, the server's certificate verified by
/// [`TrustStore::server_verifier`] (chain, validity, EKU serverAuth, CRLs,
/// and the name the caller connects to against the certificate's SAN), no
/// session resumption.
pub fn client_config(
    identity: &TlsIdentity,
    trust: &TrustStore,
) -> Result<Arc<ClientConfig>, TransportError> {
    let mut config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_webpki_verifier(trust.server_verifier()?)
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, TransportError> {
    std::fs::read(path).map_err(|source| TransportError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn bad(path: &Path, e: impl std::fmt::Display) -> TransportError {
    TransportError::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Every CERTIFICATE block of a PEM file.
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, e))?;
    if certs.is_empty() {
        return Err(bad(path, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

/// Every X509 CRL block of a PEM file, or the one DER CRL of a binary file.
pub(crate) fn read_crls(
    path: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TransportError> {
    let bytes = read(path)?;
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
