//! What happens to each request before and after the S3 service: the request gate (refusals from
//! the head alone, before any body byte is read), the body's progress guard, the request id on every
//! answer, metrics, and one log line per request (`observe.rs`).
//!
//! The log line holds tenant, bucket, operation, method, path (a key's data-subject segment replaced
//! by `{subject}`), status, duration and bytes; never the query string (presigned URLs carry
//! signatures there), never a header.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;

use super::observe::{InFlight, RequestRecord};
use crate::core::keys::subject::KeyPattern;
use crate::core::service::BlobService;
use crate::front::body_guard::{ProgressGuard, ProgressRule};
use crate::front::s3::gate::claimed_access_key;
use crate::front::s3::gate::{Refusal, RequestGate};
use crate::front::s3::operation::operation_name;

/// Everything a request passes through on its way to the S3 service.
pub struct FrontDoor {
    pub service: s3s::service::S3Service,
    pub core: Arc<BlobService>,
    pub gate: RequestGate,
    /// `<bucket>.<domain>` addressing, to name the bucket and operation of a request.
    pub virtual_hosts: Option<crate::front::s3::host::BucketSubdomains>,
    /// Each access key's tenant (for the log line).
    pub tenants_by_key: std::collections::HashMap<String, String>,
    pub body_rule: ProgressRule,
    /// Every tenant's key patterns naming data subjects (for the log line).
    pub subject_patterns: Vec<KeyPattern>,
    pub auditor: Option<Arc<crate::core::audit::Auditor>>,
}

impl FrontDoor {
    /// Serves one request from `peer`.
    pub async fn handle(&self, req: hyper::Request<Incoming>, peer: SocketAddr) -> hyper::Response<s3s::Body> {
        let id = new_request_id();
        let method = req.method().clone();
        let raw_path = req.uri().path();
        let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok());
        let host_bucket = match (&self.virtual_hosts, host) {
            (Some(v), Some(h)) => v.bucket_of(h).map(str::to_owned),
            _ => None,
        };
        let bucket = host_bucket.clone().or_else(|| {
            let first = raw_path.trim_start_matches('/').split('/').next().unwrap_or("");
            (!first.is_empty()).then(|| percent_encoding::percent_decode_str(first).decode_utf8_lossy().into_owned())
        });
        let operation = operation_name(
            &method,
            raw_path,
            req.uri().query(),
            host_bucket.is_some(),
            req.headers().contains_key("x-amz-copy-source"),
        );
        let access_key = claimed_access_key(req.uri(), req.headers());
        let tenant = access_key.as_ref().and_then(|k| self.tenants_by_key.get(k).cloned());
        let object_key = object_key_of(raw_path, host_bucket.is_some());
        let bytes_in = match super::audit::header_number(req.headers(), "x-amz-decoded-content-length") {
            0 => super::audit::header_number(req.headers(), "content-length"),
            n => n,
        };
        let header_subject =
            req.headers().get("x-amz-meta-data-subject").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let query_version = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("versionId=")))
            .map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned());
        let path = loggable_path(&self.subject_patterns, raw_path);
        let flight = InFlight::start(RequestRecord {
            id: id.0.clone(),
            peer,
            method: method.clone(),
            path: path.clone(),
            front: crate::metrics::S3,
            operation,
            tenant: None,
            bucket: None,
            status: 0,
        });
        let has_body = has_request_body(req.headers());
        let close_after = empty_body_expecting_continue(req.headers());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut response = match self.gate.check(req.method(), req.uri(), req.headers(), now) {
            Ok(()) => {
                let (parts, body) = req.into_parts();
                let req = hyper::Request::from_parts(parts, flight.request_body(body));
                self.call(req, &id).await
            }
            Err(refusal) => {
                crate::metrics::get().gate_refusals.inc();
                tracing::info!(request_id = %id, %peer, %method, %path, reason = refusal.reason, "refused at the gate");
                refusal_response(&refusal)
            }
        };
        // An error answered before the request body was read leaves the rest of it on the connection: hyper
        // closes it after the response, so say so, or a client may reuse the dead connection for its next
        // request (seen with botocore after an UploadPart refused early).
        let failed = response.status().is_client_error() || response.status().is_server_error();
        if close_after || (has_body && failed) {
            response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        tag_response(&mut response, &id);
        // A refused signature proves nothing about whose key it claimed: no tenant then.
        let authenticated = !matches!(response.status().as_u16(), 401 | 403);
        let tenant = tenant.filter(|_| authenticated);
        if let (Some(auditor), Some(t), Some(actor)) = (&self.auditor, &tenant, access_key) {
            let version = response
                .headers()
                .get("x-amz-version-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or(query_version);
            let facts = super::audit::RequestFacts {
                tenant: t,
                actor,
                op: operation,
                bucket: bucket.as_deref(),
                key: object_key.as_deref(),
                version: version.as_deref(),
                // A read names the subject in the metadata it returns.
                header_subject: header_subject
                    .as_deref()
                    .or_else(|| response.headers().get("x-amz-meta-data-subject").and_then(|v| v.to_str().ok())),
                status: response.status().as_u16(),
                bytes_in,
                bytes_out: super::audit::header_number(response.headers(), "content-length"),
                request_id: &id.0,
            };
            if !super::audit::record_request(auditor, &self.subject_patterns, facts).await {
                response = audit_unavailable_response(&id);
            }
        }
        flight.respond(operation, tenant, bucket, response)
    }

    /// The S3 service, with the body under the progress rule.
    async fn call<B>(&self, req: hyper::Request<B>, id: &RequestId) -> hyper::Response<s3s::Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Unpin + Send + Sync + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let rule = self.body_rule;
        let (parts, body) = req.into_parts();
        let guard = ProgressGuard::new(body, rule);
        let too_slow = guard.tripped();
        let req = hyper::Request::from_parts(parts, s3s::Body::http_body(guard));
        let answer = self.service.call(req).await;
        // The guard's error reaches the client through s3s and a backend as "body stream failed"; say
        // what S3 says instead (and the connection is closed: the rest of the body is not read).
        if too_slow.load(std::sync::atomic::Ordering::Relaxed) {
            return request_timeout_response();
        }
        match answer {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(request_id = %id, error = ?e, "request failed inside the S3 service");
                let mut r = hyper::Response::new(s3s::Body::empty());
                *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
        }
    }
}

