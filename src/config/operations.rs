//! How the process is run, as opposed to what it stores: the admin listener (`admin_listen:`), the
//! log format (`log_format:`), TLS on the client listeners (`tls:`) and the shutdown drain
//! (`shutdown:`); from YAML and from the embedded default's environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::validate::Ctx;
use super::yaml::Str;
use super::ConfigError;

/// How log lines are written on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One compact human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line with a stable field set (docs/DESIGN.md, "Logs").
    Json,
}

impl LogFormat {
    /// `text` or `json`, as written in the config.
    pub fn parse(v: &str) -> Result<Self, String> {
        match v {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log_format {other:?} (expected json or text)")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// TLS on the S3 and Azure listeners. The files are read at start and again whenever they change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the server certificate, then its chain.
    pub cert_file: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM: CAs whose client certificates are required (mutual TLS); `None`: no client certificate.
    pub client_ca_file: Option<PathBuf>,
}

/// What SIGTERM does: readiness goes 503 at once, requests are served for `drain_delay` (so load
/// balancers and Kubernetes endpoints stop sending new ones), then listeners close and open
/// requests get up to `timeout` to finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownSettings {
    pub drain_delay: Duration,
    pub timeout: Duration,
}

impl Default for ShutdownSettings {
    /// No delay (nothing routes to a process started by hand); 30 s for open requests.
    fn default() -> Self {
        Self { drain_delay: Duration::ZERO, timeout: Duration::from_secs(30) }
    }
}

/// The operations part of [`super::Settings`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperationsSettings {
    /// The admin listener (`/livez`, `/readyz`, `/metrics`); `None`: none.
    pub admin_listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    /// Which log lines are written (`tracing` filter directives, e.g. `info` or `info,blobseal=debug`);
    /// `None`: `RUST_LOG`, else `info`. Applied again on a config reload.
    pub log_level: Option<String>,
    pub tls: Option<TlsSettings>,
    pub shutdown: ShutdownSettings,
}

/// The log format to start logging with, before the config is validated (so that every line,
/// start-up and config errors included, has the same format): the file's `log_format:` if it has a
/// valid one, else `BLOBSEAL_LOG_FORMAT`, else text. Validation later reports a bad value.
pub fn early_log_format(file: Option<&std::path::Path>, env: &dyn Fn(&str) -> Option<String>) -> LogFormat {
    #[derive(Deserialize)]
    struct OnlyLogFormat {
        log_format: Option<String>,
    }
    let from_file = file
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| serde_saphyr::from_str::<OnlyLogFormat>(&text).ok())
        .and_then(|c| c.log_format)
        .and_then(|v| super::interpolate(&v, env).ok())
        .and_then(|v| LogFormat::parse(&v).ok());
    let from_env = || env("BLOBSEAL_LOG_FORMAT").and_then(|v| LogFormat::parse(v.trim()).ok());
    from_file.or_else(from_env).unwrap_or_default()
}

/// `tls: { cert_file, key_file, client_ca_file }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub cert_file: Str,
    pub key_file: Str,
    pub client_ca_file: Option<Str>,
}

/// `shutdown: { drain_delay_seconds, timeout_seconds }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShutdown {
    pub drain_delay_seconds: Option<Spanned<u64>>,
    pub timeout_seconds: Option<Spanned<u64>>,
}

/// Longest drain delay: Kubernetes' endpoint propagation takes seconds, not minutes.
const MAX_DRAIN_DELAY_SECONDS: u64 = 300;
/// Longest time open requests may take after the drain (a 5 GiB download at a slow client's pace).
const MAX_SHUTDOWN_TIMEOUT_SECONDS: u64 = 3600;

/// The YAML fields of this part, as the top-level document holds them.
pub(super) struct RawOperations<'a> {
    pub admin_listen: Option<&'a Str>,
    pub log_format: Option<&'a Str>,
    pub log_level: Option<&'a Str>,
    pub tls: Option<&'a Spanned<RawTls>>,
    pub shutdown: Option<&'a Spanned<RawShutdown>>,
    pub metrics_on_s3_port: Option<&'a Str>,
}

