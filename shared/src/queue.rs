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
    /// Set: read only this database's tables (`POST /databases/{id}/actions/refresh-tables`),
    /// on the same FIFO group as the instance's collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables_of: Option<String>,
}

/// SQS's limit on a FIFO message group id.
pub const MAX_GROUP_ID_LEN: usize = 128;

impl CollectMessage {
    /// `host:port` in one spelling per server (no trailing dot, an IP address in its
    /// canonical form), so every instance on a server shares the group. Host names may be 255
    /// characters but SQS takes at most 128: a longer group keeps its start and ends with a
    /// hash of the whole.
    pub fn group(&self) -> String {
        let host = self.host.trim_end_matches('.');
        let host = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => host.to_ascii_lowercase(),
        };
        let group = format!("{host}:{}", self.port);
        if group.len() <= MAX_GROUP_ID_LEN {
            return group;
        }
        use sha2::Digest;
        let digest = sha2::Sha256::digest(group.as_bytes());
        let hash: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        // Validated hosts are ASCII, so any byte index is a character boundary; `get` keeps
        // that from being an assumption.
        let keep = MAX_GROUP_ID_LEN - hash.len() - 1;
        let start = group.get(..keep).unwrap_or_default();
        format!("{start}#{hash}")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(host: &str, port: i32) -> CollectMessage {
        CollectMessage {
            run_id: uuid::Uuid::nil(),
            instance_id: 1,
            host: host.into(),
            port,
            collected_date: chrono::NaiveDate::MIN,
            tables_of: None,
        }
    }

    #[test]
    fn group_is_canonical_and_fits_sqs() {
        assert_eq!(message("db1.example", 5432).group(), "db1.example:5432");
        assert_eq!(message("DB1.example.", 5432).group(), "db1.example:5432");
        assert_eq!(message("0:0::1", 3306).group(), "::1:3306");
        let long = format!("{}.example", "a".repeat(240));
        let group = message(&long, 3306).group();
        assert_eq!(group.len(), MAX_GROUP_ID_LEN);
        assert!(group.starts_with("aaaa"));
        let other = message(&format!("{}.example", "a".repeat(239)), 3306).group();
        assert_ne!(
            group, other,
            "the hash tells long hosts with one start apart"
        );
        assert_eq!(group, message(&long, 3306).group());
    }
}
