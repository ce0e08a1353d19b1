//! TLS towards PostgreSQL and MySQL servers (the app database and the managed ones), one
//! stack: rustls with the ring provider, as the AWS SDK uses.
//!
//! Modes keep libpq's `sslmode` meaning:
//! - `disable`: plaintext.
//! - `prefer` (default): TLS when the server offers it, else plaintext.
//! - `require`: TLS or nothing. The certificate is not checked, unless a CA is given: then the
//!   chain must lead to it, as with `verify-ca` (libpq does the same with a root certificate).
//! - `verify-ca`: TLS, and the certificate chain must lead to a trusted CA.
//! - `verify-full`: `verify-ca`, and the certificate must name the host we connect to.
//!
//! Trusted CAs: the PEM bundle given (`TIDEMARK_DB_CA_FILE`, an instance's `tls_ca_pem`), else
//! the Mozilla roots compiled in (`webpki-roots`, the same as the MySQL driver's). `prefer`
//! with a CA given verifies the chain too; a failed handshake is a failed connection, never
//! a silent fall back to plaintext.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// How a connection is protected (an instance's `tls_mode`, `DATABASE_URL`'s `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    pub const NAMES: &'static str = "disable, prefer, require, verify-ca, verify-full";

    pub fn parse(s: &str) -> Option<TlsMode> {
        Some(match s {
            "disable" => TlsMode::Disable,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    /// TLS or no connection at all: nothing (no user name, no password) is sent in clear.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull
        )
    }

    /// tokio-postgres knows only disable/prefer/require; verification is ours (the verifier).
    pub fn pg_ssl_mode(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode;
        match self {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        }
    }
}

/// Trusted CA certificates (a PEM bundle, parsed once).
#[derive(Clone)]
pub struct CaBundle(Arc<Vec<CertificateDer<'static>>>);

impl CaBundle {
    pub fn new(certs: Vec<CertificateDer<'static>>) -> Self {
        CaBundle(Arc::new(certs))
    }
    pub fn certs(&self) -> &[CertificateDer<'static>] {
        &self.0
    }
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaBundle({} certificates)", self.0.len())
    }
}

/// CA certificates from PEM text; an error when there is none or one is malformed.
pub fn parse_pem_bundle(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate bundle ({e})"))?;
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) found".into());
    }
    let mut store = RootCertStore::empty();
    for c in &certs {
        store
            .add(c.clone())
            .map_err(|e| format!("a certificate of the bundle is not usable as a CA ({e})"))?;
    }
    Ok(certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process default so libraries that build their own configuration (the MySQL
/// driver) find it; harmless when already installed.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
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

/// tokio-postgres connector over rustls. `None` config: the mode is `disable`.
#[derive(Clone)]
pub struct PgTls {
    config: Option<Arc<ClientConfig>>,
}

impl PgTls {
    pub fn new(config: Option<Arc<ClientConfig>>) -> Self {
        PgTls { config }
    }
}

impl fmt::Debug for PgTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgTls(enabled: {})", self.config.is_some())
    }
}

impl<S> MakeTlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = PgTlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<PgTlsConnect> {
        let name = ServerName::try_from(domain.to_string()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{domain:?} is not a host name TLS can check"),
            )
        })?;
        Ok(PgTlsConnect {
            config: self.config.clone(),
            name,
        })
    }
}

pub struct PgTlsConnect {
    config: Option<Arc<ClientConfig>>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let config = self.config.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "TLS is disabled (sslmode=disable)",
                )
            })?;
            let s = tokio_rustls::TlsConnector::from(config)
                .connect(self.name, stream)
                .await?;
            Ok(PgTlsStream(s))
        })
    }
}

pub struct PgTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for PgTlsStream<S> {
    // No tls-server-end-point binding: its hash depends on the certificate's signature
    // algorithm; SCRAM still runs, announcing that the client does not bind.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Takes `sslmode` out of a PostgreSQL connection string (URL or `key=value` form), since
/// tokio-postgres does not know the verify modes; the mode decides our verifier instead.
pub fn split_sslmode(conn: &str) -> Result<(String, TlsMode), String> {
    let bad = |v: &str| {
        format!(
            "DATABASE_URL has an unknown sslmode {v:?} (one of {})",
            TlsMode::NAMES
        )
    };
    let mut mode = TlsMode::Prefer;
    if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        let Some((base, query)) = conn.split_once('?') else {
            return Ok((conn.to_string(), mode));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", v)) => mode = TlsMode::parse(v).ok_or_else(|| bad(v))?,
                _ => kept.push(pair),
            }
        }
        let url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((url, mode));
    }
    let mut kept = Vec::new();
    for token in conn.split_whitespace() {
        match token.split_once('=') {
            Some(("sslmode", v)) => {
                let v = v.trim_matches('\'');
                mode = TlsMode::parse(v).ok_or_else(|| bad(v))?;
            }
            _ => kept.push(token),
        }
    }
    Ok((kept.join(" "), mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_taken_out_of_both_forms() {
        let (u, m) =
            split_sslmode("postgres://u:p@h:5432/db?sslmode=verify-full&application_name=x")
                .unwrap();
        assert_eq!(u, "postgres://u:p@h:5432/db?application_name=x");
        assert_eq!(m, TlsMode::VerifyFull);
        let (u, m) = split_sslmode("postgres://u@h/db").unwrap();
        assert_eq!((u.as_str(), m), ("postgres://u@h/db", TlsMode::Prefer));
        let (u, m) = split_sslmode("host=h sslmode=disable user=u").unwrap();
        assert_eq!((u.as_str(), m), ("host=h user=u", TlsMode::Disable));
        let e = split_sslmode("postgres://h/db?sslmode=allow").unwrap_err();
        assert!(e.contains("sslmode") && e.contains("allow"), "{e}");
    }

    #[test]
    fn modes_round_trip_and_bundles_are_checked() {
        for name in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(TlsMode::parse(name).unwrap().as_str(), name);
        }
        assert!(TlsMode::parse("verify_full").is_none());
        assert!(parse_pem_bundle(b"hello").is_err());
        assert!(parse_pem_bundle(b"").is_err());
        assert!(client_config(TlsMode::Disable, None).unwrap().is_none());
        assert!(client_config(TlsMode::VerifyFull, None).unwrap().is_some());
    }
}
