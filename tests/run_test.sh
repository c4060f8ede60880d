#!/usr/bin/env bash
# run_test.sh - `ssfteval run` end to end through the replay backend: the
# SSFT metrics on a hand-computed case, failed samples, resume, kill -9 at
# random moments, reports, compare, rescore, export, and refused stores.
#
# usage: run_test.sh SSFTEVAL MOCKSERVER   Prints TAP.
set -u
ssfteval=$1
mockserver=$2
echo "# ssfteval run tests"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
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
metric() { # TASK METRIC: the value column of the run's summary (percent)
    awk -v t="$1" -v m="$2" '$1 == t && $2 == m { print $3 }' "$work/out"
}

# A synthetic task: gold of doc d is d+1.
cat >"$work/synth.json" <<'JSON'
{"name": "synth", "answer_type": "math", "source": {"local": {"path": "synth.jsonl"}},
 "fields": {"question": "q", "answer": "a"}, "prompt": "Q: {{question}}",
 "metrics": ["pass@1", "cons@6:native", "cons@32"], "groups": 2}
JSON
printf '{"q": "one", "a": "1"}\n{"q": "two", "a": "2"}\n' >"$work/synth.jsonl"

# Generations, hand-designed (see the expected values below):
# doc 0 (gold 1): tag1 idx<16 "1" else "9"; tags 2-6 "9", except tag2 idx0 "1".
# doc 1 (gold 2): tag1 "2"; tags 2-6 idx0 "3", else "2"; tag2 idx1 gives no answer.
gen() { # DOC TAG IDX
    local d=$1 t=$2 i=$3 a
    if [ "$d" -eq 0 ]; then
        if [ "$t" -eq 1 ]; then [ "$i" -lt 16 ] && a=1 || a=9
        elif [ "$t" -eq 2 ] && [ "$i" -eq 0 ]; then a=1; else a=9; fi
    else
        if [ "$t" -eq 1 ]; then a=2
        elif [ "$t" -eq 2 ] && [ "$i" -eq 1 ]; then a=""
        elif [ "$i" -eq 0 ]; then a=3; else a=2; fi
    fi
    if [ -z "$a" ]; then text="I could not finish this one."
    else text="Reasoning. Therefore, the final answer is: \$\\\\boxed{$a}\$. I hope it is correct"; fi
    printf '{"task": "synth", "doc": %d, "tag": %d, "sample": %d, "text": "%s", "finish_reason": "stop"}\n' \
        "$d" "$t" "$i" "$text"
}
: >"$work/gen.jsonl"
for d in 0 1; do for t in 1 2 3 4 5 6; do
    count=6; [ "$t" -eq 1 ] && count=32; [ "$t" -ge 3 ] && count=5
    for ((i = 0; i < count; i++)); do gen "$d" "$t" "$i" >>"$work/gen.jsonl"; done
done; done
common=(--task-file "$work/synth.json" --data-dir "$work" --protocol ssft --quiet)

# 1. Hand-computed SSFT metrics.
# pass@1 = (16/32 + 32/32)/2 = 75; native (S=2): doc0 groups [1,1,9,9,9,9] and
# [1,9,9,9,9,9] -> 9, 9 -> 0; doc1 [2,3,3,3,3,3] -> 3, [2,none,2,2,2,2] -> 2 -> 1/2;
# mean 25.  cons@32 (tags round-robin 6,6,5,5,5,5): doc0 "1" x7 vs "9" x25 -> 0;
# doc1 "2" x26 -> 1; mean 50.
check "run synth" run 0 run synth --generations "$work/gen.jsonl" --db "$work/a.sqlite" "${common[@]}"
check "pass@1 = 75" [ "$(metric synth pass@1)" = "75.00" ]
check "cons@6:native = 25" [ "$(metric synth cons@6:native)" = "25.00" ]
check "cons@32 = 50" [ "$(metric synth cons@32)" = "50.00" ]
check "planned 32+6+4*5 per question" grep -q "116 samples planned" "$work/err"

# 1b. Without the protocol, pass@1 beside cons@4 is the mean over all four
# samples a question: doc 0 "1","9","9","9" -> 1/4, doc 1 "2" x4 -> 1: 62.5
# (the first sample's verdict alone gave 100).  cons@4: doc 0 -> 9, doc 1 -> 2: 50.
for s in 0 1 2 3; do
    a=9; [ "$s" -eq 0 ] && a=1
    printf '{"task": "synth", "doc": 0, "sample": %d, "text": "\\\\boxed{%s}"}\n{"task": "synth", "doc": 1, "sample": %d, "text": "\\\\boxed{2}"}\n' "$s" "$a" "$s"
done >"$work/untagged.jsonl"
check "pass@1 without --samples averages every sample the run draws" eval 'run 0 run synth --generations "$work/untagged.jsonl" --db "$work/u.sqlite" --task-file "$work/synth.json" --data-dir "$work" --metric pass@1,cons@4 --quiet && [ "$(metric synth pass@1)" = "62.50" ] && [ "$(metric synth cons@4)" = "50.00" ] && grep -q " 8 samples planned" "$work/err" && run 0 rescore 1 --db "$work/u.sqlite" --task-file "$work/synth.json" --data-dir "$work" && [ "$(metric synth pass@1)" = "62.50" ]'
# A run stored before the task entry said its n was scored with n = K, and
# is still: rescore and compare agree with what report shows.
check "a stored run without its sample count keeps pass@K's n = K" eval 'sqlite3 "$work/u.sqlite" "UPDATE runs SET config_json = json_remove(config_json, '"'"'\$.tasks[0].samples'"'"') WHERE id = 1" && run 0 rescore 1 --db "$work/u.sqlite" --task-file "$work/synth.json" --data-dir "$work" && [ "$(metric synth pass@1)" = "100.00" ]'

# 2. A rerun resumes and generates nothing.
check "rerun resumes" eval 'run 0 run synth --generations "$work/gen.jsonl" --db "$work/a.sqlite" "${common[@]}" && grep -q "resumed" "$work/err" && grep -q "116 stored before, 0 generated" "$work/err"'

# 3. Failed samples: missing from the file -> stored as failed, never scored.
grep -v '"doc": 0, "tag": 3, "sample": 0,' "$work/gen.jsonl" >"$work/gen-missing.jsonl"
check "missing sample -> incomplete, exit 1" eval 'run 1 run synth --generations "$work/gen-missing.jsonl" --db "$work/b.sqlite" "${common[@]}" && grep -q "incomplete" "$work/err" && grep -q "1 failed" "$work/err"'
check "the failed sample is named on stderr as it fails" grep -q "^ssfteval: synth doc 0 tag 3 sample 0 failed: " "$work/err"
check "pass@1 unaffected (needs tag 1 only)" [ "$(metric synth pass@1)" = "75.00" ]
check "cons@32 leaves doc 0 out" eval '[ "$(metric synth cons@32)" = "100.00" ] && grep -q "excluded" "$work/out"'
check "rerun with the same file retries exactly the failed one, and says the file is what lacks it" eval 'run 1 run synth --generations "$work/gen-missing.jsonl" --db "$work/b.sqlite" "${common[@]}" && grep -q "run 1 incomplete (resumed): 116 samples planned, 115 stored before, 0 generated, 1 failed; the file lacks them or marks them failed (a file that has them is another run)$" "$work/err"'
check "the file with the line added is another run (the file is the samples)" eval 'run 0 run synth --generations "$work/gen.jsonl" --db "$work/b.sqlite" "${common[@]}" && grep -q "run 2 done (new): 116 samples planned" "$work/err" && [ "$(metric synth cons@32)" = "50.00" ]'
sed 's/boxed{2}/boxed{5}/' "$work/gen.jsonl" >"$work/gen-other.jsonl"
check "another model's file under the same options is another run, not a resume of the first (it was ignored)" eval 'run 0 run synth --generations "$work/gen-other.jsonl" --db "$work/b.sqlite" "${common[@]}" && grep -q "run 3 done (new): 116 samples planned" "$work/err" && [ "$(metric synth cons@32)" = "0.00" ]'
# A generation the server cut off (abort, error) or withheld (content_filter)
# is a failed sample, never a wrong answer.
grep -v '"doc": 0, "tag": 3,' "$work/gen.jsonl" |
    sed -e '/"doc": 1, "tag": 1, "sample": 0,/s/"stop"/"abort"/' \
        -e '/"doc": 1, "tag": 1, "sample": 1,/s/"stop"/"error"/' \
        -e '/"doc": 1, "tag": 1, "sample": 2,/s/"stop"/"content_filter"/' \
        -e '/"doc": 1, "tag": 1, "sample": 3,/s/"stop"/"abort"/' >"$work/gen-cut.jsonl"
check "cut-off generations fail (exit 1): 5 missing + 4 cut" eval 'run 1 run synth --generations "$work/gen-cut.jsonl" --db "$work/b2.sqlite" "${common[@]}" && grep -q "9 failed" "$work/err"'
check "distinct reasons: each said once, three in all, then a pointer to show" eval '[ "$(grep -c " failed: " "$work/err")" -eq 3 ] && [ "$(grep -c " failed: missing from " "$work/err")" -eq 1 ] && grep -q "doc 1 tag 1 sample 0 failed: .*gen-cut.jsonl: finish_reason \"abort\": the server stopped the generation unfinished; regenerate this sample" "$work/err" && grep " failed: " "$work/err" | tail -1 | grep -q "(further reasons: ssfteval show [0-9]* --doc N)$"'
check "pass@1 leaves doc 1 (4 of its tag-1 samples failed) out: doc 0's 50" eval '[ "$(metric synth pass@1)" = "50.00" ] && grep "^synth *pass@1 " "$work/out" | grep -q "1 excluded"'
check "report md marks a value that left questions out" eval 'run 0 report --db "$work/b2.sqlite" && grep -q "^| - | 1 | ssfteval | 50.00 (1 left out) | 50.00 |$" "$work/out"'
check "report csv leaves a standard error of one question empty, not nan" eval 'run 0 report --format csv --db "$work/b2.sqlite" && grep -q ",pass@1,0.500000,,0.500000,0.500000,1," "$work/out" && ! grep -q nan "$work/out"'
check "export leaves the failed samples out and counts them in one line" eval 'run 0 export 1 --db "$work/b2.sqlite" --out "$work/b2.jsonl" && grep -q "^export: run 1: 9 failed samples left out: no generation to replay$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ] && ! grep -q "\"finish_reason\": *\"\(abort\|error\)\"" "$work/b2.jsonl"'
check "show lists them as FAILED, not wrong" eval 'run 0 show 1 --doc 1 --db "$work/b2.sqlite" && [ "$(grep -c "sample [0-3]  seed [0-9]*  FAILED: .*finish_reason" "$work/out")" -eq 4 ] && ! grep -q "abort  wrong\|content_filter  wrong" "$work/out"'

check "progress lines (stderr not a terminal): the last one is said once" eval '"$ssfteval" run synth --generations "$work/gen.jsonl" --db "$work/p.sqlite" --task-file "$work/synth.json" --data-dir "$work" --metric avg@1 --samples 1 --limit 1 >/dev/null 2>"$work/err"; [ "$(grep -c "^\[1/1\] " "$work/err")" -eq 1 ]'
check "report md says a run took the first N questions (--limit)" eval 'run 0 run synth --generations "$work/gen.jsonl" --db "$work/lim.sqlite" "${common[@]}" --metric pass@1 --limit 1 && run 0 report --db "$work/lim.sqlite" && grep -q "| 50.00 (first 1) |" "$work/out" && run 0 report --db "$work/a.sqlite" 1 && ! grep -q "(first [0-9]" "$work/out" && run 0 run synth --generations "$work/gen.jsonl" --db "$work/lim2.sqlite" "${common[@]}" --metric pass@1 --limit 2 && run 0 report --db "$work/lim2.sqlite" && ! grep -q "(first [0-9]" "$work/out"'

