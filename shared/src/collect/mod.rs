//! Capacity collection: the scheduled per-instance fan-out (functions `collect-dispatch`,
//! `collect-instance`) and the synchronous single-instance action.

use uuid::Uuid;

use crate::http::router::Route;
use crate::queue::CollectMessage;
use crate::App;

pub fn routes() -> Vec<Route> {
    vec![]
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Scheduled,
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Scheduled => "scheduled",
            Trigger::Manual => "manual",
        }
    }
}

/// Creates a run and sends one message per active instance (`collect-dispatch`).
/// Returns the run id, or `None` when a collection is already running.
pub async fn dispatch(
    _app: &App,
    _trigger: Trigger,
    _instance_ids: Option<Vec<i64>>,
) -> anyhow::Result<Option<Uuid>> {
    anyhow::bail!("collection is not implemented yet")
}

/// Collects one instance for one run (`collect-instance`); idempotent under redelivery.
/// An unreachable server is a recorded item failure (Ok); Err means retry the message.
pub async fn process(_app: &App, _message: &CollectMessage) -> anyhow::Result<()> {
    anyhow::bail!("collection is not implemented yet")
}
