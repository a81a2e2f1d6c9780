#!/usr/bin/env bash
# bench/cache-from.sh: on an empty cache directory, a full `st2pack build --push` against the
# same build with `--cache-from` the previous image, side by side in one run.
#
#   bash bench/cache-from.sh
#
# Five packs (bench_a..bench_e, copies of fixtures/packs/hello_st2 with real PyPI requirements,
# each a git repository) are built into an image on a busybox base (`st2pack base-image`) and
# pushed to a local docker-registry as REG/bench/packs:prev. Then one pack gets a new commit (to
# its code; later, to its requirements), and each run copies the previous image into two new
# repositories (blobs mounted, manifest put: registry API calls, not timed) and times, on a fresh
# empty --cache-dir each (a CI runner that starts empty):
#
#   full        st2pack build PACKS... --tag REG/bench/CHANGE-full-N:cur --push
#   cache-from  st2pack build PACKS... --tag REG/bench/CHANGE-cf-N:cur --push \
#                 --cache-from REG/bench/CHANGE-cf-N:prev
#
# Each pushes to the repository its previous image is in, as a pipeline does, so both upload the
# same blobs (the changed layers and the config) whichever runs first. The full build
# installs and layers all five packs; the cache-from build reads the previous image's manifest and
# config, installs and layers the changed pack only (and after a code change, takes its
# virtualenv's layer). Both must give the same image digest (checked).
# Every virtualenv comes from one local wheelhouse (downloaded once from PyPI, pinned by
# bench/constraints.txt), so PyPI's latency is not measured. Each measurement is repeated
# BENCH_RUNS times, the two alternating which goes first; medians are reported.
#
# The results go to stdout as markdown and into BENCHMARKS.md between the
# `<!-- cache-from-bench:start -->` / `<!-- cache-from-bench:end -->` markers (appended at the end
# the first time); nothing else in the file is touched.
#
# Environment:
#   ST2PACK_BIN    st2pack binary to measure (default: cargo build --release --locked)
#   BENCH_DIR      work directory, kept afterwards (default: a temp dir, removed on success)
#   BENCH_RUNS     repetitions of each measurement (default: 3)
#   BENCH_PYTHON   interpreter the virtualenvs are made with (default: python3)
#   BENCH_WRITE=0  print the results but leave BENCHMARKS.md alone

set -euo pipefail
shopt -s inherit_errexit

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
TEMPLATE_PACK="$REPO_ROOT/fixtures/packs/hello_st2"
RESULTS_FILE="$REPO_ROOT/BENCHMARKS.md"
MARK_START='<!-- cache-from-bench:start -->'
MARK_END='<!-- cache-from-bench:end -->'

RUNS=${BENCH_RUNS:-3}
PACKS=(bench_a bench_b bench_c bench_d bench_e)
CHANGED_PACK=bench_c
# The cache-from build's time, as a percentage of the full build's, at most.
TARGET_PCT=15

# Each pack's requirements.txt (exact pins; their dependencies are pinned by
# bench/constraints.txt when the wheelhouse is built).
declare -A REQUIREMENTS=(
  [bench_a]=$'requests==2.32.3'
  [bench_b]=$'PyYAML==6.0.2\nJinja2==3.1.4'
  [bench_c]=$'python-dateutil==2.9.0.post0\npytz==2024.2'
  [bench_d]=$'jsonschema==4.23.0'
  [bench_e]=$'requests==2.32.3\nPyYAML==6.0.2'
)

# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------

check_tools() {
  require_tools "Debian: apt-get install -y docker-registry git python3 curl; uv: https://docs.astral.sh/uv/" \
    docker-registry git uv python3 awk curl /usr/bin/time
  ((RUNS >= 1)) || die "BENCH_RUNS must be at least 1"
}

on_exit() {
  local status=$?
  stop_registry
  leave_workdir "$status"
}

setup_workdir() {
  make_workdir st2pack-cache-from-bench
  SRC="$WORK/src"
  WHEELHOUSE="$WORK/wheelhouse"
  LOGS="$WORK/logs"
  SCRATCH="$WORK/scratch"
  rm -rf "$SRC" "$LOGS" "$SCRATCH" "$WORK/registry"
  mkdir -p "$SRC" "$LOGS" "$SCRATCH"
  trap on_exit EXIT
  say "work directory: $WORK"
}

resolve_tools() {
  resolve_python
  UV_VERSION=$(uv --version)
  st2pack_binary st2pack
  say "measuring $ST2PACK_BIN; python $PYTHON_VERSION, $UV_VERSION"
}

