//! Where a trail is read and written: a tenant's audit bucket on a backend, or (for an auditor, offline)
//! a bundle directory exported from one.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;

use crate::backend::{Backend, BackendError, ByteStream, GetOptions, ListOptions, PutOptions};

/// Largest document read (a segment holds at most `writer::MAX_SEGMENT_RECORDS` records).
const MAX_DOCUMENT: usize = 64 * 1024 * 1024;

/// Why the trail could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    #[error("audit store {bucket}: {what}: {source}")]
    Backend { bucket: String, what: String, source: BackendError },
    #[error("audit bundle {path}: {problem}")]
    Bundle { path: String, problem: String },
    #[error("audit document {0} is larger than 64 MiB")]
    TooLarge(String),
}

/// A trail's documents.
#[derive(Clone)]
pub enum TrailStore {
    /// The live trail: a bucket on a backend.
    Bucket { backend: Arc<dyn Backend>, bucket: String },
    /// An exported bundle: the same names as files under a directory.
    Dir(PathBuf),
}

impl std::fmt::Debug for TrailStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrailStore::Bucket { bucket, .. } => write!(f, "TrailStore::Bucket({bucket})"),
            TrailStore::Dir(p) => write!(f, "TrailStore::Dir({})", p.display()),
        }
    }
}

impl TrailStore {
    pub fn bucket(backend: Arc<dyn Backend>, bucket: impl Into<String>) -> Self {
        TrailStore::Bucket { backend, bucket: bucket.into() }
    }

    fn backend_err(&self, what: String, source: BackendError) -> TrailError {
        let bucket = match self {
            TrailStore::Bucket { bucket, .. } => bucket.clone(),
            TrailStore::Dir(p) => p.display().to_string(),
        };
        TrailError::Backend { bucket, what, source }
    }

    fn bundle_err(path: &std::path::Path, e: impl std::fmt::Display) -> TrailError {
        TrailError::Bundle { path: path.display().to_string(), problem: e.to_string() }
    }

    /// Writes a new document; `Ok(false)` if `name` exists already (nothing is ever overwritten).
    pub async fn create(&self, name: &str, bytes: Vec<u8>) -> Result<bool, TrailError> {
        match self {
            TrailStore::Bucket { backend, bucket } => {
                for attempt in 0..2 {
                    let len = bytes.len() as u64;
                    let body: ByteStream =
                        futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes.clone()))]).boxed();
                    let opts = PutOptions { if_none_match_any: true, ..PutOptions::default() };
                    match backend.put(bucket, name, body, len, opts).await {
                        Ok(_) => return Ok(true),
                        Err(BackendError::PreconditionFailed) => return Ok(false),
                        Err(BackendError::NoSuchBucket) if attempt == 0 => match backend.create_bucket(bucket).await {
                            Ok(()) | Err(BackendError::BucketAlreadyExists) => {}
                            Err(e) => return Err(self.backend_err(format!("creating bucket for {name}"), e)),
                        },
                        Err(e) => return Err(self.backend_err(format!("writing {name}"), e)),
                    }
                }
                Err(self.backend_err(format!("writing {name}"), BackendError::NoSuchBucket))
            }
            TrailStore::Dir(root) => {
                let path = root.join(name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Self::bundle_err(parent, e))?;
                }
                match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                    Ok(mut f) => {
                        std::io::Write::write_all(&mut f, &bytes).map_err(|e| Self::bundle_err(&path, e))?;
                        Ok(true)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(Self::bundle_err(&path, e)),
                }
            }
        }
    }

    /// The document's bytes; `None` if it does not exist.
    pub async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, TrailError> {
        match self {
            TrailStore::Bucket { backend, bucket } => {
                let got = match backend.get(bucket, name, GetOptions::default()).await {
                    Ok(g) => g,
                    Err(BackendError::NoSuchKey | BackendError::NoSuchBucket) => return Ok(None),
                    Err(e) => return Err(self.backend_err(format!("reading {name}"), e)),
                };
                let mut body = got.body;
                let mut out = Vec::new();
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| {
                        self.backend_err(format!("reading {name}"), BackendError::Unavailable(e.to_string()))
                    })?;
                    out.extend_from_slice(&chunk);
                    if out.len() > MAX_DOCUMENT {
                        return Err(TrailError::TooLarge(name.to_owned()));
                    }
                }
                Ok(Some(out))
            }
            TrailStore::Dir(root) => {
                let path = root.join(name);
                match std::fs::read(&path) {
                    Ok(b) if b.len() > MAX_DOCUMENT => Err(TrailError::TooLarge(name.to_owned())),
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Self::bundle_err(&path, e)),
                }
            }
        }
    }

    /// Names under `prefix` after `start_after`, sorted; with `dirs`, the next path segment of each
    /// (the writers under `segments/`) instead.
    pub async fn list(&self, prefix: &str, start_after: Option<&str>, dirs: bool) -> Result<Vec<String>, TrailError> {
        match self {
            TrailStore::Bucket { backend, bucket } => {
                let mut out = Vec::new();
                let mut continuation = None;
                loop {
                    let opts = ListOptions {
                        prefix: prefix.to_owned(),
                        delimiter: dirs.then(|| "/".to_owned()),
                        start_after: start_after.map(str::to_owned),
                        continuation: continuation.take(),
                        max_keys: 1000,
                    };
                    let page = match backend.list(bucket, opts).await {
                        Ok(p) => p,
                        Err(BackendError::NoSuchBucket) => return Ok(out),
                        Err(e) => return Err(self.backend_err(format!("listing {prefix}"), e)),
                    };
                    if dirs {
                        out.extend(page.common_prefixes);
                    } else {
                        out.extend(page.objects.into_iter().map(|o| o.key));
                    }
                    match page.next_token {
                        Some(t) if page.is_truncated => continuation = Some(t),
                        _ => break,
                    }
                }
                out.sort();
                out.dedup();
                Ok(out)
            }
            TrailStore::Dir(root) => {
                let dir = root.join(prefix);
                let mut out = Vec::new();
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(Self::bundle_err(&dir, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| Self::bundle_err(&dir, e))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                    if dirs && is_dir {
                        out.push(format!("{prefix}{name}/"));
                    } else if !dirs && !is_dir {
                        out.push(format!("{prefix}{name}"));
                    }
                }
                out.retain(|n| start_after.is_none_or(|a| n.as_str() > a));
                out.sort();
                Ok(out)
            }
        }
    }
}
