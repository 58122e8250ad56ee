//! Shred receipts: one JSON object per shred in the tenant's key store
//! (`receipts/<tenant>/<seq>.json`), each carrying the SHA-256 of the one before, so a removed or
//! edited receipt breaks the chain. They name key ids and hashes only: no subject in clear, no key
//! material.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use super::OpsError;
use crate::core::keys::store::{names, KeyStore};

/// One destroyed root key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DestroyedRoot {
    pub gen: u32,
    pub root_id: String,
    pub provider: String,
    /// What the provider did ("removed from keyring …", "disabled …; deletion scheduled for …").
    pub detail: String,
}

/// The root generation that wraps the surviving lifetime keys after a subject shred.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewRoot {
    pub gen: u32,
    pub root_id: String,
}

/// What a shred destroyed, when and by whom.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Receipt {
    pub format: u32,
    pub seq: u64,
    /// This receipt's object key in the key store.
    pub receipt: String,
    /// `tenant`, `subject` or `period`.
    pub kind: String,
    pub tenant: String,
    /// Key ids of the shredded subjects (`subject:<hash of tenant and subject>`).
    pub subjects: Vec<String>,
    /// Key ids of the shredded deadline days (`period:YYYY-MM-DD`), by the sweeper.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub periods: Vec<String>,
    /// Lifetime keys destroyed.
    pub destroyed_keys: Vec<String>,
    pub destroyed_roots: Vec<DestroyedRoot>,
    pub new_root: Option<NewRoot>,
    /// RFC 3339.
    pub at: String,
    pub by: String,
    /// Replicas may use a destroyed key for at most this long after `at` (their cache TTL).
    pub cache_ttl_seconds: u64,
    /// Hex SHA-256 of the previous receipt's stored bytes; `null` for the first.
    pub previous_receipt_sha256: Option<String>,
}

/// The sequence number and object key the next receipt of `tenant` gets, with the previous one's hash.
pub async fn next_slot(store: &KeyStore, tenant: &str) -> Result<(u64, String, Option<String>), OpsError> {
    let prefix = names::receipts_prefix(tenant);
    let existing = store.list(&prefix).await?;
    let last =
        existing.iter().filter_map(|k| k.strip_prefix(&prefix)?.strip_suffix(".json")?.parse::<u64>().ok()).max();
    let seq = last.map_or(1, |n| n.saturating_add(1));
    let previous = match last {
        Some(n) => store.get_raw(&names::receipt(tenant, n)).await?.map(|bytes| sha256_hex(&bytes)),
        None => None,
    };
    Ok((seq, names::receipt(tenant, seq), previous))
}

/// Stores `receipt` at its slot; refuses to overwrite one (two shreds at once: rerun).
pub async fn write(store: &KeyStore, receipt: &Receipt) -> Result<(), OpsError> {
    if store.put(&receipt.receipt, receipt, true).await? {
        Ok(())
    } else {
        Err(OpsError::Refused(format!("receipt {} was written by another shred at the same time", receipt.receipt)))
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
}
