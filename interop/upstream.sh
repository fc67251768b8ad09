#!/usr/bin/env bash
# estd as a registration authority (templates with `issuer = "NAME"`, `[upstream.NAME]` in
# estd.toml) in front of a real upstream CA: cisco/libest's estserver with its demo CA.
#   0. the upstream alone, without estd: estserver -o takes estd's RA certificate (client
#      auth + id-kp-cmcRA, signed by the demo CA) as the only credential and issues to it;
#      a second estserver (no -o) wants HTTP Basic besides.
#   1. libest's estclient -> estd -> estserver: /cacerts of the label is the upstream's CA,
#      enroll, reenroll with the certificate just obtained; every certificate checked with
#      openssl (the demo CA, the CSR's key); estd's store (issuer) and audit rows.
#   2. curl + openssl as the device -> estd -> estserver (Basic to estd); and through the
#      upstream that wants Basic besides the certificate (a label in its path).
#   3. estserver killed: 503 + Retry-After at once, /readyz 503 naming the upstream;
#      estserver back on its port: enrollment works again once the breaker lets it.
#   4. (a second estd) an upstream that accepts TCP and never answers (bounded by the TLS
#      handshake's timeout), one that completes TLS and never answers (request_timeout_secs):
#      503 + Retry-After within ~5 s each; one given a wrong Basic password (its 401): 503,
#      not a 401 to the device.
#   5. (two more estd) `estd client` -> estd (RA) -> estd (CA), Basic to the CA as a user of
#      est-users and an admin group: enroll, reenroll with the certificate obtained,
#      serverkeygen (the RA makes the key), each signed by the CA's issuing CA; both stores
#      (issuer ca at the RA, local at the CA); the label's /cacerts is the CA's chain; a
#      request the CA holds (manual approval): PENDING (exit 4), held at both, approved with
#      `estd pending approve` at the CA, issued by the RA's own poll (poll_max_secs = 1) and
#      returned to the device's repeat (same key); rejected at the CA: the repeat is refused
#      with the CA's reason.
#   6. (two more estd) estd (RA) -> estd's SCEP server (CA) over its plain-HTTP listener
#      (kind = "scep", ca_fingerprint of the CA's issuing CA), PKCSReqs signed by an RSA-2048
#      RA certificate made with openssl that the CA's templates list in scep_ra_signers:
#      `estd client serverkeygen` (the RA fetches a one-time challenge from the CA's API):
#      signed by the CA, issuer sc at the RA, requester scep:challenge-N at the CA, the
#      challenge used; a device CSR (openssl, challengePassword from `estd scep challenge`
#      at the CA) on a template the CA holds: 202 + Retry-After, pending at both, approved
#      with `estd pending approve` at the CA, issued by the RA's CertPoll, 200 to the
#      device's repeat (curl); a CSR without a challenge: 403 "SCEP FAILURE"; the label's
#      /cacerts holds the CA's issuing certificate.
#   7. (another estd) the RA's TLS client key in the PKCS#11 token of estd's CA key: a
#      SoftHSM2 token in the work directory (softhsm2-util), estd's CA key made there by
#      `estd ca init --pkcs11`, the RA's P-256 key by pkcs11-tool (never extractable), its
#      certificate issued by libest's demo CA for the public key read from the token
#      (openssl x509 -new -force_pubkey); `[upstream.hsmra] client_key =
#      "pkcs11:object=ra-tls"`, no Basic: curl simpleenroll (Basic to estd as user dev7) on
#      hsm-fwd through estserver -o → 200, libest's CA, the CSR's key, issuer hsmra in the
#      store; start-ups refused: a client_key the token lacks (naming the key), and a
#      pkcs11: client_key with [ca] a file key. Without softhsm2-util, pkcs11-tool or
#      libsofthsm2.so the section FAILs.
# libest is built once into target/libest, as interop/libest.sh does (same LIBEST_DIR and
# LIBEST_PEERS); without its source the stage is SKIPPED and exits 77.
# Prints PASS/FAIL per check and ends with "N passed, M failed"; exits non-zero on a failure.
#
#   interop/upstream.sh                 # builds target/debug/estd first
#   ESTD_BIN=/path/to/estd interop/upstream.sh
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. interop/libest-build.sh
ensure_libest "upstream (RA)"

. interop/lib.sh
need_tools openssl curl base64 sqlite3 python3
SRVPIDS=""
SLOWPID=""
cleanup_all() {
  for p in $SRVPIDS $SLOWPID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  [ -n "${KEEP:-}" ] && cp -r "$WORK" /tmp/upstream-work
  cleanup
}
trap cleanup_all EXIT
cd "$WORK"

