# Sourced by the interop scripts: a test manufacturer's PKI made with openssl, as a vendor
# makes one for its devices' IDevIDs (IEEE 802.1AR): an EC P-256 root and issuing CA, and
# device certificates with the device's serial number in the subject's serialNumber
# attribute, keyUsage digitalSignature and no EKU.
#
#   vendor_ca DIR NAME              -> DIR/NAME-root.pem, DIR/NAME-issuing.pem (+ keys)
#   idevid DIR NAME SERIAL [DAYS]   -> DIR/SERIAL.key, DIR/SERIAL.pem (leaf),
#                                      DIR/SERIAL-chain.pem (leaf + issuing CA)

vendor_ca() {
  local d=$1 n=$2
  mkdir -p "$d"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$d/$n-root.key" -out "$d/$n-root.pem" -days 7300 -subj "/O=$n/CN=$n IDevID Root CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || return 1
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$d/$n-issuing.key" -out "$d/$n-issuing.csr" -subj "/O=$n/CN=$n IDevID Issuing CA" 2>/dev/null || return 1
  printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' >"$d/$n-ca.ext"
  openssl x509 -req -in "$d/$n-issuing.csr" -CA "$d/$n-root.pem" -CAkey "$d/$n-root.key" \
    -CAcreateserial -days 7300 -extfile "$d/$n-ca.ext" -out "$d/$n-issuing.pem" 2>/dev/null
}

idevid() {
  local d=$1 n=$2 serial=$3 days=${4:-7300}
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$d/$serial.key" -out "$d/$serial.csr" -subj "/O=$n/CN=$n router/serialNumber=$serial" 2>/dev/null || return 1
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n' >"$d/$n-leaf.ext"
  openssl x509 -req -in "$d/$serial.csr" -CA "$d/$n-issuing.pem" -CAkey "$d/$n-issuing.key" \
    -CAcreateserial -days "$days" -extfile "$d/$n-leaf.ext" -out "$d/$serial.pem" 2>/dev/null || return 1
  cat "$d/$serial.pem" "$d/$n-issuing.pem" >"$d/$serial-chain.pem"
}

# An identity provider's Ed25519 key, its JWKS, and tokens (JWTs, EdDSA) it signs — all with
# openssl, for bearer-token tests:
#   idp_key DIR                         -> DIR/idp.key, DIR/jwks.json
#   idp_token DIR CLAIMS_JSON           -> the token on stdout
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
idp_key() {
  openssl genpkey -algorithm ed25519 -out "$1/idp.key" 2>/dev/null || return 1
  local x; x=$(openssl pkey -in "$1/idp.key" -pubout -outform DER | tail -c 32 | b64url)
  printf '{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"idp-1","use":"sig","x":"%s"}]}\n' "$x" >"$1/jwks.json"
}
idp_token() {
  local h p
  h=$(printf '{"alg":"EdDSA","kid":"idp-1","typ":"JWT"}' | b64url)
  p=$(printf '%s' "$2" | b64url)
  printf '%s.%s' "$h" "$p" >"$1/signed.txt"
  printf '%s.%s.%s' "$h" "$p" "$(openssl pkeyutl -sign -inkey "$1/idp.key" -rawin -in "$1/signed.txt" | b64url)"
}

# The templates both zero-touch stages serve besides their IDevID one: `kiosk` (enrollment
# codes only) and `mdm-token` (bearer tokens of the identity provider idp_key made in WORK,
# configured through the ESTD_TOKENS_* variables).
#   code_and_token_templates WORK
code_and_token_templates() {
  cat >"$1/templates/kiosk.toml" <<'TOML'
name = "kiosk"
key_types = ["ec-p256"]
validity_days = 30
auth = ["code"]
cn_must_match_user = false
scep = false
TOML
  idp_key "$1" || return 1
  cat >"$1/templates/mdm-token.toml" <<'TOML'
name = "mdm-token"
key_types = ["ec-p256"]
validity_days = 30
auth = ["bearer", "basic"]
TOML
  export ESTD_TOKENS_JWKS_FILE="$1/jwks.json" ESTD_TOKENS_ISSUER=https://idp.test ESTD_TOKENS_AUDIENCE=estd ESTD_TOKENS_GROUPS_CLAIM=groups
}
