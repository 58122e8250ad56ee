//! Listings: ListObjectsV2, ListObjects (v1) and ListObjectVersions. Sizes are plaintext sizes,
//! computed from stored sizes without a request per object.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::convert::{etag, maybe_encode, tenant, timestamp};
use super::error::to_s3_error;
use crate::backend::{ListOptions, ListVersionsOptions};
use crate::core::service::{BlobService, ObjectPage};
use crate::core::tenant::Tenant;

/// S3's default and maximum page size.
const MAX_KEYS: i32 = 1000;

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be non-negative")),
        Some(n) => Ok(n.min(MAX_KEYS) as usize),
    }
}

fn wants_url(e: &Option<EncodingType>) -> S3Result<bool> {
    match e.as_ref().map(EncodingType::as_str) {
        None => Ok(false),
        Some(EncodingType::URL) => Ok(true),
        Some(other) => Err(s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request: {other}")),
    }
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn contents(page: &ObjectPage, url: bool) -> Vec<Object> {
    page.objects
        .iter()
        .map(|o| Object {
            key: Some(maybe_encode(o.key.clone(), url)),
            size: Some(i64_of(o.size)),
            e_tag: Some(etag(&o.etag)),
            last_modified: Some(timestamp(o.last_modified)),
            storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
            ..Default::default()
        })
        .collect()
}

fn prefixes(list: &[String], url: bool) -> Vec<CommonPrefix> {
    list.iter().map(|p| CommonPrefix { prefix: Some(maybe_encode(p.clone(), url)) }).collect()
}

/// One page of objects; `max-keys=0` only checks the bucket exists, as S3 does.
async fn list_page(core: &BlobService, tenant: &Tenant, bucket: &str, opts: ListOptions) -> S3Result<ObjectPage> {
    if opts.max_keys == 0 {
        core.head_bucket(tenant, bucket).await.map_err(to_s3_error)?;
        return Ok(ObjectPage::default());
    }
    core.list_objects(tenant, bucket, opts).await.map_err(to_s3_error)
}

pub async fn list_objects_v2(
    core: &BlobService,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let tenant = tenant(&req)?;
    let input = req.input;
    let url = wants_url(&input.encoding_type)?;
    let limit = max_keys(input.max_keys)?;
    let opts = ListOptions {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
        start_after: input.start_after.clone(),
        continuation: input.continuation_token.clone(),
        max_keys: limit,
    };
    let page = list_page(core, &tenant, &input.bucket, opts).await?;
    let key_count = page.objects.len() + page.common_prefixes.len();
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(maybe_encode(input.prefix.unwrap_or_default(), url)),
        delimiter: input.delimiter.map(|d| maybe_encode(d, url)),
        max_keys: Some(limit as i32),
        key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
        continuation_token: input.continuation_token,
        start_after: input.start_after.map(|s| maybe_encode(s, url)),
        is_truncated: Some(page.is_truncated),
        next_continuation_token: if page.is_truncated { page.next_token.clone() } else { None },
        contents: Some(contents(&page, url)),
        common_prefixes: Some(prefixes(&page.common_prefixes, url)),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

pub async fn list_objects(
    core: &BlobService,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let tenant = tenant(&req)?;
    let input = req.input;
    let url = wants_url(&input.encoding_type)?;
    let limit = max_keys(input.max_keys)?;
    let opts = ListOptions {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
        start_after: input.marker.clone().filter(|m| !m.is_empty()),
        continuation: None,
        max_keys: limit,
    };
    let page = list_page(core, &tenant, &input.bucket, opts).await?;
    // v1 pages by marker: the greatest key or common prefix returned.
    let next_marker = if page.is_truncated {
        let last_key = page.objects.last().map(|o| o.key.clone());
        let last_prefix = page.common_prefixes.last().cloned();
        last_key.max(last_prefix).map(|m| maybe_encode(m, url))
    } else {
        None
    };
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(maybe_encode(input.prefix.unwrap_or_default(), url)),
        delimiter: input.delimiter.map(|d| maybe_encode(d, url)),
        marker: Some(maybe_encode(input.marker.unwrap_or_default(), url)),
        max_keys: Some(limit as i32),
        is_truncated: Some(page.is_truncated),
        next_marker,
        contents: Some(contents(&page, url)),
        common_prefixes: Some(prefixes(&page.common_prefixes, url)),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

pub async fn list_object_versions(
    core: &BlobService,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let tenant = tenant(&req)?;
    let input = req.input;
    let url = wants_url(&input.encoding_type)?;
    let limit = max_keys(input.max_keys)?;
    let opts = ListVersionsOptions {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
        key_marker: input.key_marker.clone().filter(|m| !m.is_empty()),
        version_id_marker: input.version_id_marker.clone().filter(|m| !m.is_empty()),
        max_keys: limit.max(1),
    };
    let listing = core.list_versions(&tenant, &input.bucket, opts).await.map_err(to_s3_error)?;
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    for v in listing.versions {
        let version_id = Some(v.version_id.unwrap_or_else(|| "null".to_owned()));
        let key = Some(maybe_encode(v.object.key, url));
        if v.is_delete_marker {
            markers.push(DeleteMarkerEntry {
                key,
                version_id,
                is_latest: Some(v.is_latest),
                last_modified: Some(timestamp(v.object.last_modified)),
                owner: None,
            });
        } else {
            versions.push(ObjectVersion {
                key,
                version_id,
                is_latest: Some(v.is_latest),
                last_modified: Some(timestamp(v.object.last_modified)),
                size: Some(i64_of(v.object.size)),
                e_tag: Some(etag(&v.object.etag)),
                storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                ..Default::default()
            });
        }
    }
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(maybe_encode(input.prefix.unwrap_or_default(), url)),
        delimiter: input.delimiter.map(|d| maybe_encode(d, url)),
        key_marker: Some(input.key_marker.unwrap_or_default()),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        max_keys: Some(limit as i32),
        is_truncated: Some(listing.is_truncated),
        next_key_marker: listing.next_key_marker.map(|m| maybe_encode(m, url)),
        next_version_id_marker: listing.next_version_id_marker,
        versions: Some(versions),
        delete_markers: Some(markers),
        common_prefixes: Some(prefixes(&listing.common_prefixes, url)),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}
