//! An in-memory [`Backend`] test double with optional per-bucket versioning, so the core's
//! versioning paths can be unit-tested without a server. Bodies are buffered whole: not for
//! production use. Multipart uploads follow the same S3 rules as the filesystem backend
//! (`multipart_rules.rs`), including the 5 MiB minimum for parts other than the last. Tags and
//! S3 Object Lock (settable with [`MemoryBackend::set_lock`]) live in `memory/governance.rs`.

mod governance;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use md5::{Digest as _, Md5};
use time::OffsetDateTime;

use super::listing::{self, PageSpec};
use super::multipart_rules::{self as rules, StoredPart};
use super::{
    Backend, BackendError, BucketInfo, ByteStream, CompletedPart, ContentHeaders, CreateBucketOptions, DeleteResult,
    GetOptions, GetResult, ListOptions, ListPage, ListPartsOptions, ListUploadsOptions, ListVersionsOptions, LockState,
    ObjectHead, ObjectMeta, PartInfo, PartsPage, PutOptions, PutResult, Result, UploadInfo, UploadsPage, VersionEntry,
    VersionPage, Versioning,
};

/// In-memory object storage. Cheap to create; all state is lost on drop.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
    /// Every object read (HEAD and GET, with the stored range asked for), so tests can count the
    /// backend requests a client request costs.
    reads: Mutex<Vec<Read>>,
}

/// One object read recorded by [`MemoryBackend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Head { key: String },
    Get { key: String, range: Option<std::ops::Range<u64>> },
}

#[derive(Debug, Default)]
struct State {
    buckets: BTreeMap<String, Bucket>,
    next_version: u64,
}

#[derive(Debug)]
struct Bucket {
    created: OffsetDateTime,
    versioning: Versioning,
    /// Created with S3 Object Lock: versioning is on for good and versions can be locked.
    object_lock: bool,
    /// Versions of each key, oldest first. `version_id: None` is S3's "null" version.
    objects: BTreeMap<String, Vec<Version>>,
    /// Multipart uploads in progress, by upload id. Dropped with the bucket, as S3 does.
    uploads: BTreeMap<String, Upload>,
}

#[derive(Debug)]
struct Upload {
    key: String,
    initiated: OffsetDateTime,
    /// Metadata and headers the object gets on completion.
    opts: PutOptions,
    parts: BTreeMap<u32, Part>,
}

#[derive(Debug)]
struct Part {
    data: Bytes,
    stored: StoredPart,
    last_modified: OffsetDateTime,
}

#[derive(Debug, Clone)]
struct Version {
    version_id: Option<String>,
    last_modified: OffsetDateTime,
    /// `None` for a delete marker.
    stored: Option<Stored>,
    /// Object Lock state; only ever set in object-lock buckets.
    lock: LockState,
}

#[derive(Debug, Clone)]
struct Stored {
    data: Bytes,
    etag: String,
    metadata: BTreeMap<String, String>,
    headers: ContentHeaders,
    tags: BTreeMap<String, String>,
}

impl Version {
    fn head(&self, key: &str) -> Option<ObjectHead> {
        let s = self.stored.as_ref()?;
        Some(ObjectHead {
            meta: ObjectMeta {
                key: key.to_owned(),
                size: s.data.len() as u64,
                etag: s.etag.clone(),
                last_modified: self.last_modified,
                version_id: self.version_id.clone(),
            },
            metadata: s.metadata.clone(),
            headers: s.headers.clone(),
        })
    }

    fn matches(&self, wanted: &str) -> bool {
        self.version_id.as_deref().unwrap_or("null") == wanted
    }
}

impl MemoryBackend {
    /// An empty backend with no buckets.
    pub fn new() -> Self {
        Self::default()
    }

    /// The reads recorded since the last call (and forgets them).
    pub fn take_reads(&self) -> Vec<Read> {
        self.reads.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default()
    }

    fn record(&self, read: Read) {
        if let Ok(mut r) = self.reads.lock() {
            r.push(read);
        }
    }

