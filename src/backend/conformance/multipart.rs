//! Checks of multipart uploads: parts in any order and replaced, completion of a subset, the
//! multipart ETag, metadata from creation, S3's completion errors, abort, part copies, conditional
//! completion, upload listings, and that nothing in progress is visible as an object.

use std::collections::BTreeMap;

use md5::{Digest as _, Md5};

use super::{body, drop_bucket, fresh_bucket, get_all, md5_hex, payload, put, Caps};
use crate::backend::{
    Backend, BackendError, CompletedPart, ContentHeaders, ListOptions, ListPartsOptions, ListUploadsOptions,
    ListVersionsOptions, PutOptions, UploadInfo, MIN_PART_SIZE,
};

/// What the backend under test supports of multipart; see [`Caps::multipart`].
#[derive(Debug, Clone, Copy)]
pub struct MultipartCaps {
    /// `list_uploads` works. When false it must answer `NotSupported` (s3s-fs has no
    /// ListMultipartUploads).
    pub list_uploads: bool,
    /// `list_uploads` sorts by key and honours `max_uploads`, `key_marker` and `upload_id_marker`.
    /// False for moto 5.2, which always lists every upload in one page, in creation order.
    pub list_uploads_paging: bool,
    /// S3's validation: a completion checks every named part's ETag, the ascending order and the
    /// minimum size, accepts a subset with gaps and leaves the upload in place when it refuses;
    /// abort and `list_parts` of an unknown upload are `NoSuchUpload`; `list_parts` reports
    /// ETags in part-number order and pages. False for s3s-fs, which requires parts 1..=N,
    /// ignores ETags, discards the upload on a refused completion, answers AccessDenied for
    /// unknown uploads and lists parts without ETags, unordered and unpaged.
    pub validation: bool,
    /// `upload_part_copy` refuses a range beyond the source with `InvalidRange`. False for moto
    /// 5.2, which copies whatever part of the range exists.
    pub copy_range_checked: bool,
}

impl MultipartCaps {
    /// Everything S3 does: what the `fs` and `memory` backends must pass.
    pub const S3: Self =
        Self { list_uploads: true, list_uploads_paging: true, validation: true, copy_range_checked: true };
}

/// The smallest size of a part other than the last.
const MIN: usize = MIN_PART_SIZE as usize;

fn part(n: u32, etag: &str) -> CompletedPart {
    CompletedPart { part_number: n, etag: etag.to_owned() }
}

/// S3's multipart ETag, computed independently of the backends' helper.
fn expected_etag(parts: &[&[u8]]) -> String {
    let mut cat = Vec::new();
    for p in parts {
        cat.extend_from_slice(&Md5::digest(p));
    }
    format!("{}-{}", hex::encode(Md5::digest(&cat)), parts.len())
}

async fn upload(b: &dyn Backend, bucket: &str, key: &str, id: &str, n: u32, data: &[u8]) -> String {
    match b.upload_part(bucket, key, id, n, body(data, 65_536 + 5), data.len() as u64).await {
        Ok(etag) => etag,
        Err(e) => panic!("upload_part {bucket}/{key} #{n} ({} bytes): {e:?}", data.len()),
    }
}

async fn create(b: &dyn Backend, bucket: &str, key: &str, opts: PutOptions) -> String {
    match b.create_upload(bucket, key, opts).await {
        Ok(id) => id,
        Err(e) => panic!("create_upload {bucket}/{key}: {e:?}"),
    }
}

async fn part_numbers(b: &dyn Backend, bucket: &str, key: &str, id: &str) -> Vec<(u32, u64)> {
    let page = b.list_parts(bucket, key, id, ListPartsOptions { max_parts: 1000, ..Default::default() }).await;
    let mut got: Vec<(u32, u64)> = page.unwrap().parts.iter().map(|p| (p.part_number, p.size)).collect();
    got.sort_unstable();
    got
}

