//! Reversible encodings of S3 names into what Azure Blob Storage accepts.
//!
//! - **Blob names.** Azure refuses or rewrites names that end in `.` or `/`, path segments `.` and
//!   `..` (HTTP stacks resolve them), and control characters. The encoding changes nothing else, so
//!   Azure lists blobs in S3's order and folds common prefixes on the delimiter itself:
//!   - a name ending in `.` or `/`, optionally followed by spaces, gets one more space;
//!   - a segment (between `/`) that is `.` or `..`, optionally followed by spaces, gets one more space;
//!   - a control character `c` (U+0000–U+001F, U+007F) becomes the private-use U+F700 + `c`;
//!     private-use U+F700–U+F7FF in a key is refused, so the map stays one-to-one.
//!
//!   A space sorts below every character allowed in a name, so an appended space keeps S3's order
//!   except against keys holding control characters (they sort with the private-use escape) and,
//!   inside a `.`/`..` segment, against siblings whose next byte is `!`..`.`.
//! - **Container names** are `[a-z0-9-]`, 3–63 characters, no `--`. An S3 bucket name that is
//!   already one (and does not start with `x0-`) is kept; any other becomes `x0-` followed by the
//!   name with `-` written `-0` and `.` written `-1`.
//! - **Metadata names** must be C# identifiers and are case-insensitive. User metadata is stored as
//!   `m` + the name with every byte outside `[a-z0-9]` written `_` + two hex digits; names without
//!   the `m` are the backend's own.

use std::fmt::Write as _;

use super::super::BackendError;

/// Azure's longest blob name, in characters.
const MAX_BLOB_NAME_CHARS: usize = 1024;
/// First of the private-use code points that stand for control characters.
const CONTROL_ESCAPE_BASE: u32 = 0xF700;
/// Private-use code points reserved for the encoding: refused in keys.
const RESERVED_PRIVATE_USE: std::ops::RangeInclusive<char> = '\u{F700}'..='\u{F7FF}';

fn is_control(c: char) -> bool {
    (c as u32) < 0x20 || c == '\u{7f}'
}

/// Whether a segment is `.` or `..`, followed by any number of spaces.
fn is_dot_segment(segment: &str) -> bool {
    let dots = segment.trim_end_matches(' ');
    dots == "." || dots == ".."
}

/// Whether a name must get a trailing space: it ends in `.` or `/`, followed by any number of spaces.
fn needs_trailing_space(name: &str) -> bool {
    name.trim_end_matches(' ').ends_with(['.', '/'])
}

/// Control characters to their escapes; refuses the reserved private-use range.
fn escape_controls(text: &str, what: &str) -> Result<String, BackendError> {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if RESERVED_PRIVATE_USE.contains(&c) {
            return Err(BackendError::InvalidRequest(format!(
                "{what} holds a character in U+F700..U+F7FF, which the Azure backend reserves"
            )));
        }
        if is_control(c) {
            // Control characters are below 0x80, so the sum is a valid private-use scalar.
            out.push(char::from_u32(CONTROL_ESCAPE_BASE + c as u32).unwrap_or('\u{F7FF}'));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn unescape_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            let code = c as u32;
            if (CONTROL_ESCAPE_BASE..CONTROL_ESCAPE_BASE + 0x80).contains(&code) {
                char::from_u32(code - CONTROL_ESCAPE_BASE).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

/// Gives every `.`/`..` segment but the last its extra space (the last is the trailing rule's).
fn encode_inner_segments(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    let mut segments = text.split('/').peekable();
    while let Some(segment) = segments.next() {
        out.push_str(segment);
        if segments.peek().is_some() {
            if is_dot_segment(segment) {
                out.push(' ');
            }
            out.push('/');
        }
    }
    out
}

/// Undoes [`encode_inner_segments`]; `None` if an inner dot segment lacks its space.
fn decode_inner_segments(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut segments = name.split('/').peekable();
    while let Some(segment) = segments.next() {
        if segments.peek().is_some() {
            out.push_str(if is_dot_segment(segment) { segment.strip_suffix(' ')? } else { segment });
            out.push('/');
        } else {
            out.push_str(segment);
        }
    }
    Some(out)
}

/// The blob name an S3 key is stored under.
pub fn blob_name(key: &str) -> Result<String, BackendError> {
    if key.is_empty() {
        return Err(BackendError::InvalidRequest("empty key".into()));
    }
    let mut name = encode_inner_segments(&escape_controls(key, "key")?);
    if needs_trailing_space(&name) {
        name.push(' ');
    }
    if name.chars().count() > MAX_BLOB_NAME_CHARS {
        return Err(BackendError::InvalidRequest(format!(
            "key encodes to more than {MAX_BLOB_NAME_CHARS} characters, Azure's longest blob name"
        )));
    }
    Ok(name)
}

/// The S3 key a blob name stands for; `None` for a name no key encodes to (not ours).
pub fn key_of_blob(name: &str) -> Option<String> {
    let untrailed = match name.strip_suffix(' ') {
        Some(shorter) if needs_trailing_space(shorter) => shorter,
        _ => name,
    };
    let key = unescape_controls(&decode_inner_segments(untrailed)?);
    (blob_name(&key).ok()? == name).then_some(key)
}

/// The Azure listing prefix that every blob of a key starting with `prefix` starts with.
/// Complete segments are encoded as in a name; the last, partial one is left as it is.
pub fn list_prefix(prefix: &str) -> Result<String, BackendError> {
    Ok(encode_inner_segments(&escape_controls(prefix, "prefix")?))
}

/// The prefix for escaped container names.
const CONTAINER_ESCAPE: &str = "x0-";

fn is_plain_container(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.contains("--")
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.starts_with(CONTAINER_ESCAPE)
}

/// The container an S3 bucket is stored in.
pub fn container_name(bucket: &str) -> Result<String, BackendError> {
    if is_plain_container(bucket) {
        return Ok(bucket.to_owned());
    }
    let mut out = String::from(CONTAINER_ESCAPE);
    for c in bucket.chars() {
        match c {
            '-' => out.push_str("-0"),
            '.' => out.push_str("-1"),
            'a'..='z' | '0'..='9' => out.push(c),
            _ => return Err(BackendError::InvalidRequest(format!("bucket name {bucket:?} has no Azure container"))),
        }
    }
    if out.len() > 63 || out.ends_with('-') {
        return Err(BackendError::InvalidRequest(format!(
            "bucket name {bucket:?} does not fit Azure's 63-character container names once escaped"
        )));
    }
    Ok(out)
}

/// The S3 bucket a container stands for; `None` for containers no bucket maps to.
pub fn bucket_of_container(container: &str) -> Option<String> {
    let Some(rest) = container.strip_prefix(CONTAINER_ESCAPE) else {
        return is_plain_container(container).then(|| container.to_owned());
    };
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '-' => match chars.next()? {
                '0' => out.push('-'),
                '1' => out.push('.'),
                _ => return None,
            },
            _ => out.push(c),
        }
    }
    (container_name(&out).ok()? == container).then_some(out)
}

/// The Azure metadata name a user metadata name is stored under.
pub fn metadata_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    out.push('m');
    for b in name.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "_{b:02x}");
        }
    }
    out
}

