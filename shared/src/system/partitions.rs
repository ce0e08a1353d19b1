//! Partitions of the history tables: what exists, what is missing ahead, what landed in
//! DEFAULT; create ahead and drop after retention.

use chrono::Datelike;
use serde::Serialize;
use serde_json::json;

use crate::values::FromRow;
use crate::web::{ApiError, ApiResponse, ApiResult, Req};
use crate::App;

pub const PARTITIONED: &[&str] = &[
    "database_size_stats",
    "instance_size_stats",
    "event_logs",
    "table_size_stats",
];
pub const MONTHS_AHEAD: i32 = 3;

crate::row_struct! {
    #[derive(Debug, Serialize)]
    struct Partition {
        #[serde(skip)]
        table_name: String,
        name: String,
        range: String,
        estimated_rows: i64,
        bytes: i64,
    }
}

#[derive(Debug, Serialize)]
struct Table {
    table: &'static str,
    partitions: Vec<Partition>,
    missing_future_months: Vec<String>,
    default_rows: i64,
}

pub async fn list(app: &App, _req: Req) -> ApiResult {
    let client = app.db.get().await?;
    let rows = client
        .query(
            "SELECT parent.relname::text AS table_name, child.relname::text AS name, \
                    pg_get_expr(child.relpartbound, child.oid) AS range, \
                    GREATEST(child.reltuples, 0)::bigint AS estimated_rows, \
                    pg_total_relation_size(child.oid) AS bytes \
             FROM pg_inherits inh \
             JOIN pg_class parent ON parent.oid = inh.inhparent \
             JOIN pg_class child ON child.oid = inh.inhrelid \
             WHERE parent.relname = ANY($1) AND parent.relnamespace = 'public'::regnamespace \
             ORDER BY parent.relname, child.relname",
            &[&PARTITIONED],
        )
        .await?;
    let mut all = rows
        .iter()
        .map(Partition::from_row)
        .collect::<Result<Vec<_>, ApiError>>()?;
    let today = app.config.business_date(chrono::Utc::now());
    let mut tables = Vec::new();
    for table in PARTITIONED {
        let parts: Vec<Partition>;
        (parts, all) = all.into_iter().partition(|p| p.table_name == *table);
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        let missing: Vec<String> = (0..=MONTHS_AHEAD)
            .map(|m| {
                let month = today
                    .with_day(1)
                    .and_then(|d| d.checked_add_months(chrono::Months::new(m as u32)))
                    .unwrap_or(today);
                format!("{table}_{}", month.format("%Y_%m"))
            })
            .filter(|n| !names.contains(&n.as_str()))
            .collect();
        // Exact but bounded: rows in DEFAULT mean a month partition was missing when they came.
        let default_rows: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM (SELECT 1 FROM {table}_default LIMIT 100000) d"),
                &[],
            )
            .await?
            .try_get(0)?;
        tables.push(Table {
            table,
            partitions: parts,
            missing_future_months: missing,
            default_rows,
        });
    }
    Ok(ApiResponse::ok(json!({"tables": tables})))
}

/// Creates the current month and the next three for every partitioned table.
pub async fn ensure_ahead(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query("SELECT tidemark_ensure_partitions($1)", &[&MONTHS_AHEAD])
        .await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

pub async fn ensure(app: &App, _req: Req) -> ApiResult {
    let client = app.db.get().await?;
    let created = ensure_ahead(&client).await?;
    Ok(ApiResponse::ok(json!({"created": created})))
}

/// Drops month partitions of `table` that end on or before `cutoff` (retention).
pub async fn drop_before(
    client: &impl deadpool_postgres::GenericClient,
    table: &str,
    cutoff: chrono::NaiveDate,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT child.relname FROM pg_inherits inh \
             JOIN pg_class parent ON parent.oid = inh.inhparent JOIN pg_class child ON child.oid = inh.inhrelid \
             WHERE parent.relname = $1 AND child.relname ~ '_[0-9]{4}_[0-9]{2}$'",
            &[&table],
        )
        .await?;
    let mut dropped = Vec::new();
    for r in rows {
        let name: String = r.try_get(0)?;
        let suffix = &name[name.len() - 7..];
        let Ok(start) = chrono::NaiveDate::parse_from_str(&format!("{suffix}_01"), "%Y_%m_%d")
        else {
            continue;
        };
        let Some(end) = start.checked_add_months(chrono::Months::new(1)) else {
            continue;
        };
        if end <= cutoff && PARTITIONED.contains(&table) {
            // Names come from pg_class and match the pattern above; quote them anyway.
            client
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS \"{}\"",
                    name.replace('"', "")
                ))
                .await?;
            dropped.push(name);
        }
    }
    Ok(dropped)
}
