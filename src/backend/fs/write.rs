//! The write path of [`FsBackend`]: a body streams into a hidden temp file (`.tmp-*`) in the bucket
//! directory, the MD5 is patched into the fixed header, the file is fsynced and then takes the
//! object's name (rename, or hard link for a create-only write), followed by an fsync of the
//! directory. A crash leaves the old or the new object, plus possibly a stray temp file that
//! listings ignore.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt as _;
use md5::{Digest as _, Md5};
use time::OffsetDateTime;
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};

use super::format::{self, io_err, object_file_name, StoredHeader};
use super::{FsBackend, READ_CHUNK, WRITE_BUFFER};
use crate::backend::{BackendError, ByteStream, PutOptions, PutResult, Result};

/// Per-process counter making temp file names unique alongside pid and time.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes a temp file when dropped (error paths and cancelled futures) unless disarmed.
pub(super) struct TempFile {
    pub(super) path: PathBuf,
    pub(super) armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a leftover temp file is invisible to listings and harmless.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A unique hidden temp file name (`.tmp-*`): pid, time and a counter.
pub(super) fn temp_name() -> String {
    let unique = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".tmp-{}-{}-{unique}", std::process::id(), OffsetDateTime::now_utc().unix_timestamp_nanos())
}

/// A path in the bucket directory that vanished mid-write: the bucket was deleted (its directory
/// renamed away, `fs/buckets.rs`), so the write did not happen.
fn gone_bucket(e: io::Error) -> BackendError {
    match e.kind() {
        io::ErrorKind::NotFound => BackendError::NoSuchBucket,
        _ => io_err(e),
    }
}

fn body_err(what: String) -> BackendError {
    BackendError::InvalidRequest(what)
}

/// Copies exactly `len` bytes of `body` into `w` and flushes it, returning their MD5. A body that
/// fails, or yields more or fewer than `len` bytes, is `InvalidRequest` (the caller's temp file is
/// then discarded, so nothing partial becomes visible).
pub(super) async fn stream_into<W>(body: ByteStream, len: u64, w: &mut W) -> Result<[u8; 16]>
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
pub(super) fn source_md5(parsed: &format::Parsed) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(&parsed.etag, &mut out).ok().map(|()| out)
}

pub(super) fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.unix_timestamp()).unwrap_or(t)
}

/// Which file an object name points at: device and inode, stable across renames of other names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    pub(super) fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self { dev: meta.dev(), ino: meta.ino() }
    }
}

/// How a finished temp file takes the object's name.
#[derive(Debug, Clone, Copy)]
pub(super) enum Place {
    /// Replace whatever is there (a plain put).
    Replace,
    /// Fail with `PreconditionFailed` if the name exists (`If-None-Match: *`).
    CreateOnly,
    /// Replace the name only while it still points at this file (a rewrite of one object's header);
    /// otherwise drop the new file and report [`Placed::Superseded`].
    ReplaceSame(FileId),
}

/// What [`FsBackend::write_file`] did with the new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placed {
    /// The new file is the object; carries the body's MD5.
    Done([u8; 16]),
    /// `ReplaceSame` found another file (or none) under the name: nothing was changed.
    Superseded,
}

