//! The process-wide PKCS#11 state: one initialised context per module, one logged-in session per token
//! (shared by every provider on it), and how a failed call is classified.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::super::KeyError;
use super::Pkcs11Settings;

/// What the blocking calls need: one per module and token in the process, shared by every provider on
/// that token. `session` is `None` after the token invalidated it.
pub(super) struct Inner {
    ctx: Pkcs11,
    pub(super) slot: Slot,
    pub(super) module: PathBuf,
    pub(super) token_label: String,
    pin: Zeroizing<String>,
    session: Mutex<Option<Session>>,
}

/// Every initialised module and every logged-in token of the process. PKCS#11 state is per process:
/// C_Initialize runs once per module (finalising under another user would break it), login state is per
/// token, and SoftHSM2 fails object creation from concurrent sessions (softhsm/SoftHSMv2#573), so all
/// providers on one token share one session and its lock. Entries live as long as the process.
#[derive(Default)]
struct Registry {
    modules: Vec<(PathBuf, Pkcs11)>,
    tokens: Vec<Arc<Inner>>,
}

fn registry() -> Result<MutexGuard<'static, Registry>, KeyError> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default).lock().map_err(|_| poisoned())
}

impl Inner {
    /// The shared session state for `settings`' module and token, logging in on first use; see
    /// [`Pkcs11Provider::open`](super::Pkcs11Provider::open) for the errors.
    pub(super) fn open(settings: &Pkcs11Settings) -> Result<Arc<Inner>, KeyError> {
        let mut reg = registry()?;
        let shared = reg.tokens.iter().find(|t| t.module == settings.module && t.token_label == settings.token_label);
        if let Some(inner) = shared {
            if !bool::from(inner.pin.as_bytes().ct_eq(settings.pin.as_bytes())) {
                return Err(KeyError::Unavailable(format!(
                    "pkcs11 token {:?} ({}): login failed: the PIN differs from the one this process logged in with",
                    settings.token_label,
                    settings.module.display()
                )));
            }
            return Ok(Arc::clone(inner));
        }
        let ctx = context_for(&mut reg, &settings.module)?;
        let slot = find_slot(&ctx, &settings.token_label)?;
        let inner = Inner {
            ctx,
            slot,
            module: settings.module.clone(),
            token_label: settings.token_label.clone(),
            pin: Zeroizing::new(settings.pin.clone()),
            session: Mutex::new(None),
        };
        let session = inner.login()?;
        inner.session.lock().map_err(|_| poisoned())?.replace(session);
        let inner = Arc::new(inner);
        reg.tokens.push(Arc::clone(&inner));
        Ok(inner)
    }
}

/// Why a call on the session failed: either an answer for the caller, or a PKCS#11 error that still has
/// to be classified (session lost → reopen next time; anything else → unavailable).
pub(super) enum Failure {
    Key(KeyError),
    Ck(&'static str, CkError),
}

impl From<KeyError> for Failure {
    fn from(e: KeyError) -> Self {
        Failure::Key(e)
    }
}

/// Attaches what we were doing to a cryptoki error.
pub(super) fn ck(what: &'static str) -> impl FnOnce(CkError) -> Failure {
    move |e| Failure::Ck(what, e)
}

/// A short, PIN-free description of a cryptoki error (its `Display` for return values is a paragraph).
pub(super) fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("{function:?} returned {rv:?}"),
        other => other.to_string(),
    }
}

/// Return values after which the session handle is dead and a new session (and login) is needed.
pub(super) fn session_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn
                | RvError::CryptokiNotInitialized,
            _
        )
    )
}

fn poisoned() -> KeyError {
    KeyError::Unavailable("pkcs11 session lock poisoned by an earlier failure".into())
}

impl Inner {
    fn unavailable(&self, what: &str, e: &CkError) -> KeyError {
        KeyError::Unavailable(format!(
            "pkcs11 token {:?} ({}): {what}: {}",
            self.token_label,
            self.module.display(),
            describe(e)
        ))
    }

    /// A new read-write session on our slot, logged in as the user.
    fn login(&self) -> Result<Session, KeyError> {
        let session = self.ctx.open_rw_session(self.slot).map_err(|e| self.unavailable("cannot open a session", &e))?;
        match session.login(UserType::User, Some(&AuthPin::from(self.pin.as_str()))) {
            // Only another PKCS#11 user in this process (not a provider: they share this session) can have
            // logged in already; the token then accepts the session as it is.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(self.unavailable("login failed", &e)),
        }
    }

    /// Runs `op` on the session (reopening it if an earlier call lost it) and classifies its failure.
    pub(super) fn with_session<T>(
        &self,
        op: impl FnOnce(&Inner, &Session) -> Result<T, Failure>,
    ) -> Result<T, KeyError> {
        let mut guard = self.session.lock().map_err(|_| poisoned())?;
        let session = match guard.take() {
            Some(s) => s,
            None => self.login()?,
        };
        let result = op(self, &session);
        match result {
            Ok(v) => {
                *guard = Some(session);
                Ok(v)
            }
            Err(Failure::Key(e)) => {
                *guard = Some(session);
                Err(e)
            }
            Err(Failure::Ck(what, e)) => {
                // Keep a healthy session; drop a dead one so the next call logs in afresh.
                if !session_lost(&e) {
                    *guard = Some(session);
                }
                Err(self.unavailable(what, &e))
            }
        }
    }
}

/// The initialised context for `module`, loading and initialising it on first use.
fn context_for(reg: &mut Registry, module: &Path) -> Result<Pkcs11, KeyError> {
    if let Some((_, ctx)) = reg.modules.iter().find(|(path, _)| path == module) {
        return Ok(ctx.clone());
    }
    let fail = |what: &str, e: CkError| {
        KeyError::Unavailable(format!("pkcs11 module {}: {what}: {}", module.display(), describe(&e)))
    };
    let ctx = Pkcs11::new(module).map_err(|e| fail("cannot load", e))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Someone else in this process (another library user) initialised it: that is fine for us.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(fail("C_Initialize failed", e)),
    }
    reg.modules.push((module.to_owned(), ctx.clone()));
    Ok(ctx)
}

/// The slot whose initialised token carries `label`.
fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Slot, KeyError> {
    let unavailable = |why: String| KeyError::Unavailable(format!("pkcs11 token {label:?}: {why}"));
    let slots = ctx.get_slots_with_initialized_token().map_err(|e| unavailable(describe(&e)))?;
    for slot in slots {
        let info = ctx.get_token_info(slot).map_err(|e| unavailable(describe(&e)))?;
        if info.label().trim_end() == label {
            return Ok(slot);
        }
    }
    Err(unavailable("no initialized token has this label".into()))
}
