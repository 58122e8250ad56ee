//! HTTP preconditions (`If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`) on
//! reads and on copy sources (`x-amz-copy-source-if-*`), evaluated against the client-visible ETag and
//! Last-Modified in the order RFC 9110 §13.2.2 gives and S3 follows:
//! - a passing `If-Match` overrides `If-Unmodified-Since` (so true + false → served);
//! - a present `If-None-Match` decides alone, `If-Modified-Since` counts only without it (so a
//!   matching `If-None-Match` answers 304, or 412 for a copy, whatever `If-Modified-Since` says).
//!
//! ETags are compared in the client-visible form (`core::stored::client_etag`, unquoted); the header
//! value may be quoted or not, weak (`W/"…"`), a comma-separated list, or `*`.

use s3s::dto::{ETagCondition, Timestamp};
use s3s::{s3_error, S3Error, S3Result};
use time::OffsetDateTime;

use super::convert::{etag, timestamp};

/// The four preconditions of a request (or of a copy source).
#[derive(Debug, Default)]
pub struct Preconditions {
    pub if_match: Option<ETagCondition>,
    pub if_none_match: Option<ETagCondition>,
    pub if_modified_since: Option<Timestamp>,
    pub if_unmodified_since: Option<Timestamp>,
}

/// What the preconditions say about an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Proceed,
    /// `If-None-Match` matched or `If-Modified-Since` did not hold: 304 on reads.
    NotModified,
    /// `If-Match` or `If-Unmodified-Since` did not hold: 412.
    Failed,
}

/// Whether an ETag condition matches the object's client-visible ETag (given unquoted).
///
/// s3s parses `"a", "b"` as one strong ETag whose value is `a", "b`, so a list is split here;
/// each member is compared without quotes and without a weak prefix (S3 ETags are never weak).
fn matches(cond: &ETagCondition, object_etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(tag) => tag.value().split(',').map(normalize).any(|member| member == object_etag),
    }
}

fn normalize(member: &str) -> &str {
    let t = member.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    t.trim_matches('"')
}

/// HTTP dates have whole seconds; compare at that precision.
fn secs(t: &Timestamp) -> i64 {
    OffsetDateTime::from(t.clone()).unix_timestamp()
}

fn precondition_failed() -> S3Error {
    s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold")
}

impl Preconditions {
    /// True when no condition was given (no evaluation, hence no extra request, is needed).
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.if_unmodified_since.is_none()
    }

    fn evaluate(&self, object_etag: &str, last_modified: OffsetDateTime) -> Verdict {
        let modified = last_modified.unix_timestamp();
        match (&self.if_match, &self.if_unmodified_since) {
            (Some(c), _) if !matches(c, object_etag) => return Verdict::Failed,
            (None, Some(t)) if modified > secs(t) => return Verdict::Failed,
            _ => {}
        }
        match (&self.if_none_match, &self.if_modified_since) {
            (Some(c), _) if matches(c, object_etag) => Verdict::NotModified,
            (None, Some(t)) if modified <= secs(t) => Verdict::NotModified,
            _ => Verdict::Proceed,
        }
    }

    /// For GET and HEAD: `Ok` if the object may be served; 412 PreconditionFailed, or 304 NotModified
    /// carrying the object's `ETag` and `Last-Modified` as S3 sends them (RFC 9110 §15.4.5).
    pub fn check(&self, object_etag: &str, last_modified: OffsetDateTime) -> S3Result<()> {
        match self.evaluate(object_etag, last_modified) {
            Verdict::Proceed => Ok(()),
            Verdict::Failed => Err(precondition_failed()),
            Verdict::NotModified => Err(not_modified(object_etag, last_modified)),
        }
    }

    /// For a copy source (CopyObject, UploadPartCopy): `Ok` if it may be copied, 412
    /// PreconditionFailed otherwise (S3 answers 412 where a read would answer 304).
    pub fn check_copy_source(&self, object_etag: &str, last_modified: OffsetDateTime) -> S3Result<()> {
        match self.evaluate(object_etag, last_modified) {
            Verdict::Proceed => Ok(()),
            Verdict::Failed | Verdict::NotModified => Err(precondition_failed()),
        }
    }
}

