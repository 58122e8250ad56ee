//! Multipart uploads of [`FsBackend`].
//!
//! Layout: each upload is a directory `<bucket dir>/.uploads/<upload id>/` holding
//! `upload.json` (the key, initiation time, metadata and headers given at creation) and one file
//! per part, `part-NNNNN`, which is the part's MD5 (16 bytes) followed by its bytes. The directory
//! starts with a dot, so it never looks like an object file (those are 64 hex digits) and listings
//! never show it. Parts are written like objects: a `.tmp-*` file in the upload directory, fsynced
//! and renamed over the part name, so a re-upload replaces a part atomically. Completion streams
//! the named parts (never the whole object in memory) through the same write path as `put`, then
//! removes the upload directory (renamed away first, so an upload is whole or gone: a crash after
//! the object's rename leaves the upload whole, and a retried completion redoes it); DeleteBucket removes unfinished uploads with the bucket, as S3
//! does for general-purpose buckets.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use super::format::{corrupt, io_err};
use super::{blocking, stream_into, sync_dir, temp_name, FsBackend, TempFile, READ_CHUNK, WRITE_BUFFER};
use crate::backend::multipart_rules::{self as rules, StoredPart};
use crate::backend::{
    BackendError, ByteStream, CompletedPart, ContentHeaders, ListPartsOptions, ListUploadsOptions, PartInfo, PartsPage,
    PutOptions, PutResult, Result, UploadInfo, UploadsPage,
};

pub(super) const UPLOADS_DIR: &str = ".uploads";
pub(super) const RECORD: &str = "upload.json";
const PART_PREFIX: &str = "part-";
/// The MD5 in front of a part's bytes.
const PART_MD5_LEN: u64 = 16;

/// `upload.json`: what an upload was created with.
#[derive(Debug, Serialize, Deserialize)]
struct UploadRecord {
    key: String,
    /// Unix nanoseconds; orders uploads of one key in listings.
    initiated_ns: i64,
    metadata: BTreeMap<String, String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<String>,
    /// Tags of the completed object; absent in records written before tagging existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    tags: BTreeMap<String, String>,
}

impl UploadRecord {
    fn new(key: &str, opts: PutOptions) -> Self {
        let now = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let h = opts.headers;
        Self {
            key: key.to_owned(),
            initiated_ns: i64::try_from(now).unwrap_or(i64::MAX),
            metadata: opts.metadata,
            content_type: h.content_type,
            content_encoding: h.content_encoding,
            content_disposition: h.content_disposition,
            content_language: h.content_language,
            cache_control: h.cache_control,
            expires: h.expires,
            tags: opts.tags,
        }
    }

    fn initiated(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.initiated_ns)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The options the completed object is written with.
    fn into_put_options(self, if_none_match_any: bool) -> PutOptions {
        PutOptions {
            metadata: self.metadata,
            headers: ContentHeaders {
                content_type: self.content_type,
                content_encoding: self.content_encoding,
                content_disposition: self.content_disposition,
                content_language: self.content_language,
                cache_control: self.cache_control,
                expires: self.expires,
            },
            if_none_match_any,
            source_if_match: None,
            tags: self.tags,
        }
    }
}

/// A stored part as found on disk.
#[derive(Debug)]
struct DiskPart {
    stored: StoredPart,
    last_modified: OffsetDateTime,
}

fn part_file_name(n: u32) -> String {
    format!("{PART_PREFIX}{n:05}")
}

fn parse_part_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(PART_PREFIX)?;
    if digits.len() != 5 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Reads the record in an upload directory; `Ok(None)` if there is none (aborted, or creation
/// still under way).
fn read_record(dir: &Path) -> Result<Option<UploadRecord>> {
    match std::fs::read(dir.join(RECORD)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|_| corrupt("bad upload record")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(e)),
    }
}

