//! Config reload without a restart: on SIGHUP and whenever the config file's contents change.
//!
//! Change detection polls the file's SHA-256 every [`POLL_EVERY`] through its path, which follows the
//! `..data` symlink swap Kubernetes does when a mounted ConfigMap changes (as `tls.rs` does for
//! certificates). A changed file is read and validated in full, secrets included; then:
//! - invalid: the last good config keeps serving and every problem is logged as `FILE:LINE:COL: problem`;
//! - it changes a setting that needs a restart (listeners, TLS paths, log format, backends, key
//!   providers, the key cache, the region table, connection limits, the shutdown drain): refused, and
//!   the log names those settings;
//! - it would move data (a tenant's default backend, bucket prefix, key provider or key store; a
//!   route of an existing bucket changed or removed; a new route for a bucket that already exists
//!   where the tenant's default put it): refused, naming the bucket or tenant;
//! - otherwise a new [`Runtime`] is built over the same opened backends and key providers and
//!   replaces the old one for every request that starts from then on: tenants, access keys, Azure
//!   accounts, routes of new buckets, retention and data-subject rules, presign rules, sweeper
//!   settings and the log level change live.
//!
//! Each outcome counts in `blobseal_config_reloads_total{outcome}` (`applied`, `unchanged`, `invalid`,
//! `refused`, `failed`).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::backend::BackendError;
use crate::config::{self, Settings};
use crate::core::error::CoreError;

use super::{build_with, Opened, Runtime};

/// How often the config file is checked for a change.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// The runtime requests are served with; replaced whole by a reload.
pub struct Live {
    current: RwLock<Arc<Runtime>>,
}

impl Live {
    pub fn new(runtime: Runtime) -> Self {
        Self { current: RwLock::new(Arc::new(runtime)) }
    }

    /// The runtime for a request starting now.
    pub fn get(&self) -> Arc<Runtime> {
        match self.current.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn set(&self, runtime: Runtime) {
        let mut w = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *w = Arc::new(runtime);
    }
}

/// Why a changed config file was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the config is invalid; the previous one keeps serving:\n{0}")]
    Invalid(String),
    #[error("refused: these settings need a restart ({0}); nothing was applied")]
    NeedsRestart(String),
    #[error("refused: {0}; nothing was applied")]
    MovesData(String),
    #[error("the new config could not be built; the previous one keeps serving: {0}")]
    Build(String),
}

impl ReloadError {
    fn outcome(&self) -> &'static str {
        match self {
            ReloadError::Invalid(_) => "invalid",
            ReloadError::NeedsRestart(_) | ReloadError::MovesData(_) => "refused",
            ReloadError::Build(_) => "failed",
        }
    }
}

