//! Where work is handed off: SQS in AWS (the functions crate), an in-process queue locally
//! (tidemark-local). Messages are plain serde types so both carry the same bytes.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One instance to collect in one run. The FIFO group is the instance's `host:port`, so two
/// instances on one server are never collected at the same time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CollectMessage {
    pub run_id: uuid::Uuid,
    pub instance_id: i64,
    pub host: String,
    pub port: i32,
    /// The business date fixed at dispatch, so a late or redelivered message writes the
    /// same day's row.
    pub collected_date: chrono::NaiveDate,
}

impl CollectMessage {
    pub fn group(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
    pub fn dedup_id(&self) -> String {
        format!("{}:{}", self.run_id, self.instance_id)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExportMessage {
    pub export_id: uuid::Uuid,
}

#[async_trait]
pub trait Queue: Send + Sync {
    async fn send_collect(&self, messages: Vec<CollectMessage>) -> anyhow::Result<()>;
    async fn send_export(&self, message: ExportMessage) -> anyhow::Result<()>;
}
