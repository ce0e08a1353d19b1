//! Capacity collection: the scheduled per-instance fan-out (functions `collect-dispatch`,
//! `collect-instance`) and the synchronous single-instance action.
//!
//! - `adapter`: the engine boundary (`postgres`, `mysql`: one file per engine).
//! - `persist`: one instance's sizes into history, inventory, latest sizes, totals, growth.
//! - `fanout`: runs, their items, the messages, and who closes a run.

pub mod adapter;
pub mod fanout;
pub mod mysql;
mod mysql_tables;
pub mod persist;
pub mod postgres;
pub mod postgres_tables;

use std::time::Instant;

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::web::{ApiError, ApiResponse, ApiResult, Req};
use crate::App;

pub use crate::tasks::Trigger;
pub use adapter::{Collected, DatabaseSize};
pub use fanout::{dispatch, process, TASK_KEY};
pub use persist::{persist, Persisted};

/// The most instance ids one `POST /collections` may name.
const MAX_INSTANCE_IDS: usize = 10_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    instance_ids: Option<Vec<i64>>,
}

/// `POST /collections`: `{}` (every active instance) or `{instance_ids}`; 202 `{run_id}`.
pub async fn start(app: &App, req: Req) -> ApiResult {
    let body: StartBody = if req.body.iter().all(u8::is_ascii_whitespace) {
        StartBody::default()
    } else {
        req.json()?
    };
    let ids = match &body.instance_ids {
        None => None,
        Some(ids) if ids.is_empty() => {
            return Err(ApiError::validation(
                "instance_ids",
                "instance_ids must not be empty (omit it to collect every active instance)",
            ))
        }
        Some(ids) => {
            let ids = crate::values::ids("instance_ids", ids, MAX_INSTANCE_IDS)?;
            let client = app.db.get().await?;
            let count = "SELECT count(*) FROM instances WHERE id = ANY($1) AND is_active AND deleted_at IS NULL";
            let active: i64 = crate::web::sql::scalar(&client, count, &[&ids]).await?;
            if active == 0 {
                return Err(ApiError::not_found("active instance"));
            }
            Some(ids)
        }
    };
    match dispatch(app, Trigger::Manual, ids).await? {
        Some(run_id) => {
            Ok(ApiResponse::accepted(json!({ "run_id": run_id }))
                .with_location("/task-runs", run_id))
        }
        None => Err(ApiError::conflict(
            "CONFLICT",
            "a collection is already running",
        )),
    }
}

/// `POST /instances/{id}/actions/collect`: collect one instance now, synchronously.
pub async fn collect_now(app: &App, req: Req) -> ApiResult {
    let id = req.id("id")?;
    let started = Instant::now();
    let (collected, _excluded) = match fanout::visit(app, id, false).await? {
        fanout::Visit::Collected {
            collected,
            excluded,
        } => (collected, excluded),
        fanout::Visit::Gone(_) => return Err(ApiError::not_found("instance")),
        fanout::Visit::Failed(reason) => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "COLLECTION_FAILED",
                reason,
            ))
        }
    };
    let collected_at = chrono::Utc::now();
    let collected_date = app.config.business_date(collected_at);
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let saved = persist(
        &tx,
        id,
        collected_date,
        collected_at,
        Some(&collected.version),
        &collected.databases,
    )
    .await?
    .ok_or_else(|| ApiError::not_found("instance"))?;
    fanout::record_encryption(&tx, id, collected.encrypted).await?;
    tx.commit().await?;
    let databases: Vec<_> = collected
        .databases
        .iter()
        .map(|d| json!({"database_name": d.database_name, "size_bytes": d.size_bytes}))
        .collect();
    Ok(ApiResponse::ok(json!({
        "instance_id": id,
        "version": collected.version,
        "collected_date": collected_date,
        "collected_at": collected_at,
        "databases": databases,
        "database_count": saved.database_count,
        "total_size_bytes": saved.total_size_bytes,
        "encrypted": collected.encrypted,
        "inventory": {
            "created": saved.created,
            "seen": saved.seen,
            "reactivated": saved.reactivated,
            "deactivated": saved.deactivated,
        },
        "duration_ms": started.elapsed().as_millis() as i64,
    })))
}