/// The object key a request path names (decoded), under path-style or virtual-host-style addressing.
fn object_key_of(raw_path: &str, host_style: bool) -> Option<String> {
    let rest = raw_path.strip_prefix('/')?;
    let key = if host_style { rest } else { rest.split_once('/')?.1 };
    (!key.is_empty()).then(|| percent_encoding::percent_decode_str(key).decode_utf8_lossy().into_owned())
}

/// 503 ServiceUnavailable for a request whose audit record could not be made durable (`audit.mode:
/// required`): the operation may have happened, but it is not acknowledged, and clients retry a 503.
fn audit_unavailable_response(id: &RequestId) -> hyper::Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>ServiceUnavailable</Code><Message>The audit trail \
         is unavailable, so the request is not acknowledged. Retry later.</Message><RequestId>{}</RequestId></Error>",
        id.0
    );
    let mut r = hyper::Response::new(s3s::Body::from(body));
    *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    tag_response(&mut r, id);
    r
}

/// `path` with the data-subject segment of its key replaced, under path-style (`/bucket/key`) and
/// virtual-host-style (`/key`) addressing alike. The path is percent-decoded first (a client may encode
/// `/` or the subject's characters), and control characters are escaped so a key cannot forge log lines.
pub(crate) fn loggable_path(patterns: &[KeyPattern], path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let redacted = redact_path(patterns, &decoded);
    redacted.chars().flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect()
}

fn redact_path(patterns: &[KeyPattern], path: &str) -> String {
    let Some(rest) = path.strip_prefix('/') else { return path.to_owned() };
    let redact = |key: &str| patterns.iter().find_map(|p| p.redact(key));
    if let Some((bucket, key)) = rest.split_once('/') {
        if let Some(k) = redact(key) {
            return format!("/{bucket}/{k}");
        }
    }
    redact(rest).map_or_else(|| path.to_owned(), |k| format!("/{k}"))
}

