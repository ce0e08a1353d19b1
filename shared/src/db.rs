//! The app database: a pool and the migrations (refinery, SQL files under `migrations/`).

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use crate::tls::{client_config, split_sslmode, CaBundle, PgTls};

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// The pool for `config`: `DATABASE_URL` with its `sslmode`, `TIDEMARK_DB_CA_FILE`'s CAs.
pub fn pool_for(config: &crate::Config) -> anyhow::Result<Pool> {
    pool_with_ca(
        &config.database_url,
        config.db_pool_size,
        config.db_ca.as_ref(),
    )
}

/// A pool trusting the built-in roots (tools and benchmarks).
pub fn pool(database_url: &str, size: usize) -> anyhow::Result<Pool> {
    pool_with_ca(database_url, size, None)
}

pub fn pool_with_ca(
    database_url: &str,
    size: usize,
    ca: Option<&CaBundle>,
) -> anyhow::Result<Pool> {
    let (database_url, mode) = split_sslmode(database_url).map_err(anyhow::Error::msg)?;
    let mut cfg = tokio_postgres::Config::from_str(&database_url)
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    cfg.ssl_mode(mode.pg_ssl_mode());
    let tls = PgTls::new(
        client_config(mode, ca.map(CaBundle::certs)).context("TLS settings of DATABASE_URL")?,
    );
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(5));
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("tidemark");
    }
    let manager = Manager::from_config(
        cfg,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .context("building the database pool")
}

/// One connection now, so a wrong address, password or TLS setting stops the process at
/// start with the reason (the connection then serves the first request).
pub async fn connect_check(pool: &Pool) -> anyhow::Result<()> {
    pool.get().await.map(drop).map_err(unreachable_database)
}

/// The reason the app database refused us, in words: the TLS failure if it was one, else the
/// whole error chain (the server's own message, e.g. "no pg_hba.conf entry ... no encryption").
fn unreachable_database(e: deadpool_postgres::PoolError) -> anyhow::Error {
    let why = crate::tls::describe_failure(&e).unwrap_or_else(|| {
        let mut parts: Vec<String> = Vec::new();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = cur {
            let text = err.to_string();
            if !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
            cur = err.source();
        }
        parts.join(": ")
    });
    anyhow::anyhow!("cannot connect to the app database (DATABASE_URL, TIDEMARK_DB_CA_FILE): {why}")
}

/// Applies pending migrations; returns the versions applied now.
pub async fn migrate(pool: &Pool) -> anyhow::Result<Vec<String>> {
    let mut client = pool.get().await.map_err(unreachable_database)?;
    // Two starters at once: the advisory lock makes the second wait, then find nothing to do.
    client
        .batch_execute("SELECT pg_advisory_lock(7246001)")
        .await?;
    let report = embedded::migrations::runner()
        .run_async(&mut **client)
        .await;
    client
        .batch_execute("SELECT pg_advisory_unlock(7246001)")
        .await?;
    let report = report.context("applying migrations")?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}
