#!/usr/bin/env bash
# Soak test: one release `estd serve` on a throwaway PostgreSQL, under mixed load for
# SOAK_SECONDS, with two faults in the middle, then checks that nothing was lost.
#
# What it does:
#   1. initdb + pg_ctl a PostgreSQL in a temporary directory on a free port (as the postgres
#      user when run as root), and one `estd serve` on it (ESTD_DATABASE_URL) with a fresh
#      data directory, free local ports and the repository's conf/templates; two users are
#      added with `estd user add` (soak: EST, portal; bulk: bulk jobs).
#   2. For SOAK_SECONDS, background loops (each bounded by the deadline, each retrying on
#      connection errors) run concurrently:
#        enroll    curl + openssl: a new P-256 key and CSR, /simpleenroll (HTTP Basic)
#        reenroll  /simplereenroll with the last certificate it got (TLS client certificate)
#        keygen    /devices/serverkeygen, the multipart answer taken apart
#        portal    GET /portal/login (CSRF token + cookie), POST the form, the landing page,
#                  POST /portal/logout
#        bulk      POST /api/v1/bulk (multipart CSV, BULK_ROWS rows, eap-tls), polled until
#                  done, downloaded (the zip's certificates read), confirmed; again
#        badcreds  wrong passwords from 127.0.0.2 … 127.0.0.20 (curl --interface)
#        idle      IDLE_CONNECTIONS connections from 127.0.0.30 that send nothing (3 in 4
#                  after a TLS handshake, 1 in 4 plain TCP); how long until the server
#                  closes each
#      Every answer is logged as "time loop operation status" (000 = no HTTP answer, with
#      curl's exit code), every certificate a 200 brought as "loop serial".
#      estd's resident memory (VmRSS, /proc) is sampled every SAMPLE_SECS.
#   3. At 35 % of the time PostgreSQL is restarted (pg_ctl restart -m fast); at 65 % estd is
#      killed with SIGKILL and started again on the same ports.
#   4. Checks, each a PASS/FAIL line: every serial a client got is in the certificates table;
#      every certificate row has an audit row with its serial; every bulk job submitted exists,
#      ends with no row lost or stuck (waiting up to JOB_WAIT s after the load, since rows the
#      killed process held are claimed again after jobs.lease_secs), and completes with every
#      row issued (a failed row is a FAIL, listed); every loop had successes, and again
#      after each fault; idle connections were closed by the server; VmRSS stayed under
#      MEM_LIMIT_MB; no 5xx outside the faults' windows (FAULT_GRACE s after each fault's
#      end) and, within them, only 503; estd alive at the end, no panic in its log. Then
#      the statuses per loop and a timeline of errors per 10 s. How busy the machine was
#      (CPU, load, other processes above 10 % CPU) is printed with the results.
#
# Not part of CI's default run (tests/run.sh, .ci/run): it takes SOAK_SECONDS plus a few
# minutes and wants a quiet machine. Run it by hand from a checkout:
#
#   interop/soak.sh                               # SOAK_SECONDS=600, target/release/estd
#   SOAK_SECONDS=120 interop/soak.sh              # a short run
#   ESTD_BIN=/path/to/estd KEEP_WORK=1 interop/soak.sh   # keep the work dir (logs, statuses)
#
# Settings (environment): ESTD_BIN (default <repo>/target/release/estd, built with
# `cargo build --release --bin estd` when missing), SOAK_SECONDS=600, MEM_LIMIT_MB=512,
# FAULT_GRACE=10, PAUSE=0.2 (s between one loop's requests), BULK_ROWS=10,
# IDLE_CONNECTIONS=16, SAMPLE_SECS=2, JOB_WAIT=180, KEEP_WORK=0, SOAK_REPO (the checkout
# whose conf/templates and Cargo project are used; default: this script's ../),
# SOAK_PG_BIN (PostgreSQL's bin directory; default pg_config --bindir or the newest
# /usr/lib/postgresql/*/bin). Prints "N passed, M failed"; exits 1 on a failure.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=${SOAK_REPO:-$(cd "$HERE/.." && pwd)}
[ -d "$REPO/conf/templates" ] || { echo "no conf/templates under $REPO (set SOAK_REPO to a checkout)"; echo "0 passed, 1 failed"; exit 1; }
SOAK_SECONDS=${SOAK_SECONDS:-600}
MEM_LIMIT_MB=${MEM_LIMIT_MB:-512}
FAULT_GRACE=${FAULT_GRACE:-10}
PAUSE=${PAUSE:-0.2}
BULK_ROWS=${BULK_ROWS:-10}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-16}
SAMPLE_SECS=${SAMPLE_SECS:-2}
JOB_WAIT=${JOB_WAIT:-180}
KEEP_WORK=${KEEP_WORK:-0}
ESTD=${ESTD_BIN:-}
if [ -z "$ESTD" ]; then
  ESTD="$REPO/target/release/estd"
  if [ ! -x "$ESTD" ]; then
    (cd "$REPO" && cargo build --release --bin estd) || { echo "cargo build failed"; echo "0 passed, 1 failed"; exit 1; }
  fi
fi
[ -x "$ESTD" ] || { echo "no estd binary at $ESTD"; echo "0 passed, 1 failed"; exit 1; }
# estd reads every ESTD_* variable as a setting and refuses unknown ones: keep ESTD_BIN to us
export -n ESTD_BIN 2>/dev/null || true

