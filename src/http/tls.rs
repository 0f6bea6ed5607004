//! TLS settings for `https://`: one `rustls::ClientConfig` per run, and the
//! mapping of every TLS problem to a stable [`HttpError`] name.
//!
//! The config is built once from the flags and shared by every connection of
//! the process (`Arc`), so its session store ([`super::tls_sessions`]) is
//! shared too and a reconnect resumes its session (TLS 1.3 tickets, TLS 1.2
//! tickets and IDs) instead of paying a full handshake. Ring provider, TLS 1.2 and 1.3, ALPN
//! `http/1.1`.
//!
//! Roots: the system's trust store through rustls-native-certs
//! (`/etc/ssl/certs`, `SSL_CERT_FILE`/`SSL_CERT_DIR` honoured) rather than
//! webpki-roots' compiled-in copy of Mozilla's list: it is the store curl and
//! the rest of the box use, updated by the OS, and it holds a company's own
//! CA when the admin installed one. `--ca-cert FILE` REPLACES those roots
//! (as curl's `--cacert` does): a run aimed at a test CA trusts only it.
//! `--insecure` accepts any certificate but still checks the handshake
//! signatures, so the peer must hold the key of the certificate it sent.
//!
//! The stream itself lives in [`super::stream`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, CertificateError};

use super::tls_verify::{ca_used_as_end_entity, AnyCert, GivenCerts};
use super::HttpError;

/// What the user asked for (the TLS flags), before any file is read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--insecure`: accept any server certificate.
    pub insecure: bool,
    /// `--ca-cert FILE`: a PEM bundle that replaces the system roots.
    pub ca_cert: Option<PathBuf>,
    /// `--client-cert FILE` and `--client-key FILE` (mTLS): both or neither.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Why the TLS flags cannot be used; shown before the run starts (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("--ca-cert {path}: {reason}")]
    CaCert { path: String, reason: String },
    #[error("--client-cert {path}: {reason}")]
    ClientCert { path: String, reason: String },
    #[error("--client-key {path}: {reason}")]
    ClientKey { path: String, reason: String },
    #[error("--client-cert and --client-key go together: give both or neither")]
    ClientPair,
    #[error("client certificate and key: {0}")]
    ClientAuth(String),
}

impl TlsOptions {
    /// Whether any TLS flag was given (else the lazily built default applies).
    pub fn is_default(&self) -> bool {
        *self == TlsOptions::default()
    }

    /// Read the files and build the shared config.
    pub fn build(&self) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsConfigError::ClientAuth(e.to_string()))?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider())))
        } else {
            match &self.ca_cert {
                Some(path) => {
                    let (roots, given) = file_roots(path)?;
                    let verifier = GivenCerts::new(roots, given, provider()).map_err(|e| {
                        TlsConfigError::CaCert {
                            path: path.display().to_string(),
                            reason: e,
                        }
                    })?;
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(verifier))
                }
                None => builder.with_root_certificates(system_roots()),
            }
        };
        let mut config = match (&self.client_cert, &self.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert).map_err(|reason| TlsConfigError::ClientCert {
                    path: cert.display().to_string(),
                    reason,
                })?;
                let key =
                    PrivateKeyDer::from_pem_file(key).map_err(|e| TlsConfigError::ClientKey {
                        path: key.display().to_string(),
                        reason: format!("no usable PEM private key ({e})"),
                    })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsConfigError::ClientAuth(e.to_string()))?
            }
            _ => return Err(TlsConfigError::ClientPair),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = rustls::client::Resumption::store(Arc::new(
            super::tls_sessions::SessionStore::default(),
        ));
        Ok(Arc::new(config))
    }
}

/// The config for an `https://` endpoint when no TLS flag was given: system
/// roots, built once per process on first use.
pub fn default_config() -> Arc<rustls::ClientConfig> {
    static DEFAULT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| match TlsOptions::default().build() {
            Ok(c) => c,
            // Only the protocol-version step can fail, and not with ring's
            // suites; an empty-roots config still fails every request by name.
            Err(e) => {
                log::warn!("TLS defaults: {e}");
                Arc::new(
                    rustls::ClientConfig::builder_with_provider(provider())
                        .with_safe_default_protocol_versions()
                        .map(|b| {
                            b.with_root_certificates(rustls::RootCertStore::empty())
                                .with_no_client_auth()
                        })
                        .unwrap_or_else(|_| {
                            rustls::ClientConfig::builder()
                                .with_root_certificates(rustls::RootCertStore::empty())
                                .with_no_client_auth()
                        }),
                )
            }
        })
        .clone()
}

