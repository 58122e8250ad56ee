"""Issue 6, residency against real moto: buckets created where the backend's region says, the start-up refusals
(a statically impossible policy, a bucket already in the wrong region) and the request-time refusal of a
CreateBucket whose LocationConstraint leaves the tenant's jurisdictions.
"""

from __future__ import annotations

import subprocess

from botocore.exceptions import ClientError

import procs
from keyutil import expect_error, run_cli
from policyutil import (FRA, PAR, PREFIX, USE1, PolicyDeployment, create_raw_bucket, dep,  # noqa: F401
                        policy_config, raw_region)
from s3util import client_error, unique_bucket


def test_bucket_created_in_the_backends_region(dep):
    """CreateBucket through backend fra (eu-central-1) reaches moto with that LocationConstraint."""
    c = dep.client()
    bucket = unique_bucket()
    c.create_bucket(Bucket=bucket)
    assert raw_region(dep.raw, PREFIX + bucket) == FRA
    # The key store blobseal makes for the tenant on fra at the first write is there too (else the drift check
    # would fence the backend).
    c.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert raw_region(dep.raw, PREFIX + "blobseal-keys") == FRA
    # GetBucketLocation through blobseal says where the data is.
    assert c.get_bucket_location(Bucket=bucket).get("LocationConstraint") == FRA


def _config_file(workdir, name: str, text: str):
    path = workdir / f"{name}.yaml"
    path.write_text(text.replace("{port}", str(procs.free_port())))
    return path


def _use1_config(workdir) -> tuple[str, dict[str, str]]:
    """The policy config with acme's default backend on use1 (us-east-1), and the env it needs."""
    # Any endpoint will do: the refusal must come before blobseal talks to a backend.
    text = policy_config("http://127.0.0.1:9", workdir / "use1-keys" / "keyring.json", "AKACMEUSE1",
                         default_backend="use1")
    env = {"BST_MOTO_KEY": "k", "BST_MOTO_SECRET": "s", "BST_ACME_SECRET": "x" * 40,
           "BLOBSEAL_DATA_DIR": str(workdir / "use1-data")}
    return text, env


def _position(text: str, needle: str) -> tuple[int, int]:
    """1-based (line, column) where `needle` starts in `text` (it must occur once)."""
    assert text.count(needle) == 1, needle
    before = text[:text.index(needle)]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def test_eea_tenant_on_us_backend_refused_by_check_config_and_serve(workdir):
    text, env = _use1_config(workdir)
    path = _config_file(workdir, "pol-use1", text)
    line, col = _position(path.read_text(), "default_backend: use1")
    col += len("default_backend: ")
    want = (f"{path}:{line}:{col}: residency: tenant acme: residency allow [EEA] does not allow default backend use1 "
            "in us-east-1 (US: US)")

    checked = run_cli(["check-config", str(path)], env, workdir, expect_rc=2)
    assert want in checked.stderr.splitlines(), f"expected line {want!r} in:\n{checked.stderr}"

    served = subprocess.run([procs.blobseal_bin(), "serve", "--config", str(path)], env={**procs.clean_env(), **env},
                            cwd=workdir, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert served.returncode == 2, f"serve exited {served.returncode}:\n{served.stderr[-3000:]}"
    assert want in (served.stderr + served.stdout), served.stderr[-3000:]


def test_start_refused_when_a_bucket_is_in_another_region(workdir):
    """A bucket of tenant acme on fra that really is in us-east-1: serve refuses to start, naming it."""
    d = PolicyDeployment(workdir, "bs-pol-drifted", start=False)
    try:
        create_raw_bucket(d.moto.endpoint, "acme-drifted", USE1)
        served = d.serve_until_exit()
    finally:
        d.stop()
    out = served.stdout + served.stderr
    assert served.returncode != 0, out[-3000:]
    assert "refusing to start, bucket regions differ from the config: backend fra: bucket acme-drifted is in " \
           "us-east-1" in out, out[-3000:]


def test_start_allowed_when_buckets_are_where_declared(workdir):
    """The control for the refusal above: the same bucket in eu-central-1 starts fine and is served."""
    def placed(d: PolicyDeployment) -> None:
        create_raw_bucket(d.moto.endpoint, "acme-placed", FRA)

    d = PolicyDeployment(workdir, "bs-pol-placed", before_start=placed)
    try:
        c = d.client()
        c.put_object(Bucket="placed", Key="k", Body=b"hello")
        assert c.get_object(Bucket="placed", Key="k")["Body"].read() == b"hello"
    finally:
        d.stop()


def test_create_bucket_outside_residency_refused(dep):
    c = dep.client()
    before = dep.metrics().get("blobseal_residency_refusals_total", 0)
    bucket = unique_bucket()
    msg = expect_error(lambda: c.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": USE1}),
                       403, "AccessDenied")
    assert "residency allow [EEA]" in msg, msg
    assert dep.metrics()["blobseal_residency_refusals_total"] > before
    # Nothing was created anywhere.
    names = [b["Name"] for b in dep.raw.list_buckets()["Buckets"]]
    assert not [n for n in names if bucket in n], names


def test_create_bucket_location_is_honoured_or_refused(dep):
    """A LocationConstraint is where the bucket ends up, or the request fails: never silently elsewhere.

    Issue 6 §2 asks that a LocationConstraint pick a backend in that region if one is allowed (par, eu-west-3);
    blobseal currently refuses one that differs from the placed backend's region (IllegalLocationConstraint,
    "needs a route"): both keep the data where the client asked.
    """
    c = dep.client()
    same = unique_bucket()
    c.create_bucket(Bucket=same, CreateBucketConfiguration={"LocationConstraint": FRA})
    assert raw_region(dep.raw, PREFIX + same) == FRA

    other = unique_bucket()
    try:
        c.create_bucket(Bucket=other, CreateBucketConfiguration={"LocationConstraint": PAR})
    except ClientError as e:
        assert client_error(e)[0] in (400, 403), e
        assert [b["Name"] for b in dep.raw.list_buckets()["Buckets"] if other in b["Name"]] == []
        return
    regions = {b["Name"]: raw_region(dep.raw, b["Name"]) for b in dep.raw.list_buckets()["Buckets"]
               if other in b["Name"]}
    assert list(regions.values()) == [PAR], regions
    c.put_object(Bucket=other, Key="k", Body=b"paris")
    assert c.get_object(Bucket=other, Key="k")["Body"].read() == b"paris"
    assert c.get_bucket_location(Bucket=other).get("LocationConstraint") == PAR
