//! Ciphertext stream → verified plaintext stream, as an explicit state machine:
//! `Segment { index } → … → AwaitEnd → Done` (or `Done` after an error).
//!
//! Each segment is buffered whole and authenticated, with its index and final flag, before any of its
//! bytes are released. The last segment's plaintext is held back until the stored body has ended, so
//! appended bytes are reported instead of silently ignored. Memory: one segment buffer plus the input
//! chunk being consumed.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};

use super::format::{ciphertext_len, segment_count, segment_plain_len, FormatError, MAX_PLAINTEXT_LEN, TAG_LEN};
use super::keys::ObjectKeys;
use super::range::CipherRange;
use super::source::SegmentKeys;
use crate::backend::ByteStream;

/// Decrypts the stored bytes `plan.cipher` of a `plain_len`-byte object (which `body` must yield, no
/// more, no less) and yields exactly the `plan.len` plaintext bytes starting `plan.skip` into segment
/// `plan.first_segment`.
///
/// The caller must have checked the key commitment ([`ObjectKeys::verify_commitment`]) first.
/// Failures are one `io::ErrorKind::InvalidData` item wrapping a [`FormatError`], after which the
/// stream ends: `SegmentAuth { index }` (tampered, reordered, wrong key), `Truncated` (body ended early),
/// `TrailingBytes` (body too long), `RangeOutOfBounds` (plan does not fit `plain_len`). An upstream `Err`
/// item is passed on unchanged and also ends the stream.
pub fn open_stream(keys: ObjectKeys, plain_len: u64, plan: CipherRange, body: ByteStream) -> ByteStream {
    open_segments(SegmentKeys::Single { keys, plain_len }, plan, body)
}

/// [`open_stream`] for either segment scheme (single stream or multipart layout).
pub fn open_segments(keys: SegmentKeys, plan: CipherRange, body: ByteStream) -> ByteStream {
    let (state, last_segment) = match keys.check_plan(&plan) {
        Ok((first, last)) => (State::Segment { index: first }, last),
        Err(e) => (State::Failed(e), 0),
    };
    Box::pin(Opener {
        keys,
        last_segment,
        to_skip: plan.skip,
        remaining: plan.len,
        body,
        pending: Bytes::new(),
        buf: BytesMut::new(),
        held: Bytes::new(),
        state,
    })
}

/// Decrypts a whole stored object in memory (tests and tools). Checks the length first, so truncated or
/// extended ciphertext fails with `Truncated` / `TrailingBytes`; otherwise like [`open_stream`].
pub fn open_all(keys: &ObjectKeys, plain_len: u64, ciphertext: &[u8]) -> Result<Vec<u8>, FormatError> {
    if plain_len > MAX_PLAINTEXT_LEN {
        return Err(FormatError::RangeOutOfBounds);
    }
    let expected = ciphertext_len(plain_len);
    let actual = ciphertext.len() as u64;
    if actual < expected {
        return Err(FormatError::Truncated);
    }
    if actual > expected {
        return Err(FormatError::TrailingBytes);
    }
    // Decrypt in a copy so the caller's bytes stay untouched; failed segments are never copied out.
    let mut work = ciphertext.to_vec();
    let mut rest = work.as_mut_slice();
    let mut plain = Vec::with_capacity(usize::try_from(plain_len).map_err(|_| FormatError::Crypto)?);
    let final_index = segment_count(plain_len) - 1;
    for index in 0..=final_index {
        let (seg, tail) =
            rest.split_at_mut_checked(stored_segment_len(plain_len, index)?).ok_or(FormatError::Truncated)?;
        let n = keys.open_segment(index, index == final_index, seg)?;
        plain.extend_from_slice(seg.get(..n).ok_or(FormatError::Crypto)?);
        rest = tail;
    }
    Ok(plain)
}

/// Stored bytes of segment `index` of a `plain_len`-byte object.
fn stored_segment_len(plain_len: u64, index: u64) -> Result<usize, FormatError> {
    let plain = segment_plain_len(plain_len, index).ok_or(FormatError::RangeOutOfBounds)?;
    usize::try_from(plain + TAG_LEN).map_err(|_| FormatError::Crypto)
}

enum State {
    /// Filling `buf` with the stored bytes of segment `index`.
    Segment { index: u64 },
    /// All planned segments opened; the last plaintext piece waits in `held` until the body ends.
    AwaitEnd,
    /// The plan was invalid: report it on the first poll.
    Failed(FormatError),
    /// Finished or failed; yields nothing more.
    Done,
}

