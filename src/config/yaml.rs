//! The config file as written: serde structs mirroring the YAML, and the parse step.
//!
//! YAML crate choice: `serde_yaml` is archived and `serde_yml` has RUSTSEC-2025-0067/0068;
//! `serde-saphyr` is maintained, pure Rust, and reports line/column for every error. Its
//! `Spanned<T>` keeps the position of each node, which is how validation errors that are not
//! YAML errors (unknown backend, duplicate name, ...) still point at the right `line:col`.
//!
//! Every struct denies unknown fields so a typo is an error, not a silently ignored setting.
//! String values are kept raw here; `${VAR}` interpolation happens in validation, per scalar.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{ConfigError, Diagnostic};

/// A string scalar and where it was written.
pub(super) type Str = Spanned<String>;

/// The top-level document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub listen: Option<Str>,
    pub virtual_host_domain: Option<Str>,
    /// The Azure Blob front end's address (IP:PORT); absent: no Azure front end.
    pub azure_listen: Option<Str>,
    /// Host-style Azure addressing: `<account>.blob.<azure_domain>`.
    pub azure_domain: Option<Str>,
    /// One provider (named `default`), or `key_providers:` with several; exactly one of the two.
    pub key_provider: Option<Spanned<RawKeyProvider>>,
    pub key_providers: Option<Spanned<Vec<Spanned<RawKeyProvider>>>>,
    pub key_cache: Option<Spanned<RawKeyCache>>,
    pub residency: Option<Spanned<RawResidency>>,
    pub sweeper: Option<Spanned<RawSweeper>>,
    pub limits: Option<Spanned<super::limits::RawLimits>>,
    /// Removed (metrics moved to the admin listener): kept only to say so at its position.
    pub metrics_on_s3_port: Option<Str>,
    /// The admin listener (IP:PORT): `/livez`, `/readyz`, `/metrics`.
    pub admin_listen: Option<Str>,
    pub log_format: Option<Str>,
    /// `tracing` filter directives; applied again on a reload.
    pub log_level: Option<Str>,
    pub tls: Option<Spanned<super::operations::RawTls>>,
    pub shutdown: Option<Spanned<super::operations::RawShutdown>>,
    /// The tamper-evident audit trail (absent: none).
    pub audit: Option<Spanned<super::audit::RawAudit>>,
    /// Who runs blobseal, for the Art. 30(2) record (`blobseal records`).
    pub processor: Option<Spanned<super::parties::RawParty>>,
    pub backends: Spanned<Vec<Spanned<RawBackend>>>,
    pub tenants: Spanned<Vec<Spanned<RawTenant>>>,
    #[serde(default)]
    pub buckets: Vec<Spanned<RawRoute>>,
}

/// One key provider. Like backends, the fields of every kind share one struct (tagged enums lose
/// positions); validation rejects fields of the wrong kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeyProvider {
    /// Required in `key_providers:`; `default` under `key_provider:`.
    pub name: Option<Str>,
    pub kind: Str,
    /// local
    pub keyring: Option<Str>,
    pub master_key_env: Option<Str>,
    pub master_key_file: Option<Str>,
    /// aws-kms
    pub endpoint: Option<Str>,
    pub region: Option<Str>,
    pub credentials: Option<Spanned<RawCredentials>>,
    pub deletion_window_days: Option<Spanned<u32>>,
    /// pkcs11
    pub module: Option<Str>,
    pub token_label: Option<Str>,
    pub pin_env: Option<Str>,
    pub pin_file: Option<Str>,
}

/// `key_cache: { ttl_seconds: 60, max_entries: 10000 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeyCache {
    pub ttl_seconds: Option<Spanned<u64>>,
    pub max_entries: Option<Spanned<u64>>,
}

/// A tenant's `key_store: { backend: NAME, bucket: NAME }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeyStore {
    pub backend: Option<Str>,
    pub bucket: Option<Str>,
    /// The tenant's audit trail, on the same backend; default `<bucket_prefix>blobseal-audit`.
    pub audit_bucket: Option<Str>,
}

/// One entry of a tenant's `data_subjects:`: exactly one of the two fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSubjectRule {
    pub header: Option<Str>,
    pub key_pattern: Option<Str>,
}

