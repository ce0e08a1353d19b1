//! MySQL/MariaDB table sizes, a constant number of queries for the whole server, split by
//! database afterwards.
//!
//! MySQL 8 keeps `information_schema.TABLES` in its data dictionary: one query reads it.
//! MariaDB builds that view by parsing every table's `.frm` (20,000 tables: seconds), so on
//! MariaDB the InnoDB tables (see `mysql_innodb`) are read from InnoDB's own persistent
//! statistics and tablespace list, the rest (other engines, tables without persistent
//! statistics) from `information_schema.TABLES` one table at a time in one statement.
//!
//! `DATA_LENGTH` (rows, or the clustered index for InnoDB), `INDEX_LENGTH` (secondary
//! indexes), `DATA_FREE` (allocated, unused), `TABLE_ROWS` (an estimate for InnoDB), `ENGINE`.
//! The total is data + index: what the table holds; free space is reported beside it.
//! A partitioned table is one row whose sizes are its partitions' sum.

use std::collections::HashMap;

use anyhow::Context;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::time::Instant;

use super::adapter::{DatabaseTables, TableKind, TableSize, Target};

pub(super) type Row = (
    String,
    String,
    Option<String>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<String>,
);

pub(super) const COLUMNS: &str = "TABLE_SCHEMA, TABLE_NAME, ENGINE, DATA_LENGTH, INDEX_LENGTH, \
                                  DATA_FREE, TABLE_ROWS, CREATE_OPTIONS";

pub async fn read(
    conn: &mut Conn,
    target: &Target,
    databases: &[String],
    deadline: Instant,
) -> anyhow::Result<Vec<DatabaseTables>> {
    let left = deadline.saturating_duration_since(Instant::now());
    let version = super::mysql::limit_statements(conn, left.min(target.statement_timeout)).await?;
    let mut by_db: HashMap<&str, Vec<TableSize>> =
        databases.iter().map(|d| (d.as_str(), Vec::new())).collect();
    let innodb = if version.contains("MariaDB") {
        let wanted = databases.iter().map(String::as_str).collect();
        super::mysql_innodb::read(conn, &wanted).await?
    } else {
        None
    };
    let rows = match innodb {
        Some((sized, rest)) => {
            for t in sized {
                if let Some(list) = by_db.get_mut(t.schema_name.as_str()) {
                    list.push(t);
                }
            }
            rest
        }
        None => conn
            .query(format!(
                "SELECT {COLUMNS} FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'"
            ))
            .await
            .context("reading table sizes from information_schema.TABLES")?,
    };
    for row in rows {
        if let Some(list) = by_db.get_mut(row.0.as_str()) {
            list.push(from_row(row));
        }
    }
    Ok(databases
        .iter()
        .map(|d| DatabaseTables {
            database_name: d.clone(),
            tables: Ok(by_db.remove(d.as_str()).unwrap_or_default()),
        })
        .collect())
}

fn from_row((schema, table, engine, data, index, free, rows, options): Row) -> TableSize {
    let data = to_i64(data);
    let index = to_i64(index);
    let partitioned = options.is_some_and(|o| o.to_ascii_lowercase().contains("partitioned"));
    TableSize {
        schema_name: schema,
        table_name: table,
        kind: if partitioned {
            TableKind::Partitioned
        } else {
            TableKind::Table
        },
        parent_name: None,
        engine,
        total_bytes: data.saturating_add(index),
        data_bytes: data,
        index_bytes: index,
        toast_bytes: None,
        free_bytes: free.map(|f| to_i64(Some(f))),
        row_estimate: rows.map(|r| to_i64(Some(r))),
    }
}

pub(super) fn to_i64(v: Option<u64>) -> i64 {
    i64::try_from(v.unwrap_or(0)).unwrap_or(i64::MAX)
}
