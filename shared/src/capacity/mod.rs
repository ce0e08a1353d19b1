//! Capacity trends: daily/weekly/monthly/quarterly aggregates and forecasts (functions
//! `aggregate`, `api-capacity`).
//!
//! The aggregates are computed in SQL, one `INSERT ... SELECT ... GROUP BY ... ON CONFLICT
//! DO UPDATE` per table for every period at once, so the job is idempotent and its cost
//! is that of reading the stats partitions of the periods it covers.

use chrono::{Datelike, Days, Months, NaiveDate};
use serde_json::{json, Value};
use tokio_postgres::Row;

use crate::web::list::{Order, SortField, SortSpec};
use crate::web::sql::Sql;
use crate::web::{ApiError, ApiResponse, ApiResult, ListParams, Query, Req};
use crate::App;

pub const PERIOD_TYPES: [&str; 4] = ["daily", "weekly", "monthly", "quarterly"];

/// Change of the average against the previous period beyond which a trend is not stable.
const TREND_PERCENT: f64 = 5.0;

/// The forecast's regression window.
const FORECAST_DAYS: u64 = 30;

/// One period of one type: `start..=end` (business dates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub kind: &'static str,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Period {
    /// The period of type `kind` that contains `date` (weeks start on Monday).
    pub fn containing(kind: &'static str, date: NaiveDate) -> Period {
        let start = match kind {
            "weekly" => date - Days::new(u64::from(date.weekday().num_days_from_monday())),
            "monthly" => date.with_day(1).unwrap_or(date),
            "quarterly" => {
                let month = (date.month0() / 3) * 3 + 1;
                NaiveDate::from_ymd_opt(date.year(), month, 1).unwrap_or(date)
            }
            _ => date,
        };
        let end = match kind {
            "weekly" => start + Days::new(6),
            "monthly" => start + Months::new(1) - Days::new(1),
            "quarterly" => start + Months::new(3) - Days::new(1),
            _ => start,
        };
        Period { kind, start, end }
    }

    /// The period of the same type just before this one.
    pub fn previous(&self) -> Period {
        Period::containing(self.kind, self.start - Days::new(1))
    }
}

/// What the job computes on business date `today`: yesterday; the last complete and the
/// current week, month and quarter.
pub fn periods_for(today: NaiveDate) -> Vec<Period> {
    let mut out = vec![Period::containing("daily", today - Days::new(1))];
    for kind in ["weekly", "monthly", "quarterly"] {
        let current = Period::containing(kind, today);
        out.push(current.previous());
        out.push(current);
    }
    out
}

/// The periods as parallel arrays ($1..$5) and the date range they need ($6, $7), so every
/// statement reads only the stats partitions of those dates.
struct PeriodParams {
    kinds: Vec<String>,
    starts: Vec<NaiveDate>,
    ends: Vec<NaiveDate>,
    prev_starts: Vec<NaiveDate>,
    prev_ends: Vec<NaiveDate>,
    from: NaiveDate,
    to: NaiveDate,
}

impl PeriodParams {
    fn new(periods: &[Period]) -> Self {
        let prev: Vec<Period> = periods.iter().map(Period::previous).collect();
        PeriodParams {
            kinds: periods.iter().map(|p| p.kind.to_string()).collect(),
            starts: periods.iter().map(|p| p.start).collect(),
            ends: periods.iter().map(|p| p.end).collect(),
            prev_starts: prev.iter().map(|p| p.start).collect(),
            prev_ends: prev.iter().map(|p| p.end).collect(),
            from: prev.iter().map(|p| p.start).min().unwrap_or(NaiveDate::MIN),
            to: periods
                .iter()
                .map(|p| p.end)
                .max()
                .unwrap_or(NaiveDate::MIN),
        }
    }
    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 7] {
        [
            &self.kinds,
            &self.starts,
            &self.ends,
            &self.prev_starts,
            &self.prev_ends,
            &self.from,
            &self.to,
        ]
    }
}

/// Shared head of both aggregation statements: the periods, and `change`/`trend` SQL from
/// the current (`c`) and previous (`p`) averages.
const PERIODS_CTE: &str = "periods AS (SELECT * FROM unnest($1::text[], $2::date[], $3::date[], \
    $4::date[], $5::date[]) AS p(period_type, period_start, period_end, prev_start, prev_end))";

