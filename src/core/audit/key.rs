//! The audit signing key: Ed25519 (aws-lc-rs), one per deployment, stored as base64 PKCS#8 in a private
//! file and created on first use. It signs segments and heads; a key derived from it (HKDF-SHA-256) keys
//! the hashes that stand for data subjects. Verifying needs only the public key.

use std::path::Path;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Why the key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error("audit signing key {path}: {problem}")]
    File { path: String, problem: String },
}

/// The signing key and what derives from it.
pub struct AuditKey {
    pair: Ed25519KeyPair,
    subject_key: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey").field("key_id", &self.key_id()).finish_non_exhaustive()
    }
}

/// A public key, as verification uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(pub Vec<u8>);

impl PublicKey {
    /// The key's id: the first 16 hex digits of the SHA-256 of its 32 bytes.
    pub fn key_id(&self) -> String {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.0);
        hex::encode(d.as_ref().get(..8).unwrap_or_default())
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0).verify(message, signature).is_ok()
    }

    /// `ed25519:<base64>`, the form the bundle and `audit verify --public-key` use.
    pub fn to_text(&self) -> String {
        format!("ed25519:{}", STANDARD.encode(&self.0))
    }

    pub fn from_text(text: &str) -> Option<Self> {
        let b = STANDARD.decode(text.trim().strip_prefix("ed25519:")?).ok()?;
        (b.len() == 32).then_some(Self(b))
    }
}

impl AuditKey {
    fn from_pkcs8(pkcs8: &[u8]) -> Option<Self> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).ok()?;
        // The subject-hash key: HMAC over a fixed label under the private key's own HMAC, so it needs the
        // private key and says nothing about it.
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, pkcs8);
        let derived = aws_lc_rs::hmac::sign(&k, b"blobseal audit subject hash v1");
        let subject_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, derived.as_ref());
        Some(Self { pair, subject_key })
    }

    /// Reads the key at `path`, or creates one there (mode 0600) if there is no file.
    pub fn load_or_create(path: &Path) -> Result<Self, AuditKeyError> {
        let err = |problem: String| AuditKeyError::File { path: path.display().to_string(), problem };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let der = STANDARD.decode(text.trim()).map_err(|_| err("not base64 text".into()))?;
                Self::from_pkcs8(&der).ok_or_else(|| err("not an Ed25519 PKCS#8 key".into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let der = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| err("cannot generate a key".into()))?;
                let text = format!("{}\n", STANDARD.encode(der.as_ref()));
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    crate::config::private_file::create_private_dir(dir).map_err(|e| err(e.to_string()))?;
                }
                crate::config::private_file::write_private_atomic(path, text.as_bytes())
                    .map_err(|e| err(e.to_string()))?;
                tracing::info!(path = %path.display(), "audit signing key created");
                // Read back: if another process created one at the same moment, both use the one that stayed.
                Self::load_or_create(path)
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.pair.public_key().as_ref().to_vec())
    }

    pub fn key_id(&self) -> String {
        self.public().key_id()
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    /// The keyed hash that stands for data subject `subject` of `tenant` (hex, 32 digits).
    pub fn subject_hash(&self, tenant: &str, subject: &str) -> String {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.subject_key);
        ctx.update(tenant.as_bytes());
        ctx.update(b"\0");
        ctx.update(subject.as_bytes());
        hex::encode(ctx.sign().as_ref().get(..16).unwrap_or_default())
    }

    #[cfg(test)]
    pub fn generate_for_tests() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let der = Ed25519KeyPair::generate_pkcs8(&rng).expect("generate");
        Self::from_pkcs8(der.as_ref()).expect("load")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let a = AuditKey::load_or_create(&path).unwrap();
        let b = AuditKey::load_or_create(&path).unwrap();
        assert_eq!(a.public(), b.public());
        assert_eq!(a.subject_hash("t", "alice"), b.subject_hash("t", "alice"));
        assert_ne!(a.subject_hash("t", "alice"), a.subject_hash("u", "alice"));
        let sig = a.sign(b"m");
        assert!(b.public().verify(b"m", &sig) && !b.public().verify(b"n", &sig));
        let text = a.public().to_text();
        assert_eq!(PublicKey::from_text(&text), Some(a.public()));
        std::fs::write(&path, "garbage").unwrap();
        assert!(AuditKey::load_or_create(&path).is_err());
    }
}
