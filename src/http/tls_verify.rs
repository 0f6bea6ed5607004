//! The two certificate verifiers of our own: `--insecure`'s (any
//! certificate) and `--ca-cert`'s (its roots, plus the self-signed server
//! certificate given as is).
//!
//! Why the second: `openssl req -x509`, the usual way to make a test
//! server's certificate, marks it a CA (basicConstraints CA:TRUE), and
//! WebPKI refuses a CA certificate as a server's own
//! (`CaUsedAsEndEntity`) even when it is a trust anchor. curl and wrk's
//! OpenSSL accept it when it is the certificate given with `--cacert`, so
//! locusta does too: when the server presents a certificate that is
//! byte for byte one of `--ca-cert`'s and WebPKI refused it for that reason
//! only (its dates are checked before that rule, so they were fine), the
//! name is still checked and the handshake's signatures still prove the
//! server holds its key. Anything else goes through WebPKI unchanged.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// `--insecure`: any certificate, any name, any date; the handshake's
/// signatures are still checked against the presented certificate.
#[derive(Debug)]
pub(super) struct AnyCert(pub(super) Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether WebPKI refused a CA certificate as the server's own. rustls
/// passes webpki's reasons other than its own list boxed, so the reason is
/// known by its name (webpki's `Error::CaUsedAsEndEntity`).
pub(super) fn ca_used_as_end_entity(o: &rustls::OtherError) -> bool {
    format!("{o:?}").contains("CaUsedAsEndEntity")
}

/// `--ca-cert`: WebPKI against its roots, and its own certificates accepted
/// as the server's (see the module doc).
#[derive(Debug)]
pub(super) struct GivenCerts {
    webpki: Arc<WebPkiServerVerifier>,
    given: Vec<CertificateDer<'static>>,
}

impl GivenCerts {
    pub(super) fn new(
        roots: rustls::RootCertStore,
        given: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<GivenCerts, String> {
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(GivenCerts { webpki, given })
    }
}

impl ServerCertVerifier for GivenCerts {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused =
            match self
                .webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
        let ca_as_leaf = matches!(
            &refused,
            rustls::Error::InvalidCertificate(CertificateError::Other(o))
                if ca_used_as_end_entity(o)
        );
        let given = self.given.iter().any(|c| c.as_ref() == end_entity.as_ref());
        if !(ca_as_leaf && given) {
            return Err(refused);
        }
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
