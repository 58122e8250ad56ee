//! Storage backends: where ciphertext lives.
//!
//! One object-safe trait, [`Backend`], several implementations (`fs`, `s3`, and an in-memory test
//! double). Backends know nothing about encryption, tenants or HTTP: they store opaque bytes plus
//! string metadata and answer with typed [`BackendError`]s. Each backend converts its own SDK or
//! I/O errors in one place.

pub mod azure;
pub mod fs;
pub(crate) mod listing;
pub mod memory;
mod multipart_rules;
pub mod s3;

/// The shared backend conformance suite; public only so `tests/` can run it against real servers.
#[doc(hidden)]
pub mod conformance;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use time::OffsetDateTime;

/// A stream of body bytes. An `Err` item means the body is broken: a consumer must abort,
/// never treat what it has so far as a whole object.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// Errors every backend reports, whatever it is built on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The object (or version) does not exist.
    #[error("no such object")]
    NoSuchKey,
    /// The bucket does not exist.
    #[error("no such bucket")]
    NoSuchBucket,
    /// The version id names no version of this object.
    #[error("no such version")]
    NoSuchVersion,
    /// The bucket already exists (and is ours).
    #[error("bucket already exists")]
    BucketAlreadyExists,
    /// DeleteBucket on a bucket that still holds objects.
    #[error("bucket not empty")]
    BucketNotEmpty,
    /// A conditional write (`If-None-Match: *`) or condition failed.
    #[error("precondition failed")]
    PreconditionFailed,
    /// The requested byte range lies outside the stored object.
    #[error("invalid range")]
    InvalidRange,
    /// The backend refused our own credentials.
    #[error("backend denied access: {0}")]
    PermissionDenied(String),
    /// The backend asked us to slow down.
    #[error("backend throttled the request")]
    Throttled,
    /// The backend could not be reached or answered 5xx.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The operation is not supported by this backend.
    #[error("not supported by this backend: {0}")]
    NotSupported(&'static str),
    /// The version is protected by S3 Object Lock (a legal hold or an unexpired retention period),
    /// so deleting it was refused. Only a delete that names a version reports this (S3 answers
    /// `AccessDenied` there); the detail is the backend's wording, safe to log.
    #[error("object is locked: {0}")]
    ObjectLocked(String),
    /// The request was malformed from the backend's point of view (bad name, bad token).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The multipart upload id names no upload in progress for this key.
    #[error("no such multipart upload")]
    NoSuchUpload,
    /// A part named in a completion does not exist or its ETag does not match.
    #[error("invalid part: {0}")]
    InvalidPart(String),
    /// The parts of a completion are not in ascending part-number order.
    #[error("parts are not in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than the backend's minimum part size.
    #[error("a part other than the last is too small")]
    EntityTooSmall,
    /// Anything else, with the backend's name.
    #[error("{backend} backend error: {message}")]
    Other { backend: &'static str, message: String },
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// Standard HTTP entity headers stored with an object, alongside user metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// `Expires`, as the client sent it (an HTTP date string).
    pub expires: Option<String>,
}

/// What a backend knows about one stored object (or version), without its body.
#[derive(Debug, Clone)]
pub struct ObjectMeta {
    pub key: String,
    /// Stored (ciphertext) size in bytes.
    pub size: u64,
    /// The backend's ETag, without quotes.
    pub etag: String,
    pub last_modified: OffsetDateTime,
    /// `None` for backends or buckets without versioning.
    pub version_id: Option<String>,
}

/// Metadata and headers of a stored object, as HEAD returns them.
#[derive(Debug, Clone)]
pub struct ObjectHead {
    pub meta: ObjectMeta,
    /// User metadata, keys lower-case without the `x-amz-meta-` prefix.
    pub metadata: BTreeMap<String, String>,
    pub headers: ContentHeaders,
}

/// Options for [`Backend::get`].
#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    /// Stored byte range `[start, end)`; `None` for the whole object.
    pub range: Option<std::ops::Range<u64>>,
    pub version_id: Option<String>,
}

/// A body being read, with the object's metadata.
pub struct GetResult {
    pub head: ObjectHead,
    /// The stored byte range the body covers.
    pub range: std::ops::Range<u64>,
    pub body: ByteStream,
}

impl Debug for GetResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetResult").field("head", &self.head).field("range", &self.range).finish_non_exhaustive()
    }
}

