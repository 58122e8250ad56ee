//! Configuration: the validated [`Settings`] the rest of blobseal consumes, and where they come from.
//!
//! Two sources exist: a YAML file ([`load_file`], see `config/blobseal.yaml` for every field) and
//! the embedded single-tenant default used when no file is given ([`embedded()`]). Both are parsed
//! and validated completely up front; nothing starts with a half-valid config.
//!
//! Environment lookups go through an `env` function parameter instead of `std::env` so tests
//! can pass a map and never mutate the process environment.

pub mod audit;
mod azure;
mod azure_front;
mod cross;
pub mod embedded;
mod embedded_azure;
mod interpolate;
mod keys;
mod limits;
mod names;
pub mod operations;
pub mod parties;
mod policy;
pub mod private_file;
pub mod records;
mod secret;
mod summary;
mod validate;
mod yaml;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use embedded::{embedded, GeneratedCredentials, GeneratedS3Credentials};
pub use embedded_azure::GeneratedAzureAccount;
pub use interpolate::{interpolate, InterpolateError};
pub use limits::{ConnectionLimits, PresignSettings, MAX_PRESIGN_SECONDS};
pub use operations::{LogFormat, OperationsSettings, ShutdownSettings, TlsSettings};
pub use secret::Secret;

use crate::core::policy::residency::{RegionTable, ResidencyPolicy};
use crate::core::policy::retention::RetentionPolicy;
pub use crate::core::tenant::BackupTarget;

/// Everything blobseal needs to start. Plain data: no handles, no I/O.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address the S3 front end listens on.
    pub listen: SocketAddr,
    /// Enables virtual-host-style addressing: `<bucket>.<domain>`.
    pub virtual_host_domain: Option<String>,
    /// Address the Azure Blob front end listens on (`None`: no Azure front end).
    pub azure_listen: Option<SocketAddr>,
    /// Enables host-style Azure addressing: `<account>.blob.<domain>` (path-style `/<account>/...` always works).
    pub azure_domain: Option<String>,
    /// Tenants; names and access key ids are unique.
    pub tenants: Vec<TenantSettings>,
    /// Storage backends; names are unique.
    pub backends: Vec<BackendSettings>,
    /// Explicit bucket → backend routes. Each `(tenant, bucket)` and each `(backend, backend_bucket)`
    /// appears at most once, and every name refers to an existing tenant/backend.
    pub buckets: Vec<BucketRoute>,
    /// Who holds the tenants' root keys; names are unique, every tenant names one.
    pub key_providers: Vec<KeyProviderEntry>,
    /// How long and how many unwrapped lifetime keys each process keeps.
    pub key_cache: KeyCacheSettings,
    /// The region table (built in + `residency.regions`) and the drift check.
    pub residency: ResidencySettings,
    /// The in-process retention sweeper.
    pub sweeper: SweeperSettings,
    /// Bounds on every client connection (count, header/body/write time).
    pub limits: ConnectionLimits,
    /// The admin listener, log format, TLS and shutdown drain.
    pub operations: OperationsSettings,
    /// The tamper-evident audit trail; `None`: off.
    pub audit: Option<audit::AuditSettings>,
    /// Who runs blobseal (the processor), for the Art. 30(2) record; `None`: not given.
    pub processor: Option<parties::Party>,
    /// Where the config came from (a path, or "embedded default") for log lines.
    pub source: String,
    /// SHA-256 (hex) of the config file's text; for the embedded default, of its summary. Exported as
    /// `blobseal_config_info{sha256}` so a fleet shows which replicas run which config.
    pub sha256: String,
}

/// SHA-256 of `text`, lower-case hex.
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// One tenant: its credentials and where its buckets live.
#[derive(Clone, Debug)]
pub struct TenantSettings {
    /// Unique name, `[A-Za-z0-9_-]{1,63}` (it is part of key ids such as `local:<tenant>:1`).
    pub name: String,
    /// The tenant's S3 credentials (at least one).
    pub access_keys: Vec<AccessKey>,
    /// Backend for buckets created by this tenant that have no explicit route.
    pub default_backend: String,
    /// Prefix put before this tenant's bucket names on its backends ("" = none). Two tenants sharing a
    /// backend must have distinct prefixes, neither a prefix of the other (validation error otherwise).
    pub bucket_prefix: String,
    /// Name of the key provider holding this tenant's root keys.
    pub key_provider: String,
    /// Where this tenant's wrapped lifetime keys and shred receipts live.
    pub key_store: KeyStoreSettings,
    /// How an object names its data subject (first match wins); empty: no per-subject keys.
    pub data_subjects: Vec<DataSubjectRule>,
    /// Where this tenant's data, backups and keys may be (unrestricted if `allow` is empty).
    pub residency: ResidencyPolicy,
    /// Buckets that hold a copy of every object the tenant writes (`<client bucket>/<key>` in them).
    pub backups: Vec<BackupTarget>,
    /// How long the tenant's objects are kept.
    pub retention: RetentionPolicy,
    /// How long the tenant's presigned URLs may live, and whether SigV2 presigned reads are accepted.
    pub presign: PresignSettings,
    /// The tenant's Azure storage account for the Azure front end (clients sign with its keys).
    pub azure_account: Option<AzureAccount>,
    /// The controller on whose behalf the tenant's data is processed (for the Art. 30(2) record).
    pub controller: Option<parties::Controller>,
}

