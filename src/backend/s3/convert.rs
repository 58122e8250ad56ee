//! Conversions between the SDK's types and ours, including the one SDK error mapping.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use time::OffsetDateTime;

use crate::backend::{BackendError, Result, Versioning};

/// The stored content headers of a HeadObject or GetObject output (two SDK types, same getters).
macro_rules! content_headers {
    ($out:expr) => {
        $crate::backend::ContentHeaders {
            content_type: $out.content_type().map(str::to_owned),
            content_encoding: $out.content_encoding().map(str::to_owned),
            content_disposition: $out.content_disposition().map(str::to_owned),
            content_language: $out.content_language().map(str::to_owned),
            cache_control: $out.cache_control().map(str::to_owned),
            expires: $out.expires_string().map(str::to_owned),
        }
    };
}

/// The one place SDK errors become [`BackendError`]s. `not_found` is what a bare 404 means for
/// this call: HEAD responses have no body, hence no error code.
pub(super) fn map_err<E>(err: SdkError<E>, not_found: BackendError) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    let detail = || format!("{}", DisplayErrorContext(&err));
    match (&err, code.as_deref(), status) {
        (SdkError::TimeoutError(_) | SdkError::DispatchFailure(_), _, _) => BackendError::Unavailable(detail()),
        (_, Some("NoSuchKey"), _) => BackendError::NoSuchKey,
        (_, Some("NoSuchBucket"), _) => BackendError::NoSuchBucket,
        (_, Some("NoSuchVersion"), _) => BackendError::NoSuchVersion,
        (_, Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists"), _) => BackendError::BucketAlreadyExists,
        (_, Some("BucketNotEmpty"), _) => BackendError::BucketNotEmpty,
        (_, Some("NoSuchUpload"), _) => BackendError::NoSuchUpload,
        (_, Some("InvalidPart"), _) => {
            BackendError::InvalidPart(err.message().unwrap_or("unknown part or ETag mismatch").to_owned())
        }
        (_, Some("InvalidPartOrder"), _) => BackendError::InvalidPartOrder,
        (_, Some("EntityTooSmall"), _) => BackendError::EntityTooSmall,
        (_, Some("PreconditionFailed"), _) | (_, _, Some(412)) => BackendError::PreconditionFailed,
        (_, Some("InvalidRange"), _) | (_, _, Some(416)) => BackendError::InvalidRange,
        (_, Some("SlowDown" | "Throttling" | "TooManyRequests"), _) | (_, _, Some(503 | 429)) => {
            BackendError::Throttled
        }
        (_, Some("NotImplemented"), _) | (_, _, Some(501)) => {
            BackendError::NotSupported("operation not implemented by the S3 server")
        }
        (_, _, Some(403)) => BackendError::PermissionDenied(code.unwrap_or_else(|| "AccessDenied".into())),
        (_, _, Some(404)) => not_found,
        (_, _, Some(s)) if s >= 500 => BackendError::Unavailable(detail()),
        (
            _,
            Some("InvalidArgument" | "InvalidRequest" | "InvalidBucketName" | "MalformedXML" | "EntityTooLarge"),
            _,
        ) => BackendError::InvalidRequest(err.message().unwrap_or("invalid request").to_owned()),
        _ => BackendError::Other { backend: "s3", message: detail() },
    }
}

/// Reads the status from a 200 GetBucketVersioning response the SDK could not parse: moto 5.2
/// names the root element `GetBucketVersioningResponse` instead of `VersioningConfiguration`.
/// `None` when the error is anything else.
pub(super) fn unparsed_versioning<E>(err: &SdkError<E>) -> Option<Versioning> {
    let raw = err.raw_response().filter(|r| r.status().as_u16() == 200)?;
    let body = raw.body().bytes()?;
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    Some(if has(b"<Status>Enabled</Status>") {
        Versioning::Enabled
    } else if has(b"<Status>Suspended</Status>") {
        Versioning::Suspended
    } else {
        Versioning::Unversioned
    })
}

/// S3 calls "no version" `null`; the trait calls it `None`.
pub(super) fn version(v: Option<&str>) -> Option<String> {
    v.filter(|v| *v != "null").map(str::to_owned)
}

pub(super) fn etag(e: Option<&str>) -> String {
    e.unwrap_or_default().trim_matches('"').to_owned()
}

pub(super) fn to_time(t: Option<&DateTime>) -> OffsetDateTime {
    t.and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(super) fn size(n: Option<i64>) -> u64 {
    n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

/// Parses `bytes START-END/SIZE` into (`START..END+1`, SIZE).
pub(super) fn parse_content_range(v: &str) -> Option<(std::ops::Range<u64>, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let (start, end, total): (u64, u64, u64) = (start.parse().ok()?, end.parse().ok()?, total.parse().ok()?);
    (start <= end && end < total).then(|| (start..end + 1, total))
}

/// Percent-encodes a key for `x-amz-copy-source`, keeping `/` as S3 expects.
pub(super) fn encode_copy_source(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    let mut s = format!("{bucket}/{}", utf8_percent_encode(key, KEEP));
    if let Some(v) = version_id {
        s.push_str("?versionId=");
        s.extend(utf8_percent_encode(v, KEEP));
    }
    s
}

/// Tags as the `x-amz-tagging` header carries them: a URL query string (`k1=v1&k2=v2`, each key and
/// value percent-encoded). `None` for no tags, so no header is sent.
pub(super) fn encode_tagging(tags: &BTreeMap<String, String>) -> Option<String> {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    // RFC 3986 unreserved characters stay; everything else (space, `=`, `&`, `+`, `:`, `/`) is encoded.
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    if tags.is_empty() {
        return None;
    }
    let pairs: Vec<String> = tags
        .iter()
        .map(|(k, v)| format!("{}={}", utf8_percent_encode(k, KEEP), utf8_percent_encode(v, KEEP)))
        .collect();
    Some(pairs.join("&"))
}

pub(super) fn parse_expires(e: Option<&str>) -> Result<Option<DateTime>> {
    e.map(|s| {
        DateTime::from_str(s, DateTimeFormat::HttpDate)
            .map_err(|_| BackendError::InvalidRequest(format!("invalid Expires {s:?}")))
    })
    .transpose()
}

pub(super) fn metadata(m: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    m.map(|m| m.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(parse_content_range("bytes 10-19/100"), Some((10..20, 100)));
        assert_eq!(parse_content_range("bytes 0-0/1"), Some((0..1, 1)));
        for bad in ["bytes 5-4/10", "bytes 0-10/10", "bytes */10", "items 0-1/2", "bytes 0-1", "bytes a-b/c", ""] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn copy_source_is_percent_encoded() {
        assert_eq!(encode_copy_source("b", "a b/ü+?", None), "b/a%20b/%C3%BC%2B%3F");
        assert_eq!(encode_copy_source("b", "k", Some("v+1")), "b/k?versionId=v%2B1");
    }

    #[test]
    fn tagging_is_a_percent_encoded_query() {
        assert_eq!(encode_tagging(&BTreeMap::new()), None);
        let tags: BTreeMap<String, String> =
            [("a", "1"), ("b c", "d=e+f:/&"), ("blobseal-delete-after", "2026-12-28T00:00:00Z")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        assert_eq!(
            encode_tagging(&tags).as_deref(),
            Some("a=1&b%20c=d%3De%2Bf%3A%2F%26&blobseal-delete-after=2026-12-28T00%3A00%3A00Z")
        );
    }

    #[test]
    fn null_version_is_none() {
        assert_eq!(version(Some("null")), None);
        assert_eq!(version(Some("abc")), Some("abc".to_owned()));
    }
}
