#!/usr/bin/env bash
# What blobseal's key cache saves (issue 5): 4 KiB PUT and GET latency, and the KMS and key-store requests
# behind them, with the cache on and off, in one run.
#
#   bash benches/keys_cache.sh          about 1 minute once built
#
# Three release `blobseal serve` processes, all with one moto_server as their S3 backend (the key stores live
# there too), each with its own tenant and bucket prefix:
#   kms-ttl60    key provider aws-kms on a second moto_server (its own), key_cache: {ttl_seconds: 60}
#   kms-ttl0     key provider aws-kms on a third moto_server (its own), key_cache: {ttl_seconds: 0} (no cache)
#   local-ttl60  key provider local (keyring file), key_cache: {ttl_seconds: 60}: the baseline
# Each KMS has its own moto so that its request log counts one blobseal's KMS calls (moto logs one line per
# request; every KMS call is a POST). The client (benches/keys_cache.py, boto3 from the test venv) interleaves
# the three targets request by request: 10 warm-up PUTs each, then BLOBSEAL_BENCH_SMALL_N (300) PUTs and 300
# GETs each, every loop bounded by BLOBSEAL_BENCH_BUDGET_S (90 s); the whole client by `timeout` (240 s).
#
# Knobs: BLOBSEAL_BENCH_SMALL_N (300), BLOBSEAL_BENCH_BUDGET_S (90), BLOBSEAL_BIN (default: the release
# build), BLOBSEAL_TEST_CACHE (~/.cache/blobseal-test; its venv comes from tests/run), BLOBSEAL_BENCH_KEEP=1
# (keep the scratch directory with every server's log).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${BLOBSEAL_TEST_CACHE:-$HOME/.cache/blobseal-test}"
VENV="$CACHE/venv"
N="${BLOBSEAL_BENCH_SMALL_N:-300}"
BUDGET="${BLOBSEAL_BENCH_BUDGET_S:-90}"

if [[ ! -x "$VENV/bin/moto_server" || ! -x "$VENV/bin/python" ]]; then
  echo "no moto_server/boto3 venv at $VENV: run tests/run once (it creates it)" >&2
  exit 1
fi

if [[ -z "${BLOBSEAL_BIN:-}" ]]; then
  (cd "$ROOT" && cargo build --release --bin blobseal >&2)
  BLOBSEAL_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/blobseal"
fi

SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/blobseal-keycache-XXXXXX")"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  # moto takes > 2 s to stop after SIGTERM (FACTS.md): wait, so nothing outlives the script.
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ -z "${BLOBSEAL_BENCH_KEEP:-}" ]]; then rm -rf "$SCRATCH"; else echo "kept $SCRATCH" >&2; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits (at most 30 s) until $1 (a command string) succeeds.
wait_for() {
  local i
  for i in $(seq 300); do
    if eval "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for: $1" >&2
  return 1
}

# Starts a moto_server; sets MOTO_PORT. $1: log file.
start_moto() {
  MOTO_PORT="$(free_port)"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$1" 2>&1 &
  PIDS+=($!)
  wait_for "(: </dev/tcp/127.0.0.1/$MOTO_PORT)"
}

MOTO_KEY=bench-moto-key
MOTO_SECRET=bench-moto-secret
start_moto "$SCRATCH/moto-s3.log"
S3_PORT="$MOTO_PORT"

