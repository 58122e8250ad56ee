//! The part layout of a multipart object (algorithm 2): which parts, in which order, how long.
//!
//! Each part is its own segment stream (64 KiB segments, the last one of each part possibly short), so
//! the layout fixes where every segment lives in plaintext and in the stored bytes, and which (part
//! number, index, last-in-part) each segment must authenticate as. It travels as the `blobseal-layout`
//! metadata entry, covered by the envelope's metadata digest. Runs of consecutive part numbers with
//! equal lengths compress to one entry, so the usual upload (equal parts, a shorter last one) is two.
//!
//! Stored bytes = the parts' segment streams back to back, then `pad_len()` zero bytes. Padding is
//! added only when the stored size would otherwise look like a single-stream object of another
//! plaintext size; with it the stored size is one no single-stream object has, so a listing knows to
//! ask for the exact size instead of computing a wrong one (docs/FORMAT.md §13).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::ops::Range;

use super::format::{
    ciphertext_len, plaintext_len, segment_count, segment_plain_len, FormatError, MAX_PLAINTEXT_LEN,
    SEGMENT_CIPHER_SIZE, SEGMENT_SIZE, TAG_LEN,
};
use super::parts::SegmentPlace;
use super::range::CipherRange;

/// Metadata name of the encoded layout.
pub const LAYOUT_META: &str = "blobseal-layout";
/// Longest encoded layout blobseal writes (S3 caps all user metadata at 2 KiB).
pub const MAX_ENCODED_LAYOUT: usize = 1024;
/// Highest part number.
const MAX_PART_NUMBER: u32 = 10_000;
/// Encoding version prefix.
const PREFIX: &str = "1:";

/// `count` parts numbered `first_part..first_part + count`, each `part_len` plaintext bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartRun {
    pub first_part: u32,
    pub count: u32,
    pub part_len: u64,
}

// The unchecked products below are used only on runs of a `Layout`, whose constructor
// (`from_runs`) has checked with `checked_totals` that they, and their sums, fit in u64.
impl PartRun {
    /// `(plain, stored, segments)` of the run, or `None` when one overflows: the run comes from backend
    /// metadata, read before anything is authenticated, so nothing may be assumed about its numbers.
    fn checked_totals(&self) -> Option<(u64, u64, u64)> {
        let count = u64::from(self.count);
        Some((
            self.part_len.checked_mul(count)?,
            ciphertext_len(self.part_len).checked_mul(count)?,
            segment_count(self.part_len).checked_mul(count)?,
        ))
    }
    fn segments_per_part(&self) -> u64 {
        segment_count(self.part_len)
    }
    fn segments(&self) -> u64 {
        self.segments_per_part() * u64::from(self.count)
    }
    fn plain(&self) -> u64 {
        self.part_len * u64::from(self.count)
    }
    fn stored(&self) -> u64 {
        ciphertext_len(self.part_len) * u64::from(self.count)
    }
}

/// A validated layout with its totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    runs: Vec<PartRun>,
    plain_len: u64,
    body_len: u64,
    segments: u64,
    parts: u32,
}

/// One segment's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentPos {
    pub place: SegmentPlace,
    pub plain_start: u64,
    pub plain_len: u64,
    pub stored_start: u64,
}

impl SegmentPos {
    /// Stored bytes of the segment (plaintext plus its 16-byte tag).
    pub fn stored_len(&self) -> u64 {
        self.plain_len + TAG_LEN
    }
}

fn bad(what: &'static str) -> FormatError {
    FormatError::InvalidField(what)
}

impl Layout {
    /// Builds a layout from the completed parts in order: `(part number, plaintext length)`.
    /// Part numbers must be strictly ascending within 1..=10000 and there must be at least one part.
    pub fn from_parts(parts: &[(u32, u64)]) -> Result<Self, FormatError> {
        let mut runs: Vec<PartRun> = Vec::new();
        for &(number, len) in parts {
            match runs.last_mut() {
                Some(r) if r.part_len == len && r.first_part.checked_add(r.count) == Some(number) => r.count += 1,
                _ => runs.push(PartRun { first_part: number, count: 1, part_len: len }),
            }
        }
        Self::from_runs(runs)
    }

