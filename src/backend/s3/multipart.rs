//! Multipart uploads on an S3-compatible service: the seven multipart operations of
//! [`Backend`](crate::backend::Backend), as free functions over the shared SDK client.
//!
//! Things checked here rather than left to the server, because servers differ (FACTS.md) and the
//! trait promises one behaviour: part numbers are `1..=MAX_PART_NUMBER`; a completion names parts in
//! strictly ascending order (`InvalidPartOrder`); a copied range is non-empty and at most
//! `MAX_PART_SIZE`; a part listing is filtered, sorted and cut to the page the caller asked for.
//!
//! Retries follow the client's config, except for `upload_part`, whose streamed body cannot be
//! replayed and is therefore sent exactly once (see `body::upload_body`).

use std::ops::Range;
use std::sync::atomic::Ordering;

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart as SdkCompletedPart};
use aws_sdk_s3::Client;

use super::blank_key::wire_key;
use super::body::{body_failed, upload_body};
use super::compat::RenameRoot;
use super::convert::{encode_copy_source, encode_tagging, etag, map_err, parse_expires, size, to_time, version};
use crate::backend::{
    BackendError, ByteStream, CompletedPart, ListPartsOptions, ListUploadsOptions, PartInfo, PartsPage, PutOptions,
    PutResult, Result, UploadInfo, UploadsPage, MAX_PART_NUMBER, MAX_PART_SIZE,
};

/// Largest page a listing asks for (S3's own cap).
const MAX_PAGE: usize = 1000;

/// CreateMultipartUpload with the object's metadata, content headers and tags, sent the way `put`
/// sends them. Returns the server's upload id.
pub(super) async fn create(client: &Client, bucket: &str, key: &str, opts: PutOptions) -> Result<String> {
    let h = opts.headers;
    let out = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(wire_key(key))
        .set_metadata(Some(opts.metadata.into_iter().collect()))
        .set_content_type(h.content_type)
        .set_content_encoding(h.content_encoding)
        .set_content_disposition(h.content_disposition)
        .set_content_language(h.content_language)
        .set_cache_control(h.cache_control)
        .set_expires(parse_expires(h.expires.as_deref())?)
        .set_tagging(encode_tagging(&opts.tags))
        .send()
        .await
        .map_err(|e| map_err(e, BackendError::NoSuchBucket))?;
    match out.upload_id() {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(BackendError::Other { backend: "s3", message: "CreateMultipartUpload returned no upload id".into() }),
    }
}

/// UploadPart streaming `len` bytes of `body` with an exact Content-Length. A body that fails or
/// has the wrong length aborts the request, so the server stores no part.
pub(super) async fn upload_part(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    part_number: u32,
    body: ByteStream,
    len: u64,
) -> Result<String> {
    let n = part_number_arg(part_number)?;
    if len > MAX_PART_SIZE {
        return Err(BackendError::InvalidRequest(format!("part of {len} bytes exceeds the {MAX_PART_SIZE} limit")));
    }
    let content_length = i64::try_from(len).map_err(|_| BackendError::InvalidRequest("part too large".into()))?;
    let (upload, failed) = upload_body(body, len);
    let out = client
        .upload_part()
        .bucket(bucket)
        .key(wire_key(key))
        .upload_id(upload_id)
        .part_number(n)
        .content_length(content_length)
        .body(upload)
        .send()
        .await;
    match out {
        // As in `put`: a broken body is the caller's stream failing, whatever the SDK reports.
        Err(_) if failed.load(Ordering::SeqCst) => Err(body_failed()),
        Err(e) => Err(map_err(e, BackendError::NoSuchUpload)),
        Ok(out) => Ok(etag(out.e_tag())),
    }
}

