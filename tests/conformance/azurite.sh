#!/usr/bin/env bash
# Runs Azurite's own blob test suites (mocha + TypeScript, in "live mode") against blobseal's Azure Blob front end.
# A developer tool, not part of CI: results are recorded in docs/CONFORMANCE.md. Nothing from Azurite is committed.
#
#   bash tests/conformance/azurite.sh                          clone Azure/Azurite into the cache, run against blobseal
#   bash tests/conformance/azurite.sh --src /path/to/Azurite   take the suite from a checkout or a bare git dir instead
#   bash tests/conformance/azurite.sh --target azurite         baseline: the same tests against a plain Azurite 3.35 (npm)
#   bash tests/conformance/azurite.sh --target azurite-src     baseline: against Azurite run from the suite's own sources
#   bash tests/conformance/azurite.sh --suite sas --suite blob only these suites (names below)
#   bash tests/conformance/azurite.sh -- --grep 'tags'         extra arguments after `--` go to mocha
#
# Live mode (AZURITE_LIVE_TEST_CONNECTION_STRING, in Azurite since 141ac90b, 2026-08) makes the suites talk to the
# endpoint in a connection string instead of starting an in-process Azurite. Only the blockblob, container and blob
# suites build their URLs from it; service, authentication, specialnaming and sas still use
# http://<stub host>:<stub port>/devstoreaccount1 and Azurite's built-in devstoreaccount1 key. So the script
#   - points the live-mode stub server's host/port at the target (one sed in the cache copy of
#     tests/BlobTestServerFactory.ts), and
#   - starts blobseal with the account name devstoreaccount1 and the well-known emulator key, so both kinds of test
#     address the same account.
# The suite is fetched at run time into $CACHE/azurite-src (pinned to $AZURITE_REF) with its npm dependencies
# (`npm ci --ignore-scripts`); TypeScript runs through ts-node in transpile-only mode.
# To take a newer suite, pass --ref (or delete $CACHE/azurite-src). Azurite needs no other service; the baselines
# (--target azurite / azurite-src) keep everything in memory.
# Output: $OUT (default $CACHE/azurite-<target>): <suite>.json (mocha's JSON report), <suite>.log, summary.txt,
# failures.txt ("suite | test | error"), and blobseal.log or azurite.log.
set -euo pipefail

usage() { echo "usage: $0 [--src DIR] [--ref COMMIT] [--target blobseal|azurite|azurite-src] [--suite NAME]... [-- MOCHA_ARGS...]" >&2; exit 2; }
ALL_SUITES=(blockblob container blob service authentication specialnaming sas)
suite_file() {
  case "$1" in
    blockblob|container|blob|service) echo "tests/blob/apis/$1.test.ts" ;;
    authentication|specialnaming|sas) echo "tests/blob/$1.test.ts" ;;
    *) echo "unknown suite $1 (one of: ${ALL_SUITES[*]})" >&2; exit 2 ;;
  esac
}
SRC=""
# The newest Azure/Azurite commit this was measured with (live mode needs 141ac90b or later).
AZURITE_REF="${AZURITE_REF:-9074bea3528e23e50f5a1d576e13072d6c94d17c}"
TARGET=blobseal
SUITES=()
EXTRA=()
while (($#)); do
  case "$1" in
    --src) SRC="${2:-}"; [[ -n "$SRC" ]] || usage; shift 2 ;;
    --ref) AZURITE_REF="${2:-}"; [[ -n "$AZURITE_REF" ]] || usage; shift 2 ;;
    --target) TARGET="${2:-}"; shift 2 ;;
    --suite) SUITES+=("${2:-}"); shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) usage ;;
    *) usage ;;
  esac
