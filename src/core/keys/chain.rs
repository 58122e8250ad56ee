//! The key hierarchy as the object service uses it: which lifetime key wraps a new object's data key,
//! and which one opens a stored object's.
//!
//! ```text
//!  provider root key (gen g)  ──wraps──▶  lifetime keys in the key store    ──wrap──▶  data keys
//!  local / aws-kms / pkcs11               tenant:N      (the tenant's)                  (one per object,
//!                                         subject:<h>   (one per data subject)           in its envelope)
//! ```
//! Lifetime keys are created on first use (by whichever replica gets there first: the key store's
//! conditional create decides) and cached with a TTL ([`super::cache`]). Destroying a lifetime key,
//! or the root generations that wrapped every copy of it, makes every object under it unreadable
//! wherever its bytes are: that is crypto-shredding (`crate::ops::shred`).

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::aead::{open_key, seal_key};
use super::cache::{CacheSettings, CacheStats, TtlCache};
use super::store::{names, KeyStore, LifetimeRecord, RootRecord, Tombstone};
use super::subject::{subject_hash, SubjectRules};
use super::{DataKey, KeyError, KeyProvider, WrapContext, WrappedKey};

/// Which lifetime key a new object is wrapped under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    /// The tenant's current key (`tenant:N`).
    Tenant,
    /// The data subject's key (`subject:<hash>`).
    Subject(String),
}

/// What the keychain needs to know about one tenant.
#[derive(Debug, Clone)]
pub struct TenantKeys {
    pub provider: Arc<dyn KeyProvider>,
    pub store: KeyStore,
    pub subjects: SubjectRules,
    /// Objects with a deadline are also bound to a key per deadline day (`period:YYYY-MM-DD`), which the
    /// sweeper destroys once the day has passed: even copies it cannot reach become unreadable.
    pub period_keys: bool,
}

/// A tenant's key state as the key store holds it (the part every write needs).
#[derive(Debug, Clone, Default)]
pub struct TenantState {
    /// Live root generations, oldest first (destroyed ones are removed from the store).
    pub roots: Vec<RootRecord>,
    /// Versions `N` of the `tenant:N` lifetime keys that exist, ascending.
    pub tenant_keys: Vec<u32>,
    /// Set once the tenant was shredded.
    pub shredded: Option<Tombstone>,
}

impl TenantState {
    /// The root generation new lifetime keys are wrapped under: the newest.
    pub fn current_root(&self) -> Option<&RootRecord> {
        self.roots.iter().max_by_key(|r| r.gen)
    }

    /// The tenant key new objects are wrapped under: the newest.
    pub fn current_tenant_key(&self) -> Option<u32> {
        self.tenant_keys.last().copied()
    }
}

/// The id of tenant key version `n`.
pub fn tenant_key_id(n: u32) -> String {
    format!("tenant:{n}")
}

/// The version of a `tenant:N` id.
pub fn parse_tenant_key_id(id: &str) -> Option<u32> {
    id.strip_prefix("tenant:")?.parse().ok()
}

/// The id of a deadline day's key.
pub fn period_key_id(day: time::Date) -> String {
    format!("period:{day}")
}

/// The day of a `period:YYYY-MM-DD` id.
pub fn parse_period_key_id(id: &str) -> Option<time::Date> {
    let text = id.strip_prefix("period:")?;
    time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

/// The scope part of an envelope's key id (`tenant:3` of `tenant:3+period:2026-12-28`).
pub fn scope_part(kek_id: &str) -> &str {
    kek_id.split_once('+').map_or(kek_id, |(scope, _)| scope)
}

/// The wrapping key of a `<scope>+period:<day>` id: HKDF-SHA256 over both keys, bound to the id.
fn combine(a: &DataKey, b: &DataKey, id: &str) -> Result<DataKey, KeyError> {
    use aws_lc_rs::hkdf;
    let mut ikm = zeroize::Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(a.as_bytes());
    ikm[32..].copy_from_slice(b.as_bytes());
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"blobseal/v1/combined-key").extract(&ikm[..]);
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    prk.expand(&[id.as_bytes()], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out[..]))
        .map_err(|_| KeyError::Keyring("key derivation failed".into()))?;
    Ok(DataKey::from_bytes(*out))
}

/// The id of a data subject's key.
pub fn subject_key_id(tenant: &str, subject: &str) -> String {
    format!("subject:{}", subject_hash(tenant, subject))
}

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Lifetime keys and tenant states, cached; shared by every request of a process.
#[derive(Debug)]
pub struct Keychain {
    tenants: HashMap<String, TenantKeys>,
    keys: TtlCache<(String, String), DataKey>,
    states: TtlCache<String, Arc<TenantState>>,
}

