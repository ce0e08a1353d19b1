//! `migrate`: invoked after deploy; applies pending migrations.

#[tokio::main]
async fn main() -> Result<(), tidemark_functions::Error> {
    tidemark_functions::serve_job(|app| async move {
        let applied = tidemark::db::migrate(&app.db).await?;
        Ok(serde_json::json!({"applied": applied}))
    })
    .await
}
