#!/usr/bin/env bash
# bench/gpu-ab.sh - this tree's CUDA engine timed beside another tree's, in
# one run on the GPU machine, so that a kernel change is judged by ratios
# measured side by side rather than against another day's card.
#
#   BASE=DIR bench/gpu-ab.sh
#
# BASE is another checkout of this project (for a commit REV: `git archive
# REV | tar -x -C DIR`), whose bench/gpu-check.sh builds its own gpu_check.
# Both builds time the same random checkpoints, base first then this tree,
# command by command: the attention and GEMM ops of the Qwen2.5-1.5B and -7B
# shapes, and 200-token prompts decoded for LONG_STEPS steps (1.5B at batch
# 64 and 256, 7B at 64).  Before that, this tree's correctness checks run:
# tests/test_engine_cuda (with CMOCKA_DIR), the device sampler and every
# engine fixture against the CPU device.  Ends with a table of each timing's
# base and new milliseconds and their ratio.
# Environment: WORK (scratch), LONG_STEPS (default 2048), AB_QUICK=1 (the
# 1.5B shapes only: about a minute less), AB_ROUNDS (default 1: rounds of
# the timings, base and new in turn each round; the table keeps each
# timing's fastest), PYTHON, CMOCKA_DIR, STEP_LIMIT (seconds a command may
# run, default 200).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASE=${BASE:?BASE=DIR names the tree to compare with}
BASE=$(cd "$BASE" && pwd)
WORK=${WORK:-$(mktemp -d /tmp/gpu-ab.XXXXXX)}
PYTHON=${PYTHON:-python3}
LONG_STEPS=${LONG_STEPS:-2048}
mkdir -p "$WORK"
LOG=$WORK/ab.txt
: >"$LOG"
FAILED=0

say() { printf '%s\n' "$*" | tee -a "$LOG"; }
# Runs one command under the time limit, its output into the log with each
# line prefixed by `tag` ("base " or "new "); a failure is remembered.
run() {
    local tag=$1
    shift
    say "== $tag$*"
    timeout -k 5 "${STEP_LIMIT:-200}" "$@" 2>&1 | sed "s/^/$tag/" | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || { say "FAIL $tag$1 (exit $rc)"; FAILED=1; }
}

# ---- build both, side by side -------------------------------------------------------------
build() { # tree work
    WORK=$2 LOG=$2/build.txt bash "$1/bench/gpu-check.sh" --build-only >/dev/null 2>&1 ||
        { say "FAIL build of $1 (see $2/build.txt)"; tail -20 "$2/build.txt"; return 1; }
}
build "$BASE" "$WORK/base" &
base_pid=$!
build "$ROOT" "$WORK/new" || exit 1
wait "$base_pid" || exit 1
say "built $WORK/base/gpu_check ($BASE) and $WORK/new/gpu_check ($ROOT)"

# ---- this tree's correctness, and the checkpoints ------------------------------------------
run "" env HF_MODELS_ONLY=1 "$PYTHON" "$WORK/new/hf.py" "$WORK" 1 32 64
export SSFTEVAL_SOURCE_ROOT=$ROOT
[ -x "$WORK/new/test_engine_cuda" ] && run "new " "$WORK/new/test_engine_cuda"
run "new " "$WORK/new/gpu_check" sampler
run "new " "$WORK/new/gpu_check" fixtures "$ROOT"/tests/fixtures/engine/*/

# ---- timings, base then new for each command ----------------------------------------------
B15=$WORK/qwen2.5-1.5b-random
B7=$WORK/qwen2.5-7b-random
timed=(
    "ops 1536 8960 12 2 128 28 151936"
    "ops 3584 18944 28 4 128 28 152064"
    "bench $B15 64,256 200 $LONG_STEPS"
    "bench $B7 64 200 $LONG_STEPS"
)
[ "${AB_QUICK:-0}" = 1 ] && timed=("${timed[0]}" "${timed[2]}")
for ((round = 0; round < ${AB_ROUNDS:-1}; round++)); do
    for t in "${timed[@]}"; do
        # shellcheck disable=SC2086 # each entry is a command line
        run "base " "$WORK/base/gpu_check" $t
        # shellcheck disable=SC2086
        run "new " "$WORK/new/gpu_check" $t
    done
done

# ---- the table -----------------------------------------------------------------------------
# A timing's key is its TIME line's shape fields; its value ms_per_step
# (decode), tuned_ms (a GEMM as the engine runs it) or ms (attention), the
# fastest over the rounds.
say ""
say "== base $BASE against new $ROOT (ms; ratio new / base, under 1 is faster)"
awk '
    # an "== base .../gpu_check ops HIDDEN ..." line names the ops that follow
    $1 == "==" { sec = ""; for (i = 2; i < NF; i++) if ($i == "ops") sec = " hidden=" $(i + 1); next }
    $2 != "TIME" || ($1 != "base" && $1 != "new") || / steps=4 / { next }
    $3 !~ /^(op=attention|op=gemm_step|engine=cuda)$/ { next }
    {
        side = $1; key = sec; val = ""
        for (i = 3; i <= NF; i++) {
            split($i, kv, "=")
            if (kv[1] ~ /^(op|rows|ctx|chunk|M|model|batch|prompt|steps)$/) key = key " " $i
            if (kv[1] == "ms_per_step" || kv[1] == "tuned_ms") val = kv[2]
            else if (kv[1] == "ms" && val == "") val = kv[2]
        }
        if (!(key in seen)) { seen[key] = 1; order[++n] = key }
        if (val != "" && (!((side, key) in ms) || val + 0 < ms[side, key] + 0)) ms[side, key] = val
    }
    END {
        printf "%-70s %9s %9s %6s\n", "timing", "base", "new", "ratio"
        for (i = 1; i <= n; i++) {
            k = order[i]; b = ms["base", k]; v = ms["new", k]
            printf "%-70s %9s %9s %6s\n", substr(k, 2), b, v,
                (b > 0 && v > 0) ? sprintf("%.3f", v / b) : "-"
        }
    }' "$LOG" | tee "$LOG.table"
cat "$LOG.table" >>"$LOG"
say "$(grep -c '^new PASS' "$LOG") passed, $(grep -c 'FAIL' "$LOG") failed (passes: the new tree's checks; failures: either tree's)"
[ "$FAILED" -eq 0 ] && ! grep -q FAIL "$LOG"