for tool in curl openssl base64 python3 unzip awk; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool"; echo "0 passed, 1 failed"; exit 1; }
done
PGBIN=${SOAK_PG_BIN:-$(pg_config --bindir 2>/dev/null || true)}
[ -x "$PGBIN/initdb" ] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL not found (initdb); set SOAK_PG_BIN"; echo "0 passed, 1 failed"; exit 1; }

passed=0; failed=0
pass() { echo "PASS  $1"; passed=$((passed + 1)); }
fail() { echo "FAIL  $1${2:+ — $2}"; failed=$((failed + 1)); }

WORK=$(mktemp -d)
PGD="$WORK/pg"
LOOP_PIDS=()
SAMPLER=""
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
estd_pid() { cat "$WORK/estd.pid" 2>/dev/null; }
cleanup() {
  set +e
  for p in "${LOOP_PIDS[@]}" $SAMPLER; do kill "$p" 2>/dev/null; done
  local p; p=$(estd_pid)
  if [ -n "$p" ] && kill "$p" 2>/dev/null; then
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  fi
  as_pg "$PGBIN/pg_ctl" -D "$PGD/data" -m immediate stop >/dev/null 2>&1
  wait 2>/dev/null
  if [ "$KEEP_WORK" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

machine() { echo "$(nproc) cores, $(awk '/^MemAvailable/ {printf "%.1f GB available", $2 / 1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"; }
echo "estd: $ESTD ($("$ESTD" --version 2>/dev/null || echo '?'))"
echo "PostgreSQL: $PGBIN ($("$PGBIN/postgres" --version 2>/dev/null))"
echo "machine: $(machine)"
echo "settings: SOAK_SECONDS=$SOAK_SECONDS MEM_LIMIT_MB=$MEM_LIMIT_MB FAULT_GRACE=$FAULT_GRACE PAUSE=$PAUSE BULK_ROWS=$BULK_ROWS IDLE_CONNECTIONS=$IDLE_CONNECTIONS SAMPLE_SECS=$SAMPLE_SECS JOB_WAIT=$JOB_WAIT"
echo "work directory: $WORK"

# --- PostgreSQL -----------------------------------------------------------------------------
mkdir -p "$PGD"
[ "$(id -u)" = 0 ] && { chmod 755 "$WORK"; chown postgres "$PGD"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PGPORT=$(free_port)
as_pg "$PGBIN/initdb" -D "$PGD/data" -U estd -A trust -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 \
  || { echo "initdb failed:"; cat "$WORK/initdb.log"; echo "0 passed, 1 failed"; exit 1; }
pg_ctl() { as_pg "$PGBIN/pg_ctl" -D "$PGD/data" -l "$PGD/log" -w -t 60 "$@"; }
pg_ctl -o "-p $PGPORT -k $PGD -c listen_addresses=127.0.0.1" start >/dev/null \
  || { echo "PostgreSQL did not start:"; cat "$PGD/log"; echo "0 passed, 1 failed"; exit 1; }
psql() { "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U estd -d "${DB:-estd}" -tAq -v ON_ERROR_STOP=1 "$@"; }
DB=postgres psql -c "CREATE DATABASE estd" || { echo "CREATE DATABASE failed"; echo "0 passed, 1 failed"; exit 1; }
DBURL="postgres://estd@127.0.0.1:$PGPORT/estd"
echo "PostgreSQL on port $PGPORT"

# --- estd -----------------------------------------------------------------------------------
DATA="$WORK/data"; mkdir -p "$DATA"
STARTS=0
estd_env() {
  env -u ESTD_BIN ESTD_DATA_DIR="$DATA" ESTD_DATABASE_URL="$DBURL" ESTD_LOG_FILTER=info \
    ESTD_EST_TEMPLATES_DIR="$REPO/conf/templates" "$@"
}
# start_estd [PORT RPORT MPORT]: none → free ports, read from estd's stdout as interop/lib.sh does
start_estd() {
  STARTS=$((STARTS + 1))
  local out="$WORK/estd.out.$STARTS"
  echo "=== estd start $STARTS at $(date -u +%FT%T.%3NZ) ===" >>"$WORK/estd.err"
  # (not through estd_env: a function in the background is a subshell, and $! must be estd)
  env -u ESTD_BIN ESTD_DATA_DIR="$DATA" ESTD_DATABASE_URL="$DBURL" ESTD_LOG_FILTER=info ESTD_EST_TEMPLATES_DIR="$REPO/conf/templates" \
    ESTD_LISTEN="127.0.0.1:${1:-0}" ESTD_REVOCATION_LISTEN="127.0.0.1:${2:-0}" ESTD_METRICS_LISTEN="127.0.0.1:${3:-0}" \
    "$ESTD" serve >"$out" 2>>"$WORK/estd.err" &
  local pid=$!
  echo "$pid" >"$WORK/estd.pid"; echo "$pid" >"$WORK/estd.pid.$STARTS"
  local port=""
  for _ in $(seq 1 300); do
    port=$(sed -n 's#^estd listening on https://127.0.0.1:\([0-9]*\)/.*#\1#p' "$out")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$port" ]; then kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; return 1; fi
  PORT=$port
  RPORT=$(sed -n 's#^estd revocation on http://127.0.0.1:\([0-9]*\)/.*#\1#p' "$out")
  MPORT=$(sed -n 's#^estd metrics on http://127.0.0.1:\([0-9]*\)/.*#\1#p' "$out")
}
start_estd || { echo "estd did not start:"; tail -20 "$WORK/estd.err"; echo "0 passed, 1 failed"; exit 1; }
ROOTCA="$DATA/certs/root-ca.pem"
echo "estd (pid $(estd_pid)) on https://127.0.0.1:$PORT, revocation $RPORT, metrics $MPORT; data in $DATA"
SOAK_PW="SoakPass2soak"; BULK_PW="BulkPass2bulk"
echo "$SOAK_PW" | estd_env "$ESTD" user add soak --group est-users --password-stdin >>"$WORK/users.log" 2>&1 \
  && echo "$BULK_PW" | estd_env "$ESTD" user add bulk --group est-users --password-stdin >>"$WORK/users.log" 2>&1 \
  || { echo "estd user add failed:"; cat "$WORK/users.log"; echo "0 passed, 1 failed"; exit 1; }

# --- the load -------------------------------------------------------------------------------
STATUS="$WORK/status.log"; SERIALS="$WORK/serials.log"; JOBS="$WORK/jobs.log"; FAULTS="$WORK/faults.log"
: >"$STATUS"; : >"$SERIALS"; : >"$JOBS"; : >"$FAULTS"
mkdir -p "$WORK/5xx"
BASE="https://127.0.0.1:$PORT"
EST="$BASE/.well-known/est"
START=$EPOCHSECONDS
END=$((START + SOAK_SECONDS))
running() { [ "$EPOCHSECONDS" -lt "$END" ]; }

# req LOOP OP OUT [curl arguments…]: one request; CODE = the status (000: no HTTP answer), the
# headers in OUT.hdr, the body in OUT; logged to $STATUS; a 5xx answer kept in $WORK/5xx
req() {
  local loop=$1 op=$2 out=$3 rc; shift 3
  CODE=$(curl -s --cacert "$ROOTCA" --max-time 30 -o "$out" -D "$out.hdr" -w '%{http_code}' "$@"); rc=$?
  [ -n "$CODE" ] || CODE=000
  if [ "$CODE" = 000 ]; then
    echo "$EPOCHREALTIME $loop $op 000 curl-exit-$rc" >>"$STATUS"
  else
    echo "$EPOCHREALTIME $loop $op $CODE" >>"$STATUS"
  fi
  case $CODE in
    5??) { echo "== $(date -u +%FT%T.%3NZ) ($EPOCHREALTIME) loop $loop, $op: $CODE"; tr -d '\r' <"$out.hdr"; head -c 1000 "$out"; echo; } \
           >"$WORK/5xx/$EPOCHREALTIME-$loop-$op" ;;
  esac
}
# a pause after an answer; a longer one after no answer (estd being restarted)
pause() { if [ "$CODE" = 000 ]; then sleep 1; else sleep "$PAUSE"; fi; }
# serial LOOP: the serial of each PEM certificate on stdin, lower-case hex, to $SERIALS
serial() {
  openssl x509 -noout -serial 2>/dev/null | sed -n 's/^serial=//p' | tr 'A-F' 'a-f' | sed "s/^/$1 /" >>"$SERIALS"
}
pkcs7_certs() { base64 -d | openssl pkcs7 -inform DER -print_certs 2>/dev/null; }
new_csr() { # KEYFILE SUBJECT → base64 DER CSR on stdout
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1" -subj "$2" -outform DER 2>/dev/null | base64 -w0
}

loop_enroll() {
  local d="$WORK/l-enroll"; mkdir -p "$d"
  while running; do
    new_csr "$d/key" /CN=soak >"$d/csr"
    req enroll simpleenroll "$d/resp" -u "soak:$SOAK_PW" -H "Content-Type: application/pkcs10" --data-binary @"$d/csr" "$EST/simpleenroll"
    [ "$CODE" = 200 ] && pkcs7_certs <"$d/resp" | serial enroll
    pause
  done
}

loop_reenroll() {
  local d="$WORK/l-reenroll" have=0; mkdir -p "$d"
  while running; do
    if [ "$have" = 0 ]; then
      new_csr "$d/cur.key" /CN=soak >"$d/csr"
      req reenroll first-enroll "$d/resp" -u "soak:$SOAK_PW" -H "Content-Type: application/pkcs10" --data-binary @"$d/csr" "$EST/simpleenroll"
      if [ "$CODE" = 200 ] && pkcs7_certs <"$d/resp" >"$d/cur.pem" && [ -s "$d/cur.pem" ]; then
        serial reenroll <"$d/cur.pem"; have=1
      fi
    else
      new_csr "$d/new.key" /CN=soak >"$d/csr"
      req reenroll simplereenroll "$d/resp" --cert "$d/cur.pem" --key "$d/cur.key" -H "Content-Type: application/pkcs10" \
        --data-binary @"$d/csr" "$EST/simplereenroll"
      if [ "$CODE" = 200 ] && pkcs7_certs <"$d/resp" >"$d/new.pem" && [ -s "$d/new.pem" ]; then
        serial reenroll <"$d/new.pem"
        mv "$d/new.pem" "$d/cur.pem"; mv "$d/new.key" "$d/cur.key"
      fi
    fi
    pause
  done
}

loop_keygen() {
  local d="$WORK/l-keygen" ct boundary; mkdir -p "$d"
  new_csr "$d/csr.key" /CN=soak >"$d/csr"
  while running; do
    req keygen serverkeygen "$d/resp" -u "soak:$SOAK_PW" -H "Content-Type: application/pkcs10" --data-binary @"$d/csr" "$EST/devices/serverkeygen"
    if [ "$CODE" = 200 ]; then
      ct=$(tr -d '\r' <"$d/resp.hdr" | sed -n 's/^content-type: //Ip' | head -1)
      boundary=${ct#*boundary=}
      rm -f "$d"/part*
      tr -d '\r' <"$d/resp" | awk -v b="$boundary" -v dir="$d" '
        $0 == "--" b || $0 == "--" b "--" { n++; inbody = 0; next }
        n > 0 && !inbody && $0 == "" { inbody = 1; next }
        n > 0 && !inbody { print > (dir "/part" n ".hdr"); next }
        inbody { print > (dir "/part" n ".b64") }'
      if grep -qix "Content-Type: application/pkcs8" "$d/part1.hdr" 2>/dev/null && [ -s "$d/part2.b64" ]; then
        pkcs7_certs <"$d/part2.b64" | serial keygen
      else
        echo "$EPOCHREALTIME keygen parse-multipart bad" >>"$STATUS"
      fi
    fi
    pause
  done
}

loop_portal() {
  local d="$WORK/l-portal" csrf loc; mkdir -p "$d"
  while running; do
    rm -f "$d/jar"
    req portal login-page "$d/page" -c "$d/jar" "$BASE/portal/login"
    if [ "$CODE" = 200 ]; then
      csrf=$(sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' "$d/page" | head -1)
      req portal login-post "$d/page" -b "$d/jar" -c "$d/jar" --data-urlencode "csrf=$csrf" \
        --data-urlencode "username=soak" --data-urlencode "password=$SOAK_PW" "$BASE/portal/login"
      if [ "$CODE" = 303 ]; then
        loc=$(tr -d '\r' <"$d/page.hdr" | sed -n 's/^location: //Ip' | head -1)
        req portal landing "$d/page" -b "$d/jar" -c "$d/jar" "$BASE$loc"
        if [ "$CODE" = 200 ]; then
          csrf=$(sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' "$d/page" | head -1)
          req portal logout "$d/page" -b "$d/jar" -c "$d/jar" --data-urlencode "csrf=$csrf" "$BASE/portal/logout"
        fi
      fi
    fi
    pause
  done
}

loop_bulk() {
  local d="$WORK/l-bulk" id="" state i f; mkdir -p "$d"
  local auth=(-u "bulk:$BULK_PW")
  while running; do
    if [ -z "$id" ]; then
      { echo "CN,SAN"; for i in $(seq 1 "$BULK_ROWS"); do printf 'bulk,02:%02x:%02x:%02x:%02x:%02x\n' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)) "$i"; done; } >"$d/rows.csv"
      req bulk submit "$d/resp" "${auth[@]}" -F csv=@"$d/rows.csv" -F template=eap-tls -F description=soak \
        -F format=pem -F 'password=Soak_pw#42A' "$BASE/api/v1/bulk"
      case $CODE in
        202) id=$(sed -n 's/.*"id": *\([0-9]*\).*/\1/p' "$d/resp"); echo "$id submitted $EPOCHREALTIME" >>"$JOBS" ;;
        409) # an open job (its submit answer lost in a fault, or not confirmed): take it up
             id=$(sed -n 's/.*bulk request \([0-9]*\) is still.*/\1/p' "$d/resp")
             [ -n "$id" ] && echo "$id taken-up $EPOCHREALTIME" >>"$JOBS" ;;
      esac
      pause; continue
    fi
    req bulk status "$d/resp" "${auth[@]}" "$BASE/api/v1/bulk/$id"
    state=$(sed -n 's/.*"state": *"\([a-z]*\)".*/\1/p' "$d/resp")
    if [ "$CODE" = 200 ] && [[ $state =~ ^(completed|failed|cancelled)$ ]]; then
      req bulk download "$d/zip" "${auth[@]}" "$BASE/api/v1/bulk/$id/download"
      if [ "$CODE" = 200 ]; then
        rm -rf "$d/unz"; mkdir "$d/unz"
        if unzip -q -o "$d/zip" -d "$d/unz" 2>/dev/null; then
          for f in "$d"/unz/bulk_*.cer; do [ -f "$f" ] && serial bulk <"$f"; done
        else
          echo "$EPOCHREALTIME bulk unzip bad" >>"$STATUS"
        fi
        req bulk confirm "$d/resp" "${auth[@]}" -X POST "$BASE/api/v1/bulk/$id/confirm"
        if [ "$CODE" = 200 ]; then echo "$id confirmed $EPOCHREALTIME $state" >>"$JOBS"; id=""; fi
      fi
    fi
    if [ "$CODE" = 000 ]; then sleep 1; else sleep 1; fi
  done
}

loop_badcreds() {
  local d="$WORK/l-bad" n=0; mkdir -p "$d"
  new_csr "$d/key" /CN=soak >"$d/csr"
  while running; do
    n=$((n % 19 + 2))
    req badcreds "wrong-password" "$d/resp" --interface "127.0.0.$n" -u "soak:wrong-$RANDOM" \
      -H "Content-Type: application/pkcs10" --data-binary @"$d/csr" "$EST/simpleenroll"
    pause
  done
}

cat >"$WORK/idle.py" <<'PY'
# Keeps N connections open that send nothing; logs how each one ended and after how long.
import asyncio, ssl, sys, time
port, cafile, n, end, src, log = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
ctx = ssl.create_default_context(cafile=cafile)
out = open(log, "a", buffering=1)
def rec(kind, status, dur=""):
    out.write(f"{time.time():.6f} idle {kind} {status} {dur}\n".rstrip() + "\n")
async def one(i):
    kind = "tcp" if i % 4 == 3 else "tls"
    while time.time() < end:
        t0 = time.time()
        try:
            if kind == "tls":
                r, w = await asyncio.wait_for(asyncio.open_connection(
                    "127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1", local_addr=(src, 0)), 10)
            else:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0)), 10)
        except Exception:
            rec(kind, "connect-error"); await asyncio.sleep(1); continue
        try:
            data = await asyncio.wait_for(r.read(1), 60)
            status = "closed" if not data else "data"
        except asyncio.TimeoutError:
            status = "open-60s"
        except Exception:
            status = "closed"   # reset, or TLS ended without close_notify
        rec(kind, status, f"{time.time() - t0:.1f}")
        try:
            w.close()
        except Exception:
            pass
        await asyncio.sleep(0.1)
