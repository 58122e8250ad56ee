//! `BlobService`: the only thing the front ends call.
//!
//! It places a tenant's bucket on a backend, seals every object body on write (fresh data key,
//! wrapped by the tenant's key and bound to the object's identity), and opens and authenticates it
//! on read, serving exactly the plaintext bytes asked for. Protocol-neutral: no HTTP, no XML.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use base64::Engine as _;
use futures::StreamExt as _;
use time::OffsetDateTime;

use crate::backend::{
    BackendError, ByteStream, ContentHeaders, GetOptions, ListOptions, ListVersionsOptions, ObjectHead,
};
use crate::core::envelope::{
    fetch_window, open_segments, plaintext_len, seal_stream, Algorithm, Envelope, Layout, ObjectIdentity, ObjectKeys,
    PartKeys, SegmentKeys, LAYOUT_META,
};
use crate::core::error::{CoreError, CoreResult};
use crate::core::governance::check_client_tags;
use crate::core::keys::chain::Keychain;
use crate::core::keys::{DataKey, KeyError, WrappedKey};
use crate::core::policy::residency::RegionTable;
use crate::core::stored::{
    backend_put_options, client_etag, digest_of, listed_size, stored_headers, stored_metadata, user_metadata,
    ENVELOPE_META, RESERVED_META_PREFIX,
};
use crate::core::tenant::{Placement, Tenant, TenantDirectory};
use crate::core::upload_token::RESERVED_KEY_PREFIX;

/// A plaintext byte range as a client asked for it (HTTP `Range: bytes=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// `bytes=first-last` (inclusive).
    FromTo(u64, u64),
    /// `bytes=first-`.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

/// The first key after every key of blobseal's reserved namespace (`.blobseal/` < every such key < `.blobseal0`).
const RESERVED_RANGE_END: &str = ".blobseal0";
/// Pages of hidden keys one listing skips at most.
const MAX_HIDDEN_PAGES: usize = 16;

/// Stored-metadata name of a copy's record (Azure's `x-ms-copy-*` properties).
pub const COPY_META: &str = "blobseal-copy";

/// A short digest (16 hex digits) of an encoded envelope: different for every sealing (the wrapped key
/// has a fresh nonce each time).
pub fn envelope_tag(encoded: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, encoded.as_bytes());
    hex::encode(d.as_ref().get(..8).unwrap_or_default())
}

/// Stored-metadata name of the plaintext's MD5 (base64) a writer declared.
pub const CONTENT_MD5_META: &str = "blobseal-content-md5";

/// S3's limit on user metadata: the UTF-8 bytes of every name (without `x-amz-meta-`) and value.
/// A backend that enforces S3's limit itself (AWS S3) also counts blobseal's own metadata (the envelope,
/// about 200-300 bytes, and stored entity headers), so there a client's budget is that much smaller.
pub const MAX_USER_METADATA_BYTES: usize = 2048;

/// An object as the client sees it: plaintext size, client ETag, its metadata.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Client-visible ETag without quotes (see `docs/FORMAT.md`, "ETag").
    pub etag: String,
    pub last_modified: OffsetDateTime,
    pub version_id: Option<String>,
    /// User metadata (blobseal's own entries removed).
    pub metadata: BTreeMap<String, String>,
    pub headers: ContentHeaders,
    /// Number of parts of a multipart object (`None` for single-stream objects).
    pub parts_count: Option<u32>,
    /// The authenticated deletion deadline (RFC 3339), if the object has one.
    pub delete_after: Option<String>,
    /// The MD5 of the whole plaintext (base64), if the writer declared one (see `PutRequest::content_md5`).
    pub content_md5: Option<String>,
    /// A short digest of the stored envelope: it changes on every write, including a metadata-only change
    /// that keeps the ciphertext (and so the backend's ETag). Azure's ETags change then; see `envelope_tag`.
    pub envelope_tag: Option<String>,
    /// How the object was made by a copy (`blobseal-copy`: id, time, source without its query), if it was.
    pub copy: Option<String>,
}

/// A read in progress: the object's info, the plaintext range served (`None` = whole), the body.
pub struct GetOutcome {
    pub info: ObjectInfo,
    pub range: Option<Range<u64>>,
    pub body: ByteStream,
}

/// What a client asks to store with an object besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct PutRequest {
    pub metadata: BTreeMap<String, String>,
    pub headers: ContentHeaders,
    /// `If-None-Match: *`.
    pub if_none_match_any: bool,
    /// The client's object tags (`x-amz-tagging`).
    pub tags: BTreeMap<String, String>,
    /// The client's requested retention in days (`x-blobseal-retention-days`), honoured where a rule allows.
    pub retention_days: Option<u32>,
    /// The MD5 of the whole plaintext (base64) as the client declared it, kept in authenticated metadata and
    /// returned on reads (Azure's `Content-MD5` of a blob). The front end verifies it where it can.
    pub content_md5: Option<String>,
}

/// Outcome of a write.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub etag: String,
    pub version_id: Option<String>,
    pub last_modified: Option<OffsetDateTime>,
    /// The deletion deadline stamped on the object (RFC 3339), if its retention is not `keep`.
    pub delete_after: Option<String>,
    /// See `ObjectInfo::envelope_tag` (`None` where a write does not know it).
    pub envelope_tag: Option<String>,
}

