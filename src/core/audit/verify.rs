//! Verifying a tenant's trail with nothing but the public key: every segment's seal, each writer's hash
//! chain (numbers from 1 with no gap, each header naming the previous segment's SHA-256), every head's
//! seal and chain, and each head's claims (the segment it names must exist with that hash). An edited,
//! deleted, reordered or truncated segment or head is reported by name; the first problem is the first
//! broken document found, writers in name order, then heads.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::key::PublicKey;
use super::names;
use super::record::AuditRecord;
use super::rollup::Head;
use super::sealed::{self, sha256_hex};
use super::store::{TrailError, TrailStore};

/// What a verification found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub writers: usize,
    pub segments: u64,
    pub records: u64,
    pub heads: u64,
    /// Empty: the trail is intact.
    pub problems: Vec<String>,
}

#[derive(Deserialize)]
struct SegmentHeader {
    blobseal_audit_segment: u32,
    tenant: String,
    writer: String,
    seq: u64,
    prev_sha256: Option<String>,
    records: usize,
}

/// One writer's verified segments: number → SHA-256.
type Chain = BTreeMap<u64, String>;

/// Verifies `tenant`'s trail in `store`; `on_record` gets each record of each intact segment, in chain
/// order per writer (what `audit export` writes).
pub async fn verify(
    store: &TrailStore,
    tenant: &str,
    public: &PublicKey,
    mut on_record: impl FnMut(AuditRecord),
) -> Result<VerifyReport, TrailError> {
    let mut report = VerifyReport::default();
    let mut chains: BTreeMap<String, Chain> = BTreeMap::new();
    for dir in store.list(names::SEGMENTS, None, true).await? {
        let Some(writer) = dir.strip_prefix(names::SEGMENTS).and_then(|w| w.strip_suffix('/')) else { continue };
        report.writers += 1;
        let mut chain = Chain::new();
        let mut prev: Option<String> = None;
        let mut expected = 1u64;
        for name in store.list(&dir, None, false).await? {
            let Some((_, seq)) = names::parse_segment(&name) else {
                report.problems.push(format!("{name}: not a segment name"));
                continue;
            };
            if seq != expected {
                report
                    .problems
                    .push(format!("{name}: segment {expected} of writer {writer} is missing (deleted or renamed)"));
                expected = seq;
                prev = None;
            }
            expected += 1;
            let Some(doc) = store.read(&name).await? else { continue };
            let lines = match sealed::open(&doc, public) {
                Ok(l) => l,
                Err(e) => {
                    report.problems.push(format!("{name}: {e}"));
                    prev = None;
                    continue;
                }
            };
            let header: Option<SegmentHeader> = lines.first().and_then(|l| serde_json::from_slice(l).ok());
            let Some(h) = header.filter(|h| h.blobseal_audit_segment == 1) else {
                report.problems.push(format!("{name}: no segment header"));
                continue;
            };
            if h.tenant != tenant || h.writer != writer || h.seq != seq {
                report.problems.push(format!(
                    "{name}: its header says tenant {} writer {} segment {} (moved or reordered)",
                    h.tenant, h.writer, h.seq
                ));
            }
            if seq > 1 && prev.is_some() && h.prev_sha256 != prev {
                report.problems.push(format!("{name}: does not follow the segment before it (chain broken)"));
            }
            if h.records != lines.len().saturating_sub(1) {
                report.problems.push(format!(
                    "{name}: holds {} records, its header says {}",
                    lines.len() - 1,
                    h.records
                ));
            }
            for line in lines.iter().skip(1) {
                match serde_json::from_slice::<AuditRecord>(line) {
                    Ok(r) => {
                        report.records += 1;
                        on_record(r);
                    }
                    Err(e) => report.problems.push(format!("{name}: a record does not parse: {e}")),
                }
            }
            report.segments += 1;
            let sha = sha256_hex(&doc);
            chain.insert(seq, sha.clone());
            prev = Some(sha);
        }
        chains.insert(writer.to_owned(), chain);
    }
    verify_heads(store, tenant, public, &chains, &mut report).await?;
    Ok(report)
}

