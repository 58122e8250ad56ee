//! The key store: where a tenant's lifetime keys live, wrapped under its root key, as small JSON
//! objects in a bucket of an ordinary backend.
//!
//! Why a backend: lifetime keys are shared state. Every replica must see the same keys, and a pod's
//! memory or disk would lose or fork them (Principle 2); the backend is already durable and shared.
//! Every key here is wrapped under a root key that never leaves the provider, so the store's
//! contents (and any backup or old version of them) are useless once that root key is destroyed.
//!
//! Objects (`<t>` is the tenant name):
//! - `keys/<t>/roots/<gen, 8 digits>`: [`RootRecord`], which provider key is root generation `gen`;
//! - `keys/<t>/lifetime/<id>`: [`LifetimeRecord`], a lifetime key wrapped under a root;
//! - `keys/<t>/shredded/<subject hash>` and `keys/<t>/shredded-tenant`: [`Tombstone`]s;
//! - `keys/<t>/rewrap/<bucket>`: a `keys rewrap` checkpoint;
//! - `receipts/<t>/<seq, 8 digits>.json`: shred receipts (see `ops::receipt`).

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::KeyError;
use crate::backend::{Backend, BackendError, ByteStream, GetOptions, ListOptions, PutOptions};

/// Largest record read back (a key record is < 1 KiB; a checkpoint or receipt a few KiB).
const MAX_RECORD: usize = 1 << 20;

/// Which provider key is a tenant's root generation `gen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootRecord {
    pub gen: u32,
    /// The provider's key id (`local:acme:2`, a KMS key ARN, `pkcs11:acme:2`).
    pub root_id: String,
    /// `local`, `aws-kms`, `pkcs11`.
    pub provider: String,
    /// RFC 3339.
    pub created: String,
    /// Set when the root was destroyed (RFC 3339), with what the provider did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroyed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroy_detail: Option<String>,
}

/// A lifetime key wrapped under root generation `root_gen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifetimeRecord {
    /// `tenant:<n>` or `subject:<32 hex>`.
    pub id: String,
    pub root_gen: u32,
    pub root_id: String,
    /// Base64 of the provider's wrapped blob (bound to tenant and `id`).
    pub wrapped: String,
    pub created: String,
}

/// Marks a shredded data subject or tenant: writes for it are refused, reads say why they fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tombstone {
    pub shredded_at: String,
    /// The receipt that recorded it.
    pub receipt: String,
}

/// A tenant's key store: a bucket on a backend, shared by every replica.
#[derive(Debug, Clone)]
pub struct KeyStore {
    backend: Arc<dyn Backend>,
    bucket: String,
}

fn unavailable(what: &str, key: &str, e: BackendError) -> KeyError {
    KeyError::Unavailable(format!("key store: {what} {key}: {e}"))
}

impl KeyStore {
    pub fn new(backend: Arc<dyn Backend>, bucket: impl Into<String>) -> Self {
        Self { backend, bucket: bucket.into() }
    }

    /// The backend bucket holding the store.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the store's bucket if it does not exist yet.
    pub async fn ensure_bucket(&self) -> Result<(), KeyError> {
        match self.backend.head_bucket(&self.bucket).await {
            Ok(()) => Ok(()),
            Err(BackendError::NoSuchBucket) => match self.backend.create_bucket(&self.bucket).await {
                Ok(()) | Err(BackendError::BucketAlreadyExists) => Ok(()),
                Err(e) => Err(unavailable("cannot create bucket", &self.bucket, e)),
            },
            Err(e) => Err(unavailable("cannot reach bucket", &self.bucket, e)),
        }
    }

