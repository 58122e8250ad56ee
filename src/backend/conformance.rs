//! The shared backend conformance suite: one set of checks that every [`Backend`] must pass,
//! run against `memory` and `fs` by `cargo test`, and against real servers (moto_server, s3s-fs)
//! by `tests/backend_real.rs`. It panics with a message naming the failed check; it is test code
//! compiled into the library only so integration tests can reach it.

use std::collections::BTreeMap;
use std::io;

use bytes::Bytes;
use futures::StreamExt as _;

use super::{
    Backend, BackendError, ByteStream, ContentHeaders, GetOptions, ListOptions, ListVersionsOptions, PutOptions,
    Versioning,
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
}

/// Runs every check, each in its own bucket named `{bucket_prefix}-<check>`.
/// `bucket_prefix` must be a valid S3 bucket name prefix (lower case, digits, `-`).
pub async fn run_all(b: &dyn Backend, bucket_prefix: &str, caps: Caps) {
    buckets(b, &format!("{bucket_prefix}-bkt"), caps).await;
    objects(b, &format!("{bucket_prefix}-obj")).await;
    atomic_put(b, &format!("{bucket_prefix}-atomic")).await;
    ranges(b, &format!("{bucket_prefix}-range")).await;
    listing(b, &format!("{bucket_prefix}-list"), caps).await;
    copy(b, &format!("{bucket_prefix}-copy")).await;
    conditional(b, &format!("{bucket_prefix}-cond")).await;
    if caps.versioning {
        versioning(b, &format!("{bucket_prefix}-ver")).await;
    } else {
        no_versioning(b, &format!("{bucket_prefix}-nover"), caps).await;
    }
}

/// A deterministic, non-repeating-looking test payload.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) as u8) ^ seed ^ ((i >> 8) as u8))
        .collect()
}

