#!/usr/bin/env bash
# Every EST operation the way a person at a shell does it: openssl makes keys and CSRs,
# curl talks to a real `estd serve` on a free local port with a fresh data directory.
# Prints PASS/FAIL per check and ends with "N passed, M failed"; exits non-zero on a failure.
#
#   interop/curl-openssl.sh            # builds target/debug/estd first
#   ESTD_BIN=/path/to/estd interop/curl-openssl.sh
set -u
cd "$(dirname "$0")/.."
. interop/lib.sh
need_tools curl openssl base64
cd "$WORK"

start_estd
EST="https://localhost:$PORT/.well-known/est"
CA="$ROOTCA"

# status CODE for a curl call; headers to hdr.txt, body to body.out
status() { curl -s --cacert "$CA" -D hdr.txt -o body.out -w '%{http_code}' "$@"; }
header() { tr -d '\r' <hdr.txt | sed -n "s/^$1: //Ip" | head -1; }
csr_b64() { openssl req -new -key "$1" -subj "$2" ${3:+-addext "$3"} -outform DER 2>/dev/null | base64; }

# --- /cacerts ------------------------------------------------------------------------------
code=$(status "$EST/cacerts")
[ "$code" = 200 ] && [ "$(header content-type)" = "application/pkcs7-mime" ] \
  && base64 -d body.out | openssl pkcs7 -inform DER -print_certs >cacerts.pem 2>/dev/null \
  && [ "$(grep -c 'BEGIN CERTIFICATE' cacerts.pem)" = 2 ] \
  && pass "cacerts: 200 application/pkcs7-mime, root + issuing CA" || fail "cacerts" "status $code"
check "cacerts: the chain is the root we trust" openssl verify -CAfile "$CA" cacerts.pem
code=$(status "$EST/devices/cacerts"); [ "$code" = 200 ] && pass "cacerts under a label" || fail "cacerts under a label" "$code"

# --- /simpleenroll ------------------------------------------------------------------------
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dev.key 2>/dev/null
csr_b64 dev.key "/CN=admin" "subjectAltName=DNS:admin.example.com" >dev.b64
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data-binary @dev.b64 "$EST/simpleenroll")
if [ "$code" = 200 ] && [ "$(header content-type)" = "application/pkcs7-mime; smime-type=certs-only" ] \
  && base64 -d body.out | openssl pkcs7 -inform DER -print_certs >dev.pem 2>/dev/null; then
  pass "simpleenroll (--data-binary, base64 with line breaks): 200 certs-only"
else fail "simpleenroll (--data-binary)" "status $code: $(head -c 200 body.out)"; fi
check "simpleenroll: openssl verify against /cacerts" openssl verify -CAfile "$CA" -untrusted cacerts.pem dev.pem
openssl x509 -in dev.pem -noout -subject -ext subjectAltName >dev.txt 2>/dev/null
grep -q "CN = admin" dev.txt && grep -q "DNS:admin.example.com" dev.txt && pass "simpleenroll: subject and SAN as requested" || fail "simpleenroll: subject and SAN"
check "simpleenroll: the certificate matches the key" sh -c "[ \"\$(openssl x509 -in dev.pem -noout -pubkey)\" = \"\$(openssl pkey -in dev.key -pubout)\" ]"

