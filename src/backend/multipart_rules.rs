//! S3's multipart rules as pure functions, shared by the backends that implement multipart
//! themselves (`fs`, `memory`): upload ids, part-number bounds, completion validation, the
//! multipart ETag and the ordering and paging of upload listings.

use md5::{Digest as _, Md5};
use time::OffsetDateTime;

use crate::backend::{
    BackendError, CompletedPart, PartInfo, PartsPage, Result, UploadInfo, UploadsPage, MAX_PART_NUMBER, MAX_PART_SIZE,
    MIN_PART_SIZE,
};

/// Bytes of randomness in an upload id (hex-encoded, so ids are 32 URL- and path-safe characters).
const UPLOAD_ID_BYTES: usize = 16;
/// S3's page size when a caller asks for 0 or more than 1000 entries.
const MAX_PAGE: usize = 1000;

/// A fresh, unguessable upload id: 128 random bits as lower-case hex.
pub(in crate::backend) fn new_upload_id() -> Result<String> {
    let mut bytes = [0u8; UPLOAD_ID_BYTES];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| BackendError::Other { backend: "multipart", message: "system random failed".into() })?;
    Ok(hex::encode(bytes))
}

/// Whether `id` has the shape [`new_upload_id`] produces. Anything else names no upload; checking
/// it before it touches a path keeps `..` or `/` out of the filesystem.
pub(in crate::backend) fn is_upload_id(id: &str) -> bool {
    id.len() == 2 * UPLOAD_ID_BYTES && id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// `InvalidRequest` unless `n` is a valid S3 part number (1..=10000).
pub(in crate::backend) fn check_part_number(n: u32) -> Result<()> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(())
    } else {
        Err(BackendError::InvalidRequest(format!("part number {n} is outside 1..={MAX_PART_NUMBER}")))
    }
}

/// `InvalidRequest` if a part would exceed [`MAX_PART_SIZE`].
pub(in crate::backend) fn check_part_size(len: u64) -> Result<()> {
    if len <= MAX_PART_SIZE {
        Ok(())
    } else {
        Err(BackendError::InvalidRequest(format!("part of {len} bytes exceeds {MAX_PART_SIZE}")))
    }
}

/// An ETag as a client may send it (quoted or not, any case), reduced to bare lower-case hex.
fn bare_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_ascii_lowercase()
}

/// What a backend knows about one stored part, for [`validate_completion`].
#[derive(Debug, Clone)]
pub(in crate::backend) struct StoredPart {
    pub md5: [u8; 16],
    pub size: u64,
}

/// Checks a completion against the stored parts, in S3's order of checks: no parts at all is
/// `InvalidRequest`, part numbers not strictly ascending `InvalidPartOrder`, a part that is missing
/// or whose ETag differs `InvalidPart`, a part other than the last below [`MIN_PART_SIZE`]
/// `EntityTooSmall`. Returns the named parts' records in completion order.
pub(in crate::backend) fn validate_completion<'a>(
    parts: &[CompletedPart],
    lookup: impl Fn(u32) -> Option<&'a StoredPart>,
) -> Result<Vec<(u32, &'a StoredPart)>> {
    if parts.is_empty() {
        return Err(BackendError::InvalidRequest("a completion must name at least one part".into()));
    }
    if parts.windows(2).any(|w| matches!(w, [a, b] if a.part_number >= b.part_number)) {
        return Err(BackendError::InvalidPartOrder);
    }
    let mut found = Vec::with_capacity(parts.len());
    for p in parts {
        let stored = lookup(p.part_number)
            .ok_or_else(|| BackendError::InvalidPart(format!("part {} was not uploaded", p.part_number)))?;
        if bare_etag(&p.etag) != hex::encode(stored.md5) {
            return Err(BackendError::InvalidPart(format!("part {}: ETag does not match", p.part_number)));
        }
        found.push((p.part_number, stored));
    }
    if let Some((_, all_but_last)) = found.split_last() {
        if all_but_last.iter().any(|(_, s)| s.size < MIN_PART_SIZE) {
            return Err(BackendError::EntityTooSmall);
        }
    }
    Ok(found)
}

