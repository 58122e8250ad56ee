//! Checks of listing: paging, delimiters, prefixes, start_after, odd keys.

use super::{drop_bucket, fresh_bucket, get_all, md5_hex, payload, put, Caps};
use crate::backend::{Backend, ListOptions, PutOptions};

/// Lists everything page by page with `max_keys`, returning (keys, common prefixes).
pub(super) async fn list_paged(b: &dyn Backend, bucket: &str, base: ListOptions) -> (Vec<String>, Vec<String>) {
    let (mut keys, mut prefixes) = (Vec::new(), Vec::new());
    let mut opts = base;
    for _ in 0..100 {
        let page = b.list(bucket, opts.clone()).await.unwrap();
        assert!(page.objects.len() + page.common_prefixes.len() <= opts.max_keys, "page larger than max_keys");
        keys.extend(page.objects.into_iter().map(|o| o.key));
        prefixes.extend(page.common_prefixes);
        if !page.is_truncated {
            return (keys, prefixes);
        }
        opts.continuation = Some(page.next_token.expect("a truncated page has a next token"));
    }
    panic!("listing did not end after 100 pages");
}

pub(super) async fn listing(b: &dyn Backend, bucket: &str, caps: Caps) {
    fresh_bucket(b, bucket).await;
    let mut keys: Vec<&str> =
        vec!["a/b/c", "a/d", "b", "c d/e f", "ünï/cødé ☃", "z/1", "z/2", "z/3", "~tilde", "Upper", "a+b", "a%20b"];
    if caps.path_like_keys {
        keys.extend(["a", "a/b", "/lead", "..", "x//y", "x/../y"]);
    }
    for (i, k) in keys.iter().enumerate() {
        put(b, bucket, k, &payload(i + 1, 5), PutOptions::default()).await;
    }
    let mut sorted: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    sorted.sort();

    for max_keys in [1, 2, 1000] {
        let (got, cps) = list_paged(b, bucket, ListOptions { max_keys, ..Default::default() }).await;
        assert_eq!(got, sorted, "full listing, max_keys {max_keys}");
        assert!(cps.is_empty());
    }
    let page = b.list(bucket, ListOptions { max_keys: 1000, ..Default::default() }).await.unwrap();
    let ünï = page.objects.iter().find(|o| o.key == "ünï/cødé ☃").expect("unicode key listed");
    assert_eq!(ünï.size, 5);
    if caps.list_etags {
        assert_eq!(ünï.etag, md5_hex(&payload(5, 5)), "listing carries the ETag");
    }

    let mut want_top: Vec<String> = sorted.iter().filter(|k| !k.contains('/')).cloned().collect();
    if caps.path_like_keys {
        assert!(want_top.contains(&"a".to_owned()));
    }
    want_top.sort();
    let mut want_cps: Vec<String> = sorted.iter().filter_map(|k| k.find('/').map(|i| k[..=i].to_owned())).collect();
    want_cps.dedup();
    for max_keys in [1, 3, 1000] {
        let opts = ListOptions { delimiter: Some("/".into()), max_keys, ..Default::default() };
        let (got, cps) = list_paged(b, bucket, opts).await;
        assert_eq!(got, want_top, "delimiter listing keys, max_keys {max_keys}");
        assert_eq!(cps, want_cps, "delimiter listing prefixes, max_keys {max_keys}");
    }

    let opts = ListOptions { prefix: "a/".into(), delimiter: Some("/".into()), max_keys: 1000, ..Default::default() };
    let (got, cps) = list_paged(b, bucket, opts).await;
    let want: Vec<&str> = if caps.path_like_keys { vec!["a/b", "a/d"] } else { vec!["a/d"] };
    assert_eq!(got, want, "prefix a/ with delimiter");
    assert_eq!(cps, ["a/b/"], "prefix a/ with delimiter");

    let opts = ListOptions { prefix: "z/".into(), max_keys: 1000, ..Default::default() };
    assert_eq!(list_paged(b, bucket, opts).await.0, ["z/1", "z/2", "z/3"], "prefix z/");
    let opts = ListOptions { start_after: Some("z/1".into()), max_keys: 1, ..Default::default() };
    assert_eq!(
        list_paged(b, bucket, opts).await.0,
        ["z/2", "z/3", "~tilde", "ünï/cødé ☃"],
        "start_after z/1 (byte order: ü sorts after ~)"
    );
    let opts = ListOptions { prefix: "nothing".into(), max_keys: 10, ..Default::default() };
    let page = b.list(bucket, opts).await.unwrap();
    assert!(page.objects.is_empty() && page.common_prefixes.is_empty() && !page.is_truncated, "empty prefix");

    for (i, k) in keys.iter().enumerate() {
        assert!(get_all(b, bucket, k).await == payload(i + 1, 5), "key {k:?} reads back its own bytes");
    }
    drop_bucket(b, bucket, false).await;
}