async def main():
    await asyncio.gather(*(one(i) for i in range(n)))
asyncio.run(main())
PY
loop_idle() { python3 "$WORK/idle.py" "$PORT" "$ROOTCA" "$IDLE_CONNECTIONS" "$END" 127.0.0.30 "$STATUS" 2>>"$WORK/idle.err"; }

# VmRSS of whichever estd is running, every SAMPLE_SECS
sampler() {
  local p r
  while [ "$EPOCHSECONDS" -lt "$END" ]; do
    p=$(estd_pid)
    r=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null)
    [ -n "$r" ] && echo "$EPOCHREALTIME $p $r $(cut -d' ' -f1 /proc/loadavg) $(pgrep -c -x rustc)" >>"$WORK/rss.log"
    sleep "$SAMPLE_SECS"
  done
}

# what else the machine runs: every 30 s, the processes above 10 % CPU (top, over 1 s)
watcher() {
  while [ "$EPOCHSECONDS" -lt "$END" ]; do
    top -b -n 2 -d 1 -w 250 2>/dev/null | awk -v t="$EPOCHSECONDS" '/^top -/ {n++} n == 2 && $1 ~ /^[0-9]+$/ && $9 + 0 >= 10 {print t, $1, $9, $12}' >>"$WORK/top.log"
    sleep 29
  done
}