/// The TLS server name for `host`: an IP literal is an IP name (rustls then
/// sends no SNI and checks the certificate's IP SANs).
pub fn server_name(host: &str) -> Result<ServerName<'static>, HttpError> {
    ServerName::try_from(host.to_string()).map_err(|_| HttpError::Tls(TlsKind::BadServerName))
}

/// ring, with X25519 as the first key exchange offered. rustls 0.23.48's
/// ring list starts with P-384, so the ClientHello's one key share would be
/// P-384: a server running OpenSSL 3.0 then spends milliseconds of generic
/// bignum code per handshake (measured: nginx 4 ms of CPU per connection,
/// 8x what wrk's X25519 handshakes cost it). X25519 first is what OpenSSL,
/// browsers and curl offer; P-256 and P-384 stay for servers that need them.
fn provider() -> Arc<CryptoProvider> {
    use ring::kx_group::{SECP256R1, SECP384R1, X25519};
    // Deprecated in 0.23.48 only for lacking post-quantum key exchange; ring
    // is the provider DESIGN.md measured (aws-lc is not built).
    #[allow(deprecated)]
    let mut p = ring::default_provider();
    p.kx_groups = vec![X25519, SECP256R1, SECP384R1];
    Arc::new(p)
}

fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        log::warn!("system CA certificates: {e}");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    log::debug!("system CA certificates: {added} loaded, {ignored} unusable");
    if added == 0 {
        log::warn!("no system CA certificates found: every https:// request will fail as not trusted; give --ca-cert FILE");
    }
    roots
}

/// The roots from `--ca-cert`, and its certificates as given.
type FileRoots = (rustls::RootCertStore, Vec<CertificateDer<'static>>);

fn file_roots(path: &Path) -> Result<FileRoots, TlsConfigError> {
    let err = |reason: String| TlsConfigError::CaCert {
        path: path.display().to_string(),
        reason,
    };
    let certs = read_certs(path).map_err(err)?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs.iter().cloned());
    if added == 0 {
        return Err(err("no usable CA certificate in it".into()));
    }
    Ok((roots, certs))
}

/// Every `CERTIFICATE` block of a PEM file; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM CERTIFICATE in it".into());
    }
    Ok(certs)
}

/// The TLS failure kinds, shown as `tls: ...` (see [`HttpError::Tls`]).
/// Small and `Copy` like every failure kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsKind {
    UnknownIssuer,
    /// A CA certificate (a self-signed one) sent as the server's own, and
    /// not given with `--ca-cert`.
    CaAsServerCert,
    NameMismatch,
    Expired,
    /// Any other certificate problem, by rustls' name for it.
    BadCertificate(&'static str),
    /// The connect timeout passed during the handshake.
    HandshakeTimeout(super::Millis),
    /// TCP EOF with no `close_notify` where it matters (a close-delimited body).
    NoCloseNotify,
    /// The peer closed the connection before the handshake completed.
    ClosedInHandshake,
    /// The first bytes back were not a TLS record (plain HTTP on a TLS port).
    NotTls,
    ClientCertRequired,
    /// The server refused our client certificate.
    ClientCertRefused(Alert),
    /// The server sent this alert.
    Alert(Alert),
    /// The host cannot be a TLS server name.
    BadServerName,
    /// Any other protocol error, by rustls' name for it.
    Protocol(&'static str),
}

/// A TLS alert by its number, shown by rustls' name for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Alert(pub u8);

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", AlertDescription::from(self.0))
    }
}

