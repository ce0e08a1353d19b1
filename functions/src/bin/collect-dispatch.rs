//! `collect-dispatch`: the daily schedule starts a collection run and fans out one SQS
//! message per active instance.

use tidemark::collect::{dispatch, Trigger};

#[tokio::main]
async fn main() -> Result<(), tidemark_functions::Error> {
    tidemark_functions::serve_job(|app| async move {
        let run = dispatch(&app, Trigger::Scheduled, None).await?;
        Ok(serde_json::json!({"run_id": run}))
    })
    .await
}
