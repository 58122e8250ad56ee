//! Backend types to Azure request headers and back: metadata, content headers, tags, object
//! properties and immutability state. Pure functions over header lists, tested without a server.

use std::collections::BTreeMap;

use azure_core::http::headers::Headers;
use azure_core::http::Request;
use base64::Engine as _;
use time::OffsetDateTime;

use super::names::{metadata_name, metadata_value, user_metadata_name, user_metadata_value};
use crate::backend::{BackendError, ContentHeaders, LockState, ObjectHead, ObjectMeta, PutOptions, Result};

/// The backend's own metadata name for S3's `Expires` (Azure has no such blob property).
pub(super) const EXPIRES_META: &str = "bs_expires";
/// The S3 ETag of a blob assembled from parts (`<md5 of part md5s>-<count>`), which no Azure
/// property holds.
pub(super) const ETAG_META: &str = "bs_etag";

/// The ETag the backend reports, as S3 would: a multipart object's stored one, else the MD5 of
/// the bytes (Azure keeps it as `Content-MD5` for whole uploads and copies), else Azure's ETag.
pub(super) fn reported_etag(etag_meta: Option<&str>, content_md5: Option<&[u8]>, azure_etag: Option<&str>) -> String {
    if let Some(stored) = etag_meta.filter(|e| !e.is_empty()) {
        return stored.to_owned();
    }
    if let Some(md5) = content_md5.filter(|m| m.len() == 16) {
        return hex::encode(md5);
    }
    azure_etag.unwrap_or_default().trim_matches('"').to_owned()
}

/// [`reported_etag`] of a response's headers.
pub(super) fn etag_of(headers: &Headers) -> String {
    let meta = metadata_headers(headers).find(|(n, _)| n.eq_ignore_ascii_case(ETAG_META)).map(|(_, v)| v);
    // A ranged read's `Content-MD5` is the range's (if any): the blob's is `x-ms-blob-content-md5`.
    let whole = header(headers, "x-ms-blob-content-md5")
        .or_else(|| header(headers, "content-md5").filter(|_| header(headers, "content-range").is_none()));
    let md5 = whole.and_then(|m| base64::engine::general_purpose::STANDARD.decode(m).ok());
    reported_etag(meta.as_deref(), md5.as_deref(), header(headers, "etag"))
}
const META_PREFIX: &str = "x-ms-meta-";

/// Sets user metadata (encoded), `Expires` and tags of `opts` on a write.
pub(super) fn set_metadata_and_tags(req: &mut Request, opts: &PutOptions) {
    for (name, value) in &opts.metadata {
        req.insert_header(format!("{META_PREFIX}{}", metadata_name(name)), metadata_value(value));
    }
    if let Some(expires) = &opts.headers.expires {
        req.insert_header(format!("{META_PREFIX}{EXPIRES_META}"), metadata_value(expires));
    }
    if !opts.tags.is_empty() {
        req.insert_header("x-ms-tags", tags_header(&opts.tags));
    }
}

/// Sets the blob's content headers (`x-ms-blob-content-*`) from `headers`.
pub(super) fn set_content_headers(req: &mut Request, headers: &ContentHeaders) {
    let pairs = [
        ("x-ms-blob-content-type", &headers.content_type),
        ("x-ms-blob-content-encoding", &headers.content_encoding),
        ("x-ms-blob-content-disposition", &headers.content_disposition),
        ("x-ms-blob-content-language", &headers.content_language),
        ("x-ms-blob-cache-control", &headers.cache_control),
    ];
    for (name, value) in pairs {
        if let Some(value) = value {
            req.insert_header(name, value.clone());
        }
    }
}

/// Tags as `x-ms-tags` wants them: a URL-encoded query string.
pub(super) fn tags_header(tags: &BTreeMap<String, String>) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in tags {
        out.append_pair(k, v);
    }
    // Azure decodes `%20`, not `+`, as a space in this header.
    out.finish().replace('+', "%20")
}

fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The Set Blob Tags body.
pub(super) fn tags_xml(tags: &BTreeMap<String, String>) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><Tags><TagSet>");
    for (k, v) in tags {
        out.push_str(&format!("<Tag><Key>{}</Key><Value>{}</Value></Tag>", escape_xml(k), escape_xml(v)));
    }
    out.push_str("</TagSet></Tags>");
    out
}

