#!/usr/bin/env bash
# bench/static-vs-glibc.sh: is the static build (scripts/build-static.sh: musl, everything linked
# in) as fast as the usual glibc build? Runs bench/build.sh and bench/install.sh in their
# two-binary mode, with the glibc release build as A and the static one as B, side by side in the
# same run, and writes both sections of BENCHMARKS.md.
#
#   bash bench/static-vs-glibc.sh
#
# Environment:
#   GLIBC_DIR         directory with a glibc st2pack and st2-pack-install (default: cargo build
#                     --release --locked, into target/release)
#   STATIC_DIR        directory with the static ones (default: bash scripts/build-static.sh, into
#                     dist/; set CARGO_TARGET_DIR to reuse a kept musl build)
#   BENCH_RUNS, BENCH_DIR, BENCH_WRITE: passed on (see the two scripts)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

if [[ -z ${GLIBC_DIR:-} ]]; then
  echo "[bench] building the glibc binaries (cargo build --release --locked)" >&2
  # Its own target dir, so a CARGO_TARGET_DIR meant for the musl build is left alone.
  env -u CARGO_TARGET_DIR cargo build --release --locked --bins --quiet
  GLIBC_DIR="$REPO_ROOT/target/release"
fi
if [[ -z ${STATIC_DIR:-} ]]; then
  echo "[bench] building the static binaries (scripts/build-static.sh)" >&2
  bash scripts/build-static.sh >&2
  STATIC_DIR="$REPO_ROOT/dist"
fi

work=${BENCH_DIR:-}
BENCH_DIR=${work:+$work/build} ST2PACK_BIN="$GLIBC_DIR/st2pack" \
  ST2PACK_BIN_VS="$STATIC_DIR/st2pack" bash bench/build.sh
BENCH_DIR=${work:+$work/install} ST2PACK_BIN="$GLIBC_DIR/st2-pack-install" \
  ST2PACK_BIN_VS="$STATIC_DIR/st2-pack-install" bash bench/install.sh
