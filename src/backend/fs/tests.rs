//! Unit tests of the filesystem backend: the shared conformance suite plus fs-only cases.

use super::format::object_file_name;
use super::*;
use crate::backend::conformance::{self, Caps};
use crate::backend::{BackendError, ListOptions, PutOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let b = FsBackend::new(dir.path().join("root"));
    let caps =
        Caps { versioning: false, list_versions: true, path_like_keys: true, strict_buckets: true, list_etags: true };
    conformance::run_all(&b, "fs", caps).await;
    // No temp files survive, including from the failed puts.
    for bucket in std::fs::read_dir(dir.path().join("root")).unwrap() {
        for f in std::fs::read_dir(bucket.unwrap().path()).unwrap() {
            let name = f.unwrap().file_name().into_string().unwrap();
            assert!(!name.starts_with(".tmp-"), "leftover temp file {name}");
        }
    }
}

#[tokio::test]
async fn bad_bucket_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = FsBackend::new(dir.path().to_path_buf());
    for name in ["", ".", "..", "a/b", "../x", ".hidden", "a\0b"] {
        let r = b.create_bucket(name).await;
        assert!(matches!(r, Err(BackendError::InvalidRequest(_))), "{name:?}: {r:?}");
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing created");
}

#[tokio::test]
async fn corrupt_object_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let b = FsBackend::new(dir.path().to_path_buf());
    b.create_bucket("bkt").await.unwrap();
    b.put("bkt", "k", conformance::body(b"hello", 2), 5, PutOptions::default()).await.unwrap();
    let path = dir.path().join("bkt").join(object_file_name("k"));
    let full = std::fs::read(&path).unwrap();
    for cut in 0..full.len() {
        std::fs::write(&path, &full[..cut]).unwrap();
        let r = b.head("bkt", "k", None).await;
        assert!(matches!(r, Err(BackendError::Other { .. })), "cut at {cut}: {r:?}");
    }
    // The listing skips it instead of failing.
    let page = b.list("bkt", ListOptions { max_keys: 10, ..Default::default() }).await.unwrap();
    assert!(page.objects.is_empty());
}

#[tokio::test]
async fn versions_other_than_null_do_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let b = FsBackend::new(dir.path().to_path_buf());
    b.create_bucket("bkt").await.unwrap();
    b.put("bkt", "k", conformance::body(b"v", 1), 1, PutOptions::default()).await.unwrap();
    assert!(b.head("bkt", "k", Some("null")).await.is_ok());
    assert!(matches!(b.head("bkt", "k", Some("3")).await, Err(BackendError::NoSuchVersion)));
    assert!(matches!(b.put_versioning("bkt", true).await, Err(BackendError::NotSupported(_))));
}
