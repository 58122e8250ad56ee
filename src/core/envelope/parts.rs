//! Keys of a multipart upload (algorithm 2): AES-256-SIV per segment.
//!
//! Parts are sealed independently, in any order, on any replica, and a client may upload a part again
//! with other bytes. With a nonce-based AEAD that retry would reuse (key, nonce) unless each attempt
//! stored fresh randomness, and any per-part header would break the regular segment grid that lets
//! sizes and ranges be computed without reading the object. SIV (RFC 5297) needs no nonce: its IV is
//! a MAC of the associated data and the plaintext, so different bytes never share an IV, and equal
//! bytes give equal ciphertext (revealing only that a retry was identical). The associated data binds
//! each segment to its place: part number, index within the part, and whether it ends the part.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fmt;
use std::sync::Arc;

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use aws_lc_rs::hkdf;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::format::{FormatError, TAG_LEN};
use super::keys::SALT_LEN;
use crate::core::keys::DataKey;

/// HKDF `info` for the 64-byte AES-256-SIV key (MAC key ‖ CTR key).
pub const PART_KEY_INFO: &[u8] = b"blobseal/v1/part-siv-key";
/// HKDF `info` for the key commitment of a multipart object.
pub const PART_COMMITMENT_INFO: &[u8] = b"blobseal/v1/part-key-commitment";
/// First associated-data component of every part segment (domain separation).
pub const PART_SEGMENT_AD: &[u8] = b"blobseal/v1/part-segment";

/// Where a segment sits: what its associated data binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentPlace {
    /// The client's part number (1..=10000).
    pub part_number: u32,
    /// Index of the segment within its part, from 0.
    pub index: u64,
    /// True for the last segment of its part.
    pub last_in_part: bool,
}

impl SegmentPlace {
    /// The three S2V header strings after [`PART_SEGMENT_AD`]:
    /// part number (u32 BE), index (u64 BE), last-in-part flag (one byte, 0 or 1).
    fn ad(&self) -> ([u8; 4], [u8; 8], [u8; 1]) {
        (self.part_number.to_be_bytes(), self.index.to_be_bytes(), [u8::from(self.last_in_part)])
    }
}

/// The segment keys of one multipart upload. Cheap to clone; never printed.
#[derive(Clone)]
pub struct PartKeys(Arc<Inner>);

struct Inner {
    siv_key: Zeroizing<[u8; 64]>,
    commitment: [u8; 32],
}

impl fmt::Debug for PartKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PartKeys(<redacted>)")
    }
}

impl PartKeys {
    /// HKDF-SHA256(salt, ikm = dek) expanded with [`PART_KEY_INFO`] (64 bytes) and
    /// [`PART_COMMITMENT_INFO`] (32 bytes).
    pub fn derive(dek: &DataKey, salt: &[u8; SALT_LEN]) -> Result<Self, FormatError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(dek.as_bytes());
        let mut siv_key = Zeroizing::new([0u8; 64]);
        prk.expand(&[PART_KEY_INFO], Len(64))
            .and_then(|okm| okm.fill(&mut siv_key[..]))
            .map_err(|_| FormatError::Crypto)?;
        let mut commitment = [0u8; 32];
        prk.expand(&[PART_COMMITMENT_INFO], Len(32))
            .and_then(|okm| okm.fill(&mut commitment))
            .map_err(|_| FormatError::Crypto)?;
        Ok(Self(Arc::new(Inner { siv_key, commitment })))
    }

    /// The key commitment to store in the envelope header.
    pub fn commitment(&self) -> [u8; 32] {
        self.0.commitment
    }

    /// Constant-time check of a stored commitment ([`FormatError::CommitmentMismatch`] on mismatch).
    pub fn verify_commitment(&self, stored: &[u8; 32]) -> Result<(), FormatError> {
        if bool::from(self.0.commitment.ct_eq(stored)) {
            Ok(())
        } else {
            Err(FormatError::CommitmentMismatch)
        }
    }

    fn cipher(&self) -> Aes256Siv {
        // `Siv` needs `&mut self` and is not `Clone`; a fresh instance per segment costs two AES key
        // schedules, negligible next to 64 KiB of CMAC and CTR.
        Aes256Siv::new(&(*self.0.siv_key).into())
    }

    /// Encrypts one segment's plaintext in place and returns its 16-byte SIV, which the stored segment
    /// carries after the ciphertext (`ciphertext ‖ siv`, like a GCM tag).
    pub fn seal_segment(&self, place: SegmentPlace, in_out: &mut [u8]) -> Result<[u8; 16], FormatError> {
        let (p, i, l) = place.ad();
        let headers: [&[u8]; 4] = [PART_SEGMENT_AD, &p, &i, &l];
        let tag = self.cipher().encrypt_inout_detached(headers, in_out.into()).map_err(|_| FormatError::Crypto)?;
        let mut out = [0u8; 16];
        out.copy_from_slice(tag.as_slice());
        Ok(out)
    }

    /// Authenticates and decrypts a stored segment (`ciphertext ‖ siv`) in place; returns the plaintext
    /// length. Any mismatch of bytes, place or key is [`FormatError::SegmentAuth`] with `global_index`
    /// (the segment's index in the object, for error messages); `in_out` must then be discarded.
    pub fn open_segment(
        &self,
        place: SegmentPlace,
        global_index: u64,
        in_out: &mut [u8],
    ) -> Result<usize, FormatError> {
        let auth = FormatError::SegmentAuth { index: global_index };
        let cipher_len = in_out.len().checked_sub(TAG_LEN as usize).ok_or(auth.clone())?;
        let (ciphertext, tag) = in_out.split_at_mut_checked(cipher_len).ok_or(auth.clone())?;
        let tag = aes_siv::Tag::try_from(&*tag).map_err(|_| auth.clone())?;
        let (p, i, l) = place.ad();
        let headers: [&[u8]; 4] = [PART_SEGMENT_AD, &p, &i, &l];
        self.cipher().decrypt_inout_detached(headers, ciphertext.into(), &tag).map_err(|_| auth)?;
        Ok(cipher_len)
    }
}

