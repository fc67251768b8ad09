#!/usr/bin/env bash
# estd with every key in a real PKCS#11 token: SoftHSM2 in a temporary directory, driven the
# way an operator does it (softhsm2-util, pkcs11-tool, `estd ca init --pkcs11`, `estd serve`)
# and checked with curl and openssl. The issuing CA's key, the OCSP responder's key and the
# AES key sealing bulk jobs' keys are all in the token; none is a file. Then: enroll,
# serverkeygen, revoke + CRL + OCSP, a bulk job, `estd ca show`; the token taken away while
# estd runs (a 500 with the FAQ's CA error, audited with the PKCS#11 code, /readyz 503) and
# given back (the next request reconnects, no restart); a token replaced by one holding
# another key under the CA's name (refused); and the start-ups that must fail.
# Prints PASS/FAIL per check and ends with "N passed, M failed"; exits non-zero on a failure.
#
#   interop/hsm.sh            # builds target/debug/estd first
set -u
cd "$(dirname "$0")/.."
. interop/lib.sh
need_tools curl openssl base64 unzip softhsm2-util pkcs11-tool
MODULE=/usr/lib/softhsm/libsofthsm2.so
[ -e "$MODULE" ] || { echo "FAIL  $MODULE missing (apt-get install softhsm2)"; echo "0 passed, 1 failed"; exit 1; }
cd "$WORK"

# --- a token in $WORK, the PIN in a 0600 file ----------------------------------------------
PIN=4711-estd
mkdir tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK" >softhsm2.conf
export SOFTHSM2_CONF="$WORK/softhsm2.conf"
softhsm2-util --init-token --free --label estd --pin "$PIN" --so-pin 5678-so >/dev/null
(umask 077; printf '%s\n' "$PIN" >pin)
p11() { pkcs11-tool --module "$MODULE" --token-label estd --login --pin "$PIN" "$@" 2>&1; }

export ESTD_CA_KEY="pkcs11:token=estd;object=issuing-ca" ESTD_CA_PKCS11_MODULE="$MODULE" \
  ESTD_CA_PIN_FILE="$WORK/pin" ESTD_CA_OCSP_KEY="pkcs11:object=ocsp-responder" \
  ESTD_CA_SEAL_KEY="pkcs11:object=jobs-seal" ESTD_DATA_DIR="$WORK/data"

# --- estd ca init: the CA's key made in the token, a self-signed CA in certs/ --------------
if "$ESTD_BIN" --config "$ROOT/conf/estd.toml" ca init --pkcs11 "$ESTD_CA_KEY" --key-type ec-p256 \
  --self-signed --name "HSM Test CA" >init.out 2>&1; then
  pass "estd ca init --pkcs11 --self-signed"
else fail "estd ca init" "$(cat init.out)"; fi

start_estd
EST="https://localhost:$PORT/.well-known/est"
API="https://localhost:$PORT/api/v1"
REV="http://127.0.0.1:$RPORT"
CA="$ROOTCA"
status() { curl -s --cacert "$CA" -D hdr.txt -o body.out -w '%{http_code}' "$@"; }
header() { tr -d '\r' <hdr.txt | sed -n "s/^$1: //Ip" | head -1; }
csr_b64() { openssl req -new -key "$1" -subj "$2" ${3:+-addext "$3"} -outform DER 2>/dev/null | base64; }
enroll() { # KEY CN OUT: 200 and the certificate in OUT
  code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" \
    --data-binary @<(csr_b64 "$1" "/CN=$2") "$EST/simpleenroll")
  [ "$code" = 200 ] && base64 -d body.out | openssl pkcs7 -inform DER -print_certs >"$3" 2>/dev/null
}
ready() { curl -s -o ready.out -w '%{http_code}' "http://127.0.0.1:$MPORT/readyz"; }

# --- the keys: in the token, never extractable; no key file on disk ------------------------
p11 --list-objects >objects.txt
for label in issuing-ca ocsp-responder; do
  awk -v l="$label" '/^Private Key Object/ { o = $0; next } /label:/ { lbl = $2 } /Access:/ && lbl == l && o != "" { print; o = "" }' \
    objects.txt | grep -q "never extractable" && pass "token: private key $label, never extractable" \
    || fail "token: $label" "$(grep -A8 "$label" objects.txt | head -12)"