tr -d '\n' <dev.b64 >oneline.b64
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data @oneline.b64 "$EST/simpleenroll")
[ "$code" = 200 ] && pass "simpleenroll (--data, one line of base64)" || fail "simpleenroll (--data)" "$code"
openssl req -new -key dev.key -subj "/CN=admin" -out dev.csr.pem 2>/dev/null
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data-binary @dev.csr.pem "$EST/simpleenroll")
[ "$code" = 200 ] && pass "simpleenroll (PEM CSR body)" || fail "simpleenroll (PEM CSR)" "$code"
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" -H "Content-Transfer-Encoding: base64" --data-binary @dev.b64 "$EST/simpleenroll")
[ "$code" = 200 ] && pass "simpleenroll (with Content-Transfer-Encoding: base64)" || fail "simpleenroll (CTE)" "$code"
code=$(status --tlsv1.2 --tls-max 1.2 -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data-binary @dev.b64 "$EST/simpleenroll")
[ "$code" = 200 ] && pass "simpleenroll over TLS 1.2" || fail "simpleenroll over TLS 1.2" "$code"
code=$(status --http1.1 -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data-binary @dev.b64 "$EST/simpleenroll")
[ "$code" = 200 ] && pass "simpleenroll over HTTP/1.1" || fail "simpleenroll over HTTP/1.1" "$code"

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 rsa.key "/CN=admin") "$EST/simpleenroll")
[ "$code" = 200 ] && pass "simpleenroll: RSA-2048 key" || fail "simpleenroll: RSA-2048" "$code"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.key 2>/dev/null
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 p384.key "/CN=admin") "$EST/devices/simpleenroll")
[ "$code" = 200 ] && pass "simpleenroll under label devices: P-384 key" || fail "devices: P-384" "$code"
openssl genpkey -algorithm ED25519 -out ed.key 2>/dev/null
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 ed.key "/CN=admin") "$EST/devices/simpleenroll")
[ "$code" = 200 ] && pass "simpleenroll under label devices: Ed25519 key" || fail "devices: Ed25519" "$code"
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 p384.key "/CN=admin") "$EST/simpleenroll")
[ "$code" = 403 ] && grep -q "not allowed by template default" body.out && pass "simpleenroll: key type the template refuses → 403 with the reason" || fail "key type refused" "$code"

# --- /simplereenroll with the certificate as TLS client certificate ------------------------
code=$(status --cert dev.pem --key dev.key -H "Content-Type: application/pkcs10" --data-binary @dev.b64 "$EST/simplereenroll")
if [ "$code" = 200 ] && base64 -d body.out | openssl pkcs7 -inform DER -print_certs >renewed.pem 2>/dev/null \
  && openssl verify -CAfile "$CA" -untrusted cacerts.pem renewed.pem >/dev/null 2>&1; then
  pass "simplereenroll (curl --cert --key): 200, verifies"
else fail "simplereenroll" "status $code: $(head -c 200 body.out)"; fi
[ "$(openssl x509 -in renewed.pem -noout -serial 2>/dev/null)" != "$(openssl x509 -in dev.pem -noout -serial)" ] \
  && pass "simplereenroll: a new serial number" || fail "simplereenroll: new serial"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out rekey.key 2>/dev/null
code=$(status --cert dev.pem --key dev.key -H "Content-Type: application/pkcs10" \
  --data-binary @<(csr_b64 rekey.key "/CN=admin" "subjectAltName=DNS:admin.example.com") "$EST/simplereenroll")
[ "$code" = 200 ] && pass "simplereenroll: rekey" || fail "simplereenroll: rekey" "$code"
code=$(status --cert dev.pem --key dev.key -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 dev.key "/CN=intruder" "subjectAltName=DNS:admin.example.com") "$EST/simplereenroll")
[ "$code" = 403 ] && grep -q "Subject differs" body.out && pass "simplereenroll: changed subject → 403" || fail "reenroll changed subject" "$code"
code=$(status --cert dev.pem --key dev.key -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 dev.key "/CN=admin" "subjectAltName=DNS:other.example.com") "$EST/simplereenroll")
[ "$code" = 403 ] && grep -q "SubjectAltName differs" body.out && pass "simplereenroll: changed SAN → 403" || fail "reenroll changed SAN" "$code"
code=$(status -H "Content-Type: application/pkcs10" --data-binary @dev.b64 "$EST/simplereenroll")
[ "$code" = 401 ] && pass "simplereenroll without a client certificate → 401" || fail "reenroll without cert" "$code"

