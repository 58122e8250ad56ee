//! `blobseal sweep`: deletes what has passed its retention deadline, with every version, delete
//! marker and backup copy, and reports each object in JSON lines.
//!
//! Every stored version carries its own authenticated deadline (`blobseal-delete-after`, stamped on
//! write), so the rule is per version: a version whose deadline has passed goes, unless Object Lock or a
//! legal hold keeps it (reported with the date it can go); a key left with only delete markers loses
//! them too. Backup targets are swept the same way (their copies carry the same stamps). Objects
//! written before a retention policy have no deadline and are kept (reported in the summary).
//!
//! Safe to run from several replicas at once: a lease object in the tenant's key store
//! (`sweep/<tenant>/lease`, taken with a conditional create) lets one sweeper work on a tenant at a time, and
//! every step is idempotent anyway (deleting what is gone is a no-op). A checkpoint beside the lease
//! (`sweep/<tenant>/checkpoint`, per shard with `--shard`: the location and the last key done, saved every
//! 100 keys and when the sweep is stopped) makes an interrupted run resume after that key; a run that gets
//! to the end removes it, so the next run starts from the beginning again.

use std::io::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Ops, OpsError};
use crate::backend::{BackendError, LockState, VersionEntry};
use crate::core::error::CoreError;
use crate::core::governance::VersionDeadline;
use crate::core::tenant::{Placement, Tenant};
use crate::core::upload_token::RESERVED_KEY_PREFIX;

/// The job name of the sweeper's leases (`sweep/<tenant>/lease…`, see `lease.rs`).
const JOB: &str = "sweep";

/// What to sweep and how.
#[derive(Debug, Clone)]
pub struct SweepRequest {
    /// `None`: every tenant.
    pub tenant: Option<String>,
    pub dry_run: bool,
    /// The time deadlines are compared with (default: now).
    pub now: OffsetDateTime,
    pub max_deletes_per_second: u32,
    /// Who sweeps, for the lease.
    pub holder: String,
    /// Set when the process is shutting down: the sweep stops after the key it is working on,
    /// releases its lease and reports itself stopped (the next run starts over; deletions are
    /// idempotent).
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Sweep only this shard of the key space (several processes share a sweep); `None`: all.
    pub shard: Option<Shard>,
}

/// Shard `index` of `count` (0-based): the stored keys whose SHA-256 taken as a number is `index`
/// modulo `count`. Stable across runs, processes and versions of blobseal, so N processes (a
/// Kubernetes Indexed Job) split a sweep with no coordination but a lease per shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// `I/N` with `I < N`, `N >= 1`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("--shard {text:?}: expected I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count) = (i.trim().parse::<u32>().map_err(|_| bad())?, n.trim().parse::<u32>().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }

    /// Whether `stored_key` belongs to this shard.
    pub fn owns(self, stored_key: &str) -> bool {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(stored_key.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first) % u64::from(self.count) == u64::from(self.index)
    }
}

impl SweepRequest {
    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// One JSON line of the report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReportLine {
    pub tenant: String,
    pub bucket: String,
    pub key: String,
    /// `primary`, or `backup:<backend>/<bucket>`.
    pub location: String,
    /// `deleted`, `would-delete`, `kept-locked`, `partial` or `error`.
    pub result: String,
    pub deadline: Option<String>,
    pub versions_deleted: Vec<String>,
    pub delete_markers_deleted: Vec<String>,
    pub kept_locked: Vec<KeptLocked>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The deadline tag disagreed with the authenticated deadline (someone edited the tag).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tag_mismatch: bool,
}

/// An expired version kept because it is locked.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeptLocked {
    pub version_id: Option<String>,
    /// When the retention ends (RFC 3339), if that is what keeps it.
    pub until: Option<String>,
    pub legal_hold: bool,
}

