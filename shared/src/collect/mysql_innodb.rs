//! MariaDB InnoDB table sizes without `information_schema.TABLES`' per-table `.frm` parse.
//!
//! The sizes are the ones `information_schema.TABLES` shows for InnoDB, read where it reads
//! them: the persistent statistics (`mysql.innodb_table_stats`: `n_rows`, and the pages
//! reserved by the clustered index and by the other indexes, times `innodb_page_size`).
//! Free space is the tablespace file's bytes not reserved by an index
//! (`INNODB_SYS_TABLESPACES.FILE_SIZE` minus data and index): what `OPTIMIZE TABLE` could
//! give back; tables in the system tablespace have none of their own.
//!
//! InnoDB stores names in the filename encoding (`@002d` for `-`), so only names made of
//! `[0-9A-Za-z_]`, identical in both encodings, are matched; the others, other engines and
//! tables without persistent statistics are read from `information_schema.TABLES` by name,
//! in one statement (or one server-wide scan if there are many).

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Value};

use super::adapter::{TableKind, TableSize};
use super::mysql_tables::{to_i64, Row, COLUMNS};

/// Above this many tables left for `information_schema.TABLES`, one scan beats a lookup each.
const LOOKUPS_MAX: usize = 500;

#[derive(Default)]
struct Stats {
    rows: u64,
    clustered_pages: u64,
    other_pages: u64,
    partitioned: bool,
    file_bytes: Option<u64>,
}

/// The InnoDB tables' sizes and the other tables' `information_schema.TABLES` rows in
/// `databases`, or `None` when the statistics cannot be read (no privilege on `mysql`).
pub(super) async fn read(
    conn: &mut Conn,
    databases: &HashSet<&str>,
) -> anyhow::Result<Option<(Vec<TableSize>, Vec<Row>)>> {
    let stats: Vec<(String, String, u64, u64, u64)> = match conn
        .query(
            "SELECT database_name, table_name, n_rows, clustered_index_size, sum_of_other_index_sizes \
             FROM mysql.innodb_table_stats",
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!(error = %e, "InnoDB statistics unreadable, using information_schema");
            return Ok(None);
        }
    };
    let page: u64 = conn
        .query_first("SELECT @@innodb_page_size")
        .await
        .context("reading innodb_page_size")?
        .unwrap_or(16384);
    let files: Vec<(String, u64)> = conn
        .query("SELECT NAME, FILE_SIZE FROM information_schema.INNODB_SYS_TABLESPACES")
        .await
        .unwrap_or_default();
    let names: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE'",
        )
        .await
        .context("listing tables from information_schema.TABLES")?;

    let mut by_table: HashMap<(String, String), Stats> = HashMap::new();
    for (db, table, rows, clustered, other) in stats {
        if !databases.contains(db.as_str()) {
            continue;
        }
        let (base, partitioned) = unpartitioned(&table);
        let s = by_table.entry((db, base.to_string())).or_default();
        s.rows += rows;
        s.clustered_pages += clustered;
        s.other_pages += other;
        s.partitioned |= partitioned;
    }
    for (name, size) in files {
        let Some((db, table)) = name.split_once('/') else {
            continue;
        };
        let (base, _) = unpartitioned(table);
        if let Some(s) = by_table.get_mut(&(db.to_string(), base.to_string())) {
            *s.file_bytes.get_or_insert(0) += size;
        }
    }

    let mut sized = Vec::new();
    let mut rest = Vec::new();
    for (db, table) in names {
        if !databases.contains(db.as_str()) {
            continue;
        }
        let found = if plain(&db) && plain(&table) {
            by_table.remove(&(db.clone(), table.clone()))
        } else {
            None
        };
        match found {
            Some(s) => sized.push(innodb_size(db, table, &s, page)),
            None => rest.push((db, table)),
        }
    }
    let rest = others(conn, rest).await?;
    Ok(Some((sized, rest)))
}

fn innodb_size(schema: String, table: String, s: &Stats, page: u64) -> TableSize {
    let data = s.clustered_pages.saturating_mul(page);
    let index = s.other_pages.saturating_mul(page);
    TableSize {
        schema_name: schema,
        table_name: table,
        kind: if s.partitioned {
            TableKind::Partitioned
        } else {
            TableKind::Table
        },
        parent_name: None,
        engine: Some("InnoDB".to_string()),
        total_bytes: to_i64(Some(data)).saturating_add(to_i64(Some(index))),
        data_bytes: to_i64(Some(data)),
        index_bytes: to_i64(Some(index)),
        toast_bytes: None,
        free_bytes: s
            .file_bytes
            .map(|f| to_i64(Some(f.saturating_sub(data.saturating_add(index))))),
        row_estimate: Some(to_i64(Some(s.rows))),
    }
}

/// `information_schema.TABLES` rows of the named tables: each branch names one table, which
/// MariaDB looks up without scanning the others.
async fn others(conn: &mut Conn, tables: Vec<(String, String)>) -> anyhow::Result<Vec<Row>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let rows = if tables.len() > LOOKUPS_MAX {
        conn.query(format!(
            "SELECT {COLUMNS} FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'"
        ))
        .await
    } else {
        let branch = format!(
            "SELECT {COLUMNS} FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND TABLE_TYPE = 'BASE TABLE'"
        );
        let sql = vec![branch; tables.len()].join(" UNION ALL ");
        let params: Vec<Value> = tables
            .into_iter()
            .flat_map(|(db, table)| [Value::from(db), Value::from(table)])
            .collect();
        conn.exec(sql, Params::Positional(params)).await
    };
    rows.context("reading table sizes from information_schema.TABLES")
}

/// A partition's table name (`t#P#p0`, `t#P#p0#SP#s0` -> `t`), and whether it was one.
fn unpartitioned(name: &str) -> (&str, bool) {
    match name.split_once("#P#").or_else(|| name.split_once("#p#")) {
        Some((base, _)) => (base, true),
        None => (name, false),
    }
}

/// Spelled the same in InnoDB's filename encoding as in SQL.
fn plain(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
