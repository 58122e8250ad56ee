"""What blobseal costs in front of Azure Blob Storage (issue 12), on loopback against Azurite.

Starts one Azurite (in memory) and one blobseal whose only backend is that Azurite, then, round by round and
interleaved so machine noise hits both alike:
  direct   - the official Azure SDK for Python (azure-storage-blob) PUTs and GETs straight to Azurite
  blobseal - boto3 PUTs and GETs through blobseal (which encrypts and stores on the same Azurite)
  blobseal-fs - the same boto3 through a second blobseal on its filesystem backend, as a reference for what
             blobseal's own request path costs with this client, whatever the backend
for a large object (64 MiB, throughput: MB/s and the blobseal/direct ratio) and a small one (4 KiB, latency: p50
and p99 and what blobseal adds). boto3 sends plain PUTs (no aws-chunked CRC32, which alone limits boto3 to
about 100 MB/s here). Until the Azure front end exists (issue 13) no one client speaks to both, so the
baseline is Azure's own SDK; both clients are Python, single stream, one request at a time.

  BLOBSEAL_BIN=target/release/blobseal BLOBSEAL_AZURITE=~/.cache/blobseal-test/azurite/node_modules/.bin/azurite-blob \\
    ~/.cache/blobseal-test/venv/bin/python benches/azure_backend.py [--big-n 5] [--small-n 300] [--budget 120]

Every loop is bounded in count and in time (--budget seconds per loop). Needs boto3 and azure-storage-blob
(the test venv has both).
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

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big-n", type=int, default=5)
    ap.add_argument("--small-n", type=int, default=300)
    ap.add_argument("--budget", type=float, default=120.0, help="seconds per loop, at most")
    args = ap.parse_args()
    binary, azurite = os.environ.get("BLOBSEAL_BIN"), os.environ.get("BLOBSEAL_AZURITE")
    if not binary or not azurite:
        print("set BLOBSEAL_BIN (blobseal binary) and BLOBSEAL_AZURITE (azurite-blob)", file=sys.stderr)
        return 2
    from azure.storage.blob import BlobServiceClient

    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            az_port = free_port()
            procs.append(subprocess.Popen(
                [azurite, "--blobHost", "127.0.0.1", "--blobPort", str(az_port), "--inMemoryPersistence",
                 "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp))
            wait_port(az_port, procs[-1])
            az_url = f"http://127.0.0.1:{az_port}/{ACCOUNT}"
            ak, sk, port = "BENCHAZACCESS", secrets.token_hex(20), free_port()
            cfg = Path(tmp) / "blobseal.yaml"
            cfg.write_text(f"""\
listen: "127.0.0.1:{port}"
key_provider: {{ kind: local, keyring: "{tmp}/keys/keyring.json", master_key_file: "{tmp}/keys/master" }}
backends:
  - {{ name: az, kind: azure, endpoint: "{az_url}", account: {ACCOUNT}, region: uksouth,
      credentials: {{ account_key_env: BENCH_AZ_KEY }} }}
tenants:
  - name: bench
    default_backend: az
    bucket_prefix: "t-"
    access_keys: [ {{ id: {ak}, secret_env: BENCH_SECRET }} ]