# 4. Reports, show, export, rescore, compare.
check "report md" eval 'run 0 report 1 --db "$work/a.sqlite" && grep -q "### cons@32" "$work/out" && grep -q "| synth |" "$work/out"'
check "report csv" eval 'run 0 report --format csv --db "$work/a.sqlite" && grep -q "^1,.*,synth,ssft,ssfteval,default,pass@1,0.750000" "$work/out"'
check "report json" eval 'run 0 report --format json --db "$work/a.sqlite" && grep -q "\"n_questions\": 2" "$work/out"'
check "report json and csv say what the numbers came from: the run's identity, build, seed, sampling, data" eval 'hash=$(sqlite3 "$work/a.sqlite" "SELECT config_hash FROM runs WHERE id = 1") && run 0 report 1 --format json --db "$work/a.sqlite" && grep -q "\"config_hash\": \"$hash\"" "$work/out" && grep -q "\"version\": \"0\.1\.0" "$work/out" && grep -q "\"seed\": " "$work/out" && grep -q "\"temperature\": " "$work/out" && grep -q "\"questions_sha256\": \"[0-9a-f]\{64\}\"" "$work/out" && run 0 report 1 --format csv --db "$work/a.sqlite" && head -n 1 "$work/out" | grep -q ",n_missing,k,n,config_hash,version$" && grep -q ",$hash,0\.1\.0" "$work/out"'
check "runs" eval 'run 0 runs --db "$work/a.sqlite" && grep -q "done" "$work/out"'
check "show --task of a task the run lacks names the run's tasks" eval 'run 1 show 1 --doc 0 --task synthx --db "$work/a.sqlite" && grep -q "^ssfteval: run 1 has no task synthx; its tasks: synth$" "$work/err"'
cp "$work/a.sqlite" "$work/future.sqlite"
sqlite3 "$work/future.sqlite" "update runs set profile = 'future' where id = 1"
check "rescore of a run graded under a profile unknown here asks for --profile" eval 'run 1 rescore 1 --db "$work/future.sqlite" --task-file "$work/synth.json" --data-dir "$work" && grep -q "^ssfteval: run 1 was graded under profile .future., unknown here; pass --profile$" "$work/err"'
# A store on read-only media: no -shm can be made beside it, which reading a
# WAL store needs; it is read immutable.  Root writes anywhere, so as root
# the reader is nobody.
ro=$(mktemp -d "/tmp/ssfteval-ro#%41.XXXXXX") # a URI's # and % are the reader's to escape
cp "$work/a.sqlite" "$ro/" && chmod 644 "$ro/a.sqlite" && chmod 555 "$ro"
reader() { if [ "$(id -u)" -eq 0 ]; then su nobody -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
if [ "$(id -u)" -ne 0 ] || su nobody -s /bin/sh -c true 2>/dev/null; then
    check "a store in a read-only directory is read" eval 'reader "\"$ssfteval\" runs --db $ro/a.sqlite" >"$work/out" 2>"$work/err" && grep -q "done" "$work/out" && [ "$(ls "$ro")" = a.sqlite ]'
    rw=$(mktemp -d /tmp/ssfteval-rw.XXXXXX) && chmod 777 "$rw" && ln -s "$ro/a.sqlite" "$rw/link.sqlite"
    check "... through a link from a writable one, and by a path with //" eval 'reader "\"$ssfteval\" runs --db $rw/link.sqlite && \"$ssfteval\" runs --db /$ro/a.sqlite" >"$work/out" 2>"$work/err" && [ "$(grep -c done "$work/out")" -eq 2 ]'
    rm -rf "$rw"
    chmod 755 "$ro" && : >"$ro/a.sqlite-wal" && chmod 555 "$ro"
    check "... but with a -wal and no -shm beside it: one line naming the fix" eval '! reader "\"$ssfteval\" runs --db $ro/a.sqlite" >"$work/out" 2>"$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "a store with a -wal file needs a -shm file beside it, which this directory may not allow; copy the store and its -wal to a writable directory$" "$work/err"'
fi
chmod 755 "$ro" && rm -rf "$ro"
check "an empty database names the -wal a copy needs" eval ': >"$work/empty.sqlite" && run 1 runs --db "$work/empty.sqlite" && grep -q "holds no ssfteval results (empty database): check the --db path (a copy made while a run wrote needs the -wal file beside it copied too)$" "$work/err"'
check "runs --json: an entry a run, read back with json_extract" eval 'run 0 runs --json --db "$work/a.sqlite" && [ "$(sqlite3 :memory: "SELECT json_extract(readfile('"'"'$work/out'"'"'), '"'"'\$[0].run_id'"'"') || '"'"' '"'"' || json_extract(readfile('"'"'$work/out'"'"'), '"'"'\$[0].status'"'"') || '"'"' '"'"' || json_extract(readfile('"'"'$work/out'"'"'), '"'"'\$[0].tasks'"'"')")" = "1 done synth" ]'
check "runs takes no argument" eval 'run 2 runs 42 --db "$work/a.sqlite" && grep -q "unexpected argument .42." "$work/err"'
check "show" eval 'run 0 show 1 --doc 1 --db "$work/a.sqlite" && grep -q "no answer" "$work/out" && [ "$(grep -c "right" "$work/out")" -gt 50 ]'
check "show --profile a run was not graded under says so on each sample" eval 'run 0 show 1 --doc 0 --profile ssft-lighteval --db "$work/a.sqlite" && [ "$(grep -c "  not graded under this profile$" "$work/out")" -eq 58 ]'
check "show without --doc is a bad command line" eval 'run 2 show 1 --db "$work/a.sqlite" && grep -q "^ssfteval: show: --doc N is required; see \`ssfteval show --help\`$" "$work/err"'
check "show of a doc without samples is one line naming it" eval 'run 1 show 1 --doc 5 --db "$work/a.sqlite" && grep -q "^ssfteval: run 1 has no stored sample for doc 5$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ]'
check "export round-trips" eval 'run 0 export 1 --db "$work/a.sqlite" --out "$work/exported.jsonl" && [ "$(wc -l <"$work/exported.jsonl")" -eq 116 ] && run 0 run synth --generations "$work/exported.jsonl" --db "$work/c.sqlite" "${common[@]}" && [ "$(metric synth cons@32)" = "50.00" ]'
echo "precious" >"$work/keep.jsonl"
# A run's reasoning (what chat servers send apart) goes through replay and
# export unchanged.
sed 's/"finish_reason": "stop"}$/"finish_reason": "stop", "reasoning": "thought on doc \\u00e9"}/' "$work/gen.jsonl" >"$work/gen-reasoning.jsonl"
check "export keeps each sample's reasoning" eval 'run 0 run synth --generations "$work/gen-reasoning.jsonl" --db "$work/reasoning.sqlite" "${common[@]}" && run 0 export 1 --db "$work/reasoning.sqlite" --out "$work/reasoning-out.jsonl" && [ "$(grep -c "\"reasoning\": *\"thought on doc \(\\\é\|é\)\"" "$work/reasoning-out.jsonl")" -eq 116 ]'
check "export of a run the store lacks: exit 1, --out left as it was" eval 'run 1 export 99 --db "$work/a.sqlite" --out "$work/keep.jsonl" && grep -q "99" "$work/err" && [ "$(cat "$work/keep.jsonl")" = precious ]'
check "export --out naming the store is refused, the store intact" eval 'before=$(sha256sum <"$work/a.sqlite") && run 2 export 1 --db "$work/a.sqlite" --out "$work/a.sqlite" && grep -q "is the results store" "$work/err" && [ "$(sha256sum <"$work/a.sqlite")" = "$before" ] && run 0 runs --db "$work/a.sqlite"'
ln -s "$work/keep.jsonl" "$work/link.jsonl"
check "export --out a symbolic link writes its target, the link stays" eval 'run 0 export 1 --db "$work/a.sqlite" --out "$work/link.jsonl" && [ -L "$work/link.jsonl" ] && [ "$(wc -l <"$work/keep.jsonl")" -eq 116 ]'
ln -s "$work/not-yet.jsonl" "$work/dangling.jsonl"
check "export --out a dangling link creates its target, the link stays" eval 'run 0 export 1 --db "$work/a.sqlite" --out "$work/dangling.jsonl" && [ -L "$work/dangling.jsonl" ] && [ "$(wc -l <"$work/not-yet.jsonl")" -eq 116 ]'
echo first >"$work/appended.jsonl"
check "export --out /dev/stdout into a file opened to append keeps what it held" eval '"$ssfteval" export 1 --db "$work/a.sqlite" --out /dev/stdout >>"$work/appended.jsonl" && [ "$(head -1 "$work/appended.jsonl")" = first ] && [ "$(wc -l <"$work/appended.jsonl")" -eq 117 ]'
mkfifo "$work/pipe"
cat "$work/pipe" >"$work/piped.jsonl" &
reader=$!
run 0 export 1 --db "$work/a.sqlite" --out "$work/pipe"
for _ in $(seq 50); do kill -0 "$reader" 2>/dev/null || break; sleep 0.1; done
kill "$reader" 2>/dev/null # a reader still waiting: the pipe was never written
check "export --out a named pipe writes into it, the pipe stays" eval '[ -p "$work/pipe" ] && [ "$(wc -l <"$work/piped.jsonl")" -eq 116 ]'
check "a run refused for its data creates no store (an empty one was left behind)" eval 'mkdir -p "$work/nodata" && run 1 run synth --generations "$work/gen.jsonl" --task-file "$work/synth.json" --data-dir "$work/nodata" --db "$work/nodata.sqlite" --quiet && grep -q "^ssfteval: task synth: data not found: $work/nodata/synth.jsonl does not exist" "$work/err" && [ ! -e "$work/nodata.sqlite" ]'
check "compare over one question shows no standard error (-, as report does; it showed 0.00)" eval 'run 0 run synth --generations "$work/gen.jsonl" --db "$work/one.sqlite" "${common[@]}" --metric pass@1 --limit 1 && run 0 run synth --generations "$work/gen.jsonl" --db "$work/one.sqlite" "${common[@]}" --metric pass@1 --limit 1 --seed 7 && run 0 compare 1 2 --db "$work/one.sqlite" && grep -Eq "^synth +pass@1 +50.00 +50.00 +\+0.00 +- +1  ok$" "$work/out"'
check "compare with a bad run id says so in one line" eval 'run 2 compare x 1 --db "$work/a.sqlite" && grep -q "^ssfteval: .x. is not a run id (see .ssfteval runs.)$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ]'
check "a run id past 64 bits is refused, not clamped" eval 'run 2 export 99999999999999999999 --db "$work/a.sqlite" && grep -q "is not a run id" "$work/err"'
check "rescore of a run of a task from a spec file, without --task-file: one line naming the task and the fix" eval 'run 1 rescore 1 --db "$work/a.sqlite" --data-dir "$work" && grep -q "^ssfteval: run 1 evaluated task synth, which is not known here; pass --task-file FILE with the spec it was run with$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ]'
# rescore while another connection holds the store's write lock and then
# commits (a run writing it): rescore reads its samples first and stores
# the grades after, so its writes wait for the other writer; a write inside
# the read would fail at once (no busy wait inside a read, and a stale
# snapshot once the other commits).
(echo ".timeout 5000"; echo "BEGIN IMMEDIATE; UPDATE runs SET finished_at = finished_at WHERE id = 1;"; sleep 2; echo "COMMIT;") | sqlite3 "$work/a.sqlite" &
holder=$!
for _ in $(seq 100); do sqlite3 "$work/a.sqlite" "BEGIN IMMEDIATE; ROLLBACK;" 2>/dev/null || break; sleep 0.02; done
check "rescore while another connection writes the store waits for it, then stores every grade" eval 'run 0 rescore 1 --db "$work/a.sqlite" --task-file "$work/synth.json" --data-dir "$work" && grep -q "^run 1: 116 samples graded under profile default$" "$work/err"'
wait "$holder"
check "rescore with the lighteval profile" eval 'run 0 rescore 1 --profile lighteval --db "$work/a.sqlite" --task-file "$work/synth.json" --data-dir "$work" && [ "$(metric synth pass@1)" = "75.00" ]'
check "compare: same run, no regression" run 0 compare 1 1 --db "$work/a.sqlite"
cp "$work/a.sqlite" "$work/crafted.sqlite"
sqlite3 "$work/crafted.sqlite" "UPDATE runs SET config_json = json_set(config_json, '\$.tasks[0].documents', 576460752303423488) WHERE id = 1"
cp "$work/a.sqlite" "$work/ungraded.sqlite"
sqlite3 "$work/ungraded.sqlite" "DELETE FROM grades WHERE run_id = 1 AND doc = 0 AND profile = 'default'"
check "a resume grades stored samples that have no grade, as they were graded when made" eval 'run 0 run synth --generations "$work/gen.jsonl" --db "$work/ungraded.sqlite" "${common[@]}" && grep -q "116 stored before, 0 generated" "$work/err" && [ "$(metric synth pass@1)" = "75.00" ] && [ "$(metric synth cons@32)" = "50.00" ] && [ "$(sqlite3 "$work/ungraded.sqlite" "SELECT count(*) FROM grades WHERE run_id = 1 AND profile = '"'"'default'"'"'")" = 116 ]'
# Grades another build made (here: all wrong) are made again on resume,
# under every profile the run has metrics for, not kept beside new ones.
cp "$work/a.sqlite" "$work/oldbuild.sqlite"
sqlite3 "$work/oldbuild.sqlite" "UPDATE runs SET version = '0.0.9+gold' WHERE id = 1; UPDATE grades SET verdict = 0 WHERE run_id = 1"
check "a resume by another build grades the stored samples again" eval 'run 0 run synth --generations "$work/gen.jsonl" --db "$work/oldbuild.sqlite" "${common[@]}" && grep -q "116 stored before, 0 generated" "$work/err" && [ "$(metric synth pass@1)" = "75.00" ] && [ "$(metric synth cons@32)" = "50.00" ] && [ "$(sqlite3 "$work/oldbuild.sqlite" "SELECT version FROM runs WHERE id = 1")" = "$("$ssfteval" --version | cut -d" " -f2)" ]'
check "... and under the other profiles its metrics have" eval 'run 0 report 1 --profile lighteval --format csv --db "$work/oldbuild.sqlite" && [ "$(sqlite3 "$work/oldbuild.sqlite" "SELECT count(*) FROM grades WHERE run_id = 1 AND profile = '"'"'lighteval'"'"' AND verdict = 1")" -gt 0 ]'
cp "$work/a.sqlite" "$work/crafted2.sqlite"
sqlite3 "$work/crafted2.sqlite" "UPDATE runs SET config_json = json_remove(config_json, '\$.chat_template') WHERE id = 1"
check "rescore of a stored configuration without its chat template (it crashed)" run 0 rescore 1 --db "$work/crafted2.sqlite" --task-file "$work/synth.json" --data-dir "$work"
check "a stored configuration with 2^59 documents is refused as damage (it overflowed the table)" eval 'run 2 compare 1 1 --db "$work/crafted.sqlite" && grep -q "^ssfteval: run 1: its stored configuration names a task without a name or with 576460752303423488 documents; the store is damaged$" "$work/err"'
check "compare to a full disk is an error (2), not a regression (1)" eval '"$ssfteval" compare 1 1 --db "$work/a.sqlite" >/dev/full 2>"$work/err"; [ $? -eq 2 ] && grep -q "cannot write standard output" "$work/err"'
# A worse candidate: doc 1 wrong everywhere.
sed 's/boxed{2}/boxed{5}/' "$work/gen.jsonl" >"$work/gen-worse.jsonl"
run 0 run synth --generations "$work/gen-worse.jsonl" --db "$work/a.sqlite" "${common[@]}" --seed 7 >/dev/null 2>&1
check "compare: 2 questions are too few to call a 50-point drop at z 1.64" run 0 compare 1 2 --db "$work/a.sqlite"
check "compare: a drop is a regression at z 0 (exit 1)" eval 'run 1 compare 1 2 --z 0 --db "$work/a.sqlite" && grep -q REGRESSION "$work/out"'
# pass@1 per question: base 50, 100; candidate 50, 0.  The paired
# differences 0 and -100 give -50 with a standard error of
# sqrt(5000 / 2) = 50 (n - 1 in the variance: n would give 35.36).
check "compare: the paired means, difference and standard error" eval 'run 1 compare 1 2 --z 0 --db "$work/a.sqlite" && grep -Eq "^synth +pass@1 +75\.00 +25\.00 +-50\.00 +50\.00 +2  REGRESSION$" "$work/out" && grep -Eq "^synth +cons@6:native +25\.00 +0\.00 +-25\.00 +25\.00 +2  REGRESSION$" "$work/out"'
check "compare: a gain is no regression, whatever the gate" eval 'run 0 compare 2 1 --z 0 --max-drop 0 --db "$work/a.sqlite" && grep -Eq "^synth +pass@1 +25\.00 +75\.00 +\+50\.00 +50\.00 +2  ok$" "$work/out" && grep -q "no regression$" "$work/out"'
check "compare: --max-drop widens the gate (a 50-point drop passes at 60)" eval 'run 0 compare 1 2 --z 0 --max-drop 60 --db "$work/a.sqlite" && ! grep -q REGRESSION "$work/out"'
check "compare: ... and fails it at 40, for the metrics that dropped more" eval 'run 1 compare 1 2 --z 0 --max-drop 40 --db "$work/a.sqlite" && grep -Eq "^synth +pass@1 .* REGRESSION$" "$work/out" && grep -Eq "^synth +cons@6:native .* ok$" "$work/out"'
check "compare: a drop of exactly z x SE is not a regression" run 0 compare 1 2 --z 1 --max-drop 0 --db "$work/a.sqlite"
check "compare: ... one just past it is" run 1 compare 1 2 --z 0.99 --max-drop 0 --db "$work/a.sqlite"
check "compare: bad run id (exit 2)" run 2 compare 1 99 --db "$work/a.sqlite"
check "compare: one run id is a usage error naming both" eval 'run 2 compare 1 --db "$work/a.sqlite" && grep -q "^ssfteval: compare: give two run ids, BASE and CAND; see" "$work/err" && [ ! -s "$work/out" ]'
run 0 run synth --generations "$work/gen.jsonl" --db "$work/a.sqlite" "${common[@]}" --seed 8 --profile lighteval >/dev/null 2>&1
check "compare: runs graded under different profiles are refused, naming the rescore" eval 'run 2 compare 3 2 --z 0 --db "$work/a.sqlite" && grep -q "no grade under profile default; grade them with \`ssfteval rescore 3 --profile default\`" "$work/err"'
check "compare: after that rescore, the drop is found" eval 'run 0 rescore 3 --profile default --db "$work/a.sqlite" --task-file "$work/synth.json" --data-dir "$work" && run 1 compare 3 2 --z 0 --db "$work/a.sqlite" && grep -q REGRESSION "$work/out"'
# A candidate with a failed sample (run 4, incomplete) is no evidence either way.
run 1 run synth --generations "$work/gen-missing.jsonl" --db "$work/a.sqlite" "${common[@]}" --seed 9 >/dev/null 2>&1
check "compare: an incomplete candidate is refused (exit 2), naming the rerun" eval 'run 2 compare 1 4 --db "$work/a.sqlite" && grep -q "^ssfteval: run 4 is incomplete, not done: .*rerun its \`ssfteval run\` command" "$work/err" && [ ! -s "$work/out" ]'
check "compare: an incomplete base is refused too" eval 'run 2 compare 4 1 --db "$work/a.sqlite" && grep -q "run 4 is incomplete" "$work/err"'
check "compare: a metric the candidate lacks is one error line, no table" eval 'run 2 compare 1 2 --metric pass@7 --db "$work/a.sqlite" && grep -q "run 2 has no metric pass@7 under profile default" "$work/err" && [ ! -s "$work/out" ]'
check "compare: a metric the base run lacks names the fix" eval 'run 0 run synth --generations "$work/gen.jsonl" --db "$work/lacks.sqlite" "${common[@]}" --metric pass@1 && run 0 run synth --generations "$work/gen.jsonl" --db "$work/lacks.sqlite" "${common[@]}" --metric pass@1,maj@4 && run 2 compare 1 2 --z 0 --db "$work/lacks.sqlite" && grep -q "^ssfteval: run 1 task synth has no metric maj@4; name one it has with --metric (\`ssfteval report 1\` lists them)$" "$work/err"'

check "compare: a store that does not open is exit 2 (an error), not 1 (a regression)" eval 'run 2 compare 1 2 --db "$work/nowhere/none.sqlite" && grep -q "nowhere/none.sqlite" "$work/err"'
check "compare --profile compares under that profile (run 2 has no lighteval grades)" eval 'run 2 compare 1 2 --profile lighteval --db "$work/a.sqlite" && grep -q "run 2 has no metric under profile lighteval" "$work/err"'
cp "$work/a.sqlite" "$work/damaged.sqlite"
sqlite3 "$work/damaged.sqlite" "UPDATE runs SET config_json = json_remove(config_json, '\$.tasks[0].name') WHERE id = 1"
check "compare over a damaged store (a task without a name) is one error line, no table (it crashed)" eval 'run 2 compare 1 1 --db "$work/damaged.sqlite" && grep -q "^ssfteval: run 1: its stored configuration names a task without a name; the store is damaged$" "$work/err" && [ ! -s "$work/out" ]'
check "report RUN reports that run alone" eval 'run 0 report 2 --format csv --db "$work/a.sqlite" && [ "$(tail -n +2 "$work/out" | cut -d, -f1 | sort -u)" = 2 ]'
# A run named to report that has nothing to show says why, with the fix
# (it printed an empty table and exited 0).
cp "$work/a.sqlite" "$work/nometrics.sqlite"
sqlite3 "$work/nometrics.sqlite" "UPDATE runs SET status = 'running' WHERE id = 1; DELETE FROM metrics WHERE run_id = 1"
check "report of a stopped run: exit 1, one line, run its command again" eval 'run 1 report 1 --db "$work/nometrics.sqlite" && grep -q "^ssfteval: run 1 is stopped and has no metrics: run its command again to finish it$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ] && [ ! -s "$work/out" ]'
check "report of every run passes over one without metrics" eval 'run 0 report --format csv --db "$work/nometrics.sqlite" && tail -n +2 "$work/out" | cut -d, -f1 | grep -qx 2 && ! tail -n +2 "$work/out" | cut -d, -f1 | grep -qx 1'
check "report under a profile a run has no metrics under names the rescore" eval 'run 1 report 2 --profile lighteval --db "$work/a.sqlite" && grep -q "^ssfteval: run 2 has no metrics under profile lighteval; grade it with .ssfteval rescore 2 --profile lighteval.$" "$work/err"'
sqlite3 "$work/nometrics.sqlite" "DELETE FROM grades; DELETE FROM samples; DELETE FROM metrics; DELETE FROM runs"
check "report of an empty store: exit 1, naming it" eval 'run 1 report --db "$work/nometrics.sqlite" && grep -q "^ssfteval: the store has no runs, so no metrics to report; .ssfteval runs. lists the runs and their status$" "$work/err"'
check "SSFTEVAL_DB names the store when --db is not given" eval 'SSFTEVAL_DB="$work/a.sqlite" run 0 runs && grep -q done "$work/out"'
check "export --out - writes to stdout, no file named -" eval 'rm -f ./- && run 0 export 1 --db "$work/a.sqlite" --out - && [ "$(wc -l <"$work/out")" -eq 116 ] && [ ! -e ./- ]'
cp "$work/a.sqlite" "$work/badtext.sqlite"
sqlite3 "$work/badtext.sqlite" "UPDATE samples SET text = CAST(x'6361fe' AS TEXT) WHERE run_id = 1 AND doc = 1"
echo precious >"$work/keep.jsonl"
check "an export that fails leaves the file it would replace as it was" eval 'run 1 export 1 --db "$work/badtext.sqlite" --out "$work/keep.jsonl" && [ "$(cat "$work/keep.jsonl")" = precious ]'
check "--top-k, --top-p and --min-p are the run's sampling" eval 'run 0 run synth --generations "$work/gen.jsonl" --db "$work/topk.sqlite" "${common[@]}" --top-k 5 --top-p 0.9 --min-p 0.1 && [ "$(sqlite3 "$work/topk.sqlite" "SELECT json_extract(config_json, '"'"'\$.tasks[0].sampling.top_k'"'"') || '"'"' '"'"' || json_extract(config_json, '"'"'\$.tasks[0].sampling.top_p'"'"') || '"'"' '"'"' || json_extract(config_json, '"'"'\$.tasks[0].sampling.min_p'"'"') FROM runs")" = "5 0.9 0.1" ]'
# The default gate: drop > 1 point + 1.64 x SE.  400 questions, the
# candidate wrong on 2 (a 0.5-point drop, SE 0.35: passes) or on 12 (3.0
# points, SE 0.85, gate 2.40: fails).
awk 'BEGIN { for (d = 0; d < 400; d++) printf "{\"q\": \"q%d\", \"a\": \"%d\"}\n", d, d + 1 }' >"$work/gate.jsonl"
sed 's/synth.jsonl/gate.jsonl/; s/"synth"/"gate"/' "$work/synth.json" >"$work/gate.json"
gate_gen() { awk -v k="$1" 'BEGIN { for (d = 0; d < 400; d++) printf "{\"task\": \"gate\", \"doc\": %d, \"sample\": 0, \"text\": \"\\\\boxed{%d}\"}\n", d, d < k ? 0 : d + 1 }' >"$work/gate$1.jsonl"; }
gate_gen 0 && gate_gen 2 && gate_gen 12
gate=(gate --task-file "$work/gate.json" --data-dir "$work" --metric avg@1 --quiet --db "$work/gate.sqlite")
for k in 0 2 12; do run 0 run "${gate[@]}" --generations "$work/gate$k.jsonl" >/dev/null 2>&1 || echo "# gate run $k failed"; done
check "compare's default gate passes a 0.5-point drop of SE 0.35" eval 'run 0 compare 1 2 --db "$work/gate.sqlite" && grep -Eq "^gate +avg@1 +100\.00 +99\.50 +-0\.50 +0\.35 +400  ok$" "$work/out"'
check "... and fails a 3-point drop of SE 0.85" eval 'run 1 compare 1 3 --db "$work/gate.sqlite" && grep -Eq "^gate +avg@1 +100\.00 +97\.00 +-3\.00 +0\.85 +400  REGRESSION$" "$work/out"'

# 5. Compat mode runs and says so in reports.
check "compat run grades with the ssft-lighteval profile" eval 'run 0 run synth --generations "$work/gen.jsonl" --db "$work/d.sqlite" "${common[@]}" --compat ssft-lighteval && run 0 report --format csv --db "$work/d.sqlite" && grep -q ",ssft-lighteval,ssft-lighteval,pass@1," "$work/out"'
check "show without --profile shows the run's own grades (a compat run's too)" eval 'run 0 show 1 --doc 0 --db "$work/d.sqlite" && ! grep -q "not graded" "$work/out" && grep -q "  right\|  wrong" "$work/out"'
sed 's/"tag": 1,/"tag": 0,/' "$work/gen.jsonl" >"$work/gen-untagged.jsonl"
check "--compat without --protocol ssft runs, and a note says its samples are untagged" eval 'run 0 run synth --generations "$work/gen-untagged.jsonl" --db "$work/cu.sqlite" --task-file "$work/synth.json" --data-dir "$work" --quiet --metric pass@1 --compat ssft-lighteval && grep -q "^note: --compat ssft-lighteval without --protocol ssft: the reference.s votes and grading over untagged samples" "$work/err" && run 0 run synth --generations "$work/gen.jsonl" --db "$work/cu2.sqlite" "${common[@]}" --metric pass@1 --compat ssft-lighteval && ! grep -q "^note: --compat" "$work/err"'
check "--profile given beside --compat is the profile" eval 'run 0 run synth --generations "$work/gen.jsonl" --db "$work/dp.sqlite" "${common[@]}" --compat ssft-lighteval --profile default && run 0 report --format csv --db "$work/dp.sqlite" && grep -q ",ssft-lighteval,default,pass@1," "$work/out" && run 0 report --db "$work/dp.sqlite" && grep -q "^| - | 1 | ssft-lighteval (profile default) |" "$work/out"'
# The reference's math vote: an empty completion is "", a class apart from
# [] (nothing extracted): doc 0's "1" x2, [] x2, "" x1 -> "1" (it came first);
# counted as one class, [] x3 would win.  doc 1 votes "2" x5 as a control.
for s in 0 1 2 3 4; do
    case $s in 0 | 3) t='\\boxed{1}' ;; 2) t='' ;; *) t='I could not finish this one.' ;; esac
    printf '{"task": "synth", "doc": 0, "sample": %d, "text": "%s"}\n{"task": "synth", "doc": 1, "sample": %d, "text": "\\\\boxed{2}"}\n' "$s" "$t" "$s"
