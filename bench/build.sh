#!/usr/bin/env bash
# bench/build.sh: `st2pack build --push` against buildah and against the compression limit, side
# by side in one run.
#
#   bash bench/build.sh
#
# An installed tree of about 300 MB (root/packs/<pack>, root/virtualenvs/<pack>: the fixture packs
# hello_st2, with_reqs and hello_deps, each with a small virtualenv, plus a pack bench_big whose
# virtualenv holds numpy and scipy from PyPI; every virtualenv compiled to checked-hash .pyc as
# st2pack's installer leaves it) is made into an image on `scratch` and pushed to a local
# docker-registry by:
#
#   st2pack  st2pack build --root root --base scratch --tag REG/bench/st2pack-N:1 --push
#            --cache-dir FRESH (an empty layer cache: every layer is tarred and compressed)
#   buildah  buildah from scratch; buildah add root/packs /opt/stackstorm/packs; buildah add
#            root/virtualenvs /opt/stackstorm/virtualenvs; buildah commit; buildah push
#            (bench/build/buildah-build.sh; storage in the work dir: overlay, else vfs)
#   limit    tar -C root -cf - packs virtualenvs | compress-limit gzip: one pass of st2pack's own
#            compressor (flate2 on zlib-rs, gzip level 6) over the tree, output thrown away
#            (bench/build/compress-limit, built against the versions in st2pack's Cargo.lock)
#
# plus, for context: the issue's literal limit with GNU gzip -6, the same pair with zstd
# (`--compression zstd` against `compress-limit zstd`), st2pack's build without output and its push
# of already built layers (where the time goes), a rebuild after one file of one small pack
# changed (same cache dir, new tag in the same repository), and st2pack's peak memory on a ~1 GiB
# tree (the 300 MB tree copied under several pack names) writing an OCI layout and pushing.
#
# Every measurement is repeated BENCH_RUNS times with fresh repository names (so no blob is
# skipped as already there) and the median is reported; the first three alternate their order
# between runs. Each timed phase starts after a `sync`; the tree is read once beforehand so every
# tool reads it from the page cache. The machine may be shared, so results are given as ratios of
# measurements taken in the same run, with the load average at the start of each run.
#
# The results go to stdout as markdown and into BENCHMARKS.md between the
# `<!-- build-bench:start -->` / `<!-- build-bench:end -->` markers (appended at the end of the
# file the first time); nothing else in the file is touched.
#
# Environment:
#   ST2PACK_BIN    st2pack binary to measure (default: cargo build --release --locked)
#   ST2PACK_BIN_VS a second st2pack binary to compare ST2PACK_BIN with, such as the static
#                  dist/st2pack against a glibc build (bench/static-vs-glibc.sh does that): then
#                  only st2pack's own measurements run (no buildah, no limit, no memory tree), for
#                  both binaries in each run, taking turns going first, and their ratios go
#                  between the `<!-- build-bench-binaries:start -->` / `:end -->` markers
#   BENCH_DIR      work directory, kept afterwards; the trees in it are reused when their recipe
#                  is unchanged (default: a temp dir, removed after a successful run)
#   BENCH_RUNS     repetitions of each measurement (default: 3)
#   BENCH_PYTHON   interpreter the virtualenvs are made with (default: python3)
#   BENCH_BIG_MIB  size the memory test's tree must reach, in MiB (default: 1024)
#   BENCH_WRITE=0  print the results but leave BENCHMARKS.md alone

set -euo pipefail
shopt -s inherit_errexit

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HELPERS="$REPO_ROOT/bench/build"
RESULTS_FILE="$REPO_ROOT/BENCHMARKS.md"
MARK_START='<!-- build-bench:start -->'
MARK_END='<!-- build-bench:end -->'

RUNS=${BENCH_RUNS:-3}
BIG_MIB=${BENCH_BIG_MIB:-1024}

# Targets from the issue.
TARGET_VS_BUILDAH=3     # buildah time / st2pack time, at least
TARGET_VS_LIMIT=1.3     # st2pack time / single-pass compression time, at most
TARGET_REBUILD_PCT=10   # rebuild after one pack changed, % of the full build, under
TARGET_RSS_MIB=100      # peak resident memory on the ~1 GiB tree, under

FIXTURE_PACKS=(hello_st2 with_reqs hello_deps)
BIG_PACK=bench_big
CHANGED_PACK=hello_st2     # the pack whose README the rebuild measurement changes
# What every virtualenv holds, as st2pack's installer seeds it (pip, setuptools < 81, wheel, six),
# pinned so that every run and every machine builds the same tree ...
BASE_REQUIREMENTS=(pip==26.3 setuptools==80.10.2 wheel==0.48.0 six==1.17.0)
# ... and the big pack's requirements: real binary wheels (shared libraries, compiled Python
# modules, plenty of .py), the kind of virtualenv that makes pack images big.
BIG_REQUIREMENTS=(numpy==2.4.6 scipy==1.17.1)
# Change this (or the lists above) and a kept BENCH_DIR's trees are rebuilt.
TREE_RECIPE="v2 ${FIXTURE_PACKS[*]} | ${BASE_REQUIREMENTS[*]} | $BIG_PACK ${BIG_REQUIREMENTS[*]}"

load_average() { cut -d' ' -f1-3 /proc/loadavg; }
# Size of a tree in MiB (apparent size: what tar reads) and its number of files.
tree_mib() { du -sb "$1" | awk '{ printf "%.0f", $1 / 1048576 }'; }
tree_files() { find "$1" -type f | wc -l; }

# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------

check_tools() {
  require_tools "Debian: apt-get install -y docker-registry skopeo tar gzip curl python3; uv: https://docs.astral.sh/uv/" \
    docker-registry skopeo tar gzip curl python3 uv awk
  command -v buildah >/dev/null ||
    die "buildah is not installed; it is the tool st2pack is compared with. Debian/Ubuntu:" \
      "apt-get install -y buildah"
  [[ -x /usr/bin/time ]] ||
    die "/usr/bin/time (GNU time) is needed for CPU time and peak memory: apt-get install -y time"
  # st2pack itself (unless ST2PACK_BIN is given) and bench/build/compress-limit are built.
  command -v cargo >/dev/null || die "cargo (a Rust toolchain) is needed to build the binaries"
  ((RUNS >= 1)) || die "BENCH_RUNS must be at least 1"
}

