#!/usr/bin/env bash
# bench/gpu-cli.sh - the product's main job on a GPU: `ssfteval run aime25
# --protocol ssft --metric cons@32` through the in-process CUDA engine, as a
# user runs it (data, prompts, tokenizer, scheduler, grading, the SQLite
# store), on a random-weight checkpoint; then a run killed with SIGKILL once
# it has stored samples, and resumed.  gpu_check drives the device directly;
# this is the one place the CLI meets the GPU.  The GPU machine lacks the
# Debian packages the CLI links, so the CLI comes built elsewhere, in the
# bundle bench/gpu-bundle.sh packs.
#
#   bench/gpu-cli.sh MODEL_DIR WORK
#
# MODEL_DIR: a Qwen2.5-shaped checkpoint (gpu-check.sh's random 1.5B); a
# model without tokenizer.json takes the bundle's (Qwen2.5's).
# Environment:
#   CLI_BUNDLE   the bundle (bin/ssfteval, lib/, tokenizer/, data/), or
#   SSFTEVAL, DATA_DIR   a CLI and task data of this machine (a rehearsal on
#                the CPU: DEVICE=cpu, a fixture model, LIMIT=2 MAX_NEW=16)
#   DEVICE       cuda (default) or cpu
#   LIMIT, MAX_NEW   questions of aime25 (default 30: all) and tokens a sample
#                (1024: random weights seldom stop)
#   RESUME_LIMIT, RESUME_MAX_NEW, RESUME_SLOTS   the killed run's shape
#                (default 4, 256, 32: four waves of samples, so that it is
#                killed with some stored and some not)
#   VARIANTS     CUDA only: NAME=FLAGS;... run as the default was and timed
#                beside it (default: the untimed paths together, and fp8 KV)
# Prints PASS/FAIL lines and one TIME cli-run line a run; exits 1 on a
# failure.
set -u
export LC_ALL=C # sort and comm compare the exports byte by byte
MODEL=${1:?usage: gpu-cli.sh MODEL_DIR WORK}
WORK=${2:?usage: gpu-cli.sh MODEL_DIR WORK}
DEVICE=${DEVICE:-cuda}
LIMIT=${LIMIT:-30}
MAX_NEW=${MAX_NEW:-1024}
RESUME_LIMIT=${RESUME_LIMIT:-4}
RESUME_MAX_NEW=${RESUME_MAX_NEW:-256}
RESUME_SLOTS=${RESUME_SLOTS:-32}
VARIANTS=${VARIANTS:-"untimed=--overlap-steps --own-small-gemms tuned --rope-in-attention --fuse-norms;fp8=--kv-cache-dtype fp8"}
TOKENIZER=${TOKENIZER:-}
FAILURES=0
mkdir -p "$WORK"

fail() {
    echo "FAIL cli $*"
    FAILURES=$((FAILURES + 1))
}

