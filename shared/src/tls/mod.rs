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

mod pg;
mod verify;

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

pub use pg::{PgTls, PgTlsConnect, PgTlsStream};
pub use verify::{client_config, describe_failure};

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

/// Makes ring the process default so libraries that build their own configuration (the MySQL
/// driver) find it; harmless when already installed.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
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