/// Where a copy reads from.
#[derive(Debug, Clone)]
pub struct CopySource<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: Option<&'a str>,
}

/// How a copy treats what its request does not restate.
#[derive(Debug, Clone)]
pub struct CopyMode {
    /// Recorded on the new object (`COPY_META`: what Azure reports as the blob's `x-ms-copy-*` properties).
    pub record: Option<String>,
    /// Without new tags the copy takes the source's (S3's default, Azure's `x-ms-copy-source-tag-option:
    /// COPY`); otherwise it has only the tags given (Azure's default, `REPLACE`).
    pub source_tags: bool,
}

impl Default for CopyMode {
    fn default() -> Self {
        Self { record: None, source_tags: true }
    }
}

/// Outcome of a copy.
#[derive(Debug, Clone)]
pub struct CopyOutcome {
    pub put: PutOutcome,
    pub source_version_id: Option<String>,
}

/// One listed object, sizes in plaintext.
#[derive(Debug, Clone)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: OffsetDateTime,
}

/// One page of a listing, in client terms.
#[derive(Debug, Clone, Default)]
pub struct ObjectPage {
    pub objects: Vec<ListedObject>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_token: Option<String>,
}

/// One listed version.
#[derive(Debug, Clone)]
pub struct ListedVersion {
    pub object: ListedObject,
    pub version_id: Option<String>,
    pub is_latest: bool,
    pub is_delete_marker: bool,
}

/// One page of a version listing.
#[derive(Debug, Clone, Default)]
pub struct VersionListing {
    pub versions: Vec<ListedVersion>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
}

/// An opened envelope: the decoded header, the segment keys (commitment verified) and the data key.
pub(crate) struct Opened {
    pub(crate) envelope: Envelope,
    pub(crate) segs: SegmentKeys,
    pub(crate) dek: DataKey,
}

impl Opened {
    fn parts_count(&self) -> Option<u32> {
        match &self.segs {
            SegmentKeys::Single { .. } => None,
            SegmentKeys::Parts { layout, .. } => Some(layout.part_count()),
        }
    }
}

/// Which part of an object a read asks for (`?partNumber=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartNumber(pub u32);

/// The object service. Cheap to share (`Arc`); holds no per-request or per-upload state.
#[derive(Debug)]
pub struct BlobService {
    directory: TenantDirectory,
    keys: Arc<Keychain>,
    /// Backend name → region (S3's own, or an fs or azure backend's declared one): GetBucketLocation, residency.
    regions: BTreeMap<String, String>,
    /// Backend name → the region a geo-redundant backend also copies everything to: residency only.
    copies: BTreeMap<String, String>,
    /// The residency region table.
    table: RegionTable,
    /// Backends fenced off (their real region drifted from config), with the reason.
    /// Shared with the services built by config reloads (the backends are the same ones).
    fences: Arc<std::sync::RwLock<BTreeMap<String, String>>>,
}

pub(crate) fn key_error(e: KeyError) -> CoreError {
    match e {
        // A wrapped key that does not open for this identity is tampered or moved ciphertext.
        KeyError::Unwrap => CoreError::integrity("key_unwrap", "data key does not authenticate for this object"),
        KeyError::Destroyed(why) => CoreError::KeyDestroyed(why),
        KeyError::Refused(why) => CoreError::WriteRefused(why),
        other => CoreError::Key(other),
    }
}

/// A data subject the rules cannot use (too long) is the client's error, not a key failure.
pub(crate) fn scope_error(e: KeyError) -> CoreError {
    match e {
        KeyError::Refused(why) => CoreError::InvalidRequest(why),
        other => key_error(other),
    }
}

/// A new single-stream object's keys and (unwrapped) envelope: a fresh data key and salt, for `len`
/// plaintext bytes and the stored metadata `stored`.
pub(crate) fn fresh_envelope(
    len: u64,
    stored: &BTreeMap<String, String>,
) -> CoreResult<(DataKey, ObjectKeys, Envelope)> {
    let dek = DataKey::generate().map_err(key_error)?;
    let mut salt = [0u8; 32];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| CoreError::Key(KeyError::Random))?;
    let keys = ObjectKeys::derive(&dek, &salt)?;
    let envelope = Envelope {
        alg: Algorithm::Gcm,
        plaintext_len: len,
        salt,
        commitment: keys.commitment(),
        meta_digest: digest_of(stored),
        kek_id: String::new(),
        wrapped_dek: Vec::new(),
    };
    Ok((dek, keys, envelope))
}

/// Resolves a client range against the plaintext size (RFC 9110 semantics, as S3 applies them).
pub fn resolve_range(range: RangeRequest, size: u64) -> CoreResult<Range<u64>> {
    let unsatisfiable = CoreError::RangeNotSatisfiable { size };
    match range {
        RangeRequest::FromTo(first, last) if first < size && first <= last => Ok(first..last.min(size - 1) + 1),
        RangeRequest::From(first) if first < size => Ok(first..size),
        RangeRequest::Suffix(n) if n > 0 && size > 0 => Ok(size.saturating_sub(n)..size),
        _ => Err(unsatisfiable),
    }
}

