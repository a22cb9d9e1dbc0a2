#!/usr/bin/env bash
# The GPU check: from a fresh checkout on a GPU machine with no internet, install the wheels
# carried beside it, run the GPU tests, train the `gpu` budget's three stages on the embedded
# default model in bf16 (every step, no time cut), evaluate the base and the final model on the
# budget's held-out episodes with the transformers engine, and print one table: seconds, steps,
# tokens/s, MFU and peak memory per phase, task completion before and after.
#
#   make gpu-carry                    # here (pip reaches a registry): .carry/1, .carry/2, ...
#   bash scripts/gpu_check.sh         # there; GPU_CHECK_SMOKE=1 runs the same on CPU, tiny
#
# The device tool moves at most 64 MiB a call, the working tree included, and the wheels are
# ~98 MiB: each bundle travels in a call of its own, back to back (a warm machine keeps /tmp):
#   run(carry=[".carry/1"], command="GPU_CHECK_STEP=stash bash scripts/gpu_check.sh")
#   run(carry=[".carry/2"], timeout_s=600, command="GPU_CHECK_OUT=/tmp/gc GPU_CHECK_DEADLINE_S=570
#       bash scripts/gpu_check.sh; rc=$?; cp /tmp/gc/table.txt /tmp/gc/summary.json $OUT/; exit $rc")
# The first call gathers its wheels and pieces in GPU_CHECK_STASH; the last, within the first's
# warm window, adds its own, joins the pieces (checked against their sha256), installs and runs
# the check. Stopped by its deadline or a signal, the check prints the table of what finished.
#
# Environment:
#   GPU_CHECK_SMOKE=1   CPU, configs/demo/quick.yaml (tiny-random), the current venv: nothing is
#                       installed, but carried pieces are still joined and verified
#   GPU_CHECK_STEP      stash | install | all (default): stop after gathering / installing
#   GPU_CHECK_OUT       output folder (data, runs, reports, logs, table.txt); default: a temp dir
#   GPU_CHECK_CARRY     the bundles (.carry)
#   GPU_CHECK_STASH     where they are gathered (/tmp/toolsft-carry; smoke: <out>/carry)
#   GPU_CHECK_SITE      where the wheels are installed (/tmp/toolsft-site)
#   GPU_CHECK_BUDGET    budget file (configs/demo/gpu.yaml; smoke: configs/demo/quick.yaml)
#   GPU_CHECK_SUITE     suite folder (tool_schemas/commerce)
#   GPU_CHECK_TEST_S    cap on the test phase, seconds (60; smoke: 20)
#   GPU_CHECK_TESTS     pytest arguments instead of the default selection
#   GPU_CHECK_DEADLINE_S  stop the check this many seconds in (as on a signal); default: none
#   PYTHON              interpreter (python3; smoke: .venv/bin/python if there)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pins.sh
REPO="$(pwd)"
SMOKE="${GPU_CHECK_SMOKE:-0}"
STEP="${GPU_CHECK_STEP:-all}"
CARRY="${GPU_CHECK_CARRY:-$REPO/.carry}"
PINS="$REPO/scripts/gpu_carry.txt"
HELPER="$REPO/scripts/gpu_check_table.py"
SUITE="${GPU_CHECK_SUITE:-tool_schemas/commerce}"

say() { echo "[$(date +%H:%M:%S)] $*"; }
die() {
  echo "gpu_check: $*" >&2
  exit 1
}

case "$STEP" in
stash | install | all) ;;
*) die "GPU_CHECK_STEP must be stash, install or all (not '$STEP')" ;;
esac
if [ "$SMOKE" = 1 ]; then
  PY="${PYTHON:-}"
  [ -n "$PY" ] || { [ -x .venv/bin/python ] && PY="$REPO/.venv/bin/python"; } || PY=python3
  BUDGET="${GPU_CHECK_BUDGET:-configs/demo/quick.yaml}"
  TEST_S="${GPU_CHECK_TEST_S:-20}"
  MIN_EPISODES=1
  TARGET_S=300
