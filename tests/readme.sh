#!/usr/bin/env bash
# The README's walkthrough, as written: every ```sh block of README.md in order, in one bash
# shell (set -euo pipefail), against a fresh `estd serve` that the first block starts in a
# scratch directory. A block right after the line `<!-- not run by tests/readme.sh: WHY -->`
# is left out (building, serving and testing; a production machine's files).
#
# What differs from a reader's run, and only this: the blocks run in a temporary directory
# holding a copy of conf/ and target/debug/estd (ESTD_BIN), so nothing lands in the
# repository, and the default ports 8443, 8081 and 9187 are replaced by free ones (in the
# blocks and the copied conf/estd.toml), so that a server already on them does not matter.
#
# Then it checks what the walkthrough should have produced. Output: the blocks' output, then
# PASS/FAIL lines and "N passed, M failed".
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${ESTD_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --quiet --bin estd) || { echo "cargo build failed"; echo "0 passed, 1 failed"; exit 1; }
  ESTD_BIN="$ROOT/target/debug/estd"
fi
ESTD_BIN=$(realpath "$ESTD_BIN")
for tool in curl openssl unzip base64 awk; do
  command -v "$tool" >/dev/null || { echo "FAIL  $tool is missing"; exit 1; }
done

WORK=$(mktemp -d)
cleanup() {
  # the walkthrough stops its server (and the pid file goes); a failed run may not have
  if [ -f "$WORK/demo/estd.pid" ]; then
    pid=$(cat "$WORK/demo/estd.pid")
    if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$ESTD_BIN" ]; then
      kill "$pid" 2>/dev/null
      for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/target/debug"
ln -s "$ESTD_BIN" "$WORK/target/debug/estd"
cp -r "$ROOT/conf" "$WORK/conf"

# three free ports (nothing answers a connect), none holding a default port's digits (the
# substitutions below run one after the other)
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    case " ${USED:-} " in *" $p "*) continue ;; esac
    case "$p" in *8443* | *8081* | *9187*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then USED="${USED:-} $p"; echo "$p"; return; fi
  done
}
USED=""
P_EST=$(free_port); USED="$USED $P_EST"
P_REV=$(free_port); USED="$USED $P_REV"
P_MET=$(free_port)
ports() { sed -e "s/8443/$P_EST/g" -e "s/8081/$P_REV/g" -e "s/9187/$P_MET/g"; }
ports < "$ROOT/conf/estd.toml" > "$WORK/conf/estd.toml"

# the blocks, each announced with its line in README.md; the server's pid kept for cleanup
awk '
  /^<!-- not run by tests\/readme.sh/ { skip = 1; next }
  /^```sh$/ && !inblock { inblock = 1; start = NR; if (!skip) printf "\nprintf \"\\\\n== README.md:%d\\\\n\"\nREADME_LINE=%d\n", NR, NR; next }
  /^```/ && inblock { inblock = 0; skip = 0; next }
  inblock && !skip { print; next }
  !inblock && !/^[[:space:]]*$/ { skip = 0 }
' "$ROOT/README.md" | ports > "$WORK/walkthrough.sh"
blocks=$(grep -c '^README_LINE=' "$WORK/walkthrough.sh")
echo "README.md: $blocks blocks, ports $P_EST $P_REV $P_MET, in $WORK"

# after the block that starts the server, remember its pid for the cleanup above
sed -i 's/^ESTD_PID=\$!$/ESTD_PID=$!; echo "$ESTD_PID" > estd.pid/' "$WORK/walkthrough.sh"
grep -q 'echo "$ESTD_PID" > estd.pid' "$WORK/walkthrough.sh" || {
  echo "FAIL  the walkthrough no longer starts its server with ESTD_PID=\$!"; exit 1; }

passed=0; failed=0
pass() { echo "PASS  $1"; passed=$((passed + 1)); }
fail() { echo "FAIL  $1${2:+ — $2}"; failed=$((failed + 1)); }

# run it: stop at the first failing command, naming the block
(
  cd "$WORK" || exit 1
  export -n ESTD_BIN
  timeout 900 bash -c '
    set -euo pipefail
    trap '\''echo "FAILED: README.md block at line ${README_LINE:-?}: $BASH_COMMAND (exit $?)" >&2'\'' ERR
    source ./walkthrough.sh
  '
) > "$WORK/out.txt" 2>&1
rc=$?
cat "$WORK/out.txt"
# the server stopped by the walkthrough's last block: nothing left to kill
[ "$rc" = 0 ] && rm -f "$WORK/demo/estd.pid"
if [ "$rc" = 0 ]; then pass "every block ran ($blocks blocks)"; else fail "the walkthrough" "exit $rc"; fi

D="$WORK/demo"
O="$WORK/out.txt"
# (grep on the file, not `cat | grep -q`: under pipefail an early grep exit fails the cat;
# after a pipe, grep reads everything (>/dev/null) rather than -q for the same reason)
out() { grep -qE -- "$1" "$O"; }
has() { grep -qE -- "$2" "$1" 2>/dev/null; }
# a server refusal as curl printed it: the reason, then the request id on the next line
refusal() { grep -A1 -E -- "$1" "$O" | grep '^Request ID: ' >/dev/null; }
# what the blocks should have produced
[ -s "$D/cacerts.pem" ] && [ "$(grep -c 'BEGIN CERTIFICATE' "$D/cacerts.pem")" = 2 ] \
  && pass "cacerts.pem: the issuing and root CA" || fail "cacerts.pem"
openssl verify -CAfile "$D/certs/root-ca.pem" -untrusted "$D/cacerts.pem" "$D/renewed.pem" >/dev/null 2>&1 \
  && pass "renewed.pem verifies" || fail "renewed.pem"
