//! Validation of the policy sections: `residency:` (the region table and the drift check), `sweeper:`,
//! and each tenant's `residency`, `backups` and `retention`; then the static residency check: every
//! place a restricted tenant's data, backups or keys can be (default backend, routed backends, key
//! store, key provider, backup targets, and the paired region of a geo-redundant azure backend)
//! must be allowed, or blobseal does not start.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::names::{is_bucket, is_region, BUCKET_RULE};
use super::validate::{Ctx, VBackend, VRoute, VTenant};
use super::yaml::{RawBackup, RawResidency, RawRetention, RawSweeper, RawTenantResidency};
use super::{BackupTarget, KeyProviderEntry, ResidencySettings, SweeperSettings};
use crate::core::policy::regions::is_country_code;
use crate::core::policy::residency::{Allow, RegionTable, ResidencyPolicy};
use crate::core::policy::retention::{ClientOverride, Keep, Pattern, RetentionPolicy, RetentionRule};

/// The longest drift-check and sweep intervals accepted (a day).
const MAX_INTERVAL_SECONDS: u64 = 86_400;

/// A tenant's policy fields as far as they validated, with positions for the static check.
#[derive(Debug, Default)]
pub(super) struct VTenantPolicy {
    pub residency: Option<(Vec<Allow>, Location)>,
    pub backups: Vec<(BackupTarget, Location)>,
    pub retention: RetentionPolicy,
}

/// `residency:` at the top.
pub(super) fn residency(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawResidency>>) -> ResidencySettings {
    let mut regions = BTreeMap::new();
    let Some(raw) = raw else { return ResidencySettings::default() };
    for r in raw.value.regions.iter().flatten() {
        let name = cx.checked(&r.value.name, "region name", is_region, "expected lowercase letters, digits and '-'");
        let country = cx.text(&r.value.country).map(|c| c.to_ascii_uppercase());
        match (name, country) {
            (Some(name), Some(c)) if is_country_code(&c) => {
                regions.insert(name, c);
            }
            (_, Some(c)) => {
                cx.error(r.value.country.referenced, format!("{c:?} is not an ISO 3166-1 alpha-2 country code"))
            }
            _ => {}
        }
    }
    let drift_check = raw.value.drift_check_seconds.as_ref().and_then(|d| interval(cx, d, "drift_check_seconds"));
    ResidencySettings { table: RegionTable::new(regions), drift_check }
}

fn interval(cx: &mut Ctx<'_>, raw: &Spanned<u64>, what: &str) -> Option<Duration> {
    match raw.value {
        0 => None,
        s if s <= MAX_INTERVAL_SECONDS => Some(Duration::from_secs(s)),
        s => {
            cx.error(raw.referenced, format!("{what} {s} is above {MAX_INTERVAL_SECONDS} (one day)"));
            None
        }
    }
}

/// `sweeper:` at the top.
pub(super) fn sweeper(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawSweeper>>) -> SweeperSettings {
    let mut out = SweeperSettings::default();
    let Some(raw) = raw else { return out };
    out.interval = raw.value.interval_seconds.as_ref().and_then(|i| interval(cx, i, "interval_seconds"));
    if let Some(rate) = &raw.value.max_deletes_per_second {
        if rate.value == 0 {
            cx.error(rate.referenced, "max_deletes_per_second must be at least 1");
        } else {
            out.max_deletes_per_second = rate.value;
        }
    }
    out
}

