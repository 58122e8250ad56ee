//! The root roll: re-wrap every lifetime key of a tenant under one root generation, then destroy
//! the older roots. After it, any copy of the key store taken before (a backup, an old version of
//! a record) is useless: its records are wrapped under roots that no longer exist.

use std::time::Duration;

use super::OpsError;
use crate::core::keys::chain::Keychain;
use crate::core::keys::store::{names, LifetimeRecord, RootRecord};
use crate::core::keys::{Destruction, KeyError};

/// What a re-wrap of the lifetime keys did.
#[derive(Debug, Default)]
pub struct LifetimeRewrap {
    pub rewrapped: usize,
    /// Records under a root the provider no longer has (for example restored from an old backup of the
    /// key store): nobody can open them, so they are left as they are and do not block the roll.
    pub unopenable: Vec<String>,
}

/// Re-wraps every lifetime key of `tenant` that is not under `to` yet.
pub async fn rewrap_lifetime_keys(keys: &Keychain, tenant: &str, to: &RootRecord) -> Result<LifetimeRewrap, OpsError> {
    let store = &keys.tenant(tenant)?.store;
    let mut out = LifetimeRewrap::default();
    for name in store.list(&names::lifetime_prefix(tenant)).await? {
        let Some(record) = store.get::<LifetimeRecord>(&name).await? else { continue };
        if record.root_gen == to.gen && record.root_id == to.root_id {
            continue;
        }
        let key = match keys.unwrap_record(tenant, &record).await {
            Ok(key) => key,
            Err(KeyError::Destroyed(why)) => {
                tracing::warn!(tenant, key = %record.id, %why, "lifetime key cannot be opened; left as it is");
                out.unopenable.push(record.id);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut fresh = keys.wrap_record(tenant, &record.id, &key, to).await?;
        fresh.created = record.created;
        store.put(&name, &fresh, false).await?;
        out.rewrapped += 1;
    }
    Ok(out)
}

/// Destroys every root generation of `tenant` older than `keep` in the provider and removes its
/// record. Fails (destroying nothing more) if a lifetime key is still wrapped under one of them;
/// `unopenable` lists records already known to be dead (see [`LifetimeRewrap`]).
pub async fn destroy_older_roots(
    keys: &Keychain,
    tenant: &str,
    keep: &RootRecord,
    unopenable: &[String],
) -> Result<Vec<Destruction>, OpsError> {
    let t = keys.tenant(tenant)?;
    for name in t.store.list(&names::lifetime_prefix(tenant)).await? {
        if let Some(r) = t.store.get::<LifetimeRecord>(&name).await? {
            if r.root_gen != keep.gen && !unopenable.contains(&r.id) {
                return Err(OpsError::Refused(format!(
                    "lifetime key {} is still wrapped under root generation {}; not destroying older roots",
                    r.id, r.root_gen
                )));
            }
        }
    }
    let state = keys.load_state(tenant).await?;
    let mut out = Vec::new();
    for root in state.roots.iter().filter(|r| r.gen < keep.gen) {
        out.push(destroy_root(keys, tenant, root).await?);
    }
    Ok(out)
}

/// Destroys one root in the provider and removes its record.
pub async fn destroy_root(keys: &Keychain, tenant: &str, root: &RootRecord) -> Result<Destruction, OpsError> {
    let t = keys.tenant(tenant)?;
    let done = match t.provider.destroy(tenant, &root.root_id).await {
        Ok(d) => d,
        // Destroyed by an earlier, interrupted run: finish the bookkeeping.
        Err(KeyError::UnknownKey(_) | KeyError::Destroyed(_)) => {
            Destruction { root_id: root.root_id.clone(), detail: "already destroyed".into() }
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(tenant, root_id = %root.root_id, gen = root.gen, detail = %done.detail, "root key destroyed");
    t.store.delete(&names::root(tenant, root.gen)).await?;
    Ok(done)
}

/// Waits until every replica's cache has expired what it knew before now (TTL plus a margin for a
/// request that read its state just before).
pub async fn wait_for_replicas(keys: &Keychain, quiet: bool) {
    let wait = keys.ttl() + Duration::from_secs(1);
    if !quiet {
        eprintln!("waiting {} s (the key cache TTL) for running replicas to pick up the change ...", wait.as_secs());
    }
    tokio::time::sleep(wait).await;
}
