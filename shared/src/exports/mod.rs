//! Exports: CSV streamed from PostgreSQL into S3 multipart uploads, handed out as presigned
//! links (functions `api-exports`, `export-worker`). The API never returns the file inline:
//! it records a job, queues it, and presigns a link when the job is completed.

pub mod cells;
pub mod kinds;
pub mod upload;
pub mod worker;

use aws_sdk_s3::presigning::PresigningConfig;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::queue::ExportMessage;
use crate::web::list::{Order, SortField, SortSpec};
use crate::web::{ApiError, ApiResponse, ApiResult, ListParams, Principal, Query, Req, Role};
use crate::App;
pub use kinds::Kind;
pub use worker::process;

/// Export objects and their jobs are kept this long (the S3 lifecycle rule says the same).
pub const RETENTION_DAYS: i32 = 7;

const JOB_COLUMNS: &str =
    "j.id, j.kind, j.format, j.filters, j.status, j.rows_written, j.bytes_written, \
    j.parts_uploaded, j.object_key, j.error, j.created_at, j.started_at, j.completed_at";

/// A job as the API shows it; `download` only for a completed job, presigned by the caller.
fn job_json(row: &Row, download: Option<(String, DateTime<Utc>)>) -> Value {
    let kind: String = row.get("kind");
    let created_at: DateTime<Utc> = row.get("created_at");
    let (url, expires) = match download {
        Some((u, e)) => (Some(u), Some(e)),
        None => (None, None),
    };
    json!({
        "id": row.get::<_, Uuid>("id"),
        "kind": kind,
        "format": row.get::<_, String>("format"),
        "status": row.get::<_, String>("status"),
        "filters": row.get::<_, Value>("filters"),
        "file_name": Kind::parse(&kind).map(|k| worker::file_name(k, created_at)),
        "rows_written": row.get::<_, i64>("rows_written"),
        "bytes_written": row.get::<_, i64>("bytes_written"),
        "parts_uploaded": row.get::<_, i32>("parts_uploaded"),
        "created_at": created_at,
        "started_at": row.get::<_, Option<DateTime<Utc>>>("started_at"),
        "completed_at": row.get::<_, Option<DateTime<Utc>>>("completed_at"),
        "error": row.get::<_, Option<String>>("error"),
        "download_url": url,
        "download_expires_at": expires,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    kind: String,
    #[serde(default)]
    filters: Option<Value>,
    #[serde(default)]
    format: Option<String>,
}

pub async fn create(app: &App, req: Req) -> ApiResult {
    let body: CreateBody = req.json()?;
    let kind = Kind::parse(body.kind.trim()).ok_or_else(|| {
        ApiError::validation(
            "kind",
            format!("kind must be one of: {}", Kind::ALL.join(", ")),
        )
    })?;
    let format = body.format.as_deref().unwrap_or("csv");
    if format != "csv" {
        return Err(ApiError::validation("format", "format must be csv"));
    }
    let filters = match body.filters {
        None | Some(Value::Null) => json!({}),
        Some(f) => f,
    };
    // The list's own validation, now: bad filters are a 400 here, not a failed job later.
    let query = Query::from_json(&filters)?;
    kind.select(&query)?;

    let client = app.db.get().await?;
    if kind == Kind::DatabaseSizes {
        if let Some(id) = query.int("instance_id")? {
            let exists = client
                .query_opt(
                    "SELECT 1 FROM instances WHERE id = $1 AND deleted_at IS NULL",
                    &[&id],
                )
                .await?
                .is_some();
            if !exists {
                return Err(ApiError::validation(
                    "filters.instance_id",
                    format!("instance {id} does not exist"),
                ));
            }
        }
    }
    let row = client
        .query_one(
            &format!(
                "INSERT INTO export_jobs AS j (kind, filters, format, requested_by) VALUES ($1, $2, $3, $4) \
                 RETURNING {JOB_COLUMNS}"
            ),
            &[&kind.as_str(), &filters, &format, &req.principal.subject],
        )
        .await?;
    let id: Uuid = row.get("id");
    if let Err(e) = app.queue.send_export(ExportMessage { export_id: id }).await {
        // Not queued means never run: leave no job behind that would wait forever.
        client
            .execute("DELETE FROM export_jobs WHERE id = $1", &[&id])
            .await?;
        let mut err = ApiError::unavailable("the export could not be queued; try again");
        err.internal = Some(format!("{e:#}").into());
        return Err(err);
    }
    Ok(ApiResponse::accepted(job_json(&row, None))
        .with_header(http::header::LOCATION, &format!("/api/v1/exports/{id}")))
}

/// Owners see their own exports; admins see all; anybody else gets 404 (not 403), so ids of
/// other people's exports are not confirmed.
fn visible(row: &Row, principal: &Principal) -> bool {
    principal.role == Role::Admin || row.get::<_, String>("requested_by") == principal.subject
}

async fn fetch_visible<C: deadpool_postgres::GenericClient>(
    client: &C,
    id: Uuid,
    principal: &Principal,
    for_update: bool,
) -> Result<Row, ApiError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    client
        .query_opt(
            &format!("SELECT {JOB_COLUMNS}, j.requested_by, j.upload_id FROM export_jobs j WHERE j.id = $1{lock}"),
            &[&id],
        )
        .await?
        .filter(|row| visible(row, principal))
        .ok_or_else(|| ApiError::not_found("export"))
}

/// A link to the object valid for `presign_expiry` from now; never stored.
async fn presign(app: &App, key: &str) -> Result<(String, DateTime<Utc>), ApiError> {
    let expiry = app.config.presign_expiry;
    let config = PresigningConfig::expires_in(expiry).map_err(ApiError::internal)?;
    let request = app
        .storage
        .client
        .get_object()
        .bucket(&app.storage.bucket)
        .key(key)
        .presigned(config)
        .await
        .map_err(|e| ApiError::internal(aws_sdk_s3::error::DisplayErrorContext(e)))?;
    let expires_at = Utc::now() + chrono::Duration::from_std(expiry).map_err(ApiError::internal)?;
    Ok((request.uri().to_string(), expires_at))
}

pub async fn get(app: &App, req: Req) -> ApiResult {
    let id = req.uuid("id", "export")?;
    let client = app.db.get().await?;
    let row = fetch_visible(&client, id, &req.principal, false).await?;
    let status: String = row.get("status");
    let key: Option<String> = row.get("object_key");
    let download = match (status.as_str(), key) {
        ("completed", Some(key)) => Some(presign(app, &key).await?),
        _ => None,
    };
    Ok(ApiResponse::ok(job_json(&row, download)))
}

static SORTS: SortSpec = SortSpec {
    fields: &[SortField {
        name: "created_at",
        expr: "j.created_at",
        sql_type: "timestamptz",
        default_order: Order::Desc,
    }],
    id_expr: "j.seq",
};

/// The caller's own recent exports, newest first; filters `status`, `kind`.
pub async fn list(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let params = ListParams::parse(q, &SORTS)?;
    let mut sql = crate::web::sql::Sql::default();
    let mut conds = vec![format!(
        "j.requested_by = {}",
        sql.bind(req.principal.subject.clone())
    )];
    if let Some(s) = q.one_of("status", &["queued", "running", "completed", "failed"])? {
        conds.push(format!("j.status = {}", sql.bind(s.to_string())));
    }
    if let Some(k) = q.one_of("kind", &Kind::ALL)? {
        conds.push(format!("j.kind = {}", sql.bind(k.to_string())));
    }
    let client = app.db.get().await?;
    let total = if params.include_total {
        let mut count = crate::web::sql::Sql::default();
        std::mem::swap(&mut count, &mut sql);
        count.text = "SELECT count(*) FROM export_jobs j".into();
        count.push_where(&conds);
        let n: i64 = client.query_one(&count.text, &count.params()).await?.get(0);
        std::mem::swap(&mut count, &mut sql);
        Some(n)
    } else {
        None
    };
    params.keyset_condition(&mut sql, &mut conds);
    sql.text = format!(
        "SELECT {JOB_COLUMNS}, {} FROM export_jobs j",
        params.key_select()
    );
    sql.push_where(&conds);
    sql.push(&params.order_and_limit());
    let rows = client.query(&sql.text, &sql.params()).await?;
    Ok(ApiResponse::ok(
        params.finish(rows, total, |r| job_json(r, None)),
    ))
}

/// Deletes the export's object (or aborts its upload) and then the job. If storage refuses,
/// nothing is deleted (503) and the call can be repeated.
pub async fn delete(app: &App, req: Req) -> ApiResult {
    let id = req.uuid("id", "export")?;
    let mut client = app.db.get().await?;
    let tx = client.transaction().await?;
    let row = fetch_visible(&tx, id, &req.principal, true).await?;
    let unavailable = |e: upload::StorageError| {
        let mut err = ApiError::unavailable("the export file could not be deleted; try again");
        err.internal = Some(e.detail.into());
        err
    };
    let key: Option<String> = row.get("object_key");
    let upload_id: Option<String> = row.get("upload_id");
    if let Some(key) = &key {
        if let Some(upload_id) = &upload_id {
            upload::abort(&app.storage, key, upload_id)
                .await
                .map_err(unavailable)?;
        }
        upload::delete_object(&app.storage, key)
            .await
            .map_err(unavailable)?;
    }
    tx.execute("DELETE FROM export_jobs WHERE id = $1", &[&id])
        .await?;
    tx.commit().await?;
    Ok(ApiResponse::ok(json!({"id": id, "deleted": true})))
}

/// Maintenance: deletes exports older than [`RETENTION_DAYS`] (object, then job), fails jobs
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
        let (id, key, upload_id): (Uuid, String, String) = (row.get(0), row.get(1), row.get(2));
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
                &[&RETENTION_DAYS],
            )
            .await?;
        if old.is_empty() {
            break;
        }
        let mut progressed = false;
        for row in &old {
            let id: Uuid = row.get(0);
            let key: Option<String> = row.get(1);
            let upload_id: Option<String> = row.get(2);
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
