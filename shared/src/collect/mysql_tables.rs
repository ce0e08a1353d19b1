//! MySQL/MariaDB table sizes: one `information_schema.TABLES` query for the whole server
//! (the catalogue is server-wide), split by database afterwards.
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

type Row = (
    String,
    String,
    Option<String>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<String>,
);

pub async fn read(
    conn: &mut Conn,
    target: &Target,
    databases: &[String],
    deadline: Instant,
) -> anyhow::Result<Vec<DatabaseTables>> {
    let left = deadline.saturating_duration_since(Instant::now());
    super::mysql::limit_statements(conn, left.min(target.statement_timeout)).await?;
    let rows: Vec<Row> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, ENGINE, DATA_LENGTH, INDEX_LENGTH, DATA_FREE, TABLE_ROWS, \
                    CREATE_OPTIONS \
             FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'",
        )
        .await
        .context("reading table sizes from information_schema.TABLES")?;
    let mut by_db: HashMap<&str, Vec<TableSize>> =
        databases.iter().map(|d| (d.as_str(), Vec::new())).collect();
    for (schema, table, engine, data, index, free, rows, options) in rows {
        let Some(list) = by_db.get_mut(schema.as_str()) else {
            continue;
        };
        let data = to_i64(data);
        let index = to_i64(index);
        let partitioned = options.is_some_and(|o| o.to_ascii_lowercase().contains("partitioned"));
        list.push(TableSize {
            schema_name: schema.clone(),
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
        });
    }
    Ok(databases
        .iter()
        .map(|d| DatabaseTables {
            database_name: d.clone(),
            tables: Ok(by_db.remove(d.as_str()).unwrap_or_default()),
        })
        .collect())
}

fn to_i64(v: Option<u64>) -> i64 {
    i64::try_from(v.unwrap_or(0)).unwrap_or(i64::MAX)
}
