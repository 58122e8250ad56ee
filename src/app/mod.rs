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

pub mod admin;
pub mod audit;
pub mod azure;
pub mod housekeeping;
pub mod keys;
pub mod listener;
pub mod log_json;
pub mod logging;
pub mod metered_backend;
pub mod metered_keys;
pub mod observe;
pub mod reload;
pub mod requests;
pub mod tls;
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
    #[error("tls: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("audit trail: {0}")]
    Audit(String),
}

/// Everything a running server holds.
pub struct Runtime {
    pub core: Arc<BlobService>,
    pub front: Arc<requests::FrontDoor>,
    /// The Azure front end's request path, if `azure_listen` is set.
    pub azure: Option<Arc<azure::AzureDoor>>,
    /// The in-process sweeper's settings (read at each round: a reload changes them).
    pub sweeper: crate::config::SweeperSettings,
}

/// What is opened once per process and kept across config reloads: the backends (metered) and the key
/// providers, with the backends' declared regions.
pub struct Opened {
    backends: Vec<(String, Arc<dyn Backend>)>,
    providers: keys::Providers,
    regions: BTreeMap<String, String>,
    copies: BTreeMap<String, String>,
    /// The process's audit writer (started by `serve` and the commands, inside their async runtime).
    pub auditor: Option<Arc<crate::core::audit::Auditor>>,
}

/// Builds the backends, key provider and services from settings.
pub async fn build(settings: &Settings) -> Result<Runtime, AppError> {
    let opened = open(settings)?;
    build_with(settings, &opened, None)
}

/// Builds the services from settings over backends and key providers already opened (a config reload
/// keeps them: changing them needs a restart), sharing `previous`'s fences when given.
pub fn build_with(settings: &Settings, opened: &Opened, previous: Option<&BlobService>) -> Result<Runtime, AppError> {
    let (core, secrets) = assemble(settings, opened, previous)?;
    let service = build_service(Arc::clone(&core), secrets, settings.virtual_host_domain.as_deref())?;
    let front = requests::FrontDoor {
        service,
        core: Arc::clone(&core),
        gate: request_gate(settings),
        virtual_hosts: settings.virtual_host_domain.as_deref().and_then(crate::front::s3::host::BucketSubdomains::new),
        body_rule: ProgressRule {
            window: settings.limits.body_timeout,
            min_bytes_per_second: settings.limits.body_min_bytes_per_second,
        },
        subject_patterns: subject_patterns(settings),
        tenants_by_key: settings
            .tenants
            .iter()
            .flat_map(|t| t.access_keys.iter().map(|k| (k.id.clone(), t.name.clone())))
            .collect(),
        auditor: opened.auditor.clone(),
    };
    let azure = azure::door(settings, &core, subject_patterns(settings), opened.auditor.clone())?.map(Arc::new);
    Ok(Runtime { core, front: Arc::new(front), azure, sweeper: settings.sweeper })
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
    assemble(settings, &open(settings)?, None)
}

/// Each tenant's audit trail, and the public key that verifies them.
pub type Trails = (HashMap<String, crate::core::audit::TrailStore>, crate::core::audit::key::PublicKey);

/// `build_core` for a command: also starts the process's audit writer (inside the async runtime), so
/// the command can record what it did.
pub fn build_core_audited(
    settings: &Settings,
) -> Result<(Arc<BlobService>, Option<Arc<crate::core::audit::Auditor>>), AppError> {
    let opened = open(settings)?;
    let auditor = audit::start(settings, &opened)?;
    let (core, _) = assemble(settings, &opened, None)?;
    Ok((core, auditor))
}

/// Each tenant's audit trail and the public key that verifies them (`blobseal audit`), if the config
/// has a trail.
pub fn audit_trails(settings: &Settings) -> Result<Option<Trails>, AppError> {
    let Some(key) = audit::signing_key(settings)? else { return Ok(None) };
    let opened = open(settings)?;
    Ok(Some((audit::stores(settings, &opened), key.public())))
}

/// Opens the backends and key providers of `settings`.
pub fn open(settings: &Settings) -> Result<Opened, AppError> {
    let mut backends = Vec::new();
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
        backends.push((
            b.name.clone(),
            Arc::new(metered_backend::MeteredBackend::new(&b.name, backend)) as Arc<dyn Backend>,
        ));
    }
    let providers = keys::open_providers(settings)?;
    Ok(Opened { backends, providers, regions, copies, auditor: None })
}

