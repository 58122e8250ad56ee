//! The master key that encrypts the local keyring file: 32 random bytes, kept as standard base64
//! in its own 0600 file (or handed over by the operator, e.g. from an environment variable).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use zeroize::Zeroizing;

use super::super::KeyError;
use crate::config::private_file::{create_private_dir, ensure_private, temp_beside};

/// Length of the master key (AES-256).
pub const MASTER_KEY_LEN: usize = 32;

/// The key that encrypts the keyring file. Zeroized on drop; `Debug` prints no key material.
/// Deliberately not `Clone`: one copy per keyring.
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl MasterKey {
    /// A fresh key from the system CSPRNG. Errors: [`KeyError::Random`].
    pub fn generate() -> Result<Self, KeyError> {
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        aws_lc_rs::rand::fill(&mut key[..]).map_err(|_| KeyError::Random)?;
        Ok(Self(key))
    }

    /// Parses standard (padded) base64 of exactly 32 bytes; surrounding whitespace (a trailing
    /// newline) is ignored. Errors: [`KeyError::Keyring`], whose message never quotes the input.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::Keyring(format!("master key is not standard base64 of {MASTER_KEY_LEN} bytes"));
        let raw = Zeroizing::new(BASE64.decode(text.trim()).map_err(|_| bad())?);
        let key: [u8; MASTER_KEY_LEN] = raw.as_slice().try_into().map_err(|_| bad())?;
        Ok(Self(Zeroizing::new(key)))
    }

    /// Reads the master key from `path` (base64, see [`MasterKey::from_base64`]), or, if the file
    /// does not exist, creates it (0600, parent directories 0700) holding a fresh random key.
    /// Creation is race-free: the key is written to a temp file and hard-linked into place, so
    /// when two processes start at once exactly one key wins and both use it.
    ///
    /// Errors: [`KeyError::Keyring`] if the file is accessible by group/others (refused, not fixed:
    /// the key may have leaked), is not a valid key, or cannot be read or written;
    /// [`KeyError::Random`] if the CSPRNG fails.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io =
            |what: &str, e: io::Error| KeyError::Keyring(format!("{what} master key file {}: {e}", path.display()));
        if !path.try_exists().map_err(|e| io("cannot check", e))? {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir).map_err(|e| io("cannot create directory for", e))?;
            }
            let key = Self::generate()?;
            match create_exclusive(path, BASE64.encode(&key.0[..]).as_bytes()) {
                Ok(()) => return Ok(key),
                // Another process created it first: use theirs, below.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("cannot create", e)),
            }
        }
        ensure_private(path).map_err(|e| KeyError::Keyring(e.to_string()))?;
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| io("cannot read", e))?);
        Self::from_base64(&text)
            .map_err(|_| KeyError::Keyring(format!("master key file {}: not base64 of 32 bytes", path.display())))
    }

    /// The key bytes, for sealing and opening the keyring file only.
    pub(super) fn as_bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Writes `contents` + newline to a 0600 temp file beside `path`, fsyncs it, and hard-links it to
/// `path`, which fails with `AlreadyExists` instead of replacing a key someone else created (a
/// rename would silently replace it, orphaning a keyring already encrypted under the first key).
fn create_exclusive(path: &Path, contents: &[u8]) -> io::Result<()> {
    let (dir, tmp) = temp_beside(path)?;
    let dir = dir.as_path();
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(contents)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::hard_link(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    // The temp name is never needed: on success `path` holds the inode, on failure it is debris.
    let _ = fs::remove_file(&tmp);
    result
}
