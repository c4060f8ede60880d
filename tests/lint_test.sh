#!/usr/bin/env bash
# lint_test.sh - the tree as the brief asks for it: every C, CUDA and header
# file as the root .clang-format lays it out, the C files clean under
# cppcheck's warning, style and performance checks, and the build's C files
# clean under clang-tidy with the root .clang-tidy (which says why each check
# it leaves out is left out).  A tool that is not installed skips its check
# (scripts/install-deps installs all three).
#
# usage: lint_test.sh [BUILD_DIR]   Prints TAP.  clang-tidy needs the build's
# compile_commands.json, so that each file is checked with its own flags.
set -u
build=${1:+$(cd "$1" && pwd)}
root=${SSFTEVAL_SOURCE_ROOT:-$(dirname "$0")/..}
cd "$root" || exit 1
echo "# lint: clang-format, cppcheck and clang-tidy over the tracked sources"
. tests/tap.sh
skip() { n=$((n + 1)); echo "not ok $n # SKIP $1"; }
# the tracked files when this is a git checkout, else every file of the tree
sources() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files "$@"
    else
        local names=()
        for p in "$@"; do names+=(-o -name "$p"); done
        find . -path ./build\* -prune -o \( -false "${names[@]}" \) -print | sed 's|^\./||'
    fi
}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
mapfile -t laid_out < <(sources '*.c' '*.h' '*.cu' '*.cuh')
mapfile -t c_files < <(sources '*.c')
if command -v clang-format >/dev/null; then
    if printf '%s\n' "${laid_out[@]}" | xargs clang-format --dry-run --Werror >"$out" 2>&1; then
        ok "clang-format: ${#laid_out[@]} files as laid out"
    else
        grep "error:" "$out" | head -n 5 | sed 's/^/# /'
        not_ok "clang-format: run clang-format -i on the files named above"
    fi
else
    skip "clang-format not installed"
fi
if command -v cppcheck >/dev/null; then
    if printf '%s\n' "${c_files[@]}" | xargs cppcheck --quiet --enable=warning,style,performance --std=c11 \
        -j "$(nproc)" --error-exitcode=1 --suppress=missingIncludeSystem \
        --template='{file}:{line}: {severity}: {message} [{id}]' -Ibackends/engine -Ibackends \
        -Ibench -Ilibssfteval/include -Ilibssfteval/src >"$out" 2>&1; then
        ok "cppcheck: ${#c_files[@]} C files clean"
    else
        grep -v '^ \|^$\|note:' "$out" | head -n 10 | sed 's/^/# /'
        not_ok "cppcheck: fix the findings named above"
    fi
else
    skip "cppcheck not installed"
fi
# clang-tidy: the tracked C files the build compiles, each file its own
# process, the host's cores at once.  A sanitizer build skips it: its files and
# checks are the release build's, and the analyzer is the slowest part of the
# suite.
tidy() {
    local commands=$build/compile_commands.json files=() f logs
    for f in "${c_files[@]}"; do
        grep -q "\"file\": \"[^\"]*/$f\"" "$commands" && files+=("$f")
    done
    logs=$(mktemp -d)
    printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -I{} sh -c \
        'clang-tidy -p "$1" --quiet "$2" >"$3/$(echo "$2" | tr / _).log" 2>&1 || echo "$2" >>"$3/failed"' \
        _ "$build" {} "$logs"
    if [ ! -s "$logs/failed" ]; then
        ok "clang-tidy: ${#files[@]} C files clean"
    else
        cat "$logs"/*.log | sed 's/\x1b\[[0-9;]*m//g' | grep -E '(error|warning): ' | sort -u |
            head -n 10 | sed "s|^.*$PWD/||; s/^/# /"
        not_ok "clang-tidy: findings in $(wc -l <"$logs/failed") of ${#files[@]} files; fix those named above"
    fi
    rm -rf "$logs"
}
if ! command -v clang-tidy >/dev/null; then
    skip "clang-tidy not installed"
elif [ -z "$build" ] || [ ! -f "$build/compile_commands.json" ]; then
    skip "clang-tidy: no build directory with a compile_commands.json given"
elif grep -q -- '-fsanitize' "$build/compile_commands.json"; then
    skip "clang-tidy: a sanitizer build (the release build runs it over the same files)"
else
    tidy
fi
tap_end