fn change_columns() -> String {
    format!(
        "COALESCE(round(c.avg_bytes - p.avg_bytes), 0)::bigint, \
         CASE WHEN p.avg_bytes > 0 THEN (c.avg_bytes - p.avg_bytes) / p.avg_bytes * 100 ELSE 0 END::float8, \
         CASE WHEN p.avg_bytes > 0 AND (c.avg_bytes - p.avg_bytes) / p.avg_bytes * 100 > {TREND_PERCENT} THEN 'growing' \
              WHEN p.avg_bytes > 0 AND (c.avg_bytes - p.avg_bytes) / p.avg_bytes * 100 < -{TREND_PERCENT} THEN 'shrinking' \
              ELSE 'stable' END"
    )
}

fn database_aggregation_sql() -> String {
    format!(
        "WITH {PERIODS_CTE}, \
         stats AS (SELECT s.instance_id, s.database_name, s.collected_date, s.size_bytes \
           FROM database_size_stats s JOIN instances i ON i.id = s.instance_id \
           WHERE s.collected_date BETWEEN $6 AND $7 AND i.is_active AND i.deleted_at IS NULL), \
         cur AS (SELECT s.instance_id, s.database_name, ps.period_type, ps.period_start, ps.period_end, \
             avg(s.size_bytes) AS avg_bytes, max(s.size_bytes) AS max_bytes, min(s.size_bytes) AS min_bytes, \
             count(*) AS sample_count \
           FROM periods ps JOIN stats s ON s.collected_date BETWEEN ps.period_start AND ps.period_end \
           GROUP BY 1, 2, 3, 4, 5), \
         prev AS (SELECT s.instance_id, s.database_name, ps.period_type, ps.period_start, avg(s.size_bytes) AS avg_bytes \
           FROM periods ps JOIN stats s ON s.collected_date BETWEEN ps.prev_start AND ps.prev_end \
           GROUP BY 1, 2, 3, 4) \
         INSERT INTO database_size_aggregations (instance_id, database_name, period_type, period_start, \
             period_end, avg_bytes, max_bytes, min_bytes, sample_count, change_bytes, change_percent, trend, calculated_at) \
         SELECT c.instance_id, c.database_name, c.period_type, c.period_start, c.period_end, \
             round(c.avg_bytes)::bigint, c.max_bytes, c.min_bytes, c.sample_count::int, {}, now() \
         FROM cur c LEFT JOIN prev p USING (instance_id, database_name, period_type, period_start) \
         ON CONFLICT (instance_id, database_name, period_type, period_start) DO UPDATE SET \
             period_end = EXCLUDED.period_end, avg_bytes = EXCLUDED.avg_bytes, max_bytes = EXCLUDED.max_bytes, \
             min_bytes = EXCLUDED.min_bytes, sample_count = EXCLUDED.sample_count, \
             change_bytes = EXCLUDED.change_bytes, change_percent = EXCLUDED.change_percent, \
             trend = EXCLUDED.trend, calculated_at = EXCLUDED.calculated_at",
        change_columns()
    )
}

fn instance_aggregation_sql() -> String {
    format!(
        "WITH {PERIODS_CTE}, \
         stats AS (SELECT s.instance_id, s.collected_date, s.total_size_bytes, s.database_count \
           FROM instance_size_stats s JOIN instances i ON i.id = s.instance_id \
           WHERE s.collected_date BETWEEN $6 AND $7 AND i.is_active AND i.deleted_at IS NULL), \
         cur AS (SELECT s.instance_id, ps.period_type, ps.period_start, ps.period_end, \
             avg(s.total_size_bytes) AS avg_bytes, max(s.total_size_bytes) AS max_bytes, \
             min(s.total_size_bytes) AS min_bytes, count(*) AS sample_count, \
             (array_agg(s.database_count ORDER BY s.collected_date DESC))[1] AS database_count \
           FROM periods ps JOIN stats s ON s.collected_date BETWEEN ps.period_start AND ps.period_end \
           GROUP BY 1, 2, 3, 4), \
         prev AS (SELECT s.instance_id, ps.period_type, ps.period_start, avg(s.total_size_bytes) AS avg_bytes \
           FROM periods ps JOIN stats s ON s.collected_date BETWEEN ps.prev_start AND ps.prev_end \
           GROUP BY 1, 2, 3) \
         INSERT INTO instance_size_aggregations (instance_id, period_type, period_start, period_end, \
             avg_bytes, max_bytes, min_bytes, sample_count, change_bytes, change_percent, trend, \
             database_count, calculated_at) \
         SELECT c.instance_id, c.period_type, c.period_start, c.period_end, \
             round(c.avg_bytes)::bigint, c.max_bytes, c.min_bytes, c.sample_count::int, {}, \
             c.database_count, now() \
         FROM cur c LEFT JOIN prev p USING (instance_id, period_type, period_start) \
         ON CONFLICT (instance_id, period_type, period_start) DO UPDATE SET \
             period_end = EXCLUDED.period_end, avg_bytes = EXCLUDED.avg_bytes, max_bytes = EXCLUDED.max_bytes, \
             min_bytes = EXCLUDED.min_bytes, sample_count = EXCLUDED.sample_count, \
             change_bytes = EXCLUDED.change_bytes, change_percent = EXCLUDED.change_percent, \
             trend = EXCLUDED.trend, database_count = EXCLUDED.database_count, \
             calculated_at = EXCLUDED.calculated_at",
        change_columns()
    )
}

