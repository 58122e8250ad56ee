//! The Azure Blob front end: Azure's REST protocol for the everyday block-blob surface, on the same
//! `BlobService` (and so the same encrypted objects, one namespace) as the S3 front end.
//!
//! Hand-written because no Rust crate serves the Azure Blob REST API (the Azure SDK crates are clients).
//! It mirrors what s3s does for S3, in one pass per request: route (`router.rs`) → authenticate
//! (`auth.rs`: Shared Key, SAS) → authorize per operation → run (`ops_*.rs`) → map errors in one place
//! (`error.rs`). Nothing of the body is read before the request is authenticated and authorized.

mod auth;
mod body;
mod conditions;
mod error;
mod headers;
mod if_tags;
mod ops_blobs;
mod ops_blocks;
mod ops_containers;
mod ops_list;
mod router;
mod sas;
mod shared_key;
mod xml;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt as _;
use http::{HeaderMap, Method, StatusCode};

pub use auth::{Account, Accounts};
use auth::{Caller, Presented, WriteMode};
use error::Addressed;
pub use error::AzureError;
use router::{Op, Query, Target};

use crate::backend::ByteStream;
use crate::core::service::BlobService;
use crate::core::tenant::Tenant;

/// The `x-ms-version` answered when a client sends none.
const DEFAULT_VERSION: &str = "2025-01-05";
/// Oldest `x-ms-version` accepted.
const MIN_VERSION: &str = "2019-12-12";

/// A response on its way out.
pub type Response = http::Response<s3s::Body>;

/// The Azure front end: accounts (name → tenant and keys) over the object service.
pub struct AzureFront {
    core: Arc<BlobService>,
    accounts: Accounts,
    /// Host-style addressing under this domain (`<account>.blob.<domain>`).
    domain: Option<String>,
    /// Whether the listener is TLS (for `spr=https` SAS).
    https: bool,
}

/// One request, authenticated and authorized, as the operations see it.
pub(crate) struct Ctx<'a> {
    pub core: &'a Arc<BlobService>,
    pub tenant: Arc<Tenant>,
    pub target: &'a Target,
    pub query: &'a Query,
    pub headers: &'a HeaderMap,
    pub caller: &'a Caller,
    pub write: WriteMode,
    /// `http(s)://host/account/` for listings' `ServiceEndpoint`.
    pub endpoint: String,
}

impl Ctx<'_> {
    pub fn container(&self) -> Result<&str, AzureError> {
        self.target.container.as_deref().ok_or(AzureError::bad_request("InvalidUri", "No container named."))
    }

    pub fn blob(&self) -> Result<&str, AzureError> {
        self.target.blob.as_deref().ok_or(AzureError::bad_request("InvalidUri", "No blob named."))
    }

    pub fn addressed(&self) -> Addressed {
        match (&self.target.container, &self.target.blob) {
            (_, Some(_)) => Addressed::Blob,
            (Some(_), None) => Addressed::Container,
            _ => Addressed::Account,
        }
    }

    /// Maps a core error for this request.
    pub fn core_err(&self, e: crate::core::error::CoreError) -> AzureError {
        error::from_core(e, self.addressed())
    }

    /// Maps a core error of a write. A SAS with `c` but not `w` writes create-only: finding the blob there
    /// is a permission refusal (as in Azure), not the 409 an explicit `If-None-Match: *` gets.
    pub fn write_err(&self, e: crate::core::error::CoreError) -> AzureError {
        let asked_create_only = headers::text(self.headers, "if-none-match").is_some_and(|v| v.trim() == "*");
        let exists =
            matches!(e, crate::core::error::CoreError::Backend(crate::backend::BackendError::PreconditionFailed));
        if exists && self.write == WriteMode::CreateOnly && !asked_create_only {
            return AzureError::permission(
                "This request is not authorized to perform this operation using this permission.",
            );
        }
        self.core_err(e)
    }
}

