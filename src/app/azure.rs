//! The Azure listener's request path: request id, the body's progress guard, the Azure front end,
//! metrics and one log line per request (`observe.rs`: tenant, container, operation, method, path with
//! any data subject redacted, status, time, bytes; never the query, which carries SAS signatures, never
//! a header).

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use hyper::body::Incoming;

use super::observe::{InFlight, RequestRecord};
use super::requests::{empty_body_expecting_continue, has_request_body, loggable_path, new_request_id};
use super::AppError;
use crate::config::Settings;
use crate::core::audit::Auditor;
use crate::core::keys::subject::KeyPattern;
use crate::core::service::BlobService;
use crate::front::azure::{Account, Accounts, AzureFront};
use crate::front::body_guard::{ProgressGuard, ProgressRule};

/// Everything an Azure request passes through.
pub struct AzureDoor {
    pub front: AzureFront,
    pub body_rule: ProgressRule,
    pub subject_patterns: Vec<KeyPattern>,
    /// Each account's tenant (for the log line).
    pub tenants_by_account: std::collections::HashMap<String, String>,
    pub auditor: Option<Arc<Auditor>>,
}

impl AzureDoor {
    /// Serves one request from `peer`.
    pub async fn handle(&self, req: hyper::Request<Incoming>, peer: SocketAddr) -> hyper::Response<s3s::Body> {
        let id = new_request_id();
        let method = req.method().clone();
        let host_owned = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
        let host = host_owned.as_deref();
        let (account, container, path) = match self.front.split_account(host, req.uri().path()) {
            Some((account, rest)) => {
                let container = rest.trim_start_matches('/').split('/').next().filter(|c| !c.is_empty());
                let container =
                    container.map(|c| percent_encoding::percent_decode_str(c).decode_utf8_lossy().into_owned());
                let path = format!("/{account}{}", loggable_path(&self.subject_patterns, rest));
                (Some(account.to_owned()), container, path)
            }
            None => (None, None, loggable_path(&self.subject_patterns, req.uri().path())),
        };
        let flight = InFlight::start(RequestRecord {
            id: id.0.clone(),
            peer,
            method,
            path,
            front: crate::metrics::AZURE,
            operation: "Unknown",
            tenant: None,
            bucket: None,
            status: 0,
        });
        let has_body = has_request_body(req.headers());
        let close_after = empty_body_expecting_continue(req.headers());
        let bytes_in = super::audit::header_number(req.headers(), "content-length");
        let caller = if req.headers().contains_key(http::header::AUTHORIZATION) { "key" } else { "sas" };
        let header_subject = req
            .headers()
            .get("x-ms-meta-data_subject")
            .or_else(|| req.headers().get("x-ms-meta-data-subject"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let blob = host_blob(&self.front, host_owned.as_deref(), req.uri().path());
        let (parts, body) = req.into_parts();
        let guard = ProgressGuard::new(flight.request_body(body), self.body_rule);
        let too_slow = guard.tripped();
        let req = hyper::Request::from_parts(parts, s3s::Body::http_body(guard));
        let (mut response, op) = self.front.handle(req, peer, &id.0).await;
        let failed = response.status().is_client_error() || response.status().is_server_error();
        if close_after || (has_body && failed) || too_slow.load(std::sync::atomic::Ordering::Relaxed) {
            response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        let authenticated = !matches!(response.status().as_u16(), 401 | 403);
        let tenant = account.as_ref().and_then(|a| self.tenants_by_account.get(a).cloned()).filter(|_| authenticated);
        if let (Some(auditor), Some(t), Some(a)) = (&self.auditor, &tenant, &account) {
            let facts = super::audit::RequestFacts {
                tenant: t,
                actor: format!("{a}/{caller}"),
                op,
                bucket: container.as_deref(),
                key: blob.as_deref(),
                version: None,
                // A read names the subject in the metadata it returns.
                header_subject: header_subject.as_deref().or_else(|| {
                    let h = response.headers();
                    h.get("x-ms-meta-data_subject")
                        .or_else(|| h.get("x-ms-meta-data-subject"))
                        .and_then(|v| v.to_str().ok())
                }),
                status: response.status().as_u16(),
                bytes_in,
                bytes_out: super::audit::header_number(response.headers(), "content-length"),
                request_id: &id.0,
            };
            if !super::audit::record_request(auditor, &self.subject_patterns, facts).await {
                response = crate::front::azure::audit_unavailable(&id.0);
            }
        }
        flight.respond(op, tenant, container, response)
    }
}

/// The blob a request path names (decoded), for its audit record.
fn host_blob(front: &AzureFront, host: Option<&str>, path: &str) -> Option<String> {
    let (_, rest) = front.split_account(host, path)?;
    let (_, blob) = rest.trim_start_matches('/').split_once('/')?;
    (!blob.is_empty()).then(|| percent_encoding::percent_decode_str(blob).decode_utf8_lossy().replace('\\', "/"))
}

/// The tenants' Azure accounts by name, keys decoded (validated with the config, so a failure here is a bug).
pub fn accounts(settings: &Settings) -> Result<Accounts, AppError> {
    let mut out = Accounts::new();
    for t in &settings.tenants {
        let Some(a) = &t.azure_account else { continue };
        let mut keys = Vec::new();
        for k in &a.keys {
            let key = base64::engine::general_purpose::STANDARD
                .decode(k.expose().trim())
                .map_err(|_| AppError::AzureAccount(a.name.clone()))?;
            keys.push(key);
        }
        out.insert(a.name.clone(), Account { tenant: t.name.clone(), keys });
    }
    Ok(out)
}

/// The Azure request path for `settings`, if an Azure listener is configured.
pub fn door(
    settings: &Settings,
    core: &Arc<BlobService>,
    subject_patterns: Vec<KeyPattern>,
    auditor: Option<Arc<Auditor>>,
) -> Result<Option<AzureDoor>, AppError> {
    if settings.azure_listen.is_none() {
        return Ok(None);
    }
    // Over TLS, a SAS limited to `spr=https` is honoured.
    let https = settings.operations.tls.is_some();
    let front = AzureFront::new(Arc::clone(core), accounts(settings)?, settings.azure_domain.clone(), https);
    let body_rule = ProgressRule {
        window: settings.limits.body_timeout,
        min_bytes_per_second: settings.limits.body_min_bytes_per_second,
    };
    let tenants_by_account = settings
        .tenants
        .iter()
        .filter_map(|t| t.azure_account.as_ref().map(|a| (a.name.clone(), t.name.clone())))
        .collect();
    Ok(Some(AzureDoor { front, body_rule, subject_patterns, tenants_by_account, auditor }))
}