/// Totals of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepSummary {
    pub tenants: usize,
    pub versions_examined: u64,
    pub versions_deleted: u64,
    pub delete_markers_deleted: u64,
    pub kept_locked: u64,
    pub not_due: u64,
    pub no_deadline: u64,
    pub errors: u64,
    /// Tenants skipped because another sweeper holds their lease.
    pub leased_elsewhere: Vec<String>,
    /// The sweep was stopped by a shutdown before it finished.
    pub stopped: bool,
    pub dry_run: bool,
    /// The run resumed an interrupted one from its checkpoint (keys before it were not looked at).
    pub resumed: bool,
    /// Deadline-day keys destroyed (or, in a dry run, due), `tenant/period:<day>`.
    pub period_keys: Vec<String>,
    /// Deadline days with a version that had to stay (locked, or an error): their keys are kept.
    held_days: std::collections::BTreeSet<time::Date>,
}

impl SweepSummary {
    pub fn line(&self, secs: f64) -> String {
        format!(
            "sweep{}{}{}: {} tenant(s), {} version(s) examined, {} deleted, {} delete marker(s) deleted, {} kept (locked), {} not yet due, {} without a deadline, {} error(s){} ({secs:.1} s)",
            if self.dry_run { " (dry run: nothing deleted)" } else { "" },
            if self.stopped { " (stopped by shutdown before the end; resumes from its checkpoint)" } else { "" },
            if self.resumed { " (resumed from a checkpoint)" } else { "" },
            self.tenants,
            self.versions_examined,
            self.versions_deleted,
            self.delete_markers_deleted,
            self.kept_locked,
            self.not_due,
            self.no_deadline,
            self.errors,
            if self.leased_elsewhere.is_empty() {
                String::new()
            } else {
                format!("; skipped (another sweeper holds the lease): {}", self.leased_elsewhere.join(", "))
            },
        ) + &if self.period_keys.is_empty() {
            String::new()
        } else {
            format!(
                "; deadline-day keys {}: {}",
                if self.dry_run { "due" } else { "destroyed" },
                self.period_keys.join(", ")
            )
        }
    }
}

/// How many keys a sweep does between two checkpoints.
const CHECKPOINT_EVERY: u64 = 100;

/// Where an interrupted sweep of a tenant (or of one shard of it) got to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Checkpoint {
    /// The location being swept (a client bucket or `backup:<backend>/<bucket>`).
    location: String,
    /// Every stored key up to and including this one was swept.
    after: String,
}

