//! A key provider layer that counts every call and its latency in the metrics
//! (`blobseal_key_provider_calls_total{target, call, outcome}` and the duration histogram), so an
//! operator sees a slow or failing KMS or HSM before clients report it.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::core::keys::{DataKey, Destruction, KeyError, KeyProvider, WrapContext};
use crate::metrics::{CallLabels, Metrics};

/// Wraps `inner`, labelling its calls with the provider's config name.
#[derive(Debug)]
pub struct MeteredProvider {
    name: String,
    inner: Arc<dyn KeyProvider>,
}

impl MeteredProvider {
    pub fn new(name: &str, inner: Arc<dyn KeyProvider>) -> Self {
        Self { name: name.to_owned(), inner }
    }

    fn record<T>(&self, call: &'static str, started: Instant, result: &Result<T, KeyError>) {
        let m = crate::metrics::get();
        let outcome = if result.is_ok() { "ok" } else { "error" };
        let labels = CallLabels { target: self.name.clone(), call, outcome };
        Metrics::observe_call(&m.key_provider_calls, &m.key_provider_call_duration, &labels, started.elapsed());
    }
}

#[async_trait]
impl KeyProvider for MeteredProvider {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn create_root(&self, tenant: &str) -> Result<String, KeyError> {
        let started = Instant::now();
        let r = self.inner.create_root(tenant).await;
        self.record("create_root", started, &r);
        r
    }

    async fn wrap(&self, root_id: &str, key: &DataKey, cx: &WrapContext<'_>) -> Result<Vec<u8>, KeyError> {
        let started = Instant::now();
        let r = self.inner.wrap(root_id, key, cx).await;
        self.record("wrap", started, &r);
        r
    }

    async fn unwrap(&self, root_id: &str, blob: &[u8], cx: &WrapContext<'_>) -> Result<DataKey, KeyError> {
        let started = Instant::now();
        let r = self.inner.unwrap(root_id, blob, cx).await;
        self.record("unwrap", started, &r);
        r
    }

    async fn destroy(&self, tenant: &str, root_id: &str) -> Result<Destruction, KeyError> {
        let started = Instant::now();
        let r = self.inner.destroy(tenant, root_id).await;
        self.record("destroy", started, &r);
        r
    }
}
