#!/usr/bin/env bash
# SCEP (RFC 8894) against a running estd with real clients: curl for GetCACaps/GetCACert and
# bad input, certmonger (Debian's, run without a system bus on a private socket) for enroll
# with a one-time challenge, renewal, pending-then-approved and a wrong challenge, `estd
# client scep` for every operation, and micromdm's scepclient (Debian's `scep` package:
# SHA-1, single DES) against an estd whose CA is RSA (scepclient encrypts to every
# certificate GetCACert returns, so it needs an RSA CA).
# Usage: interop/scep.sh   (ESTD_BIN=/path/to/estd to skip the build)
set -u
cd "$(dirname "$0")/.."
. interop/lib.sh
need_tools curl openssl certmonger getcert scepclient sqlite3
cd "$WORK"

cat >"$WORK/templates/scep.toml" <<'TOML'
name = "scep"
description = "SCEP devices: one-time challenges, or the static one MDM profiles carry"
key_types = ["rsa-2048", "rsa-3072", "ec-p256"]
validity_days = 30
cn_must_match_user = false
scep_challenge = "Static-Profile-Secret-1"
allowed_rdns = ["O", "OU", "C", "ST", "L"]
san_style = "dns"
san_optional = true
dns_names = ["%cn%.example.com"]
TOML
cat >"$WORK/templates/scepman.toml" <<'TOML'
name = "scepman"
key_types = ["rsa-2048"]
validity_days = 30
cn_must_match_user = false
approval = "manual"
retry_after_secs = 5
TOML
start_estd
ESTD="$ESTD_BIN --config $ROOT/conf/estd.toml"
SCEP="http://127.0.0.1:$SPORT/scep/scep"
audit() { sqlite3 "$ESTD_DATA_DIR/estd.db" "SELECT operation || '|' || COALESCE(principal,'-') || '|' || outcome || '|' || COALESCE(reason,'') FROM audit_events WHERE operation LIKE 'scep%' ORDER BY id DESC LIMIT ${1:-1}"; }

echo "-- GetCACaps, GetCACert and bad input (curl)"
caps=$(curl -s -D hdr.txt "$SCEP?operation=GetCACaps")
ct=$(tr -d '\r' <hdr.txt | sed -n 's/^content-type: //Ip')
ok=1; for c in POSTPKIOperation SHA-256 SHA-512 AES SCEPStandard Renewal; do echo "$caps" | grep -qx "$c" || ok=0; done
[ "$ok" = 1 ] && [ "$ct" = text/plain ] && pass "GetCACaps: text/plain with POSTPKIOperation, SHA-256, SHA-512, AES, SCEPStandard, Renewal" || fail "GetCACaps" "$ct: $caps"
code=$(curl -s -D hdr.txt -o ca.p7 -w '%{http_code}' "http://127.0.0.1:$SPORT/cgi-bin/pkiclient.exe?operation=GetCACert")
ct=$(tr -d '\r' <hdr.txt | sed -n 's/^content-type: //Ip')
openssl pkcs7 -inform DER -in ca.p7 -print_certs -out ca-ra.pem 2>/dev/null
first=$(openssl pkcs7 -inform DER -in ca.p7 -print_certs -noout 2>/dev/null | sed -n 's/^subject=//p' | head -1)
[ "$code" = 200 ] && [ "$ct" = application/x-x509-ca-ra-cert ] && [ "$(grep -c 'BEGIN CERTIFICATE' ca-ra.pem)" = 3 ] && echo "$first" | grep -q "estd SCEP RA" \
  && pass "GetCACert (/cgi-bin/pkiclient.exe): x-x509-ca-ra-cert, the RA first, then the CA chain" || fail "GetCACert" "$code $ct $first"
openssl x509 -in "$ESTD_DATA_DIR/certs/scep-ra.pem" -noout -ext keyUsage 2>/dev/null | grep -q "Key Encipherment" \
  && check "the RA certificate: RSA, keyEncipherment, issued by the issuing CA" openssl verify -CAfile "$ROOTCA" -untrusted "$ESTD_DATA_DIR/certs/issuing-ca.pem" "$ESTD_DATA_DIR/certs/scep-ra.pem" \
  || fail "the RA certificate has keyEncipherment"
