//! The local keyring: tenant root keys in a file on local disk, encrypted under a master key.
//! It is the root-key provider of the embedded default and of small deployments.
//!
//! # File format 2
//!
//! The file (mode 0600, in a 0700 directory; refused if group/others can access it) is one JSON
//! object:
//!
//! ```text
//! {"format":2,"nonce":"<base64 of 12 bytes>","ciphertext":"<base64>"}
//! ```
//!
//! `ciphertext` is AES-256-GCM under the 32-byte master key ([`MasterKey`]) with that `nonce`
//! (fresh and random on every write), associated data `blobseal/v1/keyring` (19 ASCII bytes), and
//! the 16-byte tag appended. base64 is the standard alphabet with padding. The plaintext is UTF-8
//! JSON:
//!
//! ```text
//! {"tenants":{"<tenant>":{"last":<u32>,"keys":{"<version>":"<base64 of 32 bytes>", ...}}, ...}}
//! ```
//!
//! `keys` maps each existing root key version (decimal, 1..=`last`) to its AES-256 key; `last`
//! is the highest version ever created for the tenant, kept when that key is destroyed so a
//! version number is never reused. A new keyring is `{"tenants":{}}`. Unknown fields are
//! rejected at both levels. Format 1 (`{"format":1,"tenants":...}` with keys in the clear) is
//! refused: it must be recreated.
//!
//! # Root keys and wraps
//!
//! A root key id is `local:<tenant>:<version>` (version in decimal, no leading zeros). A wrap is
//! [`aead::seal_key`](super::aead::seal_key) under the root key with the [`WrapContext::aad`]:
//! `nonce (12) ‖ ciphertext (32) ‖ tag (16)`.
//!
//! # Several processes
//!
//! The server and `blobseal keys`/`shred` commands may use one file at once. Every change takes
//! an exclusive lock on the sibling `<path>.lock`, re-reads the file inside the lock, and
//! replaces it atomically (temp + fsync + rename + directory fsync). Readers take no lock: before
//! each use of a key they `stat` the file and reload it if its (device, inode, length, mtime)
//! changed, so a root created or destroyed elsewhere is seen on the next call.
//!
//! Destroying a root key rewrites the file without it. Older copies of the file (backups, blocks
//! not yet overwritten) still hold it, encrypted under the master key: a shred is final only
//! once those copies or the master key are gone.

mod file;
mod master;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;

pub use master::{MasterKey, MASTER_KEY_LEN};

use super::aead::{open_key, seal_key};
use super::{DataKey, Destruction, KeyError, KeyProvider, WrapContext};
use crate::config::private_file::create_private_dir;
use file::{Ring, Stamp};

/// Longest root key id the [`KeyProvider`] contract allows.
const MAX_ROOT_ID_LEN: usize = 255;

/// A [`KeyProvider`] backed by a keyring file. Cheap per call (one `stat`); the file is re-read
/// only when it changed. Safe to share between tasks and with other processes (module docs).
pub struct LocalKeyring {
    path: PathBuf,
    master: MasterKey,
    /// The ring as last read or written, and which version of the file that was. Held only for
    /// short synchronous sections, never across an await.
    state: RwLock<Loaded>,
}

struct Loaded {
    ring: Ring,
    stamp: Stamp,
}

