#!/usr/bin/env bash
# bench/install.sh: st2pack's st2-pack-install against upstream's install procedure, side by side.
#
#   bash bench/install.sh
#
# Four packs (bench_a..bench_d, copies of fixtures/packs/hello_st2 with real PyPI requirements) are
# turned into git repositories tagged v1.0.0 and installed by both tools in the same run:
#
#   upstream  per pack, sequentially: git clone --branch v1.0.0, rm -rf .git,
#             virtualenv --no-download, pip install six, pip install -U -r requirements.txt
#   st2pack   st2-pack-install file:///…/bench_a=1.0.0 … file:///…/bench_d=1.0.0 (one invocation)
#
# Both install only from one local wheelhouse (downloaded once, pinned by bench/constraints.txt), so
# PyPI's latency is not part of what is measured. Phases, each repeated BENCH_RUNS times (median
# reported, the order of the two tools alternating between runs):
#
#   cold   empty caches (pip cache, virtualenv app-data / st2pack cache, uv cache), empty targets
#   warm   the caches the cold run left, empty targets
#   no-op  the same install again over the warm target: st2pack must report every pack unchanged;
#          upstream has no such check and redoes its procedure (its setup_pack_virtualenv deletes
#          and recreates the virtualenv unless told to update)
#
# The results go to stdout as a markdown table and into BENCHMARKS.md between the
# `<!-- install-bench:start -->` / `<!-- install-bench:end -->` markers.
#
# Environment:
#   ST2PACK_BIN     st2-pack-install binary to measure (default: cargo build --release --locked)
#   ST2PACK_BIN_VS  a second st2-pack-install binary to compare ST2PACK_BIN with, such as the
#                   static dist/st2-pack-install against a glibc build (bench/static-vs-glibc.sh
#                   does that): then upstream's procedure is not run; both binaries are measured
#                   in each run, taking turns going first, and their ratios go between the
#                   `<!-- install-bench-binaries:start -->` / `:end -->` markers
#   BENCH_DIR       work directory, kept afterwards (default: a temp dir, removed on success)
#   BENCH_RUNS      repetitions of each measurement (default: 3)
#   BENCH_PYTHON    interpreter both tools build virtualenvs with (default: python3, resolved to
#                   its real path so that no pyenv shim is timed)
#   BENCH_WRITE=0   print the results but leave BENCHMARKS.md alone
#   BENCH_TRACE=1   afterwards, one more cold and warm st2pack install (not in the table) with -v
#                   output timestamped and, with strace installed, every program st2pack runs (uv,
#                   bytecode compilation) timed by bench/trace_summary.py; printed, and kept with
#                   BENCH_DIR/trace

set -euo pipefail
shopt -s inherit_errexit

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
TEMPLATE_PACK="$REPO_ROOT/fixtures/packs/hello_st2"
RESULTS_FILE="$REPO_ROOT/BENCHMARKS.md"
MARK_START='<!-- install-bench:start -->'
MARK_END='<!-- install-bench:end -->'

RUNS=${BENCH_RUNS:-3}
# TAG, PACKS, REQUIREMENTS and IMPORTS: the four packs (bench/lib.sh).
define_tagged_packs

# Targets from the issue: ratios for cold and warm, an absolute time for the no-op.
TARGET_COLD=2
TARGET_WARM=8
TARGET_NOOP_SECONDS=0.3

# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------

# A temp work dir is removed after a successful run, and kept after a failure for the logs in it.
on_exit() { leave_workdir $?; }

setup_workdir() {
  make_workdir st2pack-bench
  SRC="$WORK/src"             # the packs' git repositories
  WHEELHOUSE="$WORK/wheelhouse"
  LOGS="$WORK/logs"
  mkdir -p "$SRC" "$LOGS"
  trap on_exit EXIT
  say "work directory: $WORK"
}

