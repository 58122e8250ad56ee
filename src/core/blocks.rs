//! Block blobs (Azure's Put Block / Put Block List / Get Block List) without block state in blobseal.
//!
//! A Put Block carries no upload id, and blocks of one blob may arrive at different replicas, so each
//! staged block is stored on its own: a sealed object of blobseal's reserved namespace,
//! `.blobseal/blocks/<blob>/<block id>` (`<blob>` = hex SHA-256 of the blob name, the block id base64url),
//! with a fresh data key and salt of its own (so a block re-sent with other bytes never reuses a keystream)
//! bound to that hidden name. Put Block List opens the named blocks in order and seals their plaintext
//! into the blob as one ordinary single-stream object (ranges then cost what they cost on any object),
//! next to a sealed *block table* (`.blobseal/blocklists/<blob>/<commit id>`: each committed block's id and
//! plaintext size) that the blob's authenticated metadata names; Get Block List and a later re-commit of
//! committed blocks read it. Committing costs one read and one write of the blob's bytes. See
//! docs/FORMAT.md §17.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};

use crate::backend::{BackendError, ByteStream, ListOptions};
use crate::core::envelope::{ciphertext_len, seal_stream, ObjectIdentity};
use crate::core::error::{CoreError, CoreResult};
use crate::core::keys::KeyError;
use crate::core::service::{BlobService, ObjectInfo, PutOutcome, PutRequest, RangeRequest};
use crate::core::stored::{backend_put_options, listed_size};
use crate::core::tenant::{Placement, Tenant};

/// Where staged (uncommitted) blocks live.
pub const BLOCKS_KEY_PREFIX: &str = ".blobseal/blocks/";
/// Where committed block tables live.
pub const BLOCKLISTS_KEY_PREFIX: &str = ".blobseal/blocklists/";
/// Stored-metadata name of a block blob's commit id (which block table is its own).
pub const BLOCKLIST_META: &str = "blobseal-blocklist";
/// Azure's limit on a block id (before base64).
pub const MAX_BLOCK_ID_LEN: usize = 64;
/// Azure's limit on the committed blocks of one blob.
pub const MAX_COMMITTED_BLOCKS: usize = 50_000;
/// Azure's limit on a blob's uncommitted blocks.
pub const MAX_UNCOMMITTED_BLOCKS: usize = 100_000;
/// Largest block table blobseal reads (50,000 lines of at most 86 + 1 + 20 + 1 bytes fit).
const MAX_TABLE_BYTES: u64 = 8 * 1024 * 1024;
/// Blocks opened ahead of the one being copied into the blob at commit.
const BLOCKS_OPENED_AHEAD: usize = 4;
/// Pages of a block listing blobseal reads at most (1000 keys each).
const MAX_LIST_PAGES: usize = MAX_UNCOMMITTED_BLOCKS / 1000 + 1;

/// One block: its client-chosen id (raw bytes) and plaintext size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub id: Vec<u8>,
    pub size: u64,
}

/// A blob's blocks: the committed ones (in blob order) and the staged ones.
#[derive(Debug, Clone, Default)]
pub struct BlockList {
    pub committed: Vec<Block>,
    pub uncommitted: Vec<Block>,
    /// The blob, if it exists.
    pub blob: Option<ObjectInfo>,
    /// The commit id naming the blob's block table, if it was committed from blocks.
    pub commit: Option<String>,
}

/// One entry of a Put Block List.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockRef {
    Committed(Vec<u8>),
    Uncommitted(Vec<u8>),
    /// The staged block if there is one, else the committed one.
    Latest(Vec<u8>),
}

impl BlockRef {
    fn id(&self) -> &[u8] {
        match self {
            BlockRef::Committed(id) | BlockRef::Uncommitted(id) | BlockRef::Latest(id) => id,
        }
    }
}

/// The hidden directory of one blob's blocks: the name itself may be long (1024 bytes) and may name a
/// data subject, so only its digest appears in hidden keys.
fn blob_dir(key: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes()))
}

