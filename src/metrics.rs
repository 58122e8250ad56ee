//! Process metrics in one `prometheus-client` registry, served as Prometheus text on the admin
//! listener (`GET /metrics`), never on a client port.
//!
//! Labels are bounded by construction: front end, operation (a fixed list per front end), status
//! class, outcome, backend and tenant names (bounded by the config). Never a key, a data subject,
//! an access key or a bucket.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// OpenTelemetry's default buckets for `http.server.request.duration` (seconds).
const OTEL_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

fn otel_histogram() -> Histogram {
    Histogram::new(OTEL_BUCKETS)
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Which client listener a request came in on (the `front` label): `s3` or `azure`.
pub type Front = &'static str;
pub const S3: Front = "s3";
pub const AZURE: Front = "azure";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrontLabels {
    pub front: Front,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub front: Front,
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub front: Front,
    pub operation: &'static str,
    /// `2xx`, `3xx`, `4xx`, `5xx`.
    pub status_class: &'static str,
}

/// A call to a backend or a key provider: which one, what, and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The backend's or key provider's name in the config.
    pub target: String,
    pub call: &'static str,
    /// `ok`, `answer` (a backend's ordinary negative answer, such as no such key) or `error`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigLabels {
    pub sha256: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// Every metric blobseal exports.
pub struct Metrics {
    registry: Registry,
    pub request_duration: Histograms<OperationLabels>,
    pub time_to_first_byte: Histograms<OperationLabels>,
    pub requests: Family<RequestLabels, Counter>,
    pub in_flight: Family<FrontLabels, Gauge>,
    pub bytes_in: Family<FrontLabels, Counter>,
    pub bytes_out: Family<FrontLabels, Counter>,
    pub backend_calls: Family<CallLabels, Counter>,
    pub backend_call_duration: Histograms<CallLabels>,
    pub key_provider_calls: Family<CallLabels, Counter>,
    pub key_provider_call_duration: Histograms<CallLabels>,
    /// `kind`: `hit` or `miss`.
    pub key_cache: Family<KindLabels, Counter>,
    /// `kind`: what failed to authenticate (see `core::error`).
    pub integrity_failures: Family<KindLabels, Counter>,
    pub gate_refusals: Counter,
    pub slow_bodies: Counter,
    pub residency_refusals: Counter,
    pub fenced_requests: Counter,
    pub drift_checks: Counter,
    pub drifts_found: Counter,
    pub sweep_runs: Counter,
    pub sweep_deleted_versions: Counter,
    pub sweep_kept_locked: Counter,
    pub backup_copies: Counter,
    pub backup_failures: Counter,
    pub backend_fenced: Family<BackendLabels, Gauge>,
    pub build_info: Family<BuildLabels, Gauge>,
    pub config_info: Family<ConfigLabels, Gauge>,
    pub config_reloads: Family<OutcomeLabels, Counter>,
    /// Audit records by outcome: `written`, `dropped` (best-effort, buffer full or undeliverable).
    pub audit_records: Family<OutcomeLabels, Counter>,
    /// Failed writes of an audit segment (retried; `required` requests answered 503).
    pub audit_write_failures: Counter,
    /// Seconds since the epoch at which the serving certificate expires.
    pub tls_cert_expiry: Gauge<i64>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut r = Registry::with_prefix("blobseal");
        let hist = || -> Histograms<OperationLabels> { Family::new_with_constructor(otel_histogram) };
        let call_hist = || -> Histograms<CallLabels> { Family::new_with_constructor(otel_histogram) };
        let m = Metrics {
            request_duration: hist(),
            time_to_first_byte: hist(),
            requests: Family::default(),
            in_flight: Family::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            backend_calls: Family::default(),
            backend_call_duration: call_hist(),
            key_provider_calls: Family::default(),
            key_provider_call_duration: call_hist(),
            key_cache: Family::default(),
            integrity_failures: Family::default(),
            gate_refusals: Counter::default(),
            slow_bodies: Counter::default(),
            residency_refusals: Counter::default(),
            fenced_requests: Counter::default(),
            drift_checks: Counter::default(),
            drifts_found: Counter::default(),
            sweep_runs: Counter::default(),
            sweep_deleted_versions: Counter::default(),
            sweep_kept_locked: Counter::default(),
            backup_copies: Counter::default(),
            backup_failures: Counter::default(),
            backend_fenced: Family::default(),
            build_info: Family::default(),
            config_info: Family::default(),
            config_reloads: Family::default(),
            audit_records: Family::default(),
            audit_write_failures: Counter::default(),
            tls_cert_expiry: Gauge::default(),
            registry: Registry::default(),
        };
        let seconds = Unit::Seconds;
        r.register_with_unit(
            "http_request_duration",
            "time from a request's head to the end of its response body",
            seconds.clone(),
            m.request_duration.clone(),
        );
        r.register_with_unit(
            "http_time_to_first_byte",
            "time from a request's head to its response head",
            seconds.clone(),
            m.time_to_first_byte.clone(),
        );
        r.register("http_requests", "requests answered, by operation and status class", m.requests.clone());
        r.register("http_requests_in_flight", "requests whose response has not ended", m.in_flight.clone());
        r.register("http_request_body_bytes", "request body bytes read from clients", m.bytes_in.clone());
        r.register("http_response_body_bytes", "response body bytes sent to clients", m.bytes_out.clone());
        r.register("backend_calls", "calls to storage backends, by outcome", m.backend_calls.clone());
        r.register_with_unit(
            "backend_call_duration",
            "latency of storage backend calls",
            seconds.clone(),
            m.backend_call_duration.clone(),
        );
        r.register(
            "key_provider_calls",
            "calls to key providers (KMS, HSM, keyring), by outcome",
            m.key_provider_calls.clone(),
        );
        r.register_with_unit(
            "key_provider_call_duration",
            "latency of key provider calls",
            seconds,
            m.key_provider_call_duration.clone(),
        );
        r.register("key_cache_lookups", "lifetime-key cache lookups, by hit or miss", m.key_cache.clone());
        r.register(
            "integrity_failures",
            "stored data that failed authentication, by kind",
            m.integrity_failures.clone(),
        );
        r.register("gate_refusals", "requests refused at the gate, before authentication", m.gate_refusals.clone());
        r.register("slow_bodies", "request bodies failed for arriving too slowly", m.slow_bodies.clone());
        r.register("residency_refusals", "requests refused by a residency rule", m.residency_refusals.clone());
        r.register("fenced_requests", "requests refused because their backend is fenced", m.fenced_requests.clone());
        r.register("drift_checks", "backend region checks run", m.drift_checks.clone());
        r.register("drifts_found", "bucket regions found different from config", m.drifts_found.clone());
        r.register("sweep_runs", "sweeper runs", m.sweep_runs.clone());
        r.register(
            "sweep_deleted_versions",
            "object versions deleted by the sweeper",
            m.sweep_deleted_versions.clone(),
        );
        r.register(
            "sweep_kept_locked",
            "expired versions kept because of Object Lock or legal hold",
            m.sweep_kept_locked.clone(),
        );
        r.register("backup_copies", "backup copies written on write", m.backup_copies.clone());
        r.register("backup_failures", "backup copies that failed on write", m.backup_failures.clone());
        r.register("backend_fenced", "1 while a backend is fenced off (its region drifted)", m.backend_fenced.clone());
        r.register("build_info", "the running build (value 1)", m.build_info.clone());
        r.register("config_info", "SHA-256 of the config in use (value 1)", m.config_info.clone());
        r.register("config_reloads", "config reloads, by outcome", m.config_reloads.clone());
        r.register("audit_records", "audit records, by outcome (written, dropped)", m.audit_records.clone());
        r.register(
            "audit_write_failures",
            "audit segments that could not be written (retried)",
            m.audit_write_failures.clone(),
        );
        r.register(
            "tls_cert_expiry_timestamp_seconds",
            "when the serving TLS certificate expires (Unix time)",
            m.tls_cert_expiry.clone(),
        );
        m.build_info.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        Metrics { registry: r, ..m }
    }

    /// Records which config is in use (the previous one's series goes away).
    /// Counts one config reload by its outcome (`applied`, `unchanged`, `invalid`, `refused`, `failed`).
    pub fn config_reloaded(&self, outcome: &'static str) {
        self.config_reloads.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn set_config(&self, sha256_hex: &str) {
        self.config_info.clear();
        self.config_info.get_or_create(&ConfigLabels { sha256: sha256_hex.to_owned() }).set(1);
    }

    /// Replaces the set of fenced backends.
    pub fn set_fenced(&self, fenced: &[(String, String)]) {
        self.backend_fenced.clear();
        for (backend, _) in fenced {
            self.backend_fenced.get_or_create(&BackendLabels { backend: backend.clone() }).set(1);
        }
    }

    /// Counts one call to a backend or key provider (`family` and `durations` are the pair of either).
    pub fn observe_call(
        family: &Family<CallLabels, Counter>,
        durations: &Histograms<CallLabels>,
        labels: &CallLabels,
        took: Duration,
    ) {
        family.get_or_create(labels).inc();
        durations.get_or_create(labels).observe(took.as_secs_f64());
    }

    /// Counts an integrity failure of `kind`.
    pub fn integrity_failure(&self, kind: &'static str) {
        self.integrity_failures.get_or_create(&KindLabels { kind }).inc();
    }

    /// The metrics as Prometheus text (OpenMetrics encoding, which also carries the histograms).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Encoding into a String cannot fail on I/O; an error here means a bug in a label encoder.
            tracing::error!("cannot encode the metrics");
        }
        out
    }
}

