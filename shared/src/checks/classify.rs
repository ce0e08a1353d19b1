//! One connection attempt and what its failure was, in the categories people act on:
//! `dns` (fix the name), `refused` (nothing listens), `timeout` (firewall, wrong address),
//! `tls`, `auth` (user or password), `permission` (the user may not connect there), `other`.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::collect::adapter::{Adapter, Target, TimedOut, TlsFailed};

crate::text_enum! {
    /// A check's result: `ok` or why it failed.
    pub enum Category {
        Ok = "ok",
        Dns = "dns",
        Refused = "refused",
        Timeout = "timeout",
        Tls = "tls",
        Auth = "auth",
        Permission = "permission",
        Other = "other",
    }
}

/// What one check found.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub ok: bool,
    pub status: Category,
    /// Why it failed, for people; never the password.
    pub message: Option<String>,
    pub version: Option<String>,
    pub duration_ms: i64,
}

impl Outcome {
    pub fn failed(status: Category, message: String, took: Duration) -> Outcome {
        Outcome {
            ok: false,
            status,
            message: Some(message),
            version: None,
            duration_ms: millis(took),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Connects to `target` through its engine's adapter and reads the version, within the
/// connect timeout plus the statement timeout.
pub async fn check(adapter: &dyn Adapter, target: &Target) -> Outcome {
    let started = Instant::now();
    let bound = target.connect_timeout + target.statement_timeout;
    let result = match tokio::time::timeout(bound, adapter.version(target)).await {
        Ok(r) => r,
        Err(_) => Err(TimedOut(format!("{}:{}", target.host, target.port), bound).into()),
    };
    let took = started.elapsed();
    match result {
        Ok(version) => Outcome {
            ok: true,
            status: Category::Ok,
            message: None,
            version: Some(version),
            duration_ms: millis(took),
        },
        Err(e) => {
            let message = scrub(&format!("{e:#}"), target.password.as_deref());
            Outcome::failed(classify(&e), message, took)
        }
    }
}

/// A message with the password (should a driver ever echo it) masked.
fn scrub(message: &str, password: Option<&str>) -> String {
    match password.filter(|p| p.len() >= 3) {
        Some(p) => message.replace(p, "***"),
        None => message.to_string(),
    }
}

/// The category of a failed connection, from the errors in its chain.
pub fn classify(e: &anyhow::Error) -> Category {
    for cause in e.chain() {
        if cause.is::<TimedOut>() {
            return Category::Timeout;
        }
        if cause.is::<TlsFailed>() {
            return Category::Tls;
        }
        if let Some(pg) = cause.downcast_ref::<tokio_postgres::Error>() {
            if let Some(state) = pg.code() {
                return match state.code() {
                    "28P01" | "28000" => Category::Auth,
                    "42501" => Category::Permission,
                    _ => Category::Other,
                };
            }
        }
        if let Some(mysql_async::Error::Server(server)) = cause.downcast_ref::<mysql_async::Error>()
        {
            return match server.code {
                // Access denied for user; plugin/password expired.
                1045 | 1698 | 1862 => Category::Auth,
                // Access denied to a database, host not allowed to connect.
                1044 | 1130 | 1142 => Category::Permission,
                _ => Category::Other,
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if let Some(c) = io_category(io) {
                return c;
            }
        }
    }
    // Drivers wrap the resolver's error in their own text at times.
    let text = format!("{e:#}").to_ascii_lowercase();
    if is_dns_text(&text) {
        Category::Dns
    } else if text.contains("connection refused") {
        Category::Refused
    } else if text.contains("timed out") {
        Category::Timeout
    } else {
        Category::Other
    }
}

fn io_category(io: &std::io::Error) -> Option<Category> {
    use std::io::ErrorKind;
    match io.kind() {
        ErrorKind::ConnectionRefused => Some(Category::Refused),
        ErrorKind::TimedOut => Some(Category::Timeout),
        _ if is_dns_text(&io.to_string().to_ascii_lowercase()) => Some(Category::Dns),
        _ => None,
    }
}

/// The resolver's words (glibc, musl, macOS) for a name that does not resolve.
fn is_dns_text(text: &str) -> bool {
    [
        "failed to lookup address",
        "name or service not known",
        "nodename nor servname",
        "no address associated",
        "temporary failure in name resolution",
        "name does not resolve",
    ]
    .iter()
    .any(|s| text.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_from_error_chains() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            classify(&anyhow::Error::new(refused).context("could not connect")),
            Category::Refused
        );
        let dns = std::io::Error::other(
            "failed to lookup address information: Name or service not known",
        );
        assert_eq!(classify(&anyhow::Error::new(dns)), Category::Dns);
        let t = TimedOut("h:1".into(), Duration::from_secs(1));
        assert_eq!(classify(&t.into()), Category::Timeout);
        let tls = TlsFailed("h:1".into(), "unknown CA".into());
        assert_eq!(classify(&tls.into()), Category::Tls);
        assert_eq!(classify(&anyhow::anyhow!("odd")), Category::Other);
        assert_eq!(scrub("pw s3cret in", Some("s3cret")), "pw *** in");
    }
}
