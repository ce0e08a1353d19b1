//! The fan-out: `dispatch` creates a run and one item and one message per active instance;
//! `process` collects one instance for one run, records its item, and the item that finishes
//! last closes the run (`tasks::finish_if_done`).

use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::adapter::{adapter_for, Collected, Exclusions, Target};
use super::persist::persist;
use super::Trigger;
use crate::queue::CollectMessage;
use crate::tasks::ItemStatus;
use crate::App;

pub const TASK_KEY: &str = "collect_databases";

/// Instances read per page when fanning out (keyset on id, only the columns messages need).
const PAGE: i64 = 500;

/// Creates a run and sends one message per active instance (`collect-dispatch`), all with the
/// business date of now. `instance_ids` narrows the run to those instances. Returns the run
/// id, or `None` when a collection is already unfinished (the partial unique index
/// `task_runs_one_unfinished_idx` decides, so two dispatchers cannot both win).
pub async fn dispatch(
    app: &App,
    trigger: Trigger,
    instance_ids: Option<Vec<i64>>,
) -> anyhow::Result<Option<Uuid>> {
    let collected_date = app.config.business_date(Utc::now());
    let client = app.db.get().await?;
    // Pending while items are being created: no item can close a run still being filled.
    let Some(row) = client
        .query_opt(
            "INSERT INTO task_runs (task_key, trigger, status, summary) VALUES ($1, $2, 'pending', $3) \
             ON CONFLICT DO NOTHING RETURNING run_id",
            &[
                &TASK_KEY,
                &trigger.as_str(),
                &json!({"collected_date": collected_date, "instance_ids": instance_ids}),
            ],
        )
        .await?
    else {
        return Ok(None);
    };
    let run_id: Uuid = row.try_get(0)?;
    drop(client);
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

/// Whether the instance's last collection travelled over TLS (with its sizes, same transaction).
pub async fn record_encryption(
    tx: &impl deadpool_postgres::GenericClient,
    instance_id: i64,
    encrypted: bool,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "UPDATE instances SET last_collection_encrypted = $2 WHERE id = $1",
        &[&instance_id, &encrypted],
    )
    .await?;
    Ok(())
}

/// The result of visiting one instance's server.
pub enum Visit {
    Collected {
        collected: Collected,
        /// How many databases the exclusions dropped.
        excluded: usize,
    },
    /// The server could not be collected: the reason, for people.
    Failed(String),
    /// The instance no longer exists (or, for the queue, is deleted or deactivated).
    Gone(String),
}

/// An instance ready to visit: its adapter, where to reach it and what not to collect.
pub struct Loaded {
    pub adapter: &'static dyn super::adapter::Adapter,
    pub target: Target,
    pub exclusions: Exclusions,
}

/// Loads the instance, its credential and its adapter, and collects its server. `Err` only for
/// trouble with the app database; everything about the managed server is a `Visit`.
pub async fn visit(app: &App, instance_id: i64, require_active: bool) -> anyhow::Result<Visit> {
    let Loaded {
        adapter,
        target,
        exclusions,
    } = match load(app, instance_id, require_active).await? {
        Ok(loaded) => loaded,
        Err(visit) => return Ok(visit),
    };
    Ok(match adapter.collect(&target, &exclusions).await {
        Ok(collected) => Visit::Collected {
            collected,
            excluded: exclusions.excluded_count(),
        },
        Err(e) => {
            tracing::warn!(instance_id, target = ?target, error = %format!("{e:#}"), "collection failed");
            Visit::Failed(format!("{e:#}"))
        }
    })
}

/// The instance, its credential and its adapter; `Err(Visit)` when it cannot be visited.
pub async fn load(
    app: &App,
    instance_id: i64,
    require_active: bool,
) -> anyhow::Result<Result<Loaded, Visit>> {
    let client = app.db.get().await?;
    let Some(row) = client
        .query_opt(
            "SELECT db_type, host, port, credential_id, database_name, exclude_databases, is_active, \
                    tls_mode, tls_ca_pem, deleted_at IS NOT NULL AS deleted \
             FROM instances WHERE id = $1",
            &[&instance_id],
        )
        .await?
    else {
        return Ok(Err(Visit::Gone("the instance no longer exists".into())));
    };
    if row.try_get::<_, bool>("deleted")? {
        return Ok(Err(Visit::Gone("the instance was deleted".into())));
    }
    if require_active && !row.try_get::<_, bool>("is_active")? {
        return Ok(Err(Visit::Gone("the instance was deactivated".into())));
    }
    let db_type: String = row.try_get("db_type")?;
    let Some(adapter) = adapter_for(&db_type) else {
        return Ok(Err(Visit::Failed(format!(
            "no collector for db_type {db_type}"
        ))));
    };
    let credential =
        match crate::credentials::secret_for_instance(app, &client, row.try_get("credential_id")?)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                // Decryption (wrong key) is about this instance; the app database is not at fault.
                if e.downcast_ref::<tokio_postgres::Error>().is_some() {
                    return Err(e);
                }
                // The message names the credential and the key version, never the password.
                return Ok(Err(Visit::Failed(format!("{e:#}"))));
            }
        };
    drop(client);
    let port: i32 = row.try_get("port")?;
    let (username, password) = credential.unzip();
    let target = Target {
        host: row.try_get("host")?,
        port: u16::try_from(port).unwrap_or_default(),
        username,
        password,
        database_name: row.try_get("database_name")?,
        connect_timeout: app.config.connect_timeout,
        statement_timeout: app.config.statement_timeout,
        // The column's CHECK constraint admits only known modes.
        tls_mode: crate::tls::TlsMode::parse(row.get("tls_mode")).unwrap_or_default(),
        tls_ca_pem: row.get("tls_ca_pem"),
    };
    let exclude_databases: Vec<String> = row.try_get("exclude_databases")?;
    let exclusions = Exclusions::new(adapter, &exclude_databases);
    Ok(Ok(Loaded {
        adapter,
        target,
        exclusions,
    }))
}

