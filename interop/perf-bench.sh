#!/usr/bin/env bash
# Issue 9's targets, measured: `estd client bench` against a release `estd serve` (SQLite
# with synchronous = full, the dev P-256 CA, log level info as shipped), 16 clients, a new
# TLS 1.3 connection per enrollment and then keep-alive; server CPU per enrollment from
# /proc; p99 latency; resident memory with 1,000 idle TLS connections (`estd client idle`).
# RUNS runs of each (a fresh server each), then the medians.
#
#   interop/perf-bench.sh                 # RUNS=3 SECONDS_PER_RUN=10 CLIENTS=16
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${RUNS:-3}; SECS=${SECONDS_PER_RUN:-10}; CLIENTS=${CLIENTS:-16}
cargo build --quiet --release --bin estd
ESTD="$ROOT/target/release/estd"
WORK=$(mktemp -d); PID=""
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT

start() {
  local d="$WORK/run$1"; mkdir -p "$d"
  ESTD_DATA_DIR="$d" ESTD_LISTEN=127.0.0.1:0 ESTD_REVOCATION_LISTEN=127.0.0.1:0 ESTD_METRICS_LISTEN=127.0.0.1:0 ESTD_EST_TEMPLATES_DIR="$ROOT/conf/templates" \
    "$ESTD" serve >"$d/out" 2>/dev/null &
  PID=$!
  for _ in $(seq 1 100); do
    PORT=$(sed -n 's#^estd listening on https://127.0.0.1:\([0-9]*\)/.*#\1#p' "$d/out")
    [ -n "$PORT" ] && break; sleep 0.1
  done
  export EST_CLIENT_PASSWORD; EST_CLIENT_PASSWORD=$(cat "$d/admin-password")
  C=("$ESTD" client --cacert "$d/certs/root-ca.pem" --server 127.0.0.1 --port "$PORT" --user admin)
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { sed -n "$1"; }

declare -A rate cpu p99
rss=()
echo "machine: $(nproc) cores; $RUNS runs × $SECS s, $CLIENTS clients, P-256 CSRs and CA, HTTP Basic"
for run in $(seq 1 "$RUNS"); do
  start "$run"
  for mode in new keep; do
    extra=""; [ "$mode" = keep ] && extra="--keep-alive"
    out=$("${C[@]}" bench --clients "$CLIENTS" --seconds "$SECS" --csrs 2000 --cn admin --pid "$PID" $extra 2>/dev/null)
    r=$(echo "$out" | field 's/.*→ \([0-9.]*\) per second/\1/p')
    c=$(echo "$out" | field 's/.*→ \([0-9]*\) µs per enrollment.*/\1/p')
    p=$(echo "$out" | field 's/.*p99 \([0-9.]*\).*/\1/p')
    e=$(echo "$out" | field 's/.*ok, \([0-9]*\) errors.*/\1/p')
    echo "  run $run, $mode: $r enrollments/s, $c µs server CPU per enrollment, p99 $p ms, $e errors"
    rate[$mode]+="$r "; cpu[$mode]+="$c "; p99[$mode]+="$p "
  done
  kill "$PID"; wait "$PID" 2>/dev/null || true
  start "$run-idle"
  out=$("${C[@]}" idle --connections 1000 --hold 2 --pid "$PID" 2>/dev/null)
  echo "  run $run: $out"
  rss+=("$(echo "$out" | field 's/.*MB before, \([0-9.]*\) MB with.*/\1/p')")
  kill "$PID"; wait "$PID" 2>/dev/null || true
done
for mode in new keep; do
  label="a new TLS connection per enrollment"; [ "$mode" = keep ] && label="keep-alive"
  echo "$label: median $(tr ' ' '\n' <<<"${rate[$mode]}" | grep . | median) enrollments/s," \
    "$(tr ' ' '\n' <<<"${cpu[$mode]}" | grep . | median) µs server CPU per enrollment," \
    "p99 $(tr ' ' '\n' <<<"${p99[$mode]}" | grep . | median) ms"
done
echo "resident memory with 1,000 idle TLS connections: median $(printf '%s\n' "${rss[@]}" | median) MB"
