#!/usr/bin/env bash
# bench/runtimes.sh: what building the virtualenvs for the cluster's runtime costs, side by side.
#
#   bash bench/runtimes.sh
#
# The four packs of bench/install.sh (bench_a..bench_d, copies of fixtures/packs/hello_st2 with
# real PyPI requirements, each a git repository tagged v1.0.0) are built by `st2pack build` into an
# OCI layout (`--base scratch --output oci:DIR`), from an empty cache directory each time, as:
#
#   native            --runtime host: this machine's interpreter (today's build, the reference)
#   described         --runtime st2-3.8 --bytecode-python PY38: CPython 3.8 on manylinux_2_31,
#                     its bytecode compiled by a CPython 3.8 of this machine (when there is one)
#   described, no     --runtime st2-3.8 with no CPython 3.8 to be found: no bytecode is written
#     bytecode
#   image, first run  --runtime-image oci:DIR:bullseye: a Debian bullseye root (CPython 3.9, glibc
#                     2.31, the stand-in for the cluster's runtime in the tests) as an OCI image,
#                     pulled and unpacked by st2pack into the empty cache
#   image, cached     the same with only the unpacked runtime image kept in the cache
#
# Each build installs only from a local wheelhouse for its Python (downloaded once, pinned by
# bench/constraints.txt for the host and bench/runtimes/constraints-cpXY.txt for the targets), so
# PyPI's latency is not measured. Each variant runs BENCH_RUNS times (median reported, the order of
# the variants rotating between runs), and every build is checked: four fresh layers, virtualenvs
# for the right Python that import their requirements with an interpreter of that version, and
# bytecode only of that version. Then each variant is built once more with --keep-pip, for the
# size of an image with and without pip and wheel.
#
# The results go to stdout as markdown and into BENCHMARKS.md between the
# `<!-- runtimes-bench:start -->` / `<!-- runtimes-bench:end -->` markers.
#
# Environment:
#   ST2PACK_BIN           st2pack binary to measure (default: cargo build --release --locked)
#   BENCH_DIR             work directory, kept afterwards (default: a temp dir, removed on success);
#                         the runtime image's OCI layout and the wheelhouses are reused from it
#   BENCH_RUNS            repetitions of each timed build (default: 3)
#   BENCH_PYTHON          the host interpreter of the native build (default: python3, resolved to
#                         its real path so that no pyenv shim is timed)
#   BENCH_PYTHON38        a CPython 3.8 for --bytecode-python (default: python3.8 on PATH or under
#                         pyenv's versions; none: the row is left out)
#   BENCH_RUNTIME_ROOT    the runtime image's root directory (default: scripts/bullseye-root.sh's)
#   BENCH_WRITE=0         print the results but leave BENCHMARKS.md alone

set -euo pipefail
shopt -s inherit_errexit

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
TEMPLATE_PACK="$REPO_ROOT/fixtures/packs/hello_st2"
RESULTS_FILE="$REPO_ROOT/BENCHMARKS.md"
MARK_START='<!-- runtimes-bench:start -->'
MARK_END='<!-- runtimes-bench:end -->'

RUNS=${BENCH_RUNS:-3}
# TAG, PACKS, REQUIREMENTS and IMPORTS: the four packs (bench/lib.sh).
define_tagged_packs

# The variants, in the order of the table.
VARIANTS=(native described nobytecode image-first image-cached)
declare -A VARIANT_NAME=(
  [native]='native (this machine'"'"'s Python)'
  [described]='described runtime, bytecode compiled'
  [nobytecode]='described runtime, no bytecode'
  [image-first]='runtime image, first run'
  [image-cached]='runtime image, image cached'
)
# The target Python of each variant's virtualenvs (the native one is filled in from the host).
declare -A VARIANT_PYTHON=([described]=3.8 [nobytecode]=3.8 [image-first]=3.9 [image-cached]=3.9)
# Why a variant was not measured (empty: it was).
declare -A SKIPPED=()

# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------

# A temp work dir is removed after a successful run, and kept after a failure for the logs in it.
on_exit() { leave_workdir $?; }

setup_workdir() {
  make_workdir st2pack-bench
  SRC="$WORK/src"
  WHEELHOUSES="$WORK/wheelhouses"
  LOGS="$WORK/logs"
  mkdir -p "$SRC" "$LOGS" "$WHEELHOUSES"
  trap on_exit EXIT
  say "work directory: $WORK"
}

