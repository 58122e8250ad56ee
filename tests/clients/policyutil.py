"""Helpers for the residency / retention / backup / sweeper tests (test_policy_*.py, issue 6).

A `PolicyDeployment` is one blobseal started from the issue's policy config (tenant `acme`, EEA only, primary
backend `fra` declared eu-central-1, backup target `par`/acme-backup declared eu-west-3, a third backend `use1`
declared us-east-1) in front of its OWN moto_server: the drift check looks at every bucket on a backend, so
buckets other tests leave on a shared moto (in us-east-1) would fence or refuse it. The three backends are the
same moto with different declared regions; moto honours CreateBucket's LocationConstraint, so each bucket's real
region is whatever blobseal asked for.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

import procs
from instances import MOTO_KEY, MOTO_SECRET
from keyutil import run_cli
from s3util import raw_request, s3_client

TENANT = "acme"
PREFIX = "acme-"
FRA, PAR, USE1 = "eu-central-1", "eu-west-3", "us-east-1"
BACKUP_BUCKET = "acme-backup"  # the issue's name: under the tenant's bucket prefix
DELETE_AFTER = "blobseal-delete-after"  # raw metadata entry and raw tag
DELETE_AFTER_HEADER = "x-blobseal-delete-after"  # response header of a write
RETENTION_DAYS_HEADER = "x-blobseal-retention-days"  # request header of a write
WAIT = 6.0  # seconds to wait for a drift check (every 2 s) to fence or unfence ("within ~5 s")

RETENTION_YAML = """\
    retention:
      default: 35d
      client_override: never
      rules:
        - { name: calls, prefix: "calls/", keep: 28d }
        - { name: recordings, content_type: "audio/*", keep: 180d }
        - { name: logs, tags: { class: log }, keep: 35d }
        - { name: legal, key: "legal/**", keep: keep }
"""


def policy_config(moto: str, keyring: Path, access_key: str, *, default_backend: str = "fra",
                  drift_check: int = 2, backups: bool = True, backup_bucket: str = BACKUP_BUCKET) -> str:
    """The issue's policy YAML for `moto`; `{port}` is left for procs.blobseal to fill in."""
    def backend(name: str, region: str) -> str:
        return (f"  - name: {name}\n    kind: s3\n    endpoint: \"{moto}\"\n    region: {region}\n"
                "    force_path_style: true\n"
                "    credentials: {access_key_id_env: BST_MOTO_KEY, secret_access_key_env: BST_MOTO_SECRET}\n")

    text = ('listen: "127.0.0.1:{port}"\n'
            'admin_listen: "${BLOBSEAL_ADMIN_LISTEN:-127.0.0.1:0}"\n'
            "residency:\n  regions:\n    - { name: dc-berlin-1, country: DE }\n"
            f"  drift_check_seconds: {drift_check}\n"
            "sweeper: { interval_seconds: 0, max_deletes_per_second: 100 }\n"
            "key_providers:\n"
            f"  - {{ name: ring, kind: local, keyring: \"{keyring}\", master_key_file: \"{keyring}.master\", "
            "region: eu-central-1 }\n"
            "backends:\n" + backend("fra", FRA) + backend("par", PAR) + backend("use1", USE1) +
            "tenants:\n"
            f"  - name: {TENANT}\n"
            f"    default_backend: {default_backend}\n"
            f"    bucket_prefix: {PREFIX}\n"
            "    key_provider: ring\n"
            f"    access_keys: [{{id: {access_key}, secret_env: BST_ACME_SECRET}}]\n"
            "    residency: { allow: [EEA] }\n")
    if backups:
        text += f"    backups: [ {{ backend: par, bucket: {backup_bucket} }} ]\n"
    return text + RETENTION_YAML


def raw_client(moto: str, region: str = USE1):
    """boto3 straight to moto, signing for `region` (moto wants a LocationConstraint equal to it)."""
    return s3_client(moto, MOTO_KEY, MOTO_SECRET, region_name=region)


def create_raw_bucket(moto: str, name: str, region: str, **extra) -> None:
    """CreateBucket on moto itself, in `region` (us-east-1: no LocationConstraint, as S3 wants)."""
    client = raw_client(moto, region)
    if region == USE1:
        client.create_bucket(Bucket=name, **extra)
    else:
        client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region}, **extra)