impl BlobService {
    pub fn new(directory: TenantDirectory, keys: Arc<Keychain>, regions: BTreeMap<String, String>) -> Self {
        Self {
            directory,
            keys,
            regions,
            copies: BTreeMap::new(),
            table: RegionTable::default(),
            fences: Default::default(),
        }
    }

    /// Backend name → the second region a geo-redundant backend (an Azure GRS account) keeps its data
    /// in. Every placement on such a backend must be allowed in both regions.
    pub fn with_copy_regions(mut self, copies: BTreeMap<String, String>) -> Self {
        self.copies = copies;
        self
    }

    /// Shares `other`'s fences: a service built by a config reload over the same backends keeps a drifted
    /// backend fenced off.
    pub fn with_fences_of(mut self, other: &BlobService) -> Self {
        self.fences = Arc::clone(&other.fences);
        self
    }

    /// Uses `table` (built in + config) for residency decisions.
    pub fn with_region_table(mut self, table: RegionTable) -> Self {
        self.table = table;
        self
    }

    pub fn region_table(&self) -> &RegionTable {
        &self.table
    }

    /// The configured region of a backend.
    pub fn backend_region(&self, backend: &str) -> Option<&str> {
        self.regions.get(backend).map(String::as_str)
    }

    /// Fences `backend` off: every request placed on it fails closed (503) until [`Self::unfence`].
    pub fn fence(&self, backend: &str, reason: &str) {
        let mut f = self.fences.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if f.insert(backend.to_owned(), reason.to_owned()).is_none() {
            tracing::error!(backend, %reason, "backend fenced off: its region drifted from the config");
        }
    }

    pub fn unfence(&self, backend: &str) {
        let mut f = self.fences.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if f.remove(backend).is_some() {
            tracing::warn!(backend, "backend no longer fenced: its region matches the config again");
        }
    }

    /// The fenced backends and why.
    pub fn fenced(&self) -> Vec<(String, String)> {
        let f = self.fences.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        f.iter().map(|(b, r)| (b.clone(), r.clone())).collect()
    }

    pub fn directory(&self) -> &TenantDirectory {
        &self.directory
    }

    /// The tenant an access key id authenticates as.
    pub fn tenant_for_access_key(&self, access_key_id: &str) -> CoreResult<Arc<Tenant>> {
        self.directory.tenant_for_access_key(access_key_id)
    }

    pub fn keys(&self) -> &Arc<Keychain> {
        &self.keys
    }

    /// Where the tenant's bucket lives, if the tenant may use it there: a fenced backend fails closed
    /// (503), a place the tenant's residency rule forbids is refused (403, logged as a residency refusal).
    pub(crate) fn place(&self, tenant: &Tenant, bucket: &str) -> CoreResult<Placement> {
        let p = self.directory.place(tenant, bucket)?;
        self.admit(tenant, bucket, &p)?;
        Ok(p)
    }

    fn admit(&self, tenant: &Tenant, bucket: &str, p: &Placement) -> CoreResult<()> {
        let fenced = {
            let f = self.fences.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            f.get(&p.backend_name).cloned()
        };
        if let Some(reason) = fenced {
            crate::metrics::get().fenced_requests.inc();
            return Err(CoreError::BackendFenced { backend: p.backend_name.clone(), reason });
        }
        let what = format!("backend {}", p.backend_name);
        let refuse = |v: crate::core::policy::residency::Violation| {
            crate::metrics::get().residency_refusals.inc();
            tracing::warn!(tenant = %tenant.name, bucket, violation = %v, "residency refusal");
            CoreError::Residency(v.to_string())
        };
        tenant.residency.check(&self.table, &what, self.backend_region(&p.backend_name)).map_err(refuse)?;
        if let Some(copy) = self.copies.get(&p.backend_name) {
            let copy_what = format!("{what}'s geo-redundant copy");
            tenant.residency.check(&self.table, &copy_what, Some(copy.as_str())).map_err(refuse)?;
        }
        Ok(())
    }

    // ---- envelopes -----------------------------------------------------------------------------

    /// Reads of keys in blobseal's reserved namespace find nothing: those are not the client's objects.
    fn check_visible_key(key: &str) -> CoreResult<()> {
        if key.starts_with(RESERVED_KEY_PREFIX) {
            return Err(BackendError::NoSuchKey.into());
        }
        Ok(())
    }

    /// Refuses keys in blobseal's reserved namespace (where uploads in progress live).
    pub(crate) fn check_client_key(key: &str) -> CoreResult<()> {
        if key.starts_with(RESERVED_KEY_PREFIX) {
            return Err(CoreError::InvalidRequest(format!(
                "object keys starting with {RESERVED_KEY_PREFIX} are reserved"
            )));
        }
        Ok(())
    }

    /// `check_client_metadata` for front ends that check before calling (Azure's container metadata).
    pub fn check_metadata_for(metadata: &BTreeMap<String, String>) -> CoreResult<()> {
        Self::check_client_metadata(metadata)
    }

