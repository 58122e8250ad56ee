//! The two segment schemes behind one interface, so the stream sealer and opener stay one state
//! machine each: a single-stream object (algorithm 1, AES-GCM) or a multipart object (algorithm 2,
//! AES-GCM-SIV parts laid out by a [`Layout`]).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::ops::Range;
use std::sync::Arc;

use super::format::{ciphertext_len, segment_count, segment_plain_len, FormatError, TAG_LEN};
use super::keys::ObjectKeys;
use super::layout::Layout;
use super::parts::{PartKeys, SegmentPlace};
use super::range::{plan_range, CipherRange};

/// How to open the segments of one stored object.
#[derive(Debug, Clone)]
pub enum SegmentKeys {
    /// Algorithm 1: one stream of `plain_len` bytes.
    Single { keys: ObjectKeys, plain_len: u64 },
    /// Algorithm 2: independently sealed parts.
    Parts { keys: PartKeys, layout: Arc<Layout> },
}

impl SegmentKeys {
    /// Plaintext size of the object.
    pub fn plain_len(&self) -> u64 {
        match self {
            SegmentKeys::Single { plain_len, .. } => *plain_len,
            SegmentKeys::Parts { layout, .. } => layout.plain_len(),
        }
    }

    /// Stored size the object must have.
    pub fn stored_len(&self) -> u64 {
        match self {
            SegmentKeys::Single { plain_len, .. } => ciphertext_len(*plain_len),
            SegmentKeys::Parts { layout, .. } => layout.stored_len(),
        }
    }

    /// Plans the read of plaintext bytes `plain`.
    pub fn plan(&self, plain: Range<u64>) -> Result<CipherRange, FormatError> {
        match self {
            SegmentKeys::Single { plain_len, .. } => plan_range(*plain_len, plain),
            SegmentKeys::Parts { layout, .. } => layout.plan(plain),
        }
    }

    /// First and last segment of `plan`, after checking it fits the object.
    pub(crate) fn check_plan(&self, plan: &CipherRange) -> Result<(u64, u64), FormatError> {
        match self {
            SegmentKeys::Single { plain_len, .. } => plan.segments(*plain_len).map(|s| (*s.start(), *s.end())),
            SegmentKeys::Parts { layout, .. } => layout.check_plan(plan),
        }
    }

    /// Stored bytes of segment `g`.
    pub(crate) fn segment_stored_len(&self, g: u64) -> Result<usize, FormatError> {
        let plain = match self {
            SegmentKeys::Single { plain_len, .. } => segment_plain_len(*plain_len, g),
            SegmentKeys::Parts { layout, .. } => layout.segment(g).map(|s| s.plain_len),
        }
        .ok_or(FormatError::RangeOutOfBounds)?;
        usize::try_from(plain + TAG_LEN).map_err(|_| FormatError::Crypto)
    }

    fn place(layout: &Layout, g: u64) -> Result<SegmentPlace, FormatError> {
        layout.segment(g).map(|s| s.place).ok_or(FormatError::RangeOutOfBounds)
    }

    /// Authenticates and decrypts stored segment `g` in place; returns its plaintext length.
    pub(crate) fn open(&self, g: u64, in_out: &mut [u8]) -> Result<usize, FormatError> {
        match self {
            SegmentKeys::Single { keys, plain_len } => keys.open_segment(g, g + 1 == segment_count(*plain_len), in_out),
            SegmentKeys::Parts { keys, layout } => keys.open_segment(Self::place(layout, g)?, g, in_out),
        }
    }

    /// Authenticates and decrypts stored segment `g` from `stored` into `out` (`stored.len() - 16` bytes).
    pub(crate) fn open_into(&self, g: u64, stored: &[u8], out: &mut [u8]) -> Result<(), FormatError> {
        match self {
            SegmentKeys::Single { keys, plain_len } => {
                keys.open_segment_into(g, g + 1 == segment_count(*plain_len), stored, out)
            }
            SegmentKeys::Parts { keys, layout } => keys.open_segment_into(Self::place(layout, g)?, g, stored, out),
        }
    }
}

/// How to seal the segments of one stream: a whole object, or one part of a multipart upload.
#[derive(Debug, Clone)]
pub enum SealKeys {
    Object(ObjectKeys),
    Part { keys: PartKeys, part_number: u32 },
}

impl SealKeys {
    /// Encrypts segment `index` of the stream in place; returns the 16 bytes to append.
    pub(crate) fn seal(&self, index: u64, is_final: bool, in_out: &mut [u8]) -> Result<[u8; 16], FormatError> {
        match self {
            SealKeys::Object(keys) => keys.seal_segment(index, is_final, in_out),
            SealKeys::Part { keys, part_number } => {
                keys.seal_segment(SegmentPlace { part_number: *part_number, index, last_in_part: is_final }, in_out)
            }
        }
    }

    /// Encrypts segment `index` from `plain` into `out` (`plain.len() + 16` bytes).
    pub(crate) fn seal_into(
        &self,
        index: u64,
        is_final: bool,
        plain: &[u8],
        out: &mut [u8],
    ) -> Result<(), FormatError> {
        match self {
            SealKeys::Object(keys) => keys.seal_segment_into(index, is_final, plain, out),
            SealKeys::Part { keys, part_number } => keys.seal_segment_into(
                SegmentPlace { part_number: *part_number, index, last_in_part: is_final },
                plain,
                out,
            ),
        }
    }
}
