//! Plaintext byte ranges → segment-aligned stored byte ranges. Segments are authenticated whole, so a
//! ranged read fetches every segment the range touches and drops the unwanted plaintext at both ends.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::ops::{Range, RangeInclusive};

use super::format::{ciphertext_len, segment_count, FormatError, MAX_PLAINTEXT_LEN, SEGMENT_CIPHER_SIZE, SEGMENT_SIZE};

/// How to serve a plaintext range: which stored bytes to fetch and which decrypted bytes to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CipherRange {
    /// Stored (ciphertext) byte range to fetch; starts and ends on segment boundaries.
    pub cipher: Range<u64>,
    /// Index of the segment at `cipher.start`.
    pub first_segment: u64,
    /// Plaintext bytes to drop from the start of the first decrypted segment.
    pub skip: u64,
    /// Plaintext bytes to emit after the skipped ones.
    pub len: u64,
}

impl CipherRange {
    /// Checks that this plan fits a `plain_len`-byte object and returns the indices of the segments it
    /// covers. Fails with [`FormatError::RangeOutOfBounds`] if the range does not start and end on segment
    /// boundaries of that object, covers no segment, or asks for more plaintext than its segments hold.
    pub fn segments(&self, plain_len: u64) -> Result<RangeInclusive<u64>, FormatError> {
        let oob = FormatError::RangeOutOfBounds;
        if plain_len > MAX_PLAINTEXT_LEN || self.cipher.start >= self.cipher.end {
            return Err(oob);
        }
        let n = segment_count(plain_len);
        let last_index = n - 1; // n >= 1
        if self.first_segment > last_index || self.cipher.start != self.first_segment * SEGMENT_CIPHER_SIZE {
            return Err(oob);
        }
        // The covered segments end either at a full-segment boundary or at the end of the object.
        let last = if self.cipher.end == ciphertext_len(plain_len) {
            last_index
        } else if self.cipher.end.is_multiple_of(SEGMENT_CIPHER_SIZE) && self.cipher.end < ciphertext_len(plain_len) {
            self.cipher.end / SEGMENT_CIPHER_SIZE - 1
        } else {
            return Err(oob);
        };
        if last < self.first_segment {
            return Err(oob);
        }
        let covered_start = self.first_segment * SEGMENT_SIZE;
        let covered_end = last.saturating_add(1).saturating_mul(SEGMENT_SIZE).min(plain_len);
        let wanted_end =
            covered_start.checked_add(self.skip).and_then(|s| s.checked_add(self.len)).ok_or(oob.clone())?;
        if wanted_end > covered_end {
            return Err(oob);
        }
        Ok(self.first_segment..=last)
    }
}

/// Plans the read of plaintext bytes `plain` of a `plain_len`-byte object.
///
/// `plain` must satisfy `start <= end <= plain_len`, else [`FormatError::RangeOutOfBounds`]. The result
/// fetches every segment that holds a byte of the range; an empty range fetches the one segment at its
/// start (clamped to the last segment), so that an empty object still has its single empty segment
/// authenticated. `len == plain.end - plain.start`.
pub fn plan_range(plain_len: u64, plain: Range<u64>) -> Result<CipherRange, FormatError> {
    if plain_len > MAX_PLAINTEXT_LEN || plain.start > plain.end || plain.end > plain_len {
        return Err(FormatError::RangeOutOfBounds);
    }
    let last_index = segment_count(plain_len) - 1;
    let first = (plain.start / SEGMENT_SIZE).min(last_index);
    let last = if plain.end > plain.start { (plain.end - 1) / SEGMENT_SIZE } else { first };
    let cipher_end = (last + 1).saturating_mul(SEGMENT_CIPHER_SIZE).min(ciphertext_len(plain_len));
    Ok(CipherRange {
        cipher: first * SEGMENT_CIPHER_SIZE..cipher_end,
        first_segment: first,
        skip: plain.start - first * SEGMENT_SIZE,
        len: plain.end - plain.start,
    })
}