impl FsBackend {
    /// Streams `body` into a temp file and atomically puts it in place of `key`. See module docs.
    /// `etag` replaces the body's MD5 as the object's ETag (completed multipart uploads).
    #[allow(clippy::too_many_arguments)] // the two digest overrides are each used by one caller
    pub(super) async fn write_object(
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
        let now = OffsetDateTime::now_utc();
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
            tags: opts.tags,
        };
        let place = if opts.if_none_match_any { Place::CreateOnly } else { Place::Replace };
        let digest = match self.write_file(&dir, &header, body, known_md5, place).await? {
            Placed::Done(digest) => digest,
            Placed::Superseded => return Err(BackendError::Other { backend: "fs", message: "put superseded".into() }),
        };
        let etag = etag.unwrap_or_else(|| hex::encode(digest));
        Ok(PutResult { etag, version_id: None, last_modified: Some(whole_seconds(now)) })
    }

    /// Writes `header` and `header.size` bytes of `body` as the object file of `header.key` in the
    /// bucket directory `dir`, placed as `place` says. `known_md5` skips hashing a body whose MD5
    /// is known (a copy, a header rewrite).
    pub(super) async fn write_file(
        &self,
        dir: &Path,
        header: &StoredHeader,
        body: ByteStream,
        known_md5: Option<[u8; 16]>,
        place: Place,
    ) -> Result<Placed> {
        let target = dir.join(object_file_name(&header.key));
        // Opened now so the fsync after the rename reaches this directory even if DeleteBucket has
        // renamed it to a tombstone meanwhile (see `fs/buckets.rs`).
        let dir_handle = tokio::fs::File::open(dir).await.map_err(gone_bucket)?;
        let mut guard = TempFile { path: dir.join(temp_name()), armed: false };
        let file =
            tokio::fs::OpenOptions::new().write(true).create_new(true).open(&guard.path).await.map_err(gone_bucket)?;
        guard.armed = true;

        let prefix = format::encode_prefix(header)?;
        let mut w = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        w.write_all(&prefix).await.map_err(io_err)?;
        // A copy's body is the source's, byte for byte: its MD5 is already known.
        let digest = match known_md5 {
            Some(md5) => {
                stream_hashing(body, header.size, &mut w, None).await?;
                md5
            }
            None => stream_into(body, header.size, &mut w).await?,
        };
        let mut file = w.into_inner();
        file.seek(io::SeekFrom::Start(format::MD5_OFFSET)).await.map_err(io_err)?;
        file.write_all(&digest).await.map_err(io_err)?;
        file.sync_all().await.map_err(io_err)?;
        drop(file);

        match place {
            Place::CreateOnly => {
                // hard_link refuses to replace an existing file, atomically: two racing conditional
                // puts cannot both succeed. The guard then removes the temp name.
                match tokio::fs::hard_link(&guard.path, &target).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(BackendError::PreconditionFailed),
                    Err(e) => return Err(gone_bucket(e)),
                }
            }
            Place::ReplaceSame(was) => {
                // Not atomic with the rename: a put landing in between is lost. The window is a stat
                // call wide; a put or delete before it wins, as if it came after this rewrite.
                match tokio::fs::metadata(&target).await {
                    Ok(m) if FileId::of(&m) == was => {}
                    Ok(_) => return Ok(Placed::Superseded),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Placed::Superseded),
                    Err(e) => return Err(io_err(e)),
                }
                tokio::fs::rename(&guard.path, &target).await.map_err(gone_bucket)?;
                guard.armed = false;
            }
            Place::Replace => {
                tokio::fs::rename(&guard.path, &target).await.map_err(gone_bucket)?;
                guard.armed = false;
            }
        }
        drop(guard);
        dir_handle.sync_all().await.map_err(io_err)?;
        Ok(Placed::Done(digest))
    }
}

impl FsBackend {
    /// Rewrites `key`'s object file with `tags` in its header, keeping the body, ETag, metadata,
    /// content headers and write time. If the object is replaced or deleted while this runs, that
    /// write wins and this still returns `Ok` (as if the tagging had come first).
    pub(super) async fn rewrite_tags(&self, bucket: &str, key: &str, tags: &BTreeMap<String, String>) -> Result<()> {
        let (file, parsed) = self.open(bucket, key).await?;
        let was = FileId::of(&file.metadata().map_err(io_err)?);
        let md5 = source_md5(&parsed);
        let body_offset = parsed.body_offset;
        let mut header = parsed.header;
        header.tags = tags.clone();
        let dir = self.existing_bucket_dir(bucket).await?;
        let mut file = tokio::fs::File::from_std(file);
        file.seek(io::SeekFrom::Start(body_offset)).await.map_err(io_err)?;
        let reader = tokio::io::AsyncReadExt::take(file, header.size);
        let body: ByteStream = Box::pin(tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK));
        self.write_file(&dir, &header, body, md5, Place::ReplaceSame(was)).await.map(|_| ())
    }
}
