//! PostgreSQL: inventory from `pg_database`, size from `pg_database_size` (the files of the
//! database's directory in every tablespace, i.e. its on-disk size), in bytes.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use tokio::time::Instant;

use crate::tls::{client_config, parse_pem_bundle, CaBundle, PgTls};

use super::adapter::{
    connect, Adapter, Collected, DatabaseSize, DatabaseTables, Engine, Exclusions, Target,
};

pub struct Postgres;

/// `pg\_%`: the underscore is literal (`pg_%` as LIKE would also drop `pgbench`).
static ENGINE: Engine = Engine {
    db_type: "postgresql",
    default_exclusions: &["template0", "template1", "postgres", "pg\\_%"],
};

#[async_trait]
impl Adapter for Postgres {
    fn engine(&self) -> &'static Engine {
        &ENGINE
    }

    async fn collect(&self, target: &Target, exclusions: &Exclusions) -> anyhow::Result<Collected> {
        let where_ = format!("{}:{}", target.host, target.port);
        let (client, connection) = open(target, None, target.statement_timeout).await?;
        let result = async {
            let version: String = client
                .query_one("SHOW server_version", &[])
                .await
                .context("reading the server version")?
                .try_get(0)?;
            // The server's own view: under prefer only it knows whether TLS was agreed.
            let encrypted: bool = client
                .query_one(
                    "SELECT COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                    &[],
                )
                .await
                .context("reading pg_stat_ssl")?
                .try_get(0)?;
            let names: Vec<String> = client
                .query(
                    "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname",
                    &[],
                )
                .await
                .context("listing databases from pg_database")?
                .iter()
                .map(|r| r.try_get::<_, String>(0))
                .collect::<Result<Vec<_>, _>>()
                .context("reading pg_database names")?
                .into_iter()
                .filter(|n| !exclusions.excludes(n))
                .collect();
            // Size only what is kept: pg_database_size walks the database's files.
            let rows = client
                .query(
                    "SELECT datname, pg_database_size(oid) FROM pg_database WHERE datname = ANY($1) ORDER BY datname",
                    &[&names],
                )
                .await
                .context("reading pg_database_size")?;
            // NULL: the database was dropped while we were reading; it is simply not there.
            let mut databases = Vec::with_capacity(rows.len());
            for r in &rows {
                let Some(size) = r.try_get::<_, Option<i64>>(1)? else {
                    continue;
                };
                databases.push(DatabaseSize {
                    database_name: r.try_get(0)?,
                    size_bytes: size,
                    data_size_bytes: Some(size),
                    log_size_bytes: None,
                });
            }
            anyhow::Ok(Collected {
                version,
                databases,
                encrypted,
            })
        };
        let result = tokio::time::timeout(target.statement_timeout * 3, result)
            .await
            .map_err(|_| anyhow::anyhow!("{where_} did not answer within the statement timeout"))
            .and_then(|r| r);
        drop(client);
        connection.abort();
        result
    }

    async fn version(&self, target: &Target) -> anyhow::Result<String> {
        let (client, connection) = open(target, None, target.statement_timeout).await?;
        let result = tokio::time::timeout(target.statement_timeout, async {
            let row = client.query_one("SHOW server_version", &[]).await?;
            anyhow::Ok(row.try_get::<_, String>(0)?)
        })
        .await
        .map_err(|_| anyhow::anyhow!("the server did not answer within the statement timeout"))
        .and_then(|r| r.context("reading the server version"));
        drop(client);
        connection.abort();
        result
    }

    async fn tables(
        &self,
        target: &Target,
        databases: &[String],
        deadline: Instant,
    ) -> anyhow::Result<Vec<DatabaseTables>> {
        super::postgres_tables::read(target, databases, deadline).await
    }
}

/// Opens a connection to `database` (default: the instance's, else `postgres`) whose server
/// stops any statement after `statement_timeout`; the task driving it is returned so the
/// caller can stop it.
pub(super) async fn open(
    target: &Target,
    database: Option<&str>,
    statement_timeout: Duration,
) -> anyhow::Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>)> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&target.host)
        .port(target.port)
        .user(target.username.as_deref().unwrap_or("postgres"))
        .dbname(
            database
                .or(target.database_name.as_deref())
                .unwrap_or("postgres"),
        )
        .application_name("tidemark-collect")
        .connect_timeout(target.connect_timeout)
        // The server enforces the statement timeout itself, so nothing keeps running there
        // after we give up.
        .options(format!(
            "-c statement_timeout={}",
            statement_timeout.as_millis().max(1)
        ));
    if let Some(p) = target.password.as_deref().filter(|p| !p.is_empty()) {
        cfg.password(p);
    }
    // With require or stricter, tokio-postgres sends only the 8-byte SSLRequest until the
    // handshake succeeds: no user name, no password in clear.
    cfg.ssl_mode(target.tls_mode.pg_ssl_mode());
    let ca = match &target.tls_ca_pem {
        Some(pem) => Some(CaBundle::new(parse_pem_bundle(pem.as_bytes()).map_err(
            |e| anyhow::anyhow!("the instance's tls_ca_pem is unusable: {e}"),
        )?)),
        None => None,
    };
    let tls = PgTls::new(
        client_config(target.tls_mode, ca.as_ref().map(CaBundle::certs))
            .context("building the TLS configuration")?,
    );
    let (client, connection) = connect(target, cfg.connect(tls)).await?;
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, connection))
}
