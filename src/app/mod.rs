//! Turns validated `Settings` into a running server: backends, key provider, tenant directory,
//! the S3 front end, and the accept loop with one log line per request.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;

use crate::backend::azure::{AzureBackend, AzureBackendSettings, AzureCredentials};
use crate::backend::fs::FsBackend;
use crate::backend::s3::{S3Backend, S3BackendSettings};
use crate::backend::{Backend, BackendError};
use crate::config::{AzureAuth, BackendKind, Settings};
use crate::core::keys::KeyError;

pub mod azure;
pub mod housekeeping;
pub mod keys;
pub mod listener;
pub mod logging;
pub mod requests;
use crate::core::keys::subject::KeyPattern;
use crate::core::service::BlobService;
use crate::core::tenant::{Route, Tenant, TenantDirectory};
use crate::front::body_guard::ProgressRule;
use crate::front::s3::gate::{PresignRules, RequestGate};
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
    #[error(transparent)]
    Housekeeping(#[from] housekeeping::HousekeepingSettingsError),
    #[error("azure account {0}: a key is not base64")]
    AzureAccount(String),
}

/// Everything a running server holds.
pub struct Runtime {
    pub core: Arc<BlobService>,
    pub front: Arc<requests::FrontDoor>,
    /// The Azure front end's request path, if `azure_listen` is set.
    pub azure: Option<Arc<azure::AzureDoor>>,
}

/// Builds the backends, key provider and services from settings.
pub async fn build(settings: &Settings) -> Result<Runtime, AppError> {
    let (core, secrets) = build_core(settings)?;
    let service = build_service(Arc::clone(&core), secrets, settings.virtual_host_domain.as_deref())?;
    let front = requests::FrontDoor {
        service,
        core: Arc::clone(&core),
        gate: request_gate(settings),
        metrics: settings.metrics_access,
        body_rule: ProgressRule {
            window: settings.limits.body_timeout,
            min_bytes_per_second: settings.limits.body_min_bytes_per_second,
        },
        subject_patterns: subject_patterns(settings),
    };
    let azure = azure::door(settings, &core, subject_patterns(settings))?.map(Arc::new);
    Ok(Runtime { core, front: Arc::new(front), azure })
}

/// Each access key's presigned-URL rules (its tenant's).
fn request_gate(settings: &Settings) -> RequestGate {
    let mut rules = HashMap::new();
    for t in &settings.tenants {
        let r = PresignRules { max_seconds: u64::from(t.presign.max_seconds), sigv2: t.presign.sigv2 };
        for k in &t.access_keys {
            rules.insert(k.id.clone(), r);
        }
    }
    RequestGate::new(rules)
}

/// Every tenant's key patterns that name data subjects (validated with the config, so none fails here).
fn subject_patterns(settings: &Settings) -> Vec<KeyPattern> {
    let texts = settings.tenants.iter().flat_map(|t| &t.data_subjects);
    texts
        .filter_map(|rule| match rule {
            crate::config::DataSubjectRule::KeyPattern(p) => KeyPattern::parse(p).ok(),
            crate::config::DataSubjectRule::Metadata(_) => None,
        })
        .collect()
}

/// The tenants' S3 secrets by access key id.
pub type TenantSecrets = HashMap<String, s3s::auth::SecretKey>;

/// Builds backends, key providers and the object service (what the CLI's key commands use too),
/// and collects the tenants' S3 secrets.
pub fn build_core(settings: &Settings) -> Result<(Arc<BlobService>, TenantSecrets), AppError> {
    let mut directory = TenantDirectory::new();
    let mut regions = BTreeMap::new();
    let mut copies = BTreeMap::new();
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
            // Region and redundancy are residency declarations only: the backend never sees them.
            BackendKind::Azure { endpoint, account, credentials, .. } => {
                let credentials = match credentials {
                    AzureAuth::AccountKey(key) => AzureCredentials::AccountKey(key.expose().to_owned()),
                    AzureAuth::Sas(token) => AzureCredentials::Sas(token.expose().to_owned()),
                };
                let s = AzureBackendSettings { endpoint: endpoint.clone(), account: account.clone(), credentials };
                Arc::new(AzureBackend::new(s).map_err(|source| AppError::Backend { name: b.name.clone(), source })?)
            }
        };
        if let Some(region) = b.region() {
            regions.insert(b.name.clone(), region.to_owned());
        }
        if let Some(copy) = b.secondary_region() {
            copies.insert(b.name.clone(), copy.to_owned());
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
        BlobService::new(directory, Arc::new(keychain), regions)
            .with_copy_regions(copies)
            .with_region_table(settings.residency.table.clone()),
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
    let housekeeping = housekeeping::HousekeepingSettings::from_env(|k| std::env::var(k).ok())?;
    housekeeping::spawn(Arc::clone(&runtime.core), housekeeping);
    if let Some(every) = settings.sweeper.interval {
        spawn_sweeps(Arc::clone(&runtime.core), settings.sweeper, every);
    }
    let listener =
        TcpListener::bind(settings.listen).await.map_err(|source| AppError::Bind { addr: settings.listen, source })?;
    let local = listener.local_addr().map_err(|source| AppError::Bind { addr: settings.listen, source })?;
    tracing::info!(config = %settings.source, tenants = settings.tenants.len(), "blobseal listening on {local}");
    let policy = listener::ConnectionPolicy {
        max_connections: settings.limits.max_connections,
        header_timeout: settings.limits.header_timeout,
        write_timeout: settings.limits.write_timeout,
        shutdown_timeout: SHUTDOWN_TIMEOUT,
    };
    // One shutdown signal for every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let azure = match (&runtime.azure, settings.azure_listen) {
        (Some(door), Some(addr)) => {
            let azure_listener = TcpListener::bind(addr).await.map_err(|source| AppError::Bind { addr, source })?;
            let local = azure_listener.local_addr().map_err(|source| AppError::Bind { addr, source })?;
            tracing::info!("blobseal azure front end listening on {local}");
            let door = Arc::clone(door);
            let handler = move |req, peer| {
                let door = Arc::clone(&door);
                async move { door.handle(req, peer).await }
            };
            Some(tokio::spawn(listener::serve(azure_listener, policy, handler, stopped(stop_rx.clone()))))
        }
        _ => None,
    };
    let front = Arc::clone(&runtime.front);
    let handler = move |req, peer| {
        let front = Arc::clone(&front);
        async move { front.handle(req, peer).await }
    };
    listener::serve(listener, policy, handler, stopped(stop_rx)).await;
    if let Some(task) = azure {
        let _ = task.await;
    }
    tracing::info!("blobseal stopped");
    Ok(())
}

/// How long open connections may take to finish once shutdown began.
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
