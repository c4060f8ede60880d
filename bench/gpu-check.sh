#!/usr/bin/env bash
# bench/gpu-check.sh - everything the CUDA device needs checked on a GPU, in
# one run of a few minutes.  The GPU machine has CUDA, PyTorch and
# transformers but maybe no meson, no -dev packages and no network, so the
# checker is built here with nvcc and cc from the model reader, the CPU and
# CUDA devices and bench/gpu_check.c alone.
#
#   bench/gpu-check.sh [--build-only | --ops | --perf | --cli | --long]
#
# Steps (each prints PASS/FAIL lines; a summary and a timing table close):
#   1. build gpu_check (and tests/test_engine_cuda when cmocka is there);
#   2. python: transformers bf16 logits of each fixture on the GPU, a random
#      Qwen2.5-1.5B-shaped checkpoint written locally, generate() timing;
#   3. CUDA vs CPU logits on every fixture (BF16: rel err <= 2e-2, top-1 >= 99%);
#   4. CUDA vs transformers on the same GPU;
#   5. compute-sanitizer memcheck on one fixture (when installed);
#   6. decode tokens/s at batch 1/8/32/64/128, ours and transformers', with the
#      bytes a step moves (weights + KV read) and the GB/s achieved against
#      the measured device copy bandwidth;
#   7. with CLI_BUNDLE (bench/gpu-bundle.sh), the CLI's main job on the GPU
#      (bench/gpu-cli.sh): all of aime25 at cons@32, then a run killed and
#      resumed; --cli runs only that, on the random 1.5B checkpoint.
#   --long: the issue's longest decodes, which the full run leaves out for
#      time: 1.5B at batch 64, 200-token prompts, XLONG_STEPS (default 8192)
#      steps, BF16 and FP8 KV (some 3 minutes with the build on an H100).
# Environment: WORK (scratch, default a new temp dir), LOG (default
# WORK/log.txt), STEP_LIMIT (seconds a step may run, default 120),
# LONG_STEPS (decode steps of the 200-token benches, default 2048: the whole
# script then took 182 s on an H200 and 201 s on an H100, and 248-277 s on
# an H100 with the prefill benches and a second pass of 1.5B's batches,
# runs I and N; its longest step about a minute), PYTHON, NVCC, CC, CUDA_ARCH (e.g. 90; default: the GPU's),
# CMOCKA_DIR (include/ and lib/ of cmocka, where the machine lacks
# libcmocka-dev: on a Debian machine with it, `mkdir -p build-cmocka/include
# build-cmocka/lib && cp /usr/include/cmocka*.h build-cmocka/include && cp -P
# /usr/lib/x86_64-linux-gnu/libcmocka.so* build-cmocka/lib`, carried along).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
PYTHON=${PYTHON:-python3}
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CC=${CC:-cc}
BATCHES=1,8,32,64,128
PROMPT=32
STEPS=64
# the long benches: 200-token prompts, then LONG_STEPS decode steps (the
# H200 figures of bench/README-gpu.md used 2048; reasoning runs go to 2k-32k)
LONG_STEPS=${LONG_STEPS:-2048}
mkdir -p "$WORK/obj"
LOG=${LOG:-$WORK/log.txt}
: >"$LOG"
FAILED=0

say() { printf '%s\n' "$*" | tee -a "$LOG"; }
# Runs a step under a time limit (STEP_LIMIT seconds, default 120: a hang
# must not eat the machine's lease), keeping its PASS/FAIL/TIME lines.
step() {
    local name=$1
    shift
    say "== $name"
    local limit=(timeout -k 5 "${STEP_LIMIT:-120}")
    declare -F "$1" >/dev/null && limit=() # a shell function runs as is
    "${limit[@]}" "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        say "FAIL $name (exit $rc)"
        FAILED=1
    fi
    return "$rc"
}

