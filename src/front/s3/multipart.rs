//! Multipart operations: CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload,
//! AbortMultipartUpload, ListParts, ListMultipartUploads. Protocol shapes only; the core does the work.

use std::sync::Arc;

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::checksum::{Expected, VerifiedBody};
use super::conditions::Preconditions;
use super::convert::{
    copy_source_of, etag, maybe_encode, put_request_of, retention_days_of, tags_of, tenant, timestamp, with_deadline,
};
use super::error::{core_call, to_s3_error};
use crate::backend::ByteStream;
use crate::core::multipart::Completion;
use crate::core::service::{BlobService, RangeRequest};

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"))
}

/// Page sizes: S3's default and cap are 1000.
fn page_size(n: Option<i32>) -> usize {
    n.and_then(|n| usize::try_from(n).ok()).map_or(1000, |n| n.min(1000))
}

pub async fn create_multipart_upload(
    core: &BlobService,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let tenant = tenant(&req)?;
    let retention_days = retention_days_of(&req.headers)?;
    let input = req.input;
    let tags = tags_of(input.tagging.as_deref())?;
    let put = put_request_of!(input, false, tags, retention_days);
    let upload_id =
        core_call!(core, &tenant, &[&input.bucket], core.create_upload(&tenant, &input.bucket, &input.key, put));
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload_id),
        // Part checksums are verified on the way in (like PutObject); echoing the algorithm tells the
        // client its per-part checksums are accepted.
        checksum_algorithm: input.checksum_algorithm,
        checksum_type: input.checksum_type,
        ..Default::default()
    }))
}

pub async fn upload_part(
    core: &BlobService,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let tenant = tenant(&req)?;
    let i = &req.input;
    let expected = Expected::declared(
        i.content_md5.as_deref(),
        [
            i.checksum_crc32.as_deref(),
            i.checksum_crc32c.as_deref(),
            i.checksum_crc64nvme.as_deref(),
            i.checksum_sha1.as_deref(),
            i.checksum_sha256.as_deref(),
        ],
        &req.headers,
    )?;
    let trailers = req.trailing_headers.clone();
    let decoded_len = super::checksum::decoded_content_length(&req.headers)?;
    let input = req.input;
    let number = part_number(input.part_number)?;
    let len = input.content_length.or(decoded_len).ok_or_else(|| s3_error!(MissingContentLength))?;
    let len = u64::try_from(len).map_err(|_| s3_error!(InvalidArgument, "negative Content-Length"))?;
    let body = input
        .body
        .unwrap_or_else(|| StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>()));
    let (verified, verdict) = VerifiedBody::new(body, expected, trailers);
    let body: ByteStream = Box::pin(verified);
    match core.upload_part(&tenant, &input.bucket, &input.key, &input.upload_id, number, body, len).await {
        Ok(tag) => Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(etag(&tag)),
            checksum_crc32: input.checksum_crc32,
            checksum_crc32c: input.checksum_crc32c,
            checksum_crc64nvme: input.checksum_crc64nvme,
            checksum_sha1: input.checksum_sha1,
            checksum_sha256: input.checksum_sha256,
            ..Default::default()
        })),
        Err(e) => match verdict.mismatch() {
            Some(m) => Err(m.to_s3_error()),
            None => Err(to_s3_error(core.explain_missing_bucket(&tenant, &[&input.bucket], e).await)),
        },
    }
}

