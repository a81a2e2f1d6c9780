# shellcheck shell=bash
# bench/lib.sh: what the benchmark scripts in bench/ share, sourced by each of them:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Only functions (and no options, no work done on sourcing). Some read globals the sourcing script
# sets: REPO_ROOT, WORK, LOGS, RESULTS_FILE, MARK_START / MARK_END, and for the packs PACKS,
# REQUIREMENTS, TAG, SRC and TEMPLATE_PACK; each says which below.

# ---------------------------------------------------------------------------------------------
# Messages and time
# ---------------------------------------------------------------------------------------------

# Progress on stderr, so that stdout carries only the markdown a script prints.
say() { printf '[bench] %s\n' "$*" >&2; }
die() {
  printf '[bench] error: %s\n' "$*" >&2
  exit 1
}
# Wall-clock time in seconds with nanoseconds, and the seconds between two of them (3 decimals).
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------

# require_tools HINT TOOL...: stops, naming every missing tool at once and how to install them
# (HINT), before any work is done.
require_tools() {
  local hint=$1 missing=() tool
  shift
  for tool; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) || die "missing: ${missing[*]} ($hint)"
}

# make_workdir PREFIX: WORK is BENCH_DIR (kept afterwards, so downloads and trees in it are reused)
# or a new temp dir named PREFIX.XXXXXX; REMOVE_WORK says whether leave_workdir removes it.
make_workdir() {
  if [[ -n ${BENCH_DIR:-} ]]; then
    WORK=$(mkdir -p "$BENCH_DIR" && cd "$BENCH_DIR" && pwd)
    REMOVE_WORK=0
  else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    REMOVE_WORK=1
  fi
}

# leave_workdir STATUS (the exit status, from an EXIT trap): a temp work dir is removed after a
# successful run, and kept after a failure for the logs in it.
leave_workdir() {
  if (($1 == 0 && REMOVE_WORK)); then
    rm -rf "$WORK"
  elif (($1 != 0)); then
    say "work directory kept for inspection: $WORK"
  fi
}

# isolate_environment [VAR...]: keeps this machine's pip/uv settings out of the measurement. Config
# files are ignored and the variables that add package sources or move caches are unset, with the
# further variables VAR... a script's measured commands would also be changed by.
isolate_environment() {
  export PIP_CONFIG_FILE=/dev/null UV_NO_CONFIG=1
  unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL UV_FIND_LINKS UV_INDEX_URL \
    UV_EXTRA_INDEX_URL UV_CACHE_DIR PYTHONPATH PYTHONHOME VIRTUAL_ENV ST2PACK_CACHE_DIR \
    ST2_CONFIG_PATH "$@"
}