/// A body stream yielding `data` in chunks of `chunk` bytes.
pub fn body(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

/// A body stream yielding `good` and then an I/O error, as a client that disconnects would.
pub fn failing_body(good: &[u8]) -> ByteStream {
    let items = vec![
        Ok(Bytes::copy_from_slice(good)),
        Err(io::Error::new(io::ErrorKind::ConnectionReset, "client gone")),
    ];
    Box::pin(futures::stream::iter(items))
}

async fn put(b: &dyn Backend, bucket: &str, key: &str, data: &[u8], opts: PutOptions) -> super::PutResult {
    match b.put(bucket, key, body(data, 7000), data.len() as u64, opts).await {
        Ok(r) => r,
        Err(e) => panic!("put {bucket}/{key} ({} bytes) failed: {e:?}", data.len()),
    }
}

/// Reads an object's (ranged) body whole.
async fn read(b: &dyn Backend, bucket: &str, key: &str, opts: GetOptions) -> (super::GetResult, Vec<u8>) {
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

async fn get_all(b: &dyn Backend, bucket: &str, key: &str) -> Vec<u8> {
    read(b, bucket, key, GetOptions::default()).await.1
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(data))
}

async fn fresh_bucket(b: &dyn Backend, bucket: &str) {
    if let Err(e) = b.create_bucket(bucket).await {
        panic!("create_bucket {bucket}: {e:?}");
    }
}

/// Deletes every object (and version) in `bucket`, then the bucket.
async fn drop_bucket(b: &dyn Backend, bucket: &str, versioned: bool) {
    if versioned {
        let opts = ListVersionsOptions {
            max_keys: 1000,
            ..Default::default()
        };
        let page = b.list_versions(bucket, opts).await.unwrap();
        for v in page.versions {
            b.delete(bucket, &v.meta.key, v.meta.version_id.as_deref().or(Some("null")))
                .await
                .unwrap();
        }
    } else {
        loop {
            let page = b
                .list(
                    bucket,
                    ListOptions {
                        max_keys: 1000,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
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
    assert!(
        matches!(b.head_bucket(&missing).await, Err(BackendError::NoSuchBucket)),
        "head missing bucket"
    );
    assert!(
        matches!(b.delete_bucket(&missing).await, Err(BackendError::NoSuchBucket)),
        "delete missing bucket"
    );
    if caps.strict_buckets {
        let r = b.put(&missing, "k", body(b"x", 1), 1, PutOptions::default()).await;
        assert!(
            matches!(r, Err(BackendError::NoSuchBucket)),
            "put into missing bucket: {r:?}"
        );
        let r = b.get(&missing, "k", GetOptions::default()).await;
        assert!(
            matches!(r, Err(BackendError::NoSuchBucket)),
            "get from missing bucket: {r:?}"
        );
    }
    let r = b
        .list(
            &missing,
            ListOptions {
                max_keys: 10,
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(r, Err(BackendError::NoSuchBucket)),
        "list missing bucket: {r:?}"
    );

    let before = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    fresh_bucket(b, bucket).await;
    b.head_bucket(bucket).await.unwrap();
    let r = b.create_bucket(bucket).await;
    assert!(
        matches!(r, Err(BackendError::BucketAlreadyExists)),
        "create existing bucket: {r:?}"
    );
    let listed = b.list_buckets().await.unwrap();
    let me = listed
        .iter()
        .find(|i| i.name == bucket)
        .unwrap_or_else(|| panic!("{bucket} not in {listed:?}"));
    assert!(
        me.created > before,
        "bucket creation time {:?} is not recent",
        me.created
    );

    if caps.strict_buckets {
        put(b, bucket, "k", b"data", PutOptions::default()).await;
        let r = b.delete_bucket(bucket).await;
        assert!(
            matches!(r, Err(BackendError::BucketNotEmpty)),
            "delete non-empty bucket: {r:?}"
        );
        b.delete(bucket, "k", None).await.unwrap();
    }
    b.delete_bucket(bucket).await.unwrap();
    assert!(
        matches!(b.head_bucket(bucket).await, Err(BackendError::NoSuchBucket)),
        "bucket gone after delete"
    );
    assert!(
        !b.list_buckets().await.unwrap().iter().any(|i| i.name == bucket),
        "deleted bucket still listed"
    );
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
    };
    let r = b
        .put(bucket, "big", body(&data, 65536 + 3), data.len() as u64, opts)
        .await
        .unwrap();
    assert_eq!(r.etag, md5_hex(&data), "etag is the MD5 of the stored bytes");

    let head = b.head(bucket, "big", None).await.unwrap();
    assert_eq!(head.meta.key, "big");
    assert_eq!(head.meta.size, data.len() as u64);
    assert_eq!(head.meta.etag, r.etag);
    assert_eq!(head.metadata, metadata, "user metadata round-trips");
    assert_eq!(head.headers, headers, "content headers round-trip");
    let age = time::OffsetDateTime::now_utc() - head.meta.last_modified;
    assert!(
        age.whole_seconds().abs() < 300,
        "last_modified {:?} is not now",
        head.meta.last_modified
    );

    let (got, bytes) = read(b, bucket, "big", GetOptions::default()).await;
    assert!(
        bytes == data,
        "whole body round-trips ({} vs {} bytes)",
        bytes.len(),
        data.len()
    );
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
    b.delete(bucket, "nope", None)
        .await
        .unwrap_or_else(|e| panic!("delete missing key must be Ok: {e:?}"));
    b.delete(bucket, "small", None).await.unwrap();
    let r = b.get(bucket, "small", GetOptions::default()).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "get deleted key: {r:?}");
    drop_bucket(b, bucket, false).await;
}

async fn atomic_put(b: &dyn Backend, bucket: &str) {
    fresh_bucket(b, bucket).await;
    let old = payload(1000, 2);
    put(b, bucket, "k", &old, PutOptions::default()).await;
    let half = payload(300_000, 3);

    let r = b
        .put(bucket, "k", failing_body(&half), 600_000, PutOptions::default())
        .await;
    assert!(
        matches!(r, Err(BackendError::InvalidRequest(_))),
        "body stream error: {r:?}"
    );
    assert!(get_all(b, bucket, "k").await == old, "old object survives a failed put");
    let r = b
        .put(bucket, "new", failing_body(&half), 600_000, PutOptions::default())
        .await;
    assert!(
        matches!(r, Err(BackendError::InvalidRequest(_))),
        "body stream error: {r:?}"
    );
    let r = b.head(bucket, "new", None).await;
    assert!(
        matches!(r, Err(BackendError::NoSuchKey)),
        "failed put leaves no object: {r:?}"
    );

    let r = b
        .put(
            bucket,
            "k",
            body(&half, 4096),
            half.len() as u64 + 10,
            PutOptions::default(),
        )
        .await;
    assert!(
        matches!(r, Err(BackendError::InvalidRequest(_))),
        "short body refused: {r:?}"
    );
    let r = b
        .put(
            bucket,
            "k",
            body(&half, 4096),
            half.len() as u64 - 10,
            PutOptions::default(),
        )
        .await;
    assert!(
        matches!(r, Err(BackendError::InvalidRequest(_))),
        "long body refused: {r:?}"
    );
    assert!(
        get_all(b, bucket, "k").await == old,
        "old object survives wrong-length puts"
    );
    let r = b
        .put(
            bucket,
            "new",
            body(&half, 4096),
            half.len() as u64 + 1,
            PutOptions::default(),
        )
        .await;
    assert!(r.is_err(), "short body refused");
    assert!(
        matches!(b.head(bucket, "new", None).await, Err(BackendError::NoSuchKey)),
        "no object after short body"
    );
    let listed = b
        .list(
            bucket,
            ListOptions {
                max_keys: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let keys: Vec<_> = listed.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["k"], "failed puts leave nothing listable");
    drop_bucket(b, bucket, false).await;
}

async fn ranges(b: &dyn Backend, bucket: &str) {
    fresh_bucket(b, bucket).await;
    let data = payload(100_000, 4);
    put(b, bucket, "r", &data, PutOptions::default()).await;
    let cases: [(std::ops::Range<u64>, std::ops::Range<u64>); 5] = [
        (10..20, 10..20),
        (0..1, 0..1),
        (99_990..u64::MAX, 99_990..100_000),
        (5..200_000, 5..100_000),
        (99_999..100_000, 99_999..100_000),
    ];
    for (asked, want) in cases {
        let (got, bytes) = read(
            b,
            bucket,
            "r",
            GetOptions {
                range: Some(asked.clone()),
                version_id: None,
            },
        )
        .await;
        assert_eq!(got.range, want, "range {asked:?}");
        assert_eq!(got.head.meta.size, 100_000, "full size reported for range {asked:?}");
        let (lo, hi) = (want.start as usize, want.end as usize);
        assert!(bytes == data[lo..hi], "bytes of range {asked:?}");
    }
    for bad in [100_000..100_010, 200_000..u64::MAX] {
        let r = b
            .get(
                bucket,
                "r",
                GetOptions {
                    range: Some(bad.clone()),
                    version_id: None,
                },
            )
            .await;
        assert!(matches!(r, Err(BackendError::InvalidRange)), "range {bad:?}: {r:?}");
    }
    drop_bucket(b, bucket, false).await;
}

/// Lists everything page by page with `max_keys`, returning (keys, common prefixes).
async fn list_paged(b: &dyn Backend, bucket: &str, base: ListOptions) -> (Vec<String>, Vec<String>) {
    let (mut keys, mut prefixes) = (Vec::new(), Vec::new());
    let mut opts = base;
    for _ in 0..100 {
        let page = b.list(bucket, opts.clone()).await.unwrap();
        assert!(
            page.objects.len() + page.common_prefixes.len() <= opts.max_keys,
            "page larger than max_keys"
        );
        keys.extend(page.objects.into_iter().map(|o| o.key));
        prefixes.extend(page.common_prefixes);
        if !page.is_truncated {
            return (keys, prefixes);
        }
        opts.continuation = Some(page.next_token.expect("a truncated page has a next token"));
    }
    panic!("listing did not end after 100 pages");
}

async fn listing(b: &dyn Backend, bucket: &str, caps: Caps) {
    fresh_bucket(b, bucket).await;
    let mut keys: Vec<&str> = vec![
        "a/b/c",
        "a/d",
        "b",
        "c d/e f",
        "ünï/cødé ☃",
        "z/1",
        "z/2",
        "z/3",
        "~tilde",
        "Upper",
        "a+b",
        "a%20b",
    ];
    if caps.path_like_keys {
        keys.extend(["a", "a/b", "/lead", "..", "x//y", "x/../y"]);
    }
    for (i, k) in keys.iter().enumerate() {
        put(b, bucket, k, &payload(i + 1, 5), PutOptions::default()).await;
    }
    let mut sorted: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    sorted.sort();

    for max_keys in [1, 2, 1000] {
        let (got, cps) = list_paged(
            b,
            bucket,
            ListOptions {
                max_keys,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(got, sorted, "full listing, max_keys {max_keys}");
        assert!(cps.is_empty());
    }
    let page = b
        .list(
            bucket,
            ListOptions {
                max_keys: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ünï = page
        .objects
        .iter()
        .find(|o| o.key == "ünï/cødé ☃")
        .expect("unicode key listed");
    assert_eq!(ünï.size, 5);
    if caps.list_etags {
        assert_eq!(ünï.etag, md5_hex(&payload(5, 5)), "listing carries the ETag");
    }

    let mut want_top: Vec<String> = sorted.iter().filter(|k| !k.contains('/')).cloned().collect();
    if caps.path_like_keys {
        assert!(want_top.contains(&"a".to_owned()));
    }
    want_top.sort();
    let mut want_cps: Vec<String> = sorted
        .iter()
        .filter_map(|k| k.find('/').map(|i| k[..=i].to_owned()))
        .collect();
    want_cps.dedup();
    for max_keys in [1, 3, 1000] {
        let opts = ListOptions {
            delimiter: Some("/".into()),
            max_keys,
            ..Default::default()
        };
        let (got, cps) = list_paged(b, bucket, opts).await;
        assert_eq!(got, want_top, "delimiter listing keys, max_keys {max_keys}");
        assert_eq!(cps, want_cps, "delimiter listing prefixes, max_keys {max_keys}");
    }

    let opts = ListOptions {
        prefix: "a/".into(),
        delimiter: Some("/".into()),
        max_keys: 1000,
        ..Default::default()
    };
    let (got, cps) = list_paged(b, bucket, opts).await;
    let want: Vec<&str> = if caps.path_like_keys {
        vec!["a/b", "a/d"]
    } else {
        vec!["a/d"]
    };
    assert_eq!(got, want, "prefix a/ with delimiter");
    assert_eq!(cps, ["a/b/"], "prefix a/ with delimiter");

    let opts = ListOptions {
        prefix: "z/".into(),
        max_keys: 1000,
        ..Default::default()
    };
    assert_eq!(list_paged(b, bucket, opts).await.0, ["z/1", "z/2", "z/3"], "prefix z/");
    let opts = ListOptions {
        start_after: Some("z/1".into()),
        max_keys: 1,
        ..Default::default()
    };
    assert_eq!(
        list_paged(b, bucket, opts).await.0,
        ["z/2", "z/3", "~tilde", "ünï/cødé ☃"],
        "start_after z/1 (byte order: ü sorts after ~)"
    );
    let opts = ListOptions {
        prefix: "nothing".into(),
        max_keys: 10,
        ..Default::default()
    };
    let page = b.list(bucket, opts).await.unwrap();
    assert!(
        page.objects.is_empty() && page.common_prefixes.is_empty() && !page.is_truncated,
        "empty prefix"
    );

    for (i, k) in keys.iter().enumerate() {
        assert!(
            get_all(b, bucket, k).await == payload(i + 1, 5),
            "key {k:?} reads back its own bytes"
        );
    }
    drop_bucket(b, bucket, false).await;
}

async fn copy(b: &dyn Backend, bucket: &str) {
    fresh_bucket(b, bucket).await;
    let data = payload(200_000, 6);
    let mut m1 = BTreeMap::new();
    m1.insert("one".to_owned(), "1".to_owned());
    let src = PutOptions {
        metadata: m1,
        ..Default::default()
    };
    let put_r = put(b, bucket, "src", &data, src).await;
    let mut m2 = BTreeMap::new();
    m2.insert("two".to_owned(), "2".to_owned());
    let headers = ContentHeaders {
        content_type: Some("text/x-copy".into()),
        ..Default::default()
    };
    let opts = PutOptions {
        metadata: m2.clone(),
        headers: headers.clone(),
        if_none_match_any: false,
    };
    let r = b
        .copy(bucket, "src", None, bucket, "dst/copy", opts.clone())
        .await
        .unwrap();
    assert_eq!(r.etag, put_r.etag, "copy keeps the bytes, hence the MD5 etag");
    let head = b.head(bucket, "dst/copy", None).await.unwrap();
    assert_eq!(head.metadata, m2, "copy replaces metadata");
    assert_eq!(head.headers.content_type, headers.content_type, "copy replaces headers");
    assert!(get_all(b, bucket, "dst/copy").await == data, "copied bytes");
    assert_eq!(
        b.head(bucket, "src", None)
            .await
            .unwrap()
            .metadata
            .get("one")
            .map(String::as_str),
        Some("1")
    );
    let r = b.copy(bucket, "src", None, bucket, "src", opts.clone()).await;
    assert!(r.is_ok(), "copy onto itself with new metadata: {r:?}");
    assert_eq!(
        b.head(bucket, "src", None).await.unwrap().metadata,
        m2,
        "self-copy replaced metadata"
    );
    let r = b.copy(bucket, "missing", None, bucket, "dst2", opts).await;
    assert!(
        matches!(r, Err(BackendError::NoSuchKey)),
        "copy from missing key: {r:?}"
    );
    drop_bucket(b, bucket, false).await;
}

async fn conditional(b: &dyn Backend, bucket: &str) {
    fresh_bucket(b, bucket).await;
    let once = PutOptions {
        if_none_match_any: true,
        ..Default::default()
    };
    put(b, bucket, "once", b"first", once.clone()).await;
    let r = b.put(bucket, "once", body(b"second", 3), 6, once.clone()).await;
    assert!(
        matches!(r, Err(BackendError::PreconditionFailed)),
        "if-none-match on existing key: {r:?}"
    );
    assert_eq!(
        get_all(b, bucket, "once").await,
        b"first",
        "refused conditional put keeps the object"
    );
    b.delete(bucket, "once", None).await.unwrap();
    put(b, bucket, "once", b"third", once).await;
    assert_eq!(
        get_all(b, bucket, "once").await,
        b"third",
        "conditional put after delete"
    );
    drop_bucket(b, bucket, false).await;
}

async fn no_versioning(b: &dyn Backend, bucket: &str, caps: Caps) {
    fresh_bucket(b, bucket).await;
    assert_eq!(b.get_versioning(bucket).await.unwrap(), Versioning::Unversioned);
    put(b, bucket, "k1", b"one", PutOptions::default()).await;
    put(b, bucket, "k1", b"one again", PutOptions::default()).await;
    put(b, bucket, "k2", b"two", PutOptions::default()).await;
    if caps.list_versions {
        let page = b
            .list_versions(
                bucket,
                ListVersionsOptions {
                    max_keys: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let got: Vec<_> = page
            .versions
            .iter()
            .map(|v| (v.meta.key.as_str(), v.meta.version_id.as_deref(), v.is_latest))
            .collect();
        assert_eq!(
            got,
            [("k1", None, true), ("k2", None, true)],
            "unversioned list_versions"
        );
        assert_eq!(page.versions.first().map(|v| v.meta.size), Some(9));
    }
    drop_bucket(b, bucket, false).await;
}

async fn versioning(b: &dyn Backend, bucket: &str) {
    fresh_bucket(b, bucket).await;
    assert_eq!(b.get_versioning(bucket).await.unwrap(), Versioning::Unversioned);
    b.put_versioning(bucket, true).await.unwrap();
    assert_eq!(b.get_versioning(bucket).await.unwrap(), Versioning::Enabled);
    let v1 = put(b, bucket, "k", b"version one", PutOptions::default())
        .await
        .version_id
        .expect("v1 has an id");
    let v2 = put(b, bucket, "k", b"version two", PutOptions::default())
        .await
        .version_id
        .expect("v2 has an id");
    assert_ne!(v1, v2);
    assert_eq!(get_all(b, bucket, "k").await, b"version two");
    let (got, bytes) = read(
        b,
        bucket,
        "k",
        GetOptions {
            version_id: Some(v1.clone()),
            range: None,
        },
    )
    .await;
    assert_eq!(bytes, b"version one", "get by version id");
    assert_eq!(got.head.meta.version_id.as_deref(), Some(v1.as_str()));
    let head = b.head(bucket, "k", Some(&v2)).await.unwrap();
    assert_eq!(head.meta.size, 11);
    assert_eq!(head.meta.version_id.as_deref(), Some(v2.as_str()));

    let del = b.delete(bucket, "k", None).await.unwrap();
    assert!(
        del.delete_marker,
        "unversioned delete in a versioned bucket makes a delete marker"
    );
    let marker = del.version_id.expect("delete marker has a version id");
    let r = b.get(bucket, "k", GetOptions::default()).await;
    assert!(
        matches!(r, Err(BackendError::NoSuchKey)),
        "get behind a delete marker: {r:?}"
    );
    let page = b
        .list_versions(
            bucket,
            ListVersionsOptions {
                max_keys: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let got: Vec<_> = page
        .versions
        .iter()
        .map(|v| {
            (
                v.meta.version_id.clone().unwrap_or_default(),
                v.is_latest,
                v.is_delete_marker,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (marker.clone(), true, true),
            (v2.clone(), false, false),
            (v1.clone(), false, false)
        ]
    );
    let listed = b
        .list(
            bucket,
            ListOptions {
                max_keys: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(listed.objects.is_empty(), "a deleted key is not listed");

    // S3 also answers `x-amz-delete-marker: true` here; moto 5.2 does not, so that is not checked.
    let del = b.delete(bucket, "k", Some(&marker)).await.unwrap();
    assert_eq!(
        del.version_id.as_deref(),
        Some(marker.as_str()),
        "delete by version id names that version"
    );
    assert_eq!(
        get_all(b, bucket, "k").await,
        b"version two",
        "removing the marker restores the object"
    );
    b.delete(bucket, "k", Some(&v2)).await.unwrap();
    assert_eq!(
        get_all(b, bucket, "k").await,
        b"version one",
        "deleting the latest version exposes the previous"
    );
    let r = b
        .copy(bucket, "k", Some(&v1), bucket, "k2", PutOptions::default())
        .await
        .unwrap();
    assert!(r.version_id.is_some(), "copy into a versioned bucket makes a version");
    assert_eq!(get_all(b, bucket, "k2").await, b"version one");
    drop_bucket(b, bucket, true).await;
}
