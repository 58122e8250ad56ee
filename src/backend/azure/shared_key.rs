//! SharedKey request signing, as a pipeline policy.
//!
//! `azure_storage_blob` 1.x authenticates only with Entra ID tokens or SAS; a storage account key
//! (and Azurite, whose well-known account has only a key) needs SharedKey, so this small policy
//! adds it. The string to sign is built by pure functions tested against a known answer; see
//! "Authorize with Shared Key" in the Azure Storage REST reference.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::hmac;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use base64::Engine as _;
use percent_encoding::percent_decode_str;
use time::OffsetDateTime;

/// Signs every try of a request with the account key. Per try, because `x-ms-date` must be fresh.
pub(super) struct SharedKeyPolicy {
    account: String,
    key: hmac::Key,
}

impl std::fmt::Debug for SharedKeyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKeyPolicy").field("account", &self.account).finish_non_exhaustive()
    }
}

impl SharedKeyPolicy {
    /// `account_key` is the base64 key the portal shows; `None` if it is not base64.
    pub(super) fn new(account: &str, account_key: &str) -> Option<Self> {
        let raw = base64::engine::general_purpose::STANDARD.decode(account_key.trim()).ok()?;
        Some(Self { account: account.to_owned(), key: hmac::Key::new(hmac::HMAC_SHA256, &raw) })
    }

    fn signature(&self, string_to_sign: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(hmac::sign(&self.key, string_to_sign.as_bytes()).as_ref())
    }
}

/// The parts of a request SharedKey covers, detached from any HTTP type so tests can build them.
pub(super) struct Signable<'a> {
    pub method: &'a str,
    /// The URL path as sent (percent-encoded), starting with `/`.
    pub path: &'a str,
    /// Query pairs as sent (percent-encoded).
    pub query: Vec<(&'a str, &'a str)>,
    /// Header names lower-case.
    pub headers: Vec<(&'a str, &'a str)>,
    pub content_length: u64,
}

/// The SharedKey string to sign (service version 2009-09-19 and later) for `account`.
pub(super) fn string_to_sign(account: &str, r: &Signable<'_>) -> String {
    let header = |name: &str| r.headers.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| *v);
    let length = if r.content_length == 0 { String::new() } else { r.content_length.to_string() };
    let mut out = String::with_capacity(256);
    for line in [
        r.method,
        header("content-encoding"),
        header("content-language"),
        &length,
        header("content-md5"),
        header("content-type"),
        "", // Date: x-ms-date is sent instead
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    ] {
        out.push_str(line);
        out.push('\n');
    }
    let mut ms: Vec<(&str, &str)> = r.headers.iter().copied().filter(|(n, _)| n.starts_with("x-ms-")).collect();
    ms.sort_unstable();
    for (name, value) in ms {
        out.push_str(name);
        out.push(':');
        out.push_str(&value.split_whitespace().collect::<Vec<_>>().join(" "));
        out.push('\n');
    }
    out.push('/');
    out.push_str(account);
    out.push_str(r.path);
    let mut query: Vec<(String, String)> = r
        .query
        .iter()
        .map(|(k, v)| {
            let decode = |s: &str| percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
            (decode(k).to_ascii_lowercase(), decode(v))
        })
        .collect();
    query.sort();
    let mut i = 0;
    while i < query.len() {
        let name = query[i].0.clone();
        let mut values = Vec::new();
        while i < query.len() && query[i].0 == name {
            values.push(query[i].1.clone());
            i += 1;
        }
        out.push('\n');
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
    }
    out
}

#[async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(&self, ctx: &Context, request: &mut Request, next: &[Arc<dyn Policy>]) -> PolicyResult {
        let now = azure_core::time::to_rfc7231(&OffsetDateTime::now_utc());
        request.insert_header("x-ms-date", now);
        let url = request.url().clone();
        let headers: Vec<(String, String)> =
            request.headers().iter().map(|(n, v)| (n.as_str().to_owned(), v.as_str().to_owned())).collect();
        let signable = Signable {
            method: request.method().as_str(),
            path: url.path(),
            query: url.query().map_or_else(Vec::new, |q| {
                q.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))).collect()
            }),
            headers: headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect(),
            content_length: request.body().len().unwrap_or(0),
        };
        let signature = self.signature(&string_to_sign(&self.account, &signable));
        request.insert_header("authorization", format!("SharedKey {}:{signature}", self.account));
        match next.split_first() {
            Some((first, rest)) => first.send(ctx, request, rest).await,
            None => Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "SharedKey policy must not be the last in the pipeline",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Known answer: Azurite's published development account key, and a string to sign built by
    /// hand from the REST reference's rules (blank Date, x-ms headers sorted, emulator path).
    #[test]
    fn string_to_sign_follows_the_reference() {
        let r = Signable {
            method: "PUT",
            path: "/devstoreaccount1/photos/a%20b.jpg",
            query: vec![("comp", "block"), ("blockid", "YWJj%3D")],
            headers: vec![
                ("x-ms-version", "2023-11-03"),
                ("x-ms-date", "Fri, 04 Dec 2026 10:00:00 GMT"),
                ("if-none-match", "*"),
                ("content-type", "application/xml"),
                ("x-ms-meta-mname", "  spaced   value "),
            ],
            content_length: 11,
        };
        let expected = "PUT\n\n\n11\n\napplication/xml\n\n\n\n*\n\n\n\
                        x-ms-date:Fri, 04 Dec 2026 10:00:00 GMT\nx-ms-meta-mname:spaced value\nx-ms-version:2023-11-03\n\
                        /devstoreaccount1/devstoreaccount1/photos/a%20b.jpg\nblockid:YWJj=\ncomp:block";
        assert_eq!(string_to_sign("devstoreaccount1", &r), expected);
    }

    #[test]
    fn empty_body_has_an_empty_length_line_and_repeated_query_names_join() {
        let r = Signable {
            method: "GET",
            path: "/c",
            query: vec![("restype", "container"), ("include", "metadata"), ("include", "tags")],
            headers: vec![],
            content_length: 0,
        };
        assert_eq!(
            string_to_sign("acct", &r),
            "GET\n\n\n\n\n\n\n\n\n\n\n\n/acct/c\ninclude:metadata,tags\nrestype:container"
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_string_under_the_decoded_key() {
        // HMAC-SHA256("", key = 32 zero bytes) is a published vector-free check: compare with aws-lc
        // directly, and refuse a key that is not base64.
        let policy = SharedKeyPolicy::new("a", &base64::engine::general_purpose::STANDARD.encode([0u8; 32])).unwrap();
        let direct = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[0u8; 32]), b"x");
        assert_eq!(policy.signature("x"), base64::engine::general_purpose::STANDARD.encode(direct.as_ref()));
        assert!(SharedKeyPolicy::new("a", "not base64!").is_none());
    }
}
