"""The AWS CLI (v1, from the venv) against blobseal: s3 high-level commands and s3api."""

import json
import subprocess
import sys

import pytest

from procs import clean_env
from s3util import empty_and_delete, random_bytes, unique_bucket


@pytest.fixture
def aws(instance, tmp_path):
    """Run `aws ARGS --endpoint-url ...` with isolated config files and the instance's credentials."""
    conf = tmp_path / "aws-config"
    conf.write_text("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
    creds = tmp_path / "aws-credentials"
    creds.write_text("")
    env = clean_env()
    env.update({"AWS_CONFIG_FILE": str(conf), "AWS_SHARED_CREDENTIALS_FILE": str(creds),
                "AWS_ACCESS_KEY_ID": instance.access_key, "AWS_SECRET_ACCESS_KEY": instance.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1", "AWS_PAGER": ""})

    def run(*args, check=True):
        argv = [sys.executable, "-m", "awscli", *args, "--endpoint-url", instance.endpoint]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            pytest.fail(f"aws {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    return run


def test_cli_s3_workflow(aws, s3, tmp_path):
    name = unique_bucket()
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    files = {"empty": b"", "small.txt": b"hello blobseal\n", "nested/seg.bin": random_bytes(65537),
             "big.bin": random_bytes(3 * 1024 * 1024)}
    for rel, data in files.items():
        (src / rel).write_bytes(data)

    assert f"make_bucket: {name}" in aws("s3", "mb", f"s3://{name}").stdout
    try:
        aws("s3", "cp", str(src / "big.bin"), f"s3://{name}/single/big.bin")
        down = tmp_path / "big.down"
        aws("s3", "cp", f"s3://{name}/single/big.bin", str(down))
        assert down.read_bytes() == files["big.bin"]

        listing = aws("s3", "ls", f"s3://{name}/single/").stdout
        assert "big.bin" in listing and str(3 * 1024 * 1024) in listing, listing

        first = aws("s3", "sync", str(src), f"s3://{name}/tree").stdout
        assert first.count("upload:") == len(files), first
        second = aws("s3", "sync", str(src), f"s3://{name}/tree").stdout
        assert "upload:" not in second, f"second sync copied again:\n{second}"

        back = tmp_path / "back"
        aws("s3", "sync", f"s3://{name}/tree", str(back))
        for rel, data in files.items():
            assert (back / rel).read_bytes() == data, rel

        recursive = aws("s3", "ls", "--recursive", f"s3://{name}/tree/").stdout
        for rel, data in files.items():
            line = next(ln for ln in recursive.splitlines() if ln.endswith("tree/" + rel))
            assert int(line.split()[2]) == len(data), line

        head = json.loads(aws("s3api", "head-object", "--bucket", name, "--key", "tree/nested/seg.bin").stdout)
        assert head["ContentLength"] == 65537
        out = tmp_path / "range.out"
        got = json.loads(aws("s3api", "get-object", "--bucket", name, "--key", "tree/nested/seg.bin",
                             "--range", "bytes=65530-65536", str(out)).stdout)
        assert got["ContentRange"] == "bytes 65530-65536/65537"
        assert out.read_bytes() == files["nested/seg.bin"][65530:]

        aws("s3", "rm", "--recursive", f"s3://{name}/")
        assert aws("s3", "ls", "--recursive", f"s3://{name}/").stdout.strip() == ""
        assert f"remove_bucket: {name}" in aws("s3", "rb", f"s3://{name}").stdout
        assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        empty_and_delete(s3, name)


def test_cli_reports_missing_key(aws, bucket, tmp_path):
    proc = aws("s3api", "get-object", "--bucket", bucket, "--key", "missing", str(tmp_path / "x"), check=False)
    assert proc.returncode != 0
    assert "NoSuchKey" in proc.stderr, proc.stderr
