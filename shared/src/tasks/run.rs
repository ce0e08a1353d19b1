//! The life of a run: items finishing, closing a run exactly once (its summary, event and
//! metrics line), and failing runs a lost worker left open. Collection drives it; the
//! handlers in `api` only read it (and cancel).

use std::io::Write;

use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::RunStatus;
use crate::values::FromRow;
use crate::web::sql::scalar;
use crate::web::ApiError;
use crate::App;

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
        .try_get(0)?;
    Ok(stale as u64)
}

/// Item counts and durations of one run, computed in SQL.
pub const ITEM_STATS: &str = "SELECT count(*) AS total, \
    count(*) FILTER (WHERE status = 'pending') AS pending, \
    count(*) FILTER (WHERE status = 'running') AS running, \
    count(*) FILTER (WHERE status = 'completed') AS completed, \
    count(*) FILTER (WHERE status = 'failed') AS failed, \
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled, \
    round(percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms))::bigint AS p50, \
    round(percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms))::bigint AS p95, \
    max(duration_ms) AS max \
    FROM task_run_items WHERE run_id = $1";

pub fn failure_rate(succeeded: i64, failed: i64) -> f64 {
    let done = succeeded + failed;
    if done == 0 {
        0.0
    } else {
        ((failed as f64 / done as f64) * 10_000.0).round() / 10_000.0
    }
}

crate::row_struct! {
    /// Item duration percentiles of one run (from [`ITEM_STATS`]).
    #[derive(Debug, Clone, Serialize)]
    pub struct Durations {
        p50: Option<i64>,
        p95: Option<i64>,
        max: Option<i64>,
    }
}

/// A run that has just finished: what its metrics line and event say.
#[derive(Debug, Clone)]
pub struct ClosedRun {
    pub run_id: Uuid,
    pub task_key: String,
    pub status: RunStatus,
    pub summary: Value,
}

/// Closes the run if every item has finished (`None` otherwise, or when it was already
/// closed). Called by whoever finishes an item: the run row is locked first, so of items
/// finishing at the same moment exactly one closes it and each one sees the others' commits.
pub async fn finish_if_done(app: &App, run_id: Uuid) -> anyhow::Result<Option<ClosedRun>> {
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let status = match tx
        .query_opt(
            "SELECT status FROM task_runs WHERE run_id = $1 FOR UPDATE",
            &[&run_id],
        )
        .await?
    {
        Some(row) => Some(
            row.try_get::<_, &str>(0)?
                .parse::<RunStatus>()
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    if status != Some(RunStatus::Running) {
        return Ok(None);
    }
    let open = "SELECT count(*) FROM task_run_items WHERE run_id = $1 AND status IN ('pending', 'running')";
    let open: i64 = scalar(&tx, open, &[&run_id]).await?;
    if open > 0 {
        return Ok(None);
    }
    let closed = close(&tx, run_id, None).await?;
    tx.commit().await?;
    emit_metrics(&closed);
    Ok(Some(closed))
}

/// Final status, counters and summary of a run whose row the caller has locked; one event.
pub async fn close<C: GenericClient>(
    client: &C,
    run_id: Uuid,
    forced: Option<RunStatus>,
) -> Result<ClosedRun, ApiError> {
    let s = client.query_one(ITEM_STATS, &[&run_id]).await?;
    let durations = Durations::from_row(&s)?;
    let (succeeded, failed) = (
        s.try_get::<_, i64>("completed")?,
        s.try_get::<_, i64>("failed")?,
    );
    let status = match forced {
        Some(f) => f,
        None if failed == 0 => RunStatus::Completed,
        None if succeeded == 0 => RunStatus::Failed,
        None => RunStatus::CompletedWithErrors,
    };
    let run = client
        .query_one(
            "UPDATE task_runs SET status = $2, completed_at = now(), \
             items_succeeded = $3::bigint::int, items_failed = $4::bigint::int \
             WHERE run_id = $1 \
             RETURNING task_key, (EXTRACT(EPOCH FROM (completed_at - started_at)) * 1000)::bigint",
            &[&run_id, &status.as_str(), &succeeded, &failed],
        )
        .await?;
    let task_key: String = run.try_get(0)?;
    let duration_ms: i64 = run.try_get(1)?;
    let summary = json!({
        "duration_ms": duration_ms,
        "items_total": s.try_get::<_, i64>("total")?,
        "items_succeeded": succeeded,
        "items_failed": failed,
        "items_cancelled": s.try_get::<_, i64>("cancelled")?,
        "failure_rate": failure_rate(succeeded, failed),
        "item_duration_ms": durations,
    });
    client
        .execute(
            "UPDATE task_runs SET summary = summary || $2 WHERE run_id = $1",
            &[&run_id, &summary],
        )
        .await?;
    let level = match status {
        RunStatus::Completed | RunStatus::Cancelled => "INFO",
        RunStatus::Failed => "ERROR",
        _ => "WARNING",
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
        status,
        summary,
    })
}

/// The CloudWatch Embedded Metric Format line of a finished run. Written raw to stdout (not
/// through `tracing`, whose JSON would wrap it): CloudWatch Logs extracts the metrics from
/// exactly this shape in a Lambda's output.
pub fn metrics_line(run: &ClosedRun, at: chrono::DateTime<chrono::Utc>) -> Value {
    let n = |k: &str| run.summary[k].as_f64().unwrap_or(0.0);
    emf(
        at,
        &run.task_key,
        &[
            (
                "CollectionDurationMs",
                "Milliseconds",
                json!(n("duration_ms")),
            ),
            ("InstancesCollected", "Count", json!(n("items_succeeded"))),
            ("InstancesFailed", "Count", json!(n("items_failed"))),
            (
                "FailureRate",
                "Percent",
                json!((n("failure_rate") * 10_000.0).round() / 100.0),
            ),
        ],
        json!({"run_id": run.run_id, "status": run.status}),
    )
}

/// An EMF line in namespace `Tidemark` with the one dimension `TaskKey`: each metric's name,
/// unit and value, plus `extra` properties (not metrics) for the log reader.
fn emf(
    at: chrono::DateTime<chrono::Utc>,
    task_key: &str,
    metrics: &[(&str, &str, Value)],
    extra: Value,
) -> Value {
    let mut line = json!({
        "_aws": {
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "Tidemark",
                "Dimensions": [["TaskKey"]],
                "Metrics": metrics
                    .iter()
                    .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
                    .collect::<Vec<_>>(),
            }],
        },
        "TaskKey": task_key,
    });
    if let Some(o) = line.as_object_mut() {
        for (name, _, value) in metrics {
            o.insert((*name).to_string(), value.clone());
        }
        if let Some(e) = extra.as_object() {
            o.extend(e.clone());
        }
    }
    line
}

/// The EMF line of a scheduled dispatch that found a run of `task_key` still live (`run_id`):
/// `DispatchBlocked` 1, alarmed in template.yaml (a day without collection).
pub fn blocked_line(
    task_key: &str,
    run_id: Option<Uuid>,
    at: chrono::DateTime<chrono::Utc>,
) -> Value {
    emf(
        at,
        task_key,
        &[("DispatchBlocked", "Count", json!(1))],
        json!({"run_id": run_id}),
    )
}

/// Writes one EMF line raw to stdout (see [`metrics_line`]).
pub fn emit_line(line: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

pub fn emit_metrics(run: &ClosedRun) {
    emit_line(&metrics_line(run, chrono::Utc::now()));
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
            status: RunStatus::CompletedWithErrors,
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
