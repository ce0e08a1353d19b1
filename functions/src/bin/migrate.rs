//! `migrate`: invoked after deploy; applies pending migrations. With the event
//! `{"action": "rotate-credential-key"}` it then re-encrypts every stored password under the
//! next key (`next_credential_key` of the secret) in one transaction and records its version.

#[tokio::main]
async fn main() -> Result<(), tidemark_functions::Error> {
    tidemark_functions::serve_action(|app, event| async move {
        let applied = tidemark::db::migrate(&app.db).await?;
        match event.get("action").and_then(|a| a.as_str()) {
            None | Some("migrate") => Ok(serde_json::json!({"applied": applied})),
            Some("rotate-credential-key") => {
                let next = app.credential_key.next_only().ok_or_else(|| {
                    anyhow::anyhow!(
                        "rotate-credential-key needs next_credential_key in the secret \
                         (or TIDEMARK_NEXT_CREDENTIAL_KEY)"
                    )
                })?;
                let mut client = app.db.get().await?;
                let done =
                    tidemark::credentials::keys::rotate(&mut client, &app.credential_key, &next)
                        .await?;
                Ok(serde_json::json!({"applied": applied, "rotation": done}))
            }
            Some(other) => Err(anyhow::anyhow!(
                "unknown action {other:?} (migrate, rotate-credential-key)"
            )),
        }
    })
    .await
}