else
  PY="${PYTHON:-python3}"
  BUDGET="${GPU_CHECK_BUDGET:-configs/demo/gpu.yaml}"
  TEST_S="${GPU_CHECK_TEST_S:-60}"
  MIN_EPISODES=300
  TARGET_S=540
fi
if [ "$STEP" = stash ] && [ -z "${GPU_CHECK_OUT:-}" ]; then
  OUT_DIR=""
else
  OUT_DIR="${GPU_CHECK_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/toolsft-gpu-check.XXXXXX")}"
  OUT_DIR="$(mkdir -p "$OUT_DIR" && cd "$OUT_DIR" && pwd)"
  mkdir -p "$OUT_DIR/logs"
  : >"$OUT_DIR/phases.tsv"
fi
if [ "$SMOKE" = 1 ] && [ -n "$OUT_DIR" ]; then
  STASH="${GPU_CHECK_STASH:-$OUT_DIR/carry}"
else
  STASH="${GPU_CHECK_STASH:-/tmp/toolsft-carry}"
fi
SITE="${GPU_CHECK_SITE:-/tmp/toolsft-site}"

# --- the carried wheels ----------------------------------------------------------------------

# Gather every bundle's wheels and pieces in STASH: bundles arrive in separate calls.
stash() {
  mkdir -p "$STASH/wheels" "$STASH/pieces"
  [ -d "$CARRY" ] || return 0
  find "$CARRY" -type f -name '*.whl' -exec cp -f {} "$STASH/wheels/" \;
  find "$CARRY" -type f \( -name '*.part-*' -o -name '*.sha256' \) -exec cp -f {} "$STASH/pieces/" \;
}

