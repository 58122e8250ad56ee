//! Naming rules for config values: what a tenant, backend, bucket or region may look like.

pub(super) const NAME_RULE: &str = "expected 1 to 63 of A-Z a-z 0-9 _ -";
pub(super) const PREFIX_RULE: &str = "expected up to 40 of a-z 0-9 . -, starting with a letter or digit";
pub(super) const BUCKET_RULE: &str = "expected 3 to 63 of a-z 0-9 . -, starting and ending with a letter or digit";
pub(super) const AZURE_ACCOUNT_RULE: &str = "expected 3 to 24 of a-z 0-9 (Azure's storage account names)";

/// Tenant and backend names (tenant names appear in key ids like `local:<tenant>:1`, so no `:`).
pub(super) fn is_name(s: &str) -> bool {
    (1..=63).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(super) fn is_key_id(s: &str) -> bool {
    (3..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(super) fn is_prefix(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 40
            && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'))
}

/// S3 bucket naming rules (the subset that matters for routing: length, charset, ends, no `..`).
pub(super) fn is_bucket(s: &str) -> bool {
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&s.len())
        && edge_ok(s.bytes().next())
        && edge_ok(s.bytes().last())
        && !s.contains("..")
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

pub(super) fn is_region(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub(super) fn is_endpoint(s: &str) -> bool {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace))
}

/// Azure storage account names: 3 to 24 lowercase letters and digits (`devstoreaccount1` fits). Used
/// for an azure backend's account and for the accounts the Azure front end serves.
pub(super) fn is_azure_account(s: &str) -> bool {
    (3..=24).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

pub(super) fn is_domain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_accept_and_reject() {
        assert!(is_name("acme_1-x") && !is_name("") && !is_name("a:b") && !is_name(&"a".repeat(64)));
        assert!(is_bucket("acme-calls.v2") && is_bucket("abc"));
        for bad in ["ab", "Abc", "-abc", "abc-", "a..b", "a_b", &"a".repeat(64)] {
            assert!(!is_bucket(bad), "{bad}");
        }
        assert!(is_prefix("") && is_prefix("acme-") && !is_prefix("-acme") && !is_prefix("Acme"));
        assert!(is_key_id("AKIA123") && !is_key_id("ab") && !is_key_id("a b c"));
        assert!(is_region("eu-central-1") && !is_region("EU") && !is_region(""));
        assert!(is_endpoint("http://127.0.0.1:5000") && is_endpoint("https://s3.x") && !is_endpoint("https://"));
        assert!(!is_endpoint("s3.amazonaws.com"));
        assert!(is_azure_account("devstoreaccount1") && is_azure_account("abc") && is_azure_account(&"a".repeat(24)));
        for bad in ["ab", "Acct", "a-b", "a_bc", &"a".repeat(25)] {
            assert!(!is_azure_account(bad), "{bad}");
        }
        assert!(is_domain("s3.blobseal.local") && !is_domain("s3..x") && !is_domain("-a.b") && !is_domain("A.b"));
    }
}