""")
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update({"BENCH_AZ_KEY": KEY, "BENCH_SECRET": sk, "RUST_LOG": "warn",
                        "BLOBSEAL_DATA_DIR": f"{tmp}/data"})
            log = open(Path(tmp) / "blobseal.log", "wb")
            procs.append(subprocess.Popen([binary, "serve", "--config", str(cfg)], env=env, stdout=log,
                                          stderr=subprocess.STDOUT, cwd=tmp))
            wait_port(port, procs[-1])
            # Reference: the same boto3 through a blobseal on its filesystem backend (embedded default): what
            # blobseal's own PUT/GET path costs with this client, whatever the backend.
            fs_port = free_port()
            fs_env = {k: v for k, v in env.items() if not k.startswith("BENCH_")}
            fs_env.update({"BLOBSEAL_DATA_DIR": f"{tmp}/fsdata", "BLOBSEAL_ACCESS_KEY_ID": ak,
                           "BLOBSEAL_SECRET_ACCESS_KEY": sk, "BLOBSEAL_LISTEN": f"127.0.0.1:{fs_port}"})
            procs.append(subprocess.Popen([binary, "serve"], env=fs_env, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=tmp))
            wait_port(fs_port, procs[-1])

            s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=ak,
                              aws_secret_access_key=sk, region_name="us-east-1",
                              config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                            # A plain PUT with Content-Length, as the Azure SDK sends: boto3's
                                            # default aws-chunked CRC32 upload caps it near 100 MB/s by itself.
                                            request_checksum_calculation="when_required",
                                            response_checksum_validation="when_required"))
            s3.create_bucket(Bucket="bench")
            s3fs = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{fs_port}", aws_access_key_id=ak,
                                aws_secret_access_key=sk, region_name="us-east-1", config=s3.meta.config)
            s3fs.create_bucket(Bucket="bench")
            direct = BlobServiceClient.from_connection_string(
                f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={az_url};")
            direct_c = direct.get_container_client("direct")
            direct_c.create_container()

            def through_put(key, data):
                s3.put_object(Bucket="bench", Key=key, Body=data)

            def through_get(key):
                return s3.get_object(Bucket="bench", Key=key)["Body"].read()

            def direct_put(key, data):
                direct_c.upload_blob(key, data, overwrite=True, max_concurrency=1)

            def direct_get(key):
                return direct_c.download_blob(key, max_concurrency=1).readall()

            def fs_put(key, data):
                s3fs.put_object(Bucket="bench", Key=key, Body=data)

            def fs_get(key):
                return s3fs.get_object(Bucket="bench", Key=key)["Body"].read()

            targets = {"direct": (direct_put, direct_get), "blobseal": (through_put, through_get),
                       "blobseal-fs": (fs_put, fs_get)}
            results = {}
            for label, size, n in (("64 MiB", 64 * MIB, args.big_n), ("4 KiB", 4096, args.small_n)):
                data = os.urandom(size)
                times = {t: {"put": [], "get": []} for t in targets}
                # Warm-up: connections, keys, caches.
                for name, (put, get) in targets.items():
                    put("warm", data[:4096])
                    get("warm")
                started = time.monotonic()
                for i in range(n):
                    if time.monotonic() - started > args.budget:
                        print(f"{label}: budget of {args.budget} s reached after {i} rounds", file=sys.stderr)
                        break
                    for name, (put, get) in targets.items():
                        key = f"k{i % 4}"
                        t0 = time.perf_counter()
                        put(key, data)
                        t1 = time.perf_counter()
                        got = get(key)
                        t2 = time.perf_counter()
                        if got != data:
                            raise RuntimeError(f"{name} returned other bytes for {key}")
                        times[name]["put"].append(t1 - t0)
                        times[name]["get"].append(t2 - t1)
                results[label] = (size, times)

            print(f"# blobseal → Azurite vs Azure SDK → Azurite ({time.strftime('%Y-%m-%d %H:%M')}, loopback)")
            size, times = results["64 MiB"]
            rounds = len(times["direct"]["put"])
            print(f"64 MiB, {rounds} rounds, median MB/s:")
            for op in ("put", "get"):
                d = size / statistics.median(times["direct"][op]) / 1e6
                b = size / statistics.median(times["blobseal"][op]) / 1e6
                f = size / statistics.median(times["blobseal-fs"][op]) / 1e6
                print(f"  {op.upper():3}  direct {d:7.1f}   blobseal {b:7.1f}   ratio {b / d:6.1%}   "
                      f"(reference: blobseal on fs {f:7.1f}, Azure/fs {b / f:6.1%})")
            size, times = results["4 KiB"]
            rounds = len(times["direct"]["put"])
            print(f"4 KiB, {rounds} rounds, ms (p50 / p99):")
            for op in ("put", "get"):
                d, b = times["direct"][op], times["blobseal"][op]
                print(f"  {op.upper():3}  direct {pct(d, 50) * 1e3:6.2f} / {pct(d, 99) * 1e3:6.2f}   "
                      f"blobseal {pct(b, 50) * 1e3:6.2f} / {pct(b, 99) * 1e3:6.2f}   "
                      f"added p50 {(pct(b, 50) - pct(d, 50)) * 1e3:+.2f}")
            return 0
        finally:
            for p in reversed(procs):
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    sys.exit(main())
