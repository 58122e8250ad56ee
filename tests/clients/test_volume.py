"""Real transfer managers moving large files through blobseal with multipart: AWS CLI, boto3, rclone.

Every file is random bytes written into the test's tmp dir (removed by pytest); sizes are chosen so
that each test stays well under a minute on two cores with a debug build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from procs import clean_env
from s3util import MIB

pytestmark = pytest.mark.slow


def write_random(path: Path, size: int) -> str:
    """Write `size` random bytes to `path` (1 MiB at a time); returns their SHA-256."""
    h = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(MIB, left))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return h.hexdigest()


def aws_cli(endpoint: str, access_key: str, secret_key: str, tmp_path: Path):
    """A runner for `aws ...` with a private config: 8 MiB multipart parts, 10 concurrent requests."""
    conf = tmp_path / "aws-config"
    conf.write_text("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"
                    "    max_concurrent_requests = 10\n    multipart_threshold = 8MB\n    multipart_chunksize = 8MB\n")
    creds = tmp_path / "aws-credentials"
    creds.write_text("")
    env = clean_env()
    env.update({"AWS_CONFIG_FILE": str(conf), "AWS_SHARED_CREDENTIALS_FILE": str(creds),
                "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key,
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1", "AWS_PAGER": ""})

    def run(*args: str) -> str:
        argv = [sys.executable, "-m", "awscli", *args, "--endpoint-url", endpoint]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            pytest.fail(f"aws {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
                        f"stderr:\n{proc.stderr[-3000:]}")
        return proc.stdout

    return run


def test_cli_cp_200mib(instance, s3, bucket, tmp_path):
    src, size = tmp_path / "big.bin", 200 * MIB
    digest = write_random(src, size)
    aws = aws_cli(instance.endpoint, instance.access_key, instance.secret_key, tmp_path)
    aws("s3", "cp", str(src), f"s3://{bucket}/vol/big.bin")
    src.unlink()  # keep the disk footprint at one copy
    head = s3.head_object(Bucket=bucket, Key="vol/big.bin")
    assert head["ContentLength"] == size
    listing = aws("s3", "ls", f"s3://{bucket}/vol/")
    assert f" {size} big.bin" in listing, listing
    down = tmp_path / "big.down"
    aws("s3", "cp", f"s3://{bucket}/vol/big.bin", str(down))
    assert down.stat().st_size == size
    assert file_sha256(down) == digest


def test_boto3_transfer_manager(instance, s3, bucket, tmp_path):
    src, size = tmp_path / "tm.bin", 100 * MIB + 12_345
    digest = write_random(src, size)
    cfg = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=10)
    # boto3's default connect timeout (60 s), not the suite's 5 s: urllib3 applies it while the request
    # body is being sent too, and ten parts in flight on two cores may wait longer than 5 s to be read.
    tm = instance.client(connect_timeout=60)
    tm.upload_file(str(src), bucket, "vol/tm.bin", Config=cfg)
    assert s3.head_object(Bucket=bucket, Key="vol/tm.bin")["ContentLength"] == size
    assert s3.list_objects_v2(Bucket=bucket, Prefix="vol/")["Contents"][0]["Size"] == size
    down = tmp_path / "tm.down"
    tm.download_file(bucket, "vol/tm.bin", str(down), Config=cfg)
    assert down.stat().st_size == size and file_sha256(down) == digest


BAD_WORDS = ("corrupted", "hash differ", "hashes differ", "sizes differ", "ERROR")


def test_rclone_multipart_copy_check_sync(instance, bucket, tmp_path):
    exe = shutil.which("rclone")
    if exe is None:
        pytest.fail("rclone is not installed (tests/run installs it with apt-get)")
    conf = tmp_path / "rclone.conf"
    conf.write_text("[bs]\ntype = s3\nprovider = Other\nenv_auth = false\n"
                    f"access_key_id = {instance.access_key}\nsecret_access_key = {instance.secret_key}\n"
                    f"endpoint = {instance.endpoint}\nregion = us-east-1\nforce_path_style = true\n")

    def rclone(*args: str) -> str:
        argv = [exe, "--config", str(conf), "--retries", "1", "--low-level-retries", "1", "-v",
                "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "--s3-upload-concurrency", "4", *args]
        proc = subprocess.run(argv, env=clean_env(), capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"rclone {' '.join(args)} exited {proc.returncode}:\n{out[-4000:]}"
        for word in BAD_WORDS:
            assert word not in out, f"rclone {' '.join(args)} said {word!r}:\n{out[-4000:]}"
        return out

    src = tmp_path / "src"
    digests = {"big.bin": write_random(src / "big.bin", 100 * MIB),
               "sub/mid.bin": write_random(src / "sub" / "mid.bin", 7 * MIB + 3),
               "small.txt": write_random(src / "small.txt", 100)}
    remote = f"bs:{bucket}/tree"
    rclone("copy", str(src), remote)
    rclone("check", str(src), remote)
    again = rclone("sync", str(src), remote)
    assert "Copied (new)" not in again and "Copied (replaced" not in again, again
    sizes = {}
    for line in rclone("lsl", remote).splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0].isdigit():
            sizes[parts[-1]] = int(parts[0])
    assert sizes == {rel: (src / rel).stat().st_size for rel in digests}
    back = tmp_path / "back"
    rclone("copy", remote, str(back))
    for rel, digest in digests.items():
        assert file_sha256(back / rel) == digest, rel