/// Every part file of an upload by part number, reading only their MD5 prefixes.
fn scan_parts(dir: &Path) -> Result<BTreeMap<u32, DiskPart>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BackendError::NoSuchUpload),
        Err(e) => return Err(io_err(e)),
    };
    let mut out = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(io_err)?;
        let Some(n) = entry.file_name().to_str().and_then(parse_part_file_name) else {
            continue;
        };
        let mut f = match std::fs::File::open(entry.path()) {
            Ok(f) => f,
            // Removed by a concurrent abort or completion.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(e)),
        };
        let meta = f.metadata().map_err(io_err)?;
        let size = meta.len().checked_sub(PART_MD5_LEN).ok_or_else(|| corrupt("short part file"))?;
        let mut md5 = [0u8; 16];
        std::io::Read::read_exact(&mut f, &mut md5).map_err(|_| corrupt("short part file"))?;
        let last_modified = meta.modified().map(OffsetDateTime::from).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        out.insert(n, DiskPart { stored: StoredPart { md5, size }, last_modified });
    }
    Ok(out)
}

/// A body streaming the named parts' bytes in order. Each part file's MD5 is checked against the
/// one validated, so a part re-uploaded during completion fails the body instead of mixing in.
fn assemble(parts: Vec<(PathBuf, [u8; 16], u64)>) -> ByteStream {
    let files = futures::stream::iter(parts).then(|(path, md5, size)| async move {
        let mut f = tokio::fs::File::open(&path).await?;
        let mut head = [0u8; 16];
        f.read_exact(&mut head).await?;
        if head != md5 {
            return Err(io::Error::other("a part was replaced while its upload completed"));
        }
        Ok(tokio_util::io::ReaderStream::with_capacity(f.take(size), READ_CHUNK))
    });
    Box::pin(files.try_flatten())
}

impl FsBackend {
    /// The directory of an existing upload of `key` and its record. An id of the wrong shape, an
    /// unknown id, or an upload of another key is `NoSuchUpload`.
    async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(PathBuf, UploadRecord)> {
        let bucket_dir = self.existing_bucket_dir(bucket).await?;
        if !rules::is_upload_id(upload_id) {
            return Err(BackendError::NoSuchUpload);
        }
        let dir = bucket_dir.join(UPLOADS_DIR).join(upload_id);
        let probe = dir.clone();
        match blocking(move || read_record(&probe)).await? {
            Some(rec) if rec.key == key => Ok((dir, rec)),
            _ => Err(BackendError::NoSuchUpload),
        }
    }

    /// See [`crate::backend::Backend::create_upload`].
    pub(super) async fn mpu_create(&self, bucket: &str, key: &str, opts: PutOptions) -> Result<String> {
        let bucket_dir = self.existing_bucket_dir(bucket).await?;
        let uploads = bucket_dir.join(UPLOADS_DIR);
        if tokio::fs::metadata(&uploads).await.is_err() {
            tokio::fs::create_dir_all(&uploads).await.map_err(io_err)?;
            // The new `.uploads` entry must survive a crash like the upload it is made for.
            sync_dir(&bucket_dir).await?;
        }
        let id = rules::new_upload_id()?;
        let dir = uploads.join(&id);
        tokio::fs::create_dir(&dir).await.map_err(io_err)?;
        let json = serde_json::to_vec(&UploadRecord::new(key, opts)).map_err(|e| corrupt(&e.to_string()))?;
        // The record appears whole (temp + rename): until then the upload does not exist.
        let mut guard = TempFile { path: dir.join(temp_name()), armed: true };
        let mut f = tokio::fs::File::create(&guard.path).await.map_err(io_err)?;
        f.write_all(&json).await.map_err(io_err)?;
        f.sync_all().await.map_err(io_err)?;
        drop(f);
        tokio::fs::rename(&guard.path, dir.join(RECORD)).await.map_err(io_err)?;
        guard.armed = false;
        sync_dir(&dir).await?;
        sync_dir(&uploads).await?;
        Ok(id)
    }

