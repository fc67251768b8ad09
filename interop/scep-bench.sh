#!/usr/bin/env bash
# SCEP enrollments per second and server CPU per enrollment against EST, same server, same
# method: one release `estd serve` (SQLite, synchronous = full, the dev P-256 CA and its
# RSA-2048 SCEP RA, log level info as shipped) with a template `scepbench` (RSA-2048 keys,
# the static `scep_challenge`, cn_must_match_user = false) and the [scep] plain-HTTP
# listener; GetCACert fetched with `estd client scep cacert`; then, interleaved round by
# round (ROUNDS rounds, the cases in turn, SECS seconds each, CONNS concurrent clients):
#   scep-http   `estd client scep bench`, PKCSReq over the plain-HTTP listener, AES-128
#   scep-https  the same over the TLS listener (a new TLS 1.3 connection per enrollment)
#   est         `estd client bench`: /simpleenroll with RSA-2048 CSRs, HTTP Basic as admin,
#               a new TLS 1.3 connection per enrollment
# Each run reports the server's utime + stime from /proc/PID/stat before and after its
# measured window (--pid), divided by its enrollments. Prints each run, the medians and the
# SCEP/EST ratios. Keys and CSRs are made before each clock starts (KEYS per run).
#
#   interop/scep-bench.sh                 # SECS=6 ROUNDS=3 CONNS=8 KEYS=8
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${SECS:-6}; ROUNDS=${ROUNDS:-3}; CONNS=${CONNS:-8}; KEYS=${KEYS:-8}
CASES="scep-http scep-https est"
cargo build --quiet --release --bin estd
ESTD="$ROOT/target/release/estd"
WORK=$(mktemp -d); PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT

mkdir -p "$WORK/templates" "$WORK/data"
cp "$ROOT"/conf/templates/*.toml "$WORK/templates/"
export SCEP_CHALLENGE=Bench-Static-Secret-1
cat >"$WORK/templates/scepbench.toml" <<TOML
name = "scepbench"
description = "SCEP load: the static challenge, any CN"
key_types = ["rsa-2048"]
validity_days = 30
cn_must_match_user = false
scep_challenge = "$SCEP_CHALLENGE"
TOML
ESTD_DATA_DIR="$WORK/data" ESTD_LISTEN=127.0.0.1:0 ESTD_REVOCATION_LISTEN=127.0.0.1:0 ESTD_METRICS_LISTEN=127.0.0.1:0 \
  ESTD_SCEP_LISTEN=127.0.0.1:0 ESTD_EST_TEMPLATES_DIR="$WORK/templates" \
  "$ESTD" serve >"$WORK/out" 2>"$WORK/err" &
PID=$!
PORT=""
for _ in $(seq 1 300); do
  PORT=$(sed -n 's#^estd listening on https://127.0.0.1:\([0-9]*\)/.*#\1#p' "$WORK/out")
  SPORT=$(sed -n 's#^estd scep on http://127.0.0.1:\([0-9]*\)/.*#\1#p' "$WORK/out")
  [ -n "$PORT" ] && [ -n "$SPORT" ] && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$PORT" ] && [ -n "$SPORT" ] || { echo "estd did not start: $(cat "$WORK/err")" >&2; exit 1; }
ROOTCA="$WORK/data/certs/root-ca.pem"
export EST_CLIENT_PASSWORD; EST_CLIENT_PASSWORD=$(cat "$WORK/data/admin-password")
HTTP_URL="http://127.0.0.1:$SPORT/scep/scepbench"
HTTPS_URL="https://localhost:$PORT/scep/scepbench"
# GetCACert over a verified TLS connection: the RA (encryption and signing) and the CA chain
"$ESTD" client scep cacert --url "$HTTPS_URL" --tls-cacert "$ROOTCA" --out "$WORK/scep-ca.pem" >/dev/null

run_case() {
  case $1 in
    scep-http) "$ESTD" client scep bench --url "$HTTP_URL" --cacert "$WORK/scep-ca.pem" --cipher aes128 \
      --connections "$CONNS" --duration "$SECS" --keys "$KEYS" --pid "$PID" ;;
    scep-https) "$ESTD" client scep bench --url "$HTTPS_URL" --tls-cacert "$ROOTCA" --cacert "$WORK/scep-ca.pem" \
      --cipher aes128 --connections "$CONNS" --duration "$SECS" --keys "$KEYS" --pid "$PID" ;;
    est) "$ESTD" client --cacert "$ROOTCA" --server 127.0.0.1 --port "$PORT" --user admin \
      bench --clients "$CONNS" --seconds "$SECS" --csrs "$KEYS" --key-type rsa-2048 --cn admin --pid "$PID" ;;
  esac
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A rate cpu ccpu p50 p99
echo "machine: $(nproc) cores, shared by the load client and estd; estd $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "$ROUNDS rounds × ($CASES) × $SECS s, $CONNS concurrent clients, RSA-2048 keys ($KEYS per run, made before the clock)"
for round in $(seq 1 "$ROUNDS"); do
  for c in $CASES; do
    out=$(run_case "$c" 2>"$WORK/client-err") || { echo "$c failed: $out $(cat "$WORK/client-err")" >&2; exit 1; }
    r=$(sed -n 's/.*→ \([0-9.]*\) per second/\1/p' <<<"$out")
    u=$(sed -n 's/^server CPU: .*→ \([0-9]*\) µs per enrollment.*/\1/p' <<<"$out")
    k=$(sed -n 's/^client CPU: .*→ \([0-9]*\) µs per enrollment.*/\1/p' <<<"$out")
    a=$(sed -n 's/.*p50 \([0-9.]*\).*/\1/p' <<<"$out")
    b=$(sed -n 's/.*p99 \([0-9.]*\).*/\1/p' <<<"$out")
    e=$(sed -n 's/.* ok, \([0-9]*\) errors.*/\1/p' <<<"$out")
    printf '  round %s, %-10s %8s enrollments/s, server CPU %5s µs per enrollment, p50 %6s ms, p99 %6s ms, %s errors%s\n' \
      "$round" "$c:" "$r" "$u" "$a" "$b" "$e" "${k:+ (client CPU $k µs per enrollment)}"
    [ "$e" = 0 ] || sed -n 's/^first error: /    first error: /p' <<<"$out"
    rate[$c]+="$r "; cpu[$c]+="$u "; p50[$c]+="$a "; p99[$c]+="$b "; ccpu[$c]+="$k "
  done
done
echo
echo "medians of $ROUNDS rounds:"
declare -A med_rate med_cpu
for c in $CASES; do
  med_rate[$c]=$(median <<<"${rate[$c]}"); med_cpu[$c]=$(median <<<"${cpu[$c]}")
  k=$(median <<<"${ccpu[$c]}")
  printf '  %-10s %8s enrollments/s, server CPU %5s µs per enrollment, p50 %6s ms, p99 %6s ms%s\n' "$c:" \
    "${med_rate[$c]}" "${med_cpu[$c]}" "$(median <<<"${p50[$c]}")" "$(median <<<"${p99[$c]}")" "${k:+ (client CPU $k µs)}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
for c in scep-http scep-https; do
  echo "$c / est: enrollments/s $(ratio "${med_rate[$c]}" "${med_rate[est]}"), server CPU per enrollment $(ratio "${med_cpu[$c]}" "${med_cpu[est]}")"
done
