//! The no-config default: one tenant, a filesystem backend and a local keyring under a data dir.
//!
//! Environment variables (read through the `env` parameter, never `std::env` directly):
//! - `BLOBSEAL_LISTEN` (default `127.0.0.1:9000`), `BLOBSEAL_DATA_DIR` (default `./blobseal-data`);
//! - `BLOBSEAL_ACCESS_KEY_ID` + `BLOBSEAL_SECRET_ACCESS_KEY`: both or neither. With neither, the
//!   credentials are read from `<data>/credentials.json`, or generated and saved there once;
//! - `BLOBSEAL_MASTER_KEY` (base64 of 32 bytes): the key the local keyring is encrypted under. Without
//!   it the master key is `<data>/master.key`, generated once (fine for trying blobseal out; in
//!   production give it from a secret store, so a copy of the data dir alone opens nothing);
//! - `BLOBSEAL_KEY_CACHE_TTL` (seconds, default 60): the key cache TTL;
//! - `BLOBSEAL_REGION`: where the data dir is (a region name such as `eu-central-1`), declared for
//!   residency reports; the embedded default's tenant has no residency restriction;
//! - `BLOBSEAL_AZURE_LISTEN`, `BLOBSEAL_AZURE_DOMAIN`, `BLOBSEAL_AZURE_ACCOUNT` +
//!   `BLOBSEAL_AZURE_ACCOUNT_KEY`: the Azure Blob front end, off by default (`embedded_azure.rs`).
//!
//! Keys: a local keyring `<data>/keyring.json`, the key store in the fs backend's bucket
//! `blobseal-keys`, and the `x-amz-meta-data-subject` header naming an object's data subject.
//!
//! An empty variable counts as unset (the usual meaning of `VAR=` in container specs). Every
//! variable is checked before anything is generated, so a start that fails on a variable never
//! leaves behind credentials that were not shown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::embedded_azure::{self, GeneratedAzureAccount};
use super::private_file::{create_private_dir, ensure_private, write_private_atomic};
use super::validate::DEFAULT_LISTEN;
use super::{
    AccessKey, BackendKind, BackendSettings, ConfigError, DataSubjectRule, KeyCacheSettings, KeyProviderEntry,
    KeyProviderSettings, KeyStoreSettings, MasterKeySource, ResidencySettings, Secret, Settings, SweeperSettings,
    TenantSettings, DEFAULT_KEY_STORE_BUCKET,
};
use crate::core::policy::residency::ResidencyPolicy;
use crate::core::policy::retention::RetentionPolicy;

/// Name of the single tenant of the embedded default.
pub const DEFAULT_TENANT: &str = "default";
/// Name of its filesystem backend.
pub const DEFAULT_BACKEND: &str = "local";
const DEFAULT_DATA_DIR: &str = "./blobseal-data";
const CREDENTIALS_FILE: &str = "credentials.json";
const ACCESS_KEY_ID_LEN: usize = 20;
const SECRET_LEN: usize = 40;

/// What this call generated (on the first start that needed it): print it once, it is not shown again.
/// At least one of the two is `Some`.
#[derive(Clone, Debug)]
pub struct GeneratedCredentials {
    /// The default tenant's S3 credentials, when generated now.
    pub s3: Option<GeneratedS3Credentials>,
    /// The Azure front end's account, when generated now (only with `BLOBSEAL_AZURE_LISTEN` set).
    pub azure: Option<GeneratedAzureAccount>,
}

/// S3 credentials generated for the default tenant.
#[derive(Clone, Debug)]
pub struct GeneratedS3Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Where they were saved (mode 0600).
    pub file: PathBuf,
}

/// On-disk form of `<data>/credentials.json`.
#[derive(Serialize, Deserialize)]
struct CredentialsFile {
    format: u32,
    access_key_id: String,
    secret_access_key: String,
}