make_packs() {
  local pack dir
  for pack in "${PACKS[@]}"; do
    dir="$SRC/$pack"
    cp -r "$TEMPLATE_PACK" "$dir"
    sed -i -e "s/^ref: .*/ref: $pack/" -e "s/^name: .*/name: $pack/" \
      -e "s/^version: .*/version: 1.0.0/" "$dir/pack.yaml"
    printf '%s\n' "${REQUIREMENTS[$pack]}" >"$dir/requirements.txt"
    git -C "$dir" -c init.defaultBranch=main init -q
    git -C "$dir" add -A
    commit_fixed "$dir" -am "$pack 1.0.0"
  done
}

build_wheelhouse() {
  if [[ -f $WHEELHOUSE/.complete ]]; then
    say "wheelhouse: reusing $WHEELHOUSE"
    return
  fi
  say "wheelhouse: downloading from PyPI (pinned by bench/constraints.txt)"
  download_wheelhouse "$WHEELHOUSE" "$LOGS/wheelhouse.log"
}

# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------

# st2pack build on the empty cache directory $1, its output to $2.{out,err}, then the rest of
# the arguments; the wall seconds into LAST_WALL, the CPU seconds (user + sys, every process it
# ran) into LAST_CPU.
build() {
  local cache=$1 log=$2
  shift 2
  local specs=() pack start end
  for pack in "${PACKS[@]}"; do specs+=("file://$SRC/$pack"); done
  rm -rf "$cache"
  sync
  start=$(now)
  # uv's own cache too starts empty, inside the build's cache directory.
  UV_CACHE_DIR="$cache/uv" /usr/bin/time -f '%U %S' -o "$log.time" \
    "$ST2PACK_BIN" build "${specs[@]}" --cache-dir "$cache" --python "$PYTHON" --runtime host \
    --wheelhouse "$WHEELHOUSE" --base "$BASE" --push "$@" >"$log.out" 2>"$log.err" ||
    {
      tail -n 30 "$log.err" >&2
      die "st2pack build failed (log above: $log.err)"
    }
  end=$(now)
  LAST_WALL=$(elapsed "$start" "$end")
  LAST_CPU=$(awk '{ printf "%.2f", $1 + $2 }' "$log.time")
  rm -rf "$cache"
}