fn staged_prefix(key: &str) -> String {
    format!("{BLOCKS_KEY_PREFIX}{}/", blob_dir(key))
}

fn staged_key(key: &str, id: &[u8]) -> String {
    format!("{}{}", staged_prefix(key), URL_SAFE_NO_PAD.encode(id))
}

fn table_prefix(key: &str) -> String {
    format!("{BLOCKLISTS_KEY_PREFIX}{}/", blob_dir(key))
}

fn table_key(key: &str, commit: &str) -> String {
    format!("{}{commit}", table_prefix(key))
}

fn check_block_id(id: &[u8]) -> CoreResult<()> {
    if id.is_empty() || id.len() > MAX_BLOCK_ID_LEN {
        return Err(CoreError::InvalidBlockList(format!(
            "a block id must be 1 to {MAX_BLOCK_ID_LEN} bytes before base64 (got {})",
            id.len()
        )));
    }
    Ok(())
}

/// The block table as stored: one line per block, `<base64url id> <plaintext size>`.
fn encode_table(blocks: &[Block]) -> String {
    blocks.iter().map(|b| format!("{} {}\n", URL_SAFE_NO_PAD.encode(&b.id), b.size)).collect()
}

fn decode_table(text: &str) -> CoreResult<Vec<Block>> {
    let bad = || CoreError::integrity("block_table", "malformed block table");
    text.lines()
        .map(|line| {
            let (id, size) = line.split_once(' ').ok_or_else(bad)?;
            Ok(Block { id: URL_SAFE_NO_PAD.decode(id).map_err(|_| bad())?, size: size.parse().map_err(|_| bad())? })
        })
        .collect()
}

/// A Put Blob body sealed into a staging object, waiting for [`BlobService::promote_staged`].
#[derive(Debug)]
pub struct StagedBlob {
    hidden: String,
}

/// Where one block of a commit comes from.
#[derive(Debug, Clone)]
enum Source {
    Staged {
        hidden: String,
        size: u64,
    },
    /// A range of the current blob (a committed block kept).
    Committed {
        offset: u64,
        size: u64,
    },
}

impl Source {
    fn size(&self) -> u64 {
        match self {
            Source::Staged { size, .. } | Source::Committed { size, .. } => *size,
        }
    }
}

impl BlobService {
    /// Seals `len` plaintext bytes into blobseal's own object `hidden` (no retention, no backups: it is a
    /// staging object), its key chosen for the data subject that `subject_key` and `subject_meta` (the
    /// blob's name and metadata) name, so that shredding the subject covers staged bytes too.
    #[allow(clippy::too_many_arguments)]
    async fn put_hidden(
        &self,
        tenant: &Tenant,
        bucket: &str,
        p: &Placement,
        hidden: &str,
        (subject_key, subject_meta): (&str, &BTreeMap<String, String>),
        body: ByteStream,
        len: u64,
    ) -> CoreResult<()> {
        let id = ObjectIdentity { tenant: &tenant.name, bucket, key: hidden };
        let stored = BTreeMap::new();
        let (dek, keys, envelope) = crate::core::service::fresh_envelope(len, &stored)?;
        let encoded = self.seal_envelope_for(tenant, &id, subject_key, envelope, &dek, subject_meta).await?;
        let opts = backend_put_options(stored, encoded, false, BTreeMap::new());
        p.backend.put(&p.bucket, hidden, seal_stream(keys, len, body), ciphertext_len(len), opts).await?;
        Ok(())
    }

