"""What one `max-keys=1` listing page costs the fs backend, as bytes the blobseal process reads.

Starts blobseal on its embedded default (fs backend) in a fresh data dir and fills three buckets:
  big   - N objects (default 1000), each with user metadata near S3's 2 KiB limit (default 2000 bytes,
          in 10 headers; blobseal refuses more since issue 11)
  one   - 1 object with the same metadata (the baseline: one page's worth of headers)
  small - N objects without metadata
then, for each bucket, lists one page of one key R times (default 5) and reports the median latency and
the process's /proc/<pid>/io `rchar` (bytes read through read(2), page cache or not) per page. A listing
whose cost follows the page, not the bucket, reads about as much for `big` as for `one` plus a few
hundred bytes per object; one that parses every header reads N times the metadata.

  BLOBSEAL_BIN=target/debug/blobseal python3 benches/fs_listing.py [--objects 1000] [--meta-bytes 2000] [--reps 5]

Needs boto3. The binary's build profile does not change the bytes read (it does change the times).
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rchar(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/<pid>/io")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--meta-bytes", type=int, default=2000, help="user metadata per object, names included (<= 2048)")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    binary = os.environ.get("BLOBSEAL_BIN")
    if not binary:
        print("set BLOBSEAL_BIN to the blobseal binary", file=sys.stderr)
        return 2
    ak, sk, port = "BENCHLISTACCESS", secrets.token_hex(20), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"BLOBSEAL_DATA_DIR": tmp, "BLOBSEAL_ACCESS_KEY_ID": ak, "BLOBSEAL_SECRET_ACCESS_KEY": sk,
                    "BLOBSEAL_LISTEN": f"127.0.0.1:{port}", "RUST_LOG": "warn",
                    "BLOBSEAL_HOUSEKEEPING_INTERVAL_SECS": "0"})
        log = open(Path(tmp) / "blobseal.log", "wb")
        proc = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("blobseal did not start")
                    time.sleep(0.05)
            cfg = Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                         retries={"total_max_attempts": 1, "mode": "standard"},
                         request_checksum_calculation="when_required", response_checksum_validation="when_required")
            c = boto3.session.Session(aws_access_key_id=ak, aws_secret_access_key=sk, region_name="us-east-1").client(
                "s3", endpoint_url=f"http://127.0.0.1:{port}", config=cfg)
            per = max(args.meta_bytes // 10 - 2, 0)  # ten headers named m0..m9 (2 bytes each)
            meta = {f"m{i}": "v" * per for i in range(10)} if args.meta_bytes else {}
            fill = {"big": (args.objects, meta), "one": (1, meta), "small": (args.objects, {})}
            for bucket, (n, md) in fill.items():
                c.create_bucket(Bucket=bucket)
                for i in range(n):
                    c.put_object(Bucket=bucket, Key=f"obj-{i:05d}", Body=b"x" * 100, Metadata=md)
            print(f"objects={args.objects} meta_bytes={args.meta_bytes} reps={args.reps}")
            results = {}
            for bucket in fill:
                reads, times = [], []
                for _ in range(args.reps):
                    before, t0 = rchar(proc.pid), time.perf_counter()
                    page = c.list_objects_v2(Bucket=bucket, MaxKeys=1)
                    times.append(time.perf_counter() - t0)
                    reads.append(rchar(proc.pid) - before)
                    assert page["KeyCount"] == 1
                results[bucket] = (statistics.median(reads), statistics.median(times))
                print(f"{bucket:6} rchar/page={results[bucket][0] / 1024:10.1f} KiB  "
                      f"p50={results[bucket][1] * 1000:8.1f} ms")
            base = results["one"][0] or 1
            print(f"ratio big/one (bytes read) = {results['big'][0] / base:.1f}   "
                  f"big/small = {results['big'][0] / (results['small'][0] or 1):.1f}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