/// The user metadata name an Azure one stands for; `None` for the backend's own names and for
/// names no user name encodes to.
pub fn user_metadata_name(azure: &str) -> Option<String> {
    // Azure keeps the case it was given but matches names case-insensitively.
    let lower = azure.to_ascii_lowercase();
    let rest = lower.strip_prefix('m')?;
    let mut bytes = Vec::with_capacity(rest.len());
    let mut iter = rest.bytes();
    while let Some(b) = iter.next() {
        if b == b'_' {
            let hi = iter.next()?;
            let lo = iter.next()?;
            let pair = [hi, lo];
            let hex = std::str::from_utf8(&pair).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    let name = String::from_utf8(bytes).ok()?;
    (metadata_name(&name) == lower).then_some(name)
}

/// What a metadata value keeps literal: visible ASCII but `%`, and inner spaces (see below).
const VALUE_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

/// The Azure metadata value a user metadata value is stored as. Azure values travel as HTTP
/// header values (ASCII, no leading or trailing blanks, which HTTP drops), so `%`, bytes outside
/// ASCII, control characters and leading/trailing spaces are percent-encoded; anything else is kept.
pub fn metadata_value(value: &str) -> String {
    let core = value.trim_matches(' ');
    let lead = value.len() - value.trim_start_matches(' ').len();
    let trail = if core.is_empty() { 0 } else { value.len() - value.trim_end_matches(' ').len() };
    let mut out = "%20".repeat(lead);
    for chunk in percent_encoding::utf8_percent_encode(core, VALUE_ENCODE) {
        out.push_str(chunk);
    }
    // Non-ASCII: `CONTROLS` leaves bytes >= 0x80 alone, so encode them here.
    let mut ascii = String::with_capacity(out.len());
    for c in out.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(ascii, "%{b:02X}");
            }
        }
    }
    ascii.push_str(&"%20".repeat(trail));
    ascii
}

