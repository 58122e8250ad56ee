//! Raw YAML structs → validated [`Settings`], collecting every problem with its position.
//!
//! Each section is checked on its own here; checks that relate sections (references, duplicates,
//! prefix overlaps) live in `cross.rs`. An item whose fields are invalid is still passed on by
//! name so that references to it do not produce a second, misleading "unknown ..." error.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_saphyr::{Location, Spanned};
use zeroize::Zeroizing;

use super::azure_front::{self, VAzureAccount};
use super::cross;
use super::interpolate::{interpolate, is_var_name};
use super::keys::{self as key_cfg, VTenantKeys};
use super::names::{
    is_bucket, is_domain, is_endpoint, is_key_id, is_name, is_prefix, is_region, BUCKET_RULE, NAME_RULE, PREFIX_RULE,
};
use super::policy::{self as policy_cfg, VTenantPolicy};
use super::yaml::{sanitize, RawBackend, RawConfig, RawCredentials, RawRoute, RawTenant, Str};
use super::{
    AccessKey, BackendKind, BackendSettings, BucketRoute, ConfigError, Diagnostic, Secret, Settings, TenantSettings,
};
use crate::core::policy::residency::{RegionTable, ResidencyPolicy};

/// Listen address when the file has no `listen:`.
pub(super) const DEFAULT_LISTEN: &str = "127.0.0.1:9000";

/// Collects diagnostics and resolves `${VAR}` in scalars.
pub(super) struct Ctx<'a> {
    file: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    diags: Vec<Diagnostic>,
    /// `check-config --offline`: a secret that is not there (unset variable, missing file) is
    /// replaced by [`OFFLINE_SECRET`] instead of being an error.
    offline: bool,
}

/// What an absent secret reads as offline: base64 of 32 zero bytes, so that checks on a secret's
/// form (base64 account keys) pass; checks that cannot pass on it skip it via [`Ctx::is_offline_stand_in`].
const OFFLINE_SECRET: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

impl Ctx<'_> {
    /// Whether `value` is the stand-in for a secret that was not available offline.
    pub(super) fn is_offline_stand_in(&self, value: &str) -> bool {
        self.offline && value == OFFLINE_SECRET
    }

    /// Records a problem at `at`.
    pub(super) fn error(&mut self, at: Location, message: impl AsRef<str>) {
        self.diags.push(Diagnostic {
            file: self.file.to_owned(),
            line: at.line().max(1),
            column: at.column().max(1),
            message: sanitize(message.as_ref()),
        });
    }

    /// The interpolated value of a scalar, or `None` (with a diagnostic) if interpolation fails.
    pub(super) fn text(&mut self, s: &Str) -> Option<String> {
        match interpolate(&s.value, self.env) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(s.referenced, e.to_string());
                None
            }
        }
    }

    /// Like [`Ctx::text`] but also checks the value with `ok`, describing the rule in `rule`.
    pub(super) fn checked(&mut self, s: &Str, what: &str, ok: fn(&str) -> bool, rule: &str) -> Option<String> {
        let v = self.text(s)?;
        if ok(&v) {
            Some(v)
        } else {
            self.error(s.referenced, format!("invalid {what} {v:?}: {rule}"));
            None
        }
    }
}

/// A backend as far as it validated; `settings` is `None` if any field was invalid.
pub(super) struct VBackend {
    pub name: String,
    pub name_at: Location,
    pub settings: Option<BackendSettings>,
}

/// A tenant as far as it validated, with the positions cross-checks point at.
pub(super) struct VTenant {
    pub name: String,
    pub name_at: Location,
    pub default_backend: Option<Spanned<String>>,
    pub prefix: Option<String>,
    pub prefix_at: Location,
    /// Access keys that validated, with the position of each id.
    pub keys: Vec<(AccessKey, Location)>,
    /// Key fields as written.
    pub keys_cfg: VTenantKeys,
    /// The resolved key provider name (set by `keys::resolve`).
    pub key_provider: Option<String>,
    /// Residency, backups, retention as written.
    pub policy: VTenantPolicy,
    /// Presigned-URL rules.
    pub presign: super::PresignSettings,
    /// The Azure front end's account, if written.
    pub azure_account: Option<VAzureAccount>,
    /// The tenant's controller, for the Art. 30(2) record.
    pub controller: Option<super::parties::Controller>,
}