async fn all_uploads(b: &dyn Backend, bucket: &str, prefix: &str) -> Vec<UploadInfo> {
    let opts = ListUploadsOptions { prefix: prefix.into(), max_uploads: 1000, ..Default::default() };
    b.list_uploads(bucket, opts).await.unwrap().uploads
}

/// Runs every multipart check, each in its own bucket named `{prefix}-mp<check>`.
pub(super) async fn run(b: &dyn Backend, prefix: &str, mp: MultipartCaps, caps: Caps) {
    basics(b, &format!("{prefix}-mpu"), mp, caps).await;
    refusals(b, &format!("{prefix}-mperr"), mp).await;
    part_copy(b, &format!("{prefix}-mpcopy"), mp).await;
    conditional(b, &format!("{prefix}-mpcond")).await;
    if mp.list_uploads {
        listing(b, &format!("{prefix}-mplist"), mp).await;
    } else {
        fresh_bucket(b, &format!("{prefix}-mplist")).await;
        let r = b.list_uploads(&format!("{prefix}-mplist"), ListUploadsOptions::default()).await;
        assert!(matches!(r, Err(BackendError::NotSupported(_))), "list_uploads without support: {r:?}");
        drop_bucket(b, &format!("{prefix}-mplist"), false).await;
    }
}

