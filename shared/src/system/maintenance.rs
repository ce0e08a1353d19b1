//! The daily maintenance job: partitions ahead, retention, stale runs, expired exports.

use chrono::{Datelike, Months, Utc};
use serde_json::{json, Value};

use super::partitions;
use crate::tasks::{jobs, RunKind, Trigger};
use crate::App;

/// The scheduled maintenance as a task run (one item), like collections and aggregation.
pub async fn scheduled(app: &App) -> anyhow::Result<Value> {
    let items = vec!["maintenance".to_string()];
    let Some(run_id) = jobs::open(
        app,
        RunKind::Maintenance,
        Trigger::Scheduled,
        json!({}),
        &items,
    )
    .await?
    else {
        tracing::warn!("a maintenance run is still live; the schedule skips this one");
        return Ok(json!({"skipped": "a maintenance run is live"}));
    };
    let closed = jobs::drive(app, run_id, &items, |_| run(app)).await?;
    Ok(json!({"run_id": run_id, "status": closed.status, "summary": closed.summary}))
}

pub async fn run(app: &App) -> anyhow::Result<Value> {
    let client = app.db.get().await?;
    let created = partitions::ensure_ahead(&client).await?;
    let today = app.config.business_date(Utc::now());
    let first = today.with_day(1).unwrap_or(today);
    let stats_cutoff = first
        .checked_sub_months(Months::new(app.config.stats_retention_months))
        .unwrap_or(first);
    let log_cutoff = first
        .checked_sub_months(Months::new(app.config.log_retention_months))
        .unwrap_or(first);
    let mut dropped = Vec::new();
    dropped.extend(partitions::drop_before(&client, "database_size_stats", stats_cutoff).await?);
    dropped.extend(partitions::drop_before(&client, "instance_size_stats", stats_cutoff).await?);
    dropped.extend(partitions::drop_before(&client, "table_size_stats", stats_cutoff).await?);
    dropped.extend(partitions::drop_before(&client, "event_logs", log_cutoff).await?);
    let stale_runs = crate::tasks::fail_stale_runs(&client).await?;
    let expired_exports = crate::exports::expire(app).await?;
    let summary = json!({
        "partitions_created": created,
        "partitions_dropped": dropped,
        "stale_runs_failed": stale_runs,
        "exports_expired": expired_exports,
    });
    crate::events::record(
        &client,
        "INFO",
        "maintenance",
        "maintenance finished",
        summary.clone(),
    )
    .await?;
    tracing::info!(summary = %summary, "maintenance finished");
    Ok(summary)
}