    /// A poisoned lock only means another test thread panicked; the maps are still consistent
    /// because every mutation is a single insert/remove.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Finds the wanted version (or the latest) of `key`; a delete marker is `NoSuchKey`.
    fn find(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<(ObjectHead, Bytes)> {
        let st = self.lock();
        let b = st.buckets.get(bucket).ok_or(BackendError::NoSuchBucket)?;
        let v = governance::pick(b.objects.get(key), version_id)?;
        let head = v.head(key).ok_or(BackendError::NoSuchKey)?;
        let data = v.stored.as_ref().map(|s| s.data.clone()).unwrap_or_default();
        Ok((head, data))
    }

    /// Stores a new current version of `key` according to the bucket's versioning state.
    fn store(&self, bucket: &str, key: &str, data: Bytes, opts: PutOptions) -> Result<PutResult> {
        let etag = hex::encode(Md5::digest(&data));
        store_locked(&mut self.lock(), bucket, key, data, etag, opts)
    }

    /// The upload `upload_id` of `key`, or `NoSuchUpload` (also for an upload of another key).
    fn upload_mut<'a>(st: &'a mut State, bucket: &str, key: &str, upload_id: &str) -> Result<&'a mut Upload> {
        let b = st.buckets.get_mut(bucket).ok_or(BackendError::NoSuchBucket)?;
        b.uploads.get_mut(upload_id).filter(|u| u.key == key).ok_or(BackendError::NoSuchUpload)
    }

    /// Stores a part whose bytes are in hand, replacing any earlier part `n`.
    fn store_part(&self, bucket: &str, key: &str, upload_id: &str, n: u32, data: Bytes) -> Result<String> {
        let md5: [u8; 16] = Md5::digest(&data).into();
        let part = Part {
            stored: StoredPart { md5, size: data.len() as u64 },
            data,
            last_modified: OffsetDateTime::now_utc(),
        };
        let mut st = self.lock();
        Self::upload_mut(&mut st, bucket, key, upload_id)?.parts.insert(n, part);
        Ok(hex::encode(md5))
    }
}

/// Reads exactly `len` bytes of `body`; a failing, short or long body is `InvalidRequest`.
async fn collect(mut body: ByteStream, len: u64) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| BackendError::InvalidRequest(format!("body stream failed: {e}")))?;
        buf.extend_from_slice(&chunk);
        if buf.len() as u64 > len {
            return Err(BackendError::InvalidRequest("body longer than its declared length".into()));
        }
    }
    if buf.len() as u64 != len {
        return Err(BackendError::InvalidRequest("body shorter than its declared length".into()));
    }
    Ok(buf.freeze())
}

/// Stores a new current version of `key` with ETag `etag`, under a lock the caller holds.
fn store_locked(
    st: &mut State,
    bucket: &str,
    key: &str,
    data: Bytes,
    etag: String,
    opts: PutOptions,
) -> Result<PutResult> {
    let now = OffsetDateTime::now_utc();
    st.next_version += 1;
    let vid = format!("{:020}", st.next_version);
    let b = st.buckets.get_mut(bucket).ok_or(BackendError::NoSuchBucket)?;
    let versions = b.objects.entry(key.to_owned()).or_default();
    if opts.if_none_match_any && versions.last().is_some_and(|v| v.stored.is_some()) {
        return Err(BackendError::PreconditionFailed);
    }
    let version_id = match b.versioning {
        Versioning::Enabled => Some(vid),
        Versioning::Unversioned | Versioning::Suspended => {
            versions.retain(|v| v.version_id.is_some());
            None
        }
    };
    let stored = Stored { data, etag: etag.clone(), metadata: opts.metadata, headers: opts.headers, tags: opts.tags };
    let lock = LockState::default();
    versions.push(Version { version_id: version_id.clone(), last_modified: now, stored: Some(stored), lock });
    Ok(PutResult { etag, version_id, last_modified: Some(now) })
}

