//! Key providers and the keychain from settings: one provider per `key_providers:` entry, one key
//! store per tenant (a reserved bucket on one of its backends), one cache per process.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{DataSubjectRule, KeyProviderSettings, MasterKeySource, Settings};
use crate::core::keys::aws_kms::{AwsKms, AwsKmsSettings};
use crate::core::keys::cache::CacheSettings;
use crate::core::keys::chain::{Keychain, TenantKeys};
use crate::core::keys::local::{LocalKeyring, MasterKey};
use crate::core::keys::pkcs11::{Pkcs11Provider, Pkcs11Settings};
use crate::core::keys::store::KeyStore;
use crate::core::keys::subject::{KeyPattern, SubjectRules, SubjectSource};
use crate::core::keys::{KeyError, KeyProvider};
use crate::core::tenant::TenantDirectory;

/// Opens one provider.
pub fn open_provider(settings: &KeyProviderSettings) -> Result<Arc<dyn KeyProvider>, KeyError> {
    Ok(match settings {
        KeyProviderSettings::Local { keyring, master_key, .. } => {
            let master = match master_key {
                MasterKeySource::Value(secret) => MasterKey::from_base64(secret.expose())?,
                MasterKeySource::File(path) => MasterKey::load_or_create(path)?,
            };
            Arc::new(LocalKeyring::open(keyring, master)?)
        }
        KeyProviderSettings::AwsKms { endpoint, region, access_key_id, secret_access_key, deletion_window_days } => {
            Arc::new(AwsKms::new(AwsKmsSettings {
                endpoint: endpoint.clone(),
                region: region.clone(),
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.expose().to_owned(),
                deletion_window_days: i32::try_from(*deletion_window_days).unwrap_or(7),
            })?)
        }
        KeyProviderSettings::Pkcs11 { module, token_label, pin, .. } => {
            Arc::new(Pkcs11Provider::open(Pkcs11Settings {
                module: module.clone(),
                token_label: token_label.clone(),
                pin: pin.expose().to_owned(),
            })?)
        }
    })
}

fn subject_rules(rules: &[DataSubjectRule]) -> Result<SubjectRules, KeyError> {
    let mut out = Vec::new();
    for r in rules {
        out.push(match r {
            DataSubjectRule::Metadata(name) => SubjectSource::Metadata(name.clone()),
            // Validated when the config was read; a failure here would be a bug, reported not panicked.
            DataSubjectRule::KeyPattern(p) => {
                SubjectSource::KeyPattern(KeyPattern::parse(p).map_err(KeyError::Keyring)?)
            }
        });
    }
    Ok(SubjectRules(out))
}

/// Opened key providers by name.
pub type Providers = HashMap<String, Arc<dyn KeyProvider>>;

/// Opens every configured provider (once per process: a config reload keeps them).
pub fn open_providers(settings: &Settings) -> Result<Providers, KeyError> {
    let mut providers: Providers = HashMap::new();
    for p in &settings.key_providers {
        let opened = open_provider(&p.settings).map_err(|e| match e {
            KeyError::Keyring(m) => KeyError::Keyring(format!("key provider {}: {m}", p.name)),
            KeyError::Unavailable(m) => KeyError::Unavailable(format!("key provider {}: {m}", p.name)),
            other => other,
        })?;
        providers.insert(p.name.clone(), Arc::new(super::metered_keys::MeteredProvider::new(&p.name, opened)));
    }
    Ok(providers)
}

/// Builds the keychain for every tenant over the opened `providers` and reserves each key store's
/// bucket in `directory` (no client can reach it). The key stores are touched lazily.
pub fn keychain(
    settings: &Settings,
    providers: &Providers,
    directory: &mut TenantDirectory,
) -> Result<Keychain, KeyError> {
    let cache = CacheSettings { ttl: settings.key_cache.ttl, max_entries: settings.key_cache.max_entries };
    let mut chain = Keychain::new(cache);
    for t in &settings.tenants {
        let provider = providers
            .get(t.key_provider.as_str())
            .cloned()
            .ok_or_else(|| KeyError::Keyring(format!("tenant {}: unknown key provider {}", t.name, t.key_provider)))?;
        let backend = directory.backend_named(&t.key_store.backend).ok_or_else(|| {
            KeyError::Keyring(format!("tenant {}: unknown key store backend {}", t.name, t.key_store.backend))
        })?;
        if settings.buckets.iter().any(|r| r.backend == t.key_store.backend && r.backend_bucket == t.key_store.bucket) {
            return Err(KeyError::Keyring(format!(
                "tenant {}: key store bucket {}/{} is also the target of a bucket route",
                t.name, t.key_store.backend, t.key_store.bucket
            )));
        }
        let audit = &t.key_store.audit_bucket;
        let routed = settings.buckets.iter().any(|r| r.backend == t.key_store.backend && r.backend_bucket == *audit);
        if routed || *audit == t.key_store.bucket {
            return Err(KeyError::Keyring(format!(
                "tenant {}: audit bucket {}/{audit} is also its key store or the target of a bucket route",
                t.name, t.key_store.backend
            )));
        }
        directory.reserve(&t.key_store.backend, &t.key_store.bucket);
        // The audit trail beside it is nobody's bucket either.
        directory.reserve(&t.key_store.backend, &t.key_store.audit_bucket);
        let keys = TenantKeys {
            provider,
            store: KeyStore::new(backend, t.key_store.bucket.clone()),
            subjects: subject_rules(&t.data_subjects)?,
            period_keys: t.retention.period_keys,
        };
        chain.add_tenant(&t.name, keys);
    }
    Ok(chain)
}
