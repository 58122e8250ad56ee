//! Validation of `kind: azure` backends: the endpoint (and that it names the configured account),
//! the account name, the declared region (Azure's data plane cannot be asked where an account is,
//! so the declaration is what residency checks, like an fs backend's), the redundancy (a
//! geo-redundant account needs a region with a known pair) and exactly one credential.

use serde_saphyr::Spanned;

use super::names::{is_azure_account, is_region, AZURE_ACCOUNT_RULE};
use super::validate::{secret, Ctx};
use super::yaml::{RawBackend, RawCredentials, Str};
use super::{AzureAuth, AzureRedundancy, BackendKind, Secret};
use crate::core::policy::regions::{azure_paired_region, region as builtin_region, Cloud};
use crate::core::policy::residency::RegionTable;

const ENDPOINT_FORM: &str = "https://ACCOUNT.blob.core.windows.net, or an emulator's http://HOST:PORT/ACCOUNT";

/// The `kind: azure` fields of one backend (fields of other kinds are reported by the caller).
/// `table` is the residency table with the config's additions, so a region Azure opened after the
/// built-in table was checked can be declared once it is added under `residency.regions`.
pub(super) fn azure_backend(cx: &mut Ctx<'_>, raw: &Spanned<RawBackend>, table: &RegionTable) -> Option<BackendKind> {
    let b = &raw.value;
    let account = match &b.account {
        None => {
            cx.error(raw.referenced, "azure backend needs `account:` (the storage account name)");
            None
        }
        Some(s) => cx.checked(s, "account", is_azure_account, AZURE_ACCOUNT_RULE),
    };
    let endpoint = match &b.endpoint {
        None => {
            cx.error(raw.referenced, format!("azure backend needs `endpoint:` ({ENDPOINT_FORM})"));
            None
        }
        Some(s) => endpoint(cx, s, account.as_deref()),
    };
    let region = match &b.region {
        None => {
            cx.error(
                raw.referenced,
                "azure backend needs `region:` (where the storage account is, e.g. uksouth): Azure cannot be asked, \
                 so residency relies on this declaration",
            );
            None
        }
        Some(s) => azure_region(cx, s, table),
    };
    let redundancy = redundancy(cx, b.redundancy.as_ref(), region.as_deref());
    let credentials = match &b.credentials {
        None => {
            cx.error(
                raw.referenced,
                "azure backend needs `credentials:` (account_key_env/_file or sas_token_env/_file)",
            );
            None
        }
        Some(c) => credentials(cx, c),
    };
    Some(BackendKind::Azure {
        endpoint: endpoint?,
        account: account?,
        region: region?,
        redundancy: redundancy?,
        credentials: credentials?,
    })
}

/// An http(s) URL with a host and nothing a request would not keep, naming `account` where it can:
/// requests are signed for `account`, so a URL for another account fails on every request.
fn endpoint(cx: &mut Ctx<'_>, s: &Str, account: Option<&str>) -> Option<String> {
    let v = cx.text(s)?;
    let problem = match url::Url::parse(&v) {
        Err(e) => Some(format!("not a URL ({e})")),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => Some("expected http:// or https://".to_owned()),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("no host".to_owned()),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            Some("no user or password in the URL (they go under `credentials:`)".to_owned())
        }
        Ok(u) if u.query().is_some() || u.fragment().is_some() => {
            Some("no query or fragment (a SAS token goes under `credentials:`)".to_owned())
        }
        Ok(u) => account.and_then(|account| account_mismatch(&u, account)),
    };
    match problem {
        None => Some(v),
        Some(why) => {
            cx.error(s.referenced, format!("invalid endpoint {v:?}: {why}; expected {ENDPOINT_FORM}"));
            None
        }
    }
}

/// Why `url` cannot be `account`'s blob endpoint, if it cannot: Azure's own hosts start with the
/// account, and an emulator's path is the account (a path of anything else would prefix every
/// container).
fn account_mismatch(url: &url::Url, account: &str) -> Option<String> {
    let host = url.host_str().unwrap_or_default();
    let segments: Vec<&str> = url.path().split('/').filter(|p| !p.is_empty()).collect();
    match segments.as_slice() {
        [] => {
            let first = host.split('.').next().unwrap_or_default();
            (host.contains(".blob.core.") && first != account)
                .then(|| format!("the host is account {first:?}'s, but `account:` is {account:?}"))
        }
        [only] if *only == account => None,
        _ => Some(format!("the path must be empty or the account (/{account})")),
    }
}