    /// Refuses reserved metadata names and metadata above S3's limit, before any body byte is read.
    pub(crate) fn check_client_metadata(metadata: &BTreeMap<String, String>) -> CoreResult<()> {
        let size = metadata.iter().fold(0usize, |n, (k, v)| n.saturating_add(k.len()).saturating_add(v.len()));
        if size > MAX_USER_METADATA_BYTES {
            return Err(CoreError::MetadataTooLarge { size, limit: MAX_USER_METADATA_BYTES });
        }
        match metadata.keys().find(|k| k.to_ascii_lowercase().starts_with(RESERVED_META_PREFIX)) {
            Some(k) => Err(CoreError::InvalidRequest(format!(
                "metadata name x-amz-meta-{k} is reserved (prefix x-amz-meta-{RESERVED_META_PREFIX})"
            ))),
            None => Ok(()),
        }
    }

    /// Wraps `dek` for the object `id` into `envelope` (setting its key id and wrapped key) and
    /// returns the envelope encoded for backend metadata. `stored` is the object's stored metadata:
    /// it may name the data subject whose key wraps `dek`.
    pub(crate) async fn seal_envelope(
        &self,
        tenant: &Tenant,
        id: &ObjectIdentity<'_>,
        envelope: Envelope,
        dek: &DataKey,
        stored: &BTreeMap<String, String>,
    ) -> CoreResult<String> {
        self.seal_envelope_for(tenant, id, id.key, envelope, dek, stored).await
    }

    /// `seal_envelope` with the data subject taken from `subject_key` (a staged block names its blob's).
    pub(crate) async fn seal_envelope_for(
        &self,
        tenant: &Tenant,
        id: &ObjectIdentity<'_>,
        subject_key: &str,
        mut envelope: Envelope,
        dek: &DataKey,
        stored: &BTreeMap<String, String>,
    ) -> CoreResult<String> {
        let aad = envelope.wrap_aad(id);
        let scope = self.keys.scope_of(&tenant.name, subject_key, stored).map_err(scope_error)?;
        let period = crate::core::governance::stored_deadline(stored).ok().flatten().map(|d| d.date());
        let wrapped = self.keys.wrap(&tenant.name, &scope, period, dek, &aad).await.map_err(key_error)?;
        envelope.kek_id = wrapped.kek_id;
        envelope.wrapped_dek = wrapped.blob;
        let bytes = envelope.encode()?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// Decodes and authenticates the envelope of a stored object, checking it belongs to `id`,
    /// that its metadata and size are the ones sealed, and that the data key commits.
    pub(crate) async fn open_envelope(
        &self,
        tenant: &Tenant,
        id: &ObjectIdentity<'_>,
        head: &ObjectHead,
    ) -> CoreResult<Opened> {
        let (envelope, layout) = decode_envelope(head)?;
        if digest_of(&head.metadata) != envelope.meta_digest {
            return Err(CoreError::integrity("envelope", "object metadata does not match its envelope"));
        }
        let aad = envelope.wrap_aad(id);
        let wrapped = WrappedKey { kek_id: envelope.kek_id.clone(), blob: envelope.wrapped_dek.clone() };
        let dek = self.keys.unwrap(&tenant.name, &wrapped, &aad).await.map_err(key_error)?;
        let segs = match layout {
            None => {
                let keys = ObjectKeys::derive(&dek, &envelope.salt)?;
                keys.verify_commitment(&envelope.commitment)?;
                SegmentKeys::Single { keys, plain_len: envelope.plaintext_len }
            }
            Some(layout) => {
                let keys = PartKeys::derive(&dek, &envelope.salt)?;
                keys.verify_commitment(&envelope.commitment)?;
                SegmentKeys::Parts { keys, layout: Arc::new(layout) }
            }
        };
        if segs.stored_len() != head.meta.size {
            return Err(CoreError::integrity("envelope", "stored size does not match the envelope"));
        }
        Ok(Opened { envelope, segs, dek })
    }

    pub(crate) fn info_of(key: &str, head: &ObjectHead, opened: &Opened) -> ObjectInfo {
        let plaintext = opened.envelope.plaintext_len;
        ObjectInfo {
            key: key.to_owned(),
            size: plaintext,
            etag: client_etag(&head.meta.etag),
            last_modified: head.meta.last_modified,
            version_id: head.meta.version_id.clone(),
            metadata: user_metadata(&head.metadata),
            headers: stored_headers(&head.metadata),
            parts_count: opened.parts_count(),
            delete_after: head.metadata.get(crate::core::governance::DELETE_AFTER).cloned(),
            content_md5: head.metadata.get(CONTENT_MD5_META).cloned(),
            envelope_tag: head.metadata.get(ENVELOPE_META).map(|e| envelope_tag(e)),
            copy: head.metadata.get(COPY_META).cloned(),
        }
    }

    // ---- objects -------------------------------------------------------------------------------

    /// Seals `body` (exactly `len` plaintext bytes) and stores it. The object becomes visible only
    /// if the whole body arrived and every upstream check (checksums) passed.
    pub async fn put_object(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        body: ByteStream,
        len: u64,
        req: PutRequest,
    ) -> CoreResult<PutOutcome> {
        Self::check_client_key(key)?;
        self.put_with(tenant, bucket, key, body, len, req, BTreeMap::new()).await
    }

    /// `put_object` for a key already checked, with `extra` entries of blobseal's own added to the
    /// stored (authenticated) metadata.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn put_with(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        body: ByteStream,
        len: u64,
        req: PutRequest,
        extra: BTreeMap<String, String>,
    ) -> CoreResult<PutOutcome> {
        Self::check_client_metadata(&req.metadata)?;
        check_client_tags(&req.tags)?;
        let p = self.place(tenant, bucket)?;
        let id = ObjectIdentity { tenant: &tenant.name, bucket, key };
        let mut stored = stored_metadata(req.metadata, &req.headers);
        stored.extend(extra);
        if let Some(md5) = req.content_md5 {
            stored.insert(CONTENT_MD5_META.to_owned(), md5);
        }
        let mut tags = req.tags;
        let stamp = self.stamp_retention(tenant, bucket, key, &mut stored, &mut tags, req.retention_days)?;
        let (dek, keys, envelope) = fresh_envelope(len, &stored)?;
        let encoded = self.seal_envelope(tenant, &id, envelope, &dek, &stored).await?;
        let tag = crate::core::service::envelope_tag(&encoded);
        let opts = backend_put_options(stored, encoded, req.if_none_match_any, tags);
        let sealed = seal_stream(keys, len, body);
        let res = p.backend.put(&p.bucket, key, sealed, crate::core::envelope::ciphertext_len(len), opts).await?;
        self.copy_to_backups(tenant, bucket, key, &p, res.version_id.as_deref()).await;
        Ok(PutOutcome {
            etag: client_etag(&res.etag),
            version_id: res.version_id,
            last_modified: res.last_modified,
            delete_after: stamp.text(),
            envelope_tag: Some(tag),
        })
    }

