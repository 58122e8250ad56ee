//! HTTP conditional headers (`If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`)
//! against a blob's current ETag and time, as Azure applies them: on reads a "not modified" is a 304,
//! on writes every failed condition is a 412.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use http::{HeaderMap, StatusCode};
use time::OffsetDateTime;

use super::error::AzureError;
use super::headers::{parse_http_date, text};

/// What a blob looks like now, for the conditions.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    pub etag: &'a str,
    pub last_modified: OffsetDateTime,
}

fn etag_matches(list: &str, etag: &str) -> bool {
    let etag = etag.trim_matches('"');
    list.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == etag)
}

/// Whether the request has any condition on the blob.
pub fn any(h: &HeaderMap) -> bool {
    ["if-match", "if-none-match", "if-modified-since", "if-unmodified-since"].iter().any(|n| h.contains_key(*n))
}

fn not_modified() -> AzureError {
    AzureError::new(
        StatusCode::NOT_MODIFIED,
        "ConditionNotMet",
        "The condition specified using HTTP conditional header(s) is not met.",
    )
}

/// Checks the conditions of a read (`GET`/`HEAD`) or write against `current` (`None`: no blob).
pub fn check(h: &HeaderMap, current: Option<Current<'_>>, read: bool) -> Result<(), AzureError> {
    let failed = AzureError::condition_not_met;
    if let Some(list) = text(h, "if-match") {
        match current {
            Some(c) if etag_matches(list, c.etag) => {}
            _ => return Err(failed()),
        }
    }
    if let Some(list) = text(h, "if-none-match") {
        // "Read it unless it exists" can never return the blob: Azure refuses it outright.
        if read && list.split(',').any(|t| t.trim() == "*") {
            return Err(AzureError::bad_request(
                "UnsatisfiableCondition",
                "The condition specified using HTTP conditional header(s) is not satisfiable.",
            ));
        }
        if let Some(c) = current {
            if etag_matches(list, c.etag) {
                return Err(if read { not_modified() } else { failed() });
            }
        }
    }
    let second = |t: OffsetDateTime| t.replace_nanosecond(0).unwrap_or(t);
    if let (Some(since), Some(c)) = (text(h, "if-modified-since").and_then(parse_http_date), current) {
        if second(c.last_modified) <= since {
            return Err(if read { not_modified() } else { failed() });
        }
    }
    if let (Some(since), Some(c)) = (text(h, "if-unmodified-since").and_then(parse_http_date), current) {
        if second(c.last_modified) > since {
            return Err(failed());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        m
    }

    #[test]
    fn reads_and_writes() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let c = Some(Current { etag: "abc-1", last_modified: t });
        assert!(check(&h(&[("if-match", "\"abc-1\"")]), c, true).is_ok());
        assert_eq!(check(&h(&[("if-match", "\"x\"")]), c, true).unwrap_err().status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(check(&h(&[("if-match", "*")]), None, false).unwrap_err().status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(check(&h(&[("if-none-match", "\"abc-1\"")]), c, true).unwrap_err().status, StatusCode::NOT_MODIFIED);
        assert_eq!(check(&h(&[("if-none-match", "*")]), c, false).unwrap_err().status, StatusCode::PRECONDITION_FAILED);
        assert!(check(&h(&[("if-none-match", "*")]), None, false).is_ok());
        // On a read, If-None-Match: * is unsatisfiable whether or not the blob exists.
        for current in [c, None] {
            let e = check(&h(&[("if-none-match", "*")]), current, true).unwrap_err();
            assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "UnsatisfiableCondition"));
        }
        let later = super::super::headers::http_date(t + time::Duration::hours(1));
        let earlier = super::super::headers::http_date(t - time::Duration::hours(1));
        assert_eq!(check(&h(&[("if-modified-since", &later)]), c, true).unwrap_err().status, StatusCode::NOT_MODIFIED);
        assert!(check(&h(&[("if-modified-since", &earlier)]), c, true).is_ok());
        assert!(check(&h(&[("if-unmodified-since", &later)]), c, false).is_ok());
        assert_eq!(
            check(&h(&[("if-unmodified-since", &earlier)]), c, false).unwrap_err().status,
            StatusCode::PRECONDITION_FAILED
        );
    }
}
