//! What the core's unit tests share: a `BlobService` over the in-memory backend with a keychain (an
//! in-memory root-key provider, the key store in the backend bucket `keystore`) and two tenants (`alpha`, bucket prefix `alpha-`; `beta`, prefix `beta-`, plus a route of
//! its bucket `b` to the backend bucket `bb`), and body helpers.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;

use crate::backend::memory::MemoryBackend;
use crate::backend::ByteStream;
use crate::core::keys::cache::CacheSettings;
use crate::core::keys::chain::{Keychain, TenantKeys};
use crate::core::keys::store::KeyStore;
use crate::core::keys::subject::{KeyPattern, SubjectRules, SubjectSource};
use crate::core::keys::test_provider::TestProvider;
use crate::core::service::BlobService;
use crate::core::tenant::{Route, Tenant, TenantDirectory};

pub(crate) struct Fixture {
    pub(crate) svc: Arc<BlobService>,
    pub(crate) backend: Arc<MemoryBackend>,
    pub(crate) alpha: Arc<Tenant>,
    pub(crate) beta: Arc<Tenant>,
    pub(crate) provider: Arc<TestProvider>,
}

/// Bucket of the key store on the memory backend.
pub(crate) const KEY_STORE: &str = "keystore";

/// Both tenants name their data subject by `x-amz-meta-data-subject` or by `customers/{subject}/**`.
pub(crate) fn subject_rules() -> SubjectRules {
    SubjectRules(vec![
        SubjectSource::Metadata("data-subject".into()),
        SubjectSource::KeyPattern(KeyPattern::parse("customers/{subject}/**").unwrap()),
    ])
}

/// A keychain for `tenants` on `backend` with `provider` and the given cache.
pub(crate) fn keychain(
    backend: Arc<MemoryBackend>,
    provider: Arc<TestProvider>,
    tenants: &[&str],
    cache: CacheSettings,
) -> Keychain {
    let mut chain = Keychain::new(cache);
    for t in tenants {
        let keys = TenantKeys {
            provider: provider.clone(),
            store: KeyStore::new(backend.clone(), KEY_STORE),
            subjects: subject_rules(),
            period_keys: false,
        };
        chain.add_tenant(t, keys);
    }
    chain
}

pub(crate) fn fixture() -> Fixture {
    fixture_with_cache(CacheSettings::default())
}

pub(crate) fn fixture_with_cache(cache: CacheSettings) -> Fixture {
    fixture_custom(cache, |_| {})
}

/// A fixture whose tenants `configure` adjusts (retention, backups, residency) before they are registered.
pub(crate) fn fixture_custom(cache: CacheSettings, configure: impl Fn(&mut Tenant)) -> Fixture {
    let backend = Arc::new(MemoryBackend::new());
    let mut d = TenantDirectory::new();
    d.add_backend("mem", backend.clone());
    for name in ["alpha", "beta"] {
        let mut t = Tenant {
            name: name.into(),
            default_backend: "mem".into(),
            bucket_prefix: format!("{name}-"),
            ..Tenant::default()
        };
        configure(&mut t);
        for b in &t.backups {
            d.reserve(&b.backend, &b.bucket);
        }
        d.add_tenant(t, [name.to_uppercase()]);
    }
    d.add_route(Route {
        tenant: "beta".into(),
        bucket: "b".into(),
        backend: "mem".into(),
        backend_bucket: "bb".into(),
        backups: Vec::new(),
    });
    d.reserve("mem", KEY_STORE);
    let provider = Arc::new(TestProvider::default());
    let mut chain = keychain(backend.clone(), provider.clone(), &["alpha", "beta"], cache);
    for t in d.tenants().filter(|t| t.retention.period_keys) {
        let keys = TenantKeys {
            provider: provider.clone(),
            store: KeyStore::new(backend.clone(), KEY_STORE),
            subjects: subject_rules(),
            period_keys: true,
        };
        chain.add_tenant(&t.name, keys);
    }
    let svc = Arc::new(BlobService::new(d, Arc::new(chain), BTreeMap::new()));
    let alpha = svc.directory().tenant("alpha").unwrap();
    let beta = svc.directory().tenant("beta").unwrap();
    Fixture { svc, backend, alpha, beta, provider }
}

pub(crate) fn body(data: &[u8]) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data.chunks(10_000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(chunks).boxed()
}

pub(crate) async fn read(mut s: ByteStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}