pubkey_of_cert() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }
pubkey_of_key() { openssl pkey -in "$1" -pubout 2>/dev/null; }
same_key() { [ -n "$(pubkey_of_key "$2")" ] && [ "$(pubkey_of_cert "$1")" = "$(pubkey_of_key "$2")" ]; }
fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2; }
serial_of() { openssl x509 -in "$1" -noout -serial 2>/dev/null | cut -d= -f2 | tr 'A-F' 'a-f'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# base64 DER of a CSR for KEY with subject SUBJ (no SAN: the demo CA drops extensions anyway)
csr_b64() { openssl req -new -key "$1" -subj "$2" -outform DER 2>/dev/null | base64; }
# the certificates of a base64 certs-only PKCS#7 body, as PEM
p7_certs() { base64 -d "$1" 2>/dev/null | openssl pkcs7 -inform DER -print_certs 2>/dev/null; }
header() { tr -d '\r' <"$1" | sed -n "s/^$2: *//Ip" | head -1; }
db() { sqlite3 "$ESTD_DATA_DIR/estd.db" "$1" 2>&1; }
# the store's row for a certificate (serials are lower-case hex there; leading zeros aside)
store_issuer() { db "SELECT issuer FROM certificates WHERE ltrim(lower(serial),'0') = ltrim('$1','0')"; }
store_serial() { db "SELECT serial FROM certificates WHERE ltrim(lower(serial),'0') = ltrim('$1','0')"; }

# --- the upstream: a private copy of the demo CA (its own index and serial file), the RA ----
SRV="$WORK/estsrv"
cp -a "$LIBEST/estsrv" "$SRV"
cp -a "$LIBEST/estsrv" "$WORK/estsrv-basic"
# the second server signs with the same CA: its serials start elsewhere, never colliding
echo 4000 >"$WORK/estsrv-basic/estCA/serial"
LCA="$SRV/estCA/cacert.crt"
# estd's RA certificate: TLS client auth, and id-kp-cmcRA so that estserver skips its
# tls-unique check of a CSR's challengePassword (the device's TLS session is not estd's)
mkdir -p ra && chmod 700 ra
newkey ra/ra.key
openssl req -new -key ra/ra.key -subj "/CN=estd registration authority" -out ra/ra.csr 2>/dev/null
printf '%s\n' "basicConstraints = critical, CA:FALSE" "keyUsage = critical, digitalSignature" \
  "extendedKeyUsage = clientAuth, 1.3.6.1.5.5.7.3.28" >ra/ra.ext
openssl x509 -req -in ra/ra.csr -CA "$LCA" -CAkey "$SRV/estCA/private/cakey.pem" -set_serial "0x$(openssl rand -hex 16)" \
  -days 2 -extfile ra/ra.ext -out ra/ra.pem 2>/dev/null
openssl verify -CAfile "$LCA" ra/ra.pem >/dev/null 2>&1 && openssl x509 -in ra/ra.pem -noout -ext extendedKeyUsage | grep -q "CMC Registration Authority" \
  && pass "RA certificate: signed by libest's demo CA, EKU clientAuth + id-kp-cmcRA" || fail "RA certificate"

# start_estserver DIR PORT FLAGS...: estserver from its CA directory; LAST_PID; waits for the port
start_estserver() {
  local dir=$1 port=$2; shift 2
  (
    cd "$dir" && EST_TRUSTED_CERTS=./trustedcerts.crt EST_CACERTS_RESP=./estCA/cacert.crt \
      EST_OPENSSL_CACONFIG=./estExampleCA.cnf exec "$LIBEST/bin/estserver" \
      -c estCA/private/estservercertandkey.pem -k estCA/private/estservercertandkey.pem -r estrealm -p "$port" "$@"
  ) >>"$WORK/estserver-$port.log" 2>&1 &
  LAST_PID=$!
  SRVPIDS="$SRVPIDS $LAST_PID"
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$LAST_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "estserver on port $port did not start:"; tail -5 "$WORK/estserver-$port.log"; return 1
}
EPORT=$(free_port)
# -o: a trusted TLS client certificate is enough (no HTTP auth besides); -t (tls-unique) off
start_estserver "$SRV" "$EPORT" -o || { fail "estserver -o"; echo "$passed passed, $failed failed"; exit 1; }
ESTPID=$LAST_PID
BPORT=$(free_port)
# without -o: HTTP Basic (estuser/estpwd) besides the client certificate
start_estserver "$WORK/estsrv-basic" "$BPORT" -b || { fail "estserver -b"; echo "$passed passed, $failed failed"; exit 1; }
echo "libest estserver on ports $EPORT (-o) and $BPORT (-b)"

echo "-- 0. the upstream alone (curl with the RA certificate, no estd)"
# up URL ARGS...: status code; headers to up.hdr, body to up.out
up() { local url=$1; shift; curl -s --cacert "$LCA" -D up.hdr -o up.out -w '%{http_code}' "$@" "$url"; }
newkey d0.key
csr_b64 d0.key "/CN=upstream-direct" >d0.b64
code=$(up "https://127.0.0.1:$EPORT/.well-known/est/simpleenroll" --cert ra/ra.pem --key ra/ra.key \
  -H 'Content-Type: application/pkcs10' --data-binary @d0.b64)
p7_certs up.out >d0.pem
if [ "$code" = 200 ] && openssl verify -CAfile "$LCA" d0.pem >/dev/null 2>&1 && same_key d0.pem d0.key; then
  pass "estserver -o: /simpleenroll with the RA certificate alone → 200, the CSR's key, signed by the demo CA"
else fail "estserver -o simpleenroll with the RA certificate" "status $code: $(head -c 200 up.out)"; fi
code=$(up "https://127.0.0.1:$EPORT/.well-known/est/simpleenroll" -H 'Content-Type: application/pkcs10' --data-binary @d0.b64)
[ "$code" = 401 ] && pass "estserver -o without a client certificate → 401 (the certificate is the credential)" || fail "estserver -o without a certificate" "$code"
code=$(up "https://127.0.0.1:$BPORT/.well-known/est/simpleenroll" --cert ra/ra.pem --key ra/ra.key \
  -H 'Content-Type: application/pkcs10' --data-binary @d0.b64)
code2=$(up "https://127.0.0.1:$BPORT/.well-known/est/estd-ra/simpleenroll" --cert ra/ra.pem --key ra/ra.key -u estuser:estpwd \
  -H 'Content-Type: application/pkcs10' --data-binary @d0.b64)
[ "$code" = 401 ] && [ "$code2" = 200 ] && pass "estserver -b: the RA certificate alone → 401; with Basic estuser → 200 (under a label too)" \
  || fail "estserver -b" "alone $code, with Basic $code2"

# --- estd: the shipped configuration plus the upstreams; templates that use them ------------
mkdir -p "$WORK/conf"
upstream_toml() { # NAME PORT LABEL EXTRA...
  local name=$1 port=$2 label=$3; shift 3
  printf '\n[upstream.%s]\nkind = "est"\nurl = "https://127.0.0.1:%s/.well-known/est"\nlabel = "%s"\n' "$name" "$port" "$label"
  printf 'ca_file = "%s"\nclient_cert = "%s"\nclient_key = "%s"\n' "$LCA" "$WORK/ra/ra.pem" "$WORK/ra/ra.key"
  printf 'connect_timeout_secs = 3\nrequest_timeout_secs = 5\nbreaker_failures = 3\nbreaker_open_secs = 5\n'
  printf '%s\n' "$@"
}
{
  cat "$ROOT/conf/estd.toml"
  upstream_toml libest "$EPORT" "" 'reenroll = "simplereenroll"'
  upstream_toml withbasic "$BPORT" "estd-ra" 'user = "estuser"' 'password_env = "UPSTREAM_LIBEST_PASSWORD"' 'reenroll = "simpleenroll"'
} >"$WORK/conf/estd.toml"
export UPSTREAM_LIBEST_PASSWORD=estpwd UPSTREAM_LIBEST_BAD_PASSWORD=not-the-password
# ra_template DIR NAME ISSUER [LINE...]: a template of the RA estd in DIR whose certificates
# ISSUER signs, any CN, with further TOML lines
ra_template() {
  local dir=$1 name=$2 issuer=$3; shift 3
  {
    printf 'name = "%s"\ndescription = "Signed by the upstream CA %s (estd as its registration authority)"\n' "$name" "$issuer"
    printf 'issuer = "%s"\nkey_types = ["ec-p256", "rsa-2048"]\nvalidity_days = 30\ncn_must_match_user = false\n' "$issuer"
    printf '%s\n' "$@"
  } >"$dir/templates/$name.toml"
}
# the lines of RA templates whose requests name devices below devices.example
DEVICE_LINES=('server_keygen_key = "ec-p256"' 'san_style = "dns"' 'san_optional = true' 'dns_names = ["*.devices.example"]' 'retry_after_secs = 2')
ra_template "$WORK" libest-ra libest
ra_template "$WORK" libest-basic withbasic
# start_estd reads $ROOT/conf/estd.toml: this run's configuration is $WORK/conf/estd.toml
ROOT="$WORK" start_estd
EST="https://localhost:$PORT/.well-known/est"
READYZ="http://127.0.0.1:$MPORT/readyz"
# est URL ARGS...: a device's request to estd; status code and seconds taken; headers
# to est.hdr, body to est.out; never more than 20 s
est() { local url=$1; shift; curl -s --max-time 20 --cacert "$ROOTCA" -D est.hdr -o est.out -w '%{http_code} %{time_total}' "$@" "$url"; }
enroll() { # LABEL KEY CN: simpleenroll to estd as admin; "STATUS SECONDS"
  est "$EST/$1/simpleenroll" -u "admin:$PASSWORD" -H 'Content-Type: application/pkcs10' --data-binary @<(csr_b64 "$2" "/CN=$3")
}
# unavailable TEMPLATE KEY CN MAXSECS WHAT: a device's simpleenroll through an upstream that
# cannot serve it gets 503 with a numeric Retry-After within MAXSECS seconds (never a hang)
unavailable() {
  local code secs ra
  read -r code secs < <(enroll "$1" "$2" "$3")
  ra=$(header est.hdr retry-after)
  if [ "$code" = 503 ] && [[ "$ra" =~ ^[0-9]+$ ]] && awk -v s="$secs" -v m="$4" 'BEGIN { exit !(s <= m) }'; then
    pass "$5: 503 with Retry-After $ra in ${secs}s"
  else fail "$5" "status $code in ${secs}s, Retry-After '${ra}': $(head -c 200 est.out)"; fi
}
export EST_OPENSSL_CACERT="$ROOTCA"
estc() { timeout 60 "$LIBEST/bin/estclient" -s 127.0.0.1 -p "$PORT" "$@" 2>&1 | head -c 1000000; }
est_failed() { grep -q "failed with code" "$1"; }

echo "-- 1. libest estclient -> estd (RA) -> libest estserver (CA)"
mkdir -p g1
estc -g --path-seg libest-ra -o g1 >out.txt
if ! est_failed out.txt && p7_certs g1/cacert-0-0.pkcs7 >ra-cacerts.pem && [ "$(grep -c 'BEGIN CERTIFICATE' ra-cacerts.pem)" = 1 ] \
  && [ "$(fp ra-cacerts.pem)" = "$(fp "$LCA")" ]; then
  pass "estclient -g --path-seg libest-ra: /cacerts is the upstream's CA (libest's demo CA), not estd's"
else fail "cacerts of the RA label" "$(tail -3 out.txt) / $(grep -c 'BEGIN CERTIFICATE' ra-cacerts.pem 2>/dev/null) certificate(s)"; fi

newkey k1.pem
mkdir -p e1
estc -e -u admin -h "$PASSWORD" --common-name ra-dev-1 --path-seg libest-ra -x k1.pem -o e1 --pem-output >out.txt
if ! est_failed out.txt && [ -s e1/cert-0-0.pem ] && openssl verify -CAfile "$LCA" e1/cert-0-0.pem >/dev/null 2>&1 \
  && same_key e1/cert-0-0.pem k1.pem && openssl x509 -in e1/cert-0-0.pem -noout -subject | grep -q "CN *= *ra-dev-1"; then
  pass "estclient -e via estd: issued by libest's CA (openssl verify), the CSR's key and CN"
else fail "estclient enroll via estd" "$(tail -5 out.txt)"; fi
S1=$(serial_of e1/cert-0-0.pem)
[ -n "$S1" ] && [ "$(store_issuer "$S1")" = libest ] && pass "estd's store: certificate $S1 recorded with issuer libest" \
  || fail "store issuer of the enrolled certificate" "serial ${S1:-none}: $(store_issuer "${S1:-x}")"
STORED1=$(store_serial "${S1:-x}")
n=$(db "SELECT count(*) FROM audit_events WHERE operation = 'simpleenroll' AND label = 'libest-ra' AND status = 200 AND principal = 'admin' AND serial = '$STORED1'")
[ -n "$STORED1" ] && [ "$n" = 1 ] && pass "audit: simpleenroll on libest-ra by admin, 200, with the serial" || fail "audit row of the enrollment" "$n"

mkdir -p r1
estc -r --path-seg libest-ra -c e1/cert-0-0.pem -k k1.pem -o r1 --pem-output >out.txt
S2=$(serial_of r1/cert-0-0.pem)
if ! est_failed out.txt && openssl verify -CAfile "$LCA" r1/cert-0-0.pem >/dev/null 2>&1 && same_key r1/cert-0-0.pem k1.pem \
  && [ "$(openssl x509 -in r1/cert-0-0.pem -noout -subject)" = "$(openssl x509 -in e1/cert-0-0.pem -noout -subject)" ] \
  && [ "$S2" != "$S1" ]; then
  pass "estclient -r via estd (TLS client certificate from the upstream's CA): same subject and key, new serial, libest's CA"
else fail "estclient reenroll via estd" "$(tail -5 out.txt)"; fi
[ -n "$S2" ] && [ "$(store_issuer "$S2")" = libest ] && pass "estd's store: the renewed certificate with issuer libest" \
  || fail "store issuer of the renewed certificate" "serial ${S2:-none}: $(store_issuer "${S2:-x}")"
n=$(db "SELECT count(*) FROM audit_events WHERE operation = 'simplereenroll' AND label = 'libest-ra' AND status = 200 AND serial = '$(store_serial "${S2:-x}")'")
[ "$n" = 1 ] && pass "audit: simplereenroll on libest-ra, 200, with the serial" || fail "audit row of the renewal" "$n"

echo "-- 2. curl + openssl -> estd (Basic) -> estserver"
newkey k2.pem
read -r code secs < <(enroll libest-ra k2.pem curl-dev-1)
p7_certs est.out >c2.pem
if [ "$code" = 200 ] && [ "$(header est.hdr content-type)" = "application/pkcs7-mime; smime-type=certs-only" ] \
  && openssl verify -CAfile "$LCA" c2.pem >/dev/null 2>&1 && same_key c2.pem k2.pem; then
  pass "curl simpleenroll to estd's libest-ra: 200 certs-only, libest's CA, the CSR's key (${secs}s)"
else fail "curl simpleenroll via estd" "status $code: $(head -c 200 est.out)"; fi
[ "$(store_issuer "$(serial_of c2.pem)")" = libest ] && pass "estd's store: issuer libest" || fail "store issuer (curl)" "$(store_issuer "$(serial_of c2.pem)")"
read -r code secs < <(est "$EST/libest-ra/simplereenroll" --cert c2.pem --key k2.pem -H 'Content-Type: application/pkcs10' \
  --data-binary @<(csr_b64 k2.pem /CN=curl-dev-1))
p7_certs est.out >c2r.pem
[ "$code" = 200 ] && openssl verify -CAfile "$LCA" c2r.pem >/dev/null 2>&1 && same_key c2r.pem k2.pem && [ "$(serial_of c2r.pem)" != "$(serial_of c2.pem)" ] \
  && pass "curl simplereenroll (curl --cert, the upstream's certificate): renewed by libest" || fail "curl simplereenroll via estd" "status $code: $(head -c 200 est.out)"
newkey k3.pem
read -r code secs < <(enroll libest-basic k3.pem curl-dev-2)
p7_certs est.out >c3.pem
[ "$code" = 200 ] && openssl verify -CAfile "$LCA" c3.pem >/dev/null 2>&1 && same_key c3.pem k3.pem \
  && [ "$(store_issuer "$(serial_of c3.pem)")" = withbasic ] \
  && pass "upstream with Basic (user, password_env) and a label: 200, issuer withbasic in the store" || fail "upstream with Basic" "status $code: $(head -c 200 est.out)"

echo "-- 3. the upstream down, then back"
code=$(curl -s -o readyz.out -w '%{http_code}' "$READYZ")
[ "$code" = 200 ] && pass "/readyz with the upstreams up: 200" || fail "/readyz before" "$code: $(head -c 300 readyz.out)"
kill "$ESTPID" 2>/dev/null; wait "$ESTPID" 2>/dev/null
newkey k4.pem
unavailable libest-ra k4.pem down-dev-1 3.99 "estserver killed: simpleenroll (no hang)"
code=$(curl -s -o readyz.out -w '%{http_code}' "$READYZ")
[ "$code" = 503 ] && grep -qw libest readyz.out && pass "/readyz: 503, naming the upstream libest" || fail "/readyz with the upstream down" "$code: $(head -c 300 readyz.out)"
n=$(db "SELECT count(*) FROM audit_events WHERE operation = 'simpleenroll' AND label = 'libest-ra' AND status = 503 AND reason LIKE '%libest%'")
[ "${n:-0}" -ge 1 ] 2>/dev/null && pass "audit: the 503 recorded, its reason naming libest" || fail "audit of the 503" "$n"
# more failures open the breaker: still 503 at once
for _ in 1 2 3; do read -r code secs < <(enroll libest-ra k4.pem down-dev-1); done
[ "$code" = 503 ] && awk -v s="$secs" 'BEGIN { exit !(s < 1) }' && pass "after breaker_failures: still 503, answered in ${secs}s" || fail "breaker open" "status $code in ${secs}s"
start_estserver "$SRV" "$EPORT" -o || fail "estserver restarted on port $EPORT"
ESTPID=$LAST_PID
SECONDS=0; code=""
while [ "$SECONDS" -lt 15 ]; do
  read -r code secs < <(enroll libest-ra k4.pem down-dev-1)
  [ "$code" = 200 ] && break
  sleep 1
done
p7_certs est.out >c4.pem
[ "$code" = 200 ] && openssl verify -CAfile "$LCA" c4.pem >/dev/null 2>&1 && same_key c4.pem k4.pem \
  && pass "estserver back on port $EPORT: enrollment works again (after ${SECONDS}s; breaker_open_secs = 5)" || fail "upstream back" "still $code after ${SECONDS}s: $(head -c 200 est.out)"
code=$(curl -s -o readyz.out -w '%{http_code}' "$READYZ")
[ "$code" = 200 ] && pass "/readyz: 200 again" || fail "/readyz after the upstream is back" "$code: $(head -c 300 readyz.out)"
kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=""

echo "-- 4. upstreams that fail: one that accepts TCP and never answers, one silent after TLS, one refusing the RA"
# silent_listener NAME [CERTANDKEY.pem]: a local port that accepts TCP and never answers
# (with a certificate: completes the TLS handshake, then never answers the request);
# the port in NAME.port, the process in SLOWPID
silent_listener() {
  python3 -c '
import socket, ssl, sys, threading
ctx = None
if len(sys.argv) > 1:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1])
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
print(s.getsockname()[1], flush=True)
held = []
def handshake(c):
    try:
        held.append(ctx.wrap_socket(c, server_side=True))
    except Exception:
        pass