/// A route as far as it validated; `backend_bucket` is resolved later (it may need the prefix).
pub(super) struct VRoute {
    pub tenant: Spanned<String>,
    pub bucket: Spanned<String>,
    pub backend: Spanned<String>,
    pub backend_bucket: Option<Spanned<String>>,
    /// Backup targets of this bucket, with positions.
    pub backups: Vec<(crate::core::tenant::BackupTarget, Location)>,
}

/// Validates the whole document. All problems found are returned together, sorted by position.
pub(super) fn validate(
    raw: RawConfig,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
    offline: bool,
) -> Result<Settings, ConfigError> {
    let mut cx = Ctx { file, env, diags: Vec::new(), offline };
    let listen = match &raw.listen {
        None => DEFAULT_LISTEN.parse::<SocketAddr>().ok(),
        Some(s) => cx.text(s).and_then(|v| match v.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                cx.error(s.referenced, format!("invalid listen address {v:?}: expected IP:PORT, e.g. 127.0.0.1:9000"));
                None
            }
        }),
    };
    // Outer `None`: invalid (diagnostic recorded); inner `None`: not configured.
    let domain = match &raw.virtual_host_domain {
        None => Some(None),
        Some(s) => cx
            .checked(s, "virtual_host_domain", is_domain, "expected a lowercase DNS name such as s3.example.com")
            .map(Some),
    };
    let azure_listen = azure_front::listen(&mut cx, raw.azure_listen.as_ref());
    let azure_domain = azure_front::domain(&mut cx, raw.azure_domain.as_ref());
    let doc_start = raw.backends.referenced;
    let providers = key_cfg::providers(&mut cx, raw.key_provider.as_ref(), raw.key_providers.as_ref(), doc_start);
    let key_cache = key_cfg::cache(&mut cx, raw.key_cache.as_ref());
    let residency = policy_cfg::residency(&mut cx, raw.residency.as_ref());
    let sweeper = policy_cfg::sweeper(&mut cx, raw.sweeper.as_ref());
    let limits = super::limits::limits(&mut cx, raw.limits.as_ref());
    let audit = super::audit::audit(&mut cx, raw.audit.as_ref());
    let processor = super::parties::processor(&mut cx, raw.processor.as_ref());
    let operations = super::operations::operations(
        &mut cx,
        super::operations::RawOperations {
            admin_listen: raw.admin_listen.as_ref(),
            log_format: raw.log_format.as_ref(),
            log_level: raw.log_level.as_ref(),
            tls: raw.tls.as_ref(),
            shutdown: raw.shutdown.as_ref(),
            metrics_on_s3_port: raw.metrics_on_s3_port.as_ref(),
        },
    );

    if raw.backends.value.is_empty() {
        cx.error(raw.backends.referenced, "at least one backend is required");
    }
    if raw.tenants.value.is_empty() {
        cx.error(raw.tenants.referenced, "at least one tenant is required");
    }
    let backends: Vec<VBackend> =
        raw.backends.value.iter().filter_map(|b| backend(&mut cx, b, &residency.table)).collect();
    let mut tenants: Vec<VTenant> = raw.tenants.value.iter().filter_map(|t| tenant(&mut cx, t)).collect();
    key_cfg::resolve(&mut cx, &providers, &backends, &mut tenants);
    azure_front::check(
        &mut cx,
        listen,
        raw.azure_listen.as_ref().zip(azure_listen.flatten()),
        raw.tenants.value.iter().any(|t| t.value.azure_account.is_some()),
        &tenants,
    );
    let routes: Vec<VRoute> = raw.buckets.iter().filter_map(|r| route(&mut cx, r)).collect();
    let buckets = cross::check(&mut cx, &backends, &tenants, &routes);
    let key_providers = key_cfg::into_entries(providers);
    policy_cfg::check_backup_backends(&mut cx, &tenants, &backends, &routes);
    policy_cfg::check_static(&mut cx, &residency.table, &tenants, &backends, &key_providers, &routes);

    let mut diags = cx.diags;
    match (listen, domain, key_cache, azure_listen, azure_domain) {
        (Some(listen), Some(virtual_host_domain), Some(key_cache), Some(azure_listen), Some(azure_domain))
            if diags.is_empty() =>
        {
            Ok(Settings {
                listen,
                virtual_host_domain,
                azure_listen,
                azure_domain,
                tenants: tenants.into_iter().map(into_tenant).collect(),
                backends: backends.into_iter().filter_map(|b| b.settings).collect(),
                buckets,
                key_providers,
                key_cache,
                residency,
                sweeper,
                limits,
                operations,
                audit,
                processor,
                source: file.to_owned(),
                sha256: String::new(),
            })
        }
        _ => {
            diags.sort_by_key(|d| (d.line, d.column));
            Err(ConfigError::Invalid(diags))
        }
    }
}

