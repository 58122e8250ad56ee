//! Sealed documents: the file format of segments and heads. A document is JSON lines; its last line is
//! the seal, `{"seal":{"sha256":H,"key_id":K,"signature":S}}`, where H is the hex SHA-256 of every byte
//! before the seal line and S the base64 Ed25519 signature of `"blobseal audit seal v1\0" || H-bytes`.
//! Editing any byte before the seal changes H; only the holder of the signing key can seal again.
//! A document's own hash (what the next segment or a head names) is the SHA-256 of all its bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::key::{AuditKey, PublicKey};

const SEAL_CONTEXT: &[u8] = b"blobseal audit seal v1\0";

#[derive(Debug, Serialize, Deserialize)]
struct SealLine {
    seal: Seal,
}

#[derive(Debug, Serialize, Deserialize)]
struct Seal {
    sha256: String,
    key_id: String,
    signature: String,
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

fn message(sha: &[u8]) -> Vec<u8> {
    [SEAL_CONTEXT, sha].concat()
}

/// `body` (JSON lines, each ending in `\n`) with its seal appended.
pub fn seal(body: Vec<u8>, key: &AuditKey) -> Vec<u8> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body);
    let line = SealLine {
        seal: Seal {
            sha256: hex::encode(digest.as_ref()),
            key_id: key.key_id(),
            signature: STANDARD.encode(key.sign(&message(digest.as_ref()))),
        },
    };
    let mut out = body;
    // A struct of three strings always serializes.
    out.extend_from_slice(serde_json::to_string(&line).unwrap_or_default().as_bytes());
    out.push(b'\n');
    out
}

/// Why a document does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("no seal line")]
    NoSeal,
    #[error("its bytes do not match its seal (edited or truncated)")]
    Digest,
    #[error("signed by key {0}, not the trail's key")]
    OtherKey(String),
    #[error("bad signature")]
    Signature,
    #[error("line {0} is not a JSON object")]
    Line(usize),
}

/// Checks `doc`'s seal under `public` and returns its lines before the seal.
pub fn open<'a>(doc: &'a [u8], public: &PublicKey) -> Result<Vec<&'a [u8]>, Broken> {
    let body_end = match doc.strip_suffix(b"\n") {
        Some(trimmed) => trimmed.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1),
        None => return Err(Broken::NoSeal),
    };
    let (body, seal_line) = doc.split_at(body_end);
    let parsed: SealLine = serde_json::from_slice(seal_line).map_err(|_| Broken::NoSeal)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    if hex::encode(digest.as_ref()) != parsed.seal.sha256 {
        return Err(Broken::Digest);
    }
    if parsed.seal.key_id != public.key_id() {
        return Err(Broken::OtherKey(parsed.seal.key_id));
    }
    let sig = STANDARD.decode(&parsed.seal.signature).map_err(|_| Broken::Signature)?;
    if !public.verify(&message(digest.as_ref()), &sig) {
        return Err(Broken::Signature);
    }
    let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    for (i, l) in lines.iter().enumerate() {
        if !l.starts_with(b"{") {
            return Err(Broken::Line(i + 1));
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_open_and_every_edit_breaks_them() {
        let key = AuditKey::generate_for_tests();
        let doc = seal(b"{\"a\":1}\n{\"b\":2}\n".to_vec(), &key);
        assert_eq!(open(&doc, &key.public()).unwrap(), vec![&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]);
        for i in 0..doc.len() {
            let mut bad = doc.clone();
            bad[i] ^= 1;
            assert!(open(&bad, &key.public()).is_err(), "flipped byte {i} not detected");
        }
        assert!(open(&doc[..doc.len() - 1], &key.public()).is_err());
        assert!(open(&doc[8..], &key.public()).is_err());
        let other = AuditKey::generate_for_tests();
        assert!(matches!(open(&doc, &other.public()), Err(Broken::OtherKey(_))));
    }
}
