//! Object operations: PutObject, GetObject, HeadObject, DeleteObject(s), CopyObject.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use sync_wrapper::SyncStream;

use super::checksum::{Expected, VerifiedBody};
use super::conditions::Preconditions;
use super::convert::{
    content_headers, copy_source_of, etag, expires_out, metadata_in, metadata_out, put_request_of, range_request,
    retention_days_of, tags_of, tenant, timestamp, with_deadline,
};
use super::error::{core_call, to_s3_error};
use crate::backend::{BackendError, ByteStream};
use crate::core::error::CoreError;
use crate::core::service::{BlobService, CopySource as CoreCopySource, ObjectInfo, PartNumber, PutRequest};
use crate::core::tenant::Tenant;

/// The Content-Encoding to store: `aws-chunked` describes this request's framing (undone by s3s), not
/// the object, so S3 drops it (`gzip, aws-chunked` is stored as `gzip`).
fn stored_content_encoding(value: Option<String>) -> Option<String> {
    let value = value?;
    let kept: Vec<&str> =
        value.split(',').map(str::trim).filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked")).collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

fn if_none_match_any(cond: &Option<ETagCondition>) -> S3Result<bool> {
    match cond {
        None => Ok(false),
        Some(c) if c.is_any() => Ok(true),
        Some(_) => Err(s3_error!(NotImplemented, "If-None-Match on writes supports only '*'")),
    }
}

/// `If-None-Match` / `If-Match` on a CopyObject apply to the destination; s3s does not model them, so
/// they are read from the headers. `If-None-Match: *` (create only) is honoured; anything else is
/// refused rather than silently ignored, since a client relying on it would overwrite data.
fn copy_destination_if_none_match(headers: &http::HeaderMap) -> S3Result<bool> {
    if headers.contains_key(http::header::IF_MATCH) {
        return Err(s3_error!(NotImplemented, "If-Match on CopyObject is not supported"));
    }
    match headers.get(http::header::IF_NONE_MATCH) {
        None => Ok(false),
        Some(v) if v.as_bytes().trim_ascii() == b"*" => Ok(true),
        Some(_) => Err(s3_error!(NotImplemented, "If-None-Match on CopyObject supports only '*'")),
    }
}

/// 412 if `bucket/key` exists (sealed or not). The backend's own create-only copy stays the atomic
/// check; this one makes backends that ignore `If-None-Match` on a copy (moto) refuse the plain case.
async fn refuse_if_present(core: &BlobService, tenant: &Tenant, bucket: &str, key: &str) -> S3Result<()> {
    match core.head_object(tenant, bucket, key, None).await {
        Err(CoreError::Backend(BackendError::NoSuchKey)) => Ok(()),
        Ok(_) | Err(CoreError::NotSealed | CoreError::Integrity(_)) => {
            Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"))
        }
        Err(e) => Err(to_s3_error(e)),
    }
}

pub async fn put_object(core: &BlobService, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
    let tenant = tenant(&req)?;
    let i = &req.input;
    let checksums = [
        i.checksum_crc32.as_deref(),
        i.checksum_crc32c.as_deref(),
        i.checksum_crc64nvme.as_deref(),
        i.checksum_sha1.as_deref(),
        i.checksum_sha256.as_deref(),
    ];
    let expected = Expected::declared(i.content_md5.as_deref(), checksums, &req.headers)?;
    let retention_days = retention_days_of(&req.headers)?;
    let trailers = req.trailing_headers.clone();
    let decoded_len = super::checksum::decoded_content_length(&req.headers)?;
    let input = req.input;
    if input.if_match.is_some() {
        // Conditional overwrite needs an atomic compare-and-swap in the backend (`PutOptions` has only
        // create-only); a HEAD-then-PUT here would race, so refuse it rather than pretend.
        return Err(s3_error!(NotImplemented, "If-Match on PutObject is not supported"));
    }
    let tags = tags_of(input.tagging.as_deref())?;
    let create_only = if_none_match_any(&input.if_none_match)?;
    let len = input.content_length.or(decoded_len).ok_or_else(|| s3_error!(MissingContentLength))?;
    let len = u64::try_from(len).map_err(|_| s3_error!(InvalidArgument, "negative Content-Length"))?;
    let body = input
        .body
        .unwrap_or_else(|| StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>()));
    let (verified, verdict) = VerifiedBody::new(body, expected, trailers);
    let body: ByteStream = Box::pin(verified);
    let put = PutRequest {
        metadata: metadata_in(input.metadata),
        headers: content_headers(
            input.content_type,
            stored_content_encoding(input.content_encoding),
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.expires,
        ),
        if_none_match_any: create_only,
        tags,
        retention_days,
        content_md5: None,
    };
    match core.put_object(&tenant, &input.bucket, &input.key, body, len, put).await {
        Ok(out) => Ok(with_deadline(
            S3Response::new(PutObjectOutput {
                e_tag: Some(etag(&out.etag)),
                version_id: out.version_id,
                checksum_crc32: input.checksum_crc32,
                checksum_crc32c: input.checksum_crc32c,
                checksum_crc64nvme: input.checksum_crc64nvme,
                checksum_sha1: input.checksum_sha1,
                checksum_sha256: input.checksum_sha256,
                ..Default::default()
            }),
            out.delete_after.as_deref(),
        )),
        Err(e) => match verdict.mismatch() {
            Some(m) => Err(m.to_s3_error()),
            None => Err(to_s3_error(core.explain_missing_bucket(&tenant, &[&input.bucket], e).await)),
        },
    }
}

