//! The database ledger (function `api-databases`): every active database with its latest
//! size, growth, sync status and tags, and the daily size history of one database.
//!
//! The ledger reads the latest columns of `instance_databases` (kept by collection) and never
//! aggregates `database_size_stats`; each sort walks its own index (migration V4), so a page
//! costs `limit` index entries whatever the fleet or the history size.

pub mod filter;
pub mod size;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};
use tokio_postgres::Row;

use crate::web::list::{Order, SortField, SortSpec};
use crate::web::sql::Sql;
use crate::web::{ApiError, ApiResponse, ApiResult, ListParams, Query, Req};
use crate::App;

/// Each expression is the exact expression of one V4 index, so the planner walks that index.
static SORTS: SortSpec = SortSpec {
    fields: &[
        SortField {
            name: "instance_name",
            expr: "ROW(d.instance_name, d.database_name)::ledger_name_key",
            sql_type: "ledger_name_key",
            default_order: Order::Asc,
        },
        SortField {
            name: "database_name",
            expr: "d.database_name",
            sql_type: "text",
            default_order: Order::Asc,
        },
        SortField {
            name: "size",
            expr: "COALESCE(d.latest_size_bytes, -1)",
            sql_type: "bigint",
            default_order: Order::Desc,
        },
        SortField {
            name: "collected_at",
            expr: "COALESCE(d.latest_collected_at, '-infinity'::timestamptz)",
            sql_type: "timestamptz",
            default_order: Order::Desc,
        },
        SortField {
            name: "growth",
            expr: "COALESCE(d.growth_bytes_per_day, '-9223372036854775808'::bigint)",
            sql_type: "bigint",
            default_order: Order::Desc,
        },
    ],
    id_expr: "d.id",
};

const FROM: &str = "FROM instance_databases d JOIN instances i ON i.id = d.instance_id";

/// `threshold_bytes` for `growth.days_until`: a positive integer when given.
fn threshold(q: &Query) -> Result<Option<i64>, ApiError> {
    match q.int("threshold_bytes")? {
        Some(t) if t <= 0 => Err(ApiError::validation(
            "threshold_bytes",
            "threshold_bytes must be > 0",
        )),
        t => Ok(t),
    }
}

/// Days until `bytes` reaches `threshold` at `per_day`: 0 when already there, `None` when
/// not growing, nothing collected or no threshold asked.
pub fn days_until(bytes: Option<i64>, per_day: Option<i64>, threshold: Option<i64>) -> Option<i64> {
    let (bytes, threshold) = (bytes?, threshold?);
    if bytes >= threshold {
        return Some(0);
    }
    let per_day = per_day.filter(|g| *g > 0)?;
    // Both operands are positive here, so the unsigned ceiling division is exact.
    let days = (threshold.abs_diff(bytes)).div_ceil(per_day.unsigned_abs());
    Some(i64::try_from(days).unwrap_or(i64::MAX))
}

fn item_json(row: &Row, now: DateTime<Utc>, threshold: Option<i64>) -> Value {
    let bytes: Option<i64> = row.get("latest_size_bytes");
    let collected_at: Option<DateTime<Utc>> = row.get("latest_collected_at");
    let per_day: Option<i64> = row.get("growth_bytes_per_day");
    json!({
        "id": row.get::<_, i64>("id"),
        "database_name": row.get::<_, String>("database_name"),
        "db_type": row.get::<_, String>("db_type"),
        "instance": {
            "id": row.get::<_, i64>("instance_id"),
            "name": row.get::<_, String>("instance_name"),
            "host": row.get::<_, String>("host"),
            "port": row.get::<_, i32>("port"),
        },
        "size": bytes.map(|b| size::size_json(b, collected_at, row.get("latest_collected_date"))),
        "growth": {
            "bytes_per_day": per_day,
            "days_until": days_until(bytes, per_day, threshold),
        },
        "sync_status": filter::sync_status(collected_at, now),
        "tags": row.get::<_, Value>("tags"),
    })
}

/// `GET /databases/ledger`
pub async fn list(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let params = ListParams::parse(q, &SORTS)?;
    let threshold = threshold(q)?;
    let mut sql = Sql::default();
    let mut conds = filter::conditions(q, &mut sql)?;

    let client = app.db.get().await?;
    let total = if params.include_total {
        let text = format!("SELECT count(*) {FROM} WHERE {}", conds.join(" AND "));
        Some(
            client
                .query_one(&text, &sql.params())
                .await?
                .get::<_, i64>(0),
        )
    } else {
        None
    };
    params.keyset_condition(&mut sql, &mut conds);
    // The page is cut first (index walk + LIMIT); the tags of only its rows are then
    // aggregated in the same statement, one lateral lookup per row of the page.
    let dir = params.order.as_sql();
    sql.text = format!(
        "SELECT p.*, COALESCE(tg.tags, '[]'::json) AS tags FROM (\
           SELECT d.id, d.database_name, i.db_type, i.id AS instance_id, i.name AS instance_name, \
                  i.host, i.port, d.latest_size_bytes, d.latest_collected_at, \
                  d.latest_collected_date, d.growth_bytes_per_day, {} AS sort_value, {} \
           {FROM} WHERE {}{}\
         ) p LEFT JOIN LATERAL (\
           SELECT json_agg(json_build_object('name', t.name, 'display_name', t.display_name) \
                           ORDER BY t.name) AS tags \
           FROM instance_tags it JOIN tags t ON t.id = it.tag_id WHERE it.instance_id = p.instance_id\
         ) tg ON true \
         ORDER BY p.sort_value {dir}, p.sort_id {dir}",
        params.sort.expr,
        params.key_select(),
        conds.join(" AND "),
        params.order_and_limit(),
    );
    let rows = client.query(&sql.text, &sql.params()).await?;
    let now = Utc::now();
    Ok(ApiResponse::ok(
        params.finish(rows, total, |r| item_json(r, now, threshold)),
    ))
}

