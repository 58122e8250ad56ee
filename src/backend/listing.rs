//! S3-style listing over a sorted key sequence, shared by the backends that list by themselves
//! (`fs`, `memory`): prefix, delimiter roll-up into common prefixes, `start_after`, opaque
//! continuation tokens and `max_keys`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::{BackendError, Result};

/// Where a page starts and how it is cut.
#[derive(Debug, Clone, Default)]
pub(crate) struct PageSpec<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// Client-given lower bound: only keys strictly greater are listed (common prefixes are still
    /// formed from those keys, as S3 does).
    pub start_after: Option<&'a str>,
    /// Our own resume point: the last key or common prefix a previous page returned. Keys up to it
    /// and common prefixes up to it are skipped, so a page that ended on a common prefix does not
    /// repeat it.
    pub resume_after: Option<String>,
    pub max_keys: usize,
}

/// One cut page: the selected entries, common prefixes, and where to resume.
#[derive(Debug)]
pub(crate) struct Paged<T> {
    pub items: Vec<(String, T)>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// The last key or common prefix returned, when the page is truncated.
    pub last: Option<String>,
}

/// Encodes a resume point as an opaque continuation token.
pub(crate) fn encode_token(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

/// Decodes a continuation token made by [`encode_token`]; anything else is `InvalidRequest`.
pub(crate) fn decode_token(token: &str) -> Result<String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| BackendError::InvalidRequest("invalid continuation token".into()))?;
    String::from_utf8(bytes).map_err(|_| BackendError::InvalidRequest("invalid continuation token".into()))
}

/// Cuts one page from `entries`, which must be sorted by key in ascending byte order (Rust's
/// `String` order, which is S3's UTF-8 binary order). Common prefixes count towards `max_keys`
/// like keys do. `max_keys == 0` yields an empty, untruncated page.
pub(crate) fn paginate<T>(entries: impl IntoIterator<Item = (String, T)>, spec: &PageSpec<'_>) -> Paged<T> {
    let mut page = Paged { items: Vec::new(), common_prefixes: Vec::new(), is_truncated: false, last: None };
    if spec.max_keys == 0 {
        return page;
    }
    let mut count = 0usize;
    for (key, value) in entries {
        let Some(rest) = key.strip_prefix(spec.prefix) else {
            continue;
        };
        if spec.start_after.is_some_and(|s| key.as_str() <= s) {
            continue;
        }
        if spec.resume_after.as_deref().is_some_and(|r| key.as_str() <= r) {
            continue;
        }
        let rolled = spec
            .delimiter
            .filter(|d| !d.is_empty())
            .and_then(|d| rest.find(d).map(|i| (i, d.len())))
            .map(|(i, dl)| format!("{}{}", spec.prefix, rest.get(..i + dl).unwrap_or(rest)));
        if let Some(cp) = rolled {
            if page.common_prefixes.last() == Some(&cp) {
                continue;
            }
            if spec.resume_after.as_deref().is_some_and(|r| cp.as_str() <= r) {
                continue;
            }
            if count == spec.max_keys {
                page.is_truncated = true;
                break;
            }
            count += 1;
            page.last = Some(cp.clone());
            page.common_prefixes.push(cp);
        } else {
            if count == spec.max_keys {
                page.is_truncated = true;
                break;
            }
            count += 1;
            page.last = Some(key.clone());
            page.items.push((key, value));
        }
    }
    if !page.is_truncated {
        page.last = None;
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ks: &[&str]) -> Vec<(String, ())> {
        ks.iter().map(|k| ((*k).to_owned(), ())).collect()
    }

    fn names(p: &Paged<()>) -> Vec<&str> {
        p.items.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn delimiter_rolls_up_and_pages_do_not_repeat_prefixes() {
        let all = keys(&["a", "a/b", "a/b/c", "a/c", "b", "c/d"]);
        let mut spec = PageSpec { delimiter: Some("/"), max_keys: 2, ..Default::default() };
        let p1 = paginate(all.clone(), &spec);
        assert_eq!(names(&p1), ["a"]);
        assert_eq!(p1.common_prefixes, ["a/"]);
        assert!(p1.is_truncated);
        spec.resume_after = Some(decode_token(&encode_token(p1.last.as_deref().unwrap())).unwrap());
        let p2 = paginate(all.clone(), &spec);
        assert_eq!(names(&p2), ["b"]);
        assert_eq!(p2.common_prefixes, ["c/"]);
        assert!(!p2.is_truncated);
        assert_eq!(p2.last, None);
    }

    #[test]
    fn prefix_and_start_after() {
        let all = keys(&["a", "a/b", "a/b/c", "a/c", "b"]);
        let spec = PageSpec { prefix: "a/", delimiter: Some("/"), max_keys: 10, ..Default::default() };
        let p = paginate(all.clone(), &spec);
        assert_eq!(names(&p), ["a/b", "a/c"]);
        assert_eq!(p.common_prefixes, ["a/b/"]);
        let spec = PageSpec { start_after: Some("a/b"), max_keys: 10, ..Default::default() };
        assert_eq!(names(&paginate(all, &spec)), ["a/b/c", "a/c", "b"]);
    }

    #[test]
    fn exact_page_boundary_is_not_truncated() {
        let all = keys(&["x", "y"]);
        let p = paginate(all, &PageSpec { max_keys: 2, ..Default::default() });
        assert_eq!(names(&p), ["x", "y"]);
        assert!(!p.is_truncated);
    }

    #[test]
    fn bad_token_is_invalid_request() {
        assert!(matches!(decode_token("!!!"), Err(BackendError::InvalidRequest(_))));
    }
}
