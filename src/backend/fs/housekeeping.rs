//! Crash leftovers of [`super::FsBackend`] and their collection.
//!
//! A crash (or `kill -9`) can leave, none of which any request ever sees:
//! - `.tmp-*` files of interrupted writes, in bucket and upload directories;
//! - `.gone-*` upload directories whose removal was interrupted (`fs/multipart.rs`);
//! - upload directories without `upload.json` (a creation interrupted before its record appeared);
//! - `<root>/.deleting-*` tombstones of buckets whose deletion was interrupted (`fs/buckets.rs`).
//!   One that holds objects is restored under its bucket name instead, whatever its age: a put that
//!   landed just before the tombstone rename was acknowledged, and the crash stopped DeleteBucket from
//!   renaming the bucket back.
//!
//! Each is removed once it was last modified before the cutoff: a temp file of a write still running
//! in another process sharing the directory is young, so the age bound keeps it safe. Errors are
//! logged and skipped (a racing remover is not a failure); the count says what was removed.

use std::path::Path;
use std::time::SystemTime;

use super::buckets::DELETING_PREFIX;
use super::format::is_object_file_name;
use super::multipart::{GONE_PREFIX, RECORD, UPLOADS_DIR};

const TEMP_PREFIX: &str = ".tmp-";

/// Removes the leftovers under `root` older than `older_than`; returns how many were removed.
pub fn collect(root: &Path, older_than: SystemTime) -> u64 {
    let mut removed = 0;
    for (name, path, is_dir) in entries(root) {
        if !is_dir {
            continue;
        }
        if name.starts_with(DELETING_PREFIX) {
            if !holds_objects(&path) {
                removed += remove_if_old(&path, true, older_than);
            } else if let Some(bucket) = tombstoned_bucket(&name) {
                restore(root, &path, bucket);
            } else {
                tracing::error!(tomb = ?path, "a bucket tombstone of unknown name holds objects; left in place");
            }
        } else if !name.starts_with('.') {
            removed += collect_bucket(&path, older_than);
        }
    }
    removed
}

fn collect_bucket(bucket: &Path, older_than: SystemTime) -> u64 {
    let mut removed = temp_files(bucket, older_than);
    for (name, path, is_dir) in entries(&bucket.join(UPLOADS_DIR)) {
        if !is_dir {
            removed += if name.starts_with(TEMP_PREFIX) { remove_if_old(&path, false, older_than) } else { 0 };
        } else if name.starts_with(GONE_PREFIX) || !path.join(RECORD).exists() {
            removed += remove_if_old(&path, true, older_than);
        } else {
            removed += temp_files(&path, older_than);
        }
    }
    removed
}

/// The bucket a tombstone `.deleting-<bucket>.tmp-<pid>-<ns>-<n>` was named after.
fn tombstoned_bucket(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(DELETING_PREFIX)?;
    // Bucket names may contain `.tmp-`; the temp suffix is the last one (it contains no other).
    let cut = rest.rfind(TEMP_PREFIX)?;
    rest.get(..cut).filter(|b| !b.is_empty())
}

fn holds_objects(dir: &Path) -> bool {
    entries(dir).iter().any(|(name, _, is_dir)| !is_dir && is_object_file_name(name))
}

/// Renames the tombstone back to its bucket unless the name was taken again (then it stays, logged,
/// for an operator: two buckets cannot share a name).
fn restore(root: &Path, tomb: &Path, bucket: &str) {
    let dir = root.join(bucket);
    if dir.exists() {
        tracing::error!(tomb = ?tomb, bucket, "a deleted bucket's tombstone holds objects but the name is in use again");
        return;
    }
    match std::fs::rename(tomb, &dir) {
        Ok(()) => tracing::warn!(bucket, "restored a bucket whose interrupted deletion held objects"),
        Err(e) => tracing::error!(tomb = ?tomb, error = %e, "could not restore a bucket tombstone that holds objects"),
    }
}

/// Old `.tmp-*` files directly in `dir`.
fn temp_files(dir: &Path, older_than: SystemTime) -> u64 {
    entries(dir)
        .into_iter()
        .filter(|(name, _, is_dir)| !is_dir && name.starts_with(TEMP_PREFIX))
        .map(|(_, path, _)| remove_if_old(&path, false, older_than))
        .sum()
}

/// `(name, path, is a directory)` of each entry of `dir`; none if it cannot be read.
fn entries(dir: &Path) -> Vec<(String, std::path::PathBuf, bool)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.filter_map(|e| {
        let e = e.ok()?;
        let name = e.file_name().to_str()?.to_owned();
        let is_dir = e.file_type().ok()?.is_dir();
        Some((name, e.path(), is_dir))
    })
    .collect()
}

/// Removes `path` if its modification time is before `older_than`; 1 if it did.
fn remove_if_old(path: &Path, is_dir: bool, older_than: SystemTime) -> u64 {
    let old = std::fs::symlink_metadata(path).and_then(|m| m.modified()).is_ok_and(|t| t < older_than);
    if !old {
        return 0;
    }
    let res = if is_dir { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    match res {
        Ok(()) => {
            tracing::info!(path = ?path, "housekeeping removed a crash leftover");
            1
        }
        Err(e) => {
            tracing::warn!(path = ?path, error = %e, "housekeeping could not remove a crash leftover");
            0
        }
    }
}
