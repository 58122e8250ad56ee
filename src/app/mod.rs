//! Turns validated `Settings` into a running server: backends, key provider, tenant directory,
//! the S3 front end, and the accept loop with one log line per request.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::net::TcpListener;

use crate::backend::fs::FsBackend;
use crate::backend::s3::{S3Backend, S3BackendSettings};
use crate::backend::{Backend, BackendError};
use crate::config::{BackendKind, Settings};
use crate::core::keys::KeyError;

pub mod keys;
use crate::core::service::BlobService;
use crate::core::tenant::{Route, Tenant, TenantDirectory};
use crate::front::s3::{build_service, BuildError};

/// Why blobseal could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("backend {name}: {source}")]
    Backend { name: String, source: BackendError },
    #[error("backend {name}: cannot create {path}: {source}")]
    BackendDir { name: String, path: std::path::PathBuf, source: std::io::Error },
    #[error("key provider: {0}")]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Front(#[from] BuildError),
    #[error("refusing to start, bucket regions differ from the config: {0}")]
    RegionDrift(String),
}

/// Everything a running server holds.
pub struct Runtime {
    pub core: Arc<BlobService>,
    pub service: s3s::service::S3Service,
}

/// Builds the backends, key provider and services from settings.
pub async fn build(settings: &Settings) -> Result<Runtime, AppError> {
    let (core, secrets) = build_core(settings)?;
    let service = build_service(Arc::clone(&core), secrets, settings.virtual_host_domain.as_deref())?;
    Ok(Runtime { core, service })
}

/// The tenants' S3 secrets by access key id.
pub type TenantSecrets = HashMap<String, s3s::auth::SecretKey>;

/// Builds backends, key providers and the object service (what the CLI's key commands use too),
/// and collects the tenants' S3 secrets.
pub fn build_core(settings: &Settings) -> Result<(Arc<BlobService>, TenantSecrets), AppError> {
    let mut directory = TenantDirectory::new();
    let mut regions = BTreeMap::new();
    for b in &settings.backends {
        let backend: Arc<dyn Backend> = match &b.kind {
            BackendKind::Fs { root, .. } => {
                std::fs::create_dir_all(root).map_err(|source| AppError::BackendDir {
                    name: b.name.clone(),
                    path: root.clone(),
                    source,
                })?;
                Arc::new(FsBackend::new(root.clone()))
            }
            BackendKind::S3 { endpoint, region, access_key_id, secret_access_key, force_path_style } => {
                let s = S3BackendSettings {
                    endpoint: endpoint.clone(),
                    region: region.clone(),
                    access_key_id: access_key_id.clone(),
                    secret_access_key: secret_access_key.expose().to_owned(),
                    force_path_style: *force_path_style,
                };
                Arc::new(S3Backend::new(s).map_err(|source| AppError::Backend { name: b.name.clone(), source })?)
            }
        };
        if let Some(region) = b.region() {
            regions.insert(b.name.clone(), region.to_owned());
        }
        directory.add_backend(&b.name, backend);
    }
    let mut secrets = HashMap::new();
    for t in &settings.tenants {
        directory.add_tenant(
            Tenant {
                name: t.name.clone(),
                default_backend: t.default_backend.clone(),
                bucket_prefix: t.bucket_prefix.clone(),
                residency: t.residency.clone(),
                retention: t.retention.clone(),
                backups: t.backups.clone(),
            },
            t.access_keys.iter().map(|k| k.id.clone()),
        );
        for b in &t.backups {
            // A backup target is nobody's bucket: clients reach copies only through a restore.
            directory.reserve(&b.backend, &b.bucket);
        }
        for k in &t.access_keys {
            secrets.insert(k.id.clone(), s3s::auth::SecretKey::from(k.secret.expose()));
        }
    }
    for r in &settings.buckets {
        directory.add_route(Route {
            tenant: r.tenant.clone(),
            bucket: r.bucket.clone(),
            backend: r.backend.clone(),
            backend_bucket: r.backend_bucket.clone(),
            backups: r.backups.clone(),
        });
        for b in &r.backups {
            directory.reserve(&b.backend, &b.bucket);
        }
    }
    let keychain = keys::keychain(settings, &mut directory)?;
    let core = Arc::new(
        BlobService::new(directory, Arc::new(keychain), regions).with_region_table(settings.residency.table.clone()),
    );
    Ok((core, secrets))
}

