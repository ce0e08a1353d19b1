//! `collect-instance`: SQS FIFO batch of instances to collect, each visit bounded below the
//! invocation's remaining time.

#[tokio::main]
async fn main() -> Result<(), tidemark_functions::Error> {
    tidemark_functions::serve_sqs(
        |app, message: tidemark::queue::CollectMessage, deadline| async move {
            let budget = tidemark::collect::visit_budget(&app.config, Some(deadline));
            tidemark::collect::process(&app, &message, budget).await
        },
    )
    .await
}
