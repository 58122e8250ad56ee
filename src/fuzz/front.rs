//! What the S3 front end reads from request heads itself: Range and x-amz-copy-source (parsed by
//! s3s, then interpreted here), the retention header, and the request path as logged.

use proptest::prelude::*;

use super::config;
use crate::core::service::resolve_range;
use crate::front::s3::convert::{copy_source_of, range_request, retention_days_of, tags_of};

proptest! {
    #![proptest_config(config())]

    #[test]
    fn range_headers_resolve_inside_the_object(header in "bytes=[0-9-]{0,30}|\\PC{0,30}", size in any::<u64>()) {
        if let Ok(r) = s3s::dto::Range::parse(&header) {
            if let Ok(plain) = resolve_range(range_request(r), size) {
                prop_assert!(plain.start < plain.end && plain.end <= size);
            }
        }
    }

    #[test]
    fn copy_sources_never_panic(header in "/?[a-z0-9.-]{0,20}/[ -~]{0,60}|\\PC{0,80}") {
        if let Ok(src) = s3s::dto::CopySource::parse(&header) {
            if let Ok((bucket, key, _version)) = copy_source_of(&src) {
                prop_assert!(!bucket.contains('/'));
                let _ = key;
            }
        }
    }

    #[test]
    fn retention_header_is_a_day_count_or_refused(value in "[0-9 ]{0,12}|\\PC{0,12}") {
        let mut h = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            h.insert("x-blobseal-retention-days", v);
            if let Ok(Some(days)) = retention_days_of(&h) {
                prop_assert!((1..=36_500).contains(&days));
            }
        }
    }

    #[test]
    fn tagging_headers_give_at_most_ten_bounded_tags(header in "([a-z%0-9+]{0,6}=?[a-z%0-9+]{0,6}&?){0,14}|\\PC{0,60}") {
        if let Ok(tags) = tags_of(Some(&header)) {
            prop_assert!(tags.len() <= 10);
            for (k, v) in &tags {
                prop_assert!(!k.is_empty() && k.chars().count() <= 128 && v.chars().count() <= 256);
            }
        }
    }
}
