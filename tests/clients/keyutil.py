"""Helpers for the key tests (test_keys_*.py): deployments with KMS or local keys, the CLI, raw key-store access.

A `Deployment` is one blobseal config (one or more `blobseal serve` replicas started from it) whose backend is a
moto_server; the `blobseal keys …` / `blobseal shred …` commands run against the same config file and env, as an
operator would run them next to the servers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import procs
from atrest import RawObject
from instances import MOTO_KEY, MOTO_SECRET
from s3util import REGION, client_error, s3_client

ENVELOPE_META = "blobseal-envelope"
KEK_ID_LEN_OFFSET = 110  # FORMAT.md §5: kek_id_len byte, then the ASCII kek id
KMS_KEY_ID, KMS_SECRET = "kms-test-key", "kms-test-secret"
CLI_TIMEOUT = 90  # seconds; a shred waits a cache TTL or two, the rest is a few requests


def kek_id(metadata: dict[str, str]) -> str:
    """The id of the key that wrapped an object's data key (`tenant:2`, `subject:<hex>`), from its raw metadata."""
    header = base64.b64decode(metadata[ENVELOPE_META])
    n = header[KEK_ID_LEN_OFFSET]
    kid = header[KEK_ID_LEN_OFFSET + 1:KEK_ID_LEN_OFFSET + 1 + n]
    assert len(kid) == n and n > 0, f"envelope header too short for its kek id ({len(header)} bytes)"
    return kid.decode("ascii")


def subject_hash(tenant: str, subject: str) -> str:
    """blobseal's name for a data subject (core/keys/subject.rs): first 16 bytes of a length-prefixed SHA-256."""
    buf = b"blobseal/v1/subject"
    for part in (tenant.encode(), subject.encode()):
        buf += len(part).to_bytes(4, "big") + part
    return hashlib.sha256(buf).hexdigest()[:32]


def subject_key_id(tenant: str, subject: str) -> str:
    return "subject:" + subject_hash(tenant, subject)


def kms_client(endpoint: str):
    """boto3 KMS client for moto (any credentials)."""
    session = boto3.session.Session(aws_access_key_id=KMS_KEY_ID, aws_secret_access_key=KMS_SECRET,
                                    region_name=REGION)
    return session.client("kms", endpoint_url=endpoint, config=Config(retries={"total_max_attempts": 1}))


def raw_s3(moto_endpoint: str):
    """boto3 S3 client straight to moto: what blobseal really stored."""
    return s3_client(moto_endpoint, MOTO_KEY, MOTO_SECRET)


def raw_keys(raw, bucket: str, prefix: str = "") -> list[str]:
    """Every object key in a raw (moto) bucket under `prefix`, sorted."""
    out = []
    for page in raw.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(out)


def raw_kek_ids(raw, bucket: str) -> dict[str, str]:
    """Object key → kek id of every object in a raw (moto) bucket."""
    return {k: kek_id(raw.head_object(Bucket=bucket, Key=k)["Metadata"]) for k in raw_keys(raw, bucket)}


def snapshot(raw, bucket: str) -> dict[str, RawObject]:
    """A 'backup': every object of a raw bucket, bytes and metadata."""
    return {k: RawObject.read(raw, bucket, k) for k in raw_keys(raw, bucket)}


def restore(raw, backup: dict[str, RawObject], exact: bool = False) -> None:
    """Puts every object of `backup` back; with `exact`, also deletes what the bucket gained since."""
    buckets = {o.bucket for o in backup.values()}
    for obj in backup.values():
        obj.write(raw)
    if exact:
        for b in buckets:
            for k in raw_keys(raw, b):
                if k not in backup:
                    raw.delete_object(Bucket=b, Key=k)


def parse_json_out(text: str) -> dict:
    """The JSON object a command printed on stdout (the first `{` onward)."""
    start = text.find("{")
    assert start >= 0, f"no JSON object on stdout: {text!r}"
    obj, _ = json.JSONDecoder().raw_decode(text[start:])
    return obj


REWRAP_LINE = re.compile(r"^rewrap tenant \S+[^\n]*?: (\d+) rewrapped, (\d+) already current, (\d+) under data-subject "
                         r"keys, (\d+) failed", re.MULTILINE)


def rewrap_counts(stdout: str) -> tuple[int, int, int, int]:
    """(rewrapped, already current, under data-subject keys, failed) from `keys rewrap`'s summary line."""
    m = REWRAP_LINE.search(stdout)
    assert m, f"no rewrap summary line on stdout: {stdout!r}"
    return int(m[1]), int(m[2]), int(m[3]), int(m[4])


def expect_error(call, status: int | tuple[int, ...], code: str | None = None, words: tuple[str, ...] = ()) -> str:
    """Run `call`; it must raise a ClientError with `status` (and `code`, and one of `words` in the message).

    Returns the message. A call that succeeds fails the test, whatever it returned.
    """
    statuses = (status,) if isinstance(status, int) else status
    try:
        got = call()
        if isinstance(got, dict) and "Body" in got:
            body = got["Body"].read()
            pytest.fail(f"expected an error {statuses}, got {len(body)} bytes with status "
                        f"{got['ResponseMetadata']['HTTPStatusCode']}")
    except ClientError as e:
        st, c = client_error(e)
        msg = e.response["Error"].get("Message", "")
        assert st in statuses, f"status {st} {c} {msg!r}, expected {statuses}"
        if code is not None:
            assert c == code, f"error code {c} ({msg!r}), expected {code}"
        if words:
            assert any(w in msg.lower() for w in words), f"message {msg!r} names none of {words}"
        return msg
    pytest.fail(f"expected an error {statuses}, the call succeeded: {got!r}"[:2000])