code=$(curl -s -o /dev/null -w '%{http_code}' --data-binary 'not a pkiMessage' "$SCEP?operation=PKIOperation")
[ "$code" = 400 ] && pass "PKIOperation: a body that is not DER → 400" || fail "PKIOperation garbage" "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$SCEP?operation=PKIOperation&message=%%%not-base64")
[ "$code" = 400 ] && pass "PKIOperation by GET: a message that is not base64 → 400" || fail "PKIOperation GET garbage" "$code"
head -c 2000000 /dev/zero >big.bin
code=$(curl -s -o /dev/null -w '%{http_code}' --data-binary @big.bin "$SCEP?operation=PKIOperation")
[ "$code" = 413 ] && pass "PKIOperation: a body over the limit → 413" || fail "PKIOperation over the limit" "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SPORT/scep/nosuch?operation=GetCACaps")
[ "$code" = 404 ] && pass "an unknown template → 404" || fail "unknown template" "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SPORT/.well-known/est/cacerts")
[ "$code" = 404 ] && pass "the plain-HTTP SCEP listener serves SCEP only (EST there → 404)" || fail "EST on the SCEP listener" "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ROOTCA" "https://localhost:$PORT/scep/scep?operation=GetCACaps")
[ "$code" = 200 ] && pass "SCEP on the TLS listener too" || fail "SCEP over TLS" "$code"

echo "-- certmonger (getcert against a private certmonger daemon)"
CM="$WORK/certmonger"; mkdir -p "$CM/requests" "$CM/cas" "$CM/tmp" "$CM/out"
export CERTMONGER_REQUESTS_DIR="$CM/requests" CERTMONGER_CAS_DIR="$CM/cas" CERTMONGER_TMPDIR="$CM/tmp" CERTMONGER_PVT_ADDRESS="unix:path=$CM/sock"
certmonger -n -L -P "$CM/sock" -p "$CM/pid" >"$CM/log" 2>&1 &
CMPID=$!
trap 'kill $CMPID 2>/dev/null; [ -n "${KEEP:-}" ] && cp -r "$WORK" /tmp/scep-work; cleanup' EXIT
for _ in $(seq 1 50); do [ -S "$CM/sock" ] && break; sleep 0.1; done
getcert add-scep-ca -c estd -u "$SCEP" >/dev/null 2>&1
getcert add-scep-ca -c estd-manual -u "http://127.0.0.1:$SPORT/scep/scepman" >/dev/null 2>&1
# certmonger fetches the CA's certificates in the background
for _ in $(seq 1 100); do getcert list-cas -c estd 2>/dev/null | grep -q "thumbprint" && getcert list-cas -c estd-manual 2>/dev/null | grep -q "thumbprint" && break; sleep 0.2; done
getcert list-cas -c estd 2>/dev/null | grep -q thumbprint && pass "certmonger: add-scep-ca fetched GetCACaps and GetCACert" || fail "certmonger add-scep-ca" "$(getcert list-cas -c estd 2>&1 | tail -3)"

SECRET=$($ESTD scep challenge --template scep --cn cm-device-1 --expires 1h 2>/dev/null)
[ ${#SECRET} = 32 ] && pass "estd scep challenge: a 32-character one-time secret" || fail "estd scep challenge" "$SECRET"
rc=0; timeout 60 getcert request -c estd -I r1 -f "$CM/out/r1.pem" -k "$CM/out/r1.key" -N CN=cm-device-1 -L "$SECRET" -w >/dev/null 2>&1 || rc=$?
if [ "$rc" = 0 ] && openssl verify -CAfile "$ROOTCA" -untrusted "$ESTD_DATA_DIR/certs/issuing-ca.pem" "$CM/out/r1.pem" >/dev/null 2>&1 \
  && openssl x509 -in "$CM/out/r1.pem" -noout -subject | grep -q "CN = cm-device-1"; then
  pass "certmonger: enroll with a one-time challenge (PKCSReq by GET, AES, SHA-256)"
else fail "certmonger enroll" "rc $rc: $(getcert list -i r1 2>&1 | grep -E 'status|ca-error')"; fi
audit | grep -q '^scep-pkcsreq|scep:challenge-[0-9]*|ok|' && pass "audit: scep-pkcsreq under the challenge's id, never its value" || fail "audit scep-pkcsreq" "$(audit)"
sqlite3 "$ESTD_DATA_DIR/estd.db" "SELECT count(*) FROM audit_events WHERE reason LIKE '%$SECRET%' OR principal LIKE '%$SECRET%'" | grep -qx 0 \
  && ! grep -q "$SECRET" "$WORK/stderr" "$WORK/stdout" && pass "the challenge's value is in no audit row and no log line" || fail "challenge value leaked"
$ESTD scep challenges --all 2>/dev/null | grep -q "used" && pass "estd scep challenges: the challenge is used" || fail "estd scep challenges"

rc=0; timeout 60 getcert request -c estd -I r2 -f "$CM/out/r2.pem" -k "$CM/out/r2.key" -N CN=cm-device-2 -L "$SECRET" -w >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] && [ ! -s "$CM/out/r2.pem" ] && pass "certmonger: the used challenge again → rejected (exit 2)" || fail "certmonger reused challenge" "rc $rc"
audit | grep -q '^scep-pkcsreq|-|error|challenge [0-9]*: already used' && pass "audit: the reused challenge refused, with the reason" || fail "audit reused challenge" "$(audit)"
rc=0; timeout 60 getcert request -c estd -I r3 -f "$CM/out/r3.pem" -k "$CM/out/r3.key" -N CN=cm-device-3 -L wrong-secret-123 -w >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] && pass "certmonger: a wrong challenge → rejected (exit 2)" || fail "certmonger wrong challenge" "rc $rc"
getcert stop-tracking -i r2 >/dev/null 2>&1; getcert stop-tracking -i r3 >/dev/null 2>&1