# The summary: counts, failures and the decode table; exits 1 on a failure.
summarize() {
    say ""
    say "== summary ($WORK/log.txt)"
    say "$(grep -c '^PASS' "$LOG") passed, $(grep -c '^FAIL' "$LOG") failed, $(grep -c '^SKIP' "$LOG") skipped"
    grep -E '^(FAIL|SKIP)' "$LOG"
    say ""
    say "decode, random bf16 weights (engine cuda: CUDA graphs; -nograph: kernel by kernel):"
    say "(gpu_ms: the step's graph replay timed on the device; the rest of ms_per_step is the host's)"
    printf '%-22s %-18s %5s %6s %13s %12s %11s %7s %9s %12s %9s\n' engine model batch prompt \
        prefill_tok_s decode_tok_s ms_per_step gpu_ms step_MB achieved_GBps roofline | tee -a "$LOG"
    # (the scheduler's and the CLI's runs have tables of their own, below)
    grep -E '^TIME engine=.*decode_tok_s' "$LOG" | grep -v 'steps=4 ' | sed 's/^TIME //' | awk '{
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%-22s %-18s %5s %6s %13s %12s %11s %7s %9s %12s %8s%%\n", v["engine"], v["model"],
            v["batch"], v["prompt"], v["prefill_tok_s"], v["decode_tok_s"], v["ms_per_step"],
            ("gpu_ms_per_step" in v ? v["gpu_ms_per_step"] : "-"), v["step_MB"],
            v["achieved_GBps"], v["roofline_pct"]; delete v }' | tee -a "$LOG"
    # the paths off by default (SSFK_ATTN_ROPE, SSFK_OWN_SMALL_GEMMS, SSFK_OVERLAP_STEPS,
    # SSFK_FOLD_NORMS, SSFK_GEMM_SPLIT_SEARCH; nofold and nosearch: the other
    # way once those are 1) beside
    # the default's decode of the same shape in this run: what flipping
    # them is judged by, with their checks above
    say "paths off by default against the default, ms a step (ratio under 1: faster):"
    grep -E '^TIME .*decode_tok_s' "$LOG" | grep -v 'steps=4 ' | sed 's/^TIME //' | awk '{
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        key = v["model"] " batch=" v["batch"] " prompt=" v["prompt"] " steps=" v["steps"]
        if (v["engine"] == "cuda") base[key] = v["ms_per_step"]
        else if (v["engine"] == "cuda-fp8kv") base8[key] = v["ms_per_step"]
        else if (v["engine"] ~ /^cuda-(rope|pgemm|rope-pgemm|tuned|rope-tuned|cublas|overlap|pgemm-fused|tuned-fused|fold|fp8kv-fold|nofold|search|nosearch)$/) row[++n] = v["engine"] "|" key "|" v["ms_per_step"]
        delete v }
        END { for (i = 1; i <= n; i++) { split(row[i], f, "|")
            b = f[1] == "cuda-fp8kv-fold" ? base8[f[2]] : base[f[2]]
            printf "%-16s %-46s %8s %8s %6s\n", f[1], f[2], b, f[3], (b > 0 ? sprintf("%.3f", f[3] / b) : "-") } }' |
        tee -a "$LOG"
    grep -E '^TIME op=pgemm_' "$LOG" | grep -v 'op=pgemm_sweep' | sed 's/^TIME //' | tee -a "$LOG"
    say "the cuBLAS tuner with its split search against without (ms a call, a step's GEMMs; ratio under 1: the search's pick is faster):"
    awk '/^== ops / { model = $3 }
        /^TIME op=gemm_/ && /searched_ms=/ {
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            r = v["op"] == "gemm_step" ? v["searched_vs_tuned"] : v["vs_tuned"]
            printf "%-5s %-14s M=%-4s tuned %8s %-17s searched %8s %-17s %s\n", model, v["op"], v["M"],
                v["tuned_ms"], v["tuned"], v["searched_ms"], v["searched"], r
            delete v }' "$LOG" | tee -a "$LOG"
    say "a step's small kernels, each timed alone back to back (step_ms: 2 L + 1 RMSNorms, L RoPEs, L SiLUs; folded_step_ms: the final RMSNorm, L RoPEs and L SiLUs with the norm folded in):"
    awk '/^== ops / { model = $3 } /^TIME op=small / { sub(/^TIME op=small /, ""); print model, $0 }' "$LOG" | tee -a "$LOG"
    say "the own GEMM's shapes at 64 rows: the plan's pick and the fastest (bn/splits/stages, ms):"
    awk '/^== ops / { model = $3 }
        /^TIME op=pgemm_sweep .* ms=/ {
            for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            k = model " " v["gemm"]; if (!(k in best)) order[++n] = k
            s = v["bn"] "/" v["splits"] "/" v["stages"]
            if (!(k in best) || v["ms"] + 0 < best[k] + 0) { best[k] = v["ms"]; bs[k] = s }
            if (v["plan"] == 1) { pm[k] = v["ms"]; ps[k] = s }
            delete v }
        END { for (i = 1; i <= n; i++) { k = order[i]
            printf "%-14s plan %-9s %7s  fastest %-9s %7s  %s\n", k, ps[k], pm[k], bs[k], best[k],
                (pm[k] > 0 ? sprintf("%.3f", best[k] / pm[k]) : "-") } }' "$LOG" | tee -a "$LOG"
    say "attention alone, the plan's split against none at all (ms; ratio under 1: no split is faster), and the fastest chunk/splits; the plan's K and V read rate is the share of the copy rate the long decodes can reach:"
    awk '/^== ops / { model = $3 }
        /^TIME op=attention / {
            for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            key = model " rows=" v["rows"] " ctx=" v["ctx"]
            if (!(key in seen)) { seen[key] = 1; order[++n] = key }
            ms[key, v["chunk"]] = v["ms"]; if (v["chunk"] == "plan") { sp[key] = v["splits"]; gb[key] = v["kv_GBps"] }
            if (!(key in best) || v["ms"] + 0 < best[key] + 0) { best[key] = v["ms"]; bc[key] = v["chunk"] "/" v["splits"] }
            delete v }
        END { for (i = 1; i <= n; i++) { k = order[i]; p = ms[k, "plan"]; w = ms[k, "whole"]
            if (p > 0 && w > 0) printf "%-28s plan %s splits %7s (%s GB/s of K and V)  whole %7s  %.3f  fastest %s %s\n", k, sp[k], p, gb[k], w, w / p, bc[k], best[k] } }' \
        "$LOG" | tee -a "$LOG"
    say "the device's report after each bench (the own GEMM's verdicts; the cuBLAS shapes whose choice splits K, and how many ways):"
    grep -E '^INFO model=' "$LOG" | sed 's/^INFO //' | tee -a "$LOG"
    say "the tuner's verdicts, own GEMM against cuBLAS's path (own=1: the steps take it):"
    grep -E '^TIME model=.* gemm_verdict ' "$LOG" | sed 's/^TIME //' | tee -a "$LOG"
    say "the scheduler over the device (gpu_check engine), steps deferred (overlap=1) or not:"
    grep -E '^TIME engine-run' "$LOG" | sed 's/^TIME engine-run //' | tee -a "$LOG"
    grep -E '^(PASS|FAIL) engine ' "$LOG"
    say "device sampler, ms for the rows (top-p: T 0.6, top-p 0.95; gathered: ids with mass first):"
    grep -E '^TIME sampler' "$LOG" | sed 's/^TIME sampler //' | tee -a "$LOG"
    say "the CLI's main job (aime25, cons@32, ssft; ratio: wall time against the default's):"
    grep -E '^TIME cli-run' "$LOG" | sed 's/^TIME cli-run //' | awk '{
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        if (v["variant"] == "default") base = v["wall_s"]
        printf "%s ratio=%s\n", $0, (base > 0 ? sprintf("%.3f", v["wall_s"] / base) : "-")
        delete v }' | tee -a "$LOG"
    if [ "$FAILED" -ne 0 ] || grep -q '^FAIL' "$LOG"; then
        say "GPU CHECK: FAILED"
        exit 1
    fi
    say "GPU CHECK: ALL PASSED"
}