    /// Writes part `n` of the upload in `dir` from `len` bytes of `body`; returns its ETag.
    async fn write_part(&self, dir: &Path, n: u32, body: ByteStream, len: u64) -> Result<String> {
        rules::check_part_number(n)?;
        rules::check_part_size(len)?;
        let mut guard = TempFile { path: dir.join(temp_name()), armed: false };
        let file = match tokio::fs::OpenOptions::new().write(true).create_new(true).open(&guard.path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BackendError::NoSuchUpload),
            Err(e) => return Err(io_err(e)),
        };
        guard.armed = true;
        let mut w = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        w.write_all(&[0u8; PART_MD5_LEN as usize]).await.map_err(io_err)?;
        let md5 = stream_into(body, len, &mut w).await?;
        let mut file = w.into_inner();
        file.seek(io::SeekFrom::Start(0)).await.map_err(io_err)?;
        file.write_all(&md5).await.map_err(io_err)?;
        file.sync_all().await.map_err(io_err)?;
        drop(file);
        match tokio::fs::rename(&guard.path, dir.join(part_file_name(n))).await {
            Ok(()) => guard.armed = false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BackendError::NoSuchUpload),
            Err(e) => return Err(io_err(e)),
        }
        sync_dir(dir).await?;
        Ok(hex::encode(md5))
    }

    /// See [`crate::backend::Backend::upload_part`].
    pub(super) async fn mpu_upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        n: u32,
        body: ByteStream,
        len: u64,
    ) -> Result<String> {
        let (dir, _) = self.upload(bucket, key, upload_id).await?;
        self.write_part(&dir, n, body, len).await
    }

    /// See [`crate::backend::Backend::upload_part_copy`]. A `range` that is empty or ends past the
    /// source object is `InvalidRange` (S3 refuses such copy ranges rather than clamping them).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn mpu_upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        n: u32,
        src_bucket: &str,
        src_key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<String> {
        let (dir, _) = self.upload(bucket, key, upload_id).await?;
        let (file, parsed) = self.open(src_bucket, src_key).await?;
        let size = parsed.header.size;
        let range = match range {
            None => 0..size,
            Some(r) if r.start >= r.end || r.end > size => return Err(BackendError::InvalidRange),
            Some(r) => r,
        };
        let len = range.end - range.start;
        rules::check_part_size(len)?;
        let mut file = tokio::fs::File::from_std(file);
        file.seek(io::SeekFrom::Start(parsed.body_offset + range.start)).await.map_err(io_err)?;
        let body: ByteStream = Box::pin(tokio_util::io::ReaderStream::with_capacity(file.take(len), READ_CHUNK));
        self.write_part(&dir, n, body, len).await
    }

    /// See [`crate::backend::Backend::complete_upload`]. The object appears atomically (the `put`
    /// path); the upload directory is removed afterwards, so a crash in between leaves a stale
    /// upload, never a partial object.
    pub(super) async fn mpu_complete(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        if_none_match_any: bool,
    ) -> Result<PutResult> {
        let (dir, rec) = self.upload(bucket, key, upload_id).await?;
        let scan_dir = dir.clone();
        let stored = blocking(move || scan_parts(&scan_dir)).await?;
        let chosen = rules::validate_completion(parts, |n| stored.get(&n).map(|p| &p.stored))?;
        // Fail fast before copying anything; write_object's hard link is the atomic check.
        if if_none_match_any && self.open(bucket, key).await.is_ok() {
            return Err(BackendError::PreconditionFailed);
        }
        let etag = rules::multipart_etag(chosen.iter().map(|(_, p)| &p.md5));
        let mut total = 0u64;
        let mut plan = Vec::with_capacity(chosen.len());
        for (n, p) in &chosen {
            total = total.checked_add(p.size).ok_or_else(|| BackendError::InvalidRequest("object too large".into()))?;
            plan.push((dir.join(part_file_name(*n)), p.md5, p.size));
        }
        let opts = rec.into_put_options(if_none_match_any);
        let result = self.write_object(bucket, key, assemble(plan), total, opts, Some(etag), None).await?;
        // Until the directory is gone the upload is still whole (its parts untouched), so a crash here
        // leaves a completion that a retry simply redoes.
        crate::failpoint::hit("fs.complete.after-rename");
        // The object is in place: failing to tidy up must not turn the completion into an error.
        if let Err(e) = remove_upload_dir(&dir).await {
            tracing::warn!(upload = %upload_id, error = %e, "completed upload left its directory behind");
        }
        Ok(result)
    }

    /// See [`crate::backend::Backend::abort_upload`].
    pub(super) async fn mpu_abort(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let (dir, _) = self.upload(bucket, key, upload_id).await?;
        remove_upload_dir(&dir).await
    }

    /// See [`crate::backend::Backend::list_parts`]. `max_parts` 0 means S3's default of 1000.
    pub(super) async fn mpu_list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        opts: ListPartsOptions,
    ) -> Result<PartsPage> {
        let (dir, _) = self.upload(bucket, key, upload_id).await?;
        let all = blocking(move || scan_parts(&dir)).await?;
        let parts = all.into_iter().map(|(n, p)| PartInfo {
            part_number: n,
            size: p.stored.size,
            etag: hex::encode(p.stored.md5),
            last_modified: p.last_modified,
        });
        Ok(rules::page_parts(parts, opts.part_number_marker, opts.max_parts))
    }

    /// See [`crate::backend::Backend::list_uploads`]. Reads every upload record of the bucket.
    pub(super) async fn mpu_list_uploads(&self, bucket: &str, opts: ListUploadsOptions) -> Result<UploadsPage> {
        let uploads = self.existing_bucket_dir(bucket).await?.join(UPLOADS_DIR);
        let all = blocking(move || {
            let entries = match std::fs::read_dir(&uploads) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io_err(e)),
            };
            let mut out = Vec::new();
            for entry in entries {
                let entry = entry.map_err(io_err)?;
                let Some(id) = entry.file_name().to_str().filter(|n| rules::is_upload_id(n)).map(str::to_owned) else {
                    continue;
                };
                match read_record(&entry.path()) {
                    Ok(Some(rec)) => out.push(UploadInfo { initiated: rec.initiated(), key: rec.key, upload_id: id }),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(upload = %id, error = %e, "skipping unreadable upload record"),
                }
            }
            Ok(out)
        })
        .await?;
        Ok(rules::page_uploads(
            all,
            &opts.prefix,
            opts.key_marker.as_deref(),
            opts.upload_id_marker.as_deref(),
            opts.max_uploads,
        ))
    }
}

/// Names of upload directories being removed: `.gone-<upload id>-<unique>` (never an upload id).
pub(super) const GONE_PREFIX: &str = ".gone-";

/// Removes an upload directory; `NoSuchUpload` if it is already gone (a racing abort or completion).
/// The directory is first renamed out of the way (atomic: the upload, with all its parts, is either
/// there or not, never half-deleted), then deleted; a crash in between leaves a `.gone-*` directory
/// that no request sees and housekeeping removes.
async fn remove_upload_dir(dir: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str())) else {
        return Err(BackendError::NoSuchUpload);
    };
    let gone = parent.join(format!("{GONE_PREFIX}{name}{}", temp_name()));
    match tokio::fs::rename(dir, &gone).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BackendError::NoSuchUpload),
        Err(e) => return Err(io_err(e)),
    }
    sync_dir(parent).await?;
    crate::failpoint::hit("fs.upload-dir.after-gone");
    if let Err(e) = tokio::fs::remove_dir_all(&gone).await {
        tracing::warn!(dir = ?gone, error = %e, "could not remove a finished upload's directory; housekeeping will");
    }
    Ok(())
}