echo "load: $SOAK_SECONDS s from $(date -u +%FT%TZ); PostgreSQL restart at +$((SOAK_SECONDS * 35 / 100)) s, estd kill -9 at +$((SOAK_SECONDS * 65 / 100)) s"
for l in enroll reenroll keygen portal bulk badcreds idle; do
  "loop_$l" & LOOP_PIDS+=($!)
done
sampler & SAMPLER=$!
watcher & LOOP_PIDS+=($!)
cpu_now() { awk '/^cpu / {print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $5 + $6}' /proc/stat; }
read -r CPU_T0 CPU_I0 <<<"$(cpu_now)"

sleep_until() { local s=$(($1 - EPOCHSECONDS)); [ "$s" -gt 0 ] && sleep "$s"; return 0; }

# fault 1: PostgreSQL restarted
sleep_until $((START + SOAK_SECONDS * 35 / 100))
t0=$EPOCHREALTIME
if pg_ctl -m fast restart >"$WORK/pg-restart.log" 2>&1; then ok=ok; else ok=FAILED; fi
t1=$EPOCHREALTIME
echo "pg-restart $t0 $t1" >>"$FAULTS"
echo "fault: PostgreSQL restart (pg_ctl restart -m fast) at +$(awk -v a="$t0" -v s="$START" 'BEGIN {printf "%.1f", a - s}') s, took $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s: $ok"

