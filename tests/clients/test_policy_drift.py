"""Issue 6, region drift while running (drift_check_seconds: 2): a bucket of the tenant appearing in another region
fences its backend off (503 for every request to it, metrics say so) until the bucket is gone again.
"""

from __future__ import annotations

import secrets

import pytest
from botocore.exceptions import ClientError

from keyutil import expect_error
from policyutil import BACKUP_BUCKET, PAR, USE1, PolicyDeployment, create_raw_bucket, raw_region, wait_for
from s3util import client_error, unique_bucket

FENCED = 'blobseal_backend_fenced{backend="fra"}'


def _works(c, bucket: str) -> bool:
    try:
        return c.get_object(Bucket=bucket, Key="k")["Body"].read() == b"before"
    except ClientError as e:
        assert client_error(e) == (503, "ServiceUnavailable"), f"unexpected error while fenced: {e}"
        return False


@pytest.fixture
def dep_nobackup(workdir):
    """A PolicyDeployment without backup targets: the drift test sees only the buckets it makes itself (backup
    buckets have their own test below)."""
    d = PolicyDeployment(workdir, "bs-pol-nb-" + secrets.token_hex(3), backups=False)
    yield d
    d.stop()


def test_drifted_backend_fenced_then_let_back(dep_nobackup):
    dep = dep_nobackup
    c = dep.client()
    b1, b2 = unique_bucket(), unique_bucket()
    for b in (b1, b2):
        c.create_bucket(Bucket=b)
        c.put_object(Bucket=b, Key="k", Body=b"before")
    assert dep.metrics().get(FENCED, 0) == 0

    create_raw_bucket(dep.moto.endpoint, "acme-late", USE1)
    wait_for("backend fra fenced after acme-late appeared in us-east-1", lambda: not _works(c, b1))
    # Every bucket on fra, not only the drifted one; reads, writes and listings alike.
    for call in (lambda: c.get_object(Bucket=b2, Key="k"), lambda: c.put_object(Bucket=b2, Key="n", Body=b"x"),
                 lambda: c.list_objects_v2(Bucket=b1), lambda: c.head_object(Bucket=b1, Key="k")):
        expect_error(call, 503)
    msg = expect_error(lambda: c.get_object(Bucket=b2, Key="k"), 503, "ServiceUnavailable")
    assert "fenced off" in msg, msg
    m = dep.metrics()
    assert m.get(FENCED) == 1, {k: v for k, v in m.items() if "fenced" in k}
    assert m["blobseal_fenced_requests_total"] > 0

    dep.raw.delete_bucket(Bucket="acme-late")
    wait_for("backend fra let back after acme-late was deleted", lambda: _works(c, b1))
    assert c.get_object(Bucket=b2, Key="k")["Body"].read() == b"before"
    c.put_object(Bucket=b2, Key="after", Body=b"after")
    assert FENCED not in dep.metrics()


@pytest.fixture
def dep_drift(workdir):
    """The full policy deployment (backup target included) with the drift check every 2 s."""
    d = PolicyDeployment(workdir, "bs-pol-dr-" + secrets.token_hex(3))
    yield d
    d.stop()


def test_backup_bucket_of_another_backend_is_not_drift(dep_drift):
    """acme's backup bucket acme-backup lives on par (eu-west-3). On real AWS both backends see every bucket of
    the account (here: the same moto), and acme-backup carries the tenant's prefix: it must still not count as a
    bucket of fra in the wrong region."""
    dep = dep_drift
    c = dep.client()
    bucket = unique_bucket()
    c.create_bucket(Bucket=bucket)
    c.put_object(Bucket=bucket, Key="k", Body=b"before")
    wait_for("backup bucket created", lambda: BACKUP_BUCKET in [b["Name"] for b in dep.raw.list_buckets()["Buckets"]])
    assert raw_region(dep.raw, BACKUP_BUCKET) == PAR
    checks = dep.metrics()["blobseal_drift_checks_total"]
    wait_for("two more drift checks", lambda: dep.metrics()["blobseal_drift_checks_total"] >= checks + 2)
    assert FENCED not in dep.metrics()
    assert c.get_object(Bucket=bucket, Key="k")["Body"].read() == b"before"
