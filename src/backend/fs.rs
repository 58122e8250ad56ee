//! [`FsBackend`]: objects as files on a local filesystem, the embedded default's storage.
//!
//! Layout: `root/<bucket>/` is a bucket; `root/<bucket>/.bucket` holds its creation time; each
//! object is one file `root/<bucket>/<hex(SHA-256(key))>`. Keys are never mapped to paths, so any
//! key (`..`, leading `/`, `a` next to `a/b`) is safe. Each object file is
//!
//! ```text
//! magic "BSOB" | format version u8 = 1 | MD5 of body [16] | header length u32 BE | JSON header | body
//! ```
//!
//! where the JSON header holds the key, size, write time, user metadata, content headers and tags
//! (and the ETag of a completed multipart upload, which is not the body's MD5). The MD5 sits in the
//! fixed part so it can be filled in after the body has streamed through. Multipart uploads in
//! progress live under `root/<bucket>/.uploads/` (see `fs/multipart.rs`).
//!
//! Writes go to a hidden temp file (`.tmp-*`) in the bucket directory, are fsynced and then
//! renamed over the target (or hard-linked for `If-None-Match: *`, which fails atomically if the
//! target exists), followed by an fsync of the directory. A crash therefore leaves either the old
//! or the new object, plus possibly a stray temp file that listings ignore and housekeeping removes
//! by age (see `fs/write.rs`, `fs/housekeeping.rs`). DeleteBucket renames the bucket directory to a
//! tombstone first, which makes it linearizable against writes (`fs/buckets.rs`). The JSON header
//! starts with the key, so listings sort a bucket from the first bytes of each file and parse whole
//! headers only for the page (`format::read_key`).
//! Changing an object's tags rewrites its file the same way. There is no region and no object lock.

mod buckets;
mod format;
pub mod housekeeping;
mod multipart;
mod write;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::io::AsyncSeekExt as _;

use self::format::{io_err, is_object_file_name, object_file_name, open_object, read_key, Parsed};
use self::write::{source_md5, stream_into, temp_name, TempFile};
use super::listing::{self, PageSpec};
use super::{
    Backend, BackendError, BucketInfo, ByteStream, CompletedPart, CreateBucketOptions, DeleteResult, GetOptions,
    GetResult, ListOptions, ListPage, ListPartsOptions, ListUploadsOptions, ListVersionsOptions, LockState, ObjectHead,
    ObjectMeta, PartsPage, PutOptions, PutResult, Result, UploadsPage, VersionEntry, VersionPage, Versioning,
};

const BUCKET_MARKER: &str = ".bucket";
const READ_CHUNK: usize = 128 * 1024;
const WRITE_BUFFER: usize = 256 * 1024;

/// Local-filesystem object storage without versioning. See the module docs for the layout.
#[derive(Debug, Clone)]
pub struct FsBackend {
    root: PathBuf,
}

/// This backend has no versions; S3 calls the only version of an object "null".
fn check_version(version_id: Option<&str>) -> Result<()> {
    match version_id {
        None | Some("null") => Ok(()),
        Some(_) => Err(BackendError::NoSuchVersion),
    }
}

/// Runs blocking filesystem work off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Other { backend: "fs", message: format!("blocking task failed: {e}") })?
}

/// Fsyncs a directory so a rename or unlink in it survives a crash.
async fn sync_dir(dir: &Path) -> Result<()> {
    tokio::fs::File::open(dir).await.map_err(io_err)?.sync_all().await.map_err(io_err)
}

impl FsBackend {
    /// A backend storing buckets as directories under `root`. Nothing is touched on disk until the
    /// first bucket is created (which creates `root` if needed).
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The directory of `bucket`. Names that could escape `root` or collide with internal files
    /// (empty, leading `.`, `/`, `\`, NUL) are `InvalidRequest`, whatever the front end checked.
    fn bucket_dir(&self, bucket: &str) -> Result<PathBuf> {
        if bucket.is_empty() || bucket.starts_with('.') || bucket.contains(['/', '\\', '\0']) {
            return Err(BackendError::InvalidRequest(format!("invalid bucket name {bucket:?}")));
        }
        Ok(self.root.join(bucket))
    }

