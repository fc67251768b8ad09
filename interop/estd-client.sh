#!/usr/bin/env bash
# `estd client` against a running `estd serve` (fresh data directory, free local port): every
# operation, the RFC 7030 §4.1.1 bootstrap, and the MDM connector's test flow from both ends
# (`estd client test` over EST, `POST /api/v1/test-certificate` with curl), each failure
# found again in `estd requests` under the request id the client printed.
# Prints PASS/FAIL per check and ends with "N passed, M failed"; exits non-zero on a failure.
#
#   interop/estd-client.sh            # builds target/debug/estd first
#   ESTD_BIN=/path/to/estd interop/estd-client.sh
set -u
cd "$(dirname "$0")/.."
. interop/lib.sh
need_tools curl openssl
cd "$WORK"

cat >"$WORK/templates/connector.toml" <<'TOML'
name = "connector"
description = "MDM connector, Other: UPN and a URI from the variables"
key_types = ["ec-p256", "rsa-2048"]
validity_days = 30
cn_must_match_user = false
san_style = "other"
san_pattern = ["upn:%uname%@%domain%", "uri:urn:mdm:%cn%"]
fill_missing = "Test"
allowed_groups = ["mdm-connectors"]
upn_names = ["*"]
TOML
start_estd
ESTD="$ESTD_BIN --config $ROOT/conf/estd.toml"
# the MDM connector's account: the mdm and connector templates are for mdm-connectors only
echo "S3cret-for-mdm" | $ESTD user add mdm --group mdm-connectors --password-stdin >/dev/null 2>&1

# the client: everything common in one place; the password travels in the environment
client() { EST_CLIENT_PASSWORD="${CPW:-$PASSWORD}" "$ESTD_BIN" client --server 127.0.0.1 --port "$PORT" "$@"; }

# --- trust: bootstrap (RFC 7030 §4.1.1) -----------------------------------------------------
client cacerts --out boot.pem >out.txt 2>err.txt; code=$?
[ "$code" = 3 ] && grep -q "NOT TRUSTED" err.txt && grep -q "SHA-256" err.txt && [ ! -e boot.pem ] \
  && pass "bootstrap without a fingerprint: shows the CA fingerprints, trusts nothing (exit 3)" || fail "bootstrap untrusted" "exit $code: $(cat err.txt)"
ROOT_FP=$(openssl x509 -in "$ROOTCA" -noout -fingerprint -sha256 | cut -d= -f2)
# another first byte (00, unless the root's fingerprint starts with 00: then 11)
WRONG_FIRST=00; [ "${ROOT_FP:0:2}" = 00 ] && WRONG_FIRST=11
client --trust-fingerprint "$WRONG_FIRST:${ROOT_FP:3}" cacerts --out boot.pem >out.txt 2>err.txt; code=$?
[ "$code" = 3 ] && [ ! -e boot.pem ] && pass "bootstrap with a wrong fingerprint: refused (exit 3)" || fail "bootstrap wrong fingerprint" "exit $code"
client --trust-fingerprint "$ROOT_FP" cacerts --out boot.pem >out.txt 2>err.txt; code=$?
if [ "$code" = 0 ] && grep -q "Trusted" err.txt && [ "$(grep -c 'BEGIN CERTIFICATE' boot.pem)" = 2 ] \
  && openssl verify -CAfile "$ROOTCA" boot.pem >/dev/null 2>&1; then
  pass "bootstrap with the root's fingerprint (as openssl prints it): 2 CA certificates saved"
else fail "bootstrap trusted" "exit $code: $(cat err.txt out.txt)"; fi
# a fingerprint in lower case without colons works too
client --trust-fingerprint "$(echo "$ROOT_FP" | tr -d : | tr A-F a-f)" csrattrs >/dev/null 2>&1 \
  && pass "bootstrap: fingerprint in lower case without colons" || fail "fingerprint spelling"

# --- the operations, with --cacert ------------------------------------------------------
client --cacert "$ROOTCA" cacerts --out cacerts.pem >out.txt 2>&1 \
  && cmp -s <(openssl x509 -in cacerts.pem -noout -fingerprint -sha256) <(openssl x509 -in boot.pem -noout -fingerprint -sha256) \
  && pass "cacerts with --cacert: the same chain as the bootstrap" || fail "cacerts" "$(cat out.txt)"
