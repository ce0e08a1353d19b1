//! The task-run handlers (function `api-tasks`): runs and their items, progress, and
//! cancellation.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::run::{close, emit_metrics, Durations, ITEM_STATS};
use super::{ItemStatus, RunStatus, Trigger};
use crate::values::FromRow;
use crate::web::list::{SortSpec, Source};
use crate::web::sql;
use crate::web::{ApiError, ApiResponse, ApiResult, ListParams, Req};
use crate::App;

/// The failure rate is computed here as `run::failure_rate` does for a closing run.
const RUN_COLUMNS: &str = "r.run_id, r.task_key, r.trigger, r.status, r.started_at, r.completed_at, \
    r.items_total, r.items_succeeded, r.items_failed, r.summary, r.error, \
    CASE WHEN r.items_succeeded + r.items_failed = 0 THEN 0 \
      ELSE round(r.items_failed::numeric / (r.items_succeeded + r.items_failed), 4) END::float8 AS failure_rate, \
    (EXTRACT(EPOCH FROM (COALESCE(r.completed_at, now()) - r.started_at)) * 1000)::bigint AS duration_ms";

/// One run by id.
fn run_statement() -> String {
    format!("SELECT {RUN_COLUMNS} FROM task_runs r WHERE r.run_id = $1")
}

crate::row_struct! {
    /// A run as the API shows it.
    #[derive(Debug, Serialize)]
    struct Run {
        run_id: Uuid,
        task_key: String,
        trigger: Trigger,
        status: RunStatus,
        started_at: DateTime<Utc>,
        completed_at: Option<DateTime<Utc>>,
        duration_ms: i64,
        items_total: i32,
        items_succeeded: i32,
        items_failed: i32,
        failure_rate: f64,
        summary: Value,
        error: Option<String>,
    }
}

crate::row_struct! {
    #[derive(Debug, Serialize)]
    struct ItemCounts {
        pending: i64,
        running: i64,
        completed: i64,
        failed: i64,
        cancelled: i64,
    }
}

#[derive(Debug, Serialize)]
struct Progress {
    items: ItemCounts,
    percent: f64,
}

/// A run with its live progress and item duration percentiles.
#[derive(Debug, Serialize)]
struct RunDetail {
    #[serde(flatten)]
    run: Run,
    progress: Progress,
    item_duration_ms: Durations,
}

static RUN_SORTS: SortSpec = crate::sorts! {
    "r.seq";
    started_at desc "r.started_at" timestamptz
};

/// `GET /task-runs`: newest first; filters `task_key`, `status`, `trigger`.
pub async fn list(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let mut params = ListParams::parse(q, &RUN_SORTS)?;
    let sql = &mut params.sql;
    sql.eq("r.task_key", q.text("task_key").map(str::to_string))
        .eq(
            "r.status",
            q.pick::<RunStatus>("status")?.map(RunStatus::as_str),
        )
        .eq(
            "r.trigger",
            q.pick::<Trigger>("trigger")?.map(Trigger::as_str),
        );
    let source = Source::new(RUN_COLUMNS, "task_runs r");
    params.respond::<Run>(app, source).await
}

/// `GET /task-runs/{run_id}`: the run with live progress and item duration percentiles.
pub async fn get(app: &App, req: Req) -> ApiResult {
    let run_id = req.uuid("run_id", "task run")?;
    let client = app.db.get().await?;
    let run: Run = sql::one(&client, &run_statement(), &[&run_id], "task run").await?;
    let s = client.query_one(ITEM_STATS, &[&run_id]).await?;
    let items = ItemCounts::from_row(&s)?;
    let total: i64 = s.try_get("total")?;
    let done = items.completed + items.failed + items.cancelled;
    let percent = if total == 0 {
        100.0
    } else {
        ((done as f64 / total as f64) * 1000.0).round() / 10.0
    };
    Ok(ApiResponse::ok(RunDetail {
        run,
        progress: Progress { items, percent },
        item_duration_ms: Durations::from_row(&s)?,
    }))
}

static ITEM_SORTS: SortSpec = crate::sorts! {
    "it.seq";
    id asc "it.seq" bigint,
    started_at asc "COALESCE(it.started_at, 'infinity'::timestamptz)" timestamptz,
    duration_ms desc "COALESCE(it.duration_ms, -1)" bigint
};

crate::row_struct! {
    /// One item of a run.
    #[derive(Debug, Serialize)]
    struct Item {
        item_key: String,
        instance_id: Option<i64>,
        instance_name: Option<String>,
        status: ItemStatus,
        started_at: Option<DateTime<Utc>>,
        completed_at: Option<DateTime<Utc>>,
        duration_ms: Option<i64>,
        metrics: Value,
        error: Option<String>,
    }
}

/// `GET /task-runs/{run_id}/items`: filter `status`.
pub async fn items(app: &App, req: Req) -> ApiResult {
    let run_id = req.uuid("run_id", "task run")?;
    let q = &req.query;
    let mut params = ListParams::parse(q, &ITEM_SORTS)?;
    let status = q.pick::<ItemStatus>("status")?;
    let client = app.db.get().await?;
    let exists = "SELECT 1 FROM task_runs WHERE run_id = $1";
    sql::row(&client, exists, &[&run_id], "task run").await?;
    let sql = &mut params.sql;
    sql.eq("it.run_id", Some(run_id))
        .eq("it.status", status.map(ItemStatus::as_str));
    let page = params
        .fetch(
            &client,
            Source::new(
                "it.item_key, it.instance_id, i.name AS instance_name, it.status, it.started_at, \
                 it.completed_at, it.duration_ms, it.metrics, it.error",
                "task_run_items it LEFT JOIN instances i ON i.id = it.instance_id",
            ),
            Item::from_row,
        )
        .await?;
    Ok(ApiResponse::ok(page))
}

/// `POST /task-runs/{run_id}/actions/cancel`: pending items are cancelled (their messages are
/// skipped when delivered), running ones finish; the run is closed now.
pub async fn cancel(app: &App, req: Req) -> ApiResult {
    let run_id = req.uuid("run_id", "task run")?;
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let lock = "SELECT status FROM task_runs WHERE run_id = $1 FOR UPDATE";
    let row = sql::row(&tx, lock, &[&run_id], "task run").await?;
    let status: RunStatus = row.try_get("status")?;
    if !matches!(status, RunStatus::Pending | RunStatus::Running) {
        return Err(ApiError::conflict(
            "RUN_NOT_RUNNING",
            format!("the run is {status}; only a pending or running run can be cancelled"),
        ));
    }
    tx.execute(
        "UPDATE task_run_items SET status = 'cancelled', completed_at = now(), error = 'cancelled' \
         WHERE run_id = $1 AND status = 'pending'",
        &[&run_id],
    )
    .await?;
    let closed = close(&tx, run_id, Some(RunStatus::Cancelled)).await?;
    tx.commit().await?;
    emit_metrics(&closed);
    let run: Run = sql::one(&client, &run_statement(), &[&run_id], "task run").await?;
    Ok(ApiResponse::ok(run))
}