def read(client, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


@dataclass
class Tenant:
    """One tenant of a deployment: its name, bucket prefix, credentials and data-subject rules (YAML list items)."""
    name: str
    prefix: str
    subjects: list[str] = field(default_factory=lambda: ["{header: x-amz-meta-data-subject}"])
    access_key: str = ""
    secret: str = field(default_factory=lambda: secrets.token_hex(20), repr=False)

    def __post_init__(self):
        self.access_key = self.access_key or ("AK" + self.name.upper().replace("-", "").replace("_", ""))[:20]

    @property
    def key_store(self) -> str:
        """The raw bucket of the tenant's key store (the default: `<bucket_prefix>blobseal-keys`)."""
        return f"{self.prefix}blobseal-keys"

    def backend_bucket(self, bucket: str) -> str:
        return f"{self.prefix}{bucket}"

    @property
    def secret_env(self) -> str:
        return "BST_SECRET_" + self.name.upper().replace("-", "_")


def unique_name(stem: str) -> str:
    """A tenant name unlikely to clash with any other deployment on the session's moto."""
    return f"{stem}{secrets.token_hex(3)}"


class Deployment:
    """A blobseal config over moto S3 with `provider` ("kms": aws-kms at `kms_endpoint`; "local": a keyring file),
    `replicas` servers started from it, and the CLI run against it."""

    def __init__(self, workdir: Path, name: str, moto_endpoint: str, tenants: list[Tenant], provider: str = "kms",
                 kms_endpoint: str | None = None, ttl: int = 1, replicas: int = 1):
        self.workdir, self.name, self.tenants = workdir, name, {t.name: t for t in tenants}
        self.moto_endpoint = moto_endpoint
        self.kms_endpoint = kms_endpoint or moto_endpoint
        self.ttl = ttl
        self.raw = raw_s3(moto_endpoint)
        self.kms = kms_client(self.kms_endpoint)
        if provider == "kms":
            prov = (f'key_provider:\n  kind: aws-kms\n  region: {REGION}\n  endpoint: "{self.kms_endpoint}"\n'
                    f"  credentials: {{access_key_id: {KMS_KEY_ID}, secret_access_key_env: BST_KMS_SECRET}}\n"
                    "  deletion_window_days: 7\n")
        else:
            keyring = workdir / f"{name}-keys" / "keyring.json"
            prov = f'key_provider: {{kind: local, keyring: "{keyring}", master_key_file: "{keyring}.master"}}\n'
        text = ('listen: "127.0.0.1:{port}"\n' + prov + f"key_cache: {{ttl_seconds: {ttl}}}\n"
                "backends:\n  - name: moto\n    kind: s3\n"
                f'    endpoint: "{moto_endpoint}"\n    region: {REGION}\n    force_path_style: true\n'
                "    credentials: {access_key_id_env: BST_MOTO_KEY, secret_access_key_env: BST_MOTO_SECRET}\n"
                "tenants:\n")
        for t in tenants:
            text += (f"  - name: {t.name}\n    default_backend: moto\n    bucket_prefix: \"{t.prefix}\"\n"
                     f"    access_keys: [{{id: {t.access_key}, secret_env: {t.secret_env}}}]\n"
                     "    data_subjects:\n" + "".join(f"      - {s}\n" for s in t.subjects))
        self.config_text = text
        self.env = {"BST_MOTO_KEY": MOTO_KEY, "BST_MOTO_SECRET": MOTO_SECRET, "BST_KMS_SECRET": KMS_SECRET,
                    "BLOBSEAL_DATA_DIR": str(workdir / f"{name}-data")}
        self.env.update({t.secret_env: t.secret for t in tenants})
        self.servers: list[procs.Server] = []
        try:
            for i in range(replicas):
                self.servers.append(procs.blobseal(workdir, f"{name}-{i}", self.env, config=text))
        except Exception:
            self.stop()
            raise
        # The CLI reads the same settings; its own copy, so that no server's file is touched.
        self.config_path = workdir / f"{name}-cli.yaml"
        self.config_path.write_text(text.replace("{port}", "0"))

    def client(self, tenant: str, replica: int = 0):
        t = self.tenants[tenant]
        return s3_client(self.servers[replica].endpoint, t.access_key, t.secret)

    def cli(self, *args: str, expect_rc: int | None = 0) -> subprocess.CompletedProcess:
        """Run `blobseal ARGS --config <this deployment's file>`; checks the exit code unless `expect_rc` is None."""
        return run_cli([*args, "--config", str(self.config_path)], self.env, self.workdir, expect_rc)

    def root_ids(self, tenant: str) -> dict[int, str]:
        """Root generation → provider root id, from the raw key store (`keys/<t>/roots/<gen>`)."""
        t = self.tenants[tenant]
        out = {}
        for k in raw_keys(self.raw, t.key_store, f"keys/{tenant}/roots/"):
            rec = json.loads(self.raw.get_object(Bucket=t.key_store, Key=k)["Body"].read())
            out[int(rec["gen"])] = rec["root_id"]
        return out

    def wait_ttl(self, extra: float = 0.5) -> None:
        """Sleep one cache TTL (plus a margin): every replica has then forgotten what it cached before."""
        time.sleep(self.ttl + extra)

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


def run_cli(args: list[str], env_extra: dict[str, str], cwd: Path,
            expect_rc: int | None = 0) -> subprocess.CompletedProcess:
    """Run the blobseal binary with `args`; fails the test (with its output) on an unexpected exit code."""
    env = procs.clean_env()
    env.update(env_extra)
    argv = [procs.blobseal_bin(), *args]
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=CLI_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    if expect_rc is not None and proc.returncode != expect_rc:
        pytest.fail(f"`blobseal {' '.join(args)}` exited {proc.returncode}, expected {expect_rc}\n"
                    f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc
