//! Listings: ListObjectsV2, ListObjects (v1) and ListObjectVersions. Sizes are plaintext sizes,
//! computed from stored sizes without a request per object.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::convert::{etag, maybe_encode, tenant, timestamp};
use super::error::core_call;
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

/// The owner S3 reports for a tenant's objects: the tenant (blobseal has no other principal).
fn owner_of(tenant: &Tenant) -> Owner {
    Owner { display_name: Some(tenant.name.clone()), id: Some(tenant.name.clone()) }
}

fn contents(page: &ObjectPage, url: bool, owner: Option<&Owner>) -> Vec<Object> {
    page.objects
        .iter()
        .map(|o| Object {
            key: Some(maybe_encode(o.key.clone(), url)),
            size: Some(i64_of(o.size)),
            e_tag: Some(etag(&o.etag)),
            last_modified: Some(timestamp(o.last_modified)),
            storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
            owner: owner.cloned(),
            ..Default::default()
        })
        .collect()
}

/// A request's delimiter; an empty one means none (S3 then leaves `Delimiter` out of the answer).
fn delimiter_of(d: Option<String>) -> Option<String> {
    d.filter(|d| !d.is_empty())
}

/// Where a v1 listing resumes after `marker`. S3 returns each common prefix once, so a marker that
/// is itself a common prefix (as `NextMarker` is when a page ends on one) skips every key under it;
/// the backend lists keys strictly after `start_after`, so that is the greatest key under the prefix.
fn v1_start_after(marker: String, prefix: &str, delimiter: Option<&str>) -> String {
    let is_common_prefix = delimiter.is_some_and(|d| {
        marker.strip_prefix(prefix).and_then(|rest| rest.find(d).map(|at| at + d.len() == rest.len())) == Some(true)
    });
    if !is_common_prefix {
        return marker;
    }
    // Keys are at most 1024 bytes of UTF-8 and compare bytewise, so no key under the prefix sorts
    // after the prefix padded to that length with the greatest code point (4 bytes each).
    let mut out = marker;
    while out.len() + char::MAX.len_utf8() <= MAX_KEY_BYTES {
        out.push(char::MAX);
    }
    out
}

/// S3's longest key, in bytes.
const MAX_KEY_BYTES: usize = 1024;

fn prefixes(list: &[String], url: bool) -> Vec<CommonPrefix> {
    list.iter().map(|p| CommonPrefix { prefix: Some(maybe_encode(p.clone(), url)) }).collect()
}

/// One page of objects; `max-keys=0` only checks the bucket exists, as S3 does.
async fn list_page(core: &BlobService, tenant: &Tenant, bucket: &str, opts: ListOptions) -> S3Result<ObjectPage> {
    if opts.max_keys == 0 {
        core_call!(core, tenant, &[bucket], core.head_bucket(tenant, bucket));
        return Ok(ObjectPage::default());
    }
    Ok(core_call!(core, tenant, &[bucket], core.list_objects(tenant, bucket, opts)))
}

