#!/usr/bin/env bash
# blobseal's peak memory (VmHWM) while one large object streams up and down through it, on the
# S3 backend (s3s-fs) and on the filesystem backend. Only part 3 of benches/proxy.sh, bigger.
#
#   bash benches/memory.sh                           10 GiB (about 4 transfers of 10 GiB; needs ~11 GiB of disk)
#   BLOBSEAL_BENCH_SIZE=1GiB bash benches/memory.sh  quicker
set -euo pipefail
export BLOBSEAL_BENCH_SIZE="${BLOBSEAL_BENCH_SIZE:-10GiB}"
export BLOBSEAL_BENCH_ONLY=memory
exec bash "$(dirname "${BASH_SOURCE[0]}")/proxy.sh"
