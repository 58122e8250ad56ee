//! Validation of the key sections: `key_provider(s):`, `key_cache:`, and each tenant's
//! `key_provider`, `key_store` and `data_subjects`.

use std::path::PathBuf;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::names::{is_bucket, is_endpoint, is_name, is_region, BUCKET_RULE, NAME_RULE};
use super::validate::{credentials, env_value, secret, Ctx, VBackend, VTenant};
use super::yaml::{RawKeyCache, RawKeyProvider, RawKeyStore, RawSubjectRule, Str};
use super::{
    DataSubjectRule, KeyCacheSettings, KeyProviderEntry, KeyProviderSettings, KeyStoreSettings, MasterKeySource,
    Secret, DEFAULT_AUDIT_BUCKET, DEFAULT_KEY_STORE_BUCKET,
};
use crate::core::keys::subject::KeyPattern;

/// Name of the provider given as `key_provider:` (the single form).
pub(super) const DEFAULT_PROVIDER: &str = "default";
/// Longest cache TTL accepted: a destroyed key must not stay usable for more than a day.
const MAX_TTL_SECONDS: u64 = 86_400;

/// A provider as far as it validated.
pub(super) struct VProvider {
    pub name: String,
    pub name_at: Location,
    pub settings: Option<KeyProviderSettings>,
}

/// Validates `key_provider:` / `key_providers:` (exactly one of them).
pub(super) fn providers(
    cx: &mut Ctx<'_>,
    single: Option<&Spanned<RawKeyProvider>>,
    many: Option<&Spanned<Vec<Spanned<RawKeyProvider>>>>,
    doc_start: Location,
) -> Vec<VProvider> {
    match (single, many) {
        (Some(one), None) => provider(cx, one, false).into_iter().collect(),
        (None, Some(list)) => {
            if list.value.is_empty() {
                cx.error(list.referenced, "at least one key provider is required");
            }
            let out: Vec<VProvider> = list.value.iter().filter_map(|p| provider(cx, p, true)).collect();
            for (i, p) in out.iter().enumerate() {
                if out.iter().take(i).any(|q| q.name == p.name) {
                    cx.error(p.name_at, format!("duplicate key provider name {:?}", p.name));
                }
            }
            out
        }
        (Some(_), Some(list)) => {
            cx.error(list.referenced, "give either `key_provider:` or `key_providers:`, not both");
            Vec::new()
        }
        (None, None) => {
            cx.error(doc_start, "missing `key_provider:` (or `key_providers:`): who holds the tenants' root keys");
            Vec::new()
        }
    }
}

fn provider(cx: &mut Ctx<'_>, raw: &Spanned<RawKeyProvider>, named: bool) -> Option<VProvider> {
    let p = &raw.value;
    let (name, name_at) = match (&p.name, named) {
        (Some(n), _) => (cx.checked(n, "key provider name", is_name, NAME_RULE), n.referenced),
        (None, false) => (Some(DEFAULT_PROVIDER.to_owned()), raw.referenced),
        (None, true) => {
            cx.error(raw.referenced, "a key provider in `key_providers:` needs `name:`");
            (None, raw.referenced)
        }
    };
    let kind = cx.text(&p.kind)?;
    let fields: [(&str, &[&str], Option<Location>); 11] = [
        ("keyring", &["local"], p.keyring.as_ref().map(|s| s.referenced)),
        ("master_key_env", &["local"], p.master_key_env.as_ref().map(|s| s.referenced)),
        ("master_key_file", &["local"], p.master_key_file.as_ref().map(|s| s.referenced)),
        ("endpoint", &["aws-kms"], p.endpoint.as_ref().map(|s| s.referenced)),
        ("region", &["local", "aws-kms", "pkcs11"], p.region.as_ref().map(|s| s.referenced)),
        ("credentials", &["aws-kms"], p.credentials.as_ref().map(|s| s.referenced)),
        ("deletion_window_days", &["aws-kms"], p.deletion_window_days.as_ref().map(|s| s.referenced)),
        ("module", &["pkcs11"], p.module.as_ref().map(|s| s.referenced)),
        ("token_label", &["pkcs11"], p.token_label.as_ref().map(|s| s.referenced)),
        ("pin_env", &["pkcs11"], p.pin_env.as_ref().map(|s| s.referenced)),
        ("pin_file", &["pkcs11"], p.pin_file.as_ref().map(|s| s.referenced)),
    ];
    let mut ok = true;
    if !["local", "aws-kms", "pkcs11"].contains(&kind.as_str()) {
        cx.error(p.kind.referenced, format!("unknown key provider kind {kind:?} (supported: local, aws-kms, pkcs11)"));
        return None;
    }
    for (field, kinds, at) in fields {
        if let (Some(at), false) = (at, kinds.contains(&kind.as_str())) {
            cx.error(at, format!("`{field}` is only valid for key providers of kind {}", kinds.join(", ")));
            ok = false;
        }
    }
    let settings = match kind.as_str() {
        "local" => local(cx, raw),
        "aws-kms" => aws_kms(cx, raw),
        _ => pkcs11(cx, raw),
    };
    Some(VProvider { name: name?, name_at, settings: settings.filter(|_| ok) })
}

