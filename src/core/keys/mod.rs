//! Key providers: who holds the tenant root keys at the top of blobseal's key hierarchy.
//!
//! ```text
//!   root key (in the provider: keyring entry, KMS key, HSM object; versioned; never leaves it)
//!     └─ wraps lifetime keys (tenant key `tenant:N`, one key per data subject `subject:<hash>`),
//!        stored wrapped in the tenant's key store (an object store bucket: shared by every replica)
//!          └─ wrap each object's data key (AES-256-GCM, bound to the object's identity and header)
//! ```
//! A [`KeyProvider`] only manages root keys: create, wrap/unwrap a lifetime key, destroy. The
//! hierarchy itself (lifetime keys, cache, key store) is [`chain::Keychain`].

pub mod aead;
pub mod aws_kms;
pub mod cache;
pub mod chain;
pub mod local;
pub mod pkcs11;
pub mod store;
pub mod subject;
#[cfg(test)]
pub(crate) mod test_provider;

use std::fmt::Debug;

use async_trait::async_trait;
use zeroize::Zeroizing;

/// Length of a data key in bytes (AES-256).
pub const DATA_KEY_LEN: usize = 32;

/// A plaintext data key (or lifetime key). Zeroized on drop; never printed.
pub struct DataKey(Zeroizing<[u8; DATA_KEY_LEN]>);

impl DataKey {
    /// A fresh key from the system CSPRNG.
    pub fn generate() -> Result<Self, KeyError> {
        let mut k = Zeroizing::new([0u8; DATA_KEY_LEN]);
        aws_lc_rs::rand::fill(&mut k[..]).map_err(|_| KeyError::Random)?;
        Ok(Self(k))
    }

    pub fn from_bytes(bytes: [u8; DATA_KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A copy of `bytes` if it is exactly [`DATA_KEY_LEN`] long (a provider's unwrap output).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; DATA_KEY_LEN] = bytes.try_into().map_err(|_| KeyError::Unwrap)?;
        Ok(Self::from_bytes(arr))
    }

    pub fn as_bytes(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }
}

impl Clone for DataKey {
    fn clone(&self) -> Self {
        Self::from_bytes(*self.0)
    }
}

impl Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A data key wrapped under a lifetime key, with the id of the lifetime key (`tenant:3`,
/// `subject:<hex>`): what an object's envelope stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Which key wrapped it. ASCII, at most 255 bytes.
    pub kek_id: String,
    /// The wrapped blob. At most 65535 bytes.
    pub blob: Vec<u8>,
}

/// What a root-key wrap is bound to. Providers turn it into AES-GCM associated data ([`WrapContext::aad`])
/// or, for AWS KMS, into an encryption context with the same fields: a lifetime key wrapped for one
/// tenant (or under one id) does not unwrap for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrapContext<'a> {
    /// The tenant that owns the root key and the lifetime key.
    pub tenant: &'a str,
    /// The lifetime key's id (`tenant:3`, `subject:<hex>`).
    pub key_id: &'a str,
}

impl WrapContext<'_> {
    /// `"blobseal/v1/root-wrap" ‖ u32 BE len ‖ tenant ‖ u32 BE len ‖ key_id`.
    pub fn aad(&self) -> Vec<u8> {
        let mut out = b"blobseal/v1/root-wrap".to_vec();
        for part in [self.tenant, self.key_id] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// What destroying a root key did, for a shred receipt ("deleted from the keyring", "disabled;
/// deletion scheduled for 2026-12-01T00:00:00Z", ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destruction {
    pub root_id: String,
    pub detail: String,
}

/// Why a key operation failed. Every variant fails the request closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The provider has no such key (never had it, or it was destroyed).
    #[error("unknown key {0}")]
    UnknownKey(String),
    /// The key that opened this object was destroyed (crypto-shredded): it can never be read again.
    #[error("{0}")]
    Destroyed(String),
    /// Writes are refused: the tenant or data subject was shredded.
    #[error("{0}")]
    Refused(String),
    /// The wrapped key did not authenticate: wrong key, wrong identity, or tampered.
    #[error("wrapped key does not authenticate")]
    Unwrap,
    /// The provider (or the key store) could not be reached or answered an error.
    #[error("key provider unavailable: {0}")]
    Unavailable(String),
    #[error("random generator failed")]
    Random,
    /// The provider's own storage (keyring file, token) is unusable.
    #[error("keyring: {0}")]
    Keyring(String),
}

/// Manages tenant root keys. Implementations: [`local::LocalKeyring`], `aws_kms::AwsKms`,
/// `pkcs11::Pkcs11Provider`. A provider that cannot be reached answers [`KeyError::Unavailable`];
/// it never falls back to another key.
#[async_trait]
pub trait KeyProvider: Send + Sync + Debug + 'static {
    /// `local`, `aws-kms` or `pkcs11`, for logs and receipts.
    fn kind(&self) -> &'static str;
    /// Creates a new root key for `tenant` and returns its id: ASCII, at most 255 bytes, stable,
    /// naming the key in this provider (`local:acme:2`, a KMS key ARN, `pkcs11:acme:2`).
    async fn create_root(&self, tenant: &str) -> Result<String, KeyError>;
    /// Wraps `key` under the root key `root_id`, bound to `cx`.
    async fn wrap(&self, root_id: &str, key: &DataKey, cx: &WrapContext<'_>) -> Result<Vec<u8>, KeyError>;
    /// Unwraps a blob from [`KeyProvider::wrap`] with the same root and context. Another context, root
    /// or a tampered blob gives [`KeyError::Unwrap`]; a root that does not exist (any more)
    /// [`KeyError::UnknownKey`]; a root id not owned by `cx.tenant` is refused without being used.
    async fn unwrap(&self, root_id: &str, blob: &[u8], cx: &WrapContext<'_>) -> Result<DataKey, KeyError>;
    /// Destroys the root key `root_id` of `tenant` for good (or as far as the provider allows:
    /// KMS schedules deletion and disables the key at once; the detail says which).
    async fn destroy(&self, tenant: &str, root_id: &str) -> Result<Destruction, KeyError>;
}
