//! The servers under test: s3s-fs and blobseal processes on free loopback ports, killed on drop.

use std::fs;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Credentials of the S3 account inside s3s-fs (blobseal's backend and the direct client use it).
pub const S3FS_KEY: &str = "BENCHS3FSKEY";
pub const S3FS_SECRET: &str = "bench-s3s-fs-secret-0123456789";
/// Credentials a blobseal tenant signs with.
pub const TENANT_KEY: &str = "BENCHTENANTKEY";
pub const TENANT_SECRET: &str = "bench-tenant-secret-0123456789";

/// How long a server may take to come up before the bench gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running server: its endpoint, pid and log file. The process is killed when this is dropped.
pub struct Server {
    pub name: String,
    pub endpoint: String,
    pub log: PathBuf,
    child: Child,
}

impl Server {
    /// The process id (for `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Errors mean the process is already gone, which is what we want.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the listener is dropped before the server binds it).
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts s3s-fs on a free port, storing under `dir`; ready when it accepts TCP connections.
pub fn start_s3s_fs(bin: &Path, dir: &Path) -> Result<Server, String> {
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let port = free_port().map_err(|e| format!("free port: {e}"))?;
    let log = dir.with_extension("log");
    let out = fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", S3FS_KEY, "--secret-key", S3FS_SECRET])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(out)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let mut server = Server { name: "s3s-fs".into(), endpoint: format!("http://127.0.0.1:{port}"), log, child };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(&mut server, |_| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())?;
    Ok(server)
}

/// Starts blobseal with the embedded default (filesystem backend under `dir`).
pub fn start_blobseal_fs(bin: &Path, dir: &Path, name: &str) -> Result<Server, String> {
    start_blobseal_fs_with(bin, dir, name, &[])
}

/// [`start_blobseal_fs`] with more environment (e.g. `BLOBSEAL_AUDIT_MODE`).
pub fn start_blobseal_fs_with(bin: &Path, dir: &Path, name: &str, env: &[(&str, &str)]) -> Result<Server, String> {
    let port = free_port().map_err(|e| format!("free port: {e}"))?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .env("BLOBSEAL_LISTEN", format!("127.0.0.1:{port}"))
        .env("BLOBSEAL_DATA_DIR", dir)
        .env("BLOBSEAL_ACCESS_KEY_ID", TENANT_KEY)
        .env("BLOBSEAL_SECRET_ACCESS_KEY", TENANT_SECRET);
    for (k, v) in env {
        cmd.env(k, v);
    }
    start_blobseal(cmd, dir, port, name)
}

/// Starts blobseal with a config file whose one tenant stores on the S3 server at `backend`.
pub fn start_blobseal_s3(bin: &Path, dir: &Path, backend: &str, name: &str) -> Result<Server, String> {
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let port = free_port().map_err(|e| format!("free port: {e}"))?;
    let config = dir.join("blobseal.yaml");
    let yaml = s3_config(port, &dir.join("keyring.json"), backend);
    fs::File::create(&config)
        .and_then(|mut f| f.write_all(yaml.as_bytes()))
        .map_err(|e| format!("write {}: {e}", config.display()))?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .env("BENCH_BACKEND_SECRET", S3FS_SECRET)
        .env("BENCH_TENANT_SECRET", TENANT_SECRET);
    start_blobseal(cmd, dir, port, name)
}

/// The config file for [`start_blobseal_s3`]; secrets come from the environment, as in production.
/// Each instance has its own keyring, hence its own key store bucket: instances share the backend.
pub fn s3_config(port: u16, keyring: &Path, backend: &str) -> String {
    format!(
        "listen: 127.0.0.1:{port}\n\
         key_provider: {{ kind: local, keyring: {keyring}, master_key_file: {keyring}.master }}\n\
         backends:\n\
         \x20 - name: s3fs\n\
         \x20   kind: s3\n\
         \x20   endpoint: {backend}\n\
         \x20   region: us-east-1\n\
         \x20   force_path_style: true\n\
         \x20   credentials:\n\
         \x20     access_key_id: {S3FS_KEY}\n\
         \x20     secret_access_key_env: BENCH_BACKEND_SECRET\n\
         tenants:\n\
         \x20 - name: bench\n\
         \x20   default_backend: s3fs\n\
         \x20   bucket_prefix: px-\n\
         \x20   key_store: {{ bucket: ks-{port} }}\n\
         \x20   access_keys:\n\
         \x20     - id: {TENANT_KEY}\n\
         \x20       secret_env: BENCH_TENANT_SECRET\n",
        keyring = keyring.display(),
    )
}

/// Spawns blobseal (logging to `<dir>.log`) and waits for its `listening on` line.
fn start_blobseal(mut cmd: Command, dir: &Path, port: u16, name: &str) -> Result<Server, String> {
    let log = dir.with_extension("log");
    let out = fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
    // The default log level (info, one line per request) is what a deployment runs with.
    let child = cmd
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(out)
        .spawn()
        .map_err(|e| format!("spawn blobseal: {e}"))?;
    let mut server = Server { name: name.into(), endpoint: format!("http://127.0.0.1:{port}"), log, child };
    wait_ready(&mut server, |log| fs::read_to_string(log).map(|t| t.contains("listening on")).unwrap_or(false))?;
    Ok(server)
}

/// Polls `ready` until it holds; fails (with the log's tail) if the process exits or time runs out.
fn wait_ready(server: &mut Server, ready: impl Fn(&Path) -> bool) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if ready(&server.log) {
            return Ok(());
        }
        let exited = server.child.try_wait().map_err(|e| e.to_string())?;
        if exited.is_some() || start.elapsed() > READY_TIMEOUT {
            let text = fs::read_to_string(&server.log).unwrap_or_default();
            let tail: String =
                text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            return Err(format!("{} did not start ({exited:?}); log {}:\n{tail}", server.name, server.log.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `VmHWM` (peak resident set) and `VmRSS` of a live process, in bytes.
pub fn memory(pid: u32) -> Result<(u64, u64), String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let field = |name: &str| -> Result<u64, String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// CPU time (user + system) a live process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the parenthesised command name (which may contain spaces): state is the 3rd
    // field of the line, utime the 14th and stime the 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| format!("odd /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks =
        |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or_else(|| format!("odd /proc/{pid}/stat"));
    // USER_HZ is 100 on every Linux architecture we run on.
    Ok((ticks(11)? + ticks(12)?) as f64 / 100.0)
}