async fn verify_heads(
    store: &TrailStore,
    tenant: &str,
    public: &PublicKey,
    chains: &BTreeMap<String, Chain>,
    report: &mut VerifyReport,
) -> Result<(), TrailError> {
    let mut prev_doc_sha: Option<String> = None;
    let mut prev_writers: BTreeMap<String, u64> = BTreeMap::new();
    let mut expected = 1u64;
    for name in store.list(names::HEADS, None, false).await? {
        let Some(seq) = names::parse_head(&name) else {
            report.problems.push(format!("{name}: not a head name"));
            continue;
        };
        if seq != expected {
            report.problems.push(format!("{name}: head {expected} is missing (deleted or renamed)"));
            expected = seq;
            prev_doc_sha = None;
        }
        expected += 1;
        let Some(doc) = store.read(&name).await? else { continue };
        let head: Head = match sealed::open(&doc, public) {
            Ok(lines) => match lines.first().and_then(|l| serde_json::from_slice(l).ok()) {
                Some(h) => h,
                None => {
                    report.problems.push(format!("{name}: no head line"));
                    continue;
                }
            },
            Err(e) => {
                report.problems.push(format!("{name}: {e}"));
                prev_doc_sha = None;
                continue;
            }
        };
        if head.tenant != tenant || head.seq != seq {
            report.problems.push(format!("{name}: its head line says tenant {} head {}", head.tenant, head.seq));
        }
        if seq > 1 && prev_doc_sha.is_some() && head.prev_sha256 != prev_doc_sha {
            report.problems.push(format!("{name}: does not follow the head before it (chain broken)"));
        }
        for (writer, entry) in &head.writers {
            match chains.get(writer).and_then(|c| c.get(&entry.seq)) {
                Some(sha) if *sha == entry.sha256 => {}
                Some(_) => report.problems.push(format!(
                    "{name}: segment {} of writer {writer} differs from the one this head signed",
                    entry.seq
                )),
                None => report.problems.push(format!(
                    "{name}: names segment {} of writer {writer}, which is missing or broken (truncated trail)",
                    entry.seq
                )),
            }
            if prev_writers.get(writer).is_some_and(|before| *before > entry.seq) {
                report.problems.push(format!("{name}: writer {writer} went backwards"));
            }
            prev_writers.insert(writer.clone(), entry.seq);
        }
        report.heads += 1;
        prev_doc_sha = Some(sha256_hex(&doc));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::backend::memory::MemoryBackend;
    use crate::backend::Backend;
    use crate::core::audit::{rollup, AuditKey, AuditMode, Auditor, AuditorSettings};

    fn record(i: u64) -> AuditRecord {
        AuditRecord {
            time: crate::core::audit::record::now_text(),
            tenant: "t".into(),
            actor: "AKEY".into(),
            op: "PutObject".into(),
            bucket: Some("b".into()),
            key: Some(format!("k{i}")),
            status: 200,
            bytes_in: i,
            request_id: format!("r{i}"),
            ..AuditRecord::default()
        }
    }

    async fn written_trail() -> (Arc<MemoryBackend>, TrailStore, Arc<AuditKey>) {
        let backend = Arc::new(MemoryBackend::new());
        let store = TrailStore::bucket(Arc::clone(&backend) as Arc<dyn Backend>, "audit");
        let key = Arc::new(AuditKey::generate_for_tests());
        let settings = AuditorSettings {
            mode: AuditMode::Required,
            flush: Duration::from_millis(5),
            rollup: Duration::from_secs(3600),
        };
        let auditor = Auditor::start(Arc::clone(&key), settings, HashMap::from([("t".to_owned(), store.clone())]));
        for i in 0..5 {
            auditor.record(record(i)).await.unwrap();
        }
        assert_eq!(rollup::roll_up(&store, "t", &key).await.unwrap(), Some(1));
        assert_eq!(rollup::roll_up(&store, "t", &key).await.unwrap(), None, "nothing new");
        for i in 5..8 {
            auditor.record(record(i)).await.unwrap();
        }
        assert_eq!(rollup::roll_up(&store, "t", &key).await.unwrap(), Some(2));
        (backend, store, key)
    }

    async fn check(store: &TrailStore, key: &AuditKey) -> VerifyReport {
        verify(store, "t", &key.public(), |_| {}).await.unwrap()
    }

    async fn segment_names(store: &TrailStore) -> Vec<String> {
        let mut out = Vec::new();
        for dir in store.list(names::SEGMENTS, None, true).await.unwrap() {
            out.extend(store.list(&dir, None, false).await.unwrap());
        }
        out
    }

    async fn replace(backend: &MemoryBackend, name: &str, bytes: Vec<u8>) {
        let len = bytes.len() as u64;
        let body: crate::backend::ByteStream =
            Box::pin(futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))]));
        backend.put("audit", name, body, len, Default::default()).await.unwrap();
    }

    #[tokio::test]
    async fn an_intact_trail_verifies_and_exports_every_record() {
        let (_, store, key) = written_trail().await;
        let mut seen = Vec::new();
        let report = verify(&store, "t", &key.public(), |r| seen.push(r.request_id)).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!((report.records, report.heads, report.writers), (8, 2, 1));
        assert_eq!(seen, (0..8).map(|i| format!("r{i}")).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_flipped_byte_a_deletion_a_reorder_and_a_truncation_are_found() {
        // One flipped byte in the first segment.
        let (backend, store, key) = written_trail().await;
        let segs = segment_names(&store).await;
        assert!(segs.len() >= 2, "{segs:?}");
        let mut doc = store.read(&segs[0]).await.unwrap().unwrap();
        doc[40] ^= 1;
        replace(&backend, &segs[0], doc).await;
        let report = check(&store, &key).await;
        assert!(report.problems.first().is_some_and(|p| p.starts_with(&segs[0])), "{:?}", report.problems);

        // A deleted segment.
        let (backend, store, key) = written_trail().await;
        let segs = segment_names(&store).await;
        backend.delete("audit", &segs[0], None).await.unwrap();
        assert!(!check(&store, &key).await.problems.is_empty());

        // Two segments swapped.
        let (backend, store, key) = written_trail().await;
        let segs = segment_names(&store).await;
        let (a, b) = (store.read(&segs[0]).await.unwrap().unwrap(), store.read(&segs[1]).await.unwrap().unwrap());
        replace(&backend, &segs[0], b).await;
        replace(&backend, &segs[1], a).await;
        assert!(!check(&store, &key).await.problems.is_empty());

        // The newest segment removed after a head named it (truncation).
        let (backend, store, key) = written_trail().await;
        let segs = segment_names(&store).await;
        backend.delete("audit", segs.last().unwrap(), None).await.unwrap();
        let report = check(&store, &key).await;
        assert!(report.problems.iter().any(|p| p.contains("truncated")), "{:?}", report.problems);

        // A head deleted.
        let (backend, store, key) = written_trail().await;
        backend.delete("audit", &names::head(1), None).await.unwrap();
        assert!(!check(&store, &key).await.problems.is_empty());
    }
}