/// An Azure storage account a tenant's Azure clients sign with: a name and one or two keys (Azure's
/// key1/key2, so a key can be rotated while the other keeps working).
#[derive(Clone, Debug)]
pub struct AzureAccount {
    /// `[a-z0-9]{3,24}`, unique across tenants.
    pub name: String,
    /// One or two keys, each the base64 text of the key bytes (validated: standard base64, decodes to >= 16 bytes).
    pub keys: Vec<Secret>,
}

/// The residency table and the drift check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResidencySettings {
    pub table: RegionTable,
    /// How often running servers re-check every S3 backend bucket's real region; `None`: only at start.
    pub drift_check: Option<std::time::Duration>,
}

/// The in-process sweeper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweeperSettings {
    /// `None`: no in-process sweeps (run `blobseal sweep` from a scheduler instead).
    pub interval: Option<std::time::Duration>,
    /// Upper bound on deletions per second per sweeper.
    pub max_deletes_per_second: u32,
}

impl Default for SweeperSettings {
    fn default() -> Self {
        Self { interval: None, max_deletes_per_second: 50 }
    }
}

/// A bucket on a backend holding a tenant's key store (never visible to clients).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyStoreSettings {
    pub backend: String,
    pub bucket: String,
    /// The bucket of the tenant's audit trail, on the same backend (never visible to clients).
    pub audit_bucket: String,
}

/// Default key store bucket on the tenant's default backend, after the tenant's bucket prefix.
pub const DEFAULT_KEY_STORE_BUCKET: &str = "blobseal-keys";
/// Default audit bucket, beside the key store, after the tenant's bucket prefix.
pub const DEFAULT_AUDIT_BUCKET: &str = "blobseal-audit";

/// One way an object names its data subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSubjectRule {
    /// A user-metadata header; the name without `x-amz-meta-`, lower case (`data-subject`).
    Metadata(String),
    /// A key pattern such as `customers/{subject}/**`.
    KeyPattern(String),
}

/// The lifetime-key cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyCacheSettings {
    /// Also the longest a destroyed key stays usable in a running replica.
    pub ttl: std::time::Duration,
    pub max_entries: usize,
}

impl Default for KeyCacheSettings {
    fn default() -> Self {
        Self { ttl: std::time::Duration::from_secs(60), max_entries: 10_000 }
    }
}

/// A named key provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyProviderEntry {
    pub name: String,
    pub settings: KeyProviderSettings,
}

/// Where a local keyring's master key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterKeySource {
    /// Base64 of 32 bytes, read from an environment variable.
    Value(Secret),
    /// A file holding base64 of 32 bytes (mode 0600); created with a fresh key if missing.
    File(PathBuf),
}

/// An S3 access key a client signs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKey {
    /// The access key id (not secret; unique across all tenants).
    pub id: String,
    /// The secret access key.
    pub secret: Secret,
}

/// A named storage backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendSettings {
    /// Unique name, `[A-Za-z0-9_-]{1,63}`.
    pub name: String,
    /// What it is and how to reach it.
    pub kind: BackendKind,
}

/// The kinds of backend blobseal can store to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// A local directory (relative paths are relative to the working directory); `region` declares
    /// where the disk is, for residency.
    Fs { root: PathBuf, region: Option<String> },
    /// An S3-compatible service.
    S3 {
        /// `http(s)://host[:port]`; `None` means AWS's regional endpoint.
        endpoint: Option<String>,
        region: String,
        access_key_id: String,
        secret_access_key: Secret,
        /// Path-style (`endpoint/bucket/key`) instead of virtual-host-style requests.
        force_path_style: bool,
    },
    /// An Azure Blob Storage account. The data plane cannot say where the account is, so `region`
    /// is declared (and checked against the built-in table's Azure regions); a geo-redundant
    /// account also keeps a copy in the region paired with it.
    Azure {
        /// `https://<account>.blob.core.windows.net`, or an emulator's `http://host:port/<account>`.
        endpoint: String,
        /// The storage account name, 3 to 24 of a-z 0-9.
        account: String,
        /// An Azure region name (`uksouth`), known to the residency table.
        region: String,
        /// How the account replicates; a geo-redundant one always has a paired region.
        redundancy: AzureRedundancy,
        credentials: AzureAuth,
    },
}

