//! Leases of the background jobs (`sweep`, `backup`, `rewrap`): an object `<job>/<tenant>/lease` (per shard
//! `lease-I-of-N`) in the tenant's key store, taken with a conditional create, so one process at a time runs
//! a job on a tenant (or on one shard of it) however many replicas or Indexed-Job pods try. A lease expires
//! after 15 minutes without renewal (its holder died); the jobs renew it as they go and release it at the end.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::sweep::Shard;
use super::{Ops, OpsError};

/// How long a lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(900);

#[derive(Debug, Serialize, Deserialize)]
struct Lease {
    holder: String,
    expires: String,
}

/// The lease object of `job` on `tenant` (and `shard`).
pub fn lease_key(job: &str, tenant: &str, shard: Option<Shard>) -> String {
    match shard {
        None => format!("{job}/{tenant}/lease"),
        Some(s) => format!("{job}/{tenant}/lease-{}-of-{}", s.index, s.count),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Takes the lease; `Ok(false)` when another holder has an unexpired one.
pub async fn take(ops: &Ops, job: &str, tenant: &str, holder: &str, shard: Option<Shard>) -> Result<bool, OpsError> {
    let store = &ops.keys().tenant(tenant)?.store;
    let name = lease_key(job, tenant, shard);
    let now = OffsetDateTime::now_utc();
    let lease = Lease { holder: holder.to_owned(), expires: rfc3339(now + LEASE) };
    if store.put(&name, &lease, true).await? {
        return Ok(true);
    }
    if let Some(current) = store.get::<Lease>(&name).await? {
        let expired = OffsetDateTime::parse(&current.expires, &Rfc3339).map(|e| e <= now).unwrap_or(true);
        if !expired && current.holder != holder {
            tracing::info!(job, tenant, holder = %current.holder, until = %current.expires, "another process holds the lease");
            return Ok(false);
        }
        // Expired (its holder died) or ours: take it over; a concurrent taker loses the create.
        store.delete(&name).await?;
    }
    Ok(store.put(&name, &lease, true).await?)
}

/// Extends the lease by another [`LEASE`].
pub async fn renew(ops: &Ops, job: &str, tenant: &str, holder: &str, shard: Option<Shard>) -> Result<(), OpsError> {
    let store = &ops.keys().tenant(tenant)?.store;
    let lease = Lease { holder: holder.to_owned(), expires: rfc3339(OffsetDateTime::now_utc() + LEASE) };
    store.put(&lease_key(job, tenant, shard), &lease, false).await?;
    Ok(())
}

/// Gives the lease back if it is still ours (an error is logged: the lease then expires by itself).
pub async fn release(ops: &Ops, job: &str, tenant: &str, holder: &str, shard: Option<Shard>) {
    let Ok(t) = ops.keys().tenant(tenant) else { return };
    let name = lease_key(job, tenant, shard);
    if let Ok(Some(current)) = t.store.get::<Lease>(&name).await {
        if current.holder == holder {
            if let Err(e) = t.store.delete(&name).await {
                tracing::warn!(job, tenant, error = %e, "cannot release the lease; it expires by itself");
            }
        }
    }
}
