//! The completion intent: what makes CompleteMultipartUpload crash-safe.
//!
//! A completion changes the backend in steps that are each atomic but not atomic together: the
//! hidden upload becomes a hidden object (its parts are gone from then on), that object is copied to
//! the client's key, then deleted. Before the first step blobseal writes a small hidden object, the
//! intent, at `.blobseal/mpc/<key>/<material>` (the upload's hidden key with `mpc` for `mpu`) holding
//! the named parts and the layout they give. A retried completion that finds the upload gone but the
//! intent and the hidden object present resumes from the copy: only the intent can tell it the
//! layout, since the part sizes went with the parts. Once the final object exists, the hidden object
//! and then the intent are deleted; a crash between leaves garbage that housekeeping collects by age
//! (`core::housekeeping`), never a state a retry cannot finish.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendError, CompletedPart, PutOptions};
use crate::core::upload_token::UPLOAD_KEY_PREFIX;

/// Where intents live (same length as [`UPLOAD_KEY_PREFIX`], so an intent key is never longer than
/// the upload's hidden key, which S3 already accepted).
pub const INTENT_KEY_PREFIX: &str = ".blobseal/mpc/";
/// An intent is a few hundred bytes per part; anything far beyond 10000 parts' worth is not ours.
const MAX_INTENT_LEN: u64 = 4 * 1024 * 1024;

/// The intent's body (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The backend upload id the hidden object was completed from.
    pub backend_upload_id: String,
    /// The `(part number, ETag)` list of the completion, as the backend completion got it.
    pub parts: Vec<(u32, String)>,
    /// The encoded layout (`Layout::encode`) of those parts.
    pub layout: String,
}

impl Intent {
    pub fn new(backend_upload_id: &str, parts: &[CompletedPart], layout: &str) -> Self {
        Self {
            backend_upload_id: backend_upload_id.to_owned(),
            parts: parts.iter().map(|p| (p.part_number, p.etag.clone())).collect(),
            layout: layout.to_owned(),
        }
    }

    /// Whether a retried request names the same parts: only then may it resume this completion
    /// (S3 accepts a retry of the same request; a different list is a different completion).
    pub fn matches(&self, named: &[(u32, String)]) -> bool {
        self.parts.len() == named.len()
            && self.parts.iter().zip(named).all(|((n, e), (m, f))| n == m && e == f.trim().trim_matches('"'))
    }

    /// The completion list to record from the request's named parts.
    pub fn completed(&self) -> Vec<CompletedPart> {
        self.parts.iter().map(|(n, e)| CompletedPart { part_number: *n, etag: e.clone() }).collect()
    }
}

/// The intent key of an upload whose hidden key is `hidden`; `None` for a key that is not an
/// upload's hidden key.
pub fn intent_key(hidden: &str) -> Option<String> {
    hidden.strip_prefix(UPLOAD_KEY_PREFIX).map(|rest| format!("{INTENT_KEY_PREFIX}{rest}"))
}

/// The upload's hidden key for intent key `intent` (the inverse of [`intent_key`]).
pub fn hidden_key(intent: &str) -> Option<String> {
    intent.strip_prefix(INTENT_KEY_PREFIX).map(|rest| format!("{UPLOAD_KEY_PREFIX}{rest}"))
}

/// Writes (or replaces) the intent; the put is atomic, so a reader sees a whole intent or none.
pub async fn write(backend: &dyn Backend, bucket: &str, key: &str, intent: &Intent) -> Result<(), BackendError> {
    let json = serde_json::to_vec(intent)
        .map_err(|e| BackendError::Other { backend: "core", message: format!("intent: {e}") })?;
    let len = json.len() as u64;
    let body = futures::stream::once(async move { Ok(bytes::Bytes::from(json)) });
    backend.put(bucket, key, Box::pin(body), len, PutOptions::default()).await.map(|_| ())
}