# The bundle's libraries that this machine lacks, and only those, go on
# the library path: one the machine has (the same soname, so the same ABI)
# is taken from it, and the bundle's Debian builds never shadow it.  CUDA's
# runtime and cuBLAS come from the toolkit, else from PyTorch's wheels, and
# only then from the bundle (whose libcudart matches the build, not
# necessarily this machine's driver).
# Whether dlopen would find the shared library NAME: on LD_LIBRARY_PATH or
# in the loader's cache.
findable() {
    local d
    for d in ${LD_LIBRARY_PATH//:/ }; do [ -e "$d/$1" ] && return 0; done
    ldconfig -p | grep -q "^[[:space:]]*$1 "
}

unpack_bundle() {
    local dir=$WORK/cli so name
    rm -rf "$dir" && mkdir -p "$dir/fallback" && tar -C "$dir" -xJf "$CLI_BUNDLE" || return 1
    for so in "$dir"/lib/*; do
        name=$(basename "$so")
        ldconfig -p | grep -q "^[[:space:]]*$name " || ln -s "$so" "$dir/fallback/$name"
    done
    local wheels
    wheels=$(python3 -c 'import nvidia.cublas as m; print(m.__path__[0] + "/lib")' 2>/dev/null)
    export LD_LIBRARY_PATH=/usr/local/cuda/lib64${wheels:+:$wheels}:$dir/fallback${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    SSFTEVAL=$dir/bin/ssfteval DATA_DIR=$dir/data TOKENIZER=$dir/tokenizer/tokenizer.json
    local missing
    missing=$(ldd "$SSFTEVAL" | grep 'not found' | tr -s ' \t\n' ' ')
    # cuBLAS is loaded on first use, so ldd does not list it: look for the
    # sonames the binary names, as dlopen will.
    local so
    for so in $(grep -ao 'libcublas\(Lt\)\?\.so\.[0-9]*' "$SSFTEVAL" | sort -u); do
        findable "$so" || missing="$missing $so => not found"
    done
    if [ -n "$missing" ]; then
        fail "setup: $missing"
        return 1
    fi
    echo "PASS cli setup: $(ls "$dir/fallback" | wc -l) of $(ls "$dir/lib" | wc -l)" \
        "libraries from the bundle: $(ls "$dir/fallback" | tr '\n' ' ')"
}

# MODEL, or a directory of links to its files and the bundle's tokenizer.
model_dir() {
    if [ -f "$MODEL/tokenizer.json" ] || [ -z "$TOKENIZER" ]; then
        echo "$MODEL"
        return
    fi
    local d=$WORK/cli-model
    rm -rf "$d" && mkdir -p "$d" && ln -s "$MODEL"/* "$d"/ && ln -s "$TOKENIZER" "$d/tokenizer.json"
    echo "$d"
}

# job DB [FLAGS...]: JOB becomes the main job's command line, into DB.
# The chat template is named: the bundle's tokenizer comes without
# tokenizer_config.json, which would otherwise give it.
job() {
    local db=$1
    shift
    JOB=("$SSFTEVAL" run aime25 --protocol ssft --metric cons@32 --model "$M" --device "$DEVICE"
        --data-dir "$DATA_DIR" --offline --db "$db" --chat-template qwen2.5 --temperature 0.6 --top-p 0.95 "$@")
}

# evaluate NAME DB [FLAGS...]: the main job into DB, its output in
# WORK/cli-NAME.log.
evaluate() {
    local name=$1
    shift
    job "$@"
    "${JOB[@]}" >"$WORK/cli-$name.log" 2>&1
}

# The last lines of a run's log that are not progress: what a failure says.
last_lines() {
    grep -v '^\[' "$WORK/cli-$1.log" | tail -3 | tr '\n' ' '
}

# The closing counts of a run's log: planned, stored before, generated, failed.
counts_of() {
    sed -n 's/.*: \([0-9]*\) samples planned, \([0-9]*\) stored before, \([0-9]*\) generated, \([0-9]*\) failed.*/\1 \2 \3 \4/p' \
        "$WORK/cli-$1.log" | tail -1
}

# The run in DB stored WANT samples, each ended by its budget or eos; its
# export stays in WORK/cli-NAME.jsonl.
check_stored() {
    local name=$1 db=$2 want=$3 n odd out=$WORK/cli-$1.jsonl
    "$SSFTEVAL" export 1 --db "$db" --out "$out"
    n=$(wc -l <"$out")
    odd=$(grep -vc '"finish_reason":"\(length\|stop\)"' "$out")
    [ "$n" -eq "$want" ] && [ "$odd" -eq 0 ] && return 0
    fail "$name: $n of $want samples stored, $odd not ended by length or eos"
    return 1
}

# timed NAME [FLAGS...]: the whole of aime25, every sample generated anew.
timed() {
    local name=$1 db=$WORK/cli-$1.sqlite want=$((LIMIT * 32))
    shift
    rm -f "$db"*
    local t0 t1
    t0=$(date +%s.%N)
    evaluate "$name" "$db" --limit "$LIMIT" --max-new-tokens "$MAX_NEW" "$@"
    local rc=$?
    t1=$(date +%s.%N)
    if [ "$rc" -ne 0 ]; then
        fail "$name: exit $rc: $(last_lines "$name")"
        return 1
    fi
    local c
    c=$(counts_of "$name")
    if [ "$c" != "$want 0 $want 0" ]; then
        fail "$name: planned, stored before, generated, failed: $c (want $want 0 $want 0)"
        return 1
    fi
    check_stored "$name" "$db" "$want" || return 1
    # the engine's closing line: steps, prompt and decode tokens and rates;
    # and its opening one: the seconds until it was ready
    local eng ready
    eng=$(grep '^engine: [0-9]* steps' "$WORK/cli-$name.log" | tail -1)
    ready=$(sed -n 's/^engine: ready in \([0-9.]*\) s.*/\1/p' "$WORK/cli-$name.log" | tail -1)
    echo "$eng" | awk -v name="$name" -v dev="$DEVICE" -v s="$want" -v n="$MAX_NEW" \
        -v t0="$t0" -v t1="$t1" -v ready="${ready:--}" '{
        wall = t1 - t0
        printf "TIME cli-run variant=%s device=%s samples=%d max_new=%d wall_s=%.1f ready_s=%s " \
            "steps=%d prompt_tok_s=%d decode_tokens=%d decode_tok_s=%d wall_tok_s=%.0f " \
            "preemptions=%d\n",
            name, dev, s, n, wall, ready, $2, $8, $10, $14, $10 / wall, $18 }'
    echo "PASS cli $name: $want samples of aime25 (cons@32, ssft), graded and stored"
}