client --cacert "$ROOTCA" --label eap-tls csrattrs >attrs.txt 2>&1 \
  && grep -q "challengePassword\|extensionRequest\|macAddress\|subjectAltName\|ecPublicKey\|rsaEncryption" attrs.txt \
  && pass "csrattrs eap-tls: $(head -1 attrs.txt)" || fail "csrattrs" "$(cat attrs.txt)"
client --cacert "$ROOTCA" --label devices csrattrs >attrs.txt 2>&1 && grep -q "no particular attributes" attrs.txt \
  && pass "csrattrs devices: an empty SEQUENCE → asks nothing" || fail "csrattrs empty" "$(cat attrs.txt)"

client --cacert "$ROOTCA" --user admin enroll --cn admin --san dns:admin.example.com --out admin.pem --key-out admin.key >out.txt 2>&1; code=$?
if [ "$code" = 0 ] && openssl verify -CAfile "$ROOTCA" -untrusted cacerts.pem admin.pem >/dev/null 2>&1 \
  && [ "$(openssl x509 -in admin.pem -noout -pubkey)" = "$(openssl pkey -in admin.key -pubout 2>/dev/null)" ] \
  && [ "$(stat -c %a admin.key)" = 600 ] && openssl x509 -in admin.pem -noout -ext subjectAltName | grep -q "DNS:admin.example.com"; then
  pass "enroll: certificate verifies, carries the new key (0600) and the SAN"
else fail "enroll" "exit $code: $(cat out.txt)"; fi
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
client --cacert "$ROOTCA" --user admin enroll --cn admin --key rsa.key --out rsa.pem >out.txt 2>&1 \
  && [ "$(openssl x509 -in rsa.pem -noout -pubkey)" = "$(openssl pkey -in rsa.key -pubout 2>/dev/null)" ] \
  && pass "enroll with an openssl RSA key (--key)" || fail "enroll --key" "$(cat out.txt)"

client --cacert "$ROOTCA" reenroll --cert admin.pem --key admin.key --out renewed.pem >out.txt 2>&1; code=$?
if [ "$code" = 0 ] && [ "$(openssl x509 -in renewed.pem -noout -subject)" = "$(openssl x509 -in admin.pem -noout -subject)" ] \
  && [ "$(openssl x509 -in renewed.pem -noout -serial)" != "$(openssl x509 -in admin.pem -noout -serial)" ] \
  && [ "$(openssl x509 -in renewed.pem -noout -pubkey)" = "$(openssl pkey -in admin.key -pubout 2>/dev/null)" ]; then
  pass "reenroll (TLS client certificate): same subject and key, new serial"
else fail "reenroll" "exit $code: $(cat out.txt)"; fi
client --cacert "$ROOTCA" reenroll --cert renewed.pem --key admin.key --new-key --out renewed2.pem --key-out new.key >out.txt 2>&1 \
  && [ "$(openssl x509 -in renewed2.pem -noout -pubkey)" = "$(openssl pkey -in new.key -pubout 2>/dev/null)" ] \
  && pass "reenroll --new-key: the renewed certificate carries the new key" || fail "reenroll --new-key" "$(cat out.txt)"

client --cacert "$ROOTCA" --user admin --label devices serverkeygen --cn admin --out skg.pem --key-out skg.key >out.txt 2>&1; code=$?
if [ "$code" = 0 ] && [ "$(openssl x509 -in skg.pem -noout -pubkey)" = "$(openssl pkey -in skg.key -pubout 2>/dev/null)" ] \
  && [ "$(stat -c %a skg.key)" = 600 ]; then
  pass "serverkeygen: the key the server generated matches its certificate"
else fail "serverkeygen" "exit $code: $(cat out.txt)"; fi

client --cacert "$ROOTCA" --user admin --label manual enroll --cn admin --out m.pem >out.txt 2>&1; code=$?
[ "$code" = 4 ] && grep -q "PENDING" out.txt && pass "manual approval: PENDING (exit 4) with the retry delay" || fail "pending" "exit $code: $(cat out.txt)"

CPW=wrong client --cacert "$ROOTCA" --user admin enroll --cn admin --out x.pem >out.txt 2>&1; code=$?
[ "$code" = 1 ] && grep -q "^FAIL: the server answered 401" out.txt && grep -q "request id" out.txt \
  && pass "wrong password: FAIL 401 with the server's reason and request id" || fail "401" "exit $code: $(cat out.txt)"

