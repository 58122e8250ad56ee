//! Per-object keys: HKDF-SHA256 from the data key and the object's salt gives the AES-256-GCM segment key
//! and a key commitment. Checking the commitment before decrypting catches a wrong or swapped data key
//! before a single plaintext byte is released (GCM alone is not key-committing).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::hkdf;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::format::{segment_nonce, FormatError, TAG_LEN};
use crate::core::keys::DataKey;

/// HKDF `info` for the segment key.
pub const SEGMENT_KEY_INFO: &[u8] = b"blobseal/v1/segment-key";
/// HKDF `info` for the key commitment.
pub const COMMITMENT_INFO: &[u8] = b"blobseal/v1/key-commitment";

/// Length of the per-object salt.
pub const SALT_LEN: usize = 32;

/// A fresh random per-object salt from the system CSPRNG.
pub fn new_salt() -> Result<[u8; SALT_LEN], FormatError> {
    let mut salt = [0u8; SALT_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| FormatError::Crypto)?;
    Ok(salt)
}

/// The keys of one object. Cheap to clone (shared); the segment key lives only inside aws-lc (which
/// clears it on drop) and is never printed.
#[derive(Clone)]
pub struct ObjectKeys(Arc<Inner>);

struct Inner {
    aead: LessSafeKey,
    commitment: [u8; 32],
}

impl fmt::Debug for ObjectKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ObjectKeys(<redacted>)")
    }
}

/// HKDF-SHA256(salt, ikm = dek) expanded to (segment key, commitment). Kept separate so the known-answer
/// test can print the intermediate values for docs/FORMAT.md.
fn derive_material(dek: &DataKey, salt: &[u8; SALT_LEN]) -> Result<(Zeroizing<[u8; 32]>, [u8; 32]), FormatError> {
    derive_key_and_commitment(dek, salt, SEGMENT_KEY_INFO, COMMITMENT_INFO)
}

/// HKDF-SHA256(salt, ikm = dek), expanded once with `key_info` (a 32-byte key) and once with
/// `commitment_info` (the 32-byte key commitment). Both object schemes derive their keys this way.
pub(crate) fn derive_key_and_commitment(
    dek: &DataKey,
    salt: &[u8; SALT_LEN],
    key_info: &[u8],
    commitment_info: &[u8],
) -> Result<(Zeroizing<[u8; 32]>, [u8; 32]), FormatError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(dek.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    prk.expand(&[key_info], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut key[..]))
        .map_err(|_| FormatError::Crypto)?;
    let mut commitment = [0u8; 32];
    prk.expand(&[commitment_info], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut commitment))
        .map_err(|_| FormatError::Crypto)?;
    Ok((key, commitment))
}

/// Constant-time comparison of a derived commitment with the stored one.
pub(crate) fn check_commitment(derived: &[u8; 32], stored: &[u8; 32]) -> Result<(), FormatError> {
    if bool::from(derived.ct_eq(stored)) {
        Ok(())
    } else {
        Err(FormatError::CommitmentMismatch)
    }
}

