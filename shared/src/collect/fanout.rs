//! One item of a run: `process` collects one instance for one run within a bounded time,
//! records its item, and the item that finishes last closes the run
//! (`tasks::finish_if_done`). `dispatch` (its own module) creates runs and their messages.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::adapter::{adapter_for, Collected, Exclusions, Target};
use super::persist::persist;
use crate::queue::CollectMessage;
use crate::tasks::ItemStatus;
use crate::App;

pub const TASK_KEY: &str = "collect_databases";

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
    /// Whether its tables are read after the sizes (`collect_tables`).
    pub collect_tables: bool,
}

/// Loads the instance, its credential and its adapter, and collects its server. `Err` only for
/// trouble with the app database; everything about the managed server is a `Visit`.
pub async fn visit(app: &App, instance_id: i64, require_active: bool) -> anyhow::Result<Visit> {
    Ok(match load(app, instance_id, require_active).await? {
        Ok(loaded) => collect_loaded(&loaded, instance_id).await,
        Err(visit) => visit,
    })
}

/// Collects the sizes of a loaded instance's server.
async fn collect_loaded(loaded: &Loaded, instance_id: i64) -> Visit {
    match loaded
        .adapter
        .collect(&loaded.target, &loaded.exclusions)
        .await
    {
        Ok(collected) => Visit::Collected {
            collected,
            excluded: loaded.exclusions.excluded_count(),
        },
        Err(e) => {
            tracing::warn!(instance_id, target = ?loaded.target, error = %format!("{e:#}"), "collection failed");
            Visit::Failed(format!("{e:#}"))
        }
    }
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
            "SELECT db_type, host, port, credential_id, database_name, exclude_databases, is_active, collect_tables, \
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
        collect_tables: row.try_get("collect_tables")?,
    }))
}

/// Time kept back from a Lambda invocation's deadline, to record an item that ran out of
/// time and close its run before the function is killed.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// What one visit may take: the configured bound (`TIDEMARK_VISIT_TIMEOUT_SECS`), cut to the
/// invocation's remaining time less [`DEADLINE_MARGIN`] when there is a deadline (Lambda).
pub fn visit_budget(config: &crate::Config, deadline: Option<Instant>) -> Duration {
    match deadline {
        None => config.visit_timeout,
        Some(d) => config.visit_timeout.min(
            d.saturating_duration_since(Instant::now())
                .saturating_sub(DEADLINE_MARGIN),
        ),
    }
}

/// The item's error when its visit ran out of time.
pub fn timeout_message(budget: Duration) -> String {
    format!(
        "visit exceeded {} s (connect, queries and persistence are bounded together)",
        budget.as_secs_f64().ceil() as u64
    )
}

/// Collects one instance for one run (`collect-instance`); idempotent under redelivery: an
/// item already finished (or cancelled, or of a cancelled run) is skipped, but its run is
/// still closed if it is done (the closing step of an earlier delivery may have failed). The
/// item is marked finished in the same transaction as the sizes are written. The whole
/// visit (connect, every query, persistence) is bounded by `budget` (see [`visit_budget`]):
/// past it the item is recorded failed, never left running. An unreachable server is a
/// recorded item failure (`Ok`); `Err` means trouble with the app database: retry.
pub async fn process(app: &App, message: &CollectMessage, budget: Duration) -> anyhow::Result<()> {
    let run_id = message.run_id;
    let item_key = message.instance_id.to_string();
    // Too little time left in this invocation: hand the message back before claiming it.
    anyhow::ensure!(
        budget >= Duration::from_secs(1),
        "too little time left in this invocation to visit instance {}; redelivered",
        message.instance_id
    );
    let Some(task_key) = claim(app, message).await? else {
        // A redelivery after a failed closing step: the run is closed here (idempotent).
        crate::tasks::finish_if_done(app, run_id).await?;
        return Ok(());
    };
    // A single-instance action collects the instance even when it is inactive.
    let require_active = task_key != super::now::TASK_KEY;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + budget;
    let recorded = async {
        if message.tables_of.is_some() {
            crate::tables::refresh(app, message, started, deadline).await
        } else {
            visit_and_record(app, message, &item_key, require_active, started, deadline).await
        }
    };
    match tokio::time::timeout(budget, recorded).await {
        Ok(recorded) => recorded?,
        Err(_) => {
            tracing::warn!(%run_id, instance_id = message.instance_id, ?budget, "visit exceeded its time; item failed");
            let error = Some(timeout_message(budget));
            finish_item(app, message, ItemStatus::Failed, started, json!({}), error).await?;
        }
    }
    crate::tasks::finish_if_done(app, run_id).await?;
    Ok(())
}