done >"$work/blank.jsonl"
check "compat maj@K: an empty completion does not vote with the unextracted ones" eval 'run 0 run synth --generations "$work/blank.jsonl" --db "$work/blank.sqlite" --task-file "$work/synth.json" --data-dir "$work" --metric maj@5 --compat ssft-lighteval --quiet && [ "$(metric synth maj@5)" = "100.00" ]'
# The reference voted on a letters task's whole completions: "Answer: A"
# twice beats "Answer: B" (the earliest), so cons@3 is right.  (The run read
# the completions back for this vote; held for no other.)
cat >"$work/abc.json" <<'JSON'
{"name": "abc", "answer_type": "letters", "source": {"local": {"path": "abc.jsonl"}},
 "fields": {"question": "q", "correct": "c", "incorrect": ["w1", "w2", "w3"]},
 "choices": {"order": "fixed"}, "prompt": "{{question}}\nA) {{A}}\nB) {{B}}\nC) {{C}}\nD) {{D}}"}
JSON
printf '{"q": "Pick the right one.", "c": "right", "w1": "w1", "w2": "w2", "w3": "w3"}\n' >"$work/abc.jsonl"
printf '{"task": "abc", "doc": 0, "sample": %d, "text": "Answer: %s"}\n' 0 B 1 A 2 A >"$work/abc-gen.jsonl"
check "compat cons@K on a letters task votes on the completions" eval 'run 0 run abc --generations "$work/abc-gen.jsonl" --db "$work/abc.sqlite" --task-file "$work/abc.json" --data-dir "$work" --metric cons@3 --compat ssft-lighteval --quiet && [ "$(metric abc cons@3)" = "100.00" ]'

