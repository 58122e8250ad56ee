//! Key management commands run from the command line (`blobseal keys …`, `blobseal shred`): they
//! act on the same key store and providers as the running servers, which pick every change up
//! within the key cache TTL (nothing here needs the servers stopped).
//!
//! One file per command; `roll.rs` is the root roll they share, `receipt.rs` the shred receipts.

pub mod audit;
pub mod backup;
pub mod decrypt;
pub mod lease;
pub mod receipt;
pub mod retire;
pub mod rewrap;
pub mod roll;
pub mod rotate;
pub mod shred;
pub mod status;
pub mod sweep;

use std::sync::Arc;

use crate::backend::{BackendError, ListOptions, ListVersionsOptions};
use crate::core::error::CoreError;
use crate::core::keys::chain::Keychain;
use crate::core::keys::KeyError;
use crate::core::service::BlobService;
use crate::core::tenant::{Placement, Tenant};
use crate::core::upload_token::RESERVED_KEY_PREFIX;

/// Why a command failed or refused. Printed on stderr; the exit code is 1.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("unknown tenant {0}")]
    UnknownTenant(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("{0}")]
    Refused(String),
}

impl From<BackendError> for OpsError {
    fn from(e: BackendError) -> Self {
        OpsError::Core(CoreError::Backend(e))
    }
}

/// What every command works with: the object service (backends, tenants, keychain).
pub struct Ops {
    pub core: Arc<BlobService>,
    /// The config's sweeper settings (rate), for `blobseal sweep`.
    pub sweeper: crate::config::SweeperSettings,
    /// Where commands record what they did (the audit trail), if the config has one.
    pub auditor: Option<Arc<crate::core::audit::Auditor>>,
}

impl Ops {
    pub fn new(core: Arc<BlobService>) -> Self {
        Self { core, sweeper: crate::config::SweeperSettings::default(), auditor: None }
    }

    pub fn with_auditor(mut self, auditor: Option<Arc<crate::core::audit::Auditor>>) -> Self {
        self.auditor = auditor;
        self
    }

    /// Records an admin action in the audit trail of `tenant` (or of every tenant) and waits until it is
    /// durable; `receipt` is what the action produced (a shred receipt, a sweep summary), kept as its
    /// SHA-256. A trail that cannot take the record fails the command: the action is not acknowledged.
    pub async fn audit_admin(
        &self,
        tenant: Option<&str>,
        op: &str,
        by: &str,
        ok: bool,
        receipt: Option<&[u8]>,
    ) -> Result<(), OpsError> {
        let Some(auditor) = &self.auditor else { return Ok(()) };
        let tenants: Vec<String> = match tenant {
            Some(t) => vec![t.to_owned()],
            None => self.core.directory().tenants().map(|t| t.name.clone()).collect(),
        };
        let mut id = [0u8; 8];
        let _ = aws_lc_rs::rand::fill(&mut id);
        for t in tenants {
            let record = crate::core::audit::AuditRecord {
                time: crate::core::audit::record::now_text(),
                tenant: t,
                actor: by.to_owned(),
                op: format!("admin:{op}"),
                status: u16::from(!ok),
                request_id: format!("admin-{}", hex::encode(id)),
                receipt_sha256: receipt.map(crate::core::audit::sealed::sha256_hex),
                ..Default::default()
            };
            auditor.record_durably(record).await.map_err(|e| OpsError::Refused(e.to_string()))?;
        }
        Ok(())
    }

    pub fn with_sweeper(mut self, sweeper: crate::config::SweeperSettings) -> Self {
        self.sweeper = sweeper;
        self
    }

    pub fn keys(&self) -> &Keychain {
        self.core.keys()
    }

    pub fn tenant(&self, name: &str) -> Result<Arc<Tenant>, OpsError> {
        self.core.directory().tenant(name).map_err(|_| OpsError::UnknownTenant(name.to_owned()))
    }

    /// The tenant's buckets (client name and placement), or just `only` if given.
    pub async fn buckets(&self, tenant: &Tenant, only: Option<&str>) -> Result<Vec<(String, Placement)>, OpsError> {
        let names: Vec<String> = match only {
            Some(b) => vec![b.to_owned()],
            None => self.core.list_buckets(tenant).await?.into_iter().map(|b| b.name).collect(),
        };
        let mut out = Vec::new();
        for name in names {
            let p = self.core.directory().place(tenant, &name)?;
            out.push((name, p));
        }
        Ok(out)
    }
}

/// One page (up to 1000) of a bucket's current client objects after `after`; the hidden upload
/// namespace is skipped. Returns the keys and whether more follow.
pub async fn object_page(p: &Placement, after: Option<&str>) -> Result<(Vec<String>, bool), OpsError> {
    let opts = ListOptions { start_after: after.map(str::to_owned), max_keys: 1000, ..ListOptions::default() };
    let page = p.backend.list(&p.bucket, opts).await?;
    let keys = page.objects.into_iter().map(|o| o.key).filter(|k| !k.starts_with(RESERVED_KEY_PREFIX)).collect();
    Ok((keys, page.is_truncated))
}

/// A bucket's version listing, one page (up to 1000 entries, keys in order, newest version first)
/// at a time.
pub struct VersionPages<'a> {
    p: &'a Placement,
    key_marker: Option<String>,
    version_marker: Option<String>,
    done: bool,
}

impl<'a> VersionPages<'a> {
    pub fn new(p: &'a Placement) -> Self {
        Self { p, key_marker: None, version_marker: None, done: false }
    }

    /// Pages of the keys after `key` (every version of each), as S3's `key-marker` lists them.
    pub fn after(p: &'a Placement, key: Option<String>) -> Self {
        Self { p, key_marker: key, version_marker: None, done: false }
    }

    /// The next page, or `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Vec<crate::backend::VersionEntry>>, BackendError> {
        if self.done {
            return Ok(None);
        }
        let opts = ListVersionsOptions {
            key_marker: self.key_marker.take(),
            version_id_marker: self.version_marker.take(),
            max_keys: 1000,
            ..ListVersionsOptions::default()
        };
        let page = self.p.backend.list_versions(&self.p.bucket, opts).await?;
        self.done = !page.is_truncated || page.next_key_marker.is_none();
        self.key_marker = page.next_key_marker;
        self.version_marker = page.next_version_id_marker;
        Ok(Some(page.versions))
    }
}

/// Every stored version of every client object in the bucket (current objects only where the
/// backend has no versions): `(key, version id)`.
pub async fn all_versions(p: &Placement) -> Result<Vec<(String, Option<String>)>, OpsError> {
    let mut out = Vec::new();
    let mut pages = VersionPages::new(p);
    loop {
        let versions = match pages.next().await {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(out),
            Err(BackendError::NotSupported(_)) => return current_objects(p).await,
            Err(e) => return Err(e.into()),
        };
        for v in versions {
            if !v.is_delete_marker && !v.meta.key.starts_with(RESERVED_KEY_PREFIX) {
                out.push((v.meta.key, v.meta.version_id));
            }
        }
    }
}

async fn current_objects(p: &Placement) -> Result<Vec<(String, Option<String>)>, OpsError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (keys, more) = object_page(p, after.as_deref()).await?;
        after = keys.last().cloned();
        out.extend(keys.into_iter().map(|k| (k, None)));
        if !more || after.is_none() {
            return Ok(out);
        }
    }
}

/// Who runs the command, for receipts: `$USER@host` unless given.
pub fn operator(given: Option<&str>) -> String {
    if let Some(who) = given {
        return who.to_owned();
    }
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let host =
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}

/// Now, RFC 3339.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests;
