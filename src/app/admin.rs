//! The admin listener, apart from the client ports: `GET /livez` (the process runs), `GET /readyz`
//! (start-up done and not draining) and `GET /metrics` (Prometheus text). Meant for the kubelet's
//! probes and a scraper; it answers nothing else and reads no request body.
//!
//! Readiness is a latch, not a dependency check: it turns on once start-up checks passed and off
//! for good when SIGTERM arrives. A KMS or backend outage does not make the pod unready (every
//! request fails closed on its own); pulling all replicas out of a Service at once would not help.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use hyper::body::Incoming;

use crate::core::service::BlobService;

/// Where the process is in its life, as `/readyz` reports it.
#[derive(Debug, Default)]
pub struct Health {
    state: AtomicU8,
}

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

impl Health {
    /// Start-up checks passed: ready for traffic (unless already draining).
    pub fn set_ready(&self) {
        let _ = self.state.compare_exchange(STARTING, READY, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Shutdown began: unready from now on.
    pub fn set_draining(&self) {
        self.state.store(DRAINING, Ordering::SeqCst);
    }

    fn readiness(&self) -> (http::StatusCode, &'static str) {
        match self.state.load(Ordering::SeqCst) {
            READY => (http::StatusCode::OK, "ready\n"),
            DRAINING => (http::StatusCode::SERVICE_UNAVAILABLE, "draining: shutting down\n"),
            _ => (http::StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        }
    }
}

/// What the admin listener serves from.
pub struct AdminDoor {
    pub health: Arc<Health>,
    pub core: Arc<BlobService>,
}

impl AdminDoor {
    pub async fn handle(&self, req: hyper::Request<Incoming>, _peer: SocketAddr) -> hyper::Response<s3s::Body> {
        let get_or_head = req.method() == http::Method::GET || req.method() == http::Method::HEAD;
        let (status, content_type, body) = match (get_or_head, req.uri().path()) {
            (true, "/livez") => (http::StatusCode::OK, TEXT, "ok\n".to_owned()),
            (true, "/readyz") => {
                let (status, text) = self.health.readiness();
                (status, TEXT, text.to_owned())
            }
            (true, "/metrics") => {
                let m = crate::metrics::get();
                m.set_fenced(&self.core.fenced());
                (http::StatusCode::OK, OPENMETRICS, m.render())
            }
            (true, _) => (http::StatusCode::NOT_FOUND, TEXT, "not found: /livez, /readyz, /metrics\n".to_owned()),
            (false, _) => (http::StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed\n".to_owned()),
        };
        let mut r = hyper::Response::new(s3s::Body::from(body));
        *r.status_mut() = status;
        r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
        r.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
        r
    }
}

const TEXT: &str = "text/plain; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_is_a_latch_that_draining_ends_for_good() {
        let h = Health::default();
        assert_eq!(h.readiness().0, http::StatusCode::SERVICE_UNAVAILABLE);
        h.set_ready();
        assert_eq!(h.readiness().0, http::StatusCode::OK);
        h.set_draining();
        assert_eq!(h.readiness().0, http::StatusCode::SERVICE_UNAVAILABLE);
        h.set_ready();
        assert_eq!(h.readiness(), (http::StatusCode::SERVICE_UNAVAILABLE, "draining: shutting down\n"));
    }
}