# Join each split file from its pieces; a piece missing or damaged is one line, and exit 1.
join_pieces() {
  local sum name parts want got
  shopt -s nullglob
  for sum in "$STASH"/pieces/*.sha256; do
    name="$(basename "$sum" .sha256)"
    parts=("$STASH/pieces/$name".part-*)
    cat "${parts[@]}" /dev/null >"$STASH/wheels/$name.joining"
    want="$(cut -d' ' -f1 <"$sum")"
    got="$(sha256sum <"$STASH/wheels/$name.joining" | cut -d' ' -f1)"
    if [ "$want" != "$got" ]; then
      rm -f "$STASH/wheels/$name.joining"
      die "the ${#parts[@]} pieces of $name in $STASH/pieces do not match its sha256: carry" \
        "every bundle under .carry (GPU_CHECK_STEP=stash for all but the last)"
    fi
    mv -f "$STASH/wheels/$name.joining" "$STASH/wheels/$name"
    say "joined $name from ${#parts[@]} pieces (sha256 checked)"
  done
  shopt -u nullglob
}

# WHEELS: the stashed wheel of every pin; MISSING: the pins without one.
find_pins() {
  local line name version
  WHEELS=()
  MISSING=()
  shopt -s nocaseglob nullglob
  while read -r name version line; do
    local found=("$STASH/wheels/${name//[-.]/_}-$version-"*.whl)
    if [ ${#found[@]} -eq 1 ]; then WHEELS+=("${found[0]}"); else MISSING+=("$line"); fi
  done < <(pins "$PINS")
  shopt -u nocaseglob nullglob
}

# --- phases ----------------------------------------------------------------------------------

N=0
FAILED=0
CUR_PHASE=""
PHASE_T0=""
CHILD=""
# note TEXT: what the running phase reports beside its time (it runs in a subshell)
note() { echo "$*" >"$OUT_DIR/logs/.note"; }

# phase [--keep-going] NAME CMD...: run CMD with its output in <out>/logs, timed, recorded in
# phases.tsv. A failure prints the log's end and stops the check (exit 1); with --keep-going
# (a phase nothing later needs) the check goes on and exits 1 at the end. CMD runs in the
# background so that a signal is handled at once, not when CMD ends.
phase() {
  local keep=0 name log t0 t1 rc=0 secs NOTE
  if [ "$1" = --keep-going ]; then
    keep=1
    shift
  fi
  name="$1"
  shift
  N=$((N + 1))
  log="$OUT_DIR/logs/$(printf %02d "$N")-${name// /-}.log"
  CUR_LOG="$log"
  CUR_PHASE="$name"
  rm -f "$OUT_DIR/logs/.note"
  say ">> $name"
  t0=$(date +%s.%N)
  PHASE_T0="$t0"
  "$@" >"$log" 2>&1 </dev/null &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=""
  CUR_PHASE=""
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  NOTE="$(cat "$OUT_DIR/logs/.note" 2>/dev/null || true)"
  if [ "$rc" -ne 0 ]; then
    printf '%s\t%s\tfailed\t%s\n' "$name" "$secs" "exit $rc${NOTE:+; $NOTE}" >>"$OUT_DIR/phases.tsv"
    tail -n 30 "$log" >&2 || true
    [ "$keep" = 1 ] || die "phase '$name' failed (exit $rc) after $secs s; log: $log"
    echo "gpu_check: phase '$name' failed (exit $rc) after $secs s; log: $log" >&2
    FAILED=1
    return 0
  fi
  printf '%s\t%s\tok\t%s\n' "$name" "$secs" "$NOTE" >>"$OUT_DIR/phases.tsv"
  say "   $name: $secs s${NOTE:+ ($NOTE)}"
}

install_wheels() {
  if [ "$SMOKE" = 1 ]; then
    note "smoke: ${#WHEELS[@]} of $((${#WHEELS[@]} + ${#MISSING[@]})) pinned wheels carried," \
      "none installed (the current venv runs)"
    return 0
  fi
  rm -rf "$SITE"
  "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile \
    --no-cache-dir --target "$SITE" "${WHEELS[@]}"
  note "${#WHEELS[@]} wheels into $SITE"
}

check_versions() {
  # the carried pins must be what imports, first on the path; what they lack is reported
  local rc=0 report
  report="$("$PY" "$HELPER" reqs "$PINS")" || rc=$?
  echo "$report"
  note "$(grep -c -v '^versions:' <<<"$report" || true) problems;" \
    "$(grep '^versions:' <<<"$report")"
  [ "$SMOKE" = 1 ] || return "$rc"
}

pytest_summary() {
  local line
  line="$(grep -E '([0-9]+ (passed|failed|errors?|skipped))|no tests ran' "$CUR_LOG" |
    tail -n 1 | sed -E 's/^=+ //; s/ =+$//')"
  echo "${line:-no summary line, see $CUR_LOG}"
}

run_tests() {
  local rc=0 what args=()
  if [ -n "${GPU_CHECK_TESTS:-}" ]; then
    read -ra args <<<"$GPU_CHECK_TESTS"
    what="pytest $GPU_CHECK_TESTS"
  elif grep -rqs "pytest.mark.gpu" tests; then
    args=(-m gpu)
    what="tests marked gpu"
  else
    args=(-x)
    what="no test is marked gpu: the default tier"
  fi
  # SIGINT lets pytest print its summary of what ran before the cap
  timeout -s INT -k 30 "$TEST_S" "$PY" -m pytest -q -p no:cacheprovider \
    --basetemp "$OUT_DIR/pytest" "${args[@]}" || rc=$?
  if [ "$rc" -eq 124 ]; then
    note "$what, stopped at the ${TEST_S} s cap: $(pytest_summary)"
    return 0
  fi
  note "$what: $(pytest_summary)"
  return "$rc"
}

toolsft() { "$PY" -m toolsft.cli "$@"; }

table() {
  "$PY" "$HELPER" table "$OUT_DIR" --budget "$BUDGET" --target-s "$TARGET_S" \
    --min-episodes "$MIN_EPISODES" $([ "$SMOKE" = 1 ] || echo --bf16)
}

# descendants PID: the process ids below PID (none where pgrep is missing)
descendants() {
  local child
  command -v pgrep >/dev/null || return 0
  for child in $(pgrep -P "$1" || true); do
    echo "$child"
    descendants "$child"
  done
}

# A signal (GPU_CHECK_DEADLINE_S, or a `timeout` around the check) ends the phase in progress;
# the table shows what finished.
on_signal() {
  trap - INT TERM
  if [ -n "$CHILD" ]; then
    # the phase's whole tree: its subshell, the command, and what that started
    kill -TERM $(descendants "$CHILD") "$CHILD" 2>/dev/null || true
    wait "$CHILD" 2>/dev/null || true
  fi
  if [ -n "$CUR_PHASE" ] && [ -n "$OUT_DIR" ]; then
    printf '%s\t%s\tstopped\tstopped by a signal\n' "$CUR_PHASE" \
      "$(awk -v a="$PHASE_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" \
      >>"$OUT_DIR/phases.tsv"
    table || true
  fi
  die "stopped by a signal${CUR_PHASE:+ during '$CUR_PHASE'}"
}
trap on_signal INT TERM
WATCHDOG=""
if [ -n "${GPU_CHECK_DEADLINE_S:-}" ]; then
  (
    trap 'kill "$s" 2>/dev/null; exit 0' TERM
    sleep "$GPU_CHECK_DEADLINE_S" &
    s=$!
    wait "$s" && kill -TERM $$
  ) &
  WATCHDOG=$!
  trap '[ -z "$WATCHDOG" ] || kill "$WATCHDOG" 2>/dev/null || true' EXIT
fi

# --- the check -------------------------------------------------------------------------------

T0=$(date +%s)
say "gpu_check: $([ "$SMOKE" = 1 ] && echo "smoke run on CPU" || echo "GPU run"), budget $BUDGET"
stash
if [ "$STEP" = stash ]; then
  say "stashed in $STASH: $(find "$STASH/wheels" -name '*.whl' | wc -l) wheels," \
    "$(find "$STASH/pieces" -name '*.part-*' | wc -l) pieces"
  exit 0
fi
say "output: $OUT_DIR"
join_pieces
find_pins
if [ "$SMOKE" != 1 ] && [ ${#MISSING[@]} -gt 0 ]; then
  die "no wheel for ${MISSING[*]} in $STASH/wheels (build them with make gpu-carry; carry every" \
    "bundle under .carry)"
fi
phase "install" install_wheels
if [ "$SMOKE" = 1 ]; then
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi
phase "versions" check_versions
[ "$STEP" = install ] && exit 0
if [ "$SMOKE" != 1 ]; then
  "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' ||
    die "torch sees no CUDA device here (on a CPU, run GPU_CHECK_SMOKE=1)"
fi
eval "$("$PY" "$HELPER" budget "$BUDGET")" # MODEL EVAL_ROWS SAVE_STEPS EVAL_EXTRA
phase --keep-going "gpu tests" run_tests
phase "prepare model" toolsft prepare-model "$MODEL"
phase "gen" toolsft gen --suite "$SUITE" --config "$BUDGET" --out "$OUT_DIR/data" --seed 0 \
  --overwrite
eval_args=(eval --suite "$SUITE" --data "$OUT_DIR/data" --split test --limit "$EVAL_ROWS"
  --seed 0 --engine hf --model "$MODEL" --quiet $EVAL_EXTRA)
phase "eval base" toolsft "${eval_args[@]}" --name base --out "$OUT_DIR/reports/base"
# One process a stage, as the demo trains: each stage's time and peak memory are its own.
# --save-steps at the stages' step count: no checkpoint or evaluation before the last step, and
# without early stopping every stage runs all of its steps.
for stage in 1 2 3; do
  phase "train stage $stage" toolsft train --stage "$stage" --config "$BUDGET" \
    --data "$OUT_DIR/data" --out "$OUT_DIR/runs" --model "$MODEL" --seed 0 --overwrite \
    --save-steps "$SAVE_STEPS" --early-stopping-patience 0
done
phase "eval final" toolsft "${eval_args[@]}" --adapter "$OUT_DIR/runs/stage3" --name final \
  --out "$OUT_DIR/reports/final"
say "gpu_check: $(($(date +%s) - T0)) s in all"
table || FAILED=1
exit "$FAILED"
