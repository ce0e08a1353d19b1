//! Runs of the jobs that do their items one after another in one process (aggregation,
//! maintenance), recorded like collections: a `task_runs` row, one item per unit of work
//! with its status, duration and metrics, and the same close (summary, event, metrics line).

use serde_json::Value;
use uuid::Uuid;

use super::run::{close, emit_metrics, ClosedRun};
use super::{RunKind, RunStatus, Trigger};
use crate::App;

/// Opens a run of `kind` with its items (pending), or `None` when one is already live (the
/// unique index on unfinished runs per task).
pub async fn open(
    app: &App,
    kind: RunKind,
    trigger: Trigger,
    summary: Value,
    items: &[String],
) -> anyhow::Result<Option<Uuid>> {
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "INSERT INTO task_runs (task_key, trigger, status, summary, items_total) \
             VALUES ($1, $2, 'running', $3, $4::bigint::int) ON CONFLICT DO NOTHING RETURNING run_id",
            &[&kind.as_str(), &trigger.as_str(), &summary, &(items.len() as i64)],
        )
        .await?
    else {
        return Ok(None);
    };
    let run_id: Uuid = row.try_get(0)?;
    tx.execute(
        "INSERT INTO task_run_items (run_id, item_key) SELECT $1, unnest($2::text[])",
        &[&run_id, &items],
    )
    .await?;
    tx.commit().await?;
    Ok(Some(run_id))
}

/// Runs the items in order with `work`; the first failure fails its item and cancels the
/// rest (later items may depend on it, and the next run starts again from there). Closes
/// the run. A run cancelled meanwhile stops at the next item.
pub async fn drive<F, Fut>(
    app: &App,
    run_id: Uuid,
    items: &[String],
    mut work: F,
) -> anyhow::Result<ClosedRun>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Value>>,
{
    let mut failed = false;
    for key in items {
        let client = app.db.get().await?;
        let claimed = client
            .execute(
                "UPDATE task_run_items i SET status = 'running', started_at = now() \
                 FROM task_runs r WHERE i.run_id = $1 AND i.item_key = $2 AND i.status = 'pending' \
                   AND r.run_id = i.run_id AND r.status = 'running' AND NOT $3",
                &[&run_id, key, &failed],
            )
            .await?;
        if claimed == 0 {
            continue;
        }
        drop(client);
        let result = work(key.clone()).await;
        let client = app.db.get().await?;
        let (status, metrics, error) = match result {
            Ok(metrics) => ("completed", metrics, None),
            Err(e) => {
                failed = true;
                (
                    "failed",
                    Value::Object(Default::default()),
                    Some(format!("{e:#}")),
                )
            }
        };
        client
            .execute(
                "UPDATE task_run_items SET status = $3, completed_at = now(), metrics = $4, error = $5, \
                   duration_ms = (EXTRACT(EPOCH FROM (now() - started_at)) * 1000)::bigint \
                 WHERE run_id = $1 AND item_key = $2",
                &[&run_id, key, &status, &metrics, &error],
            )
            .await?;
    }
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE task_run_items SET status = 'cancelled', completed_at = now() \
         WHERE run_id = $1 AND status = 'pending'",
        &[&run_id],
    )
    .await?;
    let status: String = tx
        .query_one(
            "SELECT status FROM task_runs WHERE run_id = $1 FOR UPDATE",
            &[&run_id],
        )
        .await?
        .try_get(0)?;
    if status != RunStatus::Running.as_str() {
        // Cancelled (and closed) through the API meanwhile.
        let status = status.parse::<RunStatus>().map_err(anyhow::Error::msg)?;
        return Ok(ClosedRun {
            run_id,
            task_key: String::new(),
            status,
            summary: Value::Null,
        });
    }
    let closed = close(&tx, run_id, None).await?;
    tx.commit().await?;
    emit_metrics(&closed);
    Ok(closed)
}
