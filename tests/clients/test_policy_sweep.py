"""Issue 6, `blobseal sweep` against real moto: with `--now` past the 28-day deadline of calls/ (but before the
35-day default) it deletes exactly the expired keys — every version and delete marker in the versioned primary
bucket, and their copies in the backup target — and nothing else; `--dry-run` deletes nothing; a second run
finds nothing to do; a version under legal hold is kept and reported. Checked by listing versions raw on moto.
"""

from __future__ import annotations

import datetime as dt
import secrets

import pytest

from policyutil import (BACKUP_BUCKET, DELETE_AFTER, FRA, PREFIX, TENANT, PolicyDeployment, SweepRun,
                        create_raw_bucket, raw_client, raw_versions, rfc3339, utcnow)
from s3util import unique_bucket

# The backup bucket of these tests is outside the tenant's prefix, so that they test the sweeper alone: a backup
# bucket named under the prefix (the acme-backup) is mistaken for a client bucket on the primary backend
# when both backends see the same buckets (same AWS account; here the same moto), see the last test.
SWEEP_BACKUP = "bak-acme"
EXPIRED = ("calls/a", "calls/b")  # 28 days
KEPT = ("other/c", "other/d")  # 35 days (default)


def _expired(key: str) -> bool:
    return key.startswith("calls/") or key.split("/", 1)[-1].startswith("calls/")


@pytest.fixture
def dep(workdir):
    d = PolicyDeployment(workdir, "bs-pol-sw-" + secrets.token_hex(3), drift_check=0, backup_bucket=SWEEP_BACKUP)
    yield d
    d.stop()


def make_versioned(dep) -> str:
    """A versioned bucket of acme with several versions and delete markers per key, and their backup copies:

    calls/a: v1, v2, delete marker (current)    calls/b: v1, delete marker, v2 (current)
    other/c: v1, v2                             other/d: v1, delete marker (current)
    """
    c = dep.client()
    bucket = unique_bucket()
    c.create_bucket(Bucket=bucket)
    c.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for step in [("put", "calls/a"), ("put", "calls/a"), ("del", "calls/a"),
                 ("put", "calls/b"), ("del", "calls/b"), ("put", "calls/b"),
                 ("put", "other/c"), ("put", "other/c"),
                 ("put", "other/d"), ("del", "other/d")]:
        if step[0] == "put":
            c.put_object(Bucket=bucket, Key=step[1], Body=f"{step[1]} at {utcnow()}".encode())
        else:
            c.delete_object(Bucket=bucket, Key=step[1])
    primary = raw_versions(dep.raw, PREFIX + bucket)
    assert len(primary) == 10, primary
    assert sum(1 for v in primary if v[2]) == 3, primary
    backups = raw_versions(dep.raw, dep.backup_bucket, f"{bucket}/")
    assert {k for k, _, m in backups if not m} == {f"{bucket}/{k}" for k in EXPIRED + KEPT}, backups
    return bucket


@pytest.fixture
def versioned(dep) -> str:
    return make_versioned(dep)


def _state(dep, bucket: str) -> tuple[set, set]:
    return raw_versions(dep.raw, PREFIX + bucket), raw_versions(dep.raw, dep.backup_bucket, f"{bucket}/")


def _at(days: int) -> str:
    return rfc3339(utcnow() + dt.timedelta(days=days))


def _client_key(line: dict, bucket: str) -> str:
    """A report line's key as the client names it (a backup line may give the key inside the backup bucket)."""
    key = line["key"]
    return key[len(bucket) + 1:] if line["location"] != "primary" and key.startswith(f"{bucket}/") else key


def _lines(run: SweepRun, bucket: str, location: str) -> dict[str, dict]:
    return {_client_key(v, bucket): v for v in run.by_location(location).values() if v["bucket"] == bucket}


def _stamped_deadlines(dep, bucket: str, key: str) -> set[str]:
    out = set()
    for k, vid, marker in raw_versions(dep.raw, PREFIX + bucket, key):
        if not marker and k == key:
            out.add(dep.raw.head_object(Bucket=PREFIX + bucket, Key=k, VersionId=vid)["Metadata"][DELETE_AFTER])
    return out


def test_sweep_deletes_exactly_what_expired(dep, versioned):
    bucket = versioned
    primary, backups = _state(dep, bucket)
    deadlines = {k: _stamped_deadlines(dep, bucket, k) for k in EXPIRED}
    run = dep.sweep("--tenant", TENANT, "--now", _at(30))
    assert run.summary.startswith("sweep")

    after_primary, after_backups = _state(dep, bucket)
    assert after_primary == {v for v in primary if not v[0].startswith("calls/")}, after_primary
    assert after_backups == {v for v in backups if not v[0].startswith(f"{bucket}/calls/")}, after_backups

    lines = _lines(run, bucket, "primary")
    assert set(lines) == set(EXPIRED), run.lines
    for key, line in lines.items():
        assert line["tenant"] == TENANT and line["result"] == "deleted" and not line["error"], line
        assert line["deadline"] in deadlines[key], (line, deadlines[key])
        want_versions = {vid for k, vid, m in primary if k == key and not m}
        want_markers = {vid for k, vid, m in primary if k == key and m}
        assert set(line["versions_deleted"]) == want_versions, (line, want_versions)
        assert set(line["delete_markers_deleted"]) == want_markers, (line, want_markers)
        assert line["kept_locked"] == []
    backup_lines = _lines(run, bucket, dep.backup_location)
    assert set(backup_lines) == set(EXPIRED), run.lines
    assert all(v["result"] == "deleted" for v in backup_lines.values()), backup_lines
    # Kept keys were not acted on.
    assert not [v for v in run.lines if v["bucket"] == bucket and not _expired(v["key"])
                and v["result"] != "error"], run.lines


