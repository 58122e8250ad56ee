//! `blobseal keys status --tenant T`: the tenant's key state, for operators (no key material).

use super::{Ops, OpsError};
use crate::core::keys::chain::tenant_key_id;
use crate::core::keys::store::names;

pub async fn status(ops: &Ops, tenant: &str) -> Result<String, OpsError> {
    ops.tenant(tenant)?;
    let keys = ops.keys();
    let t = keys.tenant(tenant)?;
    let state = keys.load_state(tenant).await?;
    let mut out =
        format!("tenant {tenant}: key provider {}, key store bucket {}\n", t.provider.kind(), t.store.bucket());
    if let Some(stone) = &state.shredded {
        out.push_str(&format!("  SHREDDED at {} (receipt {})\n", stone.shredded_at, stone.receipt));
    }
    for r in &state.roots {
        out.push_str(&format!("  root generation {}: {} (created {})\n", r.gen, r.root_id, r.created));
    }
    let current = state.current_tenant_key();
    for n in &state.tenant_keys {
        let mark = if Some(*n) == current { " (current: new writes)" } else { "" };
        out.push_str(&format!("  tenant key {}{mark}\n", tenant_key_id(*n)));
    }
    let subjects = t.store.list(&names::lifetime(tenant, "subject:")).await?.len();
    let shredded = t.store.list(&format!("keys/{tenant}/shredded/")).await?.len();
    out.push_str(&format!("  data-subject keys: {subjects}; shredded subjects: {shredded}\n"));
    out.push_str(&format!("  key cache TTL: {} s\n", keys.ttl().as_secs()));
    Ok(out)
}