# Only the wheelhouse, and nothing of this machine's configuration, reaches the builds: beyond
# what lib.sh's isolate_environment unsets, the variables that change what gets installed or
# compiled, or which Python uv takes.
isolate_build_environment() {
  isolate_environment PIP_NO_INDEX PIP_NO_CACHE_DIR PIP_REQUIRE_VIRTUALENV PIP_NO_COMPILE \
    UV_NO_CACHE UV_COMPILE_BYTECODE PIP_CACHE_DIR UV_PYTHON UV_PYTHON_INSTALL_DIR PYTHONDONTWRITEBYTECODE
  export PIP_DISABLE_PIP_VERSION_CHECK=1
}

# A CPython 3.8 that runs here, for --bytecode-python: BENCH_PYTHON38, python3.8 on PATH, or
# pyenv's newest 3.8.
find_python38() {
  local candidate
  if [[ -n ${BENCH_PYTHON38:-} ]]; then
    [[ -x $BENCH_PYTHON38 ]] || die "BENCH_PYTHON38=$BENCH_PYTHON38 is not an executable"
    printf '%s\n' "$BENCH_PYTHON38"
    return
  fi
  candidate=$(real_executable python3.8 2>/dev/null) && [[ -x $candidate ]] && {
    printf '%s\n' "$candidate"
    return
  }
  for candidate in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.8.*/bin/python3.8 2>/dev/null | sort -V -r); do
    [[ -x $candidate ]] && {
      printf '%s\n' "$candidate"
      return
    }
  done
  return 1
}

resolve_tools() {
  resolve_python
  VARIANT_PYTHON[native]=${PYTHON_VERSION%.*}
  command -v git >/dev/null || die "git is needed for the packs' repositories"
  local uv
  uv=$(real_executable uv) || die "uv is not on PATH: st2pack would fall back to pip, which is not what this measures"
  # st2pack finds uv on PATH, and uv finds a Python of this machine there (for source builds):
  # the host interpreter's directory comes first, so that it is that one, as in a CI job that
  # sets up its Python. A pyenv shim directory would only slow down every interpreter lookup.
  mkdir -p "$WORK/bin"
  ln -sf "$uv" "$WORK/bin/uv"
  BUILD_PATH="$WORK/bin:$(dirname "$PYTHON"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  UV_VERSION=$(uv --version)
  if PYTHON38=$(find_python38); then
    say "CPython 3.8 for --bytecode-python: $PYTHON38"
  else
    PYTHON38=""
    SKIPPED[described]="no CPython 3.8 on this machine (set BENCH_PYTHON38)"
  fi
  # The described build without bytecode must not find a 3.8 either (uv python find 3.8 looks on
  # PATH and among uv's own interpreters).
  if PATH=$BUILD_PATH UV_PYTHON_INSTALL_DIR="$WORK/no-pythons" uv python find 3.8 >/dev/null 2>&1; then
    SKIPPED[nobytecode]="uv python find 3.8 finds an interpreter here, so st2pack always compiles"
  fi
  say "python $PYTHON_VERSION ($PYTHON), $UV_VERSION"
}

build_st2pack() {
  ST2PACK_BIN_GIVEN=${ST2PACK_BIN:-}
  [[ -z ${ST2PACK_BIN:-} ]] || say "measuring $ST2PACK_BIN"
  st2pack_binary st2pack
}

# One wheelhouse per Python: the host's as bench/install.sh makes it (its requirements resolved
# under bench/constraints.txt), the targets' exactly as pinned by bench/runtimes/constraints-*.txt
# for CPython X.Y on manylinux_2_31 (pip takes the platform tags literally: every older manylinux
# tag is listed).
build_wheelhouses() {
  local dir version abi platforms=() glibc
  if [[ ! -f $WHEELHOUSES/host/.complete ]]; then
    say "wheelhouse for the host's Python: downloading from PyPI (pinned by bench/constraints.txt)"
    download_wheelhouse "$WHEELHOUSES/host" "$LOGS/wheelhouse-host.log"
  fi
  for ((glibc = 31; glibc >= 5; glibc--)); do
    platforms+=(--platform "manylinux_2_${glibc}_x86_64")
  done
  platforms+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
  for version in 3.8 3.9; do
    abi=cp${version/./}
    dir="$WHEELHOUSES/$abi"
    [[ ! -f $dir/.complete ]] || continue
    rm -rf "$dir"
    say "wheelhouse for CPython $version: downloading from PyPI (pinned by bench/runtimes/constraints-$abi.txt)"
    env -u PIP_CONFIG_FILE "$PYTHON" -m pip download --quiet --no-cache-dir --only-binary=:all: \
      --no-deps --dest "$dir" --python-version "$version" --implementation cp --abi "$abi" \
      "${platforms[@]}" -r "$REPO_ROOT/bench/runtimes/constraints-$abi.txt" \
      >"$LOGS/wheelhouse-$abi.log" 2>&1 ||
      {
        tail -n 30 "$LOGS/wheelhouse-$abi.log" >&2
        die "pip download failed (log above)"
      }
    touch "$dir/.complete"
  done
}