/// S3's answer to a client that sent its body too slowly.
fn request_timeout_response() -> hyper::Response<s3s::Body> {
    refusal_response(&Refusal {
        status: http::StatusCode::BAD_REQUEST,
        code: "RequestTimeout",
        message: "Your socket connection to the server was not read from or written to within the timeout period."
            .into(),
        reason: "body-too-slow",
    })
}

/// A gate refusal as S3 answers errors: status and an XML `<Error>` document (the request id is added
/// on the way out, like on every error).
fn refusal_response(refusal: &Refusal) -> hyper::Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
        crate::front::xml_text::escape(refusal.code),
        crate::front::xml_text::escape(&refusal.message)
    );
    let mut r = hyper::Response::new(s3s::Body::from(body));
    *r.status_mut() = refusal.status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    r
}

/// A random per-request id: 16 upper-case hex digits, the shape of S3's own `x-amz-request-id`.
/// Random rather than a counter so that ids stay unique across restarts and replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestId(pub(crate) String);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn new_request_id() -> RequestId {
    let mut raw = [0u8; 8];
    // A failing system RNG leaves zeros: an id is for correlating logs, not a secret, so the request goes on.
    if aws_lc_rs::rand::fill(&mut raw).is_err() {
        tracing::warn!("system random generator failed; request id is zero");
    }
    RequestId(hex::encode_upper(raw))
}

/// Adds `x-amz-request-id` to every response and, for an error answer whose body is an S3 `<Error>` document
/// built in memory (what s3s produces), a `<RequestId>` element with the same id. s3s 0.14 has no hook for
/// this: its own errors (signature, parsing) are serialized before our code runs, so it is done on the way out.
/// Streamed bodies are never touched.
fn tag_response(response: &mut hyper::Response<s3s::Body>, id: &RequestId) {
    if let Ok(value) = http::HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(s3s::header::X_AMZ_REQUEST_ID, value);
    }
    if !response.status().is_client_error() && !response.status().is_server_error() {
        return;
    }
    let Some(body) = response.body().bytes() else { return };
    if let Some(tagged) = with_request_id(&body, id) {
        response.headers_mut().remove(http::header::CONTENT_LENGTH);
        *response.body_mut() = s3s::Body::from(tagged);
    }
}

/// The error document `body` with `<RequestId>id</RequestId>` inserted before its closing `</Error>`, or
/// `None` when `body` is not such a document or already names a request id.
fn with_request_id(body: &[u8], id: &RequestId) -> Option<Vec<u8>> {
    const CLOSE: &[u8] = b"</Error>";
    let head = body.trim_ascii_end().strip_suffix(CLOSE)?;
    if head.windows(b"<RequestId>".len()).any(|w| w == b"<RequestId>") {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + id.0.len() + 24);
    out.extend_from_slice(head);
    out.extend_from_slice(b"<RequestId>");
    out.extend_from_slice(id.0.as_bytes());
    out.extend_from_slice(b"</RequestId>");
    out.extend_from_slice(CLOSE);
    Some(out)
}

/// Whether a request carries a body (a non-zero Content-Length, or a chunked transfer).
pub(crate) fn has_request_body(headers: &http::HeaderMap) -> bool {
    let length = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(str::trim);
    headers.contains_key(http::header::TRANSFER_ENCODING) || length.is_some_and(|v| v != "0")
}