impl ObjectKeys {
    /// Derives the object's segment key and commitment from its data key and salt.
    pub fn derive(dek: &DataKey, salt: &[u8; SALT_LEN]) -> Result<Self, FormatError> {
        let (segment_key, commitment) = derive_material(dek, salt)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &segment_key[..]).map_err(|_| FormatError::Crypto)?;
        Ok(Self(Arc::new(Inner { aead: LessSafeKey::new(unbound), commitment })))
    }

    /// The key commitment to store in the envelope header.
    pub fn commitment(&self) -> [u8; 32] {
        self.0.commitment
    }

    /// Checks, in constant time, that these keys derive the `stored` commitment. A mismatch
    /// ([`FormatError::CommitmentMismatch`]) means a wrong data key or salt: do not decrypt.
    pub fn verify_commitment(&self, stored: &[u8; 32]) -> Result<(), FormatError> {
        check_commitment(&self.0.commitment, stored)
    }

    /// Encrypts segment `index` in place and returns its tag. `is_final` must be true exactly for the
    /// object's last segment. The caller appends the tag to form the stored segment.
    pub fn seal_segment(&self, index: u64, is_final: bool, in_out: &mut [u8]) -> Result<[u8; 16], FormatError> {
        let nonce = Nonce::assume_unique_for_key(segment_nonce(index, is_final));
        let tag =
            self.0.aead.seal_in_place_separate_tag(nonce, Aad::empty(), in_out).map_err(|_| FormatError::Crypto)?;
        tag.as_ref().try_into().map_err(|_| FormatError::Crypto)
    }

    /// Encrypts segment `index` from `plain` into `out` (ciphertext ‖ tag, so `out.len()` must be
    /// `plain.len() + 16`, else [`FormatError::Crypto`]). Same bytes as [`ObjectKeys::seal_segment`];
    /// out of place so a segment that arrived whole is never copied first.
    pub fn seal_segment_into(
        &self,
        index: u64,
        is_final: bool,
        plain: &[u8],
        out: &mut [u8],
    ) -> Result<(), FormatError> {
        let (ciphertext, tag) = out.split_at_mut_checked(plain.len()).ok_or(FormatError::Crypto)?;
        let nonce = Nonce::assume_unique_for_key(segment_nonce(index, is_final));
        self.0
            .aead
            .seal_out_of_place_scatter(nonce, Aad::empty(), plain, ciphertext, &[], tag)
            .map_err(|_| FormatError::Crypto)
    }

    /// Authenticates and decrypts a stored segment (ciphertext ‖ tag) into `out`, which must be exactly
    /// `stored.len() - 16` bytes. Errors as [`ObjectKeys::open_segment`]; on error `out` holds
    /// unauthenticated bytes and must be discarded unread.
    pub fn open_segment_into(
        &self,
        index: u64,
        is_final: bool,
        stored: &[u8],
        out: &mut [u8],
    ) -> Result<(), FormatError> {
        let cipher_len = stored.len().checked_sub(TAG_LEN as usize).ok_or(FormatError::SegmentAuth { index })?;
        let (ciphertext, tag) = stored.split_at_checked(cipher_len).ok_or(FormatError::SegmentAuth { index })?;
        let nonce = Nonce::assume_unique_for_key(segment_nonce(index, is_final));
        self.0
            .aead
            .open_separate_gather(nonce, Aad::empty(), ciphertext, tag, out)
            .map_err(|_| FormatError::SegmentAuth { index })
    }

    /// Authenticates and decrypts a stored segment (ciphertext ‖ tag) in place, returning the plaintext
    /// length (the first bytes of `in_out`). Any mismatch of bytes, index, final flag or key is
    /// [`FormatError::SegmentAuth`]; `in_out` must then be discarded unread.
    pub fn open_segment(&self, index: u64, is_final: bool, in_out: &mut [u8]) -> Result<usize, FormatError> {
        if (in_out.len() as u64) < TAG_LEN {
            return Err(FormatError::SegmentAuth { index });
        }
        let nonce = Nonce::assume_unique_for_key(segment_nonce(index, is_final));
        self.0
            .aead
            .open_in_place(nonce, Aad::empty(), in_out)
            .map(|plain| plain.len())
            .map_err(|_| FormatError::SegmentAuth { index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dek(b: u8) -> DataKey {
        DataKey::from_bytes([b; 32])
    }

    #[test]
    fn commitment_verifies_only_for_same_dek_and_salt() {
        let k = ObjectKeys::derive(&dek(1), &[2; 32]).unwrap();
        k.verify_commitment(&k.commitment()).unwrap();
        let other_dek = ObjectKeys::derive(&dek(3), &[2; 32]).unwrap();
        let other_salt = ObjectKeys::derive(&dek(1), &[4; 32]).unwrap();
        assert_eq!(other_dek.verify_commitment(&k.commitment()), Err(FormatError::CommitmentMismatch));
        assert_eq!(other_salt.verify_commitment(&k.commitment()), Err(FormatError::CommitmentMismatch));
    }

    #[test]
    fn commitment_and_segment_key_differ() {
        let (seg, com) = derive_material(&dek(7), &[8; 32]).unwrap();
        assert_ne!(*seg, com);
    }

    #[test]
    fn segment_open_checks_index_and_final_flag() {
        let k = ObjectKeys::derive(&dek(1), &[2; 32]).unwrap();
        let mut buf = b"hello".to_vec();
        let tag = k.seal_segment(5, false, &mut buf).unwrap();
        buf.extend_from_slice(&tag);
        assert_eq!(k.open_segment(5, true, &mut buf.clone()), Err(FormatError::SegmentAuth { index: 5 }));
        assert_eq!(k.open_segment(6, false, &mut buf.clone()), Err(FormatError::SegmentAuth { index: 6 }));
        assert_eq!(k.open_segment(5, false, &mut buf[..10].to_vec()), Err(FormatError::SegmentAuth { index: 5 }));
        let n = k.open_segment(5, false, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
    }

    #[test]
    fn out_of_place_matches_in_place() {
        let k = ObjectKeys::derive(&dek(1), &[2; 32]).unwrap();
        let plain = b"segment bytes".to_vec();
        let mut in_place = plain.clone();
        let tag = k.seal_segment(3, true, &mut in_place).unwrap();
        in_place.extend_from_slice(&tag);
        let mut out = vec![0u8; plain.len() + 16];
        k.seal_segment_into(3, true, &plain, &mut out).unwrap();
        assert_eq!(out, in_place);
        assert_eq!(k.seal_segment_into(3, true, &plain, &mut [0u8; 5]), Err(FormatError::Crypto));
        let mut opened = vec![0u8; plain.len()];
        k.open_segment_into(3, true, &out, &mut opened).unwrap();
        assert_eq!(opened, plain);
        assert_eq!(k.open_segment_into(3, false, &out, &mut opened), Err(FormatError::SegmentAuth { index: 3 }));
        assert_eq!(k.open_segment_into(3, true, &out[..15], &mut []), Err(FormatError::SegmentAuth { index: 3 }));
    }

    #[test]
    fn debug_hides_keys() {
        let k = ObjectKeys::derive(&dek(1), &[2; 32]).unwrap();
        assert_eq!(format!("{k:?}"), "ObjectKeys(<redacted>)");
    }

    /// The known-answer vector printed in docs/FORMAT.md (run with `--nocapture` to see it).
    #[test]
    fn known_answer_vector() {
        use crate::core::envelope::format::{metadata_digest, segment_nonce, Envelope, ObjectIdentity};
        use crate::core::envelope::seal::seal_all;
        let dek = DataKey::from_bytes(std::array::from_fn(|i| i as u8));
        let salt: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
        let (segment_key, commitment) = derive_material(&dek, &salt).unwrap();
        let keys = ObjectKeys::derive(&dek, &salt).unwrap();
        let short = seal_all(&keys, b"blobseal format v1 test vector").unwrap();
        let long_plain: Vec<u8> = (0..SEGMENT_SIZE_USIZE + 5).map(|i| i as u8).collect();
        let long = seal_all(&keys, &long_plain).unwrap();
        let env = Envelope {
            alg: crate::core::envelope::Algorithm::Gcm,
            plaintext_len: 30,
            salt,
            commitment,
            meta_digest: metadata_digest([("color", "blue"), ("a", "")]),
            kek_id: "local:default:1".into(),
            wrapped_dek: vec![0xaa; 4],
        };
        let id = ObjectIdentity { tenant: "acme", bucket: "photos", key: "cat.jpg" };
        let h = |b: &[u8]| hex::encode(b);
        let vector = [
            ("segment_key", h(&segment_key[..])),
            ("commitment", h(&commitment)),
            ("nonce_0_final", h(&segment_nonce(0, true))),
            ("short_ciphertext", h(&short)),
            ("long_tag_0", h(&long[65536..65552])),
            ("long_tag_1", h(&long[long.len() - 16..])),
            ("long_sha256", h(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &long).as_ref())),
            ("meta_digest", h(&env.meta_digest)),
            ("header", h(&env.encode().unwrap())),
            ("wrap_aad", h(&env.wrap_aad(&id))),
        ];
        for (name, value) in &vector {
            println!("{name} = {value}");
        }
        let expected: [(&str, &str); 10] = [
            ("segment_key", "ba78bebd85e25eb2c33587faf59ada1cc20935a515b9e6cfb4dcc940858ef4c6"),
            ("commitment", "59d27336b567430641640727bcec3c26ccf2913974054e0781f6ffe56bff773a"),
            ("nonce_0_final", "010000000000000000000000"),
            (
                "short_ciphertext",
                "5f8ff482663adb6bf1dbb0a4cc640ee1c70c49e065dc8e70d7f3f76f97e048834ab49574f0246e23c48721671c06",
            ),
            ("long_tag_0", "5128c7ddf9648fa4c155bad46a18fe09"),
            ("long_tag_1", "6d4e59cb80b426c9b907b57220a71670"),
            ("long_sha256", "7794f55312bbdd4ca4142110ea6eba20f3b2c6fc70cc0bacc8fb2435c6e38459"),
            ("meta_digest", "ab49d65d3509292b22e6f1c87657d4eb13264c4bd5f6c1d2f11dc2d26de3bada"),
            (
                "header",
                concat!(
                    "425345010110000000000000001e808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f59d2",
                    "7336b567430641640727bcec3c26ccf2913974054e0781f6ffe56bff773aab49d65d3509292b22e6f1c87657d4eb1326",
                    "4c4bd5f6c1d2f11dc2d26de3bada0f6c6f63616c3a64656661756c743a310004aaaaaaaa",
                ),
            ),
            (
                "wrap_aad",
                concat!(
                    "626c6f627365616c2f76312f777261700000000461636d650000000670686f746f73000000076361742e6a7067425345",
                    "010110000000000000001e808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f59d27336b5",
                    "67430641640727bcec3c26ccf2913974054e0781f6ffe56bff773aab49d65d3509292b22e6f1c87657d4eb13264c4bd5",
                    "f6c1d2f11dc2d26de3bada",
                ),
            ),
        ];
        for (name, value) in expected {
            let got = vector.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
            assert_eq!(got, Some(value), "{name}");
        }
    }

    const SEGMENT_SIZE_USIZE: usize = 65536;

    #[test]
    fn salts_are_random() {
        assert_ne!(new_salt().unwrap(), new_salt().unwrap());
    }
}
