#!/usr/bin/env bash
# Builds st2pack and st2-pack-install as static executables for x86_64-unknown-linux-musl: one file
# each, with no run-time dependency but the Linux kernel (no glibc, no OpenSSL: libgit2, its TLS and
# SSH, zlib and rustls are compiled in), so they run in any x86_64 image or CI runner, old or new.
#
#   bash scripts/build-static.sh
#
# Writes dist/st2pack and dist/st2-pack-install, each with a .sha256 beside it (`sha256sum -c`
# format), from a release build with --locked. Needs the Rust target and a musl C compiler for the
# C libraries:
#
#   rustup target add x86_64-unknown-linux-musl
#   apt-get install musl-tools          # Debian/Ubuntu: provides musl-gcc
#
# Environment:
#   CARGO_TARGET_DIR  where cargo builds (default: target/ in the repository). The vendored C
#                     libraries and LTO make a first build slow; a target dir kept between runs
#                     (CI: outside the clone) makes the next build incremental.
#   DIST_DIR          where the binaries go (default: dist/ in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
bins=(st2pack st2-pack-install)
dist=${DIST_DIR:-dist}
target_dir=${CARGO_TARGET_DIR:-target}

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found: install Rust (rustup) first" >&2
  exit 2
fi
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
  echo "error: the Rust target $target is not installed: rustup target add $target" >&2
  exit 2
fi
# The cc crate compiles libgit2, OpenSSL, libssh2, zlib, zstd and aws-lc for musl with musl-gcc.
export CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-musl-gcc}
if ! command -v "$CC_x86_64_unknown_linux_musl" >/dev/null 2>&1; then
  echo "error: $CC_x86_64_unknown_linux_musl not found: apt-get install musl-tools" \
    "(or set CC_x86_64_unknown_linux_musl to a musl C compiler)" >&2
  exit 2
fi

cargo build --release --locked --target "$target" --bins

mkdir -p "$dist"
for bin in "${bins[@]}"; do
  built="$target_dir/$target/release/$bin"
  # Copied under a temporary name and renamed, so a reader never sees a half-written binary.
  cp "$built" "$dist/.$bin.tmp"
  mv -f "$dist/.$bin.tmp" "$dist/$bin"
  (cd "$dist" && sha256sum "$bin" >"$bin.sha256")
done

# The check this build exists for: no program interpreter, so no shared library is loaded.
for bin in "${bins[@]}"; do
  if LC_ALL=C readelf -lW "$dist/$bin" 2>/dev/null | grep -q 'Requesting program interpreter'; then
    echo "error: $dist/$bin is dynamically linked:" >&2
    readelf -lW "$dist/$bin" | grep interpreter >&2
    exit 1
  fi
done
"$dist/st2pack" --version
"$dist/st2-pack-install" --version
(cd "$dist" && ls -l "${bins[@]}" && cat "${bins[@]/%/.sha256}")
