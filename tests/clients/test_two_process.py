"""Two blobseal processes in front of the same backend with the same keys: replicas of one deployment.

A multipart upload carries all its state in its UploadId and in the backend, so any replica must be able
to serve any step of an upload another replica began. Checked with boto3 alternating endpoints by hand,
and with real transfer managers (boto3, AWS CLI) behind a round-robin TCP proxy.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from dataclasses import dataclass

import pytest
from boto3.s3.transfer import TransferConfig

import procs
from instances import start_moto_blobseal_with
from roundrobin import RoundRobinProxy
from s3util import (MIN_PART, MIB, Instance, abort_all_uploads, complete, empty_and_delete, random_bytes,
                    s3_client, sha256_hex, unique_bucket, upload_parts)


@dataclass
class Pair:
    """Two replicas (same backend, keys and tenant credentials) and a bucket to work in."""
    a: Instance
    b: Instance
    bucket: str


def _start_pair(request, workdir, kind: str) -> tuple[Instance, Instance]:
    ak, sk = "BSTPAIRACCESSKEY", secrets.token_hex(20)
    servers = []
    if kind == "fs":
        # The embedded default keeps its keyring in the data dir: sharing the dir shares the keys.
        data = workdir / "bs-pair-fs-data"
        for name in ("bs-pair-fs-a", "bs-pair-fs-b"):
            servers.append(procs.blobseal(workdir, name, {"BLOBSEAL_DATA_DIR": str(data),
                                                          "BLOBSEAL_ACCESS_KEY_ID": ak,
                                                          "BLOBSEAL_SECRET_ACCESS_KEY": sk}))
    else:
        moto = request.getfixturevalue("moto")
        keyring = workdir / "bs-pair-moto-keys" / "keyring.json"
        for name in ("bs-pair-moto-a", "bs-pair-moto-b"):
            servers.append(start_moto_blobseal_with(workdir, name, moto.endpoint, keyring, ak, sk))
    return tuple(Instance(f"{kind}-{i}", s.endpoint, ak, sk, server=s) for i, s in enumerate(servers))


@pytest.fixture(scope="module", params=["fs", "moto"])
def pair(request, workdir) -> Pair:
    a, b = _start_pair(request, workdir, request.param)
    try:
        bucket = unique_bucket()
        a.client().create_bucket(Bucket=bucket)
        yield Pair(a, b, bucket)
        abort_all_uploads(a.client(), bucket)
        empty_and_delete(a.client(), bucket)
    finally:
        a.server.stop()
        b.server.stop()


def test_parts_alternate_between_replicas(pair):
    ca, cb = pair.a.client(), pair.b.client()
    bucket, key = pair.bucket, "rr/manual.bin"
    parts = {n: random_bytes(MIN_PART + 1000 * n) for n in (1, 2, 3)} | {4: random_bytes(333_333)}
    uid = ca.create_multipart_upload(Bucket=bucket, Key=key, Metadata={"made-on": "a"})["UploadId"]
    # Part n goes to [ca, cb][n % 2]: 1 and 3 on B, 2 and 4 on A, all in parallel.
    etags = upload_parts([ca, cb], bucket, key, uid, parts)
    # Either replica lists the same parts and the same upload.
    for c in (ca, cb):
        listed = c.list_parts(Bucket=bucket, Key=key, UploadId=uid)["Parts"]
        assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed] == \
            [(n, len(parts[n]), etags[n]) for n in sorted(parts)]
    # A part re-sent through the other replica replaces the first one.
    parts[2] = random_bytes(MIN_PART + 5)
    etags[2] = cb.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=2, Body=parts[2])["ETag"]
    done = complete(cb, bucket, key, uid, etags)

    data = b"".join(parts[n] for n in sorted(parts))
    boundary = len(parts[1])
    for c in (ca, cb):
        got = c.get_object(Bucket=bucket, Key=key)
        assert sha256_hex(got["Body"].read()) == sha256_hex(data)
        assert got["ETag"] == done["ETag"] and got["Metadata"] == {"made-on": "a"}
        assert c.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(data)
        ranged = c.get_object(Bucket=bucket, Key=key, Range=f"bytes={boundary - 3}-{boundary + 2}")
        assert ranged["Body"].read() == data[boundary - 3:boundary + 3]
        assert c.get_object(Bucket=bucket, Key=key, PartNumber=2)["Body"].read() == parts[2]


def test_abort_on_the_other_replica(pair):
    ca, cb = pair.a.client(), pair.b.client()
    bucket, key = pair.bucket, "rr/aborted"
    uid = cb.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    upload_parts(cb, bucket, key, uid, {1: random_bytes(1000)})
    assert key in [u["Key"] for u in ca.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    ca.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)
    assert key not in [u["Key"] for u in cb.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def _upload_part_lines(server: procs.Server, skip: int, bucket: str, key: str) -> int:
    """How many successful PUTs of `bucket/key` the server logged after the first `skip` characters."""
    pattern = re.compile(rf"method=PUT path=/{re.escape(bucket)}/{re.escape(key)} status=200\b")
    return len(pattern.findall(server.log()[skip:]))


def _both_served(pair: Pair, marks: tuple[int, int], key: str, parts: int) -> None:
    served = [_upload_part_lines(i.server, m, pair.bucket, key) for i, m in zip((pair.a, pair.b), marks)]
    assert sum(served) >= parts and min(served) >= 1, f"UploadPart requests per replica: {served}"


def test_boto3_transfer_manager_round_robin(pair, tmp_path):
    size = 48 * MIB + 777
    data = random_bytes(size)
    src = tmp_path / "rr.bin"
    src.write_bytes(data)
    marks = (len(pair.a.server.log()), len(pair.b.server.log()))
    with RoundRobinProxy([pair.a.server.port, pair.b.server.port]) as proxy:
        # boto3's default connect timeout (60 s), which urllib3 also applies while sending a part's body.
        c = s3_client(proxy.endpoint, pair.a.access_key, pair.a.secret_key, connect_timeout=60)
        cfg = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=6)
        c.upload_file(str(src), pair.bucket, "rr/tm.bin", Config=cfg)
        down = tmp_path / "rr.down"
        c.download_file(pair.bucket, "rr/tm.bin", str(down), Config=cfg)
        assert min(proxy.connections) >= 1, proxy.connections
    assert sha256_hex(down.read_bytes()) == sha256_hex(data)
    _both_served(pair, marks, "rr/tm.bin", parts=-(-size // (8 * MIB)))
    for inst in (pair.a, pair.b):
        assert inst.client().head_object(Bucket=pair.bucket, Key="rr/tm.bin")["ContentLength"] == size


def test_aws_cli_round_robin(pair, tmp_path):
    size = 40 * MIB + 5
    data = random_bytes(size)
    src = tmp_path / "cli.bin"
    src.write_bytes(data)
    conf = tmp_path / "aws-config"
    conf.write_text("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"
                    "    max_concurrent_requests = 10\n    multipart_threshold = 8MB\n    multipart_chunksize = 8MB\n")
    (tmp_path / "aws-credentials").write_text("")
    env = procs.clean_env()
    env.update({"AWS_CONFIG_FILE": str(conf), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
                "AWS_ACCESS_KEY_ID": pair.a.access_key, "AWS_SECRET_ACCESS_KEY": pair.a.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1", "AWS_PAGER": ""})
    marks = (len(pair.a.server.log()), len(pair.b.server.log()))
    down = tmp_path / "cli.down"
    with RoundRobinProxy([pair.a.server.port, pair.b.server.port]) as proxy:
        for args in (("s3", "cp", str(src), f"s3://{pair.bucket}/rr/cli.bin"),
                     ("s3", "cp", f"s3://{pair.bucket}/rr/cli.bin", str(down))):
            argv = [sys.executable, "-m", "awscli", *args, "--endpoint-url", proxy.endpoint]
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                                  stdin=subprocess.DEVNULL)
            assert proc.returncode == 0, f"aws {' '.join(args)}: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert sha256_hex(down.read_bytes()) == sha256_hex(data)
    _both_served(pair, marks, "rr/cli.bin", parts=-(-size // (8 * MIB)))
