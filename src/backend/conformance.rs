//! The shared backend conformance suite: one set of checks that every [`Backend`] must pass,
//! run against `memory` and `fs` by `cargo test`, and against real servers (moto_server, s3s-fs)
//! by `tests/backend_real.rs`. It panics with a message naming the failed check; it is test code
//! compiled into the library only so integration tests can reach it.

// This is test code compiled into the library: a failed check panics, like any test assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod governance;
mod listing;
mod multipart;
mod versions;
mod writes;

pub use governance::{object_lock, LockSetter};
pub use multipart::{unknown_uploads, MultipartCaps};

use std::collections::BTreeMap;
use std::io;

use bytes::Bytes;
use futures::StreamExt as _;

use super::{
    Backend, BackendError, ByteStream, ContentHeaders, GetOptions, ListOptions, ListVersionsOptions, PutOptions,
};

/// What the backend under test supports; checks for missing features are skipped or inverted.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Bucket versioning, version ids and delete markers.
    pub versioning: bool,
    /// `list_versions` works (backends without versioning list current objects as versions).
    pub list_versions: bool,
    /// Keys that are prefixes of each other (`a` and `a/b`) can coexist, and odd keys (`..`,
    /// leading `/`, `//`) are stored verbatim. False for s3s-fs, which maps keys to paths.
    pub path_like_keys: bool,
    /// A put into or a get from a missing bucket fails with `NoSuchBucket`, and deleting a non-empty
    /// bucket fails with `BucketNotEmpty`. False for s3s-fs, which creates the bucket directory on
    /// put, answers `NoSuchKey` on get and deletes non-empty buckets.
    pub strict_buckets: bool,
    /// Listings carry each object's ETag. False for s3s-fs, which lists none.
    pub list_etags: bool,
    /// A copy with `source_if_match` is refused when the source's ETag differs. False for moto 5.2,
    /// which ignores `x-amz-copy-source-if-match`.
    pub copy_source_if_match: bool,
    /// Object tags on put, copy and multipart, and `get_tags` / `put_tags`. When false both must
    /// answer `NotSupported` (s3s-fs, which also drops the tags a put carries).
    pub tagging: bool,
    /// What `bucket_region` reports for a bucket `create_bucket` made: `None` for backends without
    /// regions (fs, memory), the service's region for S3 servers.
    pub default_region: Option<&'static str>,
    /// `create_bucket_with` places the bucket in the region asked for, and `bucket_region` reports
    /// it (moto). When false the bucket reports `default_region` (fs, memory, s3s-fs).
    pub region_constraint: bool,
    /// Multipart uploads and what of them the backend supports; `None` skips the multipart checks
    /// (for a backend that answers `NotSupported` to all of them).
    pub multipart: Option<MultipartCaps>,
}

/// Runs every check, each in its own bucket named `{bucket_prefix}-<check>`.
/// `bucket_prefix` must be a valid S3 bucket name prefix (lower case, digits, `-`).
pub async fn run_all(b: &dyn Backend, bucket_prefix: &str, caps: Caps) {
    buckets(b, &format!("{bucket_prefix}-bkt"), caps).await;
    objects(b, &format!("{bucket_prefix}-obj")).await;
    writes::atomic_put(b, &format!("{bucket_prefix}-atomic")).await;
    writes::ranges(b, &format!("{bucket_prefix}-range")).await;
    listing::listing(b, &format!("{bucket_prefix}-list"), caps).await;
    writes::copy(b, &format!("{bucket_prefix}-copy"), caps).await;
    writes::conditional(b, &format!("{bucket_prefix}-cond")).await;
    if caps.versioning {
        versions::versioning(b, &format!("{bucket_prefix}-ver")).await;
    } else {
        versions::no_versioning(b, &format!("{bucket_prefix}-nover"), caps).await;
    }
    if let Some(mp) = caps.multipart {
        multipart::run(b, bucket_prefix, mp, caps).await;
    }
    governance::tags(b, &format!("{bucket_prefix}-tags"), caps).await;
    governance::regions(b, &format!("{bucket_prefix}-region"), caps).await;
}

