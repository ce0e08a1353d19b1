//! The client configuration per mode, its certificate verifier, and TLS failures in words.

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::{install_default_provider, TlsMode};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
/// The client configuration for `mode` (`None` for `disable`). `ca`: the trusted CAs, else the
/// compiled-in roots.
pub fn client_config(
    mode: TlsMode,
    ca: Option<&[CertificateDer<'static>]>,
) -> Result<Option<Arc<ClientConfig>>, rustls::Error> {
    install_default_provider();
    let check = match (mode, ca.is_some()) {
        (TlsMode::Disable, _) => return Ok(None),
        (TlsMode::Prefer | TlsMode::Require, false) => Check::Nothing,
        (TlsMode::Prefer | TlsMode::Require | TlsMode::VerifyCa, _) => Check::Chain,
        (TlsMode::VerifyFull, _) => Check::ChainAndName,
    };
    let mut roots = RootCertStore::empty();
    match ca {
        Some(certs) => {
            for c in certs {
                roots.add(c.clone())?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = provider();
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let verifier = Verifier {
        check,
        webpki,
        provider: provider.clone(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

#[derive(Debug, Clone, Copy)]
enum Check {
    /// `prefer`/`require` without a CA: encrypted, the peer not authenticated.
    Nothing,
    Chain,
    ChainAndName,
}

#[derive(Debug)]
struct Verifier {
    check: Check,
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = match self.check {
            Check::Nothing => return Ok(ServerCertVerified::assertion()),
            Check::Chain | Check::ChainAndName => self.webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
        };
        match (self.check, result) {
            // webpki checks the name only after the chain is good: ignoring it is verify-ca.
            (
                Check::Chain,
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )),
            ) => Ok(ServerCertVerified::assertion()),
            (_, r) => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What went wrong in a TLS handshake, for people: the rustls error found anywhere in `err`'s
/// chain, in words. `None` when the failure was not about TLS.
pub fn describe_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = find_rustls(e) {
            return Some(describe_rustls(r));
        }
        let text = e.to_string();
        // tokio-postgres and mysql_async, when the server declines TLS.
        if text.contains("server does not support TLS")
            || text.contains("server does not have this capability")
        {
            return Some(
                "TLS is required but the server does not offer it; nothing was sent in clear"
                    .into(),
            );
        }
        cur = e.source();
    }
    None
}

fn find_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r);
    }
    // io::Error hides its payload from `source()`; look inside.
    e.downcast_ref::<io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

fn describe_rustls(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::UnhandledCriticalExtension => {
                "TLS handshake failed: unknown CA (the server's certificate is not signed by a trusted CA)".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "TLS handshake failed: name mismatch (the server's certificate does not name this host)".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "TLS handshake failed: the server's certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "TLS handshake failed: the server's certificate is not valid yet".into()
            }
            CertificateError::Revoked => "TLS handshake failed: the server's certificate is revoked".into(),
            other => format!("TLS handshake failed: bad server certificate ({other:?})"),
        },
        E::AlertReceived(a) => format!("TLS handshake failed: the server sent alert {a:?}"),
        E::PeerIncompatible(p) => format!("TLS handshake failed: no common protocol ({p:?})"),
        other => format!("TLS handshake failed: {other}"),
    }
}
