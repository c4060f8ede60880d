#!/usr/bin/env bash
# engine_run_test.sh - `ssfteval run` with the in-process engine on the CPU,
# end to end on a tiny random Qwen2 checkpoint (tests/fixtures/engine):
# generated, stored, graded, reported, resumed; identical samples whatever
# the number of slots; one-line refusals for a missing or corrupt model and
# an absent GPU.
#
# usage: engine_run_test.sh SSFTEVAL   Prints TAP.
set -u
ssfteval=$1
root=${SSFTEVAL_SOURCE_ROOT:-$(dirname "$0")/..}
fixture=$root/tests/fixtures/engine/gqa5-hd128
echo "# ssfteval run --model (in-process engine, CPU)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SSFTEVAL_CACHE="$work/cache"
unset SSFTEVAL_DB SSFTEVAL_DATA_DIR SSFTEVAL_ENDPOINT
. "$(dirname "$0")/tap.sh"
need sqlite3
run() { # EXPECTED_STATUS ARGS...
    local want=$1
    shift
    "$ssfteval" "$@" >"$work/out" 2>"$work/err"
    local got=$?
    [ "$got" -eq "$want" ] || { echo "# ssfteval $*: exit $got, expected $want: $(cat "$work/err")"; return 1; }
}

cat >"$work/synth.json" <<'JSON'
{"name": "synth", "answer_type": "math", "source": {"local": {"path": "synth.jsonl"}},
 "fields": {"question": "q", "answer": "a"}, "prompt": "Q: {{question}}",
 "metrics": ["pass@1"]}
JSON
printf '{"q": "What is one plus one?", "a": "2"}\n{"q": "Name the smallest prime.", "a": "2"}\n{"q": "3 squared?", "a": "9"}\n' >"$work/synth.jsonl"
common=(--task-file "$work/synth.json" --data-dir "$work" --quiet --device cpu
    --metric pass@1,maj@4 --samples 4 --max-new-tokens 24 --temperature 0.8 --top-p 0.95)

