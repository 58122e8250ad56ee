//! Sending keys made only of whitespace (`" "`, `"\t"`) through aws-sdk-s3.
//!
//! S3 accepts such keys, but aws-sdk-s3 1.157 refuses to build the request: it checks
//! `key.trim().is_empty()` while building its endpoint parameters and fails with "key was missing"
//! before anything is sent. The URI serializer itself encodes them fine (`" "` → `/%20`).
//!
//! So the key handed to the SDK is [`wire_key`]: a blank key gets a per-process random prefix, which
//! passes the check, and [`BlankKeyPath`] (installed on the client) removes that prefix from the request
//! path just before signing, so the backend sees, and the signature covers, the real key. The prefix is
//! random so that no real key can be mistaken for a prefixed blank key.

use std::borrow::Cow;
use std::sync::LazyLock;

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;

/// `blank-` plus 32 random hex digits plus `-`: only unreserved characters, so the SDK's path encoding
/// leaves it unchanged and it can be found verbatim in the request URI.
static PREFIX: LazyLock<String> = LazyLock::new(|| {
    let mut raw = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut raw).is_err() {
        // Still works; only the (already remote) chance of a real key colliding with the prefix grows.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        raw = (nanos ^ u128::from(std::process::id())).to_be_bytes();
    }
    format!("blank-{}-", hex::encode(raw))
});

/// The key to give the SDK for `key`: `key` itself unless the SDK would refuse it as blank (non-empty but
/// all whitespace, by the same `str::trim` test the SDK uses), then the prefixed form.
pub(super) fn wire_key(key: &str) -> Cow<'_, str> {
    if !key.is_empty() && key.trim().is_empty() {
        Cow::Owned(format!("{}{key}", PREFIX.as_str()))
    } else {
        Cow::Borrowed(key)
    }
}

/// Client interceptor that turns the path of a request built from a [`wire_key`] back into the real key.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BlankKeyPath;

impl Intercept for BlankKeyPath {
    fn name(&self) -> &'static str {
        "blobseal::BlankKeyPath"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        if let Some(uri) = strip_prefix_from_uri(request.uri(), &PREFIX) {
            request.set_uri(uri)?;
        }
        Ok(())
    }
}

/// `uri` with `prefix` removed from its last path segment, when that segment is `prefix` followed by a
/// non-empty run of percent escapes (an encoded blank key); `None` otherwise. Pure, for tests.
fn strip_prefix_from_uri(uri: &str, prefix: &str) -> Option<String> {
    let path_end = uri.find(['?', '#']).unwrap_or(uri.len());
    let path = uri.get(..path_end)?;
    let segment_start = path.rfind('/')? + 1;
    let rest = path.get(segment_start..)?.strip_prefix(prefix)?;
    if !is_percent_escapes(rest) {
        return None;
    }
    let mut out = String::with_capacity(uri.len() - prefix.len());
    out.push_str(path.get(..segment_start)?);
    out.push_str(rest);
    out.push_str(uri.get(path_end..)?);
    Some(out)
}

/// True for one or more `%XX` escapes and nothing else: how the SDK encodes whitespace.
fn is_percent_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len().is_multiple_of(3)
        && b.chunks(3).all(|c| matches!(c, [b'%', h, l] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_blank_keys_are_prefixed() {
        assert_eq!(wire_key("a b"), "a b");
        assert_eq!(wire_key(""), "");
        assert_eq!(wire_key(" "), format!("{} ", PREFIX.as_str()));
        assert_eq!(wire_key(" \t"), format!("{} \t", PREFIX.as_str()));
        assert!(PREFIX.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'), "{}", PREFIX.as_str());
    }

    #[test]
    fn prefix_is_removed_from_the_last_segment_only() {
        let p = "blank-00ff-";
        assert_eq!(
            strip_prefix_from_uri("http://h:1/bkt/blank-00ff-%20?x-id=PutObject", p).as_deref(),
            Some("http://h:1/bkt/%20?x-id=PutObject")
        );
        assert_eq!(strip_prefix_from_uri("http://bkt.h/blank-00ff-%20%09", p).as_deref(), Some("http://bkt.h/%20%09"));
        // A bucket of that name, a real key that merely starts with the prefix, or no key at all: untouched.
        assert_eq!(strip_prefix_from_uri("http://h/blank-00ff-%20/k", p), None);
        assert_eq!(strip_prefix_from_uri("http://h/bkt/blank-00ff-x", p), None);
        assert_eq!(strip_prefix_from_uri("http://h/bkt/blank-00ff-%2", p), None);
        assert_eq!(strip_prefix_from_uri("http://h/bkt/blank-00ff-", p), None);
        assert_eq!(strip_prefix_from_uri("http://h/bkt?prefix=blank-00ff-%20", p), None);
    }

    /// Answers 200 to everything and remembers the URIs it was asked for.
    #[derive(Debug, Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl aws_smithy_runtime_api::client::http::HttpConnector for Capture {
        fn call(
            &self,
            request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
        ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
            self.0.lock().unwrap().push(request.uri().to_owned());
            let ok = aws_smithy_runtime_api::http::StatusCode::try_from(200u16).unwrap();
            let response = aws_smithy_runtime_api::client::orchestrator::HttpResponse::new(
                ok,
                aws_sdk_s3::primitives::SdkBody::empty(),
            );
            aws_smithy_runtime_api::client::http::HttpConnectorFuture::ready(Ok(response))
        }
    }

    impl aws_smithy_runtime_api::client::http::HttpClient for Capture {
        fn http_connector(
            &self,
            _settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
            _components: &RuntimeComponents,
        ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
            aws_smithy_runtime_api::client::http::SharedHttpConnector::new(self.clone())
        }
    }

    /// The whole path through a real SDK client: the request that leaves carries the real key.
    #[tokio::test]
    async fn sdk_sends_a_blank_key_as_itself() {
        let capture = Capture::default();
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("ak", "sk", None, None, "test"))
            .endpoint_url("http://127.0.0.1:9")
            .force_path_style(true)
            .http_client(capture.clone())
            .interceptor(BlankKeyPath)
            .build();
        let client = aws_sdk_s3::Client::from_conf(conf);
        let plain = client.put_object().bucket("bkt").key(" ").send().await;
        assert!(plain.is_err(), "the SDK alone refuses a blank key; this workaround may be obsolete");
        assert!(capture.0.lock().unwrap().is_empty());
        client.put_object().bucket("bkt").key(wire_key(" ")).send().await.unwrap();
        client.get_object().bucket("bkt").key(wire_key("blank")).send().await.unwrap();
        let uris = capture.0.lock().unwrap().clone();
        assert_eq!(uris.len(), 2, "{uris:?}");
        assert!(uris[0].starts_with("http://127.0.0.1:9/bkt/%20?"), "{uris:?}");
        assert!(uris[1].starts_with("http://127.0.0.1:9/bkt/blank?"), "{uris:?}");
    }
}