    /// Put Block: stages `len` plaintext bytes as block `id` of the blob `key`. A block staged again under
    /// the same id replaces the earlier one (with new keys).
    #[allow(clippy::too_many_arguments)]
    pub async fn stage_block(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        id: &[u8],
        body: ByteStream,
        len: u64,
    ) -> CoreResult<()> {
        Self::check_client_key(key)?;
        check_block_id(id)?;
        let p = self.place(tenant, bucket)?;
        // All block ids of a blob have one length (Azure's rule): compare with one staged block.
        let prefix = staged_prefix(key);
        let opts = ListOptions { prefix: prefix.clone(), max_keys: 1, ..Default::default() };
        let page = p.backend.list(&p.bucket, opts).await?;
        let other =
            page.objects.first().and_then(|m| m.key.strip_prefix(&prefix).and_then(|s| URL_SAFE_NO_PAD.decode(s).ok()));
        if other.is_some_and(|o| o.len() != id.len()) {
            return Err(CoreError::InvalidBlock("all block ids of a blob must have the same length".into()));
        }
        self.put_hidden(tenant, bucket, &p, &staged_key(key, id), (key, &BTreeMap::new()), body, len).await
    }

    /// Keys (and stored sizes) under `prefix`, at most `max` of them.
    async fn hidden_keys(&self, p: &Placement, prefix: &str, max: usize) -> CoreResult<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let mut continuation = None;
        for _ in 0..MAX_LIST_PAGES {
            let opts = ListOptions { prefix: prefix.to_owned(), max_keys: 1000, continuation, ..Default::default() };
            let page = p.backend.list(&p.bucket, opts).await?;
            out.extend(page.objects.into_iter().map(|m| (m.key, m.size)));
            if out.len() > max {
                return Err(CoreError::InvalidBlockList(format!("more than {max} blocks staged for this blob")));
            }
            match (page.is_truncated, page.next_token) {
                (true, Some(token)) => continuation = Some(token),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The blob's committed block table, if the blob was committed from blocks.
    async fn committed_table(&self, tenant: &Tenant, bucket: &str, key: &str, commit: &str) -> CoreResult<Vec<Block>> {
        let got = match self.read_sealed(tenant, bucket, &table_key(key, commit), None, None, None).await {
            Ok(got) => got,
            // A concurrent commit's clean-up removed it: that commit's blob replaces this one.
            Err(CoreError::Backend(BackendError::NoSuchKey)) => {
                return Err(CoreError::Backend(BackendError::Unavailable(
                    "the blob was committed again while its block list was read; retry".into(),
                )))
            }
            Err(e) => return Err(e),
        };
        if got.info.size > MAX_TABLE_BYTES {
            return Err(CoreError::integrity("block_table", "block table too large"));
        }
        let bytes: Vec<Bytes> =
            got.body.try_collect().await.map_err(|e| CoreError::integrity("block_table", e.to_string()))?;
        let text = String::from_utf8(bytes.concat())
            .map_err(|_| CoreError::integrity("block_table", "block table not UTF-8"))?;
        decode_table(&text)
    }

    /// Get Block List: the committed blocks (from the blob's block table) and the staged ones.
    pub async fn list_blocks(&self, tenant: &Tenant, bucket: &str, key: &str) -> CoreResult<BlockList> {
        self.block_list(tenant, bucket, key, false).await
    }

    /// `list_blocks`; with `for_commit`, a current blob that cannot be opened (its subject shredded, its
    /// envelope broken) counts as having no committed blocks, so a commit of new blocks can replace it.
    async fn block_list(&self, tenant: &Tenant, bucket: &str, key: &str, for_commit: bool) -> CoreResult<BlockList> {
        Self::check_client_key(key)?;
        let p = self.place(tenant, bucket)?;
        let (blob, commit) = match p.backend.head(&p.bucket, key, None).await {
            Ok(head) => {
                let id = ObjectIdentity { tenant: &tenant.name, bucket, key };
                match self.open_envelope(tenant, &id, &head).await {
                    Ok(opened) => {
                        (Some(Self::info_of(key, &head, &opened)), head.metadata.get(BLOCKLIST_META).cloned())
                    }
                    Err(CoreError::KeyDestroyed(_) | CoreError::Integrity(_) | CoreError::NotSealed) if for_commit => {
                        (None, None)
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(BackendError::NoSuchKey) => (None, None),
            Err(e) => return Err(e.into()),
        };
        let committed = match &commit {
            Some(commit) => self.committed_table(tenant, bucket, key, commit).await?,
            None => Vec::new(),
        };
        if let Some(info) = &blob {
            let total = committed.iter().try_fold(0u64, |n, b| n.checked_add(b.size));
            if !committed.is_empty() && total != Some(info.size) {
                return Err(CoreError::integrity("block_table", "block table does not match the blob's size"));
            }
        }
        let prefix = staged_prefix(key);
        let mut uncommitted = Vec::new();
        for (hidden, stored) in self.hidden_keys(&p, &prefix, MAX_UNCOMMITTED_BLOCKS).await? {
            let Some(id) = hidden.strip_prefix(&prefix).and_then(|s| URL_SAFE_NO_PAD.decode(s).ok()) else { continue };
            uncommitted.push(Block { id, size: listed_size(stored) });
        }
        Ok(BlockList { committed, uncommitted, blob, commit })
    }

    /// Put Block List: the blob becomes exactly the named blocks, in order. Nothing changes unless every
    /// block is found and opens; then the staged blocks of the blob are discarded (as Azure does).
    pub async fn commit_blocks(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        bucket: &str,
        key: &str,
        refs: Vec<BlockRef>,
        req: PutRequest,
    ) -> CoreResult<PutOutcome> {
        Self::check_client_key(key)?;
        if refs.len() > MAX_COMMITTED_BLOCKS {
            return Err(CoreError::InvalidBlockList(format!("at most {MAX_COMMITTED_BLOCKS} blocks may be committed")));
        }
        let id_len = refs.first().map(|r| r.id().len());
        for r in &refs {
            check_block_id(r.id())?;
            if Some(r.id().len()) != id_len {
                return Err(CoreError::InvalidBlockList("all block ids of a blob must have the same length".into()));
            }
        }
        let list = self.block_list(tenant, bucket, key, true).await?;
        let staged: HashMap<&[u8], u64> = list.uncommitted.iter().map(|b| (b.id.as_slice(), b.size)).collect();
        let mut committed: HashMap<&[u8], (u64, u64)> = HashMap::new();
        let mut offset = 0u64;
        for b in &list.committed {
            committed.entry(b.id.as_slice()).or_insert((offset, b.size));
            offset = offset
                .checked_add(b.size)
                .ok_or_else(|| CoreError::integrity("block_table", "block sizes overflow"))?;
        }
        let missing =
            |id: &[u8]| CoreError::InvalidBlockList(format!("block {} is not there", URL_SAFE_NO_PAD.encode(id)));
        let mut sources = Vec::with_capacity(refs.len());
        let mut table = Vec::with_capacity(refs.len());
        let mut total = 0u64;
        for r in &refs {
            let id = r.id();
            let from_staged = || staged.get(id).map(|&size| Source::Staged { hidden: staged_key(key, id), size });
            let from_committed = || committed.get(id).map(|&(offset, size)| Source::Committed { offset, size });
            let source = match r {
                BlockRef::Uncommitted(_) => from_staged(),
                BlockRef::Committed(_) => from_committed(),
                BlockRef::Latest(_) => from_staged().or_else(from_committed),
            }
            .ok_or_else(|| missing(id))?;
            total = total.checked_add(source.size()).ok_or(CoreError::InvalidBlockList("blob too large".into()))?;
            table.push(Block { id: id.to_vec(), size: source.size() });
            sources.push(source);
        }
        let p = self.place(tenant, bucket)?;
        let commit = random_commit_id()?;
        let text = encode_table(&table);
        let table_len = text.len() as u64;
        let table_body: ByteStream = futures::stream::once(async move { Ok(Bytes::from(text)) }).boxed();
        let subject_meta = crate::core::stored::stored_metadata(req.metadata.clone(), &req.headers);
        self.put_hidden(tenant, bucket, &p, &table_key(key, &commit), (key, &subject_meta), table_body, table_len)
            .await?;
        let pinned_etag = list.blob.as_ref().map(|b| b.etag.clone());
        let body = self.blocks_body(tenant, bucket, key, sources, pinned_etag);
        let extra = BTreeMap::from([(BLOCKLIST_META.to_owned(), commit.clone())]);
        let out = match self.put_with(tenant, bucket, key, body, total, req, extra).await {
            Ok(out) => out,
            Err(e) => {
                self.delete_hidden(&p, &table_key(key, &commit)).await;
                return Err(e);
            }
        };
        // The staged blocks go (Azure discards them at a commit), and the table this commit replaced; not
        // other tables: a concurrent commit of the same blob may have just written its own, and its blob may
        // land after ours (leftovers of such races are small and go with the blob's delete).
        self.delete_under(&p, &staged_prefix(key)).await;
        if let Some(old) = list.commit.as_deref().filter(|old| *old != commit) {
            self.delete_hidden(&p, &table_key(key, old)).await;
        }
        Ok(out)
    }

    /// The plaintext of `sources`, one after the other, each opened (and authenticated) when reached.
    fn blocks_body(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        bucket: &str,
        key: &str,
        sources: Vec<Source>,
        pinned_etag: Option<String>,
    ) -> ByteStream {
        let (core, tenant, bucket, key) = (Arc::clone(self), Arc::clone(tenant), bucket.to_owned(), key.to_owned());
        futures::stream::iter(sources.into_iter().filter(|s| s.size() > 0))
            .map(move |source| {
                let (core, tenant, bucket, key, pinned) =
                    (Arc::clone(&core), Arc::clone(&tenant), bucket.clone(), key.clone(), pinned_etag.clone());
                async move {
                    let (got, want) = match &source {
                        Source::Staged { hidden, size } => {
                            (core.read_sealed(&tenant, &bucket, hidden, None, None, None).await, *size)
                        }
                        Source::Committed { offset, size } => {
                            let last = offset.saturating_add(*size).saturating_sub(1);
                            let range = Some(RangeRequest::FromTo(*offset, last));
                            (core.read_sealed(&tenant, &bucket, &key, None, range, None).await, *size)
                        }
                    };
                    let got = got.map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
                    let served = got.range.as_ref().map_or(got.info.size, |r| r.end - r.start);
                    let moved = matches!(source, Source::Committed { .. }) && pinned.as_deref() != Some(&got.info.etag);
                    if served != want || moved {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "a block changed while the block list was committed",
                        ));
                    }
                    Ok(got.body)
                }
            })
            // The next blocks are opened (their envelopes unwrapped, their reads started) while one streams.
            .buffered(BLOCKS_OPENED_AHEAD)
            .try_flatten()
            .boxed()
    }

    async fn delete_hidden(&self, p: &Placement, hidden: &str) {
        if let Err(e) = p.backend.delete(&p.bucket, hidden, None).await {
            tracing::warn!(error = %e, "could not remove a block-blob staging object");
        }
    }

    /// Removes every hidden object under `prefix` (a blob's staged blocks or block tables). Failures are
    /// logged: what is left is invisible to clients and goes with the blob's next commit or delete.
    async fn delete_under(&self, p: &Placement, prefix: &str) {
        match self.hidden_keys(p, prefix, usize::MAX).await {
            Ok(keys) => {
                for (hidden, _) in &keys {
                    self.delete_hidden(p, hidden).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list a blob's staging objects"),
        }
    }

    /// First half of a Put Blob whose MD5 blobseal computes: the body is sealed into a staging object of
    /// its own (`<blob's block dir>/~<random>`, never read as a block), so the MD5 is known before the blob's
    /// authenticated metadata is written by [`BlobService::promote_staged`].
    pub async fn stage_blob(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        body: ByteStream,
        len: u64,
        req: &PutRequest,
    ) -> CoreResult<StagedBlob> {
        Self::check_client_key(key)?;
        Self::check_client_metadata(&req.metadata)?;
        let p = self.place(tenant, bucket)?;
        let hidden = format!("{}~{}", staged_prefix(key), random_commit_id()?);
        let subject_meta = crate::core::stored::stored_metadata(req.metadata.clone(), &req.headers);
        match self.put_hidden(tenant, bucket, &p, &hidden, (key, &subject_meta), body, len).await {
            Ok(()) => Ok(StagedBlob { hidden }),
            Err(e) => {
                self.delete_hidden(&p, &hidden).await;
                Err(e)
            }
        }
    }

    /// Second half: the staged ciphertext becomes the blob (a server-side copy; only the envelope is new,
    /// re-wrapped for the blob and `req`'s metadata), then the staging object goes.
    pub async fn promote_staged(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        staged: StagedBlob,
        req: PutRequest,
    ) -> CoreResult<PutOutcome> {
        let create_only = req.if_none_match_any;
        let src = crate::core::service::CopySource { bucket, key: &staged.hidden, version_id: None };
        let out = self.copy_with(tenant, src, bucket, key, Some(req), create_only, Default::default()).await;
        let p = self.place(tenant, bucket)?;
        self.delete_hidden(&p, &staged.hidden).await;
        Ok(out?.put)
    }

    /// Removes every staged block and block table of the blob `key` (after Delete Blob or Put Blob).
    pub async fn discard_blocks(&self, tenant: &Tenant, bucket: &str, key: &str) -> CoreResult<()> {
        Self::check_client_key(key)?;
        let p = self.place(tenant, bucket)?;
        self.delete_under(&p, &staged_prefix(key)).await;
        self.delete_under(&p, &table_prefix(key)).await;
        Ok(())
    }
}

fn random_commit_id() -> CoreResult<String> {
    let mut id = [0u8; 16];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| CoreError::Key(KeyError::Random))?;
    Ok(hex::encode(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips_and_refuses_garbage() {
        let blocks = vec![Block { id: b"\x00\xffblock-1".to_vec(), size: 5 }, Block { id: b"b2".to_vec(), size: 0 }];
        assert_eq!(decode_table(&encode_table(&blocks)).unwrap(), blocks);
        assert!(decode_table("nospace\n").is_err());
        assert!(decode_table("AA notanumber\n").is_err());
        assert!(decode_table("!!! 5\n").is_err());
        assert_eq!(decode_table("").unwrap(), vec![]);
    }

    #[test]
    fn hidden_names_hide_the_blob_name_and_keep_ids_apart() {
        let k = staged_key("alice/scan.pdf", b"id-1");
        assert!(k.starts_with(BLOCKS_KEY_PREFIX) && !k.contains("alice"));
        assert_ne!(k, staged_key("alice/scan.pdf", b"id-2"));
        assert_ne!(k, staged_key("bob/scan.pdf", b"id-1"));
        assert!(staged_key(&"x".repeat(1024), &[0xff; 64]).len() < 200);
    }

    #[test]
    fn known_answer_names_and_table() {
        let dir = "82bc127016d691086273e38344b0226bc47dff5bcfe6dda978ef544b66ba4c86";
        assert_eq!(staged_key("alice/scan.pdf", b"blk-0001"), format!(".blobseal/blocks/{dir}/YmxrLTAwMDE"));
        assert_eq!(table_key("alice/scan.pdf", "c0ffee"), format!(".blobseal/blocklists/{dir}/c0ffee"));
        let table = encode_table(&[
            Block { id: b"blk-0001".to_vec(), size: 70000 },
            Block { id: b"blk-0003".to_vec(), size: 99 },
        ]);
        assert_eq!(table, "YmxrLTAwMDE 70000\nYmxrLTAwMDM 99\n");
        assert_eq!(table.len(), 33);
    }

    #[test]
    fn block_ids_are_bounded() {
        assert!(check_block_id(b"").is_err());
        assert!(check_block_id(&[1; 64]).is_ok());
        assert!(check_block_id(&[1; 65]).is_err());
    }
}