/// UploadPartCopy from `src_bucket/src_key` (current version), bytes `range` or the whole object.
#[allow(clippy::too_many_arguments)]
pub(super) async fn upload_part_copy(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    part_number: u32,
    src_bucket: &str,
    src_key: &str,
    range: Option<Range<u64>>,
) -> Result<String> {
    let n = part_number_arg(part_number)?;
    let copy_range = range.map(|r| copy_source_range(&r)).transpose()?;
    let out = client
        .upload_part_copy()
        .bucket(bucket)
        .key(wire_key(key))
        .upload_id(upload_id)
        .part_number(n)
        .copy_source(encode_copy_source(src_bucket, src_key, None))
        .set_copy_source_range(copy_range)
        .send()
        .await
        // An unknown upload comes with its NoSuchUpload code; a bare 404 is the missing source
        // (moto 5.2 answers a missing source key with an HTML 404 without an error code).
        .map_err(|e| map_err(e, BackendError::NoSuchKey))?;
    let tag = etag(out.copy_part_result().and_then(|r| r.e_tag()));
    if tag.is_empty() {
        return Err(BackendError::Other { backend: "s3", message: "UploadPartCopy returned no ETag".into() });
    }
    Ok(tag)
}

/// CompleteMultipartUpload from `parts`, with `If-None-Match: *` when `if_none_match_any`.
pub(super) async fn complete(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    parts: &[CompletedPart],
    if_none_match_any: bool,
) -> Result<PutResult> {
    check_part_order(parts)?;
    let mut sdk_parts = Vec::with_capacity(parts.len());
    for p in parts {
        // S3 documents the ETag in a completion as quoted; every server here accepts that form.
        let tag = format!("\"{}\"", p.etag.trim_matches('"'));
        sdk_parts.push(SdkCompletedPart::builder().part_number(part_number_arg(p.part_number)?).e_tag(tag).build());
    }
    let out = client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(wire_key(key))
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(sdk_parts)).build())
        .set_if_none_match(if_none_match_any.then(|| "*".to_owned()))
        .send()
        .await
        .map_err(|e| map_err(e, BackendError::NoSuchUpload))?;
    Ok(PutResult { etag: etag(out.e_tag()), version_id: version(out.version_id()), last_modified: None })
}

/// AbortMultipartUpload.
pub(super) async fn abort(client: &Client, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
    client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(wire_key(key))
        .upload_id(upload_id)
        .send()
        .await
        .map_err(|e| map_err(e, BackendError::NoSuchUpload))?;
    Ok(())
}

/// ListParts. The server's answer is filtered by the marker, sorted and cut to `max_parts` here,
/// for servers that ignore those parameters (s3s-fs 0.14 lists every part, unordered).
pub(super) async fn list_parts(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    opts: ListPartsOptions,
) -> Result<PartsPage> {
    let max_parts = opts.max_parts.clamp(1, MAX_PAGE);
    let out = client
        .list_parts()
        .bucket(bucket)
        .key(wire_key(key))
        .upload_id(upload_id)
        .set_part_number_marker(opts.part_number_marker.map(|m| m.to_string()))
        .max_parts(i32::try_from(max_parts).unwrap_or(1000))
        .customize()
        .interceptor(RenameRoot { from: "ListPartsResponse", to: "ListPartsResult" })
        .send()
        .await
        .map_err(|e| map_err(e, BackendError::NoSuchUpload))?;
    let after = opts.part_number_marker.unwrap_or(0);
    let mut parts: Vec<PartInfo> = out
        .parts()
        .iter()
        .filter_map(|p| {
            Some(PartInfo {
                part_number: u32::try_from(p.part_number()?).ok()?,
                size: size(p.size()),
                etag: etag(p.e_tag()),
                last_modified: to_time(p.last_modified()),
            })
        })
        .filter(|p| p.part_number > after)
        .collect();
    parts.sort_by_key(|p| p.part_number);
    let cut = parts.len() > max_parts;
    parts.truncate(max_parts);
    let is_truncated = cut || out.is_truncated().unwrap_or(false);
    let next_part_number_marker = match (is_truncated, cut) {
        (false, _) => None,
        (true, true) => parts.last().map(|p| p.part_number),
        (true, false) => {
            out.next_part_number_marker().and_then(|m| m.parse().ok()).or_else(|| parts.last().map(|p| p.part_number))
        }
    };
    Ok(PartsPage { parts, is_truncated, next_part_number_marker })
}