check "engine run: 12 samples generated" eval 'run 0 run synth --model "$fixture" --db "$work/a.sqlite" "${common[@]}" && grep -q "12 samples planned, 0 stored before, 12 generated, 0 failed" "$work/err"'
check "metrics computed over 3 questions" eval 'grep -q "maj@4" "$work/out" && grep -q "3 questions" "$work/out"'
check "the run's identity names how the CPU computes (a build without libmvec rounds exp otherwise)" eval 'sqlite3 "$work/a.sqlite" "SELECT backend FROM runs WHERE id = 1" | grep -q "^engine:cpu-\(avx2-libmvec\|avx2\|portable\),ctx="'
loud=()
for arg in "${common[@]}"; do [ "$arg" = --quiet ] || loud+=("$arg"); done
check "the CPU engine takes the CPUs the process may use, not all online (taskset, cpusets)" eval 'taskset -c 0 "$ssfteval" run synth --model "$fixture" --db "$work/t.sqlite" "${loud[@]}" >"$work/out" 2>"$work/err" && grep -q "^engine: cpu: 1 thread, " "$work/err"'
check "the engine says where its start went: files, device and digest, adding up to the whole" eval 'awk '"'"'/^engine: ready in / { t = $4; f = $8; d = $11; w = $15; ok = t >= 0 && f >= 0 && d >= 0 && w >= 0 && (f + d + w - t) ^ 2 <= 0.0005 } END { exit !ok }'"'"' "$work/err"'
check "resume generates nothing" eval 'run 0 run synth --model "$fixture" --db "$work/a.sqlite" "${common[@]}" && grep -q "12 stored before, 0 generated" "$work/err"'
check "the directory spelled otherwise (a slash, relative) resumes the run (it began anew)" eval 'run 0 run synth --model "$fixture/" --db "$work/a.sqlite" "${common[@]}" && grep -q "run 1 done (resumed): 12 samples planned, 12 stored before, 0 generated" "$work/err" && (ssfteval=$(readlink -f "$ssfteval") && cd "$fixture/.." && run 0 run synth --model "$(basename "$fixture")" --db "$work/a.sqlite" "${common[@]}") && grep -q "run 1 done (resumed)" "$work/err" && [ "$(sqlite3 "$work/a.sqlite" "SELECT model FROM runs WHERE id = 1")" = "$(cd "$fixture" && pwd -P)" ]'
check "another --stop or --max-context is another run, not a resume" eval 'run 0 run synth --model "$fixture" --db "$work/a2.sqlite" "${common[@]}" && run 0 run synth --model "$fixture" --db "$work/a2.sqlite" --stop zz "${common[@]}" && grep -q "(new): 12 samples planned, 0 stored before" "$work/err" && run 0 run synth --model "$fixture" --db "$work/a2.sqlite" --max-context 200 "${common[@]}" && grep -q "(new): 12 samples planned, 0 stored before" "$work/err"'
# The same shapes, other weights (each shifted by one value, as a checkpoint
# trained further differs in all of them), in the same directory.
mkdir "$work/swap" && cp "$fixture"/* "$work/swap/"
header=$(od -An -tu8 -N8 "$fixture/model.safetensors" | tr -d ' ')
dd if="$fixture/model.safetensors" of="$work/swap/model.safetensors" bs=65536 iflag=skip_bytes oflag=seek_bytes skip=$((8 + header + 2)) seek=$((8 + header)) conv=notrunc status=none
check "another checkpoint in the --model directory is another run, not a resume" eval 'run 0 run synth --model "$work/swap" --db "$work/a3.sqlite" "${common[@]}" && cp "$fixture/model.safetensors" "$work/swap/" && run 0 run synth --model "$work/swap" --db "$work/a3.sqlite" "${common[@]}" && grep -q "run 2 done (new): 12 samples planned, 0 stored before" "$work/err" && run 0 run synth --model "$work/swap" --db "$work/a3.sqlite" "${common[@]}" && grep -q "run 2 done (resumed)" "$work/err"'
printf ' ' >>"$work/swap/tokenizer.json"
check "another tokenizer.json in the --model directory is another run" eval 'run 0 run synth --model "$work/swap" --db "$work/a3.sqlite" "${common[@]}" && grep -q "run 3 done (new): 12 samples planned, 0 stored before" "$work/err"'
# What else the engine reads is the run's too: the config's numbers, the
# end-of-sequence ids, the tokenizer's config (split_special_tokens).
mkdir "$work/conf" && cp "$fixture"/* "$work/conf/"
run 0 run synth --model "$work/conf" --db "$work/conf.sqlite" "${common[@]}"
sed -i 's/"rope_theta": 1000000.0/"rope_theta": 500000.0/' "$work/conf/config.json"
check "another rope_theta in config.json is another run" eval 'run 0 run synth --model "$work/conf" --db "$work/conf.sqlite" "${common[@]}" && grep -q "run 2 done (new): 12 samples planned, 0 stored before" "$work/err"'
sed -i '/"eos_token_id"/,/]/ s/^\( *\)497$/\1498/' "$work/conf/generation_config.json"
check "other eos ids in generation_config.json are another run" eval 'run 0 run synth --model "$work/conf" --db "$work/conf.sqlite" "${common[@]}" && grep -q "run 3 done (new): 12 samples planned, 0 stored before" "$work/err"'
sed -i 's/^{/{"split_special_tokens": true, /' "$work/conf/tokenizer_config.json"
check "another tokenizer_config.json is another run" eval 'run 0 run synth --model "$work/conf" --db "$work/conf.sqlite" "${common[@]}" && grep -q "run 4 done (new): 12 samples planned, 0 stored before" "$work/err"'
check "... but other slots, threads and blocks resume it (they change no sample)" eval 'run 0 run synth --model "$work/conf" --db "$work/conf.sqlite" "${common[@]}" --slots 1 --threads 1 --kv-blocks 64 && grep -q "run 4 done (resumed): 12 samples planned, 12 stored before, 0 generated" "$work/err"'

# One byte of one weight changed, where no sample of a few bytes per tensor
# would look: each weight file is hashed whole, and the digest kept in the
# cache under the file's device and inode while its times stay (a file
# changed in the last seconds is not kept: its times may not tell).
mkdir "$work/one" && cp "$fixture"/* "$work/one/"
weights=$work/one/model.safetensors
run 0 run synth --model "$work/one" --db "$work/a5.sqlite" "${common[@]}"
check "a weight file written just now is not kept in the cache" [ -z "$(find "$SSFTEVAL_CACHE/sha256" -newer "$weights")" ]
touch -d '1 hour ago' "$weights"
# (its change time, which touch cannot set back, must be seconds old too)
while [ $(($(date +%s) - $(stat -c %Z "$weights"))) -le 2 ]; do sleep 0.5; done
run 0 run synth --model "$work/one" --db "$work/a4.sqlite" "${common[@]}"
entry=$SSFTEVAL_CACHE/sha256/$(stat -c '%d %i' "$weights" | awk '{ printf "%x-%x", $1, $2 }')
check "a weight file's digest is kept in the cache" eval 'grep -q " $(sha256sum "$weights" | cut -c1-64)$" "$entry"'
sed -i 's/ [0-9a-f]\{64\}$/ 0000000000000000000000000000000000000000000000000000000000000000/' "$entry"
check "the kept digest is what the run's identity takes (no second read)" eval 'run 0 run synth --model "$work/one" --db "$work/a4.sqlite" "${common[@]}" && grep -q "run 2 done (new)" "$work/err"'
offset=$(($(stat -c %s "$weights") * 5 / 7))
byte=$(od -An -tu1 -j "$offset" -N1 "$weights" | tr -d ' ')
# shellcheck disable=SC2059
printf "\\$(printf %03o $(((byte + 1) % 256)))" | dd of="$weights" bs=1 seek="$offset" conv=notrunc status=none
check "one byte of one weight changed is another run" eval 'run 0 run synth --model "$work/one" --db "$work/a4.sqlite" "${common[@]}" && grep -q "run 3 done (new)" "$work/err"'
check "report json" eval 'run 0 report --format json --db "$work/a.sqlite" && grep -q "\"n_questions\": 3" "$work/out"'
check "export has 12 samples with token budget stops" eval 'run 0 export 1 --db "$work/a.sqlite" --out "$work/a.jsonl" && [ "$(wc -l <"$work/a.jsonl")" -eq 12 ] && grep -q "\"finish_reason\": *\"length\"" "$work/a.jsonl"'
check "--threads, --slots and --chat-template reach the engine and the run" eval 'run 0 run synth --model "$fixture" --db "$work/opts.sqlite" --task-file "$work/synth.json" --data-dir "$work" --device cpu --metric avg@1 --max-new-tokens 4 --threads 1 --slots 2 --chat-template none && grep -q "^engine: cpu, 2 sequences x " "$work/err" && grep -q "^engine: cpu: 1 thread, " "$work/err" && [ "$(sqlite3 "$work/opts.sqlite" "SELECT json_extract(config_json, '"'"'\$.chat_template'"'"') FROM runs")" = none ]'
check "completions hold no special token's text (decoded skipping them, as HF's skip_special_tokens)" eval '! grep -q "<|im_start|>\|<|im_end|>\|<|endoftext|>" "$work/a.jsonl"'
# The same samples with one slot (every sample alone) and with three.
check "--slots 1 gives the same samples" eval 'run 0 run synth --model "$fixture" --db "$work/b.sqlite" --slots 1 "${common[@]}" && run 0 export 1 --db "$work/b.sqlite" --out "$work/b.jsonl" && diff <(sort "$work/a.jsonl") <(sort "$work/b.jsonl") >&2'
check "--slots 3 --threads 1 gives the same samples" eval 'run 0 run synth --model "$fixture" --db "$work/c.sqlite" --slots 3 --threads 1 "${common[@]}" && run 0 export 1 --db "$work/c.sqlite" --out "$work/c.jsonl" && diff <(sort "$work/a.jsonl") <(sort "$work/c.jsonl") >&2'
check "--no-cuda-graphs is taken (and changes nothing on the CPU, which says so)" eval 'run 0 run synth --model "$fixture" --db "$work/g.sqlite" --no-cuda-graphs "${common[@]}" && grep -q "^engine: --no-cuda-graphs only tunes the CUDA device: on the CPU it changes nothing$" "$work/err" && run 0 export 1 --db "$work/g.sqlite" --out "$work/g.jsonl" && diff <(sort "$work/a.jsonl") <(sort "$work/g.jsonl") >&2'
check "--no-flash-prefill is taken (and changes nothing on the CPU)" eval 'run 0 run synth --model "$fixture" --db "$work/fp.sqlite" --no-flash-prefill "${common[@]}" && run 0 export 1 --db "$work/fp.sqlite" --out "$work/fp.jsonl" && diff <(sort "$work/a.jsonl") <(sort "$work/fp.jsonl") >&2'
check "--no-pdl is taken (and changes nothing on the CPU)" eval 'run 0 run synth --model "$fixture" --db "$work/np.sqlite" --no-pdl "${common[@]}" && run 0 export 1 --db "$work/np.sqlite" --out "$work/np.jsonl" && diff <(sort "$work/a.jsonl") <(sort "$work/np.jsonl") >&2'
check "--rope-in-attention, --own-small-gemms, --overlap-steps, --fuse-norms, --fold-norms and --gemm-split-search are taken (and change nothing on the CPU, which says so in one line)" eval 'run 0 run synth --model "$fixture" --db "$work/ro.sqlite" --rope-in-attention --own-small-gemms tuned --overlap-steps --fuse-norms --fold-norms --gemm-split-search "${common[@]}" && grep -q "^engine: --rope-in-attention, --own-small-gemms, --overlap-steps, --fuse-norms, --fold-norms, --gemm-split-search only tune the CUDA device: on the CPU they change nothing$" "$work/err" && run 0 export 1 --db "$work/ro.sqlite" --out "$work/ro.jsonl" && diff <(sort "$work/a.jsonl") <(sort "$work/ro.jsonl") >&2'
check "--no-fold-norms and --no-gemm-split-search are taken (and change nothing on the CPU)" eval 'run 0 run synth --model "$fixture" --db "$work/nf.sqlite" --no-fold-norms --no-gemm-split-search "${common[@]}" && run 0 export 1 --db "$work/nf.sqlite" --out "$work/nf.jsonl" && diff <(sort "$work/a.jsonl") <(sort "$work/nf.jsonl") >&2'
check "--fold-norms with --no-fold-norms, and --gemm-split-search with --no-gemm-split-search, are refused, either order (a bad command line: 2)" eval 'for pair in "fold-norms" "gemm-split-search"; do for flags in "--$pair --no-$pair" "--no-$pair --$pair"; do run 2 run synth --model "$fixture" --db "$work/nf2.sqlite" $flags "${common[@]}" && grep -q "^ssfteval: --$pair and --no-$pair ask for opposites; drop one$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ] && [ ! -e "$work/nf2.sqlite" ] || return 1; done; done'
# Preemption by recompute (a pool far too small for 4 sequences) and other
# block sizes change nothing either.
check "a tight KV pool preempts and gives the same samples" eval 'run 0 run synth --model "$fixture" --db "$work/p.sqlite" --task-file "$work/synth.json" --data-dir "$work" --device cpu --metric pass@1,maj@4 --samples 4 --max-new-tokens 24 --temperature 0.8 --top-p 0.95 --slots 4 --kv-blocks 12 && grep -Eq "[1-9][0-9]* preemptions" "$work/err" && run 0 export 1 --db "$work/p.sqlite" --out "$work/p.jsonl" && diff <(sort "$work/a.jsonl") <(sort "$work/p.jsonl") >&2'
check "--block-size 1 gives the same samples" eval 'run 0 run synth --model "$fixture" --db "$work/q.sqlite" --block-size 1 "${common[@]}" && run 0 export 1 --db "$work/q.sqlite" --out "$work/q.jsonl" && diff <(sort "$work/a.jsonl") <(sort "$work/q.jsonl") >&2'
check "greedy samples of one question agree" eval 'run 0 run synth --model "$fixture" --db "$work/d.sqlite" --task-file "$work/synth.json" --data-dir "$work" --quiet --device cpu --metric avg@3 --samples 3 --max-new-tokens 16 --temperature 0 && run 0 export 1 --db "$work/d.sqlite" --out "$work/d.jsonl" && [ "$(grep "\"doc\": *0" "$work/d.jsonl" | sed "s/.*\"text\"//" | sort -u | wc -l)" -eq 1 ]'

# bench/gpu-cli.sh, the main job's run on a GPU machine, rehearsed here on
# the CPU: aime25 at cons@32, then a run killed once it has stored samples
# (two slots: many waves) and resumed.
shared=${SSFTEVAL_SHARED:-}
if [ -f "$shared/data/aime25.jsonl" ]; then
    check "bench/gpu-cli.sh on the CPU: the main job, killed and resumed" eval 'DEVICE=cpu SSFTEVAL="$ssfteval" DATA_DIR="$shared/data" LIMIT=1 MAX_NEW=8 RESUME_LIMIT=4 RESUME_MAX_NEW=32 RESUME_SLOTS=2 bash "$root/bench/gpu-cli.sh" "$fixture" "$work/cli" >"$work/out" 2>&1 && grep -q "^PASS cli resume" "$work/out" && grep -q "^TIME cli-run variant=default device=cpu samples=32 max_new=8 wall_s=[0-9.]* ready_s=[0-9.]* steps=" "$work/out" || { cat "$work/out" >&2; false; }'
else
    ok "bench/gpu-cli.sh on the CPU # SKIP ../shared/data not found"
fi

# Refusals: one line naming the thing, nothing stored.
check "missing model directory" eval 'run 1 run synth --model "$work/nope" --db "$work/e.sqlite" "${common[@]}" && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "nope" "$work/err" && [ ! -e "$work/e.sqlite" ]'
mkdir "$work/corrupt" && cp "$fixture"/* "$work/corrupt/" && truncate -s 5000 "$work/corrupt/model.safetensors"
check "truncated checkpoint" eval 'run 1 run synth --model "$work/corrupt" --db "$work/e.sqlite" "${common[@]}" && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "model.safetensors" "$work/err"'
# Another model's tokenizer (Qwen2.5's, over this 512-id checkpoint): its
# prompts failed sample by sample, stored, at every rerun.
shared=${SSFTEVAL_SHARED:-$root/../shared}
if [ -f "$shared/tokenizers/qwen2.5/tokenizer.json" ]; then
    mkdir "$work/othertok" && cp "$fixture"/* "$work/othertok/" && cp "$shared/tokenizers/qwen2.5/tokenizer.json" "$work/othertok/"
    check "another model's tokenizer is refused before the run, one line, nothing stored" eval 'run 1 run synth --model "$work/othertok" --db "$work/ot.sqlite" "${common[@]}" && grep -q "its tokenizer has ids up to 15[0-9]*, past the vocab_size of 512 in config.json: it is another model.s; use the tokenizer saved with the checkpoint$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ] && [ ! -e "$work/ot.sqlite" ]'
else
    ok "another model's tokenizer is refused # SKIP no ../shared/tokenizers"
fi
mkdir "$work/badeos" && cp "$fixture"/* "$work/badeos/"
sed -i 's/"eos_token_id": \[/"eos_token_id": [100000, /' "$work/badeos/generation_config.json"
check "an end-of-sequence id outside the vocabulary is refused, naming the file" eval 'run 1 run synth --model "$work/badeos" --db "$work/be.sqlite" "${common[@]}" && grep -q "generation_config.json: eos_token_id 100000 is outside the vocabulary (vocab_size 512 in config.json); correct the id$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ] && [ ! -e "$work/be.sqlite" ]'
# A prompt longer than the model takes fails with the fix there is: none
# but a shorter prompt at the model's limit (it said to raise --max-context,
# which is refused past the model's), a longer context below it.
sed 's/synth.jsonl/long.jsonl/; s/"synth"/"long"/' "$work/synth.json" >"$work/long.json"
printf '{"q": "%s", "a": "1"}\n' "$(head -c 5000 /dev/zero | tr '\0' y)" >"$work/long.jsonl"
long=(--task-file "$work/long.json" --data-dir "$work" --quiet --device cpu --metric pass@1 --samples 1 --max-new-tokens 4)
check "a prompt past the model's positions: no fix but a shorter prompt" eval 'run 1 run long --model "$fixture" --db "$work/long.sqlite" "${long[@]}" && grep -q "engine: the prompt has [0-9]* tokens, more than the model.s 4096 positions (max_position_embeddings): this question cannot run on this model; shorten its prompt" "$work/err"'
check "... and past --max-context alone: raise it, up to the model's" eval 'run 1 run long --model "$fixture" --db "$work/long2.sqlite" "${long[@]}" --max-context 64 && grep -q "engine: the prompt has [0-9]* tokens, the context holds 64; raise --max-context (the model takes up to 4096)" "$work/err"'
check "--device cuda without a GPU" eval '"$ssfteval" run synth --model "$fixture" --db "$work/f.sqlite" --task-file "$work/synth.json" --data-dir "$work" --quiet --device cuda --metric pass@1 --samples 1 --max-new-tokens 4 >"$work/out" 2>"$work/err"; rc=$?; if [ $rc -eq 0 ]; then nvidia-smi >/dev/null 2>&1; else [ $rc -eq 1 ] && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -qi "cuda" "$work/err"; fi'
check "--kv-cache-dtype fp8 on the CPU is refused (a bad command line: 2)" eval 'run 2 run synth --model "$fixture" --db "$work/h.sqlite" "${common[@]}" --kv-cache-dtype fp8 && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "kv-cache-dtype" "$work/err" && [ ! -e "$work/h.sqlite" ]'
check "--max-context past the model's is refused (a bad command line: 2)" eval 'run 2 run synth --model "$fixture" --db "$work/h.sqlite" "${common[@]}" --max-context 5000 && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "max_position_embeddings 4096; give at most 4096$" "$work/err" && [ ! -e "$work/h.sqlite" ]'
check "a KV pool past the memory is work that failed (1), not a bad command line" eval 'run 1 run synth --model "$fixture" --db "$work/h.sqlite" "${common[@]}" --kv-blocks 1073741824 && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "of memory; lower --max-context" "$work/err" && [ ! -e "$work/h.sqlite" ]'
check "bad --kv-cache-dtype" eval 'run 2 run synth --model "$fixture" --db "$work/h.sqlite" "${common[@]}" --kv-cache-dtype fp16 && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "fp8 or bf16" "$work/err"'
check "bad --own-small-gemms" eval 'run 2 run synth --model "$fixture" --db "$work/h.sqlite" "${common[@]}" --own-small-gemms sometimes && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "tuned, always or never" "$work/err" && [ ! -e "$work/h.sqlite" ]'
check "an exported endpoint does not take a checkpoint for a server's model name" eval 'SSFTEVAL_ENDPOINT=http://127.0.0.1:1/v1 run 2 run synth --model "$fixture" --db "$work/h.sqlite" --task-file "$work/synth.json" --data-dir "$work" --quiet --device cpu --metric pass@1 --samples 1 --max-new-tokens 4 && grep -q "is a checkpoint, and SSFTEVAL_ENDPOINT" "$work/err" && [ ! -e "$work/h.sqlite" ]'
check "an option given twice is refused, naming it (a bad command line: 2)" eval 'run 2 run synth --model "$fixture" --db "$work/tw.sqlite" "${common[@]}" --metric avg@4 && grep -q "^ssfteval: run: --metric is given twice, and only one would count; give it once$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ] && [ ! -e "$work/tw.sqlite" ]'
check "bad --device" eval 'run 2 run synth --model "$fixture" --db "$work/g.sqlite" --task-file "$work/synth.json" --data-dir "$work" --quiet --device tpu && grep -q "auto, cpu or cuda" "$work/err"'
tap_end
