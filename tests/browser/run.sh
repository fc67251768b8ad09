#!/usr/bin/env bash
# The portal in a real browser: starts estd on a free port with a fresh data directory, adds
# a member and a non-member, and runs portal.mjs (playwright-core + Debian's Chromium).
# Screenshots and downloads go to target/browser/. Ends with "N passed, M failed".
set -u
cd "$(dirname "$0")"
HERE=$(pwd)
ROOT=$(cd ../.. && pwd)
ESTD_BIN=${ESTD_BIN:-$ROOT/target/debug/estd}
[ -x "$ESTD_BIN" ] || (cd "$ROOT" && cargo build --quiet --bin estd)
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --silent

WORK=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
export ESTD_DATA_DIR="$WORK" ESTD_LISTEN=127.0.0.1:0 ESTD_REVOCATION_LISTEN=127.0.0.1:0 ESTD_METRICS_LISTEN=127.0.0.1:0 ESTD_LOG_FILTER=warn ESTD_EST_TEMPLATES_DIR="$ROOT/conf/templates"
"$ESTD_BIN" serve >"$WORK/stdout" 2>"$WORK/stderr" &
PID=$!
PORT=""
for _ in $(seq 1 100); do
  PORT=$(sed -n 's#^estd listening on https://127.0.0.1:\([0-9]*\)/.*#\1#p' "$WORK/stdout")
  [ -n "$PORT" ] && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$PORT" ] || { echo "estd did not start"; cat "$WORK/stderr"; echo "0 passed, 1 failed"; exit 1; }
echo 'Joe-password-1' | "$ESTD_BIN" user add joe --group est-users --group mdm-connectors --password-stdin >/dev/null
echo 'Outsider-pw-1' | "$ESTD_BIN" user add outsider --group contractors --password-stdin >/dev/null

ESTD_URL="https://localhost:$PORT" ESTD_CA="$WORK/certs/root-ca.pem" OUT_DIR="$ROOT/target/browser" \
  ESTD_ADMIN_PASSWORD="$(cat "$WORK/admin-password")" \
  node "$HERE/portal.mjs"
