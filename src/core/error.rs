//! Errors of the core. No HTTP status codes or protocol error codes here: each front end maps
//! [`CoreError`] to its protocol in exactly one place.

use crate::backend::BackendError;
use crate::core::envelope::FormatError;
use crate::core::keys::KeyError;

/// Why a core operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The caller's credentials map to no tenant.
    #[error("unknown tenant")]
    UnknownTenant,
    /// The bucket does not belong to the caller's tenant (or does not exist for it).
    #[error("bucket {0} is not accessible to this tenant")]
    BucketNotOwned(String),
    /// The client asked for a retention its rule does not allow (the text names the rule).
    #[error("{0}")]
    RetentionRefused(String),
    /// The request would put (or read) the tenant's data where its residency rule forbids; the text
    /// names the rule and the place.
    #[error("{0}")]
    Residency(String),
    /// The bucket's backend is fenced off (its real region drifted from the config).
    #[error("backend {backend} is fenced off: {reason}")]
    BackendFenced { backend: String, reason: String },
    /// CreateBucket's LocationConstraint names an allowed region the bucket would not be placed in.
    #[error("{0}")]
    LocationConstraint(String),
    /// CreateBucket of a name another tenant holds (bucket names are one namespace, as in S3).
    #[error("bucket name {0} is taken")]
    BucketTaken(String),
    /// A storage backend failed (not found, unavailable, ...).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A key provider failed; the request fails closed.
    #[error(transparent)]
    Key(KeyError),
    /// The key that opens this object was destroyed (crypto-shredded or retired): it can never be
    /// read again. The text says which and when; it names no key material.
    #[error("{0}")]
    KeyDestroyed(String),
    /// A write was refused by key policy (the tenant or the object's data subject was shredded).
    #[error("{0}")]
    WriteRefused(String),
    /// The stored envelope or ciphertext is malformed or does not authenticate.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// The stored object was not written by blobseal (no envelope): never served as plaintext.
    #[error("object is not sealed by blobseal")]
    NotSealed,
    /// The requested plaintext range is outside the object.
    #[error("requested range not satisfiable (object size {size})")]
    RangeNotSatisfiable { size: u64 },
    /// The client asked for something invalid (reserved metadata name, bad length).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The client's user metadata is larger than S3 allows (its names and values, in UTF-8 bytes).
    #[error("your metadata headers exceed the maximum allowed metadata size ({size} bytes, at most {limit})")]
    MetadataTooLarge { size: usize, limit: usize },
    /// `?partNumber=` names no part of the object.
    #[error("the requested part number is not satisfiable")]
    InvalidPartNumber,
    /// A block list names a block that is not there (Azure's Put Block List), or is malformed.
    #[error("invalid block list: {0}")]
    InvalidBlockList(String),
    /// A staged block does not fit its blob (Azure: its id's length differs from the blob's other blocks).
    #[error("invalid block: {0}")]
    InvalidBlock(String),
    /// The upload id names no upload in progress for this bucket and key.
    #[error("no such upload")]
    NoSuchUpload,
    /// The operation is not supported here.
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    /// A state the code believes impossible; returned instead of panicking.
    #[error("internal error: {0}")]
    Unreachable(&'static str),
}

impl From<FormatError> for CoreError {
    fn from(e: FormatError) -> Self {
        CoreError::integrity(e.kind(), e.to_string())
    }
}

impl CoreError {
    /// An integrity failure of `kind` (a fixed name), counted in the metrics.
    pub fn integrity(kind: &'static str, detail: impl Into<String>) -> Self {
        crate::metrics::get().integrity_failure(kind);
        CoreError::Integrity(detail.into())
    }
}

impl From<KeyError> for CoreError {
    fn from(e: KeyError) -> Self {
        CoreError::Key(e)
    }
}

pub type CoreResult<T> = Result<T, CoreError>;
