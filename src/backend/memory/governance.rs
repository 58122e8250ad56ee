//! Tags and S3 Object Lock of [`MemoryBackend`]: tags live with each stored version; locks are set
//! by tests through [`MemoryBackend::set_lock`] (S3 sets them with PutObjectRetention and
//! PutObjectLegalHold, which the trait does not offer) and make `delete` of that version fail with
//! `ObjectLocked`, as S3 does.

use std::collections::BTreeMap;

use super::{MemoryBackend, Version};
use crate::backend::{BackendError, LockState, Result};

/// The wanted version (or the latest) among `versions`, as S3 finds it: `NoSuchKey` for a missing
/// key, `NoSuchVersion` for an unknown version id. A delete marker is returned as found; callers
/// that need an object refuse it.
pub(super) fn pick<'a>(versions: Option<&'a Vec<Version>>, version_id: Option<&str>) -> Result<&'a Version> {
    match version_id {
        None => versions.and_then(|vs| vs.last()).ok_or(BackendError::NoSuchKey),
        Some(want) => versions.and_then(|vs| vs.iter().find(|v| v.matches(want))).ok_or(BackendError::NoSuchVersion),
    }
}

/// [`pick`], for changing the version found.
fn pick_mut<'a>(versions: Option<&'a mut Vec<Version>>, version_id: Option<&str>) -> Result<&'a mut Version> {
    match version_id {
        None => versions.and_then(|vs| vs.last_mut()).ok_or(BackendError::NoSuchKey),
        Some(want) => {
            versions.and_then(|vs| vs.iter_mut().find(|v| v.matches(want))).ok_or(BackendError::NoSuchVersion)
        }
    }
}

impl MemoryBackend {
    /// Sets the Object Lock state of a version (the latest if `version_id` is `None`), replacing
    /// the previous one, the way S3's PutObjectRetention plus PutObjectLegalHold would (with
    /// governance bypass: any state may replace any other). `InvalidRequest` unless the bucket was
    /// created with object lock (S3: "Bucket is missing Object Lock Configuration"); `NoSuchKey` /
    /// `NoSuchVersion` as for `head`, and for a delete marker.
    pub fn set_lock(&self, bucket: &str, key: &str, version_id: Option<&str>, lock: LockState) -> Result<()> {
        let mut st = self.lock();
        let b = st.buckets.get_mut(bucket).ok_or(BackendError::NoSuchBucket)?;
        if !b.object_lock {
            return Err(BackendError::InvalidRequest(format!("bucket {bucket} has no object lock")));
        }
        let v = pick_mut(b.objects.get_mut(key), version_id)?;
        if v.stored.is_none() {
            return Err(BackendError::NoSuchKey);
        }
        v.lock = lock;
        Ok(())
    }

    pub(super) fn tags_of(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<BTreeMap<String, String>> {
        let st = self.lock();
        let b = st.buckets.get(bucket).ok_or(BackendError::NoSuchBucket)?;
        let v = pick(b.objects.get(key), version_id)?;
        v.stored.as_ref().map(|s| s.tags.clone()).ok_or(BackendError::NoSuchKey)
    }

    pub(super) fn replace_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        let mut st = self.lock();
        let b = st.buckets.get_mut(bucket).ok_or(BackendError::NoSuchBucket)?;
        let stored = pick_mut(b.objects.get_mut(key), version_id)?.stored.as_mut().ok_or(BackendError::NoSuchKey)?;
        stored.tags = tags.clone();
        Ok(())
    }

    pub(super) fn lock_of(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<LockState> {
        let st = self.lock();
        let b = st.buckets.get(bucket).ok_or(BackendError::NoSuchBucket)?;
        let v = pick(b.objects.get(key), version_id)?;
        match v.stored {
            Some(_) => Ok(v.lock.clone()),
            None => Err(BackendError::NoSuchKey),
        }
    }
}
