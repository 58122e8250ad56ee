//! The backend conformance suite against real servers: `S3Backend` on moto_server (with
//! versioning) and on s3s-fs (which checks SigV4, so this proves we sign correctly), plus the
//! failure modes a proxy must map: wrong credentials and a dead endpoint.

#[path = "common/servers.rs"]
mod servers;

use std::time::{Duration, Instant};

use blobseal::backend::conformance::{self, Caps};
use blobseal::backend::s3::{S3Backend, S3BackendSettings};
use blobseal::backend::{Backend, BackendError};
use servers::{MotoServer, S3sFsServer};

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
    let caps =
        Caps { versioning: true, list_versions: true, path_like_keys: true, strict_buckets: true, list_etags: true };
    conformance::run_all(&b, "moto", caps).await;
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
    };
    conformance::run_all(&b, "s3sfs", caps).await;
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
    let body = conformance::body(b"data", 2);
    let r = b.put("any", "k", body, 4, Default::default()).await;
    assert!(matches!(r, Err(BackendError::Unavailable(_))), "put on a closed port: {r:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}
