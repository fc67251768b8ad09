#!/usr/bin/env bash
# What registration-authority mode costs: the RA's own CPU per enrollment and the latency it
# adds over enrolling at the CA directly, measured side by side in one run. Two release
# `estd serve` processes on this machine (SQLite, synchronous = full, log level info as
# shipped): the CA, with a template `bench` (EC P-256, any CN), and the RA, whose template
# `fwd` forwards to the CA's `bench` label as `[upstream.ca]` (HTTP Basic as the CA's admin;
# a new TLS connection per upstream request). Interleaved round by round (ROUNDS rounds,
# SECS seconds each, CONNS concurrent clients, a new TLS 1.3 connection per enrollment):
#   direct  `estd client bench` at the CA's `bench` label        (server CPU: the CA's)
#   via-ra  `estd client bench` at the RA's `fwd` label          (server CPU: the RA's own;
#           the CA's CPU over the same window is read from /proc as well)
# Prints each run, the medians, the RA's CPU per enrollment and the latency it adds.
#
#   interop/upstream-bench.sh                 # SECS=6 ROUNDS=3 CONNS=8 KEYS=64
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${SECS:-6}; ROUNDS=${ROUNDS:-3}; CONNS=${CONNS:-8}; KEYS=${KEYS:-64}
cargo build --quiet --release --bin estd
ESTD="$ROOT/target/release/estd"
WORK=$(mktemp -d); PIDS=""
trap 'for p in $PIDS; do kill "$p" 2>/dev/null; done; rm -rf "$WORK"' EXIT

