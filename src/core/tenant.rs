//! Tenants and where their buckets live.
//!
//! A tenant is a customer of the processor: it has its own credentials (checked by the front end),
//! its own keys (in the key provider) and its own buckets. A client-visible bucket name is placed on
//! a backend either by an explicit route from config or, for buckets the tenant creates itself, on
//! the tenant's default backend under the tenant's bucket prefix. Ownership is therefore a pure
//! function of config and names: no pod-local state.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::backend::Backend;
use crate::core::error::{CoreError, CoreResult};
use crate::core::policy::residency::ResidencyPolicy;
use crate::core::policy::retention::RetentionPolicy;

/// One tenant, as the core needs it.
#[derive(Debug, Clone, Default)]
pub struct Tenant {
    pub name: String,
    /// Backend (by name) for buckets without an explicit route.
    pub default_backend: String,
    /// Put before the client's bucket name on the default backend.
    pub bucket_prefix: String,
    /// Where its data may be.
    pub residency: ResidencyPolicy,
    /// How long its objects are kept.
    pub retention: RetentionPolicy,
    /// Buckets that get a copy of every object it writes.
    pub backups: Vec<BackupTarget>,
}

/// A backup target: a bucket on a backend; copies are stored as `<client bucket>/<key>` in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupTarget {
    pub backend: String,
    pub bucket: String,
}

/// Where a tenant's bucket lives.
#[derive(Debug, Clone)]
pub struct Placement {
    pub backend_name: String,
    pub backend: Arc<dyn Backend>,
    /// The bucket name on the backend.
    pub bucket: String,
}

/// An explicit route from config.
#[derive(Debug, Clone)]
pub struct Route {
    pub tenant: String,
    pub bucket: String,
    pub backend: String,
    pub backend_bucket: String,
    /// Backup targets of this bucket; empty: the tenant's.
    pub backups: Vec<BackupTarget>,
}

/// Tenants, their access keys, backends and routes. Immutable after start-up.
#[derive(Debug, Default)]
pub struct TenantDirectory {
    tenants: HashMap<String, Arc<Tenant>>,
    by_access_key: HashMap<String, Arc<Tenant>>,
    backends: HashMap<String, Arc<dyn Backend>>,
    /// (tenant, client bucket) → route.
    routes: HashMap<(String, String), Route>,
    /// (backend, backend bucket) pairs no client may reach: the key stores.
    reserved: HashSet<(String, String)>,
}

