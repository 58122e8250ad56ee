//! The client-visible UploadId of a multipart upload, and the hidden backend key its parts go to.
//!
//! blobseal keeps no upload state of its own (any replica serves any part), so what a replica needs
//! travels in the UploadId: the backend's upload id and the upload's key material (salt, key id and the
//! per-upload data key wrapped by the tenant's key, bound to tenant, bucket, key and salt). The same
//! material, base64url, ends the backend key of the upload's parts, `.blobseal/mpu/<key>/<material>`,
//! so ListMultipartUploads can rebuild every UploadId from the backend's listing alone.
//!
//! Nothing in a token is secret (the data key inside is wrapped), and a token only works for the
//! identity it was made for: the unwrap fails for any other tenant, bucket or key, and the backend
//! refuses a backend upload id that does not belong to the derived key.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::core::envelope::ObjectIdentity;
use crate::core::keys::WrappedKey;

/// Backend keys under this prefix are blobseal's own; clients can neither see nor write them.
pub const RESERVED_KEY_PREFIX: &str = ".blobseal/";
/// Where the parts of uploads in progress live.
pub const UPLOAD_KEY_PREFIX: &str = ".blobseal/mpu/";
/// Longest backend key S3 accepts.
pub const MAX_BACKEND_KEY: usize = 1024;

const MATERIAL_VERSION: u8 = 1;
const UPLOAD_WRAP_AAD_PREFIX: &[u8] = b"blobseal/v1/upload-wrap";

/// Per-upload key material: salt and wrapped data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadMaterial {
    pub salt: [u8; 32],
    pub wrapped: WrappedKey,
}

/// A decoded UploadId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadToken {
    pub backend_upload_id: String,
    pub material: UploadMaterial,
}

/// The token or backend key is not one blobseal made (treated as an unknown upload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed upload id")]
pub struct BadToken;

/// The AAD under which an upload's data key is wrapped:
/// `"blobseal/v1/upload-wrap" ‖ (u32 BE len ‖ bytes) for tenant, bucket, key ‖ salt`.
pub fn upload_wrap_aad(id: &ObjectIdentity<'_>, salt: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::from(UPLOAD_WRAP_AAD_PREFIX);
    for part in [id.tenant, id.bucket, id.key] {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(salt);
    out
}

impl UploadMaterial {
    /// `version (1) ‖ salt (32) ‖ u8 len ‖ kek id ‖ u16 BE len ‖ wrapped key`.
    fn to_bytes(&self) -> Result<Vec<u8>, BadToken> {
        let kek = u8::try_from(self.wrapped.kek_id.len()).map_err(|_| BadToken)?;
        let wrapped = u16::try_from(self.wrapped.blob.len()).map_err(|_| BadToken)?;
        let mut out = vec![MATERIAL_VERSION];
        out.extend_from_slice(&self.salt);
        out.push(kek);
        out.extend_from_slice(self.wrapped.kek_id.as_bytes());
        out.extend_from_slice(&wrapped.to_be_bytes());
        out.extend_from_slice(&self.wrapped.blob);
        Ok(out)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, BadToken> {
        let mut r = Reader(bytes);
        if r.take(1)? != [MATERIAL_VERSION] {
            return Err(BadToken);
        }
        let salt: [u8; 32] = r.take(32)?.try_into().map_err(|_| BadToken)?;
        let kek_len = usize::from(*r.take(1)?.first().ok_or(BadToken)?);
        let kek_id = std::str::from_utf8(r.take(kek_len)?).map_err(|_| BadToken)?.to_owned();
        let len: [u8; 2] = r.take(2)?.try_into().map_err(|_| BadToken)?;
        let blob = r.take(usize::from(u16::from_be_bytes(len)))?.to_vec();
        if !r.0.is_empty() || kek_id.is_empty() || blob.is_empty() {
            return Err(BadToken);
        }
        Ok(UploadMaterial { salt, wrapped: WrappedKey { kek_id, blob } })
    }

    /// The backend key that holds the upload's parts for client key `key`.
    pub fn backend_key(&self, key: &str) -> Result<String, BadToken> {
        Ok(format!("{UPLOAD_KEY_PREFIX}{key}/{}", URL_SAFE_NO_PAD.encode(self.to_bytes()?)))
    }
}

impl UploadToken {
    /// The UploadId string: base64url of `u16 BE len ‖ backend upload id ‖ material`.
    pub fn encode(&self) -> Result<String, BadToken> {
        let id = u16::try_from(self.backend_upload_id.len()).map_err(|_| BadToken)?;
        let mut out = id.to_be_bytes().to_vec();
        out.extend_from_slice(self.backend_upload_id.as_bytes());
        out.extend_from_slice(&self.material.to_bytes()?);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    pub fn decode(text: &str) -> Result<Self, BadToken> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| BadToken)?;
        let mut r = Reader(&bytes);
        let len: [u8; 2] = r.take(2)?.try_into().map_err(|_| BadToken)?;
        let backend_upload_id =
            std::str::from_utf8(r.take(usize::from(u16::from_be_bytes(len)))?).map_err(|_| BadToken)?.to_owned();
        if backend_upload_id.is_empty() {
            return Err(BadToken);
        }
        Ok(UploadToken { backend_upload_id, material: UploadMaterial::from_bytes(r.0)? })
    }
}

/// Splits a backend key made by [`UploadMaterial::backend_key`] into the client key and material.
pub fn parse_backend_key(backend_key: &str) -> Result<(String, UploadMaterial), BadToken> {
    let rest = backend_key.strip_prefix(UPLOAD_KEY_PREFIX).ok_or(BadToken)?;
    let (key, material) = rest.rsplit_once('/').ok_or(BadToken)?;
    let bytes = URL_SAFE_NO_PAD.decode(material).map_err(|_| BadToken)?;
    Ok((key.to_owned(), UploadMaterial::from_bytes(&bytes)?))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BadToken> {
        let (head, tail) = self.0.split_at_checked(n).ok_or(BadToken)?;
        self.0 = tail;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material() -> UploadMaterial {
        UploadMaterial { salt: [9; 32], wrapped: WrappedKey { kek_id: "local:t:1".into(), blob: vec![1, 2, 3] } }
    }

    #[test]
    fn token_round_trips_and_rejects_garbage() {
        let t = UploadToken { backend_upload_id: "abc/def+=".into(), material: material() };
        let s = t.encode().unwrap();
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(UploadToken::decode(&s).unwrap(), t);
        for bad in ["", "!!", "AAAA", &s[..s.len() - 2]] {
            assert!(UploadToken::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backend_key_round_trips_with_slashes_in_the_key() {
        let k = material().backend_key("a/b/c.txt").unwrap();
        assert!(k.starts_with(".blobseal/mpu/a/b/c.txt/"));
        assert_eq!(parse_backend_key(&k).unwrap(), ("a/b/c.txt".to_owned(), material()));
        assert!(parse_backend_key("other/x").is_err());
        assert!(parse_backend_key(".blobseal/mpu/x/notbase64!").is_err());
    }

    #[test]
    fn wrap_aad_binds_identity_and_salt() {
        let id = ObjectIdentity { tenant: "t", bucket: "b", key: "k" };
        let a = upload_wrap_aad(&id, &[1; 32]);
        assert_ne!(a, upload_wrap_aad(&id, &[2; 32]));
        assert_ne!(a, upload_wrap_aad(&ObjectIdentity { key: "k2", ..id }, &[1; 32]));
    }
}
