//! The engine boundary: one `Adapter` per engine, one file each. Adding an engine is a new
//! file plus one line in `ADAPTERS`; nothing else branches on the engine.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

/// Where and how to reach one managed server.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// `None`: the engine's default administrative user.
    pub username: Option<String>,
    pub password: Option<String>,
    /// The database to connect to where the engine needs one (PostgreSQL).
    pub database_name: Option<String>,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    /// The instance's `tls_mode` and optional CA bundle (`tls_ca_pem`).
    pub tls_mode: crate::tls::TlsMode,
    pub tls_ca_pem: Option<String>,
}

// Hand-written so a password can never reach a log line through `{:?}`.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("database_name", &self.database_name)
            .field("tls_mode", &self.tls_mode)
            .finish_non_exhaustive()
    }
}

/// One database's size, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSize {
    pub database_name: String,
    pub size_bytes: i64,
    pub data_size_bytes: Option<i64>,
    pub log_size_bytes: Option<i64>,
}

/// What one visit to a server found: every database it has (exclusions not yet applied).
#[derive(Debug, Clone)]
pub struct Collected {
    pub version: String,
    pub databases: Vec<DatabaseSize>,
    /// Whether the connection that read them was TLS.
    pub encrypted: bool,
}

crate::text_enum! {
    /// A plain table, a partitioned table (its sizes are its partitions' sum) or a partition.
    pub enum TableKind { Table = "table", Partitioned = "partitioned", Partition = "partition" }
}

/// One table's size, in bytes, as its server's catalogue tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSize {
    /// PostgreSQL's schema; on MySQL/MariaDB the database itself.
    pub schema_name: String,
    pub table_name: String,
    pub kind: TableKind,
    /// A partition's parent as `schema.table`.
    pub parent_name: Option<String>,
    /// MySQL/MariaDB's storage engine.
    pub engine: Option<String>,
    pub total_bytes: i64,
    pub data_bytes: i64,
    pub index_bytes: i64,
    pub toast_bytes: Option<i64>,
    pub free_bytes: Option<i64>,
    pub row_estimate: Option<i64>,
}

/// The tables of one database, or why they could not be read (for people).
#[derive(Debug, Clone)]
pub struct DatabaseTables {
    pub database_name: String,
    pub tables: Result<Vec<TableSize>, String>,
}

/// What the rest of the service knows about an engine without connecting to it.
pub struct Engine {
    /// The `instances.db_type` the adapter serves.
    pub db_type: &'static str,
    /// System databases and patterns (SQL LIKE) never collected on this engine.
    pub default_exclusions: &'static [&'static str],
}

#[async_trait]
pub trait Adapter: Send + Sync {
    fn engine(&self) -> &'static Engine;
    /// Connects within `connect_timeout`, bounds every statement by `statement_timeout`, and
    /// returns the size of every database that `exclusions` does not exclude. The error is for people:
    /// it says what failed (connect, authenticate, query) and never carries a password.
    async fn collect(&self, target: &Target, exclusions: &Exclusions) -> anyhow::Result<Collected>;
    /// Connects, authenticates and reads the server's version (a connection check); the
    /// error is the one `collect` would meet (see `checks::classify`).
    async fn version(&self, target: &Target) -> anyhow::Result<String>;

