//! HTTP preconditions on reads (`If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since`), evaluated against the client-visible ETag and Last-Modified in the order
//! RFC 9110 §13.2.2 gives and S3 follows: a passing `If-Match` overrides `If-Unmodified-Since`, and a
//! failing `If-None-Match` answers 304 whatever `If-Modified-Since` says.

use s3s::dto::{ETagCondition, Timestamp};
use s3s::{s3_error, S3Result};
use time::OffsetDateTime;

/// The four read preconditions of a request.
#[derive(Debug, Default)]
pub struct Preconditions {
    pub if_match: Option<ETagCondition>,
    pub if_none_match: Option<ETagCondition>,
    pub if_modified_since: Option<Timestamp>,
    pub if_unmodified_since: Option<Timestamp>,
}

fn matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        // Weak comparison, as RFC 9110 prescribes for If-None-Match; S3 ETags are never weak anyway.
        ETagCondition::ETag(tag) => tag.value() == etag,
    }
}

/// HTTP dates have whole seconds; compare at that precision.
fn secs(t: &Timestamp) -> i64 {
    OffsetDateTime::from(t.clone()).unix_timestamp()
}

impl Preconditions {
    /// `Ok` if the object may be served; 412 PreconditionFailed or 304 NotModified otherwise.
    pub fn check(&self, etag: &str, last_modified: OffsetDateTime) -> S3Result<()> {
        let modified = last_modified.unix_timestamp();
        let precondition_failed =
            || s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold");
        match (&self.if_match, &self.if_unmodified_since) {
            (Some(c), _) if !matches(c, etag) => return Err(precondition_failed()),
            (None, Some(t)) if modified > secs(t) => return Err(precondition_failed()),
            _ => {}
        }
        match (&self.if_none_match, &self.if_modified_since) {
            (Some(c), _) if matches(c, etag) => Err(s3_error!(NotModified)),
            (None, Some(t)) if modified <= secs(t) => Err(s3_error!(NotModified)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::ETag;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(s).unwrap()
    }

    fn code(r: S3Result<()>) -> Option<String> {
        r.err().map(|e| e.code().as_str().to_owned())
    }

    #[test]
    fn etag_conditions() {
        let tag = |v: &str| Some(ETagCondition::ETag(ETag::Strong(v.into())));
        let p = Preconditions { if_match: tag("a-1"), ..Default::default() };
        assert_eq!(code(p.check("a-1", at(10))), None);
        assert_eq!(code(p.check("b-1", at(10))).as_deref(), Some("PreconditionFailed"));
        let p = Preconditions { if_none_match: tag("a-1"), ..Default::default() };
        assert_eq!(code(p.check("a-1", at(10))).as_deref(), Some("NotModified"));
        assert_eq!(code(p.check("b-1", at(10))), None);
        let p = Preconditions { if_none_match: Some(ETagCondition::Any), ..Default::default() };
        assert_eq!(code(p.check("b-1", at(10))).as_deref(), Some("NotModified"));
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
        // A passing If-Match wins over a failing If-Unmodified-Since (S3 and RFC 9110).
        let p = Preconditions {
            if_match: Some(ETagCondition::ETag(ETag::Strong("x".into()))),
            if_unmodified_since: ts(5),
            ..Default::default()
        };
        assert_eq!(code(p.check("x", at(11))), None);
        // A non-matching If-None-Match serves the object even if If-Modified-Since would say 304.
        let p = Preconditions {
            if_none_match: Some(ETagCondition::ETag(ETag::Strong("y".into()))),
            if_modified_since: ts(20),
            ..Default::default()
        };
        assert_eq!(code(p.check("x", at(11))), None);
    }
}
