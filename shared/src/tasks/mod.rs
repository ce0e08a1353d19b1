//! Task runs (function `api-tasks`): the record of every collection run and its items, their
//! progress and metrics, cancellation, and closing a run exactly once.

use std::io::Write;

use deadpool_postgres::GenericClient;
use serde_json::{json, Value};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::web::list::{Order, SortField, SortSpec};
use crate::web::sql::Sql;
use crate::web::{ApiError, ApiResponse, ApiResult, ListParams, Req};
use crate::App;

pub const STATUSES: &[&str] = &[
    "pending",
    "running",
    "completed",
    "completed_with_errors",
    "failed",
    "cancelled",
];
const ITEM_STATUSES: &[&str] = &["pending", "running", "completed", "failed", "cancelled"];
const TRIGGERS: &[&str] = &["scheduled", "manual", "api"];

/// Runs still unfinished long after they started (a lost worker) are failed, with their
/// unfinished items, in one statement.
pub async fn fail_stale_runs(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<u64, tokio_postgres::Error> {
    let stale: i64 = client
        .query_one(
            "WITH stale AS (UPDATE task_runs SET status = 'failed', completed_at = now(), \
                 error = 'run did not finish within 6 hours' \
               WHERE status IN ('pending', 'running') AND started_at < now() - interval '6 hours' RETURNING run_id), \
             items AS (UPDATE task_run_items it SET status = 'failed', completed_at = now(), \
                 error = COALESCE(it.error, 'run did not finish within 6 hours') \
               FROM stale WHERE it.run_id = stale.run_id AND it.status IN ('pending', 'running')) \
             SELECT count(*) FROM stale",
            &[],
        )
        .await?
        .get(0);
    Ok(stale as u64)
}

const RUN_COLUMNS: &str = "r.run_id, r.task_key, r.trigger, r.status, r.started_at, r.completed_at, \
    r.items_total, r.items_succeeded, r.items_failed, r.summary, r.error, \
    (EXTRACT(EPOCH FROM (COALESCE(r.completed_at, now()) - r.started_at)) * 1000)::bigint AS duration_ms";

fn failure_rate(succeeded: i64, failed: i64) -> f64 {
    let done = succeeded + failed;
    if done == 0 {
        0.0
    } else {
        ((failed as f64 / done as f64) * 10_000.0).round() / 10_000.0
    }
}

fn run_json(r: &Row) -> Value {
    let succeeded = i64::from(r.get::<_, i32>("items_succeeded"));
    let failed = i64::from(r.get::<_, i32>("items_failed"));
    json!({
        "run_id": r.get::<_, Uuid>("run_id"),
        "task_key": r.get::<_, String>("task_key"),
        "trigger": r.get::<_, String>("trigger"),
        "status": r.get::<_, String>("status"),
        "started_at": r.get::<_, chrono::DateTime<chrono::Utc>>("started_at"),
        "completed_at": r.get::<_, Option<chrono::DateTime<chrono::Utc>>>("completed_at"),
        "duration_ms": r.get::<_, i64>("duration_ms"),
        "items_total": r.get::<_, i32>("items_total"),
        "items_succeeded": succeeded,
        "items_failed": failed,
        "failure_rate": failure_rate(succeeded, failed),
        "summary": r.get::<_, Value>("summary"),
        "error": r.get::<_, Option<String>>("error"),
    })
}

static RUN_SORTS: SortSpec = SortSpec {
    fields: &[SortField {
        name: "started_at",
        expr: "r.started_at",
        sql_type: "timestamptz",
        default_order: Order::Desc,
    }],
    id_expr: "r.seq",
};

/// `GET /task-runs`: newest first; filters `task_key`, `status`, `trigger`.
pub async fn list(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let params = ListParams::parse(q, &RUN_SORTS)?;
    let mut sql = Sql::default();
    let mut conds = Vec::new();
    if let Some(k) = q.text("task_key") {
        conds.push(format!("r.task_key = {}", sql.bind(k.to_string())));
    }
    if let Some(s) = q.one_of("status", STATUSES)? {
        conds.push(format!("r.status = {}", sql.bind(s.to_string())));
    }
    if let Some(t) = q.one_of("trigger", TRIGGERS)? {
        conds.push(format!("r.trigger = {}", sql.bind(t.to_string())));
    }
    let client = app.db.get().await?;
    let page = params
        .fetch(&client, sql, conds, RUN_COLUMNS, "task_runs r", run_json)
        .await?;
    Ok(ApiResponse::ok(page))
}

/// Item counts and durations of one run, computed in SQL.
const ITEM_STATS: &str = "SELECT count(*) AS total, \
    count(*) FILTER (WHERE status = 'pending') AS pending, \
    count(*) FILTER (WHERE status = 'running') AS running, \
    count(*) FILTER (WHERE status = 'completed') AS succeeded, \
    count(*) FILTER (WHERE status = 'failed') AS failed, \
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled, \
    round(percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms))::bigint AS p50, \
    round(percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms))::bigint AS p95, \
    max(duration_ms) AS max \
    FROM task_run_items WHERE run_id = $1";

fn item_stats_json(s: &Row) -> Value {
    json!({
        "pending": s.get::<_, i64>("pending"),
        "running": s.get::<_, i64>("running"),
        "completed": s.get::<_, i64>("succeeded"),
        "failed": s.get::<_, i64>("failed"),
        "cancelled": s.get::<_, i64>("cancelled"),
    })
}

fn durations_json(s: &Row) -> Value {
    json!({
        "p50": s.get::<_, Option<i64>>("p50"),
        "p95": s.get::<_, Option<i64>>("p95"),
        "max": s.get::<_, Option<i64>>("max"),
    })
}

/// `GET /task-runs/{run_id}`: the run with live progress and item duration percentiles.
pub async fn get(app: &App, req: Req) -> ApiResult {
    let run_id = req.uuid("run_id", "task run")?;
    let client = app.db.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {RUN_COLUMNS} FROM task_runs r WHERE r.run_id = $1"),
            &[&run_id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("task run"))?;
    let stats = client.query_one(ITEM_STATS, &[&run_id]).await?;
    let mut body = run_json(&row);
    let total = stats.get::<_, i64>("total");
    let done = stats.get::<_, i64>("succeeded")
        + stats.get::<_, i64>("failed")
        + stats.get::<_, i64>("cancelled");
    body["progress"] = json!({
        "items": item_stats_json(&stats),
        "percent": if total == 0 { 100.0 } else { ((done as f64 / total as f64) * 1000.0).round() / 10.0 },
    });
    body["item_duration_ms"] = durations_json(&stats);
    Ok(ApiResponse::ok(body))
}

static ITEM_SORTS: SortSpec = SortSpec {
    fields: &[
        SortField {
            name: "id",
            expr: "it.seq",
            sql_type: "bigint",
            default_order: Order::Asc,
        },
        SortField {
            name: "started_at",
            expr: "COALESCE(it.started_at, 'infinity'::timestamptz)",
            sql_type: "timestamptz",
            default_order: Order::Asc,
        },
        SortField {
            name: "duration_ms",
            expr: "COALESCE(it.duration_ms, -1)",
            sql_type: "bigint",
            default_order: Order::Desc,
        },
    ],
    id_expr: "it.seq",
};

fn item_json(r: &Row) -> Value {
    json!({
        "item_key": r.get::<_, String>("item_key"),
        "instance_id": r.get::<_, Option<i64>>("instance_id"),
        "instance_name": r.get::<_, Option<String>>("instance_name"),
        "status": r.get::<_, String>("status"),
        "started_at": r.get::<_, Option<chrono::DateTime<chrono::Utc>>>("started_at"),
        "completed_at": r.get::<_, Option<chrono::DateTime<chrono::Utc>>>("completed_at"),
        "duration_ms": r.get::<_, Option<i64>>("duration_ms"),
        "metrics": r.get::<_, Value>("metrics"),
        "error": r.get::<_, Option<String>>("error"),
    })
}

/// `GET /task-runs/{run_id}/items`: filter `status`.
pub async fn items(app: &App, req: Req) -> ApiResult {
    let run_id = req.uuid("run_id", "task run")?;
    let q = &req.query;
    let params = ListParams::parse(q, &ITEM_SORTS)?;
    let status = q.one_of("status", ITEM_STATUSES)?;
    let client = app.db.get().await?;
    if client
        .query_opt("SELECT 1 FROM task_runs WHERE run_id = $1", &[&run_id])
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("task run"));
    }
    let mut sql = Sql::default();
    let mut conds = vec![format!("it.run_id = {}", sql.bind(run_id))];
    if let Some(s) = status {
        conds.push(format!("it.status = {}", sql.bind(s.to_string())));
    }
    let page = params
        .fetch(
            &client,
            sql,
            conds,
            "it.item_key, it.instance_id, i.name AS instance_name, it.status, it.started_at, \
             it.completed_at, it.duration_ms, it.metrics, it.error",
            "task_run_items it LEFT JOIN instances i ON i.id = it.instance_id",
            item_json,
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
    let status: String = tx
        .query_opt(
            "SELECT status FROM task_runs WHERE run_id = $1 FOR UPDATE",
            &[&run_id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("task run"))?
        .get(0);
    if status != "pending" && status != "running" {
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
    let closed = close(&tx, run_id, Some("cancelled")).await?;
    tx.commit().await?;
    emit_metrics(&closed);
    let row = client
        .query_one(
            &format!("SELECT {RUN_COLUMNS} FROM task_runs r WHERE r.run_id = $1"),
            &[&run_id],
        )
        .await?;
    Ok(ApiResponse::ok(run_json(&row)))
}

/// A run that has just finished: what its metrics line and event say.
#[derive(Debug, Clone)]
pub struct ClosedRun {
    pub run_id: Uuid,
    pub task_key: String,
    pub status: String,
    pub summary: Value,
}

/// Closes the run if every item has finished (`None` otherwise, or when it was already
/// closed). Called by whoever finishes an item: the run row is locked first, so of items
/// finishing at the same moment exactly one closes it and each one sees the others' commits.
pub async fn finish_if_done(app: &App, run_id: Uuid) -> anyhow::Result<Option<ClosedRun>> {
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let status: Option<String> = tx
        .query_opt(
            "SELECT status FROM task_runs WHERE run_id = $1 FOR UPDATE",
            &[&run_id],
        )
        .await?
        .map(|r| r.get(0));
    if status.as_deref() != Some("running") {
        return Ok(None);
    }
    let open: i64 = tx
        .query_one(
            "SELECT count(*) FROM task_run_items WHERE run_id = $1 AND status IN ('pending', 'running')",
            &[&run_id],
        )
        .await?
        .get(0);
    if open > 0 {
        return Ok(None);
    }
    let closed = close(&tx, run_id, None).await?;
    tx.commit().await?;
    emit_metrics(&closed);
    Ok(Some(closed))
}

/// Final status, counters and summary of a run whose row the caller has locked; one event.
async fn close<C: GenericClient>(
    client: &C,
    run_id: Uuid,
    forced: Option<&str>,
) -> Result<ClosedRun, tokio_postgres::Error> {
    let s = client.query_one(ITEM_STATS, &[&run_id]).await?;
    let (succeeded, failed) = (s.get::<_, i64>("succeeded"), s.get::<_, i64>("failed"));
    let status = match forced {
        Some(f) => f,
        None if failed == 0 => "completed",
        None if succeeded == 0 => "failed",
        None => "completed_with_errors",
    };
    let run = client
        .query_one(
            "UPDATE task_runs SET status = $2, completed_at = now(), \
             items_succeeded = $3::bigint::int, items_failed = $4::bigint::int \
             WHERE run_id = $1 \
             RETURNING task_key, (EXTRACT(EPOCH FROM (completed_at - started_at)) * 1000)::bigint",
            &[&run_id, &status, &succeeded, &failed],
        )
        .await?;
    let task_key: String = run.get(0);
    let duration_ms: i64 = run.get(1);
    let summary = json!({
        "duration_ms": duration_ms,
        "items_total": s.get::<_, i64>("total"),
        "items_succeeded": succeeded,
        "items_failed": failed,
        "items_cancelled": s.get::<_, i64>("cancelled"),
        "failure_rate": failure_rate(succeeded, failed),
        "item_duration_ms": durations_json(&s),
    });
    client
        .execute(
            "UPDATE task_runs SET summary = summary || $2 WHERE run_id = $1",
            &[&run_id, &summary],
        )
        .await?;
    let level = if status == "completed" || status == "cancelled" {
        "INFO"
    } else if status == "failed" {
        "ERROR"
    } else {
        "WARNING"
    };
    let mut context = summary.clone();
    context["run_id"] = json!(run_id);
    context["status"] = json!(status);
    crate::events::record(
        client,
        level,
        "tasks",
        &format!("{task_key} run {status}"),
        context,
    )
    .await?;
    Ok(ClosedRun {
        run_id,
        task_key,
        status: status.to_string(),
        summary,
    })
}

/// The CloudWatch Embedded Metric Format line of a finished run. Written raw to stdout (not
/// through `tracing`, whose JSON would wrap it): CloudWatch Logs extracts the metrics from
/// exactly this shape in a Lambda's output.
pub fn metrics_line(run: &ClosedRun, at: chrono::DateTime<chrono::Utc>) -> Value {
    let n = |k: &str| run.summary[k].as_f64().unwrap_or(0.0);
    json!({
        "_aws": {
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "Tidemark",
                "Dimensions": [["TaskKey"]],
                "Metrics": [
                    {"Name": "CollectionDurationMs", "Unit": "Milliseconds"},
                    {"Name": "InstancesCollected", "Unit": "Count"},
                    {"Name": "InstancesFailed", "Unit": "Count"},
                    {"Name": "FailureRate", "Unit": "Percent"},
                ],
            }],
        },
        "TaskKey": run.task_key,
        "CollectionDurationMs": n("duration_ms"),
        "InstancesCollected": n("items_succeeded"),
        "InstancesFailed": n("items_failed"),
        "FailureRate": (n("failure_rate") * 10_000.0).round() / 100.0,
        "run_id": run.run_id,
        "status": run.status,
    })
}

fn emit_metrics(run: &ClosedRun) {
    let line = metrics_line(run, chrono::Utc::now()).to_string();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    tracing::info!(run_id = %run.run_id, status = %run.status, task_key = %run.task_key, "task run finished");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_line_is_embedded_metric_format() {
        let run = ClosedRun {
            run_id: Uuid::nil(),
            task_key: "collect_databases".into(),
            status: "completed_with_errors".into(),
            summary: json!({"duration_ms": 1500, "items_succeeded": 3, "items_failed": 1, "failure_rate": 0.25}),
        };
        let v = metrics_line(&run, chrono::Utc::now());
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Tidemark");
        let names: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in &names {
            assert!(v.get(*name).is_some(), "{name} has no value");
        }
        assert_eq!(v["FailureRate"], 25.0);
        assert_eq!(v["InstancesCollected"], 3.0);
        assert_eq!(failure_rate(0, 0), 0.0);
    }
}
