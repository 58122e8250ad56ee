//! The writer: records go into one background task per process, which writes each tenant's pending
//! records as one segment (group commit) every `flush` (200 ms by default), at once when a `required`
//! request waits (the records that arrive while a write is under way share the next one), and when
//! 1000 records are pending. Each process is one writer with its own random id and one chain per
//! tenant, so replicas never write the same names and never coordinate.
//!
//! A segment that cannot be written stays pending and is retried; `required` requests waiting for it
//! get an error (their front end answers 503). Best-effort records beyond 100,000 pending per tenant are
//! dropped and counted (`blobseal_audit_records_total{outcome="dropped"}`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::key::AuditKey;
use super::record::AuditRecord;
use super::sealed::{seal, sha256_hex};
use super::store::TrailStore;
use super::{names, AuditMode};

/// Records per segment at most.
pub const MAX_SEGMENT_RECORDS: usize = 1000;
/// Pending records per tenant at most (best-effort).
const MAX_PENDING: usize = 100_000;
/// How long after a failed write it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Records queued between the request path and the writer task.
const CHANNEL: usize = 16_384;

/// How a process's auditor runs.
#[derive(Debug, Clone)]
pub struct AuditorSettings {
    pub mode: AuditMode,
    pub flush: Duration,
    pub rollup: Duration,
}

/// Why a required record is not durable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("audit trail unavailable: {0}")]
pub struct AuditUnavailable(pub String);

type Done = oneshot::Sender<Result<(), AuditUnavailable>>;

enum Msg {
    Record(Box<AuditRecord>, Option<Done>),
    Flush(oneshot::Sender<()>),
}

