//! MySQL and MariaDB: the on-disk size of each schema, in bytes.
//!
//! Which catalog, on which server, and why:
//! - InnoDB keeps each table in its own tablespace file by default (`innodb_file_per_table`),
//!   and the server reports each file's real size: `information_schema.INNODB_TABLESPACES`
//!   (MySQL 8.0+, column `FILE_SIZE`) or `information_schema.INNODB_SYS_TABLESPACES` (MariaDB
//!   10.x and MySQL 5.7, same column). A tablespace named `schema/table` (partitions
//!   `schema/table#P#p0`) belongs to `schema`; the name is in MySQL's file-name encoding, whose
//!   `@XXXX` escapes we decode. This is the size on disk, free pages included.
//! - Tables of other engines (MyISAM, Aria, ...) have no tablespace: their
//!   `DATA_LENGTH + INDEX_LENGTH + DATA_FREE` from `information_schema.TABLES` is added.
//! - Where no tablespace file can be attributed to a schema that has InnoDB tables (the view is
//!   missing or needs the PROCESS privilege we lack, `innodb_file_per_table=OFF`, a name whose
//!   encoding we do not decode), that schema's InnoDB tables count by the same
//!   `DATA_LENGTH + INDEX_LENGTH + DATA_FREE` from `information_schema.TABLES`.

use std::collections::HashMap;

use anyhow::Context;
use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts};

use crate::tls::TlsMode;

use tokio::time::Instant;

use super::adapter::{
    connect, Adapter, Collected, DatabaseSize, DatabaseTables, Engine, Exclusions, Target,
};

pub struct MySql;

/// Underscores escaped: `tmp\_%` drops `tmp_orders`, not `tmpfs_stats`.
static ENGINE: Engine = Engine {
    db_type: "mysql",
    default_exclusions: &[
        "information_schema",
        "performance_schema",
        "mysql",
        "sys",
        "tmp\\_%",
        "temp\\_%",
        "#sql%",
    ],
};

#[async_trait]
impl Adapter for MySql {
    fn engine(&self) -> &'static Engine {
        &ENGINE
    }

    async fn collect(&self, target: &Target, exclusions: &Exclusions) -> anyhow::Result<Collected> {
        let (mut conn, encrypted) = open(target).await?;
        let result = bounded(target, sizes(&mut conn, target, exclusions, encrypted)).await;
        let _ = conn.disconnect().await;
        result
    }

    async fn version(&self, target: &Target) -> anyhow::Result<String> {
        let (mut conn, _) = open(target).await?;
        let result = bounded(target, async {
            let v: Option<String> = conn
                .query_first("SELECT VERSION()")
                .await
                .context("reading the server version")?;
            anyhow::Ok(v.unwrap_or_default())
        })
        .await;
        let _ = conn.disconnect().await;
        result
    }

    async fn tables(
        &self,
        target: &Target,
        databases: &[String],
        deadline: Instant,
    ) -> anyhow::Result<Vec<DatabaseTables>> {
        let where_ = format!("{}:{}", target.host, target.port);
        let work = async {
            let (mut conn, _) = open(target).await?;
            let result = super::mysql_tables::read(&mut conn, target, databases, deadline).await;
            let _ = conn.disconnect().await;
            result
        };
        tokio::time::timeout_at(deadline, work)
            .await
            .map_err(|_| anyhow::anyhow!("{where_} did not answer before the visit's deadline"))
            .and_then(|r| r)
    }
}

/// Connects and authenticates under the instance's TLS mode; whether TLS was agreed.
async fn open(target: &Target) -> anyhow::Result<(Conn, bool)> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(target.host.clone())
        .tcp_port(target.port)
        .user(Some(
            target.username.clone().unwrap_or_else(|| "root".into()),
        ))
        .pass(target.password.clone().filter(|p| !p.is_empty()))
        // Talk to the host:port we were given, never a local socket it may advertise.
        .prefer_socket(false);
    crate::tls::install_default_provider();
    let ssl = ssl_opts(target);
    let connect = |ssl: Option<SslOpts>| connect(target, Conn::new(opts.clone().ssl_opts(ssl)));
    let encrypted = ssl.is_some();
    // The driver asks for TLS before it sends any credential and stops when the server
    // does not offer it; prefer then tries again in plaintext, as libpq does.
    Ok(match connect(ssl).await {
        Err(e)
            if target.tls_mode == TlsMode::Prefer
                && format!("{e:#}").contains("does not offer it") =>
        {
            (connect(None).await?, false)
        }
        other => (other?, encrypted),
    })
}

/// Bounds the statements of one visit (the server-side limits may not exist).
async fn bounded<T>(
    target: &Target,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let where_ = format!("{}:{}", target.host, target.port);
    tokio::time::timeout(target.statement_timeout * 4, work)
        .await
        .map_err(|_| anyhow::anyhow!("{where_} did not answer within the statement timeout"))
        .and_then(|r| r)
}

/// The driver's TLS options for the instance's mode; `None`: plaintext. The driver trusts the
/// compiled-in roots unless a CA is given, which then is the only one trusted.
fn ssl_opts(target: &Target) -> Option<SslOpts> {
    let ca = target.tls_ca_pem.as_ref().map(|pem| {
        SslOpts::default()
            .with_root_certs(vec![pem.as_bytes().to_vec().into()])
            .with_disable_built_in_roots(true)
    });
    let has_ca = ca.is_some();
    let base = ca.unwrap_or_default();
    Some(match target.tls_mode {
        TlsMode::Disable => return None,
        TlsMode::Prefer | TlsMode::Require if !has_ca => {
            base.with_danger_accept_invalid_certs(true)
        }
        TlsMode::Prefer | TlsMode::Require | TlsMode::VerifyCa => {
            base.with_danger_skip_domain_validation(true)
        }
        TlsMode::VerifyFull => base,
    })
}

