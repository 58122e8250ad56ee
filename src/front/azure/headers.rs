//! Request headers in core terms (metadata, content headers, ranges, conditions) and the standard
//! response headers of a blob. Pure functions over `http::HeaderMap`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use time::OffsetDateTime;

use super::error::AzureError;
use crate::backend::ContentHeaders;
use crate::core::service::{ObjectInfo, RangeRequest};

pub const META_PREFIX: &str = "x-ms-meta-";

/// A header's value as text (`None` if absent or not visible ASCII).
pub fn text<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The `x-ms-meta-*` headers as user metadata. Names are kept lower case (HTTP header names are
/// case-insensitive, and S3 backends lower-case them: the same blob must authenticate on every backend).
pub fn metadata(h: &HeaderMap) -> Result<BTreeMap<String, String>, AzureError> {
    let mut out = BTreeMap::new();
    for (name, value) in h {
        let Some(key) = name.as_str().strip_prefix(META_PREFIX) else { continue };
        if key.is_empty() {
            return Err(AzureError::bad_request(
                "EmptyMetadataKey",
                "The key for one of the metadata key-value pairs is empty.",
            ));
        }
        // Azure's rule: metadata names are C# identifiers.
        let mut chars = key.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(AzureError::bad_request(
                "InvalidMetadata",
                "Metadata names must be valid C# identifiers (letters, digits and underscores).",
            ));
        }
        let value =
            value.to_str().map_err(|_| AzureError::bad_request("InvalidMetadata", "A metadata value is not ASCII."))?;
        out.insert(key.to_ascii_lowercase(), value.to_owned());
    }
    Ok(out)
}

/// The blob's content headers from `x-ms-blob-*` (falling back to the standard headers a Put Blob may
/// carry, when `standard_too`).
pub fn content_headers(h: &HeaderMap, standard_too: bool) -> ContentHeaders {
    let pick = |azure: &str, standard: &str| {
        text(h, azure).or_else(|| if standard_too { text(h, standard) } else { None }).map(str::to_owned)
    };
    ContentHeaders {
        content_type: pick("x-ms-blob-content-type", "content-type"),
        content_encoding: pick("x-ms-blob-content-encoding", "content-encoding"),
        content_disposition: pick("x-ms-blob-content-disposition", "content-disposition"),
        content_language: pick("x-ms-blob-content-language", "content-language"),
        cache_control: pick("x-ms-blob-cache-control", "cache-control"),
        expires: None,
    }
}

/// A base64 MD5 from a header, checked to be one.
pub fn md5_header(h: &HeaderMap, name: &str) -> Result<Option<[u8; 16]>, AzureError> {
    match text(h, name) {
        None => Ok(None),
        Some(v) => {
            STANDARD.decode(v).ok().and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok()).map(Some).ok_or_else(|| {
                AzureError::bad_request("InvalidMd5", "The MD5 value specified in the request is invalid.")
            })
        }
    }
}

/// An 8-byte CRC-64 from `x-ms-content-crc64` (base64 of the little-endian value). A request body carries
/// one transactional checksum: with `Content-MD5` as well, Azure refuses the request (400).
pub fn crc64_header(h: &HeaderMap) -> Result<Option<u64>, AzureError> {
    match text(h, "x-ms-content-crc64") {
        None => Ok(None),
        Some(_) if h.contains_key("content-md5") => Err(AzureError::bad_request(
            "BothCrc64AndMd5HeaderPresent",
            "Both the x-ms-content-crc64 header and the Content-MD5 header are present.",
        )),
        Some(v) => STANDARD
            .decode(v)
            .ok()
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(|b| Some(u64::from_le_bytes(b)))
            .ok_or_else(|| AzureError::bad_request("InvalidHeaderValue", "x-ms-content-crc64 is not a base64 CRC-64.")),
    }
}

/// The requested range: `x-ms-range` wins over `Range`. Malformed ranges are ignored, as HTTP says.
pub fn range(h: &HeaderMap) -> Option<RangeRequest> {
    let spec = text(h, "x-ms-range").or_else(|| text(h, "range"))?.trim();
    let spec = spec.strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    match (first.trim(), last.trim()) {
        ("", n) => n.parse().ok().map(RangeRequest::Suffix),
        (f, "") => f.parse().ok().map(RangeRequest::From),
        (f, l) => Some(RangeRequest::FromTo(f.parse().ok()?, l.parse().ok()?)),
    }
}

/// User tags from `x-ms-tags` (`k1=v1&k2=v2`, URL-encoded).
pub fn tags(h: &HeaderMap) -> Result<BTreeMap<String, String>, AzureError> {
    let Some(raw) = text(h, "x-ms-tags") else { return Ok(BTreeMap::new()) };
    let mut out = BTreeMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| AzureError::bad_request("InvalidTag", "x-ms-tags is not valid UTF-8."))
        };
        out.insert(decode(k)?, decode(v)?);
    }
    check_tags(&out)?;
    Ok(out)
}

/// Azure's tag rules: at most 10, keys 1-128 and values 0-256 characters of `[A-Za-z0-9 +-./:=_]`.
pub fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), AzureError> {
    let ok_chars = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || " +-./:=_".contains(c));
    if tags.len() > 10 {
        return Err(AzureError::bad_request("InvalidTag", "At most 10 tags may be set on a blob."));
    }
    for (k, v) in tags {
        if k.is_empty() || k.len() > 128 || v.len() > 256 || !ok_chars(k) || !ok_chars(v) {
            return Err(AzureError::bad_request("InvalidTag", "The tags specified are invalid."));
        }
    }
    Ok(())
}