/// Options for [`Backend::put`] and [`Backend::copy`].
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub metadata: BTreeMap<String, String>,
    pub headers: ContentHeaders,
    /// Conditional create: fail with `PreconditionFailed` if the key exists.
    pub if_none_match_any: bool,
    /// [`Backend::copy`] only: fail with `PreconditionFailed` unless the source's ETag (unquoted) is this
    /// one (S3's `x-amz-copy-source-if-match`), so a copy never pairs new bytes with old metadata.
    pub source_if_match: Option<String>,
    /// Object tags the written object gets, replacing any it had: `put` stores them with the object
    /// (atomically: the object never exists without them), `copy` replaces the source's (S3's
    /// `TaggingDirective: REPLACE`; empty means no tags), `create_upload` gives them to the completed
    /// object. S3 limits: at most 10 tags, keys ≤ 128 and values ≤ 256 characters of letters,
    /// digits, spaces and `+ - = . _ : / @`; backends pass them on unchecked.
    pub tags: BTreeMap<String, String>,
}

/// The S3 Object Lock state of one object version, as [`Backend::lock_state`] reports it.
/// `Default` is unlocked: no retention, no legal hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockState {
    /// Retention mode, `GOVERNANCE` or `COMPLIANCE` as the backend spells it; `None` without retention.
    pub mode: Option<String>,
    /// End of the retention period; the version cannot be deleted before it.
    pub retain_until: Option<OffsetDateTime>,
    /// A legal hold is on: the version cannot be deleted until it is released, whatever the retention.
    pub legal_hold: bool,
}

impl LockState {
    /// Whether this state forbids deleting the version at `now`: a legal hold, or a retention
    /// period that has not ended (a retention ending exactly at `now` has ended).
    pub fn blocks_delete_at(&self, now: OffsetDateTime) -> bool {
        self.legal_hold || self.retain_until.is_some_and(|until| until > now)
    }
}

/// Options for [`Backend::create_bucket_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateBucketOptions {
    /// The region to create the bucket in (S3's `LocationConstraint`); `None` for the backend's own
    /// region. Backends without regions (fs, memory) ignore it.
    pub region: Option<String>,
    /// Enable S3 Object Lock on the bucket (which S3 allows only at creation and which turns
    /// versioning on). Backends without object lock ignore it.
    pub object_lock: bool,
}

/// Outcome of a write.
#[derive(Debug, Clone)]
pub struct PutResult {
    /// The backend's ETag, without quotes.
    pub etag: String,
    pub version_id: Option<String>,
    pub last_modified: Option<OffsetDateTime>,
}

/// Outcome of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteResult {
    pub version_id: Option<String>,
    pub delete_marker: bool,
}

/// Options for [`Backend::list`].
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Keys strictly after this one (S3 v1 `marker`, v2 `start-after`).
    pub start_after: Option<String>,
    /// An opaque token from a previous page's `next_token`.
    pub continuation: Option<String>,
    /// 1..=1000.
    pub max_keys: usize,
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// Pass back as `continuation` to get the next page.
    pub next_token: Option<String>,
}

/// Options for [`Backend::list_versions`].
#[derive(Debug, Clone, Default)]
pub struct ListVersionsOptions {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: Option<String>,
    pub version_id_marker: Option<String>,
    pub max_keys: usize,
}

/// One entry of a version listing.
#[derive(Debug, Clone)]
pub struct VersionEntry {
    pub meta: ObjectMeta,
    pub is_latest: bool,
    pub is_delete_marker: bool,
}

/// One page of a version listing.
#[derive(Debug, Clone, Default)]
pub struct VersionPage {
    pub versions: Vec<VersionEntry>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
}

/// Bucket versioning state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// Never enabled.
    Unversioned,
    Enabled,
    Suspended,
}

/// A bucket as the backend lists it.
#[derive(Debug, Clone)]
pub struct BucketInfo {
    pub name: String,
    pub created: OffsetDateTime,
}

/// Smallest size S3 (and every backend here) accepts for a part other than the last: 5 MiB.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest part (and largest single server-side copy) S3 accepts: 5 GiB.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Highest part number S3 accepts.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// A multipart upload in progress, as the backend lists it.
#[derive(Debug, Clone)]
pub struct UploadInfo {
    pub key: String,
    /// The backend's upload id.
    pub upload_id: String,
    pub initiated: OffsetDateTime,
}