fn required<'a>(
    cx: &mut Ctx<'_>,
    raw: &Spanned<RawKeyProvider>,
    field: Option<&'a Str>,
    what: &str,
) -> Option<&'a Str> {
    if field.is_none() {
        cx.error(raw.referenced, format!("key provider of kind {} needs {what}", raw.value.kind.value));
    }
    field
}

fn local(cx: &mut Ctx<'_>, raw: &Spanned<RawKeyProvider>) -> Option<KeyProviderSettings> {
    let p = &raw.value;
    let keyring = required(cx, raw, p.keyring.as_ref(), "`keyring: PATH`")
        .and_then(|k| cx.checked(k, "keyring path", |v| !v.is_empty(), "must not be empty"));
    let master_key = match (&p.master_key_env, &p.master_key_file) {
        (Some(var), None) => {
            env_value(cx, var, "master_key_env").map(|v| MasterKeySource::Value(Secret::new(v.to_string())))
        }
        (None, Some(path)) => cx
            .checked(path, "master_key_file", |v| !v.is_empty(), "must not be empty")
            .map(|v| MasterKeySource::File(PathBuf::from(v))),
        (Some(_), Some(second)) => {
            cx.error(second.referenced, "give exactly one of master_key_env or master_key_file, not both");
            None
        }
        (None, None) => {
            cx.error(
                raw.referenced,
                "key provider of kind local needs `master_key_env: VAR` or `master_key_file: PATH` (the keyring is \
                 encrypted under it; keep it away from the keyring's own backups)",
            );
            None
        }
    };
    let region = declared_region(cx, p.region.as_ref());
    Some(KeyProviderSettings::Local { keyring: PathBuf::from(keyring?), master_key: master_key?, region: region? })
}

fn aws_kms(cx: &mut Ctx<'_>, raw: &Spanned<RawKeyProvider>) -> Option<KeyProviderSettings> {
    let p = &raw.value;
    let endpoint = match &p.endpoint {
        None => Some(None),
        Some(s) => cx.checked(s, "endpoint", is_endpoint, "expected http://HOST[:PORT] or https://...").map(Some),
    };
    let region = required(cx, raw, p.region.as_ref(), "`region:` (e.g. eu-central-1)")
        .and_then(|r| cx.checked(r, "region", is_region, "expected lowercase letters, digits and '-'"));
    let creds = match &p.credentials {
        None => {
            cx.error(raw.referenced, "key provider of kind aws-kms needs `credentials:`");
            None
        }
        Some(c) => credentials(cx, c),
    };
    let days = match &p.deletion_window_days {
        None => Some(7),
        Some(d) if (7..=30).contains(&d.value) => Some(d.value),
        Some(d) => {
            cx.error(d.referenced, format!("deletion_window_days {} is outside AWS KMS's 7..=30", d.value));
            None
        }
    };
    let (access_key_id, secret_access_key) = creds?;
    Some(KeyProviderSettings::AwsKms {
        endpoint: endpoint?,
        region: region?,
        access_key_id,
        secret_access_key,
        deletion_window_days: days?,
    })
}

