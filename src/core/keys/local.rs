//! The local keyring: tenant key-encryption keys in a JSON file on local disk.
//!
//! File format (mode 0600, in a 0700 directory):
//! `{ "format": 1, "tenants": { "<name>": { "current": 1, "keys": { "1": "<base64 of 32 bytes>" } } } }`.
//! New data keys are wrapped under `current`; older versions stay so existing objects still open.
//!
//! A wrapped key is AES-256-GCM under the tenant key: `nonce (12) ‖ ciphertext (32) ‖ tag (16)`,
//! with the caller's AAD (object identity) authenticated, and `kek_id = local:<tenant>:<version>`.
//! Random nonces are safe here: a tenant key would need ~2^32 wraps before nonce reuse matters,
//! and each object wraps once.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{DataKey, KeyError, KeyProvider, WrappedKey, DATA_KEY_LEN};
use crate::config::private_file::{create_private_dir, ensure_private, write_private_atomic};

/// Length of a tenant key (AES-256).
const KEK_LEN: usize = 32;
const TAG_LEN: usize = 16;
const FORMAT: u32 = 1;

/// One tenant's key versions. Keys are zeroized on drop.
struct TenantKeys {
    current: u32,
    keys: BTreeMap<u32, Zeroizing<[u8; KEK_LEN]>>,
}

/// A [`KeyProvider`] backed by a local keyring file. Immutable once opened, so it needs no lock.
pub struct LocalKeyring {
    path: PathBuf,
    tenants: HashMap<String, TenantKeys>,
}

/// On-disk form. Key strings are zeroized as soon as they are decoded or written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    format: u32,
    tenants: BTreeMap<String, TenantForm>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantForm {
    current: u32,
    keys: BTreeMap<String, String>,
}

impl Drop for TenantForm {
    fn drop(&mut self) {
        for v in self.keys.values_mut() {
            v.zeroize();
        }
    }
}

impl LocalKeyring {
    /// Opens the keyring at `path`, creating it (0600, parent dirs 0700) if missing, and adds a
    /// fresh random key for every tenant in `tenants` that has none; the file is then rewritten
    /// atomically (temp + fsync + rename + dir fsync). Tenants in the file but not in `tenants`
    /// are kept: their objects must stay readable.
    ///
    /// Errors: [`KeyError::Keyring`] if the file is group/world accessible (it is refused, not
    /// fixed: the keys may have leaked), malformed, or cannot be read or written;
    /// [`KeyError::Random`] if the CSPRNG fails.
    pub fn open_or_create(path: &Path, tenants: &[String]) -> Result<Self, KeyError> {
        let io = |what: &str, e: std::io::Error| KeyError::Keyring(format!("{what} {}: {e}", path.display()));
        let mut ring = if path.exists() {
            ensure_private(path).map_err(|e| KeyError::Keyring(e.to_string()))?;
            let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| io("cannot read", e))?);
            Self::decode(path, &bytes)?
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir).map_err(|e| io("cannot create directory for", e))?;
            }
            Self { path: path.to_owned(), tenants: HashMap::new() }
        };
        let mut changed = !path.exists();
        for tenant in tenants {
            if ring.tenants.get(tenant).is_none_or(|t| t.keys.is_empty()) {
                let mut key = Zeroizing::new([0u8; KEK_LEN]);
                aws_lc_rs::rand::fill(&mut key[..]).map_err(|_| KeyError::Random)?;
                ring.tenants.insert(tenant.clone(), TenantKeys { current: 1, keys: BTreeMap::from([(1, key)]) });
                changed = true;
            }
        }
        if changed {
            let json = ring.encode()?;
            write_private_atomic(path, &json).map_err(|e| io("cannot write", e))?;
        }
        Ok(ring)
    }

    /// The file this keyring was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<Self, KeyError> {
        let bad = |why: String| KeyError::Keyring(format!("{}: {why}", path.display()));
        let form: FileForm = serde_json::from_slice(bytes).map_err(|e| bad(format!("not a keyring: {e}")))?;
        if form.format != FORMAT {
            return Err(bad(format!("unsupported keyring format {}", form.format)));
        }
        let mut tenants = HashMap::new();
        for (name, t) in &form.tenants {
            let mut keys = BTreeMap::new();
            for (version, b64) in &t.keys {
                let v: u32 = version.parse().map_err(|_| bad(format!("tenant {name}: key version {version:?}")))?;
                let raw =
                    Zeroizing::new(BASE64.decode(b64).map_err(|_| bad(format!("tenant {name}: key {v} not base64")))?);
                let key: [u8; KEK_LEN] = raw
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad(format!("tenant {name}: key {v} is not {KEK_LEN} bytes")))?;
                keys.insert(v, Zeroizing::new(key));
            }
            if !keys.is_empty() && !keys.contains_key(&t.current) {
                return Err(bad(format!("tenant {name}: current key {} does not exist", t.current)));
            }
            tenants.insert(name.clone(), TenantKeys { current: t.current, keys });
        }
        Ok(Self { path: path.to_owned(), tenants })
    }

    fn encode(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let form = FileForm {
            format: FORMAT,
            tenants: self
                .tenants
                .iter()
                .map(|(name, t)| {
                    let keys = t.keys.iter().map(|(v, k)| (v.to_string(), BASE64.encode(&k[..]))).collect();
                    (name.clone(), TenantForm { current: t.current, keys })
                })
                .collect(),
        };
        serde_json::to_vec_pretty(&form).map(Zeroizing::new).map_err(|e| KeyError::Keyring(e.to_string()))
    }

    fn cipher(key: &[u8; KEK_LEN]) -> Result<LessSafeKey, KeyError> {
        // Only fails for a wrong key length, which the type rules out; map it rather than panic.
        UnboundKey::new(&AES_256_GCM, key).map(LessSafeKey::new).map_err(|_| KeyError::Keyring("bad key length".into()))
    }
}