while True:
    c = s.accept()[0]
    held.append(c)
    if ctx:
        threading.Thread(target=handshake, args=(c,), daemon=True).start()
'  "${@:2}" >"$1.port" 2>"$1.log" &
  SLOWPID="$SLOWPID $!"
  for _ in $(seq 1 50); do [ -s "$1.port" ] && break; sleep 0.1; done
}
silent_listener slow
silent_listener silent "$SRV/estCA/private/estservercertandkey.pem"
SLOWPORT=$(head -1 slow.port)
SILENTPORT=$(head -1 silent.port)
upstream_toml slow "$SLOWPORT" "" | sed 's/^request_timeout_secs = 5$/request_timeout_secs = 2/' >>"$WORK/conf/estd.toml"
upstream_toml silent "$SILENTPORT" "" | sed 's/^request_timeout_secs = 5$/request_timeout_secs = 2/' >>"$WORK/conf/estd.toml"
upstream_toml badpassword "$BPORT" "" 'user = "estuser"' 'password_env = "UPSTREAM_LIBEST_BAD_PASSWORD"' >>"$WORK/conf/estd.toml"
ra_template "$WORK" slow-ra slow
ra_template "$WORK" silent-ra silent
ra_template "$WORK" libest-bad badpassword
mv "$WORK/data" "$WORK/data-1"
ROOT="$WORK" start_estd
EST="https://localhost:$PORT/.well-known/est"
READYZ="http://127.0.0.1:$MPORT/readyz"
newkey k5.pem
unavailable slow-ra k5.pem slow-dev-1 5 "slow upstream (request_timeout_secs = 2)"
unavailable silent-ra k5.pem silent-dev-1 5 "upstream completing TLS, then silent (request_timeout_secs = 2)"
code=$(curl -s -o readyz.out -w '%{http_code}' "$READYZ")
[ "$code" = 503 ] && grep -qw slow readyz.out && pass "/readyz: 503, naming the upstream slow" || fail "/readyz with the slow upstream" "$code: $(head -c 300 readyz.out)"
read -r code secs < <(enroll libest-bad k5.pem bad-dev-1)
ra=$(header est.hdr retry-after)
[ "$code" = 503 ] && [[ "$ra" =~ ^[0-9]+$ ]] \
  && pass "upstream refusing the RA (wrong Basic password: its 401): the device gets 503 + Retry-After $ra, not a 401" \
  || fail "wrong upstream password" "status $code, Retry-After '${ra}': $(head -c 200 est.out)"