/// The settings that differ between `old` and `new` and need a restart to change.
pub fn restart_only_changes(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let (a, b) = (&old.operations, &new.operations);
    let checks: [(&'static str, bool); 15] = [
        ("listen", old.listen == new.listen),
        ("virtual_host_domain", old.virtual_host_domain == new.virtual_host_domain),
        ("azure_listen", old.azure_listen == new.azure_listen),
        ("azure_domain", old.azure_domain == new.azure_domain),
        ("backends", old.backends == new.backends),
        ("key_providers", old.key_providers == new.key_providers),
        ("key_cache", old.key_cache == new.key_cache),
        ("residency", old.residency == new.residency),
        ("limits", old.limits == new.limits),
        ("admin_listen", a.admin_listen == b.admin_listen),
        ("log_format", a.log_format == b.log_format),
        ("tls", a.tls == b.tls),
        ("shutdown", a.shutdown == b.shutdown),
        ("audit", old.audit == new.audit),
        // The sweeper's schedule is read at every round; whether there is one at all is decided at start.
        ("sweeper.interval (on/off)", old.sweeper.interval.is_some() == new.sweeper.interval.is_some()),
    ];
    checks.into_iter().filter(|(_, same)| !same).map(|(name, _)| name).collect()
}

/// What `new` would move compared with `old` (pure: from the configs alone).
pub fn moves(old: &Settings, new: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    for t in &old.tenants {
        let Some(n) = new.tenants.iter().find(|n| n.name == t.name) else { continue };
        if t.default_backend != n.default_backend || t.bucket_prefix != n.bucket_prefix {
            out.push(format!(
                "tenant {}: default_backend/bucket_prefix would move the buckets it created to another place",
                t.name
            ));
        }
        if t.key_provider != n.key_provider || t.key_store != n.key_store {
            out.push(format!(
                "tenant {}: key_provider/key_store would leave its stored keys (and so its objects) or its audit trail behind",
                t.name
            ));
        }
    }
    for r in &old.buckets {
        let same = |n: &&config::BucketRoute| n.tenant == r.tenant && n.bucket == r.bucket;
        match new.buckets.iter().find(same) {
            None if new.tenants.iter().any(|t| t.name == r.tenant) => out.push(format!(
                "bucket {} of tenant {}: its route is gone, so it would move to the tenant's default backend",
                r.bucket, r.tenant
            )),
            Some(n) if n.backend != r.backend || n.backend_bucket != r.backend_bucket => out.push(format!(
                "bucket {} of tenant {}: its route would move it from {}/{} to {}/{}",
                r.bucket, r.tenant, r.backend, r.backend_bucket, n.backend, n.backend_bucket
            )),
            _ => {}
        }
    }
    out
}

/// New routes (for tenants that exist already) whose bucket exists now where the tenant's default put
/// it: such a route would hide those objects. Looked up in the running service.
async fn routes_over_existing_buckets(old: &Settings, new: &Settings, runtime: &Runtime) -> Vec<String> {
    let mut out = Vec::new();
    for r in &new.buckets {
        let routed_before = old.buckets.iter().any(|o| o.tenant == r.tenant && o.bucket == r.bucket);
        if routed_before {
            continue;
        }
        let Ok(tenant) = runtime.core.directory().tenant(&r.tenant) else { continue };
        match runtime.core.head_bucket(&tenant, &r.bucket).await {
            Err(CoreError::Backend(BackendError::NoSuchBucket)) => {}
            Ok(()) => out.push(format!(
                "bucket {} of tenant {} exists on the tenant's default backend; a route would move it",
                r.bucket, r.tenant
            )),
            Err(e) => {
                out.push(format!("bucket {} of tenant {}: cannot tell whether it exists ({e})", r.bucket, r.tenant))
            }
        }
    }
    out
}

/// Reads, checks and applies the config at `path` if it changed from `current` (or always, with
/// `force`). `Ok(None)`: unchanged.
async fn reload_once(
    path: &std::path::Path,
    current: &Settings,
    live: &Live,
    opened: &Opened,
    force: bool,
) -> Result<Option<Settings>, ReloadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ReloadError::Invalid(format!("{}: cannot read: {e}", path.display())))?;
    if !force && config::sha256_hex(&text) == current.sha256 {
        return Ok(None);
    }
    let env = |k: &str| std::env::var(k).ok();
    let next = config::parse_str(&text, &path.display().to_string(), &env)
        .map_err(|e| ReloadError::Invalid(e.lines().join("\n")))?;
    if next.sha256 == current.sha256 {
        return Ok(None);
    }
    let restart = restart_only_changes(current, &next);
    if !restart.is_empty() {
        return Err(ReloadError::NeedsRestart(restart.join(", ")));
    }
    let mut moved = moves(current, &next);
    let running = live.get();
    moved.extend(routes_over_existing_buckets(current, &next, &running).await);
    if !moved.is_empty() {
        return Err(ReloadError::MovesData(moved.join("; ")));
    }
    // The backends are the same: a backend fenced off for a region drift stays fenced.
    let runtime = build_with(&next, opened, Some(&running.core)).map_err(|e| ReloadError::Build(e.to_string()))?;
    // New routes are region-checked before they serve (a drifted one is fenced, as at a drift check).
    let report = runtime.core.enforce_regions().await;
    for d in &report.drifts {
        tracing::error!(drift = %d, "region drift on reload: backend fenced off");
    }
    if let Some(level) = &next.operations.log_level {
        if let Err(e) = super::logging::set_level(level) {
            tracing::warn!(error = %e, "log_level not applied");
        }
    }
    if let Some(auditor) = &opened.auditor {
        auditor.set_stores(super::audit::stores(&next, opened));
    }
    live.set(runtime);
    crate::metrics::get().set_config(&next.sha256);
    Ok(Some(next))
}