# start NAME EXTRA_ENV...: an estd in $WORK/NAME; sets PORT_NAME and PID_NAME
start() {
  local name=$1; shift
  mkdir -p "$WORK/$name/templates" "$WORK/$name/data"
  cp "$ROOT"/conf/templates/*.toml "$WORK/$name/templates/"
  env ESTD_DATA_DIR="$WORK/$name/data" ESTD_LISTEN=127.0.0.1:0 ESTD_REVOCATION_LISTEN=127.0.0.1:0 \
    ESTD_METRICS_LISTEN=127.0.0.1:0 ESTD_EST_TEMPLATES_DIR="$WORK/$name/templates" "$@" \
    "$ESTD" serve ${CONFIG:+--config "$CONFIG"} >"$WORK/$name/out" 2>"$WORK/$name/err" &
  local pid=$! port=""
  PIDS="$PIDS $pid"
  for _ in $(seq 1 300); do
    port=$(sed -n 's#^estd listening on https://127.0.0.1:\([0-9]*\)/.*#\1#p' "$WORK/$name/out")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "estd ($name) did not start: $(cat "$WORK/$name/err")" >&2; exit 1; }
  printf -v "PORT_$name" '%s' "$port"
  printf -v "PID_$name" '%s' "$pid"
}

BENCH='name = "bench"
key_types = ["ec-p256"]
validity_days = 30
cn_must_match_user = false'
mkdir -p "$WORK/ca/templates"
echo "$BENCH" >"$WORK/ca/templates/bench.toml"
CONFIG="" start ca
CA_PW=$(cat "$WORK/ca/data/admin-password")

mkdir -p "$WORK/ra/templates"
printf '%s\nissuer = "ca"\n' "$(sed 's/"bench"/"fwd"/' <<<"$BENCH")" >"$WORK/ra/templates/fwd.toml"
# the shipped configuration, as the CA runs it, with the upstream
cp "$ROOT/conf/estd.toml" "$WORK/ra.toml"
cat >>"$WORK/ra.toml" <<TOML

[upstream.ca]
url = "https://localhost:$PORT_ca/.well-known/est"
label = "bench"
ca_file = "$WORK/ca/data/certs/root-ca.pem"
user = "admin"
password_env = "BENCH_CA_PASSWORD"
max_in_flight = 64
TOML
BENCH_CA_PASSWORD=$CA_PW CONFIG="$WORK/ra.toml" start ra BENCH_CA_PASSWORD="$CA_PW"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run_case() {
  case $1 in
    direct) EST_CLIENT_PASSWORD=$CA_PW "$ESTD" client --cacert "$WORK/ca/data/certs/root-ca.pem" \
      --server 127.0.0.1 --port "$PORT_ca" --label bench --user admin \
      bench --clients "$CONNS" --seconds "$SECS" --csrs "$KEYS" --cn dev --pid "$PID_ca" ;;
    via-ra) EST_CLIENT_PASSWORD=$(cat "$WORK/ra/data/admin-password") "$ESTD" client \
      --cacert "$WORK/ra/data/certs/root-ca.pem" --server 127.0.0.1 --port "$PORT_ra" --label fwd --user admin \
      bench --clients "$CONNS" --seconds "$SECS" --csrs "$KEYS" --cn dev --pid "$PID_ra" ;;
  esac
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
HZ=$(getconf CLK_TCK)

declare -A rate cpu p50 p99 cacpu
echo "machine: $(nproc) cores, shared by the load client and both servers; estd $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "$ROUNDS rounds × (direct via-ra) × $SECS s, $CONNS concurrent clients, EC P-256 ($KEYS CSRs per run, made before the clock)"
for round in $(seq 1 "$ROUNDS"); do
  for c in direct via-ra; do
    before=$(cpu_ticks "$PID_ca")
    out=$(run_case "$c" 2>"$WORK/client-err") || { echo "$c failed: $out $(cat "$WORK/client-err")" >&2; exit 1; }
    after=$(cpu_ticks "$PID_ca")
    r=$(sed -n 's/.*→ \([0-9.]*\) per second/\1/p' <<<"$out")
    n=$(sed -n 's/^enrollments: \([0-9]*\) ok.*/\1/p' <<<"$out")
    u=$(sed -n 's/^server CPU: .*→ \([0-9]*\) µs per enrollment.*/\1/p' <<<"$out")
    a=$(sed -n 's/.*p50 \([0-9.]*\).*/\1/p' <<<"$out")
    b=$(sed -n 's/.*p99 \([0-9.]*\).*/\1/p' <<<"$out")
    e=$(sed -n 's/.* ok, \([0-9]*\) errors.*/\1/p' <<<"$out")
    # the CA's CPU over the whole run (the client's CSR making included: it is the client's)
    k=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$n" 'BEGIN {printf "%.0f", t / hz * 1e6 / n}')
    printf '  round %s, %-7s %8s enrollments/s, server CPU %5s µs per enrollment, CA CPU %5s µs, p50 %6s ms, p99 %6s ms, %s errors\n' \
      "$round" "$c:" "$r" "$u" "$k" "$a" "$b" "$e"
    [ "$e" = 0 ] || sed -n 's/^first error: /    first error: /p' <<<"$out"
    rate[$c]+="$r "; cpu[$c]+="$u "; p50[$c]+="$a "; p99[$c]+="$b "; cacpu[$c]+="$k "
  done
done
echo
echo "medians of $ROUNDS rounds:"
declare -A m_rate m_cpu m_p50 m_p99
for c in direct via-ra; do
  m_rate[$c]=$(median <<<"${rate[$c]}"); m_cpu[$c]=$(median <<<"${cpu[$c]}")
  m_p50[$c]=$(median <<<"${p50[$c]}"); m_p99[$c]=$(median <<<"${p99[$c]}")
  printf '  %-7s %8s enrollments/s, server CPU %5s µs per enrollment, CA CPU %5s µs, p50 %6s ms, p99 %6s ms\n' "$c:" \
    "${m_rate[$c]}" "${m_cpu[$c]}" "$(median <<<"${cacpu[$c]}")" "${m_p50[$c]}" "${m_p99[$c]}"
done
sub() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a - b}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "the RA's own CPU per enrollment: ${m_cpu[via-ra]} µs ($(ratio "${m_cpu[via-ra]}" "${m_cpu[direct]}") × the CA's for a direct enrollment)"
echo "latency added by the RA: p50 +$(sub "${m_p50[via-ra]}" "${m_p50[direct]}") ms, p99 +$(sub "${m_p99[via-ra]}" "${m_p99[direct]}") ms; enrollments/s via-ra / direct $(ratio "${m_rate[via-ra]}" "${m_rate[direct]}")"