    /// The record at `key`, or `None` if there is none. A record that does not parse is an error
    /// (fail closed: a damaged key store must not look like a missing key).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, KeyError> {
        let Some(bytes) = self.get_raw(key).await? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| KeyError::Keyring(format!("key store record {key}: {e}")))
    }

    /// The bytes of the record at `key` exactly as stored (receipts are chained by their hash).
    pub async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, KeyError> {
        let got = match self.backend.get(&self.bucket, key, GetOptions::default()).await {
            Ok(got) => got,
            Err(BackendError::NoSuchKey | BackendError::NoSuchBucket) => return Ok(None),
            Err(e) => return Err(unavailable("cannot read", key, e)),
        };
        let mut body = got.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| KeyError::Unavailable(format!("key store: reading {key}: {e}")))?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_RECORD {
                return Err(KeyError::Keyring(format!("key store record {key} is too large")));
            }
        }
        Ok(Some(bytes))
    }

    /// Writes `value` at `key`. With `create_only`, an existing record is kept and `Ok(false)` returned
    /// (the backend's `If-None-Match: *`: the way two replicas agree on who created a key).
    pub async fn put<T: Serialize>(&self, key: &str, value: &T, create_only: bool) -> Result<bool, KeyError> {
        let json = serde_json::to_vec_pretty(value).map_err(|e| KeyError::Keyring(e.to_string()))?;
        let len = json.len() as u64;
        let body: ByteStream = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(json))]).boxed();
        let opts = PutOptions { if_none_match_any: create_only, ..PutOptions::default() };
        match self.backend.put(&self.bucket, key, body, len, opts).await {
            Ok(_) => Ok(true),
            Err(BackendError::PreconditionFailed) if create_only => Ok(false),
            Err(BackendError::NoSuchBucket) => {
                self.ensure_bucket().await?;
                Box::pin(self.put(key, value, create_only)).await
            }
            Err(e) => Err(unavailable("cannot write", key, e)),
        }
    }

    /// Deletes the record at `key` (no error if it is already gone).
    pub async fn delete(&self, key: &str) -> Result<(), KeyError> {
        match self.backend.delete(&self.bucket, key, None).await {
            Ok(_) | Err(BackendError::NoSuchKey | BackendError::NoSuchBucket) => Ok(()),
            Err(e) => Err(unavailable("cannot delete", key, e)),
        }
    }

    /// Every key under `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, KeyError> {
        let mut out = Vec::new();
        let mut continuation = None;
        loop {
            let opts = ListOptions {
                prefix: prefix.to_owned(),
                continuation: continuation.take(),
                max_keys: 1000,
                ..Default::default()
            };
            let page = match self.backend.list(&self.bucket, opts).await {
                Ok(page) => page,
                Err(BackendError::NoSuchBucket) => return Ok(out),
                Err(e) => return Err(unavailable("cannot list", prefix, e)),
            };
            out.extend(page.objects.into_iter().map(|o| o.key));
            match page.next_token {
                Some(token) if page.is_truncated => continuation = Some(token),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Object names inside the store, in one place.
pub mod names {
    pub fn tenant_prefix(tenant: &str) -> String {
        format!("keys/{tenant}/")
    }
    pub fn roots_prefix(tenant: &str) -> String {
        format!("keys/{tenant}/roots/")
    }
    pub fn root(tenant: &str, gen: u32) -> String {
        format!("keys/{tenant}/roots/{gen:08}")
    }
    pub fn lifetime_prefix(tenant: &str) -> String {
        format!("keys/{tenant}/lifetime/")
    }
    pub fn lifetime(tenant: &str, id: &str) -> String {
        format!("keys/{tenant}/lifetime/{id}")
    }
    pub fn shredded_subject(tenant: &str, subject_hash: &str) -> String {
        format!("keys/{tenant}/shredded/{subject_hash}")
    }
    /// The tombstone of a shredded subject or deadline day key (subjects by their hash).
    pub fn tombstone(tenant: &str, id: &str) -> String {
        match id.strip_prefix("subject:") {
            Some(hash) => shredded_subject(tenant, hash),
            None => format!("keys/{tenant}/shredded/{id}"),
        }
    }
    pub fn shredded_tenant(tenant: &str) -> String {
        format!("keys/{tenant}/shredded-tenant")
    }
    pub fn rewrap_checkpoint(tenant: &str, bucket: &str) -> String {
        format!("keys/{tenant}/rewrap/{bucket}")
    }
    pub fn receipts_prefix(tenant: &str) -> String {
        format!("receipts/{tenant}/")
    }
    pub fn receipt(tenant: &str, seq: u64) -> String {
        format!("receipts/{tenant}/{seq:08}.json")
    }
}
