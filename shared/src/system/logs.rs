//! The event log behind `GET /logs` (function `api-logs`): system events and the audit
//! trail (who, role, action, targets, request id, changed fields), filtered by time, level,
//! module, actor, action and target.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::web::list::{SortSpec, Source};
use crate::web::sql::Sql;
use crate::web::{ApiError, ApiResponse, ApiResult, ListParams, Req};
use crate::App;

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
        /// Audit entries: the caller's subject and role, the action, its targets, the
        /// request id and `{field: {old, new}}` (`"changed"` for write-only fields).
        actor: Option<String>,
        actor_role: Option<String>,
        action: Option<String>,
        target_type: Option<String>,
        target_ids: Vec<String>,
        request_id: Option<String>,
        changes: Option<Value>,
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
        .search(q.text("search"), &["e.message", "e.context::text"])
        .eq("e.actor", q.text("actor").map(str::to_string))
        .eq("e.target_type", q.text("target_type").map(str::to_string))
        .search(q.text("action"), &["e.action"]);
    if let Some(target) = q.text("target_id") {
        let p = sql.bind(vec![target.to_string()]);
        sql.and(format!("e.target_ids @> {p}::text[]"));
    }
    Ok(())
}

pub async fn logs(app: &App, req: Req) -> ApiResult {
    let mut params = ListParams::parse(&req.query, &LOG_SORTS)?;
    let sql = &mut params.sql;
    log_conditions(&req, sql)?;
    params
        .respond::<Event>(app, Source::new(EVENT_COLUMNS, "event_logs e"))
        .await
}

const EVENT_COLUMNS: &str = "e.id, e.occurred_at, e.level, e.module, e.message, e.context, \
    e.actor, e.actor_role, e.action, e.target_type, e.target_ids, e.request_id, e.changes";

/// `GET /logs/{id}`: one entry, whatever its age (within retention).
pub async fn log_entry(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let client = app.db.get().await?;
    let table = (EVENT_COLUMNS, "event_logs e", "e.id");
    let event: Event = crate::web::sql::by_id(&client, table, id, "log entry").await?;
    Ok(ApiResponse::ok(event))
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