    /// Metadata of an object, authenticated (the data key is unwrapped to prove it).
    pub async fn head_object(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> CoreResult<ObjectInfo> {
        Self::check_visible_key(key)?;
        let p = self.place(tenant, bucket)?;
        let head = p.backend.head(&p.bucket, key, version_id).await?;
        let id = ObjectIdentity { tenant: &tenant.name, bucket, key };
        let opened = self.open_envelope(tenant, &id, &head).await?;
        Ok(Self::info_of(key, &head, &opened))
    }

    /// HEAD of one part (`?partNumber=`): the object's info with `size` the part's size, and the
    /// part's plaintext range.
    pub async fn head_part(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        part: PartNumber,
    ) -> CoreResult<(ObjectInfo, Range<u64>)> {
        Self::check_visible_key(key)?;
        let p = self.place(tenant, bucket)?;
        let head = p.backend.head(&p.bucket, key, version_id).await?;
        let id = ObjectIdentity { tenant: &tenant.name, bucket, key };
        let opened = self.open_envelope(tenant, &id, &head).await?;
        let range = part_range(&opened, part)?;
        Ok((Self::info_of(key, &head, &opened), range))
    }

    /// Reads an object, a plaintext range of it, or one of its parts. At most two backend requests:
    /// a `FromTo`/`From` range of a single-stream object or a multipart object whose parts sit on the
    /// segment grid costs one (the window is computed before the object is known); a suffix range, a
    /// part, or a multipart object off the grid costs two (metadata first, then exactly the segments
    /// needed). Every released byte is authenticated; a failure found mid-stream ends the body with an
    /// error.
    pub async fn get_object(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        range: Option<RangeRequest>,
        part: Option<PartNumber>,
    ) -> CoreResult<GetOutcome> {
        Self::check_visible_key(key)?;
        self.read_sealed(tenant, bucket, key, version_id, range, part).await
    }

    /// `get_object` without the reserved-key check: blobseal's own sealed objects (staged blocks) read
    /// through here.
    pub(crate) async fn read_sealed(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        range: Option<RangeRequest>,
        part: Option<PartNumber>,
    ) -> CoreResult<GetOutcome> {
        let p = self.place(tenant, bucket)?;
        let id = ObjectIdentity { tenant: &tenant.name, bucket, key };
        let version = version_id.map(str::to_owned);
        let get = |range: Option<Range<u64>>| {
            let opts = GetOptions { range, version_id: version.clone() };
            let backend = p.backend.clone();
            let bucket = p.bucket.clone();
            async move { backend.get(&bucket, key, opts).await }
        };
        // `first > last` is a range HTTP says to ignore (serve the whole object).
        let range = range.filter(|r| !matches!(r, RangeRequest::FromTo(first, last) if first > last));
        let (got, opened, plain, plan) = if part.is_some() || matches!(range, Some(RangeRequest::Suffix(_))) {
            // The range depends on the object's size or layout: metadata first.
            let head = p.backend.head(&p.bucket, key, version_id).await?;
            let opened = self.open_envelope(tenant, &id, &head).await?;
            let size = opened.envelope.plaintext_len;
            let plain = match (part, range) {
                (Some(n), _) => part_range(&opened, n)?,
                (None, Some(r)) => resolve_range(r, size)?,
                (None, None) => 0..size,
            };
            let plan = opened.segs.plan(plain.clone())?;
            let got = get(Some(plan.cipher.clone())).await?;
            if got.head.meta.etag != head.meta.etag {
                return Err(
                    BackendError::Unavailable("the object changed while it was being read; retry".into()).into()
                );
            }
            (got, opened, Some(plain), plan)
        } else {
            let window = match range {
                Some(RangeRequest::FromTo(first, last)) => Some(fetch_window(first, Some(last))),
                Some(RangeRequest::From(first)) => Some(fetch_window(first, None)),
                _ => None,
            };
            let got = match get(window.clone()).await {
                Ok(got) => got,
                Err(BackendError::InvalidRange) => {
                    // The window starts past the stored bytes, so the range starts past the plaintext.
                    let info = self.head_object(tenant, bucket, key, version_id).await?;
                    return Err(CoreError::RangeNotSatisfiable { size: info.size });
                }
                Err(e) => return Err(e.into()),
            };
            let opened = self.open_envelope(tenant, &id, &got.head).await?;
            let size = opened.envelope.plaintext_len;
            let plain = range.map(|r| resolve_range(r, size)).transpose()?;
            let plan = opened.segs.plan(plain.clone().unwrap_or(0..size))?;
            let fits = plan.cipher.start == got.range.start && plan.cipher.end <= got.range.end;
            match (fits, &opened.segs) {
                (true, _) => (got, opened, plain, plan),
                // A multipart object off the segment grid: the guessed window missed; fetch the right one.
                (false, SegmentKeys::Parts { .. }) => {
                    let again = get(Some(plan.cipher.clone())).await?;
                    if again.head.meta.etag != got.head.meta.etag {
                        return Err(BackendError::Unavailable(
                            "the object changed while it was being read; retry".into(),
                        )
                        .into());
                    }
                    (again, opened, plain, plan)
                }
                (false, SegmentKeys::Single { .. }) => {
                    return Err(CoreError::integrity("backend_range", "backend returned a different byte range"))
                }
            }
        };
        if plan.cipher.start != got.range.start || plan.cipher.end > got.range.end {
            return Err(CoreError::integrity("backend_range", "backend returned a different byte range"));
        }
        let info = Self::info_of(key, &got.head, &opened);
        // The window may extend past the segments we need: stop reading after them.
        let needed = plan.cipher.end - plan.cipher.start;
        let body = take_bytes(got.body, needed);
        let object = format!("{}/{}/{}", tenant.name, bucket, self.keys().loggable_key(&tenant.name, key));
        let mut body = open_segments(opened.segs, plan, body);
        // Open the first segment before answering, so the commonest tampering (a wrong or moved first
        // segment) is a clean error status instead of a cut-off 200.
        let first = match body.next().await {
            // Already counted in the metrics where the stream failed (envelope::open).
            Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(CoreError::Integrity(format!("first segment: {e}")))
            }
            first => first,
        };
        let body = futures::stream::iter(first)
            .chain(body)
            .map(move |item| {
                if let Err(e) = &item {
                    // Headers are out: the client only sees the connection cut. Say why here.
                    tracing::error!(%object, error = %e, "object failed authentication mid-stream; aborting the response");
                }
                item
            })
            .boxed();
        Ok(GetOutcome { info, range: plain, body })
    }

