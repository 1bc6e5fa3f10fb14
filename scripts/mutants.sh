#!/usr/bin/env bash
# Mutation testing of the query language and the audience rules: cargo-mutants changes the
# code in one small way at a time (`<` for `<=`, `&&` for `||`, a function that returns a
# default) and runs the unit tests of src/query/ and src/audience/ against each change. A
# change the tests do not notice is "missed": code whose behaviour nothing checks. Not run
# in CI: the whole scope takes hours on two cores (each mutant is a build and a test run).
#
# Usage: scripts/mutants.sh [FILE...]
#   FILE   a source file or glob to mutate (default: every file of src/query/ and
#          src/audience/); e.g. scripts/mutants.sh src/query/eval/engine.rs
# Knobs (environment):
#   MUTANTS_TIMEOUT=120   seconds a mutant's test run may take (beyond: a timeout, such as
#                         a loop that no longer ends)
#   MUTANTS_JOBS=1        mutants built and tested at once
#   MUTANTS_OUT=target    the folder mutants.out is written in (caught.txt, missed.txt, ...)
#   MUTANTS_TARGET_DIR    the target dir of the mutants' builds with one job (default
#                         target/mutants), apart from the one you build in, so neither
#                         invalidates the other; with more jobs, each builds in its own copy
#   MUTANTS_ITERATE=1     test again only what the last run in MUTANTS_OUT did not catch
#                         (after adding tests for the missed mutants)
#   MUTANTS_TESTS="query:: audience::"   the unit tests run against each mutant (names
#                         filtered as `cargo test` does); empty: every unit test of the
#                         library, slower but also counting what the live snapshots' and the
#                         storage's tests notice of code they reach in these modules
#
# Installs cargo-mutants (cargo install cargo-mutants --locked) when it is missing. Prints
# how many mutants were caught and missed, and each missed one; exits with cargo-mutants'
# status (0: all caught or unviable, 2: some missed, 3: some timed out).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if ! command -v cargo-mutants >/dev/null 2>&1; then
    echo "installing cargo-mutants" >&2
    cargo install cargo-mutants --locked
fi

OUT=${MUTANTS_OUT:-target}
mkdir -p "$OUT"
if [ "${MUTANTS_JOBS:-1}" = 1 ]; then
    export CARGO_TARGET_DIR=${MUTANTS_TARGET_DIR:-$ROOT/target/mutants}
else
    # Jobs sharing one target dir would wait for each other's lock: each
    # builds in its own copy of the tree instead.
    unset CARGO_TARGET_DIR
fi

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
    files=("src/query/**" "src/audience/**")
fi
args=()
if [ "${MUTANTS_ITERATE:-0}" = 1 ]; then
    args+=(--iterate)
fi
for f in "${files[@]}"; do
    args+=(--file "$f")
done

status=0
# Only the library is built and tested (`--lib` for every cargo call): the integration
# tests would make each mutant's build minutes long and are not what this measures. No
# debug info, for quicker builds. After `--`: the unit tests to run (MUTANTS_TESTS).
export CARGO_PROFILE_DEV_DEBUG=0
cargo mutants "${args[@]}" \
    --timeout "${MUTANTS_TIMEOUT:-120}" \
    --jobs "${MUTANTS_JOBS:-1}" \
    --output "$OUT" \
    --cargo-arg=--lib \
    -- -- ${MUTANTS_TESTS-query:: audience::} || status=$?

results="$OUT/mutants.out"
count() { if [ -f "$results/$1.txt" ]; then grep -c . "$results/$1.txt" || true; else echo 0; fi; }
caught=$(count caught)
missed=$(count missed)
timeouts=$(count timeout)
unviable=$(count unviable)
echo
before=$(count previously_caught)
echo "mutants of ${files[*]}: caught $caught, missed $missed, timed out $timeouts, unviable $unviable (did not build)"
if [ "$before" -gt 0 ]; then
    echo "not tested again (caught or unviable in the earlier runs of MUTANTS_OUT): $before"
fi
if [ "$missed" -gt 0 ]; then
    echo "missed (nothing noticed these changes):"
    sed 's/^/  /' "$results/missed.txt"
fi
echo "details: $results"
exit "$status"