    /// The bucket directory, or `NoSuchBucket` if it does not exist.
    async fn existing_bucket_dir(&self, bucket: &str) -> Result<PathBuf> {
        let dir = self.bucket_dir(bucket)?;
        match tokio::fs::metadata(&dir).await {
            Ok(m) if m.is_dir() => Ok(dir),
            Ok(_) => Err(BackendError::NoSuchBucket),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BackendError::NoSuchBucket),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Opens `key`'s file and header; `NoSuchBucket` / `NoSuchKey` when absent.
    async fn open(&self, bucket: &str, key: &str) -> Result<(std::fs::File, Parsed)> {
        let dir = self.existing_bucket_dir(bucket).await?;
        let path = dir.join(object_file_name(key));
        let want = key.to_owned();
        let found = blocking(move || open_object(&path)).await?;
        match found {
            // A SHA-256 collision is not expected; checking the key keeps one from serving wrong data.
            Some((f, p)) if p.header.key == want => Ok((f, p)),
            _ => Err(BackendError::NoSuchKey),
        }
    }

    /// The key and file of every object in a bucket, sorted by key. Only the start of each header is
    /// read (`format::read_key`): sorting costs a few hundred bytes per object, not its metadata.
    async fn scan_keys(&self, bucket: &str) -> Result<Vec<(String, PathBuf)>> {
        let dir = self.existing_bucket_dir(bucket).await?;
        blocking(move || {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(io_err)? {
                let entry = entry.map_err(io_err)?;
                let name = entry.file_name();
                if !name.to_str().is_some_and(is_object_file_name) {
                    continue;
                }
                match read_key(&entry.path()) {
                    // The name decides (GET opens the file named for the key): a file whose recorded key does
                    // not hash to its name (a stray copy) is not an object, and is not listed.
                    Ok(Some(key)) if name.to_str() == Some(object_file_name(&key).as_str()) => {
                        out.push((key, entry.path()))
                    }
                    Ok(Some(_)) => {
                        tracing::warn!(file = ?entry.path(), "skipping an object file not named for its recorded key");
                    }
                    // Deleted between read_dir and open.
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(file = ?entry.path(), error = %e, "skipping unreadable object file");
                    }
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
        .await
    }

    /// The metadata of the objects a page chose, reading their whole headers (only these). An
    /// object deleted (or replaced by a corrupt file) since the scan drops out of the page.
    async fn metas(&self, items: Vec<(String, PathBuf)>) -> Result<Vec<ObjectMeta>> {
        blocking(move || {
            let mut out = Vec::with_capacity(items.len());
            for (key, path) in items {
                match open_object(&path) {
                    Ok(Some((_, parsed))) if parsed.header.key == key => out.push(parsed.head().meta),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(file = ?path, error = %e, "skipping unreadable object file"),
                }
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl Backend for FsBackend {
    fn kind(&self) -> &'static str {
        "fs"
    }

    async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let root = self.root.clone();
        blocking(move || {
            let entries = match std::fs::read_dir(&root) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io_err(e)),
            };
            let mut out = Vec::new();
            for entry in entries {
                let entry = entry.map_err(io_err)?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if name.starts_with('.') || !entry.file_type().map_err(io_err)?.is_dir() {
                    continue;
                }
                let marker = std::fs::read_to_string(entry.path().join(BUCKET_MARKER)).ok();
                let created = marker
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                out.push(BucketInfo { name, created });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let dir = self.bucket_dir(bucket)?;
        tokio::fs::create_dir_all(&self.root).await.map_err(io_err)?;
        match tokio::fs::create_dir(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(BackendError::BucketAlreadyExists),
            Err(e) => return Err(io_err(e)),
        }
        let created = OffsetDateTime::now_utc().unix_timestamp().to_string();
        // Marker, its directory entry and the bucket's entry in the root are all fsynced: a bucket that
        // CreateBucket acknowledged exists, with its creation time, after a crash.
        let mut marker = tokio::fs::File::create(dir.join(BUCKET_MARKER)).await.map_err(io_err)?;
        tokio::io::AsyncWriteExt::write_all(&mut marker, created.as_bytes()).await.map_err(io_err)?;
        marker.sync_all().await.map_err(io_err)?;
        drop(marker);
        sync_dir(&dir).await?;
        sync_dir(&self.root).await
    }

    /// The region and object lock are ignored: a directory has neither (config declares where the
    /// root lives).
    async fn create_bucket_with(&self, bucket: &str, _opts: CreateBucketOptions) -> Result<()> {
        self.create_bucket(bucket).await
    }

    async fn bucket_region(&self, bucket: &str) -> Result<Option<String>> {
        self.existing_bucket_dir(bucket).await.map(|_| None)
    }

    async fn head_bucket(&self, bucket: &str) -> Result<()> {
        self.existing_bucket_dir(bucket).await.map(|_| ())
    }

    /// Linearizable against puts, in this process or another sharing the directory: see
    /// `fs/buckets.rs`. Unfinished multipart uploads do not keep a bucket alive: they are removed with
    /// it, as S3 does for general-purpose buckets.
    async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let dir = self.existing_bucket_dir(bucket).await?;
        self.remove_bucket_dir(&dir).await
    }

    async fn get_versioning(&self, bucket: &str) -> Result<Versioning> {
        self.existing_bucket_dir(bucket).await?;
        Ok(Versioning::Unversioned)
    }

    async fn put_versioning(&self, _bucket: &str, _enabled: bool) -> Result<()> {
        Err(BackendError::NotSupported("versioning"))
    }

    async fn head(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<ObjectHead> {
        check_version(version_id)?;
        self.open(bucket, key).await.map(|(_, p)| p.head())
    }

    async fn get(&self, bucket: &str, key: &str, opts: GetOptions) -> Result<GetResult> {
        check_version(opts.version_id.as_deref())?;
        let (file, parsed) = self.open(bucket, key).await?;
        let size = parsed.header.size;
        let range = match opts.range {
            None => 0..size,
            Some(r) if r.start >= size => return Err(BackendError::InvalidRange),
            Some(r) => r.start..r.end.min(size),
        };
        let offset = parsed.body_offset;
        let head = parsed.head();
        let mut file = tokio::fs::File::from_std(file);
        file.seek(io::SeekFrom::Start(offset + range.start)).await.map_err(io_err)?;
        let reader = tokio::io::AsyncReadExt::take(file, range.end.saturating_sub(range.start));
        let body: ByteStream = Box::pin(tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK));
        Ok(GetResult { head, range, body })
    }

    async fn put(&self, bucket: &str, key: &str, body: ByteStream, len: u64, opts: PutOptions) -> Result<PutResult> {
        self.write_object(bucket, key, body, len, opts, None, None).await
    }

    /// Streams the source body (from the already-open file, so a concurrent overwrite of the
    /// source cannot mix versions) into a new object written like `put`.
    async fn copy(
        &self,
        src_bucket: &str,
        src_key: &str,
        src_version: Option<&str>,
        bucket: &str,
        key: &str,
        opts: PutOptions,
    ) -> Result<PutResult> {
        check_version(src_version)?;
        let (file, parsed) = self.open(src_bucket, src_key).await?;
        // The file opened is the version copied (a rename replaces the name, not this open file), so
        // checking its ETag here is exact.
        let etag = parsed.header.etag.as_deref().unwrap_or(&parsed.etag);
        if opts.source_if_match.as_ref().is_some_and(|want| want != etag) {
            return Err(BackendError::PreconditionFailed);
        }
        let mut file = tokio::fs::File::from_std(file);
        file.seek(io::SeekFrom::Start(parsed.body_offset)).await.map_err(io_err)?;
        let size = parsed.header.size;
        let reader = tokio::io::AsyncReadExt::take(file, size);
        let body: ByteStream = Box::pin(tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK));
        let md5 = source_md5(&parsed);
        self.write_object(bucket, key, body, size, opts, None, md5).await
    }

    async fn delete(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<DeleteResult> {
        check_version(version_id)?;
        let dir = self.existing_bucket_dir(bucket).await?;
        match tokio::fs::remove_file(dir.join(object_file_name(key))).await {
            Ok(()) => sync_dir(&dir).await?,
            // S3 semantics: deleting a missing key succeeds.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        Ok(DeleteResult::default())
    }

    async fn get_tags(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<BTreeMap<String, String>> {
        check_version(version_id)?;
        self.open(bucket, key).await.map(|(_, p)| p.header.tags)
    }

    /// Rewrites the object file (see `fs/write.rs`): costs a copy of the body.
    async fn put_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        check_version(version_id)?;
        self.rewrite_tags(bucket, key, tags).await
    }

    /// Always unlocked: there is no object lock on a filesystem.
    async fn lock_state(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<LockState> {
        self.head(bucket, key, version_id).await.map(|_| LockState::default())
    }

    /// Reads the key of every object (the first bytes of its header) and the whole header of the
    /// page's objects only: the bytes read grow with the object count times the key length, not with
    /// the bucket's metadata (never bodies).
    async fn list(&self, bucket: &str, opts: ListOptions) -> Result<ListPage> {
        let resume_after = opts.continuation.as_deref().map(listing::decode_token).transpose()?;
        let all = self.scan_keys(bucket).await?;
        let spec = PageSpec {
            prefix: &opts.prefix,
            delimiter: opts.delimiter.as_deref(),
            start_after: opts.start_after.as_deref(),
            resume_after,
            max_keys: opts.max_keys,
        };
        let page = listing::paginate(all, &spec);
        Ok(ListPage {
            objects: self.metas(page.items).await?,
            common_prefixes: page.common_prefixes,
            is_truncated: page.is_truncated,
            next_token: page.last.as_deref().map(listing::encode_token),
        })
    }

    /// Each current object is its only version (`version_id: None`, latest). Same cost as `list`.
    async fn list_versions(&self, bucket: &str, opts: ListVersionsOptions) -> Result<VersionPage> {
        let all = self.scan_keys(bucket).await?;
        let spec = PageSpec {
            prefix: &opts.prefix,
            delimiter: opts.delimiter.as_deref(),
            start_after: None,
            resume_after: opts.key_marker.clone(),
            max_keys: opts.max_keys,
        };
        let page = listing::paginate(all, &spec);
        Ok(VersionPage {
            versions: self
                .metas(page.items)
                .await?
                .into_iter()
                .map(|meta| VersionEntry { meta, is_latest: true, is_delete_marker: false })
                .collect(),
            common_prefixes: page.common_prefixes,
            is_truncated: page.is_truncated,
            next_key_marker: page.last,
            next_version_id_marker: None,
        })
    }

    // Multipart: see fs/multipart.rs for the layout.

    async fn create_upload(&self, bucket: &str, key: &str, opts: PutOptions) -> Result<String> {
        self.mpu_create(bucket, key, opts).await
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        len: u64,
    ) -> Result<String> {
        self.mpu_upload_part(bucket, key, upload_id, part_number, body, len).await
    }

    async fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        src_bucket: &str,
        src_key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<String> {
        self.mpu_upload_part_copy(bucket, key, upload_id, part_number, src_bucket, src_key, range).await
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        if_none_match_any: bool,
    ) -> Result<PutResult> {
        self.mpu_complete(bucket, key, upload_id, parts, if_none_match_any).await
    }

    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        self.mpu_abort(bucket, key, upload_id).await
    }

    async fn list_parts(&self, bucket: &str, key: &str, upload_id: &str, opts: ListPartsOptions) -> Result<PartsPage> {
        self.mpu_list_parts(bucket, key, upload_id, opts).await
    }

    async fn list_uploads(&self, bucket: &str, opts: ListUploadsOptions) -> Result<UploadsPage> {
        self.mpu_list_uploads(bucket, opts).await
    }

    async fn housekeep(&self, older_than: std::time::SystemTime) -> Result<u64> {
        let root = self.root.clone();
        blocking(move || Ok(housekeeping::collect(&root, older_than))).await
    }
}
