//! The fs backend under crashes and races: DeleteBucket against puts, housekeeping of leftovers,
//! completion interrupted after its object appeared.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::backend::{CompletedPart, PutOptions};
use crate::failpoint::crash_at;

fn bytes_body(data: Vec<u8>) -> ByteStream {
    Box::pin(futures::stream::once(async move { Ok(bytes::Bytes::from(data)) }))
}

async fn put(b: &FsBackend, bucket: &str, key: &str, data: &[u8]) -> Result<PutResult> {
    b.put(bucket, key, bytes_body(data.to_vec()), data.len() as u64, PutOptions::default()).await
}

/// A put racing DeleteBucket either fails or makes DeleteBucket answer BucketNotEmpty: never a put
/// answered OK whose object is gone (the old check-then-remove lost one in ~100 rounds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_bucket_and_a_racing_put_are_linearizable() {
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(FsBackend::new(dir.path().join("root")));
    let body = vec![7u8; 64 * 1024];
    let (mut put_won, mut delete_won) = (0, 0);
    for round in 0..150 {
        b.create_bucket("race").await.unwrap();
        let (b1, b2, data) = (Arc::clone(&b), Arc::clone(&b), body.clone());
        let putter = tokio::spawn(async move { put(&b1, "race", "k", &data).await });
        let deleter = tokio::spawn(async move {
            // Spread the deletes over the put's lifetime.
            for _ in 0..(round % 7) {
                tokio::task::yield_now().await;
            }
            b2.delete_bucket("race").await
        });
        let (p, d) = (putter.await.unwrap(), deleter.await.unwrap());
        match (&p, &d) {
            (Ok(_), Err(BackendError::BucketNotEmpty)) => {
                put_won += 1;
                assert!(b.head("race", "k", None).await.is_ok(), "round {round}: acknowledged object lost");
            }
            (Err(_), Ok(())) => delete_won += 1,
            (Ok(_), Ok(())) => panic!("round {round}: put answered OK but its bucket was deleted"),
            other => panic!("round {round}: unexpected {other:?}"),
        }
        // Leave an empty bucket-less root for the next round.
        if p.is_ok() {
            b.delete("race", "k", None).await.unwrap();
            b.delete_bucket("race").await.unwrap();
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("root")).unwrap().collect();
        assert!(leftovers.is_empty(), "round {round}: {leftovers:?}");
    }
    assert!(put_won + delete_won == 150);
}

fn set_age(path: &std::path::Path, age: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test]
async fn housekeeping_removes_old_temp_files_and_keeps_young_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let b = FsBackend::new(root.clone());
    b.create_bucket("bkt").await.unwrap();
    put(&b, "bkt", "obj", b"data").await.unwrap();
    let id = b.create_upload("bkt", "up", PutOptions::default()).await.unwrap();
    let bucket = root.join("bkt");
    let upload = bucket.join(".uploads").join(&id);
    let (stale, fresh) = (bucket.join(".tmp-1-2-3"), bucket.join(".tmp-4-5-6"));
    let stale_part = upload.join(".tmp-7-8-9");
    for p in [&stale, &fresh, &stale_part] {
        std::fs::write(p, b"partial").unwrap();
    }
    set_age(&stale, Duration::from_secs(7200));
    set_age(&stale_part, Duration::from_secs(7200));
    // Leftovers of interrupted removals: an upload directory renamed away, a bucket tombstone.
    let gone = bucket.join(".uploads").join(".gone-x");
    std::fs::create_dir(&gone).unwrap();
    let tomb = root.join(".deleting-old");
    std::fs::create_dir(&tomb).unwrap();
    let cutoff = SystemTime::now() - Duration::from_secs(3600);
    let removed = b.housekeep(cutoff).await.unwrap();
    assert_eq!(removed, 2, "the two stale temp files");
    assert!(!stale.exists() && !stale_part.exists());
    assert!(fresh.exists(), "a young temp file may be a live write");
    assert!(gone.exists() && tomb.exists(), "young directories stay");
    // A cutoff in the future makes everything old, directories included.
    let removed = b.housekeep(SystemTime::now() + Duration::from_secs(1)).await.unwrap();
    assert_eq!(removed, 3, "fresh temp file, .gone-x, .deleting-old");
    // Objects and live uploads are never touched.
    assert!(b.head("bkt", "obj", None).await.is_ok());
    assert!(b.list_parts("bkt", "up", &id, Default::default()).await.is_ok());
}

/// A crash after the completed object's rename, or while the upload directory is removed, leaves the
/// upload whole or gone, never half-deleted: the retry succeeds or the object is complete.
#[tokio::test]
async fn a_completion_interrupted_after_its_rename_is_retryable() {
    for point in ["fs.complete.after-rename", "fs.upload-dir.after-gone"] {
        let dir = tempfile::tempdir().unwrap();
        let b = FsBackend::new(dir.path().join("root"));
        b.create_bucket("bkt").await.unwrap();
        let id = b.create_upload("bkt", "k", PutOptions::default()).await.unwrap();
        let part = vec![3u8; 5 << 20];
        let etag = b.upload_part("bkt", "k", &id, 1, bytes_body(part.clone()), part.len() as u64).await.unwrap();
        let parts = [CompletedPart { part_number: 1, etag }];
        assert!(crash_at(point, b.complete_upload("bkt", "k", &id, &parts, false)).await.is_err(), "{point}");
        let uploads = b.list_uploads("bkt", Default::default()).await.unwrap().uploads;
        match point {
            "fs.complete.after-rename" => {
                assert_eq!(uploads.len(), 1, "{point}: the upload is whole");
                b.complete_upload("bkt", "k", &id, &parts, false).await.unwrap();
            }
            _ => assert!(uploads.is_empty(), "{point}: the upload is gone whole"),
        }
        assert_eq!(b.head("bkt", "k", None).await.unwrap().meta.size, part.len() as u64, "{point}");
        assert!(b.list_uploads("bkt", Default::default()).await.unwrap().uploads.is_empty());
        b.housekeep(SystemTime::now() + Duration::from_secs(1)).await.unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path().join("root/bkt/.uploads")).unwrap().collect();
        assert!(left.is_empty(), "{point}: {left:?}");
    }
}

/// A put acknowledged just before DeleteBucket's tombstone rename, then a crash before the check that
/// would have renamed the bucket back: housekeeping restores the bucket (whatever the age), it never
/// deletes acknowledged objects.
#[tokio::test]
async fn housekeeping_restores_a_tombstoned_bucket_that_holds_objects() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let b = FsBackend::new(root.clone());
    for bucket in ["full.tmp-x", "empty"] {
        b.create_bucket(bucket).await.unwrap();
    }
    put(&b, "full.tmp-x", "k", b"acknowledged").await.unwrap();
    std::fs::rename(root.join("full.tmp-x"), root.join(format!(".deleting-full.tmp-x{}", temp_name()))).unwrap();
    std::fs::rename(root.join("empty"), root.join(format!(".deleting-empty{}", temp_name()))).unwrap();
    assert!(b.head_bucket("full.tmp-x").await.is_err());
    let removed = b.housekeep(SystemTime::now() + Duration::from_secs(1)).await.unwrap();
    assert_eq!(removed, 1, "the empty tombstone");
    assert!(b.head("full.tmp-x", "k", None).await.is_ok(), "the acknowledged object is back");
    let names: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["full.tmp-x"]);
}