struct Opener {
    keys: SegmentKeys,
    /// Last segment index this plan covers.
    last_segment: u64,
    to_skip: u64,
    remaining: u64,
    body: ByteStream,
    pending: Bytes,
    buf: BytesMut,
    held: Bytes,
    state: State,
}

fn invalid(e: FormatError) -> io::Error {
    crate::metrics::get().integrity_failure(e.kind());
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Opener {
    fn fail(&mut self, err: io::Error) -> Poll<Option<io::Result<Bytes>>> {
        self.state = State::Done;
        self.buf = BytesMut::new();
        self.pending = Bytes::new();
        self.held = Bytes::new();
        Poll::Ready(Some(Err(err)))
    }

    /// Authenticates and decrypts segment `index`, which must be whole in `buf`; returns its plaintext.
    fn open_buffered(&mut self, index: u64) -> Result<BytesMut, FormatError> {
        let mut seg = std::mem::take(&mut self.buf);
        let n = self.keys.open(index, &mut seg)?;
        seg.truncate(n);
        Ok(seg)
    }

    /// Authenticates and decrypts segment `index` straight from `pending`, which holds it whole
    /// (`want` stored bytes), without copying it into `buf` first.
    fn open_direct(&mut self, index: u64, want: usize) -> Result<BytesMut, FormatError> {
        let stored = self.pending.split_to(want);
        let mut plain = BytesMut::zeroed(want.saturating_sub(TAG_LEN as usize));
        self.keys.open_into(index, &stored, &mut plain)?;
        Ok(plain)
    }

    /// Cuts an authenticated segment's plaintext down to the bytes the plan asks for.
    fn trim(&mut self, plain: BytesMut) -> Bytes {
        let mut plain = plain.freeze();
        let skip = usize::try_from(self.to_skip).unwrap_or(usize::MAX).min(plain.len());
        plain.advance(skip);
        self.to_skip -= skip as u64;
        let take = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(plain.len());
        plain.truncate(take);
        self.remaining -= take as u64;
        plain
    }

    /// Feeds `pending` into the segment buffer; returns whether the segment is complete.
    fn fill(&mut self, want: usize) -> bool {
        if self.buf.capacity() < want {
            self.buf.reserve(want - self.buf.len());
        }
        let take = (want - self.buf.len()).min(self.pending.len());
        if let Some(chunk) = self.pending.get(..take) {
            self.buf.extend_from_slice(chunk);
        }
        self.pending.advance(take);
        self.buf.len() == want
    }
}

impl Stream for Opener {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, State::Done) {
                State::Done => return Poll::Ready(None),
                State::Failed(e) => return this.fail(invalid(e)),
                State::Segment { index } => {
                    let want = match this.keys.segment_stored_len(index) {
                        Ok(w) => w,
                        Err(e) => return this.fail(invalid(e)),
                    };
                    let opened = if this.buf.is_empty() && this.pending.len() >= want {
                        // Fast path: the whole segment is in the input chunk; open it from there.
                        this.open_direct(index, want)
                    } else if this.fill(want) {
                        this.open_buffered(index)
                    } else {
                        this.state = State::Segment { index };
                        match ready!(this.body.poll_next_unpin(cx)) {
                            Some(Ok(chunk)) => this.pending = chunk,
                            Some(Err(e)) => return this.fail(e),
                            None => return this.fail(invalid(FormatError::Truncated)),
                        }
                        continue;
                    };
                    let plain = match opened {
                        Ok(p) => this.trim(p),
                        Err(e) => return this.fail(invalid(e)),
                    };
                    if index == this.last_segment {
                        this.held = plain;
                        this.state = State::AwaitEnd;
                        continue;
                    }
                    this.state = State::Segment { index: index + 1 };
                    if !plain.is_empty() {
                        return Poll::Ready(Some(Ok(plain)));
                    }
                }
                State::AwaitEnd => {
                    if !this.pending.is_empty() {
                        return this.fail(invalid(FormatError::TrailingBytes));
                    }
                    this.state = State::AwaitEnd;
                    match ready!(this.body.poll_next_unpin(cx)) {
                        Some(Ok(chunk)) => this.pending = chunk,
                        Some(Err(e)) => return this.fail(e),
                        None => {
                            this.state = State::Done;
                            let held = std::mem::take(&mut this.held);
                            if !held.is_empty() {
                                return Poll::Ready(Some(Ok(held)));
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::envelope::format::{SEGMENT_CIPHER_SIZE, SEGMENT_SIZE};
    use crate::core::envelope::range::plan_range;
    use crate::core::envelope::seal::{seal_all, seal_stream};
    use crate::core::keys::DataKey;
    use futures::stream;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }
    use proptest::prelude::*;

    const S: usize = SEGMENT_SIZE as usize;
    const SC: usize = SEGMENT_CIPHER_SIZE as usize;

    fn keys() -> ObjectKeys {
        ObjectKeys::derive(&DataKey::from_bytes([3; 32]), &[4; 32]).unwrap()
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 253) as u8).collect()
    }

    /// Splits `data` into chunks whose sizes cycle through `sizes` (all > 0).
    fn chunked(data: &[u8], sizes: &[usize]) -> ByteStream {
        let mut items = Vec::new();
        let mut rest = data;
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (head, tail) = rest.split_at((*size).min(rest.len()));
            items.push(Ok(Bytes::copy_from_slice(head)));
            rest = tail;
        }
        Box::pin(stream::iter(items))
    }

    /// Runs a stream to its end; `Err` if any item failed (and checks nothing follows the error).
    fn drain(s: ByteStream) -> Result<Vec<u8>, io::Error> {
        let items = block_on(s.collect::<Vec<_>>());
        let mut out = Vec::new();
        let count = items.len();
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => {
                    assert_eq!(i + 1, count, "items after an error");
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    fn open_whole(plain_len: u64, cipher: &[u8], sizes: &[usize]) -> Result<Vec<u8>, io::Error> {
        let plan = plan_range(plain_len, 0..plain_len).unwrap();
        drain(open_stream(keys(), plain_len, plan, chunked(cipher, sizes)))
    }

    fn format_err(e: &io::Error) -> Option<FormatError> {
        e.get_ref().and_then(|i| i.downcast_ref::<FormatError>()).cloned()
    }

    #[test]
    fn round_trip_edge_sizes() {
        for len in [0, 1, S - 1, S, S + 1, 3 * S + 17] {
            let plain = pattern(len);
            let cipher = seal_all(&keys(), &plain).unwrap();
            assert_eq!(open_all(&keys(), len as u64, &cipher).unwrap(), plain, "len {len}");
            assert_eq!(open_whole(len as u64, &cipher, &[4096, 77_777, 1]).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn any_bit_flip_is_detected() {
        let len = S + 40;
        let cipher = seal_all(&keys(), &pattern(len)).unwrap();
        // Every bit of the short final segment, and a sample of bits across the full one.
        let positions = (SC..cipher.len()).chain((0..SC).step_by(997)).chain([SC - 1]);
        for pos in positions {
            for bit in [0u8, 3, 7] {
                let mut bad = cipher.clone();
                bad[pos] ^= 1 << bit;
                assert!(open_all(&keys(), len as u64, &bad).is_err(), "flip at {pos}");
                let err = open_whole(len as u64, &bad, &[SC]).unwrap_err();
                assert!(matches!(format_err(&err), Some(FormatError::SegmentAuth { .. })), "flip at {pos}");
            }
        }
    }

    #[test]
    fn truncation_is_detected() {
        let len = 3 * S + 17;
        let cipher = seal_all(&keys(), &pattern(len)).unwrap();
        let cuts = [0, 1, SC - 1, SC, SC + 1, 2 * SC, 3 * SC, 3 * SC + 16, cipher.len() - 1];
        for cut in cuts {
            let err = open_whole(len as u64, &cipher[..cut], &[5000]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert_eq!(format_err(&err), Some(FormatError::Truncated), "cut {cut}");
            assert_eq!(open_all(&keys(), len as u64, &cipher[..cut]), Err(FormatError::Truncated));
        }
        // Truncation at a boundary while claiming the shorter length: the final flag catches it.
        let err = open_whole(2 * S as u64, &cipher[..2 * SC], &[SC]).unwrap_err();
        assert_eq!(format_err(&err), Some(FormatError::SegmentAuth { index: 1 }));
    }

    #[test]
    fn appended_bytes_are_detected() {
        for len in [0, 10, S, 2 * S + 3] {
            let mut cipher = seal_all(&keys(), &pattern(len)).unwrap();
            cipher.push(0);
            let err = open_whole(len as u64, &cipher, &[S]).unwrap_err();
            assert_eq!(format_err(&err), Some(FormatError::TrailingBytes), "len {len}");
            assert_eq!(open_all(&keys(), len as u64, &cipher), Err(FormatError::TrailingBytes));
            // A whole extra segment after the final one.
            let extra = seal_all(&keys(), &pattern(S)).unwrap();
            cipher.pop();
            cipher.extend_from_slice(&extra[..SC]);
            assert!(open_whole(len as u64, &cipher, &[S]).is_err());
        }
    }

    #[test]
    fn swap_duplicate_drop_are_detected() {
        let len = 3 * S + 17;
        let cipher = seal_all(&keys(), &pattern(len)).unwrap();
        let seg = |i: usize| cipher[i * SC..((i + 1) * SC).min(cipher.len())].to_vec();
        let swapped = [seg(1), seg(0), seg(2), seg(3)].concat();
        let duplicated = [seg(0), seg(0), seg(2), seg(3)].concat();
        let dropped_claiming_shorter = [seg(0), seg(2), seg(3)].concat();
        for bad in [&swapped, &duplicated] {
            assert!(open_all(&keys(), len as u64, bad).is_err());
            assert!(open_whole(len as u64, bad, &[SC]).is_err());
        }
        assert!(open_all(&keys(), (2 * S + 17) as u64, &dropped_claiming_shorter).is_err());
        assert!(open_whole((2 * S + 17) as u64, &dropped_claiming_shorter, &[SC]).is_err());
    }

    #[test]
    fn wrong_key_fails_segment_auth() {
        let cipher = seal_all(&keys(), &pattern(100)).unwrap();
        let other = ObjectKeys::derive(&DataKey::from_bytes([5; 32]), &[4; 32]).unwrap();
        assert_eq!(open_all(&other, 100, &cipher), Err(FormatError::SegmentAuth { index: 0 }));
    }

    #[test]
    fn no_plaintext_released_before_segment_authenticates() {
        let len = 2 * S;
        let mut cipher = seal_all(&keys(), &pattern(len)).unwrap();
        cipher[SC + 5] ^= 1;
        let plan = plan_range(len as u64, 0..len as u64).unwrap();
        let items = block_on(open_stream(keys(), len as u64, plan, chunked(&cipher, &[1000])).collect::<Vec<_>>());
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap().len(), S);
        assert!(items[1].is_err());
    }

    #[test]
    fn upstream_error_is_passed_on() {
        let plan = plan_range(10, 0..10).unwrap();
        let body: ByteStream = Box::pin(stream::iter(vec![Err(io::Error::other("net"))]));
        let err = drain(open_stream(keys(), 10, plan, body)).unwrap_err();
        assert_eq!(err.to_string(), "net");
    }

    #[test]
    fn inconsistent_plan_is_rejected() {
        let plan = CipherRange { cipher: 0..SC as u64, first_segment: 0, skip: 0, len: 10 };
        let err = drain(open_stream(keys(), 5, plan, chunked(&[], &[1]))).unwrap_err();
        assert_eq!(format_err(&err), Some(FormatError::RangeOutOfBounds));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn stream_round_trip_random_sizes_and_chunking(
            len in 0usize..300 * 1024,
            sizes in proptest::collection::vec(1usize..100_000, 1..8),
        ) {
            let plain = pattern(len);
            let body = chunked(&plain, &sizes);
            let sealed = drain(seal_stream(keys(), len as u64, body)).unwrap();
            prop_assert_eq!(&sealed, &seal_all(&keys(), &plain).unwrap());
            let mut rev = sizes.clone();
            rev.reverse();
            prop_assert_eq!(open_whole(len as u64, &sealed, &rev).unwrap(), plain);
        }

        #[test]
        fn random_ranges_match_slices(
            len in 0usize..300 * 1024,
            a in any::<usize>(),
            b in any::<usize>(),
            sizes in proptest::collection::vec(1usize..100_000, 1..4),
        ) {
            let plain = pattern(len);
            let cipher = seal_all(&keys(), &plain).unwrap();
            let (mut a, mut b) = (a % (len + 1), b % (len + 1));
            if a > b { std::mem::swap(&mut a, &mut b); }
            let plan = plan_range(len as u64, a as u64..b as u64).unwrap();
            let stored = &cipher[plan.cipher.start as usize..plan.cipher.end as usize];
            let got = drain(open_stream(keys(), len as u64, plan, chunked(stored, &sizes))).unwrap();
            prop_assert_eq!(&got[..], &plain[a..b]);
        }

        #[test]
        fn random_bit_flip_fails(len in 0usize..200 * 1024, pos in any::<usize>(), bit in 0u8..8) {
            let mut cipher = seal_all(&keys(), &pattern(len)).unwrap();
            let pos = pos % cipher.len();
            cipher[pos] ^= 1 << bit;
            prop_assert!(open_whole(len as u64, &cipher, &[SC]).is_err());
        }
    }
}