def test_second_sweep_deletes_nothing(dep, versioned):
    bucket = versioned
    dep.sweep("--now", _at(30))
    state = _state(dep, bucket)
    again = dep.sweep("--now", _at(30))
    assert _state(dep, bucket) == state
    acted = [v for v in again.lines if v["result"] in ("deleted", "partial") or v["versions_deleted"]
             or v["delete_markers_deleted"]]
    assert not acted, again.lines
    assert again.summary.startswith("sweep")


def test_dry_run_deletes_nothing(dep, versioned):
    bucket = versioned
    state = _state(dep, bucket)
    run = dep.sweep("--dry-run", "--now", _at(30))
    assert _state(dep, bucket) == state
    primary = _lines(run, bucket, "primary")
    assert set(primary) == set(EXPIRED), run.lines
    assert {v["result"] for v in primary.values()} == {"would-delete"}, primary
    backup = _lines(run, bucket, dep.backup_location)
    assert set(backup) == set(EXPIRED) and {v["result"] for v in backup.values()} == {"would-delete"}, run.lines
    assert not [v for v in run.lines if v["result"] == "deleted"], run.lines
    assert run.summary.startswith("sweep")


def test_nothing_expired_yet(dep, versioned):
    """Today nothing has reached its deadline: the sweep deletes nothing."""
    bucket = versioned
    state = _state(dep, bucket)
    run = dep.sweep("--now", _at(0))
    assert _state(dep, bucket) == state
    assert not [v for v in run.lines if v["result"] in ("deleted", "would-delete")], run.lines


def test_locked_versions_kept_and_reported(dep):
    """A bucket created with Object Lock (raw, in fra's region): expired versions under legal hold or under
    retention stay, and the report says why."""
    raw_bucket = PREFIX + "locked-" + unique_bucket()[4:]
    bucket = raw_bucket[len(PREFIX):]
    create_raw_bucket(dep.moto.endpoint, raw_bucket, FRA, ObjectLockEnabledForBucket=True)
    c = dep.client()
    c.put_object(Bucket=bucket, Key="calls/held", Body=b"held")
    c.put_object(Bucket=bucket, Key="calls/free", Body=b"free")
    c.put_object(Bucket=bucket, Key="calls/retained", Body=b"retained")
    versions = {k: vid for k, vid, _ in raw_versions(dep.raw, raw_bucket)}
    assert len(versions) == 3, versions
    lock = raw_client(dep.moto.endpoint, FRA)
    lock.put_object_legal_hold(Bucket=raw_bucket, Key="calls/held", VersionId=versions["calls/held"],
                               LegalHold={"Status": "ON"})
    until = (utcnow() + dt.timedelta(days=60)).replace(microsecond=0)
    lock.put_object_retention(Bucket=raw_bucket, Key="calls/retained", VersionId=versions["calls/retained"],
                              Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until})

    run = dep.sweep("--now", _at(30))
    assert {k for k, _, _ in raw_versions(dep.raw, raw_bucket)} == {"calls/held", "calls/retained"}
    lines = _lines(run, bucket, "primary")
    assert lines["calls/free"]["result"] == "deleted", lines
    line = lines["calls/held"]
    assert line["result"] == "kept-locked", line
    assert [k for k in line["kept_locked"]
            if k.get("version_id") == versions["calls/held"] and k.get("legal_hold") is True], line
    assert line["versions_deleted"] == []
    # Under Object Lock retention: kept, reported with the date it can go.
    line = lines["calls/retained"]
    assert line["result"] == "kept-locked", line
    kept = [k for k in line["kept_locked"] if k.get("version_id") == versions["calls/retained"]]
    assert kept and str(kept[0].get("until", "")).startswith(until.strftime("%Y-%m-%dT%H:%M:%S")), line


def test_sweep_with_backup_bucket_under_tenant_prefix(workdir):
    """The issue's config: backup bucket acme-backup on par, which the primary backend fra also lists (one AWS
    account; here one moto). The sweep must treat it as the backup target only, not as acme's bucket `backup`."""
    d = PolicyDeployment(workdir, "bs-pol-swp-" + secrets.token_hex(3), drift_check=0)
    try:
        assert d.backup_bucket == BACKUP_BUCKET
        bucket = make_versioned(d)
        primary, backups = _state(d, bucket)
        run = d.sweep("--now", _at(30))
        assert not [v for v in run.lines if v["result"] == "error"], run.lines
        assert not [v for v in run.lines if v["bucket"] == "backup"], run.lines
        assert _state(d, bucket) == ({v for v in primary if not v[0].startswith("calls/")},
                                     {v for v in backups if not v[0].startswith(f"{bucket}/calls/")})
    finally:
        d.stop()
