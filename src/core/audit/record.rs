//! One audit record: a request or an admin action, as stored (one JSON object per line) and exported.

use serde::{Deserialize, Serialize};

/// What happened, who did it, to what, with which outcome. No secret and no data subject in clear:
/// `key` has a subject segment replaced by `{subject:<hash>}` and `subject` is that hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// RFC 3339 with milliseconds, UTC.
    pub time: String,
    pub tenant: String,
    /// The access key id (S3), `<account>/key` or `<account>/sas` (Azure), or the operator of an admin
    /// command.
    pub actor: String,
    /// The operation (`PutObject`, `GetBlob`, ...; admin actions: `admin:shred`, `admin:sweep`, ...).
    pub op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Keyed hash of the data subject the request named, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// HTTP status (admin actions: 0 on success, 1 on failure).
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The request's `x-amz-request-id` / `x-ms-request-id` (admin actions: a generated id).
    pub request_id: String,
    /// The SHA-256 of the receipt or summary an admin action produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_sha256: Option<String>,
}

/// Now, as records write it.
pub fn now_text() -> String {
    let now = time::OffsetDateTime::now_utc();
    let ms = now.replace_nanosecond(now.millisecond() as u32 * 1_000_000).unwrap_or(now);
    ms.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