def raw_region(raw, bucket: str) -> str:
    """The region moto says a bucket is in (an empty LocationConstraint is us-east-1)."""
    return raw.get_bucket_location(Bucket=bucket).get("LocationConstraint") or USE1


class PolicyDeployment:
    """moto_server + one blobseal with `policy_config`; the CLI (`sweep`) runs against a copy of the same file."""

    def __init__(self, workdir: Path, name: str, *, before_start: Callable[["PolicyDeployment"], None] | None = None,
                 start: bool = True, **config):
        self.workdir, self.name = workdir, name
        self.moto = procs.moto_server(workdir)
        self.server: procs.Server | None = None
        try:
            self.raw = raw_client(self.moto.endpoint)
            self.access_key = "AKACME" + secrets.token_hex(4).upper()
            self.secret = secrets.token_hex(20)
            keyring = workdir / f"{name}-keys" / "keyring.json"
            self.backup_bucket = config.get("backup_bucket", BACKUP_BUCKET)
            self.config_text = policy_config(self.moto.endpoint, keyring, self.access_key, **config)
            self.env = {"BST_MOTO_KEY": MOTO_KEY, "BST_MOTO_SECRET": MOTO_SECRET, "BST_ACME_SECRET": self.secret,
                        "BLOBSEAL_DATA_DIR": str(workdir / f"{name}-data")}
            self.config_path = workdir / f"{name}-cli.yaml"
            self.config_path.write_text(self.config_text.replace("{port}", "0"))
            if before_start is not None:
                before_start(self)
            if start:
                self.server = procs.blobseal(workdir, name, self.env, config=self.config_text)
        except Exception:
            self.stop()
            raise

    def serve_until_exit(self, timeout: float = 30) -> subprocess.CompletedProcess:
        """Runs `blobseal serve` with this config in the foreground, for a start that must be refused: fails the
        test if it is still running after `timeout` seconds."""
        port = procs.free_port()
        path = self.workdir / f"{self.name}-serve.yaml"
        path.write_text(self.config_text.replace("{port}", str(port)))
        env = {**procs.clean_env(), "RUST_LOG": "info", **self.env}
        try:
            return subprocess.run([procs.blobseal_bin(), "serve", "--config", str(path)], env=env, cwd=self.workdir,
                                  capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"blobseal serve still running after {timeout} s (listening on {port}): it should refuse")

    @property
    def backup_location(self) -> str:
        """The `location` of the backup target in sweep reports."""
        return f"backup:par/{self.backup_bucket}"

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return self.server.endpoint

    def client(self, **config):
        """boto3 for tenant acme (region us-east-1 as in every client test; blobseal ignores the client region)."""
        return s3_client(self.endpoint, self.access_key, self.secret, **config)

    def metrics(self) -> dict[str, float]:
        """`GET /metrics` on the admin listener, parsed: `name` or `name{labels}` → value."""
        assert self.server is not None
        resp = raw_request("GET", f"http://127.0.0.1:{self.server.admin_port}/metrics")
        assert resp.status == 200, f"metrics answered {resp.status}: {resp.body[:300]!r}"
        return parse_metrics(resp.body.decode())

    def sweep(self, *args: str, expect_rc: int | None = 0) -> "SweepRun":
        """`blobseal sweep --config F --report R ARGS`; the report's JSON lines parsed."""
        report = self.workdir / f"{self.name}-sweep-{secrets.token_hex(4)}.jsonl"
        argv = ["sweep", "--config", str(self.config_path), "--report", str(report), *args]
        proc = run_cli(argv, self.env, self.workdir, None)
        run = SweepRun(proc, read_report(report, proc))
        if expect_rc is not None and proc.returncode != expect_rc:
            errors = [line for line in run.lines if line["result"] in ("error", "partial")]
            pytest.fail(f"`blobseal {' '.join(argv)}` exited {proc.returncode}, expected {expect_rc}\n"
                        f"stderr:\n{proc.stderr[-3000:]}\nreport lines with errors:\n"
                        + "\n".join(json.dumps(e) for e in errors[:20]))
        return run

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.moto.stop()


@pytest.fixture
def dep(workdir):
    """A fresh PolicyDeployment (own moto) for one test, with the drift check only at start: the periodic check
    has its own tests (test_policy_drift.py), and a fenced backend must not make every other test fail."""
    d = PolicyDeployment(workdir, "bs-pol-" + secrets.token_hex(3), drift_check=0)
    yield d
    d.stop()


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
    return out


