"""Deadline-day keys (DESIGN.md "Deadline-day keys", FORMAT.md §14) end to end against real moto: a tenant with
`retention: { period_keys: true }` wraps each object with a deadline under `tenant:1+period:<deadline day>`. A
`blobseal sweep --now` past that day deletes the expired object AND destroys the day's key (report line
"period-keys-destroyed", a receipt of kind "period"), so a raw copy taken before the sweep (a "tape") and put back
afterwards can no longer be read through blobseal, while an object due on a later day still reads back.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess

import pytest

from atrest import RawObject
from keyutil import expect_error, kek_id, raw_keys, read, run_cli
from policyutil import (DELETE_AFTER_HEADER, PREFIX, REPORT_FIELDS, RESULTS, TENANT, Clock, PolicyDeployment,
                        response_header, rfc3339, utcnow)
from s3util import unique_bucket

KEY_STORE = f"{PREFIX}blobseal-keys"  # the tenant's default key store bucket (FORMAT.md §14)
TTL = 1  # key cache TTL in seconds: the sweep waits one TTL after destroying a day's key
DESTROYED = "period-keys-destroyed"


def _period_keys_on(d: PolicyDeployment) -> None:
    """`before_start` hook: policy_config has no switch for period keys or the cache TTL, so edit its YAML (the
    retention block is the tenant's last, see policyutil.RETENTION_YAML) before blobseal starts."""
    text = d.config_text
    assert text.count("    retention:\n") == 1, text
    text = text.replace("    retention:\n", "    retention:\n      period_keys: true\n")
    assert "key_cache:" not in text, text
    text = text.replace("backends:\n", f"key_cache: {{ ttl_seconds: {TTL} }}\nbackends:\n", 1)
    d.config_text = text
    d.config_path.write_text(text.replace("{port}", "0"))


@pytest.fixture
def pdep(workdir):
    """A PolicyDeployment (own moto, drift check at start only, no backup target: this test is about keys) whose
    tenant has deadline-day keys and a 1 s key cache."""
    d = PolicyDeployment(workdir, "bs-pol-pk-" + secrets.token_hex(3), drift_check=0, backups=False,
                         before_start=_period_keys_on)
    yield d
    d.stop()


def _sweep(d: PolicyDeployment, *args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """`blobseal sweep` with a report; returns the process and every report line.

    PolicyDeployment.sweep cannot be used: its report reader accepts only per-object lines, and a sweep that
    destroys a day's key also writes a tenant line {"tenant", "result": "period-keys-destroyed", "period_keys",
    "receipt"}. Per-object lines are still checked for the documented fields here.
    """
    report = d.workdir / f"{d.name}-sweep-{secrets.token_hex(4)}.jsonl"
    argv = ["sweep", "--config", str(d.config_path), "--report", str(report), *args]
    proc = run_cli(argv, d.env, d.workdir, 0)
    assert report.exists(), f"sweep wrote no report at {report}\nstderr:\n{proc.stderr[-2000:]}"
    lines = [json.loads(t) for t in report.read_text().splitlines() if t.strip()]
    for line in lines:
        if line.get("result") in RESULTS:
            missing = REPORT_FIELDS - set(line)
            assert not missing, f"report line lacks {sorted(missing)}: {line}"
        else:
            assert line.get("result") in (DESTROYED, "would-destroy-period-keys"), f"unknown report line: {line}"
    return proc, lines


def _put(c, bucket: str, key: str, days: int, **kw) -> str:
    """PUT through blobseal; checks the deadline header against the rule's `days`; returns the deadline day."""
    with Clock() as clock:
        resp = c.put_object(Bucket=bucket, Key=key, Body=f"data of {key}".encode(), **kw)
    deadline = response_header(resp, DELETE_AFTER_HEADER)
    assert deadline in clock.deadlines(days), (key, deadline, clock.deadlines(days))
    return deadline[:10]


def test_period_key_destroyed_by_sweep_makes_restored_tape_unreadable(pdep):
    c = pdep.client()
    bucket = unique_bucket()
    c.create_bucket(Bucket=bucket)
    raw_bucket = PREFIX + bucket
    day_a = _put(c, bucket, "calls/a.json", 28)  # rule "calls": 28 days
    day_b = _put(c, bucket, "logs/b.log", 35, Tagging="class=log")  # rule "logs": 35 days
    assert day_a < day_b

    # Each object is bound to the tenant key and to the key of its own deadline day.
    tape = RawObject.read(pdep.raw, raw_bucket, "calls/a.json")
    assert kek_id(tape.metadata) == f"tenant:1+period:{day_a}", tape.metadata
    meta_b = pdep.raw.head_object(Bucket=raw_bucket, Key="logs/b.log")["Metadata"]
    assert kek_id(meta_b) == f"tenant:1+period:{day_b}", meta_b
    assert read(c, bucket, "calls/a.json") == b"data of calls/a.json"  # the tape is a readable object today

    _, lines = _sweep(pdep, "--tenant", TENANT, "--now", rfc3339(utcnow() + dt.timedelta(days=30)))

    # The expired object is gone, the other one still reads back.
    assert raw_keys(pdep.raw, raw_bucket) == ["logs/b.log"], lines
    assert read(c, bucket, "logs/b.log") == b"data of logs/b.log"
    deleted = [v for v in lines if v.get("key") == "calls/a.json"]
    assert [v["result"] for v in deleted] == ["deleted"], lines

    # The day's key (and only that day's) was destroyed, with a receipt of kind "period".
    destroyed = [v for v in lines if v["result"] == DESTROYED]
    assert len(destroyed) == 1, lines
    line = destroyed[0]
    assert line["tenant"] == TENANT and line["period_keys"] == [f"period:{day_a}"], line
    receipt_key = line["receipt"]
    assert receipt_key.startswith(f"receipts/{TENANT}/") and receipt_key.endswith(".json"), line
    assert receipt_key in raw_keys(pdep.raw, KEY_STORE, f"receipts/{TENANT}/"), line
    receipt = json.loads(pdep.raw.get_object(Bucket=KEY_STORE, Key=receipt_key)["Body"].read())
    assert receipt["kind"] == "period" and receipt["tenant"] == TENANT, receipt
    assert receipt["periods"] == [f"period:{day_a}"] and receipt["receipt"] == receipt_key, receipt
    assert receipt["destroyed_keys"] == [f"period:{day_a}"], receipt
    assert receipt["cache_ttl_seconds"] == TTL, receipt
    lifetime = raw_keys(pdep.raw, KEY_STORE, f"keys/{TENANT}/lifetime/")
    assert f"keys/{TENANT}/lifetime/period:{day_a}" not in lifetime, lifetime
    assert f"keys/{TENANT}/lifetime/period:{day_b}" in lifetime, lifetime

    # The tape comes back (same key, bytes and metadata): blobseal refuses it, the day's key being destroyed.
    tape.write(pdep.raw)
    back = RawObject.read(pdep.raw, raw_bucket, "calls/a.json")
    assert (back.body, back.metadata) == (tape.body, tape.metadata)
    msg = expect_error(lambda: c.get_object(Bucket=bucket, Key="calls/a.json"), 403, "AccessDenied",
                       ("deadline day",))
    assert receipt_key in msg, msg
    # The other day's object is untouched by the shred and its root roll.
    assert read(c, bucket, "logs/b.log") == b"data of logs/b.log"
