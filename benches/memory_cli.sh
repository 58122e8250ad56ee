#!/usr/bin/env bash
# blobseal's memory while a real client, the AWS CLI, streams one large object up and down.
#
#   bash benches/memory_cli.sh                              10 GiB (needs ~3x that of free disk)
#   BLOBSEAL_BENCH_SIZE=1GiB bash benches/memory_cli.sh     quick (about 1 minute once built)
#
# For each backend (BLOBSEAL_BENCH_BACKENDS, default "fs s3": blobseal's filesystem backend, and
# its S3 backend in front of s3s-fs) a fresh `blobseal serve` runs under `/usr/bin/time -v`, and:
#   1. `aws s3 cp FILE s3://mem/huge`         multipart upload, 8 MiB parts, 10 in flight
#   2. `aws s3 cp s3://mem/huge -`            download as concurrent 8 MiB ranged GETs
#   3. `aws s3api get-object`                 download as one GET
#   4. `aws s3api put-object --body FILE`     one PUT of min(size, 5 GiB) (S3's single-PUT limit)
# Before each step the script resets blobseal's peak RSS (`echo 5 > /proc/PID/clear_refs`) and
# afterwards reads VmHWM from /proc/PID/status, so each step has its own peak; a sampler also
# records VmRSS once a second (max and last sample are printed). The peak over the whole run is
# the largest step peak (the idle process included). /usr/bin/time -v's "Maximum resident set
# size" is printed too, as a check: the reset applies to it as well, so it covers the last step.
# The source file is sparse (reads as zeros, takes no disk); every download is checked with `cmp`
# against /dev/zero, length included.
#
# The CLI sends what it sends by default: aws-chunked bodies with CRC32 trailers, 100-continue.
# Every step is bounded by `timeout` (120 s + 1 s per 20 MB). Knobs: BLOBSEAL_BENCH_SIZE (10GiB),
# BLOBSEAL_BENCH_BACKENDS ("fs s3"), BLOBSEAL_BIN (default: the release build), S3S_FS_BIN,
# BLOBSEAL_TEST_CACHE (~/.cache/blobseal-test), BLOBSEAL_BENCH_KEEP=1 (keep the scratch directory).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${BLOBSEAL_TEST_CACHE:-$HOME/.cache/blobseal-test}"
S3S_FS_BIN="${S3S_FS_BIN:-$CACHE/s3s-fs/bin/s3s-fs}"
SIZE_TEXT="${BLOBSEAL_BENCH_SIZE:-10GiB}"
BACKENDS="${BLOBSEAL_BENCH_BACKENDS:-fs s3}"

# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
SIZE="$(size_bytes "$SIZE_TEXT")"
SINGLE=$((SIZE < (5 << 30) ? SIZE : (5 << 30)))
LIMIT=$((120 + SIZE / 20000000))

command -v aws >/dev/null || { echo "the AWS CLI (aws) is needed" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time is needed (Debian package: time)" >&2; exit 1; }
if [[ "$BACKENDS" == *s3* && ! -x "$S3S_FS_BIN" ]]; then
  echo "s3s-fs not found at $S3S_FS_BIN (see benches/proxy.sh)" >&2
  exit 1
fi

SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/blobseal-memcli-XXXXXX")"
check_disk "$SCRATCH" "$SIZE" || { rmdir "$SCRATCH"; exit 1; }

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ -z "${BLOBSEAL_BENCH_KEEP:-}" ]]; then rm -rf "$SCRATCH"; else echo "kept $SCRATCH" >&2; fi
}
trap cleanup EXIT

if [[ -z "${BLOBSEAL_BIN:-}" ]]; then
  (cd "$ROOT" && cargo build --release --bin blobseal >&2)
  BLOBSEAL_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/blobseal"
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits (at most 20 s) until $1 (a command string) succeeds.
wait_for() {
  local i
  for i in $(seq 200); do
    if eval "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for: $1" >&2
  return 1
}

TENANT_KEY=BENCHTENANTKEY
TENANT_SECRET=bench-tenant-secret-0123456789
S3FS_KEY=BENCHS3FSKEY
S3FS_SECRET=bench-s3s-fs-secret-0123456789

# The AWS CLI, isolated from any user configuration, path-style, its default 8 MiB parts.
cat >"$SCRATCH/aws.cfg" <<EOF
[default]
region = us-east-1
s3 =
  addressing_style = path
  multipart_chunksize = 8MB
  multipart_threshold = 8MB
  max_concurrent_requests = 10