# ---- 1. build ---------------------------------------------------------------------
if [ -z "${CUDA_ARCH:-}" ]; then
    cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
    CUDA_ARCH=${cap:-90}
fi
INC="-I$ROOT/libssfteval/include -I$ROOT/libssfteval/src -I$ROOT/backends/engine -I$ROOT/backends"
CFLAGS="-O2 -g -std=c11 -D_GNU_SOURCE -Wall -pthread $INC"
NVFLAGS="-O3 -std=c++17 -lineinfo -gencode arch=compute_$CUDA_ARCH,code=sm_$CUDA_ARCH $INC"

build() {
    set -e
    local objs=() f o
    for f in "$ROOT"/libssfteval/src/{util,jsonlite,safetensors,model_config,model}.c \
        "$ROOT"/backends/engine/cpu*.c "$ROOT"/backends/engine/cuda_plan.c \
        "$ROOT"/backends/engine/sampler.c "$ROOT"/backends/engine/{engine,kvblocks}.c \
        "$ROOT"/bench/gpu_check.c; do
        o="$WORK/obj/$(basename "$f").o"
        echo "$CC -c $(basename "$f")"
        $CC $CFLAGS -c "$f" -o "$o"
        objs+=("$o")
    done
    for f in "$ROOT"/backends/engine/cuda*.cu; do
        o="$WORK/obj/$(basename "$f").o"
        echo "nvcc -c $(basename "$f") (sm_$CUDA_ARCH)"
        rm -f "$o"
        "$NVCC" $NVFLAGS -c "$f" -o "$o" &
        objs+=("$o")
    done
    wait
    for o in "${objs[@]}"; do [ -s "$o" ] || { echo "missing $o"; return 1; }; done
    # cuBLAS and cublasLt beside nvcc, else the ones PyTorch's wheels bring
    local blas=(-lcublas -lcublasLt)
    if ! "$NVCC" -o "$WORK/gpu_check" "${objs[@]}" "${blas[@]}" -lpthread -lm; then
        local dir
        dir=$("$PYTHON" -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))')
        local v
        v=$(ls "$dir" | sed -n 's/^libcublas\.so\.\([0-9]*\)$/\1/p' | head -1)
        blas=(-L"$dir" -Xlinker -rpath="$dir" -l:libcublas.so."$v" -l:libcublasLt.so."$v")
        echo "linking cuBLAS and cublasLt from $dir"
        "$NVCC" -o "$WORK/gpu_check" "${objs[@]}" "${blas[@]}" -lpthread -lm
    fi
    echo "built $WORK/gpu_check"
    # The cmocka test, when the headers and library are here (or in
    # CMOCKA_DIR/include and CMOCKA_DIR/lib, for a machine without them).
    local cm_inc=() cm_lib=()
    if [ -n "${CMOCKA_DIR:-}" ]; then
        cm_inc=(-I"$CMOCKA_DIR/include")
        cm_lib=(-L"$CMOCKA_DIR/lib" -Xlinker -rpath="$CMOCKA_DIR/lib")
    fi
    if echo '#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>' | $CC "${cm_inc[@]}" -E - >/dev/null 2>&1; then
        $CC $CFLAGS "${cm_inc[@]}" -c "$ROOT/tests/test_engine_cuda.c" -o "$WORK/obj/test_engine_cuda.o"
        local lib=()
        for o in "${objs[@]}"; do [[ $o == */gpu_check.c.o ]] || lib+=("$o"); done
        "$NVCC" -o "$WORK/test_engine_cuda" "$WORK/obj/test_engine_cuda.o" "${lib[@]}" \
            "${cm_lib[@]}" -lcmocka "${blas[@]}" -lpthread -lm
        echo "built $WORK/test_engine_cuda"
    else
        echo "cmocka not installed: tests/test_engine_cuda is not built"
    fi
}