async fn basics(b: &dyn Backend, bucket: &str, mp: MultipartCaps, caps: Caps) {
    fresh_bucket(b, bucket).await;
    let key = "mp/obj ☃";
    let (p1, p2, p3) = (payload(MIN, 11), payload(MIN + 3, 12), payload(1000, 13));
    let mut metadata = BTreeMap::new();
    metadata.insert("color".to_owned(), "green".to_owned());
    metadata.insert("x-blobseal-env".to_owned(), "abc=".to_owned());
    let headers = ContentHeaders {
        content_type: Some("application/x-multi".into()),
        cache_control: Some("no-store".into()),
        ..Default::default()
    };
    let opts = PutOptions { metadata: metadata.clone(), headers: headers.clone(), ..Default::default() };
    let id = create(b, bucket, key, opts).await;

    // Out of order, and part 2 re-uploaded: the second upload replaces the first.
    let e3 = upload(b, bucket, key, &id, 3, &p3).await;
    let e1 = upload(b, bucket, key, &id, 1, &p1).await;
    upload(b, bucket, key, &id, 2, &payload(MIN, 99)).await;
    let e2 = upload(b, bucket, key, &id, 2, &p2).await;
    assert_eq!([&e1, &e2, &e3], [&md5_hex(&p1), &md5_hex(&p2), &md5_hex(&p3)], "part ETags are the parts' MD5s");

    let r = b.head(bucket, key, None).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "an upload in progress is no object: {r:?}");
    let listed = b.list(bucket, ListOptions { max_keys: 1000, ..Default::default() }).await.unwrap();
    assert!(listed.objects.is_empty() && listed.common_prefixes.is_empty(), "uploads are not listed: {listed:?}");
    if caps.list_versions {
        let page = b.list_versions(bucket, ListVersionsOptions { max_keys: 1000, ..Default::default() }).await;
        assert!(page.unwrap().versions.is_empty(), "uploads are not listed as versions");
    }

    let sizes = vec![(1, p1.len() as u64), (2, p2.len() as u64), (3, p3.len() as u64)];
    assert_eq!(part_numbers(b, bucket, key, &id).await, sizes, "list_parts after a re-upload");
    if mp.validation {
        let page = b.list_parts(bucket, key, &id, ListPartsOptions { max_parts: 1000, ..Default::default() }).await;
        let etags: Vec<String> = page.unwrap().parts.into_iter().map(|p| p.etag).collect();
        assert_eq!(etags, [e1.clone(), e2.clone(), e3.clone()], "list_parts ETags in part order");
        let first = b.list_parts(bucket, key, &id, ListPartsOptions { max_parts: 2, part_number_marker: None });
        let first = first.await.unwrap();
        assert_eq!(first.parts.iter().map(|p| p.part_number).collect::<Vec<_>>(), [1, 2], "first page of parts");
        assert!(first.is_truncated, "first page of parts is truncated");
        assert_eq!(first.next_part_number_marker, Some(2));
        let opts = ListPartsOptions { max_parts: 2, part_number_marker: first.next_part_number_marker };
        let second = b.list_parts(bucket, key, &id, opts).await.unwrap();
        assert_eq!(second.parts.iter().map(|p| p.part_number).collect::<Vec<_>>(), [3], "second page of parts");
        assert!(!second.is_truncated, "last page of parts");
    }
    if mp.list_uploads {
        let ups = all_uploads(b, bucket, "").await;
        assert!(ups.iter().any(|u| u.key == key && u.upload_id == id), "upload listed: {ups:?}");
    }

    // A quoted ETag is accepted, as clients send them.
    let parts = [part(1, &format!("\"{e1}\"")), part(2, &e2), part(3, &e3)];
    let done = b.complete_upload(bucket, key, &id, &parts, false).await.unwrap();
    let want_etag = expected_etag(&[&p1, &p2, &p3]);
    assert_eq!(done.etag, want_etag, "multipart ETag");
    let head = b.head(bucket, key, None).await.unwrap();
    assert_eq!(head.meta.size, (p1.len() + p2.len() + p3.len()) as u64);
    assert_eq!(head.meta.etag, want_etag, "HEAD reports the multipart ETag");
    assert_eq!(head.metadata, metadata, "metadata from create_upload");
    assert_eq!(head.headers.content_type, headers.content_type, "content type from create_upload");
    assert_eq!(head.headers.cache_control, headers.cache_control, "cache control from create_upload");
    let got = get_all(b, bucket, key).await;
    assert!(got == [p1.as_slice(), &p2, &p3].concat(), "completed object has the parts' bytes in order");
    let listed = b.list(bucket, ListOptions { max_keys: 1000, ..Default::default() }).await.unwrap();
    let keys: Vec<&str> = listed.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, [key], "completed object listed");

    if mp.validation {
        let r = b.abort_upload(bucket, key, &id).await;
        assert!(matches!(r, Err(BackendError::NoSuchUpload)), "abort after complete: {r:?}");
        let r = b.list_parts(bucket, key, &id, ListPartsOptions::default()).await;
        assert!(matches!(r, Err(BackendError::NoSuchUpload)), "list_parts after complete: {r:?}");
    }
    if mp.list_uploads {
        assert!(all_uploads(b, bucket, "").await.is_empty(), "a completed upload is not listed");
    }
    drop_bucket(b, bucket, false).await;
}

