//! `blobseal decrypt`: one stored object, decrypted to a file, with no server running: the config's key
//! provider and key store give the key material, the backend is only read. The same checks as a GET
//! (envelope, wrap, commitment, every segment's tag, the end of the body), so a file is written only
//! with authenticated bytes; on any failure the partial file is removed. So a customer holding its key
//! material and a copy of its objects is never locked in.

use std::io::Write;
use std::path::Path;

use futures::StreamExt as _;
use sha2::Digest as _;

use super::{Ops, OpsError};

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    pub bytes: u64,
    pub sha256: String,
}

/// Decrypts `bucket/key` (optionally a version) of `tenant` (the only tenant when `None`) into `out`,
/// which must not exist.
pub async fn decrypt(
    ops: &Ops,
    tenant: Option<&str>,
    bucket: &str,
    key: &str,
    version: Option<&str>,
    out: &Path,
) -> Result<Decrypted, OpsError> {
    let tenant = match tenant {
        Some(t) => ops.tenant(t)?,
        None => {
            let all: Vec<_> = ops.core.directory().tenants().cloned().collect();
            match all.as_slice() {
                [only] => std::sync::Arc::clone(only),
                _ => return Err(OpsError::Refused("the config has several tenants: name one with --tenant".into())),
            }
        }
    };
    let got = ops.core.get_object(&tenant, bucket, key, version, None, None).await?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|e| OpsError::Refused(format!("cannot create {}: {e}", out.display())))?;
    let mut w = std::io::BufWriter::new(file);
    let mut body = got.body;
    let mut hash = sha2::Sha256::new();
    let mut bytes = 0u64;
    let result: Result<(), String> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| format!("the object did not decrypt: {e}"))?;
            hash.update(&chunk);
            bytes += chunk.len() as u64;
            w.write_all(&chunk).map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())?;
        w.get_ref().sync_all().map_err(|e| e.to_string())
    }
    .await;
    if let Err(e) = result {
        drop(w);
        let _ = std::fs::remove_file(out);
        return Err(OpsError::Refused(format!("{e}; {} removed", out.display())));
    }
    Ok(Decrypted { bytes, sha256: hex::encode(hash.finalize()) })
}
