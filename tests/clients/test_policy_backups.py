"""Issue 6, backups on write against real moto: every PutObject, CopyObject and multipart Complete of tenant acme
also writes a raw copy (same ciphertext, same envelope metadata) to its backup target, bucket acme-backup on
backend par (eu-west-3), at `<client bucket>/<key>`; a copy back restores the object.
"""

from __future__ import annotations

import os

import pytest
from botocore.exceptions import ClientError

from keyutil import expect_error
from policyutil import BACKUP_BUCKET, PAR, PREFIX, dep, raw_region  # noqa: F401
from s3util import MIB, multipart_put, random_bytes, unique_bucket


@pytest.fixture
def bucket(dep):
    name = unique_bucket()
    dep.client().create_bucket(Bucket=name)
    return name


def _raw(dep, bucket: str, key: str) -> tuple[bytes, dict[str, str]]:
    got = dep.raw.get_object(Bucket=bucket, Key=key)
    return got["Body"].read(), got["Metadata"]


def assert_backed_up(dep, bucket: str, key: str) -> None:
    """The backup copy of `bucket/key` holds exactly the primary's stored bytes and metadata."""
    primary = _raw(dep, PREFIX + bucket, key)
    backup = _raw(dep, BACKUP_BUCKET, f"{bucket}/{key}")
    assert backup[0] == primary[0], f"backup of {bucket}/{key}: {len(backup[0])} bytes, primary {len(primary[0])}"
    assert backup[1] == primary[1], (backup[1], primary[1])


def test_put_copy_and_complete_are_backed_up(dep, bucket):
    c = dep.client()
    before = dep.metrics()["blobseal_backup_copies_total"]
    c.put_object(Bucket=bucket, Key="calls/a", Body=random_bytes(100_000))
    assert_backed_up(dep, bucket, "calls/a")
    assert raw_region(dep.raw, BACKUP_BUCKET) == PAR

    c.copy_object(Bucket=bucket, Key="misc/copy", CopySource={"Bucket": bucket, "Key": "calls/a"})
    assert_backed_up(dep, bucket, "misc/copy")

    multipart_put(c, bucket, "big/mp", [os.urandom(5 * MIB), b"end"])
    assert_backed_up(dep, bucket, "big/mp")

    # An overwrite replaces the backup copy too.
    c.put_object(Bucket=bucket, Key="calls/a", Body=b"second version")
    assert_backed_up(dep, bucket, "calls/a")
    assert dep.metrics()["blobseal_backup_copies_total"] >= before + 4
    assert dep.metrics()["blobseal_backup_failures_total"] == 0


def test_backup_copy_restores(dep, bucket):
    """A raw copy back from the backup target is the object again, readable through blobseal."""
    c = dep.client()
    data = random_bytes(200_000)
    c.put_object(Bucket=bucket, Key="doc", Body=data, Metadata={"owner": "ops"})
    c.delete_object(Bucket=bucket, Key="doc")
    dep.raw.copy_object(Bucket=PREFIX + bucket, Key="doc", CopySource={"Bucket": BACKUP_BUCKET, "Key": f"{bucket}/doc"})
    got = c.get_object(Bucket=bucket, Key="doc")
    assert got["Body"].read() == data and got["Metadata"] == {"owner": "ops"}


def test_backup_copy_cannot_be_restored_elsewhere(dep, bucket):
    """The copy is bound to the object it copies: restored under another key it does not open."""
    c = dep.client()
    c.put_object(Bucket=bucket, Key="doc", Body=b"bound to its key")
    dep.raw.copy_object(Bucket=PREFIX + bucket, Key="other", CopySource={"Bucket": BACKUP_BUCKET,
                                                                          "Key": f"{bucket}/doc"})
    expect_error(lambda: c.get_object(Bucket=bucket, Key="other"), 500)


def test_backup_bucket_is_not_a_client_bucket(dep, bucket):
    """acme-backup carries acme's bucket prefix and, on one AWS account (here one moto), the primary backend sees
    it too: it must not show up as acme's bucket `backup`, and the tenant must not be able to delete its backups
    through blobseal."""
    c = dep.client()
    c.put_object(Bucket=bucket, Key="doc", Body=b"precious")
    assert_backed_up(dep, bucket, "doc")
    problems = []
    names = [b["Name"] for b in c.list_buckets()["Buckets"]]
    if "backup" in names:
        problems.append(f"ListBuckets shows the backup bucket as `backup`: {names}")
    try:
        c.delete_object(Bucket="backup", Key=f"{bucket}/doc")
    except ClientError:
        pass  # refused: what we want
    try:
        dep.raw.head_object(Bucket=BACKUP_BUCKET, Key=f"{bucket}/doc")
    except ClientError as e:
        problems.append(f"the tenant deleted its backup copy through blobseal (bucket `backup`): {e}")
    assert not problems, problems
