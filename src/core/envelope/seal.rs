//! Plaintext stream → ciphertext stream. Memory is bounded by one segment buffer plus the input chunk
//! being consumed, whatever the object size.
//!
//! The final segment is sealed only after the input has ended with exactly the declared length. An
//! upstream wrapper verifies checksums at end of stream and reports a mismatch as an `Err` item there;
//! holding back the final segment until then means a bad body can never produce a complete ciphertext.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

use super::format::{ciphertext_len, segment_count, FormatError, MAX_PLAINTEXT_LEN, SEGMENT_SIZE, TAG_LEN};
use super::keys::ObjectKeys;
use super::source::SealKeys;
use crate::backend::ByteStream;

// SEGMENT_SIZE and TAG_LEN are small constants; these casts cannot truncate.
const S: usize = SEGMENT_SIZE as usize;
const SEGMENT_BUF: usize = S + TAG_LEN as usize;

/// Encrypts `body`, which must yield exactly `plain_len` bytes, into the v1 segment stream
/// (`ciphertext_len(plain_len)` bytes, one `Bytes` item per segment).
///
/// Errors end the stream: an upstream `Err` item is passed on unchanged; a body longer or shorter than
/// `plain_len` (or `plain_len` above the format maximum) yields an `io::ErrorKind::InvalidData` error
/// wrapping [`FormatError::LengthMismatch`]. In every error case the final segment is never emitted, so
/// the output can never be mistaken for a complete object.
pub fn seal_stream(keys: ObjectKeys, plain_len: u64, body: ByteStream) -> ByteStream {
    seal_with(SealKeys::Object(keys), plain_len, body)
}

/// [`seal_stream`] for either scheme: a whole object, or one part of a multipart upload (whose last
/// segment is flagged last-in-part).
pub fn seal_with(keys: SealKeys, plain_len: u64, body: ByteStream) -> ByteStream {
    Box::pin(Sealer {
        keys,
        plain_len,
        last_index: segment_count(plain_len) - 1,
        body,
        pending: Bytes::new(),
        buf: BytesMut::with_capacity(SEGMENT_BUF),
        index: 0,
        received: 0,
        done: false,
    })
}

/// Encrypts a whole in-memory plaintext (tests, benches, small bodies). Same bytes as [`seal_stream`].
pub fn seal_all(keys: &ObjectKeys, plain: &[u8]) -> Result<Vec<u8>, FormatError> {
    let plain_len = plain.len() as u64;
    if plain_len > MAX_PLAINTEXT_LEN {
        return Err(FormatError::LengthMismatch);
    }
    let mut out = Vec::with_capacity(usize::try_from(ciphertext_len(plain_len)).map_err(|_| FormatError::Crypto)?);
    let last_index = segment_count(plain_len) - 1;
    // `chunks` yields nothing for an empty input, but an empty object still has one (empty) segment.
    let mut chunks: Vec<&[u8]> = plain.chunks(S).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for (index, chunk) in (0u64..).zip(chunks) {
        let start = out.len();
        out.extend_from_slice(chunk);
        let tag = keys.seal_segment(index, index == last_index, out.get_mut(start..).ok_or(FormatError::Crypto)?)?;
        out.extend_from_slice(&tag);
    }
    Ok(out)
}

struct Sealer {
    keys: SealKeys,
    plain_len: u64,
    /// Index of the object's final segment (sealed with the final flag, and only at end of input).
    last_index: u64,
    body: ByteStream,
    /// Part of the last input chunk not yet copied into `buf`.
    pending: Bytes,
    /// Plaintext of the segment being filled; capacity leaves room for the tag.
    buf: BytesMut,
    index: u64,
    /// Input bytes seen so far (checked against `plain_len` as each chunk arrives).
    received: u64,
    done: bool,
}

fn length_mismatch() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, FormatError::LengthMismatch)
}

impl Sealer {
    /// Seals the buffered plaintext as segment `self.index` and returns stored bytes (ciphertext ‖ tag).
    fn seal_buffered(&mut self, is_final: bool) -> io::Result<Bytes> {
        let mut seg = std::mem::replace(&mut self.buf, BytesMut::with_capacity(if is_final { 0 } else { SEGMENT_BUF }));
        let tag = self.keys.seal(self.index, is_final, &mut seg).map_err(io::Error::other)?;
        seg.extend_from_slice(&tag);
        self.index += 1;
        Ok(seg.freeze())
    }

    /// Seals the first `S` bytes of `pending` (a whole non-final segment) out of place.
    fn seal_direct(&mut self) -> io::Result<Bytes> {
        let plain = self.pending.split_to(S);
        let mut seg = BytesMut::zeroed(SEGMENT_BUF);
        self.keys.seal_into(self.index, false, &plain, &mut seg).map_err(io::Error::other)?;
        self.index += 1;
        Ok(seg.freeze())
    }

    fn fail(&mut self, err: io::Error) -> Poll<Option<io::Result<Bytes>>> {
        self.done = true;
        // Drop buffered plaintext promptly; nothing more will be emitted.
        self.buf = BytesMut::new();
        self.pending = Bytes::new();
        Poll::Ready(Some(Err(err)))
    }
}