# fault 2: estd killed with SIGKILL, started again on the same ports
sleep_until $((START + SOAK_SECONDS * 65 / 100))
OLD=$(estd_pid)
t0=$EPOCHREALTIME
kill -9 "$OLD"; wait "$OLD" 2>/dev/null
restarted=0
for try in 1 2 3 4 5 6 7 8 9 10; do
  if start_estd "$PORT" "$RPORT" "$MPORT"; then restarted=1; break; fi
  echo "  estd did not start again (try $try): $(tail -2 "$WORK/estd.err" | tr '\n' ' ')"
  sleep 1
done
t1=$EPOCHREALTIME
echo "estd-kill $t0 $t1" >>"$FAULTS"
echo "fault: estd kill -9 (pid $OLD) at +$(awk -v a="$t0" -v s="$START" 'BEGIN {printf "%.1f", a - s}') s; listening again (pid $(estd_pid)) after $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s: $([ $restarted = 1 ] && echo ok || echo FAILED)"

sleep_until "$END"
for p in "${LOOP_PIDS[@]}"; do wait "$p" 2>/dev/null; done
wait "$SAMPLER" 2>/dev/null; SAMPLER=""
LOOP_PIDS=()
read -r CPU_T1 CPU_I1 <<<"$(cpu_now)"
echo "load ended at $(date -u +%FT%TZ) (+$((EPOCHSECONDS - START)) s); machine: $(machine)"
echo "machine during the load: CPU $(awk -v t="$((CPU_T1 - CPU_T0))" -v i="$((CPU_I1 - CPU_I0))" 'BEGIN {printf "%.0f", t ? 100 * (t - i) / t : 0}') % busy (all processes, $(nproc) cores);" \
  "1-min load average $(awk 'NR == 1 || $4 < a {a = $4} $4 > b {b = $4} END {print a "–" b}' "$WORK/rss.log");" \
  "samples with rustc running (someone compiling): $(awk '$5 > 0' "$WORK/rss.log" | wc -l) of $(wc -l <"$WORK/rss.log")"
