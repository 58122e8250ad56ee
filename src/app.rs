//! Turns validated `Settings` into a running server: backends, key provider, tenant directory,
//! the S3 front end, and the accept loop with one log line per request.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::net::TcpListener;

use crate::backend::fs::FsBackend;
use crate::backend::s3::{S3Backend, S3BackendSettings};
use crate::backend::{Backend, BackendError};
use crate::config::{BackendKind, KeyProviderSettings, Settings};
use crate::core::keys::local::LocalKeyring;
use crate::core::keys::{KeyError, KeyProvider};
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
}

/// Everything a running server holds.
pub struct Runtime {
    pub core: Arc<BlobService>,
    pub service: s3s::service::S3Service,
}

/// Builds the backends, key provider and services from settings.
pub async fn build(settings: &Settings) -> Result<Runtime, AppError> {
    let mut directory = TenantDirectory::new();
    let mut regions = BTreeMap::new();
    for b in &settings.backends {
        let backend: Arc<dyn Backend> = match &b.kind {
            BackendKind::Fs { root } => {
                std::fs::create_dir_all(root).map_err(|source| AppError::BackendDir {
                    name: b.name.clone(),
                    path: root.clone(),
                    source,
                })?;
                Arc::new(FsBackend::new(root.clone()))
            }
            BackendKind::S3 { endpoint, region, access_key_id, secret_access_key, force_path_style } => {
                regions.insert(b.name.clone(), region.clone());
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
        directory.add_backend(&b.name, backend);
    }
    let mut secrets = HashMap::new();
    for t in &settings.tenants {
        directory.add_tenant(
            Tenant {
                name: t.name.clone(),
                default_backend: t.default_backend.clone(),
                bucket_prefix: t.bucket_prefix.clone(),
            },
            t.access_keys.iter().map(|k| k.id.clone()),
        );
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
        });
    }
    let tenant_names: Vec<String> = settings.tenants.iter().map(|t| t.name.clone()).collect();
    let keys: Arc<dyn KeyProvider> = match &settings.key_provider {
        KeyProviderSettings::Local { keyring } => Arc::new(LocalKeyring::open_or_create(keyring, &tenant_names)?),
    };
    let core = Arc::new(BlobService::new(directory, keys, regions));
    let service = build_service(Arc::clone(&core), secrets, settings.virtual_host_domain.as_deref())?;
    Ok(Runtime { core, service })
}

/// Runs blobseal until SIGINT/SIGTERM, then drains open connections.
pub async fn serve(settings: Settings) -> Result<(), AppError> {
    let runtime = build(&settings).await?;
    let listener =
        TcpListener::bind(settings.listen).await.map_err(|source| AppError::Bind { addr: settings.listen, source })?;
    let local = listener.local_addr().map_err(|source| AppError::Bind { addr: settings.listen, source })?;
    tracing::info!(config = %settings.source, tenants = settings.tenants.len(), "blobseal listening on {local}");
    serve_on(listener, runtime.service, shutdown_signal()).await;
    tracing::info!("blobseal stopped");
    Ok(())
}

/// Accepts connections on `listener` until `shutdown` resolves, then waits for open ones.
pub async fn serve_on(
    listener: TcpListener,
    service: s3s::service::S3Service,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let request_ids = Arc::new(AtomicU64::new(1));
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
        let ids = Arc::clone(&request_ids);
        let logged = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let service = service.clone();
            let id = ids.fetch_add(1, Ordering::Relaxed);
            async move { Ok::<_, Infallible>(log_request(service, req, id, peer).await) }
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

/// Calls the S3 service and writes one line per request: method, path, status, duration.
/// Query strings are not logged: presigned URLs carry signatures there.
async fn log_request(
    service: s3s::service::S3Service,
    req: hyper::Request<Incoming>,
    id: u64,
    peer: std::net::SocketAddr,
) -> hyper::Response<s3s::Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let close_after = empty_body_expecting_continue(req.headers());
    let mut response = match service.call(req.map(s3s::Body::from)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(request = id, error = ?e, "request failed inside the S3 service");
            let mut r = hyper::Response::new(s3s::Body::empty());
            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    };
    if close_after {
        response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(request = id, %peer, %method, %path, status = response.status().as_u16(), ms = format!("{ms:.1}"), "request");
    response
}

/// True for a request with `Expect: 100-continue` and an empty body. botocore (AWS CLI, boto3)
/// sends empty PUTs that way and then mis-reads the next response on the same kept-alive
/// connection when no `100 Continue` came (boto/botocore#3755: the client hangs for its read
/// timeout). Closing such a connection after the response costs one reconnect and avoids the hang.
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