/// Validates the operations fields; every problem is recorded in `cx`.
pub(super) fn operations(cx: &mut Ctx<'_>, raw: RawOperations<'_>) -> OperationsSettings {
    let mut out = OperationsSettings::default();
    if let Some(s) = raw.metrics_on_s3_port {
        cx.error(s.referenced, REMOVED_METRICS_ON_S3_PORT);
    }
    if let Some(s) = raw.admin_listen {
        if let Some(v) = cx.text(s) {
            match v.parse::<SocketAddr>() {
                Ok(addr) => out.admin_listen = Some(addr),
                Err(_) => cx.error(
                    s.referenced,
                    format!("invalid admin_listen address {v:?}: expected IP:PORT, e.g. 127.0.0.1:9901"),
                ),
            }
        }
    }
    if let Some(s) = raw.log_format {
        if let Some(v) = cx.text(s) {
            match LogFormat::parse(&v) {
                Ok(f) => out.log_format = f,
                Err(m) => cx.error(s.referenced, m),
            }
        }
    }
    if let Some(s) = raw.log_level {
        if let Some(v) = cx.text(s) {
            match check_log_level(&v) {
                Ok(()) => out.log_level = Some(v),
                Err(m) => cx.error(s.referenced, m),
            }
        }
    }
    if let Some(t) = raw.tls {
        let mut path =
            |s: &Str, what: &str| cx.checked(s, what, |v| !v.is_empty(), "must not be empty").map(PathBuf::from);
        let cert = path(&t.value.cert_file, "tls.cert_file");
        let key = path(&t.value.key_file, "tls.key_file");
        let ca = t.value.client_ca_file.as_ref().map(|s| path(s, "tls.client_ca_file"));
        if let (Some(cert_file), Some(key_file)) = (cert, key) {
            if let Some(client_ca_file) = ca.unwrap_or(Some(PathBuf::new())) {
                let client_ca_file = Some(client_ca_file).filter(|p| !p.as_os_str().is_empty());
                out.tls = Some(TlsSettings { cert_file, key_file, client_ca_file });
            }
        }
    }
    if let Some(s) = raw.shutdown {
        let mut seconds = |field: &Option<Spanned<u64>>, name: &str, min: u64, max: u64, slot: &mut Duration| {
            if let Some(n) = field {
                if (min..=max).contains(&n.value) {
                    *slot = Duration::from_secs(n.value);
                } else {
                    cx.error(n.referenced, format!("shutdown.{name} must be between {min} and {max}, not {}", n.value));
                }
            }
        };
        seconds(
            &s.value.drain_delay_seconds,
            "drain_delay_seconds",
            0,
            MAX_DRAIN_DELAY_SECONDS,
            &mut out.shutdown.drain_delay,
        );
        seconds(
            &s.value.timeout_seconds,
            "timeout_seconds",
            1,
            MAX_SHUTDOWN_TIMEOUT_SECONDS,
            &mut out.shutdown.timeout,
        );
    }
    out
}

/// Whether `v` is a valid `tracing` filter (`info`, `warn,blobseal=debug`, ...).
pub fn check_log_level(v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        return Err("log_level must not be empty (e.g. info, or info,blobseal=debug)".to_owned());
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(v)
        .map(|_| ())
        .map_err(|e| format!("invalid log_level {v:?}: {e} (e.g. info, or info,blobseal=debug)"))
}

const REMOVED_METRICS_ON_S3_PORT: &str =
    "metrics_on_s3_port was removed: metrics are served only on the admin listener (`admin_listen: IP:PORT`, GET /metrics)";