/// Builds the embedded default settings, creating the data directory (0700) if missing and
/// generating credentials (and, with `BLOBSEAL_AZURE_LISTEN`, an Azure account) on first use. Returns
/// what was freshly generated, if anything.
pub fn embedded(env: &dyn Fn(&str) -> Option<String>) -> Result<(Settings, Option<GeneratedCredentials>), ConfigError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let listen_text = var("BLOBSEAL_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen_text
        .parse()
        .map_err(|_| ConfigError::Environment(format!("BLOBSEAL_LISTEN={listen_text:?} is not an IP:PORT address")))?;
    let data = PathBuf::from(var("BLOBSEAL_DATA_DIR").unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned()));
    create_private_dir(&data)
        .map_err(|source| ConfigError::DataDir { context: format!("cannot create {}", data.display()), source })?;

    // `None`: the saved or generated credentials, once every variable has been checked.
    let given_key = match (var("BLOBSEAL_ACCESS_KEY_ID"), var("BLOBSEAL_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            tracing::info!(access_key_id = %id, "using credentials from BLOBSEAL_ACCESS_KEY_ID/BLOBSEAL_SECRET_ACCESS_KEY");
            Some(AccessKey { id, secret: Secret::new(secret) })
        }
        (Some(_), None) => {
            return Err(ConfigError::Environment(
                "BLOBSEAL_ACCESS_KEY_ID is set but BLOBSEAL_SECRET_ACCESS_KEY is not".into(),
            ))
        }
        (None, Some(mut secret)) => {
            secret.zeroize();
            return Err(ConfigError::Environment(
                "BLOBSEAL_SECRET_ACCESS_KEY is set but BLOBSEAL_ACCESS_KEY_ID is not".into(),
            ));
        }
        (None, None) => None,
    };
    let mut azure = embedded_azure::from_env(&var, listen)?;

    let master_key = match var("BLOBSEAL_MASTER_KEY") {
        Some(v) => MasterKeySource::Value(Secret::new(v)),
        None => MasterKeySource::File(data.join("master.key")),
    };
    let mut key_cache = KeyCacheSettings::default();
    if let Some(ttl) = var("BLOBSEAL_KEY_CACHE_TTL") {
        let secs: u64 = ttl.parse().ok().filter(|s| *s <= 86_400).ok_or_else(|| {
            ConfigError::Environment(format!("BLOBSEAL_KEY_CACHE_TTL={ttl:?} is not a number of seconds (0..=86400)"))
        })?;
        key_cache.ttl = std::time::Duration::from_secs(secs);
    }

    let (limits, presign) = super::limits::from_env(&var)?;
    let operations = super::operations::from_env(&var)?;
    let audit = super::audit::from_env(&var, &data)?;

    let (key, generated_s3) = match given_key {
        Some(key) => (key, None),
        None => load_or_generate(&data.join(CREDENTIALS_FILE))?,
    };
    let (azure_account, generated_azure) = azure.account(&data)?;
    let generated = match (generated_s3, generated_azure) {
        (None, None) => None,
        (s3, azure) => Some(GeneratedCredentials { s3, azure }),
    };
    let settings = Settings {
        listen,
        virtual_host_domain: None,
        azure_listen: azure.listen,
        azure_domain: azure.domain,
        tenants: vec![TenantSettings {
            name: DEFAULT_TENANT.to_owned(),
            access_keys: vec![key],
            default_backend: DEFAULT_BACKEND.to_owned(),
            bucket_prefix: String::new(),
            key_provider: DEFAULT_TENANT.to_owned(),
            key_store: KeyStoreSettings {
                backend: DEFAULT_BACKEND.to_owned(),
                bucket: DEFAULT_KEY_STORE_BUCKET.to_owned(),
                audit_bucket: super::DEFAULT_AUDIT_BUCKET.to_owned(),
            },
            data_subjects: vec![DataSubjectRule::Metadata("data-subject".to_owned())],
            residency: ResidencyPolicy { tenant: DEFAULT_TENANT.to_owned(), allow: Vec::new() },
            backups: Vec::new(),
            retention: RetentionPolicy::default(),
            presign,
            azure_account,
            controller: None,
        }],
        backends: vec![BackendSettings {
            name: DEFAULT_BACKEND.to_owned(),
            kind: BackendKind::Fs { root: data.join("objects"), region: var("BLOBSEAL_REGION") },
        }],
        buckets: Vec::new(),
        key_providers: vec![KeyProviderEntry {
            name: DEFAULT_TENANT.to_owned(),
            settings: KeyProviderSettings::Local {
                keyring: data.join("keyring.json"),
                master_key,
                region: var("BLOBSEAL_REGION"),
            },
        }],
        key_cache,
        residency: ResidencySettings::default(),
        sweeper: SweeperSettings::default(),
        limits,
        operations,
        audit,
        processor: None,
        source: format!("embedded default (data dir {})", data.display()),
        sha256: String::new(),
    };
    let settings = Settings { sha256: super::sha256_hex(&settings.summary()), ..settings };
    Ok((settings, generated))
}