/// One uploaded part, as the backend lists it.
#[derive(Debug, Clone)]
pub struct PartInfo {
    pub part_number: u32,
    /// Stored size in bytes.
    pub size: u64,
    /// The backend's ETag of the part, without quotes.
    pub etag: String,
    pub last_modified: OffsetDateTime,
}

/// A part named by a completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    /// The part's backend ETag, without quotes.
    pub etag: String,
}

/// Options for [`Backend::list_parts`].
#[derive(Debug, Clone, Default)]
pub struct ListPartsOptions {
    /// Parts with numbers strictly greater than this one.
    pub part_number_marker: Option<u32>,
    /// 1..=1000.
    pub max_parts: usize,
}

/// One page of [`Backend::list_parts`], in ascending part-number order.
#[derive(Debug, Clone, Default)]
pub struct PartsPage {
    pub parts: Vec<PartInfo>,
    pub is_truncated: bool,
    pub next_part_number_marker: Option<u32>,
}

/// Options for [`Backend::list_uploads`].
#[derive(Debug, Clone, Default)]
pub struct ListUploadsOptions {
    pub prefix: String,
    /// Uploads of keys strictly after this one (or, with `upload_id_marker`, of this key after that id).
    pub key_marker: Option<String>,
    pub upload_id_marker: Option<String>,
    /// 1..=1000.
    pub max_uploads: usize,
}

/// One page of [`Backend::list_uploads`], ordered by key, then initiation.
#[derive(Debug, Clone, Default)]
pub struct UploadsPage {
    pub uploads: Vec<UploadInfo>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

/// Object storage, as blobseal needs it.
///
/// Contract for implementers:
/// - `put` is atomic: either the whole body is stored and visible, or nothing is. A body stream
///   that yields `Err` or ends before `len` bytes must leave no object behind.
/// - Names are passed through unchanged; validation is the front end's job.
/// - Errors use the most specific [`BackendError`] variant.
#[async_trait]
pub trait Backend: Send + Sync + Debug + 'static {
    /// A short name for logs and errors (`fs`, `s3`).
    fn kind(&self) -> &'static str;

    async fn list_buckets(&self) -> Result<Vec<BucketInfo>>;
    /// Creates a bucket in the backend's own region; `BucketAlreadyExists` if it exists.
    async fn create_bucket(&self, bucket: &str) -> Result<()>;
    /// Creates a bucket as `opts` says (region, object lock); `BucketAlreadyExists` if it exists.
    /// `create_bucket(b)` is `create_bucket_with(b, CreateBucketOptions::default())`.
    async fn create_bucket_with(&self, bucket: &str, opts: CreateBucketOptions) -> Result<()>;
    /// The bucket's region as the service itself reports it (S3: GetBucketLocation, where no
    /// constraint means `us-east-1` and the legacy `EU` means `eu-west-1`), for checking that data
    /// lives where config says. `Ok(None)` for backends with no region of their own (fs, memory:
    /// config declares theirs). `NoSuchBucket` if the bucket does not exist.
    async fn bucket_region(&self, bucket: &str) -> Result<Option<String>>;
    /// `Ok` if the bucket exists, `NoSuchBucket` otherwise.
    async fn head_bucket(&self, bucket: &str) -> Result<()>;
    async fn delete_bucket(&self, bucket: &str) -> Result<()>;
    async fn get_versioning(&self, bucket: &str) -> Result<Versioning>;
    /// `NotSupported` for backends without versions.
    async fn put_versioning(&self, bucket: &str, enabled: bool) -> Result<()>;

