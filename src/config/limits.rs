//! The front door's settings: connection limits and timeouts (`limits:`) and each tenant's presigned-URL rules
//! (`max_presign_seconds:`, `sigv2_presigned_urls:`); from YAML and from the embedded default's
//! environment.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::validate::Ctx;
use super::ConfigError;

/// How many connections blobseal holds and how long a client may take. Every bound is finite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// From a connection's start, or the end of the previous response on a kept-alive connection,
    /// to the end of the next request's headers. Bounds slow headers and idle connections alike.
    pub header_timeout: Duration,
    /// A request body must deliver at least `body_min_bytes_per_second × body_timeout` bytes in
    /// every window of this length (or end), else the request fails and the connection closes.
    pub body_timeout: Duration,
    /// See `body_timeout`: the slowest average rate a live client is expected to keep.
    pub body_min_bytes_per_second: u64,
    /// A response write that makes no progress for this long (a client that stopped reading)
    /// ends the connection.
    pub write_timeout: Duration,
}

impl Default for ConnectionLimits {
    /// Generous enough for a slow but live client uploading 5 GiB (1 KiB/s keeps it alive),
    /// tight enough that a stalled or trickling one is gone within a minute.
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(60),
            body_min_bytes_per_second: 1024,
            write_timeout: Duration::from_secs(60),
        }
    }
}

/// A tenant's rules for presigned URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresignSettings {
    /// The longest lifetime a presigned URL may have (SigV4 `X-Amz-Expires`, SigV2 `Expires - now`);
    /// at most S3's 604800 (7 days).
    pub max_seconds: u32,
    /// Accept SigV2 presigned GET/HEAD URLs (boto3's default for us-east-1); never SigV2 writes or
    /// SigV2 header authentication.
    pub sigv2: bool,
}

/// S3's limit on a presigned URL's lifetime: 7 days.
pub const MAX_PRESIGN_SECONDS: u32 = 604_800;

impl Default for PresignSettings {
    fn default() -> Self {
        Self { max_seconds: MAX_PRESIGN_SECONDS, sigv2: true }
    }
}

/// `limits:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_connections: Option<Spanned<u64>>,
    pub header_timeout_seconds: Option<Spanned<u64>>,
    pub body_timeout_seconds: Option<Spanned<u64>>,
    pub body_min_bytes_per_second: Option<Spanned<u64>>,
    pub write_timeout_seconds: Option<Spanned<u64>>,
}

/// Longest accepted timeout: one hour (a longer one is a typo for minutes or not a bound at all).
const MAX_TIMEOUT_SECONDS: u64 = 3600;
/// Most connections one process may hold; each costs a file descriptor and a task.
const MAX_CONNECTIONS: u64 = 1_000_000;

/// Validates `limits:`; absent fields keep their defaults.
pub(super) fn limits(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawLimits>>) -> ConnectionLimits {
    let mut out = ConnectionLimits::default();
    let Some(raw) = raw else { return out };
    let r = &raw.value;
    if let Some(n) = &r.max_connections {
        match check_range("max_connections", n.value, 1, MAX_CONNECTIONS).map(usize::try_from) {
            Ok(Ok(v)) => out.max_connections = v,
            Ok(Err(_)) => cx.error(n.referenced, "max_connections does not fit this platform"),
            Err(m) => cx.error(n.referenced, m),
        }
    }
    let mut timeout = |field: &Option<Spanned<u64>>, name: &str, slot: &mut Duration| {
        if let Some(s) = field {
            match check_range(name, s.value, 1, MAX_TIMEOUT_SECONDS) {
                Ok(v) => *slot = Duration::from_secs(v),
                Err(m) => cx.error(s.referenced, m),
            }
        }
    };
    timeout(&r.header_timeout_seconds, "header_timeout_seconds", &mut out.header_timeout);
    timeout(&r.body_timeout_seconds, "body_timeout_seconds", &mut out.body_timeout);
    timeout(&r.write_timeout_seconds, "write_timeout_seconds", &mut out.write_timeout);
    if let Some(rate) = &r.body_min_bytes_per_second {
        // 0 is allowed: then only a window without any byte fails (a pure progress timeout).
        out.body_min_bytes_per_second = rate.value;
    }
    out
}

/// A tenant's `max_presign_seconds` and `sigv2_presigned_urls`.
pub(super) fn presign(cx: &mut Ctx<'_>, max: Option<&Spanned<u64>>, sigv2: Option<&Spanned<bool>>) -> PresignSettings {
    let mut out = PresignSettings::default();
    if let Some(m) = max {
        match check_range("max_presign_seconds", m.value, 1, u64::from(MAX_PRESIGN_SECONDS)) {
            Ok(v) => out.max_seconds = u32::try_from(v).unwrap_or(MAX_PRESIGN_SECONDS),
            Err(e) => cx.error(m.referenced, format!("{e} (S3's limit is 7 days)")),
        }
    }
    if let Some(s) = sigv2 {
        out.sigv2 = s.value;
    }
    out
}

fn check_range(name: &str, v: u64, min: u64, max: u64) -> Result<u64, String> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{name} must be between {min} and {max}, not {v}"))
    }
}

