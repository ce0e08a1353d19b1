//! The event log (`event_logs`, partitioned by month): audit lines users can query through
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