# Keeps this machine's settings out of the measurement: both tools must see the wheelhouse and
# nothing else, and run in the environment a Dockerfile `RUN` would give them. Beyond what
# lib.sh's isolate_environment unsets, the variables that change what gets installed or compiled.
isolate_install_environment() {
  isolate_environment PIP_NO_INDEX PIP_NO_CACHE_DIR PIP_REQUIRE_VIRTUALENV PIP_NO_COMPILE \
    UV_NO_CACHE UV_COMPILE_BYTECODE PIP_CACHE_DIR VIRTUALENV_OVERRIDE_APP_DATA PYTHONDONTWRITEBYTECODE
  export PIP_DISABLE_PIP_VERSION_CHECK=1
}

resolve_tools() {
  resolve_python
  if [[ -z ${ST2PACK_BIN_VS:-} ]]; then
    "$PYTHON" -m virtualenv --version >/dev/null 2>&1 ||
      die "$PYTHON has no virtualenv module (pip install virtualenv): upstream's procedure needs it"
  fi
  command -v git >/dev/null || die "git is needed for the packs' repositories and upstream's clones"
  local uv
  uv=$(real_executable uv) || die "uv is not on PATH: st2pack would fall back to pip, which is not what this measures"
  # st2pack finds uv on PATH: put the real binary first so it does not run a shim.
  mkdir -p "$WORK/bin"
  ln -sf "$uv" "$WORK/bin/uv"
  export PATH="$WORK/bin:$PATH"

  UV_VERSION=$(uv --version)
  VIRTUALENV_VERSION=$("$PYTHON" -m virtualenv --version 2>/dev/null | awk '{ print $2 }') || true
  say "python $PYTHON_VERSION ($PYTHON), $UV_VERSION, virtualenv $VIRTUALENV_VERSION"
}

build_st2pack() {
  [[ -z ${ST2PACK_BIN:-} ]] || say "measuring $ST2PACK_BIN"
  st2pack_binary st2-pack-install
}

# Every wheel either side may install, fetched from PyPI once: the packs' requirements with their
# dependencies, the base requirement six, and the seeds st2pack installs (pip, setuptools<81,
# wheel). virtualenv --no-download seeds from its own embedded wheels instead.
build_wheelhouse() {
  if [[ -f $WHEELHOUSE/.complete ]]; then
    say "wheelhouse: reusing $WHEELHOUSE"
    return
  fi
  say "wheelhouse: downloading from PyPI (pinned by bench/constraints.txt)"
  download_wheelhouse "$WHEELHOUSE" "$LOGS/wheelhouse.log"
  say "wheelhouse: $(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1)"
}

# ---------------------------------------------------------------------------------------------
# The two tools
# ---------------------------------------------------------------------------------------------

# Upstream's st2-pack-install procedure for every pack, one after the other. Run in the background
# by `timed`, so its exports stay in that subshell.
upstream_install() {
  local root=$1 cache=$2 pack
  export PIP_CACHE_DIR="$cache/pip" VIRTUALENV_OVERRIDE_APP_DATA="$cache/virtualenv"
  mkdir -p "$root/packs" "$root/virtualenvs"
  for pack in "${PACKS[@]}"; do
    # download_pack: clone at the tag, drop .git, replace what was installed.
    rm -rf "$root/packs/$pack"
    git clone -q --branch "$TAG" "file://$SRC/$pack" "$root/packs/$pack"
    rm -rf "$root/packs/$pack/.git"
    # setup_pack_virtualenv (update=False): recreate the venv, base requirement, pack requirements.
    rm -rf "$root/virtualenvs/$pack"
    "$PYTHON" -m virtualenv --no-download -p "$PYTHON" "$root/virtualenvs/$pack"
    "$root/virtualenvs/$pack/bin/pip" install --no-index --find-links "$WHEELHOUSE" six
    "$root/virtualenvs/$pack/bin/pip" install --no-index --find-links "$WHEELHOUSE" \
      -U -r "$root/packs/$pack/requirements.txt"
  done
}

# One st2pack invocation for the four packs, as a user would type it. The JSON summary goes to $3,
# further arguments go to st2pack. ST2PACK_WRAPPER (empty when measuring) is a tracer to run it under.
ST2PACK_WRAPPER=()
st2pack_install() {
  local root=$1 cache=$2 json=$3 pack specs=()
  shift 3
  for pack in "${PACKS[@]}"; do
    specs+=("file://$SRC/$pack=${TAG#v}")
  done
  UV_CACHE_DIR="$cache/uv" "${ST2PACK_WRAPPER[@]}" "$ST2PACK_BIN" --packs-dir "$root/packs" \
    --virtualenvs-dir "$root/virtualenvs" --cache-dir "$cache/st2pack" --python "$PYTHON" \
    --wheelhouse "$WHEELHOUSE" --json "$@" "${specs[@]}" >"$json"
}

