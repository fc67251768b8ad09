# Shared by the interop scripts (sourced from the repository root): build estd unless ESTD_BIN
# is given, a work directory removed on exit, PASS/FAIL counting, and `start_estd`, which
# serves the shipped templates, `manual` (manual approval) and any the script wrote to
# $WORK/templates, on a free local port with a fresh data directory.
# After it: PID, PORT, RPORT (CRL and OCSP), MPORT (metrics), SPORT (SCEP over plain HTTP),
# PASSWORD (admin's), ROOTCA.
ROOT=$(pwd)
if [ -z "${ESTD_BIN:-}" ]; then
  cargo build --quiet --bin estd || { echo "cargo build failed"; echo "0 passed, 1 failed"; exit 1; }
  ESTD_BIN="$ROOT/target/debug/estd"
fi
# estd reads every ESTD_* variable as a setting and refuses unknown ones: keep this one to
# the scripts
export -n ESTD_BIN

WORK=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/templates"
cp "$ROOT"/conf/templates/*.toml "$WORK/templates/"
# the shipped templates; the shipped manual.toml replaced by one that asks clients to retry
# after 5 s instead of 60
cat >"$WORK/templates/manual.toml" <<'TOML'
name = "manual"
key_types = ["ec-p256"]
validity_days = 30
approval = "manual"
retry_after_secs = 5
TOML

passed=0; failed=0
pass() { echo "PASS  $1"; passed=$((passed + 1)); }
fail() { echo "FAIL  $1${2:+ — $2}"; failed=$((failed + 1)); }
check() { local name=$1; shift; if "$@" >/dev/null 2>&1; then pass "$name"; else fail "$name"; fi; }
need_tools() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool"; echo "0 passed, 1 failed"; exit 1; }
  done
}

# port 0: the real port is read from estd's first line
start_estd() {
  export ESTD_DATA_DIR="$WORK/data" ESTD_LISTEN=127.0.0.1:0 ESTD_REVOCATION_LISTEN=127.0.0.1:0 ESTD_METRICS_LISTEN=127.0.0.1:0 ESTD_SCEP_LISTEN=127.0.0.1:0 ESTD_LOG_FILTER=warn ESTD_EST_TEMPLATES_DIR="$WORK/templates"
  mkdir -p "$ESTD_DATA_DIR"
  "$ESTD_BIN" --config "$ROOT/conf/estd.toml" serve >"$WORK/stdout" 2>"$WORK/stderr" &
  PID=$!
  PORT=""
  for _ in $(seq 1 100); do
    PORT=$(sed -n 's#^estd listening on https://127.0.0.1:\([0-9]*\)/.*#\1#p' "$WORK/stdout")
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$PORT" ]; then
    echo "estd did not start:"; cat "$WORK/stderr"; echo "0 passed, 1 failed"; exit 1
  fi
  RPORT=$(sed -n 's#^estd revocation on http://127.0.0.1:\([0-9]*\)/.*#\1#p' "$WORK/stdout")
  MPORT=$(sed -n 's#^estd metrics on http://127.0.0.1:\([0-9]*\)/.*#\1#p' "$WORK/stdout")
  SPORT=$(sed -n 's#^estd scep on http://127.0.0.1:\([0-9]*\)/.*#\1#p' "$WORK/stdout")
  PASSWORD=$(cat "$ESTD_DATA_DIR/admin-password")
  ROOTCA="$ESTD_DATA_DIR/certs/root-ca.pem"
  echo "estd on port $PORT, data in $ESTD_DATA_DIR"
}