# --- the MDM connector's test, from the device side (EST) -------------------------------
export CPW=S3cret-for-mdm
client --cacert "$ROOTCA" --user mdm --label mdm test --cert-name TestCert --domain corp.example.com \
  --email jdoe@example.com --user-name jdoe --san-style upn-email --out-dir . >out.txt 2>&1; code=$?
if [ "$code" = 0 ] && grep -q "^PASS" out.txt && openssl verify -CAfile "$ROOTCA" -untrusted cacerts.pem TestCert.pem >/dev/null 2>&1 \
  && openssl x509 -in TestCert.pem -noout -ext subjectAltName | grep -q "email:jdoe@example.com" \
  && openssl x509 -in TestCert.pem -noout -ext subjectAltName | grep -q "othername: UPN::jdoe@corp.example.com\|othername: UPN:jdoe@corp.example.com\|othername:.*jdoe@corp.example.com"; then
  pass "test (UPN and Email) against template mdm: PASS, certificate and key saved"
else fail "test upn-email" "exit $code: $(cat out.txt)"; fi
client --cacert "$ROOTCA" --user mdm --label connector test --cert-name Kiosk7 --san-style other \
  --san-pattern 'upn:%uname%@%domain%' --san-pattern 'uri:urn:mdm:%cn%' --out-dir . >out.txt 2>&1; code=$?
if [ "$code" = 0 ] && openssl x509 -in Kiosk7.pem -noout -ext subjectAltName | grep -q "URI:urn:mdm:Kiosk7" \
  && openssl x509 -in Kiosk7.pem -noout -ext subjectAltName | grep -q "mdm@Test"; then
  pass "test (Other) with --user as %uname% and Test for the missing domain: PASS"
else fail "test other" "exit $code: $(cat out.txt)"; fi
client --cacert "$ROOTCA" --user mdm --label mdm test --cert-name "Test Cert" --san-style upn >out.txt 2>&1; code=$?
[ "$code" = 1 ] && grep -q "^FAIL: The certificate name cannot contain spaces" out.txt \
  && pass "test: a certificate name with a space is refused before sending" || fail "test spaces" "exit $code: $(cat out.txt)"
client --cacert "$ROOTCA" --user mdm --label mdm test --cert-name TestCert --san-style none >out.txt 2>&1; code=$?
RID=$(sed -n 's/.*(request id \([0-9a-f]*\)).*/\1/p' out.txt)
[ "$code" = 1 ] && grep -q "^FAIL: the server answered 400: The certificate template mdm requires a UPN" out.txt && [ -n "$RID" ] \
  && pass "test with the wrong SAN style: FAIL with the template's reason" || fail "test wrong style" "exit $code: $(cat out.txt)"
$ESTD requests --since 10m --user mdm --failed >req.txt 2>/dev/null
grep "$RID" req.txt | grep -q "requires a UPN" \
  && pass "estd requests --user mdm --failed: request $RID received, with why it failed" || fail "requests" "$(cat req.txt)"

# --- the same test from the server side (what the portal page does), with curl ----------
curl -s --cacert "$ROOTCA" -u "mdm:S3cret-for-mdm" -H "Content-Type: application/json" \
  -d '{"template":"mdm","cert_name":"TestCert2","user_name":"jdoe","domain":"corp.example.com","email":"jdoe@example.com"}' \
  "https://localhost:$PORT/api/v1/test-certificate" >api.json
if grep -q '"result":"PASS"' api.json; then
  sed -n 's/.*"certificate_pem":"\([^"]*\)".*/\1/p' api.json | sed 's/\\n/\n/g' >api.pem
  openssl x509 -in api.pem -noout -ext subjectAltName 2>/dev/null | grep -q "email:jdoe@example.com" \
    && pass "POST /api/v1/test-certificate: PASS with the certificate" || fail "api test cert" "$(head -c 300 api.json)"
else fail "api test cert" "$(head -c 300 api.json)"; fi
curl -s --cacert "$ROOTCA" -u "mdm:S3cret-for-mdm" -H "Content-Type: application/json" \
  -d '{"template":"mdm","cert_name":"TestCert2","domain":"not_a_domain"}' \
  "https://localhost:$PORT/api/v1/test-certificate" >api.json
grep -q '"error":"domain"' api.json && grep -q 'fully qualified domain name' api.json && grep -q '"request_id":"[0-9a-f]\{16\}"' api.json \
  && pass "test-certificate API: a bad domain is refused, with the request id" || fail "api bad domain" "$(cat api.json)"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