/// The status class label of an HTTP status.
pub fn status_class(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_prefixed_names_histogram_buckets_and_build_info() {
        let m = Metrics::new();
        m.gate_refusals.inc();
        let labels = OperationLabels { front: S3, operation: "GetObject" };
        m.request_duration.get_or_create(&labels).observe(0.02);
        m.set_config("ab12");
        m.set_config("cd34");
        m.set_fenced(&[("s3-eu".to_owned(), "drift".to_owned())]);
        let text = m.render();
        assert!(text.contains("blobseal_gate_refusals_total 1"), "{text}");
        assert!(
            text.contains(
                "blobseal_http_request_duration_seconds_bucket{le=\"0.025\",front=\"s3\",operation=\"GetObject\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!("blobseal_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))),
            "{text}"
        );
        assert!(text.contains("blobseal_config_info{sha256=\"cd34\"} 1") && !text.contains("ab12"), "{text}");
        assert!(text.contains("blobseal_backend_fenced{backend=\"s3-eu\"} 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(http::StatusCode::OK), "2xx");
        assert_eq!(status_class(http::StatusCode::NOT_MODIFIED), "3xx");
        assert_eq!(status_class(http::StatusCode::FORBIDDEN), "4xx");
        assert_eq!(status_class(http::StatusCode::SERVICE_UNAVAILABLE), "5xx");
    }
}
