//! The database ledger (function `api-databases`): every active database with its latest
//! size, growth, sync status and tags, and the daily size history of one database.
//!
//! The ledger reads the latest columns of `instance_databases` (kept by collection) and never
//! aggregates `database_size_stats`; each sort walks its own index (migration V4), so a page
//! costs `limit` index entries whatever the fleet or the history size.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;

use crate::values::{self, DateRange, Size};
use crate::web::list::{SortSpec, Source};
use crate::web::{ApiError, ApiResponse, ApiResult, ListParams, Query, Req};
use crate::App;

/// Each expression is the exact expression of one V4 index, so the planner walks that index.
static SORTS: SortSpec = crate::sorts! {
    "d.id";
    instance_name asc "ROW(d.instance_name, d.database_name)::ledger_name_key" ledger_name_key,
    database_name asc "d.database_name" text,
    size desc "COALESCE(d.latest_size_bytes, -1)" bigint,
    collected_at desc "COALESCE(d.latest_collected_at, '-infinity'::timestamptz)" timestamptz,
    growth desc "COALESCE(d.growth_bytes_per_day, '-9223372036854775808'::bigint)" bigint
};

const FROM: &str = "instance_databases d JOIN instances i ON i.id = d.instance_id";

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

/// `never`, `fresh` (<= 6 h), `due` (<= 48 h) or `stale`, from the latest collection time.
pub fn sync_status(latest: Option<DateTime<Utc>>, now: DateTime<Utc>) -> &'static str {
    match latest {
        None => "never",
        Some(t) if now - t <= chrono::Duration::hours(6) => "fresh",
        Some(t) if now - t <= chrono::Duration::hours(48) => "due",
        Some(_) => "stale",
    }
}

/// Where a database lives.
#[derive(Debug, Serialize)]
struct InstanceRef {
    id: i64,
    name: String,
    host: String,
    port: i32,
}

#[derive(Debug, Serialize)]
struct Growth {
    bytes_per_day: Option<i64>,
    days_until: Option<i64>,
}

/// One row of the ledger.
#[derive(Debug, Serialize)]
struct Item {
    id: i64,
    database_name: String,
    db_type: String,
    instance: InstanceRef,
    size: Option<Size>,
    growth: Growth,
    sync_status: &'static str,
    tags: Value,
}

impl Item {
    fn from_row(row: &Row, now: DateTime<Utc>, threshold: Option<i64>) -> Result<Self, ApiError> {
        let bytes: Option<i64> = row.try_get("latest_size_bytes")?;
        let collected_at: Option<DateTime<Utc>> = row.try_get("latest_collected_at")?;
        let per_day: Option<i64> = row.try_get("growth_bytes_per_day")?;
        Ok(Item {
            id: row.try_get("id")?,
            database_name: row.try_get("database_name")?,
            db_type: row.try_get("db_type")?,
            instance: InstanceRef {
                id: row.try_get("instance_id")?,
                name: row.try_get("instance_name")?,
                host: row.try_get("host")?,
                port: row.try_get("port")?,
            },
            size: Size::latest(row)?,
            growth: Growth {
                bytes_per_day: per_day,
                days_until: days_until(bytes, per_day, threshold),
            },
            sync_status: sync_status(collected_at, now),
            tags: row.try_get("tags")?,
        })
    }
}

/// The tags of only the page's rows, aggregated after the page is cut (one lateral lookup
/// per row of the page).
const PAGE_TAGS: &str = "LEFT JOIN LATERAL (\
    SELECT json_agg(json_build_object('name', t.name, 'display_name', t.display_name) ORDER BY t.name) AS tags \
    FROM instance_tags it JOIN tags t ON t.id = it.tag_id WHERE it.instance_id = p.instance_id) tg ON true";

/// Up to this many matching databases `include_total` counts them (tens of milliseconds);
/// above, it answers the planner's estimate with `total_is_estimate: true`, in about a
/// millisecond whatever the fleet.
pub const EXACT_TOTAL_MAX: i64 = 50_000;

/// `GET /databases/ledger`
pub async fn list(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let mut params = ListParams::parse(q, &SORTS)?;
    params.estimate_total_above = Some(EXACT_TOTAL_MAX);
    let threshold = threshold(q)?;
    let client = app.db.get().await?;
    let tagged = crate::filters::selective_tag_instances(q, &client).await?;
    crate::filters::ledger_with(q, &mut params.sql, tagged)?;
    let source = Source::new(
        "d.id, d.database_name, i.db_type, i.id AS instance_id, i.name AS instance_name, \
         i.host, i.port, d.latest_size_bytes, d.latest_collected_at, \
         d.latest_collected_date, d.growth_bytes_per_day",
        FROM,
    )
    .wrapped("COALESCE(tg.tags, '[]'::json) AS tags", PAGE_TAGS);
    let now = Utc::now();
    let page = params
        .fetch(&client, source, |r| Item::from_row(r, now, threshold))
        .await?;
    Ok(ApiResponse::ok(page))
}

