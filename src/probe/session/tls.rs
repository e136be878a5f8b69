//! TLS for the HTTPS check (rustls, ring provider). Verification is off by default: a
//! health check talks to one chosen real server, often with a test or internal certificate;
//! `--tls-verify` checks the chain against the system's (or a given) CA bundle and the name.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use super::SessionError;

/// TLS options of the HTTPS check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsOptions {
    /// The server name sent (SNI) and, with `verify`, checked; the VIP when unset.
    pub sni: Option<String>,
    pub verify: bool,
    /// CA bundle for `verify`; the system bundle when unset.
    pub ca_file: Option<PathBuf>,
}

const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Accepts any certificate; the handshake's signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        crypto::verify_tls12_signature(
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
        crypto::verify_tls13_signature(
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

fn load_roots(path: &Path) -> Result<rustls::RootCertStore, SessionError> {
    let bad = |detail: String| SessionError::Tls {
        detail: format!("cannot read the CA bundle {}: {detail}", path.display()),
    };
    let mut roots = rustls::RootCertStore::empty();
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?;
    for cert in iter {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        // A bundle may hold certificates webpki cannot use; the others still count.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(bad("it holds no usable certificate".into()));
    }
    Ok(roots)
}

/// A client connection for one session to `vip`.
pub fn connect(options: &TlsOptions, vip: IpAddr) -> Result<ClientConnection, SessionError> {
    let provider = Arc::new(crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SessionError::Tls {
            detail: e.to_string(),
        })?;
    let config = if options.verify {
        let path = options
            .ca_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(SYSTEM_CA));
        builder
            .with_root_certificates(load_roots(&path)?)
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    let name = match &options.sni {
        Some(n) => ServerName::try_from(n.clone()).map_err(|_| SessionError::Tls {
            detail: format!("'{n}' is not a valid TLS server name"),
        })?,
        None => ServerName::IpAddress(vip.into()),
    };
    ClientConnection::new(Arc::new(config), name).map_err(|e| SessionError::Tls {
        detail: e.to_string(),
    })
}