/// Output length for aws-lc's HKDF expand.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seed: u8) -> PartKeys {
        PartKeys::derive(&DataKey::from_bytes([seed; 32]), &[7u8; 32]).unwrap()
    }

    fn place(part_number: u32, index: u64, last_in_part: bool) -> SegmentPlace {
        SegmentPlace { part_number, index, last_in_part }
    }

    #[test]
    fn round_trip_and_place_binding() {
        let k = keys(1);
        let mut seg = b"hello part".to_vec();
        let tag = k.seal_segment(place(3, 0, true), &mut seg).unwrap();
        assert_ne!(&seg, b"hello part");
        seg.extend_from_slice(&tag);
        let mut ok = seg.clone();
        let n = k.open_segment(place(3, 0, true), 0, &mut ok).unwrap();
        assert_eq!(&ok[..n], b"hello part");
        for wrong in [place(2, 0, true), place(3, 1, true), place(3, 0, false)] {
            let mut bad = seg.clone();
            assert_eq!(k.open_segment(wrong, 5, &mut bad), Err(FormatError::SegmentAuth { index: 5 }));
        }
        let mut other_key = seg.clone();
        assert!(keys(2).open_segment(place(3, 0, true), 0, &mut other_key).is_err());
        let mut flipped = seg.clone();
        flipped[0] ^= 1;
        assert!(k.open_segment(place(3, 0, true), 0, &mut flipped).is_err());
    }

    #[test]
    fn different_bytes_get_different_ivs_equal_bytes_equal_ciphertext() {
        let k = keys(1);
        let (mut a, mut b, mut c) = (vec![0u8; 100], vec![1u8; 100], vec![0u8; 100]);
        let ta = k.seal_segment(place(1, 0, true), &mut a).unwrap();
        let tb = k.seal_segment(place(1, 0, true), &mut b).unwrap();
        let tc = k.seal_segment(place(1, 0, true), &mut c).unwrap();
        assert_ne!(ta, tb);
        assert_eq!((ta, &a), (tc, &c));
    }

    #[test]
    fn empty_segment_authenticates_and_short_input_fails() {
        let k = keys(1);
        let mut seg = Vec::new();
        let tag = k.seal_segment(place(1, 0, true), &mut seg).unwrap();
        seg.extend_from_slice(&tag);
        assert_eq!(k.open_segment(place(1, 0, true), 0, &mut seg).unwrap(), 0);
        assert!(k.open_segment(place(1, 0, true), 0, &mut [0u8; 15]).is_err());
    }

    #[test]
    fn commitment_depends_on_key() {
        assert_ne!(keys(1).commitment(), keys(2).commitment());
        assert!(keys(1).verify_commitment(&keys(1).commitment()).is_ok());
        assert_eq!(keys(1).verify_commitment(&keys(2).commitment()), Err(FormatError::CommitmentMismatch));
    }
}
