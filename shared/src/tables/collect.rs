//! When tables are read: after the database sizes in the daily run (instances with
//! `collect_tables`), and on demand for one database (`refresh-tables`, a message on the
//! instance's FIFO group, so never at the same time as another visit to that server).

use chrono::Utc;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::persist::{persist, HistoryRule, Saved};
use crate::collect::fanout::{self, Loaded, Visit};
use crate::collect::DatabaseSize;
use crate::queue::CollectMessage;
use crate::tasks::ItemStatus;
use crate::App;

/// A database whose tables could not be read or saved.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub database_name: String,
    pub error: String,
}

/// What one visit's table reads did, for the item's metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Databases read and saved.
    pub databases: i64,
    pub tables: i64,
    pub created: i64,
    pub deactivated: i64,
    pub history_rows: i64,
    /// The most statements one database's write took (constant whatever its table count).
    pub statements_per_database: i64,
    pub failed: Vec<Failure>,
    /// The server could not be read at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Report {
    fn add(&mut self, saved: &Saved) {
        self.databases += 1;
        self.tables += saved.tables;
        self.created += saved.created;
        self.deactivated += saved.deactivated;
        self.history_rows += saved.history_rows;
        self.statements_per_database = self.statements_per_database.max(saved.statements);
    }

    /// The first reason something was not read, for the item's `error`.
    pub fn first_error(&self) -> Option<String> {
        self.error.clone().or_else(|| {
            self.failed
                .first()
                .map(|f| format!("{}: {}", f.database_name, f.error))
        })
    }
}

/// Reads the tables of `databases` by `deadline` and saves each database in its own
/// transaction. `Err` only for trouble with the app database.
pub async fn collect(
    app: &App,
    loaded: &Loaded,
    instance_id: i64,
    databases: &[String],
    collected_date: chrono::NaiveDate,
    deadline: Instant,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let read = match loaded
        .adapter
        .tables(&loaded.target, databases, deadline)
        .await
    {
        Ok(read) => read,
        Err(e) => {
            report.error = Some(format!("{e:#}"));
            return Ok(report);
        }
    };
    let rule = HistoryRule::of(&app.config);
    let collected_at = Utc::now();
    for db in read {
        let tables = match db.tables {
            Ok(t) => t,
            Err(error) => {
                tracing::warn!(instance_id, database = %db.database_name, %error, "tables not read");
                report.failed.push(Failure {
                    database_name: db.database_name,
                    error,
                });
                continue;
            }
        };
        let mut client = app.db.get().await?;
        let tx = client.transaction().await?;
        let saved = persist(
            &tx,
            instance_id,
            &db.database_name,
            collected_date,
            collected_at,
            &tables,
            rule,
        )
        .await?;
        tx.commit().await?;
        report.add(&saved);
    }
    Ok(report)
}

/// In the daily run, after the sizes: the tables of the databases just collected, for an
/// instance that collects its tables (the caller checks `loaded.collect_tables`).
pub async fn after_sizes(
    app: &App,
    message: &CollectMessage,
    loaded: &Loaded,
    databases: &[DatabaseSize],
    deadline: Instant,
) -> anyhow::Result<Value> {
    let names: Vec<String> = databases.iter().map(|d| d.database_name.clone()).collect();
    let report = collect(
        app,
        loaded,
        message.instance_id,
        &names,
        message.collected_date,
        deadline,
    )
    .await?;
    Ok(serde_json::to_value(report)?)
}

/// A `refresh-tables` message: one database's tables, recorded as the run's one item (the
/// caller, `collect::fanout::process`, has claimed the item, bounds this by `deadline` and
/// closes the run).
pub async fn refresh(
    app: &App,
    message: &CollectMessage,
    started: std::time::Instant,
    deadline: Instant,
) -> anyhow::Result<()> {
    let Some(database) = message.tables_of.as_deref() else {
        return Ok(());
    };
    let (status, metrics, error) = match fanout::load(app, message.instance_id, false).await? {
        Err(Visit::Gone(e)) => (ItemStatus::Cancelled, json!({}), Some(e)),
        Err(Visit::Failed(e)) => (ItemStatus::Failed, json!({}), Some(e)),
        Err(Visit::Collected { .. }) => (ItemStatus::Cancelled, json!({}), None),
        Ok(loaded) => {
            let report = collect(
                app,
                &loaded,
                message.instance_id,
                &[database.to_string()],
                message.collected_date,
                deadline,
            )
            .await?;
            let error = report.first_error();
            let status = if error.is_some() {
                ItemStatus::Failed
            } else {
                ItemStatus::Completed
            };
            (status, json!({ "tables": report }), error)
        }
    };
    fanout::finish_item(app, message, status, started, metrics, error).await
}
