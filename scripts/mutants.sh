#!/usr/bin/env bash
# Mutation testing of the core crate (crates/corral-core: the query language, the audience
# rules, the columns and the engine): cargo-mutants changes the code in one small way at a
# time (`<` for `<=`, `&&` for `||`, a function that returns a default) and runs the core
# crate's unit tests against each change. A change the tests do not notice is "missed":
# code whose behaviour nothing checks. Not run in CI: the whole crate takes an hour or more
# on two cores (each mutant is a build of the core crate alone, a second or two, and a test
# run of a few seconds).
#
# Usage: scripts/mutants.sh [FILE...]
#   FILE   a source file or glob to mutate (default: every file of crates/corral-core/src);
#          e.g. scripts/mutants.sh crates/corral-core/src/engine/members.rs
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
#   MUTANTS_SHARD=K/N     only the K-th of N equal parts of the mutants (0-based), to sample
#   MUTANTS_TESTS="..."   only the core's unit tests whose names contain one of these
#                         (as `cargo test` filters); default: all of them
#   MUTANTS_WORKSPACE=1   also run the server's unit tests against each mutant (they reach
#                         the core through the live snapshots and the storage): slower, as
#                         each mutant then rebuilds the server too
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
    files=("crates/corral-core/src/**")
fi
args=()
if [ "${MUTANTS_ITERATE:-0}" = 1 ]; then
    args+=(--iterate)
fi
if [ -n "${MUTANTS_SHARD:-}" ]; then
    args+=(--shard "$MUTANTS_SHARD")
fi
if [ "${MUTANTS_WORKSPACE:-0}" = 1 ]; then
    args+=(--test-workspace=true)
fi
for f in "${files[@]}"; do
    args+=(--file "$f")
done

status=0
# Only the core crate's library is built and tested (`--lib`): no integration tests, no
# server. No debug info, for quicker builds. After `--`: the unit tests to run.
export CARGO_PROFILE_DEV_DEBUG=0
cargo mutants "${args[@]}" \
    --package corral-core \
    --timeout "${MUTANTS_TIMEOUT:-120}" \
    --jobs "${MUTANTS_JOBS:-1}" \
    --output "$OUT" \
    --cargo-arg=--lib \
    ${MUTANTS_TESTS:+-- -- $MUTANTS_TESTS} || status=$?

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
