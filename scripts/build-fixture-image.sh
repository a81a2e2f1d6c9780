#!/usr/bin/env bash
# Builds an image of the bundled fixture pack into the OCI layout out/st2packs, with no registry
# and no Docker: a busybox base made from this machine's busybox-static, then the pack on top.
set -euo pipefail
cd "$(dirname "$0")/.."

busybox=${BUSYBOX:-/bin/busybox}
if ! "$busybox" --list >/dev/null 2>&1; then
  echo "need a static busybox at $busybox (Debian: apt-get install busybox-static), or set BUSYBOX" >&2
  exit 2
fi
cargo build --release --locked --bin st2pack
st2pack=target/release/st2pack
mkdir -p out
"$st2pack" base-image --busybox "$busybox" --tag st2pack-base:local --output oci:out/base >/dev/null
"$st2pack" build ./fixtures/packs/hello_st2 --base oci:out/base:local \
  --tag st2packs:dev --output oci:out/st2packs --helm-values out/st2packs-values.yaml