/// Range when none is given: the last 30 days, today included.
const DEFAULT_SIZES_DAYS: i64 = 30;

/// The validated range of a `sizes` call: the last 30 business days by default, the 30 days
/// up to `end_date` when only it is given, and from `start_date` up to today (at most the
/// longest range) when only the start is.
pub fn sizes_range(q: &Query, today: NaiveDate) -> Result<DateRange, ApiError> {
    let days = |n: i64| chrono::Duration::days(n - 1);
    let (start, end) = match (q.date("start_date")?, q.date("end_date")?) {
        (Some(s), Some(e)) => (s, e),
        (Some(s), None) => (s, today.min(s + days(DateRange::MAX_DAYS)).max(s)),
        (None, e) => {
            let e = e.unwrap_or(today);
            (e - days(DEFAULT_SIZES_DAYS), e)
        }
    };
    DateRange::new(start, end)
}

/// The history statement for one database. The dates are written as literals (they are parsed
/// `NaiveDate`s, never request text) so the planner prunes the partitions outside the range
/// at plan time rather than opening and locking every month.
pub fn sizes_sql(range: DateRange) -> String {
    format!(
        "SELECT collected_date, size_bytes, data_size_bytes, log_size_bytes, collected_at \
         FROM database_size_stats \
         WHERE instance_id = $1 AND database_name = $2 \
           AND collected_date >= DATE '{}' AND collected_date <= DATE '{}' \
         ORDER BY collected_date",
        range.start.format("%Y-%m-%d"),
        range.end.format("%Y-%m-%d"),
    )
}

#[derive(Debug, Serialize)]
struct DaySize {
    collected_date: NaiveDate,
    size_bytes: i64,
    mb: f64,
    data_size_bytes: Option<i64>,
    log_size_bytes: Option<i64>,
    collected_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct History {
    id: i64,
    database_name: String,
    db_type: String,
    instance: InstanceRef,
    start_date: NaiveDate,
    end_date: NaiveDate,
    items: Vec<DaySize>,
}

/// `GET /databases/{id}/sizes?start_date=&end_date=`
pub async fn sizes(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let range = sizes_range(&req.query, app.config.business_date(Utc::now()))?;
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
    let instance_id: i64 = db.try_get("instance_id")?;
    let database_name: String = db.try_get("database_name")?;
    let rows = client
        .query(&sizes_sql(range), &[&instance_id, &database_name])
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            let bytes: i64 = r.try_get("size_bytes")?;
            Ok(DaySize {
                collected_date: r.try_get("collected_date")?,
                size_bytes: bytes,
                mb: values::mb(bytes),
                data_size_bytes: r.try_get("data_size_bytes")?,
                log_size_bytes: r.try_get("log_size_bytes")?,
                collected_at: r.try_get("collected_at")?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(ApiResponse::ok(History {
        id,
        database_name,
        db_type: db.try_get("db_type")?,
        instance: InstanceRef {
            id: instance_id,
            name: db.try_get("name")?,
            host: db.try_get("host")?,
            port: db.try_get("port")?,
        },
        start_date: range.start,
        end_date: range.end,
        items,
    }))
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
            DateRange::new(d("2026-02-09"), today).unwrap()
        );
        assert_eq!(
            sizes_range(
                &Query::parse("start_date=2025-02-04&end_date=2026-03-10"),
                today
            )
            .unwrap(),
            DateRange::new(d("2025-02-04"), today).unwrap()
        );
        let too_long = sizes_range(
            &Query::parse("start_date=2025-02-03&end_date=2026-03-10"),
            today,
        );
        assert_eq!(too_long.unwrap_err().field.as_deref(), Some("end_date"));
        let reversed = sizes_range(
            &Query::parse("start_date=2026-03-10&end_date=2026-03-09"),
            today,
        );
        assert_eq!(reversed.unwrap_err().field.as_deref(), Some("end_date"));
        let bad = sizes_range(&Query::parse("start_date=yesterday"), today);
        assert_eq!(bad.unwrap_err().field.as_deref(), Some("start_date"));
        // Only a start: up to today, at most the longest range; a future start is that day.
        let only_start = |s: &str| sizes_range(&Query::parse(&format!("start_date={s}")), today);
        assert_eq!(
            only_start("2026-03-01").unwrap(),
            DateRange::new(d("2026-03-01"), today).unwrap()
        );
        assert_eq!(
            only_start("2000-01-01").unwrap(),
            DateRange::new(d("2000-01-01"), d("2001-02-03")).unwrap()
        );
        assert_eq!(
            only_start("2027-01-01").unwrap(),
            DateRange::new(d("2027-01-01"), d("2027-01-01")).unwrap()
        );
    }
}
