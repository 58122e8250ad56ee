//! Conversions between s3s DTOs and core types. No logic beyond the mapping.

use std::collections::BTreeMap;
use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::{ETag, Metadata, Timestamp, TimestampFormat};
use s3s::{s3_error, S3Request, S3Result};
use time::OffsetDateTime;

use crate::backend::ContentHeaders;
use crate::core::service::RangeRequest;
use crate::core::tenant::Tenant;

/// The tenant resolved by `TenantAccess` for this request.
pub fn tenant<T>(req: &S3Request<T>) -> S3Result<Arc<Tenant>> {
    req.extensions.get::<Arc<Tenant>>().cloned().ok_or_else(|| s3_error!(AccessDenied))
}

/// User metadata from a request, names lower-cased (S3 treats them case-insensitively).
pub fn metadata_in(m: Option<Metadata>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()
}

/// User metadata for a response; `None` when empty.
pub fn metadata_out(m: &BTreeMap<String, String>) -> Option<Metadata> {
    if m.is_empty() {
        None
    } else {
        Some(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

/// A strong ETag for the wire (s3s adds the quotes).
pub fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

pub fn timestamp(t: OffsetDateTime) -> Timestamp {
    Timestamp::from(t)
}

/// `Expires` as stored: an HTTP date string.
pub fn expires_in(t: Option<Timestamp>) -> Option<String> {
    let t = t?;
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// `Expires` for a response; unparsable stored values are dropped rather than failing the request.
pub fn expires_out(s: Option<&String>) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s?).ok()
}

/// Entity headers from a PutObject/CopyObject request.
pub fn content_headers(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<Timestamp>,
) -> ContentHeaders {
    ContentHeaders {
        content_type,
        content_encoding,
        content_disposition,
        content_language,
        cache_control,
        expires: expires_in(expires),
    }
}

pub fn range_request(r: s3s::dto::Range) -> RangeRequest {
    match r {
        s3s::dto::Range::Int { first, last: Some(last) } => RangeRequest::FromTo(first, last),
        s3s::dto::Range::Int { first, last: None } => RangeRequest::From(first),
        s3s::dto::Range::Suffix { length } => RangeRequest::Suffix(length),
    }
}

/// Characters S3 leaves unescaped with `encoding-type=url`.
const URL_KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// Encodes a key (or prefix, marker) for a listing that asked for `encoding-type=url`.
pub fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, URL_KEEP).to_string()
}

/// Applies `encoding-type=url` when requested.
pub fn maybe_encode(s: String, encode: bool) -> String {
    if encode {
        url_encode(&s)
    } else {
        s
    }
}

/// `x-amz-copy-source` as (bucket, key, version id); access-point sources are refused.
pub fn copy_source_of(src: &s3s::dto::CopySource) -> S3Result<(String, String, Option<String>)> {
    match src {
        s3s::dto::CopySource::Bucket { bucket, key, version_id } => {
            Ok((bucket.to_string(), key.to_string(), version_id.as_deref().map(str::to_owned)))
        }
        s3s::dto::CopySource::AccessPoint { .. } | s3s::dto::CopySource::Outpost { .. } => {
            Err(s3s::s3_error!(NotImplemented, "access point copy sources are not supported"))
        }
    }
}

/// The `PutRequest` of a write (PutObject, CopyObject with REPLACE, CreateMultipartUpload): user
/// metadata and the six entity headers, which every such s3s input carries under the same names.
macro_rules! put_request_of {
    ($input:expr, $create_only:expr, $tags:expr, $retention_days:expr) => {
        $crate::core::service::PutRequest {
            metadata: $crate::front::s3::convert::metadata_in($input.metadata),
            headers: $crate::front::s3::convert::content_headers(
                $input.content_type,
                $input.content_encoding,
                $input.content_disposition,
                $input.content_language,
                $input.cache_control,
                $input.expires,
            ),
            if_none_match_any: $create_only,
            tags: $tags,
            retention_days: $retention_days,
            content_md5: None,
        }
    };
}
pub(crate) use put_request_of;

/// Request header with which a client asks for a retention (days from now) where its rule allows it.
pub const RETENTION_DAYS_HEADER: &str = "x-blobseal-retention-days";
/// Response header carrying the deletion deadline stamped on a written object.
pub const DELETE_AFTER_HEADER: &str = "x-blobseal-delete-after";

/// Parses `x-amz-tagging` (`k1=v1&k2=v2`, URL-encoded) into tags; at most 10, as S3 allows.
pub fn tags_of(tagging: Option<&str>) -> S3Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for pair in tagging.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| s3s::s3_error!(InvalidArgument, "x-amz-tagging is not valid UTF-8"))
        };
        let (k, v) = (decode(k)?, decode(v)?);
        if k.is_empty() || k.len() > 128 || v.len() > 256 {
            return Err(s3s::s3_error!(InvalidTag, "tag keys are 1 to 128 characters, values at most 256"));
        }
        if out.insert(k, v).is_some() {
            return Err(s3s::s3_error!(InvalidTag, "Cannot provide multiple Tags with the same key"));
        }
    }
    if out.len() > 10 {
        return Err(s3s::s3_error!(InvalidTag, "Object tags cannot be greater than 10"));
    }
    Ok(out)
}

/// The client's `x-blobseal-retention-days`, if any.
pub fn retention_days_of(headers: &http::HeaderMap) -> S3Result<Option<u32>> {
    match headers.get(RETENTION_DAYS_HEADER) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|d| (1..=36_500).contains(d))
            .map(Some)
            .ok_or_else(|| {
                s3s::s3_error!(InvalidArgument, "x-blobseal-retention-days must be a number of days, 1 to 36500")
            }),
    }
}

/// Adds the deadline header to a write's response.
pub fn with_deadline<T>(mut resp: s3s::S3Response<T>, delete_after: Option<&str>) -> s3s::S3Response<T> {
    if let Some(v) = delete_after.and_then(|d| http::HeaderValue::from_str(d).ok()) {
        resp.headers.insert(http::HeaderName::from_static(DELETE_AFTER_HEADER), v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_matches_s3() {
        assert_eq!(url_encode("a b/c+d%e"), "a%20b/c%2Bd%25e");
        assert_eq!(url_encode("ü"), "%C3%BC");
    }

    #[test]
    fn ranges() {
        let r = s3s::dto::Range::parse("bytes=-5").ok();
        assert_eq!(r.map(range_request), Some(RangeRequest::Suffix(5)));
        let r = s3s::dto::Range::parse("bytes=2-").ok();
        assert_eq!(r.map(range_request), Some(RangeRequest::From(2)));
    }
}