# --- /serverkeygen: multipart/mixed, boundary from the header, PKCS#8 key + certs-only -----
serverkeygen() { # LABEL CN SAN-EXT
  rm -f part*.hdr part*.b64
  code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 dev.key "$2" "$3") "$EST/$1/serverkeygen")
  ct=$(header content-type)
  boundary=${ct#*boundary=}
  tr -d '\r' <body.out | awk -v b="$boundary" '
    $0 == "--" b || $0 == "--" b "--" { n++; inbody = 0; next }
    n > 0 && !inbody && $0 == "" { inbody = 1; next }
    n > 0 && !inbody { print > ("part" n ".hdr"); next }
    inbody { print > ("part" n ".b64") }'
  [ "$code" = 200 ] && case "$ct" in multipart/mixed\;\ boundary=*) true ;; *) false ;; esac \
    && grep -qx "Content-Type: application/pkcs8" part1.hdr \
    && grep -qx "Content-Type: application/pkcs7-mime; smime-type=certs-only" part2.hdr \
    && base64 -d part1.b64 >skg.der && base64 -d part2.b64 | openssl pkcs7 -inform DER -print_certs >skg.pem 2>/dev/null \
    && openssl pkcs8 -inform DER -nocrypt -in skg.der -out skg.key 2>/dev/null \
    && [ "$(openssl pkey -in skg.key -pubout 2>/dev/null)" = "$(openssl x509 -in skg.pem -noout -pubkey)" ] \
    && [ "$(openssl x509 -in skg.pem -noout -pubkey)" != "$(openssl pkey -in dev.key -pubout)" ] \
    && openssl verify -CAfile "$CA" -untrusted cacerts.pem skg.pem >/dev/null 2>&1
}
if serverkeygen devices "/CN=admin" "subjectAltName=DNS:admin.devices.example.com"; then
  pass "serverkeygen (devices, EC P-256): PKCS#8 key matching its certificate, not the CSR's key"
else fail "serverkeygen devices" "$code $(head -c 200 body.out)"; fi
if serverkeygen eap-tls "/CN=admin" "subjectAltName=DNS:00:11:22:33:44:55" \
  && openssl pkey -in skg.key -noout -text 2>/dev/null | grep -q "Private-Key: (2048 bit"; then
  pass "serverkeygen (eap-tls): an RSA-2048 PKCS#8 key, SAN from the CSR's MAC"
else fail "serverkeygen eap-tls" "$code $(head -c 200 body.out)"; fi

# --- /csrattrs ----------------------------------------------------------------------------
code=$(status "$EST/devices/csrattrs")
[ "$code" = 200 ] && [ "$(base64 -d body.out | xxd -p)" = 3000 ] \
  && pass "csrattrs (devices: any key, no SAN needed) → 200, an empty SEQUENCE" || fail "csrattrs devices" "$code $(head -c 100 body.out)"
code=$(status "$EST/csrattrs")
[ "$code" = 200 ] && [ "$(header content-type)" = "application/csrattrs" ] \
  && base64 -d body.out | openssl asn1parse -inform DER 2>/dev/null | grep -q "prime256v1" \
  && pass "csrattrs (default) → 200, asks for a P-256 key" || fail "csrattrs default" "$code"
code=$(status "$EST/eap-tls/csrattrs")
base64 -d body.out | openssl asn1parse -inform DER >attrs.txt 2>/dev/null
[ "$code" = 200 ] && grep -q "Extension Request" attrs.txt && grep -q "X509v3 Subject Alternative Name" attrs.txt \
  && grep -q "rsaEncryption" attrs.txt && pass "csrattrs (eap-tls) → 200, asks for an RSA key and the SAN" || fail "csrattrs eap-tls" "$code"

