#!/usr/bin/env bash
# The proxy benchmark: blobseal in front of s3s-fs against s3s-fs alone, plus blobseal on its
# filesystem backend (single PUT/GET, multipart upload in 8 MiB parts, GET and ranged GET of the
# multipart object), and blobseal's peak memory while a large object streams through (one PUT and
# multipart).
# Release build; loopback only; every loop bounded in count and time (see benches/proxy/main.rs).
#
#   bash benches/proxy.sh                            the standard run (about 1-2 minutes once built)
#   BLOBSEAL_BENCH_SIZE=10GiB bash benches/proxy.sh  stream 10 GiB for the memory figure
#
# Knobs: BLOBSEAL_BENCH_SIZE (1GiB), BLOBSEAL_BENCH_BIG_N (5), BLOBSEAL_BENCH_SMALL_N (300),
# BLOBSEAL_BENCH_RANGE_N (50), BLOBSEAL_BENCH_MPU_CONC (4), BLOBSEAL_BENCH_UPLOADS (single,multipart),
# BLOBSEAL_BENCH_BUDGET_S (120 per loop), S3S_FS_BIN, BLOBSEAL_TEST_CACHE (~/.cache/blobseal-test).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${BLOBSEAL_TEST_CACHE:-$HOME/.cache/blobseal-test}"
export S3S_FS_BIN="${S3S_FS_BIN:-$CACHE/s3s-fs/bin/s3s-fs}"

if [[ ! -x "$S3S_FS_BIN" ]]; then
  echo "s3s-fs not found at $S3S_FS_BIN; install it with:" >&2
  echo "  cargo install s3s-fs --version 0.14.1 --features binary --locked --root $CACHE/s3s-fs" >&2
  exit 1
fi

# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
# The memory part streams BLOBSEAL_BENCH_SIZE through each backend, once as a multipart upload.
check_disk "${TMPDIR:-/tmp}" "$(size_bytes "${BLOBSEAL_BENCH_SIZE:-1GiB}")"

cd "$ROOT"
# `cargo bench` builds the release blobseal binary too (benches get CARGO_BIN_EXE_blobseal).
cargo bench --bench proxy --no-run
echo "+ cargo bench --bench proxy" >&2
exec cargo bench --bench proxy