# 5b. A task file's data or prompt edited between two attempts: another run,
# not the first one's missing samples asked and graded another way.
mkdir "$work/edit"
cp "$work/synth.json" "$work/synth.jsonl" "$work/edit/"
edit=(--generations "$work/gen-missing.jsonl" --db "$work/edit.sqlite" --task-file "$work/edit/synth.json" --data-dir "$work/edit" --protocol ssft --quiet)
run 1 run synth "${edit[@]}" >/dev/null 2>&1
check "the same task file and data resume, with no note" eval 'run 1 run synth "${edit[@]}" && grep -q "run 1 incomplete (resumed)" "$work/err" && ! grep -q "^note:" "$work/err"'
sed -i 's/"a": "1"/"a": "91"/' "$work/edit/synth.jsonl"
check "a gold edited in a task file's data is another run" eval 'run 1 run synth "${edit[@]}" && grep -q "run 2 incomplete (new)" "$work/err"'
check "a note says why the unfinished run was not resumed" grep -q "^note: run 1 (incomplete, the same tasks and model) is not resumed: its configuration differs in tasks\[synth\]\.documents_sha256; this is run 2$" "$work/err"
sed -i 's/"prompt": "Q: {{question}}"/"prompt": "Question: {{question}}"/' "$work/edit/synth.json"
check "a task file's prompt edited is another run" eval 'run 1 run synth "${edit[@]}" && grep -q "run 3 incomplete (new)" "$work/err"'
check "rescore refuses data other than the run's (it graded old samples against the new golds)" eval 'run 1 rescore 1 --db "$work/edit.sqlite" --task-file "$work/edit/synth.json" --data-dir "$work/edit" && grep -q "^ssfteval: task synth: the data loaded now (2 documents from .*) is not what run 1 asked and graded against (2 documents); pass the --task-file and --data-dir it was run with$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ]'
check "rescore takes the data the run was made with" run 0 rescore 3 --db "$work/edit.sqlite" --task-file "$work/edit/synth.json" --data-dir "$work/edit"
check "an option given otherwise is another run, and the note names it" eval 'run 1 run synth "${edit[@]}" --temperature 0.5 --seed 7 && grep -q "^note: run 3 (incomplete, the same tasks and model) is not resumed: its configuration differs in seed, tasks\[synth\]\.sampling\.temperature; this is run 4$" "$work/err"'
sqlite3 "$work/edit.sqlite" "UPDATE runs SET status = 'running' WHERE id = 4" # as a kill -9 leaves it
check "the note calls a run no process generates stopped, as runs does (it said running)" eval 'run 1 run synth "${edit[@]}" --temperature 0.5 --seed 8 && grep -q "^note: run 4 (stopped, the same tasks and model) is not resumed: its configuration differs in seed; this is run 5$" "$work/err"'
# compare pairs questions by their order: runs over other questions are
# refused; another prompt over the same questions (another model's
# template) is compared.
mkdir "$work/q"
cp "$work/synth.json" "$work/synth.jsonl" "$work/q/"
qrun=(--generations "$work/gen.jsonl" --db "$work/questions.sqlite" --task-file "$work/q/synth.json" --data-dir "$work/q" --protocol ssft --quiet)
run 0 run synth "${qrun[@]}" >/dev/null 2>&1
sed -i 's/"prompt": "Q: {{question}}"/"prompt": "Question: {{question}}"/' "$work/q/synth.json"
run 0 run synth "${qrun[@]}" >/dev/null 2>&1
sed -i 's/"a": "1"/"a": "91"/' "$work/q/synth.jsonl"
run 0 run synth "${qrun[@]}" >/dev/null 2>&1
check "compare: another prompt over the same questions is compared" eval 'run 0 compare 1 2 --db "$work/questions.sqlite" && grep -q "no regression" "$work/out"'
run 0 run synth "${qrun[@]}" --limit 1 >/dev/null 2>&1
check "compare: a --limit run beside a whole one is refused for its count, not as other data" eval 'run 2 compare 4 3 --db "$work/questions.sqlite" && grep -q "^ssfteval: task synth: run 4 has 1 questions and run 3 2; compare runs over the same questions$" "$work/err"'
check "compare: runs over other questions are refused (exit 2), before any table" eval 'run 2 compare 1 3 --db "$work/questions.sqlite" && grep -q "^ssfteval: task synth: run 1 and run 3 asked different questions (other data: a --task-file, --data-dir or revision); compare runs over the same questions$" "$work/err" && [ ! -s "$work/out" ]'
mkdir "$work/two" && cp "$work/synth.jsonl" "$work/two/" && cp "$work/synth.jsonl" "$work/two/synth2.jsonl"
sed 's/"name": "synth"/"name": "synth2"/; s/synth.jsonl/synth2.jsonl/' "$work/synth.json" >"$work/two/synth2.json"
sed 's/"task": "synth"/"task": "synth2"/' "$work/gen.jsonl" | cat "$work/gen.jsonl" - >"$work/two/gen.jsonl"
two=(--task-file "$work/synth.json" --task-file "$work/two/synth2.json" --data-dir "$work/two" --db "$work/two.sqlite")
run 0 run synth,synth2 --generations "$work/two/gen.jsonl" --protocol ssft --quiet "${two[@]}" >/dev/null 2>&1
check "the same tasks named in another order are the same run" eval 'run 0 run synth2,synth --generations "$work/two/gen.jsonl" --protocol ssft --quiet "${two[@]}" && grep -q "run 1 done (resumed): 232 samples planned, 232 stored before, 0 generated" "$work/err"'
order=(--generations "$work/gen-missing.jsonl" --protocol ssft --quiet --task-file "$work/synth.json" --task-file "$work/two/synth2.json" --data-dir "$work/two" --db "$work/order.sqlite")
run 1 run synth,synth2 "${order[@]}" >/dev/null 2>&1
check "the note finds an unfinished run whatever order its tasks were named in" eval 'run 1 run synth2,synth "${order[@]}" --seed 5 && grep -q "^note: run 1 (incomplete, the same tasks and model) is not resumed: its configuration differs in seed; this is run 2$" "$work/err"'
sqlite3 "$work/order.sqlite" "UPDATE runs SET config_json = '{broken' WHERE id = 2"
check "... and says so when its stored configuration cannot be read" eval 'run 1 run synth,synth2 "${order[@]}" --seed 6 && grep -q "^note: run 2 (incomplete, the same tasks and model) is not resumed: its stored configuration cannot be read; this is run 3$" "$work/err"'
sed -i 's/"a": "2"/"a": "7"/' "$work/two/synth2.jsonl"
check "rescore refuses before it stores a grade: the first task's were stored when the second's data was refused" eval 'run 1 rescore 1 --profile lighteval "${two[@]}" && grep -q "task synth2: the data loaded now" "$work/err" && [ "$(sqlite3 "$work/two.sqlite" "select count(*) from grades where profile = '"'"'lighteval'"'"'")" = 0 ] && [ "$(sqlite3 "$work/two.sqlite" "select count(*) from grades where profile = '"'"'default'"'"'")" = 232 ]'
# A letters task's questions are its question and correct choice's text,
# not the letter the choice order gives it: runs in two orders are
# compared (their answers differ as the letters moved).
mkdir "$work/letters"
cat >"$work/letters/synthl.json" <<'JSON'
{"name": "synthl", "answer_type": "letters", "source": {"local": {"path": "synthl.jsonl"}},
 "fields": {"question": "q", "correct": "c", "incorrect": ["i1", "i2", "i3"]},
 "prompt": "Q: {{question}}\nA) {{A}}\nB) {{B}}\nC) {{C}}\nD) {{D}}", "metrics": ["avg@1"]}
