//! The export handlers: create (validate, record, queue), get (with a presigned link when
//! completed), list, delete.

use aws_sdk_s3::presigning::PresigningConfig;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{upload, worker, Kind, Status};
use crate::queue::ExportMessage;
use crate::values::{FromRow, TextEnum};
use crate::web::list::{SortSpec, Source};
use crate::web::{ApiError, ApiResponse, ApiResult, ListParams, Principal, Query, Req, Role};
use crate::App;

const JOB_COLUMNS: &str =
    "j.id, j.kind, j.format, j.filters, j.status, j.rows_written, j.bytes_written, \
    j.parts_uploaded, j.object_key, j.error, j.created_at, j.started_at, j.completed_at";

crate::row_struct! {
    /// A job's own columns.
    #[derive(Debug, Serialize)]
    struct JobRow {
        id: Uuid,
        kind: Kind,
        format: String,
        status: Status,
        filters: Value,
        rows_written: i64,
        bytes_written: i64,
        parts_uploaded: i32,
        created_at: DateTime<Utc>,
        started_at: Option<DateTime<Utc>>,
        completed_at: Option<DateTime<Utc>>,
        error: Option<String>,
        #[serde(skip)]
        object_key: Option<String>,
    }
}

/// A job as the API shows it; the download link only for a completed job.
#[derive(Debug, Serialize)]
struct Job {
    #[serde(flatten)]
    row: JobRow,
    file_name: String,
    download_url: Option<String>,
    download_expires_at: Option<DateTime<Utc>>,
}

impl FromRow for Job {
    fn from_row(row: &Row) -> Result<Self, ApiError> {
        let row = JobRow::from_row(row)?;
        Ok(Job {
            file_name: worker::file_name(row.kind, row.created_at),
            row,
            download_url: None,
            download_expires_at: None,
        })
    }
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

/// A small export finishes in seconds; this is when a place is likely free again.
const EXPORT_RETRY_AFTER_SECS: u32 = 30;

pub async fn create(app: &App, req: Req) -> ApiResult {
    let body: CreateBody = req.json()?;
    let kind = Kind::from_text(body.kind.trim()).ok_or_else(|| {
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
    super::kinds::check_filter_types(&filters)?;
    let query = Query::from_json(&filters)?;
    kind.select(&query)?;

    let mut client = app.db.get().await?;
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
                return Err(ApiError::not_found(&format!("instance {id}"))
                    .with_field("filters.instance_id"));
            }
        }
    }
    // The count and the insert under one per-owner lock: two requests at once cannot both
    // take the last place.
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(7246002, hashtext($1))",
        &[&req.principal.subject],
    )
    .await?;
    let in_flight: i64 = tx
        .query_one(
            "SELECT count(*) FROM export_jobs WHERE requested_by = $1 AND status IN ('queued', 'running')",
            &[&req.principal.subject],
        )
        .await?
        .try_get(0)?;
    let max = app.config.max_exports_per_owner;
    if in_flight >= max {
        return Err(ApiError::too_many(
            format!(
                "at most {max} exports may be queued or running at once; wait for one to finish"
            ),
            EXPORT_RETRY_AFTER_SECS,
        ));
    }
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO export_jobs AS j (kind, filters, format, requested_by) VALUES ($1, $2, $3, $4) \
                 RETURNING {JOB_COLUMNS}"
            ),
            &[&kind.as_str(), &filters, &format, &req.principal.subject],
        )
        .await?;
    tx.commit().await?;
    let id: Uuid = row.try_get("id")?;
    if let Err(e) = app.queue.send_export(ExportMessage { export_id: id }).await {
        // Not queued means never run: leave no job behind that would wait forever.
        client
            .execute("DELETE FROM export_jobs WHERE id = $1", &[&id])
            .await?;
        let mut err = ApiError::unavailable("the export could not be queued; try again");
        err.internal = Some(format!("{e:#}").into());
        return Err(err);
    }
    Ok(ApiResponse::accepted(Job::from_row(&row)?).with_location("/exports", id))
}

/// Owners see their own exports; admins see all; anybody else gets 404 (not 403), so ids of
/// other people's exports are not confirmed.
fn visible(row: &Row, principal: &Principal) -> Result<bool, ApiError> {
    Ok(principal.role == Role::Admin
        || row.try_get::<_, &str>("requested_by")? == principal.subject)
}

async fn fetch_visible<C: deadpool_postgres::GenericClient>(
    client: &C,
    id: Uuid,
    principal: &Principal,
    for_update: bool,
) -> Result<Row, ApiError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = client
        .query_opt(
            &format!("SELECT {JOB_COLUMNS}, j.requested_by, j.upload_id FROM export_jobs j WHERE j.id = $1{lock}"),
            &[&id],
        )
        .await?;
    match row {
        Some(row) if visible(&row, principal)? => Ok(row),
        _ => Err(ApiError::not_found("export")),
    }
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
    let mut job = Job::from_row(&row)?;
    if let (Status::Completed, Some(key)) = (job.row.status, &job.row.object_key) {
        let (url, expires_at) = presign(app, key).await?;
        job.download_url = Some(url);
        job.download_expires_at = Some(expires_at);
    }
    Ok(ApiResponse::ok(job))
}

static SORTS: SortSpec = crate::sorts! {
    "j.seq";
    created_at desc "j.created_at" timestamptz
};

/// The caller's own recent exports, newest first; filters `status`, `kind`.
pub async fn list(app: &App, req: Req) -> ApiResult {
    let q = &req.query;
    let owner = Some(req.principal.subject.clone());
    let status = q.pick::<Status>("status")?.map(Status::as_str);
    let kind = q.pick::<Kind>("kind")?.map(Kind::as_str);
    let source = Source::new(JOB_COLUMNS, "export_jobs j");
    ListParams::filtered::<Job>(app, q, &SORTS, source, |sql| {
        sql.eq("j.requested_by", owner)
            .eq("j.status", status)
            .eq("j.kind", kind);
    })
    .await
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
    let key: Option<String> = row.try_get("object_key")?;
    let upload_id: Option<String> = row.try_get("upload_id")?;
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
