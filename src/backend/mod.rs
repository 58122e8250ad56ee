//! Storage backends: where ciphertext lives.
//!
//! One object-safe trait, [`Backend`], several implementations (`fs`, `s3`, and an in-memory test
//! double). Backends know nothing about encryption, tenants or HTTP: they store opaque bytes plus
//! string metadata and answer with typed [`BackendError`]s. Each backend converts its own SDK or
//! I/O errors in one place.

pub mod fs;
mod listing;
pub mod memory;
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
    /// The request was malformed from the backend's point of view (bad name, bad token).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
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
    async fn create_bucket(&self, bucket: &str) -> Result<()>;
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
        src_bucket: &str,
        src_key: &str,
        src_version: Option<&str>,
        bucket: &str,
        key: &str,
        opts: PutOptions,
    ) -> Result<PutResult>;
    async fn delete(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<DeleteResult>;
    async fn list(&self, bucket: &str, opts: ListOptions) -> Result<ListPage>;
    /// Backends without versions list each current object as its only version (`version_id: None`).
    async fn list_versions(&self, bucket: &str, opts: ListVersionsOptions) -> Result<VersionPage>;
}
