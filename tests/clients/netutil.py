"""Raw-socket helpers for tests of connections: process readings from /proc, hand-sent requests."""

from __future__ import annotations

import os
import socket
import time

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from atrest import is_audit_trail
from s3util import REGION, Instance


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def connect(inst: Instance, timeout: float = 10) -> socket.socket:
    port = int(inst.endpoint.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_response_head(sock: socket.socket, limit: float = 15) -> bytes:
    """Bytes until the end of the response head (or EOF)."""
    sock.settimeout(limit)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def read_until_closed(sock: socket.socket, limit: float = 15) -> bytes:
    """Everything the server sends until it closes the connection (a reset ends it too)."""
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    return data


def seconds_until_closed(sock: socket.socket, limit: float) -> float:
    """How long until the server closes `sock` (EOF or reset); fails after `limit` seconds."""
    start = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except socket.timeout:
        raise AssertionError(f"connection still open after {limit}s")
    return time.monotonic() - start


def signed_head(inst: Instance, method: str, path: str, body: bytes, extra: dict[str, str] | None = None) -> bytes:
    """A SigV4-signed request head (with the payload's hash) for `body`, to be sent by hand."""
    req = AWSRequest(method=method, url=inst.endpoint + path, data=body, headers=dict(extra or {}))
    S3SigV4Auth(Credentials(inst.access_key, inst.secret_key), "s3", REGION).add_auth(req)
    prepared = req.prepare()
    headers = dict(prepared.headers.items())
    headers["Content-Length"] = str(len(body))
    lines = [f"{method} {path} HTTP/1.1", f"Host: {inst.endpoint.split('//', 1)[1]}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def temp_files(inst: Instance) -> list[str]:
    """Temporary files of writes under the data dir, but those of the audit trail, which writes in the background
    (a segment in flight is not a leftover of a refused request)."""
    if not inst.data_dir:
        return []
    return [str(p) for p in inst.data_dir.rglob(".tmp-*") if not is_audit_trail(p)]
