//! `export-worker`: streams one job's rows out of PostgreSQL (a row stream, never a result
//! set in memory) into CSV parts uploaded to S3 as they fill.
//!
//! Redelivery: a run claims its job by bumping `attempt` (queued, or running with an expired
//! lease); every later write of the run is fenced on that attempt, so two runs never both
//! finish one job, and a run that lost its claim aborts its own upload and stops.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use futures::{pin_mut, TryStreamExt};
use serde_json::Value;
use uuid::Uuid;

use super::cells::CsvBuffer;
use super::kinds::Kind;
use super::upload::{self, part_size, StorageError, Upload};
use crate::queue::ExportMessage;
use crate::web::sql::Sql;
use crate::web::Query;
use crate::App;

/// A run that has not renewed its lease (at every part) for this long is presumed dead.
pub const LEASE: &str = "5 minutes";

/// The claimed job, as a run sees it.
struct Claim {
    id: Uuid,
    attempt: i32,
    kind: Kind,
    filters: Value,
    file_name: String,
    /// What an earlier, crashed run left: its upload and object key.
    stale_upload: Option<(String, String)>,
}

/// Why a run stopped without completing.
enum Stop {
    /// The job is failed with `reason` (shown to the user); `detail` goes to the log.
    Failed { reason: String, detail: String },
    /// Another run owns the job now (or it was deleted): leave it alone.
    Lost,
}

impl From<StorageError> for Stop {
    fn from(e: StorageError) -> Self {
        Stop::Failed {
            reason: e.reason,
            detail: e.detail,
        }
    }
}

fn database_stop(what: &str, e: &tokio_postgres::Error) -> Stop {
    use tokio_postgres::error::SqlState;
    let reason = match e.as_db_error() {
        Some(db)
            if *db.code() == SqlState::ADMIN_SHUTDOWN || *db.code() == SqlState::QUERY_CANCELED =>
        {
            format!(
                "{what} was interrupted by the database ({}); request the export again",
                db.message()
            )
        }
        Some(db) => format!("{what} failed: {}", db.message()),
        None => {
            format!("{what} failed: the database connection was lost; request the export again")
        }
    };
    Stop::Failed {
        reason,
        detail: e.to_string(),
    }
}

/// `database_ledger_20261125T030000Z.csv`: kind-named, from the request time (UTC).
pub fn file_name(kind: Kind, created_at: DateTime<Utc>) -> String {
    format!(
        "{}_{}.csv",
        kind.as_str(),
        created_at.format("%Y%m%dT%H%M%SZ")
    )
}

/// Part buffers are a few MiB each and freed after every part. glibc's malloc raises its
/// mmap threshold after the first such free, so later buffers come from per-thread arenas and
/// stay resident: measured, the peak grew from 36 to 66 MiB between 100k and 1M rows. A fixed
/// threshold keeps every buffer of 1 MiB or more in its own mapping, returned on free, so the
/// peak stays flat (about two parts) whatever the row count.
fn return_part_buffers_to_the_os() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes an allocator tuning parameter; it is called once,
        // and M_MMAP_THRESHOLD with a positive size is a documented, valid request.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
        }
    });
}

pub async fn process(app: &App, message: &ExportMessage) -> anyhow::Result<()> {
    return_part_buffers_to_the_os();
    let control = app.db.get().await?;
    let Some(claim) = claim(&control, message.export_id).await? else {
        tracing::info!(export_id = %message.export_id, "export already finished, deleted or running elsewhere; nothing to do");
        return Ok(());
    };
    tracing::info!(export_id = %claim.id, attempt = claim.attempt, kind = claim.kind.as_str(), "export started");
    let outcome = match clean_stale(app, &control, &claim).await {
        Ok(()) => run(app, &control, &claim).await,
        Err(stop) => Err(stop),
    };
    match outcome {
        Ok(rows) => {
            tracing::info!(export_id = %claim.id, rows, "export completed");
            Ok(())
        }
        Err(Stop::Lost) => {
            tracing::warn!(export_id = %claim.id, attempt = claim.attempt, "export claimed by another run or deleted; this run stopped");
            Ok(())
        }
        Err(Stop::Failed { reason, detail }) => {
            // The claim's own connection gone too: the database went away (a restart), not
            // just this run's stream. The job goes back to the queue and the message is
            // redelivered; a cut stream alone fails the job with its reason.
            if control.simple_query("SELECT 1").await.is_err() {
                drop(control);
                tracing::warn!(export_id = %claim.id, detail = %detail, "export interrupted: the database went away; re-queued");
                settle(app, &claim, "queued", None).await?;
                anyhow::bail!(
                    "export {} interrupted by the database going away; redelivered",
                    claim.id
                );
            }
            tracing::warn!(export_id = %claim.id, reason = %reason, detail = %detail, "export failed");
            drop(control);
            settle(app, &claim, "failed", Some(&reason)).await
        }
    }
}

