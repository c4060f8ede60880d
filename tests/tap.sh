# tap.sh - TAP helpers the shell tests source: numbered "ok"/"not ok" lines,
# a failure count, and the closing plan.
n=0
failures=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failures=$((failures + 1)); echo "not ok $n - $1"; }
# check NAME COMMAND...: passes when the command succeeds
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
# tap_end: the plan line, and the exit status of the whole test
tap_end() { echo "1..$n"; [ "$failures" -eq 0 ]; }
# need PROGRAM...: stops the test as failed, saying what to install, when a
# program its checks call is missing (rather than leave those checks out)
need() {
    local p
    for p in "$@"; do
        command -v "$p" >/dev/null || { echo "Bail out! $p not found; scripts/install-deps installs it"; exit 1; }
    done
}
