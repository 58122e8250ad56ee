//! The backend conformance suite against real servers: `S3Backend` on moto_server (with
//! versioning) and on s3s-fs (which checks SigV4, so this proves we sign correctly), plus the
//! failure modes a proxy must map: wrong credentials and a dead endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "common/servers.rs"]
mod servers;

use std::time::{Duration, Instant};

use blobseal::backend::azure::{AzureBackend, AzureBackendSettings, AzureCredentials};
use blobseal::backend::conformance::{self, body, failing_body, payload, Caps, LockSetter, MultipartCaps};
use blobseal::backend::s3::{S3Backend, S3BackendSettings};
use blobseal::backend::{
    Backend, BackendError, CompletedPart, ContentHeaders, GetOptions, ListPartsOptions, LockState, PutOptions,
    MIN_PART_SIZE,
};
use futures::StreamExt as _;
use servers::{AzuriteServer, MotoServer, S3sFsServer, AZURITE_ACCOUNT, AZURITE_KEY};

fn backend(endpoint: &str, access_key: &str, secret_key: &str) -> S3Backend {
    S3Backend::new(S3BackendSettings {
        endpoint: Some(endpoint.to_owned()),
        region: "us-east-1".into(),
        access_key_id: access_key.into(),
        secret_access_key: secret_key.into(),
        force_path_style: true,
    })
    .unwrap_or_else(|e| panic!("building the S3 backend: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_on_moto_passes_conformance() {
    let moto = MotoServer::start();
    let b = backend(&moto.endpoint, "testing", "testing");
    let caps = Caps {
        versioning: true,
        list_versions: true,
        path_like_keys: true,
        strict_buckets: true,
        list_etags: true,
        copy_source_if_match: false,
        tagging: true,
        default_region: Some("us-east-1"),
        // moto honours LocationConstraint and reports it through GetBucketLocation.
        region_constraint: true,
        // moto 5.2 lists every upload in one page, in creation order, and copies whatever part of a
        // part-copy range exists instead of refusing it.
        multipart: Some(MultipartCaps {
            list_uploads: true,
            list_uploads_paging: false,
            validation: true,
            copy_range_checked: false,
        }),
    };
    conformance::run_all(&b, "moto", caps).await;
}

/// Sets Object Lock state on moto through a client of its own, as an operator would: the backend
/// only reads lock state. Each call replaces both the legal hold and the retention (with governance
/// bypass, which moto honours, so a test can release what it locked).
struct MotoLocks {
    client: aws_sdk_s3::Client,
}

impl MotoLocks {
    fn new(endpoint: &str) -> Self {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .force_path_style(true)
            .build();
        Self { client: aws_sdk_s3::Client::from_conf(conf) }
    }
}

#[async_trait::async_trait]
impl LockSetter for MotoLocks {
    async fn set(&self, bucket: &str, key: &str, version_id: &str, lock: &LockState) {
        use aws_sdk_s3::primitives::DateTime;
        use aws_sdk_s3::types::{ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockRetention};
        let status = if lock.legal_hold { ObjectLockLegalHoldStatus::On } else { ObjectLockLegalHoldStatus::Off };
        self.client
            .put_object_legal_hold()
            .bucket(bucket)
            .key(key)
            .version_id(version_id)
            .legal_hold(ObjectLockLegalHold::builder().status(status).build())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObjectLegalHold: {e:?}"));
        let mut retention = ObjectLockRetention::builder();
        if let (Some(mode), Some(until)) = (&lock.mode, lock.retain_until) {
            retention =
                retention.mode(mode.as_str().into()).retain_until_date(DateTime::from_secs(until.unix_timestamp()));
        }
        self.client
            .put_object_retention()
            .bucket(bucket)
            .key(key)
            .version_id(version_id)
            .retention(retention.build())
            .bypass_governance_retention(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObjectRetention: {e:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_on_moto_passes_object_lock_conformance() {
    let moto = MotoServer::start();
    let b = backend(&moto.endpoint, "testing", "testing");
    conformance::object_lock(&b, "moto-lock", &MotoLocks::new(&moto.endpoint)).await;
    // A version id on a plain bucket's delete that the server refuses for another reason keeps its
    // own error: an unknown version of a missing key is simply gone (S3 answers 204).
    b.create_bucket("moto-nolock").await.unwrap();
    b.delete("moto-nolock", "k", Some("no-such-version")).await.unwrap();
    b.delete_bucket("moto-nolock").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_on_s3s_fs_passes_conformance() {
    let server = S3sFsServer::start("AKIDBLOBSEALTEST", "blobseal-test-secret");
    let b = backend(&server.endpoint, "AKIDBLOBSEALTEST", "blobseal-test-secret");
    // s3s-fs stores keys as paths (`a` and `a/b` cannot coexist) and has no versions at all.
    let caps = Caps {
        versioning: false,
        list_versions: false,
        path_like_keys: false,
        strict_buckets: false,
        list_etags: false,
        copy_source_if_match: true,
        // No tagging (GetObjectTagging is NotImplemented; tags sent with a put are dropped), and
        // GetBucketLocation reports no constraint, whatever the bucket was created with.
        tagging: false,
        default_region: Some("us-east-1"),
        region_constraint: false,
        // s3s-fs 0.14: no ListMultipartUploads, and S3's completion validation is missing (see
        // MultipartCaps::validation); it does refuse part-copy ranges beyond the source.
        multipart: Some(MultipartCaps {
            list_uploads: false,
            list_uploads_paging: false,
            validation: false,
            copy_range_checked: true,
        }),
    };
    conformance::run_all(&b, "s3sfs", caps).await;
}

fn azure_backend(endpoint: &str, key: &str) -> AzureBackend {
    AzureBackend::new(AzureBackendSettings {
        endpoint: endpoint.to_owned(),
        account: AZURITE_ACCOUNT.into(),
        credentials: AzureCredentials::AccountKey(key.into()),
    })
    .unwrap_or_else(|e| panic!("building the Azure backend: {e}"))
}

/// Azurite checks SharedKey, so passing proves the signing; it has no versions, immutability or
/// legal hold (those are unit-tested against recorded answers in `src/backend/azure/convert.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_backend_on_azurite_passes_conformance() {
    let azurite = AzuriteServer::start();
    let b = azure_backend(&azurite.endpoint, AZURITE_KEY);
    let caps = Caps {
        versioning: false,
        list_versions: true,
        path_like_keys: true,
        strict_buckets: true,
        list_etags: true,
        copy_source_if_match: true,
        tagging: true,
        // The data plane has no region: config declares it, like fs.
        default_region: None,
        region_constraint: false,
        multipart: Some(MultipartCaps {
            list_uploads: true,
            list_uploads_paging: true,
            validation: true,
            copy_range_checked: true,
        }),
    };
    conformance::run_all(&b, "azurite", caps).await;
}

/// Names Azure refuses or rewrites come back as they went in, and list in S3's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_backend_keeps_odd_names_on_azurite() {
    let azurite = AzuriteServer::start();
    let b = azure_backend(&azurite.endpoint, AZURITE_KEY);
    let bucket = "logs.example-2026";
    b.create_bucket(bucket).await.unwrap();
    let keys = ["a", "a.", "a/", "a/./b", "b/../c", "dir/", "dir/x.", "sp ace/ü", "tab\there", "%2F", "q?x#y", "z"];
    for key in keys {
        b.put(bucket, key, body(key.as_bytes(), 3), key.len() as u64, Default::default())
            .await
            .unwrap_or_else(|e| panic!("put {key:?}: {e:?}"));
    }
    for key in keys {
        assert_eq!(read_all(&b, bucket, key).await, key.as_bytes(), "{key:?}");
    }
    let listed = b.list(bucket, blobseal::backend::ListOptions { max_keys: 1000, ..Default::default() }).await.unwrap();
    let got: Vec<&str> = listed.objects.iter().map(|o| o.key.as_str()).collect();
    let mut want = keys.to_vec();
    want.sort();
    assert_eq!(got, want);
    let names: Vec<String> = b.list_buckets().await.unwrap().into_iter().map(|i| i.name).collect();
    assert!(names.contains(&bucket.to_owned()), "{names:?}");
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("blobseal-envelope".to_owned(), "v1 50% ".to_owned());
    meta.insert("data_subject".to_owned(), "x".to_owned());
    b.put(bucket, "m", body(b"m", 1), 1, PutOptions { metadata: meta.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(b.head(bucket, "m", None).await.unwrap().metadata, meta);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_wrong_key_is_permission_denied_and_a_dead_endpoint_unavailable() {
    let azurite = AzuriteServer::start();
    let good = azure_backend(&azurite.endpoint, AZURITE_KEY);
    good.create_bucket("sig-check").await.unwrap();
    let other_key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 64]);
    let bad = azure_backend(&azurite.endpoint, &other_key);
    let r = bad.list_buckets().await;
    assert!(matches!(r, Err(BackendError::PermissionDenied(_))), "list with a wrong key: {r:?}");
    let r = bad.put("sig-check", "k", body(b"data", 2), 4, Default::default()).await;
    assert!(matches!(r, Err(BackendError::PermissionDenied(_))), "put with a wrong key: {r:?}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = azure_backend(&format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"), AZURITE_KEY);
    let started = Instant::now();
    let r = dead.head_bucket("any").await;
    assert!(matches!(r, Err(BackendError::Unavailable(_))), "head_bucket on a closed port: {r:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_backend_multipart_on_azurite() {
    let azurite = AzuriteServer::start();
    let b = azure_backend(&azurite.endpoint, AZURITE_KEY);
    run_multipart(&b, "azuritemp", AZURITE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_permission_denied_on_a_signature_checking_server() {
    let server = S3sFsServer::start("AKIDBLOBSEALTEST", "blobseal-test-secret");
    let good = backend(&server.endpoint, "AKIDBLOBSEALTEST", "blobseal-test-secret");
    good.create_bucket("sig-check").await.unwrap();
    let bad = backend(&server.endpoint, "AKIDBLOBSEALTEST", "not-the-secret");
    let r = bad.head("sig-check", "k", None).await;
    assert!(matches!(r, Err(BackendError::PermissionDenied(_))), "HEAD with a wrong secret: {r:?}");
    let r = bad.list_buckets().await;
    assert!(matches!(r, Err(BackendError::PermissionDenied(_))), "ListBuckets with a wrong secret: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_backend_is_unavailable_within_seconds() {
    // A port nobody listens on: bind, read it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let b = backend(&format!("http://127.0.0.1:{port}"), "ak", "sk");
    let started = Instant::now();
    let r = b.head_bucket("any").await;
    assert!(matches!(r, Err(BackendError::Unavailable(_))), "head_bucket on a closed port: {r:?}");
    let body = body(b"data", 2);
    let r = b.put("any", "k", body, 4, Default::default()).await;
    assert!(matches!(r, Err(BackendError::Unavailable(_))), "put on a closed port: {r:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

// ---- multipart, beyond the shared suite ---------------------------------------------------------
// The conformance suite above covers the multipart contract. These checks add what is particular to
// the S3 backend (copy-source encoding, all content headers through CreateMultipartUpload, body
// failures, local checks) and record how each server answers for an unknown upload. A server
// difference is stated in `MpServer`, so no check passes by not running.

/// How a server answers where it differs from S3 (measured on moto 5.2.5 and s3s-fs 0.14.1).
#[derive(Debug, Clone, Copy)]
struct MpServer {
    /// Abort of an unknown upload: S3 and moto say NoSuchUpload; s3s-fs says AccessDenied.
    abort_unknown: fn(&BackendError) -> bool,
    /// UploadPart / CompleteMultipartUpload of an unknown upload: moto answers 500, s3s-fs
    /// AccessDenied, S3 NoSuchUpload.
    part_unknown: fn(&BackendError) -> bool,
    /// CreateMultipartUpload in a missing bucket is NoSuchBucket (moto); s3s-fs creates the bucket.
    strict_buckets: bool,
    name: &'static str,
}

const MOTO: MpServer = MpServer {
    abort_unknown: |e| matches!(e, BackendError::NoSuchUpload),
    part_unknown: |e| matches!(e, BackendError::Unavailable(_)),
    strict_buckets: true,
    name: "moto",
};

const AZURITE: MpServer = MpServer {
    abort_unknown: |e| matches!(e, BackendError::NoSuchUpload),
    part_unknown: |e| matches!(e, BackendError::NoSuchUpload),
    strict_buckets: true,
    name: "azurite",
};

const S3S_FS: MpServer = MpServer {
    abort_unknown: |e| matches!(e, BackendError::PermissionDenied(_)),
    part_unknown: |e| matches!(e, BackendError::PermissionDenied(_)),
    strict_buckets: false,
    name: "s3s-fs",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_multipart_on_moto() {
    let moto = MotoServer::start();
    let b = backend(&moto.endpoint, "testing", "testing");
    run_multipart(&b, "motomp", MOTO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_multipart_on_s3s_fs() {
    let server = S3sFsServer::start("AKIDBLOBSEALTEST", "blobseal-test-secret");
    let b = backend(&server.endpoint, "AKIDBLOBSEALTEST", "blobseal-test-secret");
    run_multipart(&b, "s3sfsmp", S3S_FS).await;
}

async fn run_multipart(b: &dyn Backend, bucket: &str, server: MpServer) {
    b.create_bucket(bucket).await.unwrap();
    mp_headers(b, bucket).await;
    mp_part_copy(b, bucket).await;
    mp_errors(b, bucket, server).await;
    mp_list_parts_pages(b, bucket).await;
}

async fn part(b: &dyn Backend, bucket: &str, key: &str, id: &str, n: u32, data: &[u8]) -> CompletedPart {
    let etag = b
        .upload_part(bucket, key, id, n, body(data, 65536 + 5), data.len() as u64)
        .await
        .unwrap_or_else(|e| panic!("upload_part {key} #{n}: {e:?}"));
    assert!(!etag.is_empty() && !etag.contains('"'), "part ETag {etag:?} is bare");
    CompletedPart { part_number: n, etag }
}

async fn read_all(b: &dyn Backend, bucket: &str, key: &str) -> Vec<u8> {
    let mut got = b.get(bucket, key, GetOptions::default()).await.unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    let mut out = Vec::new();
    while let Some(c) = got.body.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

fn md5_hex(d: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(d))
}

/// Every content header (including Expires) set at CreateMultipartUpload is the object's.
async fn mp_headers(b: &dyn Backend, bucket: &str) {
    let key = "dir/headers ü.bin";
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert("x-blobseal-env".to_owned(), "abc=".to_owned());
    let headers = ContentHeaders {
        content_type: Some("application/x-test".into()),
        content_encoding: Some("identity".into()),
        content_disposition: Some("attachment; filename=\"t.bin\"".into()),
        content_language: Some("en".into()),
        cache_control: Some("no-store".into()),
        expires: Some("Wed, 21 Oct 2037 07:28:00 GMT".into()),
    };
    let opts = PutOptions { metadata: metadata.clone(), headers: headers.clone(), ..Default::default() };
    let id = b.create_upload(bucket, key, opts).await.unwrap();
    let c1 = part(b, bucket, key, &id, 1, b"only part").await;
    b.complete_upload(bucket, key, &id, &[c1], false).await.unwrap();
    let head = b.head(bucket, key, None).await.unwrap();
    assert_eq!(head.metadata, metadata, "metadata from create_upload");
    assert_eq!(head.headers, headers, "content headers from create_upload");
    assert_eq!(read_all(b, bucket, key).await, b"only part");
    b.delete(bucket, key, None).await.unwrap();
}

/// UploadPartCopy from keys that need URL-encoding, by range and whole, mixed with an uploaded
/// part (the shape blobseal's final copy of a large object takes).
async fn mp_part_copy(b: &dyn Backend, bucket: &str) {
    let src_key = "src dir/ü+?&=%41.bin";
    let src = payload(MIN_PART_SIZE as usize + 4321, 3);
    b.put(bucket, src_key, body(&src, 100_000), src.len() as u64, PutOptions::default()).await.unwrap();
    let small_key = "small #1";
    let small = payload(777, 4);
    b.put(bucket, small_key, body(&small, 100), small.len() as u64, PutOptions::default()).await.unwrap();

    let key = "copied";
    let id = b.create_upload(bucket, key, PutOptions::default()).await.unwrap();
    let five = MIN_PART_SIZE as usize;
    let e1 = b.upload_part_copy(bucket, key, &id, 1, bucket, src_key, Some(1..five as u64 + 1)).await.unwrap();
    assert_eq!(e1, md5_hex(&src[1..five + 1]), "copied part ETag is the MD5 of the range");
    let filler = payload(five, 5);
    let c2 = part(b, bucket, key, &id, 2, &filler).await;
    let e3 = b.upload_part_copy(bucket, key, &id, 3, bucket, small_key, None).await.unwrap();
    let r = b.upload_part_copy(bucket, key, &id, 4, bucket, small_key, Some(5..5)).await;
    assert!(matches!(r, Err(BackendError::InvalidRange)), "empty copy range (refused locally): {r:?}");
    let r = b.upload_part_copy(bucket, key, &id, 4, bucket, "missing ü", None).await;
    assert!(matches!(r, Err(BackendError::NoSuchKey)), "copy from a missing source: {r:?}");

    let parts = [CompletedPart { part_number: 1, etag: e1 }, c2, CompletedPart { part_number: 3, etag: e3 }];
    b.complete_upload(bucket, key, &id, &parts, false).await.unwrap();
    let want: Vec<u8> = [&src[1..five + 1], &filler[..], &small[..]].concat();
    assert!(read_all(b, bucket, key).await == want, "object from copied ranges + an uploaded part");
    for k in [key, src_key, small_key] {
        b.delete(bucket, k, None).await.unwrap();
    }
}

/// Body failures, local refusals, the minimum part size, and unknown uploads as each server answers.
async fn mp_errors(b: &dyn Backend, bucket: &str, server: MpServer) {
    let key = "errors";
    let small = payload(1000, 5);
    let name = server.name;

    let id = b.create_upload(bucket, key, PutOptions::default()).await.unwrap();
    let c1 = part(b, bucket, key, &id, 1, &small).await;
    let c2 = part(b, bucket, key, &id, 2, &small).await;
    // A failing or short body stores no part and is reported as the body's fault.
    let r = b.upload_part(bucket, key, &id, 3, failing_body(&small), 5000).await;
    assert!(matches!(r, Err(BackendError::InvalidRequest(_))), "failing part body: {r:?}");
    let r = b.upload_part(bucket, key, &id, 3, body(&small, 100), small.len() as u64 + 1).await;
    assert!(matches!(r, Err(BackendError::InvalidRequest(_))), "short part body: {r:?}");
    let page = b.list_parts(bucket, key, &id, ListPartsOptions { max_parts: 100, ..Default::default() }).await.unwrap();
    let nums: Vec<u32> = page.parts.iter().map(|p| p.part_number).collect();
    assert_eq!(nums, vec![1, 2], "failed part uploads left nothing ({name})");
    // Refused before any request, so the same on every server.
    for n in [0, 10_001] {
        let r = b.upload_part(bucket, key, &id, n, body(b"x", 1), 1).await;
        assert!(matches!(r, Err(BackendError::InvalidRequest(_))), "part number {n}: {r:?}");
    }
    let r = b.complete_upload(bucket, key, &id, &[c2.clone(), c1.clone()], false).await;
    assert!(matches!(r, Err(BackendError::InvalidPartOrder)), "descending parts: {r:?}");
    let r = b.complete_upload(bucket, key, &id, &[], false).await;
    assert!(matches!(r, Err(BackendError::InvalidPart(_))), "no parts: {r:?}");
    // Both servers enforce the 5 MiB minimum for parts other than the last.
    let r = b.complete_upload(bucket, key, &id, &[c1.clone(), c2], false).await;
    assert!(matches!(r, Err(BackendError::EntityTooSmall)), "small first part ({name}): {r:?}");
    // s3s-fs drops the upload when it refuses a completion; moto keeps it. Abort where it is left.
    let _ = b.abort_upload(bucket, key, &id).await;
    assert!(matches!(b.head(bucket, key, None).await, Err(BackendError::NoSuchKey)), "no object after refusal");

    let r = b.abort_upload(bucket, key, &id).await;
    assert!(r.as_ref().is_err_and(server.abort_unknown), "abort an unknown upload ({name}): {r:?}");
    let r = b.upload_part(bucket, key, &id, 1, body(b"x", 1), 1).await;
    assert!(r.as_ref().is_err_and(server.part_unknown), "upload_part to an unknown upload ({name}): {r:?}");
    let r = b.complete_upload(bucket, key, &id, &[c1], false).await;
    assert!(r.as_ref().is_err_and(server.part_unknown), "complete an unknown upload ({name}): {r:?}");
    let r = b.create_upload("mp-no-such-bucket", key, PutOptions::default()).await;
    if server.strict_buckets {
        assert!(matches!(r, Err(BackendError::NoSuchBucket)), "create_upload in a missing bucket: {r:?}");
    } else {
        // s3s-fs accepts it (it creates bucket directories on demand, as for put).
        assert!(r.is_ok(), "s3s-fs started refusing uploads into missing buckets: update MpServer: {r:?}");
    }
}

/// ListParts pages by part-number marker; on s3s-fs, which ignores the marker and `max-parts`
/// and lists unordered, the backend's own filtering, sorting and cutting make this pass.
async fn mp_list_parts_pages(b: &dyn Backend, bucket: &str) {
    let key = "paged";
    let id = b.create_upload(bucket, key, PutOptions::default()).await.unwrap();
    for n in [3, 1, 4, 2] {
        part(b, bucket, key, &id, n, &payload(10 * n as usize, 6)).await;
    }
    let mut seen = Vec::new();
    let mut marker = None;
    for round in 0.. {
        assert!(round < 5, "paging does not end");
        let opts = ListPartsOptions { max_parts: 3, part_number_marker: marker };
        let page = b.list_parts(bucket, key, &id, opts).await.unwrap();
        assert!(page.parts.len() <= 3, "max_parts 3: {page:?}");
        seen.extend(page.parts.iter().map(|p| (p.part_number, p.size)));
        if !page.is_truncated {
            break;
        }
        marker = page.next_part_number_marker;
    }
    assert_eq!(seen, vec![(1, 10), (2, 20), (3, 30), (4, 40)], "parts paged in order");
    b.abort_upload(bucket, key, &id).await.unwrap();
}
