//! The process's log setup: one compact line per event on stderr, `RUST_LOG` choosing levels, and a
//! fixed cap that no `RUST_LOG` can lift on what other crates may write.
//!
//! Why the cap: the S3 protocol crate (s3s) logs, at debug and even at error level, the signature a
//! request *should* have carried (a signing oracle), `Authorization` headers, presigned query
//! strings, request and response headers (`x-amz-meta-data-subject` values are personal data) and
//! whole XML bodies (object keys that may name a person). blobseal writes its own line for every
//! request, with the key's subject segment redacted, so nothing is lost by silencing s3s entirely.
//! Other dependencies (hyper, rustls, the AWS SDK) log request details only below INFO (the SDK's
//! signer prints canonical requests at debug/trace): they are held at INFO and above.

use tracing::{Level, Metadata};

use crate::config::LogFormat;
use std::sync::OnceLock;

use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;
use tracing_subscriber::{reload, Registry};

/// Crates whose log lines carry secrets or personal data at every level: never written.
const SILENCED: &[&str] = &["s3s"];

/// Whether an event may be written at all, whatever `RUST_LOG` says.
pub fn may_log(meta: &Metadata<'_>) -> bool {
    target_may_log(meta.target(), *meta.level())
}

/// [`may_log`] on a target and a level: blobseal's own targets at any level, the silenced crates at
/// none, every other crate at INFO and above.
pub fn target_may_log(target: &str, level: Level) -> bool {
    let crate_name = target.split("::").next().unwrap_or(target);
    if crate_name == "blobseal" {
        return true;
    }
    if SILENCED.contains(&crate_name) {
        return false;
    }
    // tracing orders levels by verbosity: ERROR < WARN < INFO < DEBUG < TRACE.
    level <= Level::INFO
}

/// Installs the global subscriber: `RUST_LOG` if set (else `default`, e.g. "info"), under the cap,
/// writing text or JSON lines (see `log_json.rs`) on stderr.
pub fn init(default: &str, format: LogFormat) {
    let wanted = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // The filter can be replaced later (`log_level:` at start and on every config reload).
    let (wanted, handle) = reload::Layer::new(wanted);
    let _ = FILTER.set(handle);
    match format {
        LogFormat::Text => {
            // Colour only on a terminal: escape codes in a log file or journal are noise.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).compact();
            tracing_subscriber::registry().with(wanted).with(lines.with_filter(filter_fn(may_log))).init();
        }
        LogFormat::Json => {
            let lines =
                tracing_subscriber::fmt::layer().with_writer(std::io::stderr).event_format(super::log_json::JsonLines);
            tracing_subscriber::registry().with(wanted).with(lines.with_filter(filter_fn(may_log))).init();
        }
    }
}

/// The installed filter, replaceable.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Applies the config's `log_level` (`tracing` filter directives). `RUST_LOG`, when set, wins: the
/// operator chose it by hand for this process. The cap of [`may_log`] holds whatever the level.
pub fn set_level(directives: &str) -> Result<(), String> {
    if std::env::var_os("RUST_LOG").is_some() {
        return Ok(());
    }
    let filter = EnvFilter::builder().parse(directives).map_err(|e| format!("log_level {directives:?}: {e}"))?;
    let handle = FILTER.get().ok_or("logging is not set up")?;
    handle.reload(filter).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobseal_logs_at_every_level() {
        for level in [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE] {
            assert!(target_may_log("blobseal", level));
            assert!(target_may_log("blobseal::app::requests", level));
        }
    }

    #[test]
    fn the_protocol_crate_never_logs() {
        for level in [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE] {
            assert!(!target_may_log("s3s", level));
            assert!(!target_may_log("s3s::ops::signature", level));
            assert!(!target_may_log("s3s::service", level));
        }
        // A crate whose name merely starts the same is not the protocol crate.
        assert!(target_may_log("s3sx", Level::INFO));
    }

    #[test]
    fn other_crates_are_capped_at_info() {
        for target in ["hyper::proto::h1", "aws_sigv4::http_request::sign", "rustls::server", "h2"] {
            assert!(target_may_log(target, Level::ERROR));
            assert!(target_may_log(target, Level::INFO));
            assert!(!target_may_log(target, Level::DEBUG), "{target}");
            assert!(!target_may_log(target, Level::TRACE), "{target}");
        }
    }
}
