//! A bounded, expiring cache for unwrapped lifetime keys and for each tenant's key state.
//!
//! Why: every object read or write needs its lifetime key, and unwrapping one costs a round trip to
//! the key provider (KMS, HSM) plus a key-store read. The cache turns that into one round trip per
//! key per TTL per replica. The TTL is also the bound on how long a destroyed key stays usable in a
//! replica that had it cached (docs/DESIGN.md states it), so entries are never served past it.
//! Values are dropped (and, for [`DataKey`](super::DataKey), zeroized) on eviction, on expiry and on
//! removal.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

/// What a cache is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// How long an entry may be served after it was loaded. Zero disables caching.
    pub ttl: Duration,
    /// Most entries kept; the least recently used goes first.
    pub max_entries: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(60), max_entries: 10_000 }
    }
}

/// Hit and miss counts, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

/// An LRU map whose entries expire `ttl` after insertion.
#[derive(Debug)]
pub struct TtlCache<K: Hash + Eq, V> {
    settings: CacheSettings,
    entries: Mutex<LruCache<K, (Instant, V)>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(settings: CacheSettings) -> Self {
        let cap = NonZeroUsize::new(settings.max_entries.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self { settings, entries: Mutex::new(LruCache::new(cap)), hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    pub fn ttl(&self) -> Duration {
        self.settings.ttl
    }

    /// The value for `key` if it was inserted less than `ttl` ago; an expired entry is dropped.
    pub fn get(&self, key: &K) -> Option<V> {
        let found = self.with(|map| {
            let fresh = match map.get(key) {
                Some((at, v)) if at.elapsed() < self.settings.ttl => return Some(v.clone()),
                Some(_) => false,
                None => true,
            };
            if !fresh {
                map.pop(key);
            }
            None
        });
        let (counter, kind) = if found.is_some() { (&self.hits, "hit") } else { (&self.misses, "miss") };
        counter.fetch_add(1, Ordering::Relaxed);
        crate::metrics::get().key_cache.get_or_create(&crate::metrics::KindLabels { kind }).inc();
        found
    }

    /// Remembers `value` for `key` (nothing, if the TTL is zero).
    pub fn insert(&self, key: K, value: V) {
        if self.settings.ttl.is_zero() {
            return;
        }
        self.with(|map| {
            map.put(key, (Instant::now(), value));
        });
    }

    /// Forgets `key` (after a local change that makes the entry wrong).
    pub fn remove(&self, key: &K) {
        self.with(|map| {
            map.pop(key);
        });
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats { hits: self.hits.load(Ordering::Relaxed), misses: self.misses.load(Ordering::Relaxed) }
    }

    pub fn len(&self) -> usize {
        self.with(|map| map.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A poisoned lock only means another thread panicked mid-update of a cache: the map itself is
    // still consistent (LruCache ops do not unwind halfway), so keep using it.
    fn with<R>(&self, f: impl FnOnce(&mut LruCache<K, (Instant, V)>) -> R) -> R {
        let mut guard = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Counts live values, to prove eviction and expiry drop them.
    #[derive(Clone)]
    struct Tracked {
        _live: Arc<()>,
    }

    #[test]
    fn hit_miss_expiry_and_bound() {
        let cache = TtlCache::new(CacheSettings { ttl: Duration::from_millis(200), max_entries: 2 });
        assert_eq!(cache.get(&1), None::<u32>);
        cache.insert(1, 10);
        cache.insert(2, 20);
        assert_eq!(cache.get(&1), Some(10));
        cache.insert(3, 30); // evicts 2, the least recently used
        assert_eq!(cache.get(&2), None);
        assert_eq!(cache.get(&3), Some(30));
        assert_eq!(cache.stats(), CacheStats { hits: 2, misses: 2 });
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(cache.get(&1), None, "expired");
        assert_eq!(cache.len(), 1, "the expired entry was dropped on access");
        cache.remove(&3);
        assert!(cache.is_empty());
    }

    #[test]
    fn values_are_dropped_on_eviction_and_zero_ttl_caches_nothing() {
        let live = Arc::new(());
        let cache = TtlCache::new(CacheSettings { ttl: Duration::from_secs(60), max_entries: 1 });
        cache.insert(1, Tracked { _live: Arc::clone(&live) });
        assert_eq!(Arc::strong_count(&live), 2);
        cache.insert(2, Tracked { _live: Arc::new(()) });
        assert_eq!(Arc::strong_count(&live), 1, "evicted value dropped");

        let off = TtlCache::new(CacheSettings { ttl: Duration::ZERO, max_entries: 10 });
        off.insert(1, 1);
        assert_eq!(off.get(&1), None);
    }
}
