//! CompleteMultipartUpload interrupted at each of its crash points, then retried; housekeeping and
//! DeleteBucket facing a crashed completion's leftovers.

use std::time::Duration;

use super::*;
use crate::backend::{Backend, ListOptions};
use crate::core::test_support::{body, fixture, read, Fixture};
use crate::failpoint::crash_at;

const MIB: usize = 1 << 20;
/// Every crash point of a completion on a backend without its own points (the memory backend).
const POINTS: [&str; 5] = [
    "core.complete.after-intent",
    "core.complete.after-hidden",
    "core.complete.final-upload-started",
    "core.complete.after-copy",
    "core.complete.after-hidden-delete",
];

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| ((i * 11 + usize::from(seed) * 3) % 253) as u8).collect()
}

/// Starts an upload of `k` with two parts (the first off the segment grid, so the layout pads) and
/// returns its id, the named parts and the plaintext.
async fn started(f: &Fixture) -> (String, Vec<(u32, String)>, Vec<u8>) {
    f.svc.create_bucket(&f.alpha, "bkt", None).await.unwrap();
    let id = f.svc.create_upload(&f.alpha, "bkt", "k", PutRequest::default()).await.unwrap();
    let (a, b) = (data(5 * MIB + 7, 1), data(1000, 2));
    let e1 = f.svc.upload_part(&f.alpha, "bkt", "k", &id, 1, body(&a), a.len() as u64).await.unwrap();
    let e2 = f.svc.upload_part(&f.alpha, "bkt", "k", &id, 2, body(&b), b.len() as u64).await.unwrap();
    (id, vec![(1, e1), (2, e2)], [a, b].concat())
}

/// Every backend key of the bucket, hidden ones included.
async fn backend_keys(f: &Fixture) -> Vec<String> {
    let page = f.backend.list("alpha-bkt", ListOptions { max_keys: 1000, ..Default::default() }).await.unwrap();
    page.objects.into_iter().map(|m| m.key).collect()
}

async fn crash(f: &Fixture, point: &'static str, id: &str, named: &[(u32, String)]) {
    let crashed = crash_at(point, f.svc.complete_upload(&f.alpha, "bkt", "k", id, named, false)).await;
    assert!(crashed.is_err(), "{point}: the completion should have crashed");
}

#[tokio::test]
async fn a_completion_crashed_at_any_point_is_finished_by_its_retry() {
    for point in POINTS {
        let f = fixture();
        let (id, named, plain) = started(&f).await;
        crash(&f, point, &id, &named).await;
        let done = f.svc.complete_upload(&f.alpha, "bkt", "k", &id, &named, false).await;
        assert!(done.is_ok(), "{point}: retry failed: {done:?}");
        let got = f.svc.get_object(&f.alpha, "bkt", "k", None, None, None).await.unwrap();
        assert_eq!(read(got.body).await.unwrap(), plain, "{point}");
        let ups = f.svc.list_uploads(&f.alpha, "bkt", "", None, None, 1000).await.unwrap();
        assert!(ups.uploads.is_empty(), "{point}: {:?}", ups.uploads);
        assert_eq!(backend_keys(&f).await, ["k"], "{point}: hidden leftovers after the retry");
        f.svc.delete_object(&f.alpha, "bkt", "k", None).await.unwrap();
        f.svc.delete_bucket(&f.alpha, "bkt").await.unwrap();
    }
}

#[tokio::test]
async fn a_retry_naming_other_parts_does_not_resume_a_crashed_completion() {
    let f = fixture();
    let (id, named, _) = started(&f).await;
    crash(&f, "core.complete.after-hidden", &id, &named).await;
    let other = vec![named[0].clone()];
    let res = f.svc.complete_upload(&f.alpha, "bkt", "k", &id, &other, false).await;
    assert!(matches!(res, Err(CoreError::NoSuchUpload)), "{res:?}");
    assert!(f.svc.complete_upload(&f.alpha, "bkt", "k", &id, &named, false).await.is_ok());
}