async fn sizes(
    conn: &mut Conn,
    target: &Target,
    exclusions: &Exclusions,
    encrypted: bool,
) -> anyhow::Result<Collected> {
    let version = limit_statements(conn, target.statement_timeout).await?;

    let schemas: Vec<String> = conn
        .query::<String, _>("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        .await
        .context("listing schemas from information_schema.SCHEMATA")?
        .into_iter()
        .filter(|s| !exclusions.excludes(s))
        .collect();

    let mut files: HashMap<String, i64> = HashMap::new();
    if let Some(view) = tablespace_view(conn).await? {
        match conn
            .query::<(String, Option<u64>), _>(format!(
                "SELECT NAME, FILE_SIZE FROM information_schema.{view}"
            ))
            .await
        {
            Ok(rows) => {
                for (name, size) in rows {
                    if let Some(schema) = name.split_once('/').and_then(|(s, _)| decode(s)) {
                        *files.entry(schema).or_default() += to_i64(size.unwrap_or(0));
                    }
                }
            }
            // Usually the PROCESS privilege: fall back to information_schema.TABLES.
            Err(e) => tracing::info!(error = %e, view, "tablespace sizes not readable"),
        }
    }

    let mut innodb: HashMap<String, i64> = HashMap::new();
    let mut other: HashMap<String, i64> = HashMap::new();
    let rows: Vec<(String, bool, Option<u64>)> = conn
        .query(
            "SELECT TABLE_SCHEMA, COALESCE(ENGINE, '') = 'InnoDB', \
             CAST(SUM(COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) + COALESCE(DATA_FREE, 0)) AS UNSIGNED) \
             FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
             GROUP BY TABLE_SCHEMA, COALESCE(ENGINE, '') = 'InnoDB'",
        )
        .await
        .context("reading table sizes from information_schema.TABLES")?;
    for (schema, is_innodb, bytes) in rows {
        let target = if is_innodb { &mut innodb } else { &mut other };
        *target.entry(schema).or_default() += to_i64(bytes.unwrap_or(0));
    }

    let databases = schemas
        .into_iter()
        .map(|schema| {
            let innodb_bytes = match files.get(&schema) {
                Some(f) => *f,
                None => innodb.get(&schema).copied().unwrap_or(0),
            };
            let size = innodb_bytes.saturating_add(other.get(&schema).copied().unwrap_or(0));
            DatabaseSize {
                database_name: schema,
                size_bytes: size,
                data_size_bytes: Some(size),
                log_size_bytes: None,
            }
        })
        .collect();
    Ok(Collected {
        version,
        databases,
        encrypted,
    })
}

/// Reads the server's version and has the server stop any statement that runs longer than
/// `timeout` (MariaDB seconds, MySQL milliseconds); servers too old for either only get the
/// client-side bound.
pub(super) async fn limit_statements(
    conn: &mut Conn,
    timeout: std::time::Duration,
) -> anyhow::Result<String> {
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await
        .context("reading the server version")?
        .unwrap_or_default();
    let limit = if version.contains("MariaDB") {
        format!(
            "SET SESSION max_statement_time = {}",
            timeout.as_secs_f64().max(0.001)
        )
    } else {
        format!(
            "SET SESSION max_execution_time = {}",
            timeout.as_millis().max(1)
        )
    };
    if let Err(e) = conn.query_drop(limit).await {
        tracing::debug!(error = %e, "server-side statement timeout not supported");
    }
    Ok(version)
}

/// MySQL 8 renamed `INNODB_SYS_TABLESPACES` to `INNODB_TABLESPACES`; MariaDB keeps the old name.
async fn tablespace_view(conn: &mut Conn) -> anyhow::Result<Option<&'static str>> {
    let names: Vec<String> = conn
        .query(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'information_schema' \
             AND TABLE_NAME IN ('INNODB_TABLESPACES', 'INNODB_SYS_TABLESPACES')",
        )
        .await
        .context("looking for the tablespace view")?;
    let has = |n: &str| names.iter().any(|x| x.eq_ignore_ascii_case(n));
    Ok(if has("INNODB_TABLESPACES") {
        Some("INNODB_TABLESPACES")
    } else if has("INNODB_SYS_TABLESPACES") {
        Some("INNODB_SYS_TABLESPACES")
    } else {
        None
    })
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// MySQL's file-name encoding: letters, digits and `_` as they are, anything else as `@XXXX`
/// (hex code point). Other escape forms (two-character codes used for some non-ASCII
/// letters) are not decoded: `None`, and the schema falls back to `information_schema.TABLES`.
fn decode(encoded: &str) -> Option<String> {
    let mut out = String::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        if c != '@' {
            out.push(c);
            continue;
        }
        let hex: String = chars.by_ref().take(4).collect();
        if hex.len() != 4 || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
            return None;
        }
        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn file_name_encoding_is_decoded() {
        assert_eq!(decode("orders").as_deref(), Some("orders"));
        assert_eq!(decode("my@002ddb").as_deref(), Some("my-db"));
        assert_eq!(decode("a@0024b@002e").as_deref(), Some("a$b."));
        assert_eq!(decode("caf@0G"), None);
    }
}
