#!/usr/bin/env bash
# bench/build/buildah-build.sh: what bench/build.sh times for buildah, as one command so that one
# `/usr/bin/time` covers every buildah process (wall time and CPU time of all of them).
#
#   bash bench/build/buildah-build.sh STEPS_FILE ROOT IMAGE DEST [BUILDAH_GLOBAL_OPTION...]
#
# The same job as `st2pack build --root ROOT --base scratch --push`, the way a buildah user writes
# it: a container from scratch, ROOT/packs and ROOT/virtualenvs added where st2pack puts them, a
# commit to local storage, and a push to DEST (a registry reference without `docker://`, over
# plain HTTP). BUILDAH_GLOBAL_OPTION are buildah's global options (--root, --runroot,
# --storage-driver), so the benchmark never touches the machine's own buildah storage.
#
# Writes the wall time of each step ("add", "commit", "push", in seconds) to STEPS_FILE, one
# `step seconds` line each. Leaves the container and the image behind: the caller removes them
# outside the timed part.

set -euo pipefail

if (($# < 4)); then
  echo "usage: $0 STEPS_FILE ROOT IMAGE DEST [BUILDAH_GLOBAL_OPTION...]" >&2
  exit 2
fi
steps_file=$1 root=$2 image=$3 dest=$4
shift 4
buildah=(buildah "$@")

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

t0=$(now)
ctr=$("${buildah[@]}" from --quiet scratch)
# A directory given to `add` has its contents copied into the destination, like Docker's ADD.
"${buildah[@]}" add --quiet "$ctr" "$root/packs" /opt/stackstorm/packs >/dev/null
"${buildah[@]}" add --quiet "$ctr" "$root/virtualenvs" /opt/stackstorm/virtualenvs >/dev/null
t1=$(now)
# commit: the container's changes become an (uncompressed) layer in buildah's local storage.
"${buildah[@]}" commit --quiet "$ctr" "$image" >/dev/null
t2=$(now)
# push: the layer is compressed (gzip) and uploaded.
"${buildah[@]}" push --quiet --tls-verify=false "$image" "docker://$dest"
t3=$(now)

printf 'add %s\ncommit %s\npush %s\n' \
  "$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")" "$(elapsed "$t2" "$t3")" >"$steps_file"