impl std::fmt::Display for TlsKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsKind::UnknownIssuer => f.write_str("certificate not trusted (UnknownIssuer)"),
            TlsKind::CaAsServerCert => {
                f.write_str("certificate not trusted (CaUsedAsEndEntity: self-signed?)")
            }
            TlsKind::NameMismatch => f.write_str("name mismatch"),
            TlsKind::Expired => f.write_str("certificate expired"),
            TlsKind::BadCertificate(why) => write!(f, "bad certificate ({why})"),
            TlsKind::HandshakeTimeout(t) => write!(f, "handshake timeout after {t}"),
            TlsKind::NoCloseNotify => f.write_str("peer closed without close_notify"),
            TlsKind::ClosedInHandshake => f.write_str("connection closed during handshake"),
            TlsKind::NotTls => f.write_str("not a TLS server"),
            TlsKind::ClientCertRequired => f.write_str("client certificate required"),
            TlsKind::ClientCertRefused(a) => write!(f, "client certificate refused ({a})"),
            TlsKind::Alert(a) => write!(f, "handshake failed ({a})"),
            TlsKind::BadServerName => f.write_str("host is not a valid TLS server name"),
            TlsKind::Protocol(why) => write!(f, "protocol error ({why})"),
        }
    }
}

/// A TLS failure carried inside an `io::Error` through monoio's I/O traits;
/// [`HttpError::from_io`] takes it back out.
#[derive(Debug)]
pub struct TlsFailure(pub TlsKind);

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tls: {}", self.0)
    }
}

impl std::error::Error for TlsFailure {}

impl TlsFailure {
    pub fn io(kind: TlsKind) -> std::io::Error {
        std::io::Error::other(TlsFailure(kind))
    }
}

/// The stable kind of a rustls error. `client_auth`: we sent a certificate,
/// so a certificate alert from the server is about ours. `handshaking`: a
/// record that is not TLS at all then means the peer does not speak TLS;
/// later it is a corrupt stream.
pub fn classify(e: &rustls::Error, client_auth: bool, handshaking: bool) -> TlsKind {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => TlsKind::UnknownIssuer,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsKind::NameMismatch
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsKind::Expired,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsKind::BadCertificate("NotValidYet")
            }
            CertificateError::BadEncoding => TlsKind::BadCertificate("BadEncoding"),
            CertificateError::BadSignature => TlsKind::BadCertificate("BadSignature"),
            CertificateError::Revoked => TlsKind::BadCertificate("Revoked"),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                TlsKind::BadCertificate("InvalidPurpose")
            }
            // webpki's other reasons come boxed; the one a self-signed
            // server meets (`openssl req -x509` marks it a CA) is named.
            CertificateError::Other(o) if ca_used_as_end_entity(o) => TlsKind::CaAsServerCert,
            _ => TlsKind::BadCertificate("Other"),
        },
        E::AlertReceived(AlertDescription::CertificateRequired) => TlsKind::ClientCertRequired,
        E::AlertReceived(a) => {
            let alert = Alert(u8::from(*a));
            let about_cert = matches!(
                a,
                AlertDescription::BadCertificate
                    | AlertDescription::UnknownCA
                    | AlertDescription::CertificateUnknown
                    | AlertDescription::UnsupportedCertificate
                    | AlertDescription::CertificateExpired
                    | AlertDescription::CertificateRevoked
                    | AlertDescription::AccessDenied
            );
            if client_auth && about_cert {
                TlsKind::ClientCertRefused(alert)
            } else {
                TlsKind::Alert(alert)
            }
        }
        // A plain-HTTP answer ("HTTP/1.1 400 ...") starts with 'H' = 0x48,
        // no TLS content type: rustls sees an invalid record header.
        E::InvalidMessage(_) if handshaking => TlsKind::NotTls,
        E::InvalidMessage(_) => TlsKind::Protocol("InvalidMessage"),
        E::PeerIncompatible(_) => TlsKind::Protocol("PeerIncompatible"),
        E::PeerMisbehaved(_) => TlsKind::Protocol("PeerMisbehaved"),
        E::DecryptError => TlsKind::Protocol("DecryptError"),
        E::PeerSentOversizedRecord if handshaking => TlsKind::NotTls,
        E::PeerSentOversizedRecord => TlsKind::Protocol("PeerSentOversizedRecord"),
        E::NoCertificatesPresented => TlsKind::BadCertificate("NoCertificatesPresented"),
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            TlsKind::Protocol("UnexpectedMessage")
        }
        _ => TlsKind::Protocol("Other"),
    }
}
