#!/usr/bin/env bash
# cisco/libest 3.2.0p, the EST library inside many routers, switches and IoT stacks, against
# estd in both directions, every result checked with openssl:
#   1. libest's estclient -> a running `estd serve` (fresh data directory, free local port):
#      cacerts, simpleenroll (simple and with /csrattrs first), simplereenroll with the TLS
#      client certificate, serverkeygen, csrattrs; without a label and with one; a wrong
#      password (a clean failure, found in the audit log).
#   2. `estd client` -> libest's estserver (its demo CA): cacerts with the bootstrap by
#      fingerprint, enroll, reenroll, serverkeygen (its PKCS#1 key), csrattrs (its trailing
#      NUL), and `estd client test`, the MDM connector's test.
# libest is built once from ../shared/peers/libest into target/libest and reused while
# present (LIBEST_DIR and LIBEST_PEERS override both places). Without that source (a clone
# without ../shared) the stage is SKIPPED: it says so, counts nothing as passed and exits 77.
# Prints PASS/FAIL per check and ends with "N passed, M failed".
#
#   interop/libest.sh                 # builds target/debug/estd first
#   ESTD_BIN=/path/to/estd interop/libest.sh
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. interop/libest-build.sh
ensure_libest "libest"
head -1 "$LIBEST/libest/BUILD-INFO" 2>/dev/null

. interop/lib.sh
need_tools openssl base64 xxd sqlite3
ESTPID=""
cleanup_all() { [ -n "$ESTPID" ] && kill "$ESTPID" 2>/dev/null && wait "$ESTPID" 2>/dev/null; cleanup; }
trap cleanup_all EXIT
cd "$WORK"

