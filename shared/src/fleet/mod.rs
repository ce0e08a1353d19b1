//! The fleet at a glance (function `api-system`): who is calling (`GET /me`, so a client can
//! hide what the role cannot do) and the figures of the console's overview
//! (`GET /fleet/summary`), each one SQL statement.

use chrono::{Days, NaiveDate, Utc};
use serde_json::{json, Value};
use tokio_postgres::Row;

use crate::web::{ApiError, ApiResponse, ApiResult, Req};
use crate::App;

/// Threshold of the "fills first" ranking when none is given: 50 GiB.
pub const DEFAULT_THRESHOLD_BYTES: i64 = 50 * 1024 * 1024 * 1024;
/// Rows of each ranking.
pub const TOP_N: i64 = 10;
/// A collection older than this (or none) makes an instance stale.
pub const STALE_HOURS: i32 = 48;

/// `GET /me`: the caller's subject and role, and the business time zone clients show times in.
pub async fn me(app: &App, req: Req) -> ApiResult {
    Ok(ApiResponse::ok(json!({
        "subject": req.principal.subject,
        "role": req.principal.role.as_str(),
        "timezone": app.config.timezone.name(),
    })))
}

/// Instances per engine and status (`active`, `inactive`, `deleted`).
pub const INSTANCES_SQL: &str = "SELECT db_type, \
       CASE WHEN deleted_at IS NOT NULL THEN 'deleted' WHEN is_active THEN 'active' ELSE 'inactive' END AS status, \
       count(*) AS n \
     FROM instances GROUP BY 1, 2 ORDER BY 1, 2";

/// Instances not deleted, counted by server version (its first word: `16.4`, `10.11.6-MariaDB`)
/// and by the status of their last connection check (`never` when none).
pub const PROFILE_SQL: &str = "SELECT 'version' AS kind, \
       COALESCE(NULLIF(split_part(version, ' ', 1), ''), 'unknown') AS key, count(*) AS n \
     FROM instances WHERE deleted_at IS NULL GROUP BY 2 \
     UNION ALL \
     SELECT 'last_check', COALESCE(last_check_status, 'never'), count(*) \
     FROM instances WHERE deleted_at IS NULL GROUP BY 2 ORDER BY 1, 2";

/// Databases of the ledger (active databases of active instances): count, total size and
/// growth per day, from the latest columns collection keeps.
pub const DATABASES_SQL: &str = "SELECT count(*) AS databases, \
       COALESCE(sum(d.latest_size_bytes), 0)::bigint AS total_bytes, \
       COALESCE(sum(d.growth_bytes_per_day), 0)::bigint AS growth_bytes_per_day, \
       count(*) FILTER (WHERE d.latest_size_bytes IS NOT NULL) AS measured \
     FROM instance_databases d JOIN instances i ON i.id = d.instance_id \
     WHERE d.is_active AND i.is_active AND i.deleted_at IS NULL";

/// The newest collection run.
pub const LAST_RUN_SQL: &str = "SELECT run_id, status, trigger, started_at, completed_at, \
       items_total, items_succeeded, items_failed \
     FROM task_runs WHERE task_key = 'collect_databases' ORDER BY started_at DESC LIMIT 1";

/// The databases that reach `$1` bytes first at their current growth per day ($2 rows).
pub const FILLS_FIRST_SQL: &str = "SELECT d.id, d.database_name, d.instance_id, d.instance_name, \
       d.latest_size_bytes, d.growth_bytes_per_day, \
       CASE WHEN d.latest_size_bytes >= $1 THEN 0 \
            ELSE ceil(($1 - d.latest_size_bytes)::numeric / d.growth_bytes_per_day)::bigint END AS days_until \
     FROM instance_databases d JOIN instances i ON i.id = d.instance_id \
     WHERE d.is_active AND i.is_active AND i.deleted_at IS NULL \
       AND d.latest_size_bytes IS NOT NULL \
       AND (d.growth_bytes_per_day > 0 OR d.latest_size_bytes >= $1) \
     ORDER BY days_until, d.latest_size_bytes DESC, d.id LIMIT $2";

