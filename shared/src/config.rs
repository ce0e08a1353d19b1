//! Configuration from the environment (12-factor). A missing or malformed setting fails at
//! start with a message that names it.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::NaiveTime;
use chrono_tz::Tz;

pub use crate::tls::{CaBundle, TlsMode};

/// A PostgreSQL connection string; its `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl std::ops::Deref for DatabaseUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact_url(&self.0))
    }
}

/// The connection string without its password (URL `user:pass@` or `password=...`).
pub fn redact_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                return format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &rest[..colon],
                    &rest[at..]
                );
            }
        }
        return url.to_string();
    }
    url.split_whitespace()
        .map(|t| match t.split_once('=') {
            Some(("password", _)) => "password=***".to_string(),
            _ => t.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Instances collected at once: SQS's `MaximumConcurrency` takes 2..=1000, and each collector
/// holds app-database connections (docs/deploy.md), so the template's parameter allows this.
pub const COLLECT_CONCURRENCY: std::ops::RangeInclusive<usize> = 2..=100;
/// Seconds one instance's visit may take (`TIDEMARK_VISIT_TIMEOUT_SECS`, default 90).
pub const VISIT_TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=900;
/// S3 (SigV4) refuses to presign for longer than seven days.
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct Config {
    /// `Debug` shows it without its password.
    pub database_url: DatabaseUrl,
    /// `DATABASE_URL`'s `sslmode` (libpq's meaning; default `prefer`).
    pub db_tls_mode: TlsMode,
    /// `TIDEMARK_DB_CA_FILE`: the CAs trusted for the app database, else the built-in roots.
    pub db_ca: Option<CaBundle>,
    /// Business time zone: `collected_date`, aggregation periods, schedules.
    pub timezone: Tz,
    pub export_bucket: String,
    /// Set only for a non-AWS S3 endpoint (the local stack's).
    pub s3_endpoint: Option<String>,
    pub collect_concurrency: usize,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    /// The whole visit of one instance (connect, every query, persistence); in Lambda also
    /// bounded by the invocation's remaining time.
    pub visit_timeout: Duration,
    /// How long `POST /instances/{id}/actions/collect` waits for its visit before answering
    /// 202 (the template sets 20: API Gateway gives up at 30 s).
    pub collect_now_wait: Duration,
    pub presign_expiry: Duration,
    pub export_part_size: usize,
    pub db_pool_size: usize,
    /// `statement_timeout` and idle limit of the app database's pool.
    pub db_limits: crate::db::Limits,
    pub stats_retention_months: u32,
    pub log_retention_months: u32,
    /// Most exports one owner may have queued or running at once (429 beyond).
    pub max_exports_per_owner: i64,
    /// Exports (object and job) older than this are deleted by maintenance.
    pub export_retention_days: i32,
    /// Daily job times of day in `timezone` (parsed from HH:MM at start).
    pub collect_at: NaiveTime,
    pub aggregate_at: NaiveTime,
    pub maintenance_at: NaiveTime,
    /// Table history is kept for tables of at least this many bytes
    /// (`TIDEMARK_TABLE_HISTORY_MIN_BYTES`, default 64 MiB) ...
    pub table_history_min_bytes: i64,
    /// ... or among the largest this many of their database (`TIDEMARK_TABLE_HISTORY_TOP`).
    pub table_history_top: i64,
    /// `TIDEMARK_SCOPE_PREFIX`: JWT scopes `<prefix>/<role>` grant roles (AWS).
    pub scope_prefix: String,
}

/// A time of day as `HH:MM`, or as the daily EventBridge cron the template passes
/// (`cron(30 3 * * ? *)`), so that `/schedules` shows what AWS runs.
fn daily_time(v: &str) -> Option<NaiveTime> {
    if let Ok(t) = NaiveTime::parse_from_str(v, "%H:%M") {
        return Some(t);
    }
    let fields: Vec<&str> = v
        .strip_prefix("cron(")?
        .strip_suffix(')')?
        .split_whitespace()
        .collect();
    match fields.as_slice() {
        [m, h, "*", "*", "?", "*"] => NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0),
        _ => None,
    }
}

/// The 32-byte AES-256-GCM key, kept apart from `Config` so it never lands in a Debug print.
pub fn parse_credential_key(value: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD
        .decode(value.trim())
        .map_err(|_| "TIDEMARK_CREDENTIAL_KEY must be base64".to_string())?;
    bytes
        .try_into()
        .map_err(|_| "TIDEMARK_CREDENTIAL_KEY must decode to exactly 32 bytes".to_string())
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let opt = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        fn num<T: std::str::FromStr>(
            opt: &impl Fn(&str) -> Option<String>,
            name: &str,
            default: T,
        ) -> Result<T, String> {
            match opt(name) {
                None => Ok(default),
                Some(s) => s
                    .parse()
                    .map_err(|_| format!("{name} must be a number, got {s:?}")),
            }
        }
        fn secs(
            opt: &impl Fn(&str) -> Option<String>,
            name: &str,
            default: u64,
        ) -> Result<Duration, String> {
            num(opt, name, default).map(Duration::from_secs)
        }
        /// `num` within `range`; `why` follows the bounds in the error.
        fn ranged<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
            opt: &impl Fn(&str) -> Option<String>,
            name: &str,
            default: T,
            range: std::ops::RangeInclusive<T>,
            why: &str,
        ) -> Result<T, String> {
            let n = num(opt, name, default)?;
            if range.contains(&n) {
                Ok(n)
            } else {
                Err(format!(
                    "{name} must be between {} and {}{why}",
                    range.start(),
                    range.end()
                ))
            }
        }
        let database_url = opt("DATABASE_URL").ok_or("DATABASE_URL is required")?;
        let (_, db_tls_mode) = crate::tls::split_sslmode(&database_url)?;
        let db_ca = match opt("TIDEMARK_DB_CA_FILE") {
            None => None,
            Some(path) => {
                let pem = std::fs::read(&path)
                    .map_err(|e| format!("TIDEMARK_DB_CA_FILE: cannot read {path}: {e}"))?;
                let certs = crate::tls::parse_pem_bundle(&pem)
                    .map_err(|e| format!("TIDEMARK_DB_CA_FILE: {path}: {e}"))?;
                Some(CaBundle::new(certs))
            }
        };
        let timezone: Tz = opt("TIDEMARK_TIMEZONE")
            .unwrap_or_else(|| "UTC".into())
            .parse()
            .map_err(|_| {
                "TIDEMARK_TIMEZONE must be an IANA time zone such as UTC or Asia/Shanghai"
                    .to_string()
            })?;
        let collect_concurrency: usize = ranged(
            &opt,
            "TIDEMARK_COLLECT_CONCURRENCY",
            5,
            COLLECT_CONCURRENCY,
            "",
        )?;
        let presign_expiry = secs(&opt, "TIDEMARK_PRESIGN_EXPIRY_SECS", 900)?;
        if presign_expiry.is_zero() || presign_expiry > MAX_PRESIGN_EXPIRY {
            return Err(format!(
                "TIDEMARK_PRESIGN_EXPIRY_SECS must be between 1 and {} (7 days, S3's limit)",
                MAX_PRESIGN_EXPIRY.as_secs()
            ));
        }
        let max_exports_per_owner: i64 =
            ranged(&opt, "TIDEMARK_MAX_EXPORTS_PER_OWNER", 5, 1..=1000, "")?;
        let export_retention_days: i32 =
            ranged(&opt, "TIDEMARK_EXPORT_RETENTION_DAYS", 7, 1..=3650, "")?;
        let part_mib: usize = ranged(
            &opt,
            "TIDEMARK_EXPORT_PART_MIB",
            8,
            5..=512,
            " (S3's minimum part is 5 MiB)",
        )?;
        let time = |name: &str, default: &str| -> Result<NaiveTime, String> {
            let v = opt(name).unwrap_or_else(|| default.to_string());
            daily_time(&v).ok_or_else(|| {
                format!("{name} must be HH:MM or a daily cron(M H * * ? *), got {v:?}")
            })
        };
        Ok(Config {
            database_url: DatabaseUrl(database_url),
            db_tls_mode,
            db_ca,
            timezone,
            export_bucket: opt("TIDEMARK_EXPORT_BUCKET")
                .unwrap_or_else(|| "tidemark-exports".into()),
            s3_endpoint: opt("TIDEMARK_S3_ENDPOINT"),
            collect_concurrency,
            connect_timeout: secs(&opt, "TIDEMARK_CONNECT_TIMEOUT_SECS", 10)?,
            statement_timeout: secs(&opt, "TIDEMARK_STATEMENT_TIMEOUT_SECS", 60)?,
            visit_timeout: Duration::from_secs(ranged(
                &opt,
                "TIDEMARK_VISIT_TIMEOUT_SECS",
                90,
                VISIT_TIMEOUT_SECS,
                "",
            )?),
            collect_now_wait: Duration::from_secs(ranged(
                &opt,
                "TIDEMARK_COLLECT_NOW_WAIT_SECS",
                20,
                0..=300,
                " (on AWS keep it under API Gateway's 30 s)",
            )?),
            presign_expiry,
            export_part_size: part_mib * 1024 * 1024,
            db_pool_size: num(&opt, "TIDEMARK_DB_POOL_SIZE", 16)?,
            db_limits: crate::db::Limits {
                statement_timeout: secs(&opt, "TIDEMARK_DB_STATEMENT_TIMEOUT_SECS", 60)?,
                idle_timeout: secs(&opt, "TIDEMARK_DB_IDLE_TIMEOUT_SECS", 300)?,
            },
            stats_retention_months: num(&opt, "TIDEMARK_STATS_RETENTION_MONTHS", 24)?,
            log_retention_months: num(&opt, "TIDEMARK_LOG_RETENTION_MONTHS", 3)?,
            export_retention_days,
            max_exports_per_owner,
            collect_at: time("TIDEMARK_COLLECT_AT", "03:00")?,
            aggregate_at: time("TIDEMARK_AGGREGATE_AT", "04:00")?,
            maintenance_at: time("TIDEMARK_MAINTENANCE_AT", "05:00")?,
            table_history_min_bytes: ranged(
                &opt,
                "TIDEMARK_TABLE_HISTORY_MIN_BYTES",
                64 * 1024 * 1024,
                0..=i64::MAX,
                "",
            )?,
            table_history_top: ranged(&opt, "TIDEMARK_TABLE_HISTORY_TOP", 50, 0..=100_000, "")?,
            scope_prefix: {
                let p = opt("TIDEMARK_SCOPE_PREFIX")
                    .unwrap_or_else(|| crate::web::auth::DEFAULT_SCOPE_PREFIX.into());
                if p.ends_with('/') || p.contains(char::is_whitespace) {
                    return Err(format!(
                        "TIDEMARK_SCOPE_PREFIX must not end with / nor contain spaces, got {p:?}"
                    ));
                }
                p
            },
        })
    }

    /// Today's business date in the configured time zone.
    pub fn business_date(&self, at: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
        at.with_timezone(&self.timezone).date_naive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn debug_hides_the_database_password() {
        let c = cfg(&[(
            "DATABASE_URL",
            "postgres://app:hunter2-secret@db:5432/t?sslmode=require",
        )])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("app:***@db:5432"), "{shown}");
        assert_eq!(c.db_tls_mode, TlsMode::Require);
        assert_eq!(
            redact_url("host=h password=hunter2 user=u"),
            "host=h password=*** user=u"
        );
    }

    #[test]
    fn missing_and_malformed_settings_are_named() {
        assert!(cfg(&[]).unwrap_err().contains("DATABASE_URL"));
        let e = cfg(&[
            ("DATABASE_URL", "postgres://x"),
            ("TIDEMARK_TIMEZONE", "Mars/Olympus"),
        ])
        .unwrap_err();
        assert!(e.contains("TIDEMARK_TIMEZONE"));
        let e = cfg(&[
            ("DATABASE_URL", "postgres://x"),
            ("TIDEMARK_COLLECT_CONCURRENCY", "0"),
        ])
        .unwrap_err();
        assert!(e.contains("TIDEMARK_COLLECT_CONCURRENCY"));
        let c = cfg(&[("DATABASE_URL", "postgres://x")]).unwrap();
        assert_eq!(c.collect_concurrency, 5);
        assert_eq!(c.visit_timeout, Duration::from_secs(90));
        assert_eq!(c.export_part_size, 8 * 1024 * 1024);
        assert_eq!(c.aggregate_at, NaiveTime::from_hms_opt(4, 0, 0).unwrap());
        let e = cfg(&[
            ("DATABASE_URL", "postgres://x"),
            ("TIDEMARK_COLLECT_AT", "25:00"),
        ])
        .unwrap_err();
        assert!(e.contains("TIDEMARK_COLLECT_AT"));
        assert!(parse_credential_key("short").is_err());
        let e = cfg(&[("DATABASE_URL", "postgres://x/db?sslmode=verify")]).unwrap_err();
        assert!(e.contains("sslmode"), "{e}");
        let e = cfg(&[
            ("DATABASE_URL", "postgres://x"),
            ("TIDEMARK_DB_CA_FILE", "/nonexistent/ca.pem"),
        ])
        .unwrap_err();
        assert!(e.contains("TIDEMARK_DB_CA_FILE"), "{e}");
        let base = ("DATABASE_URL", "postgres://x");
        for (name, bad) in [
            ("TIDEMARK_PRESIGN_EXPIRY_SECS", "604801"),
            ("TIDEMARK_PRESIGN_EXPIRY_SECS", "0"),
            ("TIDEMARK_EXPORT_RETENTION_DAYS", "0"),
            ("TIDEMARK_COLLECT_CONCURRENCY", "1"),
            ("TIDEMARK_COLLECT_CONCURRENCY", "101"),
            ("TIDEMARK_COLLECT_AT", "cron(0 3 ? * MON-FRI *)"),
            ("TIDEMARK_VISIT_TIMEOUT_SECS", "0"),
            ("TIDEMARK_VISIT_TIMEOUT_SECS", "901"),
            ("TIDEMARK_VISIT_TIMEOUT_SECS", "soon"),
            ("TIDEMARK_COLLECT_NOW_WAIT_SECS", "301"),
        ] {
            assert!(
                cfg(&[base, (name, bad)]).unwrap_err().contains(name),
                "{name}={bad}"
            );
        }
        let c = cfg(&[
            base,
            ("TIDEMARK_PRESIGN_EXPIRY_SECS", "604800"),
            ("TIDEMARK_EXPORT_RETENTION_DAYS", "30"),
            ("TIDEMARK_COLLECT_AT", "cron(30 2 * * ? *)"),
        ])
        .unwrap();
        assert_eq!(c.export_retention_days, 30);
        assert_eq!(c.collect_at, NaiveTime::from_hms_opt(2, 30, 0).unwrap());
        assert!(parse_credential_key(&STANDARD.encode([7u8; 32])).is_ok());
    }
}