OURS=" $(cat "$WORK"/estd.pid.* | tr '\n' ' ')"
echo "other processes above 10 % CPU in the 30 s snapshots (not this test's estd, curl, openssl, python3, postgres, shell tools): $(
  awk -v ours="$OURS" 'index(ours, " " $2 " ") == 0 && $4 !~ /^(curl|openssl|python3|postgres|bash|awk|mawk|sed|base64|top|tr|cat|sort|unzip|psql|sleep)$/ {
    k = $4 ($4 == "estd" ? " (pid " $2 ", not this test'"'"'s)" : ""); c[k]++; if ($3 > m[k]) m[k] = $3}
    END {for (k in c) printf "%s in %d snapshots (max %.0f %%); ", k, c[k], m[k]}' "$WORK/top.log")none other"

# --- checks ---------------------------------------------------------------------------------
echo
echo "--- checks"
# 1. every serial a client got is in the certificates table
psql -c "SELECT serial FROM certificates" | sort -u >"$WORK/db-serials" || echo "(psql failed)"
awk '{print $2}' "$SERIALS" | sort -u >"$WORK/client-serials"
nclient=$(wc -l <"$WORK/client-serials"); ndb=$(wc -l <"$WORK/db-serials")
missing=$(comm -23 "$WORK/client-serials" "$WORK/db-serials")
perloop=$(awk '{n[$1]++} END {for (l in n) printf "%s %d, ", l, n[l]}' "$SERIALS" | sed 's/, $//')
if [ "$nclient" -gt 0 ] && [ -z "$missing" ]; then
  pass "all $nclient serials the clients got ($perloop) are in the certificates table ($ndb rows)"
else
  fail "serials the clients got but the certificates table lacks" "$(echo "$missing" | grep -c .) of $nclient: $(echo "$missing" | head -5 | tr '\n' ' ')"
fi
# 2. every certificate row has an audit row with its serial
noaudit=$(psql -c "SELECT c.serial FROM certificates c WHERE NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.serial = c.serial)")
if [ -z "$noaudit" ] && [ "$ndb" -gt 0 ]; then
  pass "every one of the $ndb certificate rows has an audit row with its serial"
else
  fail "certificate rows without an audit row" "$(echo "$noaudit" | grep -c .): $(echo "$noaudit" | head -5 | tr '\n' ' ')"
fi
dupaudit=$(psql -c "SELECT count(*) FROM (SELECT serial FROM audit_events WHERE serial IS NOT NULL AND status = 200 GROUP BY serial HAVING count(*) > 1) x")
echo "      (audit rows with status 200 naming the same serial more than once: $dupaudit)"

# 3. bulk jobs: every one submitted exists and completes
submitted=$(awk '$2 == "submitted" || $2 == "taken-up" {print $1}' "$JOBS" | sort -un)
nsub=$(echo "$submitted" | grep -c .)
waited=0
while :; do
  open=$(psql -c "SELECT count(*) FROM jobs WHERE state NOT IN ('completed', 'failed', 'cancelled')")
  [ "$open" = 0 ] || [ "$waited" -ge "$JOB_WAIT" ] && break
  sleep 5; waited=$((waited + 5))
done
psql -F ' ' -c "SELECT j.id, j.state, j.total, count(i.*) FILTER (WHERE i.state = 'done'), count(i.*) FILTER (WHERE i.state = 'failed'),
  count(i.*) FILTER (WHERE i.state NOT IN ('done', 'failed')), j.confirmed_at IS NOT NULL FROM jobs j LEFT JOIN job_items i ON i.job_id = j.id
  GROUP BY j.id ORDER BY j.id" >"$WORK/db-jobs"
lost=""; for id in $submitted; do grep -q "^$id " "$WORK/db-jobs" || lost="$lost $id"; done
unfinished=$(awk '$2 !~ /^(completed|failed|cancelled)$/ || $6 > 0 || $4 + $5 != $3' "$WORK/db-jobs")
rowsnocert=$(psql -c "SELECT count(*) FROM job_items i WHERE i.state = 'done' AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = i.serial)")
njobs=$(grep -c . "$WORK/db-jobs")
nrows=$(awk '{n += $3} END {print n + 0}' "$WORK/db-jobs")
if [ "$nsub" -gt 0 ] && [ -z "$lost" ]; then
  pass "all $nsub bulk jobs the client submitted exist in the jobs table ($njobs rows)"
else
  fail "bulk jobs submitted but not in the jobs table" "${lost:-none submitted}"
fi
if [ "$njobs" -gt 0 ] && [ -z "$unfinished" ] && [ "$rowsnocert" = 0 ]; then
  pass "every bulk job ended and each of its $nrows rows is done (with its certificate) or failed; none lost or stuck (waited $waited s after the load)"