#[tokio::test]
async fn delete_bucket_ignores_and_removes_a_crashed_completions_leftovers() {
    let f = fixture();
    let (id, named, _) = started(&f).await;
    crash(&f, "core.complete.after-hidden", &id, &named).await;
    assert_eq!(backend_keys(&f).await.len(), 2, "hidden object and intent");
    f.svc.delete_bucket(&f.alpha, "bkt").await.unwrap();
    assert!(f.backend.head_bucket("alpha-bkt").await.is_err());
}

#[tokio::test]
async fn delete_bucket_with_a_client_object_and_leftovers_is_refused_and_keeps_the_leftovers() {
    let f = fixture();
    let (id, named, _) = started(&f).await;
    crash(&f, "core.complete.after-hidden", &id, &named).await;
    f.svc.put_object(&f.alpha, "bkt", "z", body(b"x"), 1, PutRequest::default()).await.unwrap();
    let res = f.svc.delete_bucket(&f.alpha, "bkt").await;
    assert!(matches!(res, Err(CoreError::Backend(BackendError::BucketNotEmpty))), "{res:?}");
    // The crashed completion is still resumable.
    assert!(f.svc.complete_upload(&f.alpha, "bkt", "k", &id, &named, false).await.is_ok());
}

#[tokio::test]
async fn housekeeping_collects_crashed_completions_by_age_only() {
    let f = fixture();
    let (id, named, _) = started(&f).await;
    crash(&f, "core.complete.after-hidden", &id, &named).await;
    let young = f.svc.housekeep(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(young.hidden_objects, 0);
    assert_eq!(backend_keys(&f).await.len(), 2);
    // Age 0: everything written before now is old.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let old = f.svc.housekeep(Duration::ZERO).await.unwrap();
    assert!(old.hidden_objects >= 1, "{old:?}");
    assert!(backend_keys(&f).await.is_empty());
    f.svc.delete_bucket(&f.alpha, "bkt").await.unwrap();
}

#[tokio::test]
async fn on_a_versioned_bucket_a_resumed_completion_leaves_no_hidden_version_behind() {
    for point in POINTS {
        let f = fixture();
        let (id, named, plain) = started(&f).await;
        f.svc.put_versioning(&f.alpha, "bkt", true).await.unwrap();
        // Two attempts that each wrote an intent before the last one finishes.
        crash(&f, "core.complete.after-intent", &id, &named).await;
        crash(&f, point, &id, &named).await;
        f.svc.complete_upload(&f.alpha, "bkt", "k", &id, &named, false).await.unwrap();
        let got = f.svc.get_object(&f.alpha, "bkt", "k", None, None, None).await.unwrap();
        assert_eq!(read(got.body).await.unwrap(), plain, "{point}");
        let page = f
            .backend
            .list_versions("alpha-bkt", crate::backend::ListVersionsOptions { max_keys: 1000, ..Default::default() })
            .await
            .unwrap();
        let hidden: Vec<_> = page.versions.iter().filter(|v| v.meta.key.starts_with(".blobseal/")).collect();
        assert!(hidden.is_empty(), "{point}: {hidden:?}");
    }
}

#[tokio::test]
async fn housekeeping_aborts_a_crashed_final_copy_upload_on_the_clients_key() {
    let f = fixture();
    let (id, named, _) = started(&f).await;
    crash(&f, "core.complete.final-upload-started", &id, &named).await;
    let raw = |f: &Fixture| {
        let b = f.backend.clone();
        async move { b.list_uploads("alpha-bkt", ListUploadsOptions { max_uploads: 1000, ..Default::default() }).await }
    };
    let keys: Vec<_> = raw(&f).await.unwrap().uploads.into_iter().map(|u| u.key).collect();
    assert_eq!(keys, ["k"], "the interrupted final copy");
    assert_eq!(f.svc.housekeep(Duration::from_secs(3600)).await.unwrap().hidden_objects, 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = f.svc.housekeep(Duration::ZERO).await.unwrap();
    assert_eq!(report.hidden_objects, 2, "hidden object (with its intent), final-copy upload: {report:?}");
    assert!(raw(&f).await.unwrap().uploads.is_empty());
}