/// The Get Blob Tags answer as a map.
pub(super) fn parse_tags(xml: &[u8]) -> Result<BTreeMap<String, String>> {
    let tags: azure_storage_blob::models::BlobTags = azure_core::xml::from_xml(xml)
        .map_err(|e| BackendError::Other { backend: "azure", message: format!("unreadable tags: {e}") })?;
    Ok(tags
        .blob_tag_set
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| Some((t.key?, t.value.unwrap_or_default())))
        .collect())
}

fn header<'a>(headers: &'a Headers, name: &'static str) -> Option<&'a str> {
    headers.get_optional_str(&azure_core::http::headers::HeaderName::from_static(name))
}

fn http_date(text: &str) -> Option<OffsetDateTime> {
    azure_core::time::parse_rfc7231(text).ok()
}

/// Reads `x-ms-meta-*` into user metadata and the content headers, dropping the backend's own names.
pub(super) fn read_metadata(
    pairs: impl Iterator<Item = (String, String)>,
) -> (BTreeMap<String, String>, Option<String>) {
    let mut user = BTreeMap::new();
    let mut expires = None;
    for (name, value) in pairs {
        if name.eq_ignore_ascii_case(EXPIRES_META) {
            expires = user_metadata_value(&value);
        } else if let (Some(n), Some(v)) = (user_metadata_name(&name), user_metadata_value(&value)) {
            user.insert(n, v);
        }
    }
    (user, expires)
}

/// The metadata pairs of a response, names without the prefix.
pub(super) fn metadata_headers(headers: &Headers) -> impl Iterator<Item = (String, String)> + '_ {
    headers.iter().filter_map(|(n, v)| {
        let name = n.as_str().strip_prefix(META_PREFIX)?;
        Some((name.to_owned(), v.as_str().to_owned()))
    })
}

/// The object as a Get Blob / Get Blob Properties answer describes it. `size` is the blob's
/// whole size (for a ranged GET, from `Content-Range`).
pub(super) fn object_head(key: &str, headers: &Headers) -> Result<ObjectHead> {
    let size = match header(headers, "content-range").and_then(|r| r.rsplit_once('/')) {
        Some((_, total)) => total.parse().ok(),
        None => header(headers, "content-length").and_then(|l| l.parse().ok()),
    }
    .ok_or_else(|| BackendError::Other { backend: "azure", message: "answer without a blob size".into() })?;
    let (metadata, expires) = read_metadata(metadata_headers(headers));
    let content = |name| header(headers, name).filter(|v| !v.is_empty()).map(str::to_owned);
    Ok(ObjectHead {
        meta: ObjectMeta {
            key: key.to_owned(),
            size,
            etag: etag_of(headers),
            last_modified: header(headers, "last-modified").and_then(http_date).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            version_id: header(headers, "x-ms-version-id").map(str::to_owned),
        },
        metadata,
        headers: ContentHeaders {
            content_type: content("content-type"),
            content_encoding: content("content-encoding"),
            content_disposition: content("content-disposition"),
            content_language: content("content-language"),
            cache_control: content("cache-control"),
            expires,
        },
    })
}

