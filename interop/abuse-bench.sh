#!/usr/bin/env bash
# Memory and abuse behaviour of a release `estd serve`, each measurement on a fresh server
# (SQLite, the dev P-256 CA, the shipped templates), resident memory (VmRSS) and threads
# read from /proc/PID/status, sampled every 100 ms:
#   a. at rest after start; then a burst of N requests with a wrong password, all opened
#      at once (TLS handshakes first, then every request sent together): HTTPS POST
#      /.well-known/est/simpleenroll, Content-Type application/pkcs10, a valid base64 CSR,
#      Basic user<i>:wrong-password-<i> (a name per request, so that the per-user throttle
#      does not answer them early). Peak RSS and threads during the burst, RSS and threads
#      5 s and 30 s after it, answers by status (401/429/503/other/no answer), wall time.
#      Once with N = BURST_SMALL, once (a new server) with N = BURST_LARGE.
#   b. CLIENTS clients sharing one account with the right password (`estd client bench`,
#      a new TLS connection per enrollment): RSS at rest, peak, 5 s after.
#   c. FUZZ_REQUESTS mutated requests (byte flips, truncations, insertions, deletions,
#      duplications of a valid request's headers and body; seed FUZZ_SEED) at concurrency
#      FUZZ_CONCURRENCY over TLS, each from its own 127.x.y.z address (so that the per-peer
#      throttle does not answer them all): answers by status, every 5xx, RSS after.
# The client is a Python 3 asyncio script (standard library only), written to the work dir.
#
#   interop/abuse-bench.sh                        # the release binary of this checkout
#   ESTD_BIN=/path/to/estd interop/abuse-bench.sh # another binary
#   BURST_SMALL=200 BURST_LARGE=1000 BURST_SOURCES=1 BURST_TIMEOUT=120 SETTLE_SHORT=5 \
#   SETTLE_LONG=30 CLIENTS=16 BENCH_SECONDS=10 BENCH_CSRS=200 FUZZ_REQUESTS=10000 \
#   FUZZ_CONCURRENCY=8 FUZZ_SEED=19 FUZZ_TIMEOUT=1 MIN_AVAILABLE_MB=2048 SKIP=c interop/abuse-bench.sh
# SKIP: measurements to leave out (any of a, b, c); BURST_SMALL=0 or BURST_LARGE=0 leaves
# out that burst. BURST_SOURCES > 1 spreads a burst over that many 127.x.y.z source
# addresses (the per-peer throttle then sees many attackers). Should the machine's available
# memory fall below MIN_AVAILABLE_MB, the server is killed (and the line says so) rather
# than the machine left to the OOM killer. ESTD_TEMPLATES: another templates directory.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
ESTD=${ESTD_BIN:-$REPO/target/release/estd}
TEMPLATES=${ESTD_TEMPLATES:-$REPO/conf/templates}
BURST_SMALL=${BURST_SMALL:-200}; BURST_LARGE=${BURST_LARGE:-1000}
BURST_SOURCES=${BURST_SOURCES:-1}; BURST_TIMEOUT=${BURST_TIMEOUT:-120}
SETTLE_SHORT=${SETTLE_SHORT:-5}; SETTLE_LONG=${SETTLE_LONG:-30}
CLIENTS=${CLIENTS:-16}; BENCH_SECONDS=${BENCH_SECONDS:-10}; BENCH_CSRS=${BENCH_CSRS:-200}
FUZZ_REQUESTS=${FUZZ_REQUESTS:-10000}; FUZZ_CONCURRENCY=${FUZZ_CONCURRENCY:-8}
FUZZ_SEED=${FUZZ_SEED:-19}; FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-1}
MIN_AVAILABLE_MB=${MIN_AVAILABLE_MB:-2048}
SKIP=${SKIP:-}
[ -x "$ESTD" ] || { echo "no estd binary at $ESTD (cargo build --release --bin estd, or set ESTD_BIN)" >&2; exit 1; }
[ -d "$TEMPLATES" ] || { echo "no templates at $TEMPLATES (set ESTD_TEMPLATES)" >&2; exit 1; }