# ---------------------------------------------------------------------------------------------
# Checks: a fast tool that builds broken virtualenvs would make the comparison meaningless
# ---------------------------------------------------------------------------------------------

# Every pack placed without .git and every virtualenv importing six and the pack's requirements.
verify_install() {
  local side=$1 root=$2 pack
  for pack in "${PACKS[@]}"; do
    grep -qx "ref: $pack" "$root/packs/$pack/pack.yaml" 2>/dev/null ||
      die "$side: $root/packs/$pack/pack.yaml is missing or is not $pack's"
    [[ ! -e $root/packs/$pack/.git ]] || die "$side: $root/packs/$pack still has .git"
    # No bytecode written into the target by the check itself.
    PYTHONDONTWRITEBYTECODE=1 "$root/virtualenvs/$pack/bin/python" \
      -c "import six, ${IMPORTS[$pack]}" 2>"$LOGS/verify.log" ||
      {
        cat "$LOGS/verify.log" >&2
        die "$side: the virtualenv of $pack cannot import six, ${IMPORTS[$pack]}"
      }
  done
}

# name==version of what a virtualenv holds, seeds left out (they differ by design: virtualenv
# embeds its own pip/setuptools, st2pack seeds setuptools<81 and wheel from the wheelhouse).
installed_distributions() {
  PYTHONDONTWRITEBYTECODE=1 "$1/bin/python" - <<'PY'
import importlib.metadata as md
seeds = {"pip", "setuptools", "wheel", "packaging"}
names = {
    (d.metadata["Name"].lower().replace("_", "-"), d.version) for d in md.distributions()
}
print(" ".join(sorted(f"{n}=={v}" for n, v in names if n not in seeds)))
PY
}

# Both tools must have installed exactly the same packages, or they did not do the same work.
compare_installs() {
  local up=$1 st=$2 pack a b
  for pack in "${PACKS[@]}"; do
    a=$(installed_distributions "$up/virtualenvs/$pack")
    b=$(installed_distributions "$st/virtualenvs/$pack")
    [[ $a == "$b" ]] || die "$pack: the virtualenvs differ: upstream has [$a], st2pack has [$b]"
  done
}

# The statuses st2pack reported in its JSON summary must all be $2 (installed or unchanged).
# Prints how many virtualenvs came from st2pack's cache.
check_st2pack_report() {
  "$PYTHON" - "$1" "$2" "${#PACKS[@]}" <<'PY'
import json, sys
path, expected, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
packs = json.load(open(path))["packs"]
wrong = [f"{p.get('name', p['spec'])}: {p['status']}" for p in packs if p["status"] != expected]
if len(packs) != count or wrong:
    sys.exit(f"[bench] error: expected {count} packs {expected}, got {len(packs)}: {wrong}")
print(sum(1 for p in packs if p.get("virtualenv_from_cache")))
PY
}

# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------

# Timings by "<phase> <tool>" (phase: cold, warm, noop; tool: upstream, st2pack), one word per run.
declare -A WALL CPU
declare -a ORDER WARM_FROM_CACHE LOADS

record() {
  WALL["$1 $2"]+="$SECONDS_TAKEN "
  CPU["$1 $2"]+="$CPU_TAKEN "
}

# cold, warm and no-op for one tool in run $1.
measure_upstream() {
  local run=$1 root="$WORK/target/upstream" cache="$WORK/cache/upstream"
  reset "$root" "$cache"
  timed "$LOGS/upstream-cold-$run.log" upstream_install "$root" "$cache"
  record cold upstream
  verify_install upstream "$root"

  reset "$root"
  timed "$LOGS/upstream-warm-$run.log" upstream_install "$root" "$cache"
  record warm upstream
  verify_install upstream "$root"

  timed "$LOGS/upstream-noop-$run.log" upstream_install "$root" "$cache"
  record noop upstream
  verify_install upstream "$root"
}

