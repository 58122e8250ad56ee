"""rclone (Debian's 1.60) against blobseal: copy, check, sync, lsl.

rclone compares a single-part upload's ETag with the file's MD5 and cries "corrupted on transfer" on a
mismatch; blobseal's dashed ETag must make it skip that check rather than fail it.
"""

import shutil
import subprocess

import pytest

from procs import clean_env
from s3util import random_bytes

BAD_WORDS = ("corrupted", "hash differ", "hashes differ", "ERROR")


@pytest.fixture
def rclone(instance, tmp_path):
    exe = shutil.which("rclone")
    if exe is None:
        pytest.fail("rclone is not installed (tests/run installs it with apt-get)")
    conf = tmp_path / "rclone.conf"
    conf.write_text("[bs]\ntype = s3\nprovider = Other\nenv_auth = false\n"
                    f"access_key_id = {instance.access_key}\nsecret_access_key = {instance.secret_key}\n"
                    f"endpoint = {instance.endpoint}\nregion = us-east-1\nforce_path_style = true\n")

    def run(*args, check=True):
        argv = [exe, "--config", str(conf), "--retries", "1", "--low-level-retries", "1", "-v", *args]
        proc = subprocess.run(argv, env=clean_env(), capture_output=True, text=True, timeout=180,
                              stdin=subprocess.DEVNULL)
        output = proc.stdout + proc.stderr
        if check and proc.returncode != 0:
            pytest.fail(f"rclone {' '.join(args)} exited {proc.returncode}:\n{output}")
        for word in BAD_WORDS:
            assert word not in output, f"rclone {' '.join(args)} said {word!r}:\n{output}"
        return output

    return run


def test_rclone_copy_check_sync_lsl(rclone, bucket, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    files = {"empty.dat": b"", "small.txt": b"rclone was here\n", "sub/one-mib.bin": random_bytes(1024 * 1024),
             "sub/odd.bin": random_bytes(65537)}
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    remote = f"bs:{bucket}/tree"

    out = rclone("copy", str(src), remote)
    assert "Copied" in out or "copied" in out.lower(), out
    rclone("check", str(src), remote)

    again = rclone("sync", str(src), remote)
    assert "Copied (new)" not in again and "Copied (replaced" not in again, again

    sizes = {}
    for line in rclone("lsl", remote).splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0].isdigit():  # skip -v log lines
            sizes[parts[-1]] = int(parts[0])
    assert sizes == {rel: len(data) for rel, data in files.items()}

    back = tmp_path / "back"
    rclone("copy", remote, str(back))
    for rel, data in files.items():
        assert (back / rel).read_bytes() == data, rel
    rclone("check", str(src), str(back))

    # A change locally is noticed and synced; a deletion is propagated.
    (src / "small.txt").write_bytes(b"changed content, different size\n")
    (src / "sub" / "odd.bin").unlink()
    rclone("sync", str(src), remote)
    listing = rclone("lsl", remote)
    assert "odd.bin" not in listing
    back2 = tmp_path / "back2"
    rclone("copy", remote, str(back2))
    assert (back2 / "small.txt").read_bytes() == b"changed content, different size\n"