# The runtime image: the bullseye root as a one-layer OCI image (umoci), kept in the work dir.
make_runtime_image() {
  RUNTIME_ROOT=${BENCH_RUNTIME_ROOT:-$(bash "$REPO_ROOT/scripts/bullseye-root.sh")}
  [[ -x $RUNTIME_ROOT/usr/bin/python3.9 ]] || die "$RUNTIME_ROOT has no /usr/bin/python3.9"
  RUNTIME_LAYOUT="$WORK/runtime-image"
  RUNTIME_REF="oci:$RUNTIME_LAYOUT:bullseye"
  if [[ -f $RUNTIME_LAYOUT/.complete ]]; then
    say "runtime image: reusing $RUNTIME_LAYOUT"
  else
    command -v umoci >/dev/null || die "umoci is needed to make the runtime image from $RUNTIME_ROOT"
    say "runtime image: $RUNTIME_ROOT into an OCI layout with umoci"
    rm -rf "$RUNTIME_LAYOUT"
    {
      umoci init --layout "$RUNTIME_LAYOUT" &&
        umoci new --image "$RUNTIME_LAYOUT:bullseye" &&
        umoci insert --image "$RUNTIME_LAYOUT:bullseye" "$RUNTIME_ROOT" / &&
        umoci gc --layout "$RUNTIME_LAYOUT"
    } >"$LOGS/runtime-image.log" 2>&1 || {
      tail -n 30 "$LOGS/runtime-image.log" >&2
      die "umoci failed (log above)"
    }
    touch "$RUNTIME_LAYOUT/.complete"
  fi
  RUNTIME_IMAGE_BYTES=$(layer_bytes "$RUNTIME_LAYOUT" bullseye | cut -d' ' -f1)
}

# ---------------------------------------------------------------------------------------------
# The builds
# ---------------------------------------------------------------------------------------------

# The options of variant $1 after `st2pack build`, in BUILD_ARGS; its environment in BUILD_ENV.
variant_args() {
  BUILD_ENV=(PATH="$BUILD_PATH" UV_PYTHON_INSTALL_DIR="$WORK/no-pythons")
  case $1 in
    native) BUILD_ARGS=(--runtime host --python "$PYTHON" --wheelhouse "$WHEELHOUSES/host") ;;
    described)
      BUILD_ARGS=(--runtime st2-3.8 --bytecode-python "$PYTHON38" --python "$PYTHON"
        --wheelhouse "$WHEELHOUSES/cp38")
      ;;
    nobytecode) BUILD_ARGS=(--runtime st2-3.8 --python "$PYTHON" --wheelhouse "$WHEELHOUSES/cp38") ;;
    image-first | image-cached) BUILD_ARGS=(--runtime-image "$RUNTIME_REF" --wheelhouse "$WHEELHOUSES/cp39") ;;
    *) die "unknown variant $1" ;;
  esac
}