/// Response-header overrides (`response-content-type` etc.) from a GET/HEAD request.
struct Overrides {
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<Timestamp>,
}

macro_rules! preconditions_of {
    ($input:expr) => {
        Preconditions {
            if_match: $input.if_match.take(),
            if_none_match: $input.if_none_match.take(),
            if_modified_since: $input.if_modified_since.take(),
            if_unmodified_since: $input.if_unmodified_since.take(),
        }
    };
}

macro_rules! overrides_of {
    ($input:expr) => {
        Overrides {
            content_type: $input.response_content_type.clone(),
            content_encoding: $input.response_content_encoding.clone(),
            content_disposition: $input.response_content_disposition.clone(),
            content_language: $input.response_content_language.clone(),
            cache_control: $input.response_cache_control.clone(),
            expires: $input.response_expires.clone(),
        }
    };
}

/// Fills the fields GET and HEAD answers share (their output types differ in s3s, hence a macro):
/// validators, metadata and entity headers, with `response-*` overrides taking precedence.
macro_rules! object_output {
    ($ty:ident, $info:expr, $o:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let info: &ObjectInfo = $info;
        let o: Overrides = $o;
        let h = &info.headers;
        $ty {
            $($field: $value,)*
            accept_ranges: Some("bytes".to_owned()),
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(timestamp(info.last_modified)),
            metadata: metadata_out(&info.metadata),
            version_id: info.version_id.clone(),
            content_type: o.content_type.or_else(|| h.content_type.clone()),
            content_encoding: o.content_encoding.or_else(|| h.content_encoding.clone()),
            content_disposition: o.content_disposition.or_else(|| h.content_disposition.clone()),
            content_language: o.content_language.or_else(|| h.content_language.clone()),
            cache_control: o.cache_control.or_else(|| h.cache_control.clone()),
            expires: o.expires.or_else(|| expires_out(h.expires.as_ref())),
            ..Default::default()
        }
    }};
}

/// `?partNumber=`: 1..=10000, and not together with a Range header (S3 refuses both).
fn part_number_of(part: Option<i32>, has_range: bool) -> S3Result<Option<PartNumber>> {
    match part {
        None => Ok(None),
        Some(_) if has_range => {
            Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter"))
        }
        Some(n) => {
            u32::try_from(n).ok().filter(|n| (1..=10_000).contains(n)).map(|n| Some(PartNumber(n))).ok_or_else(|| {
                s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive")
            })
        }
    }
}

