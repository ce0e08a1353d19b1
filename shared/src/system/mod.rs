//! System routes: health, partitions, schedules (function `api-system`) and the event log
//! (function `api-logs`); plus the daily maintenance job.

pub mod maintenance;
pub mod partitions;
pub mod schedules;

use std::time::Duration;

use serde_json::json;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::web::list::{SortSpec, Source};
use crate::web::sql::Sql;
use crate::web::{ApiError, ApiResponse, ApiResult, ListParams, Req};
use crate::App;

pub async fn health(app: &App, _req: Req) -> ApiResult {
    let probe = async {
        let client = app.db.get().await.map_err(|e| e.to_string())?;
        client
            .query_one("SELECT 1", &[])
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    };
    let ok = matches!(
        tokio::time::timeout(Duration::from_secs(3), probe).await,
        Ok(Ok(()))
    );
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "database": if ok { "ok" } else { "error" },
        "version": env!("CARGO_PKG_VERSION"),
    });
    let resp = ApiResponse::ok(body);
    Ok(if ok {
        resp
    } else {
        resp.with_status(http::StatusCode::SERVICE_UNAVAILABLE)
    })
}

pub async fn list_schedules(app: &App, _req: Req) -> ApiResult {
    let now = chrono::Utc::now();
    let items: Vec<_> = schedules::schedules(&app.config)
        .iter()
        .map(|s| {
            json!({
                "key": s.job.key(),
                "function": s.job.function(),
                "at": s.at.format("%H:%M").to_string(),
                "timezone": s.timezone.name(),
                "expression": s.cron(),
                "next_run_at": s.next_after(now),
            })
        })
        .collect();
    Ok(ApiResponse::ok(json!({"items": items})))
}

static LOG_SORTS: SortSpec = crate::sorts! {
    "e.id";
    occurred_at desc "e.occurred_at" timestamptz
};

crate::row_struct! {
    /// One line of the event log.
    #[derive(Debug, Serialize)]
    struct Event {
        id: i64,
        occurred_at: DateTime<Utc>,
        level: String,
        module: String,
        message: String,
        context: Value,
    }
}

/// Window and filters shared by the log list and its statistics; default the last 24 h.
fn log_conditions(req: &Req, sql: &mut Sql) -> Result<(), ApiError> {
    let q = &req.query;
    let end = q.time("end_time")?;
    let start = match (q.time("start_time")?, end) {
        (Some(s), _) => s,
        (None, Some(e)) => e - chrono::Duration::hours(24),
        (None, None) => chrono::Utc::now() - chrono::Duration::hours(24),
    };
    let p = sql.bind(start);
    sql.and(format!("e.occurred_at >= {p}"));
    if let Some(e) = end {
        if e < start {
            return Err(ApiError::validation(
                "end_time",
                "end_time must not be before start_time",
            ));
        }
        let p = sql.bind(e);
        sql.and(format!("e.occurred_at <= {p}"));
    }
    let level = q.one_of("level", &["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])?;
    sql.eq("e.level", level)
        .search(q.text("module"), &["e.module"])
        .search(q.text("search"), &["e.message", "e.context::text"]);
    Ok(())
}

pub async fn logs(app: &App, req: Req) -> ApiResult {
    let mut params = ListParams::parse(&req.query, &LOG_SORTS)?;
    let sql = &mut params.sql;
    log_conditions(&req, sql)?;
    let source = Source::new(
        "e.id, e.occurred_at, e.level, e.module, e.message, e.context",
        "event_logs e",
    );
    params.respond::<Event>(app, source).await
}

pub async fn log_statistics(app: &App, req: Req) -> ApiResult {
    let mut sql = Sql::default();
    log_conditions(&req, &mut sql)?;
    let where_ = sql.where_clause();
    let client = app.db.get().await?;
    let by_level = client
        .query(
            &format!("SELECT e.level, count(*) FROM event_logs e{where_} GROUP BY e.level"),
            &sql.params(),
        )
        .await?;
    let top = client
        .query(
            &format!("SELECT e.module, count(*) AS n FROM event_logs e{where_} GROUP BY e.module ORDER BY n DESC, e.module LIMIT 10"),
            &sql.params(),
        )
        .await?;
    let mut levels = serde_json::Map::new();
    let mut total = 0i64;
    let mut errors = 0i64;
    for r in &by_level {
        let level: String = r.try_get(0)?;
        let n: i64 = r.try_get(1)?;
        total += n;
        if level == "ERROR" || level == "CRITICAL" {
            errors += n;
        }
        levels.insert(level, json!(n));
    }
    let top = top
        .iter()
        .map(|r| {
            Ok(json!({"module": r.try_get::<_, String>(0)?, "count": r.try_get::<_, i64>(1)?}))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let error_rate = if total > 0 {
        (errors as f64 / total as f64 * 10000.0).round() / 100.0
    } else {
        0.0
    };
    Ok(ApiResponse::ok(json!({
        "total": total,
        "error_count": errors,
        "level_distribution": levels,
        "top_modules": top,
        "error_rate": error_rate,
    })))
}