/// A tenant's `residency`, `backups` and `retention`.
pub(super) fn tenant_policy(
    cx: &mut Ctx<'_>,
    residency: Option<&Spanned<RawTenantResidency>>,
    backups: Option<&Spanned<Vec<Spanned<RawBackup>>>>,
    retention: Option<&Spanned<RawRetention>>,
) -> VTenantPolicy {
    let mut out = VTenantPolicy::default();
    if let Some(r) = residency {
        let mut allow = Vec::new();
        if r.value.allow.value.is_empty() {
            cx.error(r.value.allow.referenced, "residency.allow needs at least one jurisdiction or country");
        }
        for entry in &r.value.allow.value {
            let Some(text) = cx.text(entry) else { continue };
            match Allow::parse(&text) {
                Some(a) => allow.push(a),
                None => cx.error(
                    entry.referenced,
                    format!("{text:?} is neither a jurisdiction (EU, EEA, UK, CH, US, adequacy) nor a country code"),
                ),
            }
        }
        out.residency = Some((allow, r.value.allow.referenced));
    }
    out.backups = backup_list(cx, backups);
    if let Some(r) = retention {
        out.retention = retention_policy(cx, &r.value);
    }
    out
}

/// A `backups:` list (of a tenant or a bucket route), with positions.
pub(super) fn backup_list(
    cx: &mut Ctx<'_>,
    backups: Option<&Spanned<Vec<Spanned<RawBackup>>>>,
) -> Vec<(BackupTarget, Location)> {
    let mut out = Vec::new();
    for b in backups.map(|b| b.value.as_slice()).unwrap_or_default() {
        let backend = cx.text(&b.value.backend);
        let bucket = cx.checked(&b.value.bucket, "backup bucket", is_bucket, BUCKET_RULE);
        if let (Some(backend), Some(bucket)) = (backend, bucket) {
            out.push((BackupTarget { backend, bucket }, b.value.backend.referenced));
        }
    }
    out
}

fn client_override(cx: &mut Ctx<'_>, raw: Option<&super::yaml::Str>) -> ClientOverride {
    let Some(raw) = raw else { return ClientOverride::Never };
    let text = cx.text(raw).unwrap_or_default();
    ClientOverride::parse(&text).unwrap_or_else(|| {
        cx.error(raw.referenced, format!("client_override {text:?}: expected never, shorten, extend or any"));
        ClientOverride::Never
    })
}

/// An optional glob field.
fn pattern(cx: &mut Ctx<'_>, s: Option<&super::yaml::Str>, what: &str) -> Option<Pattern> {
    let s = s?;
    let text = cx.text(s)?;
    match Pattern::parse(&text) {
        Ok(p) => Some(p),
        Err(e) => {
            cx.error(s.referenced, format!("{what} {text:?}: {e}"));
            None
        }
    }
}

fn retention_policy(cx: &mut Ctx<'_>, raw: &RawRetention) -> RetentionPolicy {
    let mut out = RetentionPolicy::default();
    if let Some(d) = &raw.default {
        match cx.text(d).map(|t| Keep::parse(&t)) {
            Some(Ok(k)) => out.default = k,
            Some(Err(why)) => cx.error(d.referenced, why),
            None => {}
        }
    }
    out.default_override = client_override(cx, raw.client_override.as_ref());
    out.period_keys = raw.period_keys.as_ref().is_some_and(|p| p.value);
    for (i, r) in raw.rules.iter().flatten().enumerate() {
        let v = &r.value;
        let bucket = pattern(cx, v.bucket.as_ref(), "bucket");
        let (key, prefix) = match (&v.key, &v.prefix) {
            (Some(_), Some(p)) => {
                cx.error(p.referenced, "give `key` (a glob) or `prefix`, not both");
                (None, None)
            }
            (None, Some(p)) => (None, cx.text(p)),
            (k, None) => (pattern(cx, k.as_ref(), "key"), None),
        };
        let content_type = pattern(cx, v.content_type.as_ref(), "content_type");
        let keep = match cx.text(&v.keep).map(|t| Keep::parse(&t)) {
            Some(Ok(k)) => Some(k),
            Some(Err(why)) => {
                cx.error(v.keep.referenced, why);
                None
            }
            None => None,
        };
        let name = v.name.as_ref().and_then(|n| cx.text(n)).unwrap_or_else(|| format!("rule {}", i + 1));
        let client_override = client_override(cx, v.client_override.as_ref());
        if let Some(keep) = keep {
            out.rules.push(RetentionRule {
                name,
                bucket,
                key,
                prefix,
                content_type,
                metadata: v
                    .metadata
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect(),
                tags: v.tags.clone().unwrap_or_default(),
                keep,
                client_override,
            });
        }
    }
    out
}

