//! The region drift check: does every bucket blobseal uses really live in the region the config
//! declares for its backend? At start a drift refuses the start; while running, a drifted backend is
//! fenced off (requests to it fail closed) until its buckets are back where the config says.
//!
//! Only backends that can say where a bucket is (S3: GetBucketLocation) are checked; an fs backend's
//! region is a declaration, not something to verify.

use std::collections::BTreeMap;

use crate::backend::BackendError;
use crate::core::service::BlobService;

/// A bucket found outside its backend's configured region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub backend: String,
    pub bucket: String,
    pub configured: String,
    pub actual: String,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "backend {}: bucket {} is in {}, but the config says the backend is in {}",
            self.backend, self.bucket, self.actual, self.configured
        )
    }
}

/// What one check found.
#[derive(Debug, Default)]
pub struct DriftReport {
    pub drifts: Vec<Drift>,
    /// Backends that could not be asked (unreachable): `(backend, error)`.
    pub unreachable: Vec<(String, String)>,
    /// Buckets checked.
    pub checked: usize,
}

impl BlobService {
    /// Asks every region-aware backend where each bucket blobseal uses on it really is.
    pub async fn check_regions(&self) -> DriftReport {
        crate::metrics::get().drift_checks.inc();
        let mut report = DriftReport::default();
        let backends: Vec<_> = self.directory().backends().map(|(n, b)| (n.clone(), b.clone())).collect();
        for (name, backend) in backends {
            let Some(configured) = self.backend_region(&name).map(str::to_owned) else { continue };
            let buckets = match backend.list_buckets().await {
                Ok(b) => b,
                Err(e) => {
                    report.unreachable.push((name.clone(), e.to_string()));
                    continue;
                }
            };
            for b in buckets.into_iter().filter(|b| self.directory().uses_bucket(&name, &b.name)) {
                match backend.bucket_region(&b.name).await {
                    Ok(Some(actual)) => {
                        report.checked += 1;
                        if actual != configured {
                            crate::metrics::get().drifts_found.inc();
                            report.drifts.push(Drift {
                                backend: name.clone(),
                                bucket: b.name,
                                configured: configured.clone(),
                                actual,
                            });
                        }
                    }
                    Ok(None) | Err(BackendError::NotSupported(_)) => break,
                    Err(BackendError::NoSuchBucket) => {}
                    Err(e) => report.unreachable.push((name.clone(), e.to_string())),
                }
            }
        }
        report
    }

    /// Runs the check and fences every drifted backend, unfencing the ones that are fine again (an
    /// unreachable backend keeps its state).
    pub async fn enforce_regions(&self) -> DriftReport {
        let report = self.check_regions().await;
        let mut drifted: BTreeMap<&str, &Drift> = BTreeMap::new();
        for d in &report.drifts {
            drifted.entry(d.backend.as_str()).or_insert(d);
        }
        let names: Vec<String> = self.directory().backends().map(|(n, _)| n.clone()).collect();
        for name in names {
            match drifted.get(name.as_str()) {
                Some(d) => self.fence(&name, &d.to_string()),
                None if !report.unreachable.iter().any(|(b, _)| *b == name) => self.unfence(&name),
                None => {}
            }
        }
        report
    }
}