done
grep -B2 -A8 'label: *jobs-seal' objects.txt | grep -q "^Secret Key Object; AES" \
  && grep -A8 'label: *jobs-seal' objects.txt | grep -q "never extractable" \
  && pass "token: AES sealing key jobs-seal, never extractable" || fail "token: jobs-seal" "$(grep -B2 -A8 jobs-seal objects.txt)"
ls data/certs >files.txt
grep -qx issuing-ca.pem files.txt && ! grep -qE '^(issuing-ca\.key|root-ca\.key|ocsp-responder\.key|jobs\.key)$' files.txt \
  && pass "no CA, OCSP or sealing key file in certs/ ($(tr '\n' ' ' <files.txt))" || fail "key files on disk" "$(cat files.txt)"

# --- EST with the key in the token ----------------------------------------------------------
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dev.key 2>/dev/null
enroll dev.key admin dev.pem && openssl verify -CAfile "$CA" dev.pem >/dev/null 2>&1 \
  && pass "simpleenroll: signed in the token, openssl verifies it" || fail "simpleenroll" "$code $(head -c 200 body.out)"
openssl x509 -in dev.pem -noout -text | grep -q "ecdsa-with-SHA256" && pass "simpleenroll: ecdsa-with-SHA256" || fail "signature algorithm"
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/pkcs10" \
  --data-binary @<(csr_b64 dev.key "/CN=admin" "subjectAltName=DNS:admin.devices.example.com") "$EST/devices/serverkeygen")