/// A region name of Azure's in the residency table (built in, or added under `residency.regions`).
fn azure_region(cx: &mut Ctx<'_>, s: &Str, table: &RegionTable) -> Option<String> {
    let v = cx.checked(s, "region", is_region, "expected lowercase letters, digits and '-'")?;
    match builtin_region(&v) {
        Some(r) if r.cloud == Cloud::Azure => Some(v),
        Some(r) => {
            cx.error(
                s.referenced,
                format!("region {v:?} is an {} region, not an Azure one (Azure names look like uksouth)", r.cloud),
            );
            None
        }
        // Config additions are trusted like fs regions: the operator vouches for the name.
        None if table.country_of(&v).is_some() => Some(v),
        None => {
            cx.error(
                s.referenced,
                format!(
                    "unknown Azure region {v:?}: expected a programmatic name such as uksouth or westeurope \
                     (docs/RESIDENCY.md lists them; add a newer one under residency.regions)"
                ),
            );
            None
        }
    }
}

/// `redundancy:`, default lrs. A geo-redundant kind copies every write to the region's pair, so
/// it is refused where the pair is unknown: residency could not say where that copy is.
fn redundancy(cx: &mut Ctx<'_>, raw: Option<&Str>, region: Option<&str>) -> Option<AzureRedundancy> {
    let Some(s) = raw else { return Some(AzureRedundancy::Lrs) };
    let v = cx.text(s)?;
    let Some(r) = AzureRedundancy::ALL.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(&v)) else {
        cx.error(s.referenced, format!("unknown redundancy {v:?}: expected lrs, zrs, grs, ragrs, gzrs or ragzrs"));
        return None;
    };
    if let Some(region) = region.filter(|_| r.is_geo()) {
        if azure_paired_region(region).is_none() {
            cx.error(
                s.referenced,
                format!(
                    "redundancy {r} copies the data to the region paired with {region}, and {region} has no \
                     Azure region pair, so that copy would have no known place: use lrs or zrs"
                ),
            );
            return None;
        }
    }
    Some(r)
}

/// Exactly one of an account key or a SAS token, each from the environment or a file.
fn credentials(cx: &mut Ctx<'_>, raw: &Spanned<RawCredentials>) -> Option<AzureAuth> {
    let c = &raw.value;
    let s3_fields = [
        ("access_key_id", &c.access_key_id),
        ("access_key_id_env", &c.access_key_id_env),
        ("secret_access_key_env", &c.secret_access_key_env),
        ("secret_access_key_file", &c.secret_access_key_file),
    ];
    let mut ok = true;
    for (field, value) in s3_fields {
        if let Some(v) = value {
            cx.error(v.referenced, format!("`{field}` is only valid in s3 backend and aws-kms credentials"));
            ok = false;
        }
    }
    let key = c.account_key_env.as_ref().or(c.account_key_file.as_ref());
    let sas = c.sas_token_env.as_ref().or(c.sas_token_file.as_ref());
    let auth = match (key, sas) {
        (Some(_), Some(second)) => {
            cx.error(second.referenced, "give an account key or a SAS token, not both");
            None
        }
        (None, None) => {
            cx.error(
                raw.referenced,
                "missing secret: give account_key_env, account_key_file, sas_token_env or sas_token_file (inline \
                 secrets are not supported)",
            );
            None
        }
        (Some(at), None) => {
            let value = secret(
                cx,
                raw.referenced,
                (c.account_key_env.as_ref(), "account_key_env"),
                (c.account_key_file.as_ref(), "account_key_file"),
            )?;
            checked_secret(
                cx,
                at,
                value,
                is_account_key,
                "the account key is not base64 (copy key1 or key2 from the storage account's access keys)",
            )
            .map(AzureAuth::AccountKey)
        }
        (None, Some(at)) => {
            let value = secret(
                cx,
                raw.referenced,
                (c.sas_token_env.as_ref(), "sas_token_env"),
                (c.sas_token_file.as_ref(), "sas_token_file"),
            )?;
            checked_secret(
                cx,
                at,
                value,
                is_sas_token,
                "not a SAS token: expected a query string such as sv=...&sp=...&sig=...",
            )
            .map(AzureAuth::Sas)
        }
    };
    auth.filter(|_| ok)
}

/// `value` if `ok`; otherwise an error at `at` that describes the rule and never quotes the secret.
fn checked_secret(cx: &mut Ctx<'_>, at: &Str, value: Secret, ok: fn(&str) -> bool, why: &str) -> Option<Secret> {
    if ok(value.expose()) || cx.is_offline_stand_in(value.expose()) {
        Some(value)
    } else {
        cx.error(at.referenced, why);
        None
    }
}

/// Base64 of some bytes, as the backend decodes it for SharedKey signing (surrounding space ignored).
fn is_account_key(key: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(key.trim()).is_ok_and(|k| !k.is_empty())
}

/// A query string (leading `?` optional) carrying a signature.
fn is_sas_token(token: &str) -> bool {
    token.trim_start_matches('?').split('&').any(|p| p.strip_prefix("sig=").is_some_and(|s| !s.is_empty()))
}