#[async_trait]
impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let st = self.lock();
        Ok(st.buckets.iter().map(|(n, b)| BucketInfo { name: n.clone(), created: b.created }).collect())
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        self.create_bucket_with(bucket, CreateBucketOptions::default()).await
    }

    /// The region is ignored (memory has none); object lock is remembered and, as in S3, turns
    /// versioning on for good.
    async fn create_bucket_with(&self, bucket: &str, opts: CreateBucketOptions) -> Result<()> {
        let mut st = self.lock();
        if st.buckets.contains_key(bucket) {
            return Err(BackendError::BucketAlreadyExists);
        }
        let b = Bucket {
            created: OffsetDateTime::now_utc(),
            versioning: if opts.object_lock { Versioning::Enabled } else { Versioning::Unversioned },
            object_lock: opts.object_lock,
            objects: BTreeMap::new(),
            uploads: BTreeMap::new(),
        };
        st.buckets.insert(bucket.to_owned(), b);
        Ok(())
    }

    async fn bucket_region(&self, bucket: &str) -> Result<Option<String>> {
        self.head_bucket(bucket).await.map(|()| None)
    }

    async fn head_bucket(&self, bucket: &str) -> Result<()> {
        self.lock().buckets.get(bucket).map(|_| ()).ok_or(BackendError::NoSuchBucket)
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let mut st = self.lock();
        let b = st.buckets.get(bucket).ok_or(BackendError::NoSuchBucket)?;
        if b.objects.values().any(|vs| !vs.is_empty()) {
            return Err(BackendError::BucketNotEmpty);
        }
        st.buckets.remove(bucket);
        Ok(())
    }

    async fn get_versioning(&self, bucket: &str) -> Result<Versioning> {
        self.lock().buckets.get(bucket).map(|b| b.versioning).ok_or(BackendError::NoSuchBucket)
    }

    /// Suspending versioning of an object-lock bucket is refused, as S3 does.
    async fn put_versioning(&self, bucket: &str, enabled: bool) -> Result<()> {
        let mut st = self.lock();
        let b = st.buckets.get_mut(bucket).ok_or(BackendError::NoSuchBucket)?;
        if b.object_lock && !enabled {
            return Err(BackendError::InvalidRequest("versioning cannot be suspended with object lock".into()));
        }
        b.versioning = if enabled { Versioning::Enabled } else { Versioning::Suspended };
        Ok(())
    }

    async fn head(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<ObjectHead> {
        self.record(Read::Head { key: key.to_owned() });
        self.find(bucket, key, version_id).map(|(h, _)| h)
    }

    async fn get(&self, bucket: &str, key: &str, opts: GetOptions) -> Result<GetResult> {
        self.record(Read::Get { key: key.to_owned(), range: opts.range.clone() });
        let (head, data) = self.find(bucket, key, opts.version_id.as_deref())?;
        let size = head.meta.size;
        let range = match opts.range {
            None => 0..size,
            Some(r) if r.start >= size => return Err(BackendError::InvalidRange),
            Some(r) => r.start..r.end.min(size),
        };
        let lo = usize::try_from(range.start).map_err(|_| BackendError::InvalidRange)?;
        let hi = usize::try_from(range.end).map_err(|_| BackendError::InvalidRange)?;
        let chunk = if lo < hi { data.slice(lo..hi) } else { Bytes::new() };
        let body: ByteStream = Box::pin(futures::stream::iter([Ok(chunk)]));
        Ok(GetResult { head, range, body })
    }

    async fn put(&self, bucket: &str, key: &str, body: ByteStream, len: u64, opts: PutOptions) -> Result<PutResult> {
        self.head_bucket(bucket).await?;
        let data = collect(body, len).await?;
        self.store(bucket, key, data, opts)
    }

    async fn copy(
        &self,
        src_bucket: &str,
        src_key: &str,
        src_version: Option<&str>,
        bucket: &str,
        key: &str,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let (head, data) = self.find(src_bucket, src_key, src_version)?;
        if opts.source_if_match.as_ref().is_some_and(|want| *want != head.meta.etag) {
            return Err(BackendError::PreconditionFailed);
        }
        self.store(bucket, key, data, opts)
    }

    async fn delete(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<DeleteResult> {
        let mut st = self.lock();
        st.next_version += 1;
        let vid = format!("{:020}", st.next_version);
        let b = st.buckets.get_mut(bucket).ok_or(BackendError::NoSuchBucket)?;
        let versioning = b.versioning;
        let versions = b.objects.entry(key.to_owned()).or_default();
        let result = match (version_id, versioning) {
            (Some(want), _) => match versions.iter().position(|v| v.matches(want)) {
                Some(i) if versions.get(i).is_some_and(|v| v.lock.blocks_delete_at(OffsetDateTime::now_utc())) => {
                    return Err(BackendError::ObjectLocked(format!("version {want} of {key} is locked")));
                }
                Some(i) => {
                    let removed = versions.remove(i);
                    DeleteResult { version_id: Some(want.to_owned()), delete_marker: removed.stored.is_none() }
                }
                None => DeleteResult { version_id: Some(want.to_owned()), delete_marker: false },
            },
            (None, Versioning::Unversioned) => {
                versions.clear();
                DeleteResult::default()
            }
            (None, Versioning::Enabled | Versioning::Suspended) => {
                let marker_id = (versioning == Versioning::Enabled).then_some(vid);
                if marker_id.is_none() {
                    versions.retain(|v| v.version_id.is_some());
                }
                let now = OffsetDateTime::now_utc();
                let lock = LockState::default();
                versions.push(Version { version_id: marker_id.clone(), last_modified: now, stored: None, lock });
                DeleteResult { version_id: marker_id, delete_marker: true }
            }
        };
        if versions.is_empty() {
            b.objects.remove(key);
        }
        Ok(result)
    }

    async fn get_tags(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<BTreeMap<String, String>> {
        self.tags_of(bucket, key, version_id)
    }

    async fn put_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.replace_tags(bucket, key, version_id, tags)
    }

    async fn lock_state(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<LockState> {
        self.lock_of(bucket, key, version_id)
    }

    async fn list(&self, bucket: &str, opts: ListOptions) -> Result<ListPage> {
        let resume_after = opts.continuation.as_deref().map(listing::decode_token).transpose()?;
        let st = self.lock();
        let b = st.buckets.get(bucket).ok_or(BackendError::NoSuchBucket)?;
        let current = b.objects.iter().filter_map(|(k, vs)| {
            let head = vs.last()?.head(k)?;
            Some((k.clone(), head.meta))
        });
        let spec = PageSpec {
            prefix: &opts.prefix,
            delimiter: opts.delimiter.as_deref(),
            start_after: opts.start_after.as_deref(),
            resume_after,
            max_keys: opts.max_keys,
        };
        let page = listing::paginate(current, &spec);
        Ok(ListPage {
            objects: page.items.into_iter().map(|(_, m)| m).collect(),
            common_prefixes: page.common_prefixes,
            is_truncated: page.is_truncated,
            next_token: page.last.as_deref().map(listing::encode_token),
        })
    }

    /// Pages by key: a page never splits one key's versions (a simplification of S3, which may),
    /// so `version_id_marker` is ignored.
    async fn list_versions(&self, bucket: &str, opts: ListVersionsOptions) -> Result<VersionPage> {
        let st = self.lock();
        let b = st.buckets.get(bucket).ok_or(BackendError::NoSuchBucket)?;
        let spec = PageSpec {
            prefix: &opts.prefix,
            delimiter: opts.delimiter.as_deref(),
            start_after: None,
            resume_after: opts.key_marker.clone(),
            max_keys: opts.max_keys,
        };
        let page = listing::paginate(b.objects.iter().map(|(k, vs)| (k.clone(), vs)), &spec);
        let mut versions = Vec::new();
        for (key, vs) in page.items {
            for (i, v) in vs.iter().enumerate().rev() {
                let is_latest = i + 1 == vs.len();
                let meta = match v.head(&key) {
                    Some(h) => h.meta,
                    None => ObjectMeta {
                        key: key.clone(),
                        size: 0,
                        etag: String::new(),
                        last_modified: v.last_modified,
                        version_id: v.version_id.clone(),
                    },
                };
                versions.push(VersionEntry { meta, is_latest, is_delete_marker: v.stored.is_none() });
            }
        }
        Ok(VersionPage {
            versions,
            common_prefixes: page.common_prefixes,
            is_truncated: page.is_truncated,
            next_key_marker: page.last,
            next_version_id_marker: None,
        })
    }

    async fn create_upload(&self, bucket: &str, key: &str, opts: PutOptions) -> Result<String> {
        let id = rules::new_upload_id()?;
        let mut st = self.lock();
        let b = st.buckets.get_mut(bucket).ok_or(BackendError::NoSuchBucket)?;
        let opts = PutOptions { if_none_match_any: false, ..opts };
        let upload = Upload { key: key.to_owned(), initiated: OffsetDateTime::now_utc(), opts, parts: BTreeMap::new() };
        b.uploads.insert(id.clone(), upload);
        Ok(id)
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
        rules::check_part_number(part_number)?;
        rules::check_part_size(len)?;
        // Refuse an unknown upload before reading the body, as S3 does.
        Self::upload_mut(&mut self.lock(), bucket, key, upload_id)?;
        let data = collect(body, len).await?;
        self.store_part(bucket, key, upload_id, part_number, data)
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
        rules::check_part_number(part_number)?;
        Self::upload_mut(&mut self.lock(), bucket, key, upload_id)?;
        let (_, data) = self.find(src_bucket, src_key, None)?;
        let size = data.len() as u64;
        let data = match range {
            None => data,
            Some(r) if r.start >= r.end || r.end > size => return Err(BackendError::InvalidRange),
            Some(r) => {
                let lo = usize::try_from(r.start).map_err(|_| BackendError::InvalidRange)?;
                let hi = usize::try_from(r.end).map_err(|_| BackendError::InvalidRange)?;
                data.slice(lo..hi)
            }
        };
        rules::check_part_size(data.len() as u64)?;
        self.store_part(bucket, key, upload_id, part_number, data)
    }

    /// Validates, assembles and stores under one lock, so the upload disappears exactly when the
    /// object appears; a refused completion leaves the upload as it was.
    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        if_none_match_any: bool,
    ) -> Result<PutResult> {
        let mut st = self.lock();
        let upload = Self::upload_mut(&mut st, bucket, key, upload_id)?;
        let chosen = rules::validate_completion(parts, |n| upload.parts.get(&n).map(|p| &p.stored))?;
        let etag = rules::multipart_etag(chosen.iter().map(|(_, p)| &p.md5));
        let mut data = BytesMut::new();
        for (n, _) in &chosen {
            if let Some(p) = upload.parts.get(n) {
                data.extend_from_slice(&p.data);
            }
        }
        let opts = PutOptions { if_none_match_any, ..upload.opts.clone() };
        let result = store_locked(&mut st, bucket, key, data.freeze(), etag, opts)?;
        if let Some(b) = st.buckets.get_mut(bucket) {
            b.uploads.remove(upload_id);
        }
        Ok(result)
    }

    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let mut st = self.lock();
        Self::upload_mut(&mut st, bucket, key, upload_id)?;
        if let Some(b) = st.buckets.get_mut(bucket) {
            b.uploads.remove(upload_id);
        }
        Ok(())
    }

    /// `max_parts` 0 means S3's default of 1000.
    async fn list_parts(&self, bucket: &str, key: &str, upload_id: &str, opts: ListPartsOptions) -> Result<PartsPage> {
        let mut st = self.lock();
        let upload = Self::upload_mut(&mut st, bucket, key, upload_id)?;
        let parts = upload.parts.iter().map(|(n, p)| PartInfo {
            part_number: *n,
            size: p.stored.size,
            etag: hex::encode(p.stored.md5),
            last_modified: p.last_modified,
        });
        Ok(rules::page_parts(parts, opts.part_number_marker, opts.max_parts))
    }

    async fn list_uploads(&self, bucket: &str, opts: ListUploadsOptions) -> Result<UploadsPage> {
        let st = self.lock();
        let b = st.buckets.get(bucket).ok_or(BackendError::NoSuchBucket)?;
        let all = b
            .uploads
            .iter()
            .map(|(id, u)| UploadInfo { key: u.key.clone(), upload_id: id.clone(), initiated: u.initiated })
            .collect();
        Ok(rules::page_uploads(
            all,
            &opts.prefix,
            opts.key_marker.as_deref(),
            opts.upload_id_marker.as_deref(),
            opts.max_uploads,
        ))
    }
}

#[cfg(test)]
mod tests;