TARGETS="["
# Starts one blobseal; $1 name, $2 bucket prefix, $3 ttl, $4 provider (kms|local).
start_blobseal() {
  local name="$1" prefix="$2" ttl="$3" provider="$4" port dir="$SCRATCH/$1" kms_log=null
  mkdir -p "$dir"
  port="$(free_port)"
  local ak secret
  ak="BENCH$(echo "$name" | tr -dc 'a-z0-9' | tr 'a-z' 'A-Z')"
  secret="$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  {
    echo "listen: 127.0.0.1:$port"
    if [[ "$provider" == kms ]]; then
      start_moto "$dir/moto-kms.log"
      kms_log="\"$dir/moto-kms.log\""
      echo "key_provider:"
      echo "  kind: aws-kms"
      echo "  region: us-east-1"
      echo "  endpoint: http://127.0.0.1:$MOTO_PORT"
      echo "  credentials: { access_key_id: bench-kms-key, secret_access_key_env: BENCH_KMS_SECRET }"
    else
      echo "key_provider: { kind: local, keyring: $dir/keys/keyring.json, master_key_file: $dir/keys/master.key }"
    fi
    echo "key_cache: { ttl_seconds: $ttl }"
    cat <<EOF
backends:
  - name: moto
    kind: s3
    endpoint: http://127.0.0.1:$S3_PORT
    region: us-east-1
    force_path_style: true
    credentials: { access_key_id: $MOTO_KEY, secret_access_key_env: BENCH_MOTO_SECRET }
tenants:
  - name: $(echo "$name" | tr -dc 'a-z0-9-')
    default_backend: moto
    bucket_prefix: $prefix
    access_keys: [{ id: $ak, secret_env: BENCH_TENANT_SECRET }]
EOF
  } >"$dir/blobseal.yaml"
  # The access log (info) stays on: that is how a deployment runs it.
  env -u RUST_LOG BENCH_KMS_SECRET=bench-kms-secret BENCH_MOTO_SECRET="$MOTO_SECRET" \
    BENCH_TENANT_SECRET="$secret" BLOBSEAL_DATA_DIR="$dir/data" \
    "$BLOBSEAL_BIN" serve --config "$dir/blobseal.yaml" >"$dir/blobseal.log" 2>&1 &
  PIDS+=($!)
  wait_for "grep -q 'listening on' '$dir/blobseal.log'" || { tail -n 20 "$dir/blobseal.log" >&2; return 1; }
  [[ "$TARGETS" == "[" ]] || TARGETS+=","
  TARGETS+="{\"name\": \"$name\", \"endpoint\": \"http://127.0.0.1:$port\", \"access_key\": \"$ak\","
  TARGETS+=" \"secret\": \"$secret\", \"kms_log\": $kms_log, \"s3_log\": \"$SCRATCH/moto-s3.log\","
  TARGETS+=" \"key_store\": \"${prefix}blobseal-keys\"}"
}

START=$(date +%s)
start_blobseal kms-ttl60 kca- 60 kms
start_blobseal kms-ttl0 kcb- 0 kms
start_blobseal local-ttl60 kcc- 60 local
echo "$TARGETS]" >"$SCRATCH/targets.json"
chmod 600 "$SCRATCH/targets.json"

echo "+ keys_cache.py: $N PUTs and $N GETs of 4 KiB per target, interleaved" >&2
unset AWS_CA_BUNDLE AWS_PROFILE AWS_ENDPOINT_URL AWS_SESSION_TOKEN AWS_CONFIG_FILE
AWS_SHARED_CREDENTIALS_FILE=/dev/null timeout 240 "$VENV/bin/python" "$ROOT/benches/keys_cache.py" \
  "$SCRATCH/targets.json" -n "$N" --budget "$BUDGET" --json-out "$SCRATCH/results.json" \
  --ratio kms-ttl0 kms-ttl60 | tee "$SCRATCH/report.txt"

echo
for t in kms-ttl60 kms-ttl0; do
  echo "$t: $(grep -c '"POST ' "$SCRATCH/$t/moto-kms.log" || true) KMS requests over the whole run (setup included)"
done
echo "command: BLOBSEAL_BENCH_SMALL_N=$N bash benches/keys_cache.sh"
echo "binary $BLOBSEAL_BIN; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); took $(($(date +%s) - START)) s"
echo "(KMS req: POST lines the target's own KMS moto logged during the phase; store req: request lines the S3"
echo " moto logged for the target's key-store bucket during the phase; warm-up and bucket creation excluded)"