JSON
for d in 0 1 2 3; do printf '{"q": "q%d", "c": "right%d", "i1": "w1", "i2": "w2", "i3": "w3"}\n' "$d" "$d"; done >"$work/letters/synthl.jsonl"
for d in 0 1 2 3; do printf '{"task": "synthl", "doc": %d, "sample": 0, "text": "Answer: A"}\n' "$d"; done >"$work/letters/gen.jsonl"
lrun=(run synthl --generations "$work/letters/gen.jsonl" --task-file "$work/letters/synthl.json" --data-dir "$work/letters" --db "$work/letters.sqlite" --quiet)
check "a letters task's questions digest is the same in another choice order, and compare takes the two runs" eval 'run 0 "${lrun[@]}" --gpqa-order fixed && run 0 "${lrun[@]}" --gpqa-order hash && [ "$(sqlite3 "$work/letters.sqlite" "SELECT count(DISTINCT json_extract(config_json, '"'"'\$.tasks[0].questions_sha256'"'"')), count(DISTINCT json_extract(config_json, '"'"'\$.tasks[0].documents_sha256'"'"')) FROM runs")" = "1|2" ] && { "$ssfteval" compare 1 2 --db "$work/letters.sqlite" >"$work/out" 2>"$work/err"; [ $? -le 1 ]; } && grep -q "^synthl  *avg@1 " "$work/out"'

# Reports over two tasks of other values: the Markdown's Average is their
# mean, the value beside its standard error, and JSON has an entry a task.
mkdir "$work/three" && cp "$work/synth.jsonl" "$work/three/" && cp "$work/synth.jsonl" "$work/three/synth3.jsonl"
sed 's/"name": "synth"/"name": "synth3"/; s/synth.jsonl/synth3.jsonl/' "$work/synth.json" >"$work/three/synth3.json"
sed 's/"task": "synth"/"task": "synth3"/' "$work/gen-worse.jsonl" | cat "$work/gen.jsonl" - >"$work/three/gen.jsonl"
run 0 run synth,synth3 --generations "$work/three/gen.jsonl" --protocol ssft --quiet --task-file "$work/synth.json" --task-file "$work/three/synth3.json" --data-dir "$work/three" --db "$work/three.sqlite" >/dev/null 2>&1
sed 's/"groups": 2/"groups": 3/' "$work/three/synth3.json" >"$work/three/synth3g.json"
for seed in 1 2; do
    run 0 run synth,synth3 --generations "$work/three/gen.jsonl" --protocol ssft --quiet --metric cons@6:native --task-file "$work/synth.json" --task-file "$work/three/synth3g.json" --data-dir "$work/three" --db "$work/shapes.sqlite" --seed $seed
done
check "report md: a metric whose n differs by task names each task once, however many runs" eval 'run 0 report --db "$work/shapes.sqlite" && grep -A2 "^### cons@6:native$" "$work/out" | grep -qx "k = 6, n = 12 samples a question (synth); k = 6, n = 18 samples a question (synth3)."'
check "report md over two tasks: each value with its standard error, then their average" eval 'run 0 report --db "$work/three.sqlite" && grep -A6 "^### pass@1$" "$work/out" | grep -qF "| - | 1 | ssfteval | 75.00 ± 25.00 | 25.00 ± 25.00 | 50.00 |"'
check "show --task lists that task's samples alone: the 58 of synth3's doc 0" eval 'run 0 show 1 --doc 0 --task synth3 --db "$work/three.sqlite" && [ "$(grep -c "^synth3 doc 0 tag [1-6] sample [0-9]*  seed " "$work/out")" -eq 58 ] && [ "$(wc -l <"$work/out")" -eq 58 ]'
jpath() { sqlite3 :memory: "SELECT json_extract(readfile('$work/out'), '$1')"; }
check "report csv, json and md give each metric's k and n (samples a question), as the reference asks" eval 'run 0 report 1 --format csv --db "$work/a.sqlite" && grep -q ",pass@1,.*,1,32,[0-9a-f]\{64\}," "$work/out" && grep -q ",cons@6:native,.*,6,12,[0-9a-f]\{64\}," "$work/out" && grep -q ",cons@32,.*,32,32,[0-9a-f]\{64\}," "$work/out" && run 0 report 1 --format json --db "$work/a.sqlite" && [ "$(jpath "\$.runs[0].metrics.\"cons@6:native\".k") $(jpath "\$.runs[0].metrics.\"cons@6:native\".n")" = "6 12" ] && run 0 report 1 --db "$work/a.sqlite" && grep -A2 "^### cons@6:native$" "$work/out" | grep -q "^k = 6, n = 12 samples a question.$"'
check "report json over two tasks: an entry a task, each with its own values" eval 'run 0 report --format json --db "$work/three.sqlite" && [ "$(jpath "\$.runs[0].task") $(jpath "\$.runs[1].task") $(jpath "\$.runs[2].task")" = "synth synth3 " ] && [ "$(jpath "\$.runs[1].metrics.\"pass@1\".value") $(jpath "\$.runs[1].metrics.\"pass@1\".stderr")" = "0.25 0.25" ] && [ "$(jpath "\$.runs[0].metrics.\"cons@32\".stderr")" = 0.5 ]'
# Report numbers as each format writes them, from stores made above.
check "report md over two runs: each run's row its own values" eval 'run 0 report --db "$work/a.sqlite" && grep -A7 "^### pass@1$" "$work/out" | grep -qF "| - | 1 | ssfteval | 75.00 ± 25.00 | 75.00 |" && grep -A7 "^### pass@1$" "$work/out" | grep -qF "| - | 2 | ssfteval | 25.00 ± 25.00 | 25.00 |"'
check "report json and csv: the 95% interval's two ends" eval 'run 0 report 1 --format json --db "$work/a.sqlite" && [ "$(jpath "\$.runs[0].metrics.\"pass@1\".ci95")" = "[0.5,1.0]" ] && run 0 report 1 --format csv --db "$work/a.sqlite" && grep -q ",pass@1,0.750000,0.250000,0.500000,1.000000," "$work/out"'
check "report json of one question: a standard error of null, the metric kept" eval 'run 0 report --format json --db "$work/lim.sqlite" && [ "$(jpath "\$.runs[0].metrics.\"pass@1\".value") $(jpath "\$.runs[0].metrics.\"pass@1\".stderr")" = "0.5 " ] && [ "$(sqlite3 :memory: "SELECT json_type(readfile('"'"'$work/out'"'"'), '"'"'\$.runs[0].metrics.\"pass@1\".stderr'"'"')")" = null ] && [ "$(jpath "\$.runs[0].metrics.\"pass@1\".ci95")" = "[0.5,0.5]" ]'
check "report csv and json count samples, failed and missing samples apart" eval 'run 0 report --format csv --db "$work/b2.sqlite" && head -n 1 "$work/out" | grep -q ",n_questions,n_samples,n_failed,n_missing," && grep -q ",pass@1,0.500000,,0.500000,0.500000,1,116,9,1," "$work/out" && run 0 report --format json --db "$work/b2.sqlite" && [ "$(jpath "\$.runs[0].metrics.\"pass@1\".n_samples") $(jpath "\$.runs[0].metrics.\"pass@1\".n_failed") $(jpath "\$.runs[0].metrics.\"pass@1\".n_missing")" = "116 9 1" ]'
mkdir "$work/half" && cp "$work/synth.jsonl" "$work/half/" && cp "$work/synth.jsonl" "$work/half/synth3.jsonl"
run 1 run synth,synth3 --generations "$work/gen.jsonl" --protocol ssft --quiet --task-file "$work/synth.json" --task-file "$work/three/synth3.json" --data-dir "$work/half" --db "$work/half.sqlite" >/dev/null 2>&1
check "report md: no Average over tasks when one has no value" eval 'run 0 report --db "$work/half.sqlite" && grep -A6 "^### pass@1$" "$work/out" | grep -qF "| - | 1 | ssfteval | 75.00 ± 25.00 | - | - |"'
# The run's own --groups and --compat reach the metrics it computes.
check "--groups S reaches native Cons@6: S = 1 votes doc 0 to 9 and doc 1 to 3" eval 'run 0 run synth --generations "$work/gen.jsonl" --db "$work/g1.sqlite" "${common[@]}" --groups 1 --metric cons@6:native && [ "$(metric synth cons@6:native)" = "0.00" ]'
printf '{"task": "abc", "doc": 0, "sample": %d, "text": "%s"}\n' 0 "Answer: B" 1 "Answer: A" 2 "So, Answer: A" >"$work/abc-gen2.jsonl"
check "compat cons@K votes on whole completions, three distinct: the first, B, wins; without compat A does" eval 'run 0 run abc --generations "$work/abc-gen2.jsonl" --db "$work/abc2.sqlite" --task-file "$work/abc.json" --data-dir "$work" --metric cons@3 --compat ssft-lighteval --quiet && [ "$(metric abc cons@3)" = "0.00" ] && run 0 run abc --generations "$work/abc-gen2.jsonl" --db "$work/abc3.sqlite" --task-file "$work/abc.json" --data-dir "$work" --metric cons@3 --quiet && [ "$(metric abc cons@3)" = "100.00" ]'
head -n 1 "$work/edit/synth.jsonl" >"$work/edit/one.jsonl" && mv "$work/edit/one.jsonl" "$work/edit/synth.jsonl"
check "rescore refuses data with fewer rows than the run asked" eval 'run 1 rescore 3 --db "$work/edit.sqlite" --task-file "$work/edit/synth.json" --data-dir "$work/edit" && grep -q "(1 documents from .*) is not what run 3 asked and graded against (2 documents)" "$work/err"'

# 6. Bad input.
# Each value out of its range is refused by name and range, before a store
# is made: --top-p 0 would otherwise mean no cut, --max-new-tokens 0 empty
# samples.
for bad in "top-p 0 1e-09, 1" "temperature -1 0, 100" "min-p 1.5 0, 1" "max-new-tokens 0 1..10000000" "top-k -1 0..1000000000" "samples 0 1..4096" "seed -1 0..9000000000000000" "slots 0 1..4096" "kv-blocks 0 1..1073741824" "max-context 1 2..16777216" "concurrency 0 1..65536"; do
    read -r opt val range <<<"$bad"
    check "--$opt $val is refused (exit 2), its range named" eval 'run 2 run synth --generations "$work/gen.jsonl" --db "$work/range-$opt.sqlite" "${common[@]}" --$opt $val && grep -q "^ssfteval: --$opt: '"'"'$val'"'"' is not an\? [a-z]* in \[\?$range\]\?$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ] && [ ! -e "$work/range-$opt.sqlite" ]'
done
# Each backend named without what it needs, or an unknown one: exit 2, one
# line naming the missing option, no store.
for bad in "--backend openai|--backend openai needs --endpoint URL" "--backend openai --endpoint http://127.0.0.1:1/v1 --api-key-env SSFTEVAL_TEST_UNSET|--api-key-env: SSFTEVAL_TEST_UNSET is not set; export it or drop the option" "--backend tpu|--backend: 'tpu' is not a backend; use engine, openai or replay" "--backend engine|--backend engine needs --model DIR" "--backend replay|--backend replay needs --generations FILE"; do
    IFS="|" read -r flags msg <<<"$bad"
    read -ra flag_words <<<"$flags"
    check "run refuses $flags (exit 2), naming what it needs" eval 'run 2 run synth --db "$work/nobackend.sqlite" "${common[@]}" "${flag_words[@]}" && grep -qF "ssfteval: $msg" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ] && [ ! -e "$work/nobackend.sqlite" ]'