/// Top growers since a date: the latest size against the size collected on that date
/// (databases without a sample that day are left out). The date is a literal (a parsed date,
/// never request text) so only its partition is read, and one day's rows are hash-joined to
/// the inventory: no sort of the window's history.
pub fn growers_sql(since: NaiveDate) -> String {
    format!(
        "SELECT d.id, d.database_name, d.instance_id, d.instance_name, d.latest_size_bytes, \
           s.collected_date AS since_date, (d.latest_size_bytes - s.size_bytes) AS change_bytes, \
           CASE WHEN s.size_bytes > 0 THEN (d.latest_size_bytes - s.size_bytes)::float8 / s.size_bytes * 100 END AS change_percent \
         FROM database_size_stats s \
         JOIN instance_databases d ON d.instance_id = s.instance_id AND d.database_name = s.database_name \
         JOIN instances i ON i.id = d.instance_id \
         WHERE s.collected_date = DATE '{}' \
           AND d.is_active AND i.is_active AND i.deleted_at IS NULL \
           AND d.latest_size_bytes IS NOT NULL AND d.latest_size_bytes > s.size_bytes \
         ORDER BY change_bytes DESC, d.id LIMIT $1",
        since.format("%Y-%m-%d")
    )
}

/// Active instances never collected or not within `STALE_HOURS`: the count and the oldest few.
pub const STALE_SQL: &str = "SELECT i.id, i.name, i.db_type, i.host, i.port, i.last_collected_at, \
       count(*) OVER () AS total \
     FROM instances i \
     WHERE i.is_active AND i.deleted_at IS NULL \
       AND (i.last_collected_at IS NULL OR i.last_collected_at < now() - make_interval(hours => $1)) \
     ORDER BY i.last_collected_at NULLS FIRST, i.id LIMIT $2";

fn database_ref(r: &Row) -> Value {
    json!({
        "id": r.get::<_, i64>("id"),
        "database_name": r.get::<_, String>("database_name"),
        "instance": {"id": r.get::<_, i64>("instance_id"), "name": r.get::<_, String>("instance_name")},
        "size_bytes": r.get::<_, Option<i64>>("latest_size_bytes"),
    })
}

fn grower_json(r: &Row) -> Value {
    let mut v = database_ref(r);
    v["since_date"] = json!(r.get::<_, NaiveDate>("since_date"));
    v["change_bytes"] = json!(r.get::<_, i64>("change_bytes"));
    v["change_percent"] = json!(r
        .get::<_, Option<f64>>("change_percent")
        .map(|p| (p * 100.0).round() / 100.0));
    v
}

/// `instances` rows into `{total, by_engine: {engine: {status: n}}, by_status: {status: n}}`,
/// with the `PROFILE_SQL` rows as `by_version` and `by_last_check` (`{key: n}`).
pub fn instance_counts(
    rows: &[(String, String, i64)],
    profile: &[tokio_postgres::Row],
) -> Result<Value, tokio_postgres::Error> {
    let mut by_engine = serde_json::Map::new();
    let mut by_status = serde_json::Map::new();
    let mut total = 0;
    for (engine, status, n) in rows {
        let e = by_engine
            .entry(engine.clone())
            .or_insert_with(|| json!({"active": 0, "inactive": 0, "deleted": 0}));
        e[status.as_str()] = json!(n);
        let s = by_status.entry(status.clone()).or_insert(json!(0));
        *s = json!(s.as_i64().unwrap_or(0) + n);
        if status != "deleted" {
            total += n;
        }
    }
    for status in ["active", "inactive", "deleted"] {
        by_status.entry(status).or_insert(json!(0));
    }
    let (mut by_version, mut by_last_check) = (serde_json::Map::new(), serde_json::Map::new());
    for r in profile {
        let kind: &str = r.try_get("kind")?;
        let into = if kind == "version" {
            &mut by_version
        } else {
            &mut by_last_check
        };
        into.insert(r.try_get("key")?, json!(r.try_get::<_, i64>("n")?));
    }
    Ok(json!({
        "total": total,
        "by_engine": by_engine,
        "by_status": by_status,
        "by_version": by_version,
        "by_last_check": by_last_check,
    }))
}