/// The tenant directory, keychain and object service of `settings` over `opened`, and the tenants' S3
/// secrets.
fn assemble(
    settings: &Settings,
    opened: &Opened,
    previous: Option<&BlobService>,
) -> Result<(Arc<BlobService>, TenantSecrets), AppError> {
    let mut directory = TenantDirectory::new();
    for (name, backend) in &opened.backends {
        directory.add_backend(name, Arc::clone(backend));
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
    let keychain = keys::keychain(settings, &opened.providers, &mut directory)?;
    let mut core = BlobService::new(directory, Arc::new(keychain), opened.regions.clone())
        .with_copy_regions(opened.copies.clone())
        .with_region_table(settings.residency.table.clone());
    if let Some(previous) = previous {
        core = core.with_fences_of(previous);
    }
    let core = Arc::new(core);
    Ok((core, secrets))
}

/// Runs blobseal until SIGINT/SIGTERM, then drains: readiness off at once, requests still served for
/// the drain delay, then the listeners close and open requests get the shutdown timeout to finish.
///
/// With `config_file`, the file is watched and reloaded (see `reload.rs`).
pub async fn serve(settings: Settings, config_file: Option<std::path::PathBuf>) -> Result<(), AppError> {
    let health = Arc::new(admin::Health::default());
    let ops = &settings.operations;
    let policy = listener::ConnectionPolicy {
        max_connections: settings.limits.max_connections,
        header_timeout: settings.limits.header_timeout,
        write_timeout: settings.limits.write_timeout,
        shutdown_timeout: ops.shutdown.timeout,
    };
    let (hangup_tx, hangup_rx) = tokio::sync::watch::channel(0u64);
    spawn_hangups(hangup_tx);
    if let Some(level) = &settings.operations.log_level {
        if let Err(e) = logging::set_level(level) {
            tracing::warn!(error = %e, "log_level not applied");
        }
    }
    let mut opened = open(&settings)?;
    opened.auditor = audit::start(&settings, &opened)?;
    let opened = Arc::new(opened);
    let live = Arc::new(reload::Live::new(build_with(&settings, &opened, None)?));
    let runtime = live.get();
    crate::metrics::get().set_config(&settings.sha256);

    // The admin listener comes up first, so probes see "starting" rather than a refused connection.
    let (admin_stop_tx, admin_stop_rx) = tokio::sync::watch::channel(false);
    let admin_task = match ops.admin_listen {
        Some(addr) => {
            let l = TcpListener::bind(addr).await.map_err(|source| AppError::Bind { addr, source })?;
            let local = l.local_addr().map_err(|source| AppError::Bind { addr, source })?;
            tracing::info!("blobseal admin listening on {local} (/livez, /readyz, /metrics)");
            let door = Arc::new(admin::AdminDoor { health: Arc::clone(&health), core: Arc::clone(&runtime.core) });
            let handler = move |req, peer| {
                let door = Arc::clone(&door);
                async move { door.handle(req, peer).await }
            };
            let admin_policy = listener::ConnectionPolicy { max_connections: ADMIN_MAX_CONNECTIONS, ..policy };
            Some(tokio::spawn(listener::serve(l, admin_policy, None, handler, stopped(admin_stop_rx))))
        }
        None => None,
    };

    check_regions_at_start(&runtime.core).await?;
    if let Some(every) = settings.residency.drift_check {
        spawn_drift_checks(Arc::clone(&live), every);
    }
    let housekeeping = housekeeping::HousekeepingSettings::from_env(|k| std::env::var(k).ok())?;
    housekeeping::spawn(Arc::clone(&live), housekeeping);
    let sweep_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sweeper = settings.sweeper.interval.map(|_| spawn_sweeps(Arc::clone(&live), Arc::clone(&sweep_stop)));
    let tls = match &ops.tls {
        Some(t) => {
            let source = tls::TlsSource::load(t)?;
            source.spawn_watch(hangup_rx.clone());
            Some(source)
        }
        None => None,
    };

    // One stop signal for the client listeners, sent after the drain delay.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener =
        TcpListener::bind(settings.listen).await.map_err(|source| AppError::Bind { addr: settings.listen, source })?;
    let local = listener.local_addr().map_err(|source| AppError::Bind { addr: settings.listen, source })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(config = %settings.source, tenants = settings.tenants.len(), "blobseal listening on {local} ({scheme})");
    // Each request takes the runtime current when it starts: a reload applies to the next request, also
    // on a kept-alive connection (a removed access key stops working at once).
    let azure = match (&runtime.azure, settings.azure_listen) {
        (Some(first), Some(addr)) => {
            let azure_listener = TcpListener::bind(addr).await.map_err(|source| AppError::Bind { addr, source })?;
            let local = azure_listener.local_addr().map_err(|source| AppError::Bind { addr, source })?;
            tracing::info!("blobseal azure front end listening on {local} ({scheme})");
            let (live, first) = (Arc::clone(&live), Arc::clone(first));
            let handler = move |req, peer| {
                // `azure_listen` cannot change on a reload, so every runtime has a door; the first is a fallback.
                let door = live.get().azure.clone().unwrap_or_else(|| Arc::clone(&first));
                async move { door.handle(req, peer).await }
            };
            Some(tokio::spawn(listener::serve(azure_listener, policy, tls.clone(), handler, stopped(stop_rx.clone()))))
        }
        _ => None,
    };
    let live_s3 = Arc::clone(&live);
    let handler = move |req, peer| {
        let front = Arc::clone(&live_s3.get().front);
        async move { front.handle(req, peer).await }
    };
    let s3 = tokio::spawn(listener::serve(listener, policy, tls, handler, stopped(stop_rx)));
    drop(runtime);
    if let Some(path) = config_file {
        reload::spawn(path, settings.clone(), Arc::clone(&live), Arc::clone(&opened), hangup_rx.clone());
    }
    health.set_ready();
    tracing::info!("blobseal ready");

    shutdown_signal().await;
    health.set_draining();
    sweep_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let delay = ops.shutdown.drain_delay;
    tracing::info!(
        drain_delay_s = delay.as_secs(),
        timeout_s = ops.shutdown.timeout.as_secs(),
        "draining: readiness is off; still serving until the drain delay ends"
    );
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = shutdown_signal() => tracing::info!("second signal: drain delay cut short"),
    }
    tracing::info!("closing the listeners; open requests may finish");
    let _ = stop_tx.send(true);
    let _ = s3.await;
    if let Some(task) = azure {
        let _ = task.await;
    }
    if let Some(task) = sweeper {
        // The sweep stops after its current key and releases its lease; bounded like the requests.
        if tokio::time::timeout(ops.shutdown.timeout, task).await.is_err() {
            tracing::warn!("the in-process sweep did not stop in time; its lease expires by itself");
        }
    }
    let _ = admin_stop_tx.send(true);
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    tracing::info!("blobseal stopped");
    Ok(())
}

