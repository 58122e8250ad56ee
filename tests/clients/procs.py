"""Start and stop the real servers the client suite talks to (blobseal, moto_server).

Every server listens on a free loopback port, writes its output to a log file, and is killed when
the fixture that started it ends. Children also get PR_SET_PDEATHSIG so that a pytest killed with
SIGKILL does not leave servers behind on the machine.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import socket
import subprocess
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGTERM us when pytest goes away.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


STARTED: list["Server"] = []  # every server this process started, for the crash check after each test


class ServerError(RuntimeError):
    """A server did not start; the message carries the tail of its log."""


class Server:
    """A child process serving on 127.0.0.1:`port`, with its output in `log_path`."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: Path, env: dict[str, str] | None = None,
                 ready_text: str | None = None, cwd: Path | None = None, max_open_files: int | None = None):
        self.name = name
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.env = env
        self.ready_text = ready_text
        self.cwd = cwd
        self.max_open_files = max_open_files  # `ulimit -n` for the child, None: inherited
        self.proc: subprocess.Popen | None = None
        self.stopped = False  # set once stop() was asked for: death after that is expected

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """The server's output so far (empty if there is none)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self, timeout: float = 30.0) -> "Server":
        """Start the process and wait until the port accepts connections (and `ready_text` was logged)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env, cwd=self.cwd, preexec_fn=self._in_child)
        STARTED.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise ServerError(f"{self.name} exited with {code} before serving:\n{self.log()[-4000:]}")
            if port_open(self.port) and (self.ready_text is None or self.ready_text in self.log()):
                return self
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.name} not serving on {self.port} after {timeout}s:\n{self.log()[-4000:]}")

    def _in_child(self) -> None:
        _die_with_parent()
        if self.max_open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_open_files, self.max_open_files))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; waits for the pid so the port can be reused."""
        self.stopped = True
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)


def moto_server(workdir: Path) -> Server:
    """moto_server (S3 + KMS, accepts any credentials) on a free port; started and ready."""
    exe = os.environ.get("BLOBSEAL_MOTO_SERVER", "moto_server")
    port = free_port()
    return Server("moto_server", [exe, "-H", "127.0.0.1", "-p", str(port)], port,
                  workdir / f"moto-{port}.log").start(timeout=60)


# Azurite's well-known development account and its published key (Microsoft documents it: not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_server(workdir: Path) -> Server:
    """Azurite's blob service (checks SharedKey) in memory on a free port; `endpoint` + `/devstoreaccount1`
    is the account's blob URL."""
    exe = os.environ.get("BLOBSEAL_AZURITE")
    if not exe or not os.access(exe, os.X_OK):
        raise ServerError("BLOBSEAL_AZURITE is not set to azurite-blob: run tests/run, which installs it (npm)")
    port = free_port()
    return Server("azurite", [exe, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
                              "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"], port,
                  workdir / f"azurite-{port}.log").start(timeout=60)


def blobseal_bin() -> str:
    """Path of the blobseal binary under test; fails loudly when BLOBSEAL_BIN is missing or wrong."""
    path = os.environ.get("BLOBSEAL_BIN")
    if not path:
        raise ServerError("BLOBSEAL_BIN is not set: run tests/run, or export the path of target/debug/blobseal")
    if not os.access(path, os.X_OK):
        raise ServerError(f"BLOBSEAL_BIN={path} is not an executable file")
    return path


def blobseal(workdir: Path, name: str, env_extra: dict[str, str], config: str | None = None,
             port: int | None = None, max_open_files: int | None = None) -> Server:
    """Start `blobseal serve` (embedded default, or `--config` with the given YAML text).

    `config` may contain `{port}` and `{admin_port}`, replaced by the listening ports (the embedded default
    takes the admin port from BLOBSEAL_ADMIN_LISTEN, set here; a YAML config may use that variable too).
    Returns once it logged `listening on`; the returned server's `admin_port` is the admin listener's.
    """
    port = port or free_port()
    admin_port = free_port()
    env = clean_env()
    env.update({"BLOBSEAL_LISTEN": f"127.0.0.1:{port}", "BLOBSEAL_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
                "RUST_LOG": env.get("RUST_LOG", "info")})
    env.update(env_extra)
    argv = [blobseal_bin(), "serve"]
    if config is not None:
        cfg = workdir / f"{name}.yaml"
        cfg.write_text(config.replace("{port}", str(port)).replace("{admin_port}", str(admin_port)))
        argv += ["--config", str(cfg)]
    server = Server(name, argv, port, workdir / f"{name}.log", env=env, ready_text="listening on",
                    cwd=workdir, max_open_files=max_open_files)
    server.admin_port = admin_port
    return server.start()


_AWS_VARS = ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
             "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
             "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_USE_FIPS_ENDPOINT",
             "AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION")


def clean_env() -> dict[str, str]:
    """The process environment without any AWS_* setting that could change a client's behaviour."""
    env = {k: v for k, v in os.environ.items() if k not in _AWS_VARS}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env