/// The embedded default's operations settings: `BLOBSEAL_ADMIN_LISTEN`, `BLOBSEAL_LOG_FORMAT`,
/// `BLOBSEAL_TLS_CERT_FILE` + `BLOBSEAL_TLS_KEY_FILE` (+ `BLOBSEAL_TLS_CLIENT_CA_FILE`),
/// `BLOBSEAL_DRAIN_DELAY_SECONDS`, `BLOBSEAL_SHUTDOWN_TIMEOUT_SECONDS`.
pub(super) fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<OperationsSettings, ConfigError> {
    let env_err = |m: String| ConfigError::Environment(m);
    let mut out = OperationsSettings::default();
    if var("BLOBSEAL_METRICS_ON_S3_PORT").is_some() {
        return Err(env_err(format!(
            "BLOBSEAL_METRICS_ON_S3_PORT: {REMOVED_METRICS_ON_S3_PORT} (BLOBSEAL_ADMIN_LISTEN)"
        )));
    }
    if let Some(v) = var("BLOBSEAL_ADMIN_LISTEN") {
        out.admin_listen = Some(
            v.trim().parse().map_err(|_| env_err(format!("BLOBSEAL_ADMIN_LISTEN={v:?} is not an IP:PORT address")))?,
        );
    }
    if let Some(v) = var("BLOBSEAL_LOG_LEVEL") {
        check_log_level(v.trim()).map_err(|m| env_err(format!("BLOBSEAL_LOG_LEVEL: {m}")))?;
        out.log_level = Some(v.trim().to_owned());
    }
    if let Some(v) = var("BLOBSEAL_LOG_FORMAT") {
        out.log_format = LogFormat::parse(v.trim()).map_err(|m| env_err(format!("BLOBSEAL_LOG_FORMAT: {m}")))?;
    }
    out.tls = match (var("BLOBSEAL_TLS_CERT_FILE"), var("BLOBSEAL_TLS_KEY_FILE")) {
        (Some(cert), Some(key)) => Some(TlsSettings {
            cert_file: cert.into(),
            key_file: key.into(),
            client_ca_file: var("BLOBSEAL_TLS_CLIENT_CA_FILE").map(PathBuf::from),
        }),
        (None, None) if var("BLOBSEAL_TLS_CLIENT_CA_FILE").is_some() => {
            return Err(env_err(
                "BLOBSEAL_TLS_CLIENT_CA_FILE needs BLOBSEAL_TLS_CERT_FILE and BLOBSEAL_TLS_KEY_FILE".into(),
            ))
        }
        (None, None) => None,
        _ => return Err(env_err("give both BLOBSEAL_TLS_CERT_FILE and BLOBSEAL_TLS_KEY_FILE, or neither".into())),
    };
    let seconds = |name: &str, min: u64, max: u64| {
        super::limits::env_number(var, name, min, max).map(|n| n.map(Duration::from_secs))
    };
    if let Some(d) = seconds("BLOBSEAL_DRAIN_DELAY_SECONDS", 0, MAX_DRAIN_DELAY_SECONDS)? {
        out.shutdown.drain_delay = d;
    }
    if let Some(d) = seconds("BLOBSEAL_SHUTDOWN_TIMEOUT_SECONDS", 1, MAX_SHUTDOWN_TIMEOUT_SECONDS)? {
        out.shutdown.timeout = d;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn environment_defaults_and_overrides() {
        assert_eq!(from_env(&env_of(&[])).unwrap(), OperationsSettings::default());
        let s = from_env(&env_of(&[
            ("BLOBSEAL_ADMIN_LISTEN", "127.0.0.1:9901"),
            ("BLOBSEAL_LOG_FORMAT", "json"),
            ("BLOBSEAL_TLS_CERT_FILE", "/tls/tls.crt"),
            ("BLOBSEAL_TLS_KEY_FILE", "/tls/tls.key"),
            ("BLOBSEAL_DRAIN_DELAY_SECONDS", "5"),
            ("BLOBSEAL_SHUTDOWN_TIMEOUT_SECONDS", "20"),
        ]))
        .unwrap();
        assert_eq!(s.admin_listen, Some("127.0.0.1:9901".parse().unwrap()));
        assert_eq!(s.log_format, LogFormat::Json);
        let tls = s.tls.unwrap();
        assert_eq!((tls.cert_file.to_str(), tls.key_file.to_str()), (Some("/tls/tls.crt"), Some("/tls/tls.key")));
        assert_eq!(tls.client_ca_file, None);
        assert_eq!(
            s.shutdown,
            ShutdownSettings { drain_delay: Duration::from_secs(5), timeout: Duration::from_secs(20) }
        );
    }

    #[test]
    fn environment_mistakes_are_refused_by_name() {
        for bad in [
            ("BLOBSEAL_ADMIN_LISTEN", "9901"),
            ("BLOBSEAL_LOG_FORMAT", "yaml"),
            ("BLOBSEAL_TLS_CERT_FILE", "/only/the/cert"),
            ("BLOBSEAL_DRAIN_DELAY_SECONDS", "301"),
            ("BLOBSEAL_SHUTDOWN_TIMEOUT_SECONDS", "0"),
            ("BLOBSEAL_METRICS_ON_S3_PORT", "loopback"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] = Box::leak(Box::new([bad]));
            let err = from_env(&env_of(pairs)).unwrap_err().to_string();
            assert!(err.contains(bad.0), "{err}");
        }
    }
}