/// `x-amz-mp-parts-count`: the part count of a multipart object, when a part was asked for.
fn parts_count_of(info: &ObjectInfo, part: Option<PartNumber>) -> Option<i32> {
    part.and(info.parts_count).and_then(|n| i32::try_from(n).ok())
}

fn i64_of(n: u64) -> S3Result<i64> {
    i64::try_from(n).map_err(|_| s3_error!(InternalError, "size out of range"))
}

pub async fn get_object(core: &BlobService, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
    let tenant = tenant(&req)?;
    let mut input = req.input;
    let part = part_number_of(input.part_number, input.range.is_some())?;
    let overrides = overrides_of!(input);
    let preconditions = preconditions_of!(input);
    let range = input.range.map(range_request);
    let got = core_call!(
        core,
        &tenant,
        &[&input.bucket],
        core.get_object(&tenant, &input.bucket, &input.key, input.version_id.as_deref(), range, part)
    );
    let info = got.info;
    // Checked before any byte is sent; the backend body is dropped unread on a failure.
    preconditions.check(&info.etag, info.last_modified)?;
    let (content_length, content_range) = match &got.range {
        Some(r) => (r.end - r.start, Some(format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), info.size))),
        None => (info.size, None),
    };
    let body = StreamingBlob::wrap(SyncStream::new(got.body));
    let out = object_output!(GetObjectOutput, &info, overrides, {
        body: Some(body),
        content_length: Some(i64_of(content_length)?),
        content_range: content_range,
        parts_count: parts_count_of(&info, part),
    });
    Ok(with_deadline(S3Response::new(out), info.delete_after.as_deref()))
}

pub async fn head_object(
    core: &BlobService,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let tenant = tenant(&req)?;
    let mut input = req.input;
    let part = part_number_of(input.part_number, input.range.is_some())?;
    let overrides = overrides_of!(input);
    let preconditions = preconditions_of!(input);
    let version = input.version_id.as_deref();
    let (info, range) = match part {
        Some(n) => {
            let (info, range) = core_call!(
                core,
                &tenant,
                &[&input.bucket],
                core.head_part(&tenant, &input.bucket, &input.key, version, n)
            );
            (info, Some(range))
        }
        None => (
            core_call!(core, &tenant, &[&input.bucket], core.head_object(&tenant, &input.bucket, &input.key, version)),
            None,
        ),
    };
    preconditions.check(&info.etag, info.last_modified)?;
    let (content_length, content_range) = match (&range, info.parts_count) {
        (Some(r), Some(_)) => {
            (r.end - r.start, Some(format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), info.size)))
        }
        _ => (info.size, None),
    };
    let out = object_output!(HeadObjectOutput, &info, overrides, {
        content_length: Some(i64_of(content_length)?),
        content_range: content_range,
        parts_count: parts_count_of(&info, part),
    });
    Ok(with_deadline(S3Response::new(out), info.delete_after.as_deref()))
}

pub async fn delete_object(
    core: &BlobService,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let tenant = tenant(&req)?;
    let input = req.input;
    let out = core_call!(
        core,
        &tenant,
        &[&input.bucket],
        core.delete_object(&tenant, &input.bucket, &input.key, input.version_id.as_deref())
    );
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: out.delete_marker.then_some(true),
        version_id: out.version_id,
        ..Default::default()
    }))
}

/// S3 caps DeleteObjects at 1000 keys per request.
const MAX_DELETE_KEYS: usize = 1000;

pub async fn delete_objects(
    core: &BlobService,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let tenant = tenant(&req)?;
    let input = req.input;
    if input.delete.objects.len() > MAX_DELETE_KEYS {
        return Err(s3_error!(MalformedXML, "DeleteObjects accepts at most 1000 keys"));
    }
    // S3 answers a bucket the caller may not use, or one that does not exist, for the whole request
    // (403/404), not with one error per key: check it once, before the first delete.
    core_call!(core, &tenant, &[&input.bucket], core.head_bucket(&tenant, &input.bucket));
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for obj in input.delete.objects {
        match core.delete_object(&tenant, &input.bucket, &obj.key, obj.version_id.as_deref()).await {
            Ok(out) => {
                if !quiet {
                    deleted.push(DeletedObject {
                        key: Some(obj.key),
                        version_id: obj.version_id,
                        delete_marker: out.delete_marker.then_some(true),
                        delete_marker_version_id: if out.delete_marker { out.version_id } else { None },
                    });
                }
            }
            Err(e) => {
                let e = to_s3_error(e);
                errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    message: e.message().map(str::to_owned),
                    key: Some(obj.key),
                    version_id: obj.version_id,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: if errors.is_empty() { None } else { Some(errors) },
        ..Default::default()
    }))
}

