//! Export expiry (run by maintenance): old exports go (object, then job), jobs whose worker
//! vanished are failed, and uploads a failed run could not abort are aborted.

use uuid::Uuid;

use super::upload;
use crate::App;

/// Maintenance: deletes exports older than `export_retention_days` (object, then job), fails jobs
/// whose worker vanished long ago, and retries aborting uploads that a failed run could not
/// abort. Returns the number of exports deleted.
pub async fn expire(app: &App) -> anyhow::Result<u64> {
    let client = app.db.get().await?;
    // Runs that stopped renewing their lease an hour ago are not coming back.
    let abandoned = client
        .execute(
            "UPDATE export_jobs SET status = 'failed', completed_at = now(), \
             error = 'the export worker stopped before finishing; request the export again' \
             WHERE status = 'running' AND heartbeat_at < now() - interval '1 hour'",
            &[],
        )
        .await?;
    if abandoned > 0 {
        tracing::warn!(abandoned, "export jobs failed after their worker vanished");
    }
    let leftovers = client
        .query(
            "SELECT id, object_key, upload_id FROM export_jobs \
             WHERE status = 'failed' AND upload_id IS NOT NULL AND object_key IS NOT NULL LIMIT 1000",
            &[],
        )
        .await?;
    for row in leftovers {
        let (id, key, upload_id): (Uuid, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        match upload::abort(&app.storage, &key, &upload_id).await {
            Ok(()) => {
                client
                    .execute(
                        "UPDATE export_jobs SET upload_id = NULL WHERE id = $1 AND status = 'failed'",
                        &[&id],
                    )
                    .await?;
            }
            Err(e) => {
                tracing::warn!(export_id = %id, detail = %e.detail, "aborting a leftover upload failed; will retry")
            }
        }
    }
    let mut deleted = 0u64;
    loop {
        let old = client
            .query(
                "SELECT id, object_key, upload_id FROM export_jobs \
                 WHERE created_at < now() - make_interval(days => $1) AND status <> 'running' \
                 ORDER BY created_at LIMIT 500",
                &[&app.config.export_retention_days],
            )
            .await?;
        if old.is_empty() {
            break;
        }
        let mut progressed = false;
        for row in &old {
            let id: Uuid = row.try_get(0)?;
            let key: Option<String> = row.try_get(1)?;
            let upload_id: Option<String> = row.try_get(2)?;
            let cleaned = match &key {
                None => Ok(()),
                Some(key) => {
                    let aborted = match &upload_id {
                        Some(u) => upload::abort(&app.storage, key, u).await,
                        None => Ok(()),
                    };
                    match aborted {
                        Ok(()) => upload::delete_object(&app.storage, key).await,
                        Err(e) => Err(e),
                    }
                }
            };
            match cleaned {
                Ok(()) => {
                    deleted += client
                        .execute("DELETE FROM export_jobs WHERE id = $1", &[&id])
                        .await?;
                    progressed = true;
                }
                Err(e) => {
                    tracing::warn!(export_id = %id, detail = %e.detail, "deleting an expired export failed; will retry")
                }
            }
        }
        if !progressed {
            break;
        }
    }
    Ok(deleted)
}
