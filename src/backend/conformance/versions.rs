//! Checks of versioning, and of its absence.

use super::{drop_bucket, fresh_bucket, get_all, put, read, Caps};
use crate::backend::{Backend, BackendError, GetOptions, ListOptions, ListVersionsOptions, PutOptions, Versioning};

pub(super) async fn no_versioning(b: &dyn Backend, bucket: &str, caps: Caps) {
    fresh_bucket(b, bucket).await;
    assert_eq!(b.get_versioning(bucket).await.unwrap(), Versioning::Unversioned);
    put(b, bucket, "k1", b"one", PutOptions::default()).await;
    put(b, bucket, "k1", b"one again", PutOptions::default()).await;
    put(b, bucket, "k2", b"two", PutOptions::default()).await;
    if caps.list_versions {
        let page = b.list_versions(bucket, ListVersionsOptions { max_keys: 1000, ..Default::default() }).await.unwrap();
        let got: Vec<_> =
            page.versions.iter().map(|v| (v.meta.key.as_str(), v.meta.version_id.as_deref(), v.is_latest)).collect();
        assert_eq!(got, [("k1", None, true), ("k2", None, true)], "unversioned list_versions");
        assert_eq!(page.versions.first().map(|v| v.meta.size), Some(9));
    }
    drop_bucket(b, bucket, false).await;
}

pub(super) async fn versioning(b: &dyn Backend, bucket: &str) {
    fresh_bucket(b, bucket).await;
    assert_eq!(b.get_versioning(bucket).await.unwrap(), Versioning::Unversioned);
    b.put_versioning(bucket, true).await.unwrap();
    assert_eq!(b.get_versioning(bucket).await.unwrap(), Versioning::Enabled);
    let v1 = put(b, bucket, "k", b"version one", PutOptions::default()).await.version_id.expect("v1 has an id");
    let v2 = put(b, bucket, "k", b"version two", PutOptions::default()).await.version_id.expect("v2 has an id");
    assert_ne!(v1, v2);
    assert_eq!(get_all(b, bucket, "k").await, b"version two");
    let (got, bytes) = read(b, bucket, "k", GetOptions { version_id: Some(v1.clone()), range: None }).await;
    assert_eq!(bytes, b"version one", "get by version id");
    assert_eq!(got.head.meta.version_id.as_deref(), Some(v1.as_str()));
    let head = b.head(bucket, "k", Some(&v2)).await.unwrap();
    assert_eq!(head.meta.size, 11);
    assert_eq!(head.meta.version_id.as_deref(), Some(v2.as_str()));

    let del = b.delete(bucket, "k", None).await.unwrap();
    assert!(del.delete_marker, "unversioned delete in a versioned bucket makes a delete marker");
    let marker = del.version_id.expect("delete marker has a version id");
    let r = b.get(bucket, "k", GetOptions::default()).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "get behind a delete marker: {r:?}");
    let page = b.list_versions(bucket, ListVersionsOptions { max_keys: 1000, ..Default::default() }).await.unwrap();
    let got: Vec<_> = page
        .versions
        .iter()
        .map(|v| (v.meta.version_id.clone().unwrap_or_default(), v.is_latest, v.is_delete_marker))
        .collect();
    assert_eq!(got, [(marker.clone(), true, true), (v2.clone(), false, false), (v1.clone(), false, false)]);
    let listed = b.list(bucket, ListOptions { max_keys: 10, ..Default::default() }).await.unwrap();
    assert!(listed.objects.is_empty(), "a deleted key is not listed");

    // S3 also answers `x-amz-delete-marker: true` here; moto 5.2 does not, so that is not checked.
    let del = b.delete(bucket, "k", Some(&marker)).await.unwrap();
    assert_eq!(del.version_id.as_deref(), Some(marker.as_str()), "delete by version id names that version");
    assert_eq!(get_all(b, bucket, "k").await, b"version two", "removing the marker restores the object");
    b.delete(bucket, "k", Some(&v2)).await.unwrap();
    assert_eq!(get_all(b, bucket, "k").await, b"version one", "deleting the latest version exposes the previous");
    let r = b.copy(bucket, "k", Some(&v1), bucket, "k2", PutOptions::default()).await.unwrap();
    assert!(r.version_id.is_some(), "copy into a versioned bucket makes a version");
    assert_eq!(get_all(b, bucket, "k2").await, b"version one");
    drop_bucket(b, bucket, true).await;
}