/// `x-amz-copy-source-range: bytes=first-last` (both required, inclusive).
fn copy_source_range(value: &str) -> S3Result<RangeRequest> {
    let bad = || s3_error!(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last");
    let (first, last) = value.trim().strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(bad)?;
    let first: u64 = first.trim().parse().map_err(|_| bad())?;
    let last: u64 = last.trim().parse().map_err(|_| bad())?;
    if first > last {
        return Err(bad());
    }
    Ok(RangeRequest::FromTo(first, last))
}

pub async fn upload_part_copy(
    core: &BlobService,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let tenant = tenant(&req)?;
    let mut input = req.input;
    let number = part_number(input.part_number)?;
    let (src_bucket, src_key, src_version) = copy_source_of(&input.copy_source)?;
    let range = input.copy_source_range.as_deref().map(copy_source_range).transpose()?;
    let conditions = Preconditions {
        if_match: input.copy_source_if_match.take(),
        if_none_match: input.copy_source_if_none_match.take(),
        if_modified_since: input.copy_source_if_modified_since.take(),
        if_unmodified_since: input.copy_source_if_unmodified_since.take(),
    };
    let got = core_call!(
        core,
        &tenant,
        &[&src_bucket],
        core.get_object(&tenant, &src_bucket, &src_key, src_version.as_deref(), range, None)
    );
    if let (Some(RangeRequest::FromTo(_, last)), Some(r)) = (range, &got.range) {
        // S3 refuses a copy range that runs past the source instead of clamping it.
        if last >= got.info.size || r.end - r.start != last + 1 - r.start {
            return Err(s3_error!(InvalidRange, "The x-amz-copy-source-range is outside the source object"));
        }
    }
    conditions.check_copy_source(&got.info.etag, got.info.last_modified)?;
    let len = got.range.as_ref().map_or(got.info.size, |r| r.end - r.start);
    let tag = core_call!(
        core,
        &tenant,
        &[&input.bucket],
        core.upload_part(&tenant, &input.bucket, &input.key, &input.upload_id, number, got.body, len)
    );
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&tag)),
            last_modified: Some(timestamp(time::OffsetDateTime::now_utc())),
            ..Default::default()
        }),
        copy_source_version_id: got.info.version_id,
        ..Default::default()
    }))
}

/// Objects above this size complete with S3's keep-alive response: the final server-side copy takes
/// time proportional to the size, longer than a client's read timeout for large objects. (The
/// 200 MiB AWS CLI test goes through this path, the 100 MiB boto3 one through the plain one.)
const KEEP_ALIVE_ABOVE: u64 = 128 * 1024 * 1024;

pub async fn complete_multipart_upload(
    core: &Arc<BlobService>,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let tenant = tenant(&req)?;
    let input = req.input;
    if input.if_match.is_some() {
        return Err(s3_error!(NotImplemented, "If-Match on CompleteMultipartUpload is not supported"));
    }
    let create_only = match &input.if_none_match {
        None => false,
        Some(c) if c.is_any() => true,
        Some(_) => return Err(s3_error!(NotImplemented, "If-None-Match on writes supports only '*'")),
    };
    let parts = input.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
    let mut named = Vec::with_capacity(parts.len());
    for p in parts {
        let (Some(n), Some(tag)) = (p.part_number, p.e_tag) else {
            return Err(s3_error!(MalformedXML, "Every part needs a PartNumber and an ETag"));
        };
        let n = u32::try_from(n).map_err(|_| s3_error!(InvalidPart, "Part number out of range"))?;
        named.push((n, tag.value().to_owned()));
    }
    if named.is_empty() {
        return Err(s3_error!(MalformedXML, "You must specify at least one part"));
    }
    let (bucket, key) = (input.bucket, input.key);
    // Refusals (bad parts, 412) are answered now, with their real status.
    let prepared = match core_call!(
        core,
        &tenant,
        &[&bucket],
        core.prepare_completion(&tenant, &bucket, &key, &input.upload_id, &named, create_only)
    ) {
        Completion::Pending(prepared) => *prepared,
        Completion::AlreadyDone(out) => {
            return Ok(S3Response::new(CompleteMultipartUploadOutput {
                location: Some(format!("/{bucket}/{key}")),
                e_tag: Some(etag(&out.etag)),
                version_id: out.version_id,
                bucket: Some(bucket),
                key: Some(key),
                ..Default::default()
            }))
        }
    };
    let output = |out: crate::core::service::PutOutcome, bucket: String, key: String| CompleteMultipartUploadOutput {
        location: Some(format!("/{bucket}/{key}")),
        bucket: Some(bucket),
        key: Some(key),
        e_tag: Some(etag(&out.etag)),
        version_id: out.version_id,
        ..Default::default()
    };
    if prepared.stored_len() <= KEEP_ALIVE_ABOVE {
        let out = core.finish_completion(&tenant, &bucket, &key, prepared).await.map_err(to_s3_error)?;
        let delete_after = out.delete_after.clone();
        return Ok(with_deadline(S3Response::new(output(out, bucket, key)), delete_after.as_deref()));
    }
    // 200 now, whitespace while the copy runs, then the result (or an error document, as S3 does).
    let core = Arc::clone(core);
    let future = async move {
        let out = core.finish_completion(&tenant, &bucket, &key, prepared).await.map_err(to_s3_error)?;
        Ok(output(out, bucket, key))
    };
    Ok(S3Response::new(CompleteMultipartUploadOutput { future: Some(Box::pin(future)), ..Default::default() }))
}