/// S3's refusals of a completion, each leaving the upload intact; then a completion with a gap;
/// then abort.
async fn refusals(b: &dyn Backend, bucket: &str, mp: MultipartCaps) {
    fresh_bucket(b, bucket).await;
    let key = "refused";
    if mp.validation {
        let id = create(b, bucket, key, PutOptions::default()).await;
        let (p1, p2, p3) = (payload(MIN, 31), payload(100, 32), payload(10, 33));
        let e1 = upload(b, bucket, key, &id, 1, &p1).await;
        let e2 = upload(b, bucket, key, &id, 2, &p2).await;
        let e3 = upload(b, bucket, key, &id, 3, &p3).await;
        let cases: [(&[CompletedPart], &str); 5] = [
            (&[part(1, &e2)], "wrong ETag"),
            (&[part(1, &e1), part(4, &e3)], "missing part"),
            (&[part(2, &e2), part(1, &e1)], "descending order"),
            (&[part(1, &e1), part(1, &e1)], "repeated part"),
            (&[part(2, &e2), part(3, &e3)], "small part not last"),
        ];
        for (parts, what) in cases {
            let r = b.complete_upload(bucket, key, &id, parts, false).await;
            let ok = match what {
                "wrong ETag" | "missing part" => matches!(r, Err(BackendError::InvalidPart(_))),
                "small part not last" => matches!(r, Err(BackendError::EntityTooSmall)),
                _ => matches!(r, Err(BackendError::InvalidPartOrder)),
            };
            assert!(ok, "complete with {what}: {r:?}");
            let r = b.head(bucket, key, None).await;
            assert!(matches!(r, Err(BackendError::NoSuchKey)), "no object after {what}: {r:?}");
        }
        assert_eq!(part_numbers(b, bucket, key, &id).await.len(), 3, "refused completions keep the upload");

        // A subset with a gap (part 2 left out) is fine.
        let done = b.complete_upload(bucket, key, &id, &[part(1, &e1), part(3, &e3)], false).await.unwrap();
        assert_eq!(done.etag, expected_etag(&[&p1, &p3]), "ETag of a completion with a gap");
        assert!(get_all(b, bucket, key).await == [p1.as_slice(), &p3].concat(), "bytes of a completion with a gap");
    }

    let id = create(b, bucket, "aborted", PutOptions::default()).await;
    upload(b, bucket, "aborted", &id, 1, b"some bytes").await;
    b.abort_upload(bucket, "aborted", &id).await.unwrap();
    let r = b.head(bucket, "aborted", None).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "an aborted upload leaves no object: {r:?}");
    if mp.validation {
        let r = b.abort_upload(bucket, "aborted", &id).await;
        assert!(matches!(r, Err(BackendError::NoSuchUpload)), "second abort: {r:?}");
        let r = b.list_parts(bucket, "aborted", &id, ListPartsOptions::default()).await;
        assert!(matches!(r, Err(BackendError::NoSuchUpload)), "list_parts after abort: {r:?}");
    }
    if mp.list_uploads {
        assert!(all_uploads(b, bucket, "").await.is_empty(), "aborted upload not listed");
    }
    drop_bucket(b, bucket, false).await;
}

async fn part_copy(b: &dyn Backend, bucket: &str, mp: MultipartCaps) {
    fresh_bucket(b, bucket).await;
    let src = payload(MIN + 1234, 21);
    put(b, bucket, "src", &src, PutOptions::default()).await;
    let id = create(b, bucket, "dst", PutOptions::default()).await;
    let e1 = b.upload_part_copy(bucket, "dst", &id, 1, bucket, "src", None).await.unwrap();
    assert_eq!(e1, md5_hex(&src), "ETag of a whole-object part copy");
    let e2 = b.upload_part_copy(bucket, "dst", &id, 2, bucket, "src", Some(100..1100)).await.unwrap();
    assert_eq!(e2, md5_hex(&src[100..1100]), "ETag of a ranged part copy");
    if mp.copy_range_checked {
        let size = src.len() as u64;
        let r = b.upload_part_copy(bucket, "dst", &id, 3, bucket, "src", Some(size..size + 10)).await;
        assert!(matches!(r, Err(BackendError::InvalidRange)), "part copy beyond the source: {r:?}");
    }
    let r = b.upload_part_copy(bucket, "dst", &id, 3, bucket, "missing", None).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "part copy from a missing key: {r:?}");
    b.complete_upload(bucket, "dst", &id, &[part(1, &e1), part(2, &e2)], false).await.unwrap();
    assert!(get_all(b, bucket, "dst").await == [src.as_slice(), &src[100..1100]].concat(), "copied parts' bytes");
    assert!(get_all(b, bucket, "src").await == src, "source untouched");
    drop_bucket(b, bucket, false).await;
}

