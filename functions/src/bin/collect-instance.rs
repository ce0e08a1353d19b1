//! `collect-instance`: SQS FIFO batch of instances to collect.

#[tokio::main]
async fn main() -> Result<(), tidemark_functions::Error> {
    tidemark_functions::serve_sqs(|app, message: tidemark::queue::CollectMessage| async move {
        tidemark::collect::process(&app, &message).await
    })
    .await
}
