//! Checks of what residency and retention need: bucket regions, object tags (on put, copy and
//! multipart, read and replaced), and S3 Object Lock (a locked version cannot be deleted).

use std::collections::BTreeMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{body, drop_bucket, fresh_bucket, get_all, put, Caps};
use crate::backend::{Backend, BackendError, CreateBucketOptions, LockState, PutOptions, Versioning};

/// Sets a version's Object Lock state behind the backend's back, the way an operator (or S3's
/// PutObjectRetention / PutObjectLegalHold) would: the trait only reads lock state. Replaces the
/// whole state, bypassing governance retention; panics if the server refuses.
#[async_trait]
pub trait LockSetter: Sync {
    /// Makes `lock` the whole lock state of `version_id` of `bucket/key` (clearing what it omits).
    async fn set(&self, bucket: &str, key: &str, version_id: &str, lock: &LockState);
}

fn tag_set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

pub(super) async fn tags(b: &dyn Backend, bucket: &str, caps: Caps) {
    fresh_bucket(b, bucket).await;
    // What blobseal stamps, plus characters the header encoding must carry (space, `=`, `+`, `:`, `/`).
    let t1 = tag_set(&[("blobseal-delete-after", "2026-12-28T00:00:00Z"), ("b c", "d=e+f:/"), ("a", "1")]);
    let t2 = tag_set(&[("x", "y")]);
    let written = put(b, bucket, "t", b"tagged", PutOptions { tags: t1.clone(), ..Default::default() }).await;
    if !caps.tagging {
        let r = b.get_tags(bucket, "t", None).await;
        assert!(matches!(r, Err(BackendError::NotSupported(_))), "get_tags without tagging: {r:?}");
        let r = b.put_tags(bucket, "t", None, &t2).await;
        assert!(matches!(r, Err(BackendError::NotSupported(_))), "put_tags without tagging: {r:?}");
        drop_bucket(b, bucket, false).await;
        return;
    }
    assert_eq!(b.get_tags(bucket, "t", None).await.unwrap(), t1, "tags given to put");
    assert!(b.head(bucket, "t", None).await.unwrap().metadata.is_empty(), "tags are not metadata");

    b.put_tags(bucket, "t", None, &t2).await.unwrap();
    assert_eq!(b.get_tags(bucket, "t", None).await.unwrap(), t2, "put_tags replaces the set");
    let head = b.head(bucket, "t", None).await.unwrap();
    assert_eq!(head.meta.etag, written.etag, "put_tags keeps the object's ETag");
    assert_eq!(get_all(b, bucket, "t").await, b"tagged", "put_tags keeps the bytes");
    b.put_tags(bucket, "t", None, &BTreeMap::new()).await.unwrap();
    assert!(b.get_tags(bucket, "t", None).await.unwrap().is_empty(), "put_tags with no tags clears them");
    b.put_tags(bucket, "t", None, &t1).await.unwrap();

    // Copies replace the tags: the given set, or none.
    let with_t2 = PutOptions { tags: t2.clone(), ..Default::default() };
    b.copy(bucket, "t", None, bucket, "c", with_t2.clone()).await.unwrap();
    assert_eq!(b.get_tags(bucket, "c", None).await.unwrap(), t2, "copy gets the tags given");
    assert_eq!(b.get_tags(bucket, "t", None).await.unwrap(), t1, "copy leaves the source's tags");
    b.copy(bucket, "t", None, bucket, "c2", PutOptions::default()).await.unwrap();
    assert!(b.get_tags(bucket, "c2", None).await.unwrap().is_empty(), "copy without tags drops the source's");
    b.copy(bucket, "t", None, bucket, "t", with_t2).await.unwrap();
    assert_eq!(b.get_tags(bucket, "t", None).await.unwrap(), t2, "copy onto itself replaces the tags");
    put(b, bucket, "t", b"again", PutOptions::default()).await;
    assert!(b.get_tags(bucket, "t", None).await.unwrap().is_empty(), "an overwrite without tags has none");

    let r = b.get_tags(bucket, "missing", None).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "get_tags of a missing key: {r:?}");
    let r = b.put_tags(bucket, "missing", None, &t1).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "put_tags of a missing key: {r:?}");
    assert!(matches!(b.head(bucket, "missing", None).await, Err(BackendError::NoSuchKey)), "put_tags made no object");

    if caps.multipart.is_some() {
        let id = b.create_upload(bucket, "mp", PutOptions { tags: t1.clone(), ..Default::default() }).await.unwrap();
        let etag = b.upload_part(bucket, "mp", &id, 1, body(b"one part", 3), 8).await.unwrap();
        let parts = [crate::backend::CompletedPart { part_number: 1, etag }];
        b.complete_upload(bucket, "mp", &id, &parts, false).await.unwrap();
        assert_eq!(b.get_tags(bucket, "mp", None).await.unwrap(), t1, "a completed upload has its tags");
    }
    drop_bucket(b, bucket, false).await;

    if caps.versioning {
        versioned_tags(b, &format!("{bucket}-v")).await;
    }
}