# The run killed (SIGKILL) once it has stored a sample, then resumed: the
# resumed run generates only the missing samples, keeps the stored ones
# as they were, and ends with all of them.
killed_and_resumed() {
    local db=$WORK/cli-resume.sqlite want=$((RESUME_LIMIT * 32)) flags
    flags=(--limit "$RESUME_LIMIT" --max-new-tokens "$RESUME_MAX_NEW" --slots "$RESUME_SLOTS")
    rm -f "$db"*
    # the CLI itself in the background, not a subshell running it: the
    # SIGKILL must reach the process that writes the store
    job "$db" "${flags[@]}"
    "${JOB[@]}" >"$WORK/cli-killed.log" 2>&1 &
    local pid=$! stored=0 waited=0
    # (the store is read only once the run has made it: a reader must not
    # create it)
    while kill -0 "$pid" 2>/dev/null && [ "$stored" -eq 0 ] && [ "$waited" -lt 3000 ]; do
        sleep 0.05
        waited=$((waited + 1))
        [ -s "$db" ] && stored=$("$SSFTEVAL" export 1 --db "$db" 2>/dev/null | wc -l)
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    local before
    before=$("$SSFTEVAL" export 1 --db "$db" 2>/dev/null | sort)
    local k
    k=$(printf '%s' "$before" | grep -c .)
    if [ "$k" -eq 0 ] || [ "$k" -ge "$want" ]; then
        fail "resume: the run was killed with $k of $want samples stored (want some, not all)"
        return 1
    fi
    evaluate resumed "$db" "${flags[@]}"
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "resume: exit $rc: $(last_lines resumed)"
        return 1
    fi
    local c kept
    c=$(counts_of resumed)
    [ "$c" = "$want $k $((want - k)) 0" ] ||
        fail "resume: planned, stored before, generated, failed: $c (want $want $k $((want - k)) 0)"
    check_stored resumed "$db" "$want" || return 1
    kept=$(sort "$WORK/cli-resumed.jsonl" | comm -12 - <(printf '%s\n' "$before") | wc -l)
    [ "$kept" -eq "$k" ] || fail "resume: $kept of the $k samples stored before the kill are unchanged"
    echo "PASS cli resume: killed with $k of $want samples stored; resumed, $((want - k))" \
        "generated, the $k kept as they were"
}

if [ -n "${CLI_BUNDLE:-}" ]; then
    unpack_bundle || exit 1
fi
: "${SSFTEVAL:?give CLI_BUNDLE, or SSFTEVAL and DATA_DIR}" "${DATA_DIR:?give CLI_BUNDLE, or SSFTEVAL and DATA_DIR}"
M=$(model_dir)
timed default
killed_and_resumed
if [ "$DEVICE" = cuda ]; then
    IFS=';' read -ra variants <<<"$VARIANTS"
    for v in "${variants[@]}"; do
        # shellcheck disable=SC2086 # the flags split on spaces
        timed "${v%%=*}" ${v#*=}
    done
fi
[ "$FAILURES" -eq 0 ]
