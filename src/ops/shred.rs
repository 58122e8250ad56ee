//! `blobseal shred --tenant T [--subject S]...`: crypto-shredding.
//!
//! - A tenant: a tombstone first (writes are refused from then on, within the cache TTL), then every
//!   root key of the tenant is destroyed in its provider and every lifetime key record removed, and
//!   once more after one cache TTL (for keys a replica made before it saw the tombstone). No
//!   copy of any object or key-store record can be opened afterwards: all of them lead to those roots.
//! - Data subjects: each subject's lifetime key record is removed and a tombstone written (writes for
//!   the subject are refused, reads say why), then the root is rolled: a new root generation, a wait
//!   of one cache TTL (so no replica still creates keys under the old root), every surviving lifetime
//!   key re-wrapped under the new root, and the old roots destroyed. A pre-shred copy of the subject's
//!   key record (in a backup or an old version of the key store) is wrapped under a destroyed root.
//!
//! Each shred writes a [`Receipt`]. Rerunning an interrupted shred finishes it.

use super::receipt::{self, DestroyedRoot, NewRoot, Receipt};
use super::roll::{destroy_older_roots, destroy_root, rewrap_lifetime_keys, wait_for_replicas};
use super::{now, Ops, OpsError};
use crate::core::keys::chain::{period_key_id, subject_key_id};
use crate::core::keys::store::{names, Tombstone};

/// What to shred.
#[derive(Debug, Clone)]
pub struct ShredRequest {
    pub tenant: String,
    /// Empty: the whole tenant.
    pub subjects: Vec<String>,
    /// Who asked (for the receipt).
    pub by: String,
    /// No progress lines on stderr.
    pub quiet: bool,
}

pub async fn shred(ops: &Ops, req: &ShredRequest) -> Result<Receipt, OpsError> {
    ops.tenant(&req.tenant)?;
    if req.subjects.is_empty() {
        shred_tenant(ops, req).await
    } else {
        shred_subjects(ops, req).await
    }
}

async fn shred_tenant(ops: &Ops, req: &ShredRequest) -> Result<Receipt, OpsError> {
    let tenant = req.tenant.as_str();
    let keys = ops.keys();
    let t = keys.tenant(tenant)?;
    let (seq, receipt_key, previous) = receipt::next_slot(&t.store, tenant).await?;
    let at = now();
    let stone = Tombstone { shredded_at: at.clone(), receipt: receipt_key.clone() };
    t.store.put(&names::shredded_tenant(tenant), &stone, false).await?;
    let mut destroyed_roots = Vec::new();
    let mut destroyed_keys = Vec::new();
    destroy_everything(keys, tenant, &mut destroyed_roots, &mut destroyed_keys).await?;
    // A replica that had not seen the tombstone yet may have made a key since (a first write of a tenant
    // without keys); after one TTL none can: a second pass leaves nothing.
    wait_for_replicas(keys, req.quiet).await;
    destroy_everything(keys, tenant, &mut destroyed_roots, &mut destroyed_keys).await?;
    let receipt = Receipt {
        format: 1,
        seq,
        receipt: receipt_key,
        kind: "tenant".into(),
        tenant: tenant.to_owned(),
        subjects: Vec::new(),
        periods: Vec::new(),
        destroyed_keys,
        destroyed_roots,
        new_root: None,
        at,
        by: req.by.clone(),
        cache_ttl_seconds: keys.ttl().as_secs(),
        previous_receipt_sha256: previous,
    };
    receipt::write(&t.store, &receipt).await?;
    keys.forget(tenant, &receipt.destroyed_keys);
    Ok(receipt)
}

/// Destroys every root of `tenant` and removes every lifetime key record, appending what it did.
async fn destroy_everything(
    keys: &crate::core::keys::chain::Keychain,
    tenant: &str,
    roots: &mut Vec<DestroyedRoot>,
    lifetime: &mut Vec<String>,
) -> Result<(), OpsError> {
    let t = keys.tenant(tenant)?;
    for root in &keys.load_state(tenant).await?.roots {
        let done = destroy_root(keys, tenant, root).await?;
        roots.push(DestroyedRoot {
            gen: root.gen,
            root_id: done.root_id,
            provider: root.provider.clone(),
            detail: done.detail,
        });
    }
    let prefix = names::lifetime_prefix(tenant);
    for name in t.store.list(&prefix).await? {
        t.store.delete(&name).await?;
        lifetime.push(name.strip_prefix(&prefix).unwrap_or(&name).to_owned());
    }
    Ok(())
}

