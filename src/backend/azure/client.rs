//! One storage account's blob endpoint: URLs, the `azure_core` pipeline that signs and sends,
//! and the one place an Azure error becomes a [`BackendError`].

use std::sync::Arc;

use azure_core::http::policies::Policy;
use azure_core::http::{
    AsyncRawResponse, Body, ClientOptions, Context, Method, Pipeline, PipelineStreamOptions, Request, RetryOptions,
    Transport, Url,
};
use bytes::Bytes;
use futures::StreamExt as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::settings::{AzureBackendSettings, AzureCredentials};
use super::shared_key::SharedKeyPolicy;
use super::transport::{HyperClient, OneShotBody};
use crate::backend::{BackendError, Result};

/// The REST version every request asks for: new enough for blob tags, versions and immutability
/// headers (2020-06-12), and served by Azurite.
const API_VERSION: &str = "2023-11-03";

/// Bytes of an error body read for its message; the rest is dropped.
const ERROR_BODY_LIMIT: usize = 4096;

/// What stays literal in a blob name in a URL path: unreserved characters and `/`.
const PATH_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// A blob service endpoint with its credentials.
#[derive(Debug, Clone)]
pub(super) struct AzureClient {
    pipeline: Pipeline,
    /// The service URL without a trailing `/` (for an emulator, ending in the account segment).
    base: String,
    sas: Option<String>,
}

/// A response whose status was a success.
pub(super) struct Answer {
    pub headers: azure_core::http::headers::Headers,
    pub body: azure_core::http::AsyncResponseBody,
}

impl Answer {
    pub fn header(&self, name: &'static str) -> Option<&str> {
        self.headers.get_optional_str(&azure_core::http::headers::HeaderName::from_static(name))
    }

    /// The whole body, for the small XML answers (listings, tags, block lists).
    pub async fn bytes(self) -> Result<Bytes> {
        self.body.collect().await.map_err(|e| BackendError::Unavailable(format!("reading an Azure answer: {e}")))
    }
}