/// 304 with the validators of the object. A header that cannot be encoded is left out rather than
/// failing the answer (it cannot happen for the ETags and dates blobseal produces).
fn not_modified(object_etag: &str, last_modified: OffsetDateTime) -> S3Error {
    let mut e = s3_error!(NotModified);
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = etag(object_etag).to_http_header() {
        headers.insert(http::header::ETAG, v);
    }
    let mut date = Vec::new();
    if timestamp(last_modified).format(s3s::dto::TimestampFormat::HttpDate, &mut date).is_ok() {
        if let Ok(v) = http::HeaderValue::from_bytes(&date) {
            headers.insert(http::header::LAST_MODIFIED, v);
        }
    }
    e.set_headers(headers);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(s).unwrap()
    }

    fn code(r: S3Result<()>) -> Option<String> {
        r.err().map(|e| e.code().as_str().to_owned())
    }

    fn tag(v: &str) -> Option<ETagCondition> {
        Some(ETagCondition::parse_http_header(v.as_bytes()).unwrap())
    }

    #[test]
    fn etag_conditions() {
        let p = Preconditions { if_match: tag("\"a-1\""), ..Default::default() };
        assert_eq!(code(p.check("a-1", at(10))), None);
        assert_eq!(code(p.check("b-1", at(10))).as_deref(), Some("PreconditionFailed"));
        let p = Preconditions { if_none_match: tag("\"a-1\""), ..Default::default() };
        assert_eq!(code(p.check("a-1", at(10))).as_deref(), Some("NotModified"));
        assert_eq!(code(p.check("b-1", at(10))), None);
        let p = Preconditions { if_none_match: Some(ETagCondition::Any), ..Default::default() };
        assert_eq!(code(p.check("b-1", at(10))).as_deref(), Some("NotModified"));
        let p = Preconditions { if_match: Some(ETagCondition::Any), ..Default::default() };
        assert_eq!(code(p.check("b-1", at(10))), None);
    }

    #[test]
    fn etag_forms_quotes_weak_and_lists() {
        for header in ["a-1", "\"a-1\"", "W/\"a-1\"", "\"x-1\", \"a-1\"", "\"x-1\",W/\"a-1\""] {
            let p = Preconditions { if_match: tag(header), ..Default::default() };
            assert_eq!(code(p.check("a-1", at(10))), None, "{header}");
            assert_eq!(code(p.check("b-1", at(10))).as_deref(), Some("PreconditionFailed"), "{header}");
        }
        // A backend-style ETag without the client suffix is a different ETag.
        let p = Preconditions { if_match: tag("\"a\""), ..Default::default() };
        assert_eq!(code(p.check("a-1", at(10))).as_deref(), Some("PreconditionFailed"));
    }

    #[test]
    fn date_conditions_and_their_precedence() {
        let ts = |s: i64| Some(Timestamp::from(at(s)));
        let p = Preconditions { if_modified_since: ts(10), ..Default::default() };
        assert_eq!(code(p.check("x", at(10))).as_deref(), Some("NotModified"));
        assert_eq!(code(p.check("x", at(11))), None);
        let p = Preconditions { if_unmodified_since: ts(10), ..Default::default() };
        assert_eq!(code(p.check("x", at(11))).as_deref(), Some("PreconditionFailed"));
        assert_eq!(code(p.check("x", at(10))), None);
        // If-Match true + If-Unmodified-Since false → served (S3 and RFC 9110).
        let p = Preconditions { if_match: tag("x"), if_unmodified_since: ts(5), ..Default::default() };
        assert_eq!(code(p.check("x", at(11))), None);
        // If-Match false + If-Unmodified-Since true → 412.
        let p = Preconditions { if_match: tag("y"), if_unmodified_since: ts(50), ..Default::default() };
        assert_eq!(code(p.check("x", at(11))).as_deref(), Some("PreconditionFailed"));
        // If-None-Match false (it matches) + If-Modified-Since true → 304.
        let p = Preconditions { if_none_match: tag("x"), if_modified_since: ts(5), ..Default::default() };
        assert_eq!(code(p.check("x", at(11))).as_deref(), Some("NotModified"));
        // If-None-Match true + If-Modified-Since false → served: If-Modified-Since is not evaluated.
        let p = Preconditions { if_none_match: tag("y"), if_modified_since: ts(20), ..Default::default() };
        assert_eq!(code(p.check("x", at(11))), None);
        // A failing If-Match wins over a matching If-None-Match: 412, not 304.
        let p = Preconditions { if_match: tag("y"), if_none_match: tag("x"), ..Default::default() };
        assert_eq!(code(p.check("x", at(11))).as_deref(), Some("PreconditionFailed"));
    }

    #[test]
    fn not_modified_carries_the_validators() {
        let p = Preconditions { if_none_match: tag("\"a-1\""), ..Default::default() };
        let e = p.check("a-1", at(784_150_000)).unwrap_err();
        let h = e.headers().unwrap();
        assert_eq!(h.get(http::header::ETAG).unwrap(), "\"a-1\"");
        assert_eq!(h.get(http::header::LAST_MODIFIED).unwrap(), "Sun, 06 Nov 1994 19:26:40 GMT");
    }

    #[test]
    fn copy_source_failures_are_all_412() {
        let ts = |s: i64| Some(Timestamp::from(at(s)));
        let cases = [
            Preconditions { if_match: tag("y"), ..Default::default() },
            Preconditions { if_none_match: tag("x"), ..Default::default() },
            Preconditions { if_modified_since: ts(20), ..Default::default() },
            Preconditions { if_unmodified_since: ts(5), ..Default::default() },
            Preconditions { if_none_match: tag("x"), if_modified_since: ts(5), ..Default::default() },
        ];
        for p in cases {
            assert_eq!(code(p.check_copy_source("x", at(11))).as_deref(), Some("PreconditionFailed"), "{p:?}");
        }
        let p = Preconditions { if_match: tag("x"), if_unmodified_since: ts(5), ..Default::default() };
        assert_eq!(code(p.check_copy_source("x", at(11))), None);
        assert!(Preconditions::default().is_empty());
        assert!(!p.is_empty());
        assert_eq!(code(Preconditions::default().check_copy_source("x", at(11))), None);
    }
}
