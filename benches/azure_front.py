"""What blobseal's Azure Blob front end costs (issue 13), on loopback: the same Azure SDK client against Azurite
direct and against blobseal, interleaved round by round so machine noise hits all alike.

  direct        - azure-storage-blob straight to Azurite (in memory)
  blobseal-fs   - the same client to blobseal's Azure front end on the embedded default (filesystem backend)
  blobseal-az   - the same client to blobseal's Azure front end whose backend is that same Azurite
                  (Azure in, Azure out: blobseal encrypts and stores on Azurite)

for a 64 MiB blob uploaded in one Put Blob (and read back in one GET), the same with the client's Content-MD5
(`validate_content=True`: blobseal then needs no staging copy to store the MD5), a 64 MiB blob uploaded as 8 MiB blocks
(Put Block x 8 + Put Block List, one at a time; blobseal re-seals the blocks into the blob at commit), and a
4 KiB blob (latency: p50 and p99). Throughput is MB/s of plaintext and the ratio to direct.

  BLOBSEAL_BIN=target/release/blobseal BLOBSEAL_AZURITE=~/.cache/blobseal-test/azurite/node_modules/.bin/azurite-blob \\
    ~/.cache/blobseal-test/venv/bin/python benches/azure_front.py [--big-n 5] [--small-n 300] [--budget 120]

Every loop is bounded in count and in time (--budget seconds per loop).
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from azure_backend import ACCOUNT, KEY, MIB, free_port, pct, wait_port  # noqa: E402  (shared bench helpers)


def conn(url: str, account: str, key: str) -> str:
    return f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};BlobEndpoint={url};"


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
    binary = str(Path(binary).resolve())  # the servers run in a temporary directory
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
            acct, key = "benchacct", base64.b64encode(os.urandom(64)).decode()
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update({"RUST_LOG": "warn", "BENCH_AZ_KEY": KEY, "BENCH_FRONT_KEY": key,
                        "BENCH_SECRET": "bench-secret-0123456789"})
            log = open(Path(tmp) / "blobseal.log", "wb")
            # blobseal on its filesystem backend (embedded default).
            fs_s3, fs_az = free_port(), free_port()
            fs_env = dict(env, BLOBSEAL_DATA_DIR=f"{tmp}/fsdata", BLOBSEAL_LISTEN=f"127.0.0.1:{fs_s3}",
                          BLOBSEAL_AZURE_LISTEN=f"127.0.0.1:{fs_az}", BLOBSEAL_AZURE_ACCOUNT=acct,
                          BLOBSEAL_AZURE_ACCOUNT_KEY=key)
            procs.append(subprocess.Popen([binary, "serve"], env=fs_env, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=tmp))
            wait_port(fs_az, procs[-1])
            # blobseal whose backend is the same Azurite.
            az_s3, az_front = free_port(), free_port()
            cfg = Path(tmp) / "blobseal.yaml"
            cfg.write_text(f"""\
listen: "127.0.0.1:{az_s3}"
azure_listen: "127.0.0.1:{az_front}"
key_provider: {{ kind: local, keyring: "{tmp}/keys/keyring.json", master_key_file: "{tmp}/keys/master" }}
backends:
  - {{ name: az, kind: azure, endpoint: "{az_url}", account: {ACCOUNT}, region: uksouth,
      credentials: {{ account_key_env: BENCH_AZ_KEY }} }}
tenants:
  - name: bench
    default_backend: az
    bucket_prefix: "t-"
    access_keys: [ {{ id: BENCHAK, secret_env: BENCH_SECRET }} ]
    azure_account: {{ name: {acct}, keys: [ {{ key_env: BENCH_FRONT_KEY }} ] }}
""")
            procs.append(subprocess.Popen([binary, "serve", "--config", str(cfg)], env=dict(env, BLOBSEAL_DATA_DIR=f"{tmp}/azdata"),
                                          stdout=log, stderr=subprocess.STDOUT, cwd=tmp))
            wait_port(az_front, procs[-1])

            services = {
                "direct": conn(az_url, ACCOUNT, KEY),
                "blobseal-fs": conn(f"http://127.0.0.1:{fs_az}/{acct}", acct, key),
                "blobseal-az": conn(f"http://127.0.0.1:{az_front}/{acct}", acct, key),
            }
            containers = {}
            for name, cs in services.items():
                svc = BlobServiceClient.from_connection_string(cs, max_single_put_size=128 * MIB,
                                                               max_block_size=8 * MIB, max_single_get_size=128 * MIB)
                c = svc.get_container_client("bench")
                c.create_container()
                containers[name] = c

            def run(label: str, size: int, n: int, blocks: bool, client_md5: bool = False):
                data = os.urandom(size)
                times = {t: {"put": [], "get": []} for t in containers}
                for c in containers.values():  # warm-up: connections, keys, caches
                    c.upload_blob("warm", data[:4096], overwrite=True)
                    c.download_blob("warm").readall()
                started = time.monotonic()
                for i in range(n):
                    if time.monotonic() - started > args.budget:
                        print(f"{label}: budget of {args.budget} s reached after {i} rounds", file=sys.stderr)
                        break
                    for name, c in containers.items():
                        bc = c.get_blob_client(f"k{i % 4}")
                        t0 = time.perf_counter()
                        if blocks:
                            ids = []
                            for j in range(0, size, 8 * MIB):
                                bid = base64.b64encode(f"b{j // (8 * MIB):05}".encode()).decode()
                                bc.stage_block(bid, data[j:j + 8 * MIB])
                                ids.append(bid)
                            bc.commit_block_list(ids)
                        else:
                            bc.upload_blob(data, overwrite=True, max_concurrency=1, validate_content=client_md5)
                        t1 = time.perf_counter()
                        got = bc.download_blob(max_concurrency=1).readall()
                        t2 = time.perf_counter()
                        if got != data:
                            raise RuntimeError(f"{name} returned other bytes")
                        times[name]["put"].append(t1 - t0)
                        times[name]["get"].append(t2 - t1)
                return times

            print(f"# Azure SDK → blobseal's Azure front end vs → Azurite ({time.strftime('%Y-%m-%d %H:%M')}, loopback)")
            for label, blocks, client_md5 in (("64 MiB, one Put Blob", False, False),
                                              ("64 MiB, one Put Blob with Content-MD5", False, True),
                                              ("64 MiB, 8 MiB blocks", True, False)):
                times = run(label, 64 * MIB, args.big_n, blocks, client_md5)
                rounds = len(times["direct"]["put"])
                print(f"{label}, {rounds} rounds, median MB/s (ratio to direct):")
                for op in ("put", "get"):
                    d = 64 * MIB / statistics.median(times["direct"][op]) / 1e6
                    cells = "   ".join(
                        f"{n} {64 * MIB / statistics.median(times[n][op]) / 1e6:7.1f} "
                        f"({64 * MIB / statistics.median(times[n][op]) / 1e6 / d:6.1%})"
                        for n in ("blobseal-fs", "blobseal-az"))
                    print(f"  {op.upper():3}  direct {d:7.1f}   {cells}")
            times = run("4 KiB", 4096, args.small_n, False)
            print(f"4 KiB, {len(times['direct']['put'])} rounds, ms p50 / p99:")
            for op in ("put", "get"):
                cells = "   ".join(f"{n} {pct(times[n][op], 50) * 1e3:6.2f} / {pct(times[n][op], 99) * 1e3:6.2f}"
                                   for n in containers)
                print(f"  {op.upper():3}  {cells}")
            return 0
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    sys.exit(main())
