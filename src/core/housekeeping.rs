//! Housekeeping: collects what crashes leave behind, so nothing accumulates and no bucket is kept
//! alive by objects no client can see.
//!
//! - Each backend's own leftovers ([`crate::backend::Backend::housekeep`]: the fs backend's temp files
//!   and half-removed directories).
//! - Completions that crashed and were never retried: hidden assembled objects (`.blobseal/mpu/…`
//!   stored as objects; uploads in progress are not objects and are never touched) and their intents
//!   (`.blobseal/mpc/…`, see `core::completion_intent`).
//! - Azure blocks staged but never committed (`.blobseal/blocks/…`), after a week as Azure does.
//! - Backend uploads on keys outside `.blobseal/mpu/`: clients only ever get uploads on hidden keys,
//!   so these are the final copies of completions (a server-side multipart copy to the client's key)
//!   that a crash interrupted; they are aborted. They do not block DeleteBucket but cost storage.
//!
//! Everything is removed by age only (last modified before `now - age`): a completion being retried,
//! or a write in progress in another replica, is young. An upload a client can still complete is
//! never removed. `app` runs this at start and then periodically.

use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::backend::{Backend, BackendError, ListOptions, ListUploadsOptions};
use crate::core::completion_intent::{self as intent, INTENT_KEY_PREFIX};
use crate::core::error::CoreResult;
use crate::core::service::BlobService;
use crate::core::tenant::Placement;
use crate::core::upload_token::UPLOAD_KEY_PREFIX;

/// How long an uncommitted Azure block is kept (Azure's own limit).
const STAGED_BLOCK_LIFETIME: time::Duration = time::Duration::days(7);

/// Listing pages read per bucket and prefix per run: bounds one run's work; the rest waits for the next.
const MAX_PAGES: usize = 100;

/// What one run removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HousekeepingReport {
    /// Backend-level leftovers (temp files, half-removed directories).
    pub backend_leftovers: u64,
    /// Hidden objects and intents of completions that were never finished, and their interrupted
    /// final-copy uploads.
    pub hidden_objects: u64,
    /// Backends or buckets that could not be examined (logged).
    pub errors: u64,
}

/// Keys under `prefix` in `bucket`, with their last-modified times (at most [`MAX_PAGES`] pages).
async fn listed(
    backend: &dyn Backend,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, OffsetDateTime)>, BackendError> {
    let mut out = Vec::new();
    let mut continuation = None;
    for _ in 0..MAX_PAGES {
        let page = backend
            .list(bucket, ListOptions { prefix: prefix.to_owned(), max_keys: 1000, continuation, ..Default::default() })
            .await?;
        out.extend(page.objects.into_iter().map(|m| (m.key, m.last_modified)));
        match (page.is_truncated, page.next_token) {
            (true, Some(token)) => continuation = Some(token),
            _ => break,
        }
    }
    Ok(out)
}

/// Deletes a crashed completion's hidden object and then its intent (the order a retry tolerates).
async fn forget(backend: &dyn Backend, bucket: &str, hidden: &str) -> Result<(), BackendError> {
    intent::delete_current(backend, bucket, hidden).await?;
    match intent::intent_key(hidden) {
        Some(k) => intent::delete_current(backend, bucket, &k).await,
        None => Ok(()),
    }
}