# --- errors -------------------------------------------------------------------------------
code=$(status -H "Content-Type: application/pkcs10" --data-binary @dev.b64 "$EST/simpleenroll")
[ "$code" = 401 ] && [ "$(header www-authenticate)" = 'Basic realm="estd"' ] && pass "no credentials → 401 with WWW-Authenticate" || fail "no credentials" "$code"
code=$(status -u "admin:wrong" -H "Content-Type: application/pkcs10" --data-binary @dev.b64 "$EST/simpleenroll")
[ "$code" = 401 ] && pass "wrong password → 401" || fail "wrong password" "$code"
code=$(status -u "admin:$PASSWORD" "$EST/simpleenroll")
[ "$code" = 405 ] && [ "$(header allow)" = POST ] && pass "GET simpleenroll → 405 Allow: POST" || fail "GET simpleenroll" "$code"
code=$(status "$EST/nosuchlabel/cacerts"); [ "$code" = 404 ] && pass "unknown label → 404" || fail "unknown label" "$code"
code=$(status -u "admin:$PASSWORD" --data-binary @dev.b64 "$EST/simpleenroll")
[ "$code" = 415 ] && pass "wrong Content-Type (curl's form default) → 415" || fail "wrong Content-Type" "$code"
openssl req -new -key dev.key -subj "/CN=admin" -outform DER -out bad.der 2>/dev/null
size=$(stat -c %s bad.der); last=$(xxd -s $((size - 1)) -l 1 -p bad.der)
printf "$(printf '\\x%02x' $(( 0x$last ^ 0x01 )))" | dd of=bad.der bs=1 seek=$((size - 1)) conv=notrunc 2>/dev/null
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data-binary @<(base64 bad.der) "$EST/simpleenroll")
[ "$code" = 400 ] && pass "CSR with a bad signature → 400" || fail "bad signature" "$code: $(head -c 200 body.out)"
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data-binary "this is not base64!" "$EST/simpleenroll")
[ "$code" = 400 ] && pass "garbage body → 400" || fail "garbage body" "$code"
head -c 70000 /dev/zero | base64 >big.b64
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data-binary @big.b64 "$EST/simpleenroll")
[ "$code" = 413 ] && pass "body over 64 KiB → 413" || fail "big body" "$code"
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data-binary @dev.b64 "$EST/fullcmc")
[ "$code" = 501 ] && pass "fullcmc → 501" || fail "fullcmc" "$code"

# --- TLS versions -------------------------------------------------------------------------
check "TLS 1.3 handshake (openssl s_client)" sh -c "echo | openssl s_client -connect 127.0.0.1:$PORT -tls1_3 -CAfile '$CA' 2>/dev/null | grep -q 'Verify return code: 0'"
check "TLS 1.2 handshake (openssl s_client)" sh -c "echo | openssl s_client -connect 127.0.0.1:$PORT -tls1_2 -CAfile '$CA' 2>/dev/null | grep -q 'Verify return code: 0'"
# The client offers TLS 1.1 for real (SECLEVEL=0); the server must answer with an alert.
if echo | openssl s_client -connect "127.0.0.1:$PORT" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' -CAfile "$CA" >tls11.txt 2>&1; then
  fail "TLS 1.1 refused" "the handshake succeeded"
elif grep -q 'Cipher is (NONE)' tls11.txt; then pass "TLS 1.1 refused (handshake alert)"
else fail "TLS 1.1 refused" "$(head -c 200 tls11.txt)"; fi
check "TLS 1.2 uses extended master secret" sh -c "echo | openssl s_client -connect 127.0.0.1:$PORT -tls1_2 -CAfile '$CA' 2>/dev/null | grep -q 'Extended master secret: yes'"

# --- user administration, then enrolling as the new user ----------------------------------
echo "S3cret-for-bob" | "$ESTD_BIN" --config "$ROOT/conf/estd.toml" user add bob --group est-users --password-stdin >/dev/null 2>&1
check "estd user add bob (while serving)" sh -c "'$ESTD_BIN' --config '$ROOT/conf/estd.toml' user list 2>/dev/null | grep -q '^bob'"
code=$(status -u "bob:S3cret-for-bob" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 dev.key "/CN=bob") "$EST/simpleenroll")
[ "$code" = 200 ] && pass "simpleenroll as bob" || fail "simpleenroll as bob" "$code"

# --- policy: the portal FAQ's rules and messages, with openssl CSRs -----------------------
BOB="bob:S3cret-for-bob"
# the MDM connector's account: the shipped mdm template is for mdm-connectors only
echo "S3cret-for-mdm" | "$ESTD_BIN" --config "$ROOT/conf/estd.toml" user add connector --group mdm-connectors --password-stdin >/dev/null 2>&1
MDM="connector:S3cret-for-mdm"
code=$(status -u "$BOB" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 dev.key "/CN=alice") "$EST/simpleenroll")
[ "$code" = 403 ] && [ "$(head -n1 body.out)" = "Invalid request - The given CSR has a CN that does not match the provided user name, and that user does not have ERS Admin" ] \
  && pass "policy: bob asks for CN=alice → 403 with the FAQ's message" || fail "policy: CN mismatch" "$code $(head -n1 body.out)"
