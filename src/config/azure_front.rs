//! The Azure Blob front end's settings from YAML: `azure_listen:`, `azure_domain:` and each tenant's
//! `azure_account:` (a name and one or two keys), each checked on its own, then against each other:
//! account names are unique across tenants, a listener needs at least one account to serve, and it
//! needs an address of its own (not the S3 one).
//!
//! The key and name rules are shared with the embedded default (`embedded_azure.rs`).

use std::net::SocketAddr;

use serde_saphyr::{Location, Spanned};

use super::cross::unique;
use super::names::{is_azure_account, is_domain, AZURE_ACCOUNT_RULE};
use super::validate::{secret, Ctx, VTenant};
use super::yaml::{RawAzureAccount, Str};
use super::{AzureAccount, Secret};

/// Azure's key1 and key2: one can be rotated while clients still sign with the other.
pub(super) const MAX_KEYS: usize = 2;
/// The shortest key accepted, in decoded bytes (Azure's own keys are 64).
pub(super) const MIN_KEY_BYTES: usize = 16;
/// Why a key was refused; never quotes the key.
pub(super) const KEY_RULE: &str =
    "the azure account key is not standard base64 of at least 16 bytes (Azure's keys are base64 of 64 bytes)";

/// Standard (padded) base64 decoding to at least [`MIN_KEY_BYTES`] bytes: what SharedKey signing
/// needs, and long enough not to be guessed.
pub(super) fn is_account_key(key: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(key).is_ok_and(|k| k.len() >= MIN_KEY_BYTES)
}

/// Whether two listen addresses cannot both be bound: the same port on the same address, or on an
/// unspecified one (`0.0.0.0`, `[::]`) that covers the other. Port 0 (any free port) never collides.
pub(super) fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.port() != 0 && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// A tenant's `azure_account:` as far as it validated.
pub(super) struct VAzureAccount {
    /// The name, if valid, with its position (for the uniqueness check).
    pub name: Option<(String, Location)>,
    /// The whole account, if every part validated.
    pub account: Option<AzureAccount>,
}

/// `azure_listen:` as an address. Outer `None`: invalid (diagnostic recorded); inner: not configured.
pub(super) fn listen(cx: &mut Ctx<'_>, raw: Option<&Str>) -> Option<Option<SocketAddr>> {
    let Some(s) = raw else { return Some(None) };
    let v = cx.text(s)?;
    match v.parse::<SocketAddr>() {
        Ok(addr) => Some(Some(addr)),
        Err(_) => {
            cx.error(
                s.referenced,
                format!("invalid azure_listen address {v:?}: expected IP:PORT, e.g. 127.0.0.1:10000"),
            );
            None
        }
    }
}

/// `azure_domain:`, a DNS name like `virtual_host_domain`. Outer `None`: invalid; inner: not configured.
pub(super) fn domain(cx: &mut Ctx<'_>, raw: Option<&Str>) -> Option<Option<String>> {
    match raw {
        None => Some(None),
        Some(s) => {
            cx.checked(s, "azure_domain", is_domain, "expected a lowercase DNS name such as example.net").map(Some)
        }
    }
}

/// A tenant's `azure_account:`; `None` if not written. Every problem in it is recorded.
pub(super) fn account(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawAzureAccount>>) -> Option<VAzureAccount> {
    let a = &raw?.value;
    let name = cx.checked(&a.name, "azure account name", is_azure_account, AZURE_ACCOUNT_RULE);
    let listed = &a.keys.value;
    let mut ok = true;
    if listed.is_empty() {
        cx.error(a.keys.referenced, "an azure_account needs one or two keys (Azure's key1 and key2)");
        ok = false;
    }
    if let Some(extra) = listed.get(MAX_KEYS) {
        cx.error(
            extra.referenced,
            format!("an azure_account has at most {MAX_KEYS} keys (Azure's key1 and key2), found {}", listed.len()),
        );
        ok = false;
    }
    let mut keys: Vec<Secret> = Vec::new();
    for k in listed {
        let (env, file) = (k.value.key_env.as_ref(), k.value.key_file.as_ref());
        match secret(cx, k.referenced, (env, "key_env"), (file, "key_file")) {
            Some(key) if is_account_key(key.expose()) => keys.push(key),
            Some(_) => {
                cx.error(env.or(file).map_or(k.referenced, |s| s.referenced), KEY_RULE);
                ok = false;
            }
            None => ok = false,
        }
    }
    let account = match (&name, ok) {
        (Some(name), true) => Some(AzureAccount { name: name.clone(), keys }),
        _ => None,
    };
    Some(VAzureAccount { name: name.map(|n| (n, a.name.referenced)), account })
}

/// The checks that relate the Azure settings to each other and to the S3 listener: unique account
/// names, an account for `azure_listen` to serve (`any_account` counts accounts as written, valid or
/// not, so an invalid one is reported once), and a port of its own.
pub(super) fn check(
    cx: &mut Ctx<'_>,
    s3_listen: Option<SocketAddr>,
    azure_listen: Option<(&Str, SocketAddr)>,
    any_account: bool,
    tenants: &[VTenant],
) {
    let names = tenants.iter().filter_map(|t| t.azure_account.as_ref()?.name.as_ref());
    unique(cx, "azure account name", names.map(|(name, at)| (name.as_str(), *at)));
    let Some((raw, addr)) = azure_listen else { return };
    if !any_account {
        cx.error(
            raw.referenced,
            "azure_listen is set but no tenant has an azure_account (give a tenant `azure_account: { name, keys }`)",
        );
    }
    if let Some(s3) = s3_listen.filter(|s3| same_socket(*s3, addr)) {
        cx.error(
            raw.referenced,
            format!(
                "azure_listen {addr} collides with the S3 listen address {s3}: give the Azure front end its own port"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_sockets() {
        assert!(is_account_key(&"A".repeat(24)) && is_account_key("AAAAAAAAAAAAAAAAAAAAAA=="));
        for bad in [
            "",
            "AAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAA",
            "%%%%AAAAAAAAAAAAAAAAAAAA",
            " AAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(!is_account_key(bad), "{bad:?}");
        }
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(same_socket(a("127.0.0.1:9000"), a("127.0.0.1:9000")));
        assert!(same_socket(a("0.0.0.0:9000"), a("127.0.0.1:9000")) && same_socket(a("[::1]:9000"), a("[::]:9000")));
        assert!(!same_socket(a("127.0.0.1:9000"), a("127.0.0.1:10000")));
        assert!(!same_socket(a("127.0.0.1:9000"), a("127.0.0.2:9000")));
        assert!(!same_socket(a("127.0.0.1:0"), a("127.0.0.1:0")));
    }
}
