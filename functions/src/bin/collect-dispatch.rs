//! `collect-dispatch`: the daily schedule starts a collection run and fans out one SQS
//! message per active instance; a live run it cannot replace is an error (and a metric).

#[tokio::main]
async fn main() -> Result<(), tidemark_functions::Error> {
    tidemark_functions::serve_job(
        |app| async move { tidemark::collect::dispatch_scheduled(&app).await },
    )
    .await
}
