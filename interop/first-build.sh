#!/usr/bin/env bash
# The first build as a newcomer meets it: a fresh clone of this repository at COMMIT in DIR,
# then `cargo build` (what `cargo run -- serve` does first) and the test build (`cargo
# nextest run --no-run`) one after the other from an empty target/. Prints the wall time of
# each, the crates each compiled and the size of target/ after each. Crates already in
# ~/.cargo/registry are not downloaded again (the time excludes the download). Run it on a
# quiet machine; compare two commits by running it twice, one after the other.
#   interop/first-build.sh COMMIT DIR        e.g. interop/first-build.sh HEAD /tmp/fb
set -u
[ $# = 2 ] || { echo "usage: $0 COMMIT DIR"; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$repo" rev-parse "$1") || exit 2
dir=$2
rm -rf "$dir" && git clone -q "$repo" "$dir" && cd "$dir" && git checkout -q "$commit" || exit 2
echo "commit $(git log --oneline -1 | cut -c1-80)"
unset CARGO_TARGET_DIR
step() {
  local name=$1; shift
  local s e rc
  s=$(date +%s.%N)
  "$@" 2> "$name.err"; rc=$?
  e=$(date +%s.%N)
  printf '%s: exit %s, %.0f s, %s crates compiled, target/ %s\n' "$name" "$rc" \
    "$(echo "$e - $s" | bc)" "$(grep -c '^ *Compiling' "$name.err")" "$(du -sh target | cut -f1)"
}
step build cargo build
step test-build cargo nextest run --no-run
echo "test build compiled: $(grep '^ *Compiling' test-build.err | awk '{print $2}' | tr '\n' ' ')"