# The python half: transformers on the same GPU.  One process, so torch is
# imported once.
cat >"$WORK/hf.py" <<'PY'
import json, os, struct, sys, time
import torch
import transformers
from safetensors import safe_open
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM


def load(d):
    try:
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16)
    except TypeError:  # transformers < 4.56 spells it torch_dtype
        m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.bfloat16)
    return m.to("cuda").eval()


@torch.no_grad()
def dump_fixture(d, out):
    """bf16 logits of each prompt + greedy continuation (as gpu_check feeds it)."""
    exp = json.load(open(os.path.join(d, "expected.json")))
    n_valid = exp["config"]["tokenizer_ids"]
    m = load(d)
    with safe_open(os.path.join(d, "expected.safetensors"), "pt") as f, open(out, "wb") as w:
        p = 0
        while f"prompt{p}.ids" in f.keys():
            ids = f.get_tensor(f"prompt{p}.ids").long().tolist()
            gen = f.get_tensor(f"prompt{p}.gen_ids").long().tolist()
            toks = ids + gen[:-1]
            logits = m(torch.tensor([toks], device="cuda")).logits[0].float().cpu()
            w.write(struct.pack("<iii", len(toks), logits.shape[1], n_valid))
            w.write(struct.pack(f"<{len(toks)}i", *toks))
            w.write(logits.contiguous().numpy().astype("<f4").tobytes())
            p += 1
    del m
    torch.cuda.empty_cache()