/// Reads the intent at `key`: `Ok(None)` when there is none, or it is not one (an unreadable intent
/// cannot be resumed from; housekeeping removes it by age).
pub async fn read(backend: &dyn Backend, bucket: &str, key: &str) -> Result<Option<Intent>, BackendError> {
    use futures::TryStreamExt as _;
    let got = match backend.get(bucket, key, crate::backend::GetOptions::default()).await {
        Ok(g) => g,
        Err(BackendError::NoSuchKey) => return Ok(None),
        Err(e) => return Err(e),
    };
    if got.head.meta.size > MAX_INTENT_LEN {
        return Ok(None);
    }
    let chunks: Vec<bytes::Bytes> =
        got.body.try_collect().await.map_err(|e| BackendError::Unavailable(format!("reading an intent: {e}")))?;
    let json = chunks.concat();
    Ok(serde_json::from_slice(&json).ok())
}

/// Deletes every version of blobseal's own `key` (an intent rewritten by a retry has two on a
/// versioned bucket, and a plain delete would only hide them behind a delete marker that no client can
/// see or remove); a missing key is fine. Backends without version listings delete the current object.
pub async fn delete_current(backend: &dyn Backend, bucket: &str, key: &str) -> Result<(), BackendError> {
    // An object without a version id is on an unversioned bucket (or backend): one delete does it, and
    // spares the fs backend a version listing (which reads every key of the bucket).
    match backend.head(bucket, key, None).await {
        Ok(head) if head.meta.version_id.is_none() => {
            return match backend.delete(bucket, key, None).await {
                Ok(_) | Err(BackendError::NoSuchKey) => Ok(()),
                Err(e) => Err(e),
            };
        }
        // None current on a bucket that never had versions: nothing to delete.
        Err(BackendError::NoSuchKey)
            if matches!(backend.get_versioning(bucket).await, Ok(crate::backend::Versioning::Unversioned)) =>
        {
            return Ok(());
        }
        // A versioned object, or none current (maybe only older versions behind a delete marker).
        Ok(_) | Err(BackendError::NoSuchKey) => {}
        Err(e) => return Err(e),
    }
    let opts = crate::backend::ListVersionsOptions { prefix: key.to_owned(), max_keys: 1000, ..Default::default() };
    let versions = match backend.list_versions(bucket, opts).await {
        Ok(page) => page.versions,
        Err(BackendError::NotSupported(_)) => {
            return match backend.delete(bucket, key, None).await {
                Ok(_) | Err(BackendError::NoSuchKey) => Ok(()),
                Err(e) => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    // Only this key's versions (the prefix also matches longer keys); at most a handful.
    for v in versions.into_iter().filter(|v| v.meta.key == key) {
        match backend.delete(bucket, key, v.meta.version_id.as_deref()).await {
            Ok(_) | Err(BackendError::NoSuchKey | BackendError::NoSuchVersion) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_keys_mirror_hidden_keys() {
        let hidden = ".blobseal/mpu/a/b.txt/TOKEN";
        let intent = intent_key(hidden).unwrap();
        assert_eq!(intent, ".blobseal/mpc/a/b.txt/TOKEN");
        assert_eq!(intent.len(), hidden.len());
        assert_eq!(hidden_key(&intent).unwrap(), hidden);
        assert!(intent_key("a/b").is_none());
        assert!(hidden_key(".blobseal/mpu/x").is_none());
    }

    #[test]
    fn only_the_same_part_list_matches() {
        let parts =
            [CompletedPart { part_number: 1, etag: "aa".into() }, CompletedPart { part_number: 2, etag: "bb".into() }];
        let i = Intent::new("up", &parts, "L");
        assert!(i.matches(&[(1, "\"aa\"".into()), (2, "bb".into())]));
        assert!(!i.matches(&[(1, "aa".into())]));
        assert!(!i.matches(&[(1, "aa".into()), (2, "cc".into())]));
        assert!(!i.matches(&[(1, "aa".into()), (3, "bb".into())]));
        assert_eq!(i.completed(), parts.to_vec());
    }
}
