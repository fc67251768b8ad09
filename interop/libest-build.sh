# Sourced by interop/libest.sh and interop/upstream.sh (after `cd` to the checkout, with
# ROOT set): libest (cisco/libest's estclient, estserver and demo CA) built once into
# target/libest from ../shared/peers/libest. `ensure_libest STAGE` builds it when missing
# or when its demo certificates expire within a day; without libest's source the stage is
# SKIPPED: the script exits 77, which tests/run.sh counts as neither passed nor failed.
PEERS=${LIBEST_PEERS:-$ROOT/../shared/peers/libest}
LIBEST=${LIBEST_DIR:-$ROOT/target/libest}

libest_ready() {
  [ -x "$LIBEST/bin/estclient" ] && [ -x "$LIBEST/bin/estserver" ] \
    && openssl x509 -in "$LIBEST/estsrv/estCA/cacert.crt" -noout -checkend 86400 >/dev/null 2>&1 \
    && openssl x509 -in "$LIBEST/estsrv/estCA/private/estservercertandkey.pem" -noout -checkend 86400 >/dev/null 2>&1
}

ensure_libest() {
  libest_ready && return 0
  if [ ! -f "$PEERS/build.sh" ] || ! ls "$PEERS"/libest-*.tar.gz >/dev/null 2>&1; then
    echo "SKIPPED: libest's source is not here ($PEERS: no build.sh and tarball; a clone without ../shared)."
    echo "The $1 stage did not run: nothing in it counts as passed."
    echo "0 passed, 0 failed (skipped)"
    exit 77
  fi
  mkdir -p "$ROOT/target"
  echo "building libest into $LIBEST (once; log target/libest-build.log)"
  if ! bash "$PEERS/build.sh" "$LIBEST" >"$ROOT/target/libest-build.log" 2>&1 || ! libest_ready; then
    tail -20 "$ROOT/target/libest-build.log"
    echo "FAIL  building libest"
    echo "0 passed, 1 failed"
    exit 1
  fi
}
