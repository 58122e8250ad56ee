//! The request gate: what blobseal refuses from request line and headers alone, before s3s (or
//! anything else) reads a byte of the body or does any expensive work.
//!
//! s3s 0.14 lets through, before any of our code runs (FACTS.md): PostObject form uploads, whose
//! file part it buffers (up to 5 GiB) before it knows whether the request is signed; SigV2 header
//! authentication with no clock-skew check (a captured request replays forever); SigV2 presigned
//! URLs with any `Expires`; SigV4 presigned URLs with `X-Amz-Expires` up to 2^32-1 s; and STS
//! requests whose body it buffers to hash. Each is refused here, with the S3 error code S3 itself
//! uses where it has one, and a message that names the fix. The gate is a pure function of the
//! request head, the tenants' presign rules and the clock, so every rule has a unit test.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::HashMap;

use http::{HeaderMap, Method, StatusCode, Uri};
use percent_encoding::percent_decode_str;

/// S3's limit on a presigned URL's lifetime (7 days).
pub const MAX_PRESIGN_SECONDS: u64 = 604_800;

/// One tenant's presigned-URL rules, by access key id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresignRules {
    /// Longest lifetime of a presigned URL, ≤ [`MAX_PRESIGN_SECONDS`].
    pub max_seconds: u64,
    /// Whether SigV2 presigned GET/HEAD URLs are accepted.
    pub sigv2: bool,
}

impl Default for PresignRules {
    fn default() -> Self {
        Self { max_seconds: MAX_PRESIGN_SECONDS, sigv2: true }
    }
}

/// Why a request was refused at the gate: an S3 error answered without reading the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    /// The S3 error code (`InvalidRequest`, `AccessDenied`, ...).
    pub code: &'static str,
    /// Says what to do instead. Never echoes a signature or a query value.
    pub message: String,
    /// A short, fixed label for the log line and metrics (`sigv2-header`, `post-object`, ...).
    pub reason: &'static str,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), reason }
    }
}

const SIGV4_ONLY: &str =
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256 (Signature Version 4).";

/// The gate: the tenants' presign rules by access key id.
#[derive(Clone, Debug, Default)]
pub struct RequestGate {
    rules: HashMap<String, PresignRules>,
}

/// The auth-related query parameters of a request (exact names, as s3s matches them).
#[derive(Default)]
struct AuthQuery {
    v4_signature: bool,
    v4_algorithm: bool,
    v4_credential: Option<String>,
    v4_expires: Option<String>,
    v2_signature: bool,
    v2_access_key: Option<String>,
    v2_expires: Option<String>,
    /// An auth parameter given twice: ambiguous, so refused.
    duplicate: bool,
}

impl AuthQuery {
    fn parse(query: &str) -> Self {
        let mut q = AuthQuery::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode_str(name).decode_utf8_lossy();
            let value = || percent_decode_str(value).decode_utf8_lossy().into_owned();
            let seen = match name.as_ref() {
                "X-Amz-Signature" => std::mem::replace(&mut q.v4_signature, true),
                "X-Amz-Algorithm" => std::mem::replace(&mut q.v4_algorithm, true),
                "X-Amz-Credential" => q.v4_credential.replace(value()).is_some(),
                "X-Amz-Expires" => q.v4_expires.replace(value()).is_some(),
                "Signature" => std::mem::replace(&mut q.v2_signature, true),
                "AWSAccessKeyId" => q.v2_access_key.replace(value()).is_some(),
                "Expires" => q.v2_expires.replace(value()).is_some(),
                _ => false,
            };
            q.duplicate |= seen;
        }
        q
    }

    fn v4(&self) -> bool {
        self.v4_signature || self.v4_algorithm || self.v4_credential.is_some()
    }

    fn v2(&self) -> bool {
        self.v2_signature || self.v2_access_key.is_some()
    }
}

impl RequestGate {
    /// A gate knowing each tenant's rules by access key id; unknown keys get the defaults (s3s
    /// refuses them anyway with `InvalidAccessKeyId`).
    pub fn new(rules: HashMap<String, PresignRules>) -> Self {
        Self { rules }
    }

    fn rules_for(&self, access_key: Option<&str>) -> PresignRules {
        access_key.and_then(|k| self.rules.get(k)).copied().unwrap_or_default()
    }