done
check "bad metric" eval 'run 2 run synth --metric cons@x --generations "$work/gen.jsonl" --db "$work/e.sqlite" "${common[@]}" && grep -q "cons@x" "$work/err"'
check "--stream with an unknown value names all three it takes" eval 'run 2 run synth --backend openai --endpoint http://127.0.0.1:1/v1 --stream maybe --db "$work/sm.sqlite" "${common[@]}" && grep -q "^ssfteval: --stream: unknown value .maybe.; use auto, on or off$" "$work/err" && [ ! -e "$work/sm.sqlite" ]'
printf '{"task": "synth", "doc": 0}\n' >"$work/bad-gen.jsonl"
{ cat "$work/gen.jsonl"; head -n 1 "$work/gen.jsonl" | sed 's/boxed{1}/boxed{9}/'; } >"$work/dup-gen.jsonl"
check "a generations file with two lines for one sample is refused, naming the second (not one kept unsaid)" eval 'run 1 run synth --generations "$work/dup-gen.jsonl" --db "$work/dup.sqlite" "${common[@]}" && grep -q "^ssfteval: .*dup-gen.jsonl:117: a second line for task synth doc 0 tag 1 sample 0; keep one$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ] && [ ! -e "$work/dup.sqlite" ]'
check "malformed generations line (exit 1: the file is bad, not the command)" eval 'run 1 run synth --generations "$work/bad-gen.jsonl" --db "$work/e.sqlite" "${common[@]}" && grep -q "bad-gen.jsonl:1" "$work/err"'
printf '{"task": "synth", "doc": 0, "sample": 0, "text": "x", "finish_reason": "stpo"}\n' >"$work/why-gen.jsonl"
check "a generations line whose finish_reason is none known is refused at open, the line named, no store made (not scored)" eval 'run 1 run synth --generations "$work/why-gen.jsonl" --db "$work/why.sqlite" "${common[@]}" && grep -q "^ssfteval: .*why-gen.jsonl:1: finish_reason \"stpo\" is none of stop, length, content_filter, abort, error, tool_calls, function_call; fix the line$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ] && [ ! -e "$work/why.sqlite" ]'
printf '{"task": "synth", "doc": 0.5, "sample": 0, "text": "x"}\n' >"$work/frac-gen.jsonl"
printf '{"task": "synth", "doc": 0, "sample": 0, "txt": "x"}\n' >"$work/notext-gen.jsonl"
for f in frac notext; do
    check "a generations line with a $f field is refused at open, the line named, no store made" eval 'run 1 run synth --generations "$work/$f-gen.jsonl" --db "$work/$f.sqlite" "${common[@]}" && grep -q "$f-gen.jsonl:1: each line needs" "$work/err" && [ ! -e "$work/$f.sqlite" ]'
done
printf '{"task": "synth", "doc": 0, "sample": 0, "text": "a\\\\u0000b \\\\boxed{1}"}\n' >"$work/bs-gen.jsonl"
check "a replayed text holding a backslash and u0000 is stored as written (not as U+FFFD)" eval 'run 1 run synth --generations "$work/bs-gen.jsonl" --db "$work/bs.sqlite" --task-file "$work/synth.json" --data-dir "$work" --metric avg@1 --samples 1 --quiet && [ "$(sqlite3 "$work/bs.sqlite" "SELECT text FROM samples WHERE doc = 0")" = "a\\u0000b \\boxed{1}" ]'
printf '{"task": "synth", "doc": 0, "sample": 0, "text": "caf\xe9"}\n' >"$work/latin1-gen.jsonl"
printf '{"task": "synth", "doc": 0, "sample": 0, "text": "x\\u0000 so \\\\boxed{1}"}\n{"task": "synth", "doc": 1, "sample": 0, "text": "\\\\boxed{2}"}\n' >"$work/nul-gen.jsonl"
check "a replayed text keeps what follows a \\u0000 (it was cut there, graded as no answer)" eval 'run 0 run synth --generations "$work/nul-gen.jsonl" --db "$work/nul.sqlite" --task-file "$work/synth.json" --data-dir "$work" --metric avg@1 --samples 1 --quiet && [ "$(metric synth avg@1)" = "100.00" ]'
check "generations not in UTF-8 are refused, the line named" eval 'run 1 run synth --generations "$work/latin1-gen.jsonl" --db "$work/e.sqlite" "${common[@]}" && grep -q "latin1-gen.jsonl:1: not valid UTF-8" "$work/err"'
check "a --model name not in UTF-8 is refused" eval 'run 2 run synth --model "$(printf "caf\xe9")" --generations "$work/gen.jsonl" --db "$work/e.sqlite" "${common[@]}" && grep -q "^ssfteval: --model: the value is not valid UTF-8" "$work/err"'
check "Markdown escapes a model name holding a bar and a line break" eval 'run 0 run synth --model "$(printf "a|b\nc")" --generations "$work/gen.jsonl" --db "$work/bar.sqlite" "${common[@]}" && run 0 report --db "$work/bar.sqlite" && grep -q "^| a\\\\|b c | 1 | ssfteval |" "$work/out"'
check "CSV quotes a model name holding quotes and a comma" eval 'run 0 run synth --model "acme \"big\", v2" --generations "$work/gen.jsonl" --db "$work/q.sqlite" "${common[@]}" && run 0 report --format csv --db "$work/q.sqlite" && grep -qF "1,\"acme \"\"big\"\", v2\",synth," "$work/out"'
check "an empty task list is refused" eval 'run 2 run "" --generations "$work/gen.jsonl" --db "$work/e.sqlite" "${common[@]}" && grep -q "value is empty\|empty name" "$work/err"'
check "a task list with an empty name is refused" eval 'run 2 run synth, --generations "$work/gen.jsonl" --db "$work/e.sqlite" "${common[@]}" && grep -q "^ssfteval: the task list .synth,. has an empty name" "$work/err"'
check "a task named twice is refused (it would be planned twice, stored once)" eval 'run 2 run synth,synth --generations "$work/gen.jsonl" --db "$work/e.sqlite" "${common[@]}" && grep -q "has a name twice" "$work/err"'
check "a metric named twice is refused" eval 'run 2 run synth --metric pass@1,pass@1 --generations "$work/gen.jsonl" --db "$work/e.sqlite" "${common[@]}" && grep -q "^ssfteval: --metric .pass@1,pass@1. has a name twice" "$work/err"'
check "no run was stored by any of them" eval '! [ -e "$work/e.sqlite" ] || [ "$(sqlite3 "$work/e.sqlite" "select count(*) from runs")" = 0 ]'
check "no backend" eval 'run 2 run synth --db "$work/e.sqlite" "${common[@]}" && grep -q "backend" "$work/err"'
head -c 5000 /dev/urandom >"$work/junk.sqlite"
before=$(sha256sum <"$work/junk.sqlite")
check "a foreign file is refused and left alone" eval 'run 1 runs --db "$work/junk.sqlite" && [ "$(wc -l <"$work/err")" -eq 1 ] && [ "$(sha256sum <"$work/junk.sqlite")" = "$before" ]'
check "a missing store for runs" eval 'run 1 runs --db "$work/nope.sqlite" && grep -q "nope.sqlite" "$work/err"'

# 7. kill -9 at random moments, then finish: same metrics as an uninterrupted run.
awk 'BEGIN { for (d = 0; d < 400; d++) printf "{\"q\": \"q%d\", \"a\": \"%d\"}\n", d, d + 1 }' >"$work/big.jsonl"
sed 's/synth.jsonl/big.jsonl/; s/"synth"/"big"/' "$work/synth.json" >"$work/big.json"
awk 'BEGIN {
    pad = ""; for (k = 0; k < 200; k++) pad = pad "Step " k " of the reasoning. ";
    for (d = 0; d < 400; d++) for (t = 1; t <= 6; t++) {
        n = t == 1 ? 32 : (t == 2 ? 6 : 5);
        for (i = 0; i < n; i++) {
            a = ((d * 7 + t * 3 + i) % 5 == 0) ? d + 2 : d + 1;
            printf "{\"task\": \"big\", \"doc\": %d, \"tag\": %d, \"sample\": %d, \"text\": \"%s So the answer is $\\\\boxed{%d}$.\", \"finish_reason\": \"stop\"}\n", d, t, i, pad, a
        }
    }
}' >"$work/big-gen.jsonl"
bigargs=(big --task-file "$work/big.json" --data-dir "$work" --protocol ssft --quiet --generations "$work/big-gen.jsonl")
"$ssfteval" run "${bigargs[@]}" --db "$work/whole.sqlite" >/dev/null 2>&1
"$ssfteval" report --format csv --db "$work/whole.sqlite" | cut -d, -f2- >"$work/whole.csv"
kills=0
for round in 1 2 3 4 5 6; do
    timeout -s KILL "0.$((RANDOM % 9 + 1))" "$ssfteval" run "${bigargs[@]}" --db "$work/killed.sqlite" >/dev/null 2>&1
    [ $? -eq 137 ] && kills=$((kills + 1))
done
echo "# killed $kills of 6 attempts mid-run"
check "resume after kill -9" run 0 run "${bigargs[@]}" --db "$work/killed.sqlite"
"$ssfteval" report --format csv --db "$work/killed.sqlite" | cut -d, -f2- >"$work/killed.csv"
check "killed-and-resumed metrics equal the uninterrupted run's" cmp -s "$work/whole.csv" "$work/killed.csv"
check "at least one kill landed mid-run" [ "$kills" -ge 1 ]

# 8. The openai backend against the fault-injecting mock server: every
# planned sample stored once despite faults, SIGINT keeps what finished, and a
# rerun completes the run.
start_mock() { # ARGS...: starts the mock, sets mock_pid and endpoint
    rm -f "$work/port"
    "$mockserver" --port-file "$work/port" --stats-file "$work/stats.json" "$@" &
    mock_pid=$!
    for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
    endpoint="http://127.0.0.1:$(cat "$work/port")/v1"
}
stop_mock() { kill "$mock_pid" 2>/dev/null; wait "$mock_pid" 2>/dev/null; }
start_mock --fault 503,count=1,mod=3,rem=0 --fault reset,count=1,mod=5,rem=1 --retry-after-ms 50
check "openai backend: run through faults" eval 'run 0 run synth --backend openai --endpoint "$endpoint" --db "$work/o.sqlite" --concurrency 32 "${common[@]}" && grep -q "116 generated, 0 failed" "$work/err"'
check "openai backend: every sample stores its exact request" eval '[ "$(sqlite3 "$work/o.sqlite" "select count(*) from samples where request_json like '"'"'%\"seed\":%'"'"' and request_json like '"'"'%\"temperature\":%'"'"'")" = 116 ]'
# A request asks for up to 8 samples of a question and tag (n): 4 for tag
# 1's 32, one for each other tag's, 9 a question.
check "openai backend: each of the 18 requests is sent with its own seed" eval '[ "$(sqlite3 "$work/o.sqlite" "SELECT count(DISTINCT json_extract(request_json, '"'"'\$.seed'"'"')) FROM samples WHERE run_id = 1")" = 18 ]'
check "openai backend: each sample is asked with its own tag's prompt (<thinkK> last), under the SSFT protocol" eval '[ "$(sqlite3 "$work/o.sqlite" "SELECT count(*) FROM samples WHERE run_id = 1 AND json_extract(request_json, '"'"'\$.prompt'"'"') LIKE '"'"'%<think'"'"' || tag || '"'"'>'"'"' || char(10)")" = 116 ] && [ "$(sqlite3 "$work/o.sqlite" "SELECT count(DISTINCT tag) FROM samples WHERE run_id = 1")" = 6 ]'
# Without the protocol (tag 0 for every sample), each question is asked its
# own text, through either API.
for api in completions chat; do
    check "openai backend, no protocol, --api $api: each sample is asked its own question" eval 'run 0 run synth --backend openai --endpoint "$endpoint" --db "$work/plain-$api.sqlite" --task-file "$work/synth.json" --data-dir "$work" --quiet --metric avg@2 --api $api && [ "$(sqlite3 "$work/plain-$api.sqlite" "SELECT count(*) FROM samples WHERE coalesce(json_extract(request_json, '"'"'\$.prompt'"'"'), json_extract(request_json, '"'"'\$.messages'"'"')) LIKE '"'"'%Q: '"'"' || CASE doc WHEN 0 THEN '"'"'one'"'"' ELSE '"'"'two'"'"' END || '"'"'%'"'"'")" = 4 ]'