ct=$(header content-type); boundary=${ct#*boundary=}
tr -d '\r' <body.out | awk -v b="$boundary" '
  $0 == "--" b || $0 == "--" b "--" { n++; inbody = 0; next }
  n > 0 && !inbody && $0 == "" { inbody = 1; next }
  n > 0 && !inbody { next }
  inbody { print > ("part" n ".b64") }'
[ "$code" = 200 ] && base64 -d part1.b64 >skg.der && base64 -d part2.b64 | openssl pkcs7 -inform DER -print_certs >skg.pem 2>/dev/null \
  && openssl pkcs8 -inform DER -nocrypt -in skg.der -out skg.key 2>/dev/null \
  && [ "$(openssl pkey -in skg.key -pubout 2>/dev/null)" = "$(openssl x509 -in skg.pem -noout -pubkey)" ] \
  && openssl verify -CAfile "$CA" skg.pem >/dev/null 2>&1 \
  && pass "serverkeygen: the key matches its certificate, signed in the token" || fail "serverkeygen" "$code $(head -c 200 body.out)"

# --- revocation: the CRL signed by the token's CA key, OCSP by the token's responder key ----
SERIAL=$(openssl x509 -in dev.pem -noout -serial | cut -d= -f2)
code=$(status -u "admin:$PASSWORD" -H "Content-Type: application/json" --data '{"reason":"keyCompromise"}' "$API/certificates/$SERIAL/revoke")
[ "$code" = 200 ] && pass "revoke through the API" || fail "revoke" "$code $(head -c 200 body.out)"
curl -s -o now.crl "$REV/crl/issuing-ca.crl"
openssl crl -inform DER -in now.crl -CAfile "$CA" -noout -text >crl.txt 2>&1
grep -q "verify OK" crl.txt && grep -q "Serial Number: $SERIAL" crl.txt \
  && pass "CRL: verifies against the CA, lists the serial" || fail "CRL" "$(head -5 crl.txt)"
ocsp() { openssl ocsp -issuer "$CA" -CAfile "$CA" -url "$REV/ocsp" "$@" 2>&1; }
ocsp -cert dev.pem >ocsp.txt
grep -q "^dev.pem: revoked" ocsp.txt && grep -q "Response verify OK" ocsp.txt \
  && pass "OCSP: revoked, the response verified (signed by the token's responder key)" || fail "OCSP" "$(cat ocsp.txt)"
openssl x509 -in data/certs/ocsp-responder.pem -noout -pubkey >responder.pub 2>/dev/null
p11 --read-object --type pubkey --label ocsp-responder -o responder.der >/dev/null
openssl pkey -pubin -inform DER -in responder.der -pubout 2>/dev/null | cmp -s - responder.pub \
  && pass "OCSP: the responder certificate is for the token's key" || fail "OCSP responder key"

# --- SCEP: the RA certificate issued by the token's CA key, an enrollment through it --------
SECRET=$("$ESTD_BIN" --config "$ROOT/conf/estd.toml" scep challenge --template default --cn hsm-scep 2>/dev/null)
"$ESTD_BIN" client scep cacert --url "https://localhost:$PORT/scep" --tls-cacert "$CA" --out scep-ca.pem >/dev/null 2>&1
"$ESTD_BIN" client scep enroll --url "https://localhost:$PORT/scep" --tls-cacert "$CA" --cacert scep-ca.pem \
  --cn hsm-scep --san dns:hsm-scep.example.com --challenge "$SECRET" --key-out scep.key --out scep.pem >scep.log 2>&1
openssl verify -CAfile "$CA" -untrusted data/certs/issuing-ca.pem data/certs/scep-ra.pem >/dev/null 2>&1 \
  && openssl verify -CAfile "$CA" -untrusted data/certs/issuing-ca.pem scep.pem >/dev/null 2>&1 \
  && pass "SCEP: the RA certificate and a SCEP enrollment, both signed by the token's CA key" || fail "SCEP with the token" "$(tail -2 scep.log)"

# --- a bulk job: the generated keys sealed with the token's AES key, opened for the download -
printf 'CN,SAN\nadmin,11:22:33:44:55:01\nadmin,11-22-33-44-55-02\n' >devices.csv
bulk() { # → job id in JOB, zip in bulk.zip
  curl -s --cacert "$CA" -u "admin:$PASSWORD" -F csv=@devices.csv -F template=eap-tls -F description=hsm \
    -F format=pkcs12-chain -F 'password=Secret_#42' "$API/bulk" >job.json
  JOB=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' job.json)
  for _ in $(seq 120); do
    curl -s --cacert "$CA" -u "admin:$PASSWORD" "$API/bulk/$JOB" | grep -qE '"state":"(completed|cancelled|failed)"' && break
    sleep 0.5
  done
  curl -s --cacert "$CA" -u "admin:$PASSWORD" -o bulk.zip -w '%{http_code}' "$API/bulk/$JOB/download"
  curl -s --cacert "$CA" -u "admin:$PASSWORD" -o /dev/null -X POST "$API/bulk/$JOB/confirm"
}
code=$(bulk)
rm -rf z && mkdir z && (cd z && unzip -q ../bulk.zip) 2>/dev/null
p12=$(ls z/*.p12 2>/dev/null | head -1)
[ "$code" = 200 ] && [ "$(ls z/*.p12 2>/dev/null | wc -l)" = 2 ] \
  && openssl pkcs12 -in "$p12" -passin 'pass:Secret_#42' -nodes -out p12.pem 2>/dev/null \
  && [ "$(openssl pkey -in p12.pem -pubout 2>/dev/null)" = "$(openssl x509 -in p12.pem -noout -pubkey 2>/dev/null)" ] \
  && pass "bulk: 2 PKCS#12 files, keys unsealed by the token, each matching its certificate" || fail "bulk" "$code $(cat job.json)"

# --- estd ca show: where each key lives ------------------------------------------------------
"$ESTD_BIN" --config "$ROOT/conf/estd.toml" ca show >show.txt 2>&1
grep -q "issuing CA key: *pkcs11:token=estd;object=issuing-ca" show.txt \
  && grep -q "OCSP responder key: *pkcs11:token=estd;object=ocsp-responder" show.txt \
  && grep -q "sealing key: *pkcs11:token=estd;object=jobs-seal" show.txt \
  && pass "estd ca show: every key's place" || fail "estd ca show" "$(cat show.txt)"

# --- the token taken away while estd runs, then given back ----------------------------------
[ "$(ready)" = 200 ] && pass "readyz: 200 with the token" || fail "readyz before" "$(cat ready.out)"
cp -a tokens tokens.saved && rm -rf tokens/*
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out gone.key 2>/dev/null
enroll gone.key admin gone.pem
[ "$code" = 500 ] && grep -q "CA server error - Certificate request to internal CA failed CN=admin" body.out \
  && pass "token gone: 500 with the FAQ's CA error" || fail "token gone: enrollment" "$code $(head -c 300 body.out)"
"$ESTD_BIN" --config "$ROOT/conf/estd.toml" requests --failed --since 5m >audit.txt 2>&1
grep -E 'simpleenroll.*500' audit.txt | grep -q 'CKR_' \
  && pass "token gone: audited with the PKCS#11 code ($(grep -oE 'CKR_[A-Z_]+' audit.txt | head -1))" || fail "audit" "$(tail -5 audit.txt)"
code=$(ready)
[ "$code" = 503 ] && grep -q "CA key:" ready.out && pass "token gone: readyz 503, naming the CA key" || fail "readyz while gone" "$code $(cat ready.out)"
ocsp -cert dev.pem >ocsp.txt
grep -qiE "internalerror|trylater|Responder Error" ocsp.txt && pass "token gone: OCSP answers an error, not a forged status" || fail "OCSP while gone" "$(cat ocsp.txt)"
cp -a tokens.saved/. tokens/
sleep 1.2
code=$(ready)
[ "$code" = 200 ] && pass "token back: readyz 200 (reconnected, no restart)" || fail "readyz after" "$code $(cat ready.out)"
enroll gone.key admin back.pem && openssl verify -CAfile "$CA" back.pem >/dev/null 2>&1 \
  && pass "token back: enrollment signed by the same CA key" || fail "token back: enrollment" "$code $(head -c 300 body.out)"
ocsp -cert dev.pem >ocsp.txt
grep -q "^dev.pem: revoked" ocsp.txt && grep -q "Response verify OK" ocsp.txt && pass "token back: OCSP signs again, verified" || fail "OCSP after" "$(cat ocsp.txt)"
code=$(bulk)
[ "$code" = 200 ] && [ "$(unzip -l bulk.zip 2>/dev/null | grep -c '\.p12$')" = 2 ] \
  && pass "token back: a bulk job's 2 keys sealed and unsealed again" || fail "bulk after" "$code $(cat job.json)"
kill -0 "$PID" 2>/dev/null && grep -q "lost the token; the next call reconnects" "$WORK/stderr" \
  && grep -q "reconnected to the token and logged in again" "$WORK/stderr" \
  && pass "the same estd process throughout; the loss and the reconnect logged" || fail "estd died, or no log" "$(tail -3 "$WORK/stderr")"

# --- a token replaced by one with another key under the CA's name: refused ----------------
rm -rf tokens/*
softhsm2-util --init-token --free --label estd --pin "$PIN" --so-pin 5678-so >/dev/null
p11 --keypairgen --key-type EC:prime256v1 --label issuing-ca >/dev/null
enroll gone.key admin x.pem
code1=$code
sleep 1.2
enroll gone.key admin x.pem
[ "$code1" = 500 ] && [ "$code" = 500 ] && pass "another key under the CA's name: 500, nothing signed" || fail "replaced key" "$code1 $code"
"$ESTD_BIN" --config "$ROOT/conf/estd.toml" requests --failed --since 5m >audit.txt 2>&1
grep -q "another key under this name" audit.txt && grep -q "ERROR.*another key under this name" "$WORK/stderr" \
  && pass "another key under the CA's name: the reason logged and audited" || fail "replaced key: reason" "$(tail -3 audit.txt)"
kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=""

# the PIN in no output and no audit row
! grep -qF -- "$PIN" "$WORK/stdout" "$WORK/stderr" audit.txt init.out show.txt \
  && pass "the PIN appears in no log, output or audit row" || fail "the PIN leaked"

# --- an external root: ca init --csr, the root signs it, ca import --pkcs11, serve ----------
rm -rf tokens/* && cp -a tokens.saved/. tokens/
# from here on, a template whose certificates are signed with RSASSA-PSS
printf 'name = "pss"\nkey_types = ["ec-p256"]\nvalidity_days = 30\nrsa_pss = true\n' >"$WORK/templates/pss.toml"
SUB="pkcs11:token=estd;object=sub-ca"
est2() { env ESTD_DATA_DIR="$WORK/data2" ESTD_CA_KEY="$SUB" ESTD_CA_OCSP_KEY= ESTD_CA_SEAL_KEY= "$@"; }
est2 "$ESTD_BIN" --config "$ROOT/conf/estd.toml" ca init --pkcs11 "$SUB" --key-type rsa-2048 --csr sub.csr --name "HSM Sub CA" >init2.out 2>&1 \
  && openssl req -in sub.csr -verify -noout >/dev/null 2>&1 && pass "ca init --csr: an RSA-2048 request signed in the token" || fail "ca init --csr" "$(cat init2.out)"
openssl req -x509 -newkey EC -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ext-root.key -out ext-root.pem \
  -subj "/CN=External Root" -days 30 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\n' >sub.ext
openssl x509 -req -in sub.csr -CA ext-root.pem -CAkey ext-root.key -CAcreateserial -days 30 -extfile sub.ext -out sub.pem 2>/dev/null
if est2 "$ESTD_BIN" --config "$ROOT/conf/estd.toml" ca import --cert sub.pem --chain ext-root.pem --pkcs11 "$SUB" >import.out 2>&1 \
  && grep -q "in the token" import.out && [ ! -e data2/certs/issuing-ca.key ]; then
  pass "ca import --pkcs11: the certificate for the token key, no key file"
else fail "ca import --pkcs11" "$(cat import.out)"; fi
est2 "$ESTD_BIN" --config "$ROOT/conf/estd.toml" ca import --cert sub.pem --chain ext-root.pem \
  --pkcs11 "pkcs11:token=estd;object=issuing-ca" --force >import.out 2>&1
grep -q "does not belong" import.out && pass "ca import --pkcs11 with another token key: refused" || fail "import mismatch" "$(cat import.out)"
# (env, not the est2 function: a function in the background is a subshell, and $! would be
# its pid, not estd's)
env ESTD_DATA_DIR="$WORK/data2" ESTD_CA_KEY="$SUB" ESTD_CA_OCSP_KEY= ESTD_CA_SEAL_KEY= \
  ESTD_LISTEN=127.0.0.1:0 ESTD_REVOCATION_LISTEN=127.0.0.1:0 ESTD_METRICS_LISTEN=127.0.0.1:0 ESTD_LOG_FILTER=warn \
  "$ESTD_BIN" --config "$ROOT/conf/estd.toml" serve >stdout2 2>stderr2 &
PID=$!
for _ in $(seq 100); do PORT2=$(sed -n 's#^estd listening on https://127.0.0.1:\([0-9]*\)/.*#\1#p' stdout2); [ -n "$PORT2" ] && break; sleep 0.1; done
PW2=$(cat data2/admin-password 2>/dev/null)
code=$(curl -s --cacert ext-root.pem -o body.out -w '%{http_code}' -u "admin:$PW2" -H "Content-Type: application/pkcs10" \
  --data-binary @<(csr_b64 dev.key /CN=admin) "https://localhost:$PORT2/.well-known/est/simpleenroll")
[ "$code" = 200 ] && base64 -d body.out | openssl pkcs7 -inform DER -print_certs >sub-dev.pem 2>/dev/null \
  && openssl verify -CAfile ext-root.pem -untrusted sub.pem sub-dev.pem >/dev/null 2>&1 \
  && openssl x509 -in sub-dev.pem -noout -text | grep -q sha256WithRSAEncryption \
  && pass "under the external root: TLS and a device certificate signed by the token's RSA key" || fail "sub CA serve" "$code $(tail -3 stderr2)"
code=$(curl -s --cacert ext-root.pem -o body.out -w '%{http_code}' -u "admin:$PW2" -H "Content-Type: application/pkcs10" \
  --data-binary @<(csr_b64 dev.key /CN=admin) "https://localhost:$PORT2/.well-known/est/pss/simpleenroll")
[ "$code" = 200 ] && base64 -d body.out | openssl pkcs7 -inform DER -print_certs >pss-dev.pem 2>/dev/null \
  && openssl verify -CAfile ext-root.pem -untrusted sub.pem pss-dev.pem >/dev/null 2>&1 \
  && openssl x509 -in pss-dev.pem -noout -text | grep -A3 "Signature Algorithm: rsassaPss" | grep -q "Salt Length: 0x20" \
  && pass "template rsa_pss: RSASSA-PSS (SHA-256, salt 32) signed in the token, openssl verifies it" || fail "rsa_pss" "$code $(head -c 200 body.out)"
kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=""

# --- start-ups that must fail, each naming the key and why ----------------------------------
serve_fails() { # WHAT PATTERN ENV...
  local what=$1 pattern=$2; shift 2
  env "$@" ESTD_LISTEN=127.0.0.1:0 ESTD_REVOCATION_LISTEN=127.0.0.1:0 ESTD_METRICS_LISTEN=127.0.0.1:0 \
    timeout 60 "$ESTD_BIN" --config "$ROOT/conf/estd.toml" serve >start.out 2>&1
  local rc=$?
  [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -qE -- "$pattern" start.out && ! grep -q "$PIN" start.out \
    && pass "start-up refused: $what" || fail "start-up: $what" "rc $rc: $(tail -3 start.out)"
}
printf '0000\n' >wrong-pin; chmod 600 wrong-pin
serve_fails "wrong PIN (CKR_PIN_INCORRECT)" 'ca\.key: .*CKR_PIN_INCORRECT' ESTD_CA_PIN_FILE="$WORK/wrong-pin"
cp pin open-pin; chmod 644 open-pin
serve_fails "a PIN file others may read (0644)" 'ca\.pin_file .*mode 644' ESTD_CA_PIN_FILE="$WORK/open-pin"
serve_fails "key missing" 'ca\.key: .*object=nosuch.*no such private key' ESTD_CA_KEY="pkcs11:token=estd;object=nosuch"
serve_fails "token missing" 'ca\.key: .*no such token' ESTD_CA_KEY="pkcs11:token=other;object=issuing-ca" ESTD_CA_OCSP_KEY= ESTD_CA_SEAL_KEY=
serve_fails "module missing" 'ca\.key: .*cannot be loaded' ESTD_CA_PKCS11_MODULE=/nonexistent/libp11.so
p11 --keypairgen --key-type EC:secp521r1 --label p521 >/dev/null
serve_fails "key type not allowed (P-521)" 'ca\.key: .*P-256 or P-384 only' ESTD_CA_KEY="pkcs11:token=estd;object=p521"
p11 --keypairgen --key-type EC:prime256v1 --label other-key >/dev/null
serve_fails "a token key that is not the certificate's" 'does not belong to the issuing CA certificate' ESTD_CA_KEY="pkcs11:token=estd;object=other-key"
serve_fails "an rsa_pss template with an EC CA key" 'template pss: rsa_pss needs an RSA CA key'
rm "$WORK/templates/pss.toml"
# ca.ocsp_key naming the CA's own key by its id (the text differs from ca.key's)
p11 --set-id 77 --type privkey --label issuing-ca >/dev/null && p11 --set-id 77 --type pubkey --label issuing-ca >/dev/null
serve_fails "ca.ocsp_key naming the CA's own key by another attribute" "ca\.ocsp_key: .*is the issuing CA's own key" ESTD_CA_OCSP_KEY="pkcs11:id=%77"

# (HSM_KEEP=DIR keeps the work directory for a look after a failure)
[ -n "${HSM_KEEP:-}" ] && cp -a "$WORK" "$HSM_KEEP"
echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
