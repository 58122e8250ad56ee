//! How a sealed object's metadata is laid out in the backend, and the client-visible values
//! derived from what a backend lists (ETag, size). See `docs/FORMAT.md` §1, §7 and §11.

use std::collections::BTreeMap;

use crate::backend::{ContentHeaders, PutOptions};
use crate::core::envelope::{metadata_digest, plaintext_len};

/// User-metadata name under which the envelope header travels with each object (base64).
pub const ENVELOPE_META: &str = "blobseal-envelope";
/// Metadata names under this prefix are blobseal's own; clients may not set them.
pub const RESERVED_META_PREFIX: &str = "blobseal-";

/// The ETag a client sees for a stored object: the backend's ETag, marked as not being an MD5 of
/// the plaintext. Single-part objects get a `-1` suffix so tools that compare a bare 32-hex ETag with
/// the file's MD5 (rclone, the AWS CLI) treat it as opaque instead of reporting corruption; LIST can
/// compute it without reading the object. See `docs/FORMAT.md`.
pub fn client_etag(backend_etag: &str) -> String {
    let bare = backend_etag.trim_matches('"');
    if bare.contains('-') {
        bare.to_owned()
    } else {
        format!("{bare}-1")
    }
}

/// Plaintext size of a stored object of `stored` bytes; objects that are not blobseal's keep their size.
pub(crate) fn listed_size(stored: u64) -> u64 {
    plaintext_len(stored).unwrap_or(stored)
}

pub(crate) fn user_metadata(all: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    all.iter().filter(|(k, _)| !k.starts_with(RESERVED_META_PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Prefix of the metadata entries that carry the client's entity headers (`Content-Type` etc.).
/// They are not given to the backend as headers: the stored body is ciphertext, so a backend must
/// not see it as, say, gzip-encoded text or a form to parse; and this way they are authenticated.
pub(crate) const HEADER_META_PREFIX: &str = "blobseal-h-";

/// What the backend stores as the object's Content-Type.
pub(crate) const STORED_CONTENT_TYPE: &str = "application/octet-stream";

pub(crate) fn header_fields(h: &ContentHeaders) -> [(&'static str, &Option<String>); 6] {
    [
        ("content-type", &h.content_type),
        ("content-encoding", &h.content_encoding),
        ("content-disposition", &h.content_disposition),
        ("content-language", &h.content_language),
        ("cache-control", &h.cache_control),
        ("expires", &h.expires),
    ]
}

/// The metadata stored with an object (without its envelope): user metadata plus entity headers.
pub(crate) fn stored_metadata(user: BTreeMap<String, String>, headers: &ContentHeaders) -> BTreeMap<String, String> {
    let mut out = user;
    for (name, value) in header_fields(headers) {
        if let Some(v) = value {
            out.insert(format!("{HEADER_META_PREFIX}{name}"), v.clone());
        }
    }
    out
}

/// The client's entity headers, from stored metadata.
pub(crate) fn stored_headers(all: &BTreeMap<String, String>) -> ContentHeaders {
    let get = |name: &str| all.get(&format!("{HEADER_META_PREFIX}{name}")).cloned();
    ContentHeaders {
        content_type: get("content-type"),
        content_encoding: get("content-encoding"),
        content_disposition: get("content-disposition"),
        content_language: get("content-language"),
        cache_control: get("cache-control"),
        expires: get("expires"),
    }
}

/// Digest over every stored metadata entry except the envelope itself.
pub(crate) fn digest_of(stored: &BTreeMap<String, String>) -> [u8; 32] {
    metadata_digest(stored.iter().filter(|(k, _)| k.as_str() != ENVELOPE_META).map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Backend options for a sealed object: its metadata (with envelope) and a neutral content type.
pub(crate) fn backend_put_options(
    mut stored: BTreeMap<String, String>,
    envelope: String,
    if_none_match_any: bool,
    tags: BTreeMap<String, String>,
) -> PutOptions {
    stored.insert(ENVELOPE_META.to_owned(), envelope);
    PutOptions {
        metadata: stored,
        headers: ContentHeaders { content_type: Some(STORED_CONTENT_TYPE.to_owned()), ..ContentHeaders::default() },
        if_none_match_any,
        source_if_match: None,
        tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_marked_as_not_md5() {
        assert_eq!(client_etag("\"abc\""), "abc-1");
        assert_eq!(client_etag("abc-3"), "abc-3");
    }

    #[test]
    fn headers_round_trip_through_metadata_and_are_digested() {
        let headers = ContentHeaders {
            content_type: Some("text/plain".into()),
            cache_control: Some("no-cache".into()),
            ..ContentHeaders::default()
        };
        let user: BTreeMap<String, String> = [("a".to_owned(), "1".to_owned())].into();
        let stored = stored_metadata(user.clone(), &headers);
        assert_eq!(stored_headers(&stored), headers);
        assert_eq!(user_metadata(&stored), user);
        let opts = backend_put_options(stored.clone(), "ENV".into(), false, BTreeMap::new());
        assert_eq!(opts.headers.content_type.as_deref(), Some(STORED_CONTENT_TYPE));
        // The envelope entry is not part of the digest; every other entry is.
        assert_eq!(digest_of(&opts.metadata), digest_of(&stored));
        let mut edited = stored.clone();
        edited.insert(format!("{HEADER_META_PREFIX}content-type"), "text/html".into());
        assert_ne!(digest_of(&edited), digest_of(&stored));
    }
}