/// S3's ETag of a multipart object: hex MD5 of the concatenated part MD5s, `-`, the part count.
pub(in crate::backend) fn multipart_etag<'a>(part_md5s: impl IntoIterator<Item = &'a [u8; 16]>) -> String {
    let mut h = Md5::new();
    let mut n = 0usize;
    for m in part_md5s {
        h.update(m);
        n += 1;
    }
    format!("{}-{n}", hex::encode(h.finalize()))
}

/// A caller's page size, with 0 or anything above 1000 meaning S3's 1000 (so a defaulted options
/// struct lists a full page rather than nothing).
pub(in crate::backend) fn page_size(asked: usize) -> usize {
    if asked == 0 {
        MAX_PAGE
    } else {
        asked.min(MAX_PAGE)
    }
}

/// One page of parts, given every part in ascending number order: those numbered after
/// `part_number_marker`, at most [`page_size`]`(max_parts)` of them.
pub(in crate::backend) fn page_parts(
    all: impl IntoIterator<Item = PartInfo>,
    part_number_marker: Option<u32>,
    max_parts: usize,
) -> PartsPage {
    let after = part_number_marker.unwrap_or(0);
    let mut rest = all.into_iter().filter(|p| p.part_number > after);
    let parts: Vec<PartInfo> = rest.by_ref().take(page_size(max_parts)).collect();
    let is_truncated = rest.next().is_some();
    let next_part_number_marker = if is_truncated { parts.last().map(|p| p.part_number) } else { None };
    PartsPage { parts, is_truncated, next_part_number_marker }
}

