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
//! where the JSON header holds the key, size, write time, user metadata and content headers (and
//! the ETag of a completed multipart upload, which is not the body's MD5). The MD5 sits in the
//! fixed part so it can be filled in after the body has streamed through. Multipart uploads in
//! progress live under `root/<bucket>/.uploads/` (see `fs/multipart.rs`).
//!
//! Writes go to a hidden temp file (`.tmp-*`) in the bucket directory, are fsynced and then
//! renamed over the target (or hard-linked for `If-None-Match: *`, which fails atomically if the
//! target exists), followed by an fsync of the directory. A crash therefore leaves either the old
//! or the new object, plus possibly a stray temp file that listings ignore.

mod format;
mod multipart;

#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt as _;
use md5::{Digest as _, Md5};
use time::OffsetDateTime;
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};

use self::format::{io_err, is_object_file_name, object_file_name, open_object, Parsed, StoredHeader};
use super::listing::{self, PageSpec};
use super::{
    Backend, BackendError, BucketInfo, ByteStream, CompletedPart, DeleteResult, GetOptions, GetResult, ListOptions,
    ListPage, ListPartsOptions, ListUploadsOptions, ListVersionsOptions, ObjectHead, ObjectMeta, PartsPage, PutOptions,
    PutResult, Result, UploadsPage, VersionEntry, VersionPage, Versioning,
};

const BUCKET_MARKER: &str = ".bucket";
const READ_CHUNK: usize = 128 * 1024;
const WRITE_BUFFER: usize = 256 * 1024;

/// Per-process counter making temp file names unique alongside pid and time.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Local-filesystem object storage without versioning. See the module docs for the layout.
#[derive(Debug, Clone)]
pub struct FsBackend {
    root: PathBuf,
}

/// Removes a temp file when dropped (error paths and cancelled futures) unless disarmed.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a leftover temp file is invisible to listings and harmless.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn body_err(what: String) -> BackendError {
    BackendError::InvalidRequest(what)
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

/// Copies exactly `len` bytes of `body` into `w` and flushes it, returning their MD5. A body that
/// fails, or yields more or fewer than `len` bytes, is `InvalidRequest` (the caller's temp file is
/// then discarded, so nothing partial becomes visible).
async fn stream_into<W>(body: ByteStream, len: u64, w: &mut W) -> Result<[u8; 16]>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    stream_hashing(body, len, w, Some(Md5::new())).await
}

/// [`stream_into`], hashing only when given a hasher (a copy already knows its body's MD5); returns the
/// digest, or zeros without a hasher.
async fn stream_hashing<W>(mut body: ByteStream, len: u64, w: &mut W, mut md5: Option<Md5>) -> Result<[u8; 16]>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| body_err(format!("body stream failed: {e}")))?;
        written += chunk.len() as u64;
        if written > len {
            return Err(body_err(format!("body longer than its declared {len} bytes")));
        }
        if let Some(md5) = md5.as_mut() {
            md5.update(&chunk);
        }
        w.write_all(&chunk).await.map_err(io_err)?;
    }
    if written != len {
        return Err(body_err(format!("body ended after {written} of {len} bytes")));
    }
    w.flush().await.map_err(io_err)?;
    Ok(md5.map(|m| m.finalize().into()).unwrap_or_default())
}

/// The body MD5 recorded in an object file's header (its ETag unless the header carries another).
fn source_md5(parsed: &format::Parsed) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(&parsed.etag, &mut out).ok().map(|()| out)
}