# cold, warm and no-op of st2pack in run $1, recorded under the tool name $2 (default st2pack;
# a and b compare two binaries: b runs $ST2PACK_BIN_VS).
measure_st2pack() {
  local run=$1 tool=${2:-st2pack} json
  local root="$WORK/target/$tool" cache="$WORK/cache/$tool" ST2PACK_BIN=$ST2PACK_BIN
  [[ $tool != b ]] || ST2PACK_BIN=$ST2PACK_BIN_VS
  reset "$root" "$cache"
  json="$LOGS/$tool-cold-$run.json"
  timed "$LOGS/$tool-cold-$run.log" st2pack_install "$root" "$cache" "$json"
  record cold "$tool"
  [[ $(check_st2pack_report "$json" installed) == 0 ]] ||
    die "$tool's cold run took virtualenvs from a cache that should have been empty"
  verify_install "$tool" "$root"

  reset "$root"
  json="$LOGS/$tool-warm-$run.json"
  timed "$LOGS/$tool-warm-$run.log" st2pack_install "$root" "$cache" "$json"
  record warm "$tool"
  WARM_FROM_CACHE+=("$(check_st2pack_report "$json" installed)")
  verify_install "$tool" "$root"

  json="$LOGS/$tool-noop-$run.json"
  timed "$LOGS/$tool-noop-$run.log" st2pack_install "$root" "$cache" "$json"
  record noop "$tool"
  check_st2pack_report "$json" unchanged >/dev/null
  verify_install "$tool" "$root"
}

# The tools alternate going first, so neither always gets the quieter half of a run.
measure_all() {
  local run phase line
  for ((run = 1; run <= RUNS; run++)); do
    # Other work on the machine shows up here: it is recorded beside each run's timings.
    LOADS+=("$(cut -d' ' -f1 /proc/loadavg)")
    if ((run % 2)); then
      ORDER+=("upstream first")
      say "run $run/$RUNS: upstream"
      measure_upstream "$run"
      say "run $run/$RUNS: st2pack"
      measure_st2pack "$run"
    else
      ORDER+=("st2pack first")
      say "run $run/$RUNS: st2pack"
      measure_st2pack "$run"
      say "run $run/$RUNS: upstream"
      measure_upstream "$run"
    fi
    compare_installs "$WORK/target/upstream" "$WORK/target/st2pack"
    line="run $run/$RUNS, seconds upstream / st2pack:"
    for phase in cold warm noop; do
      line+=" $phase $(nth "${WALL[$phase upstream]}" $((run - 1))) / $(nth "${WALL[$phase st2pack]}" $((run - 1))),"
    done
    say "${line%,}"
  done
}

