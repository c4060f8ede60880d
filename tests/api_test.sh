#!/usr/bin/env bash
# api_test.sh - the library as a program outside the tree uses it: every
# installed header compiles on its own as C11 (-pedantic) and as C++, a C++
# program calling into each of the library's modules links against the
# shared library (the declarations are extern "C"), and the shared library
# exports the ssf_ names only (no helper of its own can clash with a user's).
#
# usage: api_test.sh BUILD_DIR   Prints TAP.
set -u
build=$(cd "$1" && pwd)
. "$(dirname "$0")/tap.sh"
skip() { n=$((n + 1)); echo "not ok $n # SKIP $1"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "# api: the installed headers and the shared library's exports"

# The installed layout: every header meson installs, under include/ssfteval.
mkdir -p "$work/include/ssfteval"
meson introspect "$build" --installed | tr ',' '\n' |
    sed -n 's/^[ {]*"\([^"]*\.h\)": "[^"]*".*/\1/p' >"$work/headers"
while read -r h; do cp "$h" "$work/include/ssfteval/"; done <"$work/headers"
count=$(wc -l <"$work/headers")
check "meson installs the public headers ($count)" [ "$count" -ge 20 ]

cflags=$(pkg-config --cflags jansson 2>/dev/null)
alone() { # COMPILER STD EXT: each header alone in a file of its own
    local bad=0 h
    for h in "$work"/include/ssfteval/*.h; do
        printf '#include <ssfteval/%s>\n' "$(basename "$h")" >"$work/one.$3"
        # shellcheck disable=SC2086
        "$1" "$2" -Wall -Wextra -Werror $4 -I"$work/include" $cflags -c "$work/one.$3" \
            -o "$work/one.o" 2>"$work/err" || { bad=1; echo "# $(basename "$h"): $(head -n 1 "$work/err")"; }
    done
    return $bad
}
check "each installed header compiles alone as C11 (-pedantic)" alone cc -std=c11 c -pedantic
if command -v c++ >/dev/null; then
    check "each installed header compiles alone as C++17" alone c++ -std=c++17 cpp ""
    # One function of each module: a declaration without extern "C" is a
    # C++ name the library does not define, and the link fails.
    cat >"$work/user.cpp" <<'CPP'
#include <ssfteval/grade.h>
#include <ssfteval/report.h>
#include <ssfteval/run.h>
#include <ssfteval/tokenizer.h>
#include <ssfteval/model.h>
#include <ssfteval/task.h>
#include <ssfteval/prompt.h>
#include <ssfteval/records.h>
#include <ssfteval/hub.h>
#include <ssfteval/rng.h>
#include <ssfteval/engine.h>
int main(int argc, char **)
{
    if (argc > 99) return 1; /* linked, never called */
    void (*fns[])() = {
        (void (*)())ssf_grader_new,   (void (*)())ssf_grade,      (void (*)())ssf_metric_parse,
        (void (*)())ssf_extract,      (void (*)())ssf_parse_answer, (void (*)())ssf_equiv,
        (void (*)())ssf_arena_new,    (void (*)())ssf_backend_replay_new,
        (void (*)())ssf_store_open,   (void (*)())ssf_run_execute, (void (*)())ssf_report_write,
        (void (*)())ssf_tokenizer_encode, (void (*)())ssf_model_open,
        (void (*)())ssf_task_load_docs, (void (*)())ssf_prompt_render,
        (void (*)())ssf_records_read_file, (void (*)())ssf_sha256_hex,
        (void (*)())ssf_hub_init_from_env, (void (*)())ssf_mt_seed,
        (void (*)())ssf_backend_engine_open, (void (*)())ssf_model_fingerprint,
    };
    return fns[0] == nullptr;
}
CPP
    # shellcheck disable=SC2086
    check "a C++ program links against the shared library" \
        c++ -std=c++17 -I"$work/include" $cflags "$work/user.cpp" -o "$work/user" \
        -L"$build" -lssfteval -Wl,--allow-shlib-undefined
else
    skip "no C++ compiler"
    skip "no C++ compiler"
fi
nm -D --defined-only "$build/libssfteval.so" | awk '{ print $3 }' | grep -v '^ssf_' >"$work/other"
check "the shared library exports only ssf_ names" eval '[ ! -s "$work/other" ] || { head -n 5 "$work/other" | sed "s/^/# /"; false; }'
tap_end