/// RFC 1123 time, as Azure writes `Last-Modified`.
pub fn http_date(t: OffsetDateTime) -> String {
    httpdate::fmt_http_date(std::time::SystemTime::from(t))
}

pub fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    httpdate::parse_http_date(s).ok().map(OffsetDateTime::from)
}

/// A blob's ETag as the Azure front end shows it: the object's ETag and its envelope tag, so that it
/// changes on a metadata-only write too, as Azure's does (the S3 front end shows the object's ETag alone).
pub fn azure_etag(etag: &str, envelope_tag: Option<&str>) -> String {
    match envelope_tag {
        Some(t) => format!("{}.{t}", etag.trim_matches('"')),
        None => etag.trim_matches('"').to_owned(),
    }
}

/// The Azure ETag of a blob's info.
pub fn info_etag(info: &ObjectInfo) -> String {
    azure_etag(&info.etag, info.envelope_tag.as_deref())
}

/// A quoted ETag.
pub fn quoted(etag: &str) -> String {
    format!("\"{}\"", etag.trim_matches('"'))
}

/// Adds `name: value` if the value is a valid header value.
pub fn put(h: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
        h.insert(n, v);
    }
}

/// The headers Get Blob and Get Blob Properties answer with (`Content-Length` and ranges aside).
pub fn blob_headers(info: &ObjectInfo, tag_count: Option<usize>) -> HeaderMap {
    let mut h = HeaderMap::new();
    put(&mut h, "etag", &quoted(&info_etag(info)));
    put(&mut h, "last-modified", &http_date(info.last_modified));
    put(&mut h, "x-ms-creation-time", &http_date(info.last_modified));
    put(&mut h, "x-ms-blob-type", "BlockBlob");
    put(&mut h, "x-ms-lease-state", "available");
    put(&mut h, "x-ms-lease-status", "unlocked");
    put(&mut h, "x-ms-server-encrypted", "true");
    put(&mut h, "x-ms-access-tier", "Hot");
    put(&mut h, "x-ms-access-tier-inferred", "true");
    put(&mut h, "accept-ranges", "bytes");
    put(&mut h, "content-type", info.headers.content_type.as_deref().unwrap_or("application/octet-stream"));
    for (name, value) in [
        ("content-encoding", &info.headers.content_encoding),
        ("content-language", &info.headers.content_language),
        ("content-disposition", &info.headers.content_disposition),
        ("cache-control", &info.headers.cache_control),
    ] {
        if let Some(v) = value {
            put(&mut h, name, v);
        }
    }
    for (k, v) in &info.metadata {
        put(&mut h, &format!("{META_PREFIX}{k}"), v);
    }
    if let Some(n) = tag_count.filter(|n| *n > 0) {
        put(&mut h, "x-ms-tag-count", &n.to_string());
    }
    if let Some(deadline) = &info.delete_after {
        put(&mut h, "x-blobseal-delete-after", deadline);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn ranges_prefer_x_ms_range() {
        let h = map(&[("x-ms-range", "bytes=5-9"), ("range", "bytes=0-1")]);
        assert_eq!(range(&h), Some(RangeRequest::FromTo(5, 9)));
        assert_eq!(range(&map(&[("range", "bytes=7-")])), Some(RangeRequest::From(7)));
        assert_eq!(range(&map(&[("range", "bytes=-3")])), Some(RangeRequest::Suffix(3)));
        assert_eq!(range(&map(&[("range", "items=1-2")])), None);
        assert_eq!(range(&map(&[("range", "bytes=x-2")])), None);
    }

    #[test]
    fn metadata_and_tags() {
        let h = map(&[("x-ms-meta-Data_Subject", "ann"), ("x-ms-tags", "a=1&b%20c=x+y"), ("content-type", "t")]);
        assert_eq!(metadata(&h).unwrap(), [("data_subject".to_owned(), "ann".to_owned())].into());
        assert_eq!(tags(&h).unwrap(), [("a".to_owned(), "1".to_owned()), ("b c".to_owned(), "x y".to_owned())].into());
        assert!(tags(&map(&[("x-ms-tags", "bad*key=1")])).is_err());
        assert_eq!(content_headers(&h, true).content_type.as_deref(), Some("t"));
        assert_eq!(content_headers(&h, false).content_type, None);
    }

    #[test]
    fn checksums_are_checked_for_shape() {
        let md5 = STANDARD.encode([1u8; 16]);
        assert_eq!(md5_header(&map(&[("content-md5", &md5)]), "content-md5").unwrap(), Some([1u8; 16]));
        assert!(md5_header(&map(&[("content-md5", "AAAA")]), "content-md5").is_err());
        let crc = STANDARD.encode(0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(crc64_header(&map(&[("x-ms-content-crc64", &crc)])).unwrap(), Some(0x0102_0304_0506_0708));
        let both = crc64_header(&map(&[("x-ms-content-crc64", &crc), ("content-md5", &md5)])).unwrap_err();
        assert_eq!(both.code, "BothCrc64AndMd5HeaderPresent");
    }
}
