//! One S3 multipart upload: parts are sent one at a time in the background while the next
//! part fills (so at most two parts are in memory), completed in order, or aborted.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::storage::Storage;

/// S3's limits: at most 10,000 parts, each at most 5 GiB.
pub const MAX_PARTS: i32 = 10_000;
const MAX_PART_BYTES: usize = 5 * 1024 * 1024 * 1024;
/// Parts per size step: the part size doubles every this many parts.
const PARTS_PER_STEP: i32 = 1_000;

/// The size of part `number` (1-based): the configured size for the first 1,000 parts, then
/// doubling every 1,000 parts, so 10,000 parts of a 5 MiB base already hold ~4.9 TiB (S3's
/// object limit is 5 TiB) while ordinary exports keep the configured size.
pub fn part_size(base: usize, number: i32) -> usize {
    let step = ((number.max(1) - 1) / PARTS_PER_STEP).min(20) as u32;
    base.saturating_mul(1usize << step).min(MAX_PART_BYTES)
}

/// A storage failure, with what the user can read and what goes to the log.
#[derive(Debug)]
pub struct StorageError {
    pub reason: String,
    pub detail: String,
}

fn storage_error<E>(what: &str, e: &aws_sdk_s3::error::SdkError<E>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let cause = match e.code() {
        Some(code) => format!("the storage service answered {code}"),
        None => "the storage service could not be reached".to_string(),
    };
    StorageError {
        reason: format!("{what} failed: {cause}; request the export again"),
        detail: format!("{}", DisplayErrorContext(e)),
    }
}

pub struct Upload {
    storage: Storage,
    pub key: String,
    pub upload_id: String,
    parts: Vec<CompletedPart>,
    in_flight: Option<JoinHandle<Result<CompletedPart, StorageError>>>,
}

impl Upload {
    pub async fn create(
        storage: &Storage,
        key: &str,
        file_name: &str,
    ) -> Result<Upload, StorageError> {
        let out = storage
            .client
            .create_multipart_upload()
            .bucket(&storage.bucket)
            .key(key)
            .content_type("text/csv; charset=utf-8")
            .content_disposition(format!("attachment; filename=\"{file_name}\""))
            .send()
            .await
            .map_err(|e| storage_error("starting the upload", &e))?;
        let upload_id = out.upload_id.ok_or_else(|| StorageError {
            reason: "starting the upload failed: the storage service returned no upload id; request the export again".into(),
            detail: "CreateMultipartUpload without UploadId".into(),
        })?;
        Ok(Upload {
            storage: storage.clone(),
            key: key.to_string(),
            upload_id,
            parts: Vec::new(),
            in_flight: None,
        })
    }

    /// Parts sent so far (including one still in flight).
    pub fn parts_started(&self) -> i32 {
        self.parts.len() as i32 + i32::from(self.in_flight.is_some())
    }

    /// Waits for the part in flight, if any; returns whether one finished.
    pub async fn wait(&mut self) -> Result<bool, StorageError> {
        let Some(handle) = self.in_flight.take() else {
            return Ok(false);
        };
        let part = handle.await.map_err(|e| StorageError {
            reason: "uploading a part failed unexpectedly; request the export again".into(),
            detail: format!("upload task: {e}"),
        })??;
        self.parts.push(part);
        Ok(true)
    }

    /// Starts uploading `body` as the next part in the background. Call [`Upload::wait`]
    /// first: one part in flight at a time.
    pub fn send(&mut self, body: Vec<u8>) -> Result<(), StorageError> {
        let number = self.parts_started() + 1;
        if number > MAX_PARTS {
            return Err(StorageError {
                reason: format!(
                    "the export is larger than storage allows ({MAX_PARTS} parts); narrow the filters"
                ),
                detail: "part limit reached".into(),
            });
        }
        let storage = self.storage.clone();
        let key = self.key.clone();
        let upload_id = self.upload_id.clone();
        let body = Bytes::from(body);
        self.in_flight = Some(tokio::spawn(async move {
            let out = storage
                .client
                .upload_part()
                .bucket(&storage.bucket)
                .key(&key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| storage_error(&format!("uploading part {number}"), &e))?;
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .set_checksum_crc32(out.checksum_crc32)
                .set_checksum_crc32_c(out.checksum_crc32_c)
                .set_checksum_crc64_nvme(out.checksum_crc64_nvme)
                .set_checksum_sha1(out.checksum_sha1)
                .set_checksum_sha256(out.checksum_sha256)
                .build())
        }));
        Ok(())
    }

    pub async fn complete(&mut self) -> Result<(), StorageError> {
        self.wait().await?;
        let parts = std::mem::take(&mut self.parts);
        self.storage
            .client
            .complete_multipart_upload()
            .bucket(&self.storage.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| storage_error("finishing the upload", &e))?;
        Ok(())
    }

    /// Stops the part in flight and aborts the upload, so no parts are left behind.
    pub async fn abort(mut self) -> Result<(), StorageError> {
        if let Some(handle) = self.in_flight.take() {
            handle.abort();
            let _ = handle.await;
        }
        abort(&self.storage, &self.key, &self.upload_id).await
    }
}

/// Aborts a multipart upload by id; one that no longer exists counts as aborted.
pub async fn abort(storage: &Storage, key: &str, upload_id: &str) -> Result<(), StorageError> {
    match storage
        .client
        .abort_multipart_upload()
        .bucket(&storage.bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("NoSuchUpload") => Ok(()),
        Err(e) => Err(storage_error("aborting the upload", &e)),
    }
}

/// Deletes an export object (deleting a missing one succeeds, as in S3).
pub async fn delete_object(storage: &Storage, key: &str) -> Result<(), StorageError> {
    storage
        .client
        .delete_object()
        .bucket(&storage.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| storage_error("deleting the export file", &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_so_ten_thousand_hold_s3s_largest_object() {
        let mib = 1024 * 1024;
        assert_eq!(part_size(8 * mib, 1), 8 * mib);
        assert_eq!(part_size(8 * mib, 1000), 8 * mib);
        assert_eq!(part_size(8 * mib, 1001), 16 * mib);
        assert_eq!(part_size(8 * mib, 10_000), 4096 * mib);
        let total: usize = (1..=MAX_PARTS).map(|n| part_size(5 * mib, n)).sum();
        assert!(total as f64 >= 4.8 * 1024f64.powi(4), "{total}");
        assert!(part_size(512 * mib, 10_000) <= MAX_PART_BYTES);
    }
}