# The path an executable really runs from: a pyenv shim is a bash script that costs ~90 ms per
# call, which would be timed.
real_executable() {
  local found
  found=$(command -v "$1") || return 1
  if [[ $found == */shims/* ]] && command -v pyenv >/dev/null; then
    pyenv which "$1"
  else
    printf '%s\n' "$found"
  fi
}

# PYTHON (BENCH_PYTHON, or python3's real path: no shim is timed) and its PYTHON_VERSION.
# shellcheck disable=SC2034 # for the sourcing script
resolve_python() {
  PYTHON=${BENCH_PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}
  [[ -x $PYTHON ]] || die "no interpreter at $PYTHON"
  PYTHON_VERSION=$("$PYTHON" -c 'import platform; print(platform.python_version())')
}

# st2pack_binary NAME: ST2PACK_BIN, the binary to measure: the one given (checked), else NAME
# built from this checkout with `cargo build --release --locked` (its output in
# LOGS/cargo-build.log), found in the target directory cargo metadata names (CARGO_TARGET_DIR
# and .cargo/config are honoured).
st2pack_binary() {
  local name=$1 target_dir
  if [[ -n ${ST2PACK_BIN:-} ]]; then
    [[ -x $ST2PACK_BIN ]] || die "ST2PACK_BIN=$ST2PACK_BIN is not an executable"
    return
  fi
  say "building $name (cargo build --release --locked)"
  (cd "$REPO_ROOT" && cargo build --release --locked --bin "$name") >"$LOGS/cargo-build.log" 2>&1 ||
    {
      tail -n 30 "$LOGS/cargo-build.log" >&2
      die "cargo build failed (log above)"
    }
  target_dir=$(cd "$REPO_ROOT" && cargo metadata --format-version 1 --no-deps --offline |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  ST2PACK_BIN="$target_dir/release/$name"
}

# reset DIR...: each DIR emptied (made if missing), for a measurement that must start from nothing.
reset() { rm -rf "$@" && mkdir -p "$@"; }

# ---------------------------------------------------------------------------------------------
# Packs and wheels
# ---------------------------------------------------------------------------------------------

# commit_fixed DIR ARGS...: `git commit -q ARGS...` in DIR with fixed dates and author, so that
# every run makes the same commit ids.
commit_fixed() {
  local dir=$1
  shift
  GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z' \
    git -C "$dir" -c user.name=bench -c user.email=bench@example.invalid -c commit.gpgsign=false \
    commit -q "$@"
}

# The four packs bench/install.sh installs and bench/runtimes.sh builds, in globals: TAG, the tag
# each is installed at; PACKS; what each pack's requirements.txt says (REQUIREMENTS: exact pins,
# the same bits every run; their dependencies are pinned by bench/constraints.txt when the
# wheelhouse is built) and the modules that prove its virtualenv works (IMPORTS).
# shellcheck disable=SC2034 # for the sourcing script
define_tagged_packs() {
  TAG=v1.0.0
  PACKS=(bench_a bench_b bench_c bench_d)
  declare -gA REQUIREMENTS=(
    [bench_a]=$'requests==2.32.3'
    [bench_b]=$'PyYAML==6.0.2\nJinja2==3.1.4'
    [bench_c]=$'python-dateutil==2.9.0.post0\npytz==2024.2'
    [bench_d]=$'jsonschema==4.23.0'
  )
  declare -gA IMPORTS=(
    [bench_a]='requests'
    [bench_b]='yaml, jinja2'
    [bench_c]='dateutil, pytz'
    [bench_d]='jsonschema'
  )
}

# The packs PACKS made from TEMPLATE_PACK under SRC, each with its REQUIREMENTS, as a git
# repository with one commit tagged TAG (see define_tagged_packs).
make_tagged_packs() {
  local pack dir
  for pack in "${PACKS[@]}"; do
    dir="$SRC/$pack"
    rm -rf "$dir"
    cp -r "$TEMPLATE_PACK" "$dir"
    sed -i -e "s/^ref: .*/ref: $pack/" -e "s/^name: .*/name: $pack/" \
      -e "s/^version: .*/version: ${TAG#v}/" \
      -e "s/^description: .*/description: Benchmark pack $pack for bench\/install.sh./" \
      "$dir/pack.yaml"
    printf '%s\n' "${REQUIREMENTS[$pack]}" >"$dir/requirements.txt"
    git -C "$dir" -c init.defaultBranch=main init -q
    git -C "$dir" add -A
    commit_fixed "$dir" -m "$pack $TAG"
    git -C "$dir" tag "$TAG"
  done
  say "packs: ${PACKS[*]} (git repositories under $SRC, tag $TAG)"
}

# download_wheelhouse DIR LOG: every wheel the packs PACKS (under SRC) need for PYTHON, fetched
# from PyPI into DIR once: their requirements with their dependencies (pinned by
# bench/constraints.txt), the base requirement six, and the seeds st2pack installs (pip,
# setuptools<81, wheel). DIR/.complete marks a finished download, for a kept BENCH_DIR to reuse.
download_wheelhouse() {
  local dir=$1 log=$2 pack requirement_args=()
  rm -rf "$dir"
  for pack in "${PACKS[@]}"; do
    requirement_args+=(-r "$SRC/$pack/requirements.txt")
  done
  # The user's own pip configuration (index, proxy) is honoured for this download only.
  env -u PIP_CONFIG_FILE "$PYTHON" -m pip download --quiet --no-cache-dir --only-binary=:all: \
    --dest "$dir" --constraint "$REPO_ROOT/bench/constraints.txt" "${requirement_args[@]}" \
    six pip 'setuptools<81' wheel >"$log" 2>&1 ||
    {
      tail -n 30 "$log" >&2
      die "pip download failed (log above)"
    }
  touch "$dir/.complete"
}

# ---------------------------------------------------------------------------------------------
# A local registry
# ---------------------------------------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A docker-registry on a free port of 127.0.0.1, its storage in WORK/registry: REGISTRY is its
# host:port, REGISTRY_PID its process. Its access log (one line per request, which a script may
# count) goes to REGISTRY_ACCESS_LOG, its own messages to LOGS/registry.log.
start_registry() {
  local dir="$WORK/registry" i
  mkdir -p "$dir/data"
  REGISTRY="127.0.0.1:$(free_port)"
  REGISTRY_ACCESS_LOG="$LOGS/registry-access.log"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $REGISTRY
  secret: st2pack-bench
EOF
  docker-registry serve "$dir/config.yml" >"$REGISTRY_ACCESS_LOG" 2>"$LOGS/registry.log" &
  REGISTRY_PID=$!
  # Bounded wait: 20 s for /v2/ to answer.
  for ((i = 0; i < 200; i++)); do
    if curl -fsS -o /dev/null "http://$REGISTRY/v2/" 2>/dev/null; then
      say "registry at $REGISTRY (pid $REGISTRY_PID)"
      return
    fi
    kill -0 "$REGISTRY_PID" 2>/dev/null || die "docker-registry exited; see $LOGS/registry.log"
    sleep 0.1
  done
  die "docker-registry did not answer on http://$REGISTRY/v2/ within 20 s; see $LOGS/registry.log"
}

# Stops the registry, if one runs; safe to call twice (from the EXIT trap too).
stop_registry() {
  if [[ -n ${REGISTRY_PID:-} ]]; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
    REGISTRY_PID=
  fi
}

# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------

# CPU seconds (user + sys) used so far by the finished children of this shell, in CPU_USED. It
# must run in this shell, not in a $(...) subshell, whose counters start at zero.
children_cpu() {
  times >"$WORK/.times"
  CPU_USED=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); t += p[1] * 60 + p[2] }; print t }' "$WORK/.times")
}

