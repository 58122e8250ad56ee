//! An in-memory root-key provider for unit tests: real AES-GCM wraps, keys in a map, and a count
//! of calls so tests can show what the cache saves. Can be switched "down" to test outages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use super::aead::{open_key, seal_key};
use super::{DataKey, Destruction, KeyError, KeyProvider, WrapContext};

#[derive(Debug, Default)]
pub(crate) struct TestProvider {
    roots: Mutex<HashMap<String, DataKey>>,
    next: AtomicU64,
    pub(crate) unwraps: AtomicU64,
    pub(crate) wraps: AtomicU64,
    pub(crate) down: AtomicBool,
}

impl TestProvider {
    fn check_up(&self) -> Result<(), KeyError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(KeyError::Unavailable("test provider is down".into()));
        }
        Ok(())
    }

    fn root(&self, root_id: &str, tenant: &str) -> Result<DataKey, KeyError> {
        if !root_id.starts_with(&format!("test:{tenant}:")) {
            return Err(KeyError::Unwrap);
        }
        self.roots.lock().unwrap().get(root_id).cloned().ok_or_else(|| KeyError::UnknownKey(root_id.into()))
    }
}

#[async_trait]
impl KeyProvider for TestProvider {
    fn kind(&self) -> &'static str {
        "test"
    }

    async fn create_root(&self, tenant: &str) -> Result<String, KeyError> {
        self.check_up()?;
        let id = format!("test:{tenant}:{}", self.next.fetch_add(1, Ordering::SeqCst) + 1);
        self.roots.lock().unwrap().insert(id.clone(), DataKey::generate()?);
        Ok(id)
    }

    async fn wrap(&self, root_id: &str, key: &DataKey, cx: &WrapContext<'_>) -> Result<Vec<u8>, KeyError> {
        self.check_up()?;
        self.wraps.fetch_add(1, Ordering::SeqCst);
        seal_key(&self.root(root_id, cx.tenant)?, key, &cx.aad())
    }

    async fn unwrap(&self, root_id: &str, blob: &[u8], cx: &WrapContext<'_>) -> Result<DataKey, KeyError> {
        self.check_up()?;
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        open_key(&self.root(root_id, cx.tenant)?, blob, &cx.aad())
    }

    async fn destroy(&self, _tenant: &str, root_id: &str) -> Result<Destruction, KeyError> {
        self.check_up()?;
        self.roots.lock().unwrap().remove(root_id);
        Ok(Destruction { root_id: root_id.into(), detail: "removed from the test provider".into() })
    }
}