async fn claim<C: GenericClient>(client: &C, id: Uuid) -> anyhow::Result<Option<Claim>> {
    // `upload_id`/`object_key` are not reset here, so RETURNING hands back what a crashed run left.
    let row = client
        .query_opt(
            &format!(
                "UPDATE export_jobs SET status = 'running', attempt = attempt + 1, started_at = now(), \
                 heartbeat_at = now(), completed_at = NULL, error = NULL, rows_written = 0, \
                 bytes_written = 0, parts_uploaded = 0 \
                 WHERE id = $1 AND (status = 'queued' OR (status = 'running' \
                   AND (heartbeat_at IS NULL OR heartbeat_at < now() - interval '{LEASE}'))) \
                 RETURNING attempt, kind, filters, created_at, upload_id, object_key"
            ),
            &[&id],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let kind: Kind = row
        .try_get::<_, &str>("kind")?
        .parse()
        .map_err(anyhow::Error::msg)?;
    let upload_id: Option<String> = row.try_get("upload_id")?;
    let object_key: Option<String> = row.try_get("object_key")?;
    Ok(Some(Claim {
        id,
        attempt: row.try_get("attempt")?,
        kind,
        filters: row.try_get("filters")?,
        file_name: file_name(kind, row.try_get("created_at")?),
        stale_upload: upload_id.zip(object_key),
    }))
}

/// Ends this run's claim: `failed` with its reason, or back to `queued` (its lease released)
/// for a redelivery; written through a database outage, so the job never stays running on a
/// lease nobody renews.
async fn settle(
    app: &App,
    claim: &Claim,
    status: &str,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    through_outage(
        app,
        "UPDATE export_jobs SET status = $3, error = $4, \
            completed_at = CASE WHEN $3 = 'failed' THEN now() END, \
            heartbeat_at = CASE WHEN $3 = 'failed' THEN heartbeat_at END \
         WHERE id = $1 AND attempt = $2 AND status = 'running'",
        &[&claim.id, &claim.attempt, &status, &reason],
    )
    .await
}

/// Runs one statement on fresh pool connections, retried for about 30 s (1 + 2 + 4 + 8 +
/// 16 s): the database may be what failed, for the few seconds of a restart.
async fn through_outage(
    app: &App,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> anyhow::Result<()> {
    let mut waits = [1u64, 2, 4, 8, 16].into_iter();
    loop {
        let attempt = async {
            app.db.get().await?.execute(sql, params).await?;
            anyhow::Ok(())
        };
        match (attempt.await, waits.next()) {
            (Ok(()), _) => return Ok(()),
            (Err(e), Some(wait)) => {
                tracing::warn!(error = %format!("{e:#}"), wait, "the app database did not answer; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
            }
            (Err(e), None) => return Err(e),
        }
    }
}

/// Aborts the upload (and deletes any object) that a crashed earlier run left behind.
async fn clean_stale(
    app: &App,
    control: &deadpool_postgres::Client,
    claim: &Claim,
) -> Result<(), Stop> {
    let Some((upload_id, key)) = &claim.stale_upload else {
        return Ok(());
    };
    tracing::info!(export_id = %claim.id, upload_id = %upload_id, "aborting the upload of an earlier run");
    upload::abort(&app.storage, key, upload_id).await?;
    upload::delete_object(&app.storage, key).await?;
    fenced(
        control,
        "UPDATE export_jobs SET upload_id = NULL, object_key = NULL WHERE id = $1 AND attempt = $2 AND status = 'running'",
        claim,
    )
    .await
}

/// Runs a fenced update (`$1` id, `$2` attempt); no row means the claim was lost.
async fn fenced(control: &deadpool_postgres::Client, sql: &str, claim: &Claim) -> Result<(), Stop> {
    match control.execute(sql, &[&claim.id, &claim.attempt]).await {
        Ok(0) => Err(Stop::Lost),
        Ok(_) => Ok(()),
        Err(e) => Err(database_stop("recording progress", &e)),
    }
}

async fn run(app: &App, control: &deadpool_postgres::Client, claim: &Claim) -> Result<i64, Stop> {
    let query = Query::from_json(&claim.filters)
        .and_then(|q| claim.kind.select(&q))
        .map_err(|e| Stop::Failed {
            reason: format!("the export's filters are not valid: {}", e.message),
            detail: e.to_string(),
        })?;
    let reader = app.db.get().await.map_err(|e| Stop::Failed {
        reason: "the database is unavailable; request the export again".into(),
        detail: e.to_string(),
    })?;
    // The one statement that streams every row may outlast the pool's statement_timeout: it
    // runs without one, on a connection taken out of the pool (closed when done) so that no
    // connection without the limit goes back to it.
    let reader = deadpool_postgres::Object::take(reader);
    reader
        .batch_execute("SET statement_timeout = 0")
        .await
        .map_err(|e| database_stop("preparing the reader", &e))?;
    let key = format!("exports/{}/{}/{}", claim.id, claim.attempt, claim.file_name);
    let upload = Upload::create(&app.storage, &key, &claim.file_name).await?;
    // Recorded before any part, so whoever finds this job later can abort the upload.
    let recorded = control
        .execute(
            "UPDATE export_jobs SET upload_id = $3, object_key = $4, heartbeat_at = now() \
             WHERE id = $1 AND attempt = $2 AND status = 'running'",
            &[&claim.id, &claim.attempt, &upload.upload_id, &key],
        )
        .await;
    match recorded {
        Ok(1) => {}
        Ok(_) => {
            let _ = upload.abort().await;
            return Err(Stop::Lost);
        }
        Err(e) => {
            let stop = database_stop("recording the upload", &e);
            let _ = upload.abort().await;
            return Err(stop);
        }
    }
    let mut upload = upload;
    let finished = match stream(app, control, claim, &reader, &query, &mut upload).await {
        Ok(totals) => upload.complete().await.map(|()| totals).map_err(Stop::from),
        Err(stop) => Err(stop),
    };
    match finished {
        Ok(totals) => {
            let done = control
                .execute(
                    "UPDATE export_jobs SET status = 'completed', completed_at = now(), upload_id = NULL, \
                     rows_written = $3, bytes_written = $4, parts_uploaded = $5 \
                     WHERE id = $1 AND attempt = $2 AND status = 'running'",
                    &[&claim.id, &claim.attempt, &totals.rows, &totals.bytes, &totals.parts],
                )
                .await;
            match done {
                Ok(1) => Ok(totals.rows),
                // Lost the claim after finishing: the object is nobody's, remove it.
                Ok(_) => {
                    let _ = upload::delete_object(&app.storage, &key).await;
                    Err(Stop::Lost)
                }
                Err(e) => {
                    let _ = upload::delete_object(&app.storage, &key).await;
                    Err(database_stop("recording the finished export", &e))
                }
            }
        }
        Err(stop) => {
            if let Err(e) = upload.abort().await {
                // The job keeps its upload_id; maintenance aborts it later.
                tracing::warn!(export_id = %claim.id, detail = %e.detail, "aborting the upload failed");
                return Err(stop);
            }
            let forget = "UPDATE export_jobs SET upload_id = NULL WHERE id = $1 AND attempt = $2";
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
                [&claim.id, &claim.attempt];
            if control.execute(forget, &params).await.is_err() {
                // The database went away (the job will be re-queued): forget the aborted
                // upload once it is back, so the next run does not abort it again.
                let _ = through_outage(app, forget, &params).await;
            }
            Err(stop)
        }
    }
}

struct Totals {
    rows: i64,
    bytes: i64,
    parts: i32,
}

async fn stream(
    app: &App,
    control: &deadpool_postgres::Client,
    claim: &Claim,
    reader: &tokio_postgres::Client,
    query: &Sql,
    upload: &mut Upload,
) -> Result<Totals, Stop> {
    let base = app.config.export_part_size;
    let now = Utc::now();
    let mut target = part_size(base, 1);
    let mut csv = CsvBuffer::new(target + target / 64);
    let csv_failed = |e: csv::Error| Stop::Failed {
        reason: "writing the CSV failed; request the export again".into(),
        detail: e.to_string(),
    };
    csv.header(claim.kind.header()).map_err(csv_failed)?;

    let rows = reader
        .query_raw(&query.text, query.params())
        .await
        .map_err(|e| database_stop("reading the rows", &e))?;
    pin_mut!(rows);
    let mut written = Totals {
        rows: 0,
        bytes: 0,
        parts: 0,
    };
    let mut in_flight: Option<(i64, i64)> = None;
    loop {
        let row = rows
            .try_next()
            .await
            .map_err(|e| database_stop("reading the rows", &e))?;
        let Some(row) = row else { break };
        claim
            .kind
            .write_row(&row, &mut csv, now)
            .map_err(|e| Stop::Failed {
                reason: "a row could not be written to the CSV; report this export's id".into(),
                detail: e.to_string(),
            })?;
        written.rows += 1;
        // Cheap check first: the csv writer's own buffer lags by at most 8 KiB.
        if csv.approx_len() + 8192 >= target {
            let len = csv.flushed_len().map_err(|e| csv_failed(e.into()))?;
            if len >= target {
                let number = upload.parts_started() + 1;
                target = part_size(base, number + 1);
                let body = csv
                    .take(target + target / 64)
                    .map_err(|e| csv_failed(e.into()))?;
                finish_part(control, claim, upload, &mut written, in_flight.take()).await?;
                in_flight = Some((written.rows, body.len() as i64));
                upload.send(body)?;
            }
        }
    }
    // The rest (always at least the header when nothing was sent yet).
    let len = csv.flushed_len().map_err(|e| csv_failed(e.into()))?;
    if len > 0 || upload.parts_started() == 0 {
        let body = csv.take(0).map_err(|e| csv_failed(e.into()))?;
        finish_part(control, claim, upload, &mut written, in_flight.take()).await?;
        in_flight = Some((written.rows, body.len() as i64));
        upload.send(body)?;
    }
    finish_part(control, claim, upload, &mut written, in_flight.take()).await?;
    Ok(written)
}

/// Waits for the part in flight and saves progress (once per part, renewing the lease).
/// `sent`: (rows written when that part was cut, its size).
async fn finish_part(
    control: &deadpool_postgres::Client,
    claim: &Claim,
    upload: &mut Upload,
    written: &mut Totals,
    sent: Option<(i64, i64)>,
) -> Result<(), Stop> {
    let Some((rows, bytes)) = sent else {
        return Ok(());
    };
    upload.wait().await?;
    written.parts += 1;
    written.bytes += bytes;
    let saved = control
        .execute(
            "UPDATE export_jobs SET rows_written = $3, bytes_written = $4, parts_uploaded = $5, \
             heartbeat_at = now() WHERE id = $1 AND attempt = $2 AND status = 'running'",
            &[
                &claim.id,
                &claim.attempt,
                &rows,
                &written.bytes,
                &written.parts,
            ],
        )
        .await;
    match saved {
        Ok(1) => Ok(()),
        Ok(_) => Err(Stop::Lost),
        Err(e) => Err(database_stop("recording progress", &e)),
    }
}