    /// Checks a request head; `now` is Unix seconds. `Ok` means s3s may see the request.
    pub fn check(&self, method: &Method, uri: &Uri, headers: &HeaderMap, now: i64) -> Result<(), Refusal> {
        if *method == Method::POST && is_form_upload(headers) {
            return Err(Refusal::new(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                "post-object",
                "PostObject (browser form uploads) is not supported by blobseal: upload with PutObject, for example \
                 through a presigned PUT URL.",
            ));
        }
        let query = AuthQuery::parse(uri.query().unwrap_or(""));
        let mut authorization = headers.get_all(http::header::AUTHORIZATION).iter();
        let header = authorization.next();
        if authorization.next().is_some() || (header.is_some() && (query.v4() || query.v2())) || query.duplicate {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "ambiguous-auth",
                "Only one auth mechanism allowed: one Authorization header, or the X-Amz-* (SigV4) or \
                 Signature (SigV2) query parameters, each once.",
            ));
        }
        if let Some(value) = header {
            return check_authorization(value.as_bytes());
        }
        if query.v2() {
            return self.check_v2_presigned(method, &query, now);
        }
        if query.v4() {
            return self.check_v4_presigned(&query);
        }
        Err(Refusal::new(StatusCode::FORBIDDEN, "AccessDenied", "anonymous", "Anonymous requests are not allowed"))
    }

    fn check_v4_presigned(&self, q: &AuthQuery) -> Result<(), Refusal> {
        let credential = q.v4_credential.as_deref().unwrap_or("");
        let mut scope = credential.split('/');
        let access_key = scope.next();
        if scope.nth(2).is_some_and(|service| service != "s3") {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "not-s3",
                "Only the s3 service is offered here.",
            ));
        }
        let expires = q.v4_expires.as_deref().and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                "presign-expires",
                "X-Amz-Expires must be a whole number of seconds between 1 and 604800.",
            )
        })?;
        if expires == 0 || expires > MAX_PRESIGN_SECONDS {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                "presign-expires",
                "X-Amz-Expires must be less than a week (in seconds) that is 604800.",
            ));
        }
        let rules = self.rules_for(access_key);
        if expires > rules.max_seconds {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                "presign-expires",
                format!(
                    "X-Amz-Expires {expires} is above this account's limit of {} seconds: presign with a shorter expiry.",
                    rules.max_seconds
                ),
            ));
        }
        Ok(())
    }

    fn check_v2_presigned(&self, method: &Method, q: &AuthQuery, now: i64) -> Result<(), Refusal> {
        if *method != Method::GET && *method != Method::HEAD {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "sigv2-write",
                "Signature Version 2 presigned URLs are accepted for GET and HEAD only: presign writes with SigV4 \
                 (boto3: Config(signature_version=\"s3v4\")).",
            ));
        }
        let rules = self.rules_for(q.v2_access_key.as_deref());
        if !rules.sigv2 {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "sigv2-off",
                "This account accepts Signature Version 4 only: presign with SigV4 (boto3: \
                 Config(signature_version=\"s3v4\")).",
            ));
        }
        let expires = q.v2_expires.as_deref().and_then(|v| v.parse::<i64>().ok()).ok_or_else(|| {
            Refusal::new(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "presign-expires",
                "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters.",
            )
        })?;
        if expires <= now {
            return Err(Refusal::new(StatusCode::FORBIDDEN, "AccessDenied", "presign-expired", "Request has expired"));
        }
        let limit = rules.max_seconds.min(MAX_PRESIGN_SECONDS);
        if u64::try_from(expires.saturating_sub(now)).unwrap_or(u64::MAX) > limit {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                "presign-expires",
                format!("Expires is more than {limit} seconds ahead: presign with a shorter expiry (at most 7 days)."),
            ));
        }
        Ok(())
    }
}

/// `Authorization:` must be SigV4 for the s3 service; everything else is refused before the body.
fn check_authorization(value: &[u8]) -> Result<(), Refusal> {
    let Some(params) = value.strip_prefix(b"AWS4-HMAC-SHA256 ") else {
        let reason = if value.starts_with(b"AWS ") { "sigv2-header" } else { "auth-scheme" };
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "InvalidRequest", reason, SIGV4_ONLY));
    };
    // `Credential=AK/date/region/service/aws4_request`: s3s verifies the rest; the service must be s3
    // (an sts scope would have s3s hash a buffered body before the signature check).
    let params = String::from_utf8_lossy(params);
    let credential = params.split(',').map(str::trim).find_map(|p| p.strip_prefix("Credential="));
    if credential.and_then(|c| c.split('/').nth(3)).is_some_and(|service| service != "s3") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "not-s3",
            "Only the s3 service is offered here.",
        ));
    }
    Ok(())
}

/// A `multipart/*` body on a POST is a browser form upload (PostObject) — s3s treats
/// `multipart/form-data` so, and no other S3 POST carries a multipart body.
fn is_form_upload(headers: &HeaderMap) -> bool {
    headers.get_all(http::header::CONTENT_TYPE).iter().any(|v| {
        let v = String::from_utf8_lossy(v.as_bytes());
        v.split(';').next().unwrap_or("").trim().to_ascii_lowercase().starts_with("multipart/")
    })
}

#[cfg(test)]
mod tests;

/// The access key id a request claims (SigV4 header or presigned query, SigV2 presigned query), for
/// naming the tenant in its log line once the request was answered. Not authentication: s3s checks
/// the signature.
pub fn claimed_access_key(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let params = value.to_str().ok()?.strip_prefix("AWS4-HMAC-SHA256 ")?;
        let credential = params.split(',').map(str::trim).find_map(|p| p.strip_prefix("Credential="))?;
        return credential.split('/').next().map(str::to_owned);
    }
    let q = AuthQuery::parse(uri.query()?);
    match (q.v4_credential, q.v2_access_key) {
        (Some(c), _) => c.split('/').next().map(str::to_owned),
        (None, key) => key,
    }
}

#[cfg(test)]
mod claimed_key_tests {
    use super::*;

    #[test]
    fn the_access_key_comes_from_the_header_or_the_presigned_query() {
        let mut h = HeaderMap::new();
        let uri: Uri = "/b/k".parse().unwrap();
        assert_eq!(claimed_access_key(&uri, &h), None);
        h.insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKID1/20261205/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab"
                .parse()
                .unwrap(),
        );
        assert_eq!(claimed_access_key(&uri, &h).as_deref(), Some("AKID1"));
        let v4: Uri =
            "/b/k?X-Amz-Credential=AKID2%2F20261205%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=x".parse().unwrap();
        assert_eq!(claimed_access_key(&v4, &HeaderMap::new()).as_deref(), Some("AKID2"));
        let v2: Uri = "/b/k?AWSAccessKeyId=AKID3&Signature=x&Expires=1".parse().unwrap();
        assert_eq!(claimed_access_key(&v2, &HeaderMap::new()).as_deref(), Some("AKID3"));
    }
}