def qwen25_config(cfg):
    """config.json as the published Qwen2.5 checkpoints write it."""
    tied = cfg.tie_word_embeddings
    return {
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0,
        "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu",
        "hidden_size": cfg.hidden_size, "initializer_range": 0.02,
        "intermediate_size": cfg.intermediate_size, "max_position_embeddings": 32768,
        "max_window_layers": 21, "model_type": "qwen2",
        "num_attention_heads": cfg.num_attention_heads,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_key_value_heads": cfg.num_key_value_heads, "rms_norm_eps": 1e-06,
        "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": 32768,
        "tie_word_embeddings": tied, "torch_dtype": "bfloat16",
        "transformers_version": transformers.__version__, "use_cache": True,
        "use_sliding_window": False, "vocab_size": cfg.vocab_size,
    }


SHAPES = {  # the published configs' sizes
    "qwen2.5-1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960,
                         num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                         tie_word_embeddings=True),
    "qwen2.5-7b": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                       num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                       tie_word_embeddings=False),
}


@torch.no_grad()
def make_bench_model(d, shape):
    """Random weights in the shape of a Qwen2.5 model, made on the GPU (no download)."""
    cfg = Qwen2Config(max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6,
                      use_sliding_window=False, **SHAPES[shape])
    torch.manual_seed(0)
    with torch.device("cuda"):
        m = Qwen2ForCausalLM(cfg).to(torch.bfloat16).eval()
    for name, p in m.named_parameters():  # HF leaves biases 0 and norms 1
        if name.endswith(".bias"):
            p.normal_(0, 0.5)
        elif name.endswith("norm.weight"):
            p.normal_(1, 0.1)
    os.makedirs(d, exist_ok=True)
    m.save_pretrained(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(qwen25_config(cfg), f, indent=2)
    gc = os.path.join(d, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)
    return m


@torch.no_grad()
def time_generate(m, batches, prompt, steps):
    """Decode tokens/s of generate(): (t(steps + 1 new) - t(1 new)) per step."""
    def gen(ids, n):
        torch.cuda.synchronize()
        t = time.perf_counter()
        m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                   do_sample=False, pad_token_id=0)
        torch.cuda.synchronize()
        return time.perf_counter() - t
    g = torch.Generator(device="cuda").manual_seed(1)
    for b in batches:
        ids = torch.randint(0, 151000, (b, prompt), device="cuda", generator=g)
        gen(ids, 2)  # warm-up
        t1, tn = gen(ids, 1), gen(ids, steps + 1)
        print(f"TIME engine=transformers model={m.name_or_path.split('/')[-1]} batch={b} "
              f"prompt={prompt} steps={steps} decode_tok_s={b * steps / (tn - t1):.1f} "
              f"ms_per_step={(tn - t1) * 1e3 / steps:.2f}", flush=True)


def main():
    work, batches, prompt, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    fixtures = sys.argv[5:]
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.cuda.get_device_name()}", flush=True)
    ok = True
    for d in fixtures:
        try:
            dump_fixture(d, os.path.join(work, os.path.basename(d) + ".hf-bf16.bin"))
        except Exception as e:  # keep going: the other checks still run
            print(f"FAIL transformers dump of {d}: {type(e).__name__}: {e}", flush=True)
            ok = False
    for shape, bs, p in (("qwen2.5-1.5b", batches, prompt), ("qwen2.5-7b", "64", 200)):
        if shape not in os.environ.get("HF_SHAPES", shape):
            continue
        t = time.perf_counter()
        m = make_bench_model(os.path.join(work, shape + "-random"), shape)
        m.name_or_path = shape
        print(f"TIME engine=transformers make_model_s={time.perf_counter() - t:.1f}", flush=True)
        if not os.environ.get("HF_MODELS_ONLY"):
            time_generate(m, [int(b) for b in bs.split(",")], p, steps)
        del m
        torch.cuda.empty_cache()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
PY

