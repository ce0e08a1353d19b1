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
/// SQS's limit on the entries of one `SendMessageBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// SQS's limit on one message body, and on a whole batch: 256 KiB.
pub const MAX_MESSAGE_BYTES: usize = 262_144;

/// What SQS would refuse in one `SendMessageBatch` of `(group id, body)` entries, with the
/// error SQS would give, so the in-process queue rejects what AWS would.
pub fn check_batch(entries: &[(Option<&str>, &str)]) -> anyhow::Result<()> {
    anyhow::ensure!(!entries.is_empty(), "AWS.SimpleQueueService.EmptyBatchRequest: There should be at least one SendMessageBatchRequestEntry in the request.");
    anyhow::ensure!(
        entries.len() <= MAX_BATCH_ENTRIES,
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest: Maximum number of entries per request are {MAX_BATCH_ENTRIES}. You have sent {}.",
        entries.len()
    );
    let total: usize = entries.iter().map(|(_, body)| body.len()).sum();
    anyhow::ensure!(
        total <= MAX_MESSAGE_BYTES,
        "AWS.SimpleQueueService.BatchRequestTooLong: Batch requests cannot be longer than {MAX_MESSAGE_BYTES} bytes. You have sent {total} bytes."
    );
    for (group, body) in entries {
        check_message(*group, body)?;
    }
    Ok(())
}

/// What SQS would refuse in one message: a body over 256 KiB, a FIFO group id that is empty,
/// longer than 128 characters or not alphanumeric and punctuation.
pub fn check_message(group: Option<&str>, body: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        body.len() <= MAX_MESSAGE_BYTES,
        "InvalidParameterValue: One or more parameters are invalid. Reason: Message must be shorter than {MAX_MESSAGE_BYTES} bytes."
    );
    if let Some(group) = group {
        anyhow::ensure!(
            (1..=MAX_GROUP_ID_LEN).contains(&group.len())
                && group.chars().all(|c| c.is_ascii_alphanumeric() || c.is_ascii_punctuation()),
            "InvalidParameterValue: Value {group} for parameter MessageGroupId is invalid. Reason: MessageGroupId can only include alphanumeric and punctuation characters. 1 to {MAX_GROUP_ID_LEN} in length."
        );
    }
    Ok(())
}

impl CollectMessage {
    /// `host:port` in one spelling per server (lowercase, no trailing dot, an IP address in
    /// its canonical form, IPv6 in brackets), so every instance on a server shares the group. Host names may be 255
    /// characters but SQS takes at most 128: a longer group keeps its start and ends with a
    /// hash of the whole.
    pub fn group(&self) -> String {
        let host = self.host.trim_end_matches('.');
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        // IPv6 in brackets, as in a URL: `[::1]:5432` is never read as host `:` port.
        let host = match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
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
        assert_eq!(message("0:0::1", 3306).group(), "[::1]:3306");
        assert_eq!(message("[0:0::1]", 3306).group(), "[::1]:3306");
        assert_eq!(message("FE80::A", 1).group(), "[fe80::a]:1");
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
        assert!(check_message(Some(&group), "{}").is_ok());
    }

    #[test]
    fn sqs_limits_are_enforced() {
        let e = check_message(Some(&"a".repeat(129)), "{}").unwrap_err();
        assert!(e.to_string().contains("MessageGroupId"), "{e}");
        assert!(check_message(Some("a b"), "{}").is_err());
        assert!(check_message(Some(""), "{}").is_err());
        let big = "x".repeat(MAX_MESSAGE_BYTES + 1);
        assert!(check_message(None, &big)
            .unwrap_err()
            .to_string()
            .contains("shorter"));
        let eleven = vec![(Some("g"), "{}"); 11];
        let e = check_batch(&eleven).unwrap_err();
        assert!(
            e.to_string().contains("TooManyEntriesInBatchRequest"),
            "{e}"
        );
        assert!(check_batch(&eleven[..10]).is_ok());
        let half = "x".repeat(MAX_MESSAGE_BYTES / 2 + 1);
        assert!(check_batch(&[(Some("g"), half.as_str()), (Some("g"), half.as_str())]).is_err());
    }
}