# Everything started or mounted is undone; a temp work dir is removed after a successful run and
# kept after a failure, for the logs in it.
on_exit() {
  local status=$?
  stop_registry
  if [[ -n ${BUILDAH_OPTS+x} ]]; then
    clean_buildah || true
    # A buildah killed mid-way can leave its overlay mounts behind, which rm -rf cannot remove.
    local mnt
    while read -r _ mnt _; do
      if [[ $mnt == "$WORK"/* ]]; then umount -l "$mnt" 2>/dev/null || true; fi
    done </proc/mounts
  fi
  leave_workdir "$status"
}

setup_workdir() {
  make_workdir st2pack-build-bench
  ROOT="$WORK/root"       # the ~300 MB installed tree
  BIG="$WORK/big"         # the ~1 GiB one, for peak memory
  LOGS="$WORK/logs"
  SCRATCH="$WORK/scratch" # caches and outputs of single measurements, removed as we go
  RESULTS="$WORK/results.tsv"
  rm -rf "$LOGS" "$SCRATCH" "$WORK/registry" "$WORK/buildah"
  mkdir -p "$LOGS" "$SCRATCH"
  : >"$RESULTS"
  trap on_exit EXIT
  say "work directory: $WORK"
}

build_st2pack() {
  st2pack_binary st2pack
  ST2PACK=$ST2PACK_BIN
}

build_binaries() {
  build_st2pack
  say "building the compression limit (bench/build/compress-limit)"
  # Its own target dir under st2pack's (ignored by git), so it never rebuilds st2pack's deps.
  cargo build --release --locked --quiet \
    --manifest-path "$HELPERS/compress-limit/Cargo.toml" \
    --target-dir "$REPO_ROOT/target/bench-compress-limit"
  LIMIT="$REPO_ROOT/target/bench-compress-limit/release/compress-limit"
}

# A virtualenv the way st2pack's installer leaves one: made by uv, seeded, requirements installed,
# everything compiled to checked-hash .pyc (which st2pack ships; it leaves out timestamp-based
# ones, so plain `compileall` output would make the two tools ship different trees).
make_venv() {
  local dir=$1
  shift
  uv venv --quiet --python "$PYTHON" "$dir"
  uv pip install --quiet --python "$dir/bin/python" "${BASE_REQUIREMENTS[@]}" "$@"
  # -j 0: all CPUs. A failure here is only a file that does not compile; it stays a .py.
  "$dir/bin/python" -m compileall -q -j 0 --invalidation-mode checked-hash "$dir/lib" \
    >>"$LOGS/compileall.log" 2>&1 || say "some files in $dir did not compile (see $LOGS/compileall.log)"
}

make_tree() {
  if [[ -f $ROOT.recipe && $(<"$ROOT.recipe") == "$TREE_RECIPE" ]]; then
    say "reusing the tree in $ROOT"
    return
  fi
  say "making the ~300 MB tree in $ROOT (virtualenvs from PyPI with uv)"
  rm -rf "$ROOT" "$ROOT.recipe"
  mkdir -p "$ROOT/packs" "$ROOT/virtualenvs"
  # uv's cache in the work dir: the machine's cache neither helps nor gets filled. Files are
  # copied out of it, not hardlinked: hardlinks across virtualenvs would let `tar` store shared
  # files (pip, setuptools) once for the whole tree, while an image stores them in each pack's
  # layer, and the limit would compress less than the tools do.
  export UV_CACHE_DIR="$WORK/uv-cache" UV_LINK_MODE=copy
  local pack
  for pack in "${FIXTURE_PACKS[@]}"; do
    cp -a "$REPO_ROOT/fixtures/packs/$pack" "$ROOT/packs/$pack"
    # The fixtures' own requirements (a wheel the tests build) do not matter to an image build.
    make_venv "$ROOT/virtualenvs/$pack"
  done
  mkdir -p "$ROOT/packs/$BIG_PACK/actions"
  cat >"$ROOT/packs/$BIG_PACK/pack.yaml" <<EOF
---
ref: $BIG_PACK
name: $BIG_PACK
description: A pack with a large virtualenv, for bench/build.sh.
version: 1.0.0
python_versions:
  - "3"
author: st2pack bench
email: bench@example.invalid
EOF
  printf '%s\n' "${BIG_REQUIREMENTS[@]}" >"$ROOT/packs/$BIG_PACK/requirements.txt"
  cp -a "$REPO_ROOT/fixtures/packs/hello_st2/actions/." "$ROOT/packs/$BIG_PACK/actions/"
  make_venv "$ROOT/virtualenvs/$BIG_PACK" "${BIG_REQUIREMENTS[@]}"
  printf '%s\n' "$TREE_RECIPE" >"$ROOT.recipe"
}

# The memory test's tree: whole copies of the 300 MB tree, each pack renamed <pack>_cN, until it
# reaches BIG_MIB. Real copies (not hardlinks), so the tree is as big on disk as in the image.
make_big_tree() {
  local recipe="$TREE_RECIPE | big $BIG_MIB"
  if [[ -f $BIG.recipe && $(<"$BIG.recipe") == "$recipe" ]]; then
    say "reusing the tree in $BIG"
    return
  fi
  local root_mib copies n pack
  root_mib=$(tree_mib "$ROOT")
  copies=$(((BIG_MIB + root_mib - 1) / root_mib))
  say "making the ~$((copies * root_mib)) MiB tree in $BIG ($copies copies of $ROOT)"
  rm -rf "$BIG" "$BIG.recipe"
  mkdir -p "$BIG/packs" "$BIG/virtualenvs"
  for ((n = 1; n <= copies; n++)); do
    for pack in "${FIXTURE_PACKS[@]}" "$BIG_PACK"; do
      cp -a "$ROOT/packs/$pack" "$BIG/packs/${pack}_c$n"
      cp -a "$ROOT/virtualenvs/$pack" "$BIG/virtualenvs/${pack}_c$n"
      sed -i -e "s/^ref: .*/ref: ${pack}_c$n/" -e "s/^name: .*/name: ${pack}_c$n/" \
        "$BIG/packs/${pack}_c$n/pack.yaml"
    done
  done
  printf '%s\n' "$recipe" >"$BIG.recipe"
}

# Reads every file once so that no tool pays for the disk. (GNU tar skips reading when its output
# is /dev/null, hence the cat.)
warm_page_cache() {
  tar -C "$1" -cf - . | cat >/dev/null
}

# buildah keeps its storage in the work dir, never in the machine's /var/lib/containers. overlay
# is what buildah uses by default as root; inside a container without overlay support, vfs
# (which copies whole layers and is slower) is the fallback, and the results say which was used.
setup_buildah() {
  local driver ctr
  for driver in overlay vfs; do
    rm -rf "$WORK/buildah"
    BUILDAH_OPTS=(--root "$WORK/buildah/root" --runroot "$WORK/buildah/run" --storage-driver "$driver")
    if ctr=$(buildah "${BUILDAH_OPTS[@]}" from --quiet scratch 2>>"$LOGS/buildah-setup.log"); then
      buildah "${BUILDAH_OPTS[@]}" rm "$ctr" >/dev/null
      BUILDAH_DRIVER=$driver
      say "buildah storage driver: $driver"
      return
    fi
    say "buildah cannot use the $driver storage driver here"
  done
  die "buildah works with neither overlay nor vfs; see $LOGS/buildah-setup.log"
}

clean_buildah() {
  buildah "${BUILDAH_OPTS[@]}" rm --all >/dev/null 2>&1
  buildah "${BUILDAH_OPTS[@]}" rmi --all --force >/dev/null 2>&1
}

# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

# measure RUN PHASE COMMAND...: runs COMMAND once, its output in $LOGS/PHASE-RUN.{out,err}, and
# appends `RUN PHASE wall_s cpu_s maxrss_kib` to $RESULTS. CPU is user + sys of the command and
# every process it waited for (not the registry's share of the work).
measure() {
  local run=$1 phase=$2
  shift 2
  local log="$LOGS/$phase-$run" start end user sys rss
  sync
  start=$(now)
  if ! /usr/bin/time -f '%U %S %M' -o "$log.time" "$@" >"$log.out" 2>"$log.err"; then
    tail -n 20 "$log.err" >&2
    die "$phase (run $run) failed: $*; logs: $log.{out,err}"
  fi
  end=$(now)
  read -r user sys rss < <(tail -n 1 "$log.time")
  printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$phase" "$(elapsed "$start" "$end")" \
    "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')" "$rss" >>"$RESULTS"
}

# The JSON st2pack printed for PHASE-RUN, queried with a Python expression over `j`.
json_of() {
  python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
    "$LOGS/$1-$2.out" "$3"
}

# Total compressed size of the layers of an image in the registry; also proves the push worked.
pushed_layer_bytes() {
  skopeo inspect --tls-verify=false --raw "docker://$1" |
    python3 -c 'import json, sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))'
}

# The st2pack command every measurement on the 300 MB tree starts with (an array, not a function:
# /usr/bin/time runs programs).
st2pack_build_cmd() {
  BUILD=("$ST2PACK" build --root "$ROOT" --base scratch --json)
}

phase_st2pack() {
  local run=$1
  measure "$run" st2pack "${BUILD[@]}" --tag "$REGISTRY/bench/st2pack-$run:1" --push \
    --cache-dir "$SCRATCH/cache-full-$run"
  rm -rf "$SCRATCH/cache-full-$run"
  INFO[st2pack-bytes-$run]=$(pushed_layer_bytes "$REGISTRY/bench/st2pack-$run:1")
}

phase_buildah() {
  local run=$1
  measure "$run" buildah bash "$HELPERS/buildah-build.sh" "$LOGS/buildah-steps-$run" "$ROOT" \
    "bench-$run" "$REGISTRY/bench/buildah-$run:1" "${BUILDAH_OPTS[@]}"
  clean_buildah
  INFO[buildah-bytes-$run]=$(pushed_layer_bytes "$REGISTRY/bench/buildah-$run:1")
  local step seconds
  while read -r step seconds; do
    printf '%s\tbuildah-%s\t%s\t\t\n' "$run" "$step" "$seconds" >>"$RESULTS"
  done <"$LOGS/buildah-steps-$run"
}

# compress-limit prints the compressed size: kept to compare with what the tools pushed.
phase_limit() {
  local run=$1 compression=$2
  # shellcheck disable=SC2016 # expanded by the inner shell
  measure "$run" "limit-$compression" bash -c 'set -o pipefail
    tar -C "$1" -cf - packs virtualenvs | "$2" "$3"' _ "$ROOT" "$LIMIT" "$compression"
  INFO[limit-$compression-bytes-$run]=$(<"$LOGS/limit-$compression-$run.out")
}

# The issue's literal command: GNU gzip is a different deflate implementation from st2pack's
# zlib-rs (and much slower), so this is context, not the limit the target is checked against.
phase_gnu_gzip() {
  # shellcheck disable=SC2016
  measure "$1" gnu-gzip bash -c 'set -o pipefail
    tar -C "$1" -cf - packs virtualenvs | gzip -6 | wc -c' _ "$ROOT"
}

# pigz: the parallel limit (2 threads), only when installed.
phase_pigz() {
  # shellcheck disable=SC2016
  measure "$1" pigz bash -c 'set -o pipefail
    tar -C "$1" -cf - packs virtualenvs | pigz -6 -p "$2" | wc -c' _ "$ROOT" "$(nproc)"
}

phase_st2pack_zstd() {
  local run=$1
  measure "$run" st2pack-zstd "${BUILD[@]}" --tag "$REGISTRY/bench/st2pack-zstd-$run:1" --push \
    --compression zstd --cache-dir "$SCRATCH/cache-zstd-$run"
  rm -rf "$SCRATCH/cache-zstd-$run"
}

# Where st2pack's time goes: building the layers (tar, hashes, compression, blob files) with no
# output, then pushing those cached layers to a new repository (upload only).
phase_split() {
  local run=$1
  local cache="$SCRATCH/cache-split-$run"
  measure "$run" build-only "${BUILD[@]}" --tag "bench/split-$run:1" --cache-dir "$cache"
  measure "$run" push-only "${BUILD[@]}" --tag "$REGISTRY/bench/split-$run:1" --push \
    --cache-dir "$cache"
  rm -rf "$cache"
}

# A rebuild after one small pack changed: a full build and push with a persistent cache (not
# timed here), one line appended to the pack's README, the same build again under a new tag in
# the same repository. The README is restored afterwards so every run sees the same tree.
phase_rebuild() {
  local run=$1
  local cache="$SCRATCH/cache-rebuild-$run" readme="$ROOT/packs/$CHANGED_PACK/README.md"
  local repo="$REGISTRY/bench/rebuild-$run"
  measure "$run" rebuild-prime "${BUILD[@]}" --tag "$repo:1" --push --cache-dir "$cache"
  cp -p "$readme" "$WORK/README.orig"
  printf 'Changed by bench/build.sh, run %s.\n' "$run" >>"$readme"
  measure "$run" rebuild "${BUILD[@]}" --tag "$repo:2" --push --cache-dir "$cache"
  # What the rebuild is made of: the same command once more with nothing changed (the fixed
  # part: scanning the trees, checking the registry, config and manifest) ...
  measure "$run" rebuild-noop "${BUILD[@]}" --tag "$repo:3" --push --cache-dir "$cache"
  cp -p "$WORK/README.orig" "$readme"
  rm -rf "$cache"
  # ... and the changed pack's layers on their own (the pack's and its virtualenv's), from an
  # empty cache, with no output.
  local one="$SCRATCH/one-root"
  rm -rf "$one"
  mkdir -p "$one/packs" "$one/virtualenvs"
  cp -a "$ROOT/packs/$CHANGED_PACK" "$one/packs/"
  cp -a "$ROOT/virtualenvs/$CHANGED_PACK" "$one/virtualenvs/"
  measure "$run" rebuild-one-layer "$ST2PACK" build --root "$one" --base scratch --json \
    --tag "bench/one-$run:1" --cache-dir "$SCRATCH/cache-one-$run"
  rm -rf "$one" "$SCRATCH/cache-one-$run"
  # Each pack's layers: its virtualenv's (when it has one), then its own.
  local layers='[(p["name"] + (" virtualenv" if l is not p else ""), l) for p in j["packs"] for l in ([p["virtualenv"]] if "virtualenv" in p else []) + [p]]'
  INFO[rebuild-layers-$run]=$(json_of rebuild "$run" \
    '"%d of %d" % (sum(not l["layer_reused"] for _, l in '"$layers"'), len('"$layers"'))')
  INFO[rebuild-rebuilt-$run]=$(json_of rebuild "$run" \
    '", ".join("%s, %d bytes of its tar compressed" % (n, l["layer_bytes_compressed"]) for n, l in '"$layers"' if not l["layer_reused"])')
  INFO[rebuild-push-$run]=$(json_of rebuild "$run" \
    '"%d uploaded (%d bytes), %d skipped" % (j["pushed"][0]["uploaded"], j["pushed"][0]["bytes_uploaded"], j["pushed"][0]["skipped"])')
}

# Peak memory on the ~1 GiB tree: to an OCI layout (no registry involved), then pushed.
phase_memory() {
  local run=$1
  measure "$run" mem-oci "$ST2PACK" build --root "$BIG" --base scratch --tag "bench-big:1" \
    --output "oci:$SCRATCH/big-oci-$run" --cache-dir "$SCRATCH/cache-big-$run" --json
  rm -rf "$SCRATCH/big-oci-$run" "$SCRATCH/cache-big-$run"
  measure "$run" mem-push "$ST2PACK" build --root "$BIG" --base scratch \
    --tag "$REGISTRY/bench/big-$run:1" --push --cache-dir "$SCRATCH/cache-big-$run" --json
  rm -rf "$SCRATCH/cache-big-$run"
}

run_all() {
  local run order phase
  local -a main=(st2pack buildah limit)
  for ((run = 1; run <= RUNS; run++)); do
    INFO[load-$run]=$(load_average)
    # The three compared side by side take turns going first.
    order=("${main[@]:$(((run - 1) % 3))}" "${main[@]:0:$(((run - 1) % 3))}")
    INFO[order-$run]="${order[*]}"
    say "run $run/$RUNS (load ${INFO[load-$run]}): ${order[*]}, then the rest"
    for phase in "${order[@]}"; do
      case $phase in
        st2pack) phase_st2pack "$run" ;;
        buildah) phase_buildah "$run" ;;
        limit) phase_limit "$run" gzip ;;
      esac
    done
    phase_gnu_gzip "$run"
    if command -v pigz >/dev/null; then phase_pigz "$run"; fi
    phase_st2pack_zstd "$run"
    phase_limit "$run" zstd
    phase_split "$run"
    phase_rebuild "$run"
    say "run $run: st2pack $(value st2pack 3 "$run") s, buildah $(value buildah 3 "$run") s," \
      "limit $(value limit-gzip 3 "$run") s, rebuild $(value rebuild 3 "$run") s"
  done
  warm_page_cache "$BIG"
  for ((run = 1; run <= RUNS; run++)); do
    say "memory run $run/$RUNS on $BIG"
    phase_memory "$run"
  done
}

# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------

# value PHASE COLUMN RUN: one cell of $RESULTS (3 wall, 4 cpu, 5 rss).
value() {
  awk -F'\t' -v p="$1" -v c="$2" -v r="$3" '$1 == r && $2 == p { print $c }' "$RESULTS"
}
# The values in COLUMN of PHASE's rows (one per run), their median ("nan" when there are none)
# and their maximum.
phase_values() { awk -F'\t' -v p="$1" -v c="$2" '$2 == p && $c != "" { print $c }' "$RESULTS"; }
phase_median() {
  local values
  values=$(phase_values "$1" "$2")
  # shellcheck disable=SC2086 # one value a line
  if [[ -z $values ]]; then echo nan; else median $values; fi
}
phase_maximum() { phase_values "$1" "$2" | sort -g | tail -n 1; }
# calc EXPR with a, b bound: awk arithmetic with a printf format.
calc() { awk -v a="$2" -v b="${3:-0}" "BEGIN { printf \"$1\", $4 }"; }
# yes_no A OP B: "yes" when the comparison holds, a bold "no" otherwise.
yes_no() {
  if awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; then echo yes; else echo "**no**"; fi
}
mib_of_kib() { calc '%.1f' "$1" 0 'a / 1024'; }
mb() { calc '%.1f' "$1" 0 'a / 1e6'; }