impl AzureClient {
    pub fn new(settings: &AzureBackendSettings) -> Result<Self> {
        let endpoint = settings.endpoint.trim_end_matches('/');
        let parsed = Url::parse(endpoint)
            .map_err(|e| BackendError::InvalidRequest(format!("Azure endpoint {endpoint:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
            return Err(BackendError::InvalidRequest(format!(
                "Azure endpoint {endpoint:?} must be an http(s) URL without a query"
            )));
        }
        let transport = HyperClient::new()
            .map_err(|e| BackendError::Unavailable(format!("loading the system's TLS roots: {e}")))?;
        let mut per_try: Vec<Arc<dyn Policy>> = Vec::new();
        let sas = match &settings.credentials {
            AzureCredentials::AccountKey(key) => {
                let policy = SharedKeyPolicy::new(&settings.account, key)
                    .ok_or_else(|| BackendError::InvalidRequest("the Azure account key is not base64".into()))?;
                per_try.push(Arc::new(policy));
                None
            }
            AzureCredentials::Sas(token) => Some(token.trim_start_matches('?').to_owned()),
        };
        let options = ClientOptions {
            transport: Some(Transport::new(Arc::new(transport))),
            // Uploads stream a client's body once; the callers above retry what can be retried.
            retry: RetryOptions::none(),
            ..ClientOptions::default()
        };
        let pipeline = Pipeline::new(Some("blobseal"), Some(env!("CARGO_PKG_VERSION")), options, vec![], per_try, None);
        Ok(Self { pipeline, base: endpoint.to_owned(), sas })
    }

    /// The URL of the service (`container` `None`), a container, or a blob, with `query`.
    pub fn url(&self, container: Option<&str>, blob: Option<&str>, query: &[(&str, &str)]) -> Result<Url> {
        let mut text = self.base.clone();
        if let Some(container) = container {
            text.push('/');
            text.push_str(container);
            if let Some(blob) = blob {
                text.push('/');
                text.extend(utf8_percent_encode(blob, PATH_ENCODE));
            }
        } else {
            text.push('/');
        }
        let mut url = Url::parse(&text).map_err(|e| BackendError::InvalidRequest(format!("blob URL: {e}")))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        if let Some(sas) = &self.sas {
            let joined = match url.query() {
                Some(q) if !q.is_empty() => format!("{q}&{sas}"),
                _ => sas.clone(),
            };
            url.set_query(Some(&joined));
        }
        Ok(url)
    }

    /// A request with the version header set.
    pub fn request(&self, method: Method, url: Url) -> Request {
        let mut req = Request::new(url, method);
        req.insert_header("x-ms-version", API_VERSION);
        req
    }

    /// Sends `req` with `body` (a client's upload); when the upload itself failed, that is the
    /// error (`InvalidRequest`), whatever the connection then reported.
    pub async fn send_body(&self, req: &mut Request, body: OneShotBody, not_found: BackendError) -> Result<Answer> {
        let probe = body.clone();
        req.set_body(body);
        let sent = self.send(req, not_found).await;
        match probe.broken() {
            Some(why) => Err(BackendError::InvalidRequest(why)),
            None => sent,
        }
    }

    /// Sends `req`; a non-success answer becomes an error, 404 as `not_found`.
    pub async fn send(&self, req: &mut Request, not_found: BackendError) -> Result<Answer> {
        let ctx = Context::new();
        let options = || Some(PipelineStreamOptions { skip_checks: true, ..Default::default() });
        let response: AsyncRawResponse = match self.pipeline.stream(&ctx, req, options()).await {
            Ok(response) => response,
            // A pooled connection the server closed while idle fails at once: a request without a
            // streamed body is sent again, once (a streamed upload cannot be).
            Err(_) if matches!(req.body(), Body::Bytes(_)) => self
                .pipeline
                .stream(&ctx, req, options())
                .await
                .map_err(|e| BackendError::Unavailable(e.to_string()))?,
            Err(e) => return Err(BackendError::Unavailable(e.to_string())),
        };
        let (status, headers, body) = response.deconstruct();
        if status.is_success() {
            return Ok(Answer { headers, body });
        }
        let code = headers
            .get_optional_str(&azure_core::http::headers::HeaderName::from_static("x-ms-error-code"))
            .map(str::to_owned);
        let message = error_message(body).await;
        Err(map_status(u16::from(status), code.as_deref(), &message, not_found))
    }
}

/// The `<Message>` of an Azure error body, or its start.
async fn error_message(body: azure_core::http::AsyncResponseBody) -> String {
    let mut body = Box::pin(body);
    let mut buf = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        buf.extend_from_slice(&chunk);
        if buf.len() >= ERROR_BODY_LIMIT {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf[..buf.len().min(ERROR_BODY_LIMIT)]).into_owned();
    match (text.find("<Message>"), text.find("</Message>")) {
        (Some(start), Some(end)) if start + 9 <= end => text[start + 9..end].lines().next().unwrap_or("").to_owned(),
        _ => text.chars().take(200).collect(),
    }
}

/// Azure's status and error code, as the most specific [`BackendError`]. The one mapping place.
pub(super) fn map_status(status: u16, code: Option<&str>, message: &str, not_found: BackendError) -> BackendError {
    let detail = || format!("{status} {}: {message}", code.unwrap_or("-"));
    match (status, code) {
        (_, Some("ContainerNotFound")) => BackendError::NoSuchBucket,
        (_, Some("BlobNotFound")) | (404, _) => not_found,
        (_, Some("ContainerAlreadyExists")) => BackendError::BucketAlreadyExists,
        (_, Some("BlobImmutableDueToPolicy" | "BlobImmutableDueToLegalHold")) => {
            BackendError::ObjectLocked(code.unwrap_or_default().to_owned())
        }
        (_, Some("BlobAlreadyExists" | "ConditionNotMet" | "SourceConditionNotMet" | "TargetConditionNotMet"))
        | (412, _) => BackendError::PreconditionFailed,
        (_, Some("InvalidRange")) | (416, _) => BackendError::InvalidRange,
        (_, Some("InvalidBlockList" | "InvalidBlockId")) => BackendError::InvalidPart(detail()),
        (_, Some("ServerBusy" | "OperationTimedOut")) | (503 | 429, _) => BackendError::Throttled,
        (403, _) => BackendError::PermissionDenied(code.unwrap_or("AuthorizationFailure").to_owned()),
        (s, _) if s >= 500 => BackendError::Unavailable(detail()),
        (400, _) | (413, _) | (409, Some("ContainerBeingDeleted")) => BackendError::InvalidRequest(detail()),
        _ => BackendError::Other { backend: "azure", message: detail() },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn client(endpoint: &str, credentials: AzureCredentials) -> AzureClient {
        let settings =
            AzureBackendSettings { endpoint: endpoint.into(), account: "devstoreaccount1".into(), credentials };
        AzureClient::new(&settings).unwrap()
    }

    #[test]
    fn urls_keep_the_emulator_account_and_encode_names() {
        let key = AzureCredentials::AccountKey("AAAA".into());
        let c = client("http://127.0.0.1:10000/devstoreaccount1/", key);
        let url = c.url(Some("photos"), Some("a b/ü?#%/. /x"), &[("comp", "block")]).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/photos/a%20b/%C3%BC%3F%23%25/.%20/x?comp=block"
        );
        assert_eq!(
            c.url(None, None, &[("comp", "list")]).unwrap().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/?comp=list"
        );
    }

    #[test]
    fn a_sas_is_appended_to_every_url() {
        let c = client("https://acct.blob.core.windows.net", AzureCredentials::Sas("?sv=2022&sig=abc".into()));
        assert_eq!(
            c.url(Some("c"), Some("k"), &[]).unwrap().as_str(),
            "https://acct.blob.core.windows.net/c/k?sv=2022&sig=abc"
        );
        assert_eq!(
            c.url(Some("c"), None, &[("restype", "container")]).unwrap().as_str(),
            "https://acct.blob.core.windows.net/c?restype=container&sv=2022&sig=abc"
        );
    }

    #[test]
    fn bad_endpoints_and_keys_are_refused() {
        let key = || AzureCredentials::AccountKey("AAAA".into());
        for endpoint in ["ftp://x", "not a url", "https://x/?q=1"] {
            let s = AzureBackendSettings { endpoint: endpoint.into(), account: "a".into(), credentials: key() };
            assert!(AzureClient::new(&s).is_err(), "{endpoint}");
        }
        let s = AzureBackendSettings {
            endpoint: "https://x".into(),
            account: "a".into(),
            credentials: AzureCredentials::AccountKey("***".into()),
        };
        assert!(AzureClient::new(&s).is_err());
    }

    #[test]
    fn errors_map_to_the_backend_variants() {
        let nf = || BackendError::NoSuchKey;
        assert!(matches!(map_status(404, Some("ContainerNotFound"), "", nf()), BackendError::NoSuchBucket));
        assert!(matches!(
            map_status(404, Some("BlobNotFound"), "", BackendError::NoSuchVersion),
            BackendError::NoSuchVersion
        ));
        assert!(matches!(map_status(404, None, "", nf()), BackendError::NoSuchKey));
        assert!(matches!(map_status(409, Some("BlobAlreadyExists"), "", nf()), BackendError::PreconditionFailed));
        assert!(matches!(map_status(412, Some("ConditionNotMet"), "", nf()), BackendError::PreconditionFailed));
        assert!(matches!(map_status(409, Some("ContainerAlreadyExists"), "", nf()), BackendError::BucketAlreadyExists));
        assert!(matches!(
            map_status(409, Some("BlobImmutableDueToLegalHold"), "", nf()),
            BackendError::ObjectLocked(_)
        ));
        assert!(matches!(map_status(416, Some("InvalidRange"), "", nf()), BackendError::InvalidRange));
        assert!(matches!(map_status(503, Some("ServerBusy"), "", nf()), BackendError::Throttled));
        assert!(matches!(map_status(403, Some("AuthenticationFailed"), "", nf()), BackendError::PermissionDenied(_)));
        assert!(matches!(map_status(500, None, "", nf()), BackendError::Unavailable(_)));
        assert!(matches!(map_status(400, Some("InvalidBlockList"), "", nf()), BackendError::InvalidPart(_)));
    }
}
