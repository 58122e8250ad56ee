use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::backend::memory::MemoryBackend;
use crate::core::keys::test_provider::TestProvider;
use crate::core::test_support::{keychain, KEY_STORE};

fn cache(ttl_ms: u64) -> CacheSettings {
    CacheSettings { ttl: Duration::from_millis(ttl_ms), max_entries: 100 }
}

struct World {
    backend: Arc<MemoryBackend>,
    provider: Arc<TestProvider>,
}

impl World {
    fn new() -> Self {
        Self { backend: Arc::new(MemoryBackend::new()), provider: Arc::new(TestProvider::default()) }
    }
    /// A keychain as one replica would have it (its own cache, shared store and provider).
    fn replica(&self, ttl_ms: u64) -> Keychain {
        keychain(self.backend.clone(), self.provider.clone(), &["alpha", "beta"], cache(ttl_ms))
    }
}

#[tokio::test]
async fn first_write_creates_root_and_tenant_key_and_round_trips() {
    let w = World::new();
    let chain = w.replica(60_000);
    let dek = DataKey::generate().unwrap();
    let wrapped = chain.wrap("alpha", &KeyScope::Tenant, None, &dek, b"aad").await.unwrap();
    assert_eq!(wrapped.kek_id, "tenant:1");
    assert_eq!(chain.unwrap("alpha", &wrapped, b"aad").await.unwrap().as_bytes(), dek.as_bytes());
    assert!(matches!(chain.unwrap("alpha", &wrapped, b"other").await, Err(KeyError::Unwrap)));
    let state = chain.load_state("alpha").await.unwrap();
    assert_eq!(state.roots.len(), 1);
    assert_eq!(state.roots[0].root_id, "test:alpha:1");
    assert_eq!(state.tenant_keys, vec![1]);
    // The store holds the lifetime key wrapped, never in clear.
    let keys = chain.tenant("alpha").unwrap().store.list("keys/alpha/").await.unwrap();
    assert_eq!(keys, vec!["keys/alpha/lifetime/tenant:1", "keys/alpha/roots/00000001"]);
    let _ = KEY_STORE;
}

#[tokio::test]
async fn tenants_are_isolated_by_keys() {
    let w = World::new();
    let chain = w.replica(60_000);
    let dek = DataKey::generate().unwrap();
    let a = chain.wrap("alpha", &KeyScope::Tenant, None, &dek, b"aad").await.unwrap();
    chain.wrap("beta", &KeyScope::Tenant, None, &dek, b"aad").await.unwrap();
    // Same id `tenant:1`, same AAD, but beta's lifetime key is another key.
    assert!(matches!(chain.unwrap("beta", &a, b"aad").await, Err(KeyError::Unwrap)));
    // A lifetime record copied from alpha's store into beta's does not unwrap for beta (context binds the tenant).
    let store = &chain.tenant("alpha").unwrap().store;
    let rec: LifetimeRecord = store.get("keys/alpha/lifetime/tenant:1").await.unwrap().unwrap();
    assert!(chain.unwrap_record("beta", &rec).await.is_err());
}

#[tokio::test]
async fn cache_saves_provider_round_trips() {
    let w = World::new();
    let writer = w.replica(60_000);
    let mut wrapped = Vec::new();
    for i in 0..20u8 {
        let dek = DataKey::from_bytes([i; 32]);
        wrapped.push(writer.wrap("alpha", &KeyScope::Tenant, None, &dek, &[i]).await.unwrap());
    }
    // A second replica, cold: one provider unwrap for 20 objects, 19 cache hits.
    let before = w.provider.unwraps.load(Ordering::SeqCst);
    let reader = w.replica(60_000);
    for (i, wk) in wrapped.iter().enumerate() {
        assert_eq!(reader.unwrap("alpha", wk, &[i as u8]).await.unwrap().as_bytes(), &[i as u8; 32]);
    }
    assert_eq!(w.provider.unwraps.load(Ordering::SeqCst) - before, 1);
    assert_eq!(reader.key_cache_stats().hits, 19);
    // Without a cache every read costs a round trip.
    let before = w.provider.unwraps.load(Ordering::SeqCst);
    let uncached = w.replica(0);
    for (i, wk) in wrapped.iter().enumerate() {
        uncached.unwrap("alpha", wk, &[i as u8]).await.unwrap();
    }
    assert_eq!(w.provider.unwraps.load(Ordering::SeqCst) - before, 20);
}

