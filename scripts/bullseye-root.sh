#!/usr/bin/env bash
# Makes a Debian bullseye root directory (glibc 2.31, Python 3.9 with venv, no OpenSSL 3) once,
# for tests that run our binaries the way an old runtime image does: inside it, with chroot.
# Bullseye has the glibc of the st2 3.8 images (Ubuntu focal), so what runs there runs on them.
#
#   bash scripts/bullseye-root.sh        # prints the root's path
#
# The root goes to $ST2PACK_BULLSEYE_ROOT (default /var/cache/st2pack-ci/bullseye). When it exists
# this is a no-op. It is made in a temporary directory beside it and renamed into place when
# complete, so an interrupted run never leaves a half-made root at that path. Tests treat the root
# as read-only: they work in a copy of it. Needs root (debootstrap) and the Debian archive
# ($DEBIAN_MIRROR, default http://deb.debian.org/debian).
set -euo pipefail

root=${ST2PACK_BULLSEYE_ROOT:-/var/cache/st2pack-ci/bullseye}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ -d "$root" ]; then
  echo "$root"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "error: making $root needs root (debootstrap): run this script as root or with sudo" >&2
  exit 2
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "error: debootstrap is not installed (Debian: apt-get install debootstrap)" >&2
  exit 2
fi

parent=$(dirname "$root")
mkdir -p "$parent"
staging=$(mktemp -d "$parent/.$(basename "$root").XXXXXX")
cleanup() {
  # Only the staging directory, never a finished root; debootstrap may leave /proc mounted there.
  if [ -n "${staging:-}" ] && [ -d "$staging" ]; then
    umount -R "$staging/proc" 2>/dev/null || true
    rm -rf --one-file-system "$staging"
  fi
}
trap cleanup EXIT

echo "making a Debian bullseye root at $root (a few minutes, once)" >&2
debootstrap --variant=minbase --include=python3,python3-venv bullseye "$staging" "$mirror" >&2
# debootstrap's package cache is not needed afterwards.
rm -rf "${staging:?}"/var/cache/apt/archives/*.deb
chmod 0755 "$staging"
mv -T "$staging" "$root"
staging=""
echo "$root"
