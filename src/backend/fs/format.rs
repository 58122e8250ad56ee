//! The on-disk format of one object file (see the parent module's docs): a fixed prefix (magic,
//! format version, MD5 of the body, JSON length), a JSON header, then the body. Parsing never
//! trusts the file: every length is bounded and checked against the file size.

use std::collections::BTreeMap;
use std::io::{self, Read as _};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::backend::{BackendError, ContentHeaders, ObjectHead, ObjectMeta, Result};

pub(super) const MAGIC: [u8; 4] = *b"BSOB";
pub(super) const FORMAT_VERSION: u8 = 1;
/// magic + version + MD5 + JSON length.
pub(super) const FIXED_LEN: usize = 4 + 1 + 16 + 4;
/// Offset of the MD5 in the fixed header, patched after the body is written.
pub(super) const MD5_OFFSET: u64 = 5;
/// Keys are ≤ 1 KiB and S3 metadata ≤ 2 KiB; anything near this bound is a corrupt file.
pub(super) const MAX_JSON_LEN: u32 = 256 * 1024;
/// The JSON part of an object file's header.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredHeader {
    pub(super) key: String,
    pub(super) size: u64,
    /// Unix seconds.
    pub(super) last_modified: i64,
    pub(super) metadata: BTreeMap<String, String>,
    pub(super) content_type: Option<String>,
    pub(super) content_encoding: Option<String>,
    pub(super) content_disposition: Option<String>,
    pub(super) content_language: Option<String>,
    pub(super) cache_control: Option<String>,
    pub(super) expires: Option<String>,
    /// The ETag when it is not the body's MD5 (a completed multipart upload's `<hex>-<parts>`).
    /// Absent in files written before multipart existed, hence the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) etag: Option<String>,
    /// Object tags. Absent in files written before tagging existed, and when there are none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) tags: BTreeMap<String, String>,
}

/// A parsed object file header and where the body starts.
#[derive(Debug)]
pub(super) struct Parsed {
    pub(super) header: StoredHeader,
    pub(super) etag: String,
    pub(super) body_offset: u64,
}

impl Parsed {
    pub(super) fn head(self) -> ObjectHead {
        let h = self.header;
        let etag = h.etag.unwrap_or(self.etag);
        let last_modified = OffsetDateTime::from_unix_timestamp(h.last_modified).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        ObjectHead {
            meta: ObjectMeta { key: h.key, size: h.size, etag, last_modified, version_id: None },
            metadata: h.metadata,
            headers: ContentHeaders {
                content_type: h.content_type,
                content_encoding: h.content_encoding,
                content_disposition: h.content_disposition,
                content_language: h.content_language,
                cache_control: h.cache_control,
                expires: h.expires,
            },
        }
    }
}

pub(super) fn io_err(e: io::Error) -> BackendError {
    BackendError::Other { backend: "fs", message: e.to_string() }
}

pub(super) fn corrupt(what: &str) -> BackendError {
    BackendError::Other { backend: "fs", message: format!("corrupt object file: {what}") }
}

pub(super) fn object_file_name(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

pub(super) fn is_object_file_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Opens an object file and parses its header; `Ok(None)` if the file does not exist.
pub(super) fn open_object(path: &Path) -> Result<Option<(std::fs::File, Parsed)>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let mut fixed = [0u8; FIXED_LEN];
    f.read_exact(&mut fixed).map_err(|_| corrupt("short header"))?;
    let [m0, m1, m2, m3, version, md5 @ .., l0, l1, l2, l3] = fixed;
    if [m0, m1, m2, m3] != MAGIC || version != FORMAT_VERSION {
        return Err(corrupt("bad magic or version"));
    }
    let json_len = u32::from_be_bytes([l0, l1, l2, l3]);
    if json_len > MAX_JSON_LEN {
        return Err(corrupt("header too long"));
    }
    let mut json = vec![0u8; json_len as usize];
    f.read_exact(&mut json).map_err(|_| corrupt("short header"))?;
    let header: StoredHeader = serde_json::from_slice(&json).map_err(|_| corrupt("bad header"))?;
    let body_offset = FIXED_LEN as u64 + u64::from(json_len);
    let file_len = f.metadata().map_err(io_err)?.len();
    if body_offset.checked_add(header.size) != Some(file_len) {
        return Err(corrupt("body length does not match header"));
    }
    Ok(Some((f, Parsed { header, etag: hex::encode(md5), body_offset })))
}