/// The static residency check, after names are resolved: every place of a restricted tenant must be
/// allowed; one error per place, at the config node that puts the data there.
pub(super) fn check_static(
    cx: &mut Ctx<'_>,
    table: &RegionTable,
    tenants: &[VTenant],
    backends: &[VBackend],
    providers: &[KeyProviderEntry],
    routes: &[VRoute],
) {
    // Every (what, region) the backend keeps data in (a geo-redundant azure account's copy too);
    // `None`: the name is unknown or the backend invalid, already reported elsewhere.
    let places_of = |name: &str, what: String| -> Option<Vec<(String, Option<String>)>> {
        let settings = backends.iter().find(|b| b.name == name).and_then(|b| b.settings.as_ref())?;
        Some(settings.places(&what).into_iter().map(|(w, r)| (w, r.map(str::to_owned))).collect())
    };
    for t in tenants {
        let Some((allow, allow_at)) = &t.policy.residency else { continue };
        let policy = ResidencyPolicy { tenant: t.name.clone(), allow: allow.clone() };
        let check = |cx: &mut Ctx<'_>, places: Option<Vec<(String, Option<String>)>>, at: Location| {
            for (what, region) in places.into_iter().flatten() {
                if let Err(v) = policy.check(table, &what, region.as_deref()) {
                    cx.error(at, v.to_string());
                }
            }
        };
        if let Some(db) = &t.default_backend {
            check(cx, places_of(&db.value, format!("default backend {}", db.value)), db.referenced);
        }
        for r in routes.iter().filter(|r| r.tenant.value == t.name) {
            let what = format!("backend {} (bucket {})", r.backend.value, r.bucket.value);
            check(cx, places_of(&r.backend.value, what), r.backend.referenced);
            for (b, at) in &r.backups {
                let what = format!("backup target {}/{} (bucket {})", b.backend, b.bucket, r.bucket.value);
                check(cx, places_of(&b.backend, what), *at);
            }
        }
        // The key store on the default backend is the place already checked above.
        if let Some(s) =
            t.keys_cfg.store_backend.as_ref().filter(|s| t.default_backend.as_ref().is_none_or(|d| d.value != s.value))
        {
            check(cx, places_of(&s.value, format!("key store backend {}", s.value)), s.referenced);
        }
        if let Some(p) = t.key_provider.as_ref().and_then(|n| providers.iter().find(|p| p.name == *n)) {
            let at = t.keys_cfg.provider.as_ref().map_or(*allow_at, |p| p.referenced);
            let place = (format!("key provider {}", p.name), p.settings.region().map(str::to_owned));
            check(cx, Some(vec![place]), at);
        }
        for (b, at) in &t.policy.backups {
            check(cx, places_of(&b.backend, format!("backup target {}/{}", b.backend, b.bucket)), *at);
        }
    }
}

/// Reports backup targets naming unknown backends.
pub(super) fn check_backup_backends(cx: &mut Ctx<'_>, tenants: &[VTenant], backends: &[VBackend], routes: &[VRoute]) {
    let all = tenants.iter().flat_map(|t| t.policy.backups.iter()).chain(routes.iter().flat_map(|r| r.backups.iter()));
    for (b, at) in all {
        if !backends.iter().any(|v| v.name == b.backend) {
            let names: Vec<&str> = backends.iter().map(|v| v.name.as_str()).collect();
            cx.error(*at, format!("unknown backend {:?} (defined: {})", b.backend, names.join(", ")));
        }
    }
}
