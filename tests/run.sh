#!/usr/bin/env bash
# The whole test suite: unit and integration tests (cargo nextest, or cargo test when nextest
# is missing), then the interop scripts with real clients. Installs what it needs when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
command -v xxd >/dev/null || need_apt+=(xxd)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast
else
  echo "cargo-nextest not found: using cargo test"
  cargo test --no-fail-fast
fi

echo
echo "== interop: curl + openssl against a running estd"
bash interop/curl-openssl.sh