/// An empty response with `status` and `headers`.
pub(crate) fn empty(status: StatusCode, headers: HeaderMap) -> Response {
    let mut r = http::Response::new(s3s::Body::empty());
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// An XML response.
pub(crate) fn xml_response(status: StatusCode, mut headers: HeaderMap, body: String) -> Response {
    headers::put(&mut headers, "content-type", "application/xml");
    headers::put(&mut headers, "content-length", &body.len().to_string());
    let mut r = http::Response::new(s3s::Body::from(body));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// A streamed response body.
pub(crate) fn stream_body(body: ByteStream) -> s3s::Body {
    let frames = body.map_ok(http_body::Frame::data);
    s3s::Body::http_body_unsync(http_body_util::StreamBody::new(frames))
}

/// The request body, read in full (only for small, bounded XML bodies, after authentication).
pub(crate) async fn read_small_body(body: s3s::Body, limit: usize) -> Result<Bytes, AzureError> {
    let too_large =
        || AzureError::new(StatusCode::PAYLOAD_TOO_LARGE, "RequestBodyTooLarge", "The request body is too large.");
    let mut out = Vec::new();
    let mut body = body;
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        let chunk =
            chunk.map_err(|_| AzureError::bad_request("InvalidInput", "The request body could not be read."))?;
        if out.len().saturating_add(chunk.len()) > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

impl AzureFront {
    pub fn new(core: Arc<BlobService>, accounts: Accounts, domain: Option<String>, https: bool) -> Self {
        Self { core, accounts, domain, https }
    }

    /// The account a request path addresses and the rest of the path (`/container/blob`, still encoded),
    /// for log lines that redact data subjects in blob names as the S3 side does in keys.
    pub fn split_account<'p>(&self, host: Option<&str>, path: &'p str) -> Option<(String, &'p str)> {
        split_account(self.domain.as_deref(), host, path)
    }

    /// Serves one request. `request_id` goes out as `x-ms-request-id`.
    pub async fn handle(
        &self,
        req: http::Request<s3s::Body>,
        peer: SocketAddr,
        request_id: &str,
    ) -> (Response, &'static str) {
        let (parts, body) = req.into_parts();
        let version = headers::text(&parts.headers, "x-ms-version").map(str::to_owned);
        let client_id = parts.headers.get("x-ms-client-request-id").cloned();
        let is_head = parts.method == Method::HEAD;
        let (mut response, op) = match self.run(&parts, body, peer).await {
            Ok((r, op)) => (r, op),
            Err((e, op)) => (error_response(&e, is_head, request_id), op),
        };
        let h = response.headers_mut();
        headers::put(h, "x-ms-request-id", request_id);
        let answered = version.filter(|v| version_ok(v)).unwrap_or_else(|| DEFAULT_VERSION.to_owned());
        headers::put(h, "x-ms-version", &answered);
        if let Some(id) = client_id {
            h.insert("x-ms-client-request-id", id);
        }
        headers::put(h, "date", &headers::http_date(time::OffsetDateTime::now_utc()));
        headers::put(h, "server", "blobseal");
        (response, op.name())
    }

    async fn run(
        &self,
        parts: &http::request::Parts,
        body: s3s::Body,
        peer: SocketAddr,
    ) -> Result<(Response, Op), (AzureError, Op)> {
        let unknown = Op::Unsupported("unknown");
        let query = Query::parse(parts.uri.query()).map_err(|e| (e, unknown))?;
        let host = headers::text(&parts.headers, "host").or(parts.uri.host());
        let target = router::target(host, parts.uri.path(), self.domain.as_deref()).map_err(|e| (e, unknown))?;
        let op = router::operation(&parts.method, &target, &query, &parts.headers);
        let presented = Presented {
            method: &parts.method,
            headers: &parts.headers,
            raw_path: parts.uri.path(),
            query: &query,
            target: &target,
            peer: peer.ip(),
            https: self.https,
            now: time::OffsetDateTime::now_utc(),
        };
        let (account, caller) = auth::authenticate(&self.accounts, &presented).map_err(|e| (e, op))?;
        if let Some(v) = headers::text(&parts.headers, "x-ms-version") {
            if !version_ok(v) {
                let e = AzureError::bad_request(
                    "InvalidHeaderValue",
                    format!("The value for x-ms-version is not supported (need {MIN_VERSION} or later)."),
                );
                return Err((e, op));
            }
        }
        if let Op::Unsupported(what) = op {
            return Err((AzureError::unsupported(what), op));
        }
        let write = auth::authorize(&caller, op, &target).map_err(|e| (e, op))?;
        let tenant =
            self.core.directory().tenant(&account.tenant).map_err(|e| (error::from_core(e, Addressed::Account), op))?;
        let scheme = if self.https { "https" } else { "http" };
        let endpoint = match (&self.domain, host) {
            (Some(_), Some(h)) if h.to_ascii_lowercase().starts_with(&format!("{}.blob.", target.account)) => {
                format!("{scheme}://{h}/")
            }
            (_, Some(h)) => format!("{scheme}://{h}/{}/", target.account),
            (_, None) => format!("/{}/", target.account),
        };
        let cx = Ctx {
            core: &self.core,
            tenant,
            target: &target,
            query: &query,
            headers: &parts.headers,
            caller: &caller,
            write,
            endpoint,
        };
        let result = match op {
            Op::ListContainers => ops_list::list_containers(&cx).await,
            Op::AccountInfo => Ok(ops_containers::account_info()),
            Op::CreateContainer => ops_containers::create(&cx).await,
            Op::DeleteContainer => ops_containers::delete(&cx).await,
            Op::ContainerProperties => ops_containers::properties(&cx).await,
            Op::SetContainerMetadata => ops_containers::set_metadata(&cx).await,
            Op::ListBlobs => ops_list::list_blobs(&cx).await,
            Op::PutBlob => ops_blobs::put(&cx, body).await,
            Op::CopyBlob => ops_blobs::copy(&cx, &self.accounts, account).await,
            Op::GetBlob => ops_blobs::get(&cx).await,
            Op::BlobProperties => ops_blobs::properties(&cx).await,
            Op::DeleteBlob => ops_blobs::delete(&cx).await,
            Op::SetBlobMetadata => ops_blobs::set_metadata(&cx).await,
            Op::SetBlobProperties => ops_blobs::set_properties(&cx).await,
            Op::GetTags => ops_blobs::get_tags(&cx).await,
            Op::SetTags => ops_blobs::set_tags(&cx, body).await,
            Op::PutBlock => ops_blocks::put_block(&cx, body).await,
            Op::PutBlockList => ops_blocks::put_block_list(&cx, body).await,
            Op::GetBlockList => ops_blocks::get_block_list(&cx).await,
            Op::Unsupported(what) => Err(AzureError::unsupported(what)),
        };
        result.map(|r| (r, op)).map_err(|e| (e, op))
    }
}

fn split_account<'p>(domain: Option<&str>, host: Option<&str>, path: &'p str) -> Option<(String, &'p str)> {
    let host_style = domain.zip(host).is_some_and(|(d, h)| {
        let h = h.to_ascii_lowercase();
        let name = h.rsplit_once(':').map_or(h.as_str(), |(n, _)| n);
        name.ends_with(&format!(".blob.{}", d.to_ascii_lowercase()))
    });
    if host_style {
        let account = host?.split('.').next()?.to_ascii_lowercase();
        return Some((account, path));
    }
    let rest = path.strip_prefix('/')?;
    let (account, tail) = rest.split_once('/').unwrap_or((rest, ""));
    Some((account.to_owned(), path.get(account.len() + 1..).filter(|_| !tail.is_empty()).unwrap_or("/")))
}

/// Whether `v` is a well-formed `x-ms-version` (`YYYY-MM-DD`) blobseal accepts.
fn version_ok(v: &str) -> bool {
    let shape =
        v.len() == 10 && v.char_indices().all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() });
    shape && v >= MIN_VERSION
}

