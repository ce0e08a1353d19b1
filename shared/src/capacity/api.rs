//! The aggregate lists (function `api-capacity`): `GET /capacity/databases` and
//! `GET /capacity/instances`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use super::periods::PeriodKind;
use crate::values::DateRange;
use crate::web::list::{SortSpec, Source};
use crate::web::sql::Sql;
use crate::web::{ApiError, ApiResult, ListParams, Query, Req};
use crate::App;

static DATABASE_SORTS: SortSpec = crate::sorts! {
    "a.id";
    period_start desc "a.period_start" date, instance_name asc "i.name" text,
    database_name asc "a.database_name" text, avg_bytes desc "a.avg_bytes" bigint,
    change_bytes desc "a.change_bytes" bigint, change_percent desc "a.change_percent" float8
};

static INSTANCE_SORTS: SortSpec = crate::sorts! {
    "a.id";
    period_start desc "a.period_start" date, instance_name asc "i.name" text,
    avg_bytes desc "a.avg_bytes" bigint, change_bytes desc "a.change_bytes" bigint,
    change_percent desc "a.change_percent" float8
};

const AGGREGATION_COLUMNS: &str =
    "json_build_object('id', i.id, 'name', i.name) AS instance, a.period_type, \
    a.period_start, a.period_end, a.avg_bytes, a.max_bytes, a.min_bytes, a.sample_count, \
    a.change_bytes, a.change_percent, a.trend, a.calculated_at";

crate::row_struct! {
    /// One aggregate row: an instance's (or one of its databases') period; `extra` holds
    /// what only one of the two lists has.
    #[derive(Debug, Serialize)]
    struct Aggregation {
        instance: Value,
        #[serde(flatten)]
        extra: Value,
        period_type: PeriodKind,
        period_start: NaiveDate,
        period_end: NaiveDate,
        avg_bytes: i64,
        max_bytes: i64,
        min_bytes: i64,
        sample_count: i32,
        change_bytes: i64,
        change_percent: f64,
        trend: String,
        calculated_at: DateTime<Utc>,
    }
}

/// Filters shared by both lists: `period_type` (default daily), `start_date`/`end_date`
/// (periods overlapping that range), `instance_id`. Alias `a` (aggregation), `i` (instance).
fn aggregation_filters(q: &Query, sql: &mut Sql) -> Result<(), ApiError> {
    let period_type = q
        .pick::<PeriodKind>("period_type")?
        .unwrap_or(PeriodKind::Daily);
    let start = q.date("start_date")?;
    let end = q.date("end_date")?;
    DateRange::ordered(start, end)?;
    let instance_id = q.id("instance_id")?;
    sql.and("i.deleted_at IS NULL")
        .eq("a.period_type", Some(period_type.as_str()))
        .eq("a.instance_id", instance_id);
    if let Some(s) = start {
        let p = sql.bind(s);
        sql.and(format!("a.period_end >= {p}"));
    }
    if let Some(e) = end {
        let p = sql.bind(e);
        sql.and(format!("a.period_start <= {p}"));
    }
    Ok(())
}

/// One of the two lists: its sorts, its table and the column only it has.
struct List {
    sorts: &'static SortSpec,
    from: &'static str,
    extra: &'static str,
    by_database: bool,
}

async fn list(app: &App, req: Req, list: &List) -> ApiResult {
    let q = &req.query;
    let mut params = ListParams::parse(q, list.sorts)?;
    aggregation_filters(q, &mut params.sql)?;
    if list.by_database {
        let name = q.text("database_name").map(str::to_string);
        params.sql.eq("a.database_name", name);
    }
    let columns = format!("{AGGREGATION_COLUMNS}, {} AS extra", list.extra);
    let from = format!("{} a JOIN instances i ON i.id = a.instance_id", list.from);
    params
        .respond::<Aggregation>(app, Source::new(&columns, &from))
        .await
}

static DATABASES: List = List {
    sorts: &DATABASE_SORTS,
    from: "database_size_aggregations",
    extra: "json_build_object('database_name', a.database_name)",
    by_database: true,
};

static INSTANCES: List = List {
    sorts: &INSTANCE_SORTS,
    from: "instance_size_aggregations",
    extra: "json_build_object('database_count', a.database_count)",
    by_database: false,
};

/// `GET /capacity/databases`; also filters by `database_name`.
pub async fn databases(app: &App, req: Req) -> ApiResult {
    list(app, req, &DATABASES).await
}

/// `GET /capacity/instances`
pub async fn instances(app: &App, req: Req) -> ApiResult {
    list(app, req, &INSTANCES).await
}
