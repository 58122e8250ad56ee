//! Multipart upload and ranged GET as a real client does them (aws-sdk-s3), for the bench.
//!
//! Parts go up `concurrency` at a time, as transfer managers send them (the AWS CLI sends 10 at a
//! time in 8 MiB parts); each part is `UNSIGNED-PAYLOAD` with no CRC trailer, like [`crate::client::put`].

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use futures::{StreamExt as _, TryStreamExt as _};
use std::time::{Duration, Instant};

/// Part size of the AWS CLI and boto3 transfer manager (`multipart_chunksize`, 8 MiB).
pub const PART_SIZE: u64 = 8 * 1024 * 1024;

/// How a multipart upload is sent.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Object size in bytes.
    pub size: u64,
    /// Size of every part but the last.
    pub part_size: u64,
    /// Parts in flight at once (at least 1).
    pub concurrency: usize,
}

impl Plan {
    /// `(part number, offset, length)` of each part, numbered from 1 (S3 needs at least one part).
    pub fn parts(&self) -> Vec<(i32, u64, u64)> {
        let step = self.part_size.max(1);
        let count = self.size.div_ceil(step).max(1);
        (0..count)
            .map(|i| {
                let offset = i * step;
                (i as i32 + 1, offset, step.min(self.size - offset))
            })
            .collect()
    }
}

/// Uploads one object as a multipart upload: `body(offset, len)` makes each part's body. Returns
/// how long CompleteMultipartUpload took. On any failure the upload is aborted (best effort) so no
/// parts are left behind on the server.
pub async fn put_multipart<F>(c: &Client, bucket: &str, key: &str, plan: Plan, body: F) -> Result<Duration, String>
where
    F: Fn(u64, u64) -> ByteStream,
{
    let created = c
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("CreateMultipartUpload {bucket}/{key}: {}", describe(e)))?;
    let upload_id = created.upload_id().ok_or("CreateMultipartUpload returned no UploadId")?.to_owned();
    let result = upload_and_complete(c, bucket, key, &upload_id, plan, &body).await;
    if result.is_err() {
        // The result already says what went wrong; a failed abort only leaves garbage behind.
        let _ = c.abort_multipart_upload().bucket(bucket).key(key).upload_id(&upload_id).send().await;
    }
    result
}

async fn upload_and_complete<F>(
    c: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    plan: Plan,
    body: &F,
) -> Result<Duration, String>
where
    F: Fn(u64, u64) -> ByteStream,
{
    let mut done: Vec<CompletedPart> = futures::stream::iter(plan.parts())
        .map(|(number, offset, len)| async move {
            let len_i64 = i64::try_from(len).map_err(|e| e.to_string())?;
            let out = c
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(len_i64)
                .body(body(offset, len))
                .customize()
                .disable_payload_signing()
                .send()
                .await
                .map_err(|e| format!("UploadPart {number} of {bucket}/{key}: {}", describe(e)))?;
            let etag = out.e_tag().ok_or_else(|| format!("UploadPart {number} returned no ETag"))?;
            Ok::<_, String>(CompletedPart::builder().part_number(number).e_tag(etag).build())
        })
        .buffer_unordered(plan.concurrency.max(1))
        .try_collect()
        .await?;
    done.sort_by_key(|p| p.part_number());
    let t0 = Instant::now();
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
        .send()
        .await
        .map_err(|e| format!("CompleteMultipartUpload {bucket}/{key}: {}", describe(e)))?;
    Ok(t0.elapsed())
}

/// The S3 error code and message of a failed call, or the SDK's whole account of a failure that
/// never reached the server.
pub fn describe<E, R>(e: SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.code() {
        Some(code) => format!("{code}: {}", e.message().unwrap_or("(no message)")),
        None => DisplayErrorContext(e).to_string(),
    }
}

/// GETs `len` bytes at `offset` (`Range: bytes=offset-(offset+len-1)`) and drains them; returns
/// the bytes received and their CRC-32.
pub async fn get_range(c: &Client, bucket: &str, key: &str, offset: u64, len: u64) -> Result<(u64, u32), String> {
    let last = (offset + len).checked_sub(1).ok_or("empty range")?;
    let mut out = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(format!("bytes={offset}-{last}"))
        .send()
        .await
        .map_err(|e| format!("GET {bucket}/{key} range {offset}+{len}: {}", describe(e)))?;
    let mut n = 0u64;
    let mut hasher = crc32fast::Hasher::new();
    while let Some(chunk) = out.body.next().await {
        let chunk = chunk.map_err(|e| format!("GET {bucket}/{key} range body: {e}"))?;
        n += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((n, hasher.finalize()))
}