    /// Deletes an object (or one version). Deleting a missing key succeeds, as in S3.
    pub async fn delete_object(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> CoreResult<crate::backend::DeleteResult> {
        Self::check_client_key(key)?;
        let p = self.place(tenant, bucket)?;
        Ok(p.backend.delete(&p.bucket, key, version_id).await?)
    }

    /// Copies an object within the tenant. The ciphertext is copied as is (server-side when both
    /// buckets share a backend); only the envelope changes: the data key is re-wrapped for the new
    /// identity and the new metadata. `replace` = new metadata and headers (REPLACE), `None` = COPY.
    pub async fn copy_object(
        &self,
        tenant: &Tenant,
        src: CopySource<'_>,
        bucket: &str,
        key: &str,
        replace: Option<PutRequest>,
        if_none_match_any: bool,
    ) -> CoreResult<CopyOutcome> {
        // Cheap refusals first, before any backend call: a hidden source is absent, as on GET.
        Self::check_visible_key(src.key)?;
        Self::check_client_key(key)?;
        self.copy_with(tenant, src, bucket, key, replace, if_none_match_any, CopyMode::default()).await
    }

    /// `copy_object` with a [`CopyMode`] (Azure's Copy Blob: a copy record, its own tag rule).
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_object_with_mode(
        &self,
        tenant: &Tenant,
        src: CopySource<'_>,
        bucket: &str,
        key: &str,
        replace: Option<PutRequest>,
        if_none_match_any: bool,
        mode: CopyMode,
    ) -> CoreResult<CopyOutcome> {
        Self::check_visible_key(src.key)?;
        Self::check_client_key(key)?;
        self.copy_with(tenant, src, bucket, key, replace, if_none_match_any, mode).await
    }

    /// `copy_object` for keys already checked (a staged Put Blob is copied from blobseal's own namespace).
    /// With `replace`, its tags (when any) and MD5 replace the source's too.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn copy_with(
        &self,
        tenant: &Tenant,
        src: CopySource<'_>,
        bucket: &str,
        key: &str,
        replace: Option<PutRequest>,
        if_none_match_any: bool,
        mode: CopyMode,
    ) -> CoreResult<CopyOutcome> {
        if let Some(r) = &replace {
            Self::check_client_metadata(&r.metadata)?;
            check_client_tags(&r.tags)?;
        }
        let sp = self.place(tenant, src.bucket)?;
        let dp = self.place(tenant, bucket)?;
        let head = sp.backend.head(&sp.bucket, src.key, src.version_id).await?;
        let src_id = ObjectIdentity { tenant: &tenant.name, bucket: src.bucket, key: src.key };
        let opened = self.open_envelope(tenant, &src_id, &head).await?;
        let (metadata, headers, retention_days, new_tags, new_md5) = match replace {
            Some(r) => (r.metadata, r.headers, r.retention_days, r.tags, r.content_md5),
            None => (user_metadata(&head.metadata), stored_headers(&head.metadata), None, BTreeMap::new(), None),
        };
        let mut stored = stored_metadata(metadata, &headers);
        // A multipart object's layout travels with its ciphertext.
        if let Some(layout) = head.metadata.get(LAYOUT_META) {
            stored.insert(LAYOUT_META.to_owned(), layout.clone());
        }
        // So does the plaintext's MD5 (same bytes). A block blob's committed block list does not: the
        // copy is one new blob, as Azure's Copy Blob makes it.
        if let Some(v) = new_md5.as_ref().or(head.metadata.get(CONTENT_MD5_META)) {
            stored.insert(CONTENT_MD5_META.to_owned(), v.clone());
        }
        if let Some(r) = mode.record {
            stored.insert(COPY_META.to_owned(), r);
        }
        // A copy is a new write: its tags are the source's (S3's default) unless given or the mode says
        // otherwise, its deadline its own.
        let mut tags = if new_tags.is_empty() && mode.source_tags {
            match sp.backend.get_tags(&sp.bucket, src.key, src.version_id).await {
                Ok(t) => t,
                Err(BackendError::NotSupported(_)) => BTreeMap::new(),
                Err(e) => return Err(e.into()),
            }
        } else {
            new_tags
        };
        let stamp = self.stamp_retention(tenant, bucket, key, &mut stored, &mut tags, retention_days)?;
        let envelope = Envelope {
            meta_digest: digest_of(&stored),
            kek_id: String::new(),
            wrapped_dek: Vec::new(),
            ..opened.envelope
        };
        let dst_id = ObjectIdentity { tenant: &tenant.name, bucket, key };
        let encoded = self.seal_envelope(tenant, &dst_id, envelope, &opened.dek, &stored).await?;
        let tag = crate::core::service::envelope_tag(&encoded);
        let opts = backend_put_options(stored, encoded, if_none_match_any, tags);
        let res = if sp.backend_name == dp.backend_name {
            dp.backend.copy(&sp.bucket, src.key, src.version_id, &dp.bucket, key, opts).await?
        } else {
            let got = sp
                .backend
                .get(&sp.bucket, src.key, GetOptions { range: None, version_id: src.version_id.map(str::to_owned) })
                .await?;
            dp.backend.put(&dp.bucket, key, got.body, head.meta.size, opts).await?
        };
        self.copy_to_backups(tenant, bucket, key, &dp, res.version_id.as_deref()).await;
        Ok(CopyOutcome {
            put: PutOutcome {
                etag: client_etag(&res.etag),
                version_id: res.version_id,
                last_modified: res.last_modified,
                delete_after: stamp.text(),
                envelope_tag: Some(tag),
            },
            source_version_id: head.meta.version_id,
        })
    }