# Copies the image $1 (REPO:TAG) to repository $2 under tag prev, through the registry API:
# every blob mounted, the manifest put.
copy_image() {
  local from_repo=${1%%:*} tag=${1##*:} to=$2 manifest digest
  local type=application/vnd.oci.image.manifest.v1+json
  manifest=$(curl -fsS -H "Accept: $type" "http://$REG/v2/$from_repo/manifests/$tag")
  for digest in $(printf '%s' "$manifest" | "$PYTHON" -c 'import json, sys
m = json.load(sys.stdin)
print(m["config"]["digest"])
for layer in m["layers"]:
    print(layer["digest"])'); do
    curl -fsS -o /dev/null -X POST "http://$REG/v2/$to/blobs/uploads/?mount=$digest&from=$from_repo"
  done
  curl -fsS -o /dev/null -X PUT -H "Content-Type: $type" --data-binary "$manifest" \
    "http://$REG/v2/$to/manifests/prev"
}

# The registry requests logged after line $1, counted by kind, in markdown table rows.
request_counts() {
  tail -n +"$(($1 + 1))" "$REGISTRY_ACCESS_LOG" | awk '
    {
      split($0, quoted, "\""); split(quoted[2], request, " ")
      method = request[1]; path = request[2]; status = quoted[3]; sub(/^ */, "", status); sub(/ .*/, "", status)
      if (path !~ /^\/v2\/./) next
      kind = "other"
      if (path ~ /\/manifests\//) kind = "manifest"
      else if (path ~ /\/blobs\/uploads\// && path ~ /mount=/) kind = "blob mount"
      else if (path ~ /\/blobs\/uploads\//) kind = "blob upload"
      else if (path ~ /\/blobs\//) kind = "blob"
      repo = path; sub(/^\/v2\//, "", repo); sub(/\/(manifests|blobs)\/.*/, "", repo)
      key = method " " kind " (" repo ") -> " status
      count[key]++
    }
    END { for (k in count) printf "| %s | %d |\n", k, count[k] }' | sort
}

pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", 100 * a / b }'; }

# A JSON field of the build summary $1 (a Python expression of `s`).
summary_field() {
  "$PYTHON" -c 'import json, sys; s = json.load(open(sys.argv[1])); print('"$2"')' "$1"
}

# Both builds of scenario $1 (after the change it names), RUNS times, against the previous image
# $2 (REPO:TAG); the medians and the last run's facts go into variables prefixed with $1.
run_scenario() {
  local name=$1 previous=$2
  local full=() cached=() full_cpu=() cached_cpu=() noop=() noop_cpu=() runs_table i first kind
  runs_table="| run | load at start | order | full wall / CPU (s) | cache-from wall / CPU (s) |"$'\n'"|---|---:|---|---:|---:|"
  for ((i = 1; i <= RUNS; i++)); do
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    if ((i % 2)); then first=full; else first=cache-from; fi
    copy_image "$previous" "bench/$name-full-$i"
    copy_image "$previous" "bench/$name-cf-$i"
    for kind in $([[ $first == full ]] && echo "full cache-from" || echo "cache-from full"); do
      if [[ $kind == full ]]; then
        build "$SCRATCH/cache" "$LOGS/$name-full-$i" --tag "$REG/bench/$name-full-$i:cur" --json
        full+=("$LAST_WALL") full_cpu+=("$LAST_CPU")
      else
        local logged
        logged=$(wc -l <"$REGISTRY_ACCESS_LOG")
        build "$SCRATCH/cache" "$LOGS/$name-cf-$i" --tag "$REG/bench/$name-cf-$i:cur" --json \
          --cache-from "$REG/bench/$name-cf-$i:prev"
        cached+=("$LAST_WALL") cached_cpu+=("$LAST_CPU")
        printf -v "${name}_REQUESTS" '%s' "$(request_counts "$logged")"
      fi
      say "$name run $i $kind: ${LAST_WALL} s (CPU ${LAST_CPU} s)"
    done
    runs_table+=$'\n'"| $i | $load | $first first | ${full[i - 1]} / ${full_cpu[i - 1]} | ${cached[i - 1]} / ${cached_cpu[i - 1]} |"
    # For context, what --cache-from costs by itself: the same build again from the image just
    # made, every layer taken.
    build "$SCRATCH/cache" "$LOGS/$name-noop-$i" --tag "$REG/bench/$name-cf-$i:again" --json \
      --cache-from "$REG/bench/$name-cf-$i:cur"
    noop+=("$LAST_WALL") noop_cpu+=("$LAST_CPU")
    say "$name run $i nothing changed: ${LAST_WALL} s (CPU ${LAST_CPU} s)"
    [[ $(summary_field "$LOGS/$name-full-$i.out" 's["digest"]') == \
      "$(summary_field "$LOGS/$name-cf-$i.out" 's["digest"]')" ]] ||
      die "$name: the cache-from build's digest differs from the full build's"
  done
  local last="$LOGS/$name-cf-$RUNS.out"
  # shellcheck disable=SC2086
  {
    printf -v "${name}_FULL" '%s' "$(median ${full[*]})"
    printf -v "${name}_FULL_CPU" '%s' "$(median ${full_cpu[*]})"
    printf -v "${name}_CACHED" '%s' "$(median ${cached[*]})"
    printf -v "${name}_CACHED_CPU" '%s' "$(median ${cached_cpu[*]})"
    printf -v "${name}_NOOP" '%s' "$(median ${noop[*]})"
    printf -v "${name}_NOOP_CPU" '%s' "$(median ${noop_cpu[*]})"
  }
  printf -v "${name}_RUNS_TABLE" '%s' "$runs_table"
  printf -v "${name}_TAKEN" '%s' "$(summary_field "$last" \
    'sum(l["layer_source"] == "cache-from" for p in s["packs"] for l in [p, p["virtualenv"]])')"
  printf -v "${name}_UPLOADED" '%s' "$(summary_field "$last" 's["pushed"][0]["uploaded"]')"
  printf -v "${name}_FULL_UPLOADED" '%s' \
    "$(summary_field "$LOGS/$name-full-$RUNS.out" 's["pushed"][0]["uploaded"]')"
}

measure() {
  BASE="$REG/bench/busybox:1"

  "$ST2PACK_BIN" base-image --cache-dir "$SCRATCH/base-cache" --tag "$BASE" --push \
    >"$LOGS/base.log" 2>&1 || die "st2pack base-image failed (log: $LOGS/base.log)"
  say "previous image: all five packs at their first commit"
  build "$SCRATCH/cache" "$LOGS/prev" --tag "$REG/bench/packs:prev"
  PREVIOUS=$(cat "$LOGS/prev.out")

  # A commit to the pack's own files (its version, in pack.yaml), not to its requirements.
  sed -i 's/^version: .*/version: 1.0.1/' "$SRC/$CHANGED_PACK/pack.yaml"
  commit_fixed "$SRC/$CHANGED_PACK" -am "$CHANGED_PACK 1.0.1"
  say "changed: $CHANGED_PACK's code (new commit)"
  run_scenario code bench/packs:prev

  # Then a commit to its requirements (one more line, a package another pack uses, in the
  # wheelhouse): its virtualenv is built again whatever the cache.
  printf 'PyYAML==6.0.2\n' >>"$SRC/$CHANGED_PACK/requirements.txt"
  commit_fixed "$SRC/$CHANGED_PACK" -am "$CHANGED_PACK requirements"
  say "changed: $CHANGED_PACK's requirements (new commit)"
  run_scenario requirements "bench/code-full-$RUNS:cur"
}

render() {
  local commit code_pct code_cpu_pct req_pct req_cpu_pct met
  code_pct=$(pct "$code_CACHED" "$code_FULL")
  code_cpu_pct=$(pct "$code_CACHED_CPU" "$code_FULL_CPU")
  req_pct=$(pct "$requirements_CACHED" "$requirements_FULL")
  req_cpu_pct=$(pct "$requirements_CACHED_CPU" "$requirements_FULL_CPU")
  met=$(awk -v p="$code_pct" -v t="$TARGET_PCT" 'BEGIN { print (p <= t) ? "yes" : "no" }')
  if commit=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null); then
    [[ -z $(git -C "$REPO_ROOT" status --porcelain 2>/dev/null) ]] || commit+=" + uncommitted changes"
  fi
  cat <<EOF
$MARK_START
## Registry as the cache: \`--cache-from\` (written by \`bash bench/cache-from.sh\`)

**What is measured.** Five packs (bench_a..bench_e: the hello_st2 fixture with real PyPI
requirements, from one local wheelhouse, each a git repository) on a busybox base. The previous
image of all five is in a local docker-registry; then $CHANGED_PACK gets a new commit: first to
its code (its version in pack.yaml), then, against the image of that, to its requirements (one
more line). For each change, on an empty cache directory each time (a CI runner that starts
empty), in the same run: a full build, and a build with \`--cache-from\` the previous image, each
pushing to a copy of the previous image's repository. Median of $RUNS runs, alternating which goes
first. Each pair gave the same image digest (checked). After the code change the cache-from build
took $code_TAKEN of the 10 pack layers (each pack has two: its virtualenv's and its own) from the
previous image and uploaded $code_UPLOADED blobs (the changed pack's own layer and the config; the
full build: $code_FULL_UPLOADED); after the requirements change it took $requirements_TAKEN and
uploaded $requirements_UPLOADED. CPU is user + sys of st2pack and every program it ran (uv,
Python), less sensitive than wall time to the other load on the machine.

| build (5 packs, 1 changed, empty cache dir) | wall (s) | CPU (s) |
|---|---:|---:|
| **one pack's code changed:** full build | $code_FULL | $code_FULL_CPU |
| \`--cache-from\` the previous image | $code_CACHED | $code_CACHED_CPU |
| **cache-from / full** | **${code_pct} %** (target ≤ ${TARGET_PCT} %: $met) | ${code_cpu_pct} % |
| **one pack's requirements changed:** full build | $requirements_FULL | $requirements_FULL_CPU |
| \`--cache-from\` the previous image | $requirements_CACHED | $requirements_CACHED_CPU |
| **cache-from / full** | **${req_pct} %** | ${req_cpu_pct} % |
| for context: \`--cache-from\` with nothing changed (every layer taken) | $code_NOOP | $code_NOOP_CPU |

Runs after the code change:

$code_RUNS_TABLE

Runs after the requirements change:

$requirements_RUNS_TABLE

Registry requests of the last cache-from build after the code change (from the registry's access
log; a blob \`GET\` of \`bench/busybox\` is the base's config):

| request (repository) -> status | count |
|---|---:|
$code_REQUESTS

* date: $(date -u '+%Y-%m-%d %H:%M UTC'); st2pack commit: ${commit:-unknown}
* machine: $(nproc) CPUs, $(uname -sr), load average after: $(cut -d' ' -f1-3 /proc/loadavg)
* Python $PYTHON_VERSION, $UV_VERSION; previous image $PREVIOUS
$MARK_END
EOF
}

main() {
  check_tools
  setup_workdir
  isolate_environment SOURCE_DATE_EPOCH
  resolve_tools
  make_packs
  build_wheelhouse
  start_registry
  REG=$REGISTRY
  measure
  local section="$WORK/section.md"
  render >"$section"
  cat "$section"
  if [[ ${BENCH_WRITE:-1} != 0 ]]; then write_results "$section"; fi
}

main "$@"
