//! `export-worker`: streams one export job into S3 multipart.

#[tokio::main]
async fn main() -> Result<(), tidemark_functions::Error> {
    tidemark_functions::serve_sqs(
        |app, message: tidemark::queue::ExportMessage, _deadline| async move {
            tidemark::exports::process(&app, &message).await
        },
    )
    .await
}
