//! Start the built `blobseal` binary for an integration test: on a free loopback port, in a temporary
//! working directory, with a given config and environment; wait until it listens; kill it on drop.
//!
//! Starting blocks the calling thread for up to [`READY_TIMEOUT`]; call it before entering, or with
//! `spawn_blocking` from, an async runtime if that matters.

use std::fmt;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the binary may take to log `listening on` and accept a connection.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What to start: `blobseal serve`, on the embedded default unless `config_yaml` is given.
#[derive(Default)]
pub struct Options {
    /// YAML written to `<workdir>/blobseal.yaml` and passed as `--config`; `{listen}` is replaced by the
    /// chosen `127.0.0.1:PORT`. `None` = the embedded default (filesystem backend, tenant `default`).
    pub config_yaml: Option<String>,
    /// Extra environment for the child (e.g. `BLOBSEAL_ACCESS_KEY_ID`, backend secrets).
    pub env: Vec<(String, String)>,
}

// Manual Debug: `env` holds secrets, which must not reach test output.
impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Options").field("config_yaml", &self.config_yaml.is_some()).field("env", &names).finish()
    }
}

/// A running blobseal; the process is killed and reaped when this is dropped.
pub struct Blobseal {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`, for clients.
    pub endpoint: String,
    /// Its working directory (holds the config, the log and, on the embedded default, the data dir).
    pub workdir: tempfile::TempDir,
    log_path: PathBuf,
}

impl fmt::Debug for Blobseal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blobseal").field("pid", &self.child.id()).field("addr", &self.addr).finish()
    }
}

/// The binary under test: `BLOBSEAL_BIN` if set, else the one cargo built for this test run.
pub fn binary() -> PathBuf {
    std::env::var_os("BLOBSEAL_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_blobseal")))
}

/// A loopback port that was free a moment ago (the OS picked it; someone may take it before we bind).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Blobseal {
    /// The embedded default with the given tenant credentials; data under `<workdir>/data`.
    pub fn start_default(access_key: &str, secret_key: &str) -> io::Result<Self> {
        Self::start(Options {
            config_yaml: None,
            env: vec![
                ("BLOBSEAL_ACCESS_KEY_ID".into(), access_key.into()),
                ("BLOBSEAL_SECRET_ACCESS_KEY".into(), secret_key.into()),
            ],
        })
    }

    /// Start `blobseal serve` and wait until it logged `listening on` and accepts TCP connections.
    ///
    /// Errors: the binary failed to spawn, exited early, or was not ready within [`READY_TIMEOUT`]
    /// (the error message then carries the tail of its log).
    pub fn start(opts: Options) -> io::Result<Self> {
        let workdir = tempfile::Builder::new().prefix("blobseal-it-").tempdir()?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log_path = workdir.path().join("blobseal.log");
        let log = File::create(&log_path)?;

        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .current_dir(workdir.path())
            .env("BLOBSEAL_LISTEN", addr.to_string())
            .env("BLOBSEAL_DATA_DIR", workdir.path().join("data"))
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(yaml) = &opts.config_yaml {
            let path = workdir.path().join("blobseal.yaml");
            std::fs::write(&path, yaml.replace("{listen}", &addr.to_string()))?;
            cmd.arg("--config").arg(path);
        }
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        let child = cmd.spawn()?;
        let mut me = Self { child, addr, endpoint: format!("http://{addr}"), workdir, log_path };
        me.wait_ready()?;
        Ok(me)
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "blobseal exited with {status} before serving:\n{}",
                    self.log_tail()
                )));
            }
            let logged = self.log().contains("listening on");
            if logged && TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "blobseal not ready on {} after {READY_TIMEOUT:?}:\n{}",
                    self.addr,
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The data directory of the embedded default.
    pub fn data_dir(&self) -> PathBuf {
        self.workdir.path().join("data")
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// The last ~4 KB of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let start = log.char_indices().rev().nth(4000).map_or(0, |(i, _)| i);
        log.get(start..).unwrap_or_default().to_owned()
    }

    /// Is the process still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The path of the log file (kept until `workdir` is dropped).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

impl Drop for Blobseal {
    fn drop(&mut self) {
        // Kill and reap, so that no test leaves a server behind; errors here mean it is already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
