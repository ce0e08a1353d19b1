//! Table-level capacity: which tables are growing inside every database.
//!
//! - `collect`: when tables are read (after the sizes in the daily run for instances with
//!   `collect_tables`; on demand for one database) and the visit's deadline.
//! - `persist`: one database's tables in four statements, whatever their number; daily
//!   history only for large tables and the top N of their database.
//! - `api`: `GET /databases/{id}/tables`, `GET /tables/{id}/sizes`, `GET /tables/top`, the
//!   bulk `collect_tables` switch and `refresh-tables`.
//!
//! The engine side (one catalogue query per database, or per server) is each adapter's
//! `tables` (`collect::postgres_tables`, `collect::mysql_tables`).

pub mod api;
pub mod collect;
pub mod persist;

pub use collect::{after_sizes, refresh};
pub use persist::{persist, HistoryRule, Saved};

/// Runs of `refresh-tables` are `collect_tables:<database id>`: one unfinished per database.
pub const REFRESH_TASK_KEY: &str = "collect_tables";
