# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables set here are the scripts' to use
# What every bench script does the same way, sourced by each (bash). Before
# sourcing, a script sets ROOT, and after it calls, in this order:
#   bench_build                 build Corral unless SKIP_BUILD=1; sets CORRAL
#   bench_tmp NAME PIDVARS LOG  a temp dir in TMP; at exit, stops the processes
#                               whose pids the variables named in PIDVARS hold,
#                               shows the end of $TMP/LOG if the run failed, and
#                               removes TMP unless it failed or KEEP_TMP=1
#   bench_results NAME          RESULTS file under bench/results, STAMP, COMMIT
#                               (noting uncommitted changes outside bench/),
#                               CPU and NPROC

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

bench_build() {
    if [ "${SKIP_BUILD:-0}" = 1 ]; then
        say "SKIP_BUILD=1: not building"
    else
        command -v cargo >/dev/null || die "cargo not found: install Rust (rustup.rs) or set SKIP_BUILD=1"
        say "cargo build --release"
        cargo build --release
    fi
    CORRAL=${CORRAL_BIN:-$ROOT/target/release/corral}
    [ -x "$CORRAL" ] || die "$CORRAL not found (build it, or unset SKIP_BUILD)"
}

bench_tmp() {
    TMP=$(mktemp -d "/tmp/corral-$1-bench.XXXXXX")
    BENCH_PID_VARS=$2
    BENCH_LOG=$3
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local rc=$? var pid
    for var in $BENCH_PID_VARS; do
        pid=${!var:-}
        [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    done
    for var in $BENCH_PID_VARS; do
        pid=${!var:-}
        [ -z "$pid" ] || wait "$pid" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ] && [ -s "$TMP/$BENCH_LOG" ]; then
        echo "--- last lines of the Corral log ($TMP/$BENCH_LOG) ---" >&2
        tail -n 20 "$TMP/$BENCH_LOG" >&2 || true
    fi
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        echo "temp dir kept: $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}

bench_results() {
    mkdir -p "$ROOT/bench/results"
    STAMP=$(date -u +%Y%m%dT%H%M%SZ)
    RESULTS="$ROOT/bench/results/$1-$STAMP.txt"
    COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no-commit")
    if [ -n "$(git -C "$ROOT" status --porcelain -- . ':!bench' 2>/dev/null)" ]; then
        COMMIT="$COMMIT (with uncommitted changes outside bench/)"
    fi
    CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    NPROC=$(nproc)
}