/// Runs blobseal until SIGINT/SIGTERM, then drains open connections.
pub async fn serve(settings: Settings) -> Result<(), AppError> {
    let runtime = build(&settings).await?;
    check_regions_at_start(&runtime.core).await?;
    if let Some(every) = settings.residency.drift_check {
        spawn_drift_checks(Arc::clone(&runtime.core), every);
    }
    if let Some(every) = settings.sweeper.interval {
        spawn_sweeps(Arc::clone(&runtime.core), settings.sweeper, every);
    }
    let listener =
        TcpListener::bind(settings.listen).await.map_err(|source| AppError::Bind { addr: settings.listen, source })?;
    let local = listener.local_addr().map_err(|source| AppError::Bind { addr: settings.listen, source })?;
    tracing::info!(config = %settings.source, tenants = settings.tenants.len(), "blobseal listening on {local}");
    serve_on(listener, runtime.service, Arc::clone(&runtime.core), shutdown_signal()).await;
    tracing::info!("blobseal stopped");
    Ok(())
}

/// Refuses to start when a bucket blobseal uses is not in the region its backend's config declares.
async fn check_regions_at_start(core: &BlobService) -> Result<(), AppError> {
    let report = core.check_regions().await;
    for (backend, error) in &report.unreachable {
        tracing::warn!(%backend, %error, "cannot check the backend's bucket regions at start");
    }
    if report.drifts.is_empty() {
        tracing::info!(buckets = report.checked, "bucket regions match the config");
        Ok(())
    } else {
        Err(AppError::RegionDrift(report.drifts.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))
    }
}

/// Re-checks the regions every `every`, fencing drifted backends off and letting recovered ones back.
fn spawn_drift_checks(core: Arc<BlobService>, every: std::time::Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let report = core.enforce_regions().await;
            for d in &report.drifts {
                tracing::error!(drift = %d, "region drift: backend fenced off");
            }
        }
    });
}

/// Sweeps every `every` (all tenants; a lease in each tenant's key store keeps replicas from sweeping
/// the same tenant at once). Each report line goes to the log.
fn spawn_sweeps(core: Arc<BlobService>, settings: crate::config::SweeperSettings, every: std::time::Duration) {
    tokio::spawn(async move {
        let ops = crate::ops::Ops::new(core).with_sweeper(settings);
        let holder = format!("{}/pid-{}", crate::ops::operator(None), std::process::id());
        loop {
            tokio::time::sleep(every).await;
            let request = crate::ops::sweep::SweepRequest {
                tenant: None,
                dry_run: false,
                now: time::OffsetDateTime::now_utc(),
                max_deletes_per_second: settings.max_deletes_per_second,
                holder: holder.clone(),
            };
            let started = Instant::now();
            let mut report = Vec::new();
            match crate::ops::sweep::sweep(&ops, &request, &mut report).await {
                Ok(summary) => {
                    tracing::info!(summary = %summary.line(started.elapsed().as_secs_f64()), "scheduled sweep done")
                }
                Err(e) => tracing::error!(error = %e, "scheduled sweep failed"),
            }
            for line in String::from_utf8_lossy(&report).lines() {
                tracing::info!(report = %line, "sweep");
            }
        }
    });
}

