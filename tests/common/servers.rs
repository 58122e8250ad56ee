//! Real S3 servers for integration tests: `moto_server` and `s3s-fs`, each started on a free
//! loopback port, waited for, and killed (and reaped) on drop. Self-contained: only std and tempfile.
//!
//! Binaries come from `BLOBSEAL_MOTO_SERVER` / `BLOBSEAL_S3S_FS`, else from `PATH`. A missing
//! binary panics with install instructions: these tests never skip silently. `bash tests/run`
//! installs both.
//!
//! Starting blocks the calling thread (at most [`READY_TIMEOUT`]).
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::fmt;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running server process with its scratch directory; killed and reaped on drop.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Holds the server's log and, for s3s-fs, its data.
    pub dir: tempfile::TempDir,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("pid", &self.child.id()).field("endpoint", &self.endpoint).finish()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGKILL: moto takes > 2 s to stop on SIGTERM (FACTS.md) and holds nothing worth flushing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The server's combined stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

/// moto_server: any credentials, region us-east-1, versioning supported, SigV4 NOT checked.
pub struct MotoServer;

impl MotoServer {
    /// Starts `moto_server -H 127.0.0.1 -p PORT`.
    pub fn start() -> Server {
        let bin = find_binary("BLOBSEAL_MOTO_SERVER", "moto_server", "pip install 'moto[server]>=5.1,<6'");
        start(&bin, |port, _dir| vec!["-H".into(), "127.0.0.1".into(), "-p".into(), port.to_string()])
    }
}

/// s3s-fs: checks SigV4 against one access key; no versioning or ListObjectVersions.
pub struct S3sFsServer;

impl S3sFsServer {
    /// Starts `s3s-fs --host 127.0.0.1 --port PORT --access-key AK --secret-key SK DIR` on a temp DIR.
    pub fn start(access_key: &str, secret_key: &str) -> Server {
        let bin = find_binary(
            "BLOBSEAL_S3S_FS",
            "s3s-fs",
            "cargo install s3s-fs --version 0.14.1 --features binary --locked",
        );
        let (ak, sk) = (access_key.to_owned(), secret_key.to_owned());
        start(&bin, move |port, dir| {
            let data = dir.join("data");
            std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("creating {}: {e}", data.display()));
            vec![
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
                "--access-key".into(),
                ak.clone(),
                "--secret-key".into(),
                sk.clone(),
                data.to_string_lossy().into_owned(),
            ]
        })
    }
}

/// Azurite's blob service: checks SharedKey for the well-known development account; no versions,
/// immutability or legal hold.
pub struct AzuriteServer;

/// Azurite's well-known account and its published key (not a secret: Microsoft documents it).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

impl AzuriteServer {
    /// Starts `azurite-blob` in memory on a free port; `Server::endpoint` is then the blob service
    /// URL including the account (`http://127.0.0.1:PORT/devstoreaccount1`).
    pub fn start() -> Server {
        let bin = find_binary("BLOBSEAL_AZURITE", "azurite-blob", "npm install azurite@3.35");
        let mut server = start(&bin, |port, _dir| {
            [
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
                "--silent",
            ]
            .iter()
            .map(|a| (*a).to_owned())
            .collect()
        });
        server.endpoint = format!("{}/{AZURITE_ACCOUNT}", server.endpoint);
        server
    }
}

/// The binary named by `env_var`, else `name` on `PATH`; panics loudly when neither exists.
fn find_binary(env_var: &str, name: &str, install: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{env_var}={} does not exist. Install it with `{install}` or run `bash tests/run`.",
            p.display()
        );
        return p;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "\n\n*** `{name}` not found: set {env_var} or put it on PATH. Install it with `{install}`, \
             or run `bash tests/run`, which installs it. These tests do not skip. ***\n\n"
        )
    })
}

/// A port that was free a moment ago (bind :0, read it, release it).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("binding a free port: {e}"));
    l.local_addr().unwrap_or_else(|e| panic!("reading the free port: {e}")).port()
}

fn start(bin: &Path, args: impl Fn(u16, &Path) -> Vec<String>) -> Server {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let port = free_port();
    let log_path = dir.path().join("server.log");
    let log = File::create(&log_path).unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
    let log2 = log.try_clone().unwrap_or_else(|e| panic!("cloning log handle: {e}"));
    let child = Command::new(bin)
        .args(args(port, dir.path()))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut server = Server { child, addr, endpoint: format!("http://{addr}"), dir };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return server;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("{} exited with {status} before listening on {addr}:\n{}", bin.display(), server.log());
        }
        if Instant::now() > deadline {
            let log = server.log();
            drop(server);
            panic!("{} did not listen on {addr} within {READY_TIMEOUT:?}:\n{log}", bin.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