# Optional: where st2pack's time goes, for whoever tunes the engine. Not part of the table: one cold
# and one warm install with -v (each output line stamped with the seconds since the start) and,
# when strace is installed, the programs st2pack ran and their durations (bench/trace_summary.py).
trace_st2pack() {
  local trace="$WORK/trace" phase root cache
  root="$trace/target" cache="$trace/cache"
  reset "$trace" "$cache"
  for phase in cold warm; do
    rm -rf "$root"
    ST2PACK_WRAPPER=()
    if command -v strace >/dev/null; then
      # --seccomp-bpf: only execve stops the process, so the trace barely slows the run.
      ST2PACK_WRAPPER=(strace --seccomp-bpf -f -tt -s 1024 -e trace=execve -o "$trace/$phase.strace")
    fi
    say "trace: st2pack $phase install with -v, logs in $trace/$phase.*"
    sync
    st2pack_install "$root" "$cache" "$trace/$phase.json" -v 2>&1 |
      "$PYTHON" -c '
import sys, time
t0 = time.perf_counter()
for line in sys.stdin:
    print(f"{time.perf_counter() - t0:8.3f}  {line}", end="", flush=True)
' >"$trace/$phase.log"
    if [[ -f $trace/$phase.strace ]]; then
      "$PYTHON" "$REPO_ROOT/bench/trace_summary.py" "$trace/$phase.strace" >"$trace/$phase.summary"
      printf '\n### st2pack %s install, traced\n\n' "$phase"
      cat "$trace/$phase.summary"
    fi
  done
  ST2PACK_WRAPPER=()
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

# Ratios are shown with one decimal but judged unrounded.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
ratio_at_least() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { exit !(a / b >= t) }'; }
below() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
# Fills RESULT_TABLE, CPU_TABLE, RUNS_TABLE and MISSED from the measurements.
summarise() {
  local phase i cu cs wu ws nu ns cold_ok=yes warm_ok=yes noop_ok=yes
  # shellcheck disable=SC2086 # the timings are word lists
  {
    cu=$(median ${WALL[cold upstream]}) cs=$(median ${WALL[cold st2pack]})
    wu=$(median ${WALL[warm upstream]}) ws=$(median ${WALL[warm st2pack]})
    nu=$(median ${WALL[noop upstream]}) ns=$(median ${WALL[noop st2pack]})
  }
  MISSED=()
  ratio_at_least "$cu" "$cs" "$TARGET_COLD" || { cold_ok=no && MISSED+=("cold: $(ratio "$cu" "$cs")x, target ${TARGET_COLD}x"); }
  ratio_at_least "$wu" "$ws" "$TARGET_WARM" || { warm_ok=no && MISSED+=("warm: $(ratio "$wu" "$ws")x, target ${TARGET_WARM}x"); }
  below "$ns" "$TARGET_NOOP_SECONDS" || { noop_ok=no && MISSED+=("no-op: ${ns} s, target under ${TARGET_NOOP_SECONDS} s"); }

  RESULT_TABLE=$(
    cat <<EOF
| phase (4 packs) | upstream (s) | st2pack (s) | upstream / st2pack | target | met? |
|---|---:|---:|---:|---|---|
| cold: empty caches, empty target | $cu | $cs | $(ratio "$cu" "$cs")x | ≥ ${TARGET_COLD}x | $cold_ok |
| warm: caches kept, empty target | $wu | $ws | $(ratio "$wu" "$ws")x | ≥ ${TARGET_WARM}x | $warm_ok |
| no-op: same install again | $nu | $ns | $(ratio "$nu" "$ns")x | st2pack < ${TARGET_NOOP_SECONDS} s | $noop_ok |
EOF
  )

  CPU_TABLE="| phase | upstream CPU (s) | st2pack CPU (s) | upstream / st2pack |"$'\n'"|---|---:|---:|---:|"
  for phase in cold warm noop; do
    # shellcheck disable=SC2086
    cu=$(median ${CPU[$phase upstream]}) cs=$(median ${CPU[$phase st2pack]})
    CPU_TABLE+=$'\n'"| $phase | $cu | $cs | $(ratio "$cu" "$cs")x |"
  done

  RUNS_TABLE="| run | load at start | order | cold upstream | cold st2pack | warm upstream | warm st2pack | warm venvs from st2pack cache | no-op upstream | no-op st2pack |"$'\n'"|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
  for ((i = 0; i < RUNS; i++)); do
    RUNS_TABLE+=$'\n'"| $((i + 1)) | ${LOADS[i]} | ${ORDER[i]} |"
    for phase in cold warm; do
      RUNS_TABLE+=" $(nth "${WALL[$phase upstream]}" $i) | $(nth "${WALL[$phase st2pack]}" $i) |"
    done
    RUNS_TABLE+=" ${WARM_FROM_CACHE[i]}/${#PACKS[@]} | $(nth "${WALL[noop upstream]}" $i) | $(nth "${WALL[noop st2pack]}" $i) |"
  done
}

machine_facts() {
  local commit cpu
  commit=$(checkout_commit) || commit="none yet (working tree, no commit)"
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
  cat <<EOF
* date: $(date -u '+%Y-%m-%d %H:%M UTC'); st2pack commit: $commit
* machine: $(nproc) CPUs${cpu:+ ($cpu)}, $(uname -sr), load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)
* Python $PYTHON_VERSION, $UV_VERSION, virtualenv $VIRTUALENV_VERSION, git $(git --version | awk '{ print $3 }')
* wheelhouse: $(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels pinned by \`bench/constraints.txt\`; packs: ${PACKS[*]} requiring $(for p in "${PACKS[@]}"; do printf '%s; ' "${REQUIREMENTS[$p]//$'\n'/, }"; done | sed 's/; $//')
EOF
}

render_section() {
  cat <<EOF
$MARK_START
## Pack install: st2pack vs upstream \`st2-pack-install\`

Written by \`bash bench/install.sh\`, which replaces everything between the two markers on each run.

**What is measured.** Four fixture packs (copies of \`fixtures/packs/hello_st2\` named bench_a to
bench_d, each a git repository tagged \`$TAG\` with a pinned \`requirements.txt\` of real PyPI
packages) are installed by both tools in the same run. *Upstream* is StackStorm's procedure, per
pack and one after the other: \`git clone --branch $TAG\` and removal of \`.git\`,
\`virtualenv --no-download\`, \`pip install six\`, \`pip install -U -r requirements.txt\`.
*st2pack* is one \`st2-pack-install file:///…/bench_a=1.0.0 … bench_d=1.0.0\` invocation. Both
install only from the same local wheelhouse (\`--no-index --find-links\` / \`--wheelhouse\`),
downloaded once, so PyPI's latency is left out; both use the same interpreter by its real path; and
both sides' virtualenvs are checked after every measurement (each imports six and its pack's
requirements, and both sides hold the same package versions). *Cold*: empty caches (pip cache and
virtualenv app-data for upstream, \`--cache-dir\` and \`UV_CACHE_DIR\` for st2pack) and empty
targets. *Warm*: the caches the cold run left, empty targets. *No-op*: the same install over the
warm target; st2pack must report every pack \`unchanged\`, upstream redoes its whole procedure
(its \`setup_pack_virtualenv\` recreates the virtualenv unless asked to update). Each figure is
the median of $RUNS runs (each cold run with new empty caches, the tools alternating which goes
first); each timed phase starts after a \`sync\`, and the OS page cache is not dropped. The
machine may be shared: the load average at the start of each run is shown with its timings.
Re-run with \`bash bench/install.sh\` (\`BENCH_RUNS\`, \`ST2PACK_BIN\`, \`BENCH_DIR\` and \`BENCH_TRACE=1\`
are described at the top of the script).

$RESULT_TABLE

$(if ((${#MISSED[@]})); then
    printf '**Targets missed:** %s.\n' "$(join_by '; ' "${MISSED[@]}")"
  else
    printf '**All targets met.**\n'
  fi)

CPU time (user + sys of every process the tool ran; median). Other load on the machine barely
changes it, and it shows how much of st2pack's wall-time gain comes only from running in parallel:

$CPU_TABLE

Each run, wall seconds:

$RUNS_TABLE

$(machine_facts)
$MARK_END
EOF
}

# ---------------------------------------------------------------------------------------------
# Two st2-pack-install binaries side by side (ST2PACK_BIN_VS)
# ---------------------------------------------------------------------------------------------

# Binary A (ST2PACK_BIN) and B (ST2PACK_BIN_VS) take turns going first; each is measured with the
# st2pack procedure above (cold, warm, no-op), under the tool names a and b.
measure_binaries() {
  local run line phase first second
  for ((run = 1; run <= RUNS; run++)); do
    LOADS+=("$(cut -d' ' -f1 /proc/loadavg)")
    if ((run % 2)); then first=a second=b; else first=b second=a; fi
    ORDER+=("${first^^} first")
    for side in "$first" "$second"; do
      say "run $run/$RUNS: ${side^^}"
      measure_st2pack "$run" "$side"
    done
    compare_installs "$WORK/target/a" "$WORK/target/b"
    line="run $run/$RUNS, seconds A / B:"
    for phase in cold warm noop; do
      line+=" $phase $(nth "${WALL[$phase a]}" $((run - 1))) / $(nth "${WALL[$phase b]}" $((run - 1))),"
    done
    say "${line%,}"
  done
}

render_binaries_section() {
  local phase name i a b
  cat <<EOF
<!-- install-bench-binaries:start -->
## Pack install: two st2-pack-install binaries side by side

Written by \`ST2PACK_BIN=A ST2PACK_BIN_VS=B bash bench/install.sh\` (\`bash
bench/static-vs-glibc.sh\` runs it with a glibc build as A and the static build as B), which
replaces everything between the two markers on each run.

**What is measured.** The install benchmark's four packs (bench_a to bench_d, from one local
wheelhouse), installed by each binary in the same run, the two taking turns going first: *cold*
(empty caches and target), *warm* (caches kept, empty target) and *no-op* (the same install
again). Both binaries drive the same \`uv\` and interpreter, so the difference is in st2pack's
own work (git, hashing, copying, bytecode bookkeeping). Each figure is the median of $RUNS
runs; each timed phase starts after a \`sync\`. CPU time (user + sys of every process run) is
less sensitive to other load on the machine than wall time.

* A: \`$(binary_label "$ST2PACK_BIN")\`: $("$ST2PACK_BIN" --version)
* B: \`$(binary_label "$ST2PACK_BIN_VS")\`: $("$ST2PACK_BIN_VS" --version)

| phase (4 packs) | A wall (s) | B wall (s) | B / A | A CPU (s) | B CPU (s) | B / A |
|---|---:|---:|---:|---:|---:|---:|
EOF
  for phase in cold warm noop; do
    case $phase in
      cold) name="cold: empty caches, empty target" ;;
      warm) name="warm: caches kept, empty target" ;;
      noop) name="no-op: same install again" ;;
    esac
    # shellcheck disable=SC2086 # the timings are word lists
    {
      a=$(median ${WALL[$phase a]}) b=$(median ${WALL[$phase b]})
      printf '| %s | %s | %s | %sx' "$name" "$a" "$b" "$(awk -v a="$b" -v b="$a" 'BEGIN { printf "%.2f", a / b }')"
      a=$(median ${CPU[$phase a]}) b=$(median ${CPU[$phase b]})
      printf ' | %s | %s | %sx |\n' "$a" "$b" "$(awk -v a="$b" -v b="$a" 'BEGIN { printf "%.2f", a / b }')"
    }
  done
  printf '\nEach run, wall seconds, A / B:\n\n'
  printf '| run | load at start | order | cold | warm | no-op |\n|---|---:|---|---:|---:|---:|\n'
  for ((i = 0; i < RUNS; i++)); do
    printf '| %d | %s | %s |' "$((i + 1))" "${LOADS[i]}" "${ORDER[i]}"
    for phase in cold warm noop; do
      printf ' %s / %s |' "$(nth "${WALL[$phase a]}" "$i")" "$(nth "${WALL[$phase b]}" "$i")"
    done
    printf '\n'
  done
  echo
  machine_facts
  echo '<!-- install-bench-binaries:end -->'
}

main_binaries() {
  [[ -x $ST2PACK_BIN_VS ]] || die "ST2PACK_BIN_VS=$ST2PACK_BIN_VS is not an executable"
  build_st2pack
  say "A: $("$ST2PACK_BIN" --version); B: $("$ST2PACK_BIN_VS" --version)"
  make_tagged_packs
  build_wheelhouse
  measure_binaries
  MARK_START='<!-- install-bench-binaries:start -->'
  MARK_END='<!-- install-bench-binaries:end -->'
  render_binaries_section >"$WORK/section.md"
  echo
  cat "$WORK/section.md"
  if [[ ${BENCH_WRITE:-1} != 0 ]]; then
    write_results "$WORK/section.md"
  fi
}

main() {
  [[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number, not '$RUNS'"
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  setup_workdir
  isolate_install_environment
  resolve_tools
  if [[ -n ${ST2PACK_BIN_VS:-} ]]; then
    main_binaries
    return
  fi
  build_st2pack
  say "st2pack: $("$ST2PACK_BIN" --version)"
  make_tagged_packs
  build_wheelhouse
  measure_all
  summarise
  render_section >"$WORK/section.md"
  echo
  cat "$WORK/section.md"
  if [[ ${BENCH_WRITE:-1} != 0 ]]; then
    write_results "$WORK/section.md"
  fi
  if [[ ${BENCH_TRACE:-0} == 1 ]]; then
    trace_st2pack
  fi
}

main "$@"