impl LocalKeyring {
    /// Opens the keyring at `path` with `master`. If the file does not exist it is created empty
    /// (0600; missing parent directories 0700); no root keys are created here, only by
    /// [`KeyProvider::create_root`].
    ///
    /// Errors ([`KeyError::Keyring`]): the file is group/world accessible (refused, not fixed: the
    /// keys may have leaked), was encrypted under another master key or modified (`cannot decrypt
    /// keyring <path>: wrong master key or corrupted file`), is format 1 (plaintext, from an older
    /// blobseal), is malformed, or cannot be read, locked or written. [`KeyError::Random`] if the
    /// CSPRNG fails.
    pub fn open(path: &Path, master: MasterKey) -> Result<Self, KeyError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(|e| {
                KeyError::Keyring(format!("cannot create directory for keyring {}: {e}", path.display()))
            })?;
        }
        let loaded = {
            // Under the lock, so two processes starting at once do not both create the file.
            let _lock = file::lock(path)?;
            let exists = path
                .try_exists()
                .map_err(|e| KeyError::Keyring(format!("cannot check keyring {}: {e}", path.display())))?;
            if exists {
                let (ring, stamp) = file::read(path, &master)?;
                Loaded { ring, stamp }
            } else {
                let ring = Ring::default();
                let stamp = file::write(path, &master, &ring, None)?;
                Loaded { ring, stamp }
            }
        };
        Ok(Self { path: path.to_owned(), master, state: RwLock::new(loaded) })
    }

    /// The keyring file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ids of `tenant`'s existing root keys, oldest first, as of the file now (re-read if it
    /// changed). Errors as for [`LocalKeyring::open`] when the file has to be re-read.
    pub fn roots(&self, tenant: &str) -> Result<Vec<String>, KeyError> {
        let state = self.current()?;
        Ok(state
            .ring
            .tenants
            .get(tenant)
            .map(|t| t.keys.keys().map(|v| root_id(tenant, *v)).collect())
            .unwrap_or_default())
    }

    // A panic while a guard was held cannot leave the state half-updated (it is replaced whole),
    // so a poisoned lock is still safe to use.
    fn read_state(&self) -> RwLockReadGuard<'_, Loaded> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, Loaded> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state, reloaded first if the file changed since it was last loaded.
    fn current(&self) -> Result<RwLockReadGuard<'_, Loaded>, KeyError> {
        let now = file::stamp(&self.path)?;
        {
            let state = self.read_state();
            if state.stamp == now {
                return Ok(state);
            }
        }
        let (ring, stamp) = file::read(&self.path, &self.master)?;
        // A concurrent reload may store an older version here; the next stat then differs again.
        *self.write_state() = Loaded { ring, stamp };
        Ok(self.read_state())
    }

    /// Read-modify-write under the cross-process lock: re-reads the file, applies `change`, and
    /// writes the result if `change` succeeded.
    fn modify<T>(&self, change: impl FnOnce(&mut Ring) -> Result<T, KeyError>) -> Result<T, KeyError> {
        let _lock = file::lock(&self.path)?;
        let (mut ring, stamp) = file::read(&self.path, &self.master)?;
        let result = change(&mut ring);
        let stamp = match result {
            Ok(_) => file::write(&self.path, &self.master, &ring, Some(stamp.mtime()))?,
            Err(_) => stamp,
        };
        *self.write_state() = Loaded { ring, stamp };
        result
    }

    /// The root key `root_id` of `tenant`, as of the file now.
    fn with_root<T>(
        &self,
        tenant: &str,
        version: u32,
        root: &str,
        f: impl FnOnce(&DataKey) -> T,
    ) -> Result<T, KeyError> {
        let state = self.current()?;
        let key = state
            .ring
            .tenants
            .get(tenant)
            .and_then(|t| t.keys.get(&version))
            .ok_or_else(|| KeyError::UnknownKey(root.to_owned()))?;
        Ok(f(key))
    }

    fn create_root_sync(&self, tenant: &str) -> Result<String, KeyError> {
        // `u32::MAX` is the longest version: check the id fits before using a number.
        let longest = root_id(tenant, u32::MAX);
        if tenant.is_empty() || !longest.is_ascii() || longest.len() > MAX_ROOT_ID_LEN {
            return Err(KeyError::Keyring(format!("tenant name {tenant:?} cannot name a local root key")));
        }
        let key = DataKey::generate()?;
        self.modify(|ring| {
            let keys = ring.tenants.entry(tenant.to_owned()).or_default();
            let version = keys
                .last
                .checked_add(1)
                .ok_or_else(|| KeyError::Keyring(format!("tenant {tenant} has used every root key version")))?;
            keys.last = version;
            keys.keys.insert(version, key);
            Ok(root_id(tenant, version))
        })
    }

    fn destroy_sync(&self, tenant: &str, root: &str) -> Result<Destruction, KeyError> {
        // A root of another tenant is refused without touching the file.
        let version = match parse_root_id(root) {
            Some((owner, version)) if owner == tenant => version,
            _ => return Err(KeyError::UnknownKey(root.to_owned())),
        };
        self.modify(|ring| {
            ring.tenants
                .get_mut(tenant)
                .and_then(|t| t.keys.remove(&version))
                .map(drop)
                .ok_or_else(|| KeyError::UnknownKey(root.to_owned()))
        })?;
        Ok(Destruction { root_id: root.to_owned(), detail: format!("removed from keyring {}", self.path.display()) })
    }
}

impl fmt::Debug for LocalKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read_state();
        let tenants: Vec<&String> = state.ring.tenants.keys().collect();
        f.debug_struct("LocalKeyring").field("path", &self.path).field("tenants", &tenants).finish_non_exhaustive()
    }
}

fn root_id(tenant: &str, version: u32) -> String {
    format!("local:{tenant}:{version}")
}

/// Splits `local:<tenant>:<version>`; the version must be canonical decimal (so one key has one id).
fn parse_root_id(root_id: &str) -> Option<(&str, u32)> {
    let (tenant, version) = root_id.strip_prefix("local:")?.rsplit_once(':')?;
    let n: u32 = version.parse().ok()?;
    (!tenant.is_empty() && n.to_string() == version).then_some((tenant, n))
}

#[async_trait]
impl KeyProvider for LocalKeyring {
    fn kind(&self) -> &'static str {
        "local"
    }

    /// Adds version `last + 1` for `tenant` (a random key) and persists it before returning.
    async fn create_root(&self, tenant: &str) -> Result<String, KeyError> {
        self.create_root_sync(tenant)
    }

    async fn wrap(&self, root_id: &str, key: &DataKey, cx: &WrapContext<'_>) -> Result<Vec<u8>, KeyError> {
        let version = match parse_root_id(root_id) {
            Some((owner, version)) if owner == cx.tenant => version,
            _ => return Err(KeyError::UnknownKey(root_id.to_owned())),
        };
        self.with_root(cx.tenant, version, root_id, |root| seal_key(root, key, &cx.aad()))?
    }

    async fn unwrap(&self, root_id: &str, blob: &[u8], cx: &WrapContext<'_>) -> Result<DataKey, KeyError> {
        // A root id naming another tenant is refused before any key is touched.
        let version = match parse_root_id(root_id) {
            Some((owner, version)) if owner == cx.tenant => version,
            _ => return Err(KeyError::Unwrap),
        };
        self.with_root(cx.tenant, version, root_id, |root| open_key(root, blob, &cx.aad()))?
    }

    /// Removes the key from the file and persists it; the detail is `removed from keyring <path>`.
    /// A root that does not exist (any more) or belongs to another tenant is [`KeyError::UnknownKey`].
    async fn destroy(&self, tenant: &str, root_id: &str) -> Result<Destruction, KeyError> {
        self.destroy_sync(tenant, root_id)
    }
}
