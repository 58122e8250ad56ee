//! Object operations: PutObject, GetObject, HeadObject, DeleteObject(s), CopyObject.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use sync_wrapper::SyncStream;

use super::checksum::{decode_content_md5, Algorithm, Expected, Mismatch, VerifiedBody};
use super::conditions::Preconditions;
use super::convert::{content_headers, etag, expires_out, metadata_in, metadata_out, range_request, tenant, timestamp};
use super::error::to_s3_error;
use crate::backend::ByteStream;
use crate::core::service::{BlobService, CopySource as CoreCopySource, ObjectInfo, PutRequest};

/// The digests a PutObject declares, from its headers (values) and `x-amz-trailer` (announced).
fn expected_digests(input: &PutObjectInput, headers: &http::HeaderMap) -> S3Result<Expected> {
    let md5 = match &input.content_md5 {
        Some(v) => Some(
            decode_content_md5(v)
                .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))?,
        ),
        None => None,
    };
    let mut given = Vec::new();
    let pairs = [
        (Algorithm::Crc32, &input.checksum_crc32),
        (Algorithm::Crc32c, &input.checksum_crc32c),
        (Algorithm::Crc64Nvme, &input.checksum_crc64nvme),
        (Algorithm::Sha1, &input.checksum_sha1),
        (Algorithm::Sha256, &input.checksum_sha256),
    ];
    for (alg, value) in pairs {
        if let Some(v) = value {
            given.push((alg, v.trim().to_owned()));
        }
    }
    let trailer = match headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
        Some(name) => Some(
            Algorithm::from_header(name)
                .ok_or_else(|| s3_error!(InvalidArgument, "Unsupported x-amz-trailer: {name}"))?,
        ),
        None => None,
    };
    Ok(Expected { md5, headers: given, trailer })
}

fn bad_digest(m: Mismatch) -> s3s::S3Error {
    match m {
        Mismatch::Md5 => s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."),
        Mismatch::Checksum(h) => s3_error!(BadDigest, "The {h} you specified did not match the calculated checksum."),
        Mismatch::MissingTrailer(h) => s3_error!(InvalidRequest, "The announced trailing checksum {h} was not sent."),
    }
}

fn if_none_match_any(cond: &Option<ETagCondition>) -> S3Result<bool> {
    match cond {
        None => Ok(false),
        Some(c) if c.is_any() => Ok(true),
        Some(_) => Err(s3_error!(NotImplemented, "If-None-Match on writes supports only '*'")),
    }
}

pub async fn put_object(core: &BlobService, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
    let tenant = tenant(&req)?;
    let expected = expected_digests(&req.input, &req.headers)?;
    let trailers = req.trailing_headers.clone();
    let input = req.input;
    if input.if_match.is_some() {
        return Err(s3_error!(NotImplemented, "If-Match on PutObject is not supported"));
    }
    // Refuse rather than silently drop tags the client expects to be stored.
    if input.tagging.as_deref().is_some_and(|t| !t.is_empty()) {
        return Err(s3_error!(NotImplemented, "Object tagging (x-amz-tagging) is not supported yet"));
    }
    let create_only = if_none_match_any(&input.if_none_match)?;
    let len = input.content_length.ok_or_else(|| s3_error!(MissingContentLength))?;
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
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.expires,
        ),
        if_none_match_any: create_only,
    };
    match core.put_object(&tenant, &input.bucket, &input.key, body, len, put).await {
        Ok(out) => Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&out.etag)),
            version_id: out.version_id,
            checksum_crc32: input.checksum_crc32,
            checksum_crc32c: input.checksum_crc32c,
            checksum_crc64nvme: input.checksum_crc64nvme,
            checksum_sha1: input.checksum_sha1,
            checksum_sha256: input.checksum_sha256,
            ..Default::default()
        })),
        Err(e) => Err(verdict.mismatch().map(bad_digest).unwrap_or_else(|| to_s3_error(e))),
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

fn i64_of(n: u64) -> S3Result<i64> {
    i64::try_from(n).map_err(|_| s3_error!(InternalError, "size out of range"))
}

pub async fn get_object(core: &BlobService, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
    let tenant = tenant(&req)?;
    let mut input = req.input;
    if input.part_number.is_some() {
        return Err(s3_error!(NotImplemented, "partNumber is not supported yet"));
    }
    let overrides = overrides_of!(input);
    let preconditions = preconditions_of!(input);
    let range = input.range.map(range_request);
    let got = core
        .get_object(&tenant, &input.bucket, &input.key, input.version_id.as_deref(), range)
        .await
        .map_err(to_s3_error)?;
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
    });
    Ok(S3Response::new(out))
}

pub async fn head_object(
    core: &BlobService,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let tenant = tenant(&req)?;
    let mut input = req.input;
    if input.part_number.is_some() {
        return Err(s3_error!(NotImplemented, "partNumber is not supported yet"));
    }
    let overrides = overrides_of!(input);
    let preconditions = preconditions_of!(input);
    let info =
        core.head_object(&tenant, &input.bucket, &input.key, input.version_id.as_deref()).await.map_err(to_s3_error)?;
    preconditions.check(&info.etag, info.last_modified)?;
    let out = object_output!(HeadObjectOutput, &info, overrides, { content_length: Some(i64_of(info.size)?) });
    Ok(S3Response::new(out))
}

pub async fn delete_object(
    core: &BlobService,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let tenant = tenant(&req)?;
    let input = req.input;
    let out = core
        .delete_object(&tenant, &input.bucket, &input.key, input.version_id.as_deref())
        .await
        .map_err(to_s3_error)?;
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
    let input = req.input;
    let (src_bucket, src_key, src_version) = match &input.copy_source {
        CopySource::Bucket { bucket, key, version_id } => {
            (bucket.to_string(), key.to_string(), version_id.as_deref().map(str::to_owned))
        }
        CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => {
            return Err(s3_error!(NotImplemented, "access point copy sources are not supported"))
        }
    };
    if input.copy_source_if_match.is_some()
        || input.copy_source_if_none_match.is_some()
        || input.copy_source_if_modified_since.is_some()
        || input.copy_source_if_unmodified_since.is_some()
    {
        return Err(s3_error!(NotImplemented, "conditional copy is not supported yet"));
    }
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
    let replacement = replace.then(|| PutRequest {
        metadata: metadata_in(input.metadata),
        headers: content_headers(
            input.content_type,
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.expires,
        ),
        if_none_match_any: false,
    });
    let src = CoreCopySource { bucket: &src_bucket, key: &src_key, version_id: src_version.as_deref() };
    let out =
        core.copy_object(&tenant, src, &input.bucket, &input.key, replacement, false).await.map_err(to_s3_error)?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&out.put.etag)),
            last_modified: Some(timestamp(out.put.last_modified.unwrap_or_else(time::OffsetDateTime::now_utc))),
            ..Default::default()
        }),
        version_id: out.put.version_id,
        copy_source_version_id: out.source_version_id,
        ..Default::default()
    }))
}