EOF
export AWS_CONFIG_FILE="$SCRATCH/aws.cfg" AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_ACCESS_KEY_ID="$TENANT_KEY" AWS_SECRET_ACCESS_KEY="$TENANT_SECRET"
unset AWS_CA_BUNDLE AWS_PROFILE AWS_ENDPOINT_URL AWS_SESSION_TOKEN

truncate -s "$SIZE" "$SCRATCH/src.bin"
truncate -s "$SINGLE" "$SCRATCH/single.bin"

kib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# Checks that stdin is exactly $1 zero bytes.
check_zeros() {
  local msg
  msg="$(cmp - /dev/zero 2>&1 || true)"
  if [[ "$msg" != *"EOF on - after byte $1,"* && "$msg" != *"EOF on - after byte $1" ]]; then
    echo "download check failed: $msg" >&2
    return 1
  fi
}
export -f check_zeros

RESULTS=()
# Runs one step ($1 label, $2 bytes moved, rest: the command) against blobseal pid $BS_PID.
step() {
  local label="$1" bytes="$2" t0 t1 peak
  shift 2
  echo 5 >"/proc/$BS_PID/clear_refs"
  : >"$SCRATCH/samples"
  t0="$(date +%s.%N)"
  if ! timeout "$LIMIT" bash -c "$*" 2>"$SCRATCH/step.err"; then
    # Record the failure and go on: the other steps and backends are still worth measuring.
    RESULTS+=("$(printf '%-18s %-28s FAILED: %s' "$NAME" "$label" "$(tail -n 1 "$SCRATCH/step.err")")")
    echo "  ${RESULTS[-1]}" >&2
    return 0
  fi
  t1="$(date +%s.%N)"
  peak="$(hwm_kb "$BS_PID")"
  ((peak > MAX_KB)) && MAX_KB="$peak"
  local smax slast
  smax="$(awk 'm < $1 { m = $1 } END { print m + 0 }' "$SCRATCH/samples")"
  slast="$(tail -n 1 "$SCRATCH/samples" | awk '{ print $1 + 0 }')"
  RESULTS+=("$(printf '%-18s %-28s %9s %8.1f %8.1f  %12s %12s %12s' "$NAME" "$label" "$((bytes >> 20)) MiB" \
    "$(echo "$t1 - $t0" | bc)" "$(echo "$bytes / ($t1 - $t0) / 1000000" | bc -l)" \
    "$(kib "$peak")" "$(kib "$smax")" "$(kib "$slast")")")
  echo "  ${RESULTS[-1]}" >&2
}