/// The stored byte window covering the segments of plaintext bytes `start..=end_inclusive`, computed
/// without knowing the object's size, so a ranged GET is one backend request. `None` means "to the end"
/// and gives a window ending at `u64::MAX`. The backend must clamp the window to the stored size; the
/// clamped window then equals [`plan_range`]`(plain_len, start..end+1).cipher` for any in-bounds range.
/// (`end_inclusive < start` is treated as the single byte `start`.)
pub fn fetch_window(start: u64, end_inclusive: Option<u64>) -> Range<u64> {
    let first = start / SEGMENT_SIZE;
    let window_start = first.saturating_mul(SEGMENT_CIPHER_SIZE);
    let window_end = match end_inclusive {
        None => u64::MAX,
        Some(end) => (end.max(start) / SEGMENT_SIZE).saturating_add(1).saturating_mul(SEGMENT_CIPHER_SIZE),
    };
    window_start..window_end
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = SEGMENT_SIZE;
    const SC: u64 = SEGMENT_CIPHER_SIZE;

    #[test]
    fn empty_object_fetches_its_single_segment() {
        let p = plan_range(0, 0..0).unwrap();
        assert_eq!(p, CipherRange { cipher: 0..16, first_segment: 0, skip: 0, len: 0 });
        assert_eq!(p.segments(0).unwrap(), 0..=0);
    }

    #[test]
    fn plans_known_ranges() {
        let p = plan_range(3 * S + 17, S - 1..S + 1).unwrap();
        assert_eq!(p, CipherRange { cipher: 0..2 * SC, first_segment: 0, skip: S - 1, len: 2 });
        let p = plan_range(3 * S + 17, 3 * S..3 * S + 17).unwrap();
        assert_eq!(p, CipherRange { cipher: 3 * SC..3 * SC + 33, first_segment: 3, skip: 0, len: 17 });
        let p = plan_range(2 * S, 2 * S..2 * S).unwrap();
        assert_eq!(p.cipher, SC..2 * SC);
        assert_eq!(p.skip, S);
    }

    #[test]
    fn rejects_out_of_bounds() {
        assert_eq!(plan_range(10, 0..11), Err(FormatError::RangeOutOfBounds));
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 5..4;
        assert_eq!(plan_range(10, reversed), Err(FormatError::RangeOutOfBounds));
        assert_eq!(plan_range(u64::MAX, 0..1), Err(FormatError::RangeOutOfBounds));
    }

    #[test]
    fn segments_rejects_inconsistent_plans() {
        let good = plan_range(3 * S, S..S + 5).unwrap();
        assert_eq!(good.segments(3 * S).unwrap(), 1..=1);
        let bad = [
            CipherRange { cipher: 1..SC, ..good.clone() },
            CipherRange { cipher: SC..SC + 7, ..good.clone() },
            CipherRange { first_segment: 0, ..good.clone() },
            CipherRange { skip: S, ..good.clone() },
            CipherRange { cipher: SC..SC, ..good.clone() },
            CipherRange { cipher: 3 * SC..4 * SC, first_segment: 3, skip: 0, len: 0 },
        ];
        for b in bad {
            assert_eq!(b.segments(3 * S), Err(FormatError::RangeOutOfBounds), "{b:?}");
        }
    }

    #[test]
    fn fetch_window_open_ended() {
        assert_eq!(fetch_window(S + 3, None), SC..u64::MAX);
        assert_eq!(fetch_window(u64::MAX, Some(u64::MAX)).end, u64::MAX);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn plan_is_consistent_and_matches_clamped_window(plain_len in 0u64..10 * S, a in any::<u64>(), b in any::<u64>()) {
            let (mut a, mut b) = (a % (plain_len + 1), b % (plain_len + 1));
            if a > b { std::mem::swap(&mut a, &mut b); }
            let p = plan_range(plain_len, a..b).unwrap();
            prop_assert_eq!(p.len, b - a);
            let segs = p.segments(plain_len).unwrap();
            prop_assert_eq!(*segs.start(), p.first_segment);
            prop_assert!(p.cipher.end <= ciphertext_len(plain_len));
            if b > a {
                let w = fetch_window(a, Some(b - 1));
                let clamped = w.start..w.end.min(ciphertext_len(plain_len));
                prop_assert_eq!(clamped, p.cipher.clone());
                let open = fetch_window(a, None);
                prop_assert_eq!(open.start, p.cipher.start);
            }
        }
    }
}
