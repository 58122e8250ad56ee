//! Bucket operations of the object service, and the one bucket namespace shared by all tenants
//! (another tenant's bucket answers AccessDenied, its name cannot be created again).

use std::collections::BTreeMap;

use crate::backend::{BackendError, BucketInfo, Versioning};
use crate::core::error::{CoreError, CoreResult};
use crate::core::service::BlobService;
use crate::core::tenant::Tenant;

impl BlobService {
    /// The tenant's buckets, by client name, sorted.
    pub async fn list_buckets(&self, tenant: &Tenant) -> CoreResult<Vec<BucketInfo>> {
        let mut out: BTreeMap<String, BucketInfo> = BTreeMap::new();
        let default = self.directory().default_backend(tenant)?;
        for b in default.list_buckets().await? {
            if let Some(name) = self.directory().client_bucket_name(tenant, &b.name) {
                out.insert(name.clone(), BucketInfo { name, created: b.created });
            }
        }
        let routes: Vec<_> = self.directory().routes_of(tenant).cloned().collect();
        for route in routes {
            let placement = self.place(tenant, &route.bucket)?;
            let list = placement.backend.list_buckets().await?;
            if let Some(b) = list.into_iter().find(|b| b.name == placement.bucket) {
                out.insert(route.bucket.clone(), BucketInfo { name: route.bucket.clone(), created: b.created });
            }
        }
        Ok(out.into_values().collect())
    }

    /// Creates the tenant's bucket. Bucket names are one namespace across tenants, as across S3 accounts:
    /// a name another tenant holds is refused (`BucketTaken`).
    ///
    /// `location` is the client's `LocationConstraint`: a region the tenant's residency rule forbids is
    /// refused (403, naming the rule); an allowed one must be where the bucket would be placed.
    pub async fn create_bucket(&self, tenant: &Tenant, bucket: &str, location: Option<&str>) -> CoreResult<()> {
        let p = self.place(tenant, bucket)?;
        if let Some(region) = location.filter(|r| !r.is_empty()) {
            tenant
                .residency
                .check(self.region_table(), &format!("a bucket in {region} (LocationConstraint)"), Some(region))
                .map_err(|v| {
                    crate::metrics::get().residency_refusals.inc();
                    tracing::warn!(tenant = %tenant.name, bucket, violation = %v, "residency refusal");
                    CoreError::Residency(v.to_string())
                })?;
            let here = self.backend_region(&p.backend_name);
            if here != Some(region) {
                return Err(CoreError::LocationConstraint(format!(
                    "bucket {bucket} of tenant {} is placed on backend {} ({}); a bucket in {region} needs a route                      (buckets: in the config) to a backend in {region}",
                    tenant.name,
                    p.backend_name,
                    here.unwrap_or("no declared region")
                )));
            }
        }
        if self.held_by_other_tenant(tenant, bucket).await {
            return Err(CoreError::BucketTaken(bucket.to_owned()));
        }
        Ok(p.backend.create_bucket(&p.bucket).await?)
    }

    /// Whether another tenant has a bucket of this (client) name. One HEAD per other tenant, so it is
    /// asked only on paths that already failed or create.
    async fn held_by_other_tenant(&self, tenant: &Tenant, bucket: &str) -> bool {
        for other in self.directory().tenants().filter(|t| t.name != tenant.name) {
            if let Ok(p) = self.directory().place(other, bucket) {
                if p.backend.head_bucket(&p.bucket).await.is_ok() {
                    return true;
                }
            }
        }
        false
    }

    /// What a "no such bucket" for `tenant` really is: when another tenant holds one of the `buckets`
    /// named, AccessDenied (S3's answer for another account's bucket); otherwise `err` unchanged.
    pub async fn explain_missing_bucket(&self, tenant: &Tenant, buckets: &[&str], err: CoreError) -> CoreError {
        // A HEAD's 404 has no body, so backends cannot tell a missing bucket from a missing key: ask.
        let missing_bucket = match &err {
            CoreError::Backend(BackendError::NoSuchBucket) => true,
            CoreError::Backend(BackendError::NoSuchKey)
                if buckets.len() == 1 && self.directory().tenants().count() > 1 =>
            {
                let bucket = buckets.first().copied().unwrap_or_default();
                match self.place(tenant, bucket) {
                    Ok(p) => matches!(p.backend.head_bucket(&p.bucket).await, Err(BackendError::NoSuchBucket)),
                    Err(_) => false,
                }
            }
            _ => false,
        };
        if !missing_bucket {
            return err;
        }
        for bucket in buckets {
            if self.held_by_other_tenant(tenant, bucket).await {
                return CoreError::BucketNotOwned((*bucket).to_owned());
            }
        }
        err
    }

    pub async fn head_bucket(&self, tenant: &Tenant, bucket: &str) -> CoreResult<()> {
        let p = self.place(tenant, bucket)?;
        Ok(p.backend.head_bucket(&p.bucket).await?)
    }

    pub async fn delete_bucket(&self, tenant: &Tenant, bucket: &str) -> CoreResult<()> {
        let p = self.place(tenant, bucket)?;
        match p.backend.delete_bucket(&p.bucket).await {
            // Leftovers of crashed completions are invisible to the client, so they must not keep a
            // bucket that looks empty alive: they go with it.
            Err(BackendError::BucketNotEmpty) if crate::core::housekeeping::clear_hidden_leftovers(&p).await? => {
                Ok(p.backend.delete_bucket(&p.bucket).await?)
            }
            other => Ok(other?),
        }
    }

    /// The configured region of the bucket's backend (after checking the bucket exists).
    pub async fn bucket_region(&self, tenant: &Tenant, bucket: &str) -> CoreResult<Option<String>> {
        let p = self.place(tenant, bucket)?;
        p.backend.head_bucket(&p.bucket).await?;
        Ok(self.backend_region(&p.backend_name).map(str::to_owned))
    }

    pub async fn get_versioning(&self, tenant: &Tenant, bucket: &str) -> CoreResult<Versioning> {
        let p = self.place(tenant, bucket)?;
        Ok(p.backend.get_versioning(&p.bucket).await?)
    }

    pub async fn put_versioning(&self, tenant: &Tenant, bucket: &str, enabled: bool) -> CoreResult<()> {
        let p = self.place(tenant, bucket)?;
        Ok(p.backend.put_versioning(&p.bucket, enabled).await?)
    }
}