/// Reads the saved credentials, or generates and saves new ones (returned as generated).
fn load_or_generate(file: &Path) -> Result<(AccessKey, Option<GeneratedS3Credentials>), ConfigError> {
    if file.exists() {
        let parsed: CredentialsFile = read_private_json(file)?;
        if parsed.format != 1 || parsed.access_key_id.is_empty() || parsed.secret_access_key.is_empty() {
            let mut parsed = parsed;
            parsed.secret_access_key.zeroize();
            return Err(unusable(file, "unsupported format or empty credentials"));
        }
        tracing::info!(access_key_id = %parsed.access_key_id, file = %file.display(), "using saved credentials");
        let key = AccessKey { id: parsed.access_key_id, secret: Secret::new(parsed.secret_access_key) };
        return Ok((key, None));
    }

    let io_err = |context: &str| {
        let context = format!("{context} {}", file.display());
        move |source| ConfigError::DataDir { context, source }
    };
    let id =
        random_string(ACCESS_KEY_ID_LEN, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789").map_err(io_err("cannot generate"))?;
    let secret = Secret::new(
        random_string(SECRET_LEN, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
            .map_err(io_err("cannot generate"))?,
    );
    let on_disk =
        CredentialsFile { format: 1, access_key_id: id.clone(), secret_access_key: secret.expose().to_owned() };
    let written = write_private_json(file, &on_disk);
    let mut on_disk = on_disk;
    on_disk.secret_access_key.zeroize();
    written?;
    let generated =
        GeneratedS3Credentials { access_key_id: id.clone(), secret_access_key: secret.clone(), file: file.to_owned() };
    Ok((AccessKey { id, secret }, Some(generated)))
}

/// Reads a private JSON file of the data dir, refusing it if group or others can access it. Its
/// bytes are zeroized after parsing, and a parse error names the position, never the content.
pub(super) fn read_private_json<T: DeserializeOwned>(file: &Path) -> Result<T, ConfigError> {
    let io_err = |context: &str| {
        let context = format!("{context} {}", file.display());
        move |source| ConfigError::DataDir { context, source }
    };
    ensure_private(file).map_err(io_err("refusing"))?;
    let bytes = Zeroizing::new(std::fs::read(file).map_err(io_err("cannot read"))?);
    serde_json::from_slice(&bytes).map_err(|e| ConfigError::DataDir {
        context: format!("cannot parse {}", file.display()),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column()),
        ),
    })
}

/// Writes `value` as JSON to `file` atomically, mode 0600 (see `write_private_atomic`); the encoded
/// bytes are zeroized afterwards.
pub(super) fn write_private_json<T: Serialize>(file: &Path, value: &T) -> Result<(), ConfigError> {
    let json = serde_json::to_vec_pretty(value).map(Zeroizing::new).map_err(|e| ConfigError::DataDir {
        context: format!("cannot encode {}", file.display()),
        source: std::io::Error::other(format!("{:?} error", e.classify())),
    })?;
    write_private_atomic(file, &json)
        .map_err(|source| ConfigError::DataDir { context: format!("cannot write {}", file.display()), source })
}

/// A saved file that parsed but cannot be used, and why (never its content).
pub(super) fn unusable(file: &Path, why: &str) -> ConfigError {
    ConfigError::DataDir {
        context: format!("cannot use {}", file.display()),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned()),
    }
}