pub async fn copy_object(
    core: &BlobService,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let tenant = tenant(&req)?;
    let mut input = req.input;
    let (src_bucket, src_key, src_version) = copy_source_of(&input.copy_source)?;
    let create_only = copy_destination_if_none_match(&req.headers)?;
    let source_conditions = Preconditions {
        if_match: input.copy_source_if_match.take(),
        if_none_match: input.copy_source_if_none_match.take(),
        if_modified_since: input.copy_source_if_modified_since.take(),
        if_unmodified_since: input.copy_source_if_unmodified_since.take(),
    };
    if input.tagging.as_deref().is_some_and(|t| !t.is_empty()) {
        return Err(s3_error!(NotImplemented, "Object tagging (x-amz-tagging) is not supported yet"));
    }
    let replace = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    if !replace && src_bucket == input.bucket && src_key == input.key && src_version.is_none() {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let retention_days = retention_days_of(&req.headers)?;
    let replacement = replace.then(|| put_request_of!(input, false, Default::default(), retention_days));
    let mut src_version = src_version;
    if !source_conditions.is_empty() {
        let info = core_call!(
            core,
            &tenant,
            &[&src_bucket],
            core.head_object(&tenant, &src_bucket, &src_key, src_version.as_deref())
        );
        source_conditions.check_copy_source(&info.etag, info.last_modified)?;
        // Copy exactly the version the conditions were checked against, where there are versions. On an
        // unversioned bucket an overwrite between this check and the copy can still slip in (S3 checks
        // atomically); the backend trait has no conditional copy to close that window.
        if src_version.is_none() {
            src_version = info.version_id.filter(|v| v != "null");
        }
    }
    if create_only {
        refuse_if_present(core, &tenant, &input.bucket, &input.key).await?;
    }
    let src = CoreCopySource { bucket: &src_bucket, key: &src_key, version_id: src_version.as_deref() };
    let out = core_call!(
        core,
        &tenant,
        &[&src_bucket, &input.bucket],
        core.copy_object(&tenant, src, &input.bucket, &input.key, replacement, create_only)
    );
    let delete_after = out.put.delete_after.clone();
    Ok(with_deadline(
        S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&out.put.etag)),
                last_modified: Some(timestamp(out.put.last_modified.unwrap_or_else(time::OffsetDateTime::now_utc))),
                ..Default::default()
            }),
            version_id: out.put.version_id,
            copy_source_version_id: out.source_version_id,
            ..Default::default()
        }),
        delete_after.as_deref(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_chunked_is_not_stored_as_a_content_encoding() {
        let enc = |v: &str| stored_content_encoding(Some(v.to_owned()));
        assert_eq!(enc("gzip, aws-chunked").as_deref(), Some("gzip"));
        assert_eq!(enc("aws-chunked"), None);
        assert_eq!(enc("AWS-Chunked,br").as_deref(), Some("br"));
        assert_eq!(enc("gzip").as_deref(), Some("gzip"));
        assert_eq!(stored_content_encoding(None), None);
    }

    #[test]
    fn copy_destination_conditions() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, http::HeaderValue::from_static(v));
            }
            h
        };
        assert!(!copy_destination_if_none_match(&headers(&[])).unwrap());
        assert!(copy_destination_if_none_match(&headers(&[("if-none-match", "*")])).unwrap());
        for refused in [[("if-none-match", "\"a-1\"")], [("if-match", "*")]] {
            let e = copy_destination_if_none_match(&headers(&refused)).unwrap_err();
            assert_eq!(e.code().as_str(), "NotImplemented");
        }
    }
}
