#!/usr/bin/env bash
# cli_test.sh - the ssfteval command end to end: help, tasks, prompts, bad
# input, and data fetch/verify against a local stand-in for the Hub.
#
# usage: cli_test.sh SSFTEVAL HUBSERVER   (env: SSFTEVAL_SHARED, SSFTEVAL_SOURCE_ROOT)
# Prints TAP; exits 77 when ../shared is absent.
set -u
ssfteval=$1
hubserver=$2
shared=${SSFTEVAL_SHARED:-}
[ -d "$shared/data" ] || { echo "1..0 # SKIP ../shared not found"; exit 77; }
fixtures="$SSFTEVAL_SOURCE_ROOT/tests/fixtures/prompts.json"

echo "# ssfteval command-line tests"
work=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
unset HF_TOKEN HF_ENDPOINT HF_HUB_OFFLINE SSFTEVAL_DATA_DIR SSFTEVAL_OFFLINE
export SSFTEVAL_CACHE="$work/cache"

. "$(dirname "$0")/tap.sh"
need sqlite3

# run EXPECTED_STATUS ARGS...: runs ssfteval, keeps stdout/stderr in $out/$err
run() {
    local want=$1
    shift
    "$ssfteval" "$@" >"$work/out" 2>"$work/err"
    local got=$?
    out=$(cat "$work/out")
    err=$(cat "$work/err")
    if [ "$got" -ne "$want" ]; then
        echo "# ssfteval $*: exit $got, expected $want; stderr: $err"
        return 1
    fi
}
err_has() { grep -q -- "$1" "$work/err" || { echo "# stderr lacks '$1': $err"; return 1; }; }
out_has() { grep -q -- "$1" "$work/out" || { echo "# stdout lacks '$1'"; return 1; }; }
one_line_err() { [ "$(wc -l <"$work/err")" -eq 1 ] || { echo "# stderr is not one line: $err"; return 1; }; }

# --- help and usage errors
check "--help" run 0 --help
for cmd in tasks prompt data; do check "$cmd --help" run 0 "$cmd" --help; done
check "no command is a usage error: the usage on stderr, nothing on stdout" eval 'run 2 && [ ! -s "$work/out" ] && err_has "^usage: ssfteval COMMAND"'
check "version and --version print the name and the build's version" eval 'run 0 version && [[ $out =~ ^ssfteval\ [0-9]+\.[0-9]+\.[0-9]+(\+g[0-9a-f]+(-dirty)?)?$ ]] && v=$out && run 0 --version && [ "$out" = "$v" ]'
# The commit is what tells one build from the next between releases (a run
# resumed by another build grades its samples again).
if commit=$(git -C "$SSFTEVAL_SOURCE_ROOT" describe --always --abbrev=12 --exclude='*' 2>/dev/null); then
    check "the version names the commit it was built from" eval 'run 0 version && [[ $out =~ \+g$commit(-dirty)?$ ]]'
else
    ok "the version names the commit it was built from # SKIP not a git checkout"
fi
mkdir "$work/nodata"
jget() { sqlite3 :memory: "SELECT json_extract(readfile('$work/out'), '$1')"; }
check "tasks --json over data it cannot read: exit 1, each task listed with null documents" eval 'run 1 tasks --json --data-dir "$work/nodata" && [ "$(jget "\$[0].name")|$(jget "\$[0].documents")|$(jget "\$[3].name")|$(jget "\$[3].documents")" = "aime24||gpqa_diamond|" ] && [ "$(sqlite3 :memory: "SELECT json_type(readfile('"'"'$work/out'"'"'), '"'"'\$[0].documents'"'"')")" = null ] && [ "$(grep -c "data not found" "$work/err")" -eq 4 ]'
check "tasks --json names each task's source, revision and pin" eval 'run 0 tasks --json --data-dir "$shared/data" && [ "$(jget "\$[2].source")" = "hub:HuggingFaceH4/MATH-500@6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be/test.jsonl" ] && [ "$(jget "\$[0].revision")" = "main (rows API)" ] && [ "$(jget "\$[2].sha256")" = 35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132 ] && [ "$(jget "\$[2].documents")" = 500 ] && [ "$(jget "\$[3].gated")" = 1 ]'
check "prompt --json with --chat-template-from a tokenizer_config.json: the prompt, its tag and template" eval 'run 0 prompt aime25 --doc 0 --tag 3 --json --chat-template-from "$shared/tokenizers/qwen3/tokenizer_config.json" --data-dir "$shared/data" && [ "$(jget "\$.chat_template") $(jget "\$.tag") $(jget "\$.id")" = "chatml 3 2025-I-1" ] && jget "\$.prompt" | grep -q "<|im_start|><think3>$"'
check "help lists the commands on stdout" eval 'run 0 help && out_has "^commands:" && out_has "^  compare BASE CAND"'
tok=$shared/tokenizers/qwen2.5
for args in "tokenize --tokenizer $tok --text x --jsonl f|give exactly one of --text T and --jsonl FILE" "tokenize --tokenizer $tok --text x --skip-special|--skip-special applies to --decode only" "grade --jsonl f --gold 1|give either --jsonl or --gold/--pred, not both" "data frob|expected 'fetch' or 'verify', got 'frob'" "data fetch nosuch|unknown task 'nosuch'" "report --format xml|unknown format 'xml'; use md, csv or json"; do
    check "a usage error, named on one line (exit 2): ${args%%|*}" eval 'IFS="|" read -r cmdline msg <<<"$args"; read -ra words <<<"$cmdline"; run 2 "${words[@]}" && err_has "$msg" && one_line_err && [ ! -s "$work/out" ]'
