//! The `pkcs11` root-key provider: tenant root keys are AES-256 secret key objects on a PKCS#11 token
//! (an HSM; SoftHSM2 in tests), used through the `cryptoki` crate.
//!
//! Root keys: one token object per root, `CKA_LABEL` = `CKA_ID` = `blobseal:<tenant>:<n>`, created with
//! `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` true and `CKA_EXTRACTABLE` false, so the key value never
//! leaves the token. The root id blobseal stores is `pkcs11:<tenant>:<n>`; `n` counts up per tenant.
//!
//! Wrapping: `CKM_AES_GCM` on the token (SoftHSM2 2.6 supports it), with a fresh random 12-byte IV from
//! aws-lc-rs, [`WrapContext::aad`] as associated data and a 128-bit tag. Blob = `IV (12) ‖ ciphertext (32)
//! ‖ tag (16)`, i.e. the IV followed by what `C_Encrypt` returns. Random IVs are safe: a root key wraps a
//! handful of lifetime keys, far below GCM's 2^32 random-IV bound.
//!
//! Destroying a root runs `C_DestroyObject` on the key after leaving a tombstone: a `CKO_DATA` object with
//! the same label and no key material, so the tenant's numbering never reuses a destroyed root's id.
//!
//! PKCS#11 calls block, so every operation runs on tokio's blocking pool with the one logged-in session
//! behind a mutex (root-key calls are rare: the keychain caches unwrapped lifetime keys). Providers on
//! the same token in one process share that session (`session.rs` says why). A session the token
//! invalidated (token restart, removal) is dropped and reopened on the next call.

mod names;
mod session;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::types::Ulong;
use zeroize::{Zeroize, Zeroizing};

use super::{DataKey, Destruction, KeyError, KeyProvider, WrapContext, DATA_KEY_LEN};
use names::{label_for, owned_label, root_id_for, version_in_label};
use session::{ck, session_lost, Failure, Inner};

const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const TAG_BITS: u64 = 128;

/// Where the token is and how to log in. The PIN is zeroized on drop and never printed.
#[derive(Clone)]
pub struct Pkcs11Settings {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The label of the token that holds the root keys (exact match, without the blank padding).
    pub token_label: String,
    /// The user PIN. Secret.
    pub pin: String,
}

impl fmt::Debug for Pkcs11Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Settings")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"<redacted>")
            .finish()
    }
}

impl Drop for Pkcs11Settings {
    fn drop(&mut self) {
        self.pin.zeroize();
    }
}

/// A [`KeyProvider`] whose root keys live on a PKCS#11 token. Cheap to share: all state is behind one
/// `Arc`; calls are serialised on one session.
pub struct Pkcs11Provider {
    inner: Arc<Inner>,
}

impl fmt::Debug for Pkcs11Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Provider")
            .field("module", &self.inner.module)
            .field("token_label", &self.inner.token_label)
            .field("slot", &self.inner.slot.id())
            .finish_non_exhaustive()
    }
}

impl Pkcs11Provider {
    /// Loads and initialises the module (once per process and module path), finds the slot whose token
    /// is labelled `settings.token_label`, opens a read-write session and logs in as the user. Blocks:
    /// call it at startup or from a blocking context.
    ///
    /// Providers opened in one process on the same module and token share that session: a later `open`
    /// does not log in again but must present the same PIN.
    ///
    /// Errors: [`KeyError::Unavailable`] if the module cannot be loaded or initialised, no token has the
    /// label, the session or login fails, or the PIN differs from the one the shared session logged in
    /// with (the reason names the module and token, never the PIN).
    pub fn open(settings: Pkcs11Settings) -> Result<Self, KeyError> {
        Ok(Self { inner: Inner::open(&settings)? })
    }

    /// Runs `op` with the session on the blocking pool.
    async fn run<T, F>(&self, op: F) -> Result<T, KeyError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &Session) -> Result<T, Failure> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.with_session(op))
            .await
            .map_err(|e| KeyError::Unavailable(format!("pkcs11 worker task failed: {e}")))?
    }
}

/// The secret key object labelled `label`, or [`KeyError::UnknownKey`] naming `root_id`. Two objects
/// with one label (two replicas racing in create_root) are refused rather than guessed between.
fn find_key(session: &Session, label: &str, root_id: &str) -> Result<ObjectHandle, Failure> {
    let template = [Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Label(label.as_bytes().to_vec())];
    let found = session.find_objects(&template).map_err(ck("cannot search the token"))?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(KeyError::UnknownKey(root_id.to_owned()).into()),
        _ => Err(KeyError::Keyring(format!("{} objects on the token are labelled {label:?}", found.len())).into()),
    }
}

/// The highest root key version of `tenant` on the token (0 if none), counting live keys and the
/// tombstones [`KeyProvider::destroy`] leaves, so a destroyed root's id is never handed out again.
fn highest_version(session: &Session, tenant: &str) -> Result<u32, Failure> {
    let mut objects =
        session.find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)]).map_err(ck("cannot list secret keys"))?;
    let tombstones =
        session.find_objects(&[Attribute::Class(ObjectClass::DATA)]).map_err(ck("cannot list data objects"))?;
    objects.extend(tombstones);
    let mut highest = 0;
    for key in objects {
        let attrs = match session.get_attributes(key, &[AttributeType::Label]) {
            Ok(attrs) => attrs,
            // Destroyed (by another process) between the search and this read: it no longer counts.
            Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => continue,
            Err(e) => return Err(Failure::Ck("cannot read a key label", e)),
        };
        for attr in attrs {
            if let Attribute::Label(label) = attr {
                highest = highest.max(version_in_label(&label, tenant).unwrap_or(0));
            }
        }
    }
    Ok(highest)
}