/// The answer to a request whose audit record could not be made durable (`audit.mode: required`):
/// 503 `ServerBusy`, so clients retry; the operation may have happened, but it is not acknowledged.
pub fn audit_unavailable(request_id: &str) -> Response {
    let e = AzureError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServerBusy",
        "The audit trail is unavailable, so the request is not acknowledged. Retry later.",
    );
    let mut r = error_response(&e, false, request_id);
    headers::put(r.headers_mut(), "x-ms-request-id", request_id);
    r
}

/// An error as Azure sends it: status, `x-ms-error-code`, and (except on HEAD) the XML body.
fn error_response(e: &AzureError, is_head: bool, request_id: &str) -> Response {
    let mut h = HeaderMap::new();
    headers::put(&mut h, "x-ms-error-code", e.code);
    if let Some(size) = e.size {
        headers::put(&mut h, "content-range", &format!("bytes */{size}"));
    }
    if is_head || e.status == StatusCode::NOT_MODIFIED {
        return empty(e.status, h);
    }
    let time =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let mut w = xml::Writer::new();
    w.open("Error")
        .leaf("Code", e.code)
        .leaf("Message", &format!("{}\nRequestId:{request_id}\nTime:{time}", e.message));
    w.close("Error");
    xml_response(e.status, h, w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_split_for_logs() {
        assert_eq!(split_account(None, None, "/acct/cont/a/b"), Some(("acct".to_owned(), "/cont/a/b")));
        assert_eq!(split_account(None, None, "/acct"), Some(("acct".to_owned(), "/")));
        assert_eq!(
            split_account(Some("ex.net"), Some("acct.blob.ex.net:99"), "/cont/b"),
            Some(("acct".to_owned(), "/cont/b"))
        );
        assert_eq!(
            split_account(Some("ex.net"), Some("127.0.0.1:99"), "/acct/cont/b"),
            Some(("acct".to_owned(), "/cont/b"))
        );
        assert_eq!(split_account(None, None, "nope"), None);
    }

    #[test]
    fn versions() {
        assert!(version_ok("2019-12-12"));
        assert!(version_ok("2026-10-06"));
        assert!(!version_ok("2019-07-07"));
        assert!(!version_ok("2025-1-05"));
        assert!(!version_ok("latest"));
    }

    #[test]
    fn errors_carry_their_code_in_a_header_and_not_in_a_head_body() {
        let e = AzureError::new(StatusCode::NOT_FOUND, "BlobNotFound", "The specified blob does not exist.");
        let r = error_response(&e, true, "ID");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()["x-ms-error-code"], "BlobNotFound");
        assert!(r.body().bytes().is_none_or(|b| b.is_empty()));
        let r = error_response(&e, false, "ID");
        let body = r.body().bytes().unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("<Code>BlobNotFound</Code>") && text.contains("RequestId:ID"), "{text}");
    }
}