# timed LOG COMMAND...: runs COMMAND with its output in LOG; sets SECONDS_TAKEN (wall time) and
# CPU_TAKEN (user + sys time of every process it ran, which other load on the machine barely
# changes, and which shows how much of a wall-time gain is parallelism). The command runs as a
# background job so that `set -e` still stops it at its first failing step. `sync` first, so that
# the writeback of what the previous phase wrote is not charged to whatever runs next.
# shellcheck disable=SC2034 # for the sourcing script
timed() {
  local log=$1 t0 t1 c0 status=0
  shift
  sync
  children_cpu
  c0=$CPU_USED
  t0=$(now)
  "$@" >"$log" 2>&1 &
  wait $! || status=$?
  t1=$(now)
  children_cpu
  if ((status != 0)); then
    printf '[bench] %s failed (exit %d); the end of %s:\n' "$1" "$status" "$log" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  SECONDS_TAKEN=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  CPU_TAKEN=$(awk -v a="$c0" -v b="$CPU_USED" 'BEGIN { printf "%.2f", b - a }')
}

# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

# The value of run $2 (from 0) in the word list $1 (timings are kept as word lists, one per run).
nth() {
  local -a values
  read -ra values <<<"$1"
  printf '%s' "${values[$2]}"
}

# median VALUE...: the median of the numbers given, with 3 decimals.
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# join_by SEP WORD...: the words joined by SEP.
join_by() {
  local sep=$1 out=$2
  shift 2
  for item; do out+="$sep$item"; done
  printf '%s' "$out"
}

# The checkout's short commit id, with " + uncommitted changes" when `git status --porcelain`
# (with the further options given) lists anything, so that results name what was measured; fails
# where there is no commit yet.
# shellcheck disable=SC2120 # the options are optional
checkout_commit() {
  local commit
  commit=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null) || return 1
  [[ -z $(git -C "$REPO_ROOT" status --porcelain "$@" 2>/dev/null) ]] || commit+=" + uncommitted changes"
  printf '%s' "$commit"
}

# What a binary is, from its --version: the target triple it was built for (else its path).
binary_label() {
  local version
  version=$("$1" --version 2>/dev/null | head -n 1) || true
  if [[ $version =~ ,\ ([^,\)]+)\)$ ]]; then
    printf '%s' "${BASH_REMATCH[1]}"
  else
    printf '%s' "$1"
  fi
}

# write_results SECTION: the markdown file SECTION (which starts with MARK_START and ends with
# MARK_END) replaces the section between those markers in RESULTS_FILE, or is appended to it the
# first time, leaving the rest of the file, such as analysis written by hand, as it is.
write_results() {
  local section=$1 tmp
  tmp=$(mktemp "$RESULTS_FILE.XXXXXX")
  if [[ -f $RESULTS_FILE ]] && grep -qF "$MARK_START" "$RESULTS_FILE"; then
    grep -qF "$MARK_END" "$RESULTS_FILE" || die "$RESULTS_FILE has $MARK_START but no $MARK_END"
    awk -v start="$MARK_START" -v end="$MARK_END" -v file="$section" '
      $0 == start { while ((getline line < file) > 0) print line; skip = 1; next }
      $0 == end { skip = 0; next }
      !skip { print }' "$RESULTS_FILE" >"$tmp"
  elif [[ -f $RESULTS_FILE ]]; then
    {
      cat "$RESULTS_FILE"
      echo
      cat "$section"
    } >"$tmp"
  else
    {
      printf '# Benchmarks\n\n'
      cat "$section"
    } >"$tmp"
  fi
  # mktemp makes the file private; the results are not.
  chmod 644 "$tmp"
  mv "$tmp" "$RESULTS_FILE"
  say "results written to $RESULTS_FILE"
}