impl fmt::Debug for LocalKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.tenants.keys().collect();
        names.sort();
        f.debug_struct("LocalKeyring").field("path", &self.path).field("tenants", &names).finish_non_exhaustive()
    }
}

/// Splits `local:<tenant>:<version>`.
fn parse_kek_id(kek_id: &str) -> Option<(&str, u32)> {
    let rest = kek_id.strip_prefix("local:")?;
    let (tenant, version) = rest.rsplit_once(':')?;
    Some((tenant, version.parse().ok()?))
}

#[async_trait]
impl KeyProvider for LocalKeyring {
    async fn wrap(&self, tenant: &str, dek: &DataKey, aad: &[u8]) -> Result<WrappedKey, KeyError> {
        let keys = self.tenants.get(tenant).ok_or_else(|| KeyError::UnknownKey(format!("local:{tenant}")))?;
        let kek = keys
            .keys
            .get(&keys.current)
            .ok_or_else(|| KeyError::UnknownKey(format!("local:{tenant}:{}", keys.current)))?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| KeyError::Random)?;
        let mut in_out = Zeroizing::new(dek.as_bytes().to_vec());
        let tag = Self::cipher(kek)?
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut in_out)
            .map_err(|_| KeyError::Keyring("seal failed".into()))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + DATA_KEY_LEN + TAG_LEN);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&in_out);
        blob.extend_from_slice(tag.as_ref());
        Ok(WrappedKey { kek_id: format!("local:{tenant}:{}", keys.current), blob })
    }

    async fn unwrap(&self, tenant: &str, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey, KeyError> {
        let (owner, version) = parse_kek_id(&wrapped.kek_id).ok_or(KeyError::Unwrap)?;
        // A key id naming another tenant is refused before any key is touched.
        if owner != tenant {
            return Err(KeyError::Unwrap);
        }
        let kek = self
            .tenants
            .get(tenant)
            .and_then(|t| t.keys.get(&version))
            .ok_or_else(|| KeyError::UnknownKey(wrapped.kek_id.clone()))?;
        if wrapped.blob.len() != NONCE_LEN + DATA_KEY_LEN + TAG_LEN {
            return Err(KeyError::Unwrap);
        }
        let (nonce, sealed) = wrapped.blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Unwrap)?;
        let mut in_out = Zeroizing::new(sealed.to_vec());
        let plain =
            Self::cipher(kek)?.open_in_place(nonce, Aad::from(aad), &mut in_out).map_err(|_| KeyError::Unwrap)?;
        let key: [u8; DATA_KEY_LEN] = (&*plain).try_into().map_err(|_| KeyError::Unwrap)?;
        Ok(DataKey::from_bytes(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn ring(dir: &tempfile::TempDir) -> LocalKeyring {
        LocalKeyring::open_or_create(&dir.path().join("sub/keyring.json"), &names(&["acme", "globex"])).unwrap()
    }

    #[tokio::test]
    async fn round_trip_and_kek_id() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(&dir);
        let dek = DataKey::generate().unwrap();
        let w = ring.wrap("acme", &dek, b"acme/bucket/key").await.unwrap();
        assert_eq!(w.kek_id, "local:acme:1");
        assert_eq!(w.blob.len(), 12 + 32 + 16);
        assert!(!w.blob.windows(32).any(|win| win == dek.as_bytes()), "plaintext key in blob");
        let back = ring.unwrap("acme", &w, b"acme/bucket/key").await.unwrap();
        assert_eq!(back.as_bytes(), dek.as_bytes());
        let w2 = ring.wrap("acme", &dek, b"acme/bucket/key").await.unwrap();
        assert_ne!(w.blob, w2.blob, "nonces must differ");
    }

    #[tokio::test]
    async fn wrong_tenant_aad_bitflip_and_unknown_version_fail() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(&dir);
        let dek = DataKey::generate().unwrap();
        let w = ring.wrap("acme", &dek, b"aad").await.unwrap();
        assert!(matches!(ring.unwrap("globex", &w, b"aad").await, Err(KeyError::Unwrap)));
        // Even relabelled for the other tenant, the other tenant's key cannot open it.
        let relabelled = WrappedKey { kek_id: "local:globex:1".into(), blob: w.blob.clone() };
        assert!(matches!(ring.unwrap("globex", &relabelled, b"aad").await, Err(KeyError::Unwrap)));
        assert!(matches!(ring.unwrap("acme", &w, b"aae").await, Err(KeyError::Unwrap)));
        for i in 0..w.blob.len() {
            let mut bad = w.clone();
            bad.blob[i] ^= 0x01;
            assert!(matches!(ring.unwrap("acme", &bad, b"aad").await, Err(KeyError::Unwrap)), "byte {i}");
        }
        let mut short = w.clone();
        short.blob.pop();
        assert!(matches!(ring.unwrap("acme", &short, b"aad").await, Err(KeyError::Unwrap)));
        let v9 = WrappedKey { kek_id: "local:acme:9".into(), blob: w.blob.clone() };
        assert!(
            matches!(ring.unwrap("acme", &v9, b"aad").await, Err(KeyError::UnknownKey(id)) if id == "local:acme:9")
        );
        let junk = WrappedKey { kek_id: "kms:acme:1".into(), blob: w.blob.clone() };
        assert!(matches!(ring.unwrap("acme", &junk, b"aad").await, Err(KeyError::Unwrap)));
        assert!(matches!(ring.wrap("nobody", &dek, b"aad").await, Err(KeyError::UnknownKey(_))));
    }

    #[tokio::test]
    async fn file_is_private_and_reopen_keeps_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/keyring.json");
        let dek = DataKey::generate().unwrap();
        let w = ring(&dir).wrap("globex", &dek, b"x").await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.path().join("sub")).unwrap().permissions().mode() & 0o777, 0o700);
        let before = std::fs::read(&path).unwrap();

        // Reopen with an extra tenant: old keys survive, the new tenant gets a key.
        let reopened = LocalKeyring::open_or_create(&path, &names(&["globex", "initech"])).unwrap();
        assert_eq!(reopened.unwrap("globex", &w, b"x").await.unwrap().as_bytes(), dek.as_bytes());
        assert_eq!(reopened.wrap("initech", &dek, b"x").await.unwrap().kek_id, "local:initech:1");
        assert_eq!(reopened.wrap("acme", &dek, b"x").await.unwrap().kek_id, "local:acme:1");
        // Reopen with nothing new: the file is not rewritten.
        let after = std::fs::read(&path).unwrap();
        assert_ne!(before, after);
        LocalKeyring::open_or_create(&path, &names(&["acme"])).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), after);

        let dbg = format!("{reopened:?}");
        assert!(dbg.contains("initech") && !dbg.contains("keys"), "{dbg}");
    }

    #[test]
    fn world_readable_or_malformed_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        LocalKeyring::open_or_create(&path, &names(&["acme"])).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = LocalKeyring::open_or_create(&path, &names(&["acme"])).unwrap_err();
        assert!(matches!(&err, KeyError::Keyring(m) if m.contains("group/others")), "{err}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, r#"{"format":1,"tenants":{"a":{"current":2,"keys":{"1":"AAAA"}}}}"#).unwrap();
        assert!(matches!(LocalKeyring::open_or_create(&path, &[]), Err(KeyError::Keyring(_))));
        std::fs::write(&path, r#"{"format":2,"tenants":{}}"#).unwrap();
        assert!(matches!(LocalKeyring::open_or_create(&path, &[]), Err(KeyError::Keyring(m)) if m.contains("format")));
    }
}
