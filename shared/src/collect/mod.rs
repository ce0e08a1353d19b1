//! Capacity collection: the scheduled per-instance fan-out (functions `collect-dispatch`,
//! `collect-instance`) and the single-instance action (`now`), both through the queue.
//!
//! - `adapter`: the engine boundary (`postgres`, `mysql`: one file per engine).
//! - `persist`: one instance's sizes into history, inventory, latest sizes, totals, growth.
//! - `dispatch`: runs, their items and messages; stale runs failed first.
//! - `fanout`: one item collected within its bound, and who closes a run.
//! - `now`: one instance on demand, on its server's queue, answered within API Gateway's limit.

pub mod adapter;
pub mod dispatch;
pub mod fanout;
pub mod mysql;
mod mysql_innodb;
mod mysql_tables;
pub mod now;
pub mod persist;
pub mod postgres;
pub mod postgres_tables;

use serde::Deserialize;
use serde_json::json;

use crate::web::{ApiError, ApiResponse, ApiResult, Req};
use crate::App;

pub use crate::tasks::Trigger;
pub use adapter::{Collected, DatabaseSize};
pub use dispatch::{dispatch, dispatch_scheduled};
pub use fanout::{process, visit_budget, TASK_KEY};
pub use now::collect_now;
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
    let body: StartBody = if req.body.is_empty() {
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