/// `residency: { regions: [...], drift_check_seconds: N }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResidency {
    pub regions: Option<Vec<Spanned<RawRegion>>>,
    pub drift_check_seconds: Option<Spanned<u64>>,
}

/// A region added to (or overriding) the built-in table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegion {
    pub name: Str,
    pub country: Str,
}

/// `sweeper: { interval_seconds: N, max_deletes_per_second: N }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSweeper {
    pub interval_seconds: Option<Spanned<u64>>,
    pub max_deletes_per_second: Option<Spanned<u32>>,
}

/// A tenant's `residency: { allow: [EEA, CH, DE] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenantResidency {
    pub allow: Spanned<Vec<Str>>,
}

/// A backup target: a bucket on a backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackup {
    pub backend: Str,
    pub bucket: Str,
}

/// A tenant's `retention:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    pub default: Option<Str>,
    /// Bind objects with a deadline to a key per deadline day, destroyed when the day has passed.
    pub period_keys: Option<Spanned<bool>>,
    pub client_override: Option<Str>,
    pub rules: Option<Vec<Spanned<RawRetentionRule>>>,
}

/// One retention rule: conditions (all optional) and what to keep.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetentionRule {
    pub name: Option<Str>,
    pub bucket: Option<Str>,
    pub key: Option<Str>,
    pub prefix: Option<Str>,
    pub content_type: Option<Str>,
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    pub tags: Option<std::collections::BTreeMap<String, String>>,
    pub keep: Str,
    pub client_override: Option<Str>,
}

/// One entry of `backends:`. Fields of every kind live in one struct (rather than a serde-tagged
/// enum) because tagged enums lose `Spanned` positions; validation rejects fields of the wrong kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
    pub name: Str,
    pub kind: Str,
    /// fs only.
    pub path: Option<Str>,
    /// s3 and azure.
    pub endpoint: Option<Str>,
    /// Every kind (declared for fs and azure, the bucket region for s3).
    pub region: Option<Str>,
    /// s3 only.
    pub force_path_style: Option<Spanned<bool>>,
    /// s3 and azure (each with its own fields inside).
    pub credentials: Option<Spanned<RawCredentials>>,
    /// azure only: the storage account name.
    pub account: Option<Str>,
    /// azure only: lrs, zrs, grs, ragrs, gzrs or ragzrs.
    pub redundancy: Option<Str>,
}

/// Backend and KMS credentials. S3 and aws-kms: the id literally or from the environment, the secret
/// from the environment or a file. Azure: one account key or SAS token, from the environment or a
/// file. Never a secret inline; validation rejects the fields of the other kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredentials {
    pub access_key_id: Option<Str>,
    pub access_key_id_env: Option<Str>,
    pub secret_access_key_env: Option<Str>,
    pub secret_access_key_file: Option<Str>,
    pub account_key_env: Option<Str>,
    pub account_key_file: Option<Str>,
    pub sas_token_env: Option<Str>,
    pub sas_token_file: Option<Str>,
}

/// One entry of `tenants:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenant {
    pub name: Str,
    pub default_backend: Str,
    pub bucket_prefix: Option<Str>,
    pub access_keys: Spanned<Vec<Spanned<RawAccessKey>>>,
    pub key_provider: Option<Str>,
    pub key_store: Option<Spanned<RawKeyStore>>,
    pub data_subjects: Option<Spanned<Vec<Spanned<RawSubjectRule>>>>,
    pub residency: Option<Spanned<RawTenantResidency>>,
    pub backups: Option<Spanned<Vec<Spanned<RawBackup>>>>,
    pub retention: Option<Spanned<RawRetention>>,
    pub max_presign_seconds: Option<Spanned<u64>>,
    pub sigv2_presigned_urls: Option<Spanned<bool>>,
    pub azure_account: Option<Spanned<RawAzureAccount>>,
    /// On whose behalf the tenant's data is processed, for the Art. 30(2) record.
    pub controller: Option<Spanned<super::parties::RawParty>>,
}