/// `GET /fleet/summary?threshold_bytes=`
pub async fn summary(app: &App, req: Req) -> ApiResult {
    let threshold = match req.query.int("threshold_bytes")? {
        None => DEFAULT_THRESHOLD_BYTES,
        Some(t) if t > 0 => t,
        Some(_) => {
            return Err(ApiError::validation(
                "threshold_bytes",
                "threshold_bytes must be > 0",
            ))
        }
    };
    let today = app.config.business_date(Utc::now());
    let since_7 = today - Days::new(7);
    let since_30 = today - Days::new(30);
    let (g7, g30) = (growers_sql(since_7), growers_sql(since_30));
    let fills_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&threshold, &TOP_N];
    let top: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&TOP_N];
    let stale_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&STALE_HOURS, &TOP_N];
    let client = app.db.get().await?;
    // Independent statements, pipelined on one connection.
    let (instances, profile, databases, last_run, fills, grow7, grow30, stale) = tokio::try_join!(
        client.query(INSTANCES_SQL, &[]),
        client.query(PROFILE_SQL, &[]),
        client.query_one(DATABASES_SQL, &[]),
        client.query_opt(LAST_RUN_SQL, &[]),
        client.query(FILLS_FIRST_SQL, &fills_params),
        client.query(g7.as_str(), &top),
        client.query(g30.as_str(), &top),
        client.query(STALE_SQL, &stale_params),
    )?;

    let counts: Vec<(String, String, i64)> = instances
        .iter()
        .map(|r| (r.get("db_type"), r.get("status"), r.get("n")))
        .collect();
    let last_run = last_run.map(|r| {
        json!({
            "run_id": r.get::<_, uuid::Uuid>("run_id"),
            "status": r.get::<_, String>("status"),
            "trigger": r.get::<_, String>("trigger"),
            "started_at": r.get::<_, chrono::DateTime<Utc>>("started_at"),
            "completed_at": r.get::<_, Option<chrono::DateTime<Utc>>>("completed_at"),
            "items_total": r.get::<_, i32>("items_total"),
            "items_succeeded": r.get::<_, i32>("items_succeeded"),
            "items_failed": r.get::<_, i32>("items_failed"),
        })
    });
    let fills: Vec<Value> = fills
        .iter()
        .map(|r| {
            let mut v = database_ref(r);
            let days: i64 = r.get("days_until");
            v["growth_bytes_per_day"] = json!(r.get::<_, Option<i64>>("growth_bytes_per_day"));
            v["days_until"] = json!(days);
            v["projected_date"] = json!(u64::try_from(days)
                .ok()
                .and_then(|d| today.checked_add_days(Days::new(d))));
            v
        })
        .collect();
    let stale_total: i64 = stale.first().map(|r| r.get("total")).unwrap_or(0);
    let stale_items: Vec<Value> = stale
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, i64>("id"),
                "name": r.get::<_, String>("name"),
                "db_type": r.get::<_, String>("db_type"),
                "host": r.get::<_, String>("host"),
                "port": r.get::<_, i32>("port"),
                "last_collected_at": r.get::<_, Option<chrono::DateTime<Utc>>>("last_collected_at"),
            })
        })
        .collect();

    Ok(ApiResponse::ok(json!({
        "business_date": today,
        "threshold_bytes": threshold,
        "instances": instance_counts(&counts, &profile)?,
        "databases": {
            "count": databases.get::<_, i64>("databases"),
            "measured": databases.get::<_, i64>("measured"),
            "total_bytes": databases.get::<_, i64>("total_bytes"),
            "growth_bytes_per_day": databases.get::<_, i64>("growth_bytes_per_day"),
        },
        "last_collection": last_run,
        "fills_first": fills,
        "top_growers": {
            "days_7": grow7.iter().map(grower_json).collect::<Vec<_>>(),
            "days_30": grow30.iter().map(grower_json).collect::<Vec<_>>(),
        },
        "stale_instances": {"total": stale_total, "hours": STALE_HOURS, "items": stale_items},
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_counts_fill_every_status_and_leave_deleted_out_of_the_total() {
        let v = instance_counts(
            &[
                ("mysql".into(), "active".into(), 3),
                ("mysql".into(), "deleted".into(), 2),
                ("postgresql".into(), "active".into(), 4),
                ("postgresql".into(), "inactive".into(), 1),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(v["total"], 8);
        assert_eq!(v["by_engine"]["mysql"]["inactive"], 0);
        assert_eq!(v["by_engine"]["mysql"]["deleted"], 2);
        assert_eq!(v["by_status"]["active"], 7);
        assert_eq!(v["by_status"]["inactive"], 1);
        assert_eq!(v["by_status"]["deleted"], 2);
    }

    #[test]
    fn growers_read_only_the_day_they_compare_with() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert!(growers_sql(d).contains("collected_date = DATE '2026-03-01'"));
    }
}