serial1=$(openssl x509 -in "$CM/out/r1.pem" -noout -serial 2>/dev/null)
rc=0; timeout 60 getcert resubmit -i r1 -w >/dev/null 2>&1 || rc=$?
serial2=$(openssl x509 -in "$CM/out/r1.pem" -noout -serial 2>/dev/null)
if [ "$rc" = 0 ] && [ -n "$serial2" ] && [ "$serial1" != "$serial2" ] && openssl x509 -in "$CM/out/r1.pem" -noout -subject | grep -q "CN = cm-device-1"; then
  pass "certmonger: renewal (resubmit: a PKCSReq signed with the current certificate), a new certificate for the same subject"
else fail "certmonger renewal" "rc $rc $serial1 $serial2: $(getcert list -i r1 2>&1 | grep -E 'status|ca-error')"; fi
audit | grep -q '^scep-renewal|scep:challenge-[0-9]*|ok|' && pass "audit: scep-renewal" || fail "audit scep-renewal" "$(audit)"

SECRET2=$($ESTD scep challenge --template scepman --cn cm-pending 2>/dev/null)
rc=0; timeout 60 getcert request -c estd-manual -I r4 -f "$CM/out/r4.pem" -k "$CM/out/r4.key" -N CN=cm-pending -L "$SECRET2" -w >/dev/null 2>&1 || rc=$?
[ "$rc" = 5 ] && pass "certmonger: a manual template → PENDING (exit 5)" || fail "certmonger pending" "rc $rc: $(getcert list -i r4 2>&1 | grep -E 'status|ca-error')"
ID=$($ESTD pending list 2>/dev/null | awk -F'\t' '$3 == "scepman" {print $1}' | tail -1)
check "estd pending approve $ID" $ESTD pending approve "$ID"
# certmonger polls on its own schedule (hours); refresh asks it now
for _ in $(seq 1 20); do
  getcert refresh -i r4 >/dev/null 2>&1
  sleep 1
  [ -s "$CM/out/r4.pem" ] && break
done
[ -s "$CM/out/r4.pem" ] && openssl x509 -in "$CM/out/r4.pem" -noout -subject | grep -q "CN = cm-pending" \
  && pass "certmonger: after approval, the poll (CertPoll) gets the certificate" || fail "certmonger pending then approved" "$(getcert list -i r4 2>&1 | grep -E 'status|ca-error')"