fn into_tenant(t: VTenant) -> TenantSettings {
    let key_store = key_cfg::key_store(&t);
    let residency =
        ResidencyPolicy { tenant: t.name.clone(), allow: t.policy.residency.map(|(a, _)| a).unwrap_or_default() };
    TenantSettings {
        name: t.name,
        access_keys: t.keys.into_iter().map(|(k, _)| k).collect(),
        default_backend: t.default_backend.map(|s| s.value).unwrap_or_default(),
        bucket_prefix: t.prefix.unwrap_or_default(),
        key_provider: t.key_provider.unwrap_or_default(),
        key_store,
        data_subjects: t.keys_cfg.data_subjects,
        residency,
        backups: t.policy.backups.into_iter().map(|(b, _)| b).collect(),
        retention: t.policy.retention,
        presign: t.presign,
        azure_account: t.azure_account.and_then(|a| a.account),
        controller: t.controller,
    }
}

fn backend(cx: &mut Ctx<'_>, raw: &Spanned<RawBackend>, table: &RegionTable) -> Option<VBackend> {
    let b = &raw.value;
    let name = cx.checked(&b.name, "backend name", is_name, NAME_RULE);
    let kind = match cx.text(&b.kind)?.as_str() {
        kind @ ("fs" | "s3" | "azure") => {
            let fields_ok = fields_of_kind(cx, b, kind);
            let settings = match kind {
                "fs" => fs_backend(cx, raw),
                "s3" => s3_backend(cx, raw),
                _ => super::azure::azure_backend(cx, raw, table),
            };
            settings.filter(|_| fields_ok)
        }
        other => {
            cx.error(b.kind.referenced, format!("unknown backend kind {other:?} (supported: fs, s3, azure)"));
            None
        }
    };
    let name = name?;
    Some(VBackend {
        settings: kind.map(|kind| BackendSettings { name: name.clone(), kind }),
        name,
        name_at: b.name.referenced,
    })
}

/// Reports every field that belongs to other kinds of backend; `false` if there was one.
fn fields_of_kind(cx: &mut Ctx<'_>, b: &RawBackend, kind: &str) -> bool {
    let fields: [(&str, &[&str], Option<Location>); 6] = [
        ("path", &["fs"], b.path.as_ref().map(|s| s.referenced)),
        ("endpoint", &["s3", "azure"], b.endpoint.as_ref().map(|s| s.referenced)),
        ("force_path_style", &["s3"], b.force_path_style.as_ref().map(|s| s.referenced)),
        ("credentials", &["s3", "azure"], b.credentials.as_ref().map(|s| s.referenced)),
        ("account", &["azure"], b.account.as_ref().map(|s| s.referenced)),
        ("redundancy", &["azure"], b.redundancy.as_ref().map(|s| s.referenced)),
    ];
    let mut ok = true;
    for (field, kinds, at) in fields {
        if let (Some(at), false) = (at, kinds.contains(&kind)) {
            cx.error(at, format!("`{field}` is only valid for {} backends", kinds.join(" and ")));
            ok = false;
        }
    }
    ok
}

fn fs_backend(cx: &mut Ctx<'_>, raw: &Spanned<RawBackend>) -> Option<BackendKind> {
    let b = &raw.value;
    let Some(path) = &b.path else {
        cx.error(raw.referenced, "fs backend needs `path: DIRECTORY`");
        return None;
    };
    let root = cx.checked(path, "path", |p| !p.is_empty(), "must not be empty")?;
    // Optional for fs: where the disk is, declared for residency (an S3 backend's region is its own).
    let region = match &b.region {
        None => Some(None),
        Some(s) => cx.checked(s, "region", is_region, "expected lowercase letters, digits and '-'").map(Some),
    };
    Some(BackendKind::Fs { root: PathBuf::from(root), region: region? })
}

