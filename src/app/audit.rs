//! The audit trail wired to the config and the request paths: the signing key and each tenant's trail
//! from settings, and one record per authenticated request, written when its response head is ready
//! (in `required` mode the response waits for the record; a failing trail answers 503).

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::audit::AuditMode as ConfigMode;
use crate::config::Settings;
use crate::core::audit::{AuditKey, AuditMode, AuditRecord, Auditor, AuditorSettings, TrailStore};
use crate::core::keys::subject::KeyPattern;

use super::{AppError, Opened};

/// Each tenant's trail: its audit bucket on its key store's backend.
pub fn stores(settings: &Settings, opened: &Opened) -> HashMap<String, TrailStore> {
    let mut out = HashMap::new();
    for t in &settings.tenants {
        if let Some((_, backend)) = opened.backends.iter().find(|(name, _)| *name == t.key_store.backend) {
            out.insert(t.name.clone(), TrailStore::bucket(Arc::clone(backend), t.key_store.audit_bucket.clone()));
        }
    }
    out
}

/// The signing key of `settings`' trail, if there is one.
pub fn signing_key(settings: &Settings) -> Result<Option<Arc<AuditKey>>, AppError> {
    let Some(a) = &settings.audit else { return Ok(None) };
    let key = AuditKey::load_or_create(&a.signing_key_file).map_err(|e| AppError::Audit(e.to_string()))?;
    Ok(Some(Arc::new(key)))
}

/// Starts the process's auditor (a writer task and the head roll-ups), if the config has a trail.
pub fn start(settings: &Settings, opened: &Opened) -> Result<Option<Arc<Auditor>>, AppError> {
    let Some(a) = &settings.audit else { return Ok(None) };
    let Some(key) = signing_key(settings)? else { return Ok(None) };
    let mode = match a.mode {
        ConfigMode::BestEffort => AuditMode::BestEffort,
        ConfigMode::Required => AuditMode::Required,
    };
    let auditor =
        Auditor::start(key, AuditorSettings { mode, flush: a.flush, rollup: a.rollup }, stores(settings, opened));
    tracing::info!(writer = auditor.writer(), mode = ?mode, "audit trail on");
    Ok(Some(auditor))
}

/// What the request path knows about a request, for its record.
pub struct RequestFacts<'a> {
    pub tenant: &'a str,
    pub actor: String,
    pub op: &'a str,
    pub bucket: Option<&'a str>,
    /// The object key or blob name, decoded.
    pub key: Option<&'a str>,
    pub version: Option<&'a str>,
    /// A subject named by a header (`x-amz-meta-data-subject`, `x-ms-meta-data_subject`).
    pub header_subject: Option<&'a str>,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub request_id: &'a str,
}

/// The record of a request: a subject in the key (by the tenants' key patterns) or in a header appears
/// only as its keyed hash, in `subject` and in place of the key's subject segment.
pub fn request_record(auditor: &Auditor, patterns: &[KeyPattern], f: RequestFacts<'_>) -> AuditRecord {
    let mut subject = f.header_subject.map(|s| auditor.subject_hash(f.tenant, s));
    let key = f.key.map(|key| {
        let found = patterns.iter().find_map(|p| p.subject_of(key));
        match found {
            Some(s) => {
                let hash = auditor.subject_hash(f.tenant, s);
                let start = (s.as_ptr() as usize).saturating_sub(key.as_ptr() as usize);
                let end = start.saturating_add(s.len());
                let replaced = match (key.get(..start), key.get(end..)) {
                    (Some(before), Some(after)) => format!("{before}{{subject:{hash}}}{after}"),
                    _ => format!("{{subject:{hash}}}"),
                };
                subject.get_or_insert(hash);
                replaced
            }
            None => key.to_owned(),
        }
    });
    AuditRecord {
        time: crate::core::audit::record::now_text(),
        tenant: f.tenant.to_owned(),
        actor: f.actor,
        op: f.op.to_owned(),
        bucket: f.bucket.map(str::to_owned),
        key,
        version: f.version.map(str::to_owned),
        subject,
        status: f.status,
        bytes_in: f.bytes_in,
        bytes_out: f.bytes_out,
        request_id: f.request_id.to_owned(),
        receipt_sha256: None,
    }
}

/// Records a request; `false` when the record is not durable in `required` mode (logged here: the caller
/// answers 503 instead of the response it has).
pub async fn record_request(auditor: &Auditor, patterns: &[KeyPattern], facts: RequestFacts<'_>) -> bool {
    let request_id = facts.request_id.to_owned();
    match auditor.record(request_record(auditor, patterns, facts)).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(%request_id, error = %e, "answering 503: the audit record is not durable");
            false
        }
    }
}

/// A header's value as a number (a body's length).
pub fn header_number(headers: &http::HeaderMap, name: &str) -> u64 {
    headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subjects_appear_only_as_keyed_hashes() {
        let key = Arc::new(AuditKey::generate_for_tests());
        let settings = AuditorSettings {
            mode: AuditMode::BestEffort,
            flush: std::time::Duration::from_secs(60),
            rollup: std::time::Duration::from_secs(3600),
        };
        let auditor = Auditor::start(key, settings, HashMap::new());
        let patterns = vec![KeyPattern::parse("users/{subject}/**").unwrap()];
        let facts = |key: &'static str, header: Option<&'static str>| RequestFacts {
            tenant: "t",
            actor: "AKEY".into(),
            op: "PutObject",
            bucket: Some("b"),
            key: Some(key),
            version: None,
            header_subject: header,
            status: 200,
            bytes_in: 1,
            bytes_out: 0,
            request_id: "r",
        };
        let r = request_record(&auditor, &patterns, facts("users/alice/cv.pdf", None));
        let hash = auditor.subject_hash("t", "alice");
        assert_eq!(r.key.as_deref(), Some(format!("users/{{subject:{hash}}}/cv.pdf").as_str()));
        assert_eq!(r.subject.as_deref(), Some(hash.as_str()));
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("alice"), "{text}");
        let r = request_record(&auditor, &patterns, facts("scans/1.pdf", Some("bob")));
        assert_eq!(r.key.as_deref(), Some("scans/1.pdf"));
        assert_eq!(r.subject, Some(auditor.subject_hash("t", "bob")));
    }
}