done
[[ "$TARGET" == blobseal || "$TARGET" == azurite || "$TARGET" == azurite-src ]] || usage
((${#SUITES[@]})) || SUITES=("${ALL_SUITES[@]}")
for s in "${SUITES[@]}"; do suite_file "$s" >/dev/null; done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${BLOBSEAL_TEST_CACHE:-$HOME/.cache/blobseal-test}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
OUT="${OUT:-$CACHE/azurite-$TARGET}"
AZ_SRC="$CACHE/azurite-src"
SUITE_TIMEOUT="${SUITE_TIMEOUT:-900}"   # seconds for one suite file
TEST_TIMEOUT="${TEST_TIMEOUT:-60000}"   # milliseconds for one test
rm -rf "$OUT"; mkdir -p "$OUT"
WORK="$(mktemp -d)"
log() { printf '[azurite-suite] %s\n' "$*"; }

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port, pid, what[, tenths of a second]
  for _ in $(seq 1 "${4:-300}"); do
    kill -0 "$2" 2>/dev/null || { log "$3 exited before serving"; return 1; }
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "$3 not serving on $1"; return 1
}

# --- the suite ----------------------------------------------------------------------------------------------------
# Where the suite comes from: a git repository (a checkout or a bare one) at $AZURITE_REF, or a plain copy.
# Without --src, the cached tree is used while it is at $AZURITE_REF; otherwise Azure/Azurite is cloned.
WANT="$AZURITE_REF"
if [[ -n "$SRC" || "$(cat "$AZ_SRC/.azurite-ref" 2>/dev/null)" != "$WANT" ]]; then
  if [[ -z "$SRC" ]]; then
    SRC="$CACHE/azurite-git"
    if [[ ! -d "$SRC" ]]; then
      log "cloning Azure/Azurite into $SRC"
      git clone --quiet --bare https://github.com/Azure/Azurite "$SRC"
    fi
  fi
  GIT_DIR=""
  if [[ -e "$SRC/.git" ]]; then GIT_DIR="$(git -C "$SRC" rev-parse --absolute-git-dir)"    # a checkout
  elif [[ -f "$SRC/HEAD" && -d "$SRC/objects" ]]; then GIT_DIR="$(cd "$SRC" && pwd)"; fi   # a bare repository
  [[ -n "$GIT_DIR" ]] || WANT="copy:$(cd "$SRC" && pwd)"
fi
if [[ "$(cat "$AZ_SRC/.azurite-ref" 2>/dev/null)" != "$WANT" ]]; then
  rm -rf "$AZ_SRC"; mkdir -p "$AZ_SRC"
  if [[ -n "$GIT_DIR" ]]; then
    log "Azurite $AZURITE_REF from $GIT_DIR"
    git --git-dir="$GIT_DIR" archive "$AZURITE_REF" | tar -x -C "$AZ_SRC"
  else
    log "Azurite sources copied from $SRC (taken as they are, --ref ignored)"
    cp -a "$SRC/." "$AZ_SRC/"; rm -rf "$AZ_SRC/node_modules" "$AZ_SRC/.git"
  fi
  echo "$WANT" >"$AZ_SRC/.azurite-ref"
fi
if ! grep -q AZURITE_LIVE_TEST_CONNECTION_STRING "$AZ_SRC/tests/testutils.ts"; then
  rm -f "$AZ_SRC/.azurite-ref"
  log "this Azurite has no live test mode (needs 141ac90b or later)"; exit 2
fi
LOCK_SUM="$(sha256sum "$AZ_SRC/package-lock.json" | cut -d' ' -f1)"
if [[ ! -x "$AZ_SRC/node_modules/.bin/mocha" || "$(cat "$AZ_SRC/.lock-sum" 2>/dev/null)" != "$LOCK_SUM" ]]; then
  log "npm ci in $AZ_SRC"
  (cd "$AZ_SRC" && timeout 1200 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$LOCK_SUM" >"$AZ_SRC/.lock-sum"
fi
# The live-mode stub server reports host "live.azure", port 443; the suites not yet converted to live mode build
# their URL from it. Let the environment name the target instead.
sed -i 's|public readonly config = { host: "live.azure", port: 443 };|public readonly config = { host: process.env.BLOBSEAL_LIVE_HOST ?? "live.azure", port: Number(process.env.BLOBSEAL_LIVE_PORT ?? 443) };|' \
  "$AZ_SRC/tests/BlobTestServerFactory.ts"
grep -q BLOBSEAL_LIVE_HOST "$AZ_SRC/tests/BlobTestServerFactory.ts" \
  || { log "could not point the live-mode stub at the target (tests/BlobTestServerFactory.ts changed?)"; exit 2; }

# --- the target ---------------------------------------------------------------------------------------------------
ACCOUNT=devstoreaccount1
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
PORT="$(free_port)"
if [[ "$TARGET" == blobseal ]]; then
  if [[ -z "${BLOBSEAL_BIN:-}" ]]; then
    log "cargo build (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --quiet --bin blobseal)
    BLOBSEAL_BIN="$CARGO_TARGET_DIR/debug/blobseal"
  fi
  mkdir -p "$WORK/data"
  BLOBSEAL_DATA_DIR="$WORK/data" BLOBSEAL_LISTEN="127.0.0.1:$(free_port)" BLOBSEAL_AZURE_LISTEN="127.0.0.1:$PORT" \
    BLOBSEAL_AZURE_ACCOUNT="$ACCOUNT" BLOBSEAL_AZURE_ACCOUNT_KEY="$KEY" RUST_LOG="${RUST_LOG:-info}" \
    "$BLOBSEAL_BIN" serve >"$OUT/blobseal.log" 2>&1 &
  PIDS+=($!); wait_port "$PORT" "$!" blobseal
elif [[ "$TARGET" == azurite-src ]]; then
  # Azurite at the suite's own commit, through ts-node (a few seconds to start).
  (cd "$WORK" && TS_NODE_TRANSPILE_ONLY=1 TS_NODE_COMPILER_OPTIONS='{"rootDir":"."}' \
    TS_NODE_PROJECT="$AZ_SRC/tsconfig.json" exec node -r "$AZ_SRC/node_modules/ts-node/register" \
    "$AZ_SRC/src/blob/main.ts" --blobHost 127.0.0.1 --blobPort "$PORT" \
    --inMemoryPersistence --skipApiVersionCheck --loose --disableTelemetry --silent) >"$OUT/azurite.log" 2>&1 &
  PIDS+=($!); wait_port "$PORT" "$!" azurite 1200
else
  AZURITE_NPM="$CACHE/azurite"
  if [[ ! -x "$AZURITE_NPM/node_modules/.bin/azurite-blob" ]]; then
    log "npm install azurite@3.35 in $AZURITE_NPM"
    mkdir -p "$AZURITE_NPM"
    (cd "$AZURITE_NPM" && npm install --no-audit --no-fund --loglevel=error azurite@3.35)
  fi
  (cd "$WORK" && exec "$AZURITE_NPM/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$PORT" \
    --inMemoryPersistence --skipApiVersionCheck --loose --disableTelemetry --silent) >"$OUT/azurite.log" 2>&1 &
  PIDS+=($!); wait_port "$PORT" "$!" azurite
fi
log "$TARGET on 127.0.0.1:$PORT, account $ACCOUNT"

# --- the suites ---------------------------------------------------------------------------------------------------
export AZURITE_LIVE_TEST_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=$ACCOUNT;AccountKey=$KEY;BlobEndpoint=http://127.0.0.1:$PORT/$ACCOUNT;"
export BLOBSEAL_LIVE_HOST=127.0.0.1 BLOBSEAL_LIVE_PORT="$PORT"
# ts-node with the suite's TypeScript 6 wants rootDir set; transpile-only skips type checking all of Azurite.
export TS_NODE_TRANSPILE_ONLY=1 TS_NODE_COMPILER_OPTIONS='{"rootDir":"."}'
cd "$AZ_SRC"
RC=0
for s in "${SUITES[@]}"; do
  log "mocha $(suite_file "$s")"
  timeout "$SUITE_TIMEOUT" node_modules/.bin/mocha --require ts-node/register --timeout "$TEST_TIMEOUT" --exit \
    --reporter json --reporter-option "output=$OUT/$s.json" "${EXTRA[@]}" "$(suite_file "$s")" \
    >"$OUT/$s.log" 2>&1 || RC=1
done
python3 - "$OUT" "${SUITES[@]}" <<'EOF' | tee "$OUT/summary.txt"
import json, sys, os
out, suites = sys.argv[1], sys.argv[2:]
tot = [0, 0, 0]
fails = []
print(f"{'suite':<15}{'passed':>8}{'failed':>8}{'pending':>8}")
for s in suites:
    try:
        d = json.load(open(os.path.join(out, s + ".json")))
    except (OSError, ValueError):
        print(f"{s:<15}  no report (crashed or timed out: see {s}.log)")
        continue
    st = d["stats"]
    row = [st["passes"], st["failures"], st["pending"]]
    tot = [a + b for a, b in zip(tot, row)]
    print(f"{s:<15}{row[0]:>8}{row[1]:>8}{row[2]:>8}")
    for t in d["failures"]:
        msg = " ".join(str(t["err"].get("message", "")).split())[:200]
        fails.append(f"{s} | {t['fullTitle']} | {msg}")
print(f"{'total':<15}{tot[0]:>8}{tot[1]:>8}{tot[2]:>8}")
with open(os.path.join(out, "failures.txt"), "w") as f:
    f.write("".join(x + "\n" for x in fails))
EOF
log "failures listed in $OUT/failures.txt ($(wc -l <"$OUT/failures.txt")); results in $OUT"
exit "$RC"