fn s3_backend(cx: &mut Ctx<'_>, raw: &Spanned<RawBackend>) -> Option<BackendKind> {
    let b = &raw.value;
    let endpoint = match &b.endpoint {
        None => Some(None),
        Some(s) => cx.checked(s, "endpoint", is_endpoint, "expected http://HOST[:PORT] or https://...").map(Some),
    };
    let region = match &b.region {
        None => {
            cx.error(raw.referenced, "s3 backend needs `region:` (e.g. us-east-1)");
            None
        }
        Some(s) => cx.checked(s, "region", is_region, "expected lowercase letters, digits and '-'"),
    };
    let creds = match &b.credentials {
        None => {
            cx.error(raw.referenced, "s3 backend needs `credentials:` (access_key_id and secret_access_key_env/_file)");
            None
        }
        Some(c) => credentials(cx, c),
    };
    let force_path_style = b.force_path_style.as_ref().is_some_and(|s| s.value);
    match (endpoint, region, creds) {
        (Some(endpoint), Some(region), Some((access_key_id, secret_access_key))) => {
            Some(BackendKind::S3 { endpoint, region, access_key_id, secret_access_key, force_path_style })
        }
        _ => None,
    }
}

pub(super) fn credentials(cx: &mut Ctx<'_>, raw: &Spanned<RawCredentials>) -> Option<(String, Secret)> {
    let c = &raw.value;
    let azure_fields = [
        ("account_key_env", &c.account_key_env),
        ("account_key_file", &c.account_key_file),
        ("sas_token_env", &c.sas_token_env),
        ("sas_token_file", &c.sas_token_file),
    ];
    let mut ok = true;
    for (field, value) in azure_fields {
        if let Some(v) = value {
            cx.error(v.referenced, format!("`{field}` is only valid in an azure backend's credentials"));
            ok = false;
        }
    }
    let id = match (&c.access_key_id, &c.access_key_id_env) {
        (Some(lit), None) => cx.checked(lit, "access_key_id", |v| !v.is_empty(), "must not be empty"),
        (None, Some(var)) => env_value(cx, var, "access_key_id_env").map(|v| v.to_string()),
        (Some(_), Some(second)) => {
            cx.error(second.referenced, "give exactly one of access_key_id or access_key_id_env, not both");
            None
        }
        (None, None) => {
            cx.error(raw.referenced, "missing access_key_id or access_key_id_env");
            None
        }
    };
    let secret = secret(
        cx,
        raw.referenced,
        (c.secret_access_key_env.as_ref(), "secret_access_key_env"),
        (c.secret_access_key_file.as_ref(), "secret_access_key_file"),
    );
    Some((id?, secret?)).filter(|_| ok)
}

/// A secret from exactly one of an environment variable or a file (never inline).
pub(super) fn secret(
    cx: &mut Ctx<'_>,
    item: Location,
    env: (Option<&Str>, &str),
    file: (Option<&Str>, &str),
) -> Option<Secret> {
    match (env.0, file.0) {
        (Some(_), Some(second)) => {
            cx.error(second.referenced, format!("give exactly one of {} or {}, not both", env.1, file.1));
            None
        }
        (None, None) => {
            cx.error(item, format!("missing secret: give {} or {} (inline secrets are not supported)", env.1, file.1));
            None
        }
        (Some(var), None) => env_value(cx, var, env.1).map(|v| Secret::new(v.to_string())),
        (None, Some(path)) => {
            let p = cx.text(path)?;
            let content = match std::fs::read_to_string(&p) {
                Ok(content) => Zeroizing::new(content),
                Err(_) if cx.offline => return Some(Secret::new(OFFLINE_SECRET.to_owned())),
                Err(e) => {
                    cx.error(path.referenced, format!("cannot read secret file {p}: {e}"));
                    return None;
                }
            };
            let trimmed = content.trim_end_matches(['\n', '\r']);
            if trimmed.is_empty() {
                cx.error(path.referenced, format!("secret file {p} is empty"));
                return None;
            }
            Some(Secret::new(trimmed.to_owned()))
        }
    }
}