/// Watches `path` (poll + SIGHUP) and applies changes to `live`.
pub fn spawn(
    path: PathBuf,
    first: Settings,
    live: Arc<Live>,
    opened: Arc<Opened>,
    mut hangups: tokio::sync::watch::Receiver<u64>,
) {
    tokio::spawn(async move {
        let mut current = first;
        let mut last_error: Option<String> = None;
        loop {
            let forced = tokio::select! {
                () = tokio::time::sleep(POLL_EVERY) => false,
                changed = hangups.changed() => changed.is_ok(),
            };
            let outcome = match reload_once(&path, &current, &live, &opened, forced).await {
                Ok(Some(next)) => {
                    tracing::info!(
                        config = %path.display(),
                        sha256 = %next.sha256,
                        tenants = next.tenants.len(),
                        "configuration reloaded"
                    );
                    current = next;
                    last_error = None;
                    "applied"
                }
                Ok(None) => {
                    if forced {
                        tracing::info!(config = %path.display(), "configuration unchanged");
                    }
                    if !forced {
                        continue;
                    }
                    "unchanged"
                }
                Err(e) => {
                    let text = e.to_string();
                    // A broken file is polled every 2 s: log (and count) each distinct problem once, and on SIGHUP.
                    if !forced && last_error.as_deref() == Some(text.as_str()) {
                        continue;
                    }
                    for line in text.lines() {
                        tracing::error!(config = %path.display(), "config reload: {line}");
                    }
                    last_error = Some(text);
                    e.outcome()
                }
            };
            crate::metrics::get().config_reloaded(outcome);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "listen: 127.0.0.1:9000
key_provider: { kind: local, keyring: ./k.json, master_key_file: ./m.key }
backends:
  - { name: disk, kind: fs, path: ./objects }
  - { name: other, kind: fs, path: ./other }
tenants:
  - name: alice
    default_backend: disk
    bucket_prefix: alice-
    access_keys: [{ id: AKEY, secret_env: S }]
buckets:
  - { tenant: alice, bucket: routed, backend: disk, backend_bucket: routed-here }
";

    fn parse(text: &str) -> Settings {
        let env = |k: &str| (k == "S").then(|| "secret".to_owned());
        config::parse_str(text, "t.yaml", &env).unwrap_or_else(|e| panic!("{}", e.lines().join("\n")))
    }

    #[test]
    fn restart_only_settings_are_named() {
        let old = parse(BASE);
        assert!(restart_only_changes(&old, &old).is_empty());
        let listen = parse(&BASE.replace("127.0.0.1:9000", "127.0.0.1:9001"));
        assert_eq!(restart_only_changes(&old, &listen), vec!["listen"]);
        let backend = parse(&BASE.replace("path: ./other", "path: ./elsewhere"));
        assert_eq!(restart_only_changes(&old, &backend), vec!["backends"]);
        // A new tenant and a new access key are live changes.
        let more = parse(&BASE.replace(
            "access_keys: [{ id: AKEY, secret_env: S }]",
            "access_keys: [{ id: AKEY, secret_env: S }, { id: AKEY2, secret_env: S }]",
        ));
        assert!(restart_only_changes(&old, &more).is_empty());
        assert!(moves(&old, &more).is_empty());
    }

    #[test]
    fn moving_data_is_named() {
        let old = parse(BASE);
        let prefix = parse(&BASE.replace("bucket_prefix: alice-", "bucket_prefix: alice2-"));
        assert!(moves(&old, &prefix).iter().any(|m| m.contains("tenant alice") && m.contains("move")));
        let rerouted = parse(
            &BASE.replace("backend: disk, backend_bucket: routed-here", "backend: other, backend_bucket: routed-here"),
        );
        assert!(moves(&old, &rerouted).iter().any(|m| m.contains("bucket routed") && m.contains("other/routed-here")));
        let unrouted = parse(BASE.split("buckets:").next().unwrap_or(BASE));
        assert!(moves(&old, &unrouted).iter().any(|m| m.contains("route is gone")));
        // A tenant removed with its routes moves nothing: its data stays where it is, unreachable.
        let without = parse(
            "listen: 127.0.0.1:9000
key_provider: { kind: local, keyring: ./k.json, master_key_file: ./m.key }
backends:
  - { name: disk, kind: fs, path: ./objects }
  - { name: other, kind: fs, path: ./other }
tenants:
  - name: bob
    default_backend: disk
    bucket_prefix: bob-
    access_keys: [{ id: BKEY, secret_env: S }]
",
        );
        assert!(moves(&old, &without).is_empty());
    }
}