async fn shred_subjects(ops: &Ops, req: &ShredRequest) -> Result<Receipt, OpsError> {
    let tenant = req.tenant.as_str();
    let ids = req.subjects.iter().map(|s| subject_key_id(tenant, s)).collect();
    shred_named(ops, tenant, ids, "subject", &req.by, req.quiet).await
}

/// Destroys the keys of deadline days (`period:<day>`): every object whose deadline fell on one of
/// them becomes unreadable wherever its copies are. The sweeper calls this for days that have passed.
pub async fn shred_periods(
    ops: &Ops,
    tenant: &str,
    days: &[time::Date],
    by: &str,
    quiet: bool,
) -> Result<Receipt, OpsError> {
    let ids = days.iter().map(|d| period_key_id(*d)).collect();
    shred_named(ops, tenant, ids, "period", by, quiet).await
}

/// Removes the lifetime keys `ids` (subjects or deadline days), leaves tombstones, and rolls the root.
async fn shred_named(
    ops: &Ops,
    tenant: &str,
    ids: Vec<String>,
    kind: &str,
    by: &str,
    quiet: bool,
) -> Result<Receipt, OpsError> {
    let keys = ops.keys();
    let t = keys.tenant(tenant)?;
    let state = keys.load_state(tenant).await?;
    if let Some(stone) = &state.shredded {
        return Err(OpsError::Refused(format!("tenant {tenant} was already shredded at {}", stone.shredded_at)));
    }
    let (seq, receipt_key, previous) = receipt::next_slot(&t.store, tenant).await?;
    let at = now();
    let mut destroyed_keys = Vec::new();
    for id in &ids {
        let record = names::lifetime(tenant, id);
        if t.store.get_raw(&record).await?.is_some() {
            destroyed_keys.push(id.clone());
        }
        // Tombstone before delete: a replica that misses the key then finds the reason, never a gap
        // in which it would create a fresh key.
        let stone = Tombstone { shredded_at: at.clone(), receipt: receipt_key.clone() };
        t.store.put(&names::tombstone(tenant, id), &stone, false).await?;
        t.store.delete(&record).await?;
    }
    keys.forget(tenant, &ids);

    // Roll the root so that no old copy of the removed records can be opened.
    let new_root = match keys.create_root_generation(tenant).await? {
        Some(root) => root,
        None => {
            return Err(OpsError::Refused(
                "another process created a root generation at the same time; run the shred again".into(),
            ))
        }
    };
    wait_for_replicas(keys, quiet).await;
    // A replica that checked for the tombstone just before it was written may have created the key
    // again in the meantime; after the wait no replica can, so remove such a key before the roll.
    for id in &ids {
        t.store.delete(&names::lifetime(tenant, id)).await?;
    }
    let moved = rewrap_lifetime_keys(keys, tenant, &new_root).await?;
    let old: Vec<_> = keys.load_state(tenant).await?.roots.into_iter().filter(|r| r.gen < new_root.gen).collect();
    let destroyed = destroy_older_roots(keys, tenant, &new_root, &moved.unopenable).await?;
    let destroyed_roots = old
        .iter()
        .zip(destroyed)
        .map(|(r, d)| DestroyedRoot { gen: r.gen, root_id: d.root_id, provider: r.provider.clone(), detail: d.detail })
        .collect();
    let (subjects, periods) = if kind == "period" { (Vec::new(), ids) } else { (ids, Vec::new()) };
    let receipt = Receipt {
        format: 1,
        seq,
        receipt: receipt_key,
        kind: kind.into(),
        tenant: tenant.to_owned(),
        subjects,
        periods,
        destroyed_keys,
        destroyed_roots,
        new_root: Some(NewRoot { gen: new_root.gen, root_id: new_root.root_id.clone() }),
        at,
        by: by.to_owned(),
        cache_ttl_seconds: keys.ttl().as_secs(),
        previous_receipt_sha256: previous,
    };
    receipt::write(&t.store, &receipt).await?;
    Ok(receipt)
}
