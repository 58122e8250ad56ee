//! `blobseal audit verify` and `blobseal audit export`: checking a tenant's trail with only the public
//! key, writing its records as JSON lines, and exporting an offline bundle (the documents as stored, the
//! public key, a manifest) that an auditor verifies without blobseal's servers or secrets.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::OpsError;
use crate::core::audit::key::PublicKey;
use crate::core::audit::verify::{verify, VerifyReport};
use crate::core::audit::{names, AuditRecord, TrailStore};

/// The bundle's manifest (`bundle.json`).
#[derive(Debug, Serialize, Deserialize)]
pub struct BundleManifest {
    pub blobseal_audit_bundle: u32,
    pub tenant: String,
    /// `ed25519:<base64>`: the key every seal must verify under (compare its id with the one published).
    pub public_key: String,
    pub key_id: String,
    pub exported: String,
    pub segments: u64,
    pub heads: u64,
}

/// The public key file in a bundle.
pub const BUNDLE_PUBLIC_KEY: &str = "public-key.txt";
/// The manifest file in a bundle.
pub const BUNDLE_MANIFEST: &str = "bundle.json";

fn trail_err(e: impl std::fmt::Display) -> OpsError {
    OpsError::Refused(e.to_string())
}

/// Verifies `tenant`'s trail; prints a summary line (and each problem) to `out`. `Ok(true)`: intact.
pub async fn verify_trail(
    store: &TrailStore,
    tenant: &str,
    public: &PublicKey,
    out: &mut dyn Write,
) -> Result<bool, OpsError> {
    let report = verify(store, tenant, public, |_| {}).await.map_err(trail_err)?;
    print_report(tenant, &report, out);
    Ok(report.problems.is_empty())
}

fn print_report(tenant: &str, r: &VerifyReport, out: &mut dyn Write) {
    let state = if r.problems.is_empty() { "intact" } else { "BROKEN" };
    let _ = writeln!(
        out,
        "tenant {tenant}: {state}: {} record(s) in {} segment(s) of {} writer(s), {} head(s)",
        r.records, r.segments, r.writers, r.heads
    );
    if let Some(first) = r.problems.first() {
        let _ = writeln!(out, "  first broken: {first}");
    }
    for p in r.problems.iter().skip(1) {
        let _ = writeln!(out, "  also: {p}");
    }
}

fn in_window(r: &AuditRecord, from: Option<&str>, to: Option<&str>) -> bool {
    // RFC 3339 UTC with the same precision compares as text.
    from.is_none_or(|f| r.time.as_str() >= f) && to.is_none_or(|t| r.time.as_str() < t)
}

/// Writes `tenant`'s records between `from` (inclusive) and `to` (exclusive) as JSON lines; the trail is
/// verified on the way and a broken one fails the export after writing what is intact.
pub async fn export_records(
    store: &TrailStore,
    tenant: &str,
    public: &PublicKey,
    from: Option<&str>,
    to: Option<&str>,
    out: &mut dyn Write,
) -> Result<u64, OpsError> {
    let mut written = 0u64;
    let mut failed = None;
    let report = verify(store, tenant, public, |r| {
        if failed.is_none() && in_window(&r, from, to) {
            match serde_json::to_string(&r).map(|line| writeln!(out, "{line}")) {
                Ok(Ok(())) => written += 1,
                Ok(Err(e)) => failed = Some(e.to_string()),
                Err(e) => failed = Some(e.to_string()),
            }
        }
    })
    .await
    .map_err(trail_err)?;
    if let Some(e) = failed {
        return Err(OpsError::Refused(format!("cannot write the export: {e}")));
    }
    if let Some(first) = report.problems.first() {
        return Err(OpsError::Refused(format!("the trail of tenant {tenant} is broken: {first}")));
    }
    Ok(written)
}