/// The daily aggregation job, for today's business date.
pub async fn aggregate(app: &App) -> anyhow::Result<Value> {
    aggregate_on(app, app.config.business_date(chrono::Utc::now())).await
}

/// The aggregation as it runs on business date `today` (idempotent: rerunning rewrites the
/// same rows).
pub async fn aggregate_on(app: &App, today: NaiveDate) -> anyhow::Result<Value> {
    let periods = periods_for(today);
    let params = PeriodParams::new(&periods);
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let databases = tx
        .execute(&database_aggregation_sql(), &params.params())
        .await?;
    let instances = tx
        .execute(&instance_aggregation_sql(), &params.params())
        .await?;
    let summary = json!({
        "business_date": today,
        "periods": periods.iter().map(|p| json!({"period_type": p.kind, "period_start": p.start, "period_end": p.end})).collect::<Vec<_>>(),
        "database_rows": databases,
        "instance_rows": instances,
    });
    crate::events::record(
        &tx,
        "INFO",
        "capacity",
        "aggregation finished",
        summary.clone(),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(summary = %summary, "aggregation finished");
    Ok(summary)
}

const fn sort_field(
    name: &'static str,
    expr: &'static str,
    sql_type: &'static str,
    default_order: Order,
) -> SortField {
    SortField {
        name,
        expr,
        sql_type,
        default_order,
    }
}

static DATABASE_SORTS: SortSpec = SortSpec {
    fields: &[
        sort_field("period_start", "a.period_start", "date", Order::Desc),
        sort_field("instance_name", "i.name", "text", Order::Asc),
        sort_field("database_name", "a.database_name", "text", Order::Asc),
        sort_field("avg_bytes", "a.avg_bytes", "bigint", Order::Desc),
        sort_field("change_bytes", "a.change_bytes", "bigint", Order::Desc),
        sort_field("change_percent", "a.change_percent", "float8", Order::Desc),
    ],
    id_expr: "a.id",
};

static INSTANCE_SORTS: SortSpec = SortSpec {
    fields: &[
        sort_field("period_start", "a.period_start", "date", Order::Desc),
        sort_field("instance_name", "i.name", "text", Order::Asc),
        sort_field("avg_bytes", "a.avg_bytes", "bigint", Order::Desc),
        sort_field("change_bytes", "a.change_bytes", "bigint", Order::Desc),
        sort_field("change_percent", "a.change_percent", "float8", Order::Desc),
    ],
    id_expr: "a.id",
};

const AGGREGATION_COLUMNS: &str = "i.id AS instance_id, i.name AS instance_name, a.period_type, \
    a.period_start, a.period_end, a.avg_bytes, a.max_bytes, a.min_bytes, a.sample_count, \
    a.change_bytes, a.change_percent, a.trend, a.calculated_at";

fn aggregation_json(r: &Row) -> Value {
    json!({
        "instance": {"id": r.get::<_, i64>("instance_id"), "name": r.get::<_, String>("instance_name")},
        "period_type": r.get::<_, String>("period_type"),
        "period_start": r.get::<_, NaiveDate>("period_start"),
        "period_end": r.get::<_, NaiveDate>("period_end"),
        "avg_bytes": r.get::<_, i64>("avg_bytes"),
        "max_bytes": r.get::<_, i64>("max_bytes"),
        "min_bytes": r.get::<_, i64>("min_bytes"),
        "sample_count": r.get::<_, i32>("sample_count"),
        "change_bytes": r.get::<_, i64>("change_bytes"),
        "change_percent": r.get::<_, f64>("change_percent"),
        "trend": r.get::<_, String>("trend"),
        "calculated_at": r.get::<_, chrono::DateTime<chrono::Utc>>("calculated_at"),
    })
}

/// Filters shared by both lists: `period_type` (default daily), `start_date`/`end_date`
/// (periods overlapping that range), `instance_id`. Alias `a` (aggregation), `i` (instance).
fn aggregation_filters(q: &Query, sql: &mut Sql) -> Result<Vec<String>, ApiError> {
    let period_type = q.one_of("period_type", &PERIOD_TYPES)?.unwrap_or("daily");
    let mut conds = vec![
        "i.deleted_at IS NULL".to_string(),
        format!("a.period_type = {}", sql.bind(period_type.to_string())),
    ];
    let start = q.date("start_date")?;
    let end = q.date("end_date")?;
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err(ApiError::validation(
                "end_date",
                "end_date must not be before start_date",
            ));
        }
    }
    if let Some(s) = start {
        conds.push(format!("a.period_end >= {}", sql.bind(s)));
    }
    if let Some(e) = end {
        conds.push(format!("a.period_start <= {}", sql.bind(e)));
    }
    if let Some(id) = q.int("instance_id")? {
        if id <= 0 {
            return Err(ApiError::validation(
                "instance_id",
                "instance_id must be a positive integer",
            ));
        }
        conds.push(format!("a.instance_id = {}", sql.bind(id)));
    }
    Ok(conds)
}