/// Marks the message's item running; its run's task key, or `None` when the item is
/// finished, cancelled (or its run is) or unknown: the message is then skipped.
async fn claim(app: &App, message: &CollectMessage) -> anyhow::Result<Option<String>> {
    let client = app.db.get().await?;
    let claimed = client
        .query_opt(
            "UPDATE task_run_items it SET status = 'running', started_at = clock_timestamp(), error = NULL \
             FROM task_runs r \
             WHERE it.run_id = $1 AND it.item_key = $2 AND it.status IN ('pending', 'running') \
               AND r.run_id = it.run_id AND r.status IN ('pending', 'running') \
             RETURNING r.task_key",
            &[&message.run_id, &message.instance_id.to_string()],
        )
        .await?;
    match claimed {
        Some(row) => Ok(Some(row.try_get(0)?)),
        None => {
            tracing::debug!(run_id = %message.run_id, instance_id = message.instance_id, "item finished, cancelled or unknown; message skipped");
            Ok(None)
        }
    }
}

/// Visits the instance and records the item with its sizes, in one transaction; then, for an
/// instance that collects its tables, reads them by the same `deadline`.
async fn visit_and_record(
    app: &App,
    message: &CollectMessage,
    item_key: &str,
    require_active: bool,
    started: Instant,
    deadline: tokio::time::Instant,
) -> anyhow::Result<()> {
    let (visit, tables) = match load(app, message.instance_id, require_active).await? {
        Err(visit) => (visit, None),
        Ok(loaded) => {
            let visit = collect_loaded(&loaded, message.instance_id).await;
            // After the sizes, the tables of instances that collect them (their own
            // transactions), through the same loaded instance and credential.
            let tables = match &visit {
                Visit::Collected { collected, .. } if loaded.collect_tables => Some(
                    crate::tables::after_sizes(
                        app,
                        message,
                        &loaded,
                        &collected.databases,
                        deadline,
                    )
                    .await?,
                ),
                _ => None,
            };
            (visit, tables)
        }
    };
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    if !lock_running_item(&tx, message.run_id, item_key).await? {
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
                            "collected_at": collected_at,
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
    record_item(
        &tx,
        message.run_id,
        item_key,
        status,
        started,
        metrics,
        error,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Records the message's item as finished, in its own transaction, if it is still running.
pub(crate) async fn finish_item(
    app: &App,
    message: &CollectMessage,
    status: ItemStatus,
    started: Instant,
    metrics: serde_json::Value,
    error: Option<String>,
) -> anyhow::Result<()> {
    let item_key = message.instance_id.to_string();
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    if lock_running_item(&tx, message.run_id, &item_key).await? {
        record_item(
            &tx,
            message.run_id,
            &item_key,
            status,
            started,
            metrics,
            error,
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Locks the item if it is still running. The lock serialises two deliveries of one message
/// (and a dispatch failing the item as stale): whoever comes second finds the item finished
/// and writes nothing.
async fn lock_running_item(
    tx: &deadpool_postgres::Transaction<'_>,
    run_id: Uuid,
    item_key: &str,
) -> Result<bool, tokio_postgres::Error> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM task_run_items WHERE run_id = $1 AND item_key = $2 AND status = 'running' FOR UPDATE",
            &[&run_id, &item_key],
        )
        .await?
        .is_some())
}

/// Finishes an item the caller has locked (`lock_running_item`) and counts it on its run.
async fn record_item(
    tx: &deadpool_postgres::Transaction<'_>,
    run_id: Uuid,
    item_key: &str,
    status: ItemStatus,
    started: Instant,
    metrics: serde_json::Value,
    error: Option<String>,
) -> Result<(), tokio_postgres::Error> {
    let duration_ms = started.elapsed().as_millis() as i64;
    tx.execute(
        "UPDATE task_run_items SET status = $3, completed_at = clock_timestamp(), duration_ms = $4, \
            metrics = $5, error = $6 \
         WHERE run_id = $1 AND item_key = $2",
        &[&run_id, &item_key, &status.as_str(), &duration_ms, &metrics, &error],
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
