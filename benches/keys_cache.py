"""The client half of benches/keys_cache.sh: 4 KiB PUT and GET latency through several blobseal targets.

Reads a JSON list of targets (written by keys_cache.sh), each:
  {"name", "endpoint", "access_key", "secret", "kms_log" (moto log of the target's own KMS, or null),
   "s3_log" (the shared moto S3 log), "key_store" (the target's key-store bucket on that moto)}

For every target: one bucket, `--warmup` untimed PUTs (the first creates the tenant's keys), then `-n` PUTs of
distinct keys and `-n` GETs of those keys. The targets are interleaved request by request, so a burst of load on
the shared machine falls on all of them alike. Each loop stops after `--budget` seconds even if `-n` was not
reached. Latency is per request, from send to the last body byte. The first GET of each target is checked against
what was PUT.

Around each phase the script counts, per target, the request lines its KMS moto logged (POST: every KMS call is a
POST) and the request lines the S3 moto logged for the target's key-store bucket: what the key cache saves.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config

REGION = "us-east-1"


def client(t: dict):
    # Plain bodies and no response checksum work: the client should cost the same for every target and as
    # little as possible; blobseal's own cost is what differs.
    cfg = Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                 retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30,
                 request_checksum_calculation="when_required", response_checksum_validation="when_required")
    session = boto3.session.Session(aws_access_key_id=t["access_key"], aws_secret_access_key=t["secret"],
                                    region_name=REGION)
    return session.client("s3", endpoint_url=t["endpoint"], config=cfg)


def count_lines(path: str | None, needle: str) -> int | None:
    """Lines of the log at `path` that contain `needle` (None when there is no log)."""
    if not path:
        return None
    with open(path, "rb") as f:
        return sum(1 for line in f if needle.encode() in line)


def kms_calls(t: dict) -> int | None:
    return count_lines(t["kms_log"], '"POST ')


def store_calls(t: dict) -> int | None:
    # moto logs `"GET /<bucket>/<key> HTTP/1.1"`: every request that names the key-store bucket.
    return count_lines(t["s3_log"], f" /{t['key_store']}")


def quantile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list."""
    if not sorted_ms:
        return float("nan")
    rank = max(1, min(len(sorted_ms), int(-(-q * len(sorted_ms) // 1))))
    return sorted_ms[rank - 1]


def timed_loop(targets: list[dict], clients: dict, n: int, budget: float, op) -> dict[str, list[float]]:
    """Round i runs op(target, client, i) once per target; stops after n rounds or `budget` seconds."""
    lat: dict[str, list[float]] = {t["name"]: [] for t in targets}
    deadline = time.monotonic() + budget
    for i in range(n):
        if time.monotonic() > deadline:
            print(f"  budget of {budget:.0f} s spent after {i} rounds", file=sys.stderr)
            break
        for t in targets:
            t0 = time.perf_counter()
            op(t, clients[t["name"]], i)
            lat[t["name"]].append((time.perf_counter() - t0) * 1000)
    return lat


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("targets", type=Path)
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--budget", type=float, default=90.0)
    ap.add_argument("--json-out", type=Path)
    ap.add_argument("--ratio", nargs=2, metavar=("NUM", "DEN"), help="also print NUM/DEN for every figure")
    args = ap.parse_args()

    targets = json.loads(args.targets.read_text())
    clients = {t["name"]: client(t) for t in targets}
    body = os.urandom(args.size)
    bucket = "bench"
    for t in targets:
        clients[t["name"]].create_bucket(Bucket=bucket)
    for i in range(args.warmup):
        for t in targets:
            clients[t["name"]].put_object(Bucket=bucket, Key=f"warm/{i}", Body=body)

    def put(t, c, i):
        c.put_object(Bucket=bucket, Key=f"o/{i}", Body=body)

    def get(t, c, i):
        got = c.get_object(Bucket=bucket, Key=f"o/{i}")["Body"].read()
        if i == 0 and got != body:
            raise SystemExit(f"{t['name']}: GET o/0 returned {len(got)} bytes that differ from what was PUT")

    results = {t["name"]: {} for t in targets}
    for phase, op in (("PUT", put), ("GET", get)):
        before = {t["name"]: (kms_calls(t), store_calls(t)) for t in targets}
        lat = timed_loop(targets, clients, args.n, args.budget, op)
        for t in targets:
            kms0, st0 = before[t["name"]]
            kms1, st1 = kms_calls(t), store_calls(t)
            ms = sorted(lat[t["name"]])
            results[t["name"]][phase] = {
                "n": len(ms), "p50": quantile(ms, 0.50), "p99": quantile(ms, 0.99),
                "mean": sum(ms) / len(ms) if ms else float("nan"),
                "kms": None if kms0 is None or kms1 is None else kms1 - kms0,
                "store": None if st0 is None or st1 is None else st1 - st0,
            }
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=1))
    report(results, args.size, args.ratio)
    return 0


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def report(results: dict, size: int, ratio: list[str] | None) -> None:
    print(f"{'target':<24} {'op':<4} {'size':>6} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} "
          f"{'KMS req':>8} {'store req':>9}")
    for phase in ("PUT", "GET"):
        for name, r in results.items():
            f = r[phase]
            print(f"{name:<24} {phase:<4} {size // 1024:>2} KiB {f['n']:>4} {f['p50']:>8.2f} {f['p99']:>8.2f} "
                  f"{f['mean']:>8.2f} {fmt(f['kms'], '>8d'):>8} {fmt(f['store'], '>9d'):>9}")
    if not ratio:
        return
    num, den = ratio
    print(f"\nratio {num} / {den}:")
    for phase in ("PUT", "GET"):
        a, b = results[den][phase], results[num][phase]
        parts = [f"p50 {b['p50'] / a['p50']:.2f}x", f"p99 {b['p99'] / a['p99']:.2f}x",
                 f"mean {b['mean'] / a['mean']:.2f}x"]
        for k, label in (("kms", "KMS requests"), ("store", "key-store requests")):
            if a[k] is not None and b[k] is not None:
                parts.append(f"{label} {b[k]} vs {a[k]}" + (f" ({b[k] / a[k]:.0f}x)" if a[k] else ""))
        print(f"  {phase}: " + ", ".join(parts))


if __name__ == "__main__":
    sys.exit(main())
