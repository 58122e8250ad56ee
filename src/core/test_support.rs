//! What the core's unit tests share: a `BlobService` over the in-memory backend with a real local
//! keyring and two tenants (`alpha`, bucket prefix `alpha-`; `beta`, prefix `beta-`, plus a route of
//! its bucket `b` to the backend bucket `bb`), and body helpers.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;

use crate::backend::memory::MemoryBackend;
use crate::backend::ByteStream;
use crate::core::keys::local::LocalKeyring;
use crate::core::service::BlobService;
use crate::core::tenant::{Route, Tenant, TenantDirectory};

pub(crate) struct Fixture {
    pub(crate) svc: BlobService,
    pub(crate) backend: Arc<MemoryBackend>,
    pub(crate) alpha: Arc<Tenant>,
    pub(crate) beta: Arc<Tenant>,
    _dir: tempfile::TempDir,
}

pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(MemoryBackend::new());
    let mut d = TenantDirectory::new();
    d.add_backend("mem", backend.clone());
    for name in ["alpha", "beta"] {
        let t = Tenant { name: name.into(), default_backend: "mem".into(), bucket_prefix: format!("{name}-") };
        d.add_tenant(t, [name.to_uppercase()]);
    }
    d.add_route(Route {
        tenant: "beta".into(),
        bucket: "b".into(),
        backend: "mem".into(),
        backend_bucket: "bb".into(),
    });
    let keys = LocalKeyring::open_or_create(&dir.path().join("k.json"), &["alpha".into(), "beta".into()]).unwrap();
    let svc = BlobService::new(d, Arc::new(keys), BTreeMap::new());
    let alpha = svc.directory().tenant("alpha").unwrap();
    let beta = svc.directory().tenant("beta").unwrap();
    Fixture { svc, backend, alpha, beta, _dir: dir }
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
