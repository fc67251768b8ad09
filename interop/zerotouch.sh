#!/usr/bin/env bash
# Zero-touch enrollment with manufacturer certificates (IEEE 802.1AR IDevIDs) against a
# running `estd serve`: a test vendor's PKI made with openssl (interop/vendor-pki.sh), a
# template that trusts it with an allow-list, the list kept with `estd device`, and devices
# enrolling with curl and with `estd client` by their IDevID alone; then every refusal
# (not allowed, denied, a CSR that does not match, another vendor, an IDevID as a renewal
# credential), each certificate checked with openssl and each refusal found in the audit.
# Then enrollment codes: `estd code issue --count --csv`, a code as the Basic password (curl,
# estd client) and as the CSR's challengePassword (openssl req), reused, withdrawn; and
# bearer tokens: JWTs signed with openssl, accepted, and refused for audience, expiry, issuer.
# Prints PASS/FAIL per check and ends with "N passed, M failed".
#
#   interop/zerotouch.sh                 # builds target/debug/estd first
#   ESTD_BIN=/path/to/estd interop/zerotouch.sh
set -u
cd "$(dirname "$0")/.."
. interop/lib.sh
. interop/vendor-pki.sh
need_tools curl openssl sqlite3 base64
cd "$WORK"

# ---------------------------------------------------------------- the vendors' PKIs ----
V=$WORK/vendor
vendor_ca "$V" acme && vendor_ca "$V" other || { echo "openssl could not make the vendor CAs"; echo "0 passed, 1 failed"; exit 1; }
for s in SN-1001 SN-1002 SN-1003; do idevid "$V" acme "$s"; done
idevid "$V" other OT-1
cp "$V/acme-root.pem" "$WORK/templates/acme-idevid-root.pem"
cat >"$WORK/templates/zt.toml" <<'TOML'
name = "zt"
description = "Acme routers, by their IDevID"
key_types = ["ec-p256"]
validity_days = 30
trust_vendor_cas = ["acme-idevid-root.pem"]
idevid_cn = "%idevid_serial%"
idevid_allow_list = true
TOML
# enrollment codes (kiosk) and bearer tokens (mdm-token, the identity provider's key made
# with openssl)
code_and_token_templates "$WORK"
start_estd
ESTD="$ESTD_BIN --config $ROOT/conf/estd.toml"
URL="https://127.0.0.1:$PORT/.well-known/est"

# ------------------------------------------------------------------- the device lists ----
$ESTD device add SN-1001 --template zt --note "first router" >out.txt 2>&1 \
  && grep -q "SN-1001 allowed" out.txt && pass "estd device add SN-1001" || fail "estd device add" "$(cat out.txt)"
printf 'serial,state,note\nSN-1003,deny,reported stolen\n' >list.csv
$ESTD device import list.csv --template zt >out.txt 2>&1 \
  && grep -q "^1 devices listed" out.txt && pass "estd device import (CSV)" || fail "estd device import" "$(cat out.txt)"
$ESTD device list --template zt >out.txt 2>&1
if grep -q "SN-1001 .*allow" out.txt && grep -q "SN-1003 .*deny .*reported stolen" out.txt; then
  pass "estd device list: SN-1001 allowed, SN-1003 denied with its note"
else fail "estd device list" "$(cat out.txt)"; fi
$ESTD device add SN-1004 --template default >out.txt 2>&1 \
  && fail "a device list on a template without trust_vendor_cas" \
  || { grep -q "trusts no manufacturer CA" out.txt && pass "estd device add on a template without vendor CAs: refused, named" \
       || fail "device add refusal text" "$(cat out.txt)"; }

# ------------------------------------------------------------------------- enroll ----
csr() { # CN KEYOUT -> base64 DER CSR on stdout
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$2" -subj "/CN=$1" -outform DER 2>/dev/null | base64 -w 64
}
post() { # SERIAL OP CN -> body in resp.txt, status on stdout
  csr "$3" "$1-new.key" >req.b64
  curl -s -o resp.txt -w '%{http_code}' --cacert "$ROOTCA" --cert "$V/$1-chain.pem" --key "$V/$1.key" \
    -H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$URL/zt/$2"
}
audit() { sqlite3 "$ESTD_DATA_DIR/estd.db" "SELECT status || '|' || COALESCE(reason,'') FROM audit_events WHERE principal = '$1' ORDER BY id DESC LIMIT 1"; }