/// Accepts connections on `listener` until `shutdown` resolves, then waits for open ones.
pub async fn serve_on(
    listener: TcpListener,
    service: s3s::service::S3Service,
    core: Arc<BlobService>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small requests (4 KiB objects, HEADs) otherwise stall on delayed ACKs.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = service.clone();
        let core = Arc::clone(&core);
        let logged = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let service = service.clone();
            let core = Arc::clone(&core);
            async move {
                if req.method() == http::Method::GET && req.uri().path() == METRICS_PATH {
                    return Ok::<_, Infallible>(metrics_response(&core));
                }
                Ok::<_, Infallible>(log_request(service, req, new_request_id(), peer).await)
            }
        });
        let builder = ConnBuilder::new(TokioExecutor::new());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), logged).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {
            tracing::warn!("connections still open after 30 s; stopping anyway");
        }
    }
}

/// Where the Prometheus metrics are served: no S3 bucket name starts with `_`, so no S3 request has this path.
pub const METRICS_PATH: &str = "/_blobseal/metrics";

fn metrics_response(core: &BlobService) -> hyper::Response<s3s::Body> {
    let mut r = hyper::Response::new(s3s::Body::from(crate::metrics::render(&core.fenced())));
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}

/// Calls the S3 service, tags the response with the request id (`x-amz-request-id`, and `<RequestId>` in
/// an XML error body) and writes one line per request: id, method, path, status, duration.
/// Query strings are not logged: presigned URLs carry signatures there.
async fn log_request(
    service: s3s::service::S3Service,
    req: hyper::Request<Incoming>,
    id: RequestId,
    peer: std::net::SocketAddr,
) -> hyper::Response<s3s::Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let close_after = empty_body_expecting_continue(req.headers());
    let has_body = has_request_body(req.headers());
    let mut response = match service.call(req.map(s3s::Body::from)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(request = %id, error = ?e, "request failed inside the S3 service");
            let mut r = hyper::Response::new(s3s::Body::empty());
            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    };
    // An error answered before the request body was read leaves the rest of it on the connection: hyper
    // closes it after the response, so say so, or a client may reuse the dead connection for its next
    // request (seen with botocore after an UploadPart refused early).
    if close_after || (has_body && (response.status().is_client_error() || response.status().is_server_error())) {
        response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    tag_response(&mut response, &id);
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(request = %id, %peer, %method, %path, status = response.status().as_u16(), ms = format!("{ms:.1}"), "request");
    response
}

/// A random per-request id: 16 upper-case hex digits, the shape of S3's own `x-amz-request-id`.
/// Random rather than a counter so that ids stay unique across restarts and replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestId(String);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn new_request_id() -> RequestId {
    let mut raw = [0u8; 8];
    // A failing system RNG leaves zeros: an id is for correlating logs, not a secret, so the request goes on.
    if aws_lc_rs::rand::fill(&mut raw).is_err() {
        tracing::warn!("system random generator failed; request id is zero");
    }
    RequestId(hex::encode_upper(raw))
}

/// Adds `x-amz-request-id` to every response and, for an error answer whose body is an S3 `<Error>` document
/// built in memory (what s3s produces), a `<RequestId>` element with the same id. s3s 0.14 has no hook for
/// this: its own errors (signature, parsing) are serialized before our code runs, so it is done on the way out.
/// Streamed bodies are never touched.
fn tag_response(response: &mut hyper::Response<s3s::Body>, id: &RequestId) {
    if let Ok(value) = http::HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(s3s::header::X_AMZ_REQUEST_ID, value);
    }
    if !response.status().is_client_error() && !response.status().is_server_error() {
        return;
    }
    let Some(body) = response.body().bytes() else { return };
    if let Some(tagged) = with_request_id(&body, id) {
        response.headers_mut().remove(http::header::CONTENT_LENGTH);
        *response.body_mut() = s3s::Body::from(tagged);
    }
}

