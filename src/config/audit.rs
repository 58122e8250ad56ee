//! `audit:`: the tamper-evident audit trail (docs/DESIGN.md, "Audit trail"): whether a request waits
//! for its record, where the signing key is, and how records are grouped; from YAML and from the
//! embedded default's environment (`BLOBSEAL_AUDIT_MODE`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::validate::Ctx;
use super::yaml::Str;
use super::ConfigError;

/// Whether a request waits for its audit record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuditMode {
    /// Records are written in the background (grouped every `flush`); a failing sink is logged and counted.
    #[default]
    BestEffort,
    /// A request is answered only once its record is durable; a failing sink answers 503.
    Required,
}

impl AuditMode {
    pub fn parse(v: &str) -> Result<Self, String> {
        match v {
            "best-effort" => Ok(AuditMode::BestEffort),
            "required" => Ok(AuditMode::Required),
            other => Err(format!("unknown audit mode {other:?} (expected best-effort or required)")),
        }
    }
}

/// The audit trail's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditSettings {
    pub mode: AuditMode,
    /// Ed25519 private key (PKCS#8, base64 text), created on first start if missing. Every replica of a
    /// deployment uses the same one (a Kubernetes Secret): it signs segments and heads, and keys the
    /// hashes that stand for data subjects.
    pub signing_key_file: PathBuf,
    /// How long records wait to be written together (best-effort); a required record is written at once.
    pub flush: Duration,
    /// How often a replica tries to roll every writer's latest segment up into the tenant's signed head.
    pub rollup: Duration,
}

impl AuditSettings {
    pub fn with_key(signing_key_file: PathBuf) -> Self {
        Self {
            mode: AuditMode::BestEffort,
            signing_key_file,
            flush: Duration::from_millis(DEFAULT_FLUSH_MS),
            rollup: Duration::from_secs(DEFAULT_ROLLUP_SECONDS),
        }
    }
}

const DEFAULT_FLUSH_MS: u64 = 200;
const DEFAULT_ROLLUP_SECONDS: u64 = 60;

/// `audit: { mode, signing_key_file, flush_ms, rollup_seconds }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    pub mode: Option<Str>,
    pub signing_key_file: Str,
    pub flush_ms: Option<Spanned<u64>>,
    pub rollup_seconds: Option<Spanned<u64>>,
}

/// Validates `audit:`; `None` when absent or invalid (the problem is recorded in `cx`).
pub(super) fn audit(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawAudit>>) -> Option<AuditSettings> {
    let raw = raw?;
    let key =
        cx.checked(&raw.value.signing_key_file, "audit.signing_key_file", |v| !v.is_empty(), "must not be empty")?;
    let mut out = AuditSettings::with_key(PathBuf::from(key));
    if let Some(m) = &raw.value.mode {
        if let Some(v) = cx.text(m) {
            match AuditMode::parse(&v) {
                Ok(mode) => out.mode = mode,
                Err(e) => cx.error(m.referenced, e),
            }
        }
    }
    if let Some(ms) = &raw.value.flush_ms {
        if (1..=5000).contains(&ms.value) {
            out.flush = Duration::from_millis(ms.value);
        } else {
            cx.error(ms.referenced, format!("audit.flush_ms must be between 1 and 5000, not {}", ms.value));
        }
    }
    if let Some(s) = &raw.value.rollup_seconds {
        if (1..=86_400).contains(&s.value) {
            out.rollup = Duration::from_secs(s.value);
        } else {
            cx.error(s.referenced, format!("audit.rollup_seconds must be between 1 and 86400, not {}", s.value));
        }
    }
    Some(out)
}

/// The embedded default's audit trail: on (best-effort) with its key in the data dir, unless
/// `BLOBSEAL_AUDIT_MODE=off`; `BLOBSEAL_AUDIT_MODE=required` makes requests wait for their records.
/// `BLOBSEAL_AUDIT_FLUSH_MS` and `BLOBSEAL_AUDIT_ROLLUP_SECONDS` as in YAML.
pub(super) fn from_env(
    var: &dyn Fn(&str) -> Option<String>,
    data: &Path,
) -> Result<Option<AuditSettings>, ConfigError> {
    let env_err = |m: String| ConfigError::Environment(m);
    let mut out = AuditSettings::with_key(data.join("audit-signing.key"));
    match var("BLOBSEAL_AUDIT_MODE").as_deref().map(str::trim) {
        None => {}
        Some("off") => return Ok(None),
        Some(v) => out.mode = AuditMode::parse(v).map_err(|m| env_err(format!("BLOBSEAL_AUDIT_MODE: {m} (or off)")))?,
    }
    let number = |name: &str, min: u64, max: u64| super::limits::env_number(var, name, min, max);
    if let Some(ms) = number("BLOBSEAL_AUDIT_FLUSH_MS", 1, 5000)? {
        out.flush = Duration::from_millis(ms);
    }
    if let Some(s) = number("BLOBSEAL_AUDIT_ROLLUP_SECONDS", 1, 86_400)? {
        out.rollup = Duration::from_secs(s);
    }
    Ok(Some(out))
}
