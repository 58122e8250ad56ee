//! `blobseal keys rewrap --tenant T [--bucket B] [--limit N] [--shard I/N]`: moves every object's data key to the
//! tenant's current key by rewriting only its envelope (see `core::rekey`), bucket by bucket in key
//! order. A checkpoint in the key store (`keys/<t>/rewrap/<bucket>`: the target key and the last key
//! done) makes a crashed or limited run resume where it stopped; objects already current are
//! skipped anyway, so a rerun is always safe.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::{object_page, Ops, OpsError};
use crate::core::keys::chain::tenant_key_id;
use crate::core::keys::store::names;
use crate::core::rekey::RewrapOutcome;

/// Where a bucket's rewrap got to.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Checkpoint {
    /// The tenant key the run moves objects to; a checkpoint for another target is ignored.
    target: String,
    /// Every key up to and including this one is done.
    after: String,
}

/// Counts for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RewrapSummary {
    pub rewrapped: u64,
    pub already_current: u64,
    pub subject_keys: u64,
    pub failed: u64,
    pub buckets: usize,
    /// The run stopped at `--limit` before the end.
    pub stopped_at_limit: bool,
    pub target: String,
}

impl RewrapSummary {
    pub fn line(&self, tenant: &str, secs: f64) -> String {
        format!(
            "rewrap tenant {tenant} to {}: {} rewrapped, {} already current, {} under data-subject keys, {} failed, in {} bucket(s) ({secs:.1} s){}",
            self.target,
            self.rewrapped,
            self.already_current,
            self.subject_keys,
            self.failed,
            self.buckets,
            if self.stopped_at_limit { "; stopped at --limit, run again to continue" } else { "" }
        )
    }
}

fn progress_bar() -> ProgressBar {
    // A bar only on a terminal: in logs and CI the summary line says it all.
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
    };
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed} {pos} objects {msg}") {
        bar.set_style(style);
    }
    bar
}

/// With `shard`, only the keys of that shard (the sweep's split), each shard with its own checkpoint.
pub async fn rewrap(
    ops: &Ops,
    tenant: &str,
    bucket: Option<&str>,
    limit: Option<u64>,
    shard: Option<super::sweep::Shard>,
) -> Result<RewrapSummary, OpsError> {
    let t = ops.tenant(tenant)?;
    let keys = ops.keys();
    let state = keys.load_state(tenant).await?;
    let Some(n) = state.current_tenant_key() else {
        return Ok(RewrapSummary { target: "(no tenant key yet)".into(), ..RewrapSummary::default() });
    };
    let target = tenant_key_id(n);
    // One rewrap per tenant and shard at a time (a lease, as the sweeper takes one).
    let holder = format!("{}/pid-{}", super::operator(None), std::process::id());
    if !super::lease::take(ops, JOB, tenant, &holder, shard).await? {
        return Err(OpsError::Refused(format!(
            "another `keys rewrap` of tenant {tenant}{} is running (its lease is in the key store); try again later",
            shard.map(|s| format!(" shard {}/{}", s.index, s.count)).unwrap_or_default()
        )));
    }
    let result = rewrap_leased(ops, &t, tenant, bucket, limit, shard, &target, &holder).await;
    super::lease::release(ops, JOB, tenant, &holder, shard).await;
    result
}

/// The job name of rewrap leases (`rewrap/<tenant>/lease…`).
const JOB: &str = "rewrap";

#[allow(clippy::too_many_arguments)]
async fn rewrap_leased(
    ops: &Ops,
    t: &crate::core::tenant::Tenant,
    tenant: &str,
    bucket: Option<&str>,
    limit: Option<u64>,
    shard: Option<super::sweep::Shard>,
    target: &str,
    holder: &str,
) -> Result<RewrapSummary, OpsError> {
    let target = target.to_owned();
    let keys = ops.keys();
    let store = &keys.tenant(tenant)?.store;
    let buckets = ops.buckets(t, bucket).await?;
    let mut sum = RewrapSummary { target: target.clone(), buckets: buckets.len(), ..RewrapSummary::default() };
    let bar = progress_bar();
    let mut done: u64 = 0;
    'buckets: for (name, p) in &buckets {
        let checkpoint_key = match shard {
            None => names::rewrap_checkpoint(tenant, name),
            Some(s) => format!("{}-{}-of-{}", names::rewrap_checkpoint(tenant, name), s.index, s.count),
        };
        let mut after = match store.get::<Checkpoint>(&checkpoint_key).await? {
            Some(c) if c.target == target => Some(c.after),
            _ => None,
        };
        loop {
            let (page, more) = object_page(p, after.as_deref()).await?;
            for key in &page {
                if shard.is_some_and(|s| !s.owns(key)) {
                    after = Some(key.clone());
                    continue;
                }
                if limit.is_some_and(|l| done >= l) {
                    save(store, &checkpoint_key, &target, after.as_deref()).await?;
                    sum.stopped_at_limit = true;
                    break 'buckets;
                }
                let outcome = match p.backend.head(&p.bucket, key, None).await {
                    Ok(head) => ops.core.rewrap_object(t, name, p, key, &head, &target).await,
                    Err(e) => Err(e.into()),
                };
                match outcome {
                    Ok(RewrapOutcome::Rewrapped { .. }) => sum.rewrapped += 1,
                    Ok(RewrapOutcome::AlreadyCurrent) => sum.already_current += 1,
                    Ok(RewrapOutcome::SubjectKey) => sum.subject_keys += 1,
                    Err(e) => {
                        sum.failed += 1;
                        tracing::warn!(tenant, bucket = %name, key = %ops.core.keys().loggable_key(tenant, key), error = %e, "rewrap failed for an object");
                    }
                }
                done += 1;
                after = Some(key.clone());
                bar.set_position(done);
                bar.set_message(format!("bucket {name}: {} rewrapped", sum.rewrapped));
                if done.is_multiple_of(100) {
                    save(store, &checkpoint_key, &target, after.as_deref()).await?;
                    super::lease::renew(ops, JOB, tenant, holder, shard).await?;
                }
            }
            if !more || page.is_empty() {
                break;
            }
        }
        // The bucket is done: its checkpoint goes.
        store.delete(&checkpoint_key).await?;
    }
    bar.finish_and_clear();
    Ok(sum)
}

async fn save(
    store: &crate::core::keys::store::KeyStore,
    key: &str,
    target: &str,
    after: Option<&str>,
) -> Result<(), OpsError> {
    if let Some(after) = after {
        store.put(key, &Checkpoint { target: target.to_owned(), after: after.to_owned() }, false).await?;
    }
    Ok(())
}