report() {
  local st buildah limit gnu zstd_st zstd_limit build_only push_only rebuild prime
  st=$(phase_median st2pack 3)
  buildah=$(phase_median buildah 3)
  limit=$(phase_median limit-gzip 3)
  gnu=$(phase_median gnu-gzip 3)
  zstd_st=$(phase_median st2pack-zstd 3)
  zstd_limit=$(phase_median limit-zstd 3)
  build_only=$(phase_median build-only 3)
  push_only=$(phase_median push-only 3)
  rebuild=$(phase_median rebuild 3)
  prime=$(phase_median rebuild-prime 3)
  local r_buildah r_limit r_rebuild rss_oci rss_push r_zstd r_gnu
  r_buildah=$(calc '%.2f' "$buildah" "$st" 'a / b')
  r_limit=$(calc '%.2f' "$st" "$limit" 'a / b')
  r_rebuild=$(calc '%.1f' "$rebuild" "$st" '100 * a / b')
  r_zstd=$(calc '%.2f' "$zstd_st" "$zstd_limit" 'a / b')
  r_gnu=$(calc '%.2f' "$st" "$gnu" 'a / b')
  rss_oci=$(mib_of_kib "$(phase_maximum mem-oci 5)")
  rss_push=$(mib_of_kib "$(phase_maximum mem-push 5)")
  local met_buildah met_limit met_rebuild met_oci met_push
  met_buildah=$(yes_no "$r_buildah" '>=' "$TARGET_VS_BUILDAH")
  met_limit=$(yes_no "$r_limit" '<=' "$TARGET_VS_LIMIT")
  met_rebuild=$(yes_no "$r_rebuild" '<' "$TARGET_REBUILD_PCT")
  met_oci=$(yes_no "$rss_oci" '<' "$TARGET_RSS_MIB")
  met_push=$(yes_no "$rss_push" '<' "$TARGET_RSS_MIB")
  local root_mib big_mib root_files
  root_mib=$(tree_mib "$ROOT")
  big_mib=$(tree_mib "$BIG")
  root_files=$(tree_files "$ROOT")

  cat <<EOF
$MARK_START
## Image build: \`st2pack build --push\` vs buildah and the compression limit

Written by \`bash bench/build.sh\`, which replaces everything between the two markers on each run.

**What is measured.** An installed tree of $root_mib MiB ($root_files files): \`packs/\` and
\`virtualenvs/\` for the fixture packs ${FIXTURE_PACKS[*]} (each virtualenv seeded with
${BASE_REQUIREMENTS[*]}) and a pack \`$BIG_PACK\` whose virtualenv also holds
${BIG_REQUIREMENTS[*]} from PyPI, every virtualenv compiled to checked-hash \`.pyc\` as st2pack's
installer leaves it. In the same run, on \`scratch\` and to the same local \`docker-registry\`:
*st2pack* is \`st2pack build --root ROOT --base scratch --tag … --push\` with an empty
\`--cache-dir\` (every layer is tarred, compressed and uploaded); *buildah* is \`buildah from
scratch\`, \`buildah add\` of both directories to \`/opt/stackstorm/…\`, \`buildah commit\` and
\`buildah push\` (storage driver: $BUILDAH_DRIVER), all timed, since a user waits for all of them;
the *limit* is \`tar -C ROOT -cf - packs virtualenvs | compress-limit gzip\`, one pass of st2pack's
own compressor (flate2 on zlib-rs, gzip level 6, the same crate versions) over the tree with the
output thrown away: tar and the compressor run on the 2 cores side by side, which is the
single-pass limit the target refers to. st2pack compresses two layers per pack (its virtualenv's
and its own), on as many threads as there are CPUs, but one layer per thread; here
\`$BIG_PACK\`'s virtualenv layer is most of the tree. Every
push goes to a new repository, so nothing is skipped as already there. Each figure is the median
of $RUNS runs; st2pack, buildah and the limit take turns going first; each timed phase starts after a
\`sync\`, with the tree in the page cache. The machine may be shared: compare the ratios, which come
from measurements taken side by side, and see the load at the start of each run below. The
rebuild is the same build again with the cache of a previous one, after one line was appended
to \`packs/$CHANGED_PACK/README.md\`, pushed under a new tag of the same repository: st2pack
makes that pack's own layer again; its virtualenv has a layer of its own, which the layer cache
has unchanged (a stat walk of the virtualenv, nothing read or compressed). Peak memory is
GNU time's maximum resident set size of \`st2pack build\` on a $big_mib MiB tree (the tree above
copied under several pack names). Re-run with \`bash bench/build.sh\` (\`BENCH_RUNS\`,
\`ST2PACK_BIN\`, \`BENCH_DIR\`, \`BENCH_BIG_MIB\`, \`BENCH_WRITE=0\` are described at the top of the
script).

| phase | st2pack | peer | ratio | target | met? |
|---|---:|---:|---:|---|---|
| build + push, $root_mib MiB tree, gzip | $st s | buildah: $buildah s | buildah / st2pack = ${r_buildah}x | ≥ ${TARGET_VS_BUILDAH}x | $met_buildah |
| build + push vs one compression pass | $st s | tar \| zlib-rs gzip -6: $limit s | st2pack / limit = ${r_limit}x | ≤ ${TARGET_VS_LIMIT}x | $met_limit |
| rebuild + push after one pack changed | $rebuild s | full build: $st s | $r_rebuild % | < ${TARGET_REBUILD_PCT} % | $met_rebuild |
| peak memory, $big_mib MiB tree, \`--output oci:DIR\` | $rss_oci MiB | | | < ${TARGET_RSS_MIB} MiB | $met_oci |
| peak memory, $big_mib MiB tree, \`--push\` | $rss_push MiB | | | < ${TARGET_RSS_MIB} MiB | $met_push |
| *context:* CPU time (user + sys), build + push | $(phase_median st2pack 4) s | buildah: $(phase_median buildah 4) s | buildah / st2pack = $(calc '%.2f' "$(phase_median buildah 4)" "$(phase_median st2pack 4)" 'a / b')x | | |
| *context:* zstd build + push vs one zstd pass | $zstd_st s | tar \| zstd -3: $zstd_limit s | ${r_zstd}x | | |
| *context:* vs the issue's literal \`tar \| gzip -6\` (GNU gzip) | $st s | $gnu s | st2pack / GNU gzip = ${r_gnu}x | | |
EOF
  if grep -q $'\tpigz\t' "$RESULTS"; then
    local pigz
    pigz=$(phase_median pigz 3)
    # shellcheck disable=SC2016 # backquotes are markdown
    printf '| *context:* vs the parallel limit `tar \\| pigz -6 -p %s` | %s s | %s s | %sx | | |\n' \
      "$(nproc)" "$st" "$pigz" "$(calc '%.2f' "$st" "$pigz" 'a / b')"
  fi
  echo
  missed_summary "$r_buildah" "$r_limit" "$r_rebuild" "$rss_oci" "$rss_push"

  local cpu_st cpu_buildah cpu_limit
  cpu_st=$(phase_median st2pack 4)
  cpu_buildah=$(phase_median buildah 4)
  cpu_limit=$(phase_median limit-gzip 4)
  cat <<EOF
**Where the time goes** (medians, seconds). st2pack's full build split in two: building the
layers with no output (tar, both hashes, compression, blob files in the cache), then pushing those
cached layers to a new repository (upload only); the rebuild the same way, as the same command
with nothing changed (its fixed part) and, for comparison, the changed pack's two layers (its
own and its virtualenv's) built from scratch, which the layer cache saves. st2pack can beat
the single-pass limit: the small packs' layers are compressed on the second core while the big
one takes the first. buildah's steps come from the same runs as its total. CPU is user + sys of
the tool and its child processes (the registry's share is not in it); peak memory is that of the
tool's largest process.

| | wall | CPU | peak memory |
|---|---:|---:|---:|
| st2pack build + push (gzip) | $st | $cpu_st | $(mib_of_kib "$(phase_maximum st2pack 5)") MiB |
| … st2pack build only, no output | $build_only | $(phase_median build-only 4) | $(mib_of_kib "$(phase_maximum build-only 5)") MiB |
| … st2pack push only, layers cached | $push_only | $(phase_median push-only 4) | $(mib_of_kib "$(phase_maximum push-only 5)") MiB |
| st2pack build + push (zstd) | $zstd_st | $(phase_median st2pack-zstd 4) | |
| st2pack full build, persistent cache (rebuild's first build) | $prime | $(phase_median rebuild-prime 4) | |
| st2pack rebuild after one pack changed | $rebuild | $(phase_median rebuild 4) | |
| … the same with nothing changed | $(phase_median rebuild-noop 3) | $(phase_median rebuild-noop 4) | |
| … the changed pack's two layers from scratch, no output (not part of the rebuild) | $(phase_median rebuild-one-layer 3) | $(phase_median rebuild-one-layer 4) | |
| buildah from + add + commit + push | $buildah | $cpu_buildah | $(mib_of_kib "$(phase_maximum buildah 5)") MiB |
| … buildah from + add | $(phase_median buildah-add 3) | | |
| … buildah commit | $(phase_median buildah-commit 3) | | |
| … buildah push | $(phase_median buildah-push 3) | | |
| limit: tar \| zlib-rs gzip -6 | $limit | $cpu_limit | |
| limit: tar \| zstd -3 | $zstd_limit | $(phase_median limit-zstd 4) | |
| tar \| GNU gzip -6 | $gnu | $(phase_median gnu-gzip 4) | |

* compressed sizes (run 1): st2pack's pushed layers $(mb "${INFO[st2pack-bytes-1]}") MB (gzip), buildah's
  $(mb "${INFO[buildah-bytes-1]}") MB, the gzip limit's stream $(mb "${INFO[limit-gzip-bytes-1]}") MB, the zstd
  limit's $(mb "${INFO[limit-zstd-bytes-1]}") MB
* the rebuild, from its \`--json\` output (run 1): ${INFO[rebuild-layers-1]} layers rebuilt
  (${INFO[rebuild-rebuilt-1]}); push: ${INFO[rebuild-push-1]} (the changed layer and the config)

Each run, wall seconds:

| run | load at start | order | st2pack | buildah | limit | GNU gzip | st2pack zstd | zstd limit | build only | push only | rebuild | layers rebuilt | peak MiB oci / push ($big_mib MiB tree) |
|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|
EOF
  local run
  for ((run = 1; run <= RUNS; run++)); do
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n' \
      "$run" "${INFO[load-$run]%% *}" "${INFO[order-$run]// / → }" \
      "$(value st2pack 3 "$run")" "$(value buildah 3 "$run")" "$(value limit-gzip 3 "$run")" \
      "$(value gnu-gzip 3 "$run")" "$(value st2pack-zstd 3 "$run")" \
      "$(value limit-zstd 3 "$run")" "$(value build-only 3 "$run")" \
      "$(value push-only 3 "$run")" "$(value rebuild 3 "$run")" "${INFO[rebuild-layers-$run]}" \
      "$(mib_of_kib "$(value mem-oci 5 "$run")")" "$(mib_of_kib "$(value mem-push 5 "$run")")"
  done
  echo
  machine_facts
  echo "$MARK_END"
}

# A sentence per missed target, with what the time went to, so a miss is never only a cell in
# the table. Arguments: the ratios and peaks of the main table.
missed_summary() {
  local r_buildah=$1 r_limit=$2 r_rebuild=$3 rss_oci=$4 rss_push=$5
  local build_only push_only misses=()
  build_only=$(phase_median build-only 3)
  push_only=$(phase_median push-only 3)
  if awk -v x="$r_buildah" -v t="$TARGET_VS_BUILDAH" 'BEGIN { exit !(x < t) }'; then
    misses+=("build + push is ${r_buildah}x faster than buildah, target ${TARGET_VS_BUILDAH}x:
  st2pack spends $build_only s building its layers and $push_only s pushing them; buildah
  $(phase_median buildah-add 3) s in from + add, $(phase_median buildah-commit 3) s in commit and
  $(phase_median buildah-push 3) s in push (CPU: buildah $(phase_median buildah 4) s, st2pack
  $(phase_median st2pack 4) s)")
  fi
  if awk -v x="$r_limit" -v t="$TARGET_VS_LIMIT" 'BEGIN { exit !(x > t) }'; then
    misses+=("build + push takes ${r_limit}x one compression pass, target ${TARGET_VS_LIMIT}x:
  st2pack spends $build_only s building its layers (tar, both hashes and compression on one
  thread per layer, so the biggest layer sets the pace, while the limit's tar and compressor run
  on two cores) and $push_only s pushing them")
  fi
  if awk -v x="$r_rebuild" -v t="$TARGET_REBUILD_PCT" 'BEGIN { exit !(x >= t) }'; then
    local changed_mib
    changed_mib=$(du -scb "$ROOT/packs/$CHANGED_PACK" "$ROOT/virtualenvs/$CHANGED_PACK" |
      awk 'END { printf "%.0f", $1 / 1048576 }')
    misses+=("the rebuild takes ${r_rebuild} % of the full build, target ${TARGET_REBUILD_PCT} %:
  one changed file re-makes its pack's layer (the pack and its virtualenv, $changed_mib MiB: the
  pack compressed again, the virtualenv read again and its compressed bytes copied; run 1:
  ${INFO[rebuild-rebuilt-1]}) and uploads it (run 1: ${INFO[rebuild-push-1]}); with nothing
  changed the same command takes $(phase_median rebuild-noop 3) s (scanning the trees, checking the
  registry, config and manifest)")
  fi
  if awk -v x="$rss_oci" -v t="$TARGET_RSS_MIB" 'BEGIN { exit !(x >= t) }'; then
    misses+=("peak memory writing an OCI layout is ${rss_oci} MiB, target ${TARGET_RSS_MIB} MiB")
  fi
  if awk -v x="$rss_push" -v t="$TARGET_RSS_MIB" 'BEGIN { exit !(x >= t) }'; then
    misses+=("peak memory pushing is ${rss_push} MiB, target ${TARGET_RSS_MIB} MiB")
  fi
  if ((${#misses[@]} == 0)); then
    echo "**Every target met.**"
  else
    echo "**Targets missed:**"
    echo
    local miss
    for miss in "${misses[@]}"; do
      echo "* $miss."
    done
  fi
  echo
}

machine_facts() {
  local commit cpu
  commit=$(checkout_commit --untracked-files=no) || commit=unknown
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  cat <<EOF
* date: $(date -u '+%Y-%m-%d %H:%M UTC'); st2pack commit: $commit
* machine: $(nproc) CPUs (${cpu:-unknown}), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r), load average before / after: ${INFO[load-before]} / $(load_average)
* $(buildah --version | cut -d' ' -f1-3) (storage driver $BUILDAH_DRIVER), $(skopeo --version), docker-registry $(docker-registry --version | awk '{ print $NF }'), $(gzip --version | head -n 1), $(tar --version | head -n 1)
* trees: $root_mib MiB / $(tree_files "$ROOT") files ($BIG_PACK's virtualenv: $(tree_mib "$ROOT/virtualenvs/$BIG_PACK") MiB), memory test $(tree_mib "$BIG") MiB / $(tree_files "$BIG") files; $(python3 --version), $(uv --version | cut -d' ' -f1-2)
EOF
}

# ---------------------------------------------------------------------------------------------
# Two st2pack binaries side by side (ST2PACK_BIN_VS)
# ---------------------------------------------------------------------------------------------

# The measurements of one binary (side a or b) in run $1: build + push with gzip and with zstd,
# and a build to an OCI layout with no registry; each from an empty cache, so every layer is
# tarred, hashed and compressed (where an allocator or libc difference would show).
phase_binary() {
  local run=$1 side=$2 binary=$3
  local build=("$binary" build --root "$ROOT" --base scratch --json)
  local cache="$SCRATCH/cache-$side-$run"
  measure "$run" "$side-gzip" "${build[@]}" --tag "$REGISTRY/bench/$side-gzip-$run:1" --push \
    --cache-dir "$cache"
  rm -rf "$cache"
  measure "$run" "$side-zstd" "${build[@]}" --tag "$REGISTRY/bench/$side-zstd-$run:1" --push \
    --compression zstd --cache-dir "$cache"
  rm -rf "$cache"
  measure "$run" "$side-oci" "${build[@]}" --tag "bench/$side-$run:1" \
    --output "oci:$SCRATCH/oci-$side-$run" --cache-dir "$cache"
  rm -rf "$cache" "$SCRATCH/oci-$side-$run"
}

run_binaries() {
  local run
  for ((run = 1; run <= RUNS; run++)); do
    INFO[load-$run]=$(load_average)
    say "run $run/$RUNS (load ${INFO[load-$run]})"
    if ((run % 2)); then
      INFO[order-$run]="A first"
      phase_binary "$run" a "$ST2PACK"
      phase_binary "$run" b "$ST2PACK_VS"
    else
      INFO[order-$run]="B first"
      phase_binary "$run" b "$ST2PACK_VS"
      phase_binary "$run" a "$ST2PACK"
    fi
    say "run $run: gzip build + push $(value a-gzip 3 "$run") s ($LABEL_A) /" \
      "$(value b-gzip 3 "$run") s ($LABEL_B)"
  done
}

report_binaries() {
  local phase name a b row runs run commit cpu
  commit=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  cat <<EOF
$MARK_START
## Image build: two st2pack binaries side by side

Written by \`ST2PACK_BIN=A ST2PACK_BIN_VS=B bash bench/build.sh\` (\`bash bench/static-vs-glibc.sh\`
runs it with a glibc build as A and the static build as B), which replaces everything between the
two markers on each run.

**What is measured.** The tree of the build benchmark ($(tree_mib "$ROOT") MiB, $(tree_files "$ROOT")
files: the fixture packs, and \`$BIG_PACK\` with ${BIG_REQUIREMENTS[*]}), built on \`scratch\` from
an empty \`--cache-dir\` by each binary in the same run, the two taking turns going first: pushed
to a local \`docker-registry\` with gzip and with zstd layers, and written to an OCI layout. Each
figure is the median of $RUNS runs; each timed phase starts after a \`sync\`, with the tree in the
page cache. Wall time is what a user waits for; CPU time (user + sys) is less sensitive to other
load on the machine; memory is GNU time's peak resident set size.

* A: \`$LABEL_A\`: $("$ST2PACK" --version)
* B: \`$LABEL_B\`: $("$ST2PACK_VS" --version)

| phase | A wall (s) | B wall (s) | B / A | A CPU (s) | B CPU (s) | B / A | A peak MiB | B peak MiB |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
  for phase in gzip zstd oci; do
    case $phase in
      gzip) name="build + push, gzip" ;;
      zstd) name="build + push, zstd" ;;
      oci) name="build to an OCI layout, gzip" ;;
    esac
    a=$(phase_median "a-$phase" 3) b=$(phase_median "b-$phase" 3)
    row="| $name | $a | $b | $(calc '%.2f' "$b" "$a" 'a / b')x"
    a=$(phase_median "a-$phase" 4) b=$(phase_median "b-$phase" 4)
    row+=" | $a | $b | $(calc '%.2f' "$b" "$a" 'a / b')x"
    row+=" | $(mib_of_kib "$(phase_median "a-$phase" 5)") | $(mib_of_kib "$(phase_median "b-$phase" 5)") |"
    printf '%s\n' "$row"
  done
  printf '\nEach run, wall seconds, A / B:\n\n'
  printf '| run | load at start | order | gzip | zstd | OCI layout |\n|---|---:|---|---:|---:|---:|\n'
  for ((run = 1; run <= RUNS; run++)); do
    runs="| $run | ${INFO[load-$run]%% *} | ${INFO[order-$run]} |"
    for phase in gzip zstd oci; do
      runs+=" $(value "a-$phase" 3 "$run") / $(value "b-$phase" 3 "$run") |"
    done
    printf '%s\n' "$runs"
  done
  cat <<EOF

* date: $(date -u '+%Y-%m-%d %H:%M UTC'); st2pack commit: $commit
* machine: $(nproc) CPUs (${cpu:-unknown}), Linux $(uname -r), load average before / after: ${INFO[load-before]} / $(load_average)
* $(skopeo --version), docker-registry $(docker-registry --version | awk '{ print $NF }'), $(python3 --version)
$MARK_END
EOF
}

main_binaries() {
  require_tools "Debian: apt-get install -y docker-registry skopeo curl python3; uv: https://docs.astral.sh/uv/" \
    docker-registry skopeo curl python3 uv awk
  [[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is needed: apt-get install -y time"
  ((RUNS >= 1)) || die "BENCH_RUNS must be at least 1"
  [[ -x $ST2PACK_BIN_VS ]] || die "ST2PACK_BIN_VS=$ST2PACK_BIN_VS is not an executable"
  setup_workdir
  build_st2pack
  ST2PACK_VS=$ST2PACK_BIN_VS
  LABEL_A=$(binary_label "$ST2PACK")
  LABEL_B=$(binary_label "$ST2PACK_VS")
  say "A: $("$ST2PACK" --version); B: $("$ST2PACK_VS" --version)"
  PYTHON=$("${BENCH_PYTHON:-python3}" -c 'import sys; print(sys.executable)')
  make_tree
  start_registry
  warm_page_cache "$ROOT"
  INFO[load-before]=$(load_average)
  run_binaries
  MARK_START='<!-- build-bench-binaries:start -->'
  MARK_END='<!-- build-bench-binaries:end -->'
  report_binaries >"$WORK/section.md"
  cat "$WORK/section.md"
  if [[ ${BENCH_WRITE:-1} != 0 ]]; then
    write_results "$WORK/section.md"
  fi
}

main() {
  declare -gA INFO=()
  if [[ -n ${ST2PACK_BIN_VS:-} ]]; then
    main_binaries
    return
  fi
  check_tools
  setup_workdir
  build_binaries
  st2pack_build_cmd
  PYTHON=$("${BENCH_PYTHON:-python3}" -c 'import sys; print(sys.executable)')
  make_tree
  make_big_tree
  start_registry
  setup_buildah
  warm_page_cache "$ROOT"
  INFO[load-before]=$(load_average)
  run_all
  report >"$WORK/section.md"
  cat "$WORK/section.md"
  if [[ ${BENCH_WRITE:-1} != 0 ]]; then
    write_results "$WORK/section.md"
  fi
}

main "$@"