newkey k6.pem
read -r code secs < <(enroll libest-ra k6.pem fine-dev-1)
[ "$code" = 200 ] && pass "the other upstream meanwhile: libest-ra still issues (${secs}s)" || fail "libest-ra beside the slow upstream" "status $code: $(head -c 200 est.out)"


echo "-- 5. estd client -> estd (RA) -> estd (CA)"
kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=""
# each estd in its own directory (configuration, templates, data, output); start_estd takes
# them from WORK and ROOT
CAW="$WORK/est-ca"
RAW="$WORK/est-ra"
mkdir -p "$CAW/conf" "$CAW/templates" "$RAW/conf" "$RAW/templates"
cp "$ROOT"/conf/templates/*.toml "$CAW/templates/"
cp "$ROOT"/conf/templates/*.toml "$RAW/templates/"
cp "$ROOT/conf/estd.toml" "$CAW/conf/estd.toml"
cat >"$CAW/templates/devices.toml" <<'TOML'
name = "devices"
description = "Devices, signed at once (what the RA's fwd forwards to)"
key_types = ["ec-p256", "rsa-2048"]
validity_days = 30
key_usage = ["digital_signature"]
extended_key_usage = ["client_auth", "server_auth"]
cn_must_match_user = true
san_style = "dns"
san_optional = true
dns_names = ["*.devices.example"]
TOML
cat >"$CAW/templates/held.toml" <<'TOML'
name = "held"
description = "Devices, each request approved by a person (what the RA's fwd-held forwards to)"
key_types = ["ec-p256", "rsa-2048"]
validity_days = 30
key_usage = ["digital_signature"]
extended_key_usage = ["client_auth"]
cn_must_match_user = true
san_style = "dns"
san_optional = true
dns_names = ["*.devices.example"]
approval = "manual"
retry_after_secs = 2
TOML
WORK="$CAW" ROOT="$CAW" start_estd
CAPID=$PID; SRVPIDS="$SRVPIDS $PID"; PID=""
CAPORT=$PORT; CADATA=$ESTD_DATA_DIR; CAROOT=$ROOTCA; CAISSUING="$CADATA/certs/issuing-ca.pem"
# the RA's account at the CA: in est.group (who may use a template) and in an admin group
# (est.admin_groups: may name other CNs than its own)
echo "ra-at-the-ca-S3cret" | ESTD_DATA_DIR="$CADATA" "$ESTD_BIN" --config "$CAW/conf/estd.toml" \
  user add estd-ra --group est-users --group "Super Admin" --password-stdin >/dev/null 2>&1 || fail "estd user add estd-ra at the CA"
export UPSTREAM_CA_PASSWORD=ra-at-the-ca-S3cret
ca_pending() { ESTD_DATA_DIR="$CADATA" "$ESTD_BIN" --config "$CAW/conf/estd.toml" pending "$@" 2>&1; }
est_upstream() { # NAME LABEL EXTRA...: an [upstream.NAME] that is the CA's LABEL, Basic as estd-ra
  local name=$1 label=$2; shift 2
  printf '\n[upstream.%s]\nkind = "est"\nurl = "https://localhost:%s/.well-known/est"\nlabel = "%s"\n' "$name" "$CAPORT" "$label"
  printf 'ca_file = "%s"\nuser = "estd-ra"\npassword_env = "UPSTREAM_CA_PASSWORD"\n' "$CAROOT"
  printf 'connect_timeout_secs = 3\nrequest_timeout_secs = 5\nbreaker_failures = 3\nbreaker_open_secs = 5\n'
  printf '%s\n' "$@"
}
{
  cat "$ROOT/conf/estd.toml"
  est_upstream ca devices
  est_upstream held held 'poll_max_secs = 1'
} >"$RAW/conf/estd.toml"
ra_template "$RAW" fwd ca "${DEVICE_LINES[@]}" 'key_usage = ["digital_signature"]' 'extended_key_usage = ["client_auth", "server_auth"]'
ra_template "$RAW" fwd-held held "${DEVICE_LINES[@]}" 'key_usage = ["digital_signature"]' 'extended_key_usage = ["client_auth"]'
WORK="$RAW" ROOT="$RAW" start_estd
RAPID=$PID; SRVPIDS="$SRVPIDS $PID"; PID=""
RAPORT=$PORT; RADATA=$ESTD_DATA_DIR; RAROOT=$ROOTCA
echo "device-S3cret" | ESTD_DATA_DIR="$RADATA" "$ESTD_BIN" --config "$RAW/conf/estd.toml" \
  user add edge --group est-users --password-stdin >/dev/null 2>&1 || fail "estd user add edge at the RA"
radb() { sqlite3 "$RADATA/estd.db" "$1" 2>&1; }
cadb() { sqlite3 "$CADATA/estd.db" "$1" 2>&1; }
serial_where() { echo "ltrim(lower(serial),'0') = ltrim('$1','0')"; }
# the device: estd client against the RA, as user edge
ra_client() { EST_CLIENT_PASSWORD=device-S3cret timeout 30 "$ESTD_BIN" client --timeout 10 --server 127.0.0.1 --port "$RAPORT" --cacert "$RAROOT" "$@"; }
by_ca() { openssl verify -CAfile "$CAROOT" -untrusted "$CAISSUING" "$1" >/dev/null 2>&1; }
SECONDS=0

# 1. enroll
newkey e5.key
ra_client --user edge --label fwd enroll --cn edge-5 --san dns:edge-5.devices.example --key e5.key --out e5.pem >out.txt 2>&1; code=$?
if [ "$code" = 0 ] && by_ca e5.pem && same_key e5.pem e5.key && ! openssl verify -CAfile "$RAROOT" e5.pem >/dev/null 2>&1 \
  && openssl x509 -in e5.pem -noout -ext subjectAltName | grep -q "DNS:edge-5.devices.example"; then
  pass "estd client enroll via the RA (fwd): signed by the CA estd's issuing CA, the CSR's key and SAN"
else fail "estd client enroll via the RA" "exit $code: $(tail -3 out.txt)"; fi
S5=$(serial_of e5.pem)
ri=$(radb "SELECT issuer FROM certificates WHERE $(serial_where "${S5:-x}")")
ci=$(cadb "SELECT issuer FROM certificates WHERE $(serial_where "${S5:-x}")")
[ -n "$S5" ] && [ "$ri" = ca ] && [ "$ci" = local ] && pass "stores: certificate $S5 with issuer ca at the RA, local at the CA" \
  || fail "stores after the enrollment" "serial ${S5:-none}: RA '$ri', CA '$ci'"

# 2. reenroll with that certificate (the TLS client certificate from the CA's chain)
ra_client --label fwd reenroll --cert e5.pem --key e5.key --out e5r.pem >out.txt 2>&1; code=$?
S5R=$(serial_of e5r.pem)
if [ "$code" = 0 ] && by_ca e5r.pem && same_key e5r.pem e5.key && [ -n "$S5R" ] && [ "$S5R" != "$S5" ] \
  && [ "$(openssl x509 -in e5r.pem -noout -subject)" = "$(openssl x509 -in e5.pem -noout -subject)" ]; then
  pass "estd client reenroll via the RA: same subject and key, new serial, signed by the CA"
else fail "estd client reenroll via the RA" "exit $code: $(tail -3 out.txt)"; fi
ri=$(radb "SELECT issuer FROM certificates WHERE $(serial_where "${S5R:-x}")")
[ "$ri" = ca ] && pass "RA store: the renewed certificate with issuer ca" || fail "RA store after the renewal" "'$ri'"

# 3. serverkeygen: the RA makes the key and a CSR for it
ra_client --user edge --label fwd serverkeygen --cn edge-5k --out k5.pem --key-out k5.key >out.txt 2>&1; code=$?
[ "$code" = 0 ] && by_ca k5.pem && same_key k5.pem k5.key \
  && pass "estd client serverkeygen via the RA: key and certificate match, signed by the CA" \
  || fail "estd client serverkeygen via the RA" "exit $code: $(tail -3 out.txt)"

# 4. /cacerts of the label: the CA's chain, not the RA's
ra_client --label fwd cacerts --out fwd-cacerts.pem >out.txt 2>&1; code=$?
got=$(for c in $(seq 1 "$(grep -c 'BEGIN CERTIFICATE' fwd-cacerts.pem 2>/dev/null || echo 0)"); do
  awk -v n="$c" '/BEGIN CERT/{i++} i==n' fwd-cacerts.pem | openssl x509 -noout -fingerprint -sha256 2>/dev/null; done | sort)
want=$(for f in "$CAROOT" "$CAISSUING"; do openssl x509 -in "$f" -noout -fingerprint -sha256; done | sort)
[ "$code" = 0 ] && [ -n "$got" ] && [ "$got" = "$want" ] \
  && pass "estd client cacerts on the RA's fwd: the CA's root and issuing CA, not the RA's" \
  || fail "cacerts of fwd" "exit $code: $(grep -c 'BEGIN CERTIFICATE' fwd-cacerts.pem 2>/dev/null) certificate(s); $(tail -2 out.txt)"

# 5. held at the CA, approved there: the RA polls and the device's repeat gets the certificate
newkey h5.key
ra_client --user edge --label fwd-held enroll --cn edge-5h --key h5.key --out h5.pem >out.txt 2>&1; code=$?
[ "$code" = 4 ] && grep -q "^PENDING" out.txt && [ ! -s h5.pem ] \
  && pass "enroll on fwd-held: PENDING, exit 4 ($(grep -o 'in [0-9]* seconds' out.txt || echo 'no delay'))" \
  || fail "enroll on fwd-held" "exit $code: $(tail -3 out.txt)"
ca_pending list >pl.txt
CAID=$(awk -F'\t' '$3 == "held" && $2 == "pending" {print $1; exit}' pl.txt)
[ -n "$CAID" ] && pass "the CA holds it: estd pending list shows request $CAID on held" || fail "the CA's pending list" "$(cat pl.txt)"
RAID=$(radb "SELECT id FROM pending_requests WHERE template = 'fwd-held' ORDER BY id DESC LIMIT 1")
st=$(radb "SELECT state || ' ' || upstream FROM pending_requests WHERE id = '$RAID'")
[ "$st" = "upstream held" ] && pass "the RA holds it too: row $RAID in state upstream (held)" || fail "the RA's held row" "'$st'"
ca_pending approve "$CAID" >out.txt || fail "estd pending approve $CAID at the CA" "$(cat out.txt)"
t0=$SECONDS; st=""
while [ $((SECONDS - t0)) -lt 12 ]; do
  st=$(radb "SELECT state FROM pending_requests WHERE id = '$RAID'")
  [ "$st" = issued ] && break
  sleep 0.5
done
[ "$st" = issued ] && pass "approved at the CA: the RA's row is issued after $((SECONDS - t0))s (its own poll)" \
  || fail "the RA's row after the approval" "still '$st' after $((SECONDS - t0))s"
ra_client --user edge --label fwd-held enroll --cn edge-5h --key h5.key --out h5.pem >out.txt 2>&1; code=$?
[ "$code" = 0 ] && by_ca h5.pem && same_key h5.pem h5.key && openssl x509 -in h5.pem -noout -subject | grep -q "CN *= *edge-5h" \
  && pass "the device's repeat (same key): the certificate, signed by the CA" || fail "repeat after the approval" "exit $code: $(tail -3 out.txt)"
[ "$(radb "SELECT issuer FROM certificates WHERE $(serial_where "$(serial_of h5.pem)")")" = held ] \
  && pass "RA store: the approved certificate with issuer held" || fail "RA store after the approval"

# 6. rejected at the CA: the device's repeat is refused with the CA's reason
newkey j5.key
ra_client --user edge --label fwd-held enroll --cn edge-5j --key j5.key --out j5.pem >out.txt 2>&1; code=$?
[ "$code" = 4 ] || fail "enroll on fwd-held (to be rejected)" "exit $code: $(tail -3 out.txt)"
CAID=$(ca_pending list | awk -F'\t' '$3 == "held" && $2 == "pending" {print $1; exit}')
ca_pending reject "$CAID" --reason "device not in the inventory" >out.txt || fail "estd pending reject at the CA" "$(cat out.txt)"
t0=$SECONDS; code=4
while [ $((SECONDS - t0)) -lt 12 ]; do
  ra_client --user edge --label fwd-held enroll --cn edge-5j --key j5.key --out j5.pem >out.txt 2>&1; code=$?
  [ "$code" != 4 ] && break
  sleep 1
done
[ "$code" = 1 ] && grep -q "device not in the inventory" out.txt && [ ! -s j5.pem ] \
  && pass "rejected at the CA: the device's repeat is refused with the CA's reason ($(head -1 out.txt | cut -c1-100))" \
  || fail "repeat after the rejection" "exit $code: $(tail -3 out.txt)"
st=$(radb "SELECT state FROM pending_requests WHERE template = 'fwd-held' AND reason LIKE '%device not in the inventory%'")
[ "$st" = rejected ] && pass "the RA's row: rejected, with the CA's reason" || fail "the RA's row after the rejection" "'$st'"

# 7. a SCEP device at the RA (the RA's own SCEP server and one-time challenge) on fwd-held:
# PENDING while the CA holds the request, then its CertPoll gets what the CA issued
RASCEP="https://localhost:$RAPORT/scep/fwd-held"
SC="$ESTD_BIN client scep"
$SC cacert --url "$RASCEP" --tls-cacert "$RAROOT" --out ra-scep.pem >out.txt 2>&1 || fail "client scep cacert at the RA" "$(tail -2 out.txt)"
S=$(ESTD_DATA_DIR="$RADATA" ESTD_EST_TEMPLATES_DIR="$RAW/templates" "$ESTD_BIN" --config "$RAW/conf/estd.toml" \
  scep challenge --template fwd-held --cn edge-5s 2>/dev/null | tail -1)
rc=0; timeout 30 $SC enroll --url "$RASCEP" --tls-cacert "$RAROOT" --cacert ra-scep.pem --cn edge-5s --challenge "$S" \
  --key-out s5.key --out s5.pem >s5.log 2>&1 || rc=$?
[ "$rc" = 4 ] && grep -q PENDING s5.log && pass "a SCEP device at the RA on fwd-held: PENDING (exit 4) while the CA holds the request" \
  || fail "a SCEP device at the RA on fwd-held" "rc $rc: $(tail -2 s5.log)"
CAID=$(ca_pending list | awk -F'\t' '$3 == "held" && $2 == "pending" {print $1; exit}')
ca_pending approve "$CAID" >out.txt || fail "estd pending approve $CAID at the CA (SCEP device)" "$(cat out.txt)"
t0=$SECONDS; rc=4
while [ $((SECONDS - t0)) -lt 12 ]; do
  rc=0; timeout 30 $SC poll --url "$RASCEP" --tls-cacert "$RAROOT" --cacert ra-scep.pem --key s5.key --cn edge-5s \
    --out s5.pem >s5p.log 2>&1 || rc=$?
  [ "$rc" != 4 ] && break
  sleep 1
done
[ "$rc" = 0 ] && by_ca s5.pem && same_key s5.pem s5.key \
  && pass "approved at the CA: the SCEP device's CertPoll at the RA gets the certificate, signed by the CA" \
  || fail "the SCEP device's CertPoll after the approval" "rc $rc: $(tail -2 s5p.log)"
echo "(section 5: ${SECONDS}s)"

echo "-- 6. estd (RA) -> estd's SCEP server (CA): PKCSReqs signed by the RA's RSA certificate"
SECONDS=0
C6W="$WORK/scep-ca"
R6W="$WORK/scep-ra"
mkdir -p "$C6W/conf" "$C6W/templates" "$R6W/conf" "$R6W/templates" "$WORK/ra6"
cp "$ROOT"/conf/templates/*.toml "$C6W/templates/"
cp "$ROOT"/conf/templates/*.toml "$R6W/templates/"
cp "$ROOT/conf/estd.toml" "$C6W/conf/estd.toml"
# the RA's RSA-2048 key (PKCS#8) and self-signed certificate: it signs the PKCSReqs, and the
# CA's templates list it in scep_ra_signers (trusted by its DER, not by a chain)
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ra6/ra.key 2>/dev/null
printf '%s\n' "[req]" "distinguished_name = dn" "x509_extensions = ext" "prompt = no" "[dn]" "CN = estd SCEP RA (interop)" \
  "[ext]" "basicConstraints = critical, CA:FALSE" "keyUsage = critical, digitalSignature, keyEncipherment" \
  "subjectKeyIdentifier = hash" >ra6/ra.cnf
openssl req -x509 -new -key ra6/ra.key -config ra6/ra.cnf -days 2 -out ra6/ra.pem 2>/dev/null
grep -q "BEGIN PRIVATE KEY" ra6/ra.key && openssl x509 -in ra6/ra.pem -noout -text 2>/dev/null | grep -q "Public-Key: (2048 bit)" \
  && openssl x509 -in ra6/ra.pem -noout -ext keyUsage 2>/dev/null | grep -q "Key Encipherment" \
  && pass "SCEP RA: RSA-2048 PKCS#8 key, self-signed certificate (digitalSignature, keyEncipherment)" || fail "SCEP RA key and certificate"
scep_ca_template() { # NAME APPROVAL
  cat >"$C6W/templates/$1.toml" <<TOML
name = "$1"
description = "Requests from the estd RA's SCEP upstream ($2 approval)"
key_types = ["ec-p256", "rsa-2048"]
validity_days = 30
cn_must_match_user = false
san_style = "dns"
san_optional = true
dns_names = ["*.devices.example"]
scep_ra_signers = ["$WORK/ra6/ra.pem"]
approval = "$2"
retry_after_secs = 2
TOML
}
scep_ca_template scepca auto
scep_ca_template scepheld manual
WORK="$C6W" ROOT="$C6W" start_estd
C6PID=$PID; SRVPIDS="$SRVPIDS $PID"; PID=""
C6PORT=$PORT; C6SPORT=$SPORT; C6DATA=$ESTD_DATA_DIR; C6ROOT=$ROOTCA; C6ISSUING="$C6DATA/certs/issuing-ca.pem"
export SCEP_CA_ADMIN_PW=$PASSWORD
# GetCACert names the RA certificate's issuer (estd's issuing CA) as the CA: its fingerprint
C6FP=$(openssl x509 -in "$C6ISSUING" -outform DER | sha256sum | cut -d' ' -f1)
scep_upstream() { # NAME LABEL
  printf '\n[upstream.%s]\nkind = "scep"\nurl = "http://127.0.0.1:%s/scep/%s"\nca_fingerprint = "%s"\n' "$1" "$C6SPORT" "$2" "$C6FP"
  printf 'ra_cert = "%s"\nra_key = "%s"\n' "$WORK/ra6/ra.pem" "$WORK/ra6/ra.key"
  printf 'challenge = "estd"\nchallenge_url = "https://localhost:%s/api/v1/scep/challenges"\nchallenge_template = "%s"\n' "$C6PORT" "$2"
  printf 'challenge_user = "admin"\nchallenge_password_env = "SCEP_CA_ADMIN_PW"\nca_file = "%s"\n' "$C6ROOT"
  printf 'connect_timeout_secs = 3\nrequest_timeout_secs = 5\npoll_max_secs = 1\n'
}
{
  cat "$ROOT/conf/estd.toml"
  scep_upstream sc scepca
  scep_upstream scheld scepheld
} >"$R6W/conf/estd.toml"
ra_template "$R6W" via sc "${DEVICE_LINES[@]}"
ra_template "$R6W" via-held scheld "${DEVICE_LINES[@]}"
WORK="$R6W" ROOT="$R6W" start_estd
R6PID=$PID; SRVPIDS="$SRVPIDS $PID"; PID=""
R6PORT=$PORT; R6DATA=$ESTD_DATA_DIR; R6ROOT=$ROOTCA; R6PW=$PASSWORD
# the CA's command line: its data and its templates (start_estd exported the last estd's)
c6() { ESTD_DATA_DIR="$C6DATA" ESTD_EST_TEMPLATES_DIR="$C6W/templates" "$ESTD_BIN" --config "$C6W/conf/estd.toml" "$@" 2>&1; }
c6db() { sqlite3 "$C6DATA/estd.db" "$1" 2>&1; }
r6db() { sqlite3 "$R6DATA/estd.db" "$1" 2>&1; }
by_c6() { openssl verify -CAfile "$C6ROOT" -untrusted "$C6ISSUING" "$1" >/dev/null 2>&1; }
# ra6 URL ARGS...: a device's request to the RA (Basic as its admin); status; est.hdr, est.out
ra6() { local url=$1; shift; curl -s --max-time 20 --cacert "$R6ROOT" -u "admin:$R6PW" -D est.hdr -o est.out -w '%{http_code}' "$@" "https://localhost:$R6PORT/.well-known/est/$url"; }
# csr_challenge KEY CN SECRET: base64 DER of a CSR carrying SECRET as its challengePassword
csr_challenge() {
  printf '%s\n' "[req]" "distinguished_name = dn" "attributes = attrs" "prompt = no" "[dn]" "CN = $2" "[attrs]" "challengePassword = $3" >"$1.cnf"
  openssl req -new -key "$1" -config "$1.cnf" -outform DER 2>/dev/null | base64
}

# 1. serverkeygen: the RA makes the key, fetches a one-time challenge from the CA's API
EST_CLIENT_PASSWORD=$R6PW timeout 30 "$ESTD_BIN" client --timeout 10 --server 127.0.0.1 --port "$R6PORT" --cacert "$R6ROOT" \
  --user admin --label via serverkeygen --cn dev-s1 --san dns:dev-s1.devices.example --out s6.pem --key-out s6.key >out.txt 2>&1; code=$?
if [ "$code" = 0 ] && by_c6 s6.pem && same_key s6.pem s6.key && ! openssl verify -CAfile "$R6ROOT" s6.pem >/dev/null 2>&1; then
  pass "estd client serverkeygen via the RA (via, SCEP upstream sc): key and certificate match, signed by the CA's issuing CA"
else fail "estd client serverkeygen via the SCEP upstream" "exit $code: $(tail -3 out.txt)"; fi
S6=$(serial_of s6.pem)
ri=$(r6db "SELECT issuer FROM certificates WHERE $(serial_where "${S6:-x}")")
cr=$(c6db "SELECT requester FROM certificates WHERE $(serial_where "${S6:-x}")")
[ -n "$S6" ] && [ "$ri" = sc ] && [[ "$cr" =~ ^scep:challenge-[0-9]+$ ]] \
  && pass "stores: certificate $S6 with issuer sc at the RA; requester $cr at the CA (a one-time challenge)" \
  || fail "stores after serverkeygen" "serial ${S6:-none}: RA issuer '$ri', CA requester '$cr'"
CHID=${cr#scep:challenge-}
c6 scep challenges --all >ch.txt
awk -v id="${CHID:-x}" '$1 == id' ch.txt | grep -q "scepca.*CN=dev-s1.*by admin.*used " \
  && pass "the CA's estd scep challenges --all: challenge $CHID for scepca, CN dev-s1, issued through the API to admin, used" \
  || fail "the CA's challenge $CHID" "$(cat ch.txt)"

# 2. a device's CSR with its own challenge, held at the CA: 202, approved there, then 200
SECRET6=$(c6 scep challenge --template scepheld --cn dev-h1 | tail -1)
newkey h6.key
csr_challenge h6.key dev-h1 "$SECRET6" >h6.b64
code=$(ra6 via-held/simpleenroll -H 'Content-Type: application/pkcs10' --data-binary @h6.b64)
ra=$(header est.hdr retry-after)
[ ${#SECRET6} = 32 ] && [ "$code" = 202 ] && [[ "$ra" =~ ^[0-9]+$ ]] \
  && pass "curl simpleenroll on via-held (a CSR with the CA's challenge for dev-h1): 202, Retry-After $ra" \
  || fail "simpleenroll on via-held" "secret '${SECRET6}', status $code, Retry-After '$ra': $(head -c 200 est.out)"
c6 pending list >pl.txt
C6ID=$(awk -F'\t' '$3 == "scepheld" && $2 == "pending" {print $1; exit}' pl.txt)
R6ID=$(r6db "SELECT id FROM pending_requests WHERE template = 'via-held' ORDER BY id DESC LIMIT 1")
st=$(r6db "SELECT state || ' ' || upstream FROM pending_requests WHERE id = '${R6ID:-x}'")
[ -n "$C6ID" ] && [ "$st" = "upstream scheld" ] && pass "held at the CA (pending request $C6ID on scepheld) and at the RA (row $R6ID: upstream scheld)" \
  || fail "held at both" "CA: $(cat pl.txt); RA: '$st'"
c6 pending approve "${C6ID:-x}" >out.txt || fail "estd pending approve $C6ID at the CA" "$(cat out.txt)"
t0=$SECONDS; st=""
while [ -n "$R6ID" ] && [ $((SECONDS - t0)) -lt 10 ]; do
  st=$(r6db "SELECT state FROM pending_requests WHERE id = '${R6ID:-x}'")
  [ "$st" = issued ] && break
  sleep 0.5
done
[ "$st" = issued ] && pass "approved at the CA: the RA's row is issued after $((SECONDS - t0))s (its CertPoll)" \
  || fail "the RA's row after the approval" "still '$st' after $((SECONDS - t0))s"
code=$(ra6 via-held/simpleenroll -H 'Content-Type: application/pkcs10' --data-binary @h6.b64)
p7_certs est.out >h6.pem
[ "$code" = 200 ] && by_c6 h6.pem && same_key h6.pem h6.key && openssl x509 -in h6.pem -noout -subject | grep -q "CN *= *dev-h1" \
  && [ "$(r6db "SELECT issuer FROM certificates WHERE $(serial_where "$(serial_of h6.pem)")")" = scheld ] \
  && pass "curl repeats: 200, the CSR's key and CN, signed by the CA; issuer scheld in the RA's store" \
  || fail "repeat after the approval" "status $code: $(head -c 200 est.out)"

# 3. a device's CSR without a challenge: the CA's SCEP failure reaches the device
newkey n6.key
code=$(ra6 via/simpleenroll -H 'Content-Type: application/pkcs10' --data-binary @<(csr_b64 n6.key /CN=dev-n))
[ "$code" = 403 ] && grep -q "SCEP FAILURE" est.out && pass "a CSR without a challenge on via: 403, $(head -1 est.out | cut -c1-120)" \
  || fail "a CSR without a challenge" "status $code: $(head -c 200 est.out)"

# 4. the label's /cacerts: the CA's issuing certificate
code=$(curl -s --cacert "$R6ROOT" -o via-cacerts.b64 -w '%{http_code}' "https://localhost:$R6PORT/.well-known/est/via/cacerts")
p7_certs via-cacerts.b64 >via-cacerts.pem
want=$(fp "$C6ISSUING")
got=$(for c in $(seq 1 "$(grep -c 'BEGIN CERTIFICATE' via-cacerts.pem)"); do awk -v n="$c" '/BEGIN CERT/{i++} i==n' via-cacerts.pem | fp /dev/stdin; done)
[ "$code" = 200 ] && [ -n "$want" ] && grep -qx "$want" <<<"$got" \
  && pass "the RA's /.well-known/est/via/cacerts: contains the CA's issuing certificate ($(grep -c 'BEGIN CERTIFICATE' via-cacerts.pem) certificate(s))" \
  || fail "cacerts of via" "status $code: $(grep -c 'BEGIN CERTIFICATE' via-cacerts.pem) certificate(s)"
echo "(section 6: ${SECONDS}s)"

echo "-- 7. the RA's TLS key in SoftHSM2 (the token of estd's CA key) -> estserver -o"
SECONDS=0
MODULE=/usr/lib/softhsm/libsofthsm2.so
H7W="$WORK/hsm-ra"
hsm_section() {
  local t
  for t in softhsm2-util pkcs11-tool; do
    command -v "$t" >/dev/null || { fail "section 7: $t missing (apt-get install softhsm2 opensc; tests/run.sh installs them)"; return; }
  done
  [ -e "$MODULE" ] || { fail "section 7: $MODULE missing (apt-get install softhsm2)"; return; }
  mkdir -p "$H7W/conf" "$H7W/templates" "$H7W/tokens" "$H7W/ra" && chmod 700 "$H7W/ra"
  cp "$ROOT"/conf/templates/*.toml "$H7W/templates/"
  # a private token, the PIN in a 0600 file (as interop/hsm.sh does)
  local pin=4711-estd-ra
  printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$H7W" >"$H7W/softhsm2.conf"
  export SOFTHSM2_CONF="$H7W/softhsm2.conf"
  softhsm2-util --init-token --free --label estd --pin "$pin" --so-pin 5678-so >/dev/null \
    || { fail "section 7: softhsm2-util --init-token"; return; }
  (umask 077; printf '%s\n' "$pin" >"$H7W/pin")
  p11() { pkcs11-tool --module "$MODULE" --token-label estd --login --pin "$pin" "$@" 2>&1; }
  # the RA's P-256 key pair, made in the token (sensitive, not extractable); its public key
  p11 --keypairgen --key-type EC:prime256v1 --label ra-tls --id 7a --usage-sign >"$H7W/keygen.txt" \
    || { fail "section 7: pkcs11-tool --keypairgen ra-tls" "$(tail -3 "$H7W/keygen.txt")"; return; }
  p11 --list-objects --type privkey >"$H7W/objects.txt"
  awk '/^Private Key Object/ { o = 1; next } /label:/ { lbl = $2 } /Access:/ && o && lbl == "ra-tls" { print; o = 0 }' "$H7W/objects.txt" \
    | grep -q "never extractable" && pass "token: the RA's private key ra-tls (P-256), never extractable" \
    || fail "token: ra-tls" "$(grep -A8 ra-tls "$H7W/objects.txt" | head -10)"
  p11 --read-object --type pubkey --label ra-tls -o "$H7W/ra/pub.der" >/dev/null
  openssl pkey -pubin -inform DER -in "$H7W/ra/pub.der" -out "$H7W/ra/pub.pem" 2>/dev/null \
    || { fail "section 7: the token's public key of ra-tls" "$(head -c 200 "$H7W/ra/pub.der" | od -c | head -2)"; return; }
  # the RA certificate for it from libest's demo CA, without the private key
  openssl x509 -new -force_pubkey "$H7W/ra/pub.pem" -subj "/CN=estd RA in HSM" -CA "$LCA" -CAkey "$SRV/estCA/private/cakey.pem" \
    -extfile ra/ra.ext -days 2 -set_serial "0x$(openssl rand -hex 16)" -out "$H7W/ra/ra.pem" 2>"$H7W/ra/x509.err"
  openssl verify -CAfile "$LCA" "$H7W/ra/ra.pem" >/dev/null 2>&1 \
    && [ "$(pubkey_of_cert "$H7W/ra/ra.pem")" = "$(cat "$H7W/ra/pub.pem")" ] \
    && openssl x509 -in "$H7W/ra/ra.pem" -noout -ext extendedKeyUsage | grep -q "CMC Registration Authority" \
    && pass "RA certificate for the token's public key: signed by libest's demo CA, EKU clientAuth + id-kp-cmcRA" \
    || { fail "section 7: RA certificate for the token key" "$(cat "$H7W/ra/x509.err")"; return; }
  # estd.toml: [ca] key in the token; the upstream's client_key names the RA's key there;
  # no user or password (estserver -o: the certificate is the credential)
  awk -v module="$MODULE" -v pinfile="$H7W/pin" '
    /^\[/ { sec = $0 }
    sec == "[ca]" && /^key = ""$/ { print "key = \"pkcs11:token=estd;object=issuing-ca\""; next }
    sec == "[ca]" && /^pkcs11_module = ""$/ { print "pkcs11_module = \"" module "\""; next }
    sec == "[ca]" && /^pin_file = ""$/ { print "pin_file = \"" pinfile "\""; next }
    { print }' "$ROOT/conf/estd.toml" >"$H7W/conf/base.toml"
  hsm_upstream() { # NAME CLIENT_KEY
    printf '\n[upstream.%s]\nkind = "est"\nurl = "https://127.0.0.1:%s/.well-known/est"\n' "$1" "$EPORT"
    printf 'ca_file = "%s"\nclient_cert = "%s"\nclient_key = "%s"\n' "$LCA" "$H7W/ra/ra.pem" "$2"
    printf 'connect_timeout_secs = 3\nrequest_timeout_secs = 5\n'
  }
  { cat "$H7W/conf/base.toml"; hsm_upstream hsmra "pkcs11:object=ra-tls"; } >"$H7W/conf/estd.toml"
  grep -qx 'key = "pkcs11:token=estd;object=issuing-ca"' "$H7W/conf/estd.toml" && grep -qx "pin_file = \"$H7W/pin\"" "$H7W/conf/estd.toml" \
    || { fail "section 7: [ca] of estd.toml not rewritten (conf/estd.toml changed?)" "$(sed -n '/^\[ca\]/,/^\[/p' "$H7W/conf/estd.toml" | grep -v '^#')"; return; }
  ra_template "$H7W" hsm-fwd hsmra
  # estd's CA key made in the token (the same token as the RA's key)
  h7() { ESTD_DATA_DIR="$H7W/data" ESTD_EST_TEMPLATES_DIR="$H7W/templates" "$ESTD_BIN" --config "$H7W/conf/estd.toml" "$@"; }
  h7 ca init --pkcs11 "pkcs11:token=estd;object=issuing-ca" --key-type ec-p256 --self-signed --name "RA HSM Test CA" >"$H7W/init.out" 2>&1 \
    || { fail "section 7: estd ca init --pkcs11" "$(tail -3 "$H7W/init.out")"; return; }
  WORK="$H7W" ROOT="$H7W" start_estd
  H7PID=$PID; SRVPIDS="$SRVPIDS $PID"; PID=""
  echo "device-7-S3cret" | h7 user add dev7 --group est-users --password-stdin >/dev/null 2>&1 || fail "estd user add dev7"
  newkey "$H7W/d7.key"
  code=$(curl -s --max-time 20 --cacert "$ROOTCA" -u dev7:device-7-S3cret -o "$H7W/d7.out" -w '%{http_code}' \
    -H 'Content-Type: application/pkcs10' --data-binary @<(csr_b64 "$H7W/d7.key" /CN=dev7) "https://localhost:$PORT/.well-known/est/hsm-fwd/simpleenroll")
  p7_certs "$H7W/d7.out" >"$H7W/d7.pem"
  if [ "$code" = 200 ] && openssl verify -CAfile "$LCA" "$H7W/d7.pem" >/dev/null 2>&1 && same_key "$H7W/d7.pem" "$H7W/d7.key" \
    && ! openssl verify -CAfile "$ROOTCA" "$H7W/d7.pem" >/dev/null 2>&1; then
    pass "curl simpleenroll on hsm-fwd (Basic dev7): 200, libest's CA, the CSR's key (estserver -o: the handshake signed in the token was the credential)"
  else fail "simpleenroll via the token's RA key" "status $code: $(head -c 300 "$H7W/d7.out") / $(tail -3 "$H7W/stderr")"; fi
  S7=$(serial_of "$H7W/d7.pem")
  si=$(sqlite3 "$H7W/data/estd.db" "SELECT issuer FROM certificates WHERE ltrim(lower(serial),'0') = ltrim('${S7:-x}','0')" 2>&1)
  [ -n "$S7" ] && [ "$si" = hsmra ] && pass "estd's store: certificate $S7 with issuer hsmra" || fail "store issuer (hsmra)" "serial ${S7:-none}: '$si'"
  kill "$H7PID" 2>/dev/null; wait "$H7PID" 2>/dev/null
  # start-ups that must fail: a pkcs11: client_key the token lacks; one with [ca] a file key
  h7_fails() { # WHAT PATTERN DATA CONFIG
    timeout 60 env ESTD_DATA_DIR="$3" ESTD_EST_TEMPLATES_DIR="$H7W/templates" "$ESTD_BIN" --config "$4" serve >"$H7W/start.out" 2>"$H7W/start.err"
    local rc=$?
    [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -qE -- "$2" "$H7W/start.err" && ! grep -qF -- "$pin" "$H7W/start.out" "$H7W/start.err" \
      && pass "start-up refused: $1 (exit $rc: $(grep -E -- "$2" "$H7W/start.err" | head -1 | cut -c1-160))" \
      || fail "start-up: $1" "exit $rc: $(tail -3 "$H7W/start.err")"
  }
  { cat "$H7W/conf/estd.toml"; hsm_upstream hsmbad "pkcs11:object=no-such-key"; } >"$H7W/conf/bad.toml"
  h7_fails "[upstream.hsmbad] client_key names a key the token lacks" 'no-such-key' "$H7W/data" "$H7W/conf/bad.toml"
  { cat "$ROOT/conf/estd.toml"; hsm_upstream hsmra "pkcs11:object=ra-tls"; } >"$H7W/conf/filekey.toml"
  h7_fails "a pkcs11: client_key with [ca] a file key" 'upstream\.hsmra\.client_key: .*\[ca\] key names none' "$H7W/data-filekey" "$H7W/conf/filekey.toml"
}
hsm_section
echo "(section 7: ${SECONDS}s)"

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