/// A unique hidden temp file name (`.tmp-*`): pid, time and a counter.
fn temp_name() -> String {
    let unique = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".tmp-{}-{}-{unique}", std::process::id(), OffsetDateTime::now_utc().unix_timestamp_nanos())
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

    /// Streams `body` into a temp file and atomically puts it in place of `key`. See module docs.
    /// `etag` replaces the body's MD5 as the object's ETag (completed multipart uploads).
    #[allow(clippy::too_many_arguments)] // the two digest overrides are each used by one caller
    async fn write_object(
        &self,
        bucket: &str,
        key: &str,
        body: ByteStream,
        len: u64,
        opts: PutOptions,
        etag: Option<String>,
        known_md5: Option<[u8; 16]>,
    ) -> Result<PutResult> {
        let dir = self.existing_bucket_dir(bucket).await?;
        let target = dir.join(object_file_name(key));
        let now = OffsetDateTime::now_utc();
        let mut guard = TempFile { path: dir.join(temp_name()), armed: false };
        let file =
            tokio::fs::OpenOptions::new().write(true).create_new(true).open(&guard.path).await.map_err(io_err)?;
        guard.armed = true;

        let h = opts.headers;
        let header = StoredHeader {
            key: key.to_owned(),
            size: len,
            last_modified: now.unix_timestamp(),
            metadata: opts.metadata,
            content_type: h.content_type,
            content_encoding: h.content_encoding,
            content_disposition: h.content_disposition,
            content_language: h.content_language,
            cache_control: h.cache_control,
            expires: h.expires,
            etag: etag.clone(),
        };
        let prefix = format::encode_prefix(&header)?;
        let mut w = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        w.write_all(&prefix).await.map_err(io_err)?;
        // A copy's body is the source's, byte for byte: its MD5 is already known.
        let digest = match known_md5 {
            Some(md5) => {
                stream_hashing(body, len, &mut w, None).await?;
                md5
            }
            None => stream_into(body, len, &mut w).await?,
        };
        let mut file = w.into_inner();
        file.seek(io::SeekFrom::Start(format::MD5_OFFSET)).await.map_err(io_err)?;
        file.write_all(&digest).await.map_err(io_err)?;
        file.sync_all().await.map_err(io_err)?;
        drop(file);

        if opts.if_none_match_any {
            // hard_link refuses to replace an existing file, atomically: two racing conditional
            // puts cannot both succeed. The guard then removes the temp name.
            match tokio::fs::hard_link(&guard.path, &target).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(BackendError::PreconditionFailed),
                Err(e) => return Err(io_err(e)),
            }
        } else {
            tokio::fs::rename(&guard.path, &target).await.map_err(io_err)?;
            guard.armed = false;
        }
        drop(guard);
        sync_dir(&dir).await?;
        let etag = etag.unwrap_or_else(|| hex::encode(digest));
        Ok(PutResult { etag, version_id: None, last_modified: Some(whole_seconds(now)) })
    }

    /// Reads every object header in a bucket, sorted by key. Bodies are not read.
    async fn scan(&self, bucket: &str) -> Result<Vec<(String, ObjectMeta)>> {
        let dir = self.existing_bucket_dir(bucket).await?;
        blocking(move || {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(io_err)? {
                let entry = entry.map_err(io_err)?;
                let name = entry.file_name();
                if !name.to_str().is_some_and(is_object_file_name) {
                    continue;
                }
                match open_object(&entry.path()) {
                    Ok(Some((_, parsed))) => {
                        let head = parsed.head();
                        out.push((head.meta.key.clone(), head.meta));
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
}

fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.unix_timestamp()).unwrap_or(t)
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
        tokio::fs::write(dir.join(BUCKET_MARKER), created).await.map_err(io_err)?;
        sync_dir(&self.root).await
    }

    async fn head_bucket(&self, bucket: &str) -> Result<()> {
        self.existing_bucket_dir(bucket).await.map(|_| ())
    }

    /// Not atomic against a concurrent put into the same bucket: such a put may fail. Unfinished
    /// multipart uploads do not keep a bucket alive: they are removed with it, as S3 does for
    /// general-purpose buckets.
    async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let dir = self.existing_bucket_dir(bucket).await?;
        let check = dir.clone();
        let has_objects = blocking(move || {
            for entry in std::fs::read_dir(&check).map_err(io_err)? {
                if entry.map_err(io_err)?.file_name().to_str().is_some_and(is_object_file_name) {
                    return Ok(true);
                }
            }
            Ok(false)
        })
        .await?;
        if has_objects {
            return Err(BackendError::BucketNotEmpty);
        }
        tokio::fs::remove_dir_all(&dir).await.map_err(io_err)?;
        sync_dir(&self.root).await
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

    /// Reads the small header of every object in the bucket per call (never bodies): fine for the
    /// embedded default's scale, linear in the bucket's object count.
    async fn list(&self, bucket: &str, opts: ListOptions) -> Result<ListPage> {
        let resume_after = opts.continuation.as_deref().map(listing::decode_token).transpose()?;
        let all = self.scan(bucket).await?;
        let spec = PageSpec {
            prefix: &opts.prefix,
            delimiter: opts.delimiter.as_deref(),
            start_after: opts.start_after.as_deref(),
            resume_after,
            max_keys: opts.max_keys,
        };
        let page = listing::paginate(all, &spec);
        Ok(ListPage {
            objects: page.items.into_iter().map(|(_, m)| m).collect(),
            common_prefixes: page.common_prefixes,
            is_truncated: page.is_truncated,
            next_token: page.last.as_deref().map(listing::encode_token),
        })
    }

    /// Each current object is its only version (`version_id: None`, latest). Same cost as `list`.
    async fn list_versions(&self, bucket: &str, opts: ListVersionsOptions) -> Result<VersionPage> {
        let all = self.scan(bucket).await?;
        let spec = PageSpec {
            prefix: &opts.prefix,
            delimiter: opts.delimiter.as_deref(),
            start_after: None,
            resume_after: opts.key_marker.clone(),
            max_keys: opts.max_keys,
        };
        let page = listing::paginate(all, &spec);
        Ok(VersionPage {
            versions: page
                .items
                .into_iter()
                .map(|(_, meta)| VersionEntry { meta, is_latest: true, is_delete_marker: false })
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
}
