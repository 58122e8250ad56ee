//! DeleteBucket of [`FsBackend`], linearizable against writes.
//!
//! "Check empty, then remove" loses a put that lands in between (it answered 200, then its object
//! went with the directory). Instead the bucket directory is first renamed to a tombstone
//! `<root>/.deleting-<bucket><unique>`: one atomic step after which no write can land in it, because
//! every write ends with a rename *by path* into `<root>/<bucket>/`, which then fails (the put answers
//! an error, see `fs/write.rs`). The tombstone is then checked: a write that landed before the rename
//! is in it, so the directory is renamed back and DeleteBucket answers `BucketNotEmpty`. Otherwise it
//! is deleted. This holds across processes sharing the data directory (replicas, the CLI): it relies
//! only on rename being atomic, not on any lock. A crash leaves a `.deleting-*` directory that no
//! request reaches (bucket names never start with a dot) and housekeeping removes.

use std::path::Path;

use super::format::{io_err, is_object_file_name};
use super::{blocking, sync_dir, temp_name, FsBackend};
use crate::backend::{BackendError, Result};

/// Tombstone names of buckets being deleted.
pub(super) const DELETING_PREFIX: &str = ".deleting-";

/// Whether the directory holds any object file (temp files and upload state are not objects).
fn has_objects(dir: &Path) -> Result<bool> {
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        if entry.map_err(io_err)?.file_name().to_str().is_some_and(is_object_file_name) {
            return Ok(true);
        }
    }
    Ok(false)
}

impl FsBackend {
    /// Removes the bucket directory `dir` (an existing bucket) unless it holds objects.
    pub(super) async fn remove_bucket_dir(&self, dir: &Path) -> Result<()> {
        // The common refusal needs no rename.
        let check = dir.to_owned();
        if blocking(move || has_objects(&check)).await? {
            return Err(BackendError::BucketNotEmpty);
        }
        let name = dir.file_name().and_then(|n| n.to_str()).ok_or(BackendError::NoSuchBucket)?;
        let tomb = self.root.join(format!("{DELETING_PREFIX}{name}{}", temp_name()));
        match tokio::fs::rename(dir, &tomb).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BackendError::NoSuchBucket),
            Err(e) => return Err(io_err(e)),
        }
        crate::failpoint::hit("fs.delete-bucket.after-tombstone");
        let check = tomb.clone();
        if blocking(move || has_objects(&check)).await? {
            // A write landed before the rename: the bucket was not empty after all. Nothing could have
            // recreated the name meanwhile except a CreateBucket, whose marker makes its directory
            // non-empty, so this rename cannot replace it (rename onto a non-empty directory fails).
            tokio::fs::rename(&tomb, dir).await.map_err(io_err)?;
            sync_dir(&self.root).await?;
            return Err(BackendError::BucketNotEmpty);
        }
        sync_dir(&self.root).await?;
        if let Err(e) = tokio::fs::remove_dir_all(&tomb).await {
            tracing::warn!(dir = ?tomb, error = %e, "could not remove a deleted bucket's directory; housekeeping will");
        }
        Ok(())
    }
}