status=$(post SN-1001 simpleenroll SN-1001)
if [ "$status" = 200 ] && base64 -d resp.txt | openssl pkcs7 -inform DER -print_certs -out ldevid.pem 2>/dev/null \
  && openssl verify -CAfile "$ROOTCA" -untrusted "$ESTD_DATA_DIR/certs/issuing-ca.pem" ldevid.pem >/dev/null 2>&1 \
  && openssl x509 -in ldevid.pem -noout -subject | grep -q "CN *= *SN-1001" \
  && [ "$(openssl x509 -in ldevid.pem -noout -pubkey)" = "$(openssl pkey -in SN-1001-new.key -pubout)" ]; then
  pass "curl with the IDevID (no password): /zt/simpleenroll 200, CN=SN-1001, chains to estd's CA"
else fail "curl IDevID enroll" "$status $(head -c 300 resp.txt)"; fi
sqlite3 "$ESTD_DATA_DIR/estd.db" "SELECT requester FROM certificates WHERE template = 'zt'" | grep -qx "idevid:SN-1001" \
  && pass "the certificate's requester is idevid:SN-1001" || fail "requester of the IDevID enrollment"

# the new certificate renews itself, the IDevID does not
cp SN-1001-new.key ldevid.key
status=$(curl -s -o resp.txt -w '%{http_code}' --cacert "$ROOTCA" --cert ldevid.pem --key ldevid.key \
  -H 'Content-Type: application/pkcs10' --data-binary @<(csr SN-1001 renew.key) "$URL/zt/simplereenroll")
[ "$status" = 200 ] && pass "curl /zt/simplereenroll with the new certificate: 200" || fail "reenroll with the LDevID" "$status $(head -c 300 resp.txt)"
status=$(post SN-1001 simplereenroll SN-1001)
[ "$status" = 401 ] && pass "the IDevID as a renewal credential: 401" || fail "IDevID on simplereenroll" "$status"

# estd client, enroll and serverkeygen, by the IDevID
if $ESTD_BIN client --server "127.0.0.1:$PORT" --cacert "$ROOTCA" --label zt enroll --cn SN-1001 \
     --tls-cert "$V/SN-1001-chain.pem" --tls-key "$V/SN-1001.key" --out c1.pem --key-out k1.pem >out.txt 2>&1 \
   && openssl x509 -in c1.pem -noout -subject | grep -q "CN *= *SN-1001"; then
  pass "estd client enroll --tls-cert IDevID --tls-key: CN=SN-1001"
else fail "estd client enroll by IDevID" "$(tail -3 out.txt)"; fi
if $ESTD_BIN client --server "127.0.0.1:$PORT" --cacert "$ROOTCA" --label zt serverkeygen --cn SN-1001 \
     --tls-cert "$V/SN-1001-chain.pem" --tls-key "$V/SN-1001.key" --out c2.pem --key-out k2.pem >out.txt 2>&1 \
   && [ "$(openssl x509 -in c2.pem -noout -pubkey)" = "$(openssl pkey -in k2.pem -pubout)" ]; then
  pass "estd client serverkeygen by the IDevID: the key matches the certificate"
else fail "estd client serverkeygen by IDevID" "$(tail -3 out.txt)"; fi

# ------------------------------------------------------------------------ refusals ----
status=$(post SN-1001 simpleenroll admin)
[ "$status" = 400 ] && grep -q 'must be "SN-1001"' resp.txt && pass "a CSR asking for another CN: 400 naming the CN it must have" \
  || fail "CN mismatch" "$status $(cat resp.txt)"
status=$(post SN-1002 simpleenroll SN-1002)
[ "$status" = 403 ] && grep -q "not on the allow-list" resp.txt && audit idevid:SN-1002 | grep -q "^403|.*allow-list" \
  && pass "SN-1002, not on the allow-list: 403, audited as idevid:SN-1002" || fail "not allowed" "$status $(cat resp.txt) $(audit idevid:SN-1002)"
status=$(post SN-1003 simpleenroll SN-1003)
[ "$status" = 403 ] && grep -q "deny-list" resp.txt && audit idevid:SN-1003 | grep -q "^403|.*deny-list" \
  && pass "SN-1003, denied: 403, audited as idevid:SN-1003" || fail "denied" "$status $(cat resp.txt)"
# another vendor's device: the handshake itself fails (no template trusts that vendor)
csr OT-1 ot.key >req.b64
curl -s -o /dev/null --cacert "$ROOTCA" --cert "$V/OT-1-chain.pem" --key "$V/OT-1.key" \
  -H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$URL/zt/simpleenroll"