done
printf '{"ids": [1.5]}\n' >"$work/fracids.jsonl"
check "tokenize --decode refuses an id that is not an integer, naming its line" eval 'run 1 tokenize --tokenizer "$tok" --decode --jsonl "$work/fracids.jsonl" && err_has "fracids.jsonl:1: \"ids\"\[0\] is not an integer id" && one_line_err'
check "unknown command" eval 'run 2 frobnicate && err_has "unknown command" && one_line_err'
check "unknown flag" eval 'run 2 tasks --frobnicate && err_has "frobnicate" && one_line_err'
check "a full disk under standard output is an error (exit 1), not a silent cut" eval '"$ssfteval" tasks --data-dir "$shared/data" >/dev/full 2>"$work/err"; [ $? -eq 1 ] && err_has "^ssfteval: cannot write standard output: No space left on device" && one_line_err'
for args in "report --json" "show 1 --json" "export 1 --format csv" "runs --doc 3" "compare 1 2 --out x" "data verify --data-dir x" "run aime25 --json" "model info x --data-dir y"; do
    # shellcheck disable=SC2086
    check "an option the command does not take is refused: $args" eval 'run 2 $args && err_has "unknown option" && one_line_err'
done
check "an abbreviated option is refused (getopt took --data-di for --data-dir)" eval 'run 2 tasks --data-di "$shared/data" && err_has "unknown option .--data-di." && one_line_err'
check "an option given twice is refused, naming it (the last would have counted)" eval 'run 2 grade --gold 1 --gold 2 --pred 2 && err_has "^ssfteval: grade: --gold is given twice, and only one would count; give it once$" && one_line_err && run 2 prompt aime25 --doc 0 --chat-template chatml --chat-template none --data-dir "$shared/data" && err_has "--chat-template is given twice" && one_line_err'
check "an option value that starts with -- is a value" eval '"$ssfteval" grade --gold 5 --pred "--5" >/dev/null 2>"$work/err"; [ $? -le 1 ] && [ ! -s "$work/err" ]'
check "--name=value is taken" eval 'run 0 tasks --data-dir="$shared/data"'
check "an empty value is refused by name" eval 'run 2 tasks --data-dir "" && err_has "^ssfteval: --data-dir: the value is empty" && one_line_err'
check "an empty --db is refused (SQLite would open a throw-away store)" eval 'run 2 runs --db "" && err_has "--db: the value is empty" && one_line_err'
check "an empty SSFTEVAL_DB is unset" eval 'SSFTEVAL_DB= run 1 runs && err_has "^ssfteval: ssfteval.sqlite does not exist"'
check "an empty --pred is graded (as no answer)" eval 'run 1 grade --gold 1 --pred "" && out_has false'
check "unknown task" eval 'run 2 prompt nosuch --doc 0 --data-dir "$shared/data" && err_has "known tasks: aime24"'
check "--doc required" eval 'run 2 prompt aime24 --data-dir "$shared/data" && err_has "--doc"'
check "--doc out of range" eval 'run 2 prompt aime24 --doc 30 --data-dir "$shared/data" && err_has "0..29"'
check "bad --tag" eval 'run 2 prompt aime24 --doc 0 --tag x --data-dir "$shared/data" && err_has "--tag"'
check "bad --chat-template" eval 'run 2 prompt aime24 --doc 0 --chat-template llama --data-dir "$shared/data" && err_has "qwen2.5"'
check "bad --gpqa-order" eval 'run 2 tasks --gpqa-order random && err_has "mt19937"'

# --- tasks from a data directory
check "tasks --data-dir" eval 'run 0 tasks --data-dir "$shared/data"'
for pair in aime24:30 aime25:30 math_500:500 gpqa_diamond:198; do
    check "tasks lists ${pair%:*} with ${pair#*:} documents" \
        eval "grep -Eq '^${pair%:*} +[a-z]+ +${pair#*:} ' \"\$work/out\""