pubkey_of_cert() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }
pubkey_of_key() { openssl pkey -in "$1" -pubout 2>/dev/null; }
fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2; }
# the fingerprints of every certificate in a PEM file
fps() {
  local d; d=$(mktemp -d -p "$WORK")
  awk -v d="$d" '/BEGIN CERTIFICATE/{n++} n{print > (d "/" n ".pem")}' "$1"
  for f in "$d"/*.pem; do fp "$f"; done
}
# estclient's exit status is 0 even when an operation fails: its output says so
est_failed() { grep -q "failed with code" "$1"; }

# ===================================================== 1. libest estclient -> estd ====
# libest takes a server-generated key only when its base64 is at least 256 characters long
# (EST_MIN_CLIENT_PKEY_LEN in est.h): an RSA key, never an EC one (a P-256 PKCS#8 is 187).
# An operator who serves libest devices gives their templates an RSA server_keygen_key, as
# the default template and `routers` do here; `devices` keeps EC P-256 and shows the refusal.
printf '\nserver_keygen_key = "rsa-2048"\n' >>"$WORK/templates/default.toml"
cat >"$WORK/templates/routers.toml" <<'TOML'
name = "routers"
key_types = ["ec-p256", "rsa-2048", "rsa-3072"]
server_keygen_key = "rsa-3072"
validity_days = 30
san_style = "dns"
san_optional = true
dns_names = ["%cn%.routers.example.com"]
TOML
# zero-touch: a template that trusts a test vendor's IDevIDs (made with openssl)
. "$ROOT/interop/vendor-pki.sh"
vendor_ca "$WORK/vendor" acme && idevid "$WORK/vendor" acme SN-2001 && idevid "$WORK/vendor" acme SN-2002
# libest's client sends its leaf only (the first certificate of -c): the vendor's issuing CA
# is listed with the root, as an operator does for such devices
cat "$WORK/vendor/acme-root.pem" "$WORK/vendor/acme-issuing.pem" >"$WORK/templates/acme-idevid-cas.pem"
cat >"$WORK/templates/zt.toml" <<'TOML'
name = "zt"
key_types = ["ec-p256"]
validity_days = 30
trust_vendor_cas = ["acme-idevid-cas.pem"]
TOML
# enrollment codes (kiosk) and bearer tokens (mdm-token, the identity provider's key made
# with openssl)
code_and_token_templates "$WORK"
start_estd
ESTD="$ESTD_BIN --config $ROOT/conf/estd.toml"
export EST_OPENSSL_CACERT="$ROOTCA"
# bounded: a libest that loops (its example client's regular enrollment never ends on a
# CsrAttrs that does not end with an OID) must not fill the disk or hang the stage
estc() { timeout 60 "$LIBEST/bin/estclient" -s 127.0.0.1 -p "$PORT" "$@" 2>&1 | head -c 1000000; }

# /cacerts: the base64 body as received, decoded by openssl: the chain estd serves
mkdir -p c1
estc -g -o c1 >out.txt
if ! est_failed out.txt && base64 -d c1/cacert-0-0.pkcs7 2>/dev/null | openssl pkcs7 -inform DER -print_certs >cacerts.pem 2>/dev/null \
  && [ "$(grep -c 'BEGIN CERTIFICATE' cacerts.pem)" = 2 ] && openssl verify -CAfile "$ROOTCA" cacerts.pem >/dev/null 2>&1 \
  && fps cacerts.pem | grep -qx "$(fp "$ROOTCA")"; then
  pass "estclient -g (/cacerts): 2 CA certificates, the root's fingerprint among them"
else fail "estclient cacerts" "$(tail -5 out.txt)"; fi

# /csrattrs: a template that asks for a key type, and one that asks nothing (empty SEQUENCE)
mkdir -p a1 a2
estc -a -o a1 >out.txt
if ! est_failed out.txt && base64 -d a1/csr-0-0.base64 2>/dev/null | openssl asn1parse -inform DER 2>/dev/null | grep -q prime256v1; then
  pass "estclient -a (/csrattrs, default): asks for a P-256 key"
else fail "estclient csrattrs" "$(tail -5 out.txt)"; fi
estc -a --path-seg devices -o a2 >out.txt
if ! est_failed out.txt && [ "$(base64 -d a2/csr-0-0.base64 2>/dev/null | xxd -p)" = 3000 ]; then
  pass "estclient -a --path-seg devices: an empty SEQUENCE (200), not a failure"
else fail "estclient csrattrs devices" "$(tail -5 out.txt)"; fi

# /simpleenroll with a key made by openssl: the certificate carries that key and chains
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out k1.pem 2>/dev/null
mkdir -p e1
estc -e -u admin -h "$PASSWORD" --common-name admin -x k1.pem -o e1 --pem-output >out.txt
if ! est_failed out.txt && [ -s e1/cert-0-0.pem ] && openssl verify -CAfile "$ROOTCA" -untrusted cacerts.pem e1/cert-0-0.pem >/dev/null 2>&1 \
  && [ "$(pubkey_of_cert e1/cert-0-0.pem)" = "$(pubkey_of_key k1.pem)" ] \
  && openssl x509 -in e1/cert-0-0.pem -noout -subject | grep -q "CN *= *admin"; then
  pass "estclient -e (/simpleenroll, Basic after the 401 challenge): certificate with the CSR's key, chains to /cacerts"
else fail "estclient simpleenroll" "$(tail -5 out.txt)"; fi

# regular enrollment: /csrattrs first, the CSR built with what it asks for (a P-256 key;
# libest's example client names itself CN=EST-client, which an admin may ask for)
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out k2.pem 2>/dev/null
mkdir -p e2
estc -e -a -u admin -h "$PASSWORD" -x k2.pem -o e2 --pem-output >out.txt
if ! est_failed out.txt && openssl verify -CAfile "$ROOTCA" -untrusted cacerts.pem e2/cert-0-0.pem >/dev/null 2>&1 \
  && [ "$(pubkey_of_cert e2/cert-0-0.pem)" = "$(pubkey_of_key k2.pem)" ]; then
  pass "estclient -e -a (/csrattrs, then /simpleenroll with what it asks for)"
else fail "estclient regular enroll" "$(tail -5 out.txt)"; fi

# an RSA key under a label
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out k3.pem 2>/dev/null
mkdir -p e3
estc -e -u admin -h "$PASSWORD" --common-name admin --path-seg devices -x k3.pem -o e3 --pem-output >out.txt
if ! est_failed out.txt && openssl verify -CAfile "$ROOTCA" -untrusted cacerts.pem e3/cert-0-0.pem >/dev/null 2>&1 \
  && [ "$(pubkey_of_cert e3/cert-0-0.pem)" = "$(pubkey_of_key k3.pem)" ]; then
  pass "estclient -e --path-seg devices with an RSA-2048 key"
else fail "estclient enroll RSA with a label" "$(tail -5 out.txt)"; fi

# /simplereenroll: the TLS client certificate is the one renewed; same subject and key
mkdir -p r1
estc -r -c e1/cert-0-0.pem -k k1.pem -o r1 --pem-output >out.txt
if ! est_failed out.txt && openssl verify -CAfile "$ROOTCA" -untrusted cacerts.pem r1/cert-0-0.pem >/dev/null 2>&1 \
  && [ "$(openssl x509 -in r1/cert-0-0.pem -noout -subject)" = "$(openssl x509 -in e1/cert-0-0.pem -noout -subject)" ] \
  && [ "$(openssl x509 -in r1/cert-0-0.pem -noout -serial)" != "$(openssl x509 -in e1/cert-0-0.pem -noout -serial)" ] \
  && [ "$(pubkey_of_cert r1/cert-0-0.pem)" = "$(pubkey_of_key k1.pem)" ]; then
  pass "estclient -r (/simplereenroll, TLS client certificate): same subject and key, new serial"
else fail "estclient simplereenroll" "$(tail -5 out.txt)"; fi
mkdir -p r2
estc -r --path-seg devices -c e3/cert-0-0.pem -k k3.pem -o r2 --pem-output >out.txt
if ! est_failed out.txt && [ "$(pubkey_of_cert r2/cert-0-0.pem)" = "$(pubkey_of_key k3.pem)" ] \
  && openssl verify -CAfile "$ROOTCA" -untrusted cacerts.pem r2/cert-0-0.pem >/dev/null 2>&1; then
  pass "estclient -r --path-seg devices (/devices/simplereenroll)"
else fail "estclient simplereenroll with a label" "$(tail -5 out.txt)"; fi

# /serverkeygen: the key estd made matches the certificate it issued
skg_ok() { # DIR: libest saved the key part as received (base64 of DER) and the certificate
  local key=$1/key-0-0.key cert=$1/cert-0-0.pem
  [ -s "$key" ] && base64 -d "$key" >"$1/key.der" 2>/dev/null || return 1
  # PKCS#8 PrivateKeyInfo (version 0, then an AlgorithmIdentifier), not PKCS#1
  openssl asn1parse -inform DER -in "$1/key.der" 2>/dev/null | sed -n 2,3p | tr -s ' ' | grep -q "INTEGER :00" || return 1
  openssl asn1parse -inform DER -in "$1/key.der" 2>/dev/null | sed -n 3p | grep -q "cons: SEQUENCE" || return 1
  openssl pkey -inform DER -in "$1/key.der" -out "$1/key.pem" 2>/dev/null || return 1
  [ "$(pubkey_of_cert "$cert")" = "$(pubkey_of_key "$1/key.pem")" ] \
    && openssl verify -CAfile "$ROOTCA" -untrusted cacerts.pem "$cert" >/dev/null 2>&1
}
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out k4.pem 2>/dev/null
mkdir -p q1 q2 q3
estc -q -u admin -h "$PASSWORD" --common-name admin -x k4.pem -o q1 --pem-output >out.txt
if ! est_failed out.txt && skg_ok q1 && [ "$(pubkey_of_cert q1/cert-0-0.pem)" != "$(pubkey_of_key k4.pem)" ] \
  && openssl pkey -in q1/key.pem -noout -text 2>/dev/null | grep -q "Private-Key: (2048 bit"; then
  pass "estclient -q (/serverkeygen): the server's RSA-2048 key, PKCS#8, matches its certificate (not the CSR's key)"
else fail "estclient serverkeygen" "$(tail -5 out.txt)"; fi
estc -q -u admin -h "$PASSWORD" --common-name admin --path-seg eap-tls -x k4.pem -o q2 --pem-output >out.txt
if est_failed out.txt && grep -q "failed with code.*EST_ERR_HTTP_BAD_REQ" out.txt; then
  # eap-tls needs a MAC address SAN that estclient cannot put in a CSR: a clean 400
  pass "estclient -q --path-seg eap-tls without the MAC SAN: refused cleanly (400, EST_ERR_HTTP_BAD_REQ)"
else fail "estclient serverkeygen eap-tls" "$(tail -5 out.txt)"; fi
mkdir -p q3
estc -q -u admin -h "$PASSWORD" --common-name admin --path-seg routers -x k4.pem -o q3 --pem-output >out.txt
if ! est_failed out.txt && skg_ok q3 && openssl pkey -in q3/key.pem -noout -text 2>/dev/null | grep -q "Private-Key: (3072 bit"; then
  pass "estclient -q --path-seg routers (/routers/serverkeygen): an RSA-3072 key matching its certificate"
else fail "estclient serverkeygen with a label" "$(tail -5 out.txt)"; fi
mkdir -p q4
estc -q -u admin -h "$PASSWORD" --common-name admin --path-seg devices -x k4.pem -o q4 --pem-output >out.txt
if est_failed out.txt && grep -q "EST_ERR_ZERO_LENGTH_BUF" out.txt && grep -q "data too short" out.txt; then
  pass "estclient -q --path-seg devices (an EC P-256 key): libest refuses keys under 256 base64 characters (known limit)"
else fail "estclient serverkeygen EC" "$(tail -5 out.txt)"; fi

# manual approval: 202 + Retry-After (read case-sensitively by libest); libest sleeps that
# long and asks again; approved meanwhile, the retry gets the certificate
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out k5.pem 2>/dev/null
mkdir -p m1
estc -v -e -u admin -h "$PASSWORD" --common-name admin --path-seg manual -x k5.pem -o m1 --pem-output >m1.txt &
EPID=$!
ID=""
for _ in $(seq 1 40); do
  ID=$($ESTD pending list 2>/dev/null | awk -F'\t' '$3 == "manual" {print $1; exit}')
  [ -n "$ID" ] && break
  sleep 0.1
done
[ -n "$ID" ] && $ESTD pending approve "$ID" >/dev/null 2>&1
wait "$EPID"
if [ -n "$ID" ] && grep -q "Retry-After delay seconds = 5" m1.txt && ! est_failed m1.txt \
  && [ "$(pubkey_of_cert m1/cert-0-0.pem)" = "$(pubkey_of_key k5.pem)" ] \
  && openssl verify -CAfile "$ROOTCA" -untrusted cacerts.pem m1/cert-0-0.pem >/dev/null 2>&1; then
  pass "estclient -e --path-seg manual: 202 with Retry-After 5, approved meanwhile, the retry gets the certificate"
else fail "manual approval with libest" "request ${ID:-not found}: $(grep -a 'Retry-After\|failed with' m1.txt | tail -3)"; fi

# a wrong password: a clean failure on the client, a 401 in estd's audit log
mkdir -p w1
estc -e -u admin -h "wrong-password" --common-name admin -x k1.pem -o w1 >out.txt
if est_failed out.txt && grep -q "EST_ERR_AUTH_FAIL" out.txt && [ ! -e w1/cert-0-0 ] && [ ! -e w1/cert-0-0.pem ]; then
  pass "estclient with a wrong password: EST_ERR_AUTH_FAIL, no certificate"
else fail "estclient wrong password" "$(tail -5 out.txt)"; fi
$ESTD requests --since 10m --failed >req.txt 2>/dev/null
# (libest first asks without credentials: those 401s say so; this one names the wrong password)
grep "simpleenroll" req.txt | grep " 401 " | grep -q "user name or password is wrong" \
  && pass "estd requests --failed: the wrong password is audited (401, with the reason)" || fail "audit of the wrong password" "$(tail -3 req.txt)"
# an ordinary user (est-users, no admin group): its own name works; another name is a 403,
# which libest has no code for (it knows 200, 202, 204, 400, 401, 404, 423, 500, 502, 504):
# a clean failure, EST_ERR_UNKNOWN, no certificate, the reason in estd's audit log
echo "Dev-password-1" | $ESTD user add dev --group est-users --password-stdin >/dev/null 2>&1
mkdir -p u1 u2
estc -e -u dev -h Dev-password-1 --common-name dev -x k1.pem -o u1 --pem-output >out.txt
! est_failed out.txt && openssl x509 -in u1/cert-0-0.pem -noout -subject 2>/dev/null | grep -q "CN *= *dev" \
  && pass "estclient as an ordinary user, its own name: issued" || fail "ordinary user" "$(tail -3 out.txt)"
estc -e -u dev -h Dev-password-1 --common-name admin -x k1.pem -o u2 --pem-output >out.txt
$ESTD requests --since 10m --user dev --failed >req.txt 2>/dev/null
if grep -q "failed with code.*EST_ERR_UNKNOWN" out.txt && [ ! -e u2/cert-0-0.pem ] \
  && grep " 403 " req.txt | grep -q "does not match the provided user name"; then
  pass "estclient as an ordinary user asking for CN=admin: refused (403, audited; libest says EST_ERR_UNKNOWN)"
else fail "ordinary user, another name" "$(tail -3 out.txt) / $(tail -2 req.txt)"; fi

# the unknown label is a 404 to libest too
mkdir -p n1
estc -e -u admin -h "$PASSWORD" --common-name admin --path-seg nosuchlabel -x k1.pem -o n1 >out.txt
grep -q "failed with code.*EST_ERR_HTTP_NOT_FOUND" out.txt && [ ! -e n1/cert-0-0.pem ] \
  && pass "estclient --path-seg nosuchlabel: refused (404, EST_ERR_HTTP_NOT_FOUND)" || fail "unknown label" "$(tail -5 out.txt)"
# zero-touch: the device's IDevID (leaf and issuing CA) as libest's TLS client certificate,
# no user or password: enrolled under its serial number, and the serial on the deny-list
# refuses it (403: libest says EST_ERR_UNKNOWN)
mkdir -p z1 z2
estc -e -c "$WORK/vendor/SN-2001-chain.pem" -k "$WORK/vendor/SN-2001.key" --common-name SN-2001 --path-seg zt -x k1.pem -o z1 --pem-output >out.txt
if ! est_failed out.txt && openssl verify -CAfile "$ROOTCA" -untrusted cacerts.pem z1/cert-0-0.pem >/dev/null 2>&1 \
  && openssl x509 -in z1/cert-0-0.pem -noout -subject | grep -q "CN *= *SN-2001" \
  && sqlite3 "$ESTD_DATA_DIR/estd.db" "SELECT requester FROM certificates WHERE template = 'zt'" | grep -qx idevid:SN-2001; then
  pass "estclient -e with an IDevID as the TLS client certificate (no password): CN=SN-2001, requester idevid:SN-2001"
else fail "estclient IDevID enroll" "$(tail -5 out.txt)"; fi
$ESTD device add SN-2002 --template zt --deny >/dev/null 2>&1
estc -e -c "$WORK/vendor/SN-2002-chain.pem" -k "$WORK/vendor/SN-2002.key" --common-name SN-2002 --path-seg zt -x k1.pem -o z2 --pem-output >out.txt
if est_failed out.txt && [ ! -e z2/cert-0-0.pem ] \
  && sqlite3 "$ESTD_DATA_DIR/estd.db" "SELECT status || reason FROM audit_events WHERE principal = 'idevid:SN-2002'" | grep -q "^403.*deny-list"; then
  pass "estclient with a denied IDevID: refused, audited (403, idevid:SN-2002)"
else fail "estclient denied IDevID" "$(tail -5 out.txt)"; fi
# a bearer token: libest's credential-less first try gets a 401 whose first challenge is
# Bearer, and it answers with `Bearer <base64 of the token>` (its tokens are at most 512
# characters: an EdDSA one fits, an RS256 one would not)
TOKEN=$(idp_token "$WORK" "$(printf '{"iss":"https://idp.test","aud":"estd","sub":"mdm-1","groups":["est-users"],"exp":%d}' $(( $(date +%s) + 300 )))")
mkdir -p t1 t2
estc -e --auth-token "$TOKEN" --common-name mdm-1 --path-seg mdm-token -x k1.pem -o t1 --pem-output >out.txt
if [ "${#TOKEN}" -le 512 ] && ! est_failed out.txt && openssl verify -CAfile "$ROOTCA" -untrusted cacerts.pem t1/cert-0-0.pem >/dev/null 2>&1 \
  && sqlite3 "$ESTD_DATA_DIR/estd.db" "SELECT requester FROM certificates WHERE template = 'mdm-token'" | grep -qx token:mdm-1; then
  pass "estclient --auth-token (a ${#TOKEN}-character EdDSA JWT): issued, requester token:mdm-1"
else fail "estclient --auth-token" "$(tail -5 out.txt)"; fi
EXPIRED=$(idp_token "$WORK" "$(printf '{"iss":"https://idp.test","aud":"estd","sub":"mdm-1","groups":["est-users"],"exp":%d}' $(( $(date +%s) - 600 )))")
estc -e --auth-token "$EXPIRED" --common-name mdm-1 --path-seg mdm-token -x k1.pem -o t2 --pem-output >out.txt
est_failed out.txt && [ ! -e t2/cert-0-0.pem ] && pass "estclient --auth-token with an expired token: refused" || fail "estclient expired token" "$(tail -3 out.txt)"

# an enrollment code as libest's Basic password (user name: the code's id), after its
# credential-less first try; the same code again fails
$ESTD code issue --template kiosk --count 1 --csv code.csv >/dev/null 2>&1
CID=$(sed -n 2p code.csv | cut -d, -f1); CODE=$(sed -n 2p code.csv | cut -d, -f2)
mkdir -p k1 k2
estc -e -u "$CID" -h "$CODE" --common-name kiosk-1 --path-seg kiosk -x k1.pem -o k1 --pem-output >out.txt
if ! est_failed out.txt && openssl verify -CAfile "$ROOTCA" -untrusted cacerts.pem k1/cert-0-0.pem >/dev/null 2>&1 \
  && sqlite3 "$ESTD_DATA_DIR/estd.db" "SELECT requester FROM certificates WHERE template = 'kiosk'" | grep -qx "code:$CID"; then
  pass "estclient -e with an enrollment code as the password: issued, requester code:$CID"
else fail "estclient with an enrollment code" "$(tail -5 out.txt)"; fi
estc -e -u "$CID" -h "$CODE" --common-name kiosk-2 --path-seg kiosk -x k1.pem -o k2 --pem-output >out.txt
est_failed out.txt && [ ! -e k2/cert-0-0.pem ] && pass "estclient with the same code again: refused" || fail "estclient code reuse" "$(tail -3 out.txt)"
kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=""

# ===================================================== 2. estd client -> libest estserver ====
SRV="$LIBEST/estsrv"
EPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18085)
(
  cd "$SRV" && EST_TRUSTED_CERTS=./trustedcerts.crt EST_CACERTS_RESP=./estCA/cacert.crt \
    EST_OPENSSL_CACONFIG=./estExampleCA.cnf exec "$LIBEST/bin/estserver" \
    -c estCA/private/estservercertandkey.pem -k estCA/private/estservercertandkey.pem -r estrealm -b -p "$EPORT"
) >"$WORK/estserver.log" 2>&1 &
ESTPID=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$EPORT") 2>/dev/null && break
  kill -0 "$ESTPID" 2>/dev/null || break
  sleep 0.1
done
if ! kill -0 "$ESTPID" 2>/dev/null; then
  fail "estserver did not start" "$(tail -5 "$WORK/estserver.log")"
  echo "$passed passed, $failed failed"; exit 1
fi
echo "libest estserver on port $EPORT"
LCA="$SRV/estCA/cacert.crt"
lclient() { EST_CLIENT_PASSWORD=estpwd "$ESTD_BIN" client --server 127.0.0.1 --port "$EPORT" "$@"; }

# bootstrap (RFC 7030 §4.1.1): trust /cacerts by the fingerprint of libest's CA
lclient cacerts --out boot.pem >out.txt 2>err.txt; code=$?
[ "$code" = 3 ] && [ ! -e boot.pem ] && grep -q "NOT TRUSTED" err.txt \
  && pass "estd client cacerts without a fingerprint: not trusted (exit 3)" || fail "bootstrap untrusted" "exit $code: $(cat err.txt)"
lclient --trust-fingerprint "$(fp "$LCA")" cacerts --out boot.pem >out.txt 2>err.txt; code=$?
if [ "$code" = 0 ] && fps boot.pem | grep -qx "$(fp "$LCA")"; then
  pass "estd client --trust-fingerprint cacerts: libest's CA saved"
else fail "bootstrap by fingerprint" "exit $code: $(cat err.txt out.txt)"; fi

lclient --cacert "$LCA" csrattrs >attrs.txt 2>&1; code=$?
[ "$code" = 0 ] && ! grep -q "FAIL" attrs.txt \
  && pass "estd client csrattrs (libest's answer ends in a NUL byte): $(head -1 attrs.txt)" || fail "csrattrs from libest" "exit $code: $(cat attrs.txt)"

lclient --cacert "$LCA" --user estuser enroll --cn dev-1 --san dns:dev-1.example --out l1.pem --key-out l1.key >out.txt; code=$?
if [ "$code" = 0 ] && openssl verify -CAfile boot.pem l1.pem >/dev/null 2>&1 && [ "$(pubkey_of_cert l1.pem)" = "$(pubkey_of_key l1.key)" ] \
  && openssl x509 -in l1.pem -noout -subject | grep -q "dev-1"; then
  pass "estd client enroll at libest: certificate with our key, chains to its /cacerts"
else fail "enroll at libest" "exit $code: $(cat out.txt)"; fi

lclient --cacert "$LCA" --user estuser reenroll --cert l1.pem --key l1.key --out l2.pem >out.txt; code=$?
if [ "$code" = 0 ] && openssl verify -CAfile boot.pem l2.pem >/dev/null 2>&1 && [ "$(pubkey_of_cert l2.pem)" = "$(pubkey_of_key l1.key)" ] \
  && [ "$(openssl x509 -in l2.pem -noout -serial)" != "$(openssl x509 -in l1.pem -noout -serial)" ]; then
  pass "estd client reenroll at libest: same key, new serial"
else fail "reenroll at libest" "exit $code: $(cat out.txt)"; fi

lclient --cacert "$LCA" --user estuser serverkeygen --cn dev-2 --out l3.pem --key-out l3.key >out.txt; code=$?
if [ "$code" = 0 ] && [ "$(pubkey_of_cert l3.pem)" = "$(pubkey_of_key l3.key)" ] && openssl verify -CAfile boot.pem l3.pem >/dev/null 2>&1 \
  && [ "$(stat -c %a l3.key)" = 600 ]; then
  pass "estd client serverkeygen at libest (a PKCS#1 key): the key matches the certificate"
else fail "serverkeygen at libest" "exit $code: $(cat out.txt)"; fi

EST_CLIENT_PASSWORD=wrong "$ESTD_BIN" client --server 127.0.0.1 --port "$EPORT" --cacert "$LCA" --user estuser \
  enroll --cn dev-3 --out l4.pem >out.txt; code=$?
[ "$code" = 1 ] && grep -q "^FAIL: the server answered 401" out.txt && [ ! -e l4.pem ] \
  && pass "estd client with a wrong password at libest: FAIL 401" || fail "wrong password at libest" "exit $code: $(cat out.txt)"

lclient --cacert "$LCA" --user estuser test --cert-name TestCert --domain corp.example.com --out-dir . >out.txt; code=$?
if [ "$code" = 0 ] && grep -q "^PASS" out.txt && openssl verify -CAfile boot.pem TestCert.pem >/dev/null 2>&1 \
  && [ "$(pubkey_of_cert TestCert.pem)" = "$(pubkey_of_key TestCert.key)" ]; then
  pass "estd client test (the MDM connector's test) at libest: PASS, certificate and key saved"
else fail "test at libest" "exit $code: $(cat out.txt)"; fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