RID=$(header x-request-id)
[ -n "$RID" ] && [ "$(tail -n1 body.out)" = "Request ID: $RID" ] \
  && pass "diagnostics: the error body's last line is the X-Request-Id ($RID)" || fail "request id in body" "$RID / $(tail -n1 body.out)"
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 dev.key "/CN=alice") "$EST/simpleenroll")
[ "$code" = 200 ] && pass "policy: admin (Super Admin) may ask for CN=alice" || fail "policy: admin for another user" "$code"
code=$(status -u "$BOB" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 dev.key "/CN=bob;x") "$EST/simpleenroll")
[ "$code" = 400 ] && [ "$(head -n1 body.out)" = 'The given CN is invalid. Cannot contain [ ] " ; | = , + * ? < > characters' ] \
  && pass "policy: CN with ; → 400 with the FAQ's message" || fail "policy: CN characters" "$code $(head -n1 body.out)"
code=$(status -u "$BOB" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 rsa.key "/CN=bob" "subjectAltName=DNS:00:11:22:aa:bb:cc") "$EST/eap-tls/simpleenroll")
if [ "$code" = 200 ] && base64 -d body.out | openssl pkcs7 -inform DER -print_certs 2>/dev/null | openssl x509 -noout -ext subjectAltName 2>/dev/null | grep -q "URI:urn:dev:mac:001122aabbcc"; then
  pass "policy: eap-tls MAC 00:11:22:aa:bb:cc → URI:urn:dev:mac:001122aabbcc"
else fail "policy: eap-tls MAC" "$code $(head -c 200 body.out)"; fi
code=$(status -u "$BOB" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 rsa.key "/CN=bob" "subjectAltName=DNS:00:11:22:aa:bb") "$EST/eap-tls/simpleenroll")
[ "$code" = 400 ] && [ "$(head -n1 body.out)" = "Invalid MAC address" ] && pass "policy: a short MAC → 400 Invalid MAC address" || fail "policy: invalid MAC" "$code $(head -n1 body.out)"
code=$(status -u "$BOB" -H "Content-Type: application/pkcs10" \
  --data-binary @<(csr_b64 rsa.key "/CN=admin" "subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:administrator@corp.example,email:ceo@corp.example") "$EST/mdm/simpleenroll")
[ "$code" = 403 ] && [ "$(head -n1 body.out)" = "User bob may not use the certificate template mdm" ] \
  && pass "policy: bob (est-users) asks the mdm template for CN=admin → 403, the template is not his" || fail "policy: mdm access" "$code $(head -n1 body.out)"
code=$(status -u "$MDM" -H "Content-Type: application/pkcs10" \
  --data-binary @<(csr_b64 rsa.key "/CN=joe" "subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:joe@corp.example,email:joe@corp.example") "$EST/mdm/simpleenroll")
if [ "$code" = 200 ] && base64 -d body.out | openssl pkcs7 -inform DER -print_certs 2>/dev/null | openssl x509 -noout -ext subjectAltName 2>/dev/null >mdm.txt \
  && grep -q "joe@corp.example" mdm.txt && grep -qi "email:joe@corp.example" mdm.txt; then
  pass "policy: mdm (UPN and Email) from an openssl CSR"
else fail "policy: mdm UPN and Email" "$code $(head -c 200 body.out)"; fi
code=$(status -u "$MDM" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 rsa.key "/CN=joe" "subjectAltName=email:joe@corp.example") "$EST/mdm/simpleenroll")
[ "$code" = 400 ] && grep -q "requires a UPN" body.out && pass "policy: mdm without a UPN → 400 saying so" || fail "policy: mdm without UPN" "$code $(head -n1 body.out)"
code=$(status -u "$BOB" -H "Content-Type: application/pkcs10" --data-binary "MIIB" "$EST/simpleenroll")
[ "$code" = 400 ] && [ "$(head -n1 body.out)" = "ISE server error - The given CSR text is malformed" ] && pass "policy: malformed CSR → 400 with the FAQ's message" || fail "policy: malformed" "$code $(head -n1 body.out)"

