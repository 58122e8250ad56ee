"""CompleteMultipartUpload killed (abort(), as kill -9) at each of its crash points, then retried.

blobseal's debug build aborts at the point named by BLOBSEAL_FAILPOINT (src/failpoint.rs). For every
point of a completion, on the embedded default (fs backend) and on an S3 backend (moto_server): start
blobseal armed, upload the parts, Complete (the connection dies with the process), restart blobseal
unarmed on the same data and keys, and retry the same Complete. It must succeed with the right bytes;
ListMultipartUploads must agree; and after the object is deleted the bucket must delete (no hidden
leftover keeps it alive). Also: housekeeping at start removes old temp files and keeps young ones.
"""

from __future__ import annotations

import os
import secrets
import time

import pytest
from botocore.exceptions import BotoCoreError, ClientError

import procs
from instances import MOTO_KEY, MOTO_SECRET, moto_config
from s3util import MIB, complete, random_bytes, s3_client, sha256_hex, unique_bucket, upload_parts

CORE_POINTS = ["core.complete.after-intent", "core.complete.after-hidden", "core.complete.final-upload-started",
               "core.complete.after-copy",
               "core.complete.after-hidden-delete"]
FS_POINTS = ["fs.complete.after-rename", "fs.upload-dir.after-gone"]
CASES = [("fs", p) for p in CORE_POINTS + FS_POINTS] + [("moto", p) for p in CORE_POINTS]


class Deployment:
    """How to (re)start one blobseal on fixed data, keys and credentials."""

    def __init__(self, request, workdir, kind: str, tag: str):
        self.kind, self.workdir = kind, workdir
        self.ak, self.sk = "BSTCRASHACCESSKEY", secrets.token_hex(20)
        self.base = f"bs-crash-{kind}-{tag}"
        self.data = workdir / f"{self.base}-data"
        self.moto = request.getfixturevalue("moto") if kind == "moto" else None
        self.runs = 0

    def start(self, extra_env: dict[str, str] | None = None) -> procs.Server:
        self.runs += 1
        name = f"{self.base}-{self.runs}"
        env = {"BLOBSEAL_DATA_DIR": str(self.data), **(extra_env or {})}
        if self.kind == "fs":
            env.update({"BLOBSEAL_ACCESS_KEY_ID": self.ak, "BLOBSEAL_SECRET_ACCESS_KEY": self.sk})
            return procs.blobseal(self.workdir, name, env)
        keyring = self.workdir / f"{self.base}-keys" / "keyring.json"
        env.update({"BST_MOTO_KEY": MOTO_KEY, "BST_MOTO_SECRET": MOTO_SECRET, "BST_ACME_SECRET": self.sk})
        return procs.blobseal(self.workdir, name, env, config=moto_config(self.moto.endpoint, keyring, self.ak))

    def client(self, server: procs.Server):
        return s3_client(server.endpoint, self.ak, self.sk)


@pytest.mark.parametrize("kind,point", CASES, ids=[f"{k}-{p}" for k, p in CASES])
def test_complete_killed_at_any_point_is_finished_by_a_retry(request, workdir, kind, point):
    dep = Deployment(request, workdir, kind, point.replace(".", "-"))
    armed = dep.start({"BLOBSEAL_FAILPOINT": point})
    c = dep.client(armed)
    bucket, key = unique_bucket(), "crash/object.bin"
    c.create_bucket(Bucket=bucket)
    # The first part is off the 64 KiB segment grid, so the final object needs layout padding.
    parts = {1: random_bytes(5 * MIB + 1234), 2: random_bytes(70_000)}
    upload_id = c.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags = upload_parts(c, bucket, key, upload_id, parts)
    with pytest.raises((BotoCoreError, ClientError)):
        complete(c, bucket, key, upload_id, etags)
    armed.proc.wait(timeout=10)
    assert armed.proc.returncode != 0, f"{point} was not hit"
    armed.stopped = True

    server = dep.start()
    try:
        c = dep.client(server)
        listed = [u["UploadId"] for u in c.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
        assert listed in ([], [upload_id]), listed
        complete(c, bucket, key, upload_id, etags)
        got = c.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert sha256_hex(got) == sha256_hex(parts[1] + parts[2])
        assert c.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        assert [o["Key"] for o in c.list_objects_v2(Bucket=bucket).get("Contents", [])] == [key]
        # A second retry is answered from the finished object.
        complete(c, bucket, key, upload_id, etags)
        c.delete_object(Bucket=bucket, Key=key)
        c.delete_bucket(Bucket=bucket)
        assert bucket not in [b["Name"] for b in c.list_buckets()["Buckets"]]
    finally:
        server.stop()


def test_delete_bucket_removes_a_crashed_completions_leftovers(request, workdir):
    """The hidden assembled object of a crashed, never retried completion must not keep a bucket
    that looks empty alive (it answered BucketNotEmpty forever before)."""
    dep = Deployment(request, workdir, "fs", "leftover")
    armed = dep.start({"BLOBSEAL_FAILPOINT": "core.complete.after-hidden"})
    c = dep.client(armed)
    bucket = unique_bucket()
    c.create_bucket(Bucket=bucket)
    upload_id = c.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    etags = upload_parts(c, bucket, "k", upload_id, {1: random_bytes(1000)})
    with pytest.raises((BotoCoreError, ClientError)):
        complete(c, bucket, "k", upload_id, etags)
    armed.proc.wait(timeout=10)
    armed.stopped = True
    server = dep.start()
    try:
        c = dep.client(server)
        assert c.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
        assert c.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        c.delete_bucket(Bucket=bucket)
        assert not (dep.data / "objects" / bucket).exists()
    finally:
        server.stop()


def test_housekeeping_at_start_removes_old_temp_files_only(request, workdir):
    dep = Deployment(request, workdir, "fs", "temps")
    server = dep.start()
    bucket = unique_bucket()
    dep.client(server).create_bucket(Bucket=bucket)
    server.stop()
    bdir = dep.data / "objects" / bucket
    stale, fresh = bdir / ".tmp-1-1-1", bdir / ".tmp-2-2-2"
    for p in (stale, fresh):
        p.write_bytes(b"half a write")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    server = dep.start({"BLOBSEAL_HOUSEKEEPING_AGE_SECS": "3600"})
    try:
        deadline = time.monotonic() + 10
        while stale.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not stale.exists(), "an hour-old temp file survived the start"
        assert fresh.exists(), "a young temp file may belong to a live write and must stay"
    finally:
        server.stop()