    /// Lists objects with plaintext sizes computed from stored sizes (no request per object).
    pub async fn list_objects(&self, tenant: &Tenant, bucket: &str, opts: ListOptions) -> CoreResult<ObjectPage> {
        let p = self.place(tenant, bucket)?;
        let mut opts = opts;
        // blobseal's own keys (`.blobseal/…`: Azure block tables, uploads in progress) are hidden, but they take
        // places in a backend page: a page of nothing but hidden keys would reach the client as an empty,
        // truncated page without a marker (S3 v1 clients stop there). Such pages are skipped, jumping past the
        // reserved range when the page ended inside it.
        let mut page = p.backend.list(&p.bucket, opts.clone()).await?;
        for _ in 0..MAX_HIDDEN_PAGES {
            let all_hidden = page.objects.iter().all(|o| o.key.starts_with(RESERVED_KEY_PREFIX))
                && page.common_prefixes.iter().all(|c| c.starts_with(RESERVED_KEY_PREFIX));
            if !(all_hidden && page.is_truncated) {
                break;
            }
            let ended_inside = page.objects.last().is_some_and(|o| o.key.starts_with(RESERVED_KEY_PREFIX));
            if ended_inside && opts.start_after.as_deref().is_none_or(|a| a < RESERVED_RANGE_END) {
                opts.start_after = Some(RESERVED_RANGE_END.to_owned());
                opts.continuation = None;
            } else {
                opts.continuation = page.next_token.clone();
            }
            page = p.backend.list(&p.bucket, opts.clone()).await?;
        }
        let visible = page.objects.into_iter().filter(|o| !o.key.starts_with(RESERVED_KEY_PREFIX));
        let objects = futures::stream::iter(visible)
            .map(|o| {
                let p = &p;
                async move {
                    let size = match plaintext_len(o.size) {
                        Some(size) => size,
                        None => exact_size(p, &o.key, None).await.unwrap_or_else(|| listed_size(o.size)),
                    };
                    ListedObject { size, etag: client_etag(&o.etag), key: o.key, last_modified: o.last_modified }
                }
            })
            .buffered(8)
            .collect()
            .await;
        Ok(ObjectPage {
            objects,
            common_prefixes: hide_reserved(page.common_prefixes),
            is_truncated: page.is_truncated,
            next_token: page.next_token,
        })
    }