    fn from_runs(runs: Vec<PartRun>) -> Result<Self, FormatError> {
        if runs.is_empty() {
            return Err(bad("layout has no parts"));
        }
        let (mut plain, mut body, mut segments, mut parts) = (0u64, 0u64, 0u64, 0u32);
        let mut next_allowed = 1u32;
        for r in &runs {
            let last = r.count.checked_sub(1).and_then(|c| r.first_part.checked_add(c)).ok_or(bad("layout run"))?;
            if r.first_part < next_allowed || last > MAX_PART_NUMBER || r.part_len > MAX_PLAINTEXT_LEN {
                return Err(bad("layout run"));
            }
            next_allowed = last.checked_add(1).ok_or(bad("layout run"))?;
            let (run_plain, run_stored, run_segments) = r.checked_totals().ok_or(bad("layout size"))?;
            plain = plain.checked_add(run_plain).filter(|p| *p <= MAX_PLAINTEXT_LEN).ok_or(bad("layout size"))?;
            body = body.checked_add(run_stored).ok_or(bad("layout size"))?;
            segments = segments.checked_add(run_segments).ok_or(bad("layout size"))?;
            parts = parts.checked_add(r.count).ok_or(bad("layout size"))?;
        }
        Ok(Layout { runs, plain_len: plain, body_len: body, segments, parts })
    }

    /// The `blobseal-layout` value: `1:` then runs `first+countxlen` joined by `,`.
    pub fn encode(&self) -> String {
        let runs: Vec<String> =
            self.runs.iter().map(|r| format!("{}+{}x{}", r.first_part, r.count, r.part_len)).collect();
        format!("{PREFIX}{}", runs.join(","))
    }

