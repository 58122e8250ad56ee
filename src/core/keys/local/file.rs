//! The keyring file (format 2, see the parent module): its in-memory form, sealing it under the
//! master key, reading and writing it, the cross-process lock, and the stamp readers use to notice
//! that another process changed it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::super::{DataKey, KeyError};
use super::master::MasterKey;
use crate::config::private_file::{ensure_private, write_private_atomic};

/// The `format` field of the file this module writes.
pub(super) const FORMAT: u32 = 2;
/// Associated data of the keyring ciphertext: a blob sealed under the master key for another
/// purpose cannot be passed off as a keyring.
pub(super) const KEYRING_AAD: &[u8] = b"blobseal/v1/keyring";
const TAG_LEN: usize = 16;
/// A keyring holds a few keys per tenant; anything this large is not one (and is not read into memory).
const MAX_FILE_LEN: u64 = 64 << 20;

/// Every tenant's root keys, as decrypted from the file.
#[derive(Default)]
pub(super) struct Ring {
    pub(super) tenants: BTreeMap<String, TenantKeys>,
}

/// One tenant's root key versions.
#[derive(Default)]
pub(super) struct TenantKeys {
    /// The highest version ever created, destroyed or not: the next one is `last + 1`.
    pub(super) last: u32,
    /// The versions that still exist. [`DataKey`] zeroizes on drop.
    pub(super) keys: BTreeMap<u32, DataKey>,
}

/// Which version of the file a loaded ring came from. Every write replaces the file by rename
/// (new inode) and [`write`] makes its mtime strictly later than the one it replaced, so a
/// changed file never matches an old stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: SystemTime,
}

impl Stamp {
    fn of(meta: &Metadata) -> io::Result<Self> {
        Ok(Self { dev: meta.dev(), ino: meta.ino(), len: meta.len(), mtime: meta.modified()? })
    }

    /// The file's modification time at that version.
    pub(super) fn mtime(&self) -> SystemTime {
        self.mtime
    }
}

/// Outer form: everything but `format` is opaque without the master key.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    format: u32,
    nonce: String,
    ciphertext: String,
}

/// Just enough of any keyring file to tell the formats apart (format 1 had other fields).
#[derive(Deserialize)]
struct Probe {
    format: u32,
}

/// Inner (decrypted) form.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RingForm {
    tenants: BTreeMap<String, TenantForm>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantForm {
    last: u32,
    keys: BTreeMap<u32, String>,
}

impl Drop for TenantForm {
    // The base64 strings are key material.
    fn drop(&mut self) {
        for v in self.keys.values_mut() {
            v.zeroize();
        }
    }
}

fn io_error(what: &str, path: &Path, e: io::Error) -> KeyError {
    KeyError::Keyring(format!("{what} keyring {}: {e}", path.display()))
}

/// The sibling lock file, `<path>.lock`.
pub(super) fn lock_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the exclusive cross-process lock on `<path>.lock` (created 0600 if missing), blocking
/// until it is free. The lock is released when the returned file is dropped. Only writers lock:
/// readers never see a torn file because writes are atomic renames.
pub(super) fn lock(path: &Path) -> Result<File, KeyError> {
    let lock = lock_path(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock)
        .map_err(|e| io_error("cannot open lock file of", path, e))?;
    file.lock().map_err(|e| io_error("cannot lock", path, e))?;
    Ok(file)
}

/// The stamp of the file at `path` now (one `stat`).
pub(super) fn stamp(path: &Path) -> Result<Stamp, KeyError> {
    fs::metadata(path).and_then(|m| Stamp::of(&m)).map_err(|e| io_error("cannot stat", path, e))
}

/// Reads and decrypts the keyring at `path`, refusing it if group/others can access it. The
/// stamp comes from the same open file, so it names exactly the version that was read.
///
/// Errors ([`KeyError::Keyring`]): unreadable or not private; a format-1 (plaintext) file; another
/// format; a wrong master key or any modified byte; a malformed inner document.
pub(super) fn read(path: &Path, master: &MasterKey) -> Result<(Ring, Stamp), KeyError> {
    ensure_private(path).map_err(|e| KeyError::Keyring(e.to_string()))?;
    let mut file = File::open(path).map_err(|e| io_error("cannot open", path, e))?;
    let meta = file.metadata().map_err(|e| io_error("cannot stat", path, e))?;
    if meta.len() > MAX_FILE_LEN {
        return Err(KeyError::Keyring(format!("keyring {} is too large to be a keyring", path.display())));
    }
    let stamp = Stamp::of(&meta).map_err(|e| io_error("cannot stat", path, e))?;
    // Zeroizing: a format-1 file holds keys in the clear.
    let mut bytes = Zeroizing::new(Vec::new());
    file.read_to_end(&mut bytes).map_err(|e| io_error("cannot read", path, e))?;
    Ok((decode(path, &bytes, master)?, stamp))
}