fn pkcs11(cx: &mut Ctx<'_>, raw: &Spanned<RawKeyProvider>) -> Option<KeyProviderSettings> {
    let p = &raw.value;
    let module = required(cx, raw, p.module.as_ref(), "`module: PATH` (the PKCS#11 library)")
        .and_then(|m| cx.checked(m, "module", |v| !v.is_empty(), "must not be empty"));
    let token_label = required(cx, raw, p.token_label.as_ref(), "`token_label:`")
        .and_then(|t| cx.checked(t, "token_label", |v| !v.is_empty() && v.len() <= 32, "1 to 32 characters"));
    let pin = secret(cx, raw.referenced, (p.pin_env.as_ref(), "pin_env"), (p.pin_file.as_ref(), "pin_file"));
    let region = declared_region(cx, p.region.as_ref());
    Some(KeyProviderSettings::Pkcs11 {
        module: PathBuf::from(module?),
        token_label: token_label?,
        pin: pin?,
        region: region?,
    })
}

/// An optional declared `region:` (where a keyring file or an HSM is), for residency.
fn declared_region(cx: &mut Ctx<'_>, raw: Option<&Str>) -> Option<Option<String>> {
    match raw {
        None => Some(None),
        Some(s) => cx.checked(s, "region", is_region, "expected lowercase letters, digits and '-'").map(Some),
    }
}

