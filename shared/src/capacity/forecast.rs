//! `GET /capacity/forecast`: days until a size threshold, from the slope of the last 30 days.

use chrono::{Days, NaiveDate};
use serde::Serialize;
use serde_json::json;

use crate::web::list::parse_limit;
use crate::web::{ApiError, ApiResponse, ApiResult, Req};
use crate::App;

/// The forecast's regression window.
const FORECAST_DAYS: u64 = 30;

#[derive(Debug, Serialize)]
struct InstanceRef {
    id: i64,
    name: String,
}

/// One instance (or database) and when it reaches the threshold.
#[derive(Debug, Serialize)]
struct Forecast {
    instance: InstanceRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_name: Option<String>,
    latest_bytes: i64,
    latest_date: NaiveDate,
    growth_bytes_per_day: Option<i64>,
    samples: i64,
    days_until: Option<i64>,
    projected_date: Option<NaiveDate>,
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
             GREATEST(0, ceil(($1::bigint - r.latest_bytes) / r.slope)) END AS days_until \
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
    let limit = parse_limit(q)?;
    // Only the partitions of the last 30 days are read.
    let since = app.config.business_date(chrono::Utc::now()) - Days::new(FORECAST_DAYS);
    let client = app.db.get().await?;
    let rows = client
        .query(&forecast_sql(scope), &[&threshold, &since, &limit])
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            let latest_date: NaiveDate = r.try_get("latest_date")?;
            // Kept a float in SQL: a threshold near i64::MAX over a slow slope is more days
            // than a bigint holds; the cast saturates, as the ledger's days_until does.
            let days_until = r.try_get::<_, Option<f64>>("days_until")?.map(|d| d as i64);
            let slope: Option<f64> = r.try_get("slope")?;
            Ok(Forecast {
                instance: InstanceRef {
                    id: r.try_get("instance_id")?,
                    name: r.try_get("instance_name")?,
                },
                database_name: match scope {
                    "databases" => Some(r.try_get("database_name")?),
                    _ => None,
                },
                latest_bytes: r.try_get("latest_bytes")?,
                latest_date,
                growth_bytes_per_day: slope.map(|s| s.round() as i64),
                samples: r.try_get("samples")?,
                days_until,
                projected_date: days_until
                    .and_then(|d| u64::try_from(d).ok())
                    .and_then(|d| latest_date.checked_add_days(Days::new(d))),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(ApiResponse::ok(json!({
        "scope": scope,
        "threshold_bytes": threshold,
        "since": since,
        "items": items,
    })))
}
