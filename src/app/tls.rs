//! TLS for the client listeners (rustls), with certificates that change without a restart.
//!
//! The serving config is rebuilt from the files on SIGHUP and whenever their contents change; a
//! connection takes the config current at its accept. Change detection polls a digest of the three
//! files every [`POLL_EVERY`]: Kubernetes updates a mounted Secret by swapping the `..data` symlink in
//! its directory, and re-reading the paths follows the swap wherever it lands, with no inotify
//! watch to lose on a rename (and no extra crate). A new certificate that does not load (unreadable,
//! not PEM, key not matching) is logged and the old one keeps serving.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use sha2::{Digest, Sha256};

use crate::config::TlsSettings;

/// How often the files are checked for a change.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// Why a certificate set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error("tls: {0}")]
    Config(String),
}

/// The current serving config and what it was built from.
pub struct TlsSource {
    settings: TlsSettings,
    current: RwLock<Loaded>,
}

struct Loaded {
    config: Arc<ServerConfig>,
    digest: [u8; 32],
}

impl TlsSource {
    /// Loads the files once; an error here stops the start.
    pub fn load(settings: &TlsSettings) -> Result<Arc<Self>, TlsError> {
        let (config, digest) = build(settings)?;
        Ok(Arc::new(Self { settings: settings.clone(), current: RwLock::new(Loaded { config, digest }) }))
    }

    /// The config for a new connection.
    pub fn config(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(l) => Arc::clone(&l.config),
            Err(poisoned) => Arc::clone(&poisoned.into_inner().config),
        }
    }

    /// Reloads if the files changed (or always, with `force`). `Ok(true)`: a new config serves now.
    pub fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let digest = digest_files(&self.settings)?;
        let same = match self.current.read() {
            Ok(l) => l.digest == digest,
            Err(p) => p.into_inner().digest == digest,
        };
        if same && !force {
            return Ok(false);
        }
        let (config, digest) = build(&self.settings)?;
        let mut slot = match self.current.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *slot = Loaded { config, digest };
        Ok(true)
    }

    /// Checks the files every [`POLL_EVERY`] and on every SIGHUP, for the life of the process.
    pub fn spawn_watch(self: &Arc<Self>, mut hangups: tokio::sync::watch::Receiver<u64>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut last_error: Option<String> = None;
            loop {
                let forced = tokio::select! {
                    () = tokio::time::sleep(POLL_EVERY) => false,
                    changed = hangups.changed() => changed.is_ok(),
                };
                match me.reload(forced) {
                    Ok(true) => {
                        last_error = None;
                        tracing::info!(cert = %me.settings.cert_file.display(), "tls certificate reloaded");
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let text = e.to_string();
                        // A broken file is polled every 2 s: say it once per distinct problem (and on SIGHUP).
                        if forced || last_error.as_deref() != Some(text.as_str()) {
                            tracing::error!(error = %text, "tls certificate not reloaded; the previous one keeps serving");
                        }
                        last_error = Some(text);
                    }
                }
            }
        });
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File { path: path.display().to_string(), problem: e.to_string() })
}

fn digest_files(s: &TlsSettings) -> Result<[u8; 32], TlsError> {
    let mut h = Sha256::new();
    for p in [Some(&s.cert_file), Some(&s.key_file), s.client_ca_file.as_ref()].into_iter().flatten() {
        let bytes = read(p)?;
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(h.finalize().into())
}

fn build(s: &TlsSettings) -> Result<(Arc<ServerConfig>, [u8; 32]), TlsError> {
    // Digest first: a file that changes while we read it is picked up again on the next poll.
    let digest = digest_files(s)?;
    let file_err = |path: &Path, problem: String| TlsError::File { path: path.display().to_string(), problem };
    let cert_pem = read(&s.cert_file)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&s.cert_file, format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(file_err(&s.cert_file, "holds no certificate".into()));
    };
    let expiry = not_after(leaf).map_err(|e| file_err(&s.cert_file, e))?;
    let key_pem = read(&s.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| file_err(&s.key_file, format!("not a PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &s.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            let ca_pem = read(ca)?;
            for c in CertificateDer::pem_slice_iter(&ca_pem) {
                let c = c.map_err(|e| file_err(ca, format!("not a PEM certificate: {e}")))?;
                roots.add(c).map_err(|e| file_err(ca, format!("unusable CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| file_err(ca, format!("no usable client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| file_err(&s.key_file, format!("does not match the certificate: {e}")))?;
    // HTTP/1.1 only, as the listener serves (see listener.rs).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    crate::metrics::get().tls_cert_expiry.set(expiry);
    Ok((Arc::new(config), digest))
}

/// The leaf certificate's notAfter, in Unix seconds.
fn not_after(cert: &CertificateDer<'_>) -> Result<i64, String> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(parsed.validity().not_after.timestamp())
}
