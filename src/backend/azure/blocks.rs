//! Block blobs built from staged blocks: block ids, Put Block, Put Block List.
//!
//! Azure caps one Put Blob at 5000 MiB and one block at 4000 MiB, below S3's 5 GiB object and part
//! sizes, so a larger body is staged as several blocks read in turn from the one client stream.

use azure_core::http::{Method, Request};
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::client::AzureClient;
use super::transport::OneShotBody;
use crate::backend::{BackendError, ByteStream, Result};

/// Largest body one Put Blob takes (service version 2019-12-12 and later).
pub(super) const MAX_PUT_BLOB: u64 = 5000 * 1024 * 1024;
/// Largest block.
pub(super) const MAX_BLOCK: u64 = 4000 * 1024 * 1024;

/// A fresh 128-bit nonce whose first half is the time in nanoseconds, so later nonces of the same
/// part sort later (a re-uploaded part replaces the earlier one) across replicas with sane clocks.
pub(super) fn timed_nonce() -> String {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let nanos = u64::try_from(nanos).unwrap_or(0);
    let mut random = [0u8; 8];
    // A failed generator leaves zeros: the time half still separates nonces of one part.
    let _ = aws_lc_rs::rand::fill(&mut random);
    format!("{nanos:016x}{:016x}", u64::from_be_bytes(random))
}

/// Feeds every chunk of `body` into an MD5 as it passes; the digest is read from the handle once
/// the body has been sent.
pub(super) fn md5_tap(body: ByteStream) -> (ByteStream, Md5Handle) {
    use futures::StreamExt as _;
    use md5::Digest as _;
    let handle = Md5Handle(Arc::new(Mutex::new(md5::Md5::new())));
    let tap = handle.clone();
    let stream = body.map(move |chunk| {
        if let (Ok(bytes), Ok(mut md5)) = (&chunk, tap.0.lock()) {
            md5.update(bytes);
        }
        chunk
    });
    (Box::pin(stream), handle)
}

/// The running MD5 of a tapped body.
#[derive(Clone)]
pub(super) struct Md5Handle(Arc<Mutex<md5::Md5>>);

impl Md5Handle {
    /// The digest of everything that passed.
    pub(super) fn digest(&self) -> Result<[u8; 16]> {
        use md5::Digest as _;
        let md5 = self.0.lock().map_err(|_| BackendError::Unavailable("MD5 lock poisoned".into()))?;
        Ok(md5.clone().finalize().into())
    }
}

/// Block ids are base64 of a fixed-length ASCII id (Azure requires one length per blob).
pub(super) fn encode_block_id(raw: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
}

/// The sizes of the blocks a body of `len` bytes is staged as: as few as fit in `MAX_BLOCK`.
pub(super) fn block_sizes(len: u64) -> Vec<u64> {
    if len == 0 {
        return vec![0];
    }
    let count = len.div_ceil(MAX_BLOCK);
    let base = len / count;
    let extra = len % count;
    (0..count).map(|i| base + u64::from(i < extra)).collect()
}

/// Stages `len` bytes of `body` as blocks of `container/blob`, ids from `id_of(index)`; returns the
/// raw ids in order.
pub(super) async fn stage_blocks(
    client: &AzureClient,
    container: &str,
    blob: &str,
    body: ByteStream,
    len: u64,
    id_of: impl Fn(usize) -> String,
) -> Result<Vec<String>> {
    let sizes = block_sizes(len);
    let pieces = OneShotBody::new(body, len).split(&sizes);
    let mut ids = Vec::with_capacity(sizes.len());
    for (index, piece) in pieces.into_iter().enumerate() {
        let raw = id_of(index);
        let block_id = encode_block_id(&raw);
        let url = client.url(Some(container), Some(blob), &[("comp", "block"), ("blockid", &block_id)])?;
        let mut req = client.request(Method::Put, url);
        client.send_body(&mut req, piece, BackendError::NoSuchKey).await?;
        ids.push(raw);
    }
    Ok(ids)
}

/// A Put Block List request committing `raw_ids` (uncommitted or already committed blocks, as
/// Azure finds them: `Latest`). The caller adds conditions, metadata and headers.
pub(super) fn block_list_request(
    client: &AzureClient,
    container: &str,
    blob: &str,
    raw_ids: &[String],
) -> Result<Request> {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for raw in raw_ids {
        xml.push_str("<Latest>");
        xml.push_str(&encode_block_id(raw));
        xml.push_str("</Latest>");
    }
    xml.push_str("</BlockList>");
    let url = client.url(Some(container), Some(blob), &[("comp", "blocklist")])?;
    let mut req = client.request(Method::Put, url);
    req.insert_header("content-type", "application/xml");
    req.set_body(bytes::Bytes::from(xml));
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_cover_the_body_within_the_limit() {
        assert_eq!(block_sizes(0), vec![0]);
        assert_eq!(block_sizes(10), vec![10]);
        assert_eq!(block_sizes(MAX_BLOCK), vec![MAX_BLOCK]);
        let five_gib = 5 * 1024 * 1024 * 1024 + 123;
        let sizes = block_sizes(five_gib);
        assert_eq!(sizes.len(), 2);
        assert_eq!(sizes.iter().sum::<u64>(), five_gib);
        assert!(sizes.iter().all(|s| *s <= MAX_BLOCK));
    }

    #[test]
    fn nonces_have_one_length_and_grow_with_time() {
        let a = timed_nonce();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = timed_nonce();
        assert_eq!(a.len(), 32);
        assert_eq!(b.len(), 32);
        assert!(a[..16] < b[..16]);
    }
}