# --- what an ordinary user cannot get (bob: est-users, nothing more) ------------------------
code=$(status -u "$BOB" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 dev.key "/CN=bob" "subjectAltName=DNS:localhost,DNS:*.example.com") "$EST/devices/simpleenroll")
[ "$code" = 403 ] && grep -q "does not issue the name DNS:localhost\|does not issue wildcard names (DNS:\*.example.com)" body.out \
  && pass "names: a TLS server certificate for localhost and *.example.com under devices → 403" || fail "names: localhost" "$code $(head -n1 body.out)"
code=$(status -u "$BOB" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 dev.key "/CN=bob" "subjectAltName=DNS:bob.devices.example.com") "$EST/devices/simpleenroll")
[ "$code" = 200 ] && base64 -d body.out | openssl pkcs7 -inform DER -print_certs 2>/dev/null | openssl x509 -noout -ext subjectAltName 2>/dev/null | grep -q "DNS:bob.devices.example.com" \
  && pass "names: bob.devices.example.com (the devices rule %cn%.devices.example.com) → issued" || fail "names: own device name" "$code $(head -n1 body.out)"
code=$(status -u "$BOB" -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 dev.key "/CN=bob/O=estd development/OU=Domain Admins") "$EST/simpleenroll")
[ "$code" = 400 ] && [ "$(head -n1 body.out)" = "Invalid request - The given CSR has an O RDN that the provided Certificate Template does not allow" ] \
  && pass "subject: O and OU the template does not list → 400 naming the RDN" || fail "subject: unlisted RDN" "$code $(head -n1 body.out)"

# --- manual approval: 202 + Retry-After, estd pending approve, then 200 --------------------
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out wait.key 2>/dev/null
csr_b64 wait.key "/CN=bob" >wait.b64
code=$(status -u "$BOB" -H "Content-Type: application/pkcs10" --data-binary @wait.b64 "$EST/manual/simpleenroll")
[ "$code" = 202 ] && [ "$(header retry-after)" = 5 ] && pass "manual approval: 202 with Retry-After: 5" || fail "manual: 202" "$code"
ID=$("$ESTD_BIN" --config "$ROOT/conf/estd.toml" pending list 2>/dev/null | awk -F'\t' '$3 == "manual" && $4 == "bob" {print $1}' | tail -1)
[ -n "$ID" ] && pass "manual approval: estd pending list shows request $ID" || fail "manual: pending list"
check "manual approval: estd pending approve $ID" "$ESTD_BIN" --config "$ROOT/conf/estd.toml" pending approve "$ID"
code=$(status -u "$BOB" -H "Content-Type: application/pkcs10" --data-binary @wait.b64 "$EST/manual/simpleenroll")
[ "$code" = 200 ] && base64 -d body.out | openssl pkcs7 -inform DER -print_certs 2>/dev/null | openssl verify -CAfile "$CA" -untrusted cacerts.pem >/dev/null 2>&1 \
  && pass "manual approval: the retry gets the certificate" || fail "manual: retry" "$code"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out nope.key 2>/dev/null
csr_b64 nope.key "/CN=bob" >nope.b64
status -u "$BOB" -H "Content-Type: application/pkcs10" --data-binary @nope.b64 "$EST/manual/simpleenroll" >/dev/null
ID=$("$ESTD_BIN" --config "$ROOT/conf/estd.toml" pending list 2>/dev/null | awk -F'\t' '{print $1}' | tail -1)
"$ESTD_BIN" --config "$ROOT/conf/estd.toml" pending reject "$ID" --reason "not our device" >/dev/null 2>&1
code=$(status -u "$BOB" -H "Content-Type: application/pkcs10" --data-binary @nope.b64 "$EST/manual/simpleenroll")
[ "$code" = 403 ] && [ "$(head -n1 body.out)" = "The certificate request $ID was rejected: not our device" ] && pass "manual approval: rejected → 403 with the reason" || fail "manual: reject" "$code $(head -n1 body.out)"

# --- diagnostics: was the request received, and why did it fail? ---------------------------
ESTD="$ESTD_BIN --config $ROOT/conf/estd.toml"
$ESTD requests --since 10m --failed >failed.txt 2>/dev/null
grep -E " 403 +the CSR Subject differs from the Subject of the certificate being renewed" failed.txt >/dev/null \
  && pass "estd requests --failed: the refused re-enrollment with its reason" || fail "estd requests --failed" "$(head -c 300 failed.txt)"