/// A deterministic, non-repeating-looking test payload.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) as u8) ^ seed ^ ((i >> 8) as u8)).collect()
}

/// A body stream yielding `data` in chunks of `chunk` bytes.
pub fn body(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = data.chunks(chunk.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    Box::pin(futures::stream::iter(chunks))
}

/// A body stream yielding `good` and then an I/O error, as a client that disconnects would.
pub fn failing_body(good: &[u8]) -> ByteStream {
    let items =
        vec![Ok(Bytes::copy_from_slice(good)), Err(io::Error::new(io::ErrorKind::ConnectionReset, "client gone"))];
    Box::pin(futures::stream::iter(items))
}

pub(super) async fn put(b: &dyn Backend, bucket: &str, key: &str, data: &[u8], opts: PutOptions) -> super::PutResult {
    match b.put(bucket, key, body(data, 7000), data.len() as u64, opts).await {
        Ok(r) => r,
        Err(e) => panic!("put {bucket}/{key} ({} bytes) failed: {e:?}", data.len()),
    }
}

/// Reads an object's (ranged) body whole.
pub(super) async fn read(b: &dyn Backend, bucket: &str, key: &str, opts: GetOptions) -> (super::GetResult, Vec<u8>) {
    let mut got = match b.get(bucket, key, opts.clone()).await {
        Ok(g) => g,
        Err(e) => panic!("get {bucket}/{key} {opts:?} failed: {e:?}"),
    };
    let mut out = Vec::new();
    while let Some(chunk) = got.body.next().await {
        match chunk {
            Ok(c) => out.extend_from_slice(&c),
            Err(e) => panic!("body of {bucket}/{key} failed: {e}"),
        }
    }
    (got, out)
}

pub(super) async fn get_all(b: &dyn Backend, bucket: &str, key: &str) -> Vec<u8> {
    read(b, bucket, key, GetOptions::default()).await.1
}

pub(super) fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(data))
}

pub(super) async fn fresh_bucket(b: &dyn Backend, bucket: &str) {
    if let Err(e) = b.create_bucket(bucket).await {
        panic!("create_bucket {bucket}: {e:?}");
    }
}

/// Deletes every object (and version) in `bucket`, then the bucket.
pub(super) async fn drop_bucket(b: &dyn Backend, bucket: &str, versioned: bool) {
    if versioned {
        let opts = ListVersionsOptions { max_keys: 1000, ..Default::default() };
        let page = b.list_versions(bucket, opts).await.unwrap();
        for v in page.versions {
            b.delete(bucket, &v.meta.key, v.meta.version_id.as_deref().or(Some("null"))).await.unwrap();
        }
    } else {
        loop {
            let page = b.list(bucket, ListOptions { max_keys: 1000, ..Default::default() }).await.unwrap();
            for o in &page.objects {
                b.delete(bucket, &o.key, None).await.unwrap();
            }
            if !page.is_truncated {
                break;
            }
        }
    }
    b.delete_bucket(bucket).await.unwrap();
}

async fn buckets(b: &dyn Backend, bucket: &str, caps: Caps) {
    let missing = format!("{bucket}-missing");
    assert!(matches!(b.head_bucket(&missing).await, Err(BackendError::NoSuchBucket)), "head missing bucket");
    assert!(matches!(b.delete_bucket(&missing).await, Err(BackendError::NoSuchBucket)), "delete missing bucket");
    if caps.strict_buckets {
        let r = b.put(&missing, "k", body(b"x", 1), 1, PutOptions::default()).await;
        assert!(matches!(r, Err(BackendError::NoSuchBucket)), "put into missing bucket: {r:?}");
        let r = b.get(&missing, "k", GetOptions::default()).await;
        assert!(matches!(r, Err(BackendError::NoSuchBucket)), "get from missing bucket: {r:?}");
    }
    let r = b.list(&missing, ListOptions { max_keys: 10, ..Default::default() }).await;
    assert!(matches!(r, Err(BackendError::NoSuchBucket)), "list missing bucket: {r:?}");

    let before = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    fresh_bucket(b, bucket).await;
    b.head_bucket(bucket).await.unwrap();
    let r = b.create_bucket(bucket).await;
    assert!(matches!(r, Err(BackendError::BucketAlreadyExists)), "create existing bucket: {r:?}");
    let listed = b.list_buckets().await.unwrap();
    let me = listed.iter().find(|i| i.name == bucket).unwrap_or_else(|| panic!("{bucket} not in {listed:?}"));
    assert!(me.created > before, "bucket creation time {:?} is not recent", me.created);

    if caps.strict_buckets {
        put(b, bucket, "k", b"data", PutOptions::default()).await;
        let r = b.delete_bucket(bucket).await;
        assert!(matches!(r, Err(BackendError::BucketNotEmpty)), "delete non-empty bucket: {r:?}");
        b.delete(bucket, "k", None).await.unwrap();
    }
    b.delete_bucket(bucket).await.unwrap();
    assert!(matches!(b.head_bucket(bucket).await, Err(BackendError::NoSuchBucket)), "bucket gone after delete");
    assert!(!b.list_buckets().await.unwrap().iter().any(|i| i.name == bucket), "deleted bucket still listed");
}

