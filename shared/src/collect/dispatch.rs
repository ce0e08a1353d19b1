//! The fan-out: `dispatch` fails what a lost worker left, creates a run, and sends one item
//! and one message per active instance; `dispatch_scheduled` makes a live run an error.

use anyhow::Context;
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::fanout::TASK_KEY;
use super::Trigger;
use crate::queue::CollectMessage;
use crate::App;

/// Instances read per page when fanning out (keyset on id, only the columns messages need).
const PAGE: i64 = 500;

/// Creates a run and sends one message per active instance (`collect-dispatch`), all with the
/// business date of now. `instance_ids` narrows the run to those instances. First, in the
/// same transaction, fails what a lost worker left (`tasks::fail_stale`). Returns the run
/// id, or `None` when a collection is still live (the partial unique index
/// `task_runs_one_unfinished_idx` decides, so two dispatchers cannot both win).
pub async fn dispatch(
    app: &App,
    trigger: Trigger,
    instance_ids: Option<Vec<i64>>,
) -> anyhow::Result<Option<Uuid>> {
    let collected_date = app.config.business_date(Utc::now());
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let closed = crate::tasks::fail_stale(&tx, TASK_KEY, app.config.visit_timeout).await?;
    // Pending while items are being created: no item can close a run still being filled.
    let row = tx
        .query_opt(
            "INSERT INTO task_runs (task_key, trigger, status, summary) VALUES ($1, $2, 'pending', $3) \
             ON CONFLICT DO NOTHING RETURNING run_id",
            &[
                &TASK_KEY,
                &trigger.as_str(),
                &json!({"collected_date": collected_date, "instance_ids": instance_ids}),
            ],
        )
        .await?;
    tx.commit().await?;
    drop(client);
    closed.iter().for_each(crate::tasks::run::emit_metrics);
    let Some(row) = row else {
        return Ok(None);
    };
    let run_id: Uuid = row.try_get(0)?;
    if let Err(e) = fan_out(app, run_id, collected_date, instance_ids.as_deref()).await {
        let reason = format!("dispatch failed: {e:#}");
        let client = app.db.get().await?;
        client
            .execute(
                "UPDATE task_runs SET status = 'failed', completed_at = now(), error = $2 \
                 WHERE run_id = $1 AND status IN ('pending', 'running')",
                &[&run_id, &reason],
            )
            .await?;
        return Err(e);
    }
    let client = app.db.get().await?;
    // A run cancelled while it was being filled stays cancelled.
    client
        .execute(
            "UPDATE task_runs SET status = 'running' WHERE run_id = $1 AND status = 'pending'",
            &[&run_id],
        )
        .await?;
    drop(client);
    // Every item may already be done (or there were none): then nobody else will close it.
    crate::tasks::finish_if_done(app, run_id).await?;
    tracing::info!(run_id = %run_id, trigger = trigger.as_str(), %collected_date, "collection dispatched");
    Ok(Some(run_id))
}

/// The daily schedule's dispatch (`collect-dispatch`, the local scheduler). A live run it
/// cannot replace is an error: logged, counted (`DispatchBlocked`, alarmed) and returned, so
/// the function's own error alarm fires too; a day without collection is never a success.
pub async fn dispatch_scheduled(app: &App) -> anyhow::Result<serde_json::Value> {
    if let Some(run_id) = dispatch(app, Trigger::Scheduled, None).await? {
        return Ok(json!({ "run_id": run_id }));
    }
    let client = app.db.get().await?;
    let live = client
        .query_opt(
            "SELECT run_id, started_at FROM task_runs \
             WHERE task_key = $1 AND status IN ('pending', 'running')",
            &[&TASK_KEY],
        )
        .await?;
    let (run_id, started_at) = match &live {
        Some(r) => (
            Some(r.try_get::<_, Uuid>(0)?),
            Some(r.try_get::<_, chrono::DateTime<Utc>>(1)?),
        ),
        None => (None, None),
    };
    crate::tasks::run::emit_line(&crate::tasks::blocked_line(TASK_KEY, run_id, Utc::now()));
    tracing::error!(live_run_id = ?run_id, ?started_at, "scheduled collection not started: a run is still live");
    anyhow::bail!(
        "scheduled collection not started: run {} (started {}) is still live",
        run_id.map(|r| r.to_string()).unwrap_or_else(|| "?".into()),
        started_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "?".into()),
    )
}

async fn fan_out(
    app: &App,
    run_id: Uuid,
    collected_date: chrono::NaiveDate,
    only: Option<&[i64]>,
) -> anyhow::Result<()> {
    let only: Option<Vec<i64>> = only.map(<[i64]>::to_vec);
    let mut after = 0i64;
    loop {
        let client = app.db.get().await?;
        let rows = client
            .query(
                "SELECT id, host, port FROM instances \
                 WHERE is_active AND deleted_at IS NULL AND id > $1 AND ($2::bigint[] IS NULL OR id = ANY($2)) \
                 ORDER BY id LIMIT $3",
                &[&after, &only, &PAGE],
            )
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(0)?;
        let ids = rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<i64>, _>>()?;
        client
            .execute(
                "WITH added AS (INSERT INTO task_run_items (run_id, item_key, instance_id) \
                    SELECT $1, id::text, id FROM unnest($2::bigint[]) AS id ON CONFLICT DO NOTHING RETURNING 1) \
                 UPDATE task_runs SET items_total = items_total + (SELECT count(*) FROM added) WHERE run_id = $1",
                &[&run_id, &ids],
            )
            .await?;
        drop(client);
        let messages = rows
            .iter()
            .map(|r| {
                Ok(CollectMessage {
                    run_id,
                    instance_id: r.try_get(0)?,
                    host: r.try_get(1)?,
                    port: r.try_get(2)?,
                    collected_date,
                    tables_of: None,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
        app.queue
            .send_collect(messages)
            .await
            .context("queueing collection messages")?;
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    Ok(())
}