pub async fn databases(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let params = ListParams::parse(q, &DATABASE_SORTS)?;
    let mut sql = Sql::default();
    let mut conds = aggregation_filters(q, &mut sql)?;
    if let Some(name) = q.text("database_name") {
        conds.push(format!("a.database_name = {}", sql.bind(name.to_string())));
    }
    let client = app.db.get().await?;
    let page = params
        .fetch(
            &client,
            sql,
            conds,
            &format!("{AGGREGATION_COLUMNS}, a.database_name"),
            "database_size_aggregations a JOIN instances i ON i.id = a.instance_id",
            |r| {
                let mut v = aggregation_json(r);
                v["database_name"] = json!(r.get::<_, String>("database_name"));
                v
            },
        )
        .await?;
    Ok(ApiResponse::ok(page))
}

pub async fn instances(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let params = ListParams::parse(q, &INSTANCE_SORTS)?;
    let mut sql = Sql::default();
    let conds = aggregation_filters(q, &mut sql)?;
    let client = app.db.get().await?;
    let page = params
        .fetch(
            &client,
            sql,
            conds,
            &format!("{AGGREGATION_COLUMNS}, a.database_count"),
            "instance_size_aggregations a JOIN instances i ON i.id = a.instance_id",
            |r| {
                let mut v = aggregation_json(r);
                v["database_count"] = json!(r.get::<_, i32>("database_count"));
                v
            },
        )
        .await?;
    Ok(ApiResponse::ok(page))
}

/// Ranks instances (`scope=instances`, default) or databases by the days until their size
/// reaches `threshold_bytes`, from the linear slope of the last 30 days. Growing ones come
/// first (soonest first); the others follow with `days_until` null.
fn forecast_sql(scope: &str) -> String {
    let (key, size, from, extra_col) = if scope == "databases" {
        (
            "s.instance_id, s.database_name",
            "s.size_bytes",
            "database_size_stats",
            "r.database_name, ",
        )
    } else {
        (
            "s.instance_id",
            "s.total_size_bytes",
            "instance_size_stats",
            "",
        )
    };
    format!(
        "WITH recent AS ( \
           SELECT {key}, regr_slope({size}::float8, (s.collected_date - $2::date)::float8) AS slope, \
             (array_agg({size} ORDER BY s.collected_date DESC))[1] AS latest_bytes, \
             max(s.collected_date) AS latest_date, count(*) AS samples \
           FROM {from} s WHERE s.collected_date >= $2::date GROUP BY {key}), \
         ranked AS ( \
           SELECT r.*, CASE WHEN r.slope > 0 THEN \
             GREATEST(0, ceil(($1::bigint - r.latest_bytes) / r.slope))::bigint END AS days_until \
           FROM recent r) \
         SELECT i.id AS instance_id, i.name AS instance_name, {extra_col}r.latest_bytes, \
           r.latest_date, r.slope, r.samples, r.days_until \
         FROM ranked r JOIN instances i ON i.id = r.instance_id \
         WHERE i.is_active AND i.deleted_at IS NULL \
         ORDER BY r.days_until ASC NULLS LAST, r.slope DESC NULLS LAST, r.latest_bytes DESC, \
           i.name, {extra_col}i.id \
         LIMIT $3"
    )
}

