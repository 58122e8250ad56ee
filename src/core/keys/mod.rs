//! Key providers: who holds the tenant keys that wrap each object's data key.
//!
//! blobseal never stores a data key in the clear. Each object gets a fresh random data key
//! (DEK); a [`KeyProvider`] wraps it under the tenant's key-encryption key (KEK), binding the
//! wrap to `aad` (the object's identity and envelope header), and unwraps it on read.

pub mod local;

use std::fmt::Debug;

use async_trait::async_trait;
use zeroize::Zeroizing;

/// Length of a data key in bytes (AES-256).
pub const DATA_KEY_LEN: usize = 32;

/// A plaintext data key. Zeroized on drop; never printed.
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

    pub fn as_bytes(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }
}

impl Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A data key wrapped by a provider, with the id of the key that wrapped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Which KEK (and version) wrapped it, e.g. `local:default:1`. ASCII, at most 255 bytes.
    pub kek_id: String,
    /// The provider's opaque wrapped blob. At most 65535 bytes.
    pub blob: Vec<u8>,
}

/// Why a key operation failed. Every variant fails the request closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The tenant has no key with this id (or no key at all).
    #[error("unknown key {0}")]
    UnknownKey(String),
    /// The wrapped key did not authenticate: wrong key, wrong identity, or tampered.
    #[error("wrapped data key does not authenticate")]
    Unwrap,
    /// The provider could not be reached.
    #[error("key provider unavailable: {0}")]
    Unavailable(String),
    #[error("random generator failed")]
    Random,
    #[error("keyring: {0}")]
    Keyring(String),
}

/// Wraps and unwraps data keys under a tenant's key.
#[async_trait]
pub trait KeyProvider: Send + Sync + Debug + 'static {
    /// Wraps `dek` under `tenant`'s current key, bound to `aad`.
    async fn wrap(&self, tenant: &str, dek: &DataKey, aad: &[u8]) -> Result<WrappedKey, KeyError>;
    /// Unwraps a key wrapped by [`KeyProvider::wrap`] with the same `tenant` and `aad`;
    /// any other tenant, aad or a tampered blob gives [`KeyError::Unwrap`].
    async fn unwrap(&self, tenant: &str, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey, KeyError>;
}