else
  fail "bulk jobs not ended after $waited s, rows stuck, or done rows without a certificate" \
    "$(echo "$unfinished" | head -5 | tr '\n' ';') done rows without a certificate: $rowsnocert"
fi
failedrows=$(psql -F ' | ' -c "SELECT 'job ' || job_id || ' row ' || row_number, COALESCE(claimed_at, '-'), COALESCE(error, '-') FROM job_items WHERE state <> 'done' ORDER BY job_id, row_number")
notcompleted=$(awk '$2 != "completed" {printf "job %s %s; ", $1, $2}' "$WORK/db-jobs")
if [ -z "$failedrows" ] && [ -z "$notcompleted" ]; then
  pass "every bulk job completed with all its rows issued"
else
  fail "bulk rows that failed (or jobs not completed)" "$notcompleted$(echo "$failedrows" | grep -c .) rows:"
  echo "$failedrows" | head -10 | sed 's/^/        /'
  echo "      estd's log around them:"
  grep -B4 -A1 'bulk row failed' "$WORK/estd.err" | head -30 | cut -c1-300 | sed 's/^/        /'
fi
echo "      (jobs: id state total done failed other confirmed)"; sed 's/^/        /' "$WORK/db-jobs" | tail -n 5

# 4. every loop had successes, and again after each fault
for l in enroll reenroll keygen portal bulk; do
  n=$(awk -v l="$l" '$2 == l && $4 ~ /^(200|202|303)$/' "$STATUS" | wc -l)
  after=""
  while read -r name _ f1; do
    a=$(awk -v l="$l" -v t="$f1" '$2 == l && $4 ~ /^(200|202|303)$/ && $1 > t' "$STATUS" | wc -l)
    after="$after $name:$a"
    [ "$a" -gt 0 ] || n=0
  done <"$FAULTS"
  if [ "$n" -gt 0 ]; then pass "$l: successes throughout (after the faults:$after)"; else fail "$l: no successes, or none after a fault" "after:$after"; fi
done

# 5. idle connections closed by the server (first_request_timeout_secs: 10 s)
read -r nidle maxdur opened <<<"$(awk '$2 == "idle" && $4 != "connect-error" {n++; if ($5 > m) m = $5; if ($4 == "open-60s" || $4 == "data") o++} END {printf "%d %.1f %d", n, m, o}' "$STATUS")"
median=$(awk '$2 == "idle" && $4 == "closed" {print $5}' "$STATUS" | sort -n | awk '{a[NR] = $1} END {print (NR ? a[int((NR + 1) / 2)] : "-")}')
if [ "$nidle" -gt 0 ] && [ "$opened" = 0 ]; then
  pass "idle connections: all $nidle closed by the server (median $median s, longest $maxdur s)"
else
  fail "idle connections the server kept open 60 s or answered" "$opened of $nidle"
fi

# 6. memory
if [ -s "$WORK/rss.log" ]; then
  summary=$(awk '{if ($3 > m[$2]) m[$2] = $3; l[$2] = $3; if (!($2 in o)) {o[$2] = ++k; first[$2] = $3}} END {for (p in o) printf "pid %s: first %.0f MB, max %.0f MB, last %.0f MB; ", p, first[p] / 1024, m[p] / 1024, l[p] / 1024}' "$WORK/rss.log")
  max=$(awk '$3 > m {m = $3} END {printf "%.0f", m / 1024}' "$WORK/rss.log")
  final=$(tail -1 "$WORK/rss.log" | awk '{printf "%.0f", $3 / 1024}')
  if [ "$max" -le "$MEM_LIMIT_MB" ]; then
    pass "estd's VmRSS stayed under $MEM_LIMIT_MB MB: max $max MB, final $final MB ($summary$(wc -l <"$WORK/rss.log") samples)"
  else
    fail "estd's VmRSS went above $MEM_LIMIT_MB MB" "max $max MB, final $final MB ($summary)"
  fi
  echo "      (VmRSS per minute, max MB: $(awk -v s="$START" '{b = int(($1 - s) / 60); if ($3 > m[b]) m[b] = $3; if (b > n) n = b} END {for (i = 0; i <= n; i++) printf "%s%.0f", (i ? " " : ""), m[i] / 1024}' "$WORK/rss.log"))"
else
  fail "no VmRSS samples"
fi

# 7. 5xx: only 503, and only within a fault's window
classify() { # each status line with a 5xx, "in:<fault>" or "out"
  awk -v g="$FAULT_GRACE" 'NR == FNR {n++; name[n] = $1; a[n] = $2 - 1; b[n] = $3 + g; next}
    $4 ~ /^5/ {w = "out"; for (i = 1; i <= n; i++) if ($1 >= a[i] && $1 <= b[i]) w = "in:" name[i]; print w, $0}' "$FAULTS" "$STATUS"
}
classify >"$WORK/5xx.log"
n5=$(grep -c . "$WORK/5xx.log"); nout=$(grep -c '^out ' "$WORK/5xx.log"); nin_not503=$(awk '$1 != "out" && $5 != 503' "$WORK/5xx.log" | wc -l)
if [ "$nout" = 0 ]; then
  pass "no 5xx outside the faults' windows (fault start − 1 s … end + $FAULT_GRACE s); $n5 5xx in all"
