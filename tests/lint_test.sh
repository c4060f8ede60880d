#!/usr/bin/env bash
# lint_test.sh - the tree as the brief asks for it: every C, CUDA and header
# file as the root .clang-format lays it out, and the C files clean under
# cppcheck's warning, style and performance checks.  A tool that is not
# installed skips its check (scripts/install-deps installs both).
#
# usage: lint_test.sh   Prints TAP.
set -u
root=${SSFTEVAL_SOURCE_ROOT:-$(dirname "$0")/..}
cd "$root" || exit 1
echo "# lint: clang-format and cppcheck over the tracked sources"
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
tap_end
