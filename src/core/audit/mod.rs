//! The tamper-evident audit trail: one record per request and per admin action, kept apart from the
//! application log, in a reserved bucket of each tenant (`<bucket_prefix>blobseal-audit` beside its key
//! store).
//!
//! Layout in that bucket (docs/DESIGN.md, "Audit trail"; every file is a *sealed document*, `sealed.rs`):
//! - `segments/<writer>/<seq>.jsonl`: the records one writer (a process) wrote in one group commit,
//!   after a header naming the previous segment's SHA-256: one hash chain per writer, each segment signed;
//! - `heads/<seq>.json`: a tenant head, rolled up by whichever replica creates it first (a conditional
//!   create decides), naming every writer's latest segment and its hash and chained to the previous head:
//!   one verifiable head per tenant however many replicas write.
//!
//! Data subjects appear only as keyed hashes (HMAC-SHA-256 under a key derived from the signing key),
//! never in clear; object keys have their subject segment replaced by that hash.

pub mod key;
pub mod record;
pub mod rollup;
pub mod sealed;
pub mod store;
pub mod verify;
pub mod writer;

pub use key::AuditKey;
pub use record::AuditRecord;
pub use store::TrailStore;
pub use writer::{Auditor, AuditorSettings};

/// Whether a request waits for its record to be durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditMode {
    #[default]
    BestEffort,
    Required,
}

/// Where a tenant's audit trail is: a bucket on a backend (by config name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLocation {
    pub backend: String,
    pub bucket: String,
}

/// Object names inside an audit bucket.
pub mod names {
    /// Writers' segment chains.
    pub const SEGMENTS: &str = "segments/";
    /// Tenant heads.
    pub const HEADS: &str = "heads/";

    pub fn segment(writer: &str, seq: u64) -> String {
        format!("{SEGMENTS}{writer}/{seq:012}.jsonl")
    }

    pub fn head(seq: u64) -> String {
        format!("{HEADS}{seq:012}.json")
    }

    /// `(writer, seq)` of a segment name.
    pub fn parse_segment(name: &str) -> Option<(&str, u64)> {
        let rest = name.strip_prefix(SEGMENTS)?;
        let (writer, file) = rest.split_once('/')?;
        let seq = file.strip_suffix(".jsonl")?;
        (seq.len() == 12).then(|| seq.parse().ok()).flatten().map(|s| (writer, s))
    }

    pub fn parse_head(name: &str) -> Option<u64> {
        let seq = name.strip_prefix(HEADS)?.strip_suffix(".json")?;
        (seq.len() == 12).then(|| seq.parse().ok()).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::names::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_segment(&segment("w1", 7)), Some(("w1", 7)));
        assert_eq!(parse_head(&head(42)), Some(42));
        assert_eq!(parse_segment("segments/w1/7.jsonl"), None);
        assert_eq!(parse_head("heads/x.json"), None);
    }
}