async fn conditional(b: &dyn Backend, bucket: &str) {
    fresh_bucket(b, bucket).await;
    put(b, bucket, "exists", b"old", PutOptions::default()).await;
    let id = create(b, bucket, "exists", PutOptions::default()).await;
    let e = upload(b, bucket, "exists", &id, 1, b"new bytes").await;
    let r = b.complete_upload(bucket, "exists", &id, &[part(1, &e)], true).await;
    assert!(matches!(r, Err(BackendError::PreconditionFailed)), "if-none-match completion on a key: {r:?}");
    assert_eq!(get_all(b, bucket, "exists").await, b"old", "refused conditional completion keeps the object");
    b.abort_upload(bucket, "exists", &id).await.unwrap_or_else(|e| panic!("upload survives a 412: {e:?}"));

    let id = create(b, bucket, "fresh", PutOptions::default()).await;
    let e = upload(b, bucket, "fresh", &id, 1, b"new bytes").await;
    let done = b.complete_upload(bucket, "fresh", &id, &[part(1, &e)], true).await.unwrap();
    assert_eq!(done.etag, expected_etag(&[b"new bytes".as_slice()]), "single-part multipart ETag");
    assert_eq!(get_all(b, bucket, "fresh").await, b"new bytes", "conditional completion of a new key");
    drop_bucket(b, bucket, false).await;
}

async fn listing(b: &dyn Backend, bucket: &str, mp: MultipartCaps) {
    fresh_bucket(b, bucket).await;
    let mut made = Vec::new();
    for key in ["b/1", "a/1", "a/2", "a/1"] {
        made.push((key, create(b, bucket, key, PutOptions::default()).await));
    }
    let all = all_uploads(b, bucket, "").await;
    let mut keys: Vec<&str> = all.iter().map(|u| u.key.as_str()).collect();
    if !mp.list_uploads_paging {
        // Not sorted by this server (see MultipartCaps::list_uploads_paging): check the set only.
        keys.sort_unstable();
    }
    assert_eq!(keys, ["a/1", "a/1", "a/2", "b/1"], "uploads sorted by key");
    let mut ids: Vec<&str> = all.iter().map(|u| u.upload_id.as_str()).collect();
    let mut want: Vec<&str> = made.iter().map(|(_, id)| id.as_str()).collect();
    ids.sort_unstable();
    want.sort_unstable();
    assert_eq!(ids, want, "every upload listed once");
    let mut a: Vec<String> = all_uploads(b, bucket, "a/").await.into_iter().map(|u| u.key).collect();
    if !mp.list_uploads_paging {
        a.sort_unstable();
    }
    assert_eq!(a, ["a/1", "a/1", "a/2"], "uploads by prefix");
    assert!(all_uploads(b, bucket, "c").await.is_empty(), "no uploads under another prefix");

    if mp.list_uploads_paging {
        let mut paged = Vec::new();
        let mut opts = ListUploadsOptions { max_uploads: 1, ..Default::default() };
        for round in 0.. {
            assert!(round < 10, "upload paging does not end");
            let page = b.list_uploads(bucket, opts.clone()).await.unwrap();
            assert!(page.uploads.len() <= 1, "max_uploads 1: {page:?}");
            paged.extend(page.uploads.iter().map(|u| u.upload_id.clone()));
            if !page.is_truncated {
                break;
            }
            opts.key_marker = page.next_key_marker;
            opts.upload_id_marker = page.next_upload_id_marker;
        }
        let whole: Vec<String> = all.iter().map(|u| u.upload_id.clone()).collect();
        assert_eq!(paged, whole, "paging by one gives the full listing");
        let opts = ListUploadsOptions { key_marker: Some("a/2".into()), max_uploads: 10, ..Default::default() };
        let after: Vec<String> =
            b.list_uploads(bucket, opts).await.unwrap().uploads.into_iter().map(|u| u.key).collect();
        assert_eq!(after, ["b/1"], "key_marker alone skips that key");
    }

    for (key, id) in &made {
        b.abort_upload(bucket, key, id).await.unwrap();
    }
    assert!(all_uploads(b, bucket, "").await.is_empty(), "aborted uploads not listed");
    drop_bucket(b, bucket, false).await;
}