impl Keychain {
    pub fn new(cache: CacheSettings) -> Self {
        Self { tenants: HashMap::new(), keys: TtlCache::new(cache), states: TtlCache::new(cache) }
    }

    pub fn add_tenant(&mut self, name: &str, keys: TenantKeys) {
        self.tenants.insert(name.to_owned(), keys);
    }

    /// The cache TTL: the longest a destroyed key stays usable in this process.
    pub fn ttl(&self) -> std::time::Duration {
        self.keys.ttl()
    }

    /// Lifetime-key cache hits and misses (a miss costs a key-store read and a provider unwrap).
    pub fn key_cache_stats(&self) -> CacheStats {
        self.keys.stats()
    }

    pub fn tenant(&self, name: &str) -> Result<&TenantKeys, KeyError> {
        self.tenants.get(name).ok_or_else(|| KeyError::UnknownKey(format!("no keys configured for tenant {name}")))
    }

    /// `key` as a log line may show it: the subject segment of the tenant's key patterns replaced by
    /// `{subject}` (a data-subject id is personal data and never reaches a log). A tenant without
    /// keys here (a configuration error) gets the whole key hidden rather than risk a subject id.
    pub fn loggable_key<'k>(&self, tenant: &str, key: &'k str) -> std::borrow::Cow<'k, str> {
        match self.tenants.get(tenant) {
            Some(t) => t.subjects.redact_key(key),
            None => std::borrow::Cow::Borrowed("{key hidden}"),
        }
    }

    pub fn tenant_names(&self) -> impl Iterator<Item = &String> {
        self.tenants.keys()
    }

    /// The scope a new object with this key and metadata is wrapped under.
    pub fn scope_of(
        &self,
        tenant: &str,
        key: &str,
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> Result<KeyScope, KeyError> {
        let t = self.tenant(tenant)?;
        match t.subjects.subject_of(key, metadata) {
            Ok(Some(subject)) => Ok(KeyScope::Subject(subject)),
            Ok(None) => Ok(KeyScope::Tenant),
            Err(why) => Err(KeyError::Refused(why)),
        }
    }

    /// Wraps a data key for a new object under the scope's lifetime key, bound to `aad`.
    ///
    /// With `period` (the object's deadline day, for tenants with period keys) the wrapping key is
    /// derived from both the scope's key and the day's key (`kek_id` = `<scope id>+period:<day>`):
    /// destroying either makes the object unreadable.
    pub async fn wrap(
        &self,
        tenant: &str,
        scope: &KeyScope,
        period: Option<time::Date>,
        dek: &DataKey,
        aad: &[u8],
    ) -> Result<WrappedKey, KeyError> {
        let (scope_id, scope_key) = match scope {
            KeyScope::Tenant => self.current_tenant_key(tenant).await?,
            KeyScope::Subject(subject) => {
                let id = subject_key_id(tenant, subject);
                let key = self.named_key(tenant, &id, "writes for this data subject are refused").await?;
                (id, key)
            }
        };
        let (kek_id, kek) = match period.filter(|_| self.tenant(tenant).is_ok_and(|t| t.period_keys)) {
            None => (scope_id, scope_key),
            Some(day) => {
                let pid = period_key_id(day);
                let pkey =
                    self.named_key(tenant, &pid, "writes with a deadline on a destroyed day are refused").await?;
                let id = format!("{scope_id}+{pid}");
                let combined = combine(&scope_key, &pkey, &id)?;
                (id, combined)
            }
        };
        Ok(WrappedKey { blob: seal_key(&kek, dek, aad)?, kek_id })
    }

    /// Unwraps a stored object's data key. A lifetime key that no longer exists is
    /// [`KeyError::Destroyed`] with the reason (tenant, subject or deadline day shredded, key retired).
    pub async fn unwrap(&self, tenant: &str, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey, KeyError> {
        let kek = match wrapped.kek_id.split_once('+') {
            None => self.lifetime_key(tenant, &wrapped.kek_id).await?,
            Some((scope_id, pid)) => {
                let a = self.lifetime_key(tenant, scope_id).await?;
                let b = self.lifetime_key(tenant, pid).await?;
                combine(&a, &b, &wrapped.kek_id)?
            }
        };
        open_key(&kek, &wrapped.blob, aad)
    }

    /// The tenant's key state, from the cache or the key store.
    pub async fn state(&self, tenant: &str) -> Result<Arc<TenantState>, KeyError> {
        if let Some(s) = self.states.get(&tenant.to_owned()) {
            return Ok(s);
        }
        let s = Arc::new(self.load_state(tenant).await?);
        self.states.insert(tenant.to_owned(), Arc::clone(&s));
        Ok(s)
    }

    /// Reads the tenant's key state from the key store, bypassing the cache.
    pub async fn load_state(&self, tenant: &str) -> Result<TenantState, KeyError> {
        let store = &self.tenant(tenant)?.store;
        let mut roots = Vec::new();
        for key in store.list(&names::roots_prefix(tenant)).await? {
            if let Some(r) = store.get::<RootRecord>(&key).await? {
                roots.push(r);
            }
        }
        roots.sort_by_key(|r| r.gen);
        let prefix = names::lifetime(tenant, "tenant:");
        let mut tenant_keys: Vec<u32> =
            store.list(&prefix).await?.iter().filter_map(|k| k.strip_prefix(&prefix)?.parse().ok()).collect();
        tenant_keys.sort_unstable();
        let shredded = store.get::<Tombstone>(&names::shredded_tenant(tenant)).await?;
        Ok(TenantState { roots, tenant_keys, shredded })
    }

    /// Drops this process's cached state and keys of `tenant` (after an in-process change).
    pub fn forget(&self, tenant: &str, key_ids: &[String]) {
        self.states.remove(&tenant.to_owned());
        for id in key_ids {
            self.keys.remove(&(tenant.to_owned(), id.clone()));
        }
    }

    /// A lifetime key by id, unwrapped (cached).
    pub async fn lifetime_key(&self, tenant: &str, id: &str) -> Result<DataKey, KeyError> {
        let cache_key = (tenant.to_owned(), id.to_owned());
        if let Some(k) = self.keys.get(&cache_key) {
            return Ok(k);
        }
        let t = self.tenant(tenant)?;
        let Some(record) = t.store.get::<LifetimeRecord>(&names::lifetime(tenant, id)).await? else {
            return Err(self.why_missing(tenant, id).await);
        };
        let key = self.unwrap_record(tenant, &record).await?;
        self.keys.insert(cache_key, key.clone());
        Ok(key)
    }

    /// Unwraps a lifetime key record with its root (no cache).
    pub async fn unwrap_record(&self, tenant: &str, record: &LifetimeRecord) -> Result<DataKey, KeyError> {
        let t = self.tenant(tenant)?;
        let blob = BASE64.decode(&record.wrapped).map_err(|_| KeyError::Unwrap)?;
        let cx = WrapContext { tenant, key_id: &record.id };
        match t.provider.unwrap(&record.root_id, &blob, &cx).await {
            Err(KeyError::UnknownKey(_)) => Err(KeyError::Destroyed(format!(
                "the root key {} wrapping lifetime key {} was destroyed",
                record.root_id, record.id
            ))),
            other => other,
        }
    }

    /// Wraps `key` as lifetime key `id` under `root`.
    pub async fn wrap_record(
        &self,
        tenant: &str,
        id: &str,
        key: &DataKey,
        root: &RootRecord,
    ) -> Result<LifetimeRecord, KeyError> {
        let t = self.tenant(tenant)?;
        let blob = t.provider.wrap(&root.root_id, key, &WrapContext { tenant, key_id: id }).await?;
        Ok(LifetimeRecord {
            id: id.to_owned(),
            root_gen: root.gen,
            root_id: root.root_id.clone(),
            wrapped: BASE64.encode(blob),
            created: now(),
        })
    }

    async fn why_missing(&self, tenant: &str, id: &str) -> KeyError {
        let Ok(t) = self.tenant(tenant) else {
            return KeyError::Destroyed(format!("lifetime key {id} does not exist"));
        };
        if let Ok(Some(stone)) = t.store.get::<Tombstone>(&names::shredded_tenant(tenant)).await {
            return KeyError::Destroyed(format!("tenant {tenant}'s keys were shredded at {}", stone.shredded_at));
        }
        if parse_tenant_key_id(id).is_none() {
            if let Ok(Some(stone)) = t.store.get::<Tombstone>(&names::tombstone(tenant, id)).await {
                let what = if id.starts_with("period:") { "the deadline day's key" } else { "the data subject's key" };
                return KeyError::Destroyed(format!(
                    "{what} was shredded at {} (receipt {})",
                    stone.shredded_at, stone.receipt
                ));
            }
        }
        KeyError::Destroyed(format!(
            "key {id} does not exist for tenant {tenant} (retired, destroyed or never created)"
        ))
    }

    /// The current tenant key, creating the tenant's first root and `tenant:1` if there are none.
    async fn current_tenant_key(&self, tenant: &str) -> Result<(String, DataKey), KeyError> {
        let state = self.state(tenant).await?;
        if let Some(stone) = &state.shredded {
            return Err(KeyError::Refused(format!("tenant {tenant} was shredded at {}", stone.shredded_at)));
        }
        if let Some(n) = state.current_tenant_key() {
            let id = tenant_key_id(n);
            return Ok((id.clone(), self.lifetime_key(tenant, &id).await?));
        }
        let root = self.current_or_new_root(tenant, &state).await?;
        let id = tenant_key_id(1);
        let key = self.create_lifetime(tenant, &id, &root).await?;
        self.states.remove(&tenant.to_owned());
        Ok((id, key))
    }

    /// A subject's or a deadline day's key, created on first use; refused (with `refusal` and the
    /// time) once it was shredded, or once the tenant was.
    async fn named_key(&self, tenant: &str, id: &str, refusal: &str) -> Result<DataKey, KeyError> {
        if let Some(k) = self.keys.get(&(tenant.to_owned(), id.to_owned())) {
            return Ok(k);
        }
        let t = self.tenant(tenant)?;
        if let Some(record) = t.store.get::<LifetimeRecord>(&names::lifetime(tenant, id)).await? {
            let key = self.unwrap_record(tenant, &record).await?;
            self.keys.insert((tenant.to_owned(), id.to_owned()), key.clone());
            return Ok(key);
        }
        if let Some(stone) = t.store.get::<Tombstone>(&names::tombstone(tenant, id)).await? {
            return Err(KeyError::Refused(format!("{refusal}: its key was shredded at {}", stone.shredded_at)));
        }
        let state = self.state(tenant).await?;
        if let Some(stone) = &state.shredded {
            return Err(KeyError::Refused(format!("tenant {tenant} was shredded at {}", stone.shredded_at)));
        }
        let root = self.current_or_new_root(tenant, &state).await?;
        self.create_lifetime(tenant, id, &root).await
    }

    /// Creates lifetime key `id` under `root`, unless another replica created it first (then
    /// that one is used).
    pub async fn create_lifetime(&self, tenant: &str, id: &str, root: &RootRecord) -> Result<DataKey, KeyError> {
        let key = DataKey::generate()?;
        let record = self.wrap_record(tenant, id, &key, root).await?;
        let store = &self.tenant(tenant)?.store;
        if store.put(&names::lifetime(tenant, id), &record, true).await? {
            tracing::info!(tenant, key_id = id, root_gen = root.gen, "lifetime key created");
            self.keys.insert((tenant.to_owned(), id.to_owned()), key.clone());
            Ok(key)
        } else {
            self.lifetime_key(tenant, id).await
        }
    }

    async fn current_or_new_root(&self, tenant: &str, state: &TenantState) -> Result<RootRecord, KeyError> {
        if let Some(root) = state.current_root() {
            return Ok(root.clone());
        }
        match self.create_root_generation(tenant).await? {
            Some(root) => Ok(root),
            // Another replica created generation 1 at the same time: use theirs.
            None => self.load_state(tenant).await?.current_root().cloned().ok_or_else(|| {
                KeyError::Unavailable(format!("key store: tenant {tenant} has no root key after a concurrent create"))
            }),
        }
    }

    /// Creates the next root generation in the provider and records it. `None` if another process
    /// recorded that generation first (the provider key made here is then destroyed again).
    pub async fn create_root_generation(&self, tenant: &str) -> Result<Option<RootRecord>, KeyError> {
        let t = self.tenant(tenant)?;
        let state = self.load_state(tenant).await?;
        let gen = state.current_root().map_or(1, |r| r.gen.saturating_add(1));
        let root_id = t.provider.create_root(tenant).await?;
        let record = RootRecord {
            gen,
            root_id: root_id.clone(),
            provider: t.provider.kind().to_owned(),
            created: now(),
            destroyed: None,
            destroy_detail: None,
        };
        if t.store.put(&names::root(tenant, gen), &record, true).await? {
            tracing::info!(tenant, gen, root_id = %record.root_id, provider = t.provider.kind(), "root key created");
            self.states.remove(&tenant.to_owned());
            Ok(Some(record))
        } else {
            if let Err(e) = t.provider.destroy(tenant, &root_id).await {
                tracing::warn!(tenant, root_id, error = %e, "cannot destroy an unused root key");
            }
            Ok(None)
        }
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