"$PYTHON" -m py_compile "$WORK/hf.py" 2>&1 | tee -a "$LOG"
# the CLI's main job (bench/gpu-cli.sh), when CLI_BUNDLE gives the CLI
cli() {
    if [ -z "${CLI_BUNDLE:-}" ]; then
        say "SKIP cli: no CLI_BUNDLE (bench/gpu-bundle.sh makes it)"
        return 0
    fi
    CLI_BUNDLE=$(cd "$(dirname "$CLI_BUNDLE")" && pwd)/$(basename "$CLI_BUNDLE") \
        STEP_LIMIT=${CLI_LIMIT:-300} step cli bash "$ROOT/bench/gpu-cli.sh" "$1" "$WORK"
}
# --cli: the random 1.5B checkpoint and the CLI on it, nothing built here
if [ "${1:-}" = "--cli" ]; then
    HF_MODELS_ONLY=1 HF_SHAPES=qwen2.5-1.5b step models "$PYTHON" "$WORK/hf.py" "$WORK" \
        "$BATCHES" "$PROMPT" "$STEPS"
    cli "$WORK/qwen2.5-1.5b-random"
    summarize
    exit $?
fi
step build build || { say "build failed; nothing else can run"; exit 1; }
if [ "${1:-}" = "--build-only" ]; then
    say "built in $WORK (not run)"
    exit 0
fi
# Each GEMM and the attention alone, Qwen2.5-1.5B and -7B shapes.
ops() {
    step "ops 1.5B" "$WORK/gpu_check" ops 1536 8960 12 2 128 28 151936
    step "ops 7B" "$WORK/gpu_check" ops 3584 18944 28 4 128 28 152064
}
if [ "${1:-}" = "--ops" ]; then
    ops
    exit 0
fi
# the random checkpoints hf.py makes
BENCH="$WORK/qwen2.5-1.5b-random"
BENCH7="$WORK/qwen2.5-7b-random"
# The issue's shape: 200-token prompts, many sequences, LONG_STEPS decode
# steps: the batches again with the RMSNorms as kernels of their own
# (nofold: folding them into cuBLAS's GEMMs is the default since run P),
# the largest batches again with an FP8 KV cache, the batches again with
# RoPE and the KV store in the decode attention (rope), and with deferred
# steps (overlap: the host builds step n + 1 while the GPU runs step n;
# 1.5B, and 7B for the 64 steps transformers is timed for); the cuBLAS
# tuner's split search (search) only in 7B's 64-step bench, 1.017-1.026x
# the default's step in run P (no PDL, "nopdl", was timed in runs L-N and
# is left out; the own GEMM always, with rope and fused, in run O,
# 1.05-1.90x the default's step, and where tuned, 1.01-1.07x, are left out
# too: 1.5B's short bench still times tuned);
# long prompts with and without flash prefill (on by default), and with an
# fp8 pool both ways; and 7B for 64 steps, the length transformers is timed
# for.
long_benches() {
    local b15=$1 b7=$2
    step bench-long "$WORK/gpu_check" bench "$b15" 64,256 200 "$LONG_STEPS" nofold,fp8,rope,overlap
    # the scheduler itself over the device, deferred and not: 64 samples
    # (8 prompts x 8) of 512 tokens, with a pool that holds them and one
    # that forces preemption
    step engine-1.5b "$WORK/gpu_check" engine "$b15" 512
    # 1,000-token prompts, each a forward of its own, with the flash
    # prefill kernel and without it (the decode kernel reads a prompt's K
    # and V once per row), then with an fp8 pool, through the decode
    # kernel (the engine's default) and through the flash kernel
    step bench-prefill "$WORK/gpu_check" bench "$b15" 8 1000 16 noflash,fp8,fp8noflash
    [ -f "$b7/config.json" ] || return 0
    step bench-prefill-7b "$WORK/gpu_check" bench "$b7" 8 1000 16 noflash
    step bench-7b "$WORK/gpu_check" bench "$b7" 64,128 200 "$LONG_STEPS" nofold,fp8,rope
    step bench-7b-short "$WORK/gpu_check" bench "$b7" 64 200 64 nofold,search,overlap
    step engine-7b "$WORK/gpu_check" engine "$b7" 256
}
# --long: 8k-token decodes of 1.5B at batch 64 (the mean context, 4,296
# positions, makes KV reads 72% of a step's bytes), BF16 and FP8 KV; an estimated
# 42 and 31 s of decode on an H100 (XLONG_LIMIT, default 300 s, bounds the step).
if [ "${1:-}" = "--long" ]; then
    HF_MODELS_ONLY=1 HF_SHAPES=qwen2.5-1.5b step models "$PYTHON" "$WORK/hf.py" "$WORK" \
        "$BATCHES" "$PROMPT" "$STEPS"
    STEP_LIMIT=${XLONG_LIMIT:-300} step bench-xlong "$WORK/gpu_check" bench "$BENCH" 64 200 \
        "${XLONG_STEPS:-8192}" fp8
    summarize
    exit $?