/// A tenant's `azure_account: { name: ACCOUNT, keys: [{ key_env: VAR }, { key_file: PATH }] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAzureAccount {
    pub name: Str,
    pub keys: Spanned<Vec<Spanned<RawAzureKey>>>,
}

/// One account key (base64); from exactly one of `key_env` / `key_file`, never inline.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAzureKey {
    pub key_env: Option<Str>,
    pub key_file: Option<Str>,
}

/// A tenant access key; the secret comes from exactly one of `secret_env` / `secret_file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccessKey {
    pub id: Str,
    pub secret_env: Option<Str>,
    pub secret_file: Option<Str>,
}

/// One entry of `buckets:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub tenant: Str,
    pub bucket: Str,
    pub backend: Str,
    pub backend_bucket: Option<Str>,
    /// Backup targets of this bucket (instead of the tenant's).
    pub backups: Option<Spanned<Vec<Spanned<RawBackup>>>>,
}

/// Parses `text` into the raw structure. Syntax errors, unknown fields, missing fields and wrong
/// types all come back as one [`Diagnostic`] at the position serde-saphyr reports.
pub(super) fn parse(text: &str, file: &str) -> Result<RawConfig, ConfigError> {
    serde_saphyr::from_str::<RawConfig>(text).map_err(|err| {
        // Without a position (rare: errors outside any node) point at the start of the file.
        let (line, column) = err.location().map_or((1, 1), |l| (l.line().max(1), l.column().max(1)));
        let message = serde_saphyr::MessageFormatter::format_message(&serde_saphyr::DefaultMessageFormatter, &err);
        ConfigError::Invalid(vec![Diagnostic { file: file.to_owned(), line, column, message: sanitize(&message) }])
    })
}

/// Keeps diagnostics on one line: the message may quote input, which may hold control characters.
pub(super) fn sanitize(message: &str) -> String {
    message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(text: &str) -> Diagnostic {
        match parse(text, "f.yaml") {
            Err(ConfigError::Invalid(mut d)) if d.len() == 1 => d.remove(0),
            other => panic!("expected one diagnostic, got {other:?}"),
        }
    }

    const HEAD: &str = "key_provider: { kind: local, keyring: k.json }\n";

    #[test]
    fn unknown_field_points_at_the_key() {
        let text = format!("{HEAD}backends:\n  - name: a\n    kind: fs\n    colour: red\ntenants: []\n");
        let d = diag(&text);
        assert_eq!((d.line, d.column), (5, 5), "{d}");
        assert!(d.message.contains("unknown field `colour`"), "{d}");
        assert!(d.to_string().starts_with("f.yaml:5:5: "), "{d}");
    }

    #[test]
    fn bad_indentation_is_a_syntax_error_with_position() {
        let text = format!("{HEAD}backends:\n  - name: a\n    kind: fs\n  path: x\ntenants: []\n");
        let d = diag(&text);
        assert_eq!((d.line, d.column), (5, 3), "{d}");
    }

    #[test]
    fn wrong_type_and_missing_field() {
        let d = diag(&format!("{HEAD}backends: []\ntenants: []\nlisten: [1]\n"));
        assert_eq!((d.line, d.column), (4, 9), "{d}");
        let d = diag(&format!("{HEAD}backends:\n  - kind: fs\ntenants: []\n"));
        assert_eq!((d.line, d.column), (3, 5), "{d}");
        assert!(d.message.contains("missing field `name`"), "{d}");
        let d = diag(&format!("{HEAD}backends: []\ntenants: []\nbackends: []\n"));
        assert_eq!((d.line, d.column), (4, 1), "{d}");
        assert!(d.message.contains("duplicate"), "{d}");
    }

    #[test]
    fn keeps_positions_of_values() {
        let raw = parse(&format!("{HEAD}listen: 0.0.0.0:9000\nbackends: []\ntenants: []\n"), "f").unwrap();
        let listen = raw.listen.unwrap();
        assert_eq!(listen.value, "0.0.0.0:9000");
        assert_eq!((listen.referenced.line(), listen.referenced.column()), (2, 9));
        assert_eq!(raw.key_provider.unwrap().value.kind.referenced.column(), 23);
    }
}