/// Removes the crashed completions in `bucket` last modified before `cutoff`; returns how many.
async fn collect_bucket(backend: &dyn Backend, bucket: &str, cutoff: OffsetDateTime) -> Result<u64, BackendError> {
    let mut removed = 0;
    for (key, modified) in listed(backend, bucket, UPLOAD_KEY_PREFIX).await? {
        if modified < cutoff {
            forget(backend, bucket, &key).await?;
            removed += 1;
        }
    }
    // Staged Azure blocks never committed: Azure discards them after a week; so does blobseal (a `~`
    // staging object of an interrupted Put Blob is young for seconds only, and goes with them).
    let block_cutoff = cutoff.min(OffsetDateTime::now_utc() - STAGED_BLOCK_LIFETIME);
    for (key, modified) in listed(backend, bucket, crate::core::blocks::BLOCKS_KEY_PREFIX).await? {
        if modified < block_cutoff {
            backend.delete(bucket, &key, None).await?;
            removed += 1;
        }
    }
    // Intents whose hidden object is already gone (a crash between the two deletes).
    for (key, modified) in listed(backend, bucket, INTENT_KEY_PREFIX).await? {
        if modified < cutoff {
            intent::delete_current(backend, bucket, &key).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Aborts backend uploads on non-hidden keys (interrupted final copies) initiated before `cutoff`.
async fn abort_final_copies(backend: &dyn Backend, bucket: &str, cutoff: OffsetDateTime) -> Result<u64, BackendError> {
    let mut aborted = 0;
    let (mut key_marker, mut upload_id_marker) = (None, None);
    for _ in 0..MAX_PAGES {
        let opts = ListUploadsOptions { prefix: String::new(), key_marker, upload_id_marker, max_uploads: 1000 };
        let page = match backend.list_uploads(bucket, opts).await {
            Ok(page) => page,
            // s3s-fs and the like: nothing to list, nothing this can collect.
            Err(BackendError::NotSupported(_)) => return Ok(0),
            Err(e) => return Err(e),
        };
        for up in page.uploads {
            if !up.key.starts_with(UPLOAD_KEY_PREFIX) && up.initiated < cutoff {
                match backend.abort_upload(bucket, &up.key, &up.upload_id).await {
                    Ok(()) | Err(BackendError::NoSuchUpload) => aborted += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        if !page.is_truncated {
            break;
        }
        (key_marker, upload_id_marker) = (page.next_key_marker, page.next_upload_id_marker);
    }
    Ok(aborted)
}

/// Whether `bucket` holds nothing but crashed completions' hidden objects and intents; if so they
/// are deleted (whatever their age: the bucket is being deleted) and `true` is returned.
pub(crate) async fn clear_hidden_leftovers(p: &Placement) -> Result<bool, BackendError> {
    let backend = p.backend.as_ref();
    let mut hidden = Vec::new();
    let mut continuation = None;
    for _ in 0..MAX_PAGES {
        let page = backend.list(&p.bucket, ListOptions { max_keys: 1000, continuation, ..Default::default() }).await?;
        for m in page.objects {
            if !(m.key.starts_with(UPLOAD_KEY_PREFIX)
                || m.key.starts_with(INTENT_KEY_PREFIX)
                || m.key.starts_with(crate::core::blocks::BLOCKS_KEY_PREFIX)
                || m.key.starts_with(crate::core::blocks::BLOCKLISTS_KEY_PREFIX)
                || m.key == crate::core::container_meta::CONTAINER_META_KEY)
            {
                return Ok(false);
            }
            hidden.push(m.key);
        }
        match (page.is_truncated, page.next_token) {
            (true, Some(token)) => continuation = Some(token),
            _ => break,
        }
    }
    for key in &hidden {
        intent::delete_current(backend, &p.bucket, key).await?;
    }
    Ok(!hidden.is_empty())
}

impl BlobService {
    /// One housekeeping run over every backend and bucket: removes leftovers older than `age`.
    pub async fn housekeep(&self, age: Duration) -> CoreResult<HousekeepingReport> {
        let mut report = HousekeepingReport::default();
        let cutoff_sys = SystemTime::now().checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
        let cutoff = OffsetDateTime::from(cutoff_sys);
        let backends: Vec<_> = self.directory().backends().map(|(n, b)| (n.clone(), b.clone())).collect();
        for (name, backend) in backends {
            match backend.housekeep(cutoff_sys).await {
                Ok(n) => report.backend_leftovers += n,
                Err(e) => {
                    report.errors += 1;
                    tracing::warn!(backend = %name, error = %e, "housekeeping: backend leftovers not collected");
                }
            }
            let buckets = match backend.list_buckets().await {
                Ok(b) => b,
                Err(e) => {
                    report.errors += 1;
                    tracing::warn!(backend = %name, error = %e, "housekeeping: cannot list buckets");
                    continue;
                }
            };
            for b in buckets {
                let collected = match collect_bucket(backend.as_ref(), &b.name, cutoff).await {
                    Ok(n) => abort_final_copies(backend.as_ref(), &b.name, cutoff).await.map(|m| n + m),
                    Err(e) => Err(e),
                };
                match collected {
                    Ok(n) => report.hidden_objects += n,
                    Err(e) => {
                        report.errors += 1;
                        tracing::warn!(backend = %name, bucket = %b.name, error = %e, "housekeeping: bucket skipped");
                    }
                }
            }
        }
        Ok(report)
    }
}
