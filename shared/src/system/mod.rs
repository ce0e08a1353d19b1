//! System routes: health, partitions, schedules (function `api-system`) and the event log
//! (function `api-logs`); plus the daily maintenance job.

pub mod logs;
pub mod maintenance;
pub mod partitions;
pub mod schedules;

pub use logs::{log_entry, log_statistics, logs};

use std::time::Duration;

use serde_json::json;

use crate::web::{ApiResponse, ApiResult, Req};
use crate::App;

pub async fn health(app: &App, _req: Req) -> ApiResult {
    let probe = async {
        let client = app.db.get().await.map_err(|e| e.to_string())?;
        client
            .query_one("SELECT 1", &[])
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    };
    let ok = matches!(
        tokio::time::timeout(Duration::from_secs(3), probe).await,
        Ok(Ok(()))
    );
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "database": if ok { "ok" } else { "error" },
        "version": env!("CARGO_PKG_VERSION"),
    });
    let resp = ApiResponse::ok(body);
    Ok(if ok {
        resp
    } else {
        resp.with_status(http::StatusCode::SERVICE_UNAVAILABLE)
    })
}

pub async fn list_schedules(app: &App, _req: Req) -> ApiResult {
    let now = chrono::Utc::now();
    let items: Vec<_> = schedules::schedules(&app.config)
        .iter()
        .map(|s| {
            json!({
                "key": s.job.key(),
                "function": s.job.function(),
                "at": s.at.format("%H:%M").to_string(),
                "timezone": s.timezone.name(),
                "expression": s.cron(),
                "next_run_at": s.next_after(now),
            })
        })
        .collect();
    Ok(ApiResponse::ok(json!({"items": items})))
}
