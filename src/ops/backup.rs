//! `blobseal backup [--tenant T] [--shard I/N]`: brings every backup target up to date with the current
//! objects: a copy is written where it is missing or differs (another envelope: the object was rewritten).
//! The same copies the write path makes; this catches up after a failed copy or a new target.
//! With `--shard`, only the keys of that shard (the sweep's split), so N processes share the work. A
//! checkpoint per bucket and shard in the tenant's key store (`backup/<tenant>/<bucket>/checkpoint…`, the
//! last key done, every 100 keys) lets an interrupted run resume; a finished bucket removes it. A lease per
//! tenant and shard (`lease.rs`) keeps two processes from running the same backup at once.

use super::sweep::Shard;
use super::{object_page, Ops, OpsError};
use crate::backend::BackendError;
use crate::core::governance::backup_key;
use crate::core::stored::ENVELOPE_META;
use crate::core::tenant::Placement;

/// Counts of a backup run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub examined: u64,
    pub copied: u64,
    pub up_to_date: u64,
    pub failed: u64,
    /// Tenants skipped because another process holds their backup lease (for this shard).
    pub leased_elsewhere: Vec<String>,
}

/// The job name of backup leases (`backup/<tenant>/lease…`).
const JOB: &str = "backup";

/// Keys between two checkpoints.
const CHECKPOINT_EVERY: u64 = 100;

fn checkpoint_key(tenant: &str, bucket: &str, shard: Option<Shard>) -> String {
    match shard {
        None => format!("backup/{tenant}/{bucket}/checkpoint"),
        Some(s) => format!("backup/{tenant}/{bucket}/checkpoint-{}-of-{}", s.index, s.count),
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    /// Every key up to and including this one is done.
    after: String,
}

pub async fn backup(ops: &Ops, tenant: Option<&str>, shard: Option<Shard>) -> Result<BackupSummary, OpsError> {
    let mut sum = BackupSummary::default();
    let names: Vec<String> = match tenant {
        Some(t) => vec![ops.tenant(t)?.name.clone()],
        None => ops.core.directory().tenants().map(|t| t.name.clone()).collect(),
    };
    let holder = format!("{}/pid-{}", super::operator(None), std::process::id());
    for name in names {
        // One process per tenant and shard at a time (the sweeper's rule); a held lease skips the tenant.
        if !super::lease::take(ops, JOB, &name, &holder, shard).await? {
            sum.leased_elsewhere.push(name);
            continue;
        }
        let result = backup_tenant(ops, &name, shard, &holder, &mut sum).await;
        super::lease::release(ops, JOB, &name, &holder, shard).await;
        result?;
    }
    Ok(sum)
}

async fn backup_tenant(
    ops: &Ops,
    name: &str,
    shard: Option<Shard>,
    holder: &str,
    sum: &mut BackupSummary,
) -> Result<(), OpsError> {
    let t = ops.tenant(name)?;
    for (bucket, p) in ops.buckets(&t, None).await? {
        let targets = ops.core.directory().backup_targets(&t, &bucket);
        if targets.is_empty() {
            continue;
        }
        let store = &ops.keys().tenant(name)?.store;
        let checkpoint = checkpoint_key(name, &bucket, shard);
        let mut after: Option<String> = store.get::<Checkpoint>(&checkpoint).await?.map(|c| c.after);
        let mut since_saved = 0u64;
        loop {
            let (keys, more) = object_page(&p, after.as_deref()).await?;
            for key in &keys {
                if shard.is_some_and(|s| !s.owns(key)) {
                    continue;
                }
                sum.examined += 1;
                for target in &targets {
                    match backup_one(ops, &bucket, key, &p, &target.backend, &target.bucket).await {
                        Ok(true) => sum.copied += 1,
                        Ok(false) => sum.up_to_date += 1,
                        Err(e) => {
                            sum.failed += 1;
                            tracing::warn!(tenant = %name, bucket = %bucket, key = %ops.core.keys().loggable_key(name, key), error = %e, "backup copy failed");
                        }
                    }
                }
            }
            after = keys.last().cloned();
            since_saved += keys.len() as u64;
            if since_saved >= CHECKPOINT_EVERY {
                if let Some(a) = &after {
                    store.put(&checkpoint, &Checkpoint { after: a.clone() }, false).await?;
                }
                super::lease::renew(ops, JOB, name, holder, shard).await?;
                since_saved = 0;
            }
            if !more || after.is_none() {
                break;
            }
        }
        store.delete(&checkpoint).await?;
    }
    Ok(())
}

/// Copies one object to one target unless the target already holds this version of it.
async fn backup_one(
    ops: &Ops,
    bucket: &str,
    key: &str,
    p: &Placement,
    target_backend: &str,
    target_bucket: &str,
) -> Result<bool, OpsError> {
    let target = ops
        .core
        .directory()
        .backend_named(target_backend)
        .ok_or_else(|| OpsError::Refused(format!("backup target names an unknown backend {target_backend}")))?;
    let source = p.backend.head(&p.bucket, key, None).await?;
    match target.head(target_bucket, &backup_key(bucket, key), None).await {
        Ok(copy) if copy.metadata.get(ENVELOPE_META) == source.metadata.get(ENVELOPE_META) => return Ok(false),
        Ok(_) | Err(BackendError::NoSuchKey | BackendError::NoSuchBucket) => {}
        Err(e) => return Err(e.into()),
    }
    ops.core.copy_one_backup(bucket, key, p, None, target_backend, target_bucket).await?;
    Ok(true)
}
