//! `blobseal keys retire --tenant T`: removes the tenant keys older than the current one and
//! destroys the root generations older than the current one, once nothing uses them.
//!
//! "Uses" is checked, not assumed: every stored version of every object in the tenant's buckets and
//! every multipart upload in progress is read (envelope only) first, and the command refuses while
//! any of them names a key it would remove. If the current key is younger than the cache TTL, it
//! first waits, so no replica can still be writing under an old key.

use std::collections::BTreeSet;

use super::roll::{destroy_older_roots, rewrap_lifetime_keys, wait_for_replicas};
use super::{all_versions, Ops, OpsError};
use crate::backend::{BackendError, ListUploadsOptions};
use crate::core::keys::chain::{scope_part, tenant_key_id};
use crate::core::keys::store::{names, LifetimeRecord};
use crate::core::keys::Destruction;
use crate::core::rekey::stored_key_id;
use crate::core::upload_token::{parse_backend_key, UPLOAD_KEY_PREFIX};

/// What a retirement removed.
#[derive(Debug, Default)]
pub struct Retired {
    pub removed_keys: Vec<String>,
    pub destroyed_roots: Vec<Destruction>,
}

pub async fn retire(ops: &Ops, tenant: &str, quiet: bool) -> Result<Retired, OpsError> {
    let t = ops.tenant(tenant)?;
    let keys = ops.keys();
    let store = &keys.tenant(tenant)?.store;
    let state = keys.load_state(tenant).await?;
    let (Some(current), Some(root)) = (state.current_tenant_key(), state.current_root().cloned()) else {
        return Ok(Retired::default());
    };
    let retiring: BTreeSet<String> =
        state.tenant_keys.iter().filter(|n| **n < current).map(|n| tenant_key_id(*n)).collect();
    if retiring.is_empty() && state.roots.len() <= 1 {
        return Ok(Retired::default());
    }
    if let Some(rec) = store.get::<LifetimeRecord>(&names::lifetime(tenant, &tenant_key_id(current))).await? {
        let young = time::OffsetDateTime::parse(&rec.created, &time::format_description::well_known::Rfc3339)
            .map(|c| time::OffsetDateTime::now_utc() - c < keys.ttl() + time::Duration::seconds(1))
            .unwrap_or(true);
        if young {
            wait_for_replicas(keys, quiet).await;
        }
    }

    let (mut objects, mut uploads, mut examples) = (0u64, 0u64, Vec::new());
    for (bucket, p) in ops.buckets(&t, None).await? {
        for (key, version) in all_versions(&p).await? {
            let head = p.backend.head(&p.bucket, &key, version.as_deref()).await?;
            match stored_key_id(&head) {
                Ok(id) if retiring.contains(scope_part(&id)) => {
                    objects += 1;
                    if examples.len() < 3 {
                        let key = ops.core.keys().loggable_key(tenant, &key);
                        examples.push(match &version {
                            Some(v) => format!("{bucket}/{key} (version {v})"),
                            None => format!("{bucket}/{key}"),
                        });
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(bucket = %bucket, key = %ops.core.keys().loggable_key(tenant, &key), error = %e, "not a blobseal object; ignored")
                }
            }
        }
        uploads += uploads_using(&p, &retiring).await?;
    }
    if objects > 0 || uploads > 0 {
        return Err(OpsError::Refused(format!(
            "refusing to retire {}: still used by {objects} object version(s){} and {uploads} multipart upload(s) in progress. \
             Run `blobseal keys rewrap --tenant {tenant}` (noncurrent versions must be deleted or wait for the sweeper; \
             uploads completed or aborted) and retry",
            retiring.iter().cloned().collect::<Vec<_>>().join(", "),
            if examples.is_empty() { String::new() } else { format!(" (e.g. {})", examples.join(", ")) }
        )));
    }
    for id in &retiring {
        store.delete(&names::lifetime(tenant, id)).await?;
    }
    keys.forget(tenant, &retiring.iter().cloned().collect::<Vec<_>>());
    let moved = rewrap_lifetime_keys(keys, tenant, &root).await?;
    let destroyed_roots = destroy_older_roots(keys, tenant, &root, &moved.unopenable).await?;
    Ok(Retired { removed_keys: retiring.into_iter().collect(), destroyed_roots })
}

/// In-progress uploads of the bucket whose data key is wrapped under one of `ids`.
async fn uploads_using(p: &crate::core::tenant::Placement, ids: &BTreeSet<String>) -> Result<u64, OpsError> {
    let mut count = 0;
    let (mut key_marker, mut id_marker) = (None, None);
    loop {
        let opts = ListUploadsOptions {
            prefix: UPLOAD_KEY_PREFIX.to_owned(),
            key_marker: key_marker.take(),
            upload_id_marker: id_marker.take(),
            max_uploads: 1000,
        };
        let page = match p.backend.list_uploads(&p.bucket, opts).await {
            Ok(page) => page,
            // A backend that cannot list uploads (s3s-fs) cannot be checked; its uploads would fail
            // at completion rather than produce unreadable objects.
            Err(BackendError::NotSupported(_)) => return Ok(count),
            Err(e) => return Err(e.into()),
        };
        for u in &page.uploads {
            if let Ok((_, material)) = parse_backend_key(&u.key) {
                if ids.contains(scope_part(&material.wrapped.kek_id)) {
                    count += 1;
                }
            }
        }
        if !page.is_truncated || page.next_key_marker.is_none() {
            return Ok(count);
        }
        key_marker = page.next_key_marker;
        id_marker = page.next_upload_id_marker;
    }
}
