//! The event log (`event_logs`, partitioned by month): system events and the audit trail
//! (`audit`, written by the router for every mutating request), queried through
//! `GET /logs`. Never secrets in `context`.

use deadpool_postgres::GenericClient;
use serde_json::Value;

pub async fn record<C: GenericClient>(
    client: &C,
    level: &str,
    module: &str,
    message: &str,
    context: Value,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO event_logs (level, module, message, context) VALUES ($1, $2, $3, $4)",
            &[&level, &module, &message, &context],
        )
        .await?;
    Ok(())
}

/// Writes one audit entry (`web::audit`): an event log line with who, what and the changes.
pub async fn audit(app: &crate::App, entry: &crate::web::audit::Entry) -> anyhow::Result<()> {
    let client = app.db.get().await?;
    let message = match entry.target_ids.len() {
        0 => entry.action.clone(),
        1 => format!(
            "{} ({} {})",
            entry.action, entry.target_type, entry.target_ids[0]
        ),
        n => format!("{} ({n} {})", entry.action, entry.target_type),
    };
    let context = serde_json::json!({"counts": entry.counts});
    client
        .execute(
            "INSERT INTO event_logs (level, module, message, context, actor, actor_role, action, \
             target_type, target_ids, request_id, changes) \
             VALUES ('INFO', 'audit', $1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &message,
                &context,
                &entry.actor,
                &entry.actor_role,
                &entry.action,
                &entry.target_type,
                &entry.target_ids,
                &entry.request_id,
                &entry.changes,
            ],
        )
        .await?;
    Ok(())
}