done
check "tasks --json" eval 'run 0 tasks --json --data-dir "$shared/data" && out_has "\"documents\": 198" && out_has "\"answer_type\": \"letters\"" && [ "$(grep -c "\"gated\": true" "$work/out")" -eq 1 ] && [ "$(grep -c "\"gated\": false" "$work/out")" -eq 3 ]'
check "SSFTEVAL_DATA_DIR" eval 'SSFTEVAL_DATA_DIR="$shared/data" run 0 tasks && out_has "math_500"'
# A corrupt GPQA archive: cut short (the directory at its end lost) or
# random bytes.  Only the error is looked at; no question text is printed.
mkdir -p "$work/badzip/gpqa" && cp "$shared/data"/*.jsonl "$work/badzip/"
head -c 100000 "$shared/data/gpqa/dataset.zip" >"$work/badzip/gpqa/dataset.zip"
check "a GPQA zip cut short: exit 1, one line naming it and the fix" eval 'run 1 prompt gpqa_diamond --doc 0 --data-dir "$work/badzip" && err_has "^ssfteval: $work/badzip/gpqa/dataset.zip is not a zip archive (cut short, or another file); replace it with the published one$" && one_line_err && [ ! -s "$work/out" ]'
head -c 5000 /dev/urandom >"$work/badzip/gpqa/dataset.zip"
check "a GPQA zip of random bytes: the same" eval 'run 1 prompt gpqa_diamond --doc 0 --data-dir "$work/badzip" && err_has "dataset.zip is .*zip archive.*; replace it with the published one$" && one_line_err && [ ! -s "$work/out" ]'
cp "$shared/data/gpqa/dataset.zip" "$work/badzip/gpqa/dataset.zip" && chmod u+w "$work/badzip/gpqa/dataset.zip"
head -c 100 /dev/zero | dd of="$work/badzip/gpqa/dataset.zip" bs=1 seek=1000000 conv=notrunc status=none # inside gpqa_diamond.csv
check "a GPQA zip whose member data is damaged: one line, the same fix" eval 'run 1 prompt gpqa_diamond --doc 0 --data-dir "$work/badzip" && err_has "dataset.zip: member dataset/gpqa_diamond.csv: .*damaged.*; replace .* with the published one$" && one_line_err && [ ! -s "$work/out" ]'
check "missing data dir" eval 'run 1 tasks --data-dir "$work/nowhere" && err_has "data not found"'

# --- prompts equal the reference, byte for byte (digests from the fixture)
fixture_digest() { # TASK DOC KEY: the fixture's digest of that task's doc under that key
    sqlite3 :memory: "SELECT json_extract(value, '\$.sha256.\"$3\"') FROM json_each(readfile('$fixtures'), '\$.tasks.$1.docs') WHERE json_extract(value, '\$.doc') = $2"
}
fixture_has() { # TASK DOC KEY DIGEST
    local want
    want=$(fixture_digest "$1" "$2" "$3")
    [ -n "$want" ] && [ "$want" = "$4" ] || { echo "# $1 doc $2 $3: fixture ${want:-(none)}, got $4"; return 1; }
}
prompt_digest() {
    "$ssfteval" prompt "$1" --doc "$2" "${@:3}" --data-dir "$shared/data" | sha256sum | cut -d' ' -f1
}
check "prompt aime24 doc 0 qwen2.5 tag 1" fixture_has aime24 0 "qwen2.5/1" "$(prompt_digest aime24 0 --tag 1)"
check "prompt math_500 doc 499 chatml" fixture_has math_500 499 "chatml/0" "$(prompt_digest math_500 499 --chat-template chatml)"
check "prompt gpqa_diamond doc 0 none tag 6" fixture_has gpqa_diamond 0 "none/6" "$(prompt_digest gpqa_diamond 0 --chat-template none --tag 6)"
check "prompt --chat-template-from qwen3 is chatml" fixture_has aime25 0 "chatml/0" \
    "$(prompt_digest aime25 0 --chat-template-from "$shared/tokenizers/qwen3")"
check "prompt --json gold" eval 'run 0 prompt gpqa_diamond --doc 0 --json --data-dir "$shared/data" && out_has "\"gold\": \"D\"" && out_has "\"gold_index\": 3"'
# Doc 1's gold is A in LightEval's order and C under the hash of its id
# (tools/gpqa-hash-order.py works the letters out apart from the code).
check "--gpqa-order hash places the gold by the id's hash" eval 'run 0 prompt gpqa_diamond --doc 1 --json --data-dir "$shared/data" && out_has "\"gold\": \"A\"" && run 0 prompt gpqa_diamond --doc 1 --json --gpqa-order hash --data-dir "$shared/data" && out_has "\"gold\": \"C\"" && out_has "\"gold_index\": 2"'

# --- rescore loads the data as the run did: the gold letters follow the
# run's --gpqa-order (fixed: every gold is A), whatever rescore is given
for d in 0 1 2 3; do
    printf '{"task": "gpqa_diamond", "doc": %d, "sample": 0, "text": "Answer: A", "finish_reason": "stop"}\n' "$d"
done >"$work/gpqa-gen.jsonl"
gpqa_run=(--data-dir "$shared/data" --db "$work/gpqa.sqlite")
check "gpqa run in the fixed order scores 100" eval 'run 0 run gpqa_diamond --gpqa-order fixed --limit 4 --metric avg@1 --samples 1 --generations "$work/gpqa-gen.jsonl" --quiet "${gpqa_run[@]}" && out_has "avg@1 *100.00"'
check "rescore keeps the run's order" eval 'run 0 rescore 1 "${gpqa_run[@]}" && out_has "avg@1 *100.00"'
check "rescore refuses another order" eval 'run 1 rescore 1 --gpqa-order hash "${gpqa_run[@]}" && err_has "placed its choices in the fixed order" && err_has "drop --gpqa-order"'
check "a run in the task's own order (mt19937) is rescored with --gpqa-order mt19937" eval 'run 0 run gpqa_diamond --limit 4 --metric avg@1 --samples 1 --generations "$work/gpqa-gen.jsonl" --quiet "${gpqa_run[@]}" && run 0 rescore 2 --gpqa-order mt19937 "${gpqa_run[@]}"'
check "... and refused with another, naming the task's order" eval 'run 1 rescore 2 --gpqa-order hash "${gpqa_run[@]}" && err_has "run 2 placed its choices in the mt19937 order" && one_line_err'

# --- task files
cat >"$work/good.json" <<'JSON'
{"name": "tiny", "answer_type": "math", "source": {"local": {"path": "tiny.jsonl"}, "documents": 2},
 "fields": {"question": "q", "answer": "a"}, "prompt": "Q: {{question}}"}
JSON
printf '{"q": "1+1", "a": "2"}\n{"q": "2+2", "a": "4"}\n' >"$work/tiny.jsonl"
check "--task-file adds a task" eval 'run 0 prompt tiny --doc 1 --chat-template none --task-file "$work/good.json" --data-dir "$work" && [ "$out" = "Q: 2+2" ]'
printf '{"name": "tiny", "answer_type": "math", "source": {"local": {"path": "t.jsonl"}}, "fields": {"question": "q", "answer": "a"}, "prompt": "{{question}}", "colour": 1}' >"$work/bad.json"
check "--task-file unknown key" eval 'run 2 tasks --task-file "$work/bad.json" && err_has "bad.json" && err_has "colour" && one_line_err'
printf '{"name": "tiny", "answer_type": "math", "source": {"local": {"path": "t.jsonl"}}, "fields": {"question": "q", "answer": "a"}, "prompt": "{{question}}", "metrics": ["pass@1", "bogus@x"]}' >"$work/badmetric.json"
check "--task-file with an unknown metric names the file and key" eval 'run 2 tasks --task-file "$work/badmetric.json" && err_has "badmetric.json: key .metrics.: metric .bogus@x." && one_line_err'
printf '\xef\xbb\xbf{"name": "bom", "answer_type": "math", "source": {"local": {"path": "t.jsonl"}}, "fields": {"question": "q", "answer": "a"}, "prompt": "{{question}}"}' >"$work/bom.json"
check "--task-file saved with a UTF-8 BOM is read" eval 'run 1 tasks --task-file "$work/bom.json" --data-dir "$work/nothing" && err_has "task bom: data not found"'
check "without --protocol ssft a task's SSFT metric is left out, said once, and the rest run" eval 'run 1 run aime25 --limit 1 --generations /dev/null --data-dir "$shared/data" --db "$work/x.sqlite" && err_has "^ssfteval: task aime25: default metric cons@6:native left out: it needs --protocol ssft$" && out_has "^aime25 *pass@1 " && out_has "^aime25 *cons@32 " && ! out_has "cons@6:native"'
printf '{"name": "onlyssft", "answer_type": "math", "source": {"local": {"path": "tiny.jsonl"}}, "fields": {"question": "q", "answer": "a"}, "prompt": "{{question}}", "metrics": ["cons@6:native"]}' >"$work/onlyssft.json"
printf '{"name": "wide", "answer_type": "math", "source": {"local": {"path": "tiny.jsonl"}}, "fields": {"question": "q", "answer": "a"}, "prompt": "{{question}}", "metrics": ["pass@64", "pass@8"]}' >"$work/widepass.json"
check "a spec's pass@64 loads (the SSFT protocol's 32 samples do not bound a spec)" eval 'run 0 prompt wide --doc 0 --task-file "$work/widepass.json" --data-dir "$work"'
check "--task-file may be given twice, each adding its tasks" eval 'run 0 prompt tiny --doc 1 --chat-template none --task-file "$work/good.json" --task-file "$work/widepass.json" --data-dir "$work" && [ "$out" = "Q: 2+2" ]'
check "a task's pass@8 past --samples 2 is a usage error before anything opens, not 'needs --protocol ssft'" eval 'run 2 run wide --metric pass@8 --samples 2 --task-file "$work/widepass.json" --data-dir "$work" --generations /dev/null --db "$work/x3.sqlite" && err_has "k = 8 exceeds n = 2" && run 2 run wide --samples 2 --task-file "$work/widepass.json" --data-dir "$work" --generations /dev/null --db "$work/x3.sqlite" && err_has "task wide.s default metrics: metric .pass@64.: k = 64 exceeds n = 2" && ! err_has "protocol" && [ ! -e "$work/x3.sqlite" ]'
check "--samples no metric draws is refused (avg@4 drew 4, not 8), one that agrees is taken" eval 'run 2 run wide --metric avg@4 --samples 8 --task-file "$work/widepass.json" --data-dir "$work" --generations /dev/null --db "$work/x4.sqlite" && err_has "^ssfteval: --samples 8: no metric of this run draws that many" && one_line_err && run 2 run aime25 --protocol ssft --metric pass@1 --samples 32 --generations /dev/null --data-dir "$shared/data" --db "$work/x4.sqlite" && err_has "^ssfteval: --samples 32: no metric" && [ ! -e "$work/x4.sqlite" ] && run 1 run wide --metric avg@4,cons@2 --samples 2 --task-file "$work/widepass.json" --data-dir "$work" --generations /dev/null --db "$work/x4.sqlite" && err_has "missing from"'
check "--groups no metric lays out is refused; cons@6:native, pass@1:tagK and compat cons@K take it" eval 'run 2 run aime25 --metric pass@1 --groups 4 --generations /dev/null --data-dir "$shared/data" --db "$work/x5.sqlite" && err_has "^ssfteval: --groups sets S, .* and no metric of this run has them" && run 2 run aime25 --protocol ssft --metric pass@1,cons@32 --groups 4 --generations /dev/null --data-dir "$shared/data" --db "$work/x5.sqlite" && [ ! -e "$work/x5.sqlite" ] && run 1 run aime25 --limit 1 --protocol ssft --metric cons@6:native --groups 2 --generations /dev/null --data-dir "$shared/data" --db "$work/x5.sqlite" && err_has "missing from" && run 1 run aime25 --limit 1 --protocol ssft --metric pass@1:tag1 --groups 4 --generations /dev/null --data-dir "$shared/data" --db "$work/x6.sqlite" && err_has " 4 samples planned" && run 1 run aime25 --limit 1 --protocol ssft --compat ssft-lighteval --metric cons@32 --groups 4 --generations /dev/null --data-dir "$shared/data" --db "$work/x7.sqlite"'
check "a task whose metrics all need the protocol says so" eval 'run 1 run onlyssft --task-file "$work/onlyssft.json" --data-dir "$work" --generations /dev/null --db "$work/x2.sqlite" && err_has "none of its default metrics applies without --protocol ssft; pass --protocol ssft or --metric"'
printf '{"name": "wide", "answer_type": "math", "source": {"local": {"path": "t.jsonl"}}, "fields": {"question": "q", "answer": "a"}, "prompt": "{{question}}", "groups": 4294967297}' >"$work/wide.json"
check "--task-file groups past an int is refused, not wrapped" eval 'run 2 tasks --task-file "$work/wide.json" && err_has "groups" && one_line_err'
printf '{"name": "empty", "answer_type": "math", "source": {"local": {"path": "empty.jsonl"}}, "fields": {"question": "q", "answer": "a"}, "prompt": "{{question}}"}' >"$work/empty.json"
: >"$work/empty.jsonl"
check "prompt of a task with no documents" eval 'run 1 prompt empty --doc 0 --task-file "$work/empty.json" --data-dir "$work" && err_has "has no documents" && one_line_err'
printf '{"q": "1+1", "a": "2"}\n{"q": "2+2" "a": "4"}\n' >"$work/tiny.jsonl"
check "malformed data line" eval 'run 1 prompt tiny --doc 0 --task-file "$work/good.json" --data-dir "$work" && err_has "tiny.jsonl:2" && one_line_err'

# --- grade
check "grade --help" run 0 grade --help
check "grade true" eval 'run 0 grade --gold 204 --pred "Therefore, the final answer is: \$\\boxed{204}\$. I hope it is correct" && [ "$out" = true ]'
check "grade false exits 1" eval 'run 1 grade --gold "\\frac{1}{2004!}" --pred "\$\\frac{1}{2006!}\$" && [ "$out" = false ]'
check "grade --explain" eval 'run 0 grade --gold "\\frac{\\pi}{2}" --pred "The answer is pi/2." --explain && out_has "pred extracted: pi/2" && out_has "reason:"'
check "grade letters" eval 'run 0 grade --gold C --pred "so **Answer: C**" --targets letters'
check "grade --json" eval 'run 0 grade --gold 5 --pred "\\boxed{5}" --json && out_has "\"verdict\": true" && out_has "\"pred_key\": \"q:5\""'
check "grade unclosed think is no answer" eval 'run 1 grade --gold 5 --pred "<think>\\boxed{5}" --json && out_has "\"no_answer\": true"'
check "grade --gold-is-answer: lighteval reads a task's gold as its solution's box (it took 3\\sqrt{13} for 3)" eval 'run 1 grade --profile lighteval --gold "3\\sqrt{13}" --pred "\\boxed{3\\sqrt{13}}" && run 0 grade --profile lighteval --gold-is-answer --gold "3\\sqrt{13}" --pred "\\boxed{3\\sqrt{13}}" && run 1 grade --profile lighteval --gold-is-answer --gold "3\\sqrt{13}" --pred "\\boxed{3}"'
printf '{"gold": "3\\\\sqrt{13}", "pred": "\\\\boxed{3\\\\sqrt{13}}", "profile": "lighteval", "gold_is_answer": true}\n{"gold": "3\\\\sqrt{13}", "pred": "\\\\boxed{3\\\\sqrt{13}}", "profile": "lighteval", "gold_is_answer": 1}\n' >"$work/isanswer.jsonl"
check "grade --jsonl: gold_is_answer true is read, and must be a boolean" eval 'run 1 grade --jsonl "$work/isanswer.jsonl" && [ "$(grep -c "\"verdict\":true" "$work/out")" -eq 1 ] && err_has "isanswer.jsonl:2: \"gold_is_answer\" must be true or false" && one_line_err'
check "grade --letters N: E is a choice of 5, not of 4" eval 'run 0 grade --gold E --pred "Answer: E" --targets letters --letters 5 && [ "$out" = true ] && run 1 grade --gold E --pred "Answer: E" --targets letters --letters 4 && [ "$out" = false ] && run 2 grade --gold E --pred "Answer: E" --targets letters --letters 1 && err_has "^ssfteval: --letters: '"'"'1'"'"' is not an integer in 2..26$" && one_line_err'
check "grade --precision N rounds at N places" eval 'run 0 grade --gold "\\frac{1}{3}" --pred "\$0.3333\$" --precision 4 && [ "$out" = true ] && run 1 grade --gold "\\frac{1}{3}" --pred "\$0.3333\$" && [ "$out" = false ]'
check "grade: an ungradable pair exits 1, as the help says" eval 'run 1 grade --gold "" --pred "\\boxed{5}" && [ "$out" = ungradable ]'
printf '{"gold": "3\\\\sqrt{13}", "pred": "\\\\boxed{3\\\\sqrt{13}}"}\n' >"$work/bare-lighteval.jsonl"
printf '{"gold": "B", "pred": "so Answer: B"}\n' >"$work/bare-letters.jsonl"
check "grade --jsonl: --profile and --gold-is-answer are each line's default" eval 'run 0 grade --jsonl "$work/bare-lighteval.jsonl" --profile lighteval --gold-is-answer && grep -q "\"verdict\":true" "$work/out" && run 0 grade --jsonl "$work/bare-lighteval.jsonl" --profile lighteval && grep -q "\"verdict\":false" "$work/out"'
check "grade --jsonl: --targets is each line's default" eval 'run 0 grade --jsonl "$work/bare-letters.jsonl" --targets letters && grep -q "\"verdict\":true,.*\"pred_extracted\":\"B\"" "$work/out"'
printf '%s\n' '{"gold": "B", "pred": "\\boxed{7} Answer: B", "targets": ["letters"]}' '{"gold": "B", "pred": "\\boxed{7} Answer: B", "targets": ["latex"]}' >"$work/linetargets.jsonl"
check "grade --jsonl: each line's targets decide what is read of its pred" eval 'run 0 grade --jsonl "$work/linetargets.jsonl" && [ "$(sed -n 1p "$work/out" | grep -c "\"verdict\":true,.*\"pred_extracted\":\"B\"")" -eq 1 ] && [ "$(sed -n 2p "$work/out" | grep -c "\"verdict\":false,.*\"pred_extracted\":\"7\"")" -eq 1 ]'
printf '{"gold": "B", "pred": "x", "targets": "letters"}\n' >"$work/strtargets.jsonl"
check "grade --jsonl: targets that are not a list are refused on their line" eval 'run 1 grade --jsonl "$work/strtargets.jsonl" && err_has "strtargets.jsonl:1: \"targets\" must be a list of \"latex\", \"expr\", \"letters\"$" && one_line_err'
check "grade bad profile" eval 'run 2 grade --gold 1 --pred 1 --profile sympy && err_has "default, lighteval or ssft-lighteval" && one_line_err'
check "grade bad targets" eval 'run 2 grade --gold 1 --pred 1 --targets words && err_has "--targets"'
check "grade needs --gold" eval 'run 2 grade --pred 1 && err_has "--gold"'
cat >"$work/pairs.jsonl" <<'JSON'
{"gold": "1/2", "pred": "$0.5$", "id": 7}
{"gold": "C", "pred": "Answer: B", "targets": ["letters"]}
{"gold": "\\frac{1}{3}", "pred": "$0.3333$", "precision": 4, "profile": "lighteval"}
JSON
check "grade --jsonl" eval 'run 0 grade --jsonl "$work/pairs.jsonl" && [ "$(grep -c "\"verdict\":true" "$work/out")" -eq 2 ] && [ "$(grep -c "\"verdict\":false" "$work/out")" -eq 1 ] && out_has "\"id\":7"'
printf '{"gold": "1", "pred": "1"}\n{"gold": 1, "pred": "1"}\n' >"$work/badpairs.jsonl"
check "grade --jsonl bad line" eval 'run 1 grade --jsonl "$work/badpairs.jsonl" && err_has "badpairs.jsonl:2" && one_line_err'
check "grade --jsonl missing file" eval 'run 1 grade --jsonl "$work/nope.jsonl" && err_has "nope.jsonl: No such file or directory; check the path" && one_line_err'
printf '{"gold": "1", "pred": "1", "precision": 2.5}\n' >"$work/badprec.jsonl"
check "grade --jsonl: a precision --precision would refuse is refused on its line" eval 'run 1 grade --jsonl "$work/badprec.jsonl" && err_has "badprec.jsonl:1: \"precision\" must be an integer 0..50" && one_line_err'
printf '{"gold": "1", "pred": "\\\\boxed{1}", "precision": null, "profile": null, "targets": null}\n' >"$work/nullprec.jsonl"
check "grade --jsonl: a null precision, profile or targets is the default" eval 'run 0 grade --jsonl "$work/nullprec.jsonl" && out_has "\"verdict\":true"'
printf '{"gold": "1", "pred": "1", "profile": "strict"}\n' >"$work/badprof.jsonl"
check "grade --jsonl: a bad profile's message names all three" eval 'run 1 grade --jsonl "$work/badprof.jsonl" && err_has "\"ssft-lighteval\"" && one_line_err'

# --- the Hub: a local stand-in serving ../shared/data in the Hub's layout
"$hubserver" --data-dir "$shared/data" --gpqa-zip "$shared/data/gpqa/dataset.zip" \
    --token hf_test --port-file "$work/port" &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
if [ ! -s "$work/port" ]; then
    not_ok "hubserver started"
else
    ok "hubserver started"
    export HF_ENDPOINT="http://127.0.0.1:$(cat "$work/port")"
    export SSFTEVAL_ROWS_ENDPOINT="$HF_ENDPOINT"
    check "data verify before fetch fails" eval 'run 1 data verify math_500 && err_has "cache"'
    check "data fetch math and aime" eval 'run 0 data fetch aime24 aime25 math_500 && out_has "math_500: fetched"'
    # a cache that fills mid-download (the file size limit, SIGXFSZ ignored:
    # the write fails as one past a full disk does)
    check "a full disk stops a fetch with one line naming the .incomplete and the fix" eval '(ulimit -f 100; trap "" XFSZ; SSFTEVAL_CACHE="$work/fullcache" run 1 data fetch math_500) && err_has "/test.jsonl.incomplete: File too large; free some space, or write to another disk (SSFTEVAL_CACHE names the cache.s folder); the next fetch resumes the download$" && one_line_err'
    check "... keeping what it stored, for the next fetch to resume from" eval 'part=$(find "$work/fullcache" -name test.jsonl.incomplete) && [ -n "$part" ] && [ "$(wc -c <"$part")" -gt 0 ]'
    check "... and with room again the next fetch completes it" eval 'SSFTEVAL_CACHE="$work/fullcache" run 0 data fetch math_500 && out_has "math_500: fetched" && SSFTEVAL_CACHE="$work/fullcache" run 0 data verify math_500 && [ -z "$(find "$work/fullcache" -name "*.incomplete")" ]'
    check "gated GPQA without HF_TOKEN" eval 'run 1 data fetch gpqa_diamond && err_has "gated" && err_has "HF_TOKEN" && one_line_err'
    check "gated GPQA with a wrong token" eval 'HF_TOKEN=hf_wrong run 1 data fetch gpqa_diamond && err_has "refused"'
    check "gated GPQA with the token" eval 'HF_TOKEN=hf_test run 0 data fetch gpqa_diamond'
    check "data verify" eval 'run 0 data verify && out_has "gpqa_diamond: verified"'
    check "tasks from the cache, offline" eval 'run 0 tasks --offline && grep -Eq "^gpqa_diamond +letters +198 " "$work/out"'
    check "prompt from the cache equals the data-dir one" eval \
        '[ "$("$ssfteval" prompt math_500 --doc 7 --offline | sha256sum)" = "$("$ssfteval" prompt math_500 --doc 7 --data-dir "$shared/data" | sha256sum)" ]'
    cached=$(find "$SSFTEVAL_CACHE" -name test.jsonl | head -n 1)
    chmod u+w "$cached" && printf 'x' >>"$cached"
    check "verify catches a corrupted cache file" eval 'run 1 data verify math_500 && err_has "mismatch"'
    check "offline, a corrupted file is named as such, not as missing" eval 'run 1 prompt math_500 --doc 0 --offline && err_has "does not match its pinned sha256" && one_line_err'
    check "fetch replaces the corrupted file" eval 'run 0 data fetch math_500 && run 0 data verify math_500'
    rows=$(find "$SSFTEVAL_CACHE/rows" -path "*aime_2024*" -name "*.jsonl" | head -n 1)
    chmod u+w "$rows" && sed -i '1s/"answer":"\([0-9]*\)"/"answer":"1\1"/' "$rows"
    check "an edited rows file is caught, offline" eval 'run 1 prompt aime24 --doc 0 --offline && err_has "does not match the digest of its download" && one_line_err'
    check "verify catches the edited rows file, and says to fetch it" eval 'run 1 data verify aime24 && err_has "digest" && err_has "run \`ssfteval data fetch\` with network access"'
    check "verify of every task goes on past the one that fails, and says which" eval 'run 1 data verify && err_has "aime_2024/default/train.jsonl does not match" && [ "$(wc -l <"$work/err")" -eq 1 ] && out_has "^aime25: verified$" && out_has "^math_500: verified$" && out_has "^gpqa_diamond: verified$"'
    check "online, the edited rows file is fetched again" eval 'run 0 data fetch aime24 && run 0 data verify aime24 && [ "$("$ssfteval" prompt aime24 --doc 0 --json --offline | sha256sum)" = "$("$ssfteval" prompt aime24 --doc 0 --json --data-dir "$shared/data" | sha256sum)" ]'
    check "offline with an empty cache" eval 'SSFTEVAL_CACHE="$work/empty" run 1 tasks --offline && err_has "offline"'
    kill "$server_pid" && wait "$server_pid" 2>/dev/null
    server_pid=
    check "unreachable Hub" eval 'SSFTEVAL_CACHE="$work/empty2" run 1 data fetch math_500 && err_has "cannot reach"'
fi

# --- model info: a tiny generated checkpoint (all zeros, F32), broken ones, and
# the same model from the test Hub
# make_model DIR TIED: Qwen2-shaped, hidden 8, 2 layers, 2 heads, 1 KV head,
# head dim 4, intermediate 12, vocabulary 16
make_model() {
    local dir=$1 tied=$2 header= off=0 n l p
    mkdir -p "$dir"
    add() { # NAME ROWS [COLS]
        n=$(($2 * ${3:-1} * 4))
        header="$header${header:+,}\"$1\":{\"dtype\":\"F32\",\"shape\":[$2${3:+,$3}],\"data_offsets\":[$off,$((off + n))]}"
        off=$((off + n))
    }
    add model.embed_tokens.weight 16 8
    for l in 0 1; do
        p=model.layers.$l
        add $p.input_layernorm.weight 8
        add $p.self_attn.q_proj.weight 8 8
        add $p.self_attn.q_proj.bias 8
        add $p.self_attn.k_proj.weight 4 8
        add $p.self_attn.k_proj.bias 4
        add $p.self_attn.v_proj.weight 4 8
        add $p.self_attn.v_proj.bias 4
        add $p.self_attn.o_proj.weight 8 8
        add $p.post_attention_layernorm.weight 8
        add $p.mlp.gate_proj.weight 12 8
        add $p.mlp.up_proj.weight 12 8
        add $p.mlp.down_proj.weight 8 12
    done
    add model.norm.weight 8
    [ "$tied" = true ] || add lm_head.weight 16 8
    header="{$header}"
    n=${#header}
    printf "$(printf '\\x%02x\\x%02x\\x%02x\\x00\\x00\\x00\\x00\\x00' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)))" >"$dir/model.safetensors"
    printf '%s' "$header" >>"$dir/model.safetensors"
    head -c "$off" /dev/zero >>"$dir/model.safetensors"
    cat >"$dir/config.json" <<JSON
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 8,
 "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
 "intermediate_size": 12, "vocab_size": 16, "max_position_embeddings": 1024,
 "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "tie_word_embeddings": $tied,
 "hidden_act": "silu", "use_sliding_window": false, "eos_token_id": 15}
JSON
    printf '{"eos_token_id": [15, 13], "top_k": 20}\n' >"$dir/generation_config.json"
    printf '{}\n' >"$dir/tokenizer.json"
}
make_model "$work/models/ssfteval-test/tiny" true
cp -r "$work/models/ssfteval-test/tiny" "$work/tiny-untied" && make_model "$work/tiny-untied" false
cp "$SSFTEVAL_SOURCE_ROOT/tests/fixtures/engine/gqa5-hd128/tokenizer_config.json" \
    "$work/models/ssfteval-test/tiny/" # Qwen2.5-Instruct's chat template
tiny="$work/models/ssfteval-test/tiny"
check "model --help" eval 'run 0 model --help && out_has "hf:ORG/NAME"'
check "model without info" eval 'run 2 model describe "$tiny" && err_has "expected '"'"'info'"'"'"'
check "model info without a path" eval 'run 2 model info && err_has "PATH"'
check "model info" eval 'run 0 model info "$tiny" && out_has "Qwen2ForCausalLM" && out_has "2 query, 1 KV (GQA ratio 2), head dim 4" && out_has "tied embeddings *yes" && out_has "eos token ids *15, 13" && out_has "parameters *1.2K (1160)" && out_has "stored dtype *F32" && out_has "weight memory *4.5 KiB" && out_has "32 B per token, 32.0 KiB for one 1024-token sequence" && out_has "chat template *qwen2.5"'
check "model info untied" eval 'run 0 model info "$work/tiny-untied" && out_has "parameters *1.3K (1288)" && out_has "tied embeddings *no" && out_has "none found (pass --chat-template)"'
cp -r "$tiny" "$work/badcfg" && printf '{oops' >"$work/badcfg/tokenizer_config.json"
check "model info with a tokenizer_config.json that is not JSON: exit 1, one line naming the file and the JSON error" eval 'run 1 model info "$work/badcfg" && err_has "^ssfteval: $work/badcfg/tokenizer_config.json:1: cannot read the tokenizer config: .*expected" && one_line_err && [ ! -s "$work/out" ] && run 1 model info "$work/badcfg" --json && one_line_err'
check "... even with chat_template.jinja beside it (the engine's tokenizer reads the config too)" eval 'printf "{{ x }}" >"$work/badcfg/chat_template.jinja" && run 1 model info "$work/badcfg" && err_has "tokenizer_config.json:1: cannot read the tokenizer config" && one_line_err'
cp -r "$work/tiny-untied" "$work/tiny-inst" && printf '{"chat_template": "[INST] {{ m }}"}\n' >"$work/tiny-inst/tokenizer_config.json"
check "model info says a chat template it does not render is none it renders (null in --json)" eval 'run 0 model info "$work/tiny-inst" && out_has "^chat template  *not one ssfteval renders (pass --chat-template)$" && run 0 model info "$work/tiny-inst" --json && out_has "\"chat_template\": null"'
check "model info --json" eval 'run 0 model info "$tiny" --json && out_has "\"parameters\": 1160" && out_has "\"kv_bytes_per_token_bf16\": 32" && out_has "\"chat_template\": \"qwen2.5\"" && out_has "\"eos_token_ids\": \[$"'
latin1_dir="$work/$(printf 'mod\xe8le')"
cp -r "$tiny" "$latin1_dir"
check "model info --json of a directory named in Latin-1: one error line, no crash" eval 'run 1 model info "$latin1_dir" --json && err_has "is not valid UTF-8 and cannot be written as JSON" && one_line_err && run 0 model info "$latin1_dir"'
check "model info missing directory" eval 'run 1 model info "$work/nomodel" && err_has "model directory $work/nomodel not found" && err_has "hf:ORG/NAME" && one_line_err'
mkdir -p "$work/broken" && cp "$tiny/config.json" "$work/broken/"
head -c 700 "$tiny/model.safetensors" >"$work/broken/model.safetensors"
check "model info truncated checkpoint" eval 'run 1 model info "$work/broken" && err_has "$work/broken/model.safetensors" && err_has "larger than the file" && one_line_err'
head -c 6000 "$tiny/model.safetensors" >"$work/broken/model.safetensors"
check "model info cut-off data" eval 'run 1 model info "$work/broken" && err_has "$work/broken/model.safetensors: tensor model" && err_has "truncated" && one_line_err'
sed 's/"num_key_value_heads": 1/"num_key_value_heads": 2/' "$tiny/config.json" >"$work/broken/config.json"
cp "$tiny/model.safetensors" "$work/broken/"
check "model info shape against config" eval 'run 1 model info "$work/broken" && err_has "model.layers.0.self_attn.k_proj.weight in $work/broken/model.safetensors: shape \[4, 8\], config says \[8, 8\]"'

"$hubserver" --data-dir "$shared/data" --models-dir "$work/models" --port-file "$work/port2" &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/port2" ] && break; sleep 0.05; done
if [ ! -s "$work/port2" ]; then
    not_ok "hubserver with models started"
else
    export HF_ENDPOINT="http://127.0.0.1:$(cat "$work/port2")"
    check "model info hf:" eval 'SSFTEVAL_CACHE="$work/mcache" run 0 model info hf:ssfteval-test/tiny@r1 && out_has "$work/mcache/hub/models/ssfteval-test/tiny/r1" && out_has "(1160)" && out_has "qwen2.5"'
    check "model info hf: missing repo" eval 'SSFTEVAL_CACHE="$work/mcache" run 1 model info hf:ssfteval-test/none && err_has "model ssfteval-test/none@main" && err_has "404" && one_line_err'
    check "model info hf: bad spec" eval 'run 1 model info hf:justname && err_has "hf:ORG/NAME"'
    kill "$server_pid" && wait "$server_pid" 2>/dev/null
    server_pid=
    check "model info hf: offline from the cache" eval 'SSFTEVAL_CACHE="$work/mcache" run 0 model info hf:ssfteval-test/tiny@r1 --offline && out_has "(1160)"'
fi

# --- tokenize: text to ids and back with the Qwen tokenizers of ../shared
qtok="$shared/tokenizers/qwen2.5/tokenizer.json"
check "tokenize --help" run 0 tokenize --help
check "tokenize --text" eval 'run 0 tokenize --tokenizer "$qtok" --text "Hello world" && [ "$out" = "{\"text\":\"Hello world\",\"ids\":[9707,1879]}" ]'
check "tokenize --text with special tokens (qwen3 directory)" eval \
    'run 0 tokenize --tokenizer "$shared/tokenizers/qwen3" --text "<|im_start|><think1>
</think>" && out_has "\"ids\":\[151644,13708,766,16,397,151668\]"'
check "tokenize needs --tokenizer" eval 'run 2 tokenize --text x && err_has "--tokenizer" && one_line_err'
check "tokenize --decode needs --jsonl" eval 'run 2 tokenize --tokenizer "$qtok" --text x --decode && one_line_err'
check "tokenize with a missing tokenizer" eval 'run 1 tokenize --tokenizer "$work/none.json" --text x && err_has "none.json" && one_line_err'
check "tokenize rejects invalid UTF-8" eval 'run 1 tokenize --tokenizer "$qtok" --text "$(printf "a\377")" && err_has "UTF-8" && one_line_err'
printf '{"text": "Hello world", "id": 3}\n{"text": "<|im_start|>hello<|im_end|>"}\n' >"$work/texts.jsonl"
check "tokenize --jsonl" eval 'run 0 tokenize --tokenizer "$qtok" --jsonl "$work/texts.jsonl" && [ "$(wc -l <"$work/out")" -eq 2 ] && out_has "\"id\":3,\"ids\":\[9707,1879\]" && out_has "\"ids\":\[151644,14990,151645\]"'
printf '{"ids": [151644, 14990, 151645]}\n{"ids": [227, 65]}\n{"ids": [9707, 1879], "k": 1}\n' >"$work/ids.jsonl"
check "tokenize --decode" eval 'run 0 tokenize --tokenizer "$qtok" --jsonl "$work/ids.jsonl" --decode && out_has "\"text\":\"<|im_start|>hello<|im_end|>\"" && out_has "\"text\":\"$(printf "\357\277\275")b\"" && out_has "\"k\":1,\"text\":\"Hello world\""'
printf '{"ids": [64, 188, 65]}\n' >"$work/nul-ids.jsonl"
check "tokenize --decode keeps a U+0000 and what follows (it cut the text there)" eval 'run 0 tokenize --tokenizer "$qtok" --jsonl "$work/nul-ids.jsonl" --decode && out_has "\"text\":\"a\\\\u0000b\""'
cp "$work/out" "$work/nul-text.jsonl"
check "tokenize --jsonl encodes the U+0000 that --decode wrote (it refused the line)" eval 'run 0 tokenize --tokenizer "$qtok" --jsonl "$work/nul-text.jsonl" && out_has "\"ids\":\[64,188,65\]"'
check "grade --jsonl still refuses a U+0000 in a text" eval 'printf "{\"gold\": \"1\", \"pred\": \"a\\\\u0000\"}\n" >"$work/nul-grade.jsonl" && run 1 grade --jsonl "$work/nul-grade.jsonl" && err_has "u0000" && one_line_err'
check "tokenize --decode --skip-special" eval 'run 0 tokenize --tokenizer "$qtok" --jsonl "$work/ids.jsonl" --decode --skip-special && out_has "\"text\":\"hello\""'
printf '{"text": "ok"}\n{"txt": "no"}\n' >"$work/badtexts.jsonl"
check "tokenize --jsonl bad line" eval 'run 1 tokenize --tokenizer "$qtok" --jsonl "$work/badtexts.jsonl" && err_has "badtexts.jsonl:2" && one_line_err'
printf '{"ids": [1, 2]}\n{"ids": [1, 999999]}\n' >"$work/badids.jsonl"
check "tokenize --decode unknown id" eval 'run 1 tokenize --tokenizer "$qtok" --jsonl "$work/badids.jsonl" --decode && err_has "badids.jsonl:2" && err_has "999999" && one_line_err'
check "tokenize round trip through the command" eval \
    '"$ssfteval" tokenize --tokenizer "$qtok" --jsonl "$work/texts.jsonl" | "$ssfteval" tokenize --tokenizer "$qtok" --jsonl - --decode >"$work/rt" && grep -q "\"text\":\"Hello world\"" "$work/rt"'

tap_end