fn checkpoint_key(tenant: &str, shard: Option<Shard>) -> String {
    match shard {
        None => format!("sweep/{tenant}/checkpoint"),
        Some(s) => format!("sweep/{tenant}/checkpoint-{}-of-{}", s.index, s.count),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Sweeps, writing one report line per object acted on to `report`.
pub async fn sweep(ops: &Ops, req: &SweepRequest, report: &mut (dyn Write + Send)) -> Result<SweepSummary, OpsError> {
    let mut sum = SweepSummary { dry_run: req.dry_run, ..SweepSummary::default() };
    crate::metrics::get().sweep_runs.inc();
    let names: Vec<String> = match &req.tenant {
        Some(t) => vec![ops.tenant(t)?.name.clone()],
        None => {
            let mut all: Vec<String> = ops.core.directory().tenants().map(|t| t.name.clone()).collect();
            all.sort();
            all
        }
    };
    for name in names {
        if sum.stopped {
            break;
        }
        let tenant = ops.tenant(&name)?;
        if !req.dry_run && !super::lease::take(ops, JOB, &name, &req.holder, req.shard).await? {
            sum.leased_elsewhere.push(name);
            continue;
        }
        sum.tenants += 1;
        let result = sweep_tenant(ops, &tenant, req, report, &mut sum).await;
        if !req.dry_run {
            super::lease::release(ops, JOB, &name, &req.holder, req.shard).await;
        }
        result?;
    }
    Ok(sum)
}

async fn sweep_tenant(
    ops: &Ops,
    tenant: &Tenant,
    req: &SweepRequest,
    report: &mut (dyn Write + Send),
    sum: &mut SweepSummary,
) -> Result<(), OpsError> {
    let mut locations: Vec<(String, Placement, bool)> =
        ops.buckets(tenant, None).await?.into_iter().map(|(name, p)| (name, p, false)).collect();
    for target in &ops.core.directory().all_backup_targets(tenant) {
        let backend = ops.core.directory().backend_named(&target.backend).ok_or_else(|| {
            OpsError::Refused(format!("backup target {}/{} names an unknown backend", target.backend, target.bucket))
        })?;
        let p = Placement { backend_name: target.backend.clone(), backend, bucket: target.bucket.clone() };
        locations.push((format!("backup:{}/{}", target.backend, target.bucket), p, true));
    }
    sum.held_days.clear();
    let store = &ops.keys().tenant(&tenant.name)?.store;
    let checkpoint_name = checkpoint_key(&tenant.name, req.shard);
    // A dry run neither resumes nor leaves a checkpoint: it reports the whole tenant.
    let mut resume = if req.dry_run { None } else { store.get::<Checkpoint>(&checkpoint_name).await? };
    if let Some(c) = &resume {
        if locations.iter().any(|(name, _, _)| *name == c.location) {
            tracing::info!(tenant = %tenant.name, location = %c.location, "resuming an interrupted sweep");
            sum.resumed = true;
        } else {
            resume = None;
        }
    }
    // A resumed run did not see the keys before its checkpoint, nor their locked versions.
    let resumed = resume.is_some();
    for (name, p, is_backup) in &locations {
        if sum.stopped {
            return Ok(());
        }
        let after = match &resume {
            Some(c) if c.location != *name => continue,
            Some(c) => Some(c.after.clone()),
            None => None,
        };
        resume = None;
        let mut cursor = Cursor { store, name: &checkpoint_name, location: name, since_saved: 0, last: None };
        let outcome = sweep_location(ops, tenant, name, p, *is_backup, after, req, report, sum, &mut cursor).await;
        if !req.dry_run {
            cursor.save().await?;
        }
        outcome?;
        if !req.dry_run {
            super::lease::renew(ops, JOB, &tenant.name, &req.holder, req.shard).await?;
        }
    }
    if !req.dry_run && !sum.stopped {
        store.delete(&checkpoint_name).await?;
    }
    // A shard does not see the other shards' locked versions, nor a resumed run those before its
    // checkpoint, whose deadline days must keep their keys: deadline-day keys are destroyed only by a
    // complete, unsharded sweep.
    if tenant.retention.period_keys && !sum.stopped && req.shard.is_none() && !resumed {
        destroy_past_days(ops, tenant, req, report, sum).await?;
    }
    Ok(())
}

/// Destroys the keys of deadline days that have passed (every object due on them was deleted, or is
/// beyond reach): copies nobody could delete become unreadable. A day with a version that had to stay
/// (locked, or an error) keeps its key.
async fn destroy_past_days(
    ops: &Ops,
    tenant: &Tenant,
    req: &SweepRequest,
    report: &mut (dyn Write + Send),
    sum: &mut SweepSummary,
) -> Result<(), OpsError> {
    let store = &ops.keys().tenant(&tenant.name)?.store;
    let all = crate::core::keys::store::names::lifetime_prefix(&tenant.name);
    let today = req.now.date();
    let due: Vec<time::Date> = store
        .list(&format!("{all}period:"))
        .await?
        .iter()
        .filter_map(|k| crate::core::keys::chain::parse_period_key_id(k.strip_prefix(&all)?))
        .filter(|d| *d <= today && !sum.held_days.contains(d))
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = due.iter().map(|d| crate::core::keys::chain::period_key_id(*d)).collect();
    let receipt = if req.dry_run {
        None
    } else {
        let r = super::shred::shred_periods(ops, &tenant.name, &due, &req.holder, true).await?;
        tracing::info!(tenant = %tenant.name, days = ?ids, receipt = %r.receipt, "deadline-day keys destroyed");
        Some(r.receipt)
    };
    let line = serde_json::json!({
        "tenant": tenant.name,
        "result": if req.dry_run { "would-destroy-period-keys" } else { "period-keys-destroyed" },
        "period_keys": ids,
        "receipt": receipt,
    });
    writeln!(report, "{line}").map_err(|e| OpsError::Refused(format!("cannot write the report: {e}")))?;
    sum.period_keys.extend(ids.iter().map(|id| format!("{}/{id}", tenant.name)));
    Ok(())
}

/// The checkpoint of the location being swept: the last key done, saved every [`CHECKPOINT_EVERY`].
struct Cursor<'a> {
    store: &'a crate::core::keys::store::KeyStore,
    name: &'a str,
    location: &'a str,
    since_saved: u64,
    last: Option<String>,
}

impl Cursor<'_> {
    async fn done(&mut self, key: &str, dry_run: bool) -> Result<(), OpsError> {
        self.last = Some(key.to_owned());
        self.since_saved += 1;
        if !dry_run && self.since_saved >= CHECKPOINT_EVERY {
            self.save().await?;
        }
        Ok(())
    }

    async fn save(&mut self) -> Result<(), OpsError> {
        if let Some(after) = self.last.clone().filter(|_| self.since_saved > 0) {
            let c = Checkpoint { location: self.location.to_owned(), after };
            self.store.put(self.name, &c, false).await?;
            self.since_saved = 0;
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
async fn sweep_location(
    ops: &Ops,
    tenant: &Tenant,
    location: &str,
    p: &Placement,
    is_backup: bool,
    after: Option<String>,
    req: &SweepRequest,
    report: &mut (dyn Write + Send),
    sum: &mut SweepSummary,
    cursor: &mut Cursor<'_>,
) -> Result<(), OpsError> {
    let mut group: Vec<VersionEntry> = Vec::new();
    let mut pages = super::VersionPages::after(p, after);
    loop {
        let versions = match pages.next().await {
            Ok(Some(v)) => v,
            Ok(None) | Err(BackendError::NoSuchBucket) => break,
            Err(e) => return Err(e.into()),
        };
        for v in versions {
            if v.meta.key.starts_with(RESERVED_KEY_PREFIX) {
                continue;
            }
            if req.stopping() {
                sum.stopped = true;
                return Ok(());
            }
            if req.shard.is_some_and(|s| !s.owns(&v.meta.key)) {
                continue;
            }
            if group.first().is_some_and(|g| g.meta.key != v.meta.key) {
                let done = std::mem::take(&mut group);
                let key = done.first().map(|g| g.meta.key.clone()).unwrap_or_default();
                sweep_key(ops, tenant, location, p, is_backup, done, req, report, sum).await?;
                cursor.done(&key, req.dry_run).await?;
            }
            group.push(v);
        }
    }
    if !group.is_empty() {
        let key = group.first().map(|g| g.meta.key.clone()).unwrap_or_default();
        sweep_key(ops, tenant, location, p, is_backup, group, req, report, sum).await?;
        cursor.done(&key, req.dry_run).await?;
    }
    Ok(())
}

/// The versions of one stored key.
#[allow(clippy::too_many_arguments)]
async fn sweep_key(
    ops: &Ops,
    tenant: &Tenant,
    location: &str,
    p: &Placement,
    is_backup: bool,
    versions: Vec<VersionEntry>,
    req: &SweepRequest,
    report: &mut (dyn Write + Send),
    sum: &mut SweepSummary,
) -> Result<(), OpsError> {
    let Some(stored_key) = versions.first().map(|v| v.meta.key.clone()) else { return Ok(()) };
    // A backup copy is authenticated as the object it copies: `<client bucket>/<key>`.
    let (bucket, key) = if is_backup {
        match stored_key.split_once('/') {
            Some((b, k)) => (b.to_owned(), k.to_owned()),
            None => return Ok(()),
        }
    } else {
        (location.to_owned(), stored_key.clone())
    };
    let mut line = ReportLine {
        tenant: tenant.name.clone(),
        bucket: bucket.clone(),
        key: key.clone(),
        location: if is_backup { location.to_owned() } else { "primary".to_owned() },
        ..ReportLine::default()
    };
    let mut remaining = 0usize;
    let mut acted = false;
    for v in versions.iter().filter(|v| !v.is_delete_marker) {
        sum.versions_examined += 1;
        let vid = v.meta.version_id.as_deref();
        let deadline = match ops.core.version_deadline(tenant, &bucket, &key, p, &stored_key, vid).await {
            Ok((VersionDeadline::Known(d) | VersionDeadline::Unreadable(d), mismatch)) => {
                line.tag_mismatch |= mismatch;
                d
            }
            Err(CoreError::Backend(BackendError::NoSuchKey | BackendError::NoSuchVersion)) => continue,
            Err(e) => {
                sum.errors += 1;
                remaining += 1;
                line.error = Some(e.to_string());
                acted = true;
                continue;
            }
        };
        let Some(deadline) = deadline else {
            sum.no_deadline += 1;
            remaining += 1;
            continue;
        };
        line.deadline = Some(rfc3339(deadline));
        if deadline > req.now {
            sum.not_due += 1;
            remaining += 1;
            continue;
        }
        acted = true;
        let lock = match p.backend.lock_state(&p.bucket, &stored_key, vid).await {
            Ok(l) => l,
            Err(BackendError::NotSupported(_)) => LockState::default(),
            Err(e) => return Err(e.into()),
        };
        if lock.blocks_delete_at(req.now) {
            keep_locked(&mut line, sum, v, &lock);
            sum.held_days.insert(deadline.date());
            remaining += 1;
            continue;
        }
        if req.dry_run {
            line.versions_deleted.push(vid.unwrap_or("null").to_owned());
            continue;
        }
        match p.backend.delete(&p.bucket, &stored_key, vid).await {
            Ok(_) => {
                sum.versions_deleted += 1;
                crate::metrics::get().sweep_deleted_versions.inc();
                tracing::info!(tenant = %tenant.name, bucket = %bucket, key = %ops.core.keys().loggable_key(&tenant.name, &key), location = %line.location, version = vid.unwrap_or("null"), deadline = %rfc3339(deadline), "sweeper deleted an expired version");
                line.versions_deleted.push(vid.unwrap_or("null").to_owned());
            }
            Err(BackendError::ObjectLocked(_)) => {
                keep_locked(&mut line, sum, v, &lock);
                sum.held_days.insert(deadline.date());
                remaining += 1;
            }
            Err(e) => {
                sum.errors += 1;
                sum.held_days.insert(deadline.date());
                remaining += 1;
                line.error = Some(e.to_string());
            }
        }
        pace(req).await;
    }
    // Delete markers of a key with nothing left to mark are noise: they go too.
    if remaining == 0 {
        for m in versions.iter().filter(|v| v.is_delete_marker) {
            let vid = m.meta.version_id.as_deref();
            acted = true;
            if req.dry_run {
                line.delete_markers_deleted.push(vid.unwrap_or("null").to_owned());
                continue;
            }
            match p.backend.delete(&p.bucket, &stored_key, vid).await {
                Ok(_) => {
                    sum.delete_markers_deleted += 1;
                    line.delete_markers_deleted.push(vid.unwrap_or("null").to_owned());
                }
                Err(e) => {
                    sum.errors += 1;
                    line.error = Some(e.to_string());
                }
            }
            pace(req).await;
        }
    }
    if acted {
        line.result = result_of(&line, req.dry_run);
        let json = serde_json::to_string(&line).map_err(|e| OpsError::Refused(e.to_string()))?;
        writeln!(report, "{json}").map_err(|e| OpsError::Refused(format!("cannot write the report: {e}")))?;
    }
    Ok(())
}

fn keep_locked(line: &mut ReportLine, sum: &mut SweepSummary, v: &VersionEntry, lock: &LockState) {
    sum.kept_locked += 1;
    crate::metrics::get().sweep_kept_locked.inc();
    line.kept_locked.push(KeptLocked {
        version_id: v.meta.version_id.clone(),
        until: lock.retain_until.map(rfc3339),
        legal_hold: lock.legal_hold,
    });
}

fn result_of(line: &ReportLine, dry_run: bool) -> String {
    let did = !line.versions_deleted.is_empty() || !line.delete_markers_deleted.is_empty();
    let kept = !line.kept_locked.is_empty() || line.error.is_some();
    match (did, kept, dry_run) {
        (true, false, true) => "would-delete",
        (true, false, false) => "deleted",
        (true, true, _) => "partial",
        (false, _, _) if line.error.is_some() => "error",
        _ => "kept-locked",
    }
    .to_owned()
}

/// Keeps deletions under `max_deletes_per_second`.
async fn pace(req: &SweepRequest) {
    if !req.dry_run {
        tokio::time::sleep(Duration::from_secs_f64(1.0 / f64::from(req.max_deletes_per_second.max(1)))).await;
    }
}

#[cfg(test)]
#[path = "sweep_tests.rs"]
mod tests;
