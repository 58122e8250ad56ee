//! Retention stamps and backup copies, applied on every write (PutObject, CompleteMultipartUpload,
//! CopyObject).
//!
//! The deadline the tenant's retention rules give is stored twice: in the object's metadata
//! (`blobseal-delete-after`, covered by the envelope's metadata digest, so an edit is detected when
//! the object is opened) and as an object tag of the same name (for lifecycle tools and a quick look;
//! the sweeper trusts only the authenticated copy and reports a tag that disagrees).
//! Backup copies are raw copies (ciphertext and envelope) of the stored object in each backup target,
//! under `<client bucket>/<key>`: they open only where they came from, and a restore is a copy back.

use std::collections::BTreeMap;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::backend::{BackendError, GetOptions, PutOptions};
use crate::core::error::{CoreError, CoreResult};
use crate::core::policy::retention::{Decision, ObjectFacts};
use crate::core::service::BlobService;
use crate::core::stored::{user_metadata, HEADER_META_PREFIX};
use crate::core::tenant::{Placement, Tenant};

/// Metadata entry (authenticated) and object tag holding an object's deletion deadline (RFC 3339).
pub const DELETE_AFTER: &str = "blobseal-delete-after";
/// Prefix of tag names clients may not set.
pub const RESERVED_TAG_PREFIX: &str = "blobseal-";

/// The retention stamp of one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub delete_after: Option<OffsetDateTime>,
    /// The rule that decided.
    pub rule: String,
}

impl Stamp {
    /// The deadline as stored (RFC 3339), if any.
    pub fn text(&self) -> Option<String> {
        self.delete_after.and_then(|d| d.format(&Rfc3339).ok())
    }
}

/// The authenticated deadline in an object's stored metadata.
pub fn stored_deadline(metadata: &BTreeMap<String, String>) -> Result<Option<OffsetDateTime>, String> {
    match metadata.get(DELETE_AFTER) {
        None => Ok(None),
        Some(text) => {
            OffsetDateTime::parse(text, &Rfc3339).map(Some).map_err(|e| format!("bad {DELETE_AFTER} {text:?}: {e}"))
        }
    }
}

/// Refuses client tags in blobseal's namespace.
pub fn check_client_tags(tags: &BTreeMap<String, String>) -> CoreResult<()> {
    match tags.keys().find(|k| k.to_ascii_lowercase().starts_with(RESERVED_TAG_PREFIX)) {
        Some(k) => Err(CoreError::InvalidRequest(format!("tag {k} is reserved (prefix {RESERVED_TAG_PREFIX})"))),
        None => Ok(()),
    }
}