    async fn head(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<ObjectHead>;
    async fn get(&self, bucket: &str, key: &str, opts: GetOptions) -> Result<GetResult>;
    /// Stores `len` bytes from `body`. See the trait contract on atomicity.
    async fn put(&self, bucket: &str, key: &str, body: ByteStream, len: u64, opts: PutOptions) -> Result<PutResult>;
    /// Server-side copy of the stored bytes, replacing metadata and headers with `opts`.
    async fn copy(
        &self,
        srcbucket: &str,
        srckey: &str,
        src_version: Option<&str>,
        bucket: &str,
        key: &str,
        opts: PutOptions,
    ) -> Result<PutResult>;
    /// Deletes an object (in a versioned bucket without `version_id`: adds a delete marker) or,
    /// with `version_id`, that version for good. A missing key or version is not an error. A version
    /// under a legal hold or an unexpired retention is refused with `ObjectLocked`.
    async fn delete(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<DeleteResult>;
    /// The tags of the object (the latest version, or `version_id`). `NoSuchKey` if the object does
    /// not exist or its latest version is a delete marker, `NoSuchVersion` for an unknown version,
    /// `NotSupported` where the backend has no tagging.
    async fn get_tags(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<BTreeMap<String, String>>;
    /// Replaces the tags of the object (the latest version, or `version_id`) with `tags` (empty
    /// removes them all), leaving its bytes, metadata and ETag alone. Errors as for `get_tags`.
    async fn put_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<()>;
    /// The Object Lock state of the object (the latest version, or `version_id`); unlocked
    /// ([`LockState::default`]) where the backend has no object lock. Errors as for `head`.
    async fn lock_state(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<LockState>;
    async fn list(&self, bucket: &str, opts: ListOptions) -> Result<ListPage>;
    /// Backends without versions list each current object as its only version (`version_id: None`).
    async fn list_versions(&self, bucket: &str, opts: ListVersionsOptions) -> Result<VersionPage>;

    // ---- multipart -----------------------------------------------------------------------------
    // The S3 model: an upload is created with the object's metadata, parts (numbers 1..=10000, any
    // order, a re-upload replaces the part) are stored invisibly, and a completion names an ascending
    // subset of them, which becomes the object atomically (every named part but the last at least
    // MIN_PART_SIZE, else `EntityTooSmall`; unknown part or ETag mismatch `InvalidPart`; unsorted
    // `InvalidPartOrder`; unknown upload `NoSuchUpload`). Completion and abort discard every part.

    /// Starts an upload; `opts` (metadata, headers) become the object's when it completes.
    /// `opts.if_none_match_any` is ignored here (it is a completion option). Returns the upload id.
    async fn create_upload(&self, bucket: &str, key: &str, opts: PutOptions) -> Result<String>;
    /// Stores part `part_number` from `len` bytes of `body` (atomic, like `put`); returns its ETag.
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        len: u64,
    ) -> Result<String>;
    /// Stores part `part_number` as a server-side copy of stored bytes `range` (whole object if `None`)
    /// of `src_bucket/src_key`; returns its ETag. At most MAX_PART_SIZE bytes.
    #[allow(clippy::too_many_arguments)]
    async fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        srcbucket: &str,
        srckey: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<String>;
    /// Completes an upload from `parts` (see above). With `if_none_match_any`, fails with
    /// `PreconditionFailed` (leaving the upload in place) if the key already exists.
    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        if_none_match_any: bool,
    ) -> Result<PutResult>;
    /// Discards an upload and its parts. `NoSuchUpload` if it does not exist.
    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()>;
    /// The parts of an upload in progress.
    async fn list_parts(&self, bucket: &str, key: &str, upload_id: &str, opts: ListPartsOptions) -> Result<PartsPage>;
    /// Uploads in progress in a bucket. `NotSupported` where the backend cannot list them.
    async fn list_uploads(&self, bucket: &str, opts: ListUploadsOptions) -> Result<UploadsPage>;

    /// Removes the backend's own crash leftovers last changed before `older_than` (temp files of
    /// interrupted writes, half-removed upload or bucket directories); returns how many. Never touches
    /// objects or uploads a client can reach; the age bound keeps it off files a live write in another
    /// process may still be using. Backends with no such leftovers keep the default (nothing to do).
    async fn housekeep(&self, older_than: std::time::SystemTime) -> Result<u64> {
        let _ = older_than;
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::LockState;
    use time::macros::datetime;

    #[test]
    fn lock_state_blocks_deletes_while_held_or_retained() {
        let now = datetime!(2026-11-24 12:00 UTC);
        assert!(!LockState::default().blocks_delete_at(now), "unlocked");
        assert!(LockState { legal_hold: true, ..Default::default() }.blocks_delete_at(now), "legal hold");
        let until = |t| LockState { mode: Some("GOVERNANCE".into()), retain_until: Some(t), legal_hold: false };
        assert!(until(datetime!(2026-11-24 12:00:01 UTC)).blocks_delete_at(now), "retention not yet over");
        assert!(!until(now).blocks_delete_at(now), "retention ending now is over");
        assert!(!until(datetime!(2026-01-01 0:00 UTC)).blocks_delete_at(now), "retention over");
        let both = LockState { legal_hold: true, ..until(datetime!(2026-01-01 0:00 UTC)) };
        assert!(both.blocks_delete_at(now), "a hold outlasts the retention");
    }
}
