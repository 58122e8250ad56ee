//! The root roll: re-wrap every lifetime key of a tenant under one root generation, then destroy
//! the older roots. After it, any copy of the key store taken before (a backup, an old version of
//! a record) is useless: its records are wrapped under roots that no longer exist.

use std::time::Duration;

use super::OpsError;
use crate::core::keys::chain::Keychain;
use crate::core::keys::store::{names, LifetimeRecord, RootRecord};
use crate::core::keys::Destruction;

/// How many lifetime records were re-wrapped.
pub async fn rewrap_lifetime_keys(keys: &Keychain, tenant: &str, to: &RootRecord) -> Result<usize, OpsError> {
    let store = &keys.tenant(tenant)?.store;
    let mut count = 0;
    for name in store.list(&names::lifetime_prefix(tenant)).await? {
        let Some(record) = store.get::<LifetimeRecord>(&name).await? else { continue };
        if record.root_gen == to.gen && record.root_id == to.root_id {
            continue;
        }
        let key = keys.unwrap_record(tenant, &record).await?;
        let mut fresh = keys.wrap_record(tenant, &record.id, &key, to).await?;
        fresh.created = record.created;
        store.put(&name, &fresh, false).await?;
        count += 1;
    }
    Ok(count)
}

/// Destroys every root generation of `tenant` older than `keep` in the provider and removes its
/// record. Fails (destroying nothing more) if a lifetime key is still wrapped under one of them.
pub async fn destroy_older_roots(
    keys: &Keychain,
    tenant: &str,
    keep: &RootRecord,
) -> Result<Vec<Destruction>, OpsError> {
    let t = keys.tenant(tenant)?;
    for name in t.store.list(&names::lifetime_prefix(tenant)).await? {
        if let Some(r) = t.store.get::<LifetimeRecord>(&name).await? {
            if r.root_gen != keep.gen {
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
        Err(crate::core::keys::KeyError::UnknownKey(_)) => {
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