/// True for a request with `Expect: 100-continue` and an empty body. botocore (AWS CLI, boto3)
/// sends empty PUTs that way and then mis-reads the next response on the same kept-alive
/// connection when no `100 Continue` came (boto/botocore#3755: the client hangs for its read
/// timeout). Closing such a connection after the response costs one reconnect and avoids the hang.
pub(crate) fn empty_body_expecting_continue(headers: &http::HeaderMap) -> bool {
    let expects_continue = headers
        .get(http::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let empty =
        headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() == "0");
    expects_continue && empty
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> RequestId {
        RequestId(s.to_owned())
    }

    #[test]
    fn logged_paths_hide_subjects() {
        let patterns = [KeyPattern::parse("customers/{subject}/**").unwrap()];
        assert_eq!(loggable_path(&patterns, "/calls/customers/ann/a.wav"), "/calls/customers/{subject}/a.wav");
        assert_eq!(loggable_path(&patterns, "/customers/ann/a.wav"), "/customers/{subject}/a.wav");
        assert_eq!(loggable_path(&patterns, "/calls/other/ann"), "/calls/other/ann");
        assert_eq!(loggable_path(&[], "/calls/customers/ann"), "/calls/customers/ann");
        // Encoded separators and characters are decoded before matching.
        assert_eq!(
            loggable_path(&patterns, "/calls/customers%2Fann%20smith%2Fa.wav"),
            "/calls/customers/{subject}/a.wav"
        );
        // A key cannot start a fake log line.
        assert_eq!(loggable_path(&[], "/b/x%0Aforged"), "/b/x\\nforged");
    }

    #[test]
    fn refusals_are_s3_error_documents() {
        let r = refusal_response(&Refusal {
            status: http::StatusCode::BAD_REQUEST,
            code: "InvalidRequest",
            message: "use <SigV4> & \"s3v4\"".into(),
            reason: "x",
        });
        assert_eq!(r.status(), http::StatusCode::BAD_REQUEST);
        let body = r.body().bytes().unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InvalidRequest</Code>\
             <Message>use &lt;SigV4&gt; &amp; &quot;s3v4&quot;</Message></Error>"
        );
    }

    #[test]
    fn requests_with_bodies_are_recognised() {
        let with = |name: http::header::HeaderName, value: &'static str| {
            let mut h = http::HeaderMap::new();
            h.insert(name, http::HeaderValue::from_static(value));
            h
        };
        assert!(has_request_body(&with(http::header::CONTENT_LENGTH, "5242880")));
        assert!(has_request_body(&with(http::header::TRANSFER_ENCODING, "chunked")));
        assert!(!has_request_body(&with(http::header::CONTENT_LENGTH, "0")));
        assert!(!has_request_body(&http::HeaderMap::new()));
    }

    #[test]
    fn request_ids_are_sixteen_hex_digits_and_differ() {
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.0.len(), 16);
        assert!(a.0.bytes().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn request_id_goes_before_the_closing_error_tag() {
        let body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code></Error>\n";
        let out = with_request_id(body, &id("ABC")).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><RequestId>ABC</RequestId></Error>"
        );
    }

    #[test]
    fn other_bodies_are_left_alone() {
        assert!(with_request_id(b"", &id("A")).is_none());
        assert!(with_request_id(b"<ListBucketResult></ListBucketResult>", &id("A")).is_none());
        assert!(with_request_id(b"<Error><RequestId>X</RequestId></Error>", &id("A")).is_none());
    }

    #[test]
    fn error_response_gets_header_and_body_id() {
        let mut r = hyper::Response::new(s3s::Body::from("<Error><Code>NoSuchKey</Code></Error>".to_owned()));
        *r.status_mut() = http::StatusCode::NOT_FOUND;
        r.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("37"));
        tag_response(&mut r, &id("0123456789ABCDEF"));
        assert_eq!(r.headers()["x-amz-request-id"], "0123456789ABCDEF");
        assert!(r.headers().get(http::header::CONTENT_LENGTH).is_none());
        let body = r.body().bytes().unwrap();
        assert_eq!(&body[..], b"<Error><Code>NoSuchKey</Code><RequestId>0123456789ABCDEF</RequestId></Error>");
    }

    #[test]
    fn success_response_gets_only_the_header() {
        let text = "<Error>not an error, just an object that looks like one</Error>";
        let mut r = hyper::Response::new(s3s::Body::from(text.to_owned()));
        tag_response(&mut r, &id("FEDCBA9876543210"));
        assert_eq!(r.headers()["x-amz-request-id"], "FEDCBA9876543210");
        assert_eq!(&r.body().bytes().unwrap()[..], text.as_bytes());
    }
}