rc=$?
[ "$rc" -ne 0 ] && pass "another vendor's IDevID: the TLS handshake fails (curl exit $rc)" || fail "other vendor accepted"
# Acme's IDevID on a template that does not trust Acme: no password, no certificate
status=$(curl -s -o resp.txt -w '%{http_code}' --cacert "$ROOTCA" --cert "$V/SN-1001-chain.pem" --key "$V/SN-1001.key" \
  -H 'Content-Type: application/pkcs10' --data-binary @<(csr SN-1001 x.key) "$URL/simpleenroll")
[ "$status" = 401 ] && pass "the IDevID on a template without trust_vendor_cas: 401" || fail "IDevID on the default template" "$status"

# taken off the allow-list: refused from then on
$ESTD device remove SN-1001 --template zt >/dev/null 2>&1
status=$(post SN-1001 simpleenroll SN-1001)
[ "$status" = 403 ] && grep -q "allow-list" resp.txt && pass "estd device remove SN-1001, then its enrollment: 403" \
  || fail "removed device" "$status $(cat resp.txt)"

# ------------------------------------------------------------- enrollment codes ----
$ESTD code issue --template kiosk --count 5 --expires 7d --csv codes.csv >out.txt 2>&1
if [ "$(stat -c %a codes.csv 2>/dev/null)" = 600 ] && [ "$(wc -l <codes.csv)" = 6 ] \
  && head -1 codes.csv | grep -qx 'id,code,template,cn,san,expires_at' && grep -q "^5 codes" out.txt; then
  pass "estd code issue --count 5 --csv: a new 0600 file, a header and 5 codes"
else fail "estd code issue --csv" "$(cat out.txt)"; fi
$ESTD code issue --template kiosk --count 2 --csv codes.csv >out.txt 2>&1 \
  && fail "--csv over an existing file" || pass "estd code issue --csv refuses to overwrite a file"
code_at() { sed -n "$(($1 + 1))p" codes.csv | cut -d, -f"$2"; }
ID1=$(code_at 1 1); C1=$(code_at 1 2); ID2=$(code_at 2 1); C2=$(code_at 2 2); ID3=$(code_at 3 1); C3=$(code_at 3 2); ID4=$(code_at 4 1); C4=$(code_at 4 2)
enroll_code() { # USER:PASSWORD (or "") CN -> status, body in resp.txt
  csr "$2" code.key >req.b64
  curl -s -o resp.txt -w '%{http_code}' --cacert "$ROOTCA" ${1:+-u "$1"} \
    -H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$URL/kiosk/simpleenroll"
}
status=$(enroll_code "$ID1:$C1" kiosk-1)
[ "$status" = 200 ] && sqlite3 "$ESTD_DATA_DIR/estd.db" "SELECT requester FROM certificates WHERE template = 'kiosk'" | grep -qx "code:$ID1" \
  && pass "curl, the code as the Basic password (user = its id): 200, requester code:$ID1" || fail "code as Basic password" "$status $(cat resp.txt)"