fi
# --perf: the op tests, the 1.5B ops and the long decode benches only (no
# transformers timing or parity dumps): a few minutes less of device time.
if [ "${1:-}" = "--perf" ]; then
    HF_MODELS_ONLY=1 step models "$PYTHON" "$WORK/hf.py" "$WORK" "$BATCHES" "$PROMPT" "$STEPS"
    export SSFTEVAL_SOURCE_ROOT=$ROOT
    [ -x "$WORK/test_engine_cuda" ] && step test_engine_cuda "$WORK/test_engine_cuda"
    step "ops 1.5B" "$WORK/gpu_check" ops 1536 8960 12 2 128 28 151936
    long_benches "$BENCH" "$BENCH7"
    summarize
    exit $?
fi

FIXTURES=()
for d in "$ROOT"/tests/fixtures/engine/*/; do
    [ -f "$d/expected.safetensors" ] && FIXTURES+=("${d%/}")
done
say "fixtures: ${FIXTURES[*]##*/}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG"

# ---- 2. transformers: dumps, the bench checkpoint, generate() timing --------------------
STEP_LIMIT=240 step transformers "$PYTHON" "$WORK/hf.py" "$WORK" "$BATCHES" "$PROMPT" "$STEPS" "${FIXTURES[@]}"

# ---- 3.-5. correctness ----------------------------------------------------------------
export SSFTEVAL_SOURCE_ROOT=$ROOT
if [ -x "$WORK/test_engine_cuda" ]; then
    step test_engine_cuda "$WORK/test_engine_cuda"
fi
ops
step sampler "$WORK/gpu_check" sampler
step cuda-vs-cpu "$WORK/gpu_check" fixtures "${FIXTURES[@]}"
for d in "${FIXTURES[@]}"; do
    dump="$WORK/$(basename "$d").hf-bf16.bin"
    [ -s "$dump" ] && step "cuda-vs-transformers $(basename "$d")" "$WORK/gpu_check" hf "$d" "$dump"
done
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [ -n "$SAN" ] && [ ${#FIXTURES[@]} -gt 0 ]; then
    # the default device, the own GEMMs always (with RoPE in the attention),
    # the norms folded into cuBLAS's GEMMs, and the own GEMMs where tuned (a
    # graph decode, whose tuning runs both paths)
    STEP_LIMIT=240 step memcheck "$SAN" --tool memcheck --leak-check full --error-exitcode 3 \
        "$WORK/gpu_check" cuda "${FIXTURES[0]}"
else
    say "SKIP memcheck: compute-sanitizer not installed"
fi

# ---- 6. timing ---------------------------------------------------------------------------
if [ -f "$BENCH/config.json" ]; then
    step bench "$WORK/gpu_check" bench "$BENCH" "$BATCHES" "$PROMPT" "$STEPS" sampled,nograph,tuned
    long_benches "$BENCH" "$BENCH7"
    cli "$BENCH"
    # where a batch-64 decode step's time goes, kernel by kernel
    NSYS=$(command -v nsys || ls /usr/local/cuda/bin/nsys 2>/dev/null || true)
    if [ -n "$NSYS" ]; then
        step profile "$NSYS" profile --cuda-graph-trace=node -o "$WORK/prof" --force-overwrite true \
            "$WORK/gpu_check" bench "$BENCH" 64 32 32
        "$NSYS" stats -q --report cuda_gpu_kern_sum --format csv "$WORK/prof.nsys-rep" 2>/dev/null |
            cut -d, -f1-4,9 | head -16 | tee -a "$LOG"
    else
        say "SKIP profile: nsys not installed"
    fi
else
    say "FAIL bench: no checkpoint (the python step failed)"
    FAILED=1
fi

summarize
