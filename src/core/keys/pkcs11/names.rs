//! The names this provider writes: root ids (`pkcs11:<tenant>:<n>`) and token labels
//! (`blobseal:<tenant>:<n>`). Pure functions, so the parsing is tested without a token.

use super::super::KeyError;

/// Prefix of the label (and id) of every root key object blobseal creates.
const LABEL_PREFIX: &str = "blobseal:";
/// Prefix of a root id handed out by this provider.
const ROOT_PREFIX: &str = "pkcs11:";

/// `pkcs11:<tenant>:<n>` → (`tenant`, `n`). The tenant may itself contain `:`; `n` is the last field.
pub(super) fn parse_root_id(root_id: &str) -> Option<(&str, u32)> {
    let (tenant, n) = root_id.strip_prefix(ROOT_PREFIX)?.rsplit_once(':')?;
    parse_version(n).map(|n| (tenant, n))
}

/// A version number as this provider writes it: decimal, no sign or leading zeros, at least 1.
pub(super) fn parse_version(s: &str) -> Option<u32> {
    if s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|n| *n >= 1)
}

/// The token label (and id) of root key `n` of `tenant`.
pub(super) fn label_for(tenant: &str, n: u32) -> String {
    format!("{LABEL_PREFIX}{tenant}:{n}")
}

/// `n` if `label` is `blobseal:<tenant>:<n>` for exactly this tenant (`a` must not claim `a:b`'s keys).
pub(super) fn version_in_label(label: &[u8], tenant: &str) -> Option<u32> {
    let label = std::str::from_utf8(label).ok()?;
    let n = label.strip_prefix(LABEL_PREFIX)?.strip_prefix(tenant)?.strip_prefix(':')?;
    parse_version(n)
}

/// The root id of `root_id` if `tenant` owns it. A malformed id or another tenant's id is
/// [`KeyError::UnknownKey`]: it is refused before the token is asked.
pub(super) fn owned_label(root_id: &str, tenant: &str) -> Result<String, KeyError> {
    match parse_root_id(root_id) {
        Some((owner, n)) if owner == tenant => Ok(label_for(owner, n)),
        _ => Err(KeyError::UnknownKey(root_id.to_owned())),
    }
}

/// The root id of version `n` of `tenant`'s root key.
pub(super) fn root_id_for(tenant: &str, n: u32) -> String {
    format!("{ROOT_PREFIX}{tenant}:{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_ids_parse_strictly() {
        assert_eq!(parse_root_id("pkcs11:acme:2"), Some(("acme", 2)));
        assert_eq!(parse_root_id("pkcs11:a:b:10"), Some(("a:b", 10)));
        for bad in ["pkcs11:acme:0", "pkcs11:acme:02", "pkcs11:acme:+2", "pkcs11:acme:", "local:acme:1", "pkcs11:acme"]
        {
            assert_eq!(parse_root_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn labels_belong_to_exactly_one_tenant() {
        assert_eq!(version_in_label(b"blobseal:a:3", "a"), Some(3));
        assert_eq!(version_in_label(b"blobseal:a:b:3", "a"), None);
        assert_eq!(version_in_label(b"blobseal:a:b:3", "a:b"), Some(3));
        assert_eq!(version_in_label(b"blobseal:ab:3", "a"), None);
        assert_eq!(version_in_label(b"other:a:3", "a"), None);
        assert_eq!(version_in_label(&[0xff, 0xfe], "a"), None);
        assert_eq!(label_for("a", 7), "blobseal:a:7");
    }

    #[test]
    fn other_tenants_roots_are_refused_before_use() {
        assert_eq!(owned_label("pkcs11:a:1", "a").unwrap(), "blobseal:a:1");
        assert!(matches!(owned_label("pkcs11:b:1", "a"), Err(KeyError::UnknownKey(_))));
        assert!(matches!(owned_label("pkcs11:a:b:1", "a"), Err(KeyError::UnknownKey(_))));
    }
}