WORK=$(mktemp -d); PID=""; SAMPLER=""
cleanup() {
  set +e
  [ -z "$SAMPLER" ] || kill "$SAMPLER" 2>/dev/null || true
  if [ -n "$PID" ] && kill "$PID" 2>/dev/null; then
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the client ---------------------------------------------------------------------------
cat >"$WORK/client.py" <<'PY'
import asyncio, base64, collections, random, re, resource, ssl, sys, time

def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

def source(i, spread):
    # 127.0.0.1 for everyone, or one of `spread` loopback addresses from 127.1.0.1 on
    if spread <= 1:
        return None
    k = i % spread + 1
    return (f"127.{1 + k // 65025}.{k // 255 % 255}.{k % 255 + 1}", 0)

def request(port, auth, body, extra=b""):
    head = (f"POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/pkcs10\r\nContent-Transfer-Encoding: base64\r\n"
            f"Authorization: Basic {base64.b64encode(auth.encode()).decode()}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head + extra + body

def tls(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx

def status_of(line):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", line)
    return int(m.group(1)) if m else None

async def answer(reader, timeout):
    """The status code, or a word for what happened instead."""
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except asyncio.TimeoutError:
        return "timeout"
    except (ConnectionError, ssl.SSLError, OSError):
        return "reset"
    if not line:
        return "closed"
    code = status_of(line)
    return code if code is not None else "garbled"

async def close(writer):
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 1)
    except Exception:
        pass

# --- a: the burst -------------------------------------------------------------------------
async def burst(port, cafile, csr, n, spread, timeout):
    ctx = tls(cafile)
    body = csr + b"\r\n"
    gate = asyncio.Event()
    t_start = time.monotonic()
    sent_at = [None]

    def open_gate():
        if not gate.is_set():
            sent_at[0] = time.monotonic()
            gate.set()
    results = [None] * n
    latency = [None] * n
    connected = [0]; attempted = [0]

    async def one(i):
        w = None
        try:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(
                    "127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1",
                    local_addr=source(i, spread)), timeout)
                connected[0] += 1
            except asyncio.TimeoutError:
                results[i] = "connect-timeout"; return
            except Exception as e:
                results[i] = "connect-error"; return
            finally:
                attempted[0] += 1
                if attempted[0] == n:
                    open_gate()
            await gate.wait()
            w.write(request(port, f"user{i}:wrong-password-{i}", body))
            try:
                await w.drain()
            except Exception:
                results[i] = "reset"; return
            results[i] = await answer(r, timeout)
            latency[i] = time.monotonic() - sent_at[0]
        finally:
            if w is not None:
                await close(w)

    async def release():
        # send when every connection is up, or after 5 s (the server's header timeout is 10 s)
        try:
            await asyncio.wait_for(gate.wait(), 5)
        except asyncio.TimeoutError:
            open_gate()

    rel = asyncio.create_task(release())
    await asyncio.gather(*(one(i) for i in range(n)))
    await rel
    end = time.monotonic()
    counts = collections.Counter(results)
    lat = sorted(x for x in latency if x is not None)
    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
    def c(k):
        return counts.get(k, 0)
    other = sum(v for k, v in counts.items() if isinstance(k, int) and k not in (401, 429, 503))
    noans = sum(v for k, v in counts.items() if not isinstance(k, int))
    detail = " ".join(f"{k}={v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))
    print(f"RESULT n={n} connected={connected[0]} connect_s={sent_at[0] - t_start:.2f} "
          f"wall_s={end - sent_at[0]:.2f} p50_s={pct(0.5):.2f} max_s={pct(1.0):.2f} "
          f"s401={c(401)} s429={c(429)} s503={c(503)} other={other} noanswer={noans} "
          f"detail=[{detail}]")

# --- c: mutated requests ------------------------------------------------------------------
SPECIAL = b"\r\n:; \t\x00\xff%=,\"/"

def mutate(rng, base):
    data = bytearray(base)
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["flip", "byte", "special", "insert", "delete", "truncate", "dup"])
        if not data:
            data += bytes([rng.randrange(256)])
            continue
        p = rng.randrange(len(data))
        if op == "flip":
            data[p] ^= 1 << rng.randrange(8)
        elif op == "byte":
            data[p] = rng.randrange(256)
        elif op == "special":
            data[p] = rng.choice(SPECIAL)
        elif op == "insert":
            k = rng.choice([1, 2, 8, 64, 1024])
            data[p:p] = bytes(rng.choice([rng.randrange(256), rng.choice(SPECIAL)]) for _ in range(k))
        elif op == "delete":
            del data[p:p + rng.randint(1, 32)]
        elif op == "truncate":
            del data[p:]
        elif op == "dup":
            q = min(len(data), p + rng.randint(1, 128))
            data[q:q] = data[p:q] * rng.randint(1, 8)
    # half the time make Content-Length match what follows the headers, so that the
    # body is read whole and parsed
    if rng.random() < 0.5:
        cut = data.find(b"\r\n\r\n")
        if cut >= 0:
            body_len = len(data) - cut - 4
            data[:cut] = re.sub(rb"(?im)^(content-length:[ \t]*)\d+", rb"\g<1>%d" % body_len,
                                bytes(data[:cut]), count=1)
    return bytes(data)

async def fuzz(port, cafile, csr, password, n, conc, seed, timeout):
    ctx = tls(cafile)
    rng = random.Random(seed)
    base = request(port, f"admin:{password}", csr + b"\r\n")
    cases = [mutate(rng, base) for _ in range(n)]
    counts = collections.Counter()
    fives = []
    queue = iter(range(n))
    t0 = time.monotonic()

    async def worker():
        for i in queue:
            w = None
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(
                    "127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1",
                    local_addr=source(i, 60000)), 10)
            except Exception:
                counts["connect-error"] += 1
                continue
            try:
                w.write(cases[i])
                await asyncio.wait_for(w.drain(), timeout)
                res = await answer(r, timeout)
            except Exception:
                res = "reset"
            finally:
                await close(w)
            counts[res] += 1
            if isinstance(res, int) and res >= 500:
                fives.append((i, res, cases[i][:120]))

    await asyncio.gather(*(worker() for _ in range(conc)))
    detail = " ".join(f"{k}={v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))
    n5 = sum(v for k, v in counts.items() if isinstance(k, int) and k >= 500)
    print(f"RESULT n={n} wall_s={time.monotonic() - t0:.1f} s5xx={n5} detail=[{detail}]")
    for i, code, head in fives[:10]:
        print(f"FIVE case={i} status={code} start={head!r}")

def main():
    raise_nofile()
    mode, port, cafile, csrfile = sys.argv[1:5]
    csr = open(csrfile, "rb").read().strip()
    if mode == "burst":
        n, spread, timeout = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
        asyncio.run(burst(int(port), cafile, csr, n, spread, timeout))
    else:
        password, n, conc, seed, timeout = sys.argv[5], *map(int, sys.argv[6:9]), float(sys.argv[9])
        asyncio.run(fuzz(int(port), cafile, csr, password, n, conc, seed, timeout))

main()
PY

# --- the server and /proc -----------------------------------------------------------------
start() {
  local d="$WORK/$1"; mkdir -p "$d"; DATA=$d
  # (ESTD_BIN and ESTD_TEMPLATES are this script's; estd would take them for configuration)
  env -u ESTD_BIN -u ESTD_TEMPLATES ESTD_DATA_DIR="$d" ESTD_LISTEN=127.0.0.1:0 ESTD_REVOCATION_LISTEN=127.0.0.1:0 ESTD_METRICS_LISTEN=127.0.0.1:0 ESTD_EST_TEMPLATES_DIR="$TEMPLATES" \
    "$ESTD" serve >"$d/out" 2>"$d/err" &
  PID=$!; PORT=""
  for _ in $(seq 1 300); do
    PORT=$(sed -n 's#^estd listening on https://127.0.0.1:\([0-9]*\)/.*#\1#p' "$d/out" 2>/dev/null || true)
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$PORT" ] || { echo "estd serve did not start:" >&2; tail -5 "$d/err" >&2; exit 1; }
  sleep 1 # let it settle
  ROOTCA="$d/certs/root-ca.pem"
  export EST_CLIENT_PASSWORD; EST_CLIENT_PASSWORD=$(cat "$d/admin-password")
}
stop() {
  [ -n "$PID" ] || return 0
  if ! kill -0 "$PID" 2>/dev/null; then
    local st=0; wait "$PID" 2>/dev/null || st=$?
    echo "  !! estd (pid $PID) is gone (exit status $st$([ "$st" -gt 128 ] && echo ", signal $((st - 128))")); last stderr:"
    tail -5 "$DATA/err" | sed 's/^/     /'
  else
    kill "$PID"
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null || true
  fi
  wait "$PID" 2>/dev/null || true; PID=""
}
# "RSS-in-MB threads" now
now() {
  local k v r="" t=""
  [ -r "/proc/$PID/status" ] || { echo "? ?"; return 0; }
  while read -r k v _; do
    case $k in VmRSS:) r=$v ;; Threads:) t=$v ;; esac
  done 2>/dev/null <"/proc/$PID/status" || { echo "? ?"; return 0; }
  echo "$(awk -v r="$r" 'BEGIN {printf "%.1f", r / 1024}') $t"
}
# background sampler: "RSS-kB threads" every 100 ms into $1; peak() reads it back. It
# kills the server when the machine runs short of memory (and leaves $1.killed).
sample_start() {
  : >"$1"; rm -f "$1.killed"
  ( while kill -0 "$PID" 2>/dev/null; do
      r=""; t=""
      while read -r k v _; do case $k in VmRSS:) r=$v ;; Threads:) t=$v ;; esac; done 2>/dev/null <"/proc/$PID/status" || break
      echo "$r $t"
      while read -r k v _; do [ "$k" = MemAvailable: ] && break; done </proc/meminfo
      if [ "$v" -lt $((MIN_AVAILABLE_MB * 1024)) ]; then
        echo "$((v / 1024))" >"$1.killed"; kill -9 "$PID"; break
      fi
      sleep 0.1
    done >>"$1" ) &
  SAMPLER=$!
}
sample_stop() { [ -z "$SAMPLER" ] || kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=""; }
peak() {
  awk 'BEGIN {r = 0; t = 0} $1 > r {r = $1} $2 > t {t = $2} END {printf "%.1f MB, %d threads", r / 1024, t}' "$1"
  # VmHWM: the true peak between samples (the server is fresh for each measurement)
  awk '/^VmHWM/ {printf " (VmHWM %.1f MB)", $2 / 1024}' "/proc/$PID/status" 2>/dev/null || true
  [ -f "$1.killed" ] && printf ' !! SERVER KILLED by this script: the machine had only %s MB available' "$(cat "$1.killed")"
  return 0
}
alive() { kill -0 "$PID" 2>/dev/null && echo "alive" || echo "DEAD"; }
machine() { awk '/^MemAvailable/ {a = $2} /^SwapTotal/ {st = $2} /^SwapFree/ {sf = $2} END {printf "%.1f GB available, swap used %.0f MB", a / 1048576, (st - sf) / 1024}' /proc/meminfo; echo ", load $(cut -d' ' -f1-3 /proc/loadavg)"; }
pswp() { awk '/^pswpout/ {print $2}' /proc/vmstat; }
# 5xx answers and panics in the server's log ($DATA/err), with the first distinct reasons
server_log() {
  local n p
  n=$(grep -c 'status=5[0-9][0-9]' "$DATA/err" || true)
  p=$(grep -ci 'panick' "$DATA/err" || true)
  [ "$n" = 0 ] && [ "$p" = 0 ] && return 0
  echo "   !! the server logged $n answers with status 5xx and $p panics; first reasons:"
  grep -E 'status=5[0-9][0-9]|panick|ERROR' "$DATA/err" | sed -n 's/.*\(status=5[0-9][0-9].*\)/\1/p; s/.*\(panick.*\)/\1/p' \
    | sed 's/request_id=[^ ]* //; s/elapsed_us=[0-9]*//; s/user[0-9]*/userN/g' | sort | uniq -c | sort -rn | head -5 | cut -c1-300 | sed 's/^/     /'
}
skip() { case "$SKIP" in *"$1"*) return 0 ;; esac; return 1; }

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/key" \
  -subj /CN=admin -outform DER 2>/dev/null | base64 -w0 >"$WORK/csr"

