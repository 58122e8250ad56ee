//! `blobseal keys rotate --tenant T`: a new root generation and a new tenant key for new writes.
//!
//! Existing objects keep opening (their tenant key still exists) until `keys rewrap` moves them and
//! `keys retire` removes the old key; every lifetime key is re-wrapped under the new root at once,
//! so the old root is no longer needed by anything in the key store.

use super::roll::rewrap_lifetime_keys;
use super::{Ops, OpsError};
use crate::core::keys::chain::tenant_key_id;

/// What a rotation made.
#[derive(Debug)]
pub struct Rotated {
    pub root_gen: u32,
    pub root_id: String,
    pub tenant_key: String,
    pub rewrapped_lifetime_keys: usize,
}

pub async fn rotate(ops: &Ops, tenant: &str) -> Result<Rotated, OpsError> {
    ops.tenant(tenant)?;
    let keys = ops.keys();
    let state = keys.load_state(tenant).await?;
    if let Some(stone) = &state.shredded {
        return Err(OpsError::Refused(format!("tenant {tenant} was shredded at {}", stone.shredded_at)));
    }
    let root = keys.create_root_generation(tenant).await?.ok_or_else(|| {
        OpsError::Refused("another process created a root generation at the same time; run the rotation again".into())
    })?;
    let next = state.current_tenant_key().map_or(1, |n| n.saturating_add(1));
    let id = tenant_key_id(next);
    keys.create_lifetime(tenant, &id, &root).await?;
    let rewrapped = rewrap_lifetime_keys(keys, tenant, &root).await?.rewrapped;
    Ok(Rotated { root_gen: root.gen, root_id: root.root_id, tenant_key: id, rewrapped_lifetime_keys: rewrapped })
}