fn gcm_params<'a>(iv: &'a mut [u8], aad: &'a [u8]) -> Result<Mechanism<'a>, Failure> {
    let params = GcmParams::new(iv, aad, Ulong::from(TAG_BITS)).map_err(ck("bad AES-GCM parameters"))?;
    Ok(Mechanism::AesGcm(params))
}

#[async_trait]
impl KeyProvider for Pkcs11Provider {
    fn kind(&self) -> &'static str {
        "pkcs11"
    }

    /// Generates `blobseal:<tenant>:<n+1>` on the token, `n` being the tenant's highest existing version.
    /// Serialised with every other call of this provider; replicas creating roots for one tenant at the
    /// same moment can collide, which later lookups report as [`KeyError::Keyring`].
    async fn create_root(&self, tenant: &str) -> Result<String, KeyError> {
        let tenant = tenant.to_owned();
        self.run(move |_, session| {
            let n = highest_version(session, &tenant)?
                .checked_add(1)
                .ok_or_else(|| KeyError::Keyring(format!("tenant {tenant}: root key versions exhausted")))?;
            let root_id = root_id_for(&tenant, n);
            // The trait promises ids of at most 255 bytes (they are stored in object headers).
            if root_id.len() > 255 {
                return Err(KeyError::Keyring(format!("tenant name too long for a pkcs11 root id: {tenant:?}")).into());
            }
            let label = label_for(&tenant, n).into_bytes();
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(Ulong::from(DATA_KEY_LEN as u64)),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Label(label.clone()),
                Attribute::Id(label),
            ];
            session.generate_key(&Mechanism::AesKeyGen, &template).map_err(ck("cannot generate a root key"))?;
            Ok(root_id)
        })
        .await
    }

    async fn wrap(&self, root_id: &str, key: &DataKey, cx: &WrapContext<'_>) -> Result<Vec<u8>, KeyError> {
        let label = owned_label(root_id, cx.tenant)?;
        let root_id = root_id.to_owned();
        let plain = Zeroizing::new(key.as_bytes().to_vec());
        let aad = cx.aad();
        let mut iv = [0u8; IV_LEN];
        aws_lc_rs::rand::fill(&mut iv).map_err(|_| KeyError::Random)?;
        self.run(move |_, session| {
            let handle = find_key(session, &label, &root_id)?;
            let mut iv_param = iv;
            let mechanism = gcm_params(&mut iv_param, &aad)?;
            let sealed = session.encrypt(&mechanism, handle, &plain).map_err(ck("AES-GCM encrypt failed"))?;
            if sealed.len() != DATA_KEY_LEN + TAG_LEN {
                return Err(KeyError::Unavailable(format!(
                    "pkcs11 AES-GCM returned {} bytes, expected {}",
                    sealed.len(),
                    DATA_KEY_LEN + TAG_LEN
                ))
                .into());
            }
            let mut blob = Vec::with_capacity(IV_LEN + sealed.len());
            blob.extend_from_slice(&iv);
            blob.extend_from_slice(&sealed);
            Ok(blob)
        })
        .await
    }

    /// A root id of another tenant, a malformed or tampered blob and a failed tag check are all
    /// [`KeyError::Unwrap`]; a root that is not on the token is [`KeyError::UnknownKey`].
    async fn unwrap(&self, root_id: &str, blob: &[u8], cx: &WrapContext<'_>) -> Result<DataKey, KeyError> {
        let label = owned_label(root_id, cx.tenant).map_err(|_| KeyError::Unwrap)?;
        if blob.len() != IV_LEN + DATA_KEY_LEN + TAG_LEN {
            return Err(KeyError::Unwrap);
        }
        let (iv, sealed) = blob.split_at(IV_LEN);
        let mut iv: [u8; IV_LEN] = iv.try_into().map_err(|_| KeyError::Unwrap)?;
        let sealed = sealed.to_vec();
        let root_id = root_id.to_owned();
        let aad = cx.aad();
        self.run(move |_, session| {
            let handle = find_key(session, &label, &root_id)?;
            let mechanism = gcm_params(&mut iv, &aad)?;
            match session.decrypt(&mechanism, handle, &sealed) {
                Ok(plain) => {
                    let plain = Zeroizing::new(plain);
                    Ok(DataKey::from_slice(&plain)?)
                }
                // The token is gone or the session died: that is not the blob's fault.
                Err(e) if session_lost(&e) || matches!(e, CkError::Pkcs11(RvError::DeviceError, _)) => {
                    Err(Failure::Ck("AES-GCM decrypt failed", e))
                }
                // Tag mismatch (SoftHSM2 reports it as a generic failure, others as invalid data).
                Err(_) => Err(KeyError::Unwrap.into()),
            }
        })
        .await
    }

    async fn destroy(&self, tenant: &str, root_id: &str) -> Result<Destruction, KeyError> {
        let label = owned_label(root_id, tenant)?;
        let root_id = root_id.to_owned();
        self.run(move |inner, session| {
            let handle = find_key(session, &label, &root_id)?;
            // The tombstone goes first: if it cannot be written, nothing is destroyed.
            let tombstone = [
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Label(label.clone().into_bytes()),
                Attribute::Value(b"destroyed".to_vec()),
            ];
            session.create_object(&tombstone).map_err(ck("cannot record the destruction"))?;
            session.destroy_object(handle).map_err(ck("cannot destroy the root key"))?;
            Ok(Destruction { root_id, detail: format!("destroyed on token {}", inner.token_label) })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_debug_hides_the_pin() {
        let s = Pkcs11Settings { module: "/m.so".into(), token_label: "t".into(), pin: "s3cr3t-pin".into() };
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cr3t-pin") && shown.contains("<redacted>"), "{shown}");
    }
}