/// The lock state a Get Blob Properties answer reports: a time-based immutability policy
/// (`Unlocked` behaves as S3's governance mode, `Locked` as compliance) and a legal hold.
pub(super) fn lock_state(headers: &Headers) -> LockState {
    let mode = header(headers, "x-ms-immutability-policy-mode").and_then(|m| match m.to_ascii_lowercase().as_str() {
        "unlocked" => Some("GOVERNANCE".to_owned()),
        "locked" => Some("COMPLIANCE".to_owned()),
        _ => None,
    });
    let retain_until = header(headers, "x-ms-immutability-policy-until-date").and_then(http_date);
    let legal_hold = header(headers, "x-ms-legal-hold").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    LockState { mode: retain_until.and(mode), retain_until, legal_hold }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use azure_core::http::headers::{HeaderName, HeaderValue};
    use time::macros::datetime;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in pairs {
            h.insert(HeaderName::from(n.to_string()), HeaderValue::from(v.to_string()));
        }
        h
    }

    /// Recorded from Azure's documentation of Get Blob Properties on an account with version-level
    /// immutability (Azurite has none): a locked policy and a legal hold.
    #[test]
    fn lock_state_reads_immutability_policy_and_legal_hold() {
        let locked = headers(&[
            ("x-ms-immutability-policy-until-date", "Wed, 30 Dec 2026 08:00:00 GMT"),
            ("x-ms-immutability-policy-mode", "locked"),
            ("x-ms-legal-hold", "false"),
        ]);
        let state = lock_state(&locked);
        assert_eq!(state.mode.as_deref(), Some("COMPLIANCE"));
        assert_eq!(state.retain_until, Some(datetime!(2026-12-30 08:00 UTC)));
        assert!(!state.legal_hold);
        assert!(state.blocks_delete_at(datetime!(2026-12-29 0:00 UTC)));
        assert!(!state.blocks_delete_at(datetime!(2026-12-31 0:00 UTC)));

        let held = lock_state(&headers(&[("x-ms-legal-hold", "true")]));
        assert!(held.legal_hold && held.mode.is_none() && held.blocks_delete_at(datetime!(2030-01-01 0:00 UTC)));

        let unlocked = lock_state(&headers(&[
            ("x-ms-immutability-policy-until-date", "Wed, 30 Dec 2026 08:00:00 GMT"),
            ("x-ms-immutability-policy-mode", "Unlocked"),
        ]));
        assert_eq!(unlocked.mode.as_deref(), Some("GOVERNANCE"));
        assert_eq!(lock_state(&headers(&[])), LockState::default());
    }

    #[test]
    fn heads_decode_metadata_and_drop_the_backends_own() {
        let h = headers(&[
            ("content-length", "1024"),
            ("content-range", "bytes 0-99/5000"),
            ("etag", "\"0x8DCAFE\""),
            ("last-modified", "Fri, 04 Dec 2026 10:00:00 GMT"),
            ("content-type", "text/plain"),
            ("x-ms-meta-mblobseal_2denvelope", "v1%25x"),
            ("x-ms-meta-bs_expires", "Thu, 01 Jan 2037 00:00:00 GMT"),
            ("x-ms-meta-bs_upload", "abc"),
            ("x-ms-version-id", "2026-12-04T10:00:00.0000000Z"),
        ]);
        let head = object_head("k", &h).unwrap();
        assert_eq!(head.meta.size, 5000, "the whole size comes from Content-Range");
        assert_eq!(head.meta.etag, "0x8DCAFE");
        assert_eq!(head.meta.last_modified, datetime!(2026-12-04 10:00 UTC));
        assert_eq!(head.meta.version_id.as_deref(), Some("2026-12-04T10:00:00.0000000Z"));
        assert_eq!(head.metadata.len(), 1);
        assert_eq!(head.metadata["blobseal-envelope"], "v1%x");
        assert_eq!(head.headers.expires.as_deref(), Some("Thu, 01 Jan 2037 00:00:00 GMT"));
        assert_eq!(head.headers.content_type.as_deref(), Some("text/plain"));
        assert!(object_head("k", &headers(&[])).is_err());
        let md5 = headers(&[("content-length", "1"), ("etag", "\"0x1\""), ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")]);
        assert_eq!(
            object_head("k", &md5).unwrap().meta.etag,
            "d41d8cd98f00b204e9800998ecf8427e",
            "MD5 as S3 reports it"
        );
        let multipart = headers(&[
            ("content-length", "1"),
            ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ("x-ms-meta-bs_etag", "abc-2"),
        ]);
        assert_eq!(object_head("k", &multipart).unwrap().meta.etag, "abc-2");
    }

    #[test]
    fn tags_round_trip_through_header_and_xml() {
        let tags: BTreeMap<String, String> =
            [("project".to_owned(), "a b+c".to_owned()), ("x&y".to_owned(), "<v>".to_owned())].into();
        assert_eq!(tags_header(&tags), "project=a%20b%2Bc&x%26y=%3Cv%3E");
        let xml = tags_xml(&tags);
        assert_eq!(parse_tags(xml.as_bytes()).unwrap(), tags);
        assert!(parse_tags(b"<Tags><TagSet></TagSet></Tags>").unwrap().is_empty());
    }
}