grep -E "simpleenroll .* 400 +Invalid MAC address|eap-tls .* 400 +Invalid MAC address" failed.txt >/dev/null \
  && pass "estd requests --failed: the policy message of a bad MAC" || fail "estd requests: MAC" "$(grep -c . failed.txt) lines"
$ESTD requests --since 10m --user bob >bob.txt 2>/dev/null
! grep -qv " bob " bob.txt && grep -q " 202 " bob.txt && grep -q " 200 " bob.txt \
  && pass "estd requests --user bob: only bob's requests, issued and pending" || fail "estd requests --user" "$(head -c 300 bob.txt)"
grep -q "$(header x-request-id)" <($ESTD requests --since 10m 2>/dev/null) \
  && pass "the last response's X-Request-Id is in the audit log" || fail "X-Request-Id in the audit log"

# --- revocation: the CRL and OCSP over plain HTTP, the JSON API, the refusals after it ------
ISSUING="$ESTD_DATA_DIR/certs/issuing-ca.pem"
cat "$ISSUING" "$CA" >chain.pem
REV="http://127.0.0.1:$RPORT"
openssl x509 -in dev.pem -noout -text >dev.txt
grep -q "URI:$REV/crl/issuing-ca.crl" dev.txt && grep -q "OCSP - URI:$REV/ocsp" dev.txt \
  && pass "issued certificates name the CRL and the OCSP responder" || fail "CDP/AIA in the certificate"
ocsp() { openssl ocsp -issuer "$ISSUING" -CAfile "$CA" -url "$REV/ocsp" "$@" 2>&1; }
ocsp -cert dev.pem | grep -q "^dev.pem: good" && pass "openssl ocsp: good before revocation" || fail "ocsp good" "$(ocsp -cert dev.pem | tail -3)"
SERIAL=$(openssl x509 -in dev.pem -noout -serial | cut -d= -f2)
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/json" --data '{"reason":"keyCompromise"}' \
  "https://localhost:$PORT/api/v1/certificates/$SERIAL/revoke")
[ "$code" = 200 ] && grep -q '"status":"revoked"' body.out && pass "revoke through the JSON API (curl): 200" || fail "revoke" "$code $(head -c 200 body.out)"
curl -s -o now.crl -w '%{content_type}' "$REV/crl/issuing-ca.crl" >crl.ct
[ "$(cat crl.ct)" = "application/pkix-crl" ] && openssl crl -inform DER -in now.crl -noout -text >crl.txt 2>/dev/null \
  && grep -q "Serial Number: $SERIAL" crl.txt && grep -q "Key Compromise" crl.txt \
  && pass "the CRL (curl, openssl crl -inform DER) lists the serial with its reason" || fail "CRL" "$(head -c 300 crl.txt)"
openssl crl -inform DER -in now.crl -CAfile chain.pem -noout 2>&1 | grep -q "verify OK" \
  && pass "the CRL verifies against the CA chain" || fail "CRL signature"
ocsp -cert dev.pem | grep -q "^dev.pem: revoked" && ocsp -cert dev.pem | grep -q "Response verify OK" \
  && pass "openssl ocsp: revoked, response verified" || fail "ocsp revoked" "$(ocsp -cert dev.pem | tail -3)"
ocsp -serial 0x42 | grep -q "^0x42: unknown" && pass "openssl ocsp: an unknown serial is unknown" || fail "ocsp unknown"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out after.key 2>/dev/null
code=$(status --cert dev.pem --key dev.key -H "Content-Type: application/pkcs10" --data-binary @<(csr_b64 after.key "/CN=admin" "subjectAltName=DNS:admin.example.com") "$EST/simplereenroll")
[ "$code" = 403 ] && grep -q "was revoked" body.out && pass "simplereenroll with the revoked certificate: 403 with the reason" || fail "reenroll revoked" "$code $(head -c 200 body.out)"
curl -s "http://127.0.0.1:$MPORT/metrics" | grep -q '^estd_certificates_revoked_total 1$' \
  && pass "metrics: estd_certificates_revoked_total 1" || fail "metrics"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/readyz")" = 200 ] && pass "readyz: 200" || fail "readyz"

kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=""
echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