/// Sorts uploads by key, then initiation (then id, to be total), filters by prefix, skips up to
/// the markers and cuts a page of `max_uploads` (see [`page_size`]).
///
/// With only `key_marker`, uploads of keys strictly after it are listed. With `upload_id_marker`
/// too, uploads of that same key that sort after the marked upload are included; if the marked
/// upload no longer exists, those with a greater id are (S3's stated rule).
pub(in crate::backend) fn page_uploads(
    mut all: Vec<UploadInfo>,
    prefix: &str,
    key_marker: Option<&str>,
    upload_id_marker: Option<&str>,
    max_uploads: usize,
) -> UploadsPage {
    all.retain(|u| u.key.starts_with(prefix));
    all.sort_by(|a, b| (&a.key, a.initiated, &a.upload_id).cmp(&(&b.key, b.initiated, &b.upload_id)));
    let marked: Option<(String, OffsetDateTime, String)> = match (key_marker, upload_id_marker) {
        (Some(k), Some(id)) => all.iter().find(|u| u.key == k && u.upload_id == id).map(|u| {
            let t = u.initiated;
            (k.to_owned(), t, id.to_owned())
        }),
        _ => None,
    };
    let after_markers = |u: &UploadInfo| -> bool {
        let Some(km) = key_marker else {
            return true;
        };
        match u.key.as_str().cmp(km) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => match (&marked, upload_id_marker) {
                (Some((_, t, id)), _) => (u.initiated, &u.upload_id) > (*t, id),
                (None, Some(id)) => u.upload_id.as_str() > id,
                (None, None) => false,
            },
        }
    };
    let max = page_size(max_uploads);
    let mut rest = all.into_iter().filter(after_markers);
    let uploads: Vec<UploadInfo> = rest.by_ref().take(max).collect();
    let is_truncated = rest.next().is_some();
    let (next_key_marker, next_upload_id_marker) = match uploads.last() {
        Some(last) if is_truncated => (Some(last.key.clone()), Some(last.upload_id.clone())),
        _ => (None, None),
    };
    UploadsPage { uploads, is_truncated, next_key_marker, next_upload_id_marker }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u32, etag: &str) -> CompletedPart {
        CompletedPart { part_number: n, etag: etag.to_owned() }
    }

    #[test]
    fn upload_ids_are_random_hex() {
        let a = new_upload_id().unwrap();
        let b = new_upload_id().unwrap();
        assert_ne!(a, b);
        assert!(is_upload_id(&a) && is_upload_id(&b));
        for bad in ["", "..", "../../etc", &a[1..], &a.to_uppercase(), &format!("{a}0")] {
            assert!(!is_upload_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn completion_checks_in_s3_order() {
        let big = StoredPart { md5: [1; 16], size: MIN_PART_SIZE };
        let small = StoredPart { md5: [2; 16], size: 10 };
        let lookup = |n: u32| match n {
            1 => Some(&big),
            2 | 3 => Some(&small),
            _ => None,
        };
        let e1 = hex::encode([1u8; 16]);
        let e2 = hex::encode([2u8; 16]);
        let quoted = format!("\"{}\"", e1.to_uppercase());
        let ok = validate_completion(&[part(1, &quoted), part(3, &e2)], lookup).unwrap();
        assert_eq!(ok.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 3]);
        let r = validate_completion(&[], lookup);
        assert!(matches!(r, Err(BackendError::InvalidRequest(_))), "{r:?}");
        let r = validate_completion(&[part(2, &e2), part(1, &e1)], lookup);
        assert!(matches!(r, Err(BackendError::InvalidPartOrder)), "{r:?}");
        let r = validate_completion(&[part(1, &e1), part(1, &e1)], lookup);
        assert!(matches!(r, Err(BackendError::InvalidPartOrder)), "duplicate: {r:?}");
        let r = validate_completion(&[part(1, &e2)], lookup);
        assert!(matches!(r, Err(BackendError::InvalidPart(_))), "{r:?}");
        let r = validate_completion(&[part(1, &e1), part(4, &e2)], lookup);
        assert!(matches!(r, Err(BackendError::InvalidPart(_))), "{r:?}");
        let r = validate_completion(&[part(2, &e2), part(3, &e2)], lookup);
        assert!(matches!(r, Err(BackendError::EntityTooSmall)), "{r:?}");
        assert!(validate_completion(&[part(2, &e2)], lookup).is_ok(), "a lone small part is the last one");
    }

    #[test]
    fn multipart_etag_matches_s3() {
        // Two parts whose MD5s are known: md5("a") and md5("b").
        let a: [u8; 16] = Md5::digest(b"a").into();
        let b: [u8; 16] = Md5::digest(b"b").into();
        let mut cat = Vec::new();
        cat.extend_from_slice(&a);
        cat.extend_from_slice(&b);
        let want = format!("{}-2", hex::encode(Md5::digest(&cat)));
        assert_eq!(multipart_etag([&a, &b]), want);
    }

    #[test]
    fn upload_pages_follow_markers() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let u = |k: &str, secs: i64, id: &str| UploadInfo {
            key: k.to_owned(),
            upload_id: id.to_owned(),
            initiated: t0 + time::Duration::seconds(secs),
        };
        let all = vec![u("b", 1, "z"), u("a", 5, "x"), u("b", 0, "y"), u("c", 0, "w"), u("other", 0, "v")];
        let ids = |p: &UploadsPage| p.uploads.iter().map(|u| u.upload_id.clone()).collect::<Vec<_>>();
        let p = page_uploads(all.clone(), "", None, None, 0);
        assert_eq!(ids(&p), ["x", "y", "z", "w", "v"]);
        assert!(!p.is_truncated && p.next_key_marker.is_none());
        let p = page_uploads(all.clone(), "", None, None, 2);
        assert_eq!(ids(&p), ["x", "y"]);
        assert_eq!((p.next_key_marker.as_deref(), p.next_upload_id_marker.as_deref()), (Some("b"), Some("y")));
        let p = page_uploads(all.clone(), "", Some("b"), Some("y"), 2);
        assert_eq!(ids(&p), ["z", "w"]);
        assert!(p.is_truncated);
        let p = page_uploads(all.clone(), "", Some("b"), None, 10);
        assert_eq!(ids(&p), ["w", "v"], "key marker alone skips that key");
        let p = page_uploads(all.clone(), "", Some("b"), Some("gone-x"), 10);
        assert_eq!(ids(&p), ["y", "z", "w", "v"], "unknown id marker: greater ids of that key");
        let p = page_uploads(all, "b", None, None, 10);
        assert_eq!(ids(&p), ["y", "z"], "prefix");
    }
}