impl BlobService {
    /// Decides and records the deadline of a write: `stored` (the object's stored metadata) gets the
    /// authenticated entry, `tags` the tag. A client asking for a retention its rule does not allow is
    /// refused.
    pub(crate) fn stamp_retention(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        stored: &mut BTreeMap<String, String>,
        tags: &mut BTreeMap<String, String>,
        client_days: Option<u32>,
    ) -> CoreResult<Stamp> {
        let user = user_metadata(stored);
        let content_type = stored.get(&format!("{HEADER_META_PREFIX}content-type")).cloned();
        let client_tags: BTreeMap<String, String> = tags
            .iter()
            .filter(|(k, _)| !k.starts_with(RESERVED_TAG_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let facts =
            ObjectFacts { bucket, key, content_type: content_type.as_deref(), metadata: &user, tags: &client_tags };
        let Decision { delete_after, rule } = tenant
            .retention
            .decide(&facts, OffsetDateTime::now_utc(), client_days)
            .map_err(CoreError::RetentionRefused)?;
        let stamp = Stamp { delete_after, rule };
        stored.remove(DELETE_AFTER);
        tags.remove(DELETE_AFTER);
        if let Some(text) = stamp.text() {
            stored.insert(DELETE_AFTER.to_owned(), text.clone());
            tags.insert(DELETE_AFTER.to_owned(), text);
        }
        Ok(stamp)
    }

    /// Copies the stored object `key` of the tenant's `bucket` (at `p`, version `version`) to every
    /// backup target. A failure is logged and counted, not returned: the write itself succeeded, and
    /// `blobseal backup` brings the targets up to date.
    pub(crate) async fn copy_to_backups(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        p: &Placement,
        version: Option<&str>,
    ) {
        for target in &self.directory().backup_targets(tenant, bucket) {
            let result = self.copy_one_backup(bucket, key, p, version, &target.backend, &target.bucket).await;
            match result {
                Ok(()) => {
                    crate::metrics::get().backup_copies.inc();
                }
                Err(e) => {
                    crate::metrics::get().backup_failures.inc();
                    tracing::error!(tenant = %tenant.name, bucket, key = %self.keys().loggable_key(&tenant.name, key), target = %format!("{}/{}", target.backend, target.bucket), error = %e, "backup copy failed");
                }
            }
        }
    }

    /// One raw copy into a backup target (server-side on the same backend, streamed otherwise).
    pub async fn copy_one_backup(
        &self,
        bucket: &str,
        key: &str,
        p: &Placement,
        version: Option<&str>,
        target_backend: &str,
        target_bucket: &str,
    ) -> CoreResult<()> {
        let target = self
            .directory()
            .backend_named(target_backend)
            .ok_or(CoreError::Unreachable("backup target names an unknown backend"))?;
        let head = p.backend.head(&p.bucket, key, version).await?;
        let tags = match p.backend.get_tags(&p.bucket, key, version).await {
            Ok(t) => t,
            Err(BackendError::NotSupported(_)) => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        let opts = PutOptions {
            metadata: head.metadata.clone(),
            headers: head.headers.clone(),
            tags,
            ..PutOptions::default()
        };
        let backup_key = backup_key(bucket, key);
        let copied =
            if self.directory().backend_named(&p.backend_name).is_some_and(|b| std::sync::Arc::ptr_eq(&b, &target)) {
                target.copy(&p.bucket, key, version, target_bucket, &backup_key, opts.clone()).await
            } else {
                let got = p
                    .backend
                    .get(&p.bucket, key, GetOptions { range: None, version_id: version.map(str::to_owned) })
                    .await?;
                target.put(target_bucket, &backup_key, got.body, head.meta.size, opts.clone()).await
            };
        match copied {
            Ok(_) => Ok(()),
            Err(BackendError::NoSuchBucket) => {
                target.create_bucket(target_bucket).await.or_else(|e| match e {
                    BackendError::BucketAlreadyExists => Ok(()),
                    e => Err(e),
                })?;
                let got = p
                    .backend
                    .get(&p.bucket, key, GetOptions { range: None, version_id: version.map(str::to_owned) })
                    .await?;
                target.put(target_bucket, &backup_key, got.body, head.meta.size, opts).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Where a backup copy of `bucket/key` lives in a backup target.
pub fn backup_key(bucket: &str, key: &str) -> String {
    format!("{bucket}/{key}")
}

/// What the sweeper knows of one stored version's deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionDeadline {
    /// Authenticated: the metadata digest in the envelope covers it.
    Known(Option<OffsetDateTime>),
    /// The object's key was destroyed (shredded): nothing can open or authenticate it any more; this
    /// is the deadline its metadata claims (the object is unreadable whatever it says).
    Unreadable(Option<OffsetDateTime>),
}

impl BlobService {
    /// The deadline of stored version `version` of `stored_key` at `p`, authenticated as the object
    /// `(tenant, bucket, key)` (a backup copy is authenticated as the object it copies). Also returns
    /// whether the `blobseal-delete-after` tag disagrees with the authenticated value.
    pub async fn version_deadline(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        p: &Placement,
        stored_key: &str,
        version: Option<&str>,
    ) -> CoreResult<(VersionDeadline, bool)> {
        let head = p.backend.head(&p.bucket, stored_key, version).await?;
        let claimed = stored_deadline(&head.metadata).map_err(CoreError::Integrity)?;
        let id = crate::core::envelope::ObjectIdentity { tenant: &tenant.name, bucket, key };
        let deadline = match self.open_envelope(tenant, &id, &head).await {
            Ok(_) => VersionDeadline::Known(claimed),
            Err(CoreError::KeyDestroyed(_)) => VersionDeadline::Unreadable(claimed),
            Err(e) => return Err(e),
        };
        let tag = match p.backend.get_tags(&p.bucket, stored_key, version).await {
            Ok(tags) => tags.get(DELETE_AFTER).cloned(),
            Err(_) => None,
        };
        let mismatch = tag.is_some() && tag != head.metadata.get(DELETE_AFTER).cloned();
        Ok((deadline, mismatch))
    }
}