/// The user metadata value an Azure one stands for; `None` if it does not decode.
pub fn user_metadata_value(azure: &str) -> Option<String> {
    percent_encoding::percent_decode_str(azure).decode_utf8().ok().map(|v| v.into_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ordinary_keys_are_kept() {
        for key in ["a", "photos/2026/scan.pdf", "a b", "a//b", "/lead", "x.y", "café/é", ".hidden", "a/.b/c", "..b"]
        {
            assert_eq!(blob_name(key).unwrap(), key, "{key:?}");
            assert_eq!(key_of_blob(key).as_deref(), Some(key), "{key:?}");
        }
    }

    #[test]
    fn refused_shapes_are_escaped_and_come_back() {
        let cases = [
            ("photos/", "photos/ "),
            ("a.", "a. "),
            ("a. ", "a.  "),
            ("a/.", "a/. "),
            ("...", "... "),
            ("a/./b", "a/. /b"),
            ("a/../b", "a/.. /b"),
            ("./x", ". /x"),
            (".", ". "),
            ("..", ".. "),
            ("a/.", "a/. "),
            ("...", "... "),
            ("a/. /b", "a/.  /b"),
            ("tab\there", "tab\u{F709}here"),
            ("del\u{7f}", "del\u{F77F}"),
        ];
        for (key, name) in cases {
            assert_eq!(blob_name(key).unwrap(), name, "{key:?}");
            assert_eq!(key_of_blob(name).as_deref(), Some(key), "{name:?}");
        }
    }

    #[test]
    fn encoding_is_one_to_one_and_keeps_order() {
        let mut keys: Vec<String> = [
            "", " ", ".", "..", "...", "/", "//", "a", "a ", "a  ", "a.", "a. ", "a/", "a/ ", "a/.", "a/..", "a/./",
            "a/b", "a/b.", "a0", "a!", "b", "z/", "é", "a/.b",
        ]
        .iter()
        .flat_map(|p| ["", ".", "/", " ", "x", "/x", "./", "/."].iter().map(move |s| format!("{p}{s}")))
        .filter(|k| !k.is_empty())
        .collect();
        keys.sort();
        keys.dedup();
        let names: Vec<String> = keys.iter().map(|k| blob_name(k).unwrap()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "two keys share a blob name");
        for (k, n) in keys.iter().zip(&names) {
            assert_eq!(key_of_blob(n).as_deref(), Some(k.as_str()), "round trip of {k:?}");
            assert!(!n.ends_with(['.', '/']), "{n:?} ends in a refused character");
            assert!(n.split('/').all(|s| s != "." && s != ".."), "{n:?} keeps a dot segment");
        }
        // Order holds except where a dot segment meets a sibling byte in `!`..`.` (documented).
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                let exempt = a.split('/').chain(b.split('/')).any(is_dot_segment);
                if !exempt {
                    assert!(names[i] < blob_name(b).unwrap(), "order of {a:?} < {b:?}");
                }
            }
        }
    }

    #[test]
    fn prefixes_cover_every_key_under_them() {
        let keys = ["a/./b", "a/.b", "a/..", "photos/", "photos/x", "a. /c", "t\tx"];
        for key in keys {
            let name = blob_name(key).unwrap();
            for cut in key.char_indices().map(|(i, _)| i).chain([key.len()]) {
                let prefix = &key[..cut];
                let lp = list_prefix(prefix).unwrap();
                assert!(name.starts_with(&lp), "{name:?} (of {key:?}) does not start with {lp:?} (of {prefix:?})");
            }
        }
    }

    #[test]
    fn foreign_and_reserved_names() {
        assert!(blob_name("x\u{F701}").is_err());
        assert!(blob_name("").is_err());
        assert!(blob_name(&"k".repeat(1025)).is_err());
        assert_eq!(key_of_blob("ends."), None, "Azure cannot hold it, and no key encodes to it");
        assert_eq!(key_of_blob("a/./b"), None);
    }

    #[test]
    fn containers() {
        for (bucket, container) in [
            ("my-bucket", "my-bucket"),
            ("logs.example.com", "x0-logs-1example-1com"),
            ("a--b", "x0-a-0-0b"),
            ("x0-b", "x0-x0-0b"),
            ("ab", "x0-ab"),
        ] {
            assert_eq!(container_name(bucket).unwrap(), container);
            assert_eq!(bucket_of_container(container).as_deref(), Some(bucket));
            assert!(!container.contains("--") && container.len() >= 3);
        }
        assert!(container_name(&format!("{}.b", "a".repeat(60))).is_err());
        assert_eq!(bucket_of_container("x0-a-2"), None);
        assert_eq!(bucket_of_container("UPPER"), None);
    }

    #[test]
    fn metadata_names() {
        for (name, azure) in [
            ("blobseal-envelope", "mblobseal_2denvelope"),
            ("data_subject", "mdata_5fsubject"),
            ("9lives", "m9lives"),
            ("ÿ", "m_c3_bf"),
        ] {
            assert_eq!(metadata_name(name), azure);
            assert_eq!(user_metadata_name(azure).as_deref(), Some(name));
            assert_eq!(user_metadata_name(&azure.to_ascii_uppercase()).as_deref(), Some(name), "case-insensitive");
        }
        assert_eq!(user_metadata_name("bs_expires"), None);
        for (value, azure) in [
            ("plain value", "plain value"),
            ("50%", "50%25"),
            (" pad ", "%20pad%20"),
            ("   ", "%20%20%20"),
            ("café\tx", "caf%C3%A9%09x"),
            ("", ""),
        ] {
            assert_eq!(metadata_value(value), azure, "{value:?}");
            assert_eq!(user_metadata_value(azure).as_deref(), Some(value));
        }
        assert_eq!(user_metadata_name("m_zz"), None);
    }
}