run_backend() {
  local kind="$1" port dir="$SCRATCH/$1"
  mkdir -p "$dir"
  port="$(free_port)"
  local -a cmd=("$BLOBSEAL_BIN" serve)
  local -a envs=(BLOBSEAL_LISTEN="127.0.0.1:$port")
  if [[ "$kind" == fs ]]; then
    NAME="blobseal→fs"
    envs+=(BLOBSEAL_DATA_DIR="$dir/data" BLOBSEAL_ACCESS_KEY_ID="$TENANT_KEY" BLOBSEAL_SECRET_ACCESS_KEY="$TENANT_SECRET")
  else
    NAME="blobseal→s3s-fs"
    local s3port
    s3port="$(free_port)"
    mkdir -p "$dir/s3s-fs"
    RUST_LOG=warn "$S3S_FS_BIN" --host 127.0.0.1 --port "$s3port" --access-key "$S3FS_KEY" \
      --secret-key "$S3FS_SECRET" "$dir/s3s-fs" >"$dir/s3s-fs.log" 2>&1 &
    PIDS+=($!)
    wait_for "(: </dev/tcp/127.0.0.1/$s3port)"
    cat >"$dir/blobseal.yaml" <<EOF
listen: 127.0.0.1:$port
key_provider: { kind: local, keyring: $dir/keyring.json, master_key_file: $dir/master.key }
backends:
  - name: s3fs
    kind: s3
    endpoint: http://127.0.0.1:$s3port
    region: us-east-1
    force_path_style: true
    credentials:
      access_key_id: $S3FS_KEY
      secret_access_key_env: BENCH_BACKEND_SECRET
tenants:
  - name: bench
    default_backend: s3fs
    bucket_prefix: px-
    access_keys:
      - id: $TENANT_KEY
        secret_env: BENCH_TENANT_SECRET
EOF
    cmd+=(--config "$dir/blobseal.yaml")
    envs+=(BENCH_BACKEND_SECRET="$S3FS_SECRET" BENCH_TENANT_SECRET="$TENANT_SECRET")
  fi
  env -u RUST_LOG "${envs[@]}" /usr/bin/time -v -o "$dir/time.txt" "${cmd[@]}" >"$dir/blobseal.log" 2>&1 &
  local time_pid=$!
  PIDS+=("$time_pid")
  wait_for "grep -q 'listening on' '$dir/blobseal.log'"
  BS_PID="$(pgrep -P "$time_pid" | head -n 1)"
  # VmRSS once a second while blobseal lives (bounded by its life and by the step limits).
  (while [[ -e "/proc/$BS_PID/status" ]]; do
    awk '/^VmRSS:/ { print $2 }' "/proc/$BS_PID/status" >>"$SCRATCH/samples" 2>/dev/null || break
    sleep 1
  done) &
  PIDS+=($!)
  local ep="http://127.0.0.1:$port" idle
  idle="$(awk '/^VmRSS:/ { print $2 }' "/proc/$BS_PID/status")"
  MAX_KB="$(hwm_kb "$BS_PID")"
  echo "$NAME (pid $BS_PID, idle RSS $(kib "$idle")): $SIZE_TEXT" >&2
  RESULTS+=("$(printf '%-18s %-28s %9s %8s %8s  %12s' "$NAME" "idle" "-" "-" "-" "$(kib "$idle")")")
  aws --endpoint-url "$ep" s3 mb s3://mem >/dev/null
  local up="aws s3 cp up (1 PUT)"
  ((SIZE <= 8 << 20)) || up="aws s3 cp up (MPU 8 MiB)"
  step "$up" "$SIZE" \
    "aws --endpoint-url $ep s3 cp --only-show-errors '$SCRATCH/src.bin' s3://mem/huge"
  step "aws s3 cp down (ranged)" "$SIZE" \
    "set -o pipefail; aws --endpoint-url $ep s3 cp --only-show-errors s3://mem/huge - | check_zeros $SIZE"
  step "aws s3api get-object (1 GET)" "$SIZE" \
    "set -o pipefail; aws --endpoint-url $ep s3api get-object --bucket mem --key huge /dev/fd/3 3>&1 >/dev/null | check_zeros $SIZE"
  aws --endpoint-url "$ep" s3 rm --only-show-errors s3://mem/huge || true
  step "aws s3api put-object (1 PUT)" "$SINGLE" \
    "aws --endpoint-url $ep s3api put-object --bucket mem --key single --body '$SCRATCH/single.bin' >/dev/null"
  aws --endpoint-url "$ep" s3 rm --only-show-errors s3://mem/single || true
  kill -TERM "$BS_PID"
  wait "$time_pid" || true
  local last
  last="$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$dir/time.txt")"
  RESULTS+=("$(printf '%-18s %-28s %9s %8s %8s  %12s' "$NAME" "peak over the whole run" "-" "-" "-" "$(kib "$MAX_KB")")")
  # clear_refs also resets what the kernel reports at exit, so this covers the last step only:
  # an independent check of that step's /proc figure.
  RESULTS+=("$(printf '%-18s %-28s %9s %8s %8s  %12s' "$NAME" "/usr/bin/time -v, last step" "-" "-" "-" \
    "$(kib "$last")")")
  # Stop this backend's s3s-fs and sampler before the next backend; free the disk now.
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
  [[ -n "${BLOBSEAL_BENCH_KEEP:-}" ]] || rm -rf "$dir"
}

START=$(date +%s)
for b in $BACKENDS; do
  case "$b" in
    fs | s3) run_backend "$b" ;;
    *) echo "unknown backend $b (fs, s3)" >&2; exit 1 ;;
  esac
done

echo
echo "command: BLOBSEAL_BENCH_SIZE=$SIZE_TEXT BLOBSEAL_BENCH_BACKENDS=\"$BACKENDS\" bash benches/memory_cli.sh"
echo "client:  $(aws --version 2>&1); binary $BLOBSEAL_BIN; $(nproc) cores; took $(($(date +%s) - START)) s"
echo
printf '%-16s %-28s %9s %8s %8s  %12s %12s %12s\n' target step bytes s MB/s "peak VmHWM" "max sample" "last sample"
printf '%s\n' "${RESULTS[@]}"
echo "(peak VmHWM: blobseal's peak RSS during that step alone; samples: VmRSS once a second; goal ≤ 64 MiB)"