/// ListMultipartUploads. `NotSupported` on servers without it (s3s-fs answers NotImplemented).
pub(super) async fn list_uploads(client: &Client, bucket: &str, opts: ListUploadsOptions) -> Result<UploadsPage> {
    let max_uploads = opts.max_uploads.clamp(1, MAX_PAGE);
    let out = client
        .list_multipart_uploads()
        .bucket(bucket)
        .set_prefix(Some(opts.prefix).filter(|p| !p.is_empty()))
        .set_key_marker(opts.key_marker)
        .set_upload_id_marker(opts.upload_id_marker)
        .max_uploads(i32::try_from(max_uploads).unwrap_or(1000))
        .send()
        .await
        .map_err(|e| map_err(e, BackendError::NoSuchBucket))?;
    let uploads = out
        .uploads()
        .iter()
        .filter_map(|u| {
            Some(UploadInfo {
                key: u.key()?.to_owned(),
                upload_id: u.upload_id()?.to_owned(),
                initiated: to_time(u.initiated()),
            })
        })
        .collect();
    let is_truncated = out.is_truncated().unwrap_or(false);
    Ok(UploadsPage {
        uploads,
        is_truncated,
        next_key_marker: out.next_key_marker().filter(|m| is_truncated && !m.is_empty()).map(str::to_owned),
        next_upload_id_marker: out.next_upload_id_marker().filter(|m| is_truncated && !m.is_empty()).map(str::to_owned),
    })
}

/// A part number as the SDK wants it, refusing what S3 would refuse.
fn part_number_arg(n: u32) -> Result<i32> {
    if !(1..=MAX_PART_NUMBER).contains(&n) {
        return Err(BackendError::InvalidRequest(format!("part number {n} is not in 1..={MAX_PART_NUMBER}")));
    }
    i32::try_from(n).map_err(|_| BackendError::InvalidRequest(format!("part number {n} out of range")))
}

/// `x-amz-copy-source-range` for stored bytes `[start, end)`: `bytes=start-(end-1)`.
fn copy_source_range(r: &Range<u64>) -> Result<String> {
    if r.end <= r.start {
        return Err(BackendError::InvalidRange);
    }
    if r.end - r.start > MAX_PART_SIZE {
        return Err(BackendError::InvalidRequest(format!("copy range of {} bytes exceeds a part", r.end - r.start)));
    }
    Ok(format!("bytes={}-{}", r.start, r.end - 1))
}

/// A completion must name at least one part, in strictly ascending part-number order (S3's rule;
/// some servers do not check it, s3s-fs rejects any gap with a different error).
fn check_part_order(parts: &[CompletedPart]) -> Result<()> {
    if parts.is_empty() {
        return Err(BackendError::InvalidPart("a completion must name at least one part".into()));
    }
    if parts.windows(2).any(|w| matches!(w, [a, b] if a.part_number >= b.part_number)) {
        return Err(BackendError::InvalidPartOrder);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u32) -> CompletedPart {
        CompletedPart { part_number: n, etag: format!("e{n}") }
    }

    #[test]
    fn part_order_must_be_strictly_ascending() {
        assert!(check_part_order(&[part(1), part(2), part(5)]).is_ok());
        assert!(check_part_order(&[part(3)]).is_ok());
        assert!(matches!(check_part_order(&[part(2), part(1)]), Err(BackendError::InvalidPartOrder)));
        assert!(matches!(check_part_order(&[part(1), part(1)]), Err(BackendError::InvalidPartOrder)));
        assert!(matches!(check_part_order(&[]), Err(BackendError::InvalidPart(_))));
    }

    #[test]
    fn copy_range_is_inclusive_and_bounded() {
        assert_eq!(copy_source_range(&(0..1)).unwrap(), "bytes=0-0");
        assert_eq!(copy_source_range(&(10..20)).unwrap(), "bytes=10-19");
        assert!(matches!(copy_source_range(&(5..5)), Err(BackendError::InvalidRange)));
        assert!(matches!(copy_source_range(&(0..MAX_PART_SIZE + 1)), Err(BackendError::InvalidRequest(_))));
        assert!(copy_source_range(&(1..MAX_PART_SIZE + 1)).is_ok());
    }

    #[test]
    fn part_numbers_outside_s3s_range_are_refused() {
        assert_eq!(part_number_arg(1).unwrap(), 1);
        assert_eq!(part_number_arg(MAX_PART_NUMBER).unwrap(), 10_000);
        assert!(part_number_arg(0).is_err());
        assert!(part_number_arg(MAX_PART_NUMBER + 1).is_err());
    }
}