# The command line of variant $1 as the section shows it.
variant_command() {
  local arg shown=()
  variant_args "$1"
  for arg in "${BUILD_ARGS[@]}"; do
    case $arg in
      "$PYTHON") arg=PYTHON3.11 ;;
      "$PYTHON38") arg=PYTHON3.8 ;;
      "$WHEELHOUSES"/*) arg=WHEELHOUSE ;;
      "$RUNTIME_REF") arg=oci:DIR:bullseye ;;
    esac
    shown+=("$arg")
  done
  printf '%s' "${shown[*]}"
}

# One `st2pack build` of the four packs as variant $1 into the fresh tree $2 (--root), the cache
# $3 and the OCI layout $4, its JSON summary to $5; further arguments go to st2pack.
st2pack_build() {
  local variant=$1 root=$2 cache=$3 layout=$4 json=$5 pack specs=()
  shift 5
  for pack in "${PACKS[@]}"; do
    specs+=("file://$SRC/$pack=${TAG#v}")
  done
  variant_args "$variant"
  env "${BUILD_ENV[@]}" UV_CACHE_DIR="$cache/uv" "$ST2PACK_BIN" build "${BUILD_ARGS[@]}" \
    --root "$root" --cache-dir "$cache/st2pack" --base scratch --tag "bench:$variant" \
    --output "oci:$layout" --json "$@" "${specs[@]}" >"$json" </dev/null
}

# A cache holding only what a first runtime-image build left of the image itself: every bucket
# but those made from the packs (their git mirrors, virtualenvs, bytecode, layers, build roots).
# Copied, not linked, so the measured build cannot change the seed.
seed_image_cache() {
  local cache=$1 entry
  reset "$cache/st2pack"
  for entry in "$RUNTIME_SEED_CACHE"/st2pack/*; do
    case $(basename "$entry") in
      git-v* | virtualenvs-v* | bytecode-v* | layers-v* | segments-v* | build-roots-v*) ;;
      *) cp -a "$entry" "$cache/st2pack/" ;;
    esac
  done
}

# Whether this st2pack builds with --runtime-image, by building once into the cache the cached
# variant starts from. Sets SKIPPED for both image variants when it does not.
probe_runtime_image() {
  local dir="$WORK/probe" status=0
  RUNTIME_SEED_CACHE="$dir/cache"
  reset "$dir"
  say "runtime image: one untimed build to see whether --runtime-image works (and to fill the image cache)"
  st2pack_build image-first "$dir/root" "$dir/cache" "$dir/layout" "$dir/build.json" \
    >/dev/null 2>"$LOGS/probe-runtime-image.log" || status=$?
  if ((status != 0)); then
    PROBE_ERROR=$(grep -m1 -i 'error' "$LOGS/probe-runtime-image.log" || head -n 1 "$LOGS/probe-runtime-image.log")
    say "--runtime-image is not measured: st2pack exited $status: $PROBE_ERROR"
    # What st2pack said, without the work directory's path it quotes.
    PROBE_ERROR=${PROBE_ERROR//$RUNTIME_LAYOUT/DIR}
    SKIPPED[image-first]="this st2pack exits $status: \`${PROBE_ERROR//|/\\|}\`"
    SKIPPED[image-cached]=${SKIPPED[image-first]}
    return
  fi
  check_build image-first "$dir/root" "$dir/layout" "$dir/build.json"
  say "runtime image cache: $(cd "$RUNTIME_SEED_CACHE/st2pack" && ls -d -- * | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------------------------
# Checks: a fast build of the wrong virtualenvs would make the comparison meaningless
# ---------------------------------------------------------------------------------------------

# Runs Python code $3 in virtualenv $1 (site-packages $2) on an interpreter of the variant's
# Python ($4): the virtualenv's own for the native build, else a CPython of the target's version
# with that site-packages as the only place packages come from (this machine's 3.8; the runtime
# image's own 3.9, run with its own loader and libraries).
target_python() {
  local venv=$1 site=$2 code=$3 python=$4
  local prelude="import site, sys; site.addsitedir('$site'); "
  case $python in
    native) "$venv/bin/python" -c "$code" ;;
    3.8)
      [[ -n $PYTHON38 ]] || return 0
      "$PYTHON38" -S -s -c "$prelude$code"
      ;;
    3.9)
      PYTHONHOME="$RUNTIME_ROOT/usr" "$RUNTIME_ROOT/lib/x86_64-linux-gnu/ld-2.31.so" \
        --library-path "$RUNTIME_ROOT/lib/x86_64-linux-gnu:$RUNTIME_ROOT/usr/lib/x86_64-linux-gnu" \
        "$RUNTIME_ROOT/usr/bin/python3.9" -S -s -c "$prelude$code"
      ;;
  esac
}

# Variant $1's build into tree $2 and layout $3 (JSON summary $4): four fresh layers in the
# layout, and per pack one virtualenv for the variant's Python that imports six and the pack's
# requirements, with bytecode of that Python only (none for the no-bytecode variant), and pip and
# wheel only when $5 is keep-pip.
check_build() {
  local variant=$1 root=$2 layout=$3 json=$4 keep=${5:-} pack venv sites site version pyc other
  version=${VARIANT_PYTHON[$variant]}
  "$PYTHON" - "$json" "${#PACKS[@]}" <<'PY' || die "$variant: the build's summary is not that of ${#PACKS[@]} new layers"
import json, sys
summary = json.load(open(sys.argv[1]))
packs = summary["packs"]
if len(packs) != int(sys.argv[2]) or any(p["layer_reused"] for p in packs):
    sys.exit(f"[bench] error: {len(packs)} packs, reused: {[p['name'] for p in packs if p['layer_reused']]}")
PY
  layer_bytes "$layout" "$variant" >/dev/null || die "$variant: no image tagged $variant in $layout"
  for pack in "${PACKS[@]}"; do
    venv="$root/virtualenvs/$pack"
    sites=("$venv"/lib/python*/site-packages)
    [[ ${#sites[@]} == 1 && ${sites[0]} == "$venv/lib/python$version/site-packages" ]] ||
      die "$variant: $venv should hold exactly lib/python$version/site-packages, has: ${sites[*]}"
    site=${sites[0]}
    local python=$version
    [[ $variant != native ]] || python=native
    PYTHONDONTWRITEBYTECODE=1 target_python "$venv" "$site" "import six, ${IMPORTS[$pack]}" "$python" 2>"$LOGS/check.log" || {
      cat "$LOGS/check.log" >&2
      die "$variant: the virtualenv of $pack cannot import six, ${IMPORTS[$pack]} on Python $version"
    }
    PYTHONDONTWRITEBYTECODE=1 target_python "$venv" "$site" "import pkg_resources" "$python" 2>"$LOGS/check.log" || {
      cat "$LOGS/check.log" >&2
      die "$variant: the virtualenv of $pack has no setuptools (pkg_resources)"
    }
    pyc=$(find "$venv" -name '*.pyc' | wc -l)
    other=$(find "$venv" -name '*.pyc' ! -name "*.cpython-${version/./}.pyc" | wc -l)
    ((other == 0)) || die "$variant: $venv holds $other .pyc files of another Python than $version"
    if [[ $variant == nobytecode ]]; then
      ((pyc == 0)) || die "$variant: $venv holds $pyc .pyc files, expected none"
    else
      ((pyc > 0)) || die "$variant: $venv holds no bytecode"
    fi
    if [[ $keep == keep-pip ]]; then
      [[ -d $site/pip && -n $(compgen -G "$site/wheel-*.dist-info") ]] ||
        die "$variant --keep-pip: $venv has no pip or no wheel"
    else
      [[ ! -e $site/pip && -z $(compgen -G "$site/wheel-*.dist-info") ]] ||
        die "$variant: $venv still has pip or wheel"
    fi
  done
}

# "<total compressed bytes> <layers>" of the image tagged $2 in the OCI layout $1.
layer_bytes() {
  "$PYTHON" - "$1" "$2" <<'PY'
import json, os, sys
layout, tag = sys.argv[1], sys.argv[2]
index = json.load(open(os.path.join(layout, "index.json")))
for entry in index["manifests"]:
    if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
        algorithm, digest = entry["digest"].split(":")
        manifest = json.load(open(os.path.join(layout, "blobs", algorithm, digest)))
        print(sum(layer["size"] for layer in manifest["layers"]), len(manifest["layers"]))
        break
else:
    sys.exit(f"no image tagged {tag} in {layout}")
PY
}

# Bytes of the files under $1 as they are, each hard link counted (as a layer's tar holds them).
tree_bytes() { du -s -b -l "$1" | cut -f1; }
pyc_count() { find "$1" -name '*.pyc' | wc -l; }

# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------

# Timings by variant, one word per run; sizes by "variant" (default) and "variant keep-pip".
declare -A WALL CPU LAYERS VENVS PYCS IMPORT_WALL IMPORT_CPU
declare -a LOADS ORDERS

measured_variants() {
  local variant
  for variant in "${VARIANTS[@]}"; do
    [[ -n ${SKIPPED[$variant]:-} ]] || printf '%s\n' "$variant"
  done
}

# One timed build of variant $1 in run $2, checked, its sizes recorded.
measure_variant() {
  local variant=$1 run=$2 dir="$WORK/builds/$1"
  reset "$dir"
  if [[ $variant == image-cached ]]; then
    seed_image_cache "$dir/cache"
  fi
  timed "$LOGS/$variant-$run.log" st2pack_build "$variant" "$dir/root" "$dir/cache" "$dir/layout" "$dir/build.json"
  WALL[$variant]+="$SECONDS_TAKEN "
  CPU[$variant]+="$CPU_TAKEN "
  check_build "$variant" "$dir/root" "$dir/layout" "$dir/build.json"
  LAYERS[$variant]=$(layer_bytes "$dir/layout" "$variant" | cut -d' ' -f1)
  VENVS[$variant]=$(tree_bytes "$dir/root/virtualenvs")
  PYCS[$variant]=$(pyc_count "$dir/root/virtualenvs")
}

# Every variant once per run, the first of each run moving one place on each time.
measure_all() {
  local run i n variant order line
  local -a variants
  mapfile -t variants < <(measured_variants)
  n=${#variants[@]}
  for ((run = 1; run <= RUNS; run++)); do
    LOADS+=("$(cut -d' ' -f1 /proc/loadavg)")
    order=() line="run $run/$RUNS, seconds:"
    for ((i = 0; i < n; i++)); do
      variant=${variants[(i + run - 1) % n]}
      order+=("$variant")
      say "run $run/$RUNS: $variant"
      measure_variant "$variant" "$run"
      line+=" $variant $SECONDS_TAKEN,"
    done
    ORDERS+=("$(join_by ' → ' "${order[@]}")")
    say "${line%,}"
  done
}

# What a virtualenv without bytecode costs each action run: the four packs' requirements imported
# on CPython 3.8 from the described builds' trees with and without bytecode, as on the chart's
# read-only volumes (nothing written). IMPORT_RUNS times each, taking turns; all four packs'
# imports, one interpreter per pack, make one measurement.
IMPORT_RUNS=5
import_all() {
  local root=$1 pack venv
  for pack in "${PACKS[@]}"; do
    venv="$root/virtualenvs/$pack"
    PYTHONDONTWRITEBYTECODE=1 target_python "$venv" "$(echo "$venv"/lib/python*/site-packages)" \
      "import six, ${IMPORTS[$pack]}" 3.8
  done
}

measure_imports() {
  local i variant
  [[ -n $PYTHON38 && -z ${SKIPPED[described]:-} && -z ${SKIPPED[nobytecode]:-} ]] || return 0
  say "imports: the described builds' virtualenvs with and without bytecode, $IMPORT_RUNS times each"
  for ((i = 1; i <= IMPORT_RUNS; i++)); do
    for variant in described nobytecode; do
      timed "$LOGS/imports-$variant-$i.log" import_all "$WORK/builds/$variant/root"
      IMPORT_WALL[$variant]+="$SECONDS_TAKEN "
      IMPORT_CPU[$variant]+="$CPU_TAKEN "
    done
  done
}

# Each variant (the cached image aside: its image is the first run's) once more with --keep-pip.
measure_keep_pip() {
  local variant dir
  local -a variants
  mapfile -t variants < <(measured_variants)
  for variant in "${variants[@]}"; do
    [[ $variant != image-cached ]] || continue
    dir="$WORK/builds/$variant-keep-pip"
    reset "$dir"
    say "size: $variant with --keep-pip"
    st2pack_build "$variant" "$dir/root" "$dir/cache" "$dir/layout" "$dir/build.json" --keep-pip \
      2>"$LOGS/$variant-keep-pip.log" || {
      tail -n 40 "$LOGS/$variant-keep-pip.log" >&2
      die "$variant --keep-pip failed (log above)"
    }
    check_build "$variant" "$dir/root" "$dir/layout" "$dir/build.json" keep-pip
    LAYERS[$variant keep-pip]=$(layer_bytes "$dir/layout" "$variant" | cut -d' ' -f1)
    VENVS[$variant keep-pip]=$(tree_bytes "$dir/root/virtualenvs")
    PYCS[$variant keep-pip]=$(pyc_count "$dir/root/virtualenvs")
  done
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1000000 }'; }
saving() { awk -v with="$1" -v without="$2" 'BEGIN { printf "%.1f", 100 * (with - without) / with }'; }
# The table of build times, one row per variant (a skipped one says why).
time_table() {
  local variant native_wall native_cpu wall cpu
  # shellcheck disable=SC2086 # the timings are word lists
  native_wall=$(median ${WALL[native]}) native_cpu=$(median ${CPU[native]})
  echo "| build of the four packs | options | Python | wall (s) | wall / native | CPU (s) | CPU / native | \`.pyc\` files |"
  echo "|---|---|---|---:|---:|---:|---:|---:|"
  for variant in "${VARIANTS[@]}"; do
    if [[ -n ${SKIPPED[$variant]:-} ]]; then
      printf '| %s | `%s` | %s | not measured yet: %s | | | | |\n' "${VARIANT_NAME[$variant]}" \
        "$(variant_command "$variant")" "${VARIANT_PYTHON[$variant]}" "${SKIPPED[$variant]}"
      continue
    fi
    # shellcheck disable=SC2086
    wall=$(median ${WALL[$variant]}) cpu=$(median ${CPU[$variant]})
    printf '| %s | `%s` | %s | %s | %sx | %s | %sx | %s |\n' "${VARIANT_NAME[$variant]}" \
      "$(variant_command "$variant")" "${VARIANT_PYTHON[$variant]}" "$wall" \
      "$(ratio "$wall" "$native_wall")" "$cpu" "$(ratio "$cpu" "$native_cpu")" "${PYCS[$variant]}"
  done
}

size_table() {
  local variant lw lo vw vo
  echo "| image of the four packs | layers, with pip and wheel (MB) | layers, without (MB) | saved | virtualenvs, with (MB) | virtualenvs, without (MB) | saved |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for variant in "${VARIANTS[@]}"; do
    [[ $variant != image-cached ]] || continue
    [[ -z ${SKIPPED[$variant]:-} ]] || {
      printf '| %s | not measured yet | | | | | |\n' "${VARIANT_NAME[$variant]%, first run}"
      continue
    }
    lw=${LAYERS[$variant keep-pip]} lo=${LAYERS[$variant]}
    vw=${VENVS[$variant keep-pip]} vo=${VENVS[$variant]}
    printf '| %s | %s | %s | %s %% | %s | %s | %s %% |\n' "${VARIANT_NAME[$variant]%, first run}" \
      "$(mb "$lw")" "$(mb "$lo")" "$(saving "$lw" "$lo")" "$(mb "$vw")" "$(mb "$vo")" "$(saving "$vw" "$vo")"
  done
}

import_table() {
  local variant
  [[ -n ${IMPORT_WALL[described]:-} ]] || {
    echo "Not measured: no CPython 3.8 here to run the described runtime's virtualenvs with."
    return
  }
  echo "**What no bytecode costs each action run.** The requirements of all four packs imported on"
  echo "CPython 3.8 from the trees of the two described builds above, one interpreter per pack, nothing"
  echo "written (as on the chart's read-only volumes); median of $IMPORT_RUNS, taking turns:"
  echo
  echo "| imports of the four packs' requirements | wall (s) | CPU (s) |"
  echo "|---|---:|---:|"
  for variant in described nobytecode; do
    # shellcheck disable=SC2086 # the timings are word lists
    printf '| %s | %s | %s |\n' "${VARIANT_NAME[$variant]}" "$(median ${IMPORT_WALL[$variant]})" \
      "$(median ${IMPORT_CPU[$variant]})"
  done
}

runs_table() {
  local i variant
  local -a variants
  mapfile -t variants < <(measured_variants)
  printf '| run | load at start | order |'
  for variant in "${variants[@]}"; do printf ' %s |' "$variant"; done
  printf '\n|---|---:|---|'
  for variant in "${variants[@]}"; do printf -- '---:|'; done
  printf '\n'
  for ((i = 0; i < RUNS; i++)); do
    printf '| %d | %s | %s |' "$((i + 1))" "${LOADS[i]}" "${ORDERS[i]}"
    for variant in "${variants[@]}"; do
      printf ' %s / %s |' "$(nth "${WALL[$variant]}" "$i")" "$(nth "${CPU[$variant]}" "$i")"
    done
    printf '\n'
  done
}

# The command that made these figures: the settings that change them, as given.
command_line() {
  local name words=()
  for name in BENCH_RUNS BENCH_PYTHON BENCH_PYTHON38 BENCH_RUNTIME_ROOT; do
    [[ -z ${!name:-} ]] || words+=("$name=${!name}")
  done
  [[ -z ${ST2PACK_BIN_GIVEN:-} ]] || words+=("ST2PACK_BIN=$ST2PACK_BIN_GIVEN")
  words+=(bash bench/runtimes.sh)
  printf '%s' "${words[*]}"
}

machine_facts() {
  local commit cpu
  commit=$(checkout_commit) || commit="none yet (working tree, no commit)"
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
  cat <<EOF
* command: \`$(command_line)\`
* date: $(date -u '+%Y-%m-%d %H:%M UTC'); st2pack commit: $commit; $("$ST2PACK_BIN" --version)
* machine: $(nproc) CPUs${cpu:+ ($cpu)}, $(uname -sr), load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)
* host Python $PYTHON_VERSION; bytecode Python: $(if [[ -n $PYTHON38 ]]; then
    printf '%s (%s)' "$("$PYTHON38" -c 'import platform; print(platform.python_version())')" "$PYTHON38"
  else
    printf 'none'
  fi); $UV_VERSION
* runtime image: ${RUNTIME_ROOT:-} (Debian bullseye, $("$PYTHON" -c 'import sys; print(open(sys.argv[1]).read().strip())' "$RUNTIME_ROOT/etc/debian_version" 2>/dev/null || echo '?')) made one OCI layer by $(umoci --version 2>/dev/null | head -n 1), $(mb "$RUNTIME_IMAGE_BYTES") MB compressed
* wheelhouses: $(for w in host cp38 cp39; do printf '%s %s wheels; ' "$w" "$(find "$WHEELHOUSES/$w" -name '*.whl' | wc -l)"; done | sed 's/; $//') (bench/constraints.txt, bench/runtimes/constraints-cp38.txt, -cp39.txt); packs: ${PACKS[*]} requiring $(for p in "${PACKS[@]}"; do printf '%s; ' "${REQUIREMENTS[$p]//$'\n'/, }"; done | sed 's/; $//')
EOF
}

render_section() {
  cat <<EOF
$MARK_START
## Virtualenvs for the cluster's runtime

Written by \`bash bench/runtimes.sh\`, which replaces everything between the two markers on each run.

**What is measured.** The install benchmark's four packs (bench_a to bench_d, git repositories
tagged \`$TAG\` with pinned PyPI requirements) built by one \`st2pack build --base scratch --output
oci:DIR PACK…\` each, from an empty \`--cache-dir\` and \`UV_CACHE_DIR\`, installing only from a
local wheelhouse for the target's Python (PyPI's latency left out): for this machine's Python
(\`--runtime host\`, the reference), for the chart's default runtime described without its image
(\`--runtime st2-3.8\`: CPython 3.8 on manylinux_2_31; with a CPython 3.8 of this machine compiling
the bytecode, and with none, so without bytecode), and with a runtime image (a Debian bullseye root,
CPython 3.9 on glibc 2.31, as a one-layer OCI layout: \`--runtime-image oci:DIR:bullseye\`), first
with nothing cached, then with the cache holding only what the image itself left there. Every
build is checked: four new layers, and per pack exactly one \`lib/pythonX.Y/site-packages\` that
imports six, setuptools' \`pkg_resources\` and the pack's requirements on a CPython of that version
(for the runtime image, its own interpreter run with its own loader and libraries), bytecode of
that version only, and no pip or wheel. Each time is the median of $RUNS runs, the variants taking
turns going first; each build starts after a \`sync\`, with the wheelhouses in the page cache. CPU
is user + sys of st2pack and everything it ran. Re-run with \`bash bench/runtimes.sh\`
(\`BENCH_RUNS\`, \`ST2PACK_BIN\`, \`BENCH_DIR\`, \`BENCH_PYTHON38\`, \`BENCH_WRITE=0\` are described at
the top of the script).

$(time_table)

**Image size with and without pip and wheel.** The same builds, and each once more with
\`--keep-pip\`: the compressed bytes of the image's four layers (gzip, as pushed) and the bytes of
the four virtualenvs as installed (\`du -b\`, every hard link counted, as a layer's tar holds them).

$(size_table)

$(import_table)

Each run, wall / CPU seconds:

$(runs_table)

$(machine_facts)
$MARK_END
EOF
}

main() {
  [[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number, not '$RUNS'"
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  setup_workdir
  isolate_build_environment
  resolve_tools
  build_st2pack
  say "st2pack: $("$ST2PACK_BIN" --version)"
  make_tagged_packs
  build_wheelhouses
  make_runtime_image
  probe_runtime_image
  measure_all
  measure_imports
  measure_keep_pip
  render_section >"$WORK/section.md"
  echo
  cat "$WORK/section.md"
  if [[ ${BENCH_WRITE:-1} != 0 ]]; then
    write_results "$WORK/section.md"
  fi
}

main "$@"
