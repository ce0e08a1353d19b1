//! `aggregate`: the daily capacity aggregation.

#[tokio::main]
async fn main() -> Result<(), tidemark_functions::Error> {
    tidemark_functions::serve_job(|app| async move { tidemark::capacity::aggregate(&app).await })
        .await
}