pub async fn forecast(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let threshold = q
        .int("threshold_bytes")?
        .filter(|t| *t > 0)
        .ok_or_else(|| {
            ApiError::validation(
                "threshold_bytes",
                "threshold_bytes is required and must be a positive integer",
            )
        })?;
    let scope = q
        .one_of("scope", &["instances", "databases"])?
        .unwrap_or("instances");
    let limit = match q.text("limit") {
        None => crate::web::list::DEFAULT_LIMIT,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=crate::web::list::MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::validation(
                    "limit",
                    format!(
                        "limit must be between 1 and {}",
                        crate::web::list::MAX_LIMIT
                    ),
                )
            })?,
    };
    // Only the partitions of the last 30 days are read.
    let since = app.config.business_date(chrono::Utc::now()) - Days::new(FORECAST_DAYS);
    let client = app.db.get().await?;
    let rows = client
        .query(&forecast_sql(scope), &[&threshold, &since, &limit])
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let latest_date: NaiveDate = r.get("latest_date");
            let days_until: Option<i64> = r.get("days_until");
            let slope: Option<f64> = r.get("slope");
            let mut v = json!({
                "instance": {"id": r.get::<_, i64>("instance_id"), "name": r.get::<_, String>("instance_name")},
                "latest_bytes": r.get::<_, i64>("latest_bytes"),
                "latest_date": latest_date,
                "growth_bytes_per_day": slope.map(|s| s.round() as i64),
                "samples": r.get::<_, i64>("samples"),
                "days_until": days_until,
                "projected_date": days_until
                    .and_then(|d| u64::try_from(d).ok())
                    .and_then(|d| latest_date.checked_add_days(Days::new(d))),
            });
            if scope == "databases" {
                v["database_name"] = json!(r.get::<_, String>("database_name"));
            }
            v
        })
        .collect();
    Ok(ApiResponse::ok(json!({
        "scope": scope,
        "threshold_bytes": threshold,
        "since": since,
        "items": items,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn periods_contain_the_date_and_chain_backwards() {
        let p = Period::containing("weekly", d(2026, 11, 25)); // a Wednesday
        assert_eq!((p.start, p.end), (d(2026, 11, 23), d(2026, 11, 29)));
        let p = Period::containing("monthly", d(2026, 2, 14));
        assert_eq!((p.start, p.end), (d(2026, 2, 1), d(2026, 2, 28)));
        let p = Period::containing("quarterly", d(2026, 11, 25));
        assert_eq!((p.start, p.end), (d(2026, 10, 1), d(2026, 12, 31)));
        let q1 = Period::containing("quarterly", d(2026, 1, 1)).previous();
        assert_eq!((q1.start, q1.end), (d(2025, 10, 1), d(2025, 12, 31)));
        let day = Period::containing("daily", d(2026, 3, 1)).previous();
        assert_eq!((day.start, day.end), (d(2026, 2, 28), d(2026, 2, 28)));
    }

    #[test]
    fn the_job_covers_yesterday_and_last_and_current_periods() {
        let ps = periods_for(d(2026, 1, 1));
        let kinds: Vec<(&str, NaiveDate)> = ps.iter().map(|p| (p.kind, p.start)).collect();
        assert_eq!(
            kinds,
            vec![
                ("daily", d(2025, 12, 31)),
                ("weekly", d(2025, 12, 22)),
                ("weekly", d(2025, 12, 29)),
                ("monthly", d(2025, 12, 1)),
                ("monthly", d(2026, 1, 1)),
                ("quarterly", d(2025, 10, 1)),
                ("quarterly", d(2026, 1, 1)),
            ]
        );
    }
}