/// S3 behaviour that moto and s3s-fs do not reproduce, checked on the backends that implement
/// multipart themselves (`fs`, `memory`): completing an unknown or aborted upload, parts for an
/// unknown upload or another key, part number bounds, and DeleteBucket removing unfinished uploads.
pub async fn unknown_uploads(b: &dyn Backend, bucket: &str) {
    fresh_bucket(b, bucket).await;
    let id = create(b, bucket, "k", PutOptions::default()).await;
    let e = upload(b, bucket, "k", &id, 1, b"x").await;
    for n in [0, 10_001] {
        let r = b.upload_part(bucket, "k", &id, n, body(b"x", 1), 1).await;
        assert!(matches!(r, Err(BackendError::InvalidRequest(_))), "part number {n}: {r:?}");
    }
    let r = b.upload_part(bucket, "other", &id, 1, body(b"x", 1), 1).await;
    assert!(matches!(r, Err(BackendError::NoSuchUpload)), "part for another key: {r:?}");
    let r = b.complete_upload(bucket, "other", &id, &[part(1, &e)], false).await;
    assert!(matches!(r, Err(BackendError::NoSuchUpload)), "completion for another key: {r:?}");
    for bogus in ["", "../../etc", "0123456789abcdef0123456789abcdef"] {
        let r = b.upload_part(bucket, "k", bogus, 1, body(b"x", 1), 1).await;
        assert!(matches!(r, Err(BackendError::NoSuchUpload)), "part for upload {bogus:?}: {r:?}");
        let r = b.upload_part_copy(bucket, "k", bogus, 1, bucket, "k", None).await;
        assert!(matches!(r, Err(BackendError::NoSuchUpload)), "part copy for upload {bogus:?}: {r:?}");
    }
    let r = b.upload_part(bucket, "k", &id, 2, body(b"short", 2), 9).await;
    assert!(matches!(r, Err(BackendError::InvalidRequest(_))), "short part body: {r:?}");
    assert_eq!(part_numbers(b, bucket, "k", &id).await, [(1, 1)], "a failed part leaves nothing");
    b.abort_upload(bucket, "k", &id).await.unwrap();
    let r = b.complete_upload(bucket, "k", &id, &[part(1, &e)], false).await;
    assert!(matches!(r, Err(BackendError::NoSuchUpload)), "completing an aborted upload: {r:?}");
    let r = b.upload_part(bucket, "k", &id, 1, body(b"x", 1), 1).await;
    assert!(matches!(r, Err(BackendError::NoSuchUpload)), "part for an aborted upload: {r:?}");

    let id = create(b, bucket, "k", PutOptions::default()).await;
    upload(b, bucket, "k", &id, 1, b"x").await;
    b.complete_upload(bucket, "k", &id, &[part(1, &e)], false).await.unwrap();
    let r = b.complete_upload(bucket, "k", &id, &[part(1, &e)], false).await;
    assert!(matches!(r, Err(BackendError::NoSuchUpload)), "completing twice: {r:?}");
    b.delete(bucket, "k", None).await.unwrap();

    // An unfinished upload does not keep the bucket alive (S3 general-purpose buckets).
    let id = create(b, bucket, "left", PutOptions::default()).await;
    upload(b, bucket, "left", &id, 1, b"x").await;
    b.delete_bucket(bucket).await.unwrap_or_else(|e| panic!("delete a bucket with an upload: {e:?}"));
    fresh_bucket(b, bucket).await;
    let r = b.list_parts(bucket, "left", &id, ListPartsOptions::default()).await;
    assert!(matches!(r, Err(BackendError::NoSuchUpload)), "upload gone with its bucket: {r:?}");
    assert!(all_uploads(b, bucket, "").await.is_empty(), "a recreated bucket has no uploads");
    drop_bucket(b, bucket, false).await;
}
