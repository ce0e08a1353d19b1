//! `maintenance`: partitions ahead, retention, stale runs, expired exports.

#[tokio::main]
async fn main() -> Result<(), tidemark_functions::Error> {
    tidemark_functions::serve_job(|app| async move {
        tidemark::system::maintenance::scheduled(&app).await
    })
    .await
}