fn decode(path: &Path, bytes: &[u8], master: &MasterKey) -> Result<Ring, KeyError> {
    let bad = |why: &str| KeyError::Keyring(format!("keyring {}: {why}", path.display()));
    let probe: Probe = serde_json::from_slice(bytes).map_err(|_| bad("not a blobseal keyring file"))?;
    match probe.format {
        FORMAT => {}
        1 => {
            return Err(bad("format 1 (unencrypted keys) was written by an older blobseal and is no longer read; \
                 recreate the keyring (move this file away; blobseal then creates an encrypted one), \
                 and since it holds keys in the clear, destroy the old file once nothing needs it"))
        }
        n => return Err(bad(&format!("unsupported keyring format {n}"))),
    }
    let sealed: Sealed = serde_json::from_slice(bytes).map_err(|_| bad("malformed format 2 file"))?;
    let nonce = BASE64.decode(&sealed.nonce).map_err(|_| bad("nonce is not base64"))?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| bad("nonce is not 12 bytes"))?;
    let mut in_out = Zeroizing::new(BASE64.decode(&sealed.ciphertext).map_err(|_| bad("ciphertext is not base64"))?);
    let plain = cipher(master)?.open_in_place(nonce, Aad::from(KEYRING_AAD), &mut in_out).map_err(|_| {
        KeyError::Keyring(format!("cannot decrypt keyring {}: wrong master key or corrupted file", path.display()))
    })?;
    // Authenticated, so written by blobseal; still checked, since a bug must not become a panic.
    let form: RingForm = serde_json::from_slice(plain).map_err(|_| bad("malformed keyring contents"))?;
    let mut ring = Ring::default();
    for (name, t) in &form.tenants {
        let mut keys = BTreeMap::new();
        for (&version, b64) in &t.keys {
            if version == 0 || version > t.last {
                return Err(bad(&format!("tenant {name}: key version {version} outside 1..={}", t.last)));
            }
            let raw = Zeroizing::new(BASE64.decode(b64).map_err(|_| bad(&format!("tenant {name}: key {version}")))?);
            keys.insert(version, DataKey::from_slice(&raw).map_err(|_| bad(&format!("tenant {name}: key {version}")))?);
        }
        ring.tenants.insert(name.clone(), TenantKeys { last: t.last, keys });
    }
    Ok(ring)
}

/// Seals `ring` under `master` with a fresh nonce and replaces the file atomically (0600; temp +
/// fsync + rename + directory fsync). `replaced` is the mtime of the version being replaced, if
/// any: the new file's mtime is pushed past it so that readers holding its stamp see a change
/// even within one tick of a coarse clock. Must be called under [`lock`]. Returns the new stamp.
pub(super) fn write(
    path: &Path,
    master: &MasterKey,
    ring: &Ring,
    replaced: Option<SystemTime>,
) -> Result<Stamp, KeyError> {
    let form = RingForm {
        tenants: ring
            .tenants
            .iter()
            .map(|(name, t)| {
                let keys = t.keys.iter().map(|(v, k)| (*v, BASE64.encode(k.as_bytes()))).collect();
                (name.clone(), TenantForm { last: t.last, keys })
            })
            .collect(),
    };
    // Sized up front so the plaintext is never reallocated (which would leave copies behind).
    let keys: usize = ring.tenants.values().map(|t| t.keys.len()).sum();
    let mut in_out = Zeroizing::new(Vec::with_capacity(64 + 96 * (keys + ring.tenants.len()) + TAG_LEN));
    serde_json::to_writer(&mut *in_out, &form).map_err(|e| KeyError::Keyring(e.to_string()))?;
    drop(form);
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| KeyError::Random)?;
    cipher(master)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(KEYRING_AAD), &mut *in_out)
        .map_err(|_| KeyError::Keyring("keyring seal failed".into()))?;
    let sealed = Sealed { format: FORMAT, nonce: BASE64.encode(nonce), ciphertext: BASE64.encode(&*in_out) };
    let json = serde_json::to_vec(&sealed).map_err(|e| KeyError::Keyring(e.to_string()))?;
    write_private_atomic(path, &json).map_err(|e| io_error("cannot write", path, e))?;
    if let Some(old) = replaced {
        push_mtime_past(path, old).map_err(|e| io_error("cannot set mtime of", path, e))?;
    }
    stamp(path)
}

/// Makes `path`'s mtime later than `old`. Tries 1 ms later first, then 2 s for filesystems with
/// coarse timestamps (FAT), re-checking each time.
fn push_mtime_past(path: &Path, old: SystemTime) -> io::Result<()> {
    for step in [Duration::from_millis(1), Duration::from_secs(2)] {
        if fs::metadata(path)?.modified()? > old {
            return Ok(());
        }
        OpenOptions::new().write(true).open(path)?.set_modified(old + step)?;
    }
    Ok(())
}

fn cipher(master: &MasterKey) -> Result<LessSafeKey, KeyError> {
    // Only fails for a wrong key length, which the type rules out; map it rather than panic.
    UnboundKey::new(&AES_256_GCM, master.as_bytes())
        .map(LessSafeKey::new)
        .map_err(|_| KeyError::Keyring("bad master key length".into()))
}