async fn objects(b: &dyn Backend, bucket: &str) {
    fresh_bucket(b, bucket).await;
    let data = payload(3 * 1024 * 1024 + 17, 1);
    let mut metadata = BTreeMap::new();
    metadata.insert("color".to_owned(), "blue".to_owned());
    metadata.insert("x-blobseal-env".to_owned(), "abc=".to_owned());
    let headers = ContentHeaders {
        content_type: Some("application/x-test".into()),
        content_encoding: Some("identity".into()),
        content_disposition: Some("attachment; filename=\"t.bin\"".into()),
        content_language: Some("en".into()),
        cache_control: Some("no-cache".into()),
        expires: Some("Wed, 21 Oct 2037 07:28:00 GMT".into()),
    };
    let opts = PutOptions {
        metadata: metadata.clone(),
        headers: headers.clone(),
        if_none_match_any: false,
        source_if_match: None,
        tags: BTreeMap::new(),
    };
    let r = b.put(bucket, "big", body(&data, 65536 + 3), data.len() as u64, opts).await.unwrap();
    assert_eq!(r.etag, md5_hex(&data), "etag is the MD5 of the stored bytes");

    let head = b.head(bucket, "big", None).await.unwrap();
    assert_eq!(head.meta.key, "big");
    assert_eq!(head.meta.size, data.len() as u64);
    assert_eq!(head.meta.etag, r.etag);
    assert_eq!(head.metadata, metadata, "user metadata round-trips");
    assert_eq!(head.headers, headers, "content headers round-trip");
    let age = time::OffsetDateTime::now_utc() - head.meta.last_modified;
    assert!(age.whole_seconds().abs() < 300, "last_modified {:?} is not now", head.meta.last_modified);

    let (got, bytes) = read(b, bucket, "big", GetOptions::default()).await;
    assert!(bytes == data, "whole body round-trips ({} vs {} bytes)", bytes.len(), data.len());
    assert_eq!(got.range, 0..data.len() as u64);
    assert_eq!(got.head.metadata, metadata);

    let empty = put(b, bucket, "empty", b"", PutOptions::default()).await;
    assert_eq!(empty.etag, "d41d8cd98f00b204e9800998ecf8427e");
    assert!(get_all(b, bucket, "empty").await.is_empty());
    assert_eq!(b.head(bucket, "empty", None).await.unwrap().meta.size, 0);

    put(b, bucket, "small", b"first", PutOptions::default()).await;
    put(b, bucket, "small", b"second!", PutOptions::default()).await;
    assert_eq!(get_all(b, bucket, "small").await, b"second!", "overwrite replaces");

    let r = b.head(bucket, "nope", None).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "head missing key: {r:?}");
    let r = b.get(bucket, "nope", GetOptions::default()).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "get missing key: {r:?}");
    b.delete(bucket, "nope", None).await.unwrap_or_else(|e| panic!("delete missing key must be Ok: {e:?}"));
    b.delete(bucket, "small", None).await.unwrap();
    let r = b.get(bucket, "small", GetOptions::default()).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "get deleted key: {r:?}");
    drop_bucket(b, bucket, false).await;
}
