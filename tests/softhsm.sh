#!/usr/bin/env bash
# Creates a fresh SoftHSM2 token for the pkcs11 tests (tests/pkcs11_real.rs) and prints its config path.
#
#   bash tests/softhsm.sh DIR      -> stdout: SOFTHSM2_CONF=DIR/softhsm2.conf
#
# Installs softhsm2 with apt-get when its module (/usr/lib/softhsm/libsofthsm2.so) is missing, then wipes
# DIR/tokens and initialises one token there: label "blobseal", user PIN "1234", SO PIN "5678". Idempotent:
# running it again on the same DIR gives a fresh, empty token. Progress goes to stderr; stdout carries only
# the SOFTHSM2_CONF line so callers can parse it.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
MODULE=/usr/lib/softhsm/libsofthsm2.so
DIR="$(mkdir -p "$1" && cd "$1" && pwd)"

if [[ ! -f "$MODULE" ]] || ! command -v softhsm2-util >/dev/null 2>&1; then
  echo "softhsm.sh: installing softhsm2 (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  # A stale package list fails the first install: refresh it once and retry (as tests/run does).
  apt-get install -y softhsm2 >"$DIR/apt.log" 2>&1 \
    || { apt-get update >>"$DIR/apt.log" 2>&1 && apt-get install -y softhsm2 >>"$DIR/apt.log" 2>&1; } \
    || { tail -20 "$DIR/apt.log" >&2; echo "softhsm.sh: FAILED to install softhsm2" >&2; exit 1; }
fi

# A fresh token every time: tests count on root key numbering starting at 1.
rm -rf "$DIR/tokens"
mkdir -p "$DIR/tokens"
chmod 0700 "$DIR/tokens"
CONF="$DIR/softhsm2.conf"
cat >"$CONF" <<EOF
directories.tokendir = $DIR/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF

SOFTHSM2_CONF="$CONF" softhsm2-util --init-token --free --label blobseal --pin 1234 --so-pin 5678 >&2
echo "SOFTHSM2_CONF=$CONF"
