//! Tenant heads: every `rollup` interval each replica tries to write the tenant's next head, naming
//! every writer's latest segment (number and SHA-256) and chained to the previous head. The head's name
//! is its number and it is created conditionally, so exactly one replica writes each head (the one
//! whose create lands first: the lease is the conditional create) and the others find nothing to do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::key::AuditKey;
use super::names;
use super::record::now_text;
use super::sealed::{self, seal, sha256_hex};
use super::store::{TrailError, TrailStore};

/// One writer's latest segment as a head records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadEntry {
    pub seq: u64,
    pub sha256: String,
}

/// A tenant head (the first line of a head document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub blobseal_audit_head: u32,
    pub tenant: String,
    pub seq: u64,
    pub prev_sha256: Option<String>,
    pub time: String,
    pub writers: BTreeMap<String, HeadEntry>,
}

/// Why a roll-up failed.
#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    #[error(transparent)]
    Trail(#[from] TrailError),
    #[error("head {0} does not verify ({1}); not building on it")]
    BrokenHead(String, String),
}

/// The newest head (its name, bytes and content), if any, verified under `key`.
async fn latest(store: &TrailStore, key: &AuditKey) -> Result<Option<(u64, Vec<u8>, Head)>, RollupError> {
    let heads = store.list(names::HEADS, None, false).await?;
    let Some((seq, name)) = heads.iter().filter_map(|n| names::parse_head(n).map(|s| (s, n))).max() else {
        return Ok(None);
    };
    let Some(doc) = store.read(name).await? else { return Ok(None) };
    let lines = sealed::open(&doc, &key.public()).map_err(|e| RollupError::BrokenHead(name.clone(), e.to_string()))?;
    let head: Head = lines
        .first()
        .and_then(|l| serde_json::from_slice(l).ok())
        .ok_or_else(|| RollupError::BrokenHead(name.clone(), "no head line".into()))?;
    Ok(Some((seq, doc, head)))
}

/// Writes the tenant's next head if any writer has segments the latest head does not name.
/// `Ok(Some(n))`: head `n` was written by this call.
pub async fn roll_up(store: &TrailStore, tenant: &str, key: &AuditKey) -> Result<Option<u64>, RollupError> {
    let previous = latest(store, key).await?;
    let mut writers = previous.as_ref().map(|(_, _, h)| h.writers.clone()).unwrap_or_default();
    let mut changed = false;
    for dir in store.list(names::SEGMENTS, None, true).await? {
        let Some(writer) = dir.strip_prefix(names::SEGMENTS).and_then(|w| w.strip_suffix('/')) else { continue };
        let after = writers.get(writer).map(|e| names::segment(writer, e.seq));
        let newer = store.list(&dir, after.as_deref(), false).await?;
        let Some((name, seq)) =
            newer.iter().filter_map(|n| names::parse_segment(n).map(|(_, s)| (n, s))).max_by_key(|(_, s)| *s)
        else {
            continue;
        };
        let Some(doc) = store.read(name).await? else { continue };
        writers.insert(writer.to_owned(), HeadEntry { seq, sha256: sha256_hex(&doc) });
        changed = true;
    }
    if !changed {
        return Ok(None);
    }
    let seq = previous.as_ref().map_or(1, |(s, _, _)| s + 1);
    let head = Head {
        blobseal_audit_head: 1,
        tenant: tenant.to_owned(),
        seq,
        prev_sha256: previous.as_ref().map(|(_, doc, _)| sha256_hex(doc)),
        time: now_text(),
        writers,
    };
    let mut body = serde_json::to_vec(&head).unwrap_or_default();
    body.push(b'\n');
    let created = store.create(&names::head(seq), seal(body, key)).await?;
    Ok(created.then_some(seq))
}