pub async fn abort_multipart_upload(
    core: &BlobService,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let tenant = tenant(&req)?;
    let i = &req.input;
    core_call!(core, &tenant, &[&i.bucket], core.abort_upload(&tenant, &i.bucket, &i.key, &i.upload_id));
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub async fn list_parts(core: &BlobService, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
    let tenant = tenant(&req)?;
    let input = req.input;
    let marker = input.part_number_marker.and_then(|m| u32::try_from(m).ok()).filter(|m| *m > 0);
    let max = page_size(input.max_parts);
    let listing = core_call!(
        core,
        &tenant,
        &[&input.bucket],
        core.list_parts(&tenant, &input.bucket, &input.key, &input.upload_id, marker, max)
    );
    let parts = listing
        .parts
        .into_iter()
        .map(|p| Part {
            part_number: i32::try_from(p.part_number).ok(),
            size: i64::try_from(p.size).ok(),
            e_tag: Some(etag(&p.etag)),
            last_modified: Some(timestamp(p.last_modified)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        parts: Some(parts),
        is_truncated: Some(listing.is_truncated),
        next_part_number_marker: listing.next_part_number_marker.and_then(|m| i32::try_from(m).ok()),
        part_number_marker: input.part_number_marker,
        max_parts: i32::try_from(max).ok(),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        ..Default::default()
    }))
}

pub async fn list_multipart_uploads(
    core: &BlobService,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let tenant = tenant(&req)?;
    let input = req.input;
    let encode = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
    let prefix = input.prefix.clone().unwrap_or_default();
    let max = page_size(input.max_uploads);
    let listing = core_call!(
        core,
        &tenant,
        &[&input.bucket],
        core.list_uploads(
            &tenant,
            &input.bucket,
            &prefix,
            input.key_marker.as_deref().filter(|m| !m.is_empty()),
            input.upload_id_marker.as_deref().filter(|m| !m.is_empty()),
            max,
        )
    );
    // Group keys under the delimiter like ListObjects does (on this page's uploads).
    let mut uploads = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    for u in listing.uploads {
        let rest = u.key.get(prefix.len()..).unwrap_or_default();
        if let Some(d) = input.delimiter.as_deref().filter(|d| !d.is_empty()) {
            if let Some(pos) = rest.find(d) {
                let cp = format!("{prefix}{}", &rest[..pos + d.len()]);
                if prefixes.last() != Some(&cp) && !prefixes.contains(&cp) {
                    prefixes.push(cp);
                }
                continue;
            }
        }
        uploads.push(MultipartUpload {
            key: Some(maybe_encode(u.key, encode)),
            upload_id: Some(u.upload_id),
            initiated: Some(timestamp(u.initiated)),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        });
    }
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix.map(|p| maybe_encode(p, encode)),
        delimiter: input.delimiter,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        max_uploads: i32::try_from(max).ok(),
        is_truncated: Some(listing.is_truncated),
        next_key_marker: listing.next_key_marker.map(|k| maybe_encode(k, encode)),
        next_upload_id_marker: listing.next_upload_id_marker,
        uploads: Some(uploads),
        common_prefixes: Some(
            prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(maybe_encode(p, encode)) }).collect(),
        ),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}