echo "-- estd client scep: every operation"
C="$ESTD_BIN client scep"
FP=$(openssl x509 -in "$ESTD_DATA_DIR/certs/issuing-ca.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g')
$C caps --url "$SCEP" 2>/dev/null | grep -qx SCEPStandard && pass "client scep caps" || fail "client scep caps"
rc=0; $C cacert --url "$SCEP" --out scep-ca.pem >/dev/null 2>&1 || rc=$?
[ "$rc" = 3 ] && [ ! -s scep-ca.pem ] && pass "client scep cacert over plain HTTP without a fingerprint: not trusted (exit 3), nothing saved" || fail "client scep cacert untrusted" "rc $rc"
check "client scep cacert --fingerprint (the issuing CA's SHA-256)" $C cacert --url "$SCEP" --out scep-ca.pem --fingerprint "$FP"
[ "$(grep -c 'BEGIN CERTIFICATE' scep-ca.pem)" = 3 ] && pass "client scep cacert: RA, issuing CA, root saved" || fail "client scep cacert: 3 certificates"
API="https://localhost:$PORT/api/v1/scep/challenges"
code=$(curl -s --cacert "$ROOTCA" -u "admin:$PASSWORD" -H 'Content-Type: application/json' -o api.json -w '%{http_code}' \
  -d '{"template":"scep","cn":"cl-device","san":["dns:cl-device.example.com"],"expires":"2h"}' "$API")
S=$(sed -n 's/.*"challenge":"\([0-9a-f]*\)".*/\1/p' api.json)
[ "$code" = 201 ] && [ ${#S} = 32 ] && pass "API: POST /api/v1/scep/challenges (admin) → 201 with the secret, bound to a CN and SAN" || fail "API challenge" "$code $(cat api.json)"
echo "User-Pass-1234" | $ESTD user add scepuser --group est-users --password-stdin >/dev/null 2>&1
code=$(curl -s --cacert "$ROOTCA" -u "scepuser:User-Pass-1234" -H 'Content-Type: application/json' -o /dev/null -w '%{http_code}' -d '{"template":"scep"}' "$API")
[ "$code" = 403 ] && pass "API: a user who is not an administrator cannot issue challenges (403)" || fail "API challenge by a user" "$code"
curl -s --cacert "$ROOTCA" -u "admin:$PASSWORD" "$API" >list.json
grep -q '"cn":"cl-device"' list.json && ! grep -q "$S" list.json && pass "API: GET lists the open challenges, never a secret" || fail "API list" "$(head -c 300 list.json)"
rc=0; $C enroll --url "$SCEP" --cacert scep-ca.pem --cn cl-device --san dns:cl-device.example.com --challenge "$S" --key-out cl.key --out cl.pem >cl.log 2>&1 || rc=$?
[ "$rc" = 0 ] && openssl verify -CAfile "$ROOTCA" -untrusted "$ESTD_DATA_DIR/certs/issuing-ca.pem" cl.pem >/dev/null 2>&1 \
  && openssl x509 -in cl.pem -noout -ext subjectAltName | grep -q "DNS:cl-device.example.com" \
  && pass "client scep enroll (POST, one-time challenge, SAN)" || fail "client scep enroll" "rc $rc: $(tail -2 cl.log)"
rc=0; $C enroll --url "$SCEP" --cacert scep-ca.pem --cn cl-device --challenge "$S" --key-out clx.key --out clx.pem >clx.log 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q badRequest clx.log && pass "client scep enroll with the used challenge: FAILURE badRequest (exit 1)" || fail "client scep reused challenge" "rc $rc: $(tail -2 clx.log)"
rc=0; $C renew --url "$SCEP" --cacert scep-ca.pem --cert cl.pem --key cl.key --out cl2.pem >/dev/null 2>&1 || rc=$?
[ "$rc" = 0 ] && [ "$(openssl x509 -in cl.pem -noout -serial)" != "$(openssl x509 -in cl2.pem -noout -serial)" ] \
  && pass "client scep renew (RenewalReq, same key)" || fail "client scep renew" "rc $rc"
rc=0; $C renew --url "$SCEP" --cacert scep-ca.pem --cert cl2.pem --key cl.key --key-out cl3.key --out cl3.pem --pkcsreq >/dev/null 2>&1 || rc=$?
[ "$rc" = 0 ] && [ "$(openssl x509 -in cl3.pem -noout -pubkey)" = "$(openssl pkey -in cl3.key -pubout)" ] \
  && pass "client scep renew --pkcsreq with a new key (as certmonger renews)" || fail "client scep renew --pkcsreq" "rc $rc"
SERIAL=$(openssl x509 -in cl.pem -noout -serial | sed 's/.*=//')
rc=0; $C getcert --url "$SCEP" --cacert scep-ca.pem --cert cl3.pem --key cl3.key --serial "$SERIAL" --out got.pem >/dev/null 2>&1 || rc=$?
[ "$rc" = 0 ] && cmp -s <(openssl x509 -in got.pem -outform DER) <(openssl x509 -in cl.pem -outform DER) \
  && pass "client scep getcert: its own earlier certificate by serial" || fail "client scep getcert" "rc $rc"
MM=$(openssl x509 -in "$CM/out/r1.pem" -noout -serial | sed 's/.*=//')
rc=0; $C getcert --url "$SCEP" --cacert scep-ca.pem --cert cl3.pem --key cl3.key --serial "$MM" --out other.pem >other.log 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q badCertId other.log && pass "client scep getcert: another requester's certificate → badCertId" || fail "client scep getcert of another's" "rc $rc: $(tail -1 other.log)"
rc=0; $C getcrl --url "$SCEP" --cacert scep-ca.pem --cert cl3.pem --key cl3.key --out crl.der >/dev/null 2>&1 || rc=$?
{ openssl crl -in crl.der -inform DER -noout -CAfile "$ESTD_DATA_DIR/certs/issuing-ca.pem" 2>&1 || openssl crl -in crl.der -noout -CAfile "$ESTD_DATA_DIR/certs/issuing-ca.pem" 2>&1; } | grep -q "verify OK" \
  && [ "$rc" = 0 ] && pass "client scep getcrl: the CRL, signed by the issuing CA" || fail "client scep getcrl" "rc $rc"
S=$($ESTD scep challenge --template scepman --cn cl-pending 2>/dev/null)
rc=0; $C enroll --url "http://127.0.0.1:$SPORT/scep/scepman" --cacert scep-ca.pem --cn cl-pending --challenge "$S" --key-out clp.key --out clp.pem >clp.log 2>&1 || rc=$?
[ "$rc" = 4 ] && grep -q "PENDING" clp.log && pass "client scep enroll on a manual template: PENDING (exit 4)" || fail "client scep pending" "rc $rc: $(tail -2 clp.log)"
ID=$($ESTD pending list 2>/dev/null | awk -F'\t' '$3 == "scepman" && $5 ~ /cl-pending/ {print $1}' | tail -1)
[ -z "$ID" ] && ID=$($ESTD pending list 2>/dev/null | awk -F'\t' '$3 == "scepman" {print $1}' | tail -1)
check "estd pending approve $ID (the client's request)" $ESTD pending approve "$ID"
rc=0; $C poll --url "http://127.0.0.1:$SPORT/scep/scepman" --cacert scep-ca.pem --key clp.key --cn cl-pending --out clp.pem >/dev/null 2>&1 || rc=$?
[ "$rc" = 0 ] && openssl x509 -in clp.pem -noout -subject | grep -q "CN = cl-pending" \
  && pass "client scep poll (CertPoll) after approval: the certificate" || fail "client scep poll" "rc $rc"

echo "-- metrics"
curl -s "http://127.0.0.1:$MPORT/metrics" >metrics.txt
grep -q 'estd_scep_messages_total{message="pkcsreq",answer="success"}' metrics.txt \
  && grep -q 'estd_scep_messages_total{message="pkcsreq",answer="failure-badRequest"}' metrics.txt \
  && pass "metrics: SCEP messages by type and answer" || fail "metrics" "$(grep scep metrics.txt | head -5)"

echo "-- micromdm's scepclient (SHA-1, DES) against an estd with an RSA CA"
kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null
mv "$WORK/data" "$WORK/data-ec"
export ESTD_CA_KEY_TYPE=rsa-2048
start_estd
unset ESTD_CA_KEY_TYPE
SCEP="http://127.0.0.1:$SPORT/scep/scep"
rc=0; timeout 60 scepclient -server-url "$SCEP" -challenge Static-Profile-Secret-1 -private-key mm.key -certificate mm.pem -cn mm-device >scepclient.log 2>&1 || rc=$?
[ "$rc" = 0 ] && openssl x509 -in mm.pem -noout -subject 2>/dev/null | grep -q "CN = mm-device" \
  && pass "scepclient: enroll with the template's static challenge (SHA-1, DES-CBC envelope)" || fail "scepclient enroll" "rc $rc: $(tail -3 scepclient.log)"
audit | grep -q '^scep-pkcsreq|scep:static|ok|' && pass "audit: the static challenge's principal" || fail "audit static" "$(audit)"
rc=0; timeout 60 scepclient -server-url "$SCEP" -challenge not-the-secret -private-key mm2.key -certificate mm2.pem -cn mm-device-2 >scepclient2.log 2>&1 || rc=$?
[ "$rc" != 0 ] && [ ! -s mm2.pem ] && pass "scepclient: a wrong static challenge → FAILURE, no certificate" || fail "scepclient wrong challenge" "rc $rc"

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