/// The fixed prefix (with a zero MD5, patched at [`MD5_OFFSET`] once the body is written) and the
/// JSON header. Metadata too large for [`MAX_JSON_LEN`] is `InvalidRequest`.
pub(super) fn encode_prefix(header: &StoredHeader) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(header).map_err(|e| corrupt(&e.to_string()))?;
    let json_len = u32::try_from(json.len()).ok().filter(|l| *l <= MAX_JSON_LEN);
    let json_len = json_len.ok_or_else(|| BackendError::InvalidRequest("metadata too large".into()))?;
    let mut out = Vec::with_capacity(FIXED_LEN + json.len());
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&json_len.to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Serde writes [`StoredHeader`]'s fields in declaration order, so every header this backend writes
/// starts with the key. Listings rely on it to sort a bucket from a few hundred bytes per file.
const KEY_FIRST: &[u8] = b"{\"key\":\"";
/// Bytes of the JSON header read first when only the key is wanted: most keys fit.
const KEY_PROBE: usize = 1024;
/// The most read for a key alone: a 1024-byte key escaped as `\uXXXX` throughout is 6 KiB.
const KEY_PROBE_MAX: usize = 8 * 1024;

/// The key at the start of a JSON header, if `json` (possibly cut short) begins with it whole.
fn leading_key(json: &[u8]) -> Option<String> {
    let rest = json.strip_prefix(KEY_FIRST)?;
    let mut escaped = false;
    let end = rest.iter().position(|&c| {
        let closes = c == b'"' && !escaped;
        escaped = c == b'\\' && !escaped;
        closes
    })?;
    // The JSON string literal, quotes included: KEY_FIRST ends with its opening quote.
    let literal = json.get(KEY_FIRST.len() - 1..KEY_FIRST.len() + end + 1)?;
    serde_json::from_slice(literal).ok()
}

/// The key of an object file, reading only as much of its header as the key takes (listing a
/// bucket must not cost every object's metadata); `Ok(None)` if the file does not exist. The rest
/// of the file is not checked here: whoever uses the object parses it whole ([`open_object`]).
pub(super) fn read_key(path: &Path) -> Result<Option<String>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let mut fixed = [0u8; FIXED_LEN];
    f.read_exact(&mut fixed).map_err(|_| corrupt("short header"))?;
    let [m0, m1, m2, m3, version, _md5 @ .., l0, l1, l2, l3] = fixed;
    if [m0, m1, m2, m3] != MAGIC || version != FORMAT_VERSION {
        return Err(corrupt("bad magic or version"));
    }
    let json_len = u32::from_be_bytes([l0, l1, l2, l3]);
    if json_len > MAX_JSON_LEN {
        return Err(corrupt("header too long"));
    }
    let json_len = json_len as usize;
    let mut json = vec![0u8; json_len.min(KEY_PROBE)];
    f.read_exact(&mut json).map_err(|_| corrupt("short header"))?;
    if let Some(key) = leading_key(&json) {
        return Ok(Some(key));
    }
    // A long key: read up to the most a key can take, then (a header of another shape) all of it.
    for limit in [KEY_PROBE_MAX, json_len] {
        let have = json.len();
        let want = json_len.min(limit);
        if want > have {
            json.resize(want, 0);
            let tail = json.get_mut(have..).ok_or_else(|| corrupt("short header"))?;
            f.read_exact(tail).map_err(|_| corrupt("short header"))?;
        }
        if let Some(key) = leading_key(&json) {
            return Ok(Some(key));
        }
    }
    let header: StoredHeader = serde_json::from_slice(&json).map_err(|_| corrupt("bad header"))?;
    Ok(Some(header.key))
}

#[cfg(test)]
mod key_tests {
    use super::*;

    fn header(key: &str, meta: usize) -> StoredHeader {
        StoredHeader {
            key: key.to_owned(),
            size: 0,
            last_modified: 0,
            metadata: [("m".to_owned(), "v".repeat(meta))].into(),
            content_type: None,
            content_encoding: None,
            content_disposition: None,
            content_language: None,
            cache_control: None,
            expires: None,
            etag: None,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn the_key_comes_first_and_is_read_alone_whatever_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let long_escaped = "\u{1}\"\\".repeat(340);
        for key in ["a", "quote\"back\\slash\\", "ünï/cödé", "x".repeat(1024).as_str(), long_escaped.as_str()] {
            let encoded = encode_prefix(&header(key, 100_000)).unwrap();
            assert!(encoded.get(FIXED_LEN..).unwrap().starts_with(KEY_FIRST), "serde no longer writes the key first");
            let path = dir.path().join("obj");
            std::fs::write(&path, &encoded).unwrap();
            assert_eq!(read_key(&path).unwrap().as_deref(), Some(key));
        }
        assert_eq!(leading_key(b"{\"key\":\"abc"), None, "an unterminated key is not guessed");
        assert_eq!(leading_key(b"{\"size\":1,\"key\":\"a\"}"), None);
        assert_eq!(leading_key(b"{\"key\":\"a\\\\\",\"size\":1}").as_deref(), Some("a\\"));
    }
}