/// Longest date range one `sizes` call may ask for, both ends included.
pub const MAX_SIZES_DAYS: i64 = 400;
/// Range when none is given: the last 30 days, today included.
const DEFAULT_SIZES_DAYS: i64 = 30;

/// The validated range of a `sizes` call, defaulting to the last 30 business days.
pub fn sizes_range(q: &Query, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let end = q.date("end_date")?.unwrap_or(today);
    let start = match q.date("start_date")? {
        Some(s) => s,
        None => end - chrono::Duration::days(DEFAULT_SIZES_DAYS - 1),
    };
    if end < start {
        return Err(ApiError::validation(
            "end_date",
            "end_date must be on or after start_date",
        ));
    }
    if (end - start).num_days() + 1 > MAX_SIZES_DAYS {
        return Err(ApiError::validation(
            "start_date",
            format!("at most {MAX_SIZES_DAYS} days per call"),
        ));
    }
    Ok((start, end))
}

/// The history statement for one database. The dates are written as literals (they are parsed
/// `NaiveDate`s, never request text) so the planner prunes the partitions outside the range
/// at plan time rather than opening and locking every month.
pub fn sizes_sql(start: NaiveDate, end: NaiveDate) -> String {
    format!(
        "SELECT collected_date, size_bytes, data_size_bytes, log_size_bytes, collected_at \
         FROM database_size_stats \
         WHERE instance_id = $1 AND database_name = $2 \
           AND collected_date >= DATE '{}' AND collected_date <= DATE '{}' \
         ORDER BY collected_date",
        start.format("%Y-%m-%d"),
        end.format("%Y-%m-%d"),
    )
}

/// `GET /databases/{id}/sizes?start_date=&end_date=`
pub async fn sizes(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let (start, end) = sizes_range(&req.query, app.config.business_date(Utc::now()))?;
    let client = app.db.get().await?;
    let db = client
        .query_opt(
            "SELECT d.id, d.instance_id, d.database_name, i.name, i.host, i.port, i.db_type \
             FROM instance_databases d JOIN instances i ON i.id = d.instance_id \
             WHERE d.id = $1 AND i.deleted_at IS NULL",
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("database"))?;
    let instance_id: i64 = db.get("instance_id");
    let database_name: String = db.get("database_name");
    let rows = client
        .query(&sizes_sql(start, end), &[&instance_id, &database_name])
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let bytes: i64 = r.get("size_bytes");
            json!({
                "collected_date": r.get::<_, NaiveDate>("collected_date"),
                "size_bytes": bytes,
                "mb": size::mb(bytes),
                "data_size_bytes": r.get::<_, Option<i64>>("data_size_bytes"),
                "log_size_bytes": r.get::<_, Option<i64>>("log_size_bytes"),
                "collected_at": r.get::<_, DateTime<Utc>>("collected_at"),
            })
        })
        .collect();
    Ok(ApiResponse::ok(json!({
        "id": id,
        "database_name": database_name,
        "db_type": db.get::<_, String>("db_type"),
        "instance": {
            "id": instance_id,
            "name": db.get::<_, String>("name"),
            "host": db.get::<_, String>("host"),
            "port": db.get::<_, i32>("port"),
        },
        "start_date": start,
        "end_date": end,
        "items": items,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_until_threshold() {
        // (1000 - 100) / 300 = 3 days exactly; 1 byte more needs a 4th day.
        assert_eq!(days_until(Some(100), Some(300), Some(1000)), Some(3));
        assert_eq!(days_until(Some(100), Some(300), Some(1001)), Some(4));
        assert_eq!(days_until(Some(1000), Some(300), Some(1000)), Some(0));
        assert_eq!(days_until(Some(2000), None, Some(1000)), Some(0));
        assert_eq!(days_until(Some(100), Some(0), Some(1000)), None);
        assert_eq!(days_until(Some(100), Some(-5), Some(1000)), None);
        assert_eq!(days_until(Some(100), None, Some(1000)), None);
        assert_eq!(days_until(None, Some(300), Some(1000)), None);
        assert_eq!(days_until(Some(100), Some(300), None), None);
        assert_eq!(days_until(Some(0), Some(1), Some(i64::MAX)), Some(i64::MAX));
    }

    #[test]
    fn sizes_ranges() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            sizes_range(&Query::parse(""), today).unwrap(),
            (d("2026-02-09"), today)
        );
        assert_eq!(
            sizes_range(
                &Query::parse("start_date=2025-02-04&end_date=2026-03-10"),
                today
            )
            .unwrap(),
            (d("2025-02-04"), today)
        );
        let too_long = sizes_range(
            &Query::parse("start_date=2025-02-03&end_date=2026-03-10"),
            today,
        );
        assert_eq!(too_long.unwrap_err().field.as_deref(), Some("start_date"));
        let reversed = sizes_range(
            &Query::parse("start_date=2026-03-10&end_date=2026-03-09"),
            today,
        );
        assert_eq!(reversed.unwrap_err().field.as_deref(), Some("end_date"));
        let bad = sizes_range(&Query::parse("start_date=yesterday"), today);
        assert_eq!(bad.unwrap_err().field.as_deref(), Some("start_date"));
    }
}