impl TenantDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a backend under its config name.
    pub fn add_backend(&mut self, name: &str, backend: Arc<dyn Backend>) {
        self.backends.insert(name.to_owned(), backend);
    }

    /// Registers a tenant and the access key ids that authenticate as it.
    pub fn add_tenant(&mut self, tenant: Tenant, access_key_ids: impl IntoIterator<Item = String>) {
        let tenant = Arc::new(tenant);
        for id in access_key_ids {
            self.by_access_key.insert(id, Arc::clone(&tenant));
        }
        self.tenants.insert(tenant.name.clone(), tenant);
    }

    /// Makes `bucket` on `backend` unreachable for every client (a key store lives there).
    pub fn reserve(&mut self, backend: &str, bucket: &str) {
        self.reserved.insert((backend.to_owned(), bucket.to_owned()));
    }

    /// The backend registered under `name`.
    pub fn backend_named(&self, name: &str) -> Option<Arc<dyn Backend>> {
        self.backends.get(name).cloned()
    }

    /// Reserved buckets are kept out of every tenant's reach by name, on every backend: two S3 backends
    /// of one account (different regions) see the same bucket namespace.
    fn is_reserved(&self, _backend: &str, bucket: &str) -> bool {
        self.reserved.iter().any(|(_, b)| b == bucket)
    }

    /// Whether `bucket` is reserved as a key store or backup target on exactly `backend`.
    fn is_reserved_on(&self, backend: &str, bucket: &str) -> bool {
        self.reserved.contains(&(backend.to_owned(), bucket.to_owned()))
    }

    pub fn add_route(&mut self, route: Route) {
        self.routes.insert((route.tenant.clone(), route.bucket.clone()), route);
    }

    /// The tenant an access key id authenticates as.
    pub fn tenant_for_access_key(&self, access_key_id: &str) -> CoreResult<Arc<Tenant>> {
        self.by_access_key.get(access_key_id).cloned().ok_or(CoreError::UnknownTenant)
    }

    /// Every tenant, in no particular order.
    pub fn tenants(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.tenants.values()
    }

    pub fn tenant(&self, name: &str) -> CoreResult<Arc<Tenant>> {
        self.tenants.get(name).cloned().ok_or(CoreError::UnknownTenant)
    }

    pub fn backends(&self) -> impl Iterator<Item = (&String, &Arc<dyn Backend>)> {
        self.backends.iter()
    }

    /// The backend holding the buckets `tenant` creates without an explicit route.
    pub fn default_backend(&self, tenant: &Tenant) -> CoreResult<Arc<dyn Backend>> {
        self.backend(&tenant.default_backend)
    }

    fn backend(&self, name: &str) -> CoreResult<Arc<dyn Backend>> {
        self.backends.get(name).cloned().ok_or(CoreError::Unreachable("route names an unknown backend"))
    }

    /// Where `tenant`'s bucket `bucket` lives. A bucket routed explicitly to another tenant is refused.
    pub fn place(&self, tenant: &Tenant, bucket: &str) -> CoreResult<Placement> {
        if let Some(route) = self.routes.get(&(tenant.name.clone(), bucket.to_owned())) {
            if self.is_reserved(&route.backend, &route.backend_bucket) {
                return Err(CoreError::BucketNotOwned(bucket.to_owned()));
            }
            return Ok(Placement {
                backend_name: route.backend.clone(),
                backend: self.backend(&route.backend)?,
                bucket: route.backend_bucket.clone(),
            });
        }
        let backend_bucket = format!("{}{}", tenant.bucket_prefix, bucket);
        if self.is_claimed_by_other(tenant, &tenant.default_backend, &backend_bucket)
            || self.is_reserved(&tenant.default_backend, &backend_bucket)
        {
            return Err(CoreError::BucketNotOwned(bucket.to_owned()));
        }
        Ok(Placement {
            backend_name: tenant.default_backend.clone(),
            backend: self.backend(&tenant.default_backend)?,
            bucket: backend_bucket,
        })
    }

    /// True if `backend_bucket` on `backend` is an explicit route of another tenant, or lies under
    /// another tenant's prefix on that backend.
    fn is_claimed_by_other(&self, tenant: &Tenant, backend: &str, backend_bucket: &str) -> bool {
        let routed_elsewhere = self
            .routes
            .values()
            .any(|r| r.tenant != tenant.name && r.backend == backend && r.backend_bucket == backend_bucket);
        let under_other_prefix = self.tenants.values().any(|t| {
            t.name != tenant.name
                && t.default_backend == backend
                && !t.bucket_prefix.is_empty()
                && t.bucket_prefix.len() > tenant.bucket_prefix.len()
                && backend_bucket.starts_with(&t.bucket_prefix)
        });
        routed_elsewhere || under_other_prefix
    }

    /// Whether blobseal keeps anything in `bucket` on `backend`: a tenant's bucket (by prefix or
    /// route), a key store, or a backup target. The drift check looks at exactly these.
    pub fn uses_bucket(&self, backend: &str, bucket: &str) -> bool {
        self.is_reserved_on(backend, bucket)
            || self.routes.values().any(|r| {
                (r.backend == backend && r.backend_bucket == bucket)
                    || r.backups.iter().any(|b| b.backend == backend && b.bucket == bucket)
            })
            || self.tenants.values().any(|t| {
                (t.default_backend == backend && self.client_bucket_name(t, bucket).is_some())
                    || t.backups.iter().any(|b| b.backend == backend && b.bucket == bucket)
            })
    }

    /// Where copies of the tenant's `bucket` go: the bucket route's targets if it names any, else the tenant's.
    pub fn backup_targets(&self, tenant: &Tenant, bucket: &str) -> Vec<BackupTarget> {
        match self.routes.get(&(tenant.name.clone(), bucket.to_owned())) {
            Some(r) if !r.backups.is_empty() => r.backups.clone(),
            _ => tenant.backups.clone(),
        }
    }

    /// Every backup target of the tenant (its own and its buckets'), once each.
    pub fn all_backup_targets(&self, tenant: &Tenant) -> Vec<BackupTarget> {
        let mut out = tenant.backups.clone();
        for r in self.routes_of(tenant) {
            for b in &r.backups {
                if !out.contains(b) {
                    out.push(b.clone());
                }
            }
        }
        out
    }

    /// Explicit routes of `tenant`.
    pub fn routes_of<'a>(&'a self, tenant: &'a Tenant) -> impl Iterator<Item = &'a Route> + 'a {
        self.routes.values().filter(move |r| r.tenant == tenant.name)
    }

    /// Maps a bucket found on `tenant`'s default backend back to the client's name, if it is the tenant's.
    pub fn client_bucket_name(&self, tenant: &Tenant, backend_bucket: &str) -> Option<String> {
        let name = backend_bucket.strip_prefix(&tenant.bucket_prefix)?;
        if name.is_empty()
            || self.is_claimed_by_other(tenant, &tenant.default_backend, backend_bucket)
            || self.is_reserved(&tenant.default_backend, backend_bucket)
        {
            return None;
        }
        // A bucket that is the target of one of this tenant's own routes is listed under the route's name.
        if self.routes_of(tenant).any(|r| r.backend == tenant.default_backend && r.backend_bucket == backend_bucket) {
            return None;
        }
        Some(name.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;

    fn dir() -> TenantDirectory {
        let mut d = TenantDirectory::new();
        d.add_backend("m", Arc::new(MemoryBackend::new()));
        d.add_tenant(
            Tenant { name: "a".into(), default_backend: "m".into(), bucket_prefix: "a-".into(), ..Tenant::default() },
            ["AK_A".to_owned()],
        );
        d.add_tenant(
            Tenant { name: "b".into(), default_backend: "m".into(), bucket_prefix: "b-".into(), ..Tenant::default() },
            ["AK_B".to_owned()],
        );
        d.add_route(Route {
            tenant: "b".into(),
            bucket: "shared".into(),
            backend: "m".into(),
            backend_bucket: "a-x".into(),
            backups: Vec::new(),
        });
        d
    }

    #[test]
    fn backup_targets_of_a_route_replace_the_tenants() {
        let mut d = dir();
        let copy = BackupTarget { backend: "m".into(), bucket: "a-routed-copy".into() };
        let mut tenant =
            Tenant { name: "c".into(), default_backend: "m".into(), bucket_prefix: "c-".into(), ..Tenant::default() };
        tenant.backups = vec![BackupTarget { backend: "m".into(), bucket: "c-all".into() }];
        d.add_tenant(tenant, ["AK_C".to_owned()]);
        d.add_route(Route {
            tenant: "c".into(),
            bucket: "special".into(),
            backend: "m".into(),
            backend_bucket: "c-special".into(),
            backups: vec![copy.clone()],
        });
        let c = d.tenant("c").unwrap();
        assert_eq!(d.backup_targets(&c, "special"), vec![copy.clone()]);
        assert_eq!(d.backup_targets(&c, "other")[0].bucket, "c-all");
        assert_eq!(d.all_backup_targets(&c).len(), 2);
        assert!(d.uses_bucket("m", "a-routed-copy"), "the drift check looks at route backup targets too");
    }

    #[test]
    fn reserved_key_store_buckets_are_nobodys() {
        let mut d = dir();
        d.reserve("m", "a-blobseal-keys");
        let a = d.tenant("a").unwrap();
        assert!(matches!(d.place(&a, "blobseal-keys"), Err(CoreError::BucketNotOwned(_))));
        assert_eq!(d.client_bucket_name(&a, "a-blobseal-keys"), None);
        assert_eq!(d.client_bucket_name(&a, "a-other").as_deref(), Some("other"));
        assert!(d.place(&a, "other").is_ok());
        d.add_route(Route {
            tenant: "a".into(),
            bucket: "k".into(),
            backend: "m".into(),
            backend_bucket: "a-blobseal-keys".into(),
            backups: Vec::new(),
        });
        assert!(matches!(d.place(&a, "k"), Err(CoreError::BucketNotOwned(_))), "not even by an explicit route");
    }

    #[test]
    fn access_keys_map_to_tenants() {
        let d = dir();
        assert_eq!(d.tenant_for_access_key("AK_A").map(|t| t.name.clone()).ok(), Some("a".to_owned()));
        assert!(matches!(d.tenant_for_access_key("nope"), Err(CoreError::UnknownTenant)));
    }

    #[test]
    fn placement_uses_prefix_and_routes() {
        let d = dir();
        let a = d.tenant("a").ok().unwrap_or_else(|| unreachable!());
        let b = d.tenant("b").ok().unwrap_or_else(|| unreachable!());
        assert_eq!(d.place(&a, "photos").map(|p| p.bucket).ok(), Some("a-photos".to_owned()));
        assert_eq!(d.place(&b, "shared").map(|p| p.bucket).ok(), Some("a-x".to_owned()));
        // a's own default name "x" maps to "a-x", which b claims by route: refused.
        assert!(matches!(d.place(&a, "x"), Err(CoreError::BucketNotOwned(_))));
        assert_eq!(d.client_bucket_name(&a, "a-photos"), Some("photos".to_owned()));
        assert_eq!(d.client_bucket_name(&a, "b-photos"), None);
        assert_eq!(d.client_bucket_name(&a, "a-x"), None);
    }
}
