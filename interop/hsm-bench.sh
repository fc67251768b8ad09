#!/usr/bin/env bash
# Issue 21's measurements: enrollments per second and server CPU per enrollment with the CA
# key in a file and in SoftHSM2 (P-256 and RSA-2048), and with the P-256 key behind a
# simulated network HSM (benches/pkcs11-delay: SoftHSM2 plus 1 ms or 5 ms slept in every
# C_Sign), at 16 and 256 concurrent clients. One release estd per case, all measured by the
# same load client (../shared/bench/limit, copied into target/limit), interleaved round by
# round by its compare.sh, so only ratios from this one run are compared.
#
#   interop/hsm-bench.sh                  # SECS=6 ROUNDS=3 CONNS="16 256" MODES="full keepalive"
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${SECS:-6}; ROUNDS=${ROUNDS:-3}; CONNS=${CONNS:-16 256}; MODES=${MODES:-full keepalive}
MODULE=/usr/lib/softhsm/libsofthsm2.so
cargo build --quiet --release --bin estd
ESTD="$ROOT/target/release/estd"
LIMIT="$ROOT/target/limit"
if [ ! -x "$LIMIT/target/release/client" ]; then
  rm -rf "$LIMIT"; cp -r "$ROOT/../shared/bench/limit" "$LIMIT"
  # its own workspace, not estd's (it sits under estd's target/)
  grep -q '^\[workspace\]' "$LIMIT/Cargo.toml" || printf '\n[workspace]\n' >>"$LIMIT/Cargo.toml"
  (cd "$LIMIT" && CARGO_TARGET_DIR="$LIMIT/target" cargo build --quiet --release)
fi
cc -shared -fPIC -O2 -Wall -o "$ROOT/target/pkcs11-delay.so" "$ROOT/benches/pkcs11-delay/delay.c" -ldl

WORK=$(mktemp -d); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$WORK"' EXIT
mkdir "$WORK/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK" >"$WORK/softhsm2.conf"
export SOFTHSM2_CONF="$WORK/softhsm2.conf" ESTD_CA_PIN=4711-estd
softhsm2-util --init-token --free --label estd --pin "$ESTD_CA_PIN" --so-pin 5678-so >/dev/null

# start NAME ENV... : a release estd with its own data directory; prints the compare.sh target
start() {
  local name=$1; shift
  local d="$WORK/$name"; mkdir -p "$d"
  env "$@" ESTD_DATA_DIR="$d" ESTD_LISTEN=127.0.0.1:0 ESTD_REVOCATION_LISTEN=127.0.0.1:0 ESTD_METRICS_LISTEN=127.0.0.1:0 \
    ESTD_EST_TEMPLATES_DIR="$ROOT/conf/templates" "$ESTD" serve >"$d/out" 2>"$d/err" &
  local pid=$!; PIDS+=("$pid")
  local port=""
  for _ in $(seq 1 300); do
    port=$(sed -n 's#^estd listening on https://127.0.0.1:\([0-9]*\)/.*#\1#p' "$d/out"); [ -n "$port" ] && break; sleep 0.1
  done
  [ -n "$port" ] || { echo "$name did not start: $(cat "$d/err")" >&2; exit 1; }
  TARGETS+=("$name=127.0.0.1:$port:$d/certs/root-ca.pem:admin:$(cat "$d/admin-password"):$pid")
}
# a CA made in the token by estd ca init, its certificates copied to each server using it
token_ca() { # OBJECT KEY-TYPE
  mkdir -p "$WORK/ca-$1"
  ESTD_DATA_DIR="$WORK/ca-$1" "$ESTD" ca init --pkcs11 "pkcs11:token=estd;object=$1" --key-type "$2" \
    --self-signed --module "$MODULE" >/dev/null
}
uses() { mkdir -p "$WORK/$1/certs"; cp "$WORK/ca-$2/certs/"*.pem "$WORK/$1/certs/"; }
token_ca ca-p256 ec-p256; token_ca ca-rsa rsa-2048
TARGETS=()
start file-p256 ESTD_CA_KEY_TYPE=ec-p256
uses hsm-p256 ca-p256; start hsm-p256 ESTD_CA_KEY="pkcs11:token=estd;object=ca-p256" ESTD_CA_PKCS11_MODULE="$MODULE"
# the simulated network HSM: the default sessions (16 on this machine), and 3 (cores + 1,
# this estd's first default) at 5 ms to show what the pool's size does
for case in 1:0 5:0 5:3; do
  ms=${case%%:*}; sessions=${case#*:}; name="net${ms}ms-p256"; [ "$sessions" = 0 ] || name="$name-s$sessions"
  uses "$name" ca-p256
  start "$name" ESTD_CA_KEY="pkcs11:token=estd;object=ca-p256" ESTD_CA_PKCS11_MODULE="$ROOT/target/pkcs11-delay.so" \
    ESTD_CA_PKCS11_SESSIONS="$sessions" PKCS11_DELAY_MODULE="$MODULE" PKCS11_DELAY_US=$((ms * 1000))
done
start file-rsa ESTD_CA_KEY_TYPE=rsa-2048
uses hsm-rsa ca-rsa; start hsm-rsa ESTD_CA_KEY="pkcs11:token=estd;object=ca-rsa" ESTD_CA_PKCS11_MODULE="$MODULE"
echo "machine: $(nproc) cores; estd $(git rev-parse --short HEAD); SoftHSM2 $(dpkg-query -W -f '${Version}' softhsm2 2>/dev/null)"
for c in $CONNS; do
  echo
  echo "===== $c concurrent clients"
  (cd "$LIMIT" && ./compare.sh -t "$SECS" -r "$ROUNDS" -c "$c" -m "$MODES" "${TARGETS[@]}") 2>&1 | sed 's/:admin:[^:]*:/:admin:***:/'
done
