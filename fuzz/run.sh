#!/usr/bin/env bash
# Runs one fuzz target: fuzz/run.sh TARGET SECONDS  (needs the nightly toolchain and
# cargo-fuzz: `rustup toolchain install nightly; cargo install cargo-fuzz`). Crashes land in
# fuzz/artifacts/TARGET/; each one becomes a regression test in the crate's test suite.
# Targets: est_body csr_policy csv multipart basic_auth client_answers portal_forms ocsp_request
# scep_message scep_reply (seeded from ../tests/fixtures/scep/*.der)
set -eu
cd "$(dirname "$0")"
target=${1:?target}; secs=${2:-600}
mkdir -p "corpus/$target"
case "$target" in scep_*) cp ../tests/fixtures/scep/*.der "corpus/$target/" ;; esac
# portal_forms keeps a whole server in the process: LeakSanitizer's scan of its heap at every
# new input would cost more than the inputs (the server's caches are not leaks)
extra=()
[ "$target" = portal_forms ] && extra=(-detect_leaks=0)
cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$secs" -rss_limit_mb=2048 "${extra[@]}" 2>&1 \
  | tee "/tmp/fuzz-$target.log" | grep -E "^(#[0-9]+.*DONE|Done|==|SUMMARY|artifact)" || true
grep -E "^Done [0-9]+ runs" "/tmp/fuzz-$target.log" || tail -5 "/tmp/fuzz-$target.log"