/// The handle requests and commands record through.
pub struct Auditor {
    tx: mpsc::Sender<Msg>,
    key: Arc<AuditKey>,
    mode: AuditMode,
    stores: Arc<RwLock<HashMap<String, TrailStore>>>,
    writer: String,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").field("writer", &self.writer).field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl Auditor {
    /// Starts the writer task (and the periodic roll-up of tenant heads) for `stores` (tenant → trail).
    pub fn start(key: Arc<AuditKey>, settings: AuditorSettings, stores: HashMap<String, TrailStore>) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let mut id = [0u8; 6];
        let _ = aws_lc_rs::rand::fill(&mut id);
        let writer = format!("w{}-{}", hex::encode(id), std::process::id());
        let stores = Arc::new(RwLock::new(stores));
        let task = Task {
            key: Arc::clone(&key),
            writer: writer.clone(),
            stores: Arc::clone(&stores),
            flush: settings.flush,
            pending: BTreeMap::new(),
            chains: HashMap::new(),
        };
        tokio::spawn(task.run(rx));
        let rollup_key = Arc::clone(&key);
        let rollup_stores = Arc::clone(&stores);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(settings.rollup).await;
                let stores: Vec<(String, TrailStore)> = read(&rollup_stores).into_iter().collect();
                for (tenant, store) in stores {
                    if let Err(e) = super::rollup::roll_up(&store, &tenant, &rollup_key).await {
                        tracing::warn!(%tenant, error = %e, "audit head not rolled up; tried again later");
                    }
                }
            }
        });
        Arc::new(Self { tx, key, mode: settings.mode, stores, writer })
    }

    /// This process's writer id.
    pub fn writer(&self) -> &str {
        &self.writer
    }

    pub fn mode(&self) -> AuditMode {
        self.mode
    }

    /// Replaces the tenants' trails (a config reload).
    pub fn set_stores(&self, stores: HashMap<String, TrailStore>) {
        let mut w = self.stores.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *w = stores;
    }

    /// The keyed hash standing for `subject` of `tenant`.
    pub fn subject_hash(&self, tenant: &str, subject: &str) -> String {
        self.key.subject_hash(tenant, subject)
    }

    /// Records `record`. Best-effort: queued, never waits (a full queue drops it, counted). Required:
    /// returns once the record is durable, or the reason it is not.
    pub async fn record(&self, record: AuditRecord) -> Result<(), AuditUnavailable> {
        match self.mode {
            AuditMode::BestEffort => {
                if self.tx.try_send(Msg::Record(Box::new(record), None)).is_err() {
                    crate::metrics::get().audit_records.get_or_create(&dropped()).inc();
                }
                Ok(())
            }
            AuditMode::Required => self.record_durably(record).await,
        }
    }

    /// Records `record` and waits until it is durable, whatever the mode (admin actions).
    pub async fn record_durably(&self, record: AuditRecord) -> Result<(), AuditUnavailable> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Record(Box::new(record), Some(done)))
            .await
            .map_err(|_| AuditUnavailable("the audit writer stopped".into()))?;
        wait.await.map_err(|_| AuditUnavailable("the audit writer stopped".into()))?
    }

    /// Writes everything pending now and waits for it (a command before it exits).
    pub async fn flush(&self) {
        let (ack, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

fn read(stores: &RwLock<HashMap<String, TrailStore>>) -> HashMap<String, TrailStore> {
    stores.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

fn dropped() -> crate::metrics::OutcomeLabels {
    crate::metrics::OutcomeLabels { outcome: "dropped" }
}

/// A tenant's chain in this writer.
#[derive(Default)]
struct Chain {
    /// The next segment's number (from 1).
    next: u64,
    /// The previous segment's SHA-256.
    prev: Option<String>,
}

struct Task {
    key: Arc<AuditKey>,
    writer: String,
    stores: Arc<RwLock<HashMap<String, TrailStore>>>,
    flush: Duration,
    pending: BTreeMap<String, Vec<(AuditRecord, Option<Done>)>>,
    chains: HashMap<String, Chain>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut deadline: Option<Instant> = None;
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Record(record, done)) => {
                        let urgent = done.is_some();
                        self.push(*record, done);
                        // A waiting record is written at once; records that arrive during that write go into
                        // the next one together (group commit without an added delay).
                        let wait = if urgent { Duration::ZERO } else { self.flush };
                        let full = self.pending.values().any(|v| v.len() >= MAX_SEGMENT_RECORDS);
                        let at = if full { Instant::now() } else { Instant::now() + wait };
                        deadline = Some(deadline.map_or(at, |d| d.min(at)));
                    }
                    Some(Msg::Flush(ack)) => {
                        self.flush_all().await;
                        deadline = (!self.pending.is_empty()).then(|| Instant::now() + RETRY_AFTER);
                        let _ = ack.send(());
                    }
                    None => {
                        self.flush_all().await;
                        return;
                    }
                },
                () = sleep => {
                    self.flush_all().await;
                    deadline = (!self.pending.is_empty()).then(|| Instant::now() + RETRY_AFTER);
                }
            }
        }
    }

    fn push(&mut self, record: AuditRecord, done: Option<Done>) {
        let queue = self.pending.entry(record.tenant.clone()).or_default();
        if queue.len() >= MAX_PENDING {
            // Oldest best-effort record first; a waiting one is answered.
            if let Some(i) = queue.iter().position(|(_, d)| d.is_none()) {
                queue.remove(i);
            } else if let Some((_, Some(d))) = (!queue.is_empty()).then(|| queue.remove(0)) {
                let _ = d.send(Err(AuditUnavailable("too many records pending".into())));
            }
            crate::metrics::get().audit_records.get_or_create(&dropped()).inc();
        }
        queue.push((record, done));
    }

    async fn flush_all(&mut self) {
        let tenants: Vec<String> = self.pending.keys().cloned().collect();
        for tenant in tenants {
            while self.pending.get(&tenant).is_some_and(|q| !q.is_empty()) {
                if !self.flush_one(&tenant).await {
                    break;
                }
            }
        }
    }

    /// Writes up to one segment of `tenant`'s pending records; `false` when it could not.
    async fn flush_one(&mut self, tenant: &str) -> bool {
        let store = read(&self.stores).get(tenant).cloned();
        let Some(queue) = self.pending.get_mut(tenant) else { return true };
        let Some(store) = store else {
            // The tenant is gone from the config: nothing can hold its records.
            for (_, done) in queue.drain(..) {
                crate::metrics::get().audit_records.get_or_create(&dropped()).inc();
                if let Some(d) = done {
                    let _ = d.send(Err(AuditUnavailable(format!("tenant {tenant} has no audit trail"))));
                }
            }
            return true;
        };
        let n = queue.len().min(MAX_SEGMENT_RECORDS);
        let chain = self.chains.entry(tenant.to_owned()).or_insert_with(|| Chain { next: 1, prev: None });
        let header = serde_json::json!({
            "blobseal_audit_segment": 1,
            "tenant": tenant,
            "writer": self.writer,
            "seq": chain.next,
            "prev_sha256": chain.prev,
            "records": n,
        });
        let mut body = Vec::with_capacity(256 * (n + 1));
        body.extend_from_slice(header.to_string().as_bytes());
        body.push(b'\n');
        for (record, _) in queue.iter().take(n) {
            // A record of strings and numbers always serializes.
            body.extend_from_slice(serde_json::to_string(record).unwrap_or_default().as_bytes());
            body.push(b'\n');
        }
        let doc = seal(body, &self.key);
        let sha = sha256_hex(&doc);
        let name = names::segment(&self.writer, chain.next);
        match store.create(&name, doc).await {
            Ok(true) => {
                chain.next += 1;
                chain.prev = Some(sha);
                let metrics = crate::metrics::get();
                for (_, done) in queue.drain(..n) {
                    metrics.audit_records.get_or_create(&crate::metrics::OutcomeLabels { outcome: "written" }).inc();
                    if let Some(d) = done {
                        let _ = d.send(Ok(()));
                    }
                }
                true
            }
            Ok(false) => {
                // The name is taken (a writer id seen before): skip the number, keep the chain's hash.
                tracing::warn!(%tenant, segment = %name, "audit segment name taken; using the next number");
                chain.next += 1;
                true
            }
            Err(e) => {
                crate::metrics::get().audit_write_failures.inc();
                tracing::error!(%tenant, error = %e, "audit segment not written; retried");
                let why = e.to_string();
                for (_, done) in queue.iter_mut().take(n) {
                    if let Some(d) = done.take() {
                        let _ = d.send(Err(AuditUnavailable(why.clone())));
                    }
                }
                false
            }
        }
    }
}
