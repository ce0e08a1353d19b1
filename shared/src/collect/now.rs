//! `POST /instances/{id}/actions/collect`: collect one instance now. The visit goes through
//! the queue on the instance's FIFO group (`host:port`), so it never runs beside another
//! visit of that server, as a one-item run of its own task (`collect_instance`, one
//! unfinished per instance). The handler waits a bounded time (below API Gateway's 30 s) for
//! the item: finished, it answers like the visit did (200 sizes, 502 reason); still queued or
//! running, 202 with the run to follow. Never a 503 because a server is slow.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::queue::CollectMessage;
use crate::tasks::{ItemStatus, Trigger};
use crate::web::{ApiError, ApiResponse, ApiResult, Req};
use crate::App;

/// The task of single-instance runs (V9 lets many be unfinished, one per instance).
pub const TASK_KEY: &str = "collect_instance";

/// How often the handler looks at its item while it waits.
const POLL: Duration = Duration::from_millis(100);

pub async fn collect_now(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let (run_id, message) = queue_one(app, id).await?;
    if let Some(message) = message {
        if let Err(e) = app.queue.send_collect(vec![message]).await {
            let client = app.db.get().await?;
            client
                .execute(
                    "UPDATE task_runs SET status = 'failed', completed_at = now(), error = $2 \
                     WHERE run_id = $1 AND status IN ('pending', 'running')",
                    &[&run_id, &format!("queueing failed: {e:#}")],
                )
                .await?;
            return Err(ApiError::internal(format!(
                "queueing the collection: {e:#}"
            )));
        }
    }
    let deadline = Instant::now() + app.config.collect_now_wait;
    loop {
        if let Some(answer) = finished(app, run_id, id).await? {
            return answer;
        }
        if Instant::now() >= deadline {
            return Ok(ApiResponse::accepted(json!({
                "run_id": run_id,
                "instance_id": id,
                "status": "queued",
                "message": "the collection is queued or running on this server's queue; follow the run",
            }))
            .with_location("/task-runs", run_id));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The instance's unfinished single-instance run, or a new one with its message (to send
/// once committed). 404 for an unknown or deleted instance.
async fn queue_one(app: &App, id: i64) -> Result<(Uuid, Option<CollectMessage>), ApiError> {
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    // The instance row lock makes two requests for one instance take turns.
    let Some(instance) = tx
        .query_opt(
            "SELECT host, port FROM instances WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
            &[&id],
        )
        .await?
    else {
        return Err(ApiError::not_found("instance"));
    };
    let closed = crate::tasks::fail_stale(&tx, TASK_KEY, app.config.visit_timeout).await?;
    let open = tx
        .query_opt(
            "SELECT r.run_id FROM task_runs r JOIN task_run_items i USING (run_id) \
             WHERE r.task_key = $1 AND r.status IN ('pending', 'running') AND i.instance_id = $2 \
               AND i.status IN ('pending', 'running')",
            &[&TASK_KEY, &id],
        )
        .await?;
    if let Some(open) = open {
        tx.commit().await?;
        closed.iter().for_each(crate::tasks::run::emit_metrics);
        return Ok((open.try_get(0)?, None));
    }
    let collected_date = app.config.business_date(chrono::Utc::now());
    let run_id: Uuid = tx
        .query_one(
            "INSERT INTO task_runs (task_key, trigger, status, items_total, summary) \
             VALUES ($1, $2, 'running', 1, $3) RETURNING run_id",
            &[
                &TASK_KEY,
                &Trigger::Api.as_str(),
                &json!({"collected_date": collected_date, "instance_ids": [id]}),
            ],
        )
        .await?
        .try_get(0)?;
    tx.execute(
        "INSERT INTO task_run_items (run_id, item_key, instance_id) VALUES ($1, $2::bigint::text, $2)",
        &[&run_id, &id],
    )
    .await?;
    tx.commit().await?;
    closed.iter().for_each(crate::tasks::run::emit_metrics);
    let message = CollectMessage {
        run_id,
        instance_id: id,
        host: instance.try_get(0)?,
        port: instance.try_get(1)?,
        collected_date,
        tables_of: None,
    };
    Ok((run_id, Some(message)))
}

/// The answer once the run's item has finished (`None` while it has not).
async fn finished(app: &App, run_id: Uuid, id: i64) -> Result<Option<ApiResult>, ApiError> {
    let client = app.db.get().await?;
    let Some(item) = client
        .query_opt(
            "SELECT status, error, metrics, duration_ms FROM task_run_items WHERE run_id = $1",
            &[&run_id],
        )
        .await?
    else {
        return Ok(Some(Err(ApiError::not_found("instance"))));
    };
    let status: ItemStatus = item
        .try_get::<_, &str>(0)?
        .parse()
        .map_err(ApiError::internal)?;
    let error: Option<String> = item.try_get(1)?;
    let reason = error.unwrap_or_default();
    Ok(Some(match status {
        ItemStatus::Pending | ItemStatus::Running => return Ok(None),
        ItemStatus::Failed => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "COLLECTION_FAILED",
            reason,
        )),
        ItemStatus::Cancelled => Err(ApiError::not_found("instance")),
        ItemStatus::Completed => {
            let m: Value = item.try_get(2)?;
            let databases: Vec<Value> = client
                .query(
                    "SELECT database_name, latest_size_bytes FROM instance_databases \
                     WHERE instance_id = $1 AND is_active ORDER BY database_name",
                    &[&id],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(json!({"database_name": r.try_get::<_, String>(0)?,
                              "size_bytes": r.try_get::<_, Option<i64>>(1)?}))
                })
                .collect::<Result<_, tokio_postgres::Error>>()?;
            Ok(ApiResponse::ok(json!({
                "instance_id": id,
                "run_id": run_id,
                "version": m["version"],
                "collected_date": m["collected_date"],
                "collected_at": m["collected_at"],
                "databases": databases,
                "database_count": m["database_count"],
                "total_size_bytes": m["total_size_bytes"],
                "encrypted": m["encrypted"],
                "inventory": {
                    "created": m["created"],
                    "seen": m["seen"],
                    "reactivated": m["reactivated"],
                    "deactivated": m["deactivated"],
                },
                "duration_ms": item.try_get::<_, Option<i64>>(3)?,
            })))
        }
    }))
}
