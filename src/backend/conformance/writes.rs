//! Checks of writes: atomic puts, ranges, copy, conditional create.

use std::collections::BTreeMap;

use super::{body, drop_bucket, failing_body, fresh_bucket, get_all, payload, put, read};
use crate::backend::{Backend, BackendError, ContentHeaders, GetOptions, ListOptions, PutOptions};

pub(super) async fn atomic_put(b: &dyn Backend, bucket: &str) {
    fresh_bucket(b, bucket).await;
    let old = payload(1000, 2);
    put(b, bucket, "k", &old, PutOptions::default()).await;
    let half = payload(300_000, 3);

    let r = b.put(bucket, "k", failing_body(&half), 600_000, PutOptions::default()).await;
    assert!(matches!(r, Err(BackendError::InvalidRequest(_))), "body stream error: {r:?}");
    assert!(get_all(b, bucket, "k").await == old, "old object survives a failed put");
    let r = b.put(bucket, "new", failing_body(&half), 600_000, PutOptions::default()).await;
    assert!(matches!(r, Err(BackendError::InvalidRequest(_))), "body stream error: {r:?}");
    let r = b.head(bucket, "new", None).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "failed put leaves no object: {r:?}");

    let r = b.put(bucket, "k", body(&half, 4096), half.len() as u64 + 10, PutOptions::default()).await;
    assert!(matches!(r, Err(BackendError::InvalidRequest(_))), "short body refused: {r:?}");
    let r = b.put(bucket, "k", body(&half, 4096), half.len() as u64 - 10, PutOptions::default()).await;
    assert!(matches!(r, Err(BackendError::InvalidRequest(_))), "long body refused: {r:?}");
    assert!(get_all(b, bucket, "k").await == old, "old object survives wrong-length puts");
    let r = b.put(bucket, "new", body(&half, 4096), half.len() as u64 + 1, PutOptions::default()).await;
    assert!(r.is_err(), "short body refused");
    assert!(matches!(b.head(bucket, "new", None).await, Err(BackendError::NoSuchKey)), "no object after short body");
    let listed = b.list(bucket, ListOptions { max_keys: 100, ..Default::default() }).await.unwrap();
    let keys: Vec<_> = listed.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["k"], "failed puts leave nothing listable");
    drop_bucket(b, bucket, false).await;
}

pub(super) async fn ranges(b: &dyn Backend, bucket: &str) {
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
        let (got, bytes) = read(b, bucket, "r", GetOptions { range: Some(asked.clone()), version_id: None }).await;
        assert_eq!(got.range, want, "range {asked:?}");
        assert_eq!(got.head.meta.size, 100_000, "full size reported for range {asked:?}");
        let (lo, hi) = (want.start as usize, want.end as usize);
        assert!(bytes == data[lo..hi], "bytes of range {asked:?}");
    }
    for bad in [100_000..100_010, 200_000..u64::MAX] {
        let r = b.get(bucket, "r", GetOptions { range: Some(bad.clone()), version_id: None }).await;
        assert!(matches!(r, Err(BackendError::InvalidRange)), "range {bad:?}: {r:?}");
    }
    drop_bucket(b, bucket, false).await;
}

pub(super) async fn copy(b: &dyn Backend, bucket: &str, caps: super::Caps) {
    fresh_bucket(b, bucket).await;
    let data = payload(200_000, 6);
    let mut m1 = BTreeMap::new();
    m1.insert("one".to_owned(), "1".to_owned());
    let src = PutOptions { metadata: m1, ..Default::default() };
    let put_r = put(b, bucket, "src", &data, src).await;
    let mut m2 = BTreeMap::new();
    m2.insert("two".to_owned(), "2".to_owned());
    let headers = ContentHeaders { content_type: Some("text/x-copy".into()), ..Default::default() };
    let opts = PutOptions { metadata: m2.clone(), headers: headers.clone(), ..Default::default() };
    let r = b.copy(bucket, "src", None, bucket, "dst/copy", opts.clone()).await.unwrap();
    assert_eq!(r.etag, put_r.etag, "copy keeps the bytes, hence the MD5 etag");
    let head = b.head(bucket, "dst/copy", None).await.unwrap();
    assert_eq!(head.metadata, m2, "copy replaces metadata");
    assert_eq!(head.headers.content_type, headers.content_type, "copy replaces headers");
    assert!(get_all(b, bucket, "dst/copy").await == data, "copied bytes");
    assert_eq!(b.head(bucket, "src", None).await.unwrap().metadata.get("one").map(String::as_str), Some("1"));
    let r = b.copy(bucket, "src", None, bucket, "src", opts.clone()).await;
    assert!(r.is_ok(), "copy onto itself with new metadata: {r:?}");
    assert_eq!(b.head(bucket, "src", None).await.unwrap().metadata, m2, "self-copy replaced metadata");
    // A copy guarded by the source's ETag: refused once the source changed, done while it has not.
    let stale = PutOptions { source_if_match: Some("0123456789abcdef0123456789abcdef".into()), ..opts.clone() };
    let r = b.copy(bucket, "src", None, bucket, "src", stale).await;
    if caps.copy_source_if_match {
        assert!(matches!(r, Err(BackendError::PreconditionFailed)), "copy with a stale source etag: {r:?}");
    }
    let fresh = PutOptions { source_if_match: Some(put_r.etag.clone()), ..opts.clone() };
    let r = b.copy(bucket, "src", None, bucket, "src", fresh).await;
    assert!(r.is_ok(), "copy with the current source etag: {r:?}");
    let r = b.copy(bucket, "missing", None, bucket, "dst2", opts).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "copy from missing key: {r:?}");
    drop_bucket(b, bucket, false).await;
}

pub(super) async fn conditional(b: &dyn Backend, bucket: &str) {
    fresh_bucket(b, bucket).await;
    let once = PutOptions { if_none_match_any: true, ..Default::default() };
    put(b, bucket, "once", b"first", once.clone()).await;
    let r = b.put(bucket, "once", body(b"second", 3), 6, once.clone()).await;
    assert!(matches!(r, Err(BackendError::PreconditionFailed)), "if-none-match on existing key: {r:?}");
    assert_eq!(get_all(b, bucket, "once").await, b"first", "refused conditional put keeps the object");
    b.delete(bucket, "once", None).await.unwrap();
    put(b, bucket, "once", b"third", once).await;
    assert_eq!(get_all(b, bucket, "once").await, b"third", "conditional put after delete");
    drop_bucket(b, bucket, false).await;
}