    /// The size of every table of each of `databases`, one catalogue query per database (or
    /// one for the whole server), all of it done by `deadline`: a database not read by then
    /// is an `Err` in its entry. `Err` for the whole call: the server could not be read.
    async fn tables(
        &self,
        target: &Target,
        databases: &[String],
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<Vec<DatabaseTables>>;
}

/// The server did not answer within the connect timeout.
#[derive(Debug, thiserror::Error)]
#[error("could not connect to {0}: no answer within {1:?}")]
pub struct TimedOut(pub String, pub Duration);

/// The TLS handshake or the certificate check failed (the reason in words).
#[derive(Debug, thiserror::Error)]
#[error("could not connect to {0}: {1}")]
pub struct TlsFailed(pub String, pub String);

/// Bounds a connection attempt by the target's connect timeout; the error names the server
/// (never the password) and says whether it did not answer or refused.
pub async fn connect<T, E>(
    target: &Target,
    attempt: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let where_ = format!("{}:{}", target.host, target.port);
    match tokio::time::timeout(target.connect_timeout, attempt).await {
        Err(_) => Err(TimedOut(where_, target.connect_timeout).into()),
        // A TLS failure says what failed (handshake, unknown CA, name mismatch).
        Ok(Err(e)) => match crate::tls::describe_failure(&e) {
            Some(why) => Err(TlsFailed(where_, why.to_string()).into()),
            None => Err(anyhow::Error::new(e).context(format!("could not connect to {where_}"))),
        },
        Ok(Ok(conn)) => Ok(conn),
    }
}

static ADAPTERS: &[&dyn Adapter] = &[&super::postgres::Postgres, &super::mysql::MySql];

pub fn adapter_for(db_type: &str) -> Option<&'static dyn Adapter> {
    ADAPTERS
        .iter()
        .copied()
        .find(|a| a.engine().db_type == db_type)
}

/// The engine's defaults plus the instance's own `exclude_databases` (names or LIKE patterns).
pub struct Exclusions {
    patterns: Vec<String>,
    /// How many names `excludes` dropped, for the item's metrics.
    excluded: AtomicUsize,
}

impl Exclusions {
    pub fn new(adapter: &dyn Adapter, instance_patterns: &[String]) -> Self {
        let mut patterns: Vec<String> = adapter
            .engine()
            .default_exclusions
            .iter()
            .map(|p| p.to_string())
            .collect();
        patterns.extend(instance_patterns.iter().cloned());
        Exclusions {
            patterns,
            excluded: AtomicUsize::new(0),
        }
    }

    pub fn excludes(&self, database_name: &str) -> bool {
        let hit = self.patterns.iter().any(|p| like(p, database_name));
        if hit {
            self.excluded.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    pub fn excluded_count(&self) -> usize {
        self.excluded.load(Ordering::Relaxed)
    }
}

/// SQL LIKE: `%` any run, `_` one character, `\` escapes the next one. Case-sensitive, as
/// database names are on PostgreSQL and on MySQL under Linux.
pub fn like(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with backtracking to the last `%` (linear for typical patterns).
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('%') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('_') => {
                pi += 1;
                ti += 1;
                continue;
            }
            Some('\\') if pi + 1 < p.len() && p[pi + 1] == t[ti] => {
                pi += 2;
                ti += 1;
                continue;
            }
            Some(c) if *c != '\\' && *c == t[ti] => {
                pi += 1;
                ti += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_sql_semantics() {
        assert!(like("tmp_%", "tmp_x"));
        assert!(like("tmp_%", "tmp_"));
        assert!(!like("tmp_%", "tmp"));
        assert!(like("#sql%", "#sql-abc"));
        assert!(like("pg_%", "pg_x"));
        assert!(!like("pg_%", "app"));
        assert!(like("postgres", "postgres"));
        assert!(!like("postgres", "postgres2"));
        assert!(like("%_archive", "orders_archive"));
        assert!(like("a%b%c", "aXXbYYc"));
        assert!(!like("a%b%c", "aXXbYY"));
        assert!(like(r"tmp\_%", "tmp_1"));
        assert!(!like(r"tmp\_%", "tmpx1"));
        assert!(like("%", ""));
        assert!(!like("_", ""));
    }

    #[test]
    fn engines_are_registered_with_their_defaults() {
        let pg = adapter_for("postgresql").unwrap();
        let ex = Exclusions::new(pg, &["scratch_%".to_string()]);
        for name in ["template0", "template1", "postgres", "pg_temp", "scratch_1"] {
            assert!(ex.excludes(name), "{name}");
        }
        assert!(!ex.excludes("orders"));
        let my = adapter_for("mysql").unwrap();
        let ex = Exclusions::new(my, &[]);
        for name in [
            "information_schema",
            "performance_schema",
            "mysql",
            "sys",
            "tmp_x",
            "temp_y",
            "#sql-1",
        ] {
            assert!(ex.excludes(name), "{name}");
        }
        assert!(!ex.excludes("orders"));
        assert!(adapter_for("oracle").is_none());
    }
}