pub async fn list_objects_v2(
    core: &BlobService,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let tenant = tenant(&req)?;
    let input = req.input;
    let url = wants_url(&input.encoding_type)?;
    let limit = max_keys(input.max_keys)?;
    let delimiter = delimiter_of(input.delimiter);
    let opts = ListOptions {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: delimiter.clone(),
        start_after: input.start_after.clone(),
        // An empty token (as s3-tests sends) means none; it is still echoed back as given.
        continuation: input.continuation_token.clone().filter(|t| !t.is_empty()),
        max_keys: limit,
    };
    let page = list_page(core, &tenant, &input.bucket, opts).await?;
    // v2 reports owners only when asked (`fetch-owner=true`).
    let owner = input.fetch_owner.unwrap_or(false).then(|| owner_of(&tenant));
    let key_count = page.objects.len() + page.common_prefixes.len();
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(maybe_encode(input.prefix.unwrap_or_default(), url)),
        delimiter: delimiter.map(|d| maybe_encode(d, url)),
        max_keys: Some(limit as i32),
        key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
        continuation_token: input.continuation_token,
        start_after: input.start_after.map(|s| maybe_encode(s, url)),
        is_truncated: Some(page.is_truncated),
        next_continuation_token: if page.is_truncated { page.next_token.clone() } else { None },
        contents: Some(contents(&page, url, owner.as_ref())),
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
    let delimiter = delimiter_of(input.delimiter);
    let prefix = input.prefix.unwrap_or_default();
    let opts = ListOptions {
        prefix: prefix.clone(),
        delimiter: delimiter.clone(),
        start_after: input
            .marker
            .clone()
            .filter(|m| !m.is_empty())
            .map(|m| v1_start_after(m, &prefix, delimiter.as_deref())),
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
        // v1 echoes the prefix unencoded whatever `encoding-type` says: AWS does, and botocore's v1
        // decoder (unlike its v2 one) leaves `Prefix` as it is.
        prefix: Some(prefix),
        delimiter: delimiter.map(|d| maybe_encode(d, url)),
        marker: Some(maybe_encode(input.marker.unwrap_or_default(), url)),
        max_keys: Some(limit as i32),
        is_truncated: Some(page.is_truncated),
        next_marker,
        // v1 always reports owners.
        contents: Some(contents(&page, url, Some(&owner_of(&tenant)))),
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
    let delimiter = delimiter_of(input.delimiter);
    let opts = ListVersionsOptions {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: delimiter.clone(),
        key_marker: input.key_marker.clone().filter(|m| !m.is_empty()),
        version_id_marker: input.version_id_marker.clone().filter(|m| !m.is_empty()),
        max_keys: limit.max(1),
    };
    let listing = core_call!(core, &tenant, &[&input.bucket], core.list_versions(&tenant, &input.bucket, opts));
    // A truncated page names both markers. Backends without versions give no version marker: the
    // "null" version is the one they have (and clients such as s3-tests pass the marker straight back).
    let next_key_marker = listing.next_key_marker.clone().filter(|_| listing.is_truncated);
    let next_version_id_marker = match (&next_key_marker, listing.next_version_id_marker.clone()) {
        (Some(_), None) => Some("null".to_owned()),
        (_, marker) => marker,
    };
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
                owner: Some(owner_of(&tenant)),
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
                owner: Some(owner_of(&tenant)),
                ..Default::default()
            });
        }
    }
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(maybe_encode(input.prefix.unwrap_or_default(), url)),
        delimiter: delimiter.map(|d| maybe_encode(d, url)),
        key_marker: Some(input.key_marker.unwrap_or_default()),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        max_keys: Some(limit as i32),
        is_truncated: Some(listing.is_truncated),
        next_key_marker: next_key_marker.map(|m| maybe_encode(m, url)),
        next_version_id_marker,
        versions: Some(versions),
        delete_markers: Some(markers),
        common_prefixes: Some(prefixes(&listing.common_prefixes, url)),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_marker_that_is_a_common_prefix_skips_its_keys() {
        let after = v1_start_after("boo/".into(), "", Some("/"));
        assert!(after.starts_with("boo/") && after.len() <= MAX_KEY_BYTES);
        // Every key under the prefix sorts before it, the next prefix after it.
        for key in ["boo/", "boo/bar", "boo/baz/xyzzy", "boo/\u{10FFFF}x"] {
            assert!(key < after.as_str(), "{key}");
        }
        assert!("boo0" > after.as_str() && "cquux/thud" > after.as_str());
        // With a prefix, the common prefix is the prefix plus up to the first delimiter after it.
        assert!(v1_start_after("boo/baz/".into(), "boo/", Some("/")).len() > "boo/baz/".len());
        // Plain keys, keys with more after the delimiter, and listings without a delimiter are kept.
        for (marker, prefix, delim) in
            [("asdf", "", Some("/")), ("boo/bar", "", Some("/")), ("boo/", "", None), ("boo/", "x", Some("/"))]
        {
            assert_eq!(v1_start_after(marker.into(), prefix, delim), marker);
        }
        // Multi-character delimiters.
        assert!(v1_start_after("a::".into(), "", Some("::")).len() > 3);
        assert_eq!(v1_start_after("a::b".into(), "", Some("::")), "a::b");
    }

    #[test]
    fn an_empty_delimiter_is_none() {
        assert_eq!(delimiter_of(Some(String::new())), None);
        assert_eq!(delimiter_of(Some("/".into())).as_deref(), Some("/"));
    }
}
