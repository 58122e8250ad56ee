//! Process metrics, served as Prometheus text at `GET /_blobseal/metrics` (a path no S3 bucket can
//! have: bucket names cannot start with `_`). Plain atomics: a handful of counters needs no crate.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Requests refused because they would put a tenant's data where its residency rule forbids.
pub static RESIDENCY_REFUSALS: AtomicU64 = AtomicU64::new(0);
/// Requests refused because their backend is fenced (region drift).
pub static FENCED_REQUESTS: AtomicU64 = AtomicU64::new(0);
/// Drift checks run, and drifts found.
pub static DRIFT_CHECKS: AtomicU64 = AtomicU64::new(0);
pub static DRIFTS_FOUND: AtomicU64 = AtomicU64::new(0);
/// Sweeper results.
pub static SWEEP_RUNS: AtomicU64 = AtomicU64::new(0);
pub static SWEEP_DELETED_VERSIONS: AtomicU64 = AtomicU64::new(0);
pub static SWEEP_KEPT_LOCKED: AtomicU64 = AtomicU64::new(0);
/// Backup copies written on write, and copies that failed.
pub static BACKUP_COPIES: AtomicU64 = AtomicU64::new(0);
pub static BACKUP_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Requests refused at the request gate (before authentication), and bodies cut for being too slow.
pub static GATE_REFUSALS: AtomicU64 = AtomicU64::new(0);
pub static SLOW_BODIES: AtomicU64 = AtomicU64::new(0);

pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The metrics as Prometheus text; `fenced` lists the fenced backends with their reason.
pub fn render(fenced: &[(String, String)]) -> String {
    let mut out = String::new();
    let counters: [(&str, &str, &AtomicU64); 11] = [
        ("blobseal_gate_refusals_total", "requests refused at the gate, before authentication", &GATE_REFUSALS),
        ("blobseal_slow_bodies_total", "request bodies failed for arriving too slowly", &SLOW_BODIES),
        ("blobseal_residency_refusals_total", "requests refused by a residency rule", &RESIDENCY_REFUSALS),
        ("blobseal_fenced_requests_total", "requests refused because their backend is fenced", &FENCED_REQUESTS),
        ("blobseal_drift_checks_total", "backend region checks run", &DRIFT_CHECKS),
        ("blobseal_drifts_found_total", "bucket regions found different from config", &DRIFTS_FOUND),
        ("blobseal_sweep_runs_total", "sweeper runs", &SWEEP_RUNS),
        ("blobseal_sweep_deleted_versions_total", "object versions deleted by the sweeper", &SWEEP_DELETED_VERSIONS),
        (
            "blobseal_sweep_kept_locked_total",
            "expired versions kept because of Object Lock or legal hold",
            &SWEEP_KEPT_LOCKED,
        ),
        ("blobseal_backup_copies_total", "backup copies written on write", &BACKUP_COPIES),
        ("blobseal_backup_failures_total", "backup copies that failed on write", &BACKUP_FAILURES),
    ];
    for (name, help, c) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", c.load(Ordering::Relaxed));
    }
    let _ = writeln!(out, "# HELP blobseal_backend_fenced 1 while a backend is fenced off (its region drifted)");
    let _ = writeln!(out, "# TYPE blobseal_backend_fenced gauge");
    for (backend, _) in fenced {
        let _ = writeln!(out, "blobseal_backend_fenced{{backend=\"{}\"}} 1", backend.replace(['"', '\\', '\n'], "_"));
    }
    out
}