@dataclass
class SweepRun:
    proc: subprocess.CompletedProcess
    lines: list[dict]

    @property
    def summary(self) -> str:
        """The stderr line starting with `sweep` (fails the test when there is none)."""
        found = [line for line in self.proc.stderr.splitlines() if line.startswith("sweep")]
        assert found, f"no summary line starting with 'sweep' on stderr:\n{self.proc.stderr[-3000:]}"
        return found[-1]

    def by_location(self, location: str) -> dict[str, dict]:
        """key → report line, for the lines at `location` ("primary" or "backup:<backend>/<bucket>")."""
        out = {}
        for line in self.lines:
            if line["location"] == location:
                assert line["key"] not in out, f"two report lines for {line['key']} at {location}: {self.lines}"
                out[line["key"]] = line
        return out


REPORT_FIELDS = {"tenant", "bucket", "key", "location", "result", "deadline", "versions_deleted",
                 "delete_markers_deleted", "kept_locked"}  # and "error", which blobseal leaves out when null
RESULTS = {"deleted", "would-delete", "kept-locked", "partial", "error"}


def read_report(path: Path, proc: subprocess.CompletedProcess) -> list[dict]:
    """The sweep report's JSON lines, each checked for the documented fields and result values."""
    assert path.exists(), f"sweep wrote no report at {path}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n" \
                          f"{proc.stderr[-2000:]}"
    lines = []
    for n, text in enumerate(path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        line = json.loads(text)
        line.setdefault("error", None)
        missing = REPORT_FIELDS - set(line)
        assert not missing, f"report line {n} lacks {sorted(missing)}: {text}"
        assert line["result"] in RESULTS, f"report line {n}: unknown result {line['result']!r}"
        lines.append(line)
    return lines


# --- time and deadlines -----------------------------------------------------------------------------------------

def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def deadline_for(days: int, now: dt.datetime) -> str:
    """now + days, rounded up to the next midnight UTC, as RFC 3339 (`2026-12-22T00:00:00Z`)."""
    due = now + dt.timedelta(days=days)
    midnight = due.replace(hour=0, minute=0, second=0, microsecond=0)
    if midnight < due:
        midnight += dt.timedelta(days=1)
    return midnight.strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    """Brackets a request: the deadlines blobseal may have computed lie between those of `before` and `after`."""

    def __init__(self):
        self.before = utcnow()
        self.after = self.before

    def __enter__(self) -> "Clock":
        self.before = utcnow()
        return self

    def __exit__(self, *exc) -> None:
        self.after = utcnow()

    def deadlines(self, days: int) -> set[str]:
        return {deadline_for(days, self.before), deadline_for(days, self.after)}


# --- requests with extra headers, raw listings ------------------------------------------------------------------

def with_headers(client, operation: str, headers: dict[str, str]):
    """Makes every `operation` (e.g. "PutObject") call of `client` carry `headers` (signed with the rest)."""
    def add(request, **_):
        for k, v in headers.items():
            request.headers[k] = v
    client.meta.events.register_first(f"before-sign.s3.{operation}", add)
    return client


def response_header(resp: dict, name: str) -> str | None:
    return resp["ResponseMetadata"]["HTTPHeaders"].get(name.lower())


def raw_tags(raw, bucket: str, key: str, version: str | None = None) -> dict[str, str]:
    extra = {"VersionId": version} if version else {}
    return {t["Key"]: t["Value"] for t in raw.get_object_tagging(Bucket=bucket, Key=key, **extra)["TagSet"]}


def raw_versions(raw, bucket: str, prefix: str = "") -> set[tuple[str, str, bool]]:
    """Every (key, version id, is delete marker) in a raw bucket under `prefix`."""
    out = set()
    for page in raw.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        out |= {(v["Key"], v["VersionId"], False) for v in page.get("Versions", [])}
        out |= {(m["Key"], m["VersionId"], True) for m in page.get("DeleteMarkers", [])}
    return out


def wait_for(what: str, check: Callable[[], bool], timeout: float = WAIT, every: float = 0.25) -> float:
    """Polls `check` until it is true; returns the seconds it took; fails the test after `timeout`."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(every)
