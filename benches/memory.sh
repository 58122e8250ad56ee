#!/usr/bin/env bash
# blobseal's peak memory (VmHWM) while one large object streams up and down through it, on the
# S3 backend (s3s-fs) and on the filesystem backend, sent as one PUT (at most 5 GiB, S3's limit)
# and as a multipart upload in 8 MiB parts. Only part 3 of benches/proxy.sh, bigger. The client is
# aws-sdk-s3 generating the body on the fly; benches/memory_cli.sh does the same with the AWS CLI.
#
#   bash benches/memory.sh                           10 GiB (needs ~3x that of free disk while a
#                                                    multipart upload completes; cleaned up after)
#   BLOBSEAL_BENCH_SIZE=1GiB bash benches/memory.sh  quicker
set -euo pipefail
export BLOBSEAL_BENCH_SIZE="${BLOBSEAL_BENCH_SIZE:-10GiB}"
export BLOBSEAL_BENCH_ONLY=memory
exec bash "$(dirname "${BASH_SOURCE[0]}")/proxy.sh"
