//! Unit tests of the in-memory backend: the shared conformance suite plus its object-lock checks.

use super::*;
use crate::backend::conformance::{self, Caps, MultipartCaps};

#[tokio::test]
async fn memory_passes_conformance() {
    let b = MemoryBackend::new();
    conformance::run_all(
        &b,
        "mem",
        Caps {
            versioning: true,
            list_versions: true,
            path_like_keys: true,
            strict_buckets: true,
            list_etags: true,
            copy_source_if_match: true,
            tagging: true,
            default_region: None,
            region_constraint: false,
            multipart: Some(MultipartCaps::S3),
        },
    )
    .await;
    conformance::unknown_uploads(&b, "mem-mpids").await;
    assert!(b.list_buckets().await.unwrap().is_empty(), "the suite cleans up its buckets");
}

/// Sets locks through [`MemoryBackend::set_lock`] for the shared object-lock checks.
struct MemLocks<'a>(&'a MemoryBackend);

#[async_trait]
impl conformance::LockSetter for MemLocks<'_> {
    async fn set(&self, bucket: &str, key: &str, version_id: &str, lock: &LockState) {
        self.0.set_lock(bucket, key, Some(version_id), lock.clone()).unwrap();
    }
}

#[tokio::test]
async fn memory_passes_object_lock_conformance() {
    let b = MemoryBackend::new();
    conformance::object_lock(&b, "mem-lock", &MemLocks(&b)).await;
    assert!(b.list_buckets().await.unwrap().is_empty(), "the check cleans up its bucket");
}

#[tokio::test]
async fn locks_need_an_object_lock_bucket_which_stays_versioned() {
    let b = MemoryBackend::new();
    b.create_bucket("plain").await.unwrap();
    b.put_versioning("plain", true).await.unwrap();
    let v = b.put("plain", "k", conformance::body(b"x", 1), 1, PutOptions::default()).await.unwrap();
    let held = LockState { legal_hold: true, ..Default::default() };
    let r = b.set_lock("plain", "k", v.version_id.as_deref(), held.clone());
    assert!(matches!(r, Err(BackendError::InvalidRequest(_))), "{r:?}");
    b.create_bucket_with("locked", CreateBucketOptions { region: None, object_lock: true }).await.unwrap();
    let r = b.put_versioning("locked", false).await;
    assert!(matches!(r, Err(BackendError::InvalidRequest(_))), "suspending an object-lock bucket: {r:?}");
    assert!(matches!(b.set_lock("locked", "k", None, held.clone()), Err(BackendError::NoSuchKey)));
    // An expired retention no longer blocks the delete.
    let v = b.put("locked", "k", conformance::body(b"x", 1), 1, PutOptions::default()).await.unwrap();
    let v = v.version_id.unwrap();
    let past = OffsetDateTime::now_utc() - time::Duration::seconds(5);
    let expired = LockState { mode: Some("COMPLIANCE".into()), retain_until: Some(past), legal_hold: false };
    b.set_lock("locked", "k", Some(&v), expired).unwrap();
    b.delete("locked", "k", Some(&v)).await.unwrap();
    assert!(matches!(b.head("locked", "k", Some(&v)).await, Err(BackendError::NoSuchVersion)));
}