/// Collects one instance for one run (`collect-instance`); idempotent under redelivery: an
/// item already finished (or cancelled, or of a cancelled run) is skipped, and the item is
/// marked finished in the same transaction as the sizes are written. An unreachable server
/// is a recorded item failure (`Ok`); `Err` means trouble with the app database: retry.
pub async fn process(app: &App, message: &CollectMessage) -> anyhow::Result<()> {
    if message.tables_of.is_some() {
        return crate::tables::process(app, message).await;
    }
    let run_id = message.run_id;
    if !claim(app, message).await? {
        return Ok(());
    }
    let started = Instant::now();
    let visit = visit(app, message.instance_id, true).await?;
    // After the sizes, the tables of instances that collect them (their own transactions).
    let tables = match &visit {
        Visit::Collected { collected, .. } => {
            crate::tables::after_sizes(app, message, &collected.databases).await?
        }
        _ => None,
    };
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    if !lock_running(&tx, message).await? {
        return Ok(());
    }
    let (status, metrics, error) = match visit {
        Visit::Collected {
            collected,
            excluded,
        } => {
            let collected_at = Utc::now();
            match persist(
                &tx,
                message.instance_id,
                message.collected_date,
                collected_at,
                Some(&collected.version),
                &collected.databases,
            )
            .await?
            {
                Some(saved) => {
                    record_encryption(&tx, message.instance_id, collected.encrypted).await?;
                    (
                        ItemStatus::Completed,
                        json!({
                            "database_count": saved.database_count,
                            "total_size_bytes": saved.total_size_bytes,
                            "excluded_count": excluded,
                            "created": saved.created,
                            "seen": saved.seen,
                            "reactivated": saved.reactivated,
                            "deactivated": saved.deactivated,
                            "current": saved.current,
                            "version": collected.version,
                            "collected_date": message.collected_date,
                            "encrypted": collected.encrypted,
                        }),
                        None,
                    )
                }
                None => (
                    ItemStatus::Cancelled,
                    json!({}),
                    Some("the instance no longer exists".to_string()),
                ),
            }
        }
        Visit::Failed(reason) => (ItemStatus::Failed, json!({}), Some(reason)),
        Visit::Gone(reason) => (ItemStatus::Cancelled, json!({}), Some(reason)),
    };
    let mut metrics = metrics;
    if let Some(tables) = tables {
        metrics["tables"] = tables;
    }
    finish_item(&tx, message, started, status, &metrics, error.as_deref()).await?;
    tx.commit().await?;
    drop(client);
    crate::tasks::finish_if_done(app, run_id).await?;
    Ok(())
}

/// Marks the message's item running; false when it is finished, cancelled (or its run is) or
/// unknown: the message is then skipped.
pub async fn claim(app: &App, message: &CollectMessage) -> anyhow::Result<bool> {
    let client = app.db.get().await?;
    let claimed = client
        .query_opt(
            "UPDATE task_run_items it SET status = 'running', started_at = clock_timestamp(), error = NULL \
             FROM task_runs r \
             WHERE it.run_id = $1 AND it.item_key = $2 AND it.status IN ('pending', 'running') \
               AND r.run_id = it.run_id AND r.status IN ('pending', 'running') \
             RETURNING it.run_id",
            &[&message.run_id, &message.instance_id.to_string()],
        )
        .await?;
    if claimed.is_none() {
        tracing::debug!(run_id = %message.run_id, instance_id = message.instance_id, "item finished, cancelled or unknown; message skipped");
    }
    Ok(claimed.is_some())
}

/// In the transaction that finishes the item: locks it and says whether it is still running.
/// The row lock serialises two deliveries of one message: the second finds the item finished
/// and writes nothing.
pub async fn lock_running(
    tx: &impl deadpool_postgres::GenericClient,
    message: &CollectMessage,
) -> Result<bool, tokio_postgres::Error> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM task_run_items WHERE run_id = $1 AND item_key = $2 AND status = 'running' FOR UPDATE",
            &[&message.run_id, &message.instance_id.to_string()],
        )
        .await?
        .is_some())
}

/// Records the item's end and counts it on its run (the caller commits, then calls
/// `tasks::finish_if_done`).
pub async fn finish_item(
    tx: &impl deadpool_postgres::GenericClient,
    message: &CollectMessage,
    started: Instant,
    status: ItemStatus,
    metrics: &serde_json::Value,
    error: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    let duration_ms = started.elapsed().as_millis() as i64;
    let (run_id, item_key) = (message.run_id, message.instance_id.to_string());
    tx.execute(
        "UPDATE task_run_items SET status = $3, completed_at = clock_timestamp(), duration_ms = $4, \
            metrics = $5, error = $6 \
         WHERE run_id = $1 AND item_key = $2",
        &[&run_id, &item_key, &status.as_str(), &duration_ms, metrics, &error],
    )
    .await?;
    tx.execute(
        "UPDATE task_runs SET items_succeeded = items_succeeded + ($2 = 'completed')::int, \
            items_failed = items_failed + ($2 = 'failed')::int WHERE run_id = $1",
        &[&run_id, &status.as_str()],
    )
    .await?;
    Ok(())
}