status=$(enroll_code "$ID1:$C1" kiosk-1)
[ "$status" = 401 ] && grep -q "code $ID1: already used" resp.txt && pass "the same code again: 401, already used" || fail "code reuse" "$status $(cat resp.txt)"
# the code as the CSR's challengePassword (openssl req's attributes), no Authorization
printf '[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n[dn]\nCN = kiosk-2\n[attrs]\nchallengePassword = %s\n' "$C2" >req.cnf
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k2.key -config req.cnf -outform DER 2>/dev/null | base64 -w 64 >req.b64
status=$(curl -s -o resp.txt -w '%{http_code}' --cacert "$ROOTCA" -H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$URL/kiosk/simpleenroll")
[ "$status" = 200 ] && pass "curl, the code as the CSR's challengePassword (openssl req): 200" || fail "code as challengePassword" "$status $(cat resp.txt)"
if $ESTD_BIN client --server "127.0.0.1:$PORT" --cacert "$ROOTCA" --label kiosk --user "$ID3" --password "$C3" enroll --cn kiosk-3 \
     --out c3.pem --key-out k3.pem >out.txt 2>&1 && openssl x509 -in c3.pem -noout -subject | grep -q "CN *= *kiosk-3"; then
  pass "estd client enroll --user <code id> --password <code>"
else fail "estd client with a code" "$(tail -3 out.txt)"; fi
$ESTD code revoke "$ID4" >/dev/null 2>&1
status=$(enroll_code "$ID4:$C4" kiosk-4)
[ "$status" = 401 ] && grep -q "not one this server issued" resp.txt && pass "estd code revoke, then the code: 401" || fail "revoked code" "$status $(cat resp.txt)"
$ESTD code list --all >out.txt 2>&1
grep -qE "^ *$ID1 .*used" out.txt && ! grep -qE "^ *$ID4 " out.txt && pass "estd code list --all: $ID1 used, $ID4 gone" || fail "code list" "$(cat out.txt)"
sqlite3 "$ESTD_DATA_DIR/estd.db" "SELECT count(*) FROM audit_events WHERE reason LIKE '%$C1%' OR principal LIKE '%$C1%' OR reason LIKE '%$C2%'" | grep -qx 0 \
  && pass "no code's value in the audit log" || fail "a code in the audit log"

# ---------------------------------------------------------------- bearer tokens ----
claims() { printf '{"iss":"%s","aud":"%s","sub":"%s","groups":["est-users"],"exp":%d}' "$1" "$2" "$3" "$(( $(date +%s) + $4 ))"; }
enroll_token() { # TOKEN CN -> status, body in resp.txt
  csr "$2" tok.key >req.b64
  curl -s -o resp.txt -D hdr.txt -w '%{http_code}' --cacert "$ROOTCA" ${1:+-H "Authorization: Bearer $1"} \
    -H 'Content-Type: application/pkcs10' --data-binary @req.b64 "$URL/mdm-token/simpleenroll"
}
status=$(enroll_token "" mdm-1)
[ "$status" = 401 ] && [ "$(grep -i '^www-authenticate:' hdr.txt | head -1 | tr -d '\r')" = 'www-authenticate: Bearer realm="estd"' ] \
  && pass "no credentials: 401, the first challenge Bearer" || fail "bearer challenge" "$status $(cat hdr.txt)"
TOKEN=$(idp_token "$WORK" "$(claims https://idp.test estd mdm-1 300)")
status=$(enroll_token "$TOKEN" mdm-1)
[ "$status" = 200 ] && sqlite3 "$ESTD_DATA_DIR/estd.db" "SELECT requester FROM certificates WHERE template = 'mdm-token'" | grep -qx token:mdm-1 \
  && pass "curl with a JWT made by openssl (EdDSA): 200, requester token:mdm-1" || fail "bearer enroll" "$status $(cat resp.txt)"
status=$(enroll_token "$TOKEN" someone-else)
[ "$status" = 403 ] && pass "the token's user asking for another CN: 403" || fail "bearer other CN" "$status"
for bad in "https://idp.test other mdm-1 300|not for the audience" "https://idp.test estd mdm-1 -120|expired at" "https://evil.test estd mdm-1 300|issuer is not"; do
  set -- ${bad%%|*}; why=${bad#*|}
  status=$(enroll_token "$(idp_token "$WORK" "$(claims "$1" "$2" "$3" "$4")")" mdm-1)
  [ "$status" = 401 ] && grep -q "$why" resp.txt && pass "a token $why: 401" || fail "bad token ($why)" "$status $(cat resp.txt)"
done

# ------------------------------------------------------ RFC 9908 CSR templates ----
# /csrattrs of kiosk: the template (.61) first, parsed whole by openssl: an EC P-256 key,
# the usages (no CN: kiosk's CN is the device's choice); the legacy entries after it,
# ending with an OID
curl -s --cacert "$ROOTCA" "$URL/kiosk/csrattrs" | base64 -d >attrs.der
if openssl asn1parse -inform DER -in attrs.der >attrs.txt 2>&1 && grep -q "1.2.840.113549.1.9.16.2.61" attrs.txt \
  && grep -q "prime256v1" attrs.txt && grep -q "X509v3 Key Usage" attrs.txt \
  && [ "$(stat -c %s attrs.der)" -lt 1024 ] && tail -1 attrs.txt | grep -q "OBJECT"; then
  pass "/csrattrs: the RFC 9908 template (openssl asn1parse reads it whole; $(stat -c %s attrs.der) bytes), ending with an OID"
else fail "csrattrs template" "$(cat attrs.txt)"; fi
$ESTD_BIN client --server "127.0.0.1:$PORT" --cacert "$ROOTCA" --label kiosk csrattrs >out.txt 2>&1
grep -q "CSR template: key: ec-p256" out.txt && grep -q "CSR template: extension keyUsage (critical): value given" out.txt \
  && pass "estd client csrattrs describes the template" || fail "client csrattrs" "$(cat out.txt)"

# nothing secret or whole in the audit: no PEM, no key
sqlite3 "$ESTD_DATA_DIR/estd.db" "SELECT count(*) FROM audit_events WHERE reason LIKE '%BEGIN%'" | grep -qx 0 \
  && pass "no PEM text in the audit log" || fail "PEM in the audit log"

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