/// Tags belong to a version: each keeps its own, and `put_tags` with a version id changes only it.
async fn versioned_tags(b: &dyn Backend, bucket: &str) {
    fresh_bucket(b, bucket).await;
    b.put_versioning(bucket, true).await.unwrap();
    let v1 = put(b, bucket, "k", b"1", PutOptions { tags: tag_set(&[("a", "1")]), ..Default::default() }).await;
    let v1 = v1.version_id.expect("versioned put has an id");
    put(b, bucket, "k", b"2", PutOptions { tags: tag_set(&[("a", "2")]), ..Default::default() }).await;
    assert_eq!(b.get_tags(bucket, "k", Some(&v1)).await.unwrap(), tag_set(&[("a", "1")]), "old version's tags");
    assert_eq!(b.get_tags(bucket, "k", None).await.unwrap(), tag_set(&[("a", "2")]), "latest version's tags");
    b.put_tags(bucket, "k", Some(&v1), &tag_set(&[("b", "x")])).await.unwrap();
    assert_eq!(b.get_tags(bucket, "k", Some(&v1)).await.unwrap(), tag_set(&[("b", "x")]), "version retagged");
    assert_eq!(b.get_tags(bucket, "k", None).await.unwrap(), tag_set(&[("a", "2")]), "latest left alone");
    let r = b.get_tags(bucket, "k", Some("no-such-version")).await;
    assert!(matches!(r, Err(BackendError::NoSuchVersion)), "get_tags of an unknown version: {r:?}");
    b.delete(bucket, "k", None).await.unwrap();
    let r = b.get_tags(bucket, "k", None).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "get_tags behind a delete marker: {r:?}");
    drop_bucket(b, bucket, true).await;
}

pub(super) async fn regions(b: &dyn Backend, bucket: &str, caps: Caps) {
    let r = b.bucket_region(&format!("{bucket}-missing")).await;
    assert!(matches!(r, Err(BackendError::NoSuchBucket)), "region of a missing bucket: {r:?}");
    fresh_bucket(b, bucket).await;
    let want = caps.default_region.map(str::to_owned);
    assert_eq!(b.bucket_region(bucket).await.unwrap(), want, "region of a default bucket");

    let placed = format!("{bucket}-fra");
    let opts = CreateBucketOptions { region: Some("eu-central-1".into()), object_lock: false };
    b.create_bucket_with(&placed, opts.clone()).await.unwrap();
    let want = if caps.region_constraint { Some("eu-central-1".to_owned()) } else { want };
    assert_eq!(b.bucket_region(&placed).await.unwrap(), want, "region of a bucket created in eu-central-1");
    let r = b.create_bucket_with(&placed, opts).await;
    assert!(matches!(r, Err(BackendError::BucketAlreadyExists)), "create_bucket_with an existing name: {r:?}");

    // Every backend reports a lock state; without object lock it is always unlocked.
    put(b, &placed, "k", b"x", PutOptions::default()).await;
    assert_eq!(b.lock_state(&placed, "k", None).await.unwrap(), LockState::default(), "a plain object is unlocked");
    let r = b.lock_state(&placed, "missing", None).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "lock_state of a missing key: {r:?}");
    drop_bucket(b, &placed, false).await;
    drop_bucket(b, bucket, false).await;
}