/// Copies `tenant`'s trail as stored into `dir` (which must not hold a bundle yet), with the public key
/// and a manifest; the copy is verified afterwards.
pub async fn export_bundle(
    store: &TrailStore,
    tenant: &str,
    public: &PublicKey,
    dir: &Path,
) -> Result<BundleManifest, OpsError> {
    let target = TrailStore::Dir(dir.to_path_buf());
    let mut names_to_copy = Vec::new();
    for writer_dir in store.list(names::SEGMENTS, None, true).await.map_err(trail_err)? {
        names_to_copy.extend(store.list(&writer_dir, None, false).await.map_err(trail_err)?);
    }
    names_to_copy.extend(store.list(names::HEADS, None, false).await.map_err(trail_err)?);
    for name in &names_to_copy {
        let Some(doc) = store.read(name).await.map_err(trail_err)? else { continue };
        if !target.create(name, doc).await.map_err(trail_err)? {
            return Err(OpsError::Refused(format!("{} already holds {name}: use an empty directory", dir.display())));
        }
    }
    let report = verify(&target, tenant, public, |_| {}).await.map_err(trail_err)?;
    let manifest = BundleManifest {
        blobseal_audit_bundle: 1,
        tenant: tenant.to_owned(),
        public_key: public.to_text(),
        key_id: public.key_id(),
        exported: crate::core::audit::record::now_text(),
        segments: report.segments,
        heads: report.heads,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(trail_err)?;
    std::fs::write(dir.join(BUNDLE_MANIFEST), json).map_err(trail_err)?;
    std::fs::write(dir.join(BUNDLE_PUBLIC_KEY), format!("{}\n", public.to_text())).map_err(trail_err)?;
    if let Some(first) = report.problems.first() {
        return Err(OpsError::Refused(format!("exported, but the trail of tenant {tenant} is broken: {first}")));
    }
    Ok(manifest)
}

/// A bundle's tenant and public key: the key given (`--public-key`, the one the auditor trusts) or else
/// the bundle's own.
pub fn open_bundle(dir: &Path, trusted: Option<&str>) -> Result<(String, PublicKey), OpsError> {
    let manifest: BundleManifest = std::fs::read(dir.join(BUNDLE_MANIFEST))
        .map_err(trail_err)
        .and_then(|b| serde_json::from_slice(&b).map_err(trail_err))?;
    let text = match trusted {
        Some(t) => t.to_owned(),
        None => std::fs::read_to_string(dir.join(BUNDLE_PUBLIC_KEY)).map_err(trail_err)?,
    };
    let public = PublicKey::from_text(&text)
        .ok_or_else(|| OpsError::Refused("the public key is not ed25519:<base64>".into()))?;
    Ok((manifest.tenant, public))
}

/// Which records `audit query` selects.
#[derive(Debug, Default, Clone)]
pub struct QueryFilter {
    pub actor: Option<String>,
    pub op: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl QueryFilter {
    fn selects(&self, r: &AuditRecord) -> bool {
        self.actor.as_ref().is_none_or(|a| r.actor == *a)
            && self.op.as_ref().is_none_or(|o| r.op.eq_ignore_ascii_case(o))
            && in_window(r, self.from.as_deref(), self.to.as_deref())
    }
}

/// What an actor touched in a window (Art. 33(3)(a)): the counts a breach notification needs.
#[derive(Debug, Default, Serialize)]
pub struct QuerySummary {
    pub tenant: String,
    pub actor: Option<String>,
    pub op: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub records: u64,
    /// Distinct `(bucket, key)` pairs touched.
    pub objects: u64,
    pub buckets: Vec<String>,
    /// Distinct data subjects (by their keyed hashes) the touched objects named.
    pub data_subjects: u64,
    /// Requests that failed (status 400 and above) among `records`.
    pub failed_requests: u64,
    pub by_op: std::collections::BTreeMap<String, u64>,
    pub first: Option<String>,
    pub last: Option<String>,
}

/// `audit query`: the records of `tenant` that `filter` selects, as JSON lines, or with `summary` one
/// JSON object of counts. The trail is verified on the way; a broken one fails the query.
pub async fn query(
    store: &TrailStore,
    tenant: &str,
    public: &PublicKey,
    filter: &QueryFilter,
    summary: bool,
    out: &mut dyn Write,
) -> Result<QuerySummary, OpsError> {
    use std::collections::BTreeSet;
    let mut objects: BTreeSet<(String, String)> = BTreeSet::new();
    let mut buckets: BTreeSet<String> = BTreeSet::new();
    let mut subjects: BTreeSet<String> = BTreeSet::new();
    let mut sum = QuerySummary {
        tenant: tenant.to_owned(),
        actor: filter.actor.clone(),
        op: filter.op.clone(),
        from: filter.from.clone(),
        to: filter.to.clone(),
        ..QuerySummary::default()
    };
    let mut failed = None;
    let report = verify(store, tenant, public, |r| {
        if !filter.selects(&r) {
            return;
        }
        sum.records += 1;
        *sum.by_op.entry(r.op.clone()).or_default() += 1;
        if r.status >= 400 {
            sum.failed_requests += 1;
        }
        if sum.first.as_ref().is_none_or(|f| r.time < *f) {
            sum.first = Some(r.time.clone());
        }
        if sum.last.as_ref().is_none_or(|l| r.time > *l) {
            sum.last = Some(r.time.clone());
        }
        if let Some(b) = &r.bucket {
            buckets.insert(b.clone());
            if let Some(k) = &r.key {
                objects.insert((b.clone(), k.clone()));
            }
        }
        if let Some(s) = &r.subject {
            subjects.insert(s.clone());
        }
        if !summary && failed.is_none() {
            if let Err(e) = serde_json::to_string(&r)
                .map_err(|e| e.to_string())
                .and_then(|line| writeln!(out, "{line}").map_err(|e| e.to_string()))
            {
                failed = Some(e);
            }
        }
    })
    .await
    .map_err(trail_err)?;
    if let Some(e) = failed {
        return Err(OpsError::Refused(format!("cannot write the query result: {e}")));
    }
    if let Some(first) = report.problems.first() {
        return Err(OpsError::Refused(format!("the trail of tenant {tenant} is broken: {first}")));
    }
    sum.objects = objects.len() as u64;
    sum.buckets = buckets.into_iter().collect();
    sum.data_subjects = subjects.len() as u64;
    if summary {
        let json = serde_json::to_string_pretty(&sum).map_err(trail_err)?;
        writeln!(out, "{json}").map_err(trail_err)?;
    }
    Ok(sum)
}