/// An Azure storage account's redundancy (its SKU's suffix). The geo-redundant kinds copy every
/// write to the primary region's pair, which residency therefore counts as a place the data is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AzureRedundancy {
    Lrs,
    Zrs,
    Grs,
    RaGrs,
    Gzrs,
    RaGzrs,
}

impl AzureRedundancy {
    /// Every kind, in the order error messages list them.
    pub const ALL: [AzureRedundancy; 6] = [
        AzureRedundancy::Lrs,
        AzureRedundancy::Zrs,
        AzureRedundancy::Grs,
        AzureRedundancy::RaGrs,
        AzureRedundancy::Gzrs,
        AzureRedundancy::RaGzrs,
    ];

    /// The config spelling: `lrs`, `zrs`, `grs`, `ragrs`, `gzrs` or `ragzrs`.
    pub fn as_str(self) -> &'static str {
        match self {
            AzureRedundancy::Lrs => "lrs",
            AzureRedundancy::Zrs => "zrs",
            AzureRedundancy::Grs => "grs",
            AzureRedundancy::RaGrs => "ragrs",
            AzureRedundancy::Gzrs => "gzrs",
            AzureRedundancy::RaGzrs => "ragzrs",
        }
    }

    /// Whether Azure keeps a copy in the paired region (the read-access kinds too: they only add
    /// reads from that copy).
    pub fn is_geo(self) -> bool {
        matches!(self, AzureRedundancy::Grs | AzureRedundancy::RaGrs | AzureRedundancy::Gzrs | AzureRedundancy::RaGzrs)
    }
}

impl fmt::Display for AzureRedundancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an Azure backend authenticates. Config-side: `app` turns it into the backend's own type.
/// Both values are secrets (`Debug` prints `<redacted>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AzureAuth {
    /// A storage account key (base64 of the key bytes, as the portal shows it): SharedKey signing.
    AccountKey(Secret),
    /// A shared access signature: the query string, with or without its leading `?`.
    Sas(Secret),
}

impl BackendSettings {
    /// Where the backend keeps data: an S3 backend's region, an fs or azure backend's declared region.
    /// For a geo-redundant azure account this is the primary; see [`BackendSettings::places`].
    pub fn region(&self) -> Option<&str> {
        match &self.kind {
            BackendKind::Fs { region, .. } => region.as_deref(),
            BackendKind::S3 { region, .. } | BackendKind::Azure { region, .. } => Some(region),
        }
    }

    /// The region a geo-redundant azure account copies its data to: the pair of its region. `None`
    /// for every other backend, and for a region without a pair (which validation refuses).
    pub fn secondary_region(&self) -> Option<&'static str> {
        match &self.kind {
            BackendKind::Azure { region, redundancy, .. } if redundancy.is_geo() => {
                crate::core::policy::regions::azure_paired_region(region).map(|pair| pair.name)
            }
            _ => None,
        }
    }

    /// Every place this backend keeps the data it is given, as (`what`, region) for residency checks
    /// and summaries: `what` itself in [`BackendSettings::region`], then, for a geo-redundant azure
    /// account, `<what>'s grs copy` in the paired region.
    pub fn places(&self, what: &str) -> Vec<(String, Option<&str>)> {
        let mut out = vec![(what.to_owned(), self.region())];
        if let BackendKind::Azure { redundancy, .. } = &self.kind {
            if redundancy.is_geo() {
                // A copy with no known region is "not declared", which a restricted tenant refuses.
                out.push((format!("{what}'s {redundancy} copy"), self.secondary_region()));
            }
        }
        out
    }
}

impl BackendKind {
    /// `"fs"`, `"s3"` or `"azure"`, as written in the config file.
    pub fn kind_name(&self) -> &'static str {
        match self {
            BackendKind::Fs { .. } => "fs",
            BackendKind::S3 { .. } => "s3",
            BackendKind::Azure { .. } => "azure",
        }
    }
}

/// An explicit route: the tenant's `bucket` is stored as `backend_bucket` on `backend`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketRoute {
    pub tenant: String,
    pub bucket: String,
    pub backend: String,
    /// Defaults to the tenant's `bucket_prefix` + `bucket`.
    pub backend_bucket: String,
    /// Backup targets of this bucket; empty: the tenant's.
    pub backups: Vec<BackupTarget>,
}