/// The whole number in environment variable `name`, between `min` and `max`; `None` when unset. Every
/// embedded-default number (limits, shutdown, audit) is read this way.
pub(super) fn env_number(
    var: &dyn Fn(&str) -> Option<String>,
    name: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ConfigError> {
    let Some(text) = var(name) else { return Ok(None) };
    let n: u64 =
        text.trim().parse().map_err(|_| ConfigError::Environment(format!("{name}={text:?} is not a whole number")))?;
    check_range(name, n, min, max).map(Some).map_err(ConfigError::Environment)
}

/// The embedded default's front-door settings from the environment (`BLOBSEAL_MAX_CONNECTIONS`,
/// `BLOBSEAL_HEADER_TIMEOUT_SECONDS`, `BLOBSEAL_BODY_TIMEOUT_SECONDS`, `BLOBSEAL_BODY_MIN_BYTES_PER_SECOND`,
/// `BLOBSEAL_WRITE_TIMEOUT_SECONDS`, `BLOBSEAL_MAX_PRESIGN_SECONDS`,
/// `BLOBSEAL_SIGV2_PRESIGNED_URLS`).
pub(super) fn from_env(
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<(ConnectionLimits, PresignSettings), ConfigError> {
    let number = |name: &str, min: u64, max: u64| env_number(var, name, min, max);
    let mut limits = ConnectionLimits::default();
    if let Some(n) = number("BLOBSEAL_MAX_CONNECTIONS", 1, MAX_CONNECTIONS)? {
        limits.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
    }
    let secs = |name: &str, slot: &mut Duration| -> Result<(), ConfigError> {
        if let Some(n) = number(name, 1, MAX_TIMEOUT_SECONDS)? {
            *slot = Duration::from_secs(n);
        }
        Ok(())
    };
    secs("BLOBSEAL_HEADER_TIMEOUT_SECONDS", &mut limits.header_timeout)?;
    secs("BLOBSEAL_BODY_TIMEOUT_SECONDS", &mut limits.body_timeout)?;
    secs("BLOBSEAL_WRITE_TIMEOUT_SECONDS", &mut limits.write_timeout)?;
    if let Some(n) = number("BLOBSEAL_BODY_MIN_BYTES_PER_SECOND", 0, u64::MAX)? {
        limits.body_min_bytes_per_second = n;
    }
    let mut presign = PresignSettings::default();
    if let Some(n) = number("BLOBSEAL_MAX_PRESIGN_SECONDS", 1, u64::from(MAX_PRESIGN_SECONDS))? {
        presign.max_seconds = u32::try_from(n).unwrap_or(MAX_PRESIGN_SECONDS);
    }
    if let Some(v) = var("BLOBSEAL_SIGV2_PRESIGNED_URLS") {
        presign.sigv2 = match v.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            other => {
                return Err(ConfigError::Environment(format!(
                    "BLOBSEAL_SIGV2_PRESIGNED_URLS={other:?} is not true or false"
                )))
            }
        };
    }
    Ok((limits, presign))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn environment_defaults_and_overrides() {
        let (l, p) = from_env(&env_of(&[])).unwrap();
        assert_eq!((l, p), (ConnectionLimits::default(), PresignSettings::default()));
        let (l, p) = from_env(&env_of(&[
            ("BLOBSEAL_MAX_CONNECTIONS", "64"),
            ("BLOBSEAL_HEADER_TIMEOUT_SECONDS", "2"),
            ("BLOBSEAL_BODY_TIMEOUT_SECONDS", "3"),
            ("BLOBSEAL_BODY_MIN_BYTES_PER_SECOND", "0"),
            ("BLOBSEAL_WRITE_TIMEOUT_SECONDS", "4"),
            ("BLOBSEAL_MAX_PRESIGN_SECONDS", "3600"),
            ("BLOBSEAL_SIGV2_PRESIGNED_URLS", "false"),
        ]))
        .unwrap();
        assert_eq!(l.max_connections, 64);
        assert_eq!(l.header_timeout, Duration::from_secs(2));
        assert_eq!(l.body_timeout, Duration::from_secs(3));
        assert_eq!(l.body_min_bytes_per_second, 0);
        assert_eq!(l.write_timeout, Duration::from_secs(4));
        assert_eq!(p, PresignSettings { max_seconds: 3600, sigv2: false });
    }

    #[test]
    fn environment_values_out_of_range_are_refused() {
        for bad in [
            ("BLOBSEAL_MAX_CONNECTIONS", "0"),
            ("BLOBSEAL_HEADER_TIMEOUT_SECONDS", "0"),
            ("BLOBSEAL_WRITE_TIMEOUT_SECONDS", "99999"),
            ("BLOBSEAL_MAX_PRESIGN_SECONDS", "604801"),
            ("BLOBSEAL_SIGV2_PRESIGNED_URLS", "maybe"),
            ("BLOBSEAL_BODY_TIMEOUT_SECONDS", "ten"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] = Box::leak(Box::new([bad]));
            let err = from_env(&env_of(pairs)).unwrap_err().to_string();
            assert!(err.contains(bad.0), "{err}");
        }
    }
}