    /// Lists versions; backends without versions list each current object as its only version.
    pub async fn list_versions(
        &self,
        tenant: &Tenant,
        bucket: &str,
        opts: ListVersionsOptions,
    ) -> CoreResult<VersionListing> {
        let p = self.place(tenant, bucket)?;
        let page = p.backend.list_versions(&p.bucket, opts).await?;
        let visible = page.versions.into_iter().filter(|v| !v.meta.key.starts_with(RESERVED_KEY_PREFIX));
        let versions = futures::stream::iter(visible)
            .map(|v| {
                let p = &p;
                async move {
                    let size = match (v.is_delete_marker, plaintext_len(v.meta.size)) {
                        (true, _) => 0,
                        (false, Some(size)) => size,
                        (false, None) => exact_size(p, &v.meta.key, v.meta.version_id.as_deref())
                            .await
                            .unwrap_or_else(|| listed_size(v.meta.size)),
                    };
                    ListedVersion {
                        object: ListedObject {
                            size,
                            etag: client_etag(&v.meta.etag),
                            key: v.meta.key,
                            last_modified: v.meta.last_modified,
                        },
                        version_id: v.meta.version_id,
                        is_latest: v.is_latest,
                        is_delete_marker: v.is_delete_marker,
                    }
                }
            })
            .buffered(8)
            .collect()
            .await;
        Ok(VersionListing {
            versions,
            common_prefixes: hide_reserved(page.common_prefixes),
            is_truncated: page.is_truncated,
            next_key_marker: page.next_key_marker,
            next_version_id_marker: page.next_version_id_marker,
        })
    }
}

/// Decodes the envelope (and layout, for multipart objects) of a stored object, checking they agree;
/// authenticates nothing (the caller unwraps the data key for that).
pub(crate) fn decode_envelope(head: &ObjectHead) -> CoreResult<(Envelope, Option<Layout>)> {
    let encoded = head.metadata.get(ENVELOPE_META).ok_or(CoreError::NotSealed)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| CoreError::integrity("envelope", "envelope is not valid base64"))?;
    let envelope = Envelope::decode(&bytes)?;
    let layout = match (envelope.alg, head.metadata.get(LAYOUT_META)) {
        (Algorithm::Gcm, None) => None,
        (Algorithm::PartsSiv, Some(text)) => {
            let layout = Layout::decode(text)?;
            if layout.plain_len() != envelope.plaintext_len {
                return Err(CoreError::integrity("envelope", "layout does not match the envelope"));
            }
            Some(layout)
        }
        _ => return Err(CoreError::integrity("envelope", "envelope algorithm and layout disagree")),
    };
    Ok((envelope, layout))
}

/// The plaintext range of part `n` (1-based): a multipart object's n-th part, or the whole of a
/// single-stream object for part 1.
fn part_range(opened: &Opened, PartNumber(n): PartNumber) -> CoreResult<Range<u64>> {
    let range = match &opened.segs {
        SegmentKeys::Single { plain_len, .. } => (n == 1).then_some(0..*plain_len),
        SegmentKeys::Parts { layout, .. } => layout.part_range(n),
    };
    range.ok_or(CoreError::InvalidPartNumber)
}

/// The exact plaintext size of an object whose stored size does not tell it (a multipart object off
/// the segment grid): one HEAD, the envelope decoded (not unwrapped: a listing reports, it serves no
/// bytes). `None` if that fails.
async fn exact_size(p: &Placement, key: &str, version_id: Option<&str>) -> Option<u64> {
    let head = p.backend.head(&p.bucket, key, version_id).await.ok()?;
    decode_envelope(&head).ok().map(|(envelope, _)| envelope.plaintext_len)
}

fn hide_reserved(prefixes: Vec<String>) -> Vec<String> {
    prefixes.into_iter().filter(|p| !p.starts_with(RESERVED_KEY_PREFIX)).collect()
}

/// Passes through the first `limit` bytes of `body` and then ends it (dropping the rest unread).
fn take_bytes(body: ByteStream, limit: u64) -> ByteStream {
    futures::stream::unfold((body, limit), |(mut body, left)| async move {
        if left == 0 {
            return None;
        }
        match body.next().await {
            Some(Ok(mut chunk)) => {
                let n = chunk.len() as u64;
                if n > left {
                    // `left < n <= usize::MAX`, so the cast cannot truncate.
                    chunk.truncate(left as usize);
                }
                let left = left.saturating_sub(n);
                Some((Ok(chunk), (body, left)))
            }
            Some(Err(e)) => Some((Err(e), (body, 0))),
            None => None,
        }
    })
    .boxed()
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
