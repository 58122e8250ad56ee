//! Wrapping one 32-byte key under another with AES-256-GCM: `nonce (12) ‖ ciphertext (32) ‖ tag (16)`,
//! the caller's AAD authenticated. Used for data keys under lifetime keys (and by the local keyring
//! for lifetime keys under root keys). Random nonces are safe: a key would need ~2^32 wraps before a
//! nonce collision becomes likely, and each object or lifetime key is wrapped once per write.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

use super::{DataKey, KeyError, DATA_KEY_LEN};

/// Length of a wrapped key blob.
pub const WRAPPED_LEN: usize = NONCE_LEN + DATA_KEY_LEN + 16;

fn cipher(kek: &DataKey) -> Result<LessSafeKey, KeyError> {
    // Only fails for a wrong key length, which the type rules out; map it rather than panic.
    UnboundKey::new(&AES_256_GCM, kek.as_bytes()).map(LessSafeKey::new).map_err(|_| KeyError::Keyring("bad key".into()))
}

/// Wraps `key` under `kek`, bound to `aad`.
pub fn seal_key(kek: &DataKey, key: &DataKey, aad: &[u8]) -> Result<Vec<u8>, KeyError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| KeyError::Random)?;
    let mut in_out = Zeroizing::new(key.as_bytes().to_vec());
    let tag = cipher(kek)?
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut in_out)
        .map_err(|_| KeyError::Keyring("seal failed".into()))?;
    let mut blob = Vec::with_capacity(WRAPPED_LEN);
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&in_out);
    blob.extend_from_slice(tag.as_ref());
    Ok(blob)
}

/// Unwraps a blob from [`seal_key`]; any other key, AAD, length or a flipped bit is [`KeyError::Unwrap`].
pub fn open_key(kek: &DataKey, blob: &[u8], aad: &[u8]) -> Result<DataKey, KeyError> {
    if blob.len() != WRAPPED_LEN {
        return Err(KeyError::Unwrap);
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Unwrap)?;
    let mut in_out = Zeroizing::new(sealed.to_vec());
    let plain = cipher(kek)?.open_in_place(nonce, Aad::from(aad), &mut in_out).map_err(|_| KeyError::Unwrap)?;
    DataKey::from_slice(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_tamper_fails() {
        let kek = DataKey::generate().unwrap();
        let key = DataKey::generate().unwrap();
        let blob = seal_key(&kek, &key, b"aad").unwrap();
        assert_eq!(blob.len(), WRAPPED_LEN);
        assert!(!blob.windows(32).any(|w| w == key.as_bytes()));
        assert_eq!(open_key(&kek, &blob, b"aad").unwrap().as_bytes(), key.as_bytes());
        assert!(matches!(open_key(&kek, &blob, b"aae"), Err(KeyError::Unwrap)));
        assert!(matches!(open_key(&DataKey::generate().unwrap(), &blob, b"aad"), Err(KeyError::Unwrap)));
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 1;
            assert!(matches!(open_key(&kek, &bad, b"aad"), Err(KeyError::Unwrap)), "byte {i}");
        }
        assert!(matches!(open_key(&kek, &blob[1..], b"aad"), Err(KeyError::Unwrap)));
        assert_ne!(seal_key(&kek, &key, b"aad").unwrap(), blob, "fresh nonce per wrap");
    }
}
