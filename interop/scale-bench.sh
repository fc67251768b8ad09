#!/usr/bin/env bash
# Enrollments per second with one estd instance and with two sharing one PostgreSQL (fsync
# on, as in production), measured by `estd client bench` (16 clients, a new TLS connection
# per enrollment, HTTP Basic). Release build. Also SQLite, one instance, for comparison.
# Prints one line per run and the median of RUNS runs per setup.
#
#   interop/scale-bench.sh                 # RUNS=3 SECONDS_PER_RUN=10 CLIENTS=16
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${RUNS:-3}; SECS=${SECONDS_PER_RUN:-10}; CLIENTS=${CLIENTS:-16}
cargo build --quiet --release --bin estd
ESTD="$ROOT/target/release/estd"

PGBIN=${ESTD_PG_BIN:-$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
WORK=$(mktemp -d)
PIDS=()
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$PGBIN/initdb" -D "$WORK/pg" -U estd -A trust -E UTF8 --locale=C >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -o "-p $PGPORT -k $WORK -c listen_addresses=127.0.0.1" -l "$WORK/pg.log" -w start >/dev/null
as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U estd -d postgres -qc "CREATE DATABASE estd"

start() { # DATA_DIR DB_URL → sets PORT, appends the pid
  local data=$1 db=$2
  mkdir -p "$data"
  ESTD_DATA_DIR="$data" ESTD_LISTEN=127.0.0.1:0 ESTD_REVOCATION_LISTEN=127.0.0.1:0 ESTD_METRICS_LISTEN=127.0.0.1:0 ESTD_LOG_FILTER=warn ESTD_DATABASE_URL="$db" \
    ESTD_EST_TEMPLATES_DIR="$ROOT/conf/templates" "$ESTD" serve >"$data.out" 2>"$data.err" &
  PIDS+=($!)
  PORT=""
  for _ in $(seq 1 100); do
    PORT=$(sed -n 's#^estd listening on https://127.0.0.1:\([0-9]*\)/.*#\1#p' "$data.out")
    [ -n "$PORT" ] && return 0
    sleep 0.1
  done
  echo "estd did not start"; cat "$data.err"; exit 1
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

bench() { # LABEL "SERVER ARGS" "BENCH ARGS" (word-split on purpose)
  local label=$1 server=$2 extra=$3
  local rates=() cpus=()
  for run in $(seq 1 "$RUNS"); do
    # shellcheck disable=SC2086
    out=$(EST_CLIENT_PASSWORD="$PASSWORD" "$ESTD" client --cacert "$CA" --user admin $server \
      bench --clients "$CLIENTS" --seconds "$SECS" --csrs 2000 --cn admin $extra 2>/dev/null)
    rate=$(echo "$out" | sed -n 's/.*→ \([0-9.]*\) per second/\1/p')
    p99=$(echo "$out" | sed -n 's/.*p99 \([0-9.]*\).*/\1/p')
    cpu=$(echo "$out" | sed -n 's/.*→ \([0-9]*\) µs per enrollment.*/\1/p')
    errs=$(echo "$out" | sed -n 's/.*ok, \([0-9]*\) errors.*/\1/p')
    echo "  $label run $run: $rate enrollments/s, p99 $p99 ms, server CPU $cpu µs/enrollment, $errs errors"
    rates+=("$rate"); cpus+=("$cpu")
  done
  echo "$label: median $(printf '%s\n' "${rates[@]}" | median) enrollments/s, median server CPU $(printf '%s\n' "${cpus[@]}" | median) µs/enrollment"
}

echo "machine: $(nproc) cores; $RUNS runs of $SECS s, $CLIENTS clients, new TLS connection per enrollment, HTTP Basic"

# SQLite, one instance
start "$WORK/sqlite" ""
PASSWORD=$(cat "$WORK/sqlite/admin-password"); CA="$WORK/sqlite/certs/root-ca.pem"
bench "SQLite, 1 instance" "--server 127.0.0.1 --port $PORT" "--pid ${PIDS[-1]}"
kill "${PIDS[-1]}"; unset 'PIDS[-1]'

# PostgreSQL: A alone, then A + B (same data directory: same CA, TLS certificate, job key)
DB="postgres://estd@127.0.0.1:$PGPORT/estd"
start "$WORK/shared" "$DB"; PA=$PORT; PIDA=${PIDS[-1]}
PASSWORD=$(cat "$WORK/shared/admin-password"); CA="$WORK/shared/certs/root-ca.pem"
bench "PostgreSQL, 1 instance" "--server 127.0.0.1 --port $PA" "--pid $PIDA"
start "$WORK/shared" "$DB"; PB=$PORT; PIDB=${PIDS[-1]}
bench "PostgreSQL, 2 instances" "--server 127.0.0.1 --port $PA" "--pid $PIDA --pid $PIDB --also 127.0.0.1:$PB"