#[tokio::test]
async fn a_destroyed_key_stays_usable_only_until_the_ttl() {
    let w = World::new();
    let chain = w.replica(300);
    let dek = DataKey::generate().unwrap();
    let wk = chain.wrap("alpha", &KeyScope::Subject("ann".into()), None, &dek, b"x").await.unwrap();
    assert_eq!(wk.kek_id, subject_key_id("alpha", "ann"));
    // Another process shreds the subject: record deleted, tombstone written.
    let store = &chain.tenant("alpha").unwrap().store;
    let hash = subject_hash("alpha", "ann");
    store.delete(&names::lifetime("alpha", &wk.kek_id)).await.unwrap();
    let stone =
        Tombstone { shredded_at: "2026-11-24T00:00:00Z".into(), receipt: "receipts/alpha/00000001.json".into() };
    store.put(&names::shredded_subject("alpha", &hash), &stone, false).await.unwrap();
    // Within the TTL this replica still has it...
    assert!(chain.unwrap("alpha", &wk, b"x").await.is_ok());
    tokio::time::sleep(Duration::from_millis(350)).await;
    // ...after it, reads fail with the reason and writes for the subject are refused.
    match chain.unwrap("alpha", &wk, b"x").await {
        Err(KeyError::Destroyed(why)) => assert!(why.contains("shredded at 2026-11-24"), "{why}"),
        other => panic!("expected Destroyed, got {other:?}"),
    }
    match chain.wrap("alpha", &KeyScope::Subject("ann".into()), None, &dek, b"y").await {
        Err(KeyError::Refused(why)) => assert!(why.contains("shredded"), "{why}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    // Other subjects and the tenant key are unaffected.
    chain.wrap("alpha", &KeyScope::Subject("bob".into()), None, &dek, b"z").await.unwrap();
    chain.wrap("alpha", &KeyScope::Tenant, None, &dek, b"z").await.unwrap();
}

#[tokio::test]
async fn provider_outage_fails_closed_on_a_cold_cache() {
    let w = World::new();
    let warm = w.replica(60_000);
    let dek = DataKey::generate().unwrap();
    let wk = warm.wrap("alpha", &KeyScope::Tenant, None, &dek, b"x").await.unwrap();
    w.provider.down.store(true, Ordering::SeqCst);
    let cold = w.replica(60_000);
    assert!(matches!(cold.unwrap("alpha", &wk, b"x").await, Err(KeyError::Unavailable(_))));
    assert!(matches!(
        cold.wrap("alpha", &KeyScope::Subject("new".into()), None, &dek, b"x").await,
        Err(KeyError::Unavailable(_))
    ));
    // A replica that has the key cached keeps serving (up to the TTL).
    assert!(warm.unwrap("alpha", &wk, b"x").await.is_ok());
}

#[tokio::test]
async fn concurrent_first_writes_agree_on_one_key() {
    let w = World::new();
    let (a, b) = (w.replica(60_000), w.replica(60_000));
    let dek = DataKey::generate().unwrap();
    let ann = KeyScope::Subject("ann".into());
    let (wa, wb) = tokio::join!(a.wrap("alpha", &ann, None, &dek, b"x"), b.wrap("alpha", &ann, None, &dek, b"x"));
    let (wa, wb) = (wa.unwrap(), wb.unwrap());
    // Each replica opens what the other wrote: both used the key that won the conditional create.
    assert_eq!(b.unwrap("alpha", &wa, b"x").await.unwrap().as_bytes(), dek.as_bytes());
    assert_eq!(a.unwrap("alpha", &wb, b"x").await.unwrap().as_bytes(), dek.as_bytes());
}

#[test]
fn ids() {
    assert_eq!(tenant_key_id(3), "tenant:3");
    assert_eq!(parse_tenant_key_id("tenant:3"), Some(3));
    assert_eq!(parse_tenant_key_id("subject:ab"), None);
    assert!(subject_key_id("a", "ann").starts_with("subject:"));
}