done
# --request-n, --api and --stream reach the requests: what each run sent
# (n, stream, messages; 8 samples of avg@4) and the identity it recorded.
sent() { sqlite3 "$work/$1.sqlite" "SELECT max(json_extract(request_json, '\$.n')) || ' ' || min(json_extract(request_json, '\$.stream')) || ' ' || count(json_extract(request_json, '\$.messages')) || ' ' || (SELECT backend FROM runs) FROM samples"; }
for opts in "n2|--request-n 2|2 1 0 openai:completions" "n1|--request-n 1|1 1 0 openai:completions" "chat|--api chat|4 1 8 openai:chat" "nostream|--stream off|4 0 0 openai:completions"; do
    IFS="|" read -r db flags want <<<"$opts"
    read -ra flag_words <<<"$flags"
    check "openai backend: $flags is what the requests carry" eval 'run 0 run synth --backend openai --endpoint "$endpoint" --db "$work/$db.sqlite" --task-file "$work/synth.json" --data-dir "$work" --quiet --metric avg@4 "${flag_words[@]}" && [ "$(sent "$db")" = "$want" ]'
done
# A task's own sampling is what its requests carry, unless the command line
# says otherwise; a task without one takes the defaults (temperature 0.7).
sed 's/"groups": 2}/"groups": 2, "generation": {"temperature": 0.3, "top_p": 0.5, "max_new_tokens": 1000}}/; s/"name": "synth"/"name": "synthg"/' "$work/synth.json" >"$work/synthg.json"
gen_run() { run 0 run "$1" --backend openai --endpoint "$endpoint" --db "$work/g.sqlite" --task-file "$work/$1.json" --data-dir "$work" --quiet --metric avg@2 "${@:2}"; }
temps() { sqlite3 "$work/g.sqlite" "SELECT group_concat(DISTINCT json_extract(request_json, '\$.temperature')) || ' ' || (SELECT json_extract(config_json, '\$.tasks[0].sampling.temperature') FROM runs WHERE id = $1) FROM samples WHERE run_id = $1"; }
check "a task's generation.temperature is what its requests carry" eval 'gen_run synthg && [ "$(temps 1)" = "0.3 0.3" ]'
check "... and its top_p and max_new_tokens" eval '[ "$(sqlite3 "$work/g.sqlite" "SELECT group_concat(DISTINCT json_extract(request_json, '"'"'\$.top_p'"'"') || '"'"' '"'"' || json_extract(request_json, '"'"'\$.max_tokens'"'"')) FROM samples WHERE run_id = 1")" = "0.5 1000" ]'
check "... and --temperature overrides it" eval 'gen_run synthg --temperature 0.9 && [ "$(temps 2)" = "0.9 0.9" ]'
check "... and a task without one takes 0.7" eval 'gen_run synth && [ "$(temps 3)" = "0.7 0.7" ]'
check "another --seed is another run, whose requests carry other seeds" eval 'gen_run synth --seed 1 && grep -q "(new)" "$work/err" && gen_run synth --seed 2 && grep -q "run 5 done (new): 4 samples planned, 0 stored before" "$work/err" && [ "$(sqlite3 "$work/g.sqlite" "SELECT count(*) FROM samples a JOIN samples b ON a.doc = b.doc AND a.idx = b.idx AND a.tag = b.tag WHERE a.run_id = 4 AND b.run_id = 5 AND a.seed = b.seed")" = 0 ]'
check "SSFTEVAL_ENDPOINT is the server when --endpoint is not given" eval 'SSFTEVAL_ENDPOINT="$endpoint" run 0 run synth --db "$work/envep.sqlite" --task-file "$work/synth.json" --data-dir "$work" --quiet --metric avg@2 && [ "$(sqlite3 "$work/envep.sqlite" "SELECT count(*) FROM samples WHERE text IS NOT NULL")" = 4 ]'
check "openai backend: rerun generates nothing" eval 'run 0 run synth --backend openai --endpoint "$endpoint" --db "$work/o.sqlite" "${common[@]}" && grep -q "116 stored before, 0 generated" "$work/err"'
check "openai backend: --stop is sent and makes another run (it cuts samples)" eval 'run 0 run synth --backend openai --endpoint "$endpoint" --db "$work/o.sqlite" --stop "</answer>" "${common[@]}" && grep -q "0 stored before, 116 generated" "$work/err" && [ "$(sqlite3 "$work/o.sqlite" "select count(*) from samples where run_id = 2 and request_json like \"%\"\"stop\"\":[\"\"</answer>\"\"]%\"")" -gt 0 ]'
check "replay refuses --stop (its texts are made)" eval 'run 2 run synth --generations "$work/gen.jsonl" --stop "</answer>" --db "$work/o2.sqlite" "${common[@]}" && grep -q "^ssfteval: --stop: replay serves the texts as they were made; drop --stop" "$work/err"'
check "replay refuses --endpoint (it would be ignored): exit 2, one line, nothing stored" eval 'run 2 run synth --generations "$work/gen.jsonl" --endpoint "$endpoint" --db "$work/ign.sqlite" "${common[@]}" && grep -q "^ssfteval: --endpoint is an option of the openai backend, and --generations selects the replay backend, which would ignore it; drop one of them$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ] && [ ! -e "$work/ign.sqlite" ]'
for opt in "--api chat" "--concurrency 4" "--request-n 2" "--stream off" "--timeout 5" "--max-attempts 2" "--api-key-env HOME" "--device cpu" "--slots 2" "--kv-blocks 4" "--no-cuda-graphs" "--kv-cache-dtype bf16"; do
    # shellcheck disable=SC2086
    check "replay refuses ${opt%% *} (another backend's option)" eval 'run 2 run synth --generations "$work/gen.jsonl" $opt --db "$work/ign.sqlite" "${common[@]}" && grep -q "^ssfteval: ${opt%% *} is an option of the .* backend, and --generations selects the replay backend" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ]'
done
check "--backend openai refuses --generations" eval 'run 2 run synth --backend openai --endpoint "$endpoint" --generations "$work/gen.jsonl" --db "$work/ign.sqlite" "${common[@]}" && grep -q "^ssfteval: --generations is an option of the replay backend, and --backend openai selects the openai backend" "$work/err"'
check "openai refuses an engine option" eval 'run 2 run synth --endpoint "$endpoint" --device cpu --db "$work/ign.sqlite" "${common[@]}" && grep -q "^ssfteval: --device is an option of the engine backend, and --endpoint selects the openai backend" "$work/err"'
check "the engine (chosen by --model) refuses an openai option, naming --backend openai" eval 'run 2 run synth --model "$work/nomodel" --concurrency 3 --db "$work/ign.sqlite" "${common[@]}" && grep -q "drop --concurrency or pass --backend openai$" "$work/err"'
check "options for every backend are taken with replay (--model names it, sampling is recorded)" eval 'run 0 run synth --generations "$work/gen.jsonl" --model m --temperature 0.5 --chat-template chatml --db "$work/ign.sqlite" "${common[@]}" && [ "$(sqlite3 "$work/ign.sqlite" "SELECT model || '"'"' '"'"' || json_extract(config_json, '"'"'\$.chat_template'"'"') || '"'"' '"'"' || json_extract(config_json, '"'"'\$.tasks[0].sampling.temperature'"'"') FROM runs")" = "m chatml 0.5" ]'
stop_mock
# A resume by the same build grades its new samples under every profile the
# run has metrics for, not only the run's own (a rescore made lighteval's
# while 37 samples were failed).
start_mock --fault 503,mod=3,rem=0
"$ssfteval" run synth --backend openai --endpoint "$endpoint" --db "$work/rf.sqlite" --max-attempts 1 "${common[@]}" >/dev/null 2>&1
"$ssfteval" rescore 1 --profile lighteval --db "$work/rf.sqlite" --task-file "$work/synth.json" --data-dir "$work" >/dev/null 2>&1
stop_mock
start_mock
check "a resume grades its new samples under the other profiles the run has (lighteval: 116 grades, metrics with none failed)" eval 'run 0 run synth --backend openai --endpoint "$endpoint" --db "$work/rf.sqlite" "${common[@]}" && grep -q "resumed" "$work/err" && [ "$(sqlite3 "$work/rf.sqlite" "SELECT count(*) FROM grades WHERE run_id = 1 AND profile = '"'"'lighteval'"'"'")" = 116 ] && run 0 report 1 --profile lighteval --format csv --db "$work/rf.sqlite" && awk -F, '"'"'$6 == "lighteval" && $14 != 0 { bad = 1 } END { exit bad }'"'"' "$work/out"'
stop_mock
# A server that dies mid-run is named as soon as it stops answering, and
# --outage-wait bounds the wait for it (900 s of silence before).
start_mock --delay-ms 300
"$ssfteval" run synth --backend openai --endpoint "$endpoint" --db "$work/dead.sqlite" --concurrency 4 --request-n 1 --max-attempts 2 --outage-wait 1 "${common[@]}" >/dev/null 2>"$work/dead.err" &
dead_pid=$!
for _ in $(seq 200); do
    [ "$(sqlite3 "$work/dead.sqlite" "select count(*) from samples" 2>/dev/null || echo 0)" -ge 8 ] && break
    sleep 0.05
done
stop_mock
wait "$dead_pid"
dead_rc=$?
check "a server that dies mid-run is named when it stops answering, and --outage-wait bounds the wait (exit 1)" eval '[ "$dead_rc" -eq 1 ] && grep -q "^ssfteval: http://127.0.0.1:[0-9]*/v1 stopped answering (20 connections failed in a row): requests paused, waiting up to 1 s for it to answer again (--outage-wait); Ctrl-C stops and keeps every finished sample$" "$work/dead.err" && grep -q "^ssfteval: http://127.0.0.1:[0-9]*/v1 did not answer for [0-9]* s: its remaining samples fail as their attempts run out; rerun the command once it is back$" "$work/dead.err"'
check "... and what it generated is kept, the rest stored as failed" eval '[ "$(sqlite3 "$work/dead.sqlite" "select count(*) > 0 and sum(text is null) > 0 from samples")" = 1 ]'
check "--outage-wait refuses a negative wait" eval 'run 2 run synth --backend openai --endpoint "$endpoint" --outage-wait -1 --db "$work/ign.sqlite" "${common[@]}" && grep -q "outage-wait" "$work/err"'
# Without --model the served model is the run's: a server restarted with
# another model is another run, not a resume that mixes the two.
start_mock --model other-model
check "openai backend without --model: another served model is another run" eval 'run 0 run synth --backend openai --endpoint "$endpoint" --db "$work/o.sqlite" "${common[@]}" && grep -q "(new): 116 samples planned, 0 stored before, 116 generated" "$work/err" && [ "$(sqlite3 "$work/o.sqlite" "SELECT model FROM runs ORDER BY id DESC LIMIT 1")" = other-model ]'
stop_mock
# One process generates a run: the same command started again while the
# first generates (a job submitted twice) is refused in one line and changes
# nothing, where it would make every sample a second time.
twice() { # DB ERRFILE
    "$ssfteval" run synth --backend openai --endpoint "$endpoint" --db "$work/$1.sqlite" --concurrency 4 "${common[@]}" >/dev/null 2>"$2"
}
asked() { grep -o '"choices":[0-9]*,"connections":[0-9]*,"generations":[0-9]*' "$work/stats.json" | sed 's/"connections":[0-9]*,//'; }
start_mock
twice once "$work/err"
stop_mock
asked_once=$(asked)
start_mock --delay-ms 300
twice twice "$work/first.err" &
first_pid=$!
for _ in $(seq 200); do
    [ "$(sqlite3 "$work/twice.sqlite" "select count(*) from runs" 2>/dev/null)" = 1 ] && break
    sleep 0.05