/// Probes and scrapes need few connections; a bound keeps a stuck scraper from holding many.
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Resolves once `rx` says stop.
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Counts SIGHUPs into `tx` (TLS and config reloads watch it).
fn spawn_hangups(tx: tokio::sync::watch::Sender<u64>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reloads happen only when files change");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    });
    #[cfg(not(unix))]
    drop(tx);
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
fn spawn_drift_checks(live: Arc<reload::Live>, every: std::time::Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let report = live.get().core.enforce_regions().await;
            for d in &report.drifts {
                tracing::error!(drift = %d, "region drift: backend fenced off");
            }
        }
    });
}

/// Sweeps every `every` (all tenants; a lease in each tenant's key store keeps replicas from sweeping
/// the same tenant at once). Each report line goes to the log.
fn spawn_sweeps(live: Arc<reload::Live>, stop: Arc<std::sync::atomic::AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let holder = format!("{}/pid-{}", crate::ops::operator(None), std::process::id());
        loop {
            // The interval is read again each round (a reload may change it); sleep in short steps so a
            // shutdown does not wait for it.
            let started_waiting = tokio::time::Instant::now();
            loop {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let every = live.get().sweeper.interval.unwrap_or(SWEEP_STOP_CHECK);
                let wake = started_waiting + every;
                let now = tokio::time::Instant::now();
                if now >= wake {
                    break;
                }
                tokio::time::sleep(SWEEP_STOP_CHECK.min(wake - now)).await;
            }
            let runtime = live.get();
            let settings = runtime.sweeper;
            let ops = crate::ops::Ops::new(Arc::clone(&runtime.core)).with_sweeper(settings);
            let request = crate::ops::sweep::SweepRequest {
                tenant: None,
                dry_run: false,
                now: time::OffsetDateTime::now_utc(),
                max_deletes_per_second: settings.max_deletes_per_second,
                holder: holder.clone(),
                stop: Some(Arc::clone(&stop)),
                shard: None,
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
    })
}

/// How often a waiting in-process sweeper checks for shutdown.
const SWEEP_STOP_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

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