/// S3 Object Lock: a version under a legal hold or an unexpired retention cannot be deleted
/// (`ObjectLocked`), a delete marker can still be added, and once released the version goes.
/// For backends with object lock only; `set` changes lock state as S3's own calls would.
pub async fn object_lock(b: &dyn Backend, bucket: &str, set: &dyn LockSetter) {
    b.create_bucket_with(bucket, CreateBucketOptions { region: None, object_lock: true }).await.unwrap();
    assert_eq!(b.get_versioning(bucket).await.unwrap(), Versioning::Enabled, "object lock turns versioning on");

    let held = put(b, bucket, "held", b"held", PutOptions::default()).await.version_id.expect("a version id");
    assert_eq!(b.lock_state(bucket, "held", Some(&held)).await.unwrap(), LockState::default(), "new version");
    set.set(bucket, "held", &held, &LockState { legal_hold: true, ..Default::default() }).await;
    let state = b.lock_state(bucket, "held", Some(&held)).await.unwrap();
    assert_eq!(state, LockState { legal_hold: true, ..Default::default() }, "legal hold shows");
    assert_eq!(b.lock_state(bucket, "held", None).await.unwrap(), state, "latest version's lock state");
    let r = b.delete(bucket, "held", Some(&held)).await;
    assert!(matches!(r, Err(BackendError::ObjectLocked(_))), "delete of a held version: {r:?}");
    assert_eq!(get_all(b, bucket, "held").await, b"held", "the held version survives");
    let marker = b.delete(bucket, "held", None).await.unwrap();
    assert!(marker.delete_marker, "a delete marker may hide a held version");
    assert!(b.lock_state(bucket, "held", Some(&held)).await.unwrap().legal_hold, "hold outlives the marker");
    set.set(bucket, "held", &held, &LockState::default()).await;
    b.delete(bucket, "held", Some(&held)).await.unwrap_or_else(|e| panic!("delete after release: {e:?}"));

    let kept = put(b, bucket, "kept", b"kept", PutOptions::default()).await.version_id.expect("a version id");
    let now = OffsetDateTime::now_utc();
    let until = OffsetDateTime::from_unix_timestamp(now.unix_timestamp() + 86_400).unwrap();
    let retention = LockState { mode: Some("GOVERNANCE".into()), retain_until: Some(until), legal_hold: false };
    set.set(bucket, "kept", &kept, &retention).await;
    let state = b.lock_state(bucket, "kept", Some(&kept)).await.unwrap();
    assert_eq!(state.mode.as_deref(), Some("GOVERNANCE"), "retention mode: {state:?}");
    let shown = state.retain_until.expect("retain-until shows");
    assert!((shown - until).whole_seconds().abs() <= 1, "retain-until {shown} is not {until}");
    assert!(!state.legal_hold && state.blocks_delete_at(now), "{state:?}");
    let r = b.delete(bucket, "kept", Some(&kept)).await;
    assert!(matches!(r, Err(BackendError::ObjectLocked(_))), "delete of a version under retention: {r:?}");
    set.set(bucket, "kept", &kept, &LockState::default()).await;
    b.delete(bucket, "kept", Some(&kept)).await.unwrap_or_else(|e| panic!("delete after retention: {e:?}"));
    drop_bucket(b, bucket, true).await;
}