done
check "runs shows a run that a process generates as running, and compare waits for it" eval 'run 0 runs --db "$work/twice.sqlite" && grep -q "^    1  running " "$work/out" && run 2 compare 1 1 --db "$work/twice.sqlite" && grep -q "^ssfteval: run 1 is being generated now, not done: compare it once its .ssfteval run. has ended$" "$work/err"'
check "rescore of a run being generated is refused, naming it (its later samples would go ungraded)" eval 'run 1 rescore 1 --profile lighteval --db "$work/twice.sqlite" --task-file "$work/synth.json" --data-dir "$work" && grep -q "^ssfteval: run 1 is being generated now: rescore it once its .ssfteval run. has ended$" "$work/err" && [ "$(sqlite3 "$work/twice.sqlite" "select count(*) from grades where profile = '"'"'lighteval'"'"'")" = 0 ]'
check "the same run started again while it generates is refused (exit 1, one line, naming the run)" eval 'twice twice "$work/err"; [ $? -eq 1 ] && grep -q "^ssfteval: run 1 of $work/twice.sqlite is being generated by another ssfteval now: wait for it to end, or stop it (what it stored is kept) and run this command again$" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ] && [ "$(sqlite3 "$work/twice.sqlite" "select status from runs")" = running ]'
wait "$first_pid"
first_status=$?
stop_mock
check "... and the first run ends done, the server asked what one run alone asks" eval '[ "$first_status" -eq 0 ] && grep -q "116 generated, 0 failed" "$work/first.err" && [ "$(sqlite3 "$work/twice.sqlite" "select status from runs")" = done ] && [ "$(asked)" = "$asked_once" ]'
start_mock
check "... after which the command resumes as before, with nothing left to make" eval 'twice twice "$work/err" && grep -q "116 stored before, 0 generated" "$work/err"'
stop_mock
# A run whose process was killed says "running" in the store; no process
# holds its claim, so runs and compare call it stopped.
start_mock --delay-ms 300
"$ssfteval" run synth --backend openai --endpoint "$endpoint" --db "$work/stopped.sqlite" --concurrency 4 "${common[@]}" >/dev/null 2>&1 &
stopped_pid=$!
for _ in $(seq 200); do
    [ "$(sqlite3 "$work/stopped.sqlite" "select count(*) from samples" 2>/dev/null)" -gt 0 ] 2>/dev/null && break
    sleep 0.05
done
kill -KILL "$stopped_pid"
wait "$stopped_pid" 2>/dev/null
stop_mock
check "runs shows a run whose process was killed as stopped (table and --json)" eval '[ "$(sqlite3 "$work/stopped.sqlite" "select status from runs")" = running ] && run 0 runs --db "$work/stopped.sqlite" && grep -q "^    1  stopped " "$work/out" && run 0 runs --db "$work/stopped.sqlite" --json && grep -q "\"status\": \"stopped\"" "$work/out"'
check "compare refuses a stopped run, saying its command resumes it" eval 'run 2 compare 1 1 --db "$work/stopped.sqlite" && grep -q "^ssfteval: run 1 is stopped, not done: .*rerun its .ssfteval run. command (it resumes)" "$work/err"'
start_mock --delay-ms 300
"$ssfteval" run synth --backend openai --endpoint "$endpoint" --db "$work/i.sqlite" --concurrency 4 "${common[@]}" >/dev/null 2>"$work/err" &
run_pid=$!
# Interrupt once some samples are stored (a sanitized build starts slowly):
# the rerun must then find them and complete only the rest.
for _ in $(seq 200); do
    stored=$(sqlite3 "$work/i.sqlite" "select count(*) from samples where text is not null" 2>/dev/null)
    [ "${stored:-0}" -gt 0 ] && break
    sleep 0.1
done
kill -INT "$run_pid"
wait "$run_pid"
int_status=$?
check "SIGINT stops the run (exit 1, interrupted)" eval '[ "$int_status" -eq 1 ] && grep -q "interrupted" "$work/err"'
check "... and the store says so: incomplete, with its end time (not running)" eval '[ "$(sqlite3 "$work/i.sqlite" "SELECT status || '"'"' '"'"' || (finished_at IS NOT NULL) FROM runs WHERE id = 1")" = "incomplete 1" ]'
"$ssfteval" rescore 1 --profile lighteval --db "$work/i.sqlite" --task-file "$work/synth.json" --data-dir "$work" >/dev/null 2>&1
# As if another build had graded it (all wrong): a resume interrupted after
# some samples keeps that build's version, so the next resume grades every
# stored sample again, under both profiles.
sqlite3 "$work/i.sqlite" "UPDATE runs SET version = '0.0.9+gold' WHERE id = 1; UPDATE grades SET verdict = 0 WHERE run_id = 1"
before=$(sqlite3 "$work/i.sqlite" "select count(*) from samples where text is not null")
"$ssfteval" run synth --backend openai --endpoint "$endpoint" --db "$work/i.sqlite" --concurrency 4 "${common[@]}" >/dev/null 2>"$work/err" &
run_pid=$!
for _ in $(seq 200); do
    stored=$(sqlite3 "$work/i.sqlite" "select count(*) from samples where text is not null" 2>/dev/null)
    [ "${stored:-0}" -gt "$before" ] && break
    sleep 0.1
done
kill -INT "$run_pid"
wait "$run_pid"
check "a resume by another build that is interrupted keeps the version that graded the run before" eval '[ "$(sqlite3 "$work/i.sqlite" "SELECT version FROM runs WHERE id = 1")" = "0.0.9+gold" ]'
stop_mock
start_mock
check "after SIGINT, a rerun completes only what is missing" eval 'run 0 run synth --backend openai --endpoint "$endpoint" --db "$work/i.sqlite" "${common[@]}" && grep -q "resumed" "$work/err" && ! grep -q "0 stored before" "$work/err"'
check "the metrics a rescore made under another profile follow the resume (they stayed those of the stopped run)" eval 'run 0 report 1 --profile lighteval --format csv --db "$work/i.sqlite" && [ "$(grep -c ",lighteval,pass@1,\|,lighteval,cons@" "$work/out")" -eq 3 ] && awk -F, '"'"'$6 == "lighteval" && ($12 != 2 || $14 != 0 || $15 != 0) { bad = 1 } END { exit bad }'"'"' "$work/out"'
check "... and that rerun graded the other build's grades again, under both profiles" eval '[ "$(sqlite3 "$work/i.sqlite" "SELECT count(DISTINCT profile) FROM grades WHERE run_id = 1 AND verdict = 1")" = 2 ] && [ "$(sqlite3 "$work/i.sqlite" "SELECT version FROM runs WHERE id = 1")" != "0.0.9+gold" ]'
stop_mock
start_mock --fault 401
check "openai backend: a refused API key (401) fails every sample, naming the fix" eval 'run 1 run synth --backend openai --endpoint "$endpoint" --model mock-model --db "$work/k.sqlite" "${common[@]}" && grep -q "failed: HTTP 401 from $endpoint/completions: Incorrect API key provided: sk-wrong.*; set OPENAI_API_KEY or name the variable with --api-key-env$" "$work/err"'
check "--api-key-env NAME: that variable's key is what is sent (the server's refusal echoes it, hidden)" eval 'MYKEY=sk-abcdefghijklmnop run 1 run synth --backend openai --endpoint "$endpoint" --model mock-model --api-key-env MYKEY --db "$work/k4.sqlite" "${common[@]}" && grep -q "Incorrect API key provided: \*\*\*\." "$work/err" && ! grep -q "sk-wrong\|abcdefghij" "$work/err"'
check "openai backend without --model: a key refused when asking for the model is named by its fix, and hidden" eval 'OPENAI_API_KEY=sk-TESTSECRET-0123456789 run 1 run synth --backend openai --endpoint "$endpoint" --db "$work/k3.sqlite" "${common[@]}" && grep -q "^ssfteval: no --model given, and asking the server failed: HTTP 401 from $endpoint/models: Incorrect API key provided: \*\*\*\. You can find.*; set OPENAI_API_KEY" "$work/err" && ! grep -q TESTSECRET "$work/err" && [ ! -e "$work/k3.sqlite" ]'
check "openai backend: a model the server lacks (404) names --endpoint and --model" eval 'run 1 run synth --backend openai --endpoint "$endpoint" --model nosuch --db "$work/k2.sqlite" "${common[@]}" && grep -q "failed: HTTP 404 from $endpoint/completions: The model .nosuch. does not exist; check --endpoint ($endpoint) and --model$" "$work/err"'
stop_mock
start_mock --fault stall --stall-ms 8000
check "--timeout bounds an attempt: a server silent for 8 s fails the sample within 6 s" eval 'timeout 6 "$ssfteval" run synth --backend openai --endpoint "$endpoint" --model mock-model --timeout 1 --max-attempts 1 --db "$work/to.sqlite" --task-file "$work/synth.json" --data-dir "$work" --quiet --metric avg@1 --limit 1 --stream off >"$work/out" 2>"$work/err"; [ $? -eq 1 ] && grep -q " failed: " "$work/err"'
stop_mock
check "openai backend: without --model, an unreachable server is named before a run is stored" eval 'run 1 run synth --backend openai --endpoint http://127.0.0.1:1/v1 --max-attempts 2 --db "$work/unknown-model.sqlite" "${common[@]}" && grep -q "^ssfteval: no --model given, and asking the server failed: gave up after 2 attempts: cannot reach http://127.0.0.1:1/v1: .*check --endpoint" "$work/err" && [ ! -e "$work/unknown-model.sqlite" ]'
check "openai backend: unreachable server fails every sample, named" eval 'run 1 run synth --backend openai --endpoint http://127.0.0.1:1/v1 --model served --max-attempts 2 --db "$work/u.sqlite" "${common[@]}" && grep -q "116 failed" "$work/err" && grep -q "failed: gave up after 2 attempts: cannot reach http://127.0.0.1:1/v1: .*check --endpoint" "$work/err"'
check "one reason is said once, not for each of the 116 samples" [ "$(grep -c " failed: " "$work/err")" -eq 1 ]
check "no question scored: the table says - for the value, not nan" eval '[ "$(metric synth cons@32)" = "-" ] && ! grep -q nan "$work/out"'
check "openai backend: bad endpoint URL" eval 'run 2 run synth --backend openai --endpoint ftp://x --db "$work/u2.sqlite" "${common[@]}" && grep -q "ftp://x" "$work/err"'

# A disk that fills mid-run (here: the file size limit, ulimit -f, with
# SIGXFSZ ignored, so that a write fails with EFBIG as one past a full
# disk fails with ENOSPC): one line naming the store and the fix, the
# samples stored so far kept, and the rerun resumes to the same table.
pad=$(printf '%*s' 20000 '' | tr ' ' '.')
sed "s/\"text\": \"/\"text\": \"$pad /" "$work/gen.jsonl" >"$work/big-gen.jsonl"
full_run() { "$ssfteval" run synth --generations "$work/big-gen.jsonl" --db "$1" "${common[@]}" >"$work/out" 2>"$work/err"; }
check "a full disk stops the run with one line naming the store and the fix (exit 1)" eval '(ulimit -f 512; trap "" XFSZ; full_run "$work/full.sqlite"); [ $? -eq 1 ] && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -Eq "^ssfteval: $work/full.sqlite: I/O error, cannot .*: (free some space, or write to another disk|check that the disk has room and works, or use another --db path)$" "$work/err"'
stored_before_full=$(sqlite3 "$work/full.sqlite" "SELECT count(*) FROM samples" 2>/dev/null || echo 0)
check "... having stored some samples, not all 116" eval '[ "$stored_before_full" -gt 0 ] && [ "$stored_before_full" -lt 116 ]'
check "... and with room again the rerun resumes: those samples kept, the rest generated" eval 'full_run "$work/full.sqlite" && grep -q "(resumed): 116 samples planned, $stored_before_full stored before, $((116 - stored_before_full)) generated, 0 failed" "$work/err" && cp "$work/out" "$work/full-table"'
check "... to the table of a run that never ran out of room" eval 'full_run "$work/roomy.sqlite" && diff "$work/full-table" "$work/out"'
check "an export that fills the disk: one line naming the file and the fix, no file left" eval 'echo precious >"$work/full-out.jsonl"; (ulimit -f 512; trap "" XFSZ; run 1 export 1 --db "$work/roomy.sqlite" --out "$work/full-out.jsonl") && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "^ssfteval: cannot write $work/full-out.jsonl.*: File too large; free some space, or write to another disk$" "$work/err" && [ "$(cat "$work/full-out.jsonl")" = precious ] && [ -z "$(ls "$work" | grep "full-out.jsonl." )" ]'

tap_end
