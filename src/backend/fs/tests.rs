//! Unit tests of the filesystem backend: the shared conformance suite plus fs-only cases.

use md5::Digest as _;

use super::format::object_file_name;
use super::*;
use crate::backend::conformance::{self, Caps, MultipartCaps};
use crate::backend::{BackendError, ListOptions, PutOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let b = FsBackend::new(dir.path().join("root"));
    let caps = Caps {
        versioning: false,
        list_versions: true,
        path_like_keys: true,
        strict_buckets: true,
        list_etags: true,
        copy_source_if_match: true,
        tagging: true,
        default_region: None,
        region_constraint: false,
        multipart: Some(MultipartCaps::S3),
    };
    conformance::run_all(&b, "fs", caps).await;
    conformance::unknown_uploads(&b, "fs-mpids").await;
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

/// Entries of `<bucket>/.uploads`, for checking what uploads leave on disk.
fn upload_dirs(root: &std::path::Path, bucket: &str) -> Vec<String> {
    match std::fs::read_dir(root.join(bucket).join(".uploads")) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name().into_string().unwrap()).collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_leave_nothing_on_disk() {
    use crate::backend::CompletedPart;
    let dir = tempfile::tempdir().unwrap();
    let b = FsBackend::new(dir.path().to_path_buf());
    b.create_bucket("bkt").await.unwrap();
    let id = b.create_upload("bkt", "k", PutOptions::default()).await.unwrap();
    assert_eq!(upload_dirs(dir.path(), "bkt"), std::slice::from_ref(&id));
    let etag = b.upload_part("bkt", "k", &id, 1, conformance::body(b"abc", 1), 3).await.unwrap();
    // A failed part leaves no temp file in the upload directory.
    let r = b.upload_part("bkt", "k", &id, 2, conformance::failing_body(b"ab"), 9).await;
    assert!(matches!(r, Err(BackendError::InvalidRequest(_))), "{r:?}");
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("bkt/.uploads").join(&id))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["part-00001", "upload.json"]);
    b.complete_upload("bkt", "k", &id, &[CompletedPart { part_number: 1, etag }], false).await.unwrap();
    assert!(upload_dirs(dir.path(), "bkt").is_empty(), "completion removes the upload directory");
    let id = b.create_upload("bkt", "k2", PutOptions::default()).await.unwrap();
    b.abort_upload("bkt", "k2", &id).await.unwrap();
    assert!(upload_dirs(dir.path(), "bkt").is_empty(), "abort removes the upload directory");
    // Only the object file and the bucket marker remain at the top.
    let top: Vec<String> = std::fs::read_dir(dir.path().join("bkt"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ".uploads")
        .collect();
    assert_eq!(top.len(), 2, "{top:?}");
}

#[tokio::test]
async fn a_part_changed_behind_the_completion_is_refused() {
    use crate::backend::CompletedPart;
    let dir = tempfile::tempdir().unwrap();
    let b = FsBackend::new(dir.path().to_path_buf());
    b.create_bucket("bkt").await.unwrap();
    let id = b.create_upload("bkt", "k", PutOptions::default()).await.unwrap();
    let etag = b.upload_part("bkt", "k", &id, 1, conformance::body(b"abc", 1), 3).await.unwrap();
    // Tamper with the stored part's MD5 prefix: the ETag named no longer matches the stored part.
    let part = dir.path().join("bkt/.uploads").join(&id).join("part-00001");
    let mut bytes = std::fs::read(&part).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&part, bytes).unwrap();
    let r = b.complete_upload("bkt", "k", &id, &[CompletedPart { part_number: 1, etag }], false).await;
    assert!(matches!(r, Err(BackendError::InvalidPart(_))), "{r:?}");
    assert!(matches!(b.head("bkt", "k", None).await, Err(BackendError::NoSuchKey)));
}

#[tokio::test]
async fn files_without_tags_keep_the_old_format_and_old_files_parse() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let b = FsBackend::new(dir.path().to_path_buf());
    b.create_bucket("bkt").await.unwrap();
    // A file as written before tags existed: no "tags" (nor "etag") in its JSON header.
    let body = b"old body";
    let json = br#"{"key":"old","size":8,"last_modified":1700000000,"metadata":{"m":"1"},"content_type":"text/plain","content_encoding":null,"content_disposition":null,"content_language":null,"cache_control":null,"expires":null}"#;
    let mut file = b"BSOB\x01".to_vec();
    file.extend_from_slice(&md5::Md5::digest(body));
    file.extend_from_slice(&(json.len() as u32).to_be_bytes());
    file.extend_from_slice(json);
    file.extend_from_slice(body);
    std::fs::write(dir.path().join("bkt").join(object_file_name("old")), &file).unwrap();
    assert!(b.get_tags("bkt", "old", None).await.unwrap().is_empty(), "an old file has no tags");
    let before = b.head("bkt", "old", None).await.unwrap();

    let tags: BTreeMap<String, String> = [("k".to_owned(), "v".to_owned())].into();
    b.put_tags("bkt", "old", None, &tags).await.unwrap();
    assert_eq!(b.get_tags("bkt", "old", None).await.unwrap(), tags);
    let after = b.head("bkt", "old", None).await.unwrap();
    assert_eq!(after.meta.last_modified, before.meta.last_modified, "tagging is not a write of the object");
    assert_eq!((after.meta.etag, after.metadata, after.headers), (before.meta.etag, before.metadata, before.headers));

    // Clearing the tags gives back exactly the old bytes: untagged files keep the old format.
    b.put_tags("bkt", "old", None, &BTreeMap::new()).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("bkt").join(object_file_name("old"))).unwrap(), file);
    let r = b.get_tags("bkt", "old", Some("7")).await;
    assert!(matches!(r, Err(BackendError::NoSuchVersion)), "{r:?}");
}

#[tokio::test]
async fn a_stray_copy_under_another_name_is_not_an_object() {
    let dir = tempfile::tempdir().unwrap();
    let b = FsBackend::new(dir.path().to_path_buf());
    b.create_bucket("bkt").await.unwrap();
    b.put("bkt", "k", conformance::body(b"hello", 2), 5, PutOptions::default()).await.unwrap();
    let path = dir.path().join("bkt").join(object_file_name("k"));
    // The file copied under the name of another key: the name decides, so the copy is nobody's object.
    std::fs::copy(&path, dir.path().join("bkt").join(object_file_name("other"))).unwrap();
    let page = b.list("bkt", ListOptions { max_keys: 10, ..Default::default() }).await.unwrap();
    let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["k"], "listed once");
    assert!(matches!(b.head("bkt", "other", None).await, Err(BackendError::NoSuchKey)));
    assert_eq!(b.head("bkt", "k", None).await.unwrap().meta.size, 5);
}