openssl x509 -in "$D/pos.pem" -noout -ext subjectAltName 2>/dev/null | grep 'URI:urn:dev:mac:001122aabbcc' >/dev/null \
  && pass "eap-tls: the MAC address as an RFC 9039 URI" || fail "pos.pem"
openssl x509 -in "$D/router.pem" -noout -ext subjectAltName 2>/dev/null | grep 'DNS:router-7.devices.example.com' >/dev/null \
  && pass "a CA label: devices" || fail "router.pem"
has "$D/skg.body" 'application/pkcs8' && pass "serverkeygen: a key part" || fail "skg.body"
out '^name = "devices"$' && out '^extended_key_usage = \["client_auth", "server_auth"\]$' \
  && out '"name": "rsaEncryption"' \
  && pass "template show: TOML spellings, --json with named OIDs" || fail "template show"
grep -qiE '^HTTP/[0-9.]+ 202' "$O" && grep -qi '^retry-after: 60' "$O" \
  && pass "manual: 202 with Retry-After" || fail "manual: 202"
openssl x509 -in "$D/approved.pem" -noout -subject 2>/dev/null | grep 'CN *= *admin' >/dev/null \
  && pass "manual: approved, the retry gets the certificate" || fail "approved.pem"
refusal 'unknown device' && pass "manual: rejected, the reason" || fail "rejected"
out '^303 https://localhost:[0-9]*/portal/$' && pass "/ leads to /portal/" || fail "/ redirect"
unzip -l "$D/single.zip" 2>/dev/null | grep 'admin_11-22-33-44-55-66.p12' >/dev/null && pass "single.zip" || fail "single.zip"
[ "$(unzip -l "$D/bulk.zip" 2>/dev/null | grep -c '\.p12$')" = 2 ] && pass "bulk.zip: two devices" || fail "bulk.zip"
has "$D/test-certificate.json" '"result":"PASS"' && pass "MDM test certificate (JSON)" || fail "test-certificate.json"
[ -s "$D/TestCert.pem" ] && [ -s "$D/TestCert.key" ] && pass "estd client test: PASS, saved" || fail "TestCert.pem"
out 'exit 3: not trusted' && pass "bootstrap without a fingerprint: exit 3" || fail "bootstrap"
for f in client-cacerts.pem client.pem client-renewed.pem client-skg.pem client-skg.key; do
  [ -s "$D/$f" ] || { fail "estd client: $f"; continue; }
done
[ -s "$D/client-skg.key" ] && [ "$(stat -c %a "$D/client.key")" = 600 ] && pass "estd client: distinct files, keys 0600" || fail "client files"
out 'enrollments/s|per second' && pass "estd client bench ran" || fail "bench"
out '^dev.pem: revoked$' && pass "OCSP: dev.pem revoked" || fail "OCSP"
refusal 'CN=dev-1 \(serial [0-9a-f]+\) was revoked' && pass "a revoked certificate is not renewed" \
  || fail "renewal of a revoked certificate"
grep -E 'simplereenroll +- +admin .* 403 .*CN=dev-1' "$O" >/dev/null \
  && pass "the refused renewal audited under its owner, naming CN=dev-1" || fail "audit of the refused renewal"
# zero-touch: the IDevID enrolled with curl and estd client; the unlisted one refused, audited
openssl x509 -in "$D/zt.pem" -noout -subject 2>/dev/null | grep -q 'CN *= *SN-1001' \
  && openssl x509 -in "$D/zt-client.pem" -noout -subject 2>/dev/null | grep -q 'CN *= *SN-1001' \
  && pass "zero-touch: SN-1001 enrolled by its IDevID (curl, estd client)" || fail "zero-touch enrollment"
out 'the device SN-1002 is not on the allow-list of the certificate template acme-routers' \
  && grep -E 'simpleenroll +acme-routers +idevid:SN-1002 .* 403' "$O" >/dev/null \
  && pass "zero-touch: SN-1002 refused (403), audited as idevid:SN-1002" || fail "zero-touch refusal"
# enrollment codes: one as the Basic password, one as the challengePassword; a reuse refused
openssl x509 -in "$D/kiosk.pem" -noout -subject 2>/dev/null | grep -q 'CN *= *kiosk-1' \
  && openssl x509 -in "$D/kiosk-2.pem" -noout -subject 2>/dev/null | grep -q 'CN *= *kiosk-2' \
  && [ "$(stat -c %a "$D/kiosk-codes.csv" 2>/dev/null)" = 600 ] \
  && pass "enrollment codes: kiosk-1 (Basic), kiosk-2 (challengePassword), the CSV 0600" || fail "enrollment codes"
out 'code [0-9]+: already used' && out '^exit 1$' && [ ! -e "$D/kiosk-9.pem" ] \
  && pass "enrollment codes: the reused code refused (exit 1)" || fail "enrollment code reuse"
# the server counts its own revocation (the API's), not the one `estd cert revoke` made
out '^estd_certificates_revoked_total 1$' && pass "metrics: the server's revocation counted" || fail "metrics"
for name in 'EST, API and portal' revocation metrics; do
  [ "$(grep 'no longer accepting' "$D/estd.log" 2>/dev/null | grep -c "listener=\"$name\"")" = 1 ] \
    && pass "shutdown logged once for $name" || fail "shutdown log: $name"
done
# nothing written outside demo/ (besides the copies this script made)
extra=$(cd "$WORK" && ls -A | grep -vxE 'conf|target|demo|walkthrough.sh|out.txt' || true)
[ -z "$extra" ] && pass "every file in demo/" || fail "files outside demo/" "$extra"

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