impl Stream for Sealer {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            // Fast path: a whole non-final segment is in the input chunk; seal it straight from there.
            if this.buf.is_empty() && this.pending.len() >= S && this.index < this.last_index {
                let sealed = this.seal_direct();
                return match sealed {
                    Ok(seg) => Poll::Ready(Some(Ok(seg))),
                    Err(e) => this.fail(e),
                };
            }
            // Move buffered input into the segment; a full non-final segment goes out at once.
            while !this.pending.is_empty() {
                let take = (S - this.buf.len()).min(this.pending.len());
                if take == 0 {
                    // Only the final segment can be full here, and then all input is accounted for.
                    return this.fail(length_mismatch());
                }
                this.buf.extend_from_slice(&this.pending.split_to(take));
                if this.buf.len() == S && this.index < this.last_index {
                    let sealed = this.seal_buffered(false);
                    return match sealed {
                        Ok(seg) => Poll::Ready(Some(Ok(seg))),
                        Err(e) => this.fail(e),
                    };
                }
            }
            match ready!(this.body.poll_next_unpin(cx)) {
                Some(Ok(chunk)) => {
                    match this.received.checked_add(chunk.len() as u64) {
                        Some(r) if r <= this.plain_len => this.received = r,
                        _ => return this.fail(length_mismatch()),
                    }
                    this.pending = chunk;
                }
                Some(Err(e)) => return this.fail(e),
                None => {
                    if this.received != this.plain_len || this.plain_len > MAX_PLAINTEXT_LEN {
                        return this.fail(length_mismatch());
                    }
                    this.done = true;
                    return Poll::Ready(Some(this.seal_buffered(true)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::keys::DataKey;
    use futures::stream;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    fn keys() -> ObjectKeys {
        ObjectKeys::derive(&DataKey::from_bytes([9; 32]), &[1; 32]).unwrap()
    }

    fn body(chunks: Vec<io::Result<Bytes>>) -> ByteStream {
        Box::pin(stream::iter(chunks))
    }

    fn collect(s: ByteStream) -> Vec<io::Result<Bytes>> {
        block_on(s.collect::<Vec<_>>())
    }

    #[test]
    fn stream_matches_seal_all_and_one_item_per_segment() {
        // Chunkings that hit the copy path (small pieces), the direct path (whole segments in one chunk) and both.
        for chunk in [10_007, 1000, S, 3 * S + 5] {
            for len in [0usize, 1, S - 1, S, S + 1, 3 * S + 17] {
                let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let chunks = plain.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
                let items = collect(seal_stream(keys(), len as u64, body(chunks)));
                assert_eq!(items.len() as u64, segment_count(len as u64), "len {len}");
                let joined: Vec<u8> = items.into_iter().flat_map(|i| i.unwrap().to_vec()).collect();
                assert_eq!(joined.len() as u64, ciphertext_len(len as u64));
                assert_eq!(joined, seal_all(&keys(), &plain).unwrap(), "len {len} chunk {chunk}");
            }
        }
    }

    fn assert_fails_without_final(items: Vec<io::Result<Bytes>>, full_segments: usize) {
        let (last, ok) = items.split_last().unwrap();
        assert!(last.is_err());
        assert_eq!(ok.len(), full_segments);
        assert!(ok.iter().all(|i| i.as_ref().unwrap().len() == SEGMENT_BUF));
    }

    #[test]
    fn short_body_fails_without_final_segment() {
        let plain = vec![7u8; S + 10];
        let items = collect(seal_stream(keys(), (S + 11) as u64, body(vec![Ok(Bytes::from(plain))])));
        assert_fails_without_final(items, 1);
        let items = collect(seal_stream(keys(), 5, body(vec![])));
        assert_fails_without_final(items, 0);
    }

    #[test]
    fn long_body_fails_without_final_segment() {
        let items = collect(seal_stream(keys(), S as u64, body(vec![Ok(Bytes::from(vec![1u8; S + 1]))])));
        assert_fails_without_final(items, 0);
        let chunks = vec![Ok(Bytes::from(vec![1u8; S])), Ok(Bytes::from_static(b"x"))];
        let items = collect(seal_stream(keys(), S as u64, body(chunks)));
        assert_fails_without_final(items, 0);
        let items = collect(seal_stream(keys(), 0, body(vec![Ok(Bytes::from_static(b"x"))])));
        assert_fails_without_final(items, 0);
    }

    #[test]
    fn upstream_error_at_end_is_passed_on_and_no_final_segment() {
        let chunks = vec![Ok(Bytes::from(vec![1u8; 2 * S])), Err(io::Error::other("checksum mismatch"))];
        let items = collect(seal_stream(keys(), 2 * S as u64, body(chunks)));
        assert_fails_without_final(items, 1);
        let chunks = vec![Ok(Bytes::from(vec![1u8; 2 * S])), Err(io::Error::other("boom"))];
        let items = collect(seal_stream(keys(), 2 * S as u64, body(chunks)));
        let err = items.last().unwrap().as_ref().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert_eq!(err.to_string(), "boom");
    }

    #[test]
    fn length_error_is_typed() {
        let items = collect(seal_stream(keys(), 3, body(vec![])));
        let err = items.into_iter().next().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<FormatError>());
        assert_eq!(inner, Some(&FormatError::LengthMismatch));
    }
}
