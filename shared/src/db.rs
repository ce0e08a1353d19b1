//! The app database: a pool and the migrations (refinery, SQL files under `migrations/`).

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use crate::tls::{client_config, split_sslmode, CaBundle, PgTls};

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// The pool for `config`: `DATABASE_URL` with its `sslmode`, `TIDEMARK_DB_CA_FILE`'s CAs, and
/// the limits that protect the app database.
pub fn pool_for(config: &crate::Config) -> anyhow::Result<Pool> {
    pool_with(
        &config.database_url,
        config.db_pool_size,
        config.db_ca.as_ref(),
        config.db_limits,
    )
}

/// A pool trusting the built-in roots, with the default limits (tools and benchmarks).
pub fn pool(database_url: &str, size: usize) -> anyhow::Result<Pool> {
    pool_with(database_url, size, None, Limits::default())
}

/// Limits that protect the app database from one process.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Server-side `statement_timeout` of every pooled connection (the export stream opts out).
    pub statement_timeout: Duration,
    /// A connection unused this long is closed instead of reused: a server, proxy or NAT may
    /// have dropped it meanwhile (a frozen Lambda), and it holds a server slot for nothing.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            statement_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

pub fn pool_with(
    database_url: &str,
    size: usize,
    ca: Option<&CaBundle>,
    limits: Limits,
) -> anyhow::Result<Pool> {
    let (database_url, mode) = split_sslmode(database_url).map_err(anyhow::Error::msg)?;
    let mut cfg = tokio_postgres::Config::from_str(&database_url)
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    cfg.ssl_mode(mode.pg_ssl_mode());
    let tls = PgTls::new(
        client_config(mode, ca.map(CaBundle::certs)).context("TLS settings of DATABASE_URL")?,
    );
    // Also ends a transaction left idle (a handler stuck between statements) after as long.
    let options = format!(
        "-c statement_timeout={} -c idle_in_transaction_session_timeout={}",
        limits.statement_timeout.as_millis(),
        limits.idle_timeout.as_millis()
    );
    let options = match cfg.get_options() {
        Some(given) if !given.is_empty() => format!("{given} {options}"),
        _ => options,
    };
    cfg.options(&options);
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
    let idle = limits.idle_timeout;
    Pool::builder(manager)
        .max_size(size.max(1))
        .pre_recycle(deadpool_postgres::Hook::sync_fn(move |_, metrics| {
            if metrics.last_used() > idle {
                Err(deadpool_postgres::HookError::message("idle too long"))
            } else {
                Ok(())
            }
        }))
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