/// What holds a tenant's root keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyProviderSettings {
    /// A keyring file on local disk (mode 0600), encrypted under a master key; see `core::keys::local`.
    Local { keyring: PathBuf, master_key: MasterKeySource, region: Option<String> },
    /// AWS KMS (or a compatible endpoint): one KMS key per root generation.
    AwsKms {
        endpoint: Option<String>,
        region: String,
        access_key_id: String,
        secret_access_key: Secret,
        /// Days between disabling a destroyed root key and its deletion (7..=30).
        deletion_window_days: u32,
    },
    /// A PKCS#11 token (an HSM, or SoftHSM2): one AES key object per root generation.
    Pkcs11 { module: PathBuf, token_label: String, pin: Secret, region: Option<String> },
}

impl KeyProviderSettings {
    /// `local`, `aws-kms` or `pkcs11`, as written in the config file.
    pub fn kind_name(&self) -> &'static str {
        match self {
            KeyProviderSettings::Local { .. } => "local",
            KeyProviderSettings::AwsKms { .. } => "aws-kms",
            KeyProviderSettings::Pkcs11 { .. } => "pkcs11",
        }
    }

    /// Where the provider keeps the root keys (KMS region; the declared `region:` of a keyring or HSM).
    pub fn region(&self) -> Option<&str> {
        match self {
            KeyProviderSettings::Local { region, .. } | KeyProviderSettings::Pkcs11 { region, .. } => region.as_deref(),
            KeyProviderSettings::AwsKms { region, .. } => Some(region),
        }
    }

    /// One line for summaries; never a secret.
    pub fn describe(&self) -> String {
        match self {
            KeyProviderSettings::Local { keyring, master_key, region } => {
                let master = match master_key {
                    MasterKeySource::Value(_) => "from the environment".to_owned(),
                    MasterKeySource::File(p) => format!("in {}", p.display()),
                };
                let at = region.as_deref().map(|r| format!(", region {r}")).unwrap_or_default();
                format!("local keyring {} (master key {master}){at}", keyring.display())
            }
            KeyProviderSettings::AwsKms { endpoint, region, access_key_id, deletion_window_days, .. } => format!(
                "aws-kms region {region}, endpoint {}, key id {access_key_id}, deletion window {deletion_window_days} days",
                endpoint.as_deref().unwrap_or("(AWS default)")
            ),
            KeyProviderSettings::Pkcs11 { module, token_label, region, .. } => {
                let at = region.as_deref().map(|r| format!(", region {r}")).unwrap_or_default();
                format!("pkcs11 module {}, token {token_label:?}{at}", module.display())
            }
        }
    }
}

/// One problem in a config file, with the position of the offending YAML node (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// Why settings could not be built. Every variant means "do not start" (exit code 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file was read but is invalid; one entry per problem, sorted by position.
    #[error("{}", lines(.0))]
    Invalid(Vec<Diagnostic>),
    /// The config file could not be read.
    #[error("{path}: cannot read config file: {source}")]
    Read { path: String, source: std::io::Error },
    /// The embedded default's environment variables are inconsistent or invalid.
    #[error("embedded default: {0}")]
    Environment(String),
    /// The embedded default's data directory or credentials file could not be prepared.
    #[error("embedded default: {context}: {source}")]
    DataDir { context: String, source: std::io::Error },
}

impl ConfigError {
    /// The error as separate lines, one per problem (for printing to stderr).
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(diags) => diags.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

fn lines(diags: &[Diagnostic]) -> String {
    diags.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// Reads and validates the YAML config at `path`. Errors are reported as `path:line:col: ...`
/// and all semantic problems found are returned together, not just the first.
pub fn load_file(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: name.clone(), source })?;
    parse_str(&text, &name, env)
}

/// Parses and validates YAML `text`; `file` is used in error positions and as [`Settings::source`].
pub fn parse_str(text: &str, file: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let raw = yaml::parse(text, file)?;
    let mut settings = validate::validate(raw, file, env, false)?;
    settings.sha256 = sha256_hex(text);
    Ok(settings)
}

/// Validates the YAML config at `path` like [`load_file`], except that secrets need not exist: an
/// unset `*_env` variable or a missing `*_file` stands in for a valid secret. For a config
/// repository's CI, where no secret is present. Nothing is contacted either way.
pub fn check_file_offline(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: name.clone(), source })?;
    let raw = yaml::parse(&text, &name)?;
    let mut settings = validate::validate(raw, &name, env, true)?;
    settings.sha256 = sha256_hex(&text);
    Ok(settings)
}

#[cfg(test)]
mod tests;