/// `key_cache:`; defaults when absent.
pub(super) fn cache(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawKeyCache>>) -> Option<KeyCacheSettings> {
    let mut out = KeyCacheSettings::default();
    let Some(raw) = raw else { return Some(out) };
    let mut ok = true;
    if let Some(ttl) = &raw.value.ttl_seconds {
        if ttl.value > MAX_TTL_SECONDS {
            cx.error(ttl.referenced, format!("ttl_seconds {} is above {MAX_TTL_SECONDS} (one day)", ttl.value));
            ok = false;
        }
        out.ttl = Duration::from_secs(ttl.value);
    }
    if let Some(max) = &raw.value.max_entries {
        match usize::try_from(max.value) {
            Ok(n) if n >= 1 => out.max_entries = n,
            _ => {
                cx.error(max.referenced, "max_entries must be at least 1");
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// A tenant's key fields as far as they validated.
pub(super) struct VTenantKeys {
    pub provider: Option<Spanned<String>>,
    pub store_backend: Option<Spanned<String>>,
    /// `None`: the default, `<bucket_prefix>blobseal-keys`.
    pub store_bucket: Option<String>,
    /// `None`: the default, `<bucket_prefix>blobseal-audit`.
    pub audit_bucket: Option<String>,
    pub data_subjects: Vec<DataSubjectRule>,
}

pub(super) fn tenant_keys(
    cx: &mut Ctx<'_>,
    provider: Option<&Str>,
    store: Option<&Spanned<RawKeyStore>>,
    subjects: Option<&Spanned<Vec<Spanned<RawSubjectRule>>>>,
) -> VTenantKeys {
    let respan = |s: &Str, value: String| Spanned { value, ..s.clone() };
    let provider = provider.and_then(|p| cx.text(p).map(|v| respan(p, v)));
    let store_backend = store.and_then(|s| s.value.backend.as_ref()).and_then(|b| cx.text(b).map(|v| respan(b, v)));
    let store_bucket = store
        .and_then(|s| s.value.bucket.as_ref())
        .and_then(|b| cx.checked(b, "key store bucket", is_bucket, BUCKET_RULE));
    let audit_bucket = store
        .and_then(|s| s.value.audit_bucket.as_ref())
        .and_then(|b| cx.checked(b, "audit bucket", is_bucket, BUCKET_RULE));
    let mut data_subjects = Vec::new();
    for rule in subjects.map(|s| s.value.as_slice()).unwrap_or_default() {
        match (&rule.value.header, &rule.value.key_pattern) {
            (Some(h), None) => {
                let Some(v) = cx.text(h) else { continue };
                let lower = v.to_ascii_lowercase();
                match lower.strip_prefix("x-amz-meta-").filter(|n| !n.is_empty()) {
                    Some(name) => data_subjects.push(DataSubjectRule::Metadata(name.to_owned())),
                    None => {
                        cx.error(h.referenced, format!("header {v:?} must be a user-metadata header x-amz-meta-NAME"))
                    }
                }
            }
            (None, Some(p)) => {
                let Some(v) = cx.text(p) else { continue };
                match KeyPattern::parse(&v) {
                    Ok(_) => data_subjects.push(DataSubjectRule::KeyPattern(v)),
                    Err(why) => cx.error(p.referenced, format!("key_pattern {v:?}: {why}")),
                }
            }
            _ => cx.error(rule.referenced, "a data_subjects entry needs exactly one of `header:` or `key_pattern:`"),
        }
    }
    VTenantKeys { provider, store_backend, store_bucket, audit_bucket, data_subjects }
}

/// Resolves each tenant's provider (the only one when there is one) and key-store backend (its
/// default backend unless given), reporting unknown names.
pub(super) fn resolve(cx: &mut Ctx<'_>, providers: &[VProvider], backends: &[VBackend], tenants: &mut [VTenant]) {
    let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
    for t in tenants.iter_mut() {
        let chosen = match &t.keys_cfg.provider {
            Some(p) if names.contains(&p.value.as_str()) => Some(p.value.clone()),
            Some(p) => {
                cx.error(p.referenced, format!("unknown key provider {:?} (defined: {})", p.value, names.join(", ")));
                None
            }
            None if names.len() == 1 => names.first().map(|n| (*n).to_owned()),
            None => {
                if !names.is_empty() {
                    cx.error(
                        t.name_at,
                        format!("tenant {} needs `key_provider:` (defined: {})", t.name, names.join(", ")),
                    );
                }
                None
            }
        };
        t.key_provider = chosen;
        if let Some(b) = &t.keys_cfg.store_backend {
            if !backends.iter().any(|v| v.name == b.value) {
                let all: Vec<&str> = backends.iter().map(|v| v.name.as_str()).collect();
                cx.error(b.referenced, format!("unknown backend {:?} (defined: {})", b.value, all.join(", ")));
            }
        }
    }
}

/// The validated entries, in file order.
pub(super) fn into_entries(providers: Vec<VProvider>) -> Vec<KeyProviderEntry> {
    providers
        .into_iter()
        .filter_map(|p| p.settings.map(|settings| KeyProviderEntry { name: p.name, settings }))
        .collect()
}

/// A tenant's key-store settings once its default backend is known; the default bucket is
/// `<bucket_prefix>blobseal-keys` on the default backend (inside the tenant's own name space).
pub(super) fn key_store(t: &VTenant) -> KeyStoreSettings {
    let backend = t
        .keys_cfg
        .store_backend
        .as_ref()
        .map(|b| b.value.clone())
        .or_else(|| t.default_backend.as_ref().map(|d| d.value.clone()))
        .unwrap_or_default();
    let bucket = t
        .keys_cfg
        .store_bucket
        .clone()
        .unwrap_or_else(|| format!("{}{DEFAULT_KEY_STORE_BUCKET}", t.prefix.as_deref().unwrap_or_default()));
    let audit_bucket = t
        .keys_cfg
        .audit_bucket
        .clone()
        .unwrap_or_else(|| format!("{}{DEFAULT_AUDIT_BUCKET}", t.prefix.as_deref().unwrap_or_default()));
    KeyStoreSettings { backend, bucket, audit_bucket }
}