/// The error document `body` with `<RequestId>id</RequestId>` inserted before its closing `</Error>`, or
/// `None` when `body` is not such a document or already names a request id.
fn with_request_id(body: &[u8], id: &RequestId) -> Option<Vec<u8>> {
    const CLOSE: &[u8] = b"</Error>";
    let head = body.trim_ascii_end().strip_suffix(CLOSE)?;
    if head.windows(b"<RequestId>".len()).any(|w| w == b"<RequestId>") {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + id.0.len() + 24);
    out.extend_from_slice(head);
    out.extend_from_slice(b"<RequestId>");
    out.extend_from_slice(id.0.as_bytes());
    out.extend_from_slice(b"</RequestId>");
    out.extend_from_slice(CLOSE);
    Some(out)
}

/// True for a request with `Expect: 100-continue` and an empty body. botocore (AWS CLI, boto3)
/// sends empty PUTs that way and then mis-reads the next response on the same kept-alive
/// connection when no `100 Continue` came (boto/botocore#3755: the client hangs for its read
/// timeout). Closing such a connection after the response costs one reconnect and avoids the hang.
/// Whether a request carries a body (a non-zero Content-Length, or a chunked transfer).
fn has_request_body(headers: &http::HeaderMap) -> bool {
    let length = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(str::trim);
    headers.contains_key(http::header::TRANSFER_ENCODING) || length.is_some_and(|v| v != "0")
}

fn empty_body_expecting_continue(headers: &http::HeaderMap) -> bool {
    let expects_continue = headers
        .get(http::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let empty =
        headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() == "0");
    expects_continue && empty
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> RequestId {
        RequestId(s.to_owned())
    }

    #[test]
    fn requests_with_bodies_are_recognised() {
        let with = |name: http::header::HeaderName, value: &'static str| {
            let mut h = http::HeaderMap::new();
            h.insert(name, http::HeaderValue::from_static(value));
            h
        };
        assert!(has_request_body(&with(http::header::CONTENT_LENGTH, "5242880")));
        assert!(has_request_body(&with(http::header::TRANSFER_ENCODING, "chunked")));
        assert!(!has_request_body(&with(http::header::CONTENT_LENGTH, "0")));
        assert!(!has_request_body(&http::HeaderMap::new()));
    }

    #[test]
    fn request_ids_are_sixteen_hex_digits_and_differ() {
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.0.len(), 16);
        assert!(a.0.bytes().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn request_id_goes_before_the_closing_error_tag() {
        let body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code></Error>\n";
        let out = with_request_id(body, &id("ABC")).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><RequestId>ABC</RequestId></Error>"
        );
    }

    #[test]
    fn other_bodies_are_left_alone() {
        assert!(with_request_id(b"", &id("A")).is_none());
        assert!(with_request_id(b"<ListBucketResult></ListBucketResult>", &id("A")).is_none());
        assert!(with_request_id(b"<Error><RequestId>X</RequestId></Error>", &id("A")).is_none());
    }

    #[test]
    fn error_response_gets_header_and_body_id() {
        let mut r = hyper::Response::new(s3s::Body::from("<Error><Code>NoSuchKey</Code></Error>".to_owned()));
        *r.status_mut() = http::StatusCode::NOT_FOUND;
        r.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("37"));
        tag_response(&mut r, &id("0123456789ABCDEF"));
        assert_eq!(r.headers()["x-amz-request-id"], "0123456789ABCDEF");
        assert!(r.headers().get(http::header::CONTENT_LENGTH).is_none());
        let body = r.body().bytes().unwrap();
        assert_eq!(&body[..], b"<Error><Code>NoSuchKey</Code><RequestId>0123456789ABCDEF</RequestId></Error>");
    }

    #[test]
    fn success_response_gets_only_the_header() {
        let text = "<Error>not an error, just an object that looks like one</Error>";
        let mut r = hyper::Response::new(s3s::Body::from(text.to_owned()));
        tag_response(&mut r, &id("FEDCBA9876543210"));
        assert_eq!(r.headers()["x-amz-request-id"], "FEDCBA9876543210");
        assert_eq!(&r.body().bytes().unwrap()[..], text.as_bytes());
    }
}