    /// Parses [`Layout::encode`]'s output; anything else is [`FormatError::InvalidField`].
    pub fn decode(text: &str) -> Result<Self, FormatError> {
        let body = text.strip_prefix(PREFIX).ok_or(bad("layout version"))?;
        let mut runs = Vec::new();
        for item in body.split(',') {
            let (first, rest) = item.split_once('+').ok_or(bad("layout run"))?;
            let (count, len) = rest.split_once('x').ok_or(bad("layout run"))?;
            let num = |s: &str| -> Result<u64, FormatError> {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
                    return Err(bad("layout number"));
                }
                s.parse().map_err(|_| bad("layout number"))
            };
            let first = u32::try_from(num(first)?).map_err(|_| bad("layout number"))?;
            let count = u32::try_from(num(count)?).map_err(|_| bad("layout number"))?;
            runs.push(PartRun { first_part: first, count, part_len: num(len)? });
        }
        Self::from_runs(runs)
    }

    pub fn plain_len(&self) -> u64 {
        self.plain_len
    }

    /// Number of parts.
    pub fn part_count(&self) -> u32 {
        self.parts
    }

    pub fn segment_count(&self) -> u64 {
        self.segments
    }

    /// Stored bytes of the parts (without padding).
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// Zero bytes stored after the parts: 0 if the body's size already tells a listing the right
    /// plaintext size or no size at all; otherwise the fewest bytes that make it tell no size.
    pub fn pad_len(&self) -> u64 {
        match plaintext_len(self.body_len) {
            Some(p) if p != self.plain_len => {
                (1..=SEGMENT_CIPHER_SIZE).find(|pad| plaintext_len(self.body_len + pad).is_none()).unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Total stored size: body plus padding.
    pub fn stored_len(&self) -> u64 {
        self.body_len + self.pad_len()
    }

    /// Position of segment `g` (0-based over the whole object).
    pub fn segment(&self, g: u64) -> Option<SegmentPos> {
        let (mut seg0, mut plain0, mut stored0) = (0u64, 0u64, 0u64);
        for r in &self.runs {
            if g < seg0 + r.segments() {
                let spp = r.segments_per_part();
                let rel = g - seg0;
                let (j, index) = (rel / spp, rel % spp);
                let part_number = r.first_part + u32::try_from(j).ok()?;
                return Some(SegmentPos {
                    place: SegmentPlace { part_number, index, last_in_part: index + 1 == spp },
                    plain_start: plain0 + j * r.part_len + index * SEGMENT_SIZE,
                    plain_len: segment_plain_len(r.part_len, index)?,
                    stored_start: stored0 + j * ciphertext_len(r.part_len) + index * SEGMENT_CIPHER_SIZE,
                });
            }
            seg0 += r.segments();
            plain0 += r.plain();
            stored0 += r.stored();
        }
        None
    }

    /// Index of the segment holding plaintext byte `offset` (the last segment if `offset` is at or past
    /// the end).
    pub fn segment_at(&self, offset: u64) -> u64 {
        let (mut seg0, mut plain0) = (0u64, 0u64);
        for r in &self.runs {
            if offset < plain0 + r.plain() {
                let rel = offset - plain0;
                let j = rel / r.part_len; // r.plain() > 0 here, so part_len > 0
                return seg0 + j * r.segments_per_part() + (rel % r.part_len) / SEGMENT_SIZE;
            }
            seg0 += r.segments();
            plain0 += r.plain();
        }
        self.segments - 1
    }

    /// Plans the read of plaintext bytes `plain` (`start <= end <= plain_len`), like
    /// [`super::plan_range`] for single-stream objects.
    pub fn plan(&self, plain: Range<u64>) -> Result<CipherRange, FormatError> {
        if plain.start > plain.end || plain.end > self.plain_len {
            return Err(FormatError::RangeOutOfBounds);
        }
        let first = self.segment_at(plain.start);
        let last = if plain.end > plain.start { self.segment_at(plain.end - 1) } else { first };
        let a = self.segment(first).ok_or(FormatError::RangeOutOfBounds)?;
        let b = self.segment(last).ok_or(FormatError::RangeOutOfBounds)?;
        Ok(CipherRange {
            cipher: a.stored_start..b.stored_start + b.stored_len(),
            first_segment: first,
            skip: plain.start.saturating_sub(a.plain_start),
            len: plain.end - plain.start,
        })
    }

    /// Checks that `plan` fits this layout (starts and ends on segment boundaries, asks for no more than
    /// its segments hold) and returns its first and last segment.
    pub fn check_plan(&self, plan: &CipherRange) -> Result<(u64, u64), FormatError> {
        let oob = FormatError::RangeOutOfBounds;
        let a = self.segment(plan.first_segment).ok_or(oob.clone())?;
        if a.stored_start != plan.cipher.start || plan.cipher.end <= plan.cipher.start {
            return Err(oob);
        }
        let end_offset = plan.cipher.end.checked_sub(1).ok_or(oob.clone())?;
        let last = self.segment_at_stored(end_offset).ok_or(oob.clone())?;
        let b = self.segment(last).ok_or(oob.clone())?;
        if b.stored_start + b.stored_len() != plan.cipher.end {
            return Err(oob);
        }
        let wanted = a.plain_start.checked_add(plan.skip).and_then(|s| s.checked_add(plan.len)).ok_or(oob.clone())?;
        if wanted > b.plain_start + b.plain_len {
            return Err(oob);
        }
        Ok((plan.first_segment, last))
    }

    /// Index of the segment holding stored byte `offset`.
    fn segment_at_stored(&self, offset: u64) -> Option<u64> {
        let (mut seg0, mut stored0) = (0u64, 0u64);
        for r in &self.runs {
            if offset < stored0 + r.stored() {
                let rel = offset - stored0;
                let per_part = ciphertext_len(r.part_len);
                let j = rel / per_part;
                return Some(seg0 + j * r.segments_per_part() + (rel % per_part) / SEGMENT_CIPHER_SIZE);
            }
            seg0 += r.segments();
            stored0 += r.stored();
        }
        None
    }

    /// The plaintext range of the `ordinal`-th part (1-based, in object order), for `?partNumber=`.
    pub fn part_range(&self, ordinal: u32) -> Option<Range<u64>> {
        let (mut done, mut plain0) = (0u32, 0u64);
        for r in &self.runs {
            if ordinal > done && ordinal <= done + r.count {
                let start = plain0 + u64::from(ordinal - done - 1) * r.part_len;
                return Some(start..start + r.part_len);
            }
            done += r.count;
            plain0 += r.plain();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn runs_compress_and_round_trip() {
        let l = Layout::from_parts(&[(1, 8 * MIB), (2, 8 * MIB), (3, 8 * MIB), (4, 100)]).unwrap();
        assert_eq!(l.encode(), "1:1+3x8388608,4+1x100");
        assert_eq!(Layout::decode(&l.encode()).unwrap(), l);
        assert_eq!(l.plain_len(), 24 * MIB + 100);
        assert_eq!(l.part_count(), 4);
        let gaps = Layout::from_parts(&[(1, 5 * MIB), (3, 5 * MIB), (4, 7)]).unwrap();
        assert_eq!(gaps.encode(), "1:1+1x5242880,3+1x5242880,4+1x7");
    }

    #[test]
    fn decode_rejects_malformed() {
        for bad in [
            "",
            "2:1+1x5",
            "1:",
            "1:0+1x5",
            "1:1+0x5",
            "1:2+1x5,1+1x5",
            "1:1+1x5,1+1x5",
            "1:01+1x5",
            "1:1+1x-5",
            "1:9999+3x5",
            "1:1+1x5,",
            "1:1x1+5",
        ] {
            assert!(Layout::decode(bad).is_err(), "{bad}");
        }
        assert!(Layout::from_parts(&[]).is_err());
    }

    /// Found by review (issue 11): the run's products were computed unchecked from backend metadata, so
    /// a debug build panicked on overflow and a release build wrapped around to a small, wrong size.
    #[test]
    fn huge_runs_are_refused_not_overflowed() {
        let max = MAX_PLAINTEXT_LEN;
        for text in [
            format!("1:1+10000x{max}"),
            format!("1:1+2x{max}"),
            format!("1:1+1x{max},2+1x{max}"),
            format!("1:1+1x{},2+9999x{max}", u64::MAX),
            "1:4294967295+1x1".to_owned(),
            "1:1+4294967295x1".to_owned(),
        ] {
            assert!(Layout::decode(&text).is_err(), "{text}");
        }
        // The largest single part still decodes, with exact totals.
        let one = Layout::decode(&format!("1:1+1x{max}")).unwrap();
        assert_eq!(one.plain_len(), max);
    }

    #[test]
    fn regular_layout_matches_single_stream_geometry() {
        // Parts that are whole multiples of the segment size sit on the single-stream grid.
        let l = Layout::from_parts(&[(1, 5 * MIB), (2, 5 * MIB), (3, 12345)]).unwrap();
        assert_eq!(l.body_len(), ciphertext_len(10 * MIB + 12345));
        assert_eq!(l.pad_len(), 0);
        assert_eq!(plaintext_len(l.stored_len()), Some(l.plain_len()));
        let plan = l.plan(5 * MIB - 10..5 * MIB + 10).unwrap();
        assert_eq!(plan, super::super::plan_range(l.plain_len(), 5 * MIB - 10..5 * MIB + 10).unwrap());
        let seg = l.segment(80).unwrap();
        assert_eq!(seg.place, SegmentPlace { part_number: 2, index: 0, last_in_part: false });
        assert!(l.segment(79).unwrap().place.last_in_part);
    }

    #[test]
    fn irregular_layouts_are_padded_out_of_the_single_stream_sizes() {
        for parts in [
            vec![(1, 5_000_000), (2, 5_000_000), (3, 17)],
            vec![(1, 5 * MIB + 1), (2, 2 * SEGMENT_SIZE - 17)],
            vec![(1, 5 * MIB), (2, 0)],
            vec![(1, 5 * MIB + 100), (2, 5 * MIB + 100), (3, 5 * MIB + 100)],
        ] {
            let l = Layout::from_parts(&parts).unwrap();
            let listed = plaintext_len(l.stored_len());
            assert!(listed.is_none() || listed == Some(l.plain_len()), "{parts:?}: {listed:?}");
            assert!(l.pad_len() <= SEGMENT_CIPHER_SIZE);
        }
    }

    #[test]
    fn segments_tile_plaintext_and_storage() {
        let l = Layout::from_parts(&[(2, 5 * MIB + 1), (3, 5 * MIB + 1), (7, 70_000), (8, 0)]).unwrap();
        let (mut plain, mut stored) = (0, 0);
        for g in 0..l.segment_count() {
            let s = l.segment(g).unwrap();
            assert_eq!((s.plain_start, s.stored_start), (plain, stored), "segment {g}");
            if s.plain_len > 0 {
                assert_eq!(l.segment_at(s.plain_start), g);
                assert_eq!(l.segment_at(s.plain_start + s.plain_len - 1), g);
            }
            assert_eq!(l.segment_at_stored(s.stored_start), Some(g));
            plain += s.plain_len;
            stored += s.stored_len();
        }
        assert_eq!((plain, stored), (l.plain_len(), l.body_len()));
        assert!(l.segment(l.segment_count()).is_none());
        let last = l.segment(l.segment_count() - 1).unwrap();
        assert_eq!(last.place, SegmentPlace { part_number: 8, index: 0, last_in_part: true });
        assert_eq!(l.part_range(3), Some(10 * MIB + 2..10 * MIB + 2 + 70_000));
        assert_eq!(l.part_range(5), None);
    }

    #[test]
    fn plans_fit_their_layout() {
        let l = Layout::from_parts(&[(1, 5 * MIB + 1), (2, 100)]).unwrap();
        for range in [0..1, 5 * MIB..5 * MIB + 2, 5 * MIB + 1..5 * MIB + 101, 0..l.plain_len(), 7..7] {
            let plan = l.plan(range.clone()).unwrap();
            let (first, last) = l.check_plan(&plan).unwrap();
            assert!(first <= last);
            assert_eq!(plan.len, range.end - range.start);
        }
        let mut off = l.plan(3..9).unwrap();
        off.cipher.end += 1;
        assert!(l.check_plan(&off).is_err());
        assert!(l.plan(0..l.plain_len() + 1).is_err());
    }
}
