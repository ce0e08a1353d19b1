//! PostgreSQL table sizes: a catalogue lives in each database, so each database is read
//! through its own connection (opened once, one statement), one database after the other,
//! all before the visit's deadline.
//!
//! Sizes: `pg_total_relation_size` (everything: heap, free-space and visibility maps, TOAST,
//! indexes), `pg_relation_size` (the heap's main fork), `pg_indexes_size`, the TOAST
//! relation's total, `reltuples` (the planner's estimate; unknown before the first ANALYZE).
//! A partitioned table has no storage of its own: it gets the sum of its partitions (at every
//! level), and the partitions are still listed with their parent.

use std::collections::HashMap;

use anyhow::Context;
use tokio::time::Instant;

use super::adapter::{DatabaseTables, TableKind, TableSize, Target};

/// Every table and partitioned table outside the system schemas, with its parent when it
/// is a partition.
const TABLES: &str = "\
    SELECT n.nspname::text AS schema_name, c.relname::text AS table_name, \
           c.relkind = 'p' AS partitioned, c.relispartition AS partition, \
           pn.nspname::text || '.' || p.relname::text AS parent_name, \
           pg_total_relation_size(c.oid) AS total_bytes, \
           pg_relation_size(c.oid) AS data_bytes, \
           pg_indexes_size(c.oid) AS index_bytes, \
           COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS toast_bytes, \
           CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS row_estimate \
    FROM pg_class c \
    JOIN pg_namespace n ON n.oid = c.relnamespace \
    LEFT JOIN pg_inherits i ON c.relispartition AND i.inhrelid = c.oid \
    LEFT JOIN pg_class p ON p.oid = i.inhparent \
    LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace \
    WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' \
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'";

/// Reads each of `databases` in turn. Each gets at most the statement timeout and never more
/// than what is left before `deadline`; the server stops its statement at the same bound.
pub async fn read(
    target: &Target,
    databases: &[String],
    deadline: Instant,
) -> anyhow::Result<Vec<DatabaseTables>> {
    let mut out = Vec::with_capacity(databases.len());
    for database in databases {
        let now = Instant::now();
        let tables = if now >= deadline {
            Err("not read: the visit's deadline had passed".to_string())
        } else {
            let budget = (deadline - now).min(target.statement_timeout);
            match tokio::time::timeout(budget, one(target, database, budget)).await {
                Err(_) => Err(format!(
                    "no answer within {:.1} s (the visit's deadline or the statement timeout)",
                    budget.as_secs_f64()
                )),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Ok(Ok(tables)) => Ok(tables),
            }
        };
        out.push(DatabaseTables {
            database_name: database.clone(),
            tables,
        });
    }
    Ok(out)
}

/// One database: connect, one statement, disconnect.
async fn one(
    target: &Target,
    database: &str,
    budget: std::time::Duration,
) -> anyhow::Result<Vec<TableSize>> {
    let (client, connection) = super::postgres::open(target, Some(database), budget).await?;
    let rows = client.query(TABLES, &[]).await;
    drop(client);
    connection.abort();
    let rows = rows.context("reading table sizes from pg_class")?;
    let mut tables = Vec::with_capacity(rows.len());
    for r in &rows {
        // NULL: dropped while we were reading; it is simply not there.
        let Some(total) = r.try_get::<_, Option<i64>>("total_bytes")? else {
            continue;
        };
        let kind = if r.try_get("partition")? {
            TableKind::Partition
        } else if r.try_get("partitioned")? {
            TableKind::Partitioned
        } else {
            TableKind::Table
        };
        tables.push(TableSize {
            schema_name: r.try_get("schema_name")?,
            table_name: r.try_get("table_name")?,
            kind,
            parent_name: r.try_get("parent_name")?,
            engine: None,
            total_bytes: total,
            data_bytes: r.try_get::<_, Option<i64>>("data_bytes")?.unwrap_or(0),
            index_bytes: r.try_get::<_, Option<i64>>("index_bytes")?.unwrap_or(0),
            toast_bytes: r.try_get("toast_bytes")?,
            free_bytes: None,
            row_estimate: r.try_get("row_estimate")?,
        });
    }
    roll_up(&mut tables);
    Ok(tables)
}

/// Adds each partition's own sizes to every ancestor (sub-partitioned tables have levels).
/// Partitioned tables have no storage, so their own sizes are zero and nothing counts twice.
pub fn roll_up(tables: &mut [TableSize]) {
    let index: HashMap<String, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("{}.{}", t.schema_name, t.table_name), i))
        .collect();
    let own: Vec<(i64, i64, i64, i64, Option<i64>)> = tables
        .iter()
        .map(|t| {
            (
                t.total_bytes,
                t.data_bytes,
                t.index_bytes,
                t.toast_bytes.unwrap_or(0),
                t.row_estimate.filter(|_| t.kind != TableKind::Partitioned),
            )
        })
        .collect();
    for (i, (total, data, idx, toast, rows)) in own.into_iter().enumerate() {
        let mut parent = tables[i].parent_name.clone();
        // Bounded by the number of tables: a cycle cannot happen but must not hang us.
        let mut hops = 0;
        while let Some(p) = parent.and_then(|p| index.get(&p).copied()) {
            let t = &mut tables[p];
            t.total_bytes += total;
            t.data_bytes += data;
            t.index_bytes += idx;
            t.toast_bytes = Some(t.toast_bytes.unwrap_or(0) + toast);
            if let Some(r) = rows {
                t.row_estimate = Some(t.row_estimate.unwrap_or(0).max(0) + r);
            }
            parent = t.parent_name.clone();
            hops += 1;
            if hops > tables.len() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, kind: TableKind, parent: Option<&str>, total: i64) -> TableSize {
        TableSize {
            schema_name: "s".into(),
            table_name: name.into(),
            kind,
            parent_name: parent.map(str::to_string),
            engine: None,
            total_bytes: total,
            data_bytes: total / 2,
            index_bytes: total / 4,
            toast_bytes: Some(0),
            free_bytes: None,
            row_estimate: Some(total / 100),
        }
    }

    #[test]
    fn partitions_roll_up_to_every_ancestor() {
        let mut tables = vec![
            t("root", TableKind::Partitioned, None, 0),
            t("mid", TableKind::Partition, Some("s.root"), 0),
            t("leaf1", TableKind::Partition, Some("s.mid"), 1000),
            t("leaf2", TableKind::Partition, Some("s.mid"), 3000),
            t("leaf3", TableKind::Partition, Some("s.root"), 500),
            t("plain", TableKind::Table, None, 700),
        ];
        roll_up(&mut tables);
        assert_eq!(tables[0].total_bytes, 4500);
        assert_eq!(tables[0].data_bytes, 500 + 1500 + 250);
        assert_eq!(tables[1].total_bytes, 4000);
        assert_eq!(
            tables[2].total_bytes, 1000,
            "a partition keeps its own size"
        );
        assert_eq!(tables[5].total_bytes, 700);
        assert_eq!(tables[0].row_estimate, Some(45));
    }
}