/// `len` characters drawn uniformly from `alphabet` (at most 256 symbols) using the system CSPRNG.
pub(super) fn random_string(len: usize, alphabet: &[u8]) -> std::io::Result<String> {
    // Rejection sampling: only bytes below the largest multiple of the alphabet size are used,
    // so every symbol is equally likely.
    let n = alphabet.len();
    let limit = 256 - 256 % n;
    let mut out = String::with_capacity(len);
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.len() < len {
        aws_lc_rs::rand::fill(&mut buf[..]).map_err(|_| std::io::Error::other("random generator failed"))?;
        for &b in buf.iter().filter(|&&b| usize::from(b) < limit) {
            if out.len() == len {
                break;
            }
            if let Some(&c) = alphabet.get(usize::from(b) % n) {
                out.push(char::from(c));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn generates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let env = env_of(&[("BLOBSEAL_DATA_DIR", data.to_str().unwrap()), ("BLOBSEAL_LISTEN", "127.0.0.1:19000")]);
        let (s, gen) = embedded(&env).unwrap();
        let gen = gen.expect("first start generates credentials").s3.expect("S3 credentials");
        assert_eq!(gen.access_key_id.len(), 20);
        assert!(gen.access_key_id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        assert_eq!(gen.secret_access_key.expose().len(), 40);
        assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&gen.file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(s.listen, "127.0.0.1:19000".parse::<SocketAddr>().unwrap());
        assert_eq!(s.tenants.len(), 1);
        assert_eq!(s.tenants[0].name, "default");
        assert_eq!(s.tenants[0].bucket_prefix, "");
        assert_eq!(s.tenants[0].access_keys[0].id, gen.access_key_id);
        assert!(matches!(&s.backends[0].kind, BackendKind::Fs { root, .. } if *root == data.join("objects")));
        assert!(matches!(&s.key_providers[0].settings,
            KeyProviderSettings::Local { keyring, master_key: MasterKeySource::File(m), .. }
                if *keyring == data.join("keyring.json") && *m == data.join("master.key")));
        assert_eq!(s.tenants[0].key_store.bucket, "blobseal-keys");
        assert_eq!(s.tenants[0].data_subjects, vec![DataSubjectRule::Metadata("data-subject".into())]);
        assert_eq!(s.key_cache.ttl.as_secs(), 60);
        assert!(!format!("{s:?}").contains(gen.secret_access_key.expose()), "Debug leaks the secret");

        let (s2, gen2) = embedded(&env).unwrap();
        assert!(gen2.is_none(), "second start must not generate again");
        assert_eq!(s2.tenants[0].access_keys[0].id, gen.access_key_id);
        assert_eq!(s2.tenants[0].access_keys[0].secret.expose(), gen.secret_access_key.expose());
    }

    #[test]
    fn credentials_from_env_pair_and_half_pair_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let env =
            env_of(&[("BLOBSEAL_DATA_DIR", d), ("BLOBSEAL_ACCESS_KEY_ID", "AK"), ("BLOBSEAL_SECRET_ACCESS_KEY", "SK")]);
        let (s, gen) = embedded(&env).unwrap();
        assert!(gen.is_none());
        assert_eq!(s.tenants[0].access_keys[0].secret.expose(), "SK");
        assert!(!dir.path().join(CREDENTIALS_FILE).exists());
        assert_eq!(s.listen.to_string(), "127.0.0.1:9000");

        let err = embedded(&env_of(&[("BLOBSEAL_DATA_DIR", d), ("BLOBSEAL_ACCESS_KEY_ID", "AK")])).unwrap_err();
        assert!(err.to_string().contains("BLOBSEAL_SECRET_ACCESS_KEY is not"), "{err}");
        let err = embedded(&env_of(&[("BLOBSEAL_DATA_DIR", d), ("BLOBSEAL_SECRET_ACCESS_KEY", "S")])).unwrap_err();
        assert!(err.to_string().contains("BLOBSEAL_ACCESS_KEY_ID is not"), "{err}");
        let err = embedded(&env_of(&[("BLOBSEAL_DATA_DIR", d), ("BLOBSEAL_LISTEN", "nope")])).unwrap_err();
        assert!(err.to_string().contains("BLOBSEAL_LISTEN"), "{err}");
    }

    #[test]
    fn refuses_readable_credentials_file() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_of(&[("BLOBSEAL_DATA_DIR", dir.path().to_str().unwrap())]);
        let (_, gen) = embedded(&env).unwrap();
        let file = gen.unwrap().s3.unwrap().file;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = embedded(&env).unwrap_err();
        assert!(err.to_string().contains("group/others"), "{err}");
    }

    #[test]
    fn random_strings_use_the_alphabet() {
        let s = random_string(500, b"ab").unwrap();
        assert_eq!(s.len(), 500);
        assert!(s.contains('a') && s.contains('b') && s.bytes().all(|b| b == b'a' || b == b'b'));
    }
}
