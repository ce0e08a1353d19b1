//! Capacity trends: daily/weekly/monthly/quarterly aggregates and forecasts (functions
//! `aggregate`, `api-capacity`).

use crate::http::router::Route;
use crate::App;

pub fn routes() -> Vec<Route> {
    vec![]
}

/// The daily aggregation job.
pub async fn aggregate(_app: &App) -> anyhow::Result<serde_json::Value> {
    anyhow::bail!("aggregation is not implemented yet")
}