/// The value of the environment variable named by `var` (itself interpolated), which must be set
/// and non-empty. The value is zeroized when the caller drops it.
pub(super) fn env_value(cx: &mut Ctx<'_>, var: &Str, field: &str) -> Option<Zeroizing<String>> {
    let name = cx.text(var)?;
    if !is_var_name(&name) {
        cx.error(var.referenced, format!("{field}: {name:?} is not an environment variable name"));
        return None;
    }
    match (cx.env)(&name).map(Zeroizing::new) {
        Some(v) if !v.is_empty() => Some(v),
        _ if cx.offline => Some(Zeroizing::new(OFFLINE_SECRET.to_owned())),
        Some(_) => {
            cx.error(var.referenced, format!("environment variable {name} ({field}) is empty"));
            None
        }
        None => {
            cx.error(var.referenced, format!("environment variable {name} ({field}) is not set"));
            None
        }
    }
}

fn tenant(cx: &mut Ctx<'_>, raw: &Spanned<RawTenant>) -> Option<VTenant> {
    let t = &raw.value;
    let name = cx.checked(&t.name, "tenant name", is_name, NAME_RULE);
    let default_backend = cx.text(&t.default_backend).map(|value| Spanned { value, ..t.default_backend.clone() });
    let (prefix, prefix_at) = match &t.bucket_prefix {
        None => (Some(String::new()), raw.referenced),
        Some(s) => (cx.checked(s, "bucket_prefix", is_prefix, PREFIX_RULE), s.referenced),
    };
    if t.access_keys.value.is_empty() {
        cx.error(t.access_keys.referenced, "a tenant needs at least one access key");
    }
    let mut keys = Vec::new();
    for k in &t.access_keys.value {
        let id = cx.checked(&k.value.id, "access key id", is_key_id, "expected 3 to 128 of A-Z a-z 0-9 _ -");
        let secret = secret(
            cx,
            k.referenced,
            (k.value.secret_env.as_ref(), "secret_env"),
            (k.value.secret_file.as_ref(), "secret_file"),
        );
        if let (Some(id), Some(secret)) = (id, secret) {
            keys.push((AccessKey { id, secret }, k.value.id.referenced));
        }
    }
    let keys_cfg = key_cfg::tenant_keys(cx, t.key_provider.as_ref(), t.key_store.as_ref(), t.data_subjects.as_ref());
    let policy = policy_cfg::tenant_policy(cx, t.residency.as_ref(), t.backups.as_ref(), t.retention.as_ref());
    let presign = super::limits::presign(cx, t.max_presign_seconds.as_ref(), t.sigv2_presigned_urls.as_ref());
    let azure_account = azure_front::account(cx, t.azure_account.as_ref());
    let controller = super::parties::controller(cx, t.controller.as_ref());
    Some(VTenant {
        name: name?,
        name_at: t.name.referenced,
        default_backend,
        prefix,
        prefix_at,
        keys,
        keys_cfg,
        key_provider: None,
        policy,
        presign,
        azure_account,
        controller,
    })
}

fn route(cx: &mut Ctx<'_>, raw: &Spanned<RawRoute>) -> Option<VRoute> {
    let r = &raw.value;
    let respan = |s: &Str, value: String| Spanned { value, ..s.clone() };
    let tenant = cx.text(&r.tenant).map(|v| respan(&r.tenant, v));
    let bucket = cx.checked(&r.bucket, "bucket", is_bucket, BUCKET_RULE).map(|v| respan(&r.bucket, v));
    let backend = cx.text(&r.backend).map(|v| respan(&r.backend, v));
    let backend_bucket = match &r.backend_bucket {
        None => Some(None),
        Some(s) => cx.checked(s, "backend_bucket", is_bucket, BUCKET_RULE).map(|v| Some(respan(s, v))),
    };
    let backups = policy_cfg::backup_list(cx, r.backups.as_ref());
    Some(VRoute { tenant: tenant?, bucket: bucket?, backend: backend?, backend_bucket: backend_bucket?, backups })
}

/// Converts a finished cross-check into a [`BucketRoute`].
pub(super) fn bucket_route(r: &VRoute, backend_bucket: String) -> BucketRoute {
    BucketRoute {
        tenant: r.tenant.value.clone(),
        bucket: r.bucket.value.clone(),
        backend: r.backend.value.clone(),
        backend_bucket,
        backups: r.backups.iter().map(|(b, _)| b.clone()).collect(),
    }
}