echo "estd: $ESTD ($("$ESTD" --version 2>/dev/null || echo '?'))"
echo "machine: $(nproc) cores, $(awk '/^MemTotal/ {printf "%.1f GB", $2 / 1048576}' /proc/meminfo); $(machine)"
echo "settings: BURST_SMALL=$BURST_SMALL BURST_LARGE=$BURST_LARGE BURST_SOURCES=$BURST_SOURCES BURST_TIMEOUT=$BURST_TIMEOUT" \
  "SETTLE_SHORT=$SETTLE_SHORT SETTLE_LONG=$SETTLE_LONG CLIENTS=$CLIENTS BENCH_SECONDS=$BENCH_SECONDS BENCH_CSRS=$BENCH_CSRS" \
  "FUZZ_REQUESTS=$FUZZ_REQUESTS FUZZ_CONCURRENCY=$FUZZ_CONCURRENCY FUZZ_SEED=$FUZZ_SEED FUZZ_TIMEOUT=$FUZZ_TIMEOUT SKIP=$SKIP"
SWAP0=$(pswp)

burst() {
  local n=$1
  start "burst$n"
  read -r r t <<<"$(now)"
  echo "a. N=$n: at rest after start: $r MB, $t threads"
  sample_start "$WORK/samples$n"
  local out
  out=$(timeout $((BURST_TIMEOUT * 2 + 30)) python3 "$WORK/client.py" burst "$PORT" "$ROOTCA" "$WORK/csr" "$n" "$BURST_SOURCES" "$BURST_TIMEOUT" 2>&1) \
    || echo "  !! the burst client failed or timed out: $(echo "$out" | tail -3)"
  local res; res=$(echo "$out" | grep '^RESULT' || true)
  read -r r5 t5 <<<"$(sleep "$SETTLE_SHORT"; now)"
  read -r r30 t30 <<<"$(sleep $((SETTLE_LONG - SETTLE_SHORT)); now)"
  sample_stop
  f() { echo "$res" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
  echo "a. N=$n: peak during burst $(peak "$WORK/samples$n"); ${SETTLE_SHORT} s after: $r5 MB, $t5 threads; ${SETTLE_LONG} s after: $r30 MB, $t30 threads"
  echo "a. N=$n: answers 401=$(f s401) 429=$(f s429) 503=$(f s503) other=$(f other) no-answer=$(f noanswer)" \
       "[$(echo "$res" | sed -n 's/.*detail=\[\(.*\)\]/\1/p')]; $(f connected) connected in $(f connect_s) s;" \
       "wall $(f wall_s) s from send to last answer (p50 $(f p50_s) s); server $(alive)"
  echo "   machine after: $(machine)"
  server_log
  stop
}

if ! skip a; then
  for n in $BURST_SMALL $BURST_LARGE; do if [ "$n" -gt 0 ]; then burst "$n"; fi; done
fi

if ! skip b; then
  start bench
  read -r r t <<<"$(now)"
  sample_start "$WORK/samples-bench"
  out=$(timeout $((BENCH_SECONDS + 120)) "$ESTD" client --cacert "$ROOTCA" --server 127.0.0.1 --port "$PORT" --user admin \
        bench --clients "$CLIENTS" --seconds "$BENCH_SECONDS" --csrs "$BENCH_CSRS" --cn admin --pid "$PID" 2>&1) \
    || echo "  !! estd client bench failed: $(echo "$out" | tail -2)"
  read -r r5 t5 <<<"$(sleep "$SETTLE_SHORT"; now)"
  sample_stop
  echo "b. $CLIENTS clients, one account, right password, ${BENCH_SECONDS} s: at rest $r MB, $t threads;" \
       "peak $(peak "$WORK/samples-bench"); ${SETTLE_SHORT} s after: $r5 MB, $t5 threads; server $(alive)"
  echo "$out" | grep -E '^(enrollments|latency|server CPU|first error)' | sed 's/^/   /'
  server_log
  stop
fi

if ! skip c; then
  start fuzz
  read -r r t <<<"$(now)"
  sample_start "$WORK/samples-fuzz"
  out=$(timeout $((FUZZ_REQUESTS * 3 + 120)) python3 "$WORK/client.py" fuzz "$PORT" "$ROOTCA" "$WORK/csr" "$EST_CLIENT_PASSWORD" \
        "$FUZZ_REQUESTS" "$FUZZ_CONCURRENCY" "$FUZZ_SEED" "$FUZZ_TIMEOUT" 2>&1) \
    || echo "  !! the fuzz client failed or timed out: $(echo "$out" | tail -3)"
  read -r r5 t5 <<<"$(sleep "$SETTLE_SHORT"; now)"
  sample_stop
  res=$(echo "$out" | grep '^RESULT' || true)
  echo "c. $FUZZ_REQUESTS mutated requests (seed $FUZZ_SEED, concurrency $FUZZ_CONCURRENCY): at rest $r MB;" \
       "peak $(peak "$WORK/samples-fuzz"); ${SETTLE_SHORT} s after: $r5 MB, $t5 threads; server $(alive)"
  echo "c. answers: $(echo "$res" | sed -n 's/.*detail=\[\(.*\)\]/\1/p'); 5xx: $(echo "$res" | sed -n 's/.* s5xx=\([0-9]*\).*/\1/p');" \
       "wall $(echo "$res" | sed -n 's/.* wall_s=\([^ ]*\).*/\1/p') s (no answer within ${FUZZ_TIMEOUT} s counts as timeout)"
  echo "$out" | grep '^FIVE' | sed 's/^/   /' || true
  server_log
  stop
fi
echo "machine at the end: $(machine); pages swapped out during the run: $(( $(pswp) - SWAP0 ))"