else
  fail "5xx outside the faults' windows" "$nout: $(awk '$1 == "out" {c[$3 " " $4 " " $5]++} END {for (k in c) printf "%s ×%d; ", k, c[k]}' "$WORK/5xx.log")"
fi
if [ "$nin_not503" = 0 ]; then
  pass "5xx within the faults' windows are all 503 ($((n5 - nout)) of them)"
else
  fail "5xx other than 503 within the faults' windows" "$nin_not503: $(awk '$1 != "out" && $5 != 503 {c[$1 " " $3 " " $4 " " $5]++} END {for (k in c) printf "%s ×%d; ", k, c[k]}' "$WORK/5xx.log")"
fi

# 8. estd alive, no panic
p=$(estd_pid)
if kill -0 "$p" 2>/dev/null; then pass "estd (pid $p) still running"; else fail "estd (pid $p) is gone" "$(tail -3 "$WORK/estd.err" | tr '\n' ' ')"; fi
npanic=$(grep -ci 'panick' "$WORK/estd.err")
if [ "$npanic" = 0 ]; then pass "no panic in estd's log"; else fail "panics in estd's log" "$(grep -i -m3 'panick' "$WORK/estd.err" | cut -c1-300 | tr '\n' ' ')"; fi

# what estd's log says (informational)
echo "      (estd's log: $(grep -c 'status=5[0-9][0-9]' "$WORK/estd.err") requests logged with a 5xx, $(grep -c ' ERROR ' "$WORK/estd.err") ERROR and $(grep -c ' WARN ' "$WORK/estd.err") WARN lines; $(wc -c <"$WORK/estd.err") bytes)"
grep -E ' (ERROR|WARN) ' "$WORK/estd.err" | sed -E 's/^[0-9T:.-]+Z +//; s/(request_id|peer|retry_after|job|row|rows|serial)=[^ ]*/\1=…/g' | cut -c1-200 \
  | sort | uniq -c | sort -rn | head -12 | sed 's/^/        /'

# --- the tables -----------------------------------------------------------------------------
echo
echo "--- statuses per loop and operation (000: no HTTP answer; idle: how connections ended)"
awk '{k = $2 " " $3; s = $4; if (s == "000") s = "000"; c[k, s]++; keys[k]; st[s]} END {
  ns = 0; for (s in st) cols[++ns] = s
  for (i = 1; i <= ns; i++) for (j = i + 1; j <= ns; j++) if (cols[j] < cols[i]) {t = cols[i]; cols[i] = cols[j]; cols[j] = t}
  printf "%-26s", "loop operation"; for (i = 1; i <= ns; i++) printf " %8s", cols[i]; printf "\n"
  nk = 0; for (k in keys) ks[++nk] = k
  for (i = 1; i <= nk; i++) for (j = i + 1; j <= nk; j++) if (ks[j] < ks[i]) {t = ks[i]; ks[i] = ks[j]; ks[j] = t}
  for (i = 1; i <= nk; i++) {printf "%-26s", ks[i]; for (j = 1; j <= ns; j++) printf " %8s", ((ks[i], cols[j]) in c ? c[ks[i], cols[j]] : "."); printf "\n"}
}' "$STATUS"
echo "(no answer, by curl exit code: $(awk '$4 == "000" {c[$2 " " $5]++} END {for (k in c) printf "%s ×%d; ", k, c[k]}' "$STATUS")none other)"
echo
echo "--- timeline: 5xx and no-answers per 10 s (t = seconds from the start of the load)"
awk -v s="$START" -v g="$FAULT_GRACE" 'NR == FNR {printf "%.1f\t  +%5.1f s  FAULT %s (until +%.1f s; its window until +%.1f s)\n", $2 - s, $2 - s, $1, $3 - s, $3 - s + g; next}
  $4 ~ /^5/ || $4 == "000" {b = int(($1 - s) / 10) * 10; c[b] = c[b] " " $2 ":" $4; has[b]}
  END {for (b in has) {n = split(c[b], parts, " "); delete cnt; for (i = 1; i <= n; i++) cnt[parts[i]]++; line = ""; for (k in cnt) line = line " " k "×" cnt[k]; printf "%d.99\t  +%3d-%d s:%s\n", b + 9, b, b + 10, line}}' \
  "$FAULTS" "$STATUS" | sort -t$'\t' -k1,1n | cut -f2-
echo "  (no 5xx or no-answers in any other 10 s)"
if [ "$n5" -gt 0 ]; then
  echo
  echo "--- 5xx answers (first 10) and estd's log lines for their request ids"
  for f in $(ls "$WORK/5xx" | head -10); do
    head -c 1500 "$WORK/5xx/$f"; echo
    rid=$(sed -n 's/^x-request-id: //Ip' "$WORK/5xx/$f" | head -1)
    [ -n "$rid" ] && grep -F "$rid" "$WORK/estd.err" | cut -c1-400 | sed 's/^/  log: /'
  done
  echo "--- estd's log: lines with status=5xx, ERROR or WARN, but for the throttle's (first 40)"
  grep -E 'status=5[0-9][0-9]| ERROR | WARN ' "$WORK/estd.err" | grep -v 'slowed: repeated failed log-ins' | head -40 | cut -c1-400
fi

echo
[ "$KEEP_WORK" = 1 ] || echo "(KEEP_WORK=1 keeps the work directory: estd's log, every status, the serials)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && exit 0
exit 1
